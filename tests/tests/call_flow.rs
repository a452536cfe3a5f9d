//! The call flow end to end, over HTTP with signed webhooks, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;

use e2e::{Backend, PUBLIC_BASE, TestApp, on_both_backends, redirect, rung};
use reqwest::Method;
use serde_json::{Value, json};
use telnyx_sim::AgentJson;

fn sip(a: &AgentJson) -> &str {
    &a.sip_uri
}

async fn answered_in_round_one(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    let greeting = app.inbound("v3:c1").await;
    assert_eq!(greeting.status, 200);
    assert!(greeting.content_type.starts_with("application/xml"));
    // Two agents free, nobody waiting: the greeting goes straight on to the offer.
    assert!(
        greeting.body.contains(&format!(
            "action=\"{PUBLIC_BASE}/api/call-center/retry-dial?call=v3%3Ac1&amp;round=1&amp;mac="
        )),
        "{}",
        greeting.body
    );
    let dial = greeting.texml().unwrap();
    assert!(redirect(&dial).is_none(), "no hold-loop request between");
    let mut ringing = rung(&dial);
    ringing.sort();
    assert_eq!(ringing, [sip(&alice), sip(&bob)]);
    app.leg("v3:c1", 1, &alice, "leg-a", "initiated", 1).await;
    app.leg("v3:c1", 1, &bob, "leg-b", "ringing", 1).await;
    app.leg("v3:c1", 1, &alice, "leg-a", "in-progress", 2).await;
    assert_eq!(app.agent_json(&alice.id).await["status"], "busy");
    app.leg("v3:c1", 1, &bob, "leg-b", "canceled", 2).await;
    app.leg("v3:c1", 1, &alice, "leg-a", "completed", 3).await;
    let after = app
        .post(
            &app.retry_dial_url("v3:c1", 1),
            &[
                ("CallSid", "v3:c1"),
                ("DialCallStatus", "completed"),
                ("DialCallSid", "leg-a"),
            ],
        )
        .await;
    assert!(after.body.contains("<Hangup/>"));
    app.post(
        "/events",
        &[
            ("CallSid", "v3:c1"),
            ("RecordingSid", "rec-1"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "https://api.telnyx.com/rec-1.mp3"),
        ],
    )
    .await;
    app.call_status("v3:c1", "completed").await;
    let call = app.call("v3:c1").await;
    assert_eq!(call["status"], "completed");
    assert_eq!(call["outcome"], "answered");
    assert_eq!(call["answered_by"], alice.id.as_str());
    assert_eq!(call["talk_seconds"], 42);
    assert_eq!(call["attempts"], 1);
    assert_eq!(call["recording_url"], "https://api.telnyx.com/rec-1.mp3");
    assert_eq!(call["from"], "+13125550100");
    let a = app.agent_json(&alice.id).await;
    assert_eq!(
        (
            a["status"].as_str(),
            a["metrics"]["calls_answered"].as_i64(),
            a["metrics"]["total_talk_seconds"].as_i64()
        ),
        (Some("available"), Some(1), Some(42))
    );
    assert_eq!(app.agent_json(&bob.id).await["metrics"]["calls_missed"], 0);
    app.stop().await;
}

