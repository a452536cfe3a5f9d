//! Webhook signatures end to end (a test Ed25519 key), replay protection shared through
//! the store, markup in agent data escaped in TeXML, the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use e2e::{Backend, PUBLIC_BASE, TestApp, on_both_backends, rung};
use reqwest::Method;
use serde_json::{Value, json};
use telnyx_sim::Signer;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sends `body` to `path` with explicit signature headers.
async fn send(
    app: &TestApp,
    method: Method,
    path_and_query: &str,
    body: &str,
    ts: Option<String>,
    sig: Option<String>,
) -> u16 {
    let mut req = reqwest::Client::new()
        .request(
            method,
            format!("{}/api/call-center{path_and_query}", app.base),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(ts) = ts {
        req = req.header("telnyx-timestamp", ts);
    }
    if let Some(sig) = sig {
        req = req.header("telnyx-signature-ed25519", sig);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn signatures_are_checked(app: TestApp) {
    let key = app.server.signer.clone().unwrap();
    let body = "CallSid=v3%3Asig&From=%2B13125550100&To=%2B13125550199";
    let ts = now().to_string();
    let good = key.sign(&ts, body.as_bytes());
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            Some(ts.clone()),
            Some(good.clone())
        )
        .await,
        200,
        "valid"
    );
    let changed = body.replace("v3%3Asig", "v3%3Aevil");
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            &changed,
            Some(ts.clone()),
            Some(good.clone())
        )
        .await,
        401,
        "body changed"
    );
    let stale = (now() - 301).to_string();
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            Some(stale.clone()),
            Some(key.sign(&stale, body.as_bytes()))
        )
        .await,
        401,
        "stale"
    );
    let future = (now() + 301).to_string();
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            Some(future.clone()),
            Some(key.sign(&future, body.as_bytes()))
        )
        .await,
        401,
        "future"
    );
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            None,
            Some(good.clone())
        )
        .await,
        401,
        "timestamp header missing"
    );
    assert_eq!(
        send(&app, Method::POST, "/inbound", body, Some(ts.clone()), None).await,
        401,
        "signature header missing"
    );
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            Some(ts.clone()),
            Some("not*base64!".into())
        )
        .await,
        401,
        "malformed base64"
    );
    let other = Signer::from_seed([9u8; 32]);
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            Some(ts.clone()),
            Some(other.sign(&ts, body.as_bytes()))
        )
        .await,
        401,
        "wrong key"
    );
    let body_only = Signer::from_seed([42u8; 32]).sign("", body.as_bytes());
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            body,
            Some(ts.clone()),
            Some(body_only)
        )
        .await,
        401,
        "signature over a different message"
    );
    app.stop().await;
}

async fn a_replayed_get_with_another_query_is_refused(app: TestApp) {
    let key = app.server.signer.clone().unwrap();
    let ts = now().to_string();
    let sig = key.sign(&ts, b"");
    let first = "/events?CallSid=v3%3Aget&CallStatus=ringing";
    assert_eq!(
        send(
            &app,
            Method::GET,
            first,
            "",
            Some(ts.clone()),
            Some(sig.clone())
        )
        .await,
        200
    );
    // The same headers with a forged query: the signature covers only `ts|`, so only the
    // replay guard can catch this.
    let forged = "/events?CallSid=v3%3Aget&CallStatus=completed";
    assert_eq!(
        send(
            &app,
            Method::GET,
            forged,
            "",
            Some(ts.clone()),
            Some(sig.clone())
        )
        .await,
        401
    );
    assert!(
        app.server.call("v3:get").await.is_err(),
        "the forged completion created nothing"
    );
    // Byte-identical replay: accepted as a repeat, nothing changes.
    assert_eq!(
        send(&app, Method::GET, first, "", Some(ts), Some(sig)).await,
        200
    );
    app.stop().await;
}

async fn a_byte_identical_replay_changes_nothing(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let key = app.server.signer.clone().unwrap();
    app.inbound("v3:rp").await;
    app.reserved("v3:rp", 1).await;
    app.post(&app.dial_agents_url("v3:rp", 1), &[("CallSid", "v3:rp")])
        .await;
    let body = format!(
        "CallSid=leg-1&ParentCallSid=v3%3Arp&CallStatus=in-progress&To={}",
        alice.sip_uri.replace(':', "%3A").replace('@', "%40")
    );
    let ts = now().to_string();
    let sig = key.sign(&ts, body.as_bytes());
    let url = app.leg_url("v3:rp", 1, &alice);
    let path = url.trim_start_matches(&format!("{PUBLIC_BASE}/api/call-center"));
    for _ in 0..3 {
        assert_eq!(
            send(
                &app,
                Method::POST,
                path,
                &body,
                Some(ts.clone()),
                Some(sig.clone())
            )
            .await,
            200
        );
    }
    let a = app.agent_json(&alice.id).await;
    assert_eq!(a["metrics"]["calls_answered"], 1, "counted once");
    let (_, entries) = app.api(Method::GET, "/audit?call_sid=v3:rp", None).await;
    let answered = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "call_answered")
        .count();
    assert_eq!(answered, 1);
    app.stop().await;
}

