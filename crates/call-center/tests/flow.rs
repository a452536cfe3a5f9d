//! Whole calls through the domain with in-memory ports: every path of the flow, races,
//! duplicates and reordering.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use std::sync::Arc;

use agents::EffectiveStatus;
use audit::{AuditAction, AuditLog, verify_chain};
use call_center::*;
use support::*;

#[tokio::test]
async fn answered_in_round_one() {
    let w = World::default();
    let (alice, bob) = (w.agent("Alice").await, w.agent("Bob").await);
    let greeting = w.doc(inbound("c1")).await;
    assert!(greeting.contains("Thank you for calling"));
    assert!(greeting.contains("may be recorded"), "recording notice");
    // Nobody waits ahead and two agents are free: the greeting goes straight on to the
    // offer's <Dial>, with no hold-loop request in between.
    assert!(!greeting.contains("<Redirect"), "{greeting}");
    let dial = &greeting[greeting.find("<Dial").expect("the offer in the greeting")..];
    assert!(
        dial.contains("sip:alice@example.sip.telnyx.com")
            && dial.contains("sip:bob@example.sip.telnyx.com")
    );
    assert!(dial.contains(
        r#"action="https://cc.example.com/api/call-center/retry-dial?call=c1&amp;round=1&amp;mac="#
    ));
    assert!(dial.contains(r#"record="record-from-answer-dual""#));
    assert_eq!(w.call("c1").await.status, CallStatus::Dialing);
    assert!(
        w.doc(dial_agents("c1", 1)).await.contains(dial),
        "a hold-loop request on the same call delivers the same offer"
    );

    w.send(leg("c1", 1, &alice, "la", LegStatus::Initiated, 1))
        .await;
    w.send(leg("c1", 1, &bob, "lb", LegStatus::Ringing, 1))
        .await;
    w.tick(3);
    w.send(leg("c1", 1, &alice, "la", LegStatus::InProgress, 2))
        .await;
    let call = w.call("c1").await;
    assert_eq!(
        (call.status, call.answered_by),
        (CallStatus::Answered, Some(alice.id))
    );
    assert_eq!(w.agent_view(&alice).await.status, EffectiveStatus::Busy);
    w.send(leg("c1", 1, &bob, "lb", LegStatus::Canceled, 2))
        .await;
    w.tick(42);
    w.send(leg("c1", 1, &alice, "la", LegStatus::Completed, 3))
        .await;
    assert_eq!(
        w.agent_view(&alice).await.status,
        EffectiveStatus::Available,
        "released when its leg ends"
    );
    assert!(
        w.doc(dial_result("c1", 1, Some("completed"), Some("la")))
            .await
            .contains("<Hangup/>")
    );
    w.send(call_status("c1", "completed")).await;

    let call = w.call("c1").await;
    assert_eq!(
        (call.status, call.outcome, call.talk_seconds),
        (CallStatus::Completed, Some(Outcome::Answered), Some(42))
    );
    let (a, b) = (
        w.agent_view(&alice).await.metrics,
        w.agent_view(&bob).await.metrics,
    );
    assert_eq!(
        (a.calls_answered, a.calls_missed, a.total_talk_seconds),
        (1, 0, 42)
    );
    assert_eq!(
        (b.calls_answered, b.calls_missed),
        (0, 0),
        "canceled because Alice answered: not a miss"
    );
}

#[tokio::test]
async fn answered_in_round_two() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    w.send(inbound("c2")).await;
    w.send(dial_agents("c2", 1)).await;
    w.send(leg("c2", 1, &alice, "l1", LegStatus::NoAnswer, 3))
        .await;
    let next = w.doc(dial_result("c2", 1, Some("no-answer"), None)).await;
    assert!(
        next.contains("<Play continueOnError=\"true\">https://cc.example.com/api/call-center/hold-music.wav</Play>")
            && next.contains("dial-agents?call=c2&amp;round=2&amp;mac="),
        "back to the hold loop: {next}"
    );
    assert!(
        w.call("c2").await.is_waiting(),
        "Alice is in her no-answer delay: nobody is reserved"
    );
    w.tick(10);
    assert_eq!(w.sweep().await.reserved, vec![("c2".to_owned(), 2)]);
    let dial = w.doc(dial_agents("c2", 2)).await;
    assert!(dial.contains("sip:alice@"), "{dial}");
    w.send(leg("c2", 2, &alice, "l2", LegStatus::InProgress, 2))
        .await;
    w.send(leg("c2", 2, &alice, "l2", LegStatus::Completed, 3))
        .await;
    w.send(dial_result("c2", 2, Some("completed"), Some("l2")))
        .await;
    w.send(call_status("c2", "completed")).await;
    let call = w.call("c2").await;
    assert_eq!(
        (call.outcome, call.attempts, call.answered_by),
        (Some(Outcome::Answered), 2, Some(alice.id))
    );
    let m = w.agent_view(&alice).await.metrics;
    assert_eq!(
        (m.calls_answered, m.calls_missed),
        (1, 1),
        "one miss in round 1, counted once"
    );
}

#[tokio::test]
async fn no_agent_at_all_goes_to_voicemail_with_transcription() {
    let w = World::default();
    // Nobody free: the greeting goes on with the first hold segment (no request between).
    let hold = w.doc(inbound("c3")).await;
    assert!(!hold.contains("<Dial"), "no empty <Dial>");
    assert!(
        hold.contains("<Say>You are next in line.</Say>")
            && hold.contains("hold-music.wav</Play>")
            && hold.contains("dial-agents?call=c3&amp;round=1&amp;mac="),
        "{hold}"
    );
    w.tick(30);
    let again = w.doc(dial_agents("c3", 1)).await;
    assert!(
        !again.contains("<Say>"),
        "the place is said again only when it improved: {again}"
    );
    w.tick(570);
    // The longest wait reached: the hold request answers the voicemail prompt and
    // <Record> itself (no <Redirect> to /voicemail).
    let record = w.doc(dial_agents("c3", 1)).await;
    assert_eq!(w.call("c3").await.status, CallStatus::Voicemail);
    assert_eq!(
        w.doc(voicemail("c3")).await,
        record,
        "/voicemail (the fallback's and a repeat's way in) answers the same"
    );
    for attr in [
        r#"transcription="true""#,
        r#"playBeep="true""#,
        r#"finishOnKey="#,
        "transcriptionCallback=",
        "recordingStatusCallback=",
    ] {
        assert!(record.contains(attr), "{attr} in {record}");
    }
    assert_eq!(w.call("c3").await.status, CallStatus::Voicemail);
    // Transcription first, then the recording status, then the <Record action>.
    w.send(Event::VoicemailTranscription {
        call_sid: "c3".into(),
        transcription: transcription("c3"),
    })
    .await;
    w.send(Event::VoicemailRecording {
        call_sid: "c3".into(),
        recording: recording("c3"),
    })
    .await;
    let thanks = w
        .doc(Event::VoicemailRecorded {
            call_sid: "c3".into(),
            recording: recording("c3"),
        })
        .await;
    assert!(thanks.contains("Thank you for your message") && thanks.contains("<Hangup/>"));
    w.send(call_status("c3", "completed")).await;
    let view = w.flow.call("c3").await.unwrap().unwrap();
    assert_eq!(view.outcome, Some(Outcome::Voicemail));
    let vm = view.voicemail.unwrap();
    assert_eq!(vm.transcription.as_deref(), Some("Please call me back."));
    assert_eq!(
        (vm.recording_url.is_some(), vm.duration_seconds),
        (true, Some(17))
    );
}

#[tokio::test]
async fn voicemail_disabled_says_goodbye_and_hangs_up() {
    let settings = FlowSettings {
        voicemail_enabled: false,
        max_attempts: 1,
        ..FlowSettings::default()
    };
    let w = World::new(settings);
    w.send(inbound("c4")).await;
    w.send(dial_agents("c4", 1)).await;
    w.tick(600);
    let bye = w.doc(dial_agents("c4", 1)).await;
    assert!(
        bye.contains("Please try again later") && bye.ends_with("<Hangup/></Response>"),
        "{bye}"
    );
    w.send(call_status("c4", "completed")).await;
    assert_eq!(w.call("c4").await.outcome, Some(Outcome::Unanswered));
}

#[tokio::test]
async fn caller_hanging_up_while_agents_ring_is_abandoned_and_frees_everyone() {
    let w = World::default();
    let (alice, bob) = (w.agent("Alice").await, w.agent("Bob").await);
    w.send(inbound("c5")).await;
    w.send(dial_agents("c5", 1)).await;
    w.send(leg("c5", 1, &alice, "la", LegStatus::Ringing, 1))
        .await;
    w.send(leg("c5", 1, &alice, "la", LegStatus::Canceled, 2))
        .await;
    w.send(call_status("c5", "completed")).await;
    w.send(leg("c5", 1, &bob, "lb", LegStatus::Canceled, 2))
        .await;
    let call = w.call("c5").await;
    assert_eq!(call.outcome, Some(Outcome::Abandoned));
    for a in [&alice, &bob] {
        let v = w.agent_view(a).await;
        assert_eq!(
            (v.status, v.metrics.calls_missed),
            (EffectiveStatus::Available, 0)
        );
    }
}

#[tokio::test]
async fn two_agents_answering_at_once_make_exactly_one_winner() {
    for round in 0..20 {
        let w = Arc::new(World::default());
        let (alice, bob) = (w.agent("Alice").await, w.agent("Bob").await);
        let sid = format!("race-{round}");
        w.send(inbound(&sid)).await;
        w.send(dial_agents(&sid, 1)).await;
        let tasks = [(alice.clone(), "la"), (bob.clone(), "lb")].map(|(agent, l)| {
            let (w, sid) = (Arc::clone(&w), sid.clone());
            tokio::spawn(async move {
                w.send(leg(&sid, 1, &agent, l, LegStatus::InProgress, 2))
                    .await
            })
        });
        for t in tasks {
            t.await.unwrap();
        }
        let call = w.call(&sid).await;
        let winner = call.answered_by.unwrap();
        let loser = if winner == alice.id { &bob } else { &alice };
        let state = w.calls.load(&sid, &[]).await.unwrap().state.unwrap();
        let late: Vec<_> = state
            .offers
            .iter()
            .filter(|o| o.state == OfferState::Late)
            .collect();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].agent_id, loser.id);
        assert_eq!(w.agent_view(loser).await.metrics.calls_answered, 0);
        let entries = w
            .audit
            .entries(&audit::AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.action == AuditAction::CallAnswered)
                .count(),
            1
        );
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.action == AuditAction::LateAnswer)
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn an_agent_whose_heartbeat_expired_is_not_rung_in_round_two() {
    let w = World::default();
    let (alice, bob) = (w.agent("Alice").await, w.agent("Bob").await);
    w.send(inbound("c6")).await;
    let round1 = w.doc(dial_agents("c6", 1)).await;
    assert!(round1.contains("alice") && round1.contains("bob"));
    w.tick(45);
    w.agents
        .heartbeat(
            agents::Caller::Agent(bob.id),
            &bob.id.to_string(),
            None,
            None,
        )
        .await
        .unwrap();
    w.tick(20); // Alice's heartbeat is now 65 s old, Bob's 20 s.
    w.send(dial_result("c6", 1, Some("no-answer"), None)).await;
    w.tick(10); // the no-answer delay
    w.sweep().await;
    let round2 = w.doc(dial_agents("c6", 2)).await;
    assert!(
        !round2.contains("alice") && round2.contains("bob"),
        "{round2}"
    );
    assert_eq!(w.agent_view(&alice).await.status, EffectiveStatus::Offline);
}

