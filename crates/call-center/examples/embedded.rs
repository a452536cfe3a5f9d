//! Embedding the call-center domain in another Rust service: whole calls run through the
//! domain with in-memory adapters — no HTTP, no database — printing the TeXML Telnyx would
//! receive at each step.
//!
//! ```text
//! cargo run -p call-center --example embedded
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example: a panic is a bug report

use std::sync::Arc;

use agents::{AgentService, AgentView, Caller, ManualClock, MemoryAgentStore, NewAgent};
use audit::{AuditLog, ChainSink, MemoryAuditLog, verify_chain};
use call_center::{
    CallFlow, CallerStatus, DialStatus, Event, FlowSettings, LegEvent, LegStatus, MemoryCallStore,
    Ports, RecordingInfo, Reply, TranscriptionInfo, UrlKeys, Urls,
};
use chrono::{Duration, Utc};

struct Demo {
    flow: CallFlow,
    clock: ManualClock,
}

impl Demo {
    async fn step(&self, label: &str, event: Event) {
        self.clock.advance(Duration::seconds(2));
        let handled = self.flow.handle(&event, None).await.unwrap();
        match handled.reply {
            Reply::Document(doc) => println!("--> {label}\n{}\n", doc.render_pretty()),
            Reply::Ack => println!("--> {label}: acknowledged\n"),
        }
        // The server's matcher runs after every change: it reserves free agents for the
        // caller at the head of the queue.
        for (call, round) in self.flow.match_queue().await.unwrap().reserved {
            println!("--- matcher: round {round} reserved for {call}\n");
        }
    }
}

