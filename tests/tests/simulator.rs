//! The simulator against a real server: calls with duplicated and reordered callbacks end
//! with the outcomes the simulator saw, agent metrics match, and the audit chain verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{TestApp, on_both_backends};
use telnyx_sim::{Outcome, Scenario};

/// No failed call, no request error, no mismatch, every call completed; the check.
fn assert_consistent(outcome: &Outcome, calls: usize) -> &telnyx_sim::check::Report {
    let check = outcome.check.as_ref().unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.stats.errors(), 0);
    assert!(check.mismatches.is_empty(), "{:#?}", check.mismatches);
    assert_eq!(outcome.completed, calls);
    check
}

async fn a_simulated_day_is_consistent_with_faulty_delivery(app: TestApp) {
    let scenario = Scenario {
        calls: 40,
        concurrency: 8,
        agents: 6,
        duplicate_probability: 0.2,
        reorder: true,
        seed: Some(7),
        ..Scenario::default()
    };
    let outcome = telnyx_sim::run(&app.server, &scenario, Duration::from_millis(500), true)
        .await
        .unwrap();
    let check = assert_consistent(&outcome, 40);
    let outcomes = outcome.stats.outcomes();
    assert_eq!(outcomes.values().sum::<u64>(), 40);
    assert!(
        outcomes.get("answered").copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    assert!(check.audit_entries > 40 * 3, "{}", check.audit_entries);
    app.stop().await;
}

on_both_backends!(a_simulated_day_is_consistent_with_faulty_delivery);

/// Two instances on one PostgreSQL database behave as one: the simulator sends every
/// request to the next instance in turn, so one call's webhooks alternate between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn two_instances_on_one_postgres_behave_as_one() {
    let Some(app) = TestApp::spawn(e2e::Backend::Postgres).await else {
        return;
    };
    let second = app.another_instance(&[]).await;
    let both = e2e::Instance::client_of(&[app.instance(), &second]);
    let scenario = Scenario {
        calls: 40,
        concurrency: 10,
        agents: 5,
        duplicate_probability: 0.1,
        seed: Some(11),
        ..Scenario::default()
    };
    let outcome = telnyx_sim::run(&both, &scenario, Duration::from_millis(500), true)
        .await
        .unwrap();
    assert_consistent(&outcome, 40);
    second.stop().await;
    app.stop().await;
}
