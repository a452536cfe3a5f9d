//! Every row of contract section 2, errors included, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use e2e::{ADMIN, TestApp, on_both_backends, rung};
use reqwest::Method;
use serde_json::{Value, json};

fn assert_agent_shape(a: &Value) {
    for field in [
        "id",
        "name",
        "sip_uri",
        "status",
        "last_heartbeat_at",
        "created_at",
        "updated_at",
        "metrics",
    ] {
        assert!(a.get(field).is_some(), "agent has {field}: {a}");
    }
    for field in [
        "calls_answered",
        "calls_missed",
        "total_talk_seconds",
        "average_call_duration_seconds",
    ] {
        assert!(a["metrics"].get(field).is_some(), "metrics has {field}");
    }
    assert!(
        a["created_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC"
    );
}

async fn register(app: TestApp) {
    let body = json!({"name": "  Alice Smith ", "sip_uri": "sip:alice@example.sip.telnyx.com", "status": "available"});
    let (status, v) = app
        .api(Method::POST, "/agents/register", Some(body.clone()))
        .await;
    assert_eq!(status, 201);
    assert_agent_shape(&v["agent"]);
    assert_eq!(v["agent"]["name"], "Alice Smith");
    assert_eq!(v["agent"]["status"], "available");
    assert!(v["heartbeat_token"].as_str().unwrap().len() > 40);
    // 409: the same SIP URI, however spelt.
    let dup =
        json!({"name": "Other", "sip_uri": "sips:alice@EXAMPLE.sip.telnyx.com;transport=tls"});
    assert_eq!(
        app.api(Method::POST, "/agents/register", Some(dup)).await.0,
        409
    );
    // 422: each invalid field, named.
    for (bad, field) in [
        (json!({"name": "", "sip_uri": "sip:b@x.example"}), "name"),
        (json!({"name": "B", "sip_uri": "b@x.example"}), "sip_uri"),
        (
            json!({"name": "B", "sip_uri": "sip:b@x.example", "status": "napping"}),
            "status",
        ),
        (json!({"sip_uri": "sip:b@x.example"}), "name"),
        (json!({"name": 5, "sip_uri": "sip:b@x.example"}), "name"),
    ] {
        let (status, problem) = app.api(Method::POST, "/agents/register", Some(bad)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    // 401: no token, a wrong token, an agent's token.
    let token = v["heartbeat_token"].as_str().unwrap();
    for t in ["", "wrong-token-wrong-token", token] {
        let (status, _) = app
            .server
            .api_as(t, Method::POST, "/agents/register", Some(&body))
            .await
            .unwrap();
        assert_eq!(status, 401);
    }
    app.stop().await;
}

async fn heartbeat(app: TestApp) {
    let (alice, alice_token) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    let hb = |id: &str, status: Option<&str>| match status {
        Some(s) => json!({"agent_id": id, "status": s}),
        None => json!({"agent_id": id}),
    };
    let (status, v) = app
        .server
        .api_as(
            &alice_token,
            Method::POST,
            "/agents/heartbeat",
            Some(&hb(&alice.id, Some("busy"))),
        )
        .await
        .unwrap();
    assert_eq!((status, v["status"].as_str()), (200, Some("busy")));
    let (status, v) = app
        .api(
            Method::POST,
            "/agents/heartbeat",
            Some(hb(&alice.id, Some("available"))),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("available")),
        "the admin token works too"
    );
    let (status, _) = app
        .server
        .api_as(
            &alice_token,
            Method::POST,
            "/agents/heartbeat",
            Some(&hb(&bob.id, None)),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "another agent's token");
    let unknown = "5f0c6c9e-1b2a-4c3d-8e9f-001122334455";
    assert_eq!(
        app.api(Method::POST, "/agents/heartbeat", Some(hb(unknown, None)))
            .await
            .0,
        404
    );
    assert_eq!(
        app.api(
            Method::POST,
            "/agents/heartbeat",
            Some(hb(&alice.id, Some("asleep")))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        app.api(
            Method::POST,
            "/agents/heartbeat",
            Some(json!({"agent_id": "not-a-uuid"}))
        )
        .await
        .0,
        422
    );
    let (status, _) = app
        .server
        .api_as(
            "",
            Method::POST,
            "/agents/heartbeat",
            Some(&hb(&alice.id, None)),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    app.stop().await;
}

async fn list_get_update_delete(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let (bob, bob_token) = app.agent("Bob").await;
    app.server
        .heartbeat(&bob.id, &bob_token, Some("offline"))
        .await
        .unwrap();
    let (status, v) = app.api(Method::GET, "/agents/list", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["agents"].as_array().unwrap().len(), 2);
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_agent_shape);
    let (_, available) = app
        .api(Method::GET, "/agents/list?status=available", None)
        .await;
    let names: Vec<&str> = available["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice"]);
    let (_, offline) = app
        .api(Method::GET, "/agents/list?status=offline", None)
        .await;
    assert_eq!(offline["agents"][0]["name"], "Bob");
    assert_eq!(
        app.api(Method::GET, "/agents/list?status=sleeping", None)
            .await
            .0,
        422
    );

    let (status, one) = app
        .api(Method::GET, &format!("/agents/{}", alice.id), None)
        .await;
    assert_eq!((status, one["name"].as_str()), (200, Some("Alice")));
    assert_eq!(
        app.api(
            Method::GET,
            "/agents/5f0c6c9e-1b2a-4c3d-8e9f-001122334455",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.api(Method::GET, "/agents/not-a-uuid", None).await.0,
        404
    );

    let path = format!("/agents/{}", alice.id);
    let (status, updated) = app
        .api(
            Method::PUT,
            &path,
            Some(
                json!({"name": "Alice S.", "sip_uri": "sip:alice2@example.com", "status": "busy"}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["sip_uri"].as_str(),
            updated["status"].as_str()
        ),
        (
            Some("Alice S."),
            Some("sip:alice2@example.com"),
            Some("busy")
        )
    );
    assert_eq!(
        app.api(Method::PUT, &path, Some(json!({"sip_uri": bob.sip_uri})))
            .await
            .0,
        409
    );
    assert_eq!(
        app.api(Method::PUT, &path, Some(json!({"sip_uri": "nope"})))
            .await
            .0,
        422
    );
    assert_eq!(
        app.api(Method::PUT, &path, Some(json!({}))).await.0,
        200,
        "nothing to change is no error"
    );
    assert_eq!(
        app.api(Method::PUT, "/agents/list", Some(json!({"name": "X"})))
            .await
            .0,
        405
    );
    assert_eq!(
        app.api(
            Method::PUT,
            "/agents/5f0c6c9e-1b2a-4c3d-8e9f-001122334455",
            Some(json!({"name": "X"}))
        )
        .await
        .0,
        404
    );

    assert_eq!(app.api(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(app.api(Method::DELETE, &path, None).await.0, 404);
    assert_eq!(app.api(Method::GET, &path, None).await.0, 404);
    let (status, _) = app
        .server
        .api_as(ADMIN, Method::GET, "/agents/list", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    app.stop().await;
}

async fn repeated_authentication_failures_are_limited(app: TestApp) {
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.server
                .api_as("guess", Method::GET, "/agents/list", None)
                .await
                .unwrap()
                .0,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    let (status, _) = app
        .server
        .api_as(ADMIN, Method::GET, "/agents/list", None)
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "valid credentials always pass; only failures are counted and refused"
    );
    app.stop().await;
}

/// A pause (contract section 2: `status` `paused` with a reason): the agent stays online,
/// shows `paused` with its reason, is listed as paused, is not rung, and is audited; asking
/// for `available` ends it.
async fn pause_and_resume(app: TestApp) {
    let (alice, alice_token) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    let pause = json!({"agent_id": alice.id, "status": "paused", "reason": "lunch"});
    let (status, v) = app
        .server
        .api_as(
            &alice_token,
            Method::POST,
            "/agents/heartbeat",
            Some(&pause),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["paused_reason"].as_str()),
        (Some("paused"), Some("lunch"))
    );
    let (_, listed) = app
        .api(Method::GET, "/agents/list?status=paused", None)
        .await;
    let ids: Vec<&str> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [alice.id.as_str()]);
    let (_, available) = app
        .api(Method::GET, "/agents/list?status=available", None)
        .await;
    assert_eq!(available["agents"].as_array().unwrap().len(), 1, "only Bob");

    app.inbound("v3:p1").await;
    app.reserved("v3:p1", 1).await;
    let dial = app
        .post(&app.dial_agents_url("v3:p1", 1), &[("CallSid", "v3:p1")])
        .await
        .texml()
        .unwrap();
    assert_eq!(
        rung(&dial),
        [bob.sip_uri.as_str()],
        "a paused agent is not rung"
    );

    for (bad, why) in [
        (
            json!({"agent_id": alice.id, "status": "paused"}),
            "a pause needs a reason",
        ),
        (
            json!({"agent_id": alice.id, "status": "paused", "reason": "nap"}),
            "not a configured reason",
        ),
        (
            json!({"agent_id": alice.id, "status": "paused", "reason": "Lunch"}),
            "not a code",
        ),
        (
            json!({"agent_id": alice.id, "status": "busy", "reason": "lunch"}),
            "only a pause takes a reason",
        ),
        (
            json!({"agent_id": alice.id, "reason": "lunch"}),
            "a reason without a status",
        ),
    ] {
        let (status, problem) = app.api(Method::POST, "/agents/heartbeat", Some(bad)).await;
        assert_eq!(status, 422, "{why}: {problem}");
        assert!(
            problem.to_string().contains("reason"),
            "{why}: names the field: {problem}"
        );
    }
    assert_eq!(
        app.agent_json(&alice.id).await["paused_reason"],
        "lunch",
        "a refused request changes nothing"
    );

    let (status, v) = app
        .api(
            Method::PUT,
            &format!("/agents/{}", alice.id),
            Some(json!({"status": "available"})),
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("available")));
    assert_eq!(v["paused_reason"], Value::Null);
    let (_, entries) = app
        .api(Method::GET, &format!("/audit?agent_id={}", alice.id), None)
        .await;
    let changes: Vec<&Value> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "agent_status_changed" || e["action"] == "agent_updated")
        .collect();
    assert_eq!(changes.len(), 2, "the pause and its end: {entries}");
    let pause: Value = serde_json::from_str(changes[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        pause,
        json!({"from": "available", "to": "paused", "to_reason": "lunch"})
    );
    assert_eq!(changes[1]["data"], r#"{"fields":["status=available"]}"#);
    app.stop().await;
}

on_both_backends!(
    register,
    heartbeat,
    list_get_update_delete,
    pause_and_resume
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failure_limit() {
    let app = TestApp::spawn_with(e2e::Backend::Sqlite, &[("AUTH_FAILURE_LIMIT", "4")])
        .await
        .unwrap();
    repeated_authentication_failures_are_limited(app).await;
}

/// After-call work (`CALL_CENTER_WRAP_UP_SECONDS`): the agent who talked is busy with a
/// `wrap_up_until`, is not rung, and ends it with `POST /agents/{id}/ready` (its own token).
async fn wrap_up_and_ready(app: TestApp) {
    let (alice, alice_token) = app.agent("Alice").await;
    let (bob, bob_token) = app.agent("Bob").await;
    app.inbound("v3:w1").await;
    app.reserved("v3:w1", 1).await;
    app.post(&app.dial_agents_url("v3:w1", 1), &[("CallSid", "v3:w1")])
        .await;
    app.leg("v3:w1", 1, &alice, "leg-a", "in-progress", 1).await;
    app.leg("v3:w1", 1, &bob, "leg-b", "canceled", 1).await;
    app.leg("v3:w1", 1, &alice, "leg-a", "completed", 2).await;
    let v = app.agent_json(&alice.id).await;
    assert_eq!(v["status"], "busy", "{v}");
    assert!(v["wrap_up_until"].is_string(), "{v}");
    assert_eq!(app.agent_json(&bob.id).await["wrap_up_until"], Value::Null);

    app.inbound("v3:w2").await;
    app.reserved("v3:w2", 1).await;
    let dial = app
        .post(&app.dial_agents_url("v3:w2", 1), &[("CallSid", "v3:w2")])
        .await
        .texml()
        .unwrap();
    assert_eq!(
        rung(&dial),
        [bob.sip_uri.as_str()],
        "not rung while wrapping up"
    );

    let ready = |token: &str, id: &str| {
        let path = format!("/agents/{id}/ready");
        let token = token.to_owned();
        let server = app.server.clone();
        async move {
            server
                .api_as(&token, Method::POST, &path, None)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        ready(&bob_token, &alice.id).await.0,
        403,
        "another agent's token"
    );
    let (status, v) = ready(&alice_token, &alice.id).await;
    assert_eq!(
        (status, &v["status"], &v["wrap_up_until"]),
        (200, &json!("available"), &Value::Null)
    );
    let (status, v) = ready(&alice_token, &alice.id).await;
    assert_eq!(
        (status, &v["status"]),
        (200, &json!("available")),
        "nothing to end"
    );
    let (_, entries) = app
        .api(Method::GET, &format!("/audit?agent_id={}", alice.id), None)
        .await;
    let ended = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "wrap_up_ended")
        .count();
    assert_eq!(ended, 1, "{entries}");
    app.stop().await;
}

mod wrap_up {
    const WRAP_UP: &[(&str, &str)] = &[("CALL_CENTER_WRAP_UP_SECONDS", "600")];

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        let app = e2e::TestApp::spawn_with(e2e::Backend::Sqlite, WRAP_UP)
            .await
            .unwrap();
        super::wrap_up_and_ready(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
    async fn postgres() {
        let app = e2e::TestApp::spawn_with(e2e::Backend::Postgres, WRAP_UP)
            .await
            .expect("TEST_DATABASE_URL is set");
        super::wrap_up_and_ready(app).await;
    }
}