async fn markup_in_agent_data_is_escaped_in_texml(app: TestApp) {
    let name = r#"<Say>Evil</Say>"&'"#;
    let sip = "sip:o'neil&co=1@example.sip.telnyx.com";
    let (agent, _) = app
        .server
        .register_agent(name, sip, "available")
        .await
        .unwrap();
    assert_eq!(agent.name, name, "stored as given");
    app.inbound("v3:mk").await;
    app.reserved("v3:mk", 1).await;
    let dial = app
        .post(&app.dial_agents_url("v3:mk", 1), &[("CallSid", "v3:mk")])
        .await;
    assert!(
        dial.body
            .contains("sip:o'neil&amp;co=1@example.sip.telnyx.com"),
        "{}",
        dial.body
    );
    assert!(!dial.body.contains("Evil"), "names never reach documents");
    let doc = texml::Response::parse(&dial.body).unwrap();
    assert_eq!(rung(&doc), [sip]);
    assert_eq!(doc.verbs.len(), 1, "no injected verb");
    app.stop().await;
}

async fn markup_in_sip_uris_that_break_the_grammar_is_refused(app: TestApp) {
    for sip in [
        "sip:a<b>@x.example",
        "sip:a@x.example\"><Hangup/>",
        "sip:a b@x.example",
    ] {
        let (status, problem) = app
            .api(
                Method::POST,
                "/agents/register",
                Some(json!({"name": "X", "sip_uri": sip})),
            )
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (422, Some("sip_uri")),
            "{sip}"
        );
    }
    app.stop().await;
}

on_both_backends!(
    signatures_are_checked,
    a_replayed_get_with_another_query_is_refused,
    a_byte_identical_replay_changes_nothing,
    markup_in_agent_data_is_escaped_in_texml,
    markup_in_sip_uris_that_break_the_grammar_is_refused,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_describes_every_json_route() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc: Value = reqwest::get(format!("{}/api/call-center/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/call-center/agents/register",
        "/api/call-center/agents/heartbeat",
        "/api/call-center/agents/list",
        "/api/call-center/agents/{agent_id}",
        "/api/call-center/calls",
        "/api/call-center/calls/{call_sid}",
        "/api/call-center/calls/{call_sid}/redact",
        "/api/call-center/reports/summary",
        "/api/call-center/audit",
        "/api/call-center/audit/verify",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert!(doc["components"]["securitySchemes"]["admin"].is_object());
    assert!(doc["components"]["schemas"]["AgentView"].is_object());
    app.stop().await;
}

/// Every operation of the JSON API, asked without a token or with a wrong one, answers 401:
/// a handler that forgot its `Admin` argument would answer something else here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_documented_operation_refuses_a_request_without_credentials() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let http = reqwest::Client::new();
    let doc: Value = http
        .get(format!("{}/api/call-center/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut asked = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{agent_id}", "5f0c6c9e-0000-4000-8000-000000000001")
            .replace("{call_sid}", "v3:some-call");
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            for token in [None, Some("not-the-admin-token")] {
                let mut req = http
                    .request(method.clone(), format!("{}{concrete}", app.base))
                    .header("content-type", "application/json")
                    .body("{}");
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let status = req.send().await.unwrap().status().as_u16();
                assert_eq!(status, 401, "{method} {path} with {token:?}");
                asked += 1;
            }
        }
    }
    assert!(
        asked >= 20,
        "only {asked} requests: the document lost operations"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_verification_the_server_says_so() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("TELNYX_VERIFY_SIGNATURES", "false")])
        .await
        .unwrap();
    let ready: Value = reqwest::get(format!("{}/readyz", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["signature_verification"], "OFF");
    assert!(ready["warning"].as_str().unwrap().contains("OFF"));
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("callcenter_webhook_signature_verification_enabled 0"));
    assert_eq!(
        send(
            &app,
            Method::POST,
            "/inbound",
            "CallSid=v3%3Aopen",
            None,
            None
        )
        .await,
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_valid_signature_passes_after_a_thousand_bad_ones_from_the_same_address() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("AUTH_FAILURE_LIMIT", "20")])
        .await
        .unwrap();
    let key = app.server.signer.clone().unwrap();
    let forger = Signer::from_seed([7; 32]);
    let body = "CallSid=v3%3Aflood&From=%2B13125550100&To=%2B13125550199";
    let mut refused = std::collections::BTreeMap::new();
    for _ in 0..1000 {
        let ts = now().to_string();
        let bad = forger.sign(&ts, body.as_bytes());
        let status = send(&app, Method::POST, "/inbound", body, Some(ts), Some(bad)).await;
        *refused.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        refused,
        [(401, 20), (429, 980)].into_iter().collect(),
        "failures past the limit are refused with 429"
    );
    let ts = now().to_string();
    let good = key.sign(&ts, body.as_bytes());
    assert_eq!(
        send(&app, Method::POST, "/inbound", body, Some(ts), Some(good)).await,
        200,
        "Telnyx's own request is never refused by the limiter"
    );
    assert_eq!(app.call("v3:flood").await["status"], "ringing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_made_up_methods_adds_no_metric_series() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let http = reqwest::Client::new();
    let flood = |n: usize| {
        let method = Method::from_bytes(format!("FOO{n}").as_bytes()).unwrap();
        http.request(method, format!("{}/x{n}", app.base)).send()
    };
    flood(0).await.unwrap();
    app.metric_lines("callcenter_http_requests_total{").await; // its own series appears from the next scrape on
    let before = app.metric_lines("callcenter_http_requests_total{").await;
    for n in 1..=200 {
        flood(n).await.unwrap();
    }
    assert_eq!(
        app.metric_lines("callcenter_http_requests_total{").await,
        before
    );
    app.stop().await;
}
