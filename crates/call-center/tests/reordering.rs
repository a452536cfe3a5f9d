//! Every callback sent twice and in shuffled order ends in the same state and metrics as
//! the same callbacks sent once, in order. Instruction requests keep their order (Telnyx
//! waits for each answer); a callback may arrive any time after the request that caused it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use agents::AgentView;
use call_center::*;
use proptest::prelude::*;
use support::*;

/// One step of a scripted call: an instruction request, or a callback caused by the
/// instruction at index `after`.
#[derive(Debug, Clone)]
enum Step {
    Instruction(Event),
    Callback { after: usize, event: Event },
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    AnsweredFirstRound,
    AnsweredSecondRound,
    Abandoned,
    Voicemail,
}

fn script(s: Scenario, a: &AgentView, b: &AgentView, c: &AgentView) -> Vec<Step> {
    use LegStatus::*;
    use Step::{Callback as C, Instruction as I};
    let sid = "call";
    let cb = |after, event| C { after, event };
    match s {
        Scenario::AnsweredFirstRound => vec![
            I(inbound(sid)),
            I(dial_agents(sid, 1)),
            cb(1, leg(sid, 1, a, "la", Ringing, 1)),
            cb(1, leg(sid, 1, b, "lb", Ringing, 1)),
            cb(1, leg(sid, 1, c, "lc", Busy, 2)),
            cb(1, leg(sid, 1, a, "la", InProgress, 2)),
            cb(1, leg(sid, 1, b, "lb", Canceled, 2)),
            cb(1, leg(sid, 1, a, "la", Completed, 3)),
            I(dial_result(sid, 1, Some("completed"), Some("la"))),
            cb(
                2,
                Event::CallRecording {
                    call_sid: sid.into(),
                    recording: recording(sid),
                },
            ),
            cb(2, call_status(sid, "completed")),
        ],
        Scenario::AnsweredSecondRound => vec![
            I(inbound(sid)),
            I(dial_agents(sid, 1)),
            cb(1, leg(sid, 1, a, "la1", NoAnswer, 2)),
            cb(1, leg(sid, 1, b, "lb1", NoAnswer, 2)),
            cb(1, leg(sid, 1, c, "lc1", Failed, 2)),
            I(dial_result(sid, 1, Some("no-answer"), None)),
            I(dial_agents(sid, 2)),
            cb(3, leg(sid, 2, b, "lb2", InProgress, 2)),
            cb(3, leg(sid, 2, a, "la2", Canceled, 2)),
            cb(3, leg(sid, 2, c, "lc2", Canceled, 2)),
            cb(3, leg(sid, 2, b, "lb2", Completed, 3)),
            I(dial_result(sid, 2, Some("completed"), Some("lb2"))),
            cb(4, call_status(sid, "completed")),
        ],
        Scenario::Abandoned => vec![
            I(inbound(sid)),
            I(dial_agents(sid, 1)),
            cb(1, leg(sid, 1, a, "la", Ringing, 1)),
            cb(1, leg(sid, 1, a, "la", Canceled, 2)),
            cb(1, leg(sid, 1, b, "lb", Canceled, 2)),
            cb(1, leg(sid, 1, c, "lc", Canceled, 2)),
            cb(1, call_status(sid, "completed")),
        ],
        Scenario::Voicemail => vec![
            I(inbound(sid)),
            I(dial_agents(sid, 1)),
            cb(1, leg(sid, 1, a, "la", NoAnswer, 2)),
            I(dial_result(sid, 1, Some("no-answer"), None)),
            I(dial_agents(sid, 2)),
            cb(3, leg(sid, 2, b, "lb", Busy, 2)),
            I(dial_result(sid, 2, Some("no-answer"), None)),
            I(voicemail(sid)),
            I(Event::VoicemailRecorded {
                call_sid: sid.into(),
                recording: recording(sid),
            }),
            cb(
                5,
                Event::VoicemailRecording {
                    call_sid: sid.into(),
                    recording: recording(sid),
                },
            ),
            cb(
                5,
                Event::VoicemailTranscription {
                    call_sid: sid.into(),
                    transcription: transcription(sid),
                },
            ),
            cb(6, call_status(sid, "completed")),
        ],
    }
}

