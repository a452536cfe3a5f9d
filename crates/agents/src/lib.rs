//! # agents: the people who take calls
//!
//! Agents register with a name and a SIP URI ([`SipUri`], RFC 3261's basic grammar,
//! normalised for comparison), keep themselves online with heartbeats, and report a
//! presence ([`Presence`]). Presence, whether the agent holds a call-center call, and
//! heartbeat liveness combine into the [`EffectiveStatus`] the API shows and routing uses
//! ([`effective_status`], table in `docs/agents.md`).
//!
//! Storage is a port ([`AgentStore`], async-trait) with an in-memory fake
//! ([`MemoryAgentStore`]) and SQL adapters in the `store` crate; the `contract` feature
//! exposes the stories all of them pass. Time is a port too ([`Clock`]), so heartbeat expiry
//! is tested without sleeping. Engaging an agent is an atomic compare-and-set in the store;
//! counters change by atomic increments and never reset.
//!
//! ```
//! use std::sync::Arc;
//! use agents::*;
//! use audit::{ChainSink, MemoryAuditLog};
//! use chrono::{Duration, Utc};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let clock = ManualClock::at(Utc::now());
//! let store = Arc::new(MemoryAgentStore::new(MemoryAuditLog::new()));
//! let service = AgentService::new(store, Arc::new(clock.clone()), Arc::new(ChainSink), Duration::seconds(60));
//! let input = NewAgent { name: "Alice", sip_uri: "sip:alice@example.sip.telnyx.com", status: Some("available"), reason: None };
//! let (alice, _token) = service.register(input, Caller::Admin).await.unwrap();
//! assert_eq!(alice.status, EffectiveStatus::Available);
//! clock.advance(Duration::seconds(61));
//! assert_eq!(service.get(&alice.id.to_string()).await.unwrap().status, EffectiveStatus::Offline);
//! # });
//! ```

mod clock;
#[cfg(feature = "contract")]
pub mod contract;
mod memory;
mod model;
mod port;
mod service;
mod sip;

pub use clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryAgentStore;
pub use model::{
    Activity, Agent, AgentEffect, AgentId, AgentMetrics, AgentName, Candidate, EffectiveStatus,
    Liveness, MetricsDelta, OfferMark, PauseReason, Presence, PresenceState, RequestedStatus,
    effective_status, parse_keyword,
};
pub use port::{
    AgentPatch, AgentStore, AgentStoreError, MissesAudit, PresenceAudit, ReleaseAudit, SignInAudit,
    WrapUpAudit,
};
pub use service::{
    AgentChanges, AgentError, AgentService, AgentView, Caller, DEFAULT_PAUSE_REASONS, MetricsView,
    NewAgent, SIGN_IN_LINK_LIFETIME, token_hash,
};
pub use sip::{SIP_URI_PATTERN, SipUri, SipUriError};