async fn answered_in_round_two(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    app.inbound("v3:c2").await;
    app.reserved("v3:c2", 1).await;
    app.post(&app.dial_agents_url("v3:c2", 1), &[("CallSid", "v3:c2")])
        .await;
    app.leg("v3:c2", 1, &alice, "leg-1", "no-answer", 2).await;
    let retry = app
        .post(
            &app.retry_dial_url("v3:c2", 1),
            &[("CallSid", "v3:c2"), ("DialCallStatus", "no-answer")],
        )
        .await
        .texml()
        .unwrap();
    // No no-answer delay: the <Dial action>'s answer is round two's <Dial> at once, Alice
    // rung again (nobody waits ahead, and she is free the moment round one ends).
    assert!(redirect(&retry).is_none(), "no hold-loop request between");
    let dial = retry;
    assert_eq!(rung(&dial), [sip(&alice)]);
    app.leg("v3:c2", 2, &alice, "leg-2", "in-progress", 2).await;
    app.leg("v3:c2", 2, &alice, "leg-2", "completed", 3).await;
    app.post(
        &app.retry_dial_url("v3:c2", 2),
        &[
            ("CallSid", "v3:c2"),
            ("DialCallStatus", "completed"),
            ("DialCallSid", "leg-2"),
        ],
    )
    .await;
    app.call_status("v3:c2", "completed").await;
    let call = app.call("v3:c2").await;
    assert_eq!(
        (call["outcome"].as_str(), call["attempts"].as_i64()),
        (Some("answered"), Some(2))
    );
    let m = &app.agent_json(&alice.id).await["metrics"];
    assert_eq!(
        (m["calls_answered"].as_i64(), m["calls_missed"].as_i64()),
        (Some(1), Some(1))
    );
    app.stop().await;
}

async fn no_agent_goes_to_voicemail_with_transcription(app: TestApp) {
    app.inbound("v3:c3").await;
    let hold = app
        .post(&app.dial_agents_url("v3:c3", 1), &[("CallSid", "v3:c3")])
        .await;
    assert!(
        !hold.body.contains("<Dial") && hold.body.contains("hold-music.wav</Play>"),
        "no empty <Dial>, the hold loop: {}",
        hold.body
    );
    assert_eq!(
        redirect(&hold.texml().unwrap()).unwrap(),
        app.dial_agents_url("v3:c3", 1)
    );
    // CALL_CENTER_MAX_WAIT_SECONDS=1 here.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = app
        .post(&app.dial_agents_url("v3:c3", 1), &[("CallSid", "v3:c3")])
        .await;
    // The longest wait reached: the prompt and <Record> in this answer (no <Redirect>).
    assert!(
        after.body.contains("transcription=\"true\"") && after.body.contains("<Record "),
        "{}",
        after.body
    );
    assert_eq!(app.call("v3:c3").await["status"], "voicemail");
    let record = app
        .post(&app.voicemail_url("v3:c3"), &[("CallSid", "v3:c3")])
        .await;
    assert_eq!(record.body, after.body, "/voicemail answers the same");
    app.post(
        &app.voicemail_callback_url("v3:c3", "transcription"),
        &[
            ("CallSid", "v3:c3"),
            ("TranscriptionSid", "tr-1"),
            ("TranscriptionStatus", "completed"),
            ("TranscriptionText", "Please call me back."),
        ],
    )
    .await;
    app.post(
        &app.voicemail_callback_url("v3:c3", "recording"),
        &[
            ("CallSid", "v3:c3"),
            ("RecordingSid", "rec-vm"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "https://api.telnyx.com/vm.mp3"),
            ("RecordingDuration", "14"),
        ],
    )
    .await;
    let thanks = app
        .post(
            &app.voicemail_callback_url("v3:c3", "action"),
            &[
                ("CallSid", "v3:c3"),
                ("RecordingUrl", "https://api.telnyx.com/vm.mp3"),
                ("RecordingSid", "rec-vm"),
            ],
        )
        .await;
    assert!(thanks.body.contains("<Hangup/>"));
    app.call_status("v3:c3", "completed").await;
    let call = app.call("v3:c3").await;
    assert_eq!(call["outcome"], "voicemail");
    let mut voicemail = call["voicemail"].clone();
    assert!(voicemail["started_at"].is_string(), "{voicemail}");
    voicemail.as_object_mut().unwrap().remove("started_at");
    assert_eq!(
        voicemail,
        json!({"recording_url": "https://api.telnyx.com/vm.mp3", "duration_seconds": 14, "transcription": "Please call me back."})
    );
    app.stop().await;
}

