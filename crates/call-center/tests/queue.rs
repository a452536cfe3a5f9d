//! The queue with in-memory ports: order, reservations (one open offer per agent), the hold
//! loop, push and pull delivery, misses, abandonment, the longest wait.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use agents::{Activity, Clock, EffectiveStatus};
use audit::AuditLog as _;
use call_center::*;
use support::*;

fn inbound_from(sid: &str, from: &str) -> Event {
    Event::Inbound {
        call_sid: sid.into(),
        from: from.into(),
        to: "+13125550199".into(),
        account_sid: Some("acct".into()),
        connection_id: Some("conn".into()),
    }
}

fn longest_idle() -> FlowSettings {
    let mut s = FlowSettings::default();
    s.queue.strategy = QueueStrategy::LongestIdle;
    s
}

/// The agent answers round `round` of `sid` and hangs up a few seconds later.
async fn talk(w: &World, sid: &str, round: i32, agent: &agents::AgentView) {
    let leg_sid = format!("{sid}-{round}-leg");
    w.send(leg(sid, round, agent, &leg_sid, LegStatus::InProgress, 2))
        .await;
    w.tick(5);
    w.send(leg(sid, round, agent, &leg_sid, LegStatus::Completed, 3))
        .await;
    w.send(dial_result(sid, round, Some("completed"), Some(&leg_sid)))
        .await;
    w.send(call_status(sid, "completed")).await;
}

#[tokio::test]
async fn callers_are_offered_in_priority_then_arrival_order_one_offer_per_agent() {
    let w = World::new(longest_idle());
    let rule = PriorityRule::new("+1999*", 10, "VIP line", w.clock.now()).unwrap();
    w.calls.put_priority_rule(&rule, vec![]).await.unwrap();
    let ann = w.agent("Ann").await;
    let mut greetings = std::collections::HashMap::new();
    for (sid, from) in [
        ("first", "+13125550101"),
        ("second", "+13125550102"),
        ("vip", "+19995550103"),
    ] {
        w.tick(1);
        greetings.insert(sid, w.doc(inbound_from(sid, from)).await);
    }
    assert_eq!(w.call("vip").await.priority, 10);
    // Ann was free when "first" arrived, nobody waiting ahead: its greeting carried her
    // offer (ringing at once); nobody else is reserved.
    assert!(w.call("first").await.round_open);
    assert!(w.call("second").await.is_waiting() && w.call("vip").await.is_waiting());
    assert_eq!(w.agent_view(&ann).await.activity, Activity::Ringing);
    let dial = w.doc(dial_agents("first", 1)).await;
    assert!(dial.contains("sip:ann@"), "{dial}");
    // The place counts every caller ahead in the queue's order, "first" (being offered)
    // included; each greeting goes on with it (the VIP goes ahead of "second").
    assert!(
        greetings["second"].contains("You are number 2 in line."),
        "{}",
        greetings["second"]
    );
    assert!(
        greetings["vip"].contains("You are next in line."),
        "{}",
        greetings["vip"]
    );
    // Announced again only when it improved: "second" is now number 3.
    let second_hold = w.doc(dial_agents("second", 1)).await;
    assert!(!second_hold.contains("<Say>"), "{second_hold}");
    assert_eq!(
        w.flow.queue(10).await.unwrap()[2].call_sid,
        "second",
        "behind the VIP"
    );
    talk(&w, "first", 1, &ann).await;
    // Free again: the VIP goes first although "second" called earlier.
    assert!(w.call("vip").await.round_open);
    assert!(w.call("second").await.is_waiting());
    talk(&w, "vip", 1, &ann).await;
    assert!(w.call("second").await.round_open);
    let second = w.call("second").await;
    assert_eq!(
        second.enqueued_at,
        Some(w.clock.now() - chrono::Duration::seconds(11)),
        "enqueued_at is when it called, never reset"
    );
}

