//! A property over Telnyx's own documented callback shapes (`../shared/telnyx-fixtures`,
//! adapted to a test call), read through the same parser the server uses: any permutation
//! and duplication of a call's callbacks (after the `<Dial>` that caused them) ends in the
//! same call, offers and agent state, including when the leg Telnyx bridged (`DialCallSid`)
//! answered after another agent.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use agents::{AgentId, AgentStore, AgentView};
use call_center::contract::fixtures;
use call_center::*;
use proptest::prelude::*;
use support::*;

const CALL: &str = "v3:fixture-call";

/// A request Telnyx would send: where to, and the form pairs.
#[derive(Debug, Clone)]
struct Request {
    endpoint: Endpoint,
    signed: Option<Signed>,
    params: Vec<(String, String)>,
}

impl Request {
    fn event(&self) -> Option<Event> {
        let params = Params::new(self.params.clone());
        from_params(self.endpoint, &params, self.signed.as_ref()).unwrap()
    }
}

fn leg(
    agent: AgentId,
    leg: &str,
    status: &str,
    seq: &str,
    to: &str,
    duration: Option<&str>,
) -> Request {
    let file = match status {
        "initiated" => "texml-call-initiated.form",
        "ringing" => "texml-call-ringing.form",
        "in-progress" => "texml-call-answered.form",
        _ => "texml-call-completed.form",
    };
    Request {
        endpoint: Endpoint::OutboundEvent,
        signed: Some(Signed::call(CALL).round(1).agent(agent)),
        params: fixtures::form(
            file,
            &[
                ("CallSid", Some(leg)),
                ("ParentCallSid", Some(CALL)),
                ("CallStatus", Some(status)),
                ("SequenceNumber", Some(seq)),
                ("To", Some(to)),
                ("CallDuration", duration),
                ("DialCallSid", None),
                ("DialCallStatus", None),
                ("CallControlId", None),
            ],
        ),
    }
}

/// The callbacks of one call rung to Ann and Ben: Ben answers first but Telnyx bridges Ann
/// (the `<Dial action>` says so), the `<Dial>` recording, the caller's hang-up.
fn callbacks(ann: &AgentView, ben: &AgentView) -> Vec<Request> {
    let (a, b) = (ann.id, ben.id);
    vec![
        leg(
            a,
            "v3:leg-ann",
            "initiated",
            "0",
            "ann@example.sip.telnyx.com",
            None,
        ),
        leg(
            a,
            "v3:leg-ann",
            "ringing",
            "1",
            "ann@EXAMPLE.sip.telnyx.com:5060",
            None,
        ),
        leg(
            b,
            "v3:leg-ben",
            "in-progress",
            "2",
            "ben@example.sip.telnyx.com",
            None,
        ),
        leg(
            a,
            "v3:leg-ann",
            "in-progress",
            "2",
            "ann@example.sip.telnyx.com;transport=tls",
            None,
        ),
        leg(
            b,
            "v3:leg-ben",
            "completed",
            "3",
            "ben@example.sip.telnyx.com",
            Some("2"),
        ),
        leg(
            a,
            "v3:leg-ann",
            "completed",
            "3",
            "ann@example.sip.telnyx.com",
            Some("95"),
        ),
        Request {
            endpoint: Endpoint::RetryDial,
            signed: Some(Signed::call(CALL).round(1)),
            params: fixtures::form(
                "texml-call-completed.form",
                &[
                    ("CallSid", Some(CALL)),
                    ("ParentCallSid", None),
                    ("CallStatus", Some("in-progress")),
                    ("DialCallSid", Some("v3:leg-ann")),
                    ("DialCallStatus", Some("completed")),
                ],
            ),
        },
        Request {
            endpoint: Endpoint::Events,
            signed: Some(Signed::call(CALL).kind(UrlKind::Recording)),
            params: fixtures::form(
                "texml-recording-completed.form",
                &[("CallSid", Some("v3:dial-leg"))],
            ),
        },
        Request {
            endpoint: Endpoint::Events,
            signed: None,
            params: fixtures::form(
                "texml-call-completed.form",
                &[
                    ("CallSid", Some(CALL)),
                    ("ParentCallSid", None),
                    ("DialCallSid", None),
                    ("DialCallStatus", None),
                    ("CallStatus", Some("completed")),
                ],
            ),
        },
    ]
}