async fn voicemail_disabled_says_goodbye(app: TestApp) {
    app.inbound("v3:c4").await;
    app.post(&app.dial_agents_url("v3:c4", 1), &[("CallSid", "v3:c4")])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let bye = app
        .post(&app.dial_agents_url("v3:c4", 1), &[("CallSid", "v3:c4")])
        .await;
    assert!(
        bye.body.contains("<Say>") && bye.body.ends_with("<Hangup/></Response>"),
        "{}",
        bye.body
    );
    app.call_status("v3:c4", "completed").await;
    assert_eq!(app.call("v3:c4").await["outcome"], "unanswered");
    app.stop().await;
}

async fn caller_hangs_up_while_agents_ring(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    app.inbound("v3:c5").await;
    app.reserved("v3:c5", 1).await;
    app.post(&app.dial_agents_url("v3:c5", 1), &[("CallSid", "v3:c5")])
        .await;
    app.leg("v3:c5", 1, &alice, "leg-a", "ringing", 1).await;
    app.leg("v3:c5", 1, &alice, "leg-a", "canceled", 2).await;
    app.call_status("v3:c5", "completed").await;
    app.leg("v3:c5", 1, &bob, "leg-b", "canceled", 2).await;
    assert_eq!(app.call("v3:c5").await["outcome"], "abandoned");
    for a in [&alice, &bob] {
        let v = app.agent_json(&a.id).await;
        assert_eq!(
            (v["status"].as_str(), v["metrics"]["calls_missed"].as_i64()),
            (Some("available"), Some(0))
        );
    }
    app.stop().await;
}

async fn two_agents_answering_at_once(app: TestApp) {
    let app = Arc::new(app);
    let (alice, _) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    for round in 0..5 {
        let sid = format!("v3:race-{round}");
        app.inbound(&sid).await;
        app.reserved(&sid, 1).await;
        app.post(
            &app.dial_agents_url(sid.as_str(), 1),
            &[("CallSid", sid.as_str())],
        )
        .await;
        let answers = [(&alice, "a"), (&bob, "b")].map(|(agent, tag)| {
            let (app, sid, agent) = (Arc::clone(&app), sid.clone(), agent.clone());
            let leg = format!("leg-{tag}-{round}");
            tokio::spawn(async move {
                app.leg(&sid, 1, &agent, &leg, "in-progress", 2)
                    .await
                    .status
            })
        });
        for a in answers {
            assert_eq!(a.await.unwrap(), 200);
        }
        let call = app.call(&sid).await;
        let winner = call["answered_by"].as_str().unwrap().to_owned();
        let (_, entries) = app
            .api(Method::GET, &format!("/audit?call_sid={sid}"), None)
            .await;
        let actions: Vec<&str> = entries["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions.iter().filter(|a| **a == "call_answered").count(),
            1,
            "{actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| **a == "late_answer").count(),
            1,
            "{actions:?}"
        );
        let (winner_leg, loser) = if winner == alice.id {
            (format!("leg-a-{round}"), &bob)
        } else {
            (format!("leg-b-{round}"), &alice)
        };
        let winner_agent = if winner == alice.id { &alice } else { &bob };
        app.leg(&sid, 1, winner_agent, &winner_leg, "completed", 3)
            .await;
        app.call_status(&sid, "completed").await;
        assert_eq!(app.agent_json(&loser.id).await["status"], "available");
    }
    let total = app.agent_json(&alice.id).await["metrics"]["calls_answered"]
        .as_i64()
        .unwrap()
        + app.agent_json(&bob.id).await["metrics"]["calls_answered"]
            .as_i64()
            .unwrap();
    assert_eq!(total, 5, "one answer counted per call");
    Arc::into_inner(app).unwrap().stop().await;
}

