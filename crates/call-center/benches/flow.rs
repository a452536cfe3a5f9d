//! The domain's cost per webhook, without I/O: whole calls through `CallFlow` on the
//! in-memory ports (load, decide, TeXML, apply). Ten agents ring, one answers, the others
//! are canceled, the call completes: 15 webhooks per call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use agents::{AgentService, Caller, ManualClock, MemoryAgentStore, NewAgent};
use audit::{ChainSink, MemoryAuditLog};
use call_center::{
    CallFlow, CallerStatus, DialStatus, Event, FlowSettings, LegEvent, LegStatus, MemoryCallStore,
    Ports, Urls,
};
use chrono::{Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const AGENTS: usize = 10;

fn leg(call: &str, i: usize, status: LegStatus, duration: Option<i64>) -> Event {
    Event::Leg(LegEvent {
        leg_sid: format!("{call}-leg-{i}"),
        parent_call_sid: Some(call.into()),
        status,
        to: Some(format!("sip:agent{i}@example.sip.telnyx.com")),
        duration,
        sequence: None,
        attempt: Some(1),
        event_id: None,
    })
}

fn events(call: &str) -> Vec<Event> {
    let mut events = vec![
        Event::Inbound {
            call_sid: call.into(),
            from: "+13125550100".into(),
            to: "+13125550199".into(),
            account_sid: None,
            connection_id: None,
        },
        Event::DialAgents {
            call_sid: call.into(),
            attempt: Some(1),
        },
        leg(call, 0, LegStatus::InProgress, None),
    ];
    events.extend((1..AGENTS).map(|i| leg(call, i, LegStatus::Canceled, None)));
    events.push(leg(call, 0, LegStatus::Completed, Some(95)));
    events.push(Event::DialResult {
        call_sid: call.into(),
        attempt: Some(1),
        dial_call_status: Some(DialStatus::Completed),
        dial_call_sid: Some(format!("{call}-leg-0")),
    });
    events.push(Event::CallStatus {
        call_sid: call.into(),
        call_status: CallerStatus::Completed,
        sequence: Some(9),
    });
    events
}

fn setup(rt: &tokio::runtime::Runtime) -> CallFlow {
    let clock = ManualClock::at(Utc::now());
    let audit = MemoryAuditLog::new();
    let agent_store = MemoryAgentStore::new(audit.clone());
    let calls = MemoryCallStore::new(agent_store.clone(), audit);
    let ttl = Duration::days(365);
    let service = AgentService::new(
        Arc::new(agent_store.clone()),
        Arc::new(clock.clone()),
        Arc::new(ChainSink),
        ttl,
    );
    rt.block_on(async {
        for i in 0..AGENTS {
            let name = format!("Agent {i}");
            let sip = format!("sip:agent{i}@example.sip.telnyx.com");
            let agent = NewAgent {
                name: &name,
                sip_uri: &sip,
                status: Some("available"),
            };
            service.register(agent, Caller::Admin).await.unwrap();
        }
    });
    let settings = FlowSettings::default();
    let urls = Urls::new("https://cc.example.com", settings.max_attempts).unwrap();
    let ports = Ports {
        calls: Arc::new(calls),
        agents: Arc::new(agent_store),
        clock: Arc::new(clock),
        audit: Arc::new(ChainSink),
    };
    CallFlow::new(ports, settings, urls, ttl)
}

fn whole_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let flow = setup(&rt);
    let mut n = 0u64;
    let per_call = events("x").len() as u64;
    let mut group = c.benchmark_group("call_flow");
    group.throughput(Throughput::Elements(per_call));
    group.bench_function("whole_call_10_agents", |b| {
        b.iter(|| {
            n += 1;
            let call = format!("v3:bench-{n}");
            rt.block_on(async {
                for event in events(&call) {
                    flow.handle(&event, None).await.unwrap();
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, whole_call);
criterion_main!(benches);