/// What must not depend on the order: the call, its offers, the agents.
/// Agents appear by name (ids are random per run).
type Facts = (
    (
        CallStatus,
        Option<Outcome>,
        Option<String>,
        Option<i64>,
        Option<String>,
        i32,
    ),
    Vec<(String, OfferState, Option<i64>, Option<String>)>,
    Vec<(i64, i64, i64, bool)>,
);

async fn run(order: &[usize], twice: &[bool]) -> Facts {
    let w = World::default();
    let (ann, ben) = (w.agent("Ann").await, w.agent("Ben").await);
    w.send(inbound(CALL)).await;
    w.send(dial_agents(CALL, 1)).await;
    let requests = callbacks(&ann, &ben);
    for &i in order {
        let Some(event) = requests[i].event() else {
            continue;
        };
        for _ in 0..if twice[i] { 2 } else { 1 } {
            w.flow.handle(&event, None).await.unwrap();
        }
    }
    let name = |id: AgentId| if id == ann.id { "Ann" } else { "Ben" }.to_owned();
    let c = w.call(CALL).await;
    let state = w.calls.load(CALL, &[]).await.unwrap().state.unwrap();
    let mut offers: Vec<_> = state
        .offers
        .iter()
        .map(|o| (name(o.agent_id), o.state, o.talk_seconds, o.leg_sid.clone()))
        .collect();
    offers.sort_by(|x, y| x.0.cmp(&y.0));
    let mut agents = Vec::new();
    for a in [&ann, &ben] {
        let v = w.agent_view(a).await;
        let held = w
            .agent_store
            .get(a.id)
            .await
            .unwrap()
            .unwrap()
            .current_call_sid;
        agents.push((
            v.metrics.calls_answered,
            v.metrics.total_talk_seconds,
            v.metrics.calls_missed,
            held.is_some(),
        ));
    }
    (
        (
            c.status,
            c.outcome,
            c.answered_by.map(name),
            c.talk_seconds,
            c.recording_url,
            c.attempts,
        ),
        offers,
        agents,
    )
}

fn in_order_facts() -> Facts {
    let n = 9;
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(&(0..n).collect::<Vec<_>>(), &vec![false; n]))
}

#[test]
fn in_order_the_bridged_agent_wins_with_its_talk_time() {
    let ((status, outcome, answered_by, talk, recording, attempts), offers, agents) =
        in_order_facts();
    assert_eq!(
        (status, outcome, talk, attempts),
        (CallStatus::Completed, Some(Outcome::Answered), Some(95), 1)
    );
    assert!(recording.is_some());
    let winner = offers.iter().find(|o| o.1 == OfferState::Answered).unwrap();
    assert_eq!(
        (Some(winner.0.clone()), winner.3.as_deref()),
        (answered_by, Some("v3:leg-ann"))
    );
    // Ann: one answer, 95 s; Ben: nothing counted; nobody held.
    assert_eq!(agents, vec![(1, 95, 0, false), (0, 0, 0, false)]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_duplication_ends_the_same(
        order in Just((0..9).collect::<Vec<usize>>()).prop_shuffle(),
        twice in prop::collection::vec(any::<bool>(), 9),
    ) {
        let expected = in_order_facts();
        let got = tokio::runtime::Runtime::new().unwrap().block_on(run(&order, &twice));
        prop_assert_eq!(got, expected, "order {:?}, twice {:?}", order, twice);
    }
}
