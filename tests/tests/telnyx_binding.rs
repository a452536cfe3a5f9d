//! Issue 13's acceptance, end to end on SQLite and PostgreSQL with signature verification on,
//! with Telnyx's own documented callback shapes (`../shared/telnyx-fixtures`, adapted to the
//! test call's ids): redirects within one second, leg `To` spellings, the bridged leg
//! (`DialCallSid`) deciding the winner, the Record action's goodbye, and captured requests
//! that cannot be turned into other ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use call_center::contract::fixtures;
use e2e::{PUBLIC_BASE, TestApp, on_both_backends};
use serde_json::Value;
use telnyx_sim::{AgentJson, Answer};
use texml::{DialNoun, Response, Verb};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sends `body` signed at `ts` to `url` (absolute, or a path under `/api/call-center`).
async fn signed_post(app: &TestApp, url: &str, body: String, ts: i64) -> Answer {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("/api/call-center{url}")
    };
    app.server
        .post_raw(
            &url,
            body.into_bytes(),
            "application/x-www-form-urlencoded",
            ts,
        )
        .await
        .unwrap()
}

/// The instruction request Telnyx sends for `call` (the documented example, adapted).
fn instruction(call: &str) -> String {
    fixtures::body(
        "texml-instruction-fetch.query",
        &[("CallSid", Some(call)), ("CallStatus", Some("in-progress"))],
    )
}