/// A leg's status callback, as the server-signed `<Sip statusCallback>` URL of the offer to
/// `agent` in round `attempt` reports it.
fn leg(
    call: &str,
    attempt: i32,
    agent: &AgentView,
    leg_sid: &str,
    status: LegStatus,
    duration: Option<i64>,
) -> Event {
    Event::Leg(LegEvent {
        leg_sid: leg_sid.into(),
        call_sid: Some(call.into()),
        offer: Some((attempt, agent.id)),
        status,
        to: Some(agent.sip_uri.clone()),
        duration,
        sequence: None,
        event_id: None,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The in-memory adapters: the same ports the server wires to SQLite or PostgreSQL.
    let clock = ManualClock::at(Utc::now());
    let audit = MemoryAuditLog::new();
    let agent_store = MemoryAgentStore::new(audit.clone());
    let calls = MemoryCallStore::new(agent_store.clone(), audit.clone());
    let ttl = Duration::seconds(60);
    let agents = AgentService::new(
        Arc::new(agent_store.clone()),
        Arc::new(clock.clone()),
        Arc::new(ChainSink),
        ttl,
    );
    let settings = FlowSettings::default();
    let urls = Urls::new("https://callcenter.example.com", UrlKeys::random()).unwrap();
    let ports = Ports {
        calls: Arc::new(calls.clone()),
        queue: Arc::new(calls),
        agents: Arc::new(agent_store),
        clock: Arc::new(clock.clone()),
        audit: Arc::new(ChainSink),
    };
    let demo = Demo {
        flow: CallFlow::new(ports, settings, urls, ttl),
        clock: clock.clone(),
    };

    let alice = NewAgent {
        name: "Alice",
        sip_uri: "sip:alice@example.sip.telnyx.com",
        status: Some("available"),
        reason: None,
    };
    let bob = NewAgent {
        name: "Bob",
        sip_uri: "sip:bob@example.sip.telnyx.com",
        status: Some("available"),
        reason: None,
    };
    let (alice, _) = agents.register(alice, Caller::Admin).await.unwrap();
    let (bob, _) = agents.register(bob, Caller::Admin).await.unwrap();

    println!("=== Call 1: the matcher reserves both agents, Alice answers first ===\n");
    let c = "v3:call-1";
    demo.step(
        "POST /inbound",
        Event::Inbound {
            call_sid: c.into(),
            from: "+13125550100".into(),
            to: "+13125550199".into(),
            account_sid: None,
            connection_id: None,
        },
    )
    .await;
    demo.step(
        "POST /dial-agents?round=1 (the hold loop's request takes the offer)",
        Event::DialAgents {
            call_sid: c.into(),
            round: Some(1),
            pushed: false,
        },
    )
    .await;
    demo.step(
        "POST /outbound/event (Alice answers)",
        leg(c, 1, &alice, "leg-a", LegStatus::InProgress, None),
    )
    .await;
    demo.step(
        "POST /outbound/event (Bob's leg canceled)",
        leg(c, 1, &bob, "leg-b", LegStatus::Canceled, None),
    )
    .await;
    clock.advance(Duration::seconds(95));
    demo.step(
        "POST /outbound/event (Alice hangs up)",
        leg(c, 1, &alice, "leg-a", LegStatus::Completed, Some(95)),
    )
    .await;
    demo.step(
        "POST /retry-dial?attempt=1",
        Event::DialResult {
            call_sid: c.into(),
            round: Some(1),
            dial_call_status: Some(DialStatus::Completed),
            dial_call_sid: Some("leg-a".into()),
            without_agents: false,
        },
    )
    .await;
    demo.step(
        "POST /events",
        Event::CallStatus {
            call_sid: c.into(),
            call_status: CallerStatus::Completed,
            sequence: None,
        },
    )
    .await;

    println!("=== Call 2: everyone goes offline, the caller leaves a voicemail ===\n");
    clock.advance(Duration::seconds(120)); // heartbeats expire: nobody is available
    let c = "v3:call-2";
    demo.step(
        "POST /inbound",
        Event::Inbound {
            call_sid: c.into(),
            from: "+13125550101".into(),
            to: "+13125550199".into(),
            account_sid: None,
            connection_id: None,
        },
    )
    .await;
    demo.step(
        "POST /dial-agents?round=1 (nobody free: a hold segment with the caller's place)",
        Event::DialAgents {
            call_sid: c.into(),
            round: Some(1),
            pushed: false,
        },
    )
    .await;
    clock.advance(Duration::seconds(600)); // the longest wait passes
    demo.step(
        "POST /dial-agents?round=1 (waited too long: on to voicemail)",
        Event::DialAgents {
            call_sid: c.into(),
            round: Some(1),
            pushed: false,
        },
    )
    .await;
    demo.step("POST /voicemail", Event::Voicemail { call_sid: c.into() })
        .await;
    let recording = RecordingInfo {
        sid: Some("rec-2".into()),
        status: Some("completed".into()),
        url: Some("https://api.telnyx.com/v2/recordings/rec-2.mp3".into()),
        duration: Some(21),
    };
    demo.step(
        "POST /voicemail/callback (transcription)",
        Event::VoicemailTranscription {
            call_sid: c.into(),
            transcription: TranscriptionInfo {
                sid: Some("tr-2".into()),
                status: Some("completed".into()),
                text: Some("Hi, please call me back.".into()),
            },
        },
    )
    .await;
    demo.step(
        "POST /voicemail/callback (Record action)",
        Event::VoicemailRecorded {
            call_sid: c.into(),
            recording,
        },
    )
    .await;
    demo.step(
        "POST /events",
        Event::CallStatus {
            call_sid: c.into(),
            call_status: CallerStatus::Completed,
            sequence: None,
        },
    )
    .await;

    println!("=== Afterwards ===\n");
    for sid in ["v3:call-1", "v3:call-2"] {
        let call = demo.flow.call(sid).await.unwrap().unwrap();
        println!("{}", serde_json::to_string_pretty(&call).unwrap());
    }
    let alice = agents.get(&alice.id.to_string()).await.unwrap();
    println!("Alice: {}", serde_json::to_string(&alice.metrics).unwrap());
    audit.seal_pending().await.unwrap();
    let report = verify_chain(&audit).await.unwrap();
    println!(
        "audit log: {} entries, chain ok = {}, head {}",
        report.entries, report.ok, report.head
    );
}
