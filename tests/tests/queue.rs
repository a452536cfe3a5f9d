//! The queue end to end on a real server (SQLite and PostgreSQL): priority rules through
//! the admin API (validated, audited) ordering `GET /queue`; the public hold music; an
//! offer pushed through Telnyx's REST update-call (the simulator's fake, on loopback) and
//! fetched from the pushed URL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use e2e::{TestApp, on_both_backends, rung};
use reqwest::Method;
use serde_json::{Value, json};
use telnyx_sim::rest::{FakeTelnyxApi, RestFaults};

async fn inbound_from(app: &TestApp, sid: &str, from: &str) {
    let answer = app
        .post(
            "/inbound",
            &[
                ("CallSid", sid),
                ("From", from),
                ("To", "+13125550199"),
                ("CallStatus", "ringing"),
                ("AccountSid", "acct-1"),
                ("ConnectionId", "conn-1"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

async fn priority_rules_order_the_queue(app: TestApp) {
    let (status, problem) = app
        .api(
            Method::POST,
            "/queue/priority-rules",
            Some(json!({"pattern": "+1 999 <script>", "priority": 10, "label": "VIP"})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().is_some(), "{problem}");

    let (status, rule) = app
        .api(
            Method::POST,
            "/queue/priority-rules",
            Some(json!({"pattern": "+1999*", "priority": 10, "label": "VIP line"})),
        )
        .await;
    assert_eq!(status, 200, "{rule}");
    let (_, rules) = app.api(Method::GET, "/queue/priority-rules", None).await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "{rules}");

    // Nobody is online: both callers wait, the VIP first although it came second.
    inbound_from(&app, "v3:q-regular", "+13125550101").await;
    inbound_from(&app, "v3:q-vip", "+19995550102").await;
    let (status, queue) = app.api(Method::GET, "/queue", None).await;
    assert_eq!(status, 200, "{queue}");
    let order: Vec<&Value> = queue["callers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["call_sid"])
        .collect();
    assert_eq!(
        order,
        [&json!("v3:q-vip"), &json!("v3:q-regular")],
        "{queue}"
    );
    assert_eq!(queue["callers"][0]["priority"], 10, "{queue}");

    let id = rule["id"].as_str().unwrap();
    let (status, _) = app
        .api(Method::DELETE, &format!("/queue/priority-rules/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .api(Method::DELETE, &format!("/queue/priority-rules/{id}"), None)
        .await;
    assert_eq!(status, 404, "already removed");
    let (_, audit) = app.api(Method::GET, "/audit?limit=500", None).await;
    let changes = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "priority_rule_changed")
        .count();
    assert_eq!(changes, 2, "set and removed, each audited: {audit}");
}

async fn hold_music_is_public_and_cacheable(app: TestApp) {
    let url = format!("{}/api/call-center/hold-music.wav", app.instance().base);
    let http = reqwest::Client::new();
    let music = http.get(&url).send().await.unwrap();
    assert_eq!(music.status(), 200, "no token needed: Telnyx fetches it");
    let headers = music.headers().clone();
    assert_eq!(headers["content-type"], "audio/wav");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let body = music.bytes().await.unwrap();
    assert_eq!(&body[..4], b"RIFF");
    let again = http
        .get(&url)
        .header("If-None-Match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

on_both_backends!(
    priority_rules_order_the_queue,
    hold_music_is_public_and_cacheable,
);

/// With `TELNYX_API_KEY` the reserved caller is redirected through the REST update-call at
/// once; the pushed URL answers the offer's `<Dial>` (with the hold music kept while the
/// agent rings).
async fn an_offer_is_pushed_through_the_rest_api(backend: e2e::Backend) {
    let api = FakeTelnyxApi::start(RestFaults::default()).unwrap();
    let overrides = [
        ("TELNYX_API_KEY", api.key.as_str()),
        ("TELNYX_API_BASE_URL", api.base.as_str()),
    ];
    let Some(app) = TestApp::spawn_with(backend, &overrides).await else {
        return;
    };
    let mut pushes = api.call_started("v3:pushed");
    // The caller waits first (nobody online), then an agent comes online.
    inbound_from(&app, "v3:pushed", "+13125550103").await;
    let (ann, _) = app.agent("Ann").await;
    let url = tokio::time::timeout(std::time::Duration::from_secs(10), pushes.recv())
        .await
        .expect("pushed within 10 s")
        .expect("a pushed URL");
    assert!(url.contains("kind=push"), "{url}");
    let dial = app.post(&url, &[("CallSid", "v3:pushed")]).await;
    let doc = dial.texml().unwrap();
    assert_eq!(rung(&doc), vec![ann.sip_uri], "{}", dial.body);
    assert!(dial.body.contains("audioUrl="), "{}", dial.body);
    assert_eq!(
        api.counts
            .redirected
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "exactly one push"
    );
    let (_, entries) = app
        .api(Method::GET, "/audit?call_sid=v3:pushed", None)
        .await;
    let delivered: Vec<&Value> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "offer_delivered")
        .collect();
    assert_eq!(delivered.len(), 1, "{entries}");
    assert!(
        delivered[0]["data"].to_string().contains("push"),
        "delivered via the push: {entries}"
    );
    app.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offer_is_pushed_through_the_rest_api_sqlite() {
    an_offer_is_pushed_through_the_rest_api(e2e::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn an_offer_is_pushed_through_the_rest_api_postgres() {
    an_offer_is_pushed_through_the_rest_api(e2e::Backend::Postgres).await;
}