#[tokio::test]
async fn a_failing_store_is_an_error_and_the_fallback_is_a_safe_document() {
    let w = World::default();
    w.calls.set_failing(true);
    let err = w.flow.handle(&inbound("c7"), None).await.unwrap_err();
    assert!(matches!(err, FlowError::Calls(_)));
    let fallback = w.flow.fallback(Some("c7")).render();
    assert!(
        fallback.contains("technical difficulties") && fallback.contains("<Record "),
        "{fallback}"
    );
    w.calls.set_failing(false);
    assert!(w.doc(inbound("c7")).await.contains("Thank you for calling"));
}

#[tokio::test]
async fn an_unknown_call_is_created_on_the_spot_by_an_instruction_never_by_a_status_callback() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    let hold = w.doc(dial_agents("ghost", 1)).await;
    assert!(hold.contains("<Play"), "joins the queue: {hold}");
    let dial = w.doc(dial_agents("ghost", 1)).await;
    assert!(dial.contains("sip:alice@"), "{dial}");
    let call = w.call("ghost").await;
    assert_eq!((call.status, call.attempts), (CallStatus::Dialing, 1));
    w.send(leg("ghost", 1, &alice, "lg", LegStatus::InProgress, 1))
        .await;
    assert_eq!(w.call("ghost").await.answered_by, Some(alice.id));
    let ended = w.send(call_status("never-seen", "completed")).await;
    assert!(!ended.applied, "/events never creates a call");
    assert!(w.flow.stored_call("never-seen").await.unwrap().is_none());
}

