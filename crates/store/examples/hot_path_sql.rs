//! The database ceiling of the webhook hot path: the statements a webhook issues (load, the
//! available-agents query for a round, the one-statement apply, the receipt inserts, the
//! audit sealer), driven in-process in a tight loop with no HTTP, no signature check and no
//! form parsing. `make bench` runs it next to the HTTP load runs so the server's overhead
//! over its database is visible.
//!
//! ```text
//! cargo run --release -p store --example hot_path_sql -- DATABASE_URL [CALLS] [CONCURRENCY] [OFFERS] [POOL]
//! ```
//!
//! Each call is shaped like a simulated call that nobody answers: inbound, one round that
//! offers the call to `OFFERS` agents, a `no-answer` callback per offer, the `<Dial>`
//! result, voicemail, the recording, and the caller's hang-up. That is `OFFERS + 6` stored
//! webhooks per call. Prints one JSON line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is a bug report

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use support::arg;

use agents::{AgentId, AgentService, Caller, Clock, NewAgent, SystemClock};
use audit::ChainSink;
use call_center::{
    CallFlow, CallerStatus, DialStatus, Event, FlowSettings, LegEvent, LegStatus, Ports, Receipt,
    RecordingInfo, SignedRequest, UrlKeys, Urls,
};
use chrono::Duration;
use futures::StreamExt as _;
use store::{Store, StoreOptions};

struct Bench {
    flow: CallFlow,
    /// The agents rung: id and SIP URI.
    agents: Vec<(AgentId, String)>,
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
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .expect("usage: hot_path_sql DATABASE_URL [CALLS] [CONCURRENCY] [OFFERS]");
    let calls: usize = arg(&args, 2, 2000);
    let concurrency: usize = arg(&args, 3, 200);
    let offers: usize = arg(&args, 4, 20);
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
    let settings = FlowSettings {
        max_attempts: 1,
        max_agents_per_round: u32::try_from(offers).unwrap().max(1),
        ..FlowSettings::default()
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
    let audit = store.audit();
    let sealer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(StdDuration::from_millis(500)).await;
            audit.seal_pending().await.unwrap();
        }
    });
    let started = Instant::now();
    let webhooks: u64 = futures::stream::iter(0..calls)
        .map(|i| bench.call(format!("v3:bench-{}-{i}", &run[..8])))
        .buffer_unordered(concurrency.max(1))
        .fold(0, |sum, n| async move { sum + n })
        .await;
    let secs = started.elapsed().as_secs_f64();
    sealer.abort();
    #[allow(clippy::cast_precision_loss)]
    let line = serde_json::json!({
        "label": "direct-sql",
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