async fn expired_heartbeat_is_not_rung_in_round_two(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    app.inbound("v3:c6").await;
    app.reserved("v3:c6", 1).await;
    let round1 = app
        .post(&app.dial_agents_url("v3:c6", 1), &[("CallSid", "v3:c6")])
        .await
        .texml()
        .unwrap();
    assert_eq!(rung(&round1).len(), 2);
    // Alice's last heartbeat is now two minutes old (TTL 60 s): time passes for her only.
    let sql = "UPDATE agents SET last_heartbeat_at = $1 WHERE id = $2";
    let old = chrono::Utc::now() - chrono::Duration::minutes(2);
    match app.store.as_postgres() {
        Some(pg) => {
            sqlx::query(sql)
                .bind(old)
                .bind(alice.id.parse::<uuid::Uuid>().unwrap())
                .execute(pg.pool())
                .await
                .unwrap();
        }
        None => {
            let text = old.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            sqlx::query("UPDATE agents SET last_heartbeat_at = ?1 WHERE id = ?2")
                .bind(text)
                .bind(&alice.id)
                .execute(app.store.as_sqlite().unwrap().pool())
                .await
                .unwrap();
        }
    }
    app.post(
        &app.retry_dial_url("v3:c6", 1),
        &[("CallSid", "v3:c6"), ("DialCallStatus", "no-answer")],
    )
    .await;
    app.reserved("v3:c6", 2).await;
    let round2 = app
        .post(&app.dial_agents_url("v3:c6", 2), &[("CallSid", "v3:c6")])
        .await
        .texml()
        .unwrap();
    assert_eq!(rung(&round2), [sip(&bob)]);
    assert_eq!(app.agent_json(&alice.id).await["status"], "offline");
    app.stop().await;
}

async fn unknown_call_sid_is_created_on_the_spot(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let hold = app
        .post(
            &app.dial_agents_url("v3:already-in-progress", 1),
            &[("CallSid", "v3:already-in-progress")],
        )
        .await;
    assert!(
        hold.body.contains("<Play"),
        "joins the queue: {}",
        hold.body
    );
    app.reserved("v3:already-in-progress", 1).await;
    let dial = app
        .post(
            &app.dial_agents_url("v3:already-in-progress", 1),
            &[("CallSid", "v3:already-in-progress")],
        )
        .await
        .texml()
        .unwrap();
    assert_eq!(rung(&dial), [sip(&alice)]);
    assert_eq!(
        app.call("v3:already-in-progress").await["status"],
        "dialing"
    );
    app.stop().await;
}

/// A retried `/inbound` reaching a server that has not written the call (restarted here;
/// behind a load balancer, another instance) is decided from no call, without a read; its
/// insert conflicts, the call is read, and the retry is answered without a second offer or
/// any write.
async fn an_inbound_retried_after_a_restart_changes_nothing(mut app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let first = app.inbound("v3:retried").await.texml().unwrap();
    assert_eq!(rung(&first), [sip(&alice)]);
    let before = app.call("v3:retried").await;
    app.restart(async {}, &[]).await;
    let again = app.inbound("v3:retried").await;
    assert_eq!(again.status, 200);
    assert!(again.texml().is_ok(), "{}", again.body);
    let after = app.call("v3:retried").await;
    assert_eq!(after, before, "the retry wrote nothing");
    assert_eq!(after["attempts"], 1);
    app.stop().await;
}

async fn broken_store_answers_the_fallback_document(app: TestApp) {
    app.inbound("v3:c7").await;
    // Break the store underneath the server: the calls table disappears.
    match app.store.as_postgres() {
        Some(pg) => sqlx::query("ALTER TABLE calls RENAME TO calls_gone")
            .execute(pg.pool())
            .await
            .map(|_| ()),
        None => sqlx::query("ALTER TABLE calls RENAME TO calls_gone")
            .execute(app.store.as_sqlite().unwrap().pool())
            .await
            .map(|_| ()),
    }
    .unwrap();
    for path in [
        "/inbound",
        "/dial-agents?attempt=1",
        "/retry-dial?attempt=1",
        "/voicemail",
    ] {
        let res = app.post(path, &[("CallSid", "v3:c7")]).await;
        assert_eq!(res.status, 200, "{path}");
        assert!(
            res.body.contains("technical difficulties") && res.body.contains("<Record "),
            "{path}: {}",
            res.body
        );
    }
    let leg_url = e2e::test_urls()
        .outbound_event("v3:c7", 1, agents::AgentId::new())
        .as_str()
        .to_owned();
    let cb = app
        .post(
            &leg_url,
            &[
                ("CallSid", "leg"),
                ("ParentCallSid", "v3:c7"),
                ("CallStatus", "ringing"),
            ],
        )
        .await;
    assert_eq!(
        (cb.status, cb.body.contains("<Response/>")),
        (200, true),
        "callbacks are acknowledged"
    );
    app.stop().await;
}

