//! The domain's cost per webhook, without I/O: whole calls through `CallFlow` on the
//! in-memory ports (load, decide, TeXML, apply). Ten agents ring, one answers, the others
//! are canceled, the call completes: 15 webhooks per call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use agents::{AgentId, AgentService, Caller, ManualClock, MemoryAgentStore, NewAgent};
use audit::{ChainSink, MemoryAuditLog};
use call_center::{
    CallFlow, CallerStatus, DialStatus, Event, FlowSettings, LegEvent, LegStatus, MemoryCallStore,
    Ports, UrlKeys, Urls,
};
use chrono::{Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const AGENTS: usize = 10;

fn leg(
    call: &str,
    agents: &[AgentId],
    i: usize,
    status: LegStatus,
    duration: Option<i64>,
) -> Event {
    Event::Leg(LegEvent {
        leg_sid: format!("{call}-leg-{i}"),
        call_sid: Some(call.into()),
        offer: Some((1, agents[i])),
        status,
        to: Some(format!("agent{i}@example.sip.telnyx.com")),
        duration,
        sequence: None,
        event_id: None,
    })
}

fn events(call: &str, agents: &[AgentId]) -> Vec<Event> {
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
            round: Some(1),
            pushed: false,
        },
        leg(call, agents, 0, LegStatus::InProgress, None),
    ];
    events.extend((1..AGENTS).map(|i| leg(call, agents, i, LegStatus::Canceled, None)));
    events.push(leg(call, agents, 0, LegStatus::Completed, Some(95)));
    events.push(Event::DialResult {
        call_sid: call.into(),
        round: Some(1),
        dial_call_status: Some(DialStatus::Completed),
        dial_call_sid: Some(format!("{call}-leg-0")),
        without_agents: false,
    });
    events.push(Event::CallStatus {
        call_sid: call.into(),
        call_status: CallerStatus::Completed,
        sequence: Some(9),
    });
    events
}

fn setup(rt: &tokio::runtime::Runtime) -> (CallFlow, Vec<AgentId>) {
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
    let ids = rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..AGENTS {
            let name = format!("Agent {i}");
            let sip = format!("sip:agent{i}@example.sip.telnyx.com");
            let agent = NewAgent {
                name: &name,
                sip_uri: &sip,
                status: Some("available"),
                reason: None,
            };
            ids.push(service.register(agent, Caller::Admin).await.unwrap().0.id);
        }
        ids
    });
    let settings = FlowSettings::default();
    let urls = Urls::new("https://cc.example.com", UrlKeys::random()).unwrap();
    let ports = Ports {
        calls: Arc::new(calls.clone()),
        queue: Arc::new(calls),
        agents: Arc::new(agent_store),
        clock: Arc::new(clock),
        audit: Arc::new(ChainSink),
    };
    (CallFlow::new(ports, settings, urls, ttl), ids)
}

fn whole_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (flow, agents) = setup(&rt);
    let mut n = 0u64;
    let per_call = events("x", &agents).len() as u64;
    let mut group = c.benchmark_group("call_flow");
    group.throughput(Throughput::Elements(per_call));
    group.bench_function("whole_call_10_agents", |b| {
        b.iter(|| {
            n += 1;
            let call = format!("v3:bench-{n}");
            rt.block_on(async {
                for event in events(&call, &agents) {
                    flow.handle(&event, None).await.unwrap();
                    // The matcher, as the server runs it after each change.
                    flow.match_queue().await.unwrap();
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, whole_call);
criterion_main!(benches);