/// The `<Dial>` document of round 1 of `sid`: which agents it rings.
async fn rung(w: &World, sid: &str) -> Vec<String> {
    let dial = w.doc(dial_agents(sid, 1)).await;
    ["ann", "ben", "cy", "dee"]
        .into_iter()
        .filter(|name| dial.contains(&format!("sip:{name}@")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn one_matcher_pass_serves_the_waiting_callers_in_order_each_with_the_next_agents() {
    for (strategy, per_caller) in [(QueueStrategy::LongestIdle, 1), (QueueStrategy::RingAll, 2)] {
        let mut settings = FlowSettings::default();
        settings.queue.strategy = strategy;
        settings.max_agents_per_round = 2;
        let w = World::new(settings);
        for sid in ["c1", "c2", "c3"] {
            w.tick(1);
            w.send(inbound(sid)).await;
        }
        // The agents come online one after the other: Ann has been idle longest.
        for name in ["Ann", "Ben", "Cy", "Dee"] {
            w.tick(1);
            w.agent(name).await;
        }
        let pass = w.sweep().await;
        let served: Vec<&str> = pass.reserved.iter().map(|(sid, _)| sid.as_str()).collect();
        let expected: &[&str] = if per_caller == 1 {
            &["c1", "c2", "c3"]
        } else {
            &["c1", "c2"]
        };
        assert_eq!(served, expected, "{strategy:?}");
        assert_eq!(pass.match_times.len(), served.len());
        if per_caller == 1 {
            assert_eq!(rung(&w, "c1").await, ["ann"]);
            assert_eq!(rung(&w, "c2").await, ["ben"]);
            assert_eq!(rung(&w, "c3").await, ["cy"]);
        } else {
            assert_eq!(rung(&w, "c1").await, ["ann", "ben"]);
            assert_eq!(rung(&w, "c2").await, ["cy", "dee"]);
            assert!(w.call("c3").await.is_waiting());
        }
    }
}

#[tokio::test]
async fn ring_all_reserves_every_free_agent_and_an_answer_frees_the_others_at_once() {
    let w = World::default();
    let (ann, ben) = (w.agent("Ann").await, w.agent("Ben").await);
    w.send(inbound("c1")).await;
    w.send(inbound("c2")).await;
    assert!(
        w.call("c2").await.is_waiting(),
        "both agents are reserved for c1"
    );
    w.send(dial_agents("c1", 1)).await;
    w.send(leg("c1", 1, &ann, "la", LegStatus::InProgress, 2))
        .await;
    let ben_now = w.agent_view(&ben).await;
    assert_eq!(
        ben_now.activity,
        Activity::Reserved,
        "Ben, released from c1 by Ann's answer, is reserved for c2 at once"
    );
    assert!(w.call("c2").await.round_open);
    assert_eq!(ben_now.metrics.calls_missed, 0, "a release is not a miss");
    assert_eq!(w.agent_view(&ann).await.activity, Activity::OnCall);
}

#[tokio::test]
async fn a_miss_delays_the_agent_and_three_in_a_row_pause_it() {
    let mut settings = longest_idle();
    settings.max_attempts = 10;
    let w = World::new(settings);
    let ann = w.agent("Ann").await;
    w.send(inbound("c1")).await;
    for round in 1..=3 {
        w.send(dial_agents("c1", round)).await;
        w.send(leg(
            "c1",
            round,
            &ann,
            &format!("l{round}"),
            LegStatus::NoAnswer,
            2,
        ))
        .await;
        let next = w
            .doc(dial_result("c1", round, Some("no-answer"), None))
            .await;
        assert!(next.contains("<Play"), "back on hold: {next}");
        let view = w.agent_view(&ann).await;
        assert_eq!(view.missed_in_a_row, round);
        if round < 3 {
            assert!(view.no_answer_until.is_some(), "in her no-answer delay");
            assert!(
                w.call("c1").await.is_waiting(),
                "not offered during the delay"
            );
            w.tick(9);
            w.sweep().await;
            assert!(w.call("c1").await.is_waiting(), "still in the delay");
            w.tick(1);
            w.sweep().await;
            assert!(w.call("c1").await.round_open, "offered again after it");
        }
    }
    let ann_now = w.agent_view(&ann).await;
    assert_eq!(ann_now.status, EffectiveStatus::Paused);
    assert_eq!(
        ann_now
            .paused_reason
            .as_ref()
            .map(agents::PauseReason::as_str),
        Some(MISSED_CALLS)
    );
    assert_eq!(ann_now.metrics.calls_missed, 3);
    w.tick(60);
    w.sweep().await;
    assert!(
        w.call("c1").await.is_waiting(),
        "a paused agent is not offered"
    );
    // She resumes: counted from zero again, offered again.
    w.agents
        .heartbeat(
            agents::Caller::Agent(ann.id),
            &ann.id.to_string(),
            Some("available"),
            None,
        )
        .await
        .unwrap();
    w.sweep().await;
    assert_eq!(w.agent_view(&ann).await.missed_in_a_row, 0);
    assert!(w.call("c1").await.round_open);
}

#[tokio::test]
async fn a_miss_learned_after_the_next_offer_still_counts_in_a_row() {
    let mut settings = longest_idle();
    settings.queue.no_answer_delay = chrono::Duration::zero();
    let w = World::new(settings);
    let ann = w.agent("Ann").await;
    // Miss 1.
    w.send(inbound("c0")).await;
    w.send(dial_agents("c0", 1)).await;
    w.send(leg("c0", 1, &ann, "l0", LegStatus::NoAnswer, 2))
        .await;
    w.send(dial_result("c0", 1, Some("no-answer"), None)).await;
    w.send(call_status("c0", "completed")).await;
    // c1 rings Ann, then its caller hangs up before her leg reports: she is free again
    // and offered c2 at once.
    w.send(inbound("c1")).await;
    w.send(dial_agents("c1", 1)).await;
    w.send(call_status("c1", "completed")).await;
    w.send(inbound("c2")).await;
    assert!(w.call("c2").await.round_open, "Ann reserved for c2");
    // Her leg for c1 reports only now: miss 2, learned after the next offer was made.
    w.send(leg("c1", 1, &ann, "l1", LegStatus::NoAnswer, 2))
        .await;
    assert_eq!(w.agent_view(&ann).await.missed_in_a_row, 2);
    // Miss 3 (c2's offer was made when she had missed only once): three in a row.
    w.send(dial_agents("c2", 1)).await;
    w.send(leg("c2", 1, &ann, "l2", LegStatus::NoAnswer, 2))
        .await;
    let view = w.agent_view(&ann).await;
    assert_eq!(view.missed_in_a_row, 3);
    assert_eq!(view.status, EffectiveStatus::Paused);
    let pauses = w
        .audit
        .entries(&audit::AuditFilter {
            agent_id: Some(ann.id.0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == audit::AuditAction::AgentStatusChanged)
        .count();
    assert_eq!(pauses, 1, "the pause is audited once");
}

#[tokio::test]
async fn a_caller_who_hangs_up_in_the_queue_is_abandoned_and_frees_its_reservation() {
    let w = World::default();
    w.send(inbound("waiting")).await;
    w.tick(40);
    w.send(call_status("waiting", "completed")).await;
    let c = w.call("waiting").await;
    assert_eq!(c.outcome, Some(Outcome::Abandoned));
    assert_eq!(
        (c.ended_at.unwrap() - c.enqueued_at.unwrap()).num_seconds(),
        40,
        "its wait is kept"
    );
    w.send(inbound("reserved")).await;
    let ann = w.agent("Ann").await;
    w.sweep().await;
    assert_eq!(w.agent_view(&ann).await.activity, Activity::Reserved);
    w.send(call_status("reserved", "completed")).await;
    let view = w.agent_view(&ann).await;
    assert_eq!(
        (view.activity, view.status, view.metrics.calls_missed),
        (Activity::Idle, EffectiveStatus::Available, 0)
    );
}

#[tokio::test]
async fn a_push_delivers_the_offer_once_and_a_failed_push_falls_back_to_the_hold_loop() {
    let w = World::default();
    w.send(inbound("c1")).await;
    // Ann becomes free while c1 waits: the matcher reserves her, pending delivery.
    w.agent("Ann").await;
    w.sweep().await;
    let jobs = w.flow.claim_pushes().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (
            jobs[0].call_sid.as_str(),
            jobs[0].account_sid.as_str(),
            jobs[0].round
        ),
        ("c1", "acct", 1)
    );
    assert!(jobs[0].url.as_str().contains("kind=push"));
    assert!(
        w.flow.claim_pushes().await.unwrap().is_empty(),
        "claimed once"
    );
    // The hold loop's request while the push is on its way: another segment, no <Dial>.
    let hold = w.doc(dial_agents("c1", 1)).await;
    assert!(!hold.contains("<Dial"), "{hold}");
    // Telnyx fetched the push target: the <Dial>, delivered by push.
    let dial = w.doc(pushed_offer("c1", 1)).await;
    assert!(dial.contains("sip:ann@"), "{dial}");
    assert_eq!(w.call("c1").await.delivery, Some(Delivery::Delivered));

    // A second caller, waiting while Ann rings for c1; reserved when c1 ends. Its push
    // fails twice, then a third time: left to the hold loop.
    w.send(inbound("c2")).await;
    assert!(w.call("c2").await.is_waiting());
    w.send(call_status("c1", "completed")).await;
    for attempt in 1..=3 {
        let jobs = w.flow.claim_pushes().await.unwrap();
        assert_eq!(jobs.len(), 1, "attempt {attempt}");
        w.flow.push_failed(&jobs[0]).await.unwrap();
    }
    assert_eq!(w.call("c2").await.delivery, Some(Delivery::Pull));
    assert!(w.flow.claim_pushes().await.unwrap().is_empty());
    let dial = w.doc(dial_agents("c2", 1)).await;
    assert!(dial.contains("sip:ann@"), "pulled: {dial}");
}

#[tokio::test]
async fn a_reservation_nobody_takes_up_is_withdrawn_and_the_caller_keeps_its_place() {
    let w = World::default();
    w.send(inbound("gone-quiet")).await;
    let ann = w.agent("Ann").await;
    w.sweep().await;
    assert!(w.call("gone-quiet").await.round_open);
    w.tick(29);
    assert_eq!(w.sweep().await.withdrawn, 0);
    w.tick(1);
    let pass = w.sweep().await;
    assert_eq!(pass.withdrawn, 1);
    let c = w.call("gone-quiet").await;
    // Withdrawn, then (Ann free again, the caller still first in line) reserved again.
    assert_eq!(pass.reserved, vec![("gone-quiet".to_owned(), 2)]);
    assert_eq!(c.attempts, 2);
    assert_eq!(w.agent_view(&ann).await.metrics.calls_missed, 0);
}

#[tokio::test]
async fn the_longest_wait_sends_the_caller_to_voicemail() {
    let w = World::default();
    w.send(inbound("c1")).await;
    w.tick(599);
    assert!(w.doc(dial_agents("c1", 1)).await.contains("<Play"));
    w.tick(1);
    let ann = w.agent("Ann").await;
    w.sweep().await;
    assert_eq!(
        w.agent_view(&ann).await.activity,
        Activity::Idle,
        "not reserved for a caller past its longest wait"
    );
    assert!(
        w.doc(dial_agents("c1", 1)).await.contains("<Record"),
        "the voicemail prompt and <Record>, in the hold request's own answer"
    );
}

#[tokio::test]
async fn a_round_bridged_to_a_leg_not_yet_known_keeps_its_agents_until_their_legs_report() {
    let w = World::new(FlowSettings {
        wrap_up: chrono::Duration::seconds(30),
        ..FlowSettings::default()
    });
    let (ann, ben) = (w.agent("Ann").await, w.agent("Ben").await);
    w.send(inbound("c1")).await;
    w.send(dial_agents("c1", 1)).await;
    // `<Dial action>` first: bridged to Ben's leg, whose callbacks are still on their way.
    w.tick(20);
    w.send(dial_result("c1", 1, Some("completed"), Some("lb")))
        .await;
    w.send(call_status("c1", "completed")).await;
    w.send(inbound("c2")).await;
    assert!(
        w.call("c2").await.is_waiting() && !w.call("c2").await.round_open,
        "nobody knows who talked: neither agent is offered c2 yet"
    );
    // Ann's leg reports it was canceled: she did not talk, and takes c2 at once.
    w.send(leg("c1", 1, &ann, "la", LegStatus::Canceled, 4))
        .await;
    assert_eq!(w.agent_view(&ann).await.activity, Activity::Reserved);
    assert!(w.call("c2").await.round_open);
    // Ben's leg reports its answer and its end: his wrap-up starts from then.
    w.send(leg("c1", 1, &ben, "lb", LegStatus::InProgress, 2))
        .await;
    w.send(leg("c1", 1, &ben, "lb", LegStatus::Completed, 3))
        .await;
    let ben_now = w.agent_view(&ben).await;
    assert_eq!(ben_now.activity, Activity::WrapUp);
    assert_eq!(
        (
            ben_now.metrics.calls_answered,
            ben_now.metrics.total_talk_seconds
        ),
        (1, 42)
    );
    assert_eq!(w.agent_view(&ann).await.metrics.calls_missed, 0);
    let c1 = w.call("c1").await;
    assert_eq!(
        (c1.outcome, c1.answered_by),
        (Some(Outcome::Answered), Some(ben.id))
    );
}
