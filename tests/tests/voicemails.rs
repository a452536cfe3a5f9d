//! The voicemail inbox end to end (a supervisor assigns, the agent marks done, audited),
//! on SQLite and PostgreSQL, with the plain-SQL view beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use e2e::{TestApp, on_both_backends};
use reqwest::Method;
use serde_json::{Value, json};

async fn as_agent(app: &TestApp, token: &str, method: Method, path: &str) -> (u16, Value) {
    app.server.api_as(token, method, path, None).await.unwrap()
}

async fn inbox(app: TestApp) {
    let (alice, alice_token) = app.agent("Alice").await;
    let (bob, bob_token) = app.agent("Bob").await;
    app.leave_voicemail("v3:vm1").await;
    app.inbound("v3:talk").await; // never reaches voicemail: no item

    let (status, v) = app.api(Method::GET, "/voicemails", None).await;
    assert_eq!(status, 200, "{v}");
    let items = v["voicemails"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    let item = &items[0];
    assert_eq!(
        (
            &item["call_sid"],
            &item["from"],
            &item["state"],
            &item["duration_seconds"]
        ),
        (
            &json!("v3:vm1"),
            &json!("+13125550100"),
            &json!("new"),
            &json!(14)
        )
    );
    assert_eq!(item["transcription"], "Please call me back.");
    assert_eq!(item["recording_url"], "https://api.telnyx.com/vm.mp3");
    assert_eq!(item["assigned_to"], Value::Null);

    let assign = |agent: &str| json!({ "agent_id": agent });
    let (status, v) = app
        .api(
            Method::POST,
            "/voicemails/v3:vm1/assign",
            Some(assign(&alice.id)),
        )
        .await;
    assert_eq!(
        (status, &v["state"], &v["assigned_to"]),
        (200, &json!("assigned"), &json!(alice.id))
    );

    let (status, mine) = as_agent(&app, &alice_token, Method::GET, "/voicemails").await;
    assert_eq!(
        (status, mine["voicemails"].as_array().unwrap().len()),
        (200, 1)
    );
    let (status, theirs) = as_agent(&app, &bob_token, Method::GET, "/voicemails").await;
    assert_eq!(
        (status, theirs["voicemails"].as_array().unwrap().len()),
        (200, 0),
        "Bob sees only his own"
    );
    let (status, _) = as_agent(
        &app,
        &bob_token,
        Method::GET,
        &format!("/voicemails?assigned_to={}", alice.id),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = as_agent(&app, &bob_token, Method::GET, "/voicemails/v3:vm1").await;
    assert_eq!(status, 403);
    let (status, _) = as_agent(&app, &bob_token, Method::POST, "/voicemails/v3:vm1/done").await;
    assert_eq!(
        status, 403,
        "only its owner (or a supervisor) marks it done"
    );
    let (status, _) = app
        .server
        .api_as(
            &bob_token,
            Method::POST,
            "/voicemails/v3:vm1/assign",
            Some(&assign(&bob.id)),
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "assigning is a supervisor's");

    for (body, why) in [
        (
            assign("5f0c6c9e-1b2a-4c3d-8e9f-001122334455"),
            "unknown agent",
        ),
        (assign("not-a-uuid"), "not an id"),
    ] {
        let (status, problem) = app
            .api(Method::POST, "/voicemails/v3:vm1/assign", Some(body))
            .await;
        assert_eq!(status, 422, "{why}: {problem}");
    }
    let (status, _) = app
        .api(
            Method::POST,
            "/voicemails/v3:talk/assign",
            Some(assign(&bob.id)),
        )
        .await;
    assert_eq!(status, 404, "a call that never reached voicemail");
    let (status, _) = app.api(Method::GET, "/voicemails?state=lost", None).await;
    assert!(status == 400 || status == 422, "unknown state: {status}");
    let (status, _) = app.api(Method::GET, "/voicemails?limit=0", None).await;
    assert_eq!(status, 422);
    let (status, _) = app
        .server
        .api_as("", Method::GET, "/voicemails", None)
        .await
        .unwrap();
    assert_eq!(status, 401);

    let (status, v) = as_agent(&app, &alice_token, Method::POST, "/voicemails/v3:vm1/done").await;
    assert_eq!((status, &v["state"]), (200, &json!("done")), "{v}");
    assert_eq!(v["done_by"], format!("agent:{}", alice.id));
    let (status, again) =
        as_agent(&app, &alice_token, Method::POST, "/voicemails/v3:vm1/done").await;
    assert_eq!(
        (status, &again["done_at"]),
        (200, &v["done_at"]),
        "done twice is done once"
    );
    let (status, _) = app
        .api(
            Method::POST,
            "/voicemails/v3:vm1/assign",
            Some(assign(&bob.id)),
        )
        .await;
    assert_eq!(status, 409, "a done voicemail is not assigned again");
    let (_, done) = app.api(Method::GET, "/voicemails?state=done", None).await;
    assert_eq!(done["voicemails"].as_array().unwrap().len(), 1);
    let (_, new) = app.api(Method::GET, "/voicemails?state=new", None).await;
    assert_eq!(new["voicemails"].as_array().unwrap().len(), 0);

    let (_, entries) = app.api(Method::GET, "/audit?call_sid=v3:vm1", None).await;
    let actions: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| matches!(*a, "voicemail_assigned" | "voicemail_done"))
        .collect();
    assert_eq!(
        actions,
        ["voicemail_assigned", "voicemail_done"],
        "{entries}"
    );

    let sql = "SELECT state FROM report_voicemails WHERE call_sid = 'v3:vm1'";
    let state: String = match (app.store.as_postgres(), app.store.as_sqlite()) {
        (Some(pg), _) => sqlx::query_scalar(sql).fetch_one(pg.pool()).await.unwrap(),
        (_, Some(lite)) => sqlx::query_scalar(sql)
            .fetch_one(lite.pool())
            .await
            .unwrap(),
        _ => unreachable!("one backend"),
    };
    assert_eq!(state, "done", "the plain-SQL view agrees");
    app.stop().await;
}

on_both_backends!(inbox);
