//! What repairs a call when Telnyx's callbacks did not (the reconciler), what a voicemail
//! left through the fallback document counts as, and callbacks decided as of their receipt
//! time. In-memory ports and a manual clock: no sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use agents::{AgentEffect, AgentStore as _, Clock as _, EffectiveStatus, MetricsDelta};
use audit::{AuditAction, AuditFilter, AuditLog as _};
use call_center::*;
use chrono::Duration;
use support::*;

async fn actions(w: &World, sid: &str) -> Vec<AuditAction> {
    let filter = AuditFilter {
        call_sid: Some(sid.to_owned()),
        ..AuditFilter::default()
    };
    w.audit
        .entries(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// The call `agent` holds, as stored.
async fn holds(w: &World, agent: &agents::AgentView) -> Option<String> {
    w.agent_store
        .get(agent.id)
        .await
        .unwrap()
        .unwrap()
        .current_call_sid
}

/// A call answered by `agent`, whose end Telnyx never reported (both the leg's `completed`
/// and the caller's were lost).
async fn answered_then_silent(w: &World, sid: &str, agent: &agents::AgentView) {
    w.send(inbound(sid)).await;
    w.send(dial_agents(sid, 1)).await;
    w.tick(4);
    w.send(leg(
        sid,
        1,
        agent,
        &format!("leg-{sid}"),
        LegStatus::InProgress,
        1,
    ))
    .await;
}

#[tokio::test]
async fn the_reconciler_frees_an_agent_whose_call_went_silent() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    answered_then_silent(&w, "c1", &alice).await;
    assert_eq!(w.agent_view(&alice).await.status, EffectiveStatus::Busy);
    let last_seen = w.call("c1").await.updated_at;

    w.tick(3600);
    assert_eq!(
        w.flow.reconcile().await.unwrap(),
        Reconciliation::default(),
        "an hour of talk is a call, not a fault"
    );

    w.tick(FlowSettings::default().max_call_length.num_seconds());
    let done = w.flow.reconcile().await.unwrap();
    assert_eq!((done.calls, done.agents), (1, 0));
    let call = w.call("c1").await;
    assert_eq!(
        (call.status, call.outcome, call.ended_at),
        (
            CallStatus::Completed,
            Some(Outcome::Answered),
            Some(last_seen)
        ),
        "closed as of its last sign of life"
    );
    assert_eq!(
        holds(&w, &alice).await,
        None,
        "freed (and offline by now: no heartbeat for 5 h)"
    );
    assert!(actions(&w, "c1").await.contains(&AuditAction::Reconciled));
    assert_eq!(
        w.flow.reconcile().await.unwrap(),
        Reconciliation::default(),
        "a repair is made once"
    );
}

#[tokio::test]
async fn the_reconciler_frees_agents_held_by_ended_or_unknown_calls() {
    let w = World::default();
    let (alice, bob) = (w.agent("Alice").await, w.agent("Bob").await);
    w.send(inbound("c2")).await;
    w.send(call_status("c2", "completed")).await;
    let engage = |agent: &agents::AgentView| AgentEffect {
        agent_id: agent.id,
        delta: MetricsDelta::default(),
        engage: true,
        release: false,
        ..AgentEffect::default()
    };
    // States no callback order produces, made directly in the store.
    w.agent_store
        .apply_effect(&engage(&alice), "c2", w.clock.now());
    w.agent_store
        .apply_effect(&engage(&bob), "ghost", w.clock.now());
    assert_eq!(w.agent_view(&bob).await.status, EffectiveStatus::Busy);

    let done = w.flow.reconcile().await.unwrap();
    assert_eq!(done.agents, 2);
    for agent in [&alice, &bob] {
        assert_eq!(w.agent_view(agent).await.status, EffectiveStatus::Available);
    }
    let ghost = actions(&w, "ghost").await;
    assert_eq!(ghost, vec![AuditAction::Reconciled]);
    assert_eq!(w.flow.reconcile().await.unwrap(), Reconciliation::default());
}

#[tokio::test]
async fn an_agent_engaged_again_is_not_released_for_its_old_call() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    w.send(inbound("old")).await;
    w.send(call_status("old", "completed")).await;
    answered_then_silent(&w, "new", &alice).await;
    // The store's compare-and-set: a release for "old" leaves the hold on "new" alone.
    let released = w
        .agent_store
        .release(alice.id, Some("old"), w.clock.now(), &|_| Vec::new())
        .await
        .unwrap();
    assert_eq!(released, None);
    assert_eq!(w.flow.reconcile().await.unwrap(), Reconciliation::default());
    assert_eq!(w.agent_view(&alice).await.status, EffectiveStatus::Busy);
}

#[tokio::test]
async fn an_admin_release_frees_the_agent_and_is_audited() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    answered_then_silent(&w, "c3", &alice).await;
    let view = w
        .agents
        .release(&alice.id.to_string(), agents::Caller::Admin)
        .await
        .unwrap();
    assert_eq!(view.status, EffectiveStatus::Available);
    assert!(
        actions(&w, "c3")
            .await
            .contains(&AuditAction::AgentReleased)
    );
    let again = w
        .agents
        .release(&alice.id.to_string(), agents::Caller::Admin)
        .await
        .unwrap();
    assert_eq!(again.status, EffectiveStatus::Available, "nothing to free");
}