on_both_backends!(
    answered_in_round_one,
    caller_hangs_up_while_agents_ring,
    two_agents_answering_at_once,
    unknown_call_sid_is_created_on_the_spot,
    an_inbound_retried_after_a_restart_changes_nothing,
    broken_store_answers_the_fallback_document,
);

/// The agents are offered again at once after a miss (no no-answer delay), and a caller
/// waits one second at most: the older round-by-round stories, fast.
const QUICK: &[(&str, &str)] = &[
    ("CALL_CENTER_NO_ANSWER_DELAY_SECONDS", "0"),
    ("CALL_CENTER_MAX_WAIT_SECONDS", "1"),
];

on_both_backends!(with QUICK;
    answered_in_round_two,
    no_agent_goes_to_voicemail_with_transcription,
    expired_heartbeat_is_not_rung_in_round_two,
);

mod voicemail_disabled {
    use super::*;

    const OFF: &[(&str, &str)] = &[
        ("CALL_CENTER_VOICEMAIL_ENABLED", "false"),
        ("CALL_CENTER_MAX_DIAL_ATTEMPTS", "1"),
        ("CALL_CENTER_MAX_WAIT_SECONDS", "1"),
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        voicemail_disabled_says_goodbye(TestApp::spawn_with(Backend::Sqlite, OFF).await.unwrap())
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_with(Backend::Postgres, OFF).await {
            voicemail_disabled_says_goodbye(app).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn postgres_stopped_answers_the_fallback_and_recovers() {
    let Some((app, proxy)) = TestApp::spawn_behind_proxy(&[]).await else {
        return;
    };
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.inbound("v3:pg").await;
    proxy.cut();
    let res = app
        .post(&app.dial_agents_url("v3:pg", 1), &[("CallSid", "v3:pg")])
        .await;
    assert_eq!(res.status, 200);
    assert!(res.body.contains("technical difficulties"), "{}", res.body);
    assert_eq!(
        http.get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    proxy.restore();
    let mut ready = false;
    for _ in 0..50 {
        if http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again without a restart");
    // Connections the cut broke are not tested before use (a round trip saved on every
    // query): each fails once and is dropped, so the first requests may still get the
    // fallback; the flow continues once they are gone.
    let mut dial = app
        .post(&app.dial_agents_url("v3:pg", 1), &[("CallSid", "v3:pg")])
        .await;
    for _ in 0..20 {
        if !dial.body.contains("technical difficulties") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        dial = app
            .post(&app.dial_agents_url("v3:pg", 1), &[("CallSid", "v3:pg")])
            .await;
    }
    assert!(
        dial.body.contains("hold-music.wav</Play>"),
        "the flow continues (the hold loop: nobody to offer it to): {}",
        dial.body
    );
    app.stop().await;
}

/// Asks for the call until `done` holds (the spool replays every 2 s), at most 15 s.
async fn eventually(app: &TestApp, sid: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..150 {
        let call = app.call(sid).await;
        if done(&call) {
            return call;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.call(sid).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn a_stalled_database_gets_the_fallback_at_the_deadline_and_callbacks_wait_in_the_spool() {
    let deadline = [("WEBHOOK_DEADLINE_MS", "300")];
    let Some((app, proxy)) = TestApp::spawn_behind_proxy(&deadline).await else {
        return;
    };
    app.inbound("v3:stall").await;
    proxy.stall();
    let dial = app
        .post(
            &app.dial_agents_url("v3:stall", 1),
            &[("CallSid", "v3:stall")],
        )
        .await;
    assert_eq!(dial.status, 200);
    assert!(
        dial.body.contains("technical difficulties"),
        "{}",
        dial.body
    );
    let ended = app
        .post(
            "/events",
            &[
                ("CallSid", "v3:stall"),
                ("CallStatus", "completed"),
                ("SequenceNumber", "4"),
            ],
        )
        .await;
    assert_eq!(ended.status, 200, "acknowledged: kept in the spool");
    assert_eq!(app.metric("callcenter_spool_pending").await, 1.0);
    assert_eq!(app.metric("callcenter_webhook_fallbacks_total").await, 1.0);
    proxy.resume();
    let call = eventually(&app, "v3:stall", |c| c["status"] == "completed").await;
    assert_eq!(
        call["status"], "completed",
        "replayed once the database answers"
    );
    // The spool forgets the callback once a replay's answer comes back; a replay that gave up
    // waiting while the stalled change ahead of it finished is followed by one that finds the
    // callback already applied.
    let mut pending = app.metric("callcenter_spool_pending").await;
    for _ in 0..150 {
        if pending == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        pending = app.metric("callcenter_spool_pending").await;
    }
    assert_eq!(pending, 0.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn a_spooled_callback_is_applied_after_a_restart() {
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path().display().to_string();
    let settings = [
        ("CALL_CENTER_SPOOL_DIR", dir.as_str()),
        ("WEBHOOK_DEADLINE_MS", "500"),
    ];
    let Some((mut app, proxy)) = TestApp::spawn_behind_proxy(&settings).await else {
        return;
    };
    app.inbound("v3:spooled").await;
    let received = chrono::Utc::now();
    proxy.cut();
    let ended = app
        .post(
            "/events",
            &[
                ("CallSid", "v3:spooled"),
                ("CallStatus", "completed"),
                ("SequenceNumber", "4"),
            ],
        )
        .await;
    assert_eq!(ended.status, 200, "acknowledged: kept in the spool");
    // The server goes away with the callback only on disk; the database comes back; a new
    // server on the same spool folder applies it.
    let meanwhile = async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        proxy.restore();
    };
    app.restart(meanwhile, &settings).await;
    let call = eventually(&app, "v3:spooled", |c| c["status"] == "completed").await;
    assert_eq!(call["outcome"], "abandoned");
    let ended_at: chrono::DateTime<chrono::Utc> =
        call["ended_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (ended_at - received).num_seconds().abs() <= 1,
        "decided as of its receipt ({received}), not of the replay ({ended_at})"
    );
    app.stop().await;
}

/// The final facts of a call and the agents' counters, by agent name.
async fn facts(app: &TestApp, sid: &str) -> (Value, BTreeMap<String, Value>) {
    let mut call = app.call(sid).await;
    let agents = app.server.agents().await.unwrap();
    let name_of = |id: &str| agents.iter().find(|a| a.id == id).map(|a| a.name.clone());
    let answered_by = call["answered_by"].as_str().and_then(name_of);
    for t in ["started_at", "answered_at", "ended_at", "enqueued_at"] {
        call[t] = Value::Null;
    }
    call["answered_by"] = json!(answered_by);
    // Offers: who ended how, by agent name (their ids and times differ between runs).
    let mut offers: Vec<Value> = call["offers"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|o| {
            json!([
                o["agent_id"].as_str().and_then(name_of),
                o["attempt"],
                o["state"]
            ])
        })
        .collect();
    offers.sort_by_key(Value::to_string);
    call["offers"] = json!(offers);
    let metrics = agents
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                json!([
                    a.status,
                    a.metrics.calls_answered,
                    a.metrics.calls_missed,
                    a.metrics.total_talk_seconds
                ]),
            )
        })
        .collect();
    (call, metrics)
}

async fn run_script(app: &TestApp, shuffle: Option<u64>) -> (Value, BTreeMap<String, Value>) {
    let (ann, _) = app.agent("Ann").await;
    let (ben, _) = app.agent("Ben").await;
    let sid = "v3:shuffle";
    app.inbound(sid).await;
    app.reserved(sid, 1).await;
    app.post(&app.dial_agents_url(sid, 1), &[("CallSid", sid)])
        .await;
    let callbacks: Vec<(String, Vec<(&'static str, String)>)> = vec![
        (
            app.leg_url(sid, 1, &ann),
            vec![
                ("CallSid", "la".into()),
                ("ParentCallSid", sid.into()),
                ("CallStatus", "ringing".into()),
                ("To", ann.sip_uri.replace("sip:", "")),
                ("SequenceNumber", "1".into()),
            ],
        ),
        (
            app.leg_url(sid, 1, &ben),
            vec![
                ("CallSid", "lb".into()),
                ("ParentCallSid", sid.into()),
                ("CallStatus", "busy".into()),
                ("To", ben.sip_uri.replace("sip:", "")),
                ("SequenceNumber", "2".into()),
            ],
        ),
        (
            app.leg_url(sid, 1, &ann),
            vec![
                ("CallSid", "la".into()),
                ("ParentCallSid", sid.into()),
                ("CallStatus", "in-progress".into()),
                ("To", ann.sip_uri.replace("sip:", "")),
                ("SequenceNumber", "2".into()),
            ],
        ),
        (
            app.leg_url(sid, 1, &ann),
            vec![
                ("CallSid", "la".into()),
                ("ParentCallSid", sid.into()),
                ("CallStatus", "completed".into()),
                ("To", ann.sip_uri.replace("sip:", "")),
                ("SequenceNumber", "3".into()),
                ("CallDuration", "77".into()),
            ],
        ),
        (
            "/api/call-center/events".to_owned(),
            vec![
                ("CallSid", sid.into()),
                ("RecordingSid", "r1".into()),
                ("RecordingStatus", "completed".into()),
                ("RecordingUrl", "https://api.telnyx.com/r1.mp3".into()),
            ],
        ),
        (
            "/api/call-center/events".to_owned(),
            vec![
                ("CallSid", sid.into()),
                ("CallStatus", "completed".into()),
                ("SequenceNumber", "9".into()),
            ],
        ),
    ];
    let mut deliveries: Vec<usize> = (0..callbacks.len()).collect();
    if let Some(seed) = shuffle {
        deliveries.extend(0..callbacks.len()); // every callback twice
        let mut state = seed;
        for i in (1..deliveries.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            deliveries.swap(i, (state >> 33) as usize % (i + 1));
        }
    }
    for i in deliveries {
        let (path, params) = &callbacks[i];
        let res = app.server.post_form(path, params).await.unwrap();
        assert_eq!(res.status, 200);
    }
    app.post(
        &app.retry_dial_url(sid, 1),
        &[
            ("CallSid", sid),
            ("DialCallStatus", "completed"),
            ("DialCallSid", "la"),
        ],
    )
    .await;
    facts(app, sid).await
}

async fn duplicated_and_shuffled_callbacks(backend: Backend) {
    let Some(in_order) = TestApp::spawn(backend).await else {
        return;
    };
    let expected = run_script(&in_order, None).await;
    assert_eq!(expected.0["outcome"], "answered");
    assert_eq!(expected.0["talk_seconds"], 77);
    in_order.stop().await;
    for seed in [1, 7, 42] {
        let shuffled = TestApp::spawn(backend).await.unwrap();
        assert_eq!(
            run_script(&shuffled, Some(seed)).await,
            expected,
            "seed {seed}"
        );
        shuffled.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_and_shuffled_callbacks_end_the_same_sqlite() {
    duplicated_and_shuffled_callbacks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn duplicated_and_shuffled_callbacks_end_the_same_postgres() {
    duplicated_and_shuffled_callbacks(Backend::Postgres).await;
}
