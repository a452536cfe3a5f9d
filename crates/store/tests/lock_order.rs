//! No deadlock between calls sharing agents, on PostgreSQL: the apply takes its agents' rows
//! in one global order (by id), whatever order the change lists them in and wherever their
//! row versions happen to sit in the table.
//!
//! Before, the `UPDATE agents … FROM unnest(…)` took them in the order the plan met them:
//! the table's physical order, which changes as rows get new versions, so two statements
//! with snapshots a moment apart could meet two agents in opposite orders and deadlock
//! ("deadlock detected … while rechecking updated tuple"). That race is not reproducible on
//! demand; what makes it impossible is, and is tested here directly:
//! `a_waiting_apply_already_holds_the_lower_id` fails on the old statement. The crossed
//! queue below is the classic cycle, driven step by step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use agents::contract::{agent, t0};
use agents::{AgentId, Presence};
use call_center::{Applied, CallChange, CallStore, contract};
use sqlx::{Connection as _, PgConnection};
use store::{Store, StoreOptions};
use testing::TestDb;

fn change(sid: &str, version: i64, order: [AgentId; 2]) -> CallChange {
    contract::effects_on(
        sid,
        version,
        order.into_iter().map(contract::missed).collect(),
    )
}

/// Sessions of this database waiting for a lock.
async fn waiting(admin: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(admin)
    .await
    .unwrap()
}

async fn until_waiting(admin: &mut PgConnection, n: i64) {
    for _ in 0..500 {
        if waiting(admin).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for a lock");
}

/// A fresh database with two agents, the one with the higher id inserted first (so it is
/// also first in the table's physical order); returns the ids lower first.
async fn two_agents() -> (TestDb, Store, [AgentId; 2]) {
    let db = TestDb::postgres().await.expect("TEST_DATABASE_URL is set");
    let store = Store::open(&StoreOptions::new(&db.url)).unwrap();
    store.migrate().await.unwrap();
    let mut made: Vec<_> = (0..2)
        .map(|n| {
            agent(
                &format!("Lock {n}"),
                &format!("sip:lock{n}@example.com"),
                Presence::Available,
                Some(t0()),
                t0(),
            )
        })
        .collect();
    made.sort_by_key(|a| std::cmp::Reverse(a.id));
    for (n, a) in made.iter().enumerate() {
        store
            .agents()
            .insert(a, &format!("lock-{n}"), vec![])
            .await
            .unwrap();
    }
    let (low, high) = (made[1].id, made[0].id);
    (db, store, [low, high])
}

async fn hold(db: &TestDb, id: AgentId) -> PgConnection {
    let mut holder = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE")
        .bind(id.0)
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn a_waiting_apply_already_holds_the_lower_id() {
    let (db, store, [low, high]) = two_agents().await;
    let calls = store.calls();
    let created = CallChange {
        agents: vec![],
        ..change("ordered", 1, [high, low])
    };
    calls.apply(&created).await.unwrap();
    let mut holder = hold(&db, high).await;
    // Listed higher first, and the higher is first in the table too: only the id order
    // takes the lower one before waiting for the higher.
    let apply = {
        let (calls, change) = (Arc::clone(&calls), change("ordered", 2, [high, low]));
        tokio::spawn(async move { calls.apply(&change).await })
    };
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    until_waiting(&mut admin, 1).await;
    sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
    let taken = sqlx::query("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(low.0)
        .execute(&mut admin)
        .await;
    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    assert_eq!(apply.await.unwrap().unwrap(), Applied::Yes);
    assert!(
        taken.is_err(),
        "the apply waited for the higher id without holding the lower one: agents are not \
         taken in id order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn calls_sharing_agents_in_crossed_orders_do_not_deadlock() {
    let (db, store, ids) = two_agents().await;
    let (agents, calls): (_, Arc<dyn CallStore>) = (store.agents(), store.calls());
    // The second apply comes from another instance: within one, changes wait for the
    // instance's batch task in turn and never meet in PostgreSQL's lock queue.
    let other = Store::open(&StoreOptions::new(&db.url)).unwrap().calls();
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    // Both ways round: P the lower id, then the higher.
    for (round, (p, q)) in [(ids[0], ids[1]), (ids[1], ids[0])]
        .into_iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        for sid in [&x, &y] {
            let created = change(sid, 1, [p, q]);
            let created = CallChange {
                agents: vec![],
                ..created
            };
            assert_eq!(calls.apply(&created).await.unwrap(), Applied::Yes);
        }
        let mut holder = hold(&db, p).await;
        let first = {
            let (calls, change) = (Arc::clone(&calls), change(&x, 2, [p, q]));
            tokio::spawn(async move { calls.apply(&change).await })
        };
        until_waiting(&mut admin, 1).await;
        let second = {
            let (calls, change) = (Arc::clone(&other), change(&y, 2, [q, p]));
            tokio::spawn(async move { calls.apply(&change).await })
        };
        until_waiting(&mut admin, 2).await;
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        for applied in [first.await.unwrap(), second.await.unwrap()] {
            let applied = applied.unwrap_or_else(|e| panic!("round {round}: {e:#}"));
            assert_eq!(applied, Applied::Yes);
        }
    }
    for id in ids {
        let missed = agents.get(id).await.unwrap().unwrap().metrics.calls_missed;
        assert_eq!(missed, 12);
    }
}