#[tokio::test]
async fn offers_left_ringing_in_an_ended_round_are_canceled() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    w.send(inbound("c4")).await;
    w.send(dial_agents("c4", 1)).await;
    // The round ends without its offers being settled (state made directly in the store).
    let state = w.calls.load("c4", &[]).await.unwrap().state.unwrap();
    let mut call = state.call.clone();
    (call.round_open, call.version) = (false, call.version + 1);
    let change = CallChange {
        expected_version: state.call.version,
        call,
        offers: vec![],
        attempts: vec![],
        agents: vec![],
        receipts: vec![],
        audit: vec![],
    };
    assert_eq!(w.calls.apply(&change).await.unwrap(), Applied::Yes);

    assert_eq!(
        w.flow.reconcile().await.unwrap().calls,
        0,
        "its leg may still report"
    );
    w.clock.advance(Duration::seconds(31));
    assert_eq!(w.flow.reconcile().await.unwrap().calls, 1);
    let offers = w.calls.load("c4", &[]).await.unwrap().state.unwrap().offers;
    assert_eq!(offers[0].state, OfferState::Canceled);
    assert_eq!(
        w.agent_view(&alice).await.metrics.calls_missed,
        0,
        "nobody knows it rang"
    );
    assert!(actions(&w, "c4").await.contains(&AuditAction::Reconciled));
}

/// The fallback document records a voicemail straight away (`<Record>` with the server's
/// callbacks) while the call's round may still be open.
fn fallback_voicemail(sid: &str) -> [Event; 3] {
    [
        Event::VoicemailRecorded {
            call_sid: sid.into(),
            recording: RecordingInfo {
                status: None,
                ..recording(sid)
            },
        },
        Event::VoicemailRecording {
            call_sid: sid.into(),
            recording: recording(sid),
        },
        Event::VoicemailTranscription {
            call_sid: sid.into(),
            transcription: transcription(sid),
        },
    ]
}

#[tokio::test]
async fn a_voicemail_left_through_the_fallback_counts_as_voicemail() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    w.send(inbound("c5")).await;
    w.send(dial_agents("c5", 1)).await;
    for event in fallback_voicemail("c5") {
        w.send(event).await;
    }
    w.send(call_status("c5", "completed")).await;
    let call = w.call("c5").await;
    assert_eq!(call.outcome, Some(Outcome::Voicemail));
    assert!(call.voicemail_transcription.is_some());
    assert_eq!(
        w.agent_view(&alice).await.metrics.calls_missed,
        0,
        "its open round is canceled, not missed"
    );
}

#[tokio::test]
async fn a_voicemail_reported_after_the_hang_up_corrects_abandoned() {
    let w = World::default();
    w.agent("Alice").await;
    w.send(inbound("c6")).await;
    w.send(dial_agents("c6", 1)).await;
    w.send(call_status("c6", "completed")).await;
    assert_eq!(w.call("c6").await.outcome, Some(Outcome::Abandoned));
    for event in fallback_voicemail("c6") {
        w.send(event).await;
    }
    assert_eq!(w.call("c6").await.outcome, Some(Outcome::Voicemail));
    assert!(
        actions(&w, "c6")
            .await
            .contains(&AuditAction::OutcomeCorrected)
    );
}

#[tokio::test]
async fn a_late_callback_is_decided_as_of_its_receipt() {
    let w = World::default();
    let alice = w.agent("Alice").await;
    answered_then_silent(&w, "c7", &alice).await;
    let answered_at = w.call("c7").await.answered_at.unwrap();
    let hung_up = answered_at + Duration::seconds(30);
    w.tick(600);
    // Received at `hung_up`, applied ten minutes later (from the spool).
    w.flow
        .handle_at(&call_status("c7", "completed"), None, hung_up)
        .await
        .unwrap();
    let call = w.call("c7").await;
    assert_eq!(
        (call.ended_at, call.talk_seconds),
        (Some(hung_up), Some(30))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_callbacks_on_one_call_from_two_instances_never_gives_up() {
    let w = World::default();
    let mut agents = Vec::new();
    for n in 0..12 {
        agents.push(w.agent(&format!("Agent{n}")).await);
    }
    w.send(inbound("burst")).await;
    w.send(dial_agents("burst", 1)).await;
    // A second instance: its own turnstiles, the same database.
    let other = CallFlow::new(
        Ports {
            calls: std::sync::Arc::new(w.calls.clone()),
            queue: std::sync::Arc::new(w.calls.clone()),
            agents: std::sync::Arc::new(w.agent_store.clone()),
            clock: std::sync::Arc::new(w.clock.clone()),
            audit: std::sync::Arc::new(audit::ChainSink),
        },
        FlowSettings::default(),
        Urls::new(BASE, UrlKeys::random()).unwrap(),
        Duration::seconds(60),
    );
    let mut events: Vec<Event> = agents
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let leg_sid = format!("leg-{n}");
            leg("burst", 1, a, &leg_sid, LegStatus::NoAnswer, 3)
        })
        .collect();
    events.push(dial_result("burst", 1, Some("no-answer"), None));
    let flows = [w.flow.clone(), other];
    let handled = events.iter().enumerate().map(|(n, event)| {
        let (flow, event) = (flows[n % 2].clone(), event.clone());
        tokio::spawn(async move { flow.handle(&event, None).await })
    });
    for result in futures::future::join_all(handled).await {
        result.unwrap().expect("no callback gives up");
    }
    let call = w.call("burst").await;
    assert!(!call.round_open);
    for a in &agents {
        assert_eq!(w.agent_view(a).await.metrics.calls_missed, 1);
    }
}
