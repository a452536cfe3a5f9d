//! The database ceiling of the webhook hot path: the statements a webhook issues (load, the
//! available-agents query for a round, the one-statement apply, the receipt inserts, the
//! audit sealer), driven in-process in a tight loop with no HTTP, no signature check and no
//! form parsing. `make bench` runs it next to the HTTP load runs so the server's overhead
//! over its database is visible.
//!
//! ```text
//! cargo run --release -p store --example hot_path_sql -- DATABASE_URL [CALLS] [CONCURRENCY] [OFFERS] [POOL] [FLOW]
//! ```
//!
//! FLOW `sim` (the default): each call is shaped like a simulated call that nobody
//! answers: inbound, one round that offers the call to `OFFERS` agents, a `no-answer`
//! callback per offer, the `<Dial>` result, voicemail, the recording, and the caller's
//! hang-up.
//!
//! FLOW `noanswer` or `answered`: the calls of the side-by-side harness
//! (`../shared/bench-vs-demo`, flows `cc-noanswer` and `cc-answered`, mode brief), driven
//! the way its generator drives the server: each answer is followed (the `<Dial>` in the
//! greeting, the next round in the `<Dial action>`'s answer, the `<Record>`), with
//! `2 × CONCURRENCY + 2` agents, two rung per round, no no-answer delay and no pauses
//! (as `tools/bench-vs-demo.sh` runs the server). `OFFERS` is ignored. The leg's
//! `initiated` callbacks are left out: under a signed body they never reach the store.
//!
//! Prints one JSON line; `stored_webhooks` counts the webhooks handed to the flow.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is a bug report

#[path = "support/mod.rs"]
mod support;

/// The server's allocator, so the ceiling and the server are measured alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use support::arg;

use agents::{AgentId, AgentService, Caller, Clock, NewAgent, SystemClock};
use audit::ChainSink;
use call_center::{
    CallFlow, CallerStatus, DialStatus, Event, FlowSettings, LegEvent, LegStatus, Ports, Receipt,
    RecordingInfo, Reply, SignedRequest, UrlKeys, Urls,
};
use chrono::Duration;
use futures::StreamExt as _;
use store::{Store, StoreOptions};
use texml::{DialNoun, Verb};

struct Bench {
    flow: CallFlow,
    /// The agents rung: id and SIP URI.
    agents: Vec<(AgentId, String)>,
}

/// What a harness caller does after an answer.
enum Next {
    /// Ring: the round (from the `<Dial action>`) and each leg's offer (round, agent).
    Dial(i32, Vec<(i32, AgentId)>),
    /// The hold loop's next request, for this round.
    Hold(i32),
    /// Leave a voicemail.
    Record,
    /// Nothing more.
    End,
}

/// A query parameter of a URL the server wrote.
fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn next(reply: &Reply) -> Next {
    let Reply::Document(doc) = reply else {
        return Next::End;
    };
    for verb in &doc.verbs {
        match verb {
            Verb::Dial(d) => {
                let round = d
                    .action
                    .as_ref()
                    .and_then(|u| param(u.as_str(), "round"))
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(1);
                let offers = d
                    .nouns()
                    .iter()
                    .filter_map(|n| match n {
                        DialNoun::Sip(sip) => sip.status_callback.as_ref(),
                        _ => None,
                    })
                    .filter_map(|u| param(u.as_str(), "agent"))
                    .filter_map(|a| a.parse().ok())
                    .map(|a| (round, AgentId(a)))
                    .collect();
                return Next::Dial(round, offers);
            }
            Verb::Redirect(r) => {
                let round = param(r.url.as_str(), "round").and_then(|r| r.parse().ok());
                return round.map_or(Next::End, Next::Hold);
            }
            Verb::Record(_) => return Next::Record,
            _ => {}
        }
    }
    Next::End
}

fn signed(n: &mut u64, call: &str) -> Option<SignedRequest> {
    *n += 1;
    Some(SignedRequest {
        receipt: Receipt {
            key: format!("sig:{call}:{n}"),
            fingerprint: format!("fp:{n}"),
        },
        covers_parameters: true,
    })
}

