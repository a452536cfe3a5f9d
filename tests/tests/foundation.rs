//! The server skeleton: health, readiness, metrics, request ids, problem+json errors, body
//! limits, the SQLite file created on first run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use e2e::{Backend, TestApp, on_both_backends};
use reqwest::Method;

async fn health_readiness_and_metrics(app: TestApp) {
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let id = health
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID request id");
    let ready = http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["signature_verification"], "on");
    let metrics = http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"callcenter_http_requests_total{method="GET",route="/readyz",status="2xx"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "callcenter_http_request_duration_seconds_bucket{route=\"/healthz\",status=\"2xx\""
    ));
    assert!(metrics.contains("callcenter_webhook_signature_verification_enabled 1"));
    app.stop().await;
}

async fn errors_are_problem_json(app: TestApp) {
    let http = reqwest::Client::new();
    let check = |res: reqwest::Response, status: u16| async move {
        assert_eq!(res.status().as_u16(), status);
        let header_id = res
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert!(
            body["type"].is_string() && body["title"].is_string() && body["detail"].is_string()
        );
        assert_eq!(
            body["request_id"],
            header_id.as_str(),
            "the request id is in the body too"
        );
        body
    };
    let unknown = http
        .get(format!("{}/no/such/route", app.base))
        .send()
        .await
        .unwrap();
    check(unknown, 404).await;
    let malformed = http
        .post(format!("{}/api/call-center/agents/register", app.base))
        .bearer_auth(e2e::ADMIN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let body = check(malformed, 400).await;
    assert!(!body["detail"].as_str().unwrap().contains("sqlx"));
    let oversize = http
        .post(format!("{}/api/call-center/agents/register", app.base))
        .bearer_auth(e2e::ADMIN)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    check(oversize, 413).await;
    let wrong_method = http
        .delete(format!("{}/api/call-center/agents/list", app.base))
        .bearer_auth(e2e::ADMIN)
        .send()
        .await
        .unwrap();
    assert!(wrong_method.status().is_client_error());
    assert_eq!(
        wrong_method.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let (status, _) = app.api(Method::GET, "/agents/list", None).await;
    assert_eq!(status, 200, "the server still answers after all that");
    app.stop().await;
}

async fn a_callers_request_id_is_kept(app: TestApp) {
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "lb-7f3a-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "lb-7f3a-0001");
    let hostile = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(hostile.headers().get("x-request-id").unwrap(), "<script>");
    app.stop().await;
}

on_both_backends!(
    health_readiness_and_metrics,
    errors_are_problem_json,
    a_callers_request_id_is_kept
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_file_and_its_folder_are_created_on_first_run() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let path = app.db.url.trim_start_matches("sqlite://").to_owned();
    assert!(std::path::Path::new(&path).exists(), "{path}");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(app.store.as_sqlite().unwrap().pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(app.store.as_sqlite().unwrap().pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    app.stop().await;
}