#[tokio::test]
async fn a_signature_replayed_for_another_request_is_refused_and_an_identical_one_changes_nothing()
{
    let w = World::default();
    let sig = |fp: &str| signed("sig:abc", fp, true);
    let first = w
        .flow
        .handle(&inbound("c8"), sig("request-1"))
        .await
        .unwrap();
    assert!(first.applied);
    let version = w.call("c8").await.version;
    let same = w
        .flow
        .handle(&inbound("c8"), sig("request-1"))
        .await
        .unwrap();
    assert!(same.duplicate && !same.applied);
    assert_eq!(w.call("c8").await.version, version);
    let other = w.flow.handle(&dial_agents("c8", 1), sig("request-2")).await;
    assert!(matches!(other, Err(FlowError::Replay)));
    // A first `/inbound` is decided from no call, unread; one whose call exists is read
    // all the same (its insert conflicts), so the replay is still caught.
    let again = w.flow.handle(&inbound("c8"), sig("request-3")).await;
    assert!(matches!(again, Err(FlowError::Replay)));
    assert_eq!(w.call("c8").await.version, version);
}

#[tokio::test]
async fn a_repeated_unsigned_inbound_changes_nothing_and_offers_nothing_twice() {
    let w = World::default();
    let _alice = w.agent("Alice").await;
    let first = w.flow.handle(&inbound("c9"), None).await.unwrap();
    assert!(first.applied);
    let call = w.call("c9").await;
    assert_eq!(call.attempts, 1, "Alice is offered the call");
    let repeat = w.flow.handle(&inbound("c9"), None).await.unwrap();
    // Unsigned, it has no receipt to be a repeat by: it is decided from the call as
    // stored, which it does not change. (A server without the call's committed copy
    // decides it from no call first; its insert conflicts: the e2e test
    // `an_inbound_retried_after_a_restart_changes_nothing`.)
    assert!(!repeat.applied, "{repeat:?}");
    let after = w.call("c9").await;
    assert_eq!((after.version, after.attempts), (call.version, 1));
}

