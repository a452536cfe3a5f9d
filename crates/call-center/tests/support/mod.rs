//! A fake world for flow tests: in-memory stores, a manual clock, helpers that build the
//! events Telnyx would send.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod docs;

use std::sync::Arc;

use agents::{AgentService, AgentView, Caller, ManualClock, MemoryAgentStore, NewAgent};
use audit::{ChainSink, MemoryAuditLog};
use call_center::*;
use chrono::{Duration, TimeZone, Utc};

pub struct World {
    pub clock: ManualClock,
    pub audit: MemoryAuditLog,
    pub agent_store: MemoryAgentStore,
    pub calls: MemoryCallStore,
    pub agents: AgentService,
    pub flow: CallFlow,
}

pub const BASE: &str = "https://cc.example.com";

impl World {
    pub fn new(settings: FlowSettings) -> Self {
        let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap());
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
        let urls = Urls::new(BASE, UrlKeys::random()).unwrap();
        let ports = Ports {
            calls: Arc::new(calls.clone()),
            queue: Arc::new(calls.clone()),
            agents: Arc::new(agent_store.clone()),
            clock: Arc::new(clock.clone()),
            audit: Arc::new(ChainSink),
        };
        let flow = CallFlow::new(ports, settings, urls, ttl);
        Self {
            clock,
            audit,
            agent_store,
            calls,
            agents,
            flow,
        }
    }

    pub fn default() -> Self {
        Self::new(FlowSettings::default())
    }

    pub async fn agent(&self, name: &str) -> AgentView {
        let sip = format!("sip:{}@example.sip.telnyx.com", name.to_lowercase());
        let input = NewAgent {
            name,
            sip_uri: &sip,
            status: Some("available"),
            reason: None,
        };
        self.agents.register(input, Caller::Admin).await.unwrap().0
    }

    pub async fn agent_view(&self, a: &AgentView) -> AgentView {
        self.agents.get(&a.id.to_string()).await.unwrap()
    }

    /// Handles `event`, then runs the matcher as the server's background matcher does
    /// after every applied change.
    pub async fn send(&self, event: Event) -> Handled {
        let handled = self.flow.handle(&event, None).await.unwrap();
        self.flow.match_queue().await.unwrap();
        handled
    }

    /// One matcher pass (the server's periodic sweep).
    pub async fn sweep(&self) -> MatchPass {
        self.flow.match_queue().await.unwrap()
    }

    pub async fn doc(&self, event: Event) -> String {
        match self.send(event).await.reply {
            Reply::Document(d) => d.render(),
            Reply::Ack => "<ack/>".to_owned(),
        }
    }

    pub async fn call(&self, sid: &str) -> Call {
        self.flow.stored_call(sid).await.unwrap().unwrap()
    }

    pub fn tick(&self, secs: i64) {
        self.clock.advance(Duration::seconds(secs));
    }
}

pub fn inbound(sid: &str) -> Event {
    Event::Inbound {
        call_sid: sid.into(),
        from: "+13125550100".into(),
        to: "+13125550199".into(),
        account_sid: Some("acct".into()),
        connection_id: Some("conn".into()),
    }
}

pub fn dial_agents(sid: &str, attempt: i32) -> Event {
    Event::DialAgents {
        call_sid: sid.into(),
        round: Some(attempt),
        pushed: false,
    }
}

/// The push target for round `attempt` (Telnyx's update-call redirected the caller).
pub fn pushed_offer(sid: &str, attempt: i32) -> Event {
    Event::DialAgents {
        call_sid: sid.into(),
        round: Some(attempt),
        pushed: true,
    }
}

/// `/retry-dial`: `<Dial>`'s report of round `attempt` (`status` `None`: the round rang
/// nobody and its hold document redirected).
pub fn dial_result(sid: &str, attempt: i32, status: Option<&str>, leg: Option<&str>) -> Event {
    Event::DialResult {
        call_sid: sid.into(),
        round: Some(attempt),
        dial_call_status: status.map(DialStatus::parse),
        dial_call_sid: leg.map(Into::into),
        without_agents: status.is_none(),
    }
}

pub fn leg(
    sid: &str,
    attempt: i32,
    agent: &AgentView,
    leg_sid: &str,
    status: LegStatus,
    seq: i64,
) -> Event {
    Event::Leg(LegEvent {
        leg_sid: leg_sid.into(),
        call_sid: Some(sid.into()),
        offer: Some((attempt, agent.id)),
        status,
        to: Some(agent.sip_uri.clone()),
        duration: (status == LegStatus::Completed).then_some(42),
        sequence: Some(seq),
        event_id: None,
    })
}

pub fn call_status(sid: &str, status: &str) -> Event {
    Event::CallStatus {
        call_sid: sid.into(),
        call_status: status.parse().expect("a Telnyx call status"),
        sequence: Some(9),
    }
}

pub fn voicemail(sid: &str) -> Event {
    Event::Voicemail {
        call_sid: sid.into(),
    }
}

pub fn recording(sid: &str) -> RecordingInfo {
    RecordingInfo {
        sid: Some(format!("rec-{sid}")),
        status: Some("completed".into()),
        url: Some(format!("https://api.telnyx.com/recordings/{sid}.mp3")),
        duration: Some(17),
    }
}

pub fn transcription(sid: &str) -> TranscriptionInfo {
    TranscriptionInfo {
        sid: Some(format!("tr-{sid}")),
        status: Some("completed".into()),
        text: Some("Please call me back.".into()),
    }
}