impl Bench {
    /// Runs one call; returns the number of stored webhooks it took.
    async fn call(&self, call: String) -> u64 {
        let mut n = 0;
        let mut events = vec![
            Event::Inbound {
                call_sid: call.clone(),
                from: "+13125550100".into(),
                to: "+13125550199".into(),
                account_sid: None,
                connection_id: None,
            },
            Event::DialAgents {
                call_sid: call.clone(),
                round: Some(1),
                pushed: false,
            },
        ];
        for (i, (agent, sip)) in self.agents.iter().enumerate() {
            events.push(Event::Leg(LegEvent {
                leg_sid: format!("{call}-leg-{i}"),
                call_sid: Some(call.clone()),
                offer: Some((1, *agent)),
                status: LegStatus::NoAnswer,
                to: Some(sip.clone()),
                duration: None,
                sequence: Some(3),
                event_id: None,
            }));
        }
        let recording = RecordingInfo {
            sid: Some(format!("{call}-rec")),
            status: Some("completed".into()),
            url: Some("https://example.com/rec.mp3".into()),
            duration: Some(15),
        };
        events.extend([
            Event::DialResult {
                call_sid: call.clone(),
                round: Some(1),
                dial_call_status: Some(DialStatus::NoAnswer),
                dial_call_sid: None,
                without_agents: false,
            },
            Event::Voicemail {
                call_sid: call.clone(),
            },
            Event::VoicemailRecording {
                call_sid: call.clone(),
                recording,
            },
            Event::CallStatus {
                call_sid: call.clone(),
                call_status: CallerStatus::Completed,
                sequence: Some(9),
            },
        ]);
        for event in &events {
            let sig = signed(&mut n, &call);
            self.flow.handle(event, sig).await.expect("handled");
        }
        n
    }

    async fn send(&self, n: &mut u64, call: &str, event: Event) -> Reply {
        let sig = signed(n, call);
        self.flow.handle(&event, sig).await.expect("handled").reply
    }

    /// One call as the harness's generator places it; the number of stored webhooks.
    async fn harness_call(&self, call: String, answer: bool) -> u64 {
        let mut n = 0;
        let leg = |round: i32, agent: AgentId, i: usize, status, duration, sequence| {
            Event::Leg(LegEvent {
                leg_sid: format!("{call}-leg{round}-{i}"),
                call_sid: Some(call.clone()),
                offer: Some((round, agent)),
                status,
                to: None,
                duration,
                sequence: Some(sequence),
                event_id: None,
            })
        };
        let inbound = Event::Inbound {
            call_sid: call.clone(),
            from: "+13125550100".into(),
            to: "+13125550199".into(),
            account_sid: None,
            connection_id: None,
        };
        let mut reply = self.send(&mut n, &call, inbound).await;
        let mut answered = false;
        for _ in 0..60 {
            match next(&reply) {
                Next::Dial(round, offers) if answer && !answered && !offers.is_empty() => {
                    answered = true;
                    let (_, winner) = offers[0];
                    self.send(
                        &mut n,
                        &call,
                        leg(round, winner, 0, LegStatus::InProgress, None, 2),
                    )
                    .await;
                    for (i, (_, other)) in offers.iter().enumerate().skip(1) {
                        self.send(
                            &mut n,
                            &call,
                            leg(round, *other, i, LegStatus::Canceled, None, 2),
                        )
                        .await;
                    }
                    let done = leg(round, winner, 0, LegStatus::Completed, Some(120), 3);
                    self.send(&mut n, &call, done).await;
                    let result = Event::DialResult {
                        call_sid: call.clone(),
                        round: Some(round),
                        dial_call_status: Some(DialStatus::Completed),
                        dial_call_sid: Some(format!("{call}-leg{round}-0")),
                        without_agents: false,
                    };
                    reply = self.send(&mut n, &call, result).await;
                }
                Next::Dial(round, _) => {
                    let result = Event::DialResult {
                        call_sid: call.clone(),
                        round: Some(round),
                        dial_call_status: Some(DialStatus::NoAnswer),
                        dial_call_sid: None,
                        without_agents: false,
                    };
                    reply = self.send(&mut n, &call, result).await;
                }
                Next::Hold(round) => {
                    let hold = Event::DialAgents {
                        call_sid: call.clone(),
                        round: Some(round),
                        pushed: false,
                    };
                    reply = self.send(&mut n, &call, hold).await;
                }
                Next::Record => {
                    let recorded = Event::VoicemailRecorded {
                        call_sid: call.clone(),
                        recording: RecordingInfo {
                            sid: Some(format!("{call}-rec")),
                            status: None,
                            url: Some("https://example.com/rec.mp3".into()),
                            duration: Some(12),
                        },
                    };
                    self.send(&mut n, &call, recorded).await;
                    break;
                }
                Next::End => break,
            }
        }
        let end = Event::CallStatus {
            call_sid: call.clone(),
            call_status: CallerStatus::Completed,
            sequence: Some(9),
        };
        self.send(&mut n, &call, end).await;
        n
    }
}

