//! The audit log over HTTP: concurrent webhook streams leave a complete, verifying chain;
//! redaction is audited and keeps the chain valid; retention redacts old calls once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;

use e2e::{Backend, TestApp, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use telnyx_sim::AgentJson;

/// One whole answered call, each step a signed webhook; answered by the agent the queue
/// reserved for it (one of `agents`).
async fn answered_call(app: Arc<TestApp>, sid: String, agents: Arc<Vec<AgentJson>>, leg: String) {
    app.inbound(&sid).await;
    app.reserved(&sid, 1).await;
    let dial = app
        .post(
            &app.dial_agents_url(sid.as_str(), 1),
            &[("CallSid", sid.as_str())],
        )
        .await
        .texml()
        .unwrap();
    let rung = e2e::rung(&dial);
    let agent = agents
        .iter()
        .find(|a| rung.first() == Some(&a.sip_uri))
        .unwrap_or_else(|| panic!("{sid}: rang {rung:?}"))
        .clone();
    app.leg(&sid, 1, &agent, &leg, "in-progress", 2).await;
    app.leg(&sid, 1, &agent, &leg, "completed", 3).await;
    app.post(
        &app.retry_dial_url(sid.as_str(), 1),
        &[
            ("CallSid", sid.as_str()),
            ("DialCallStatus", "completed"),
            ("DialCallSid", leg.as_str()),
        ],
    )
    .await;
    app.call_status(&sid, "completed").await;
}

async fn entries_for(app: &TestApp, sid: &str) -> Vec<String> {
    let (_, v) = app
        .api(Method::GET, &format!("/audit?call_sid={sid}"), None)
        .await;
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    match (app.store.as_postgres(), app.store.as_sqlite()) {
        (Some(pg), _) => sqlx::query_scalar(sql).fetch_one(pg.pool()).await.unwrap(),
        (_, Some(lite)) => sqlx::query_scalar(sql)
            .fetch_one(lite.pool())
            .await
            .unwrap(),
        _ => unreachable!(),
    }
}

async fn verify_until_complete(app: &TestApp, at_least: i64) -> Value {
    for _ in 0..100 {
        let report = app.server.verify_audit().await.unwrap();
        if report["entries"].as_i64().unwrap() >= at_least {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.server.verify_audit().await.unwrap()
}

async fn concurrent_streams_leave_a_complete_chain(app: TestApp) {
    let app = Arc::new(app);
    // One agent per stream; with longest-idle each call is reserved one of them.
    let mut agents = Vec::new();
    for i in 0..20 {
        agents.push(app.agent(&format!("Agent{i}")).await.0);
    }
    let agents = Arc::new(agents);
    let streams = (0..20).map(|i| {
        tokio::spawn(answered_call(
            Arc::clone(&app),
            format!("v3:stream-{i}"),
            Arc::clone(&agents),
            format!("leg-{i}"),
        ))
    });
    for s in futures::future::join_all(streams).await {
        s.unwrap();
    }
    // 20 agents registered; per call: received, enqueued, notice, answered, released,
    // completed; per round: opened and delivered; one entry per offer.
    let offers = count(&app, "SELECT count(*) FROM offers").await;
    let rounds = count(&app, "SELECT count(*) FROM dial_attempts").await;
    let expected = 20 + 20 * 6 + 2 * rounds + offers;
    let report = verify_until_complete(&app, expected).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["entries"], expected,
        "no gap, nothing missing: {report}"
    );
    for i in 0..20 {
        let actions = entries_for(&app, &format!("v3:stream-{i}")).await;
        let count = |a: &str| actions.iter().filter(|x| *x == a).count();
        assert_eq!(
            (
                count("call_received"),
                count("call_answered"),
                count("call_completed")
            ),
            (1, 1, 1),
            "stream {i}: {actions:?}"
        );
        assert!(
            count("offer_made") >= 1,
            "stream {i}: its own agent was offered"
        );
    }
    let (_, calls) = app.api(Method::GET, "/calls?limit=100", None).await;
    let outcomes: BTreeMap<String, usize> =
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut m, c| {
                *m.entry(c["outcome"].as_str().unwrap_or("-").to_owned())
                    .or_default() += 1;
                m
            });
    assert_eq!(outcomes.get("answered"), Some(&20));
    Arc::into_inner(app).unwrap().stop().await;
}

async fn redaction_is_audited_and_the_chain_still_verifies(app: TestApp) {
    app.inbound("v3:r1").await;
    app.post(&app.voicemail_url("v3:r1"), &[("CallSid", "v3:r1")])
        .await;
    app.post(
        &app.voicemail_callback_url("v3:r1", "recording"),
        &[
            ("CallSid", "v3:r1"),
            ("RecordingSid", "rec"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "https://api.telnyx.com/vm.mp3"),
            ("RecordingDuration", "9"),
        ],
    )
    .await;
    app.post(
        &app.voicemail_callback_url("v3:r1", "transcription"),
        &[
            ("CallSid", "v3:r1"),
            ("TranscriptionSid", "tr"),
            ("TranscriptionText", "my card number is 4111"),
        ],
    )
    .await;
    app.call_status("v3:r1", "completed").await;
    assert!(
        app.server.verify_audit().await.unwrap()["ok"]
            .as_bool()
            .unwrap()
    );
    let (status, body) = app
        .api(
            Method::POST,
            "/calls/v3:r1/redact",
            Some(json!({"reason": "caller asked"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "redacted");
    let mut voicemail = body["call"]["voicemail"].clone();
    assert!(
        voicemail["started_at"].is_string(),
        "when it was left stays: {voicemail}"
    );
    voicemail.as_object_mut().unwrap().remove("started_at");
    assert_eq!(
        voicemail,
        json!({"recording_url": null, "duration_seconds": 9, "transcription": null})
    );
    let (status, again) = app
        .api(
            Method::POST,
            "/calls/v3:r1/redact",
            Some(json!({"reason": "twice"})),
        )
        .await;
    assert_eq!(
        (status, again["result"].as_str()),
        (200, Some("already_redacted"))
    );
    assert_eq!(
        app.api(
            Method::POST,
            "/calls/v3:nope/redact",
            Some(json!({"reason": "x"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.api(
            Method::POST,
            "/calls/v3:r1/redact",
            Some(json!({"reason": ""}))
        )
        .await
        .0,
        422
    );
    let (_, entries) = app.api(Method::GET, "/audit?call_sid=v3:r1", None).await;
    let redaction: Vec<&Value> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "recording_redacted")
        .collect();
    assert_eq!(redaction.len(), 1);
    assert_eq!(redaction[0]["actor"], "admin");
    assert_eq!(redaction[0]["data"], r#"{"reason":"caller asked"}"#);
    // What a caller said or dialled could only be in an entry's data; digests, ids and
    // times are hex and digits, where "4111" turns up by chance.
    for entry in entries["entries"].as_array().unwrap() {
        let data = entry["data"].as_str().unwrap();
        assert!(!data.contains("4111"), "no transcripts in the log: {entry}");
        assert!(
            !entry.to_string().contains("+1312"),
            "no numbers anywhere in an entry: {entry}"
        );
    }
    let report = app.server.verify_audit().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    app.stop().await;
}

async fn the_recording_notice_is_played_and_audited(app: TestApp) {
    let greeting = app.inbound("v3:n1").await;
    assert!(greeting.body.contains("may be recorded"));
    let actions = entries_for(&app, "v3:n1").await;
    assert_eq!(
        actions,
        ["call_received", "call_enqueued", "recording_notice_played"]
    );
    app.stop().await;
}

on_both_backends!(
    redaction_is_audited_and_the_chain_still_verifies,
    the_recording_notice_is_played_and_audited
);

/// One agent reserved per caller.
const LONGEST_IDLE: &[(&str, &str)] = &[("CALL_CENTER_QUEUE_STRATEGY", "longest-idle")];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn twenty_concurrent_webhook_streams_on_postgres() {
    if let Some(app) = TestApp::spawn_with(Backend::Postgres, LONGEST_IDLE).await {
        concurrent_streams_leave_a_complete_chain(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_webhook_streams_on_sqlite() {
    let app = TestApp::spawn_with(Backend::Sqlite, LONGEST_IDLE).await;
    concurrent_streams_leave_a_complete_chain(app.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_recording_there_is_no_notice() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("CALL_CENTER_RECORDING_ENABLED", "false")],
    )
    .await
    .unwrap();
    let greeting = app.inbound("v3:n2").await;
    assert!(!greeting.body.contains("may be recorded"));
    assert_eq!(
        entries_for(&app, "v3:n2").await,
        ["call_received", "call_enqueued"]
    );
    app.stop().await;
}