/// Orders the steps: instructions in order, each callback (and its duplicate) at a random
/// point after its cause. `keys` drive the placement.
fn delivery(steps: &[Step], keys: &[(u32, bool, u32)]) -> Vec<Event> {
    let instructions: Vec<&Event> = steps
        .iter()
        .filter_map(|s| {
            if let Step::Instruction(e) = s {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    // (slot, tie-break, event): slot i means "after instruction i".
    let mut placed: Vec<(usize, u32, Event)> = Vec::new();
    let callbacks = steps.iter().filter_map(|s| {
        if let Step::Callback { after, event } = s {
            Some((*after, event))
        } else {
            None
        }
    });
    for ((after, event), (k, dup, k2)) in callbacks.zip(keys.iter().cycle()) {
        let span = (instructions.len() - after) as u32;
        placed.push((after + (k % span) as usize, *k, event.clone()));
        if *dup {
            placed.push((after + (k2 % span) as usize, *k2, event.clone()));
        }
    }
    placed.sort_by_key(|(slot, tie, _)| (*slot, *tie));
    let mut out = Vec::new();
    for (i, instruction) in instructions.iter().enumerate() {
        out.push((*instruction).clone());
        out.extend(
            placed
                .iter()
                .filter(|(slot, _, _)| *slot == i)
                .map(|(_, _, e)| e.clone()),
        );
    }
    out
}

type Summary = (
    Call,
    Option<String>,
    Vec<(i32, String, OfferState, Option<i64>)>,
    Vec<(String, i64, i64, i64, String)>,
);

async fn run(s: Scenario, keys: Option<&[(u32, bool, u32)]>) -> Summary {
    // The scripts re-offer the call to the same agents at once: no no-answer delay, no
    // pause after misses (flow.rs tests those).
    let mut settings = FlowSettings::default();
    settings.queue.no_answer_delay = chrono::Duration::zero();
    settings.queue.misses_to_pause = 0;
    let w = World::new(settings);
    let (a, b, c) = (
        w.agent("Ann").await,
        w.agent("Ben").await,
        w.agent("Cat").await,
    );
    let steps = script(s, &a, &b, &c);
    let events = match keys {
        Some(k) => delivery(&steps, k),
        None => steps
            .iter()
            .map(|s| match s {
                Step::Instruction(e) | Step::Callback { event: e, .. } => e.clone(),
            })
            .collect(),
    };
    for e in events {
        w.tick(1);
        w.send(e).await;
    }
    let state = w.calls.load("call", &[]).await.unwrap().state.unwrap();
    let mut call = state.call;
    // Timestamps and the version count differ with the order by nature; compare the facts.
    call.version = 0;
    (call.started_at, call.updated_at) =
        (chrono::DateTime::UNIX_EPOCH, chrono::DateTime::UNIX_EPOCH);
    (call.answered_at, call.ended_at, call.voicemail_started_at) = (None, None, None);
    (call.delivery_at, call.announced_at) = (None, None);
    // Agent ids are random per world: compare the winner by name.
    let winner = [&a, &b, &c]
        .iter()
        .find(|x| Some(x.id) == call.answered_by)
        .map(|x| x.name.clone());
    call.answered_by = None;
    let mut offers: Vec<_> = state
        .offers
        .iter()
        .map(|o| (o.attempt, o.sip_uri.clone(), o.state, o.talk_seconds))
        .collect();
    offers.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    let mut agents = Vec::new();
    for agent in [&a, &b, &c] {
        let v = w.agent_view(agent).await;
        agents.push((
            v.name,
            v.metrics.calls_answered,
            v.metrics.calls_missed,
            v.metrics.total_talk_seconds,
            v.status.to_string(),
        ));
    }
    (call, winner, offers, agents)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_and_repeated_callbacks_end_in_the_same_state(
        keys in prop::collection::vec((any::<u32>(), any::<bool>(), any::<u32>()), 16),
        which in 0usize..4,
    ) {
        let scenario = [Scenario::AnsweredFirstRound, Scenario::AnsweredSecondRound, Scenario::Abandoned, Scenario::Voicemail][which];
        let rt = runtime();
        let in_order = rt.block_on(run(scenario, None));
        let shuffled = rt.block_on(run(scenario, Some(&keys)));
        prop_assert_eq!(shuffled, in_order);
    }
}

#[test]
fn the_in_order_runs_have_the_expected_outcomes() {
    let rt = runtime();
    let outcome = |s| rt.block_on(run(s, None)).0.outcome;
    assert_eq!(
        outcome(Scenario::AnsweredFirstRound),
        Some(Outcome::Answered)
    );
    assert_eq!(
        outcome(Scenario::AnsweredSecondRound),
        Some(Outcome::Answered)
    );
    assert_eq!(outcome(Scenario::Abandoned), Some(Outcome::Abandoned));
    assert_eq!(outcome(Scenario::Voicemail), Some(Outcome::Voicemail));
    let (_, winner, _, agents) = rt.block_on(run(Scenario::AnsweredSecondRound, None));
    assert_eq!(winner.as_deref(), Some("Ben"));
    // Round 1: three misses; round 2: Ben answers and talks 42 s.
    assert_eq!(agents[0].1..=agents[0].3, 0..=0);
    assert_eq!((agents[1].1, agents[1].2, agents[1].3), (1, 1, 42));
    assert_eq!(agents[2].2, 1);
}