fn concurrency_arg(args: &[String]) -> usize {
    arg(args, 3, 200)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .expect("usage: hot_path_sql DATABASE_URL [CALLS] [CONCURRENCY] [OFFERS]");
    let calls: usize = arg(&args, 2, 2000);
    let concurrency: usize = concurrency_arg(&args);
    let flow = args.get(6).cloned().unwrap_or_else(|| "sim".to_owned());
    let harness = match flow.as_str() {
        "sim" => None,
        "noanswer" => Some(false),
        "answered" => Some(true),
        other => panic!("FLOW is sim, noanswer or answered, not {other}"),
    };
    let offers: usize = match harness {
        Some(_) => 2 * concurrency_arg(&args) + 2,
        None => arg(&args, 4, 20),
    };
    let mut options = StoreOptions::new(url);
    // The server's default pool size unless told otherwise: like for like.
    options.max_connections = arg(&args, 5, options.max_connections);
    let store = Store::open(&options).unwrap();
    store.migrate().await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ttl = Duration::hours(1);
    let agents = AgentService::new(store.agents(), clock.clone(), Arc::new(ChainSink), ttl);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut rung = Vec::new();
    for i in 0..offers {
        let sip = format!("sip:bench-{}-{i}@example.sip.telnyx.com", &run[..8]);
        let agent = NewAgent {
            name: &format!("Bench {i}"),
            sip_uri: &sip,
            status: Some("available"),
            reason: None,
        };
        let (view, _) = agents.register(agent, Caller::Admin).await.unwrap();
        rung.push((view.id, sip));
    }
    let settings = match harness {
        None => FlowSettings {
            max_attempts: 1,
            max_agents_per_round: u32::try_from(offers).unwrap().max(1),
            ..FlowSettings::default()
        },
        Some(_) => {
            let mut s = FlowSettings {
                max_agents_per_round: 2,
                ..FlowSettings::default()
            };
            s.queue.no_answer_delay = Duration::zero();
            s.queue.misses_to_pause = 0;
            s
        }
    };
    let urls = Urls::new("https://cc.example.com", UrlKeys::random()).unwrap();
    let ports = Ports {
        calls: store.calls(),
        queue: store.queue(),
        agents: store.agents(),
        clock,
        audit: Arc::new(ChainSink),
    };
    let bench = Bench {
        flow: CallFlow::new(ports, settings, urls, ttl),
        agents: rung,
    };
    // The matcher, as the server runs it: after every change that may make a match.
    let matcher = {
        let flow = bench.flow.clone();
        tokio::spawn(async move {
            loop {
                flow.nudged().await;
                flow.match_waiting().await.unwrap();
            }
        })
    };
    let audit = store.audit();
    let sealer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(StdDuration::from_millis(500)).await;
            audit.seal_pending().await.unwrap();
        }
    });
    let started = Instant::now();
    let bench = &bench;
    let webhooks: u64 = futures::stream::iter(0..calls)
        .map(|i| {
            let sid = format!("v3:bench-{}-{i}", &run[..8]);
            async move {
                match harness {
                    None => bench.call(sid).await,
                    Some(answer) => bench.harness_call(sid, answer).await,
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .fold(0, |sum, n| async move { sum + n })
        .await;
    let secs = started.elapsed().as_secs_f64();
    sealer.abort();
    matcher.abort();
    #[allow(clippy::cast_precision_loss)]
    let line = serde_json::json!({
        "label": "direct-sql",
        "flow": flow,
        "backend": store.backend().as_str(),
        "calls": calls,
        "concurrency": concurrency,
        "offers_per_call": offers,
        "stored_webhooks": webhooks,
        "elapsed_seconds": secs,
        "calls_per_second": calls as f64 / secs,
        "stored_webhooks_per_second": webhooks as f64 / secs,
    });
    println!("{line}");
    store.close().await;
}