/// The `statusCallback` URL the `<Dial>` of `doc` gives the `<Sip>` of `agent`.
fn leg_url(doc: &Response, agent: &AgentJson) -> String {
    doc.verbs
        .iter()
        .find_map(|v| match v {
            Verb::Dial(d) => d.nouns().iter().find_map(|n| match n {
                DialNoun::Sip(s) if s.uri.as_str() == agent.sip_uri => {
                    s.status_callback.as_ref().map(|u| u.as_str().to_owned())
                }
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{} is not rung in {}", agent.sip_uri, doc.render()))
}

/// A leg callback in the documented shape: `CallStatus` on leg `leg` of `call`, `To` as
/// given, `CallDuration` when it ended.
fn leg_body(
    call: &str,
    leg: &str,
    status: &str,
    to: &str,
    seq: &str,
    duration: Option<&str>,
) -> String {
    let file = match status {
        "initiated" => "texml-call-initiated.form",
        "ringing" => "texml-call-ringing.form",
        "in-progress" => "texml-call-answered.form",
        _ => "texml-call-completed.form",
    };
    fixtures::body(
        file,
        &[
            ("CallSid", Some(leg)),
            ("ParentCallSid", Some(call)),
            ("CallStatus", Some(status)),
            ("To", Some(to)),
            ("SequenceNumber", Some(seq)),
            ("CallDuration", duration),
            // what only the <Dial action> carries
            ("DialCallSid", None),
            ("DialCallStatus", None),
            ("DialCallDuration", None),
            ("CallControlId", None),
        ],
    )
}

async fn dial(app: &TestApp, call: &str) -> Response {
    app.inbound(call).await;
    app.reserved(call, 1).await;
    app.post(&app.dial_agents_url(call, 1), &[("CallSid", call)])
        .await
        .texml()
        .unwrap()
}

async fn call_json(app: &TestApp, call: &str) -> Value {
    app.call(call).await
}

/// Every request of a voicemail flow carries the same timestamp and, for the redirects, the
/// same body (nothing in it differs): each is a distinct request, answered 200, and the caller
/// reaches `<Record>` once its longest wait (1 s here) passed, after a few hold segments.
async fn a_voicemail_flow_within_one_second_passes(app: TestApp) {
    let call = "v3:same-second";
    let (ts, body) = (now(), instruction(call));
    let mut url = "/inbound".to_owned();
    let mut steps = 0;
    let record = loop {
        steps += 1;
        assert!(steps < 20, "a document loop");
        let answer = signed_post(&app, &url, body.clone(), ts).await;
        assert_eq!(answer.status, 200, "{url}: {}", answer.body);
        let doc = answer.texml().unwrap();
        if doc.verbs.iter().any(|v| matches!(v, Verb::Record(_))) {
            break doc;
        }
        url = e2e::redirect(&doc).unwrap_or_else(|| panic!("{url} gave {}", doc.render()));
        if steps == 3 {
            // Three hold segments answered at once; then the longest wait passes.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    };
    assert!(record.render().contains("transcription=\"true\""));
    let c = call_json(&app, call).await;
    assert_eq!(
        (c["status"].as_str(), c["attempts"].as_i64()),
        (Some("voicemail"), Some(0)),
        "nobody to offer it to: no round"
    );
    app.stop().await;
}

/// A leg whose `To` has no scheme, another case, a port and a transport parameter is still
/// credited to the agent rung: the offer is known from the signed callback URL.
async fn a_leg_is_known_by_its_offer_whatever_its_to(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let (_bob, _) = app.agent("Bob").await;
    let call = "v3:to-spelling";
    let doc = dial(&app, call).await;
    let to = "alice@EXAMPLE.SIP.TELNYX.COM:5060;transport=tls";
    let body = leg_body(call, "v3:leg-alice", "in-progress", to, "2", None);
    let answer = signed_post(&app, &leg_url(&doc, &alice), body, now()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        call_json(&app, call).await["answered_by"],
        alice.id.as_str()
    );
    app.stop().await;
}

/// Two agents answer; the one Telnyx did not bridge is processed first. `DialCallSid` names
/// the other: the bridged agent is credited with its leg's talk time, the other has no
/// answer counted, and nobody is left busy.
async fn the_bridged_leg_decides_the_winner(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let (bob, _) = app.agent("Bob").await;
    let call = "v3:bridged";
    let doc = dial(&app, call).await;
    let (a_url, b_url) = (leg_url(&doc, &alice), leg_url(&doc, &bob));
    let steps = [
        (
            &b_url,
            leg_body(
                call,
                "v3:leg-b",
                "in-progress",
                "bob@example.sip.telnyx.com",
                "2",
                None,
            ),
        ),
        (
            &a_url,
            leg_body(
                call,
                "v3:leg-a",
                "in-progress",
                "alice@example.sip.telnyx.com",
                "2",
                None,
            ),
        ),
        (
            &b_url,
            leg_body(
                call,
                "v3:leg-b",
                "completed",
                "bob@example.sip.telnyx.com",
                "3",
                Some("1"),
            ),
        ),
        (
            &a_url,
            leg_body(
                call,
                "v3:leg-a",
                "completed",
                "alice@example.sip.telnyx.com",
                "3",
                Some("120"),
            ),
        ),
    ];
    for (url, body) in steps {
        assert_eq!(signed_post(&app, url, body, now()).await.status, 200);
    }
    let action = fixtures::body(
        "texml-call-completed.form",
        &[
            ("CallSid", Some(call)),
            ("ParentCallSid", None),
            ("CallStatus", Some("in-progress")),
            ("DialCallSid", Some("v3:leg-a")),
            ("DialCallStatus", Some("completed")),
            ("DialCallDuration", Some("120")),
        ],
    );
    let hangup = signed_post(&app, &app.retry_dial_url(call, 1), action, now()).await;
    assert!(hangup.body.contains("<Hangup/>"), "{}", hangup.body);
    app.call_status(call, "completed").await;
    let c = call_json(&app, call).await;
    assert_eq!(
        (
            c["answered_by"].as_str(),
            c["talk_seconds"].as_i64(),
            c["outcome"].as_str()
        ),
        (Some(alice.id.as_str()), Some(120), Some("answered"))
    );
    let (a, b) = (
        app.agent_json(&alice.id).await,
        app.agent_json(&bob.id).await,
    );
    assert_eq!(
        (
            a["metrics"]["calls_answered"].as_i64(),
            a["metrics"]["total_talk_seconds"].as_i64()
        ),
        (Some(1), Some(120))
    );
    assert_eq!(
        (
            b["metrics"]["calls_answered"].as_i64(),
            b["metrics"]["total_talk_seconds"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        (a["status"].as_str(), b["status"].as_str()),
        (Some("available"), Some("available"))
    );
    let audit = app
        .api(
            reqwest::Method::GET,
            &format!("/audit?call_sid={call}"),
            None,
        )
        .await
        .1;
    let corrected = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "answer_corrected")
        .count();
    assert_eq!(corrected, 1, "{audit}");
    app.stop().await;
}

/// The `<Record action>` request gets the goodbye even when it carries `RecordingStatus`
/// (Telnyx does not document its fields): its URL says it is the action.
async fn the_record_action_always_gets_the_goodbye(app: TestApp) {
    let call = "v3:vm-action";
    app.inbound(call).await;
    app.post(&app.voicemail_url(call), &[("CallSid", call)])
        .await;
    let body = fixtures::body("texml-recording-completed.form", &[("CallSid", Some(call))]);
    assert!(body.contains("RecordingStatus=completed"));
    let answer = signed_post(
        &app,
        &app.voicemail_callback_url(call, "action"),
        body,
        now(),
    )
    .await;
    assert!(
        answer.body.contains("Thank you for your message") && answer.body.contains("<Hangup/>"),
        "{}",
        answer.body
    );
    app.stop().await;
}

/// A captured signed leg callback, replayed to `/events`, `/inbound` and `%XX` spellings of
/// them, creates no call and changes none; its headers on a GET with a query that would end
/// the call change nothing; a round the server never signed is never opened.
async fn captured_requests_cannot_be_turned_into_others(app: TestApp) {
    let (alice, _) = app.agent("Alice").await;
    let call = "v3:victim";
    let doc = dial(&app, call).await;
    let ts = now();
    let body = leg_body(
        call,
        "v3:leg-alice",
        "in-progress",
        "alice@example.sip.telnyx.com",
        "2",
        None,
    );
    assert_eq!(
        signed_post(&app, &leg_url(&doc, &alice), body.clone(), ts)
            .await
            .status,
        200
    );
    let before = call_json(&app, call).await;
    assert_eq!(before["status"], "answered");
    for path in [
        "/events",
        "/inbound",
        "/%65vents",
        "/inbo%75nd",
        "/events?kind=recording",
    ] {
        let answer = signed_post(&app, path, body.clone(), ts).await;
        assert!(
            matches!(answer.status, 200 | 401),
            "{path}: {}",
            answer.status
        );
        assert!(
            app.server.call("v3:leg-alice").await.is_err(),
            "{path} created a call"
        );
        assert_eq!(
            call_json(&app, call).await,
            before,
            "{path} changed the call"
        );
    }
    // The same headers on a GET whose query would end the call.
    let key = app.server.signer.clone().unwrap();
    let sig = key.sign(&ts.to_string(), body.as_bytes());
    let status = reqwest::Client::new()
        .get(format!(
            "{}/api/call-center/events?CallSid=v3%3Avictim&CallStatus=completed",
            app.base
        ))
        .header("telnyx-timestamp", ts.to_string())
        .header("telnyx-signature-ed25519", sig)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert_eq!(call_json(&app, call).await, before);
    // A valid body signature on round 7, unsigned or with the old `attempt` parameter.
    for path in [
        "/dial-agents?attempt=7".to_owned(),
        format!("/dial-agents?call={}&round=7", "v3%3Avictim"),
    ] {
        let answer = signed_post(&app, &path, instruction(call), now()).await;
        assert_eq!(answer.status, 200);
        assert!(!answer.body.contains("<Sip"), "{path}: {}", answer.body);
        assert_eq!(call_json(&app, call).await["attempts"], 1, "{path}");
    }
    assert!(PUBLIC_BASE.starts_with("https://"));
    app.stop().await;
}

on_both_backends!(with &[("CALL_CENTER_MAX_WAIT_SECONDS", "1")];
    a_voicemail_flow_within_one_second_passes,
);

on_both_backends!(
    a_leg_is_known_by_its_offer_whatever_its_to,
    the_bridged_leg_decides_the_winner,
    the_record_action_always_gets_the_goodbye,
    captured_requests_cannot_be_turned_into_others,
);