#[tokio::test]
async fn the_audit_trail_of_a_call_is_complete_and_verifies() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    w.send(inbound("c9")).await;
    w.send(dial_agents("c9", 1)).await;
    w.send(leg("c9", 1, &alice, "la", LegStatus::InProgress, 2))
        .await;
    w.send(leg("c9", 1, &alice, "la", LegStatus::Completed, 3))
        .await;
    w.send(call_status("c9", "completed")).await;
    let filter = audit::AuditFilter {
        call_sid: Some("c9".into()),
        ..audit::AuditFilter::default()
    };
    let actions: Vec<AuditAction> = w
        .audit
        .entries(&filter)
        .await
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            AuditAction::CallReceived,
            AuditAction::CallEnqueued,
            AuditAction::RecordingNoticePlayed,
            AuditAction::AttemptOpened,
            AuditAction::OfferMade,
            AuditAction::OfferDelivered,
            AuditAction::CallAnswered,
            AuditAction::AgentReleased,
            AuditAction::CallCompleted,
        ]
    );
    let entries = w.audit.entries(&filter).await.unwrap();
    assert!(
        entries.iter().all(|e| !e.data.contains("+1312")),
        "no caller numbers in the log"
    );
    w.audit.seal_pending().await.unwrap();
    assert!(verify_chain(&w.audit).await.unwrap().ok);
}

#[tokio::test]
async fn redaction_removes_recordings_and_is_audited_once() {
    let w = World::default();
    w.send(inbound("c10")).await;
    w.send(voicemail("c10")).await;
    w.send(Event::VoicemailRecording {
        call_sid: "c10".into(),
        recording: recording("c10"),
    })
    .await;
    w.send(Event::VoicemailTranscription {
        call_sid: "c10".into(),
        transcription: transcription("c10"),
    })
    .await;
    assert_eq!(
        w.flow
            .redact("c10", "customer request", audit::Actor::Admin)
            .await
            .unwrap(),
        Redaction::Redacted
    );
    assert_eq!(
        w.flow
            .redact("c10", "again", audit::Actor::Admin)
            .await
            .unwrap(),
        Redaction::AlreadyRedacted
    );
    assert_eq!(
        w.flow
            .redact("nope", "x", audit::Actor::Admin)
            .await
            .unwrap(),
        Redaction::NotFound
    );
    // A late recording callback does not bring the data back.
    w.send(Event::VoicemailRecorded {
        call_sid: "c10".into(),
        recording: recording("c10"),
    })
    .await;
    let vm = w
        .flow
        .call("c10")
        .await
        .unwrap()
        .unwrap()
        .voicemail
        .unwrap();
    assert_eq!((vm.recording_url, vm.transcription), (None, None));
    let redactions = w
        .audit
        .all()
        .iter()
        .filter(|e| e.action == AuditAction::RecordingRedacted)
        .count();
    assert_eq!(redactions, 1);
}

#[tokio::test]
async fn ringing_is_acknowledged_without_a_write_unless_its_parameters_are_unsigned() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    w.send(inbound("c10")).await;
    w.send(dial_agents("c10", 1)).await;
    let version = w.call("c10").await.version;
    let signed = |fp: &str, covers_parameters| signed("sig:ring", fp, covers_parameters);
    let ringing = leg("c10", 1, &alice, "la", LegStatus::Ringing, 1);
    let posted = w.flow.handle(&ringing, signed("a", true)).await.unwrap();
    assert!(!posted.applied && !posted.duplicate);
    // A signed body is not remembered: the same signature may come again with anything.
    let again = w.flow.handle(&ringing, signed("b", true)).await.unwrap();
    assert!(!again.applied);
    // A GET's query is unsigned, so its signature is remembered and cannot be reused.
    w.flow
        .handle(&ringing, signed("get-1", false))
        .await
        .unwrap();
    let replay = w.flow.handle(&ringing, signed("get-2", false)).await;
    assert!(matches!(replay, Err(FlowError::Replay)));
    assert_eq!(w.call("c10").await.version, version);
}

/// A verified signature with receipt `key` and request fingerprint `fp`.
fn signed(key: &str, fp: &str, covers_parameters: bool) -> Option<SignedRequest> {
    Some(SignedRequest {
        receipt: Receipt {
            key: key.into(),
            fingerprint: fp.into(),
        },
        covers_parameters,
    })
}

#[tokio::test]
async fn an_agent_wraps_up_after_an_answered_call_and_can_end_it_early() {
    let w = World::new(FlowSettings {
        wrap_up: chrono::Duration::seconds(30),
        ..FlowSettings::default()
    });
    let (alice, bob) = (w.agent("Alice").await, w.agent("Bob").await);
    w.send(inbound("c1")).await;
    w.send(dial_agents("c1", 1)).await;
    w.send(leg("c1", 1, &alice, "la", LegStatus::InProgress, 2))
        .await;
    w.send(leg("c1", 1, &bob, "lb", LegStatus::Canceled, 2))
        .await;
    w.tick(10);
    w.send(leg("c1", 1, &alice, "la", LegStatus::Completed, 3))
        .await;
    let ends = agents::Clock::now(&w.clock) + chrono::Duration::seconds(30);
    let view = w.agent_view(&alice).await;
    assert_eq!(
        (view.status, view.wrap_up_until),
        (EffectiveStatus::Busy, Some(ends)),
        "after-call work"
    );
    assert_eq!(
        w.agent_view(&bob).await.wrap_up_until,
        None,
        "only the agent who talked wraps up"
    );

    w.send(inbound("c2")).await;
    let dial = w.doc(dial_agents("c2", 1)).await;
    assert!(
        !dial.contains("sip:alice@") && dial.contains("sip:bob@"),
        "not offered while wrapping up: {dial}"
    );
    w.tick(30);
    let view = w.agent_view(&alice).await;
    assert_eq!(
        (view.status, view.wrap_up_until),
        (EffectiveStatus::Available, None)
    );

    // A second call, and the agent ends its wrap-up early.
    w.send(inbound("c3")).await;
    w.send(dial_agents("c3", 1)).await;
    w.send(leg("c3", 1, &alice, "la3", LegStatus::InProgress, 2))
        .await;
    w.send(leg("c3", 1, &alice, "la3", LegStatus::Completed, 3))
        .await;
    assert_eq!(w.agent_view(&alice).await.status, EffectiveStatus::Busy);
    let me = agents::Caller::Agent(alice.id);
    let id = alice.id.to_string();
    assert!(matches!(
        w.agents.ready(agents::Caller::Agent(bob.id), &id).await,
        Err(agents::AgentError::Forbidden)
    ));
    let ready = w.agents.ready(me, &id).await.unwrap();
    assert_eq!(
        (ready.status, ready.wrap_up_until),
        (EffectiveStatus::Available, None)
    );
    let again = w.agents.ready(me, &id).await.unwrap();
    assert_eq!(again.status, EffectiveStatus::Available, "nothing to end");
    let ended = w
        .audit
        .entries(&audit::AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::WrapUpEnded)
        .count();
    assert_eq!(ended, 1, "audited once");
}
