//! The agent-management service: validation, tokens, audit events, and the JSON view of an
//! agent. HTTP and CLI both go through it.

use std::sync::Arc;

use audit::{Actor, AuditAction, AuditSink, NewAuditEvent};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::clock::Clock;
use crate::model::{
    Activity, Agent, AgentId, AgentMetrics, AgentName, Candidate, EffectiveStatus, Liveness,
    PauseReason, Presence, PresenceState, RequestedStatus, parse_keyword,
};
use crate::port::{AgentPatch, AgentStore, AgentStoreError};
use crate::sip::SipUri;

/// What can go wrong managing agents.
#[derive(Debug, Error)]
pub enum AgentError {
    /// A field failed validation (HTTP 422).
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// No such agent (404).
    #[error("agent not found")]
    NotFound,
    /// The SIP URI is already registered (409).
    #[error("an agent with this SIP URI is already registered")]
    DuplicateSipUri,
    /// The token belongs to another agent (403).
    #[error("this token may not act for that agent")]
    Forbidden,
    /// The store failed (500); the cause is for the logs only.
    #[error("agent store failure")]
    Unexpected(#[source] anyhow::Error),
}

impl From<AgentStoreError> for AgentError {
    fn from(e: AgentStoreError) -> Self {
        match e {
            AgentStoreError::NotFound => Self::NotFound,
            AgentStoreError::DuplicateSipUri => Self::DuplicateSipUri,
            AgentStoreError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AgentError {
    AgentError::Invalid {
        field,
        message: message.into(),
    }
}

/// Who is calling the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token.
    Admin,
    /// An agent's heartbeat token.
    Agent(AgentId),
}

impl Caller {
    /// Who the audit log names.
    #[must_use]
    pub fn actor(self) -> Actor {
        match self {
            Self::Admin => Actor::Admin,
            Self::Agent(id) => Actor::Agent(id.0),
        }
    }
}

/// Registration input, as received.
#[derive(Debug, Clone, Default)]
pub struct NewAgent<'a> {
    /// Display name.
    pub name: &'a str,
    /// SIP URI.
    pub sip_uri: &'a str,
    /// Initial presence; `available` counts as a first heartbeat.
    pub status: Option<&'a str>,
    /// The reason, when `status` is `paused`.
    pub reason: Option<&'a str>,
}

/// Update input, as received; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct AgentChanges<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New SIP URI.
    pub sip_uri: Option<&'a str>,
    /// New presence.
    pub status: Option<&'a str>,
    /// The reason, when `status` is `paused`.
    pub reason: Option<&'a str>,
}

/// An agent's counters as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsView {
    /// Calls answered.
    pub calls_answered: i64,
    /// Offers missed.
    pub calls_missed: i64,
    /// Seconds talked.
    pub total_talk_seconds: i64,
    /// `total_talk_seconds / calls_answered`, to 0.1 s.
    pub average_call_duration_seconds: f64,
}

impl From<AgentMetrics> for MetricsView {
    fn from(m: AgentMetrics) -> Self {
        Self {
            calls_answered: m.calls_answered,
            calls_missed: m.calls_missed,
            total_talk_seconds: m.total_talk_seconds,
            average_call_duration_seconds: m.average_call_duration_seconds(),
        }
    }
}

/// The agent object of the HTTP contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentView {
    /// Id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// SIP URI as registered.
    pub sip_uri: String,
    /// Effective status.
    pub status: EffectiveStatus,
    /// What the agent is doing (`idle`, `reserved`, `ringing`, `on_call`, `wrap_up`).
    pub activity: Activity,
    /// The call it is on, or reserved or ringing for (`null` otherwise).
    pub call_sid: Option<String>,
    /// Why the agent is paused (`null` when it is not).
    pub paused_reason: Option<PauseReason>,
    /// When its presence or pause last changed (heartbeats leave it).
    pub presence_since: DateTime<Utc>,
    /// Free for the next call since (the end of its last wrap-up).
    pub idle_since: DateTime<Utc>,
    /// Offers missed since it last answered or was resumed.
    pub missed_in_a_row: i32,
    /// After a missed offer, not offered another before this (`null`: no delay).
    pub no_answer_until: Option<DateTime<Utc>>,
    /// When its wrap-up (after-call work) ends, while it has one (`null` otherwise).
    pub wrap_up_until: Option<DateTime<Utc>>,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Counters.
    pub metrics: MetricsView,
}

impl AgentView {
    /// The view of `agent` at `liveness`.
    #[must_use]
    pub fn new(agent: &Agent, liveness: &Liveness) -> Self {
        Self {
            id: agent.id,
            name: agent.name.as_str().to_owned(),
            sip_uri: agent.sip_uri.as_str().to_owned(),
            status: agent.status(liveness),
            activity: agent.activity(liveness.now),
            call_sid: agent
                .current_call_sid
                .clone()
                .or_else(|| agent.offer_call_sid.clone()),
            paused_reason: agent.paused_reason.clone(),
            presence_since: agent.presence_since,
            idle_since: agent.idle_since,
            missed_in_a_row: agent.missed_in_a_row,
            no_answer_until: agent.no_answer_until.filter(|t| *t > liveness.now),
            wrap_up_until: agent.wrap_up_until(liveness.now),
            last_heartbeat_at: agent.last_heartbeat_at,
            created_at: agent.created_at,
            updated_at: agent.updated_at,
            metrics: agent.metrics.into(),
        }
    }
}

/// Hash under which a heartbeat token is stored (tokens are 256-bit random, so a plain
/// SHA-256 is enough; the token itself is never stored).
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("hb_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The pause reasons agents may give unless configured otherwise.
pub const DEFAULT_PAUSE_REASONS: &[&str] = &["break", "lunch", "meeting", "training", "other"];

/// How long a one-time console sign-in link stays valid.
pub const SIGN_IN_LINK_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Agent management over an [`AgentStore`].
#[derive(Clone)]
pub struct AgentService {
    store: Arc<dyn AgentStore>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
    ttl: Duration,
    pause_reasons: Arc<[PauseReason]>,
}

impl std::fmt::Debug for AgentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentService")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AgentService {
    /// A service; `heartbeat_ttl` is how long a heartbeat keeps an agent online.
    #[must_use]
    pub fn new(
        store: Arc<dyn AgentStore>,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
        heartbeat_ttl: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            ttl: heartbeat_ttl,
            pause_reasons: DEFAULT_PAUSE_REASONS
                .iter()
                .filter_map(|r| PauseReason::parse(r).ok())
                .collect(),
        }
    }

    /// The reasons an agent may pause for (an empty list keeps the defaults).
    #[must_use]
    pub fn with_pause_reasons(mut self, reasons: Vec<PauseReason>) -> Self {
        if !reasons.is_empty() {
            self.pause_reasons = reasons.into();
        }
        self
    }

    /// The state a request's `status` and `reason` ask for.
    fn requested(&self, status: &str, reason: Option<&str>) -> Result<PresenceState, AgentError> {
        let status: RequestedStatus = parse_keyword(status).map_err(|m| invalid("status", m))?;
        let reason = reason
            .map(|r| {
                let r = PauseReason::parse(r).map_err(|m| invalid("reason", m))?;
                if self.pause_reasons.contains(&r) {
                    Ok(r)
                } else {
                    let known: Vec<&str> =
                        self.pause_reasons.iter().map(PauseReason::as_str).collect();
                    Err(invalid(
                        "reason",
                        format!("must be one of {}; got {:?}", known.join(", "), r.as_str()),
                    ))
                }
            })
            .transpose()?;
        PresenceState::requested(status, reason).map_err(|m| invalid("reason", m))
    }

    fn requested_opt(
        &self,
        status: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Option<PresenceState>, AgentError> {
        match (status, reason) {
            (Some(status), reason) => self.requested(status, reason).map(Some),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(invalid("reason", "only a pause takes a reason")),
        }
    }

    /// The liveness window now.
    #[must_use]
    pub fn liveness(&self) -> Liveness {
        Liveness::new(self.clock.now(), self.ttl)
    }

    fn event(&self, caller: Caller, action: AuditAction, agent: AgentId) -> NewAuditEvent {
        NewAuditEvent::new(self.clock.now(), caller.actor(), action).agent(agent.0)
    }

    /// Registers an agent; returns it with its heartbeat token, which is shown only now.
    ///
    /// # Errors
    /// [`AgentError::Invalid`], [`AgentError::DuplicateSipUri`], [`AgentError::Unexpected`].
    pub async fn register(
        &self,
        input: NewAgent<'_>,
        caller: Caller,
    ) -> Result<(AgentView, String), AgentError> {
        let name = AgentName::parse(input.name).map_err(|m| invalid("name", m))?;
        let sip_uri = SipUri::parse(input.sip_uri).map_err(|e| invalid("sip_uri", e.0))?;
        let state = self.requested_opt(input.status, input.reason)?;
        let online = state
            .as_ref()
            .is_some_and(|s| s.presence == Presence::Available);
        let state = state.unwrap_or(PresenceState {
            presence: Presence::Available,
            paused_reason: None,
        });
        let now = self.clock.now();
        let agent = Agent {
            id: AgentId::new(),
            name,
            sip_uri,
            presence: state.presence,
            paused_reason: state.paused_reason.clone(),
            presence_since: now,
            last_heartbeat_at: online.then_some(now),
            current_call_sid: None,
            idle_since: now,
            created_at: now,
            updated_at: now,
            metrics: AgentMetrics::default(),
            missed_in_a_row: 0,
            offer_call_sid: None,
            offer_ringing: false,
            no_answer_until: None,
        };
        let token = new_token();
        let event = self
            .event(caller, AuditAction::AgentRegistered, agent.id)
            .data(presence_data("presence", &state));
        self.store
            .insert(&agent, &token_hash(&token), self.audit.staged(event))
            .await?;
        Ok((AgentView::new(&agent, &self.liveness()), token))
    }

    /// Records a heartbeat from `caller` for `agent_id`, with an optional new presence
    /// (`paused` with one of the configured reasons).
    ///
    /// # Errors
    /// [`AgentError::Invalid`] for a malformed id, status or reason, [`AgentError::Forbidden`]
    /// when an agent's token names another agent, [`AgentError::NotFound`].
    pub async fn heartbeat(
        &self,
        caller: Caller,
        agent_id: &str,
        status: Option<&str>,
        reason: Option<&str>,
    ) -> Result<AgentView, AgentError> {
        let id: AgentId = agent_id
            .parse()
            .map_err(|_| invalid("agent_id", "must be a UUID"))?;
        may_act_for(caller, id)?;
        let presence = self.requested_opt(status, reason)?;
        let now = self.clock.now();
        let on_change = |from: &PresenceState, to: &PresenceState| {
            let mut data = presence_data("from", from);
            data.extend(presence_data("to", to));
            let event = self
                .event(caller, AuditAction::AgentStatusChanged, id)
                .data(data);
            self.audit.staged(event)
        };
        let agent = self
            .store
            .heartbeat(id, presence.as_ref(), now, &on_change)
            .await?;
        Ok(AgentView::new(&agent, &self.liveness()))
    }

    /// One agent.
    ///
    /// # Errors
    /// [`AgentError::Invalid`] for a malformed id, [`AgentError::NotFound`].
    pub async fn get(&self, agent_id: &str) -> Result<AgentView, AgentError> {
        let id = parse_id(agent_id)?;
        let agent = self.store.get(id).await?.ok_or(AgentError::NotFound)?;
        Ok(AgentView::new(&agent, &self.liveness()))
    }

    /// All agents, or those with this effective status.
    ///
    /// # Errors
    /// [`AgentError::Invalid`] for an unknown status.
    pub async fn list(&self, status: Option<&str>) -> Result<Vec<AgentView>, AgentError> {
        let status: Option<EffectiveStatus> = status
            .map(|s| parse_keyword(s).map_err(|m| invalid("status", m)))
            .transpose()?;
        let liveness = self.liveness();
        let agents = self.store.list(status, &liveness).await?;
        Ok(agents
            .iter()
            .map(|a| AgentView::new(a, &liveness))
            .collect())
    }

    /// Applies an admin change.
    ///
    /// # Errors
    /// [`AgentError::Invalid`], [`AgentError::NotFound`], [`AgentError::DuplicateSipUri`].
    pub async fn update(
        &self,
        agent_id: &str,
        changes: AgentChanges<'_>,
    ) -> Result<AgentView, AgentError> {
        let id = parse_id(agent_id)?;
        let patch = AgentPatch {
            name: changes
                .name
                .map(|n| AgentName::parse(n).map_err(|m| invalid("name", m)))
                .transpose()?,
            sip_uri: changes
                .sip_uri
                .map(|s| SipUri::parse(s).map_err(|e| invalid("sip_uri", e.0)))
                .transpose()?,
            presence: self.requested_opt(changes.status, changes.reason)?,
        };
        let mut fields: Vec<Value> = Vec::new();
        if patch.name.is_some() {
            fields.push("name".into());
        }
        if patch.sip_uri.is_some() {
            fields.push("sip_uri".into());
        }
        if let Some(p) = &patch.presence {
            fields.push(format!("status={}", p.keyword()).into());
            if let Some(reason) = &p.paused_reason {
                fields.push(format!("reason={reason}").into());
            }
        }
        let event = self
            .event(Caller::Admin, AuditAction::AgentUpdated, id)
            .data([("fields", Value::Array(fields))]);
        let agent = self
            .store
            .update(id, &patch, self.clock.now(), self.audit.staged(event))
            .await?;
        Ok(AgentView::new(&agent, &self.liveness()))
    }

    /// Removes an agent.
    ///
    /// # Errors
    /// [`AgentError::Invalid`] for a malformed id, [`AgentError::NotFound`].
    pub async fn remove(&self, agent_id: &str) -> Result<(), AgentError> {
        let id = parse_id(agent_id)?;
        let event = self.event(Caller::Admin, AuditAction::AgentRemoved, id);
        self.store.delete(id, self.audit.staged(event)).await?;
        Ok(())
    }

    /// Frees an agent from the call it holds, whatever that call's state (an admin's
    /// repair: the agent is offered calls again at once). Audited as `agent_released`
    /// with the call, only when the agent held one. Returns the agent as it is now.
    ///
    /// # Errors
    /// [`AgentError::NotFound`], [`AgentError::Unexpected`].
    pub async fn release(&self, agent_id: &str, caller: Caller) -> Result<AgentView, AgentError> {
        let id = parse_id(agent_id)?;
        let audit = |call: &str| {
            let event = self
                .event(caller, AuditAction::AgentReleased, id)
                .call(call)
                .data([("reason", Value::from("released by an admin"))]);
            self.audit.staged(event)
        };
        let now = self.clock.now();
        self.store.release(id, None, now, &audit).await?;
        self.get(agent_id).await
    }

    /// Ends the agent's wrap-up now ("ready"): its own token or the admin's. Audited as
    /// `wrap_up_ended` only when there was one to end.
    ///
    /// # Errors
    /// [`AgentError::Forbidden`] for another agent's token, [`AgentError::NotFound`],
    /// [`AgentError::Unexpected`].
    pub async fn ready(&self, caller: Caller, agent_id: &str) -> Result<AgentView, AgentError> {
        let id = parse_id(agent_id)?;
        may_act_for(caller, id)?;
        let audit = |until: DateTime<Utc>| {
            let event = self
                .event(caller, AuditAction::WrapUpEnded, id)
                .data([("until", Value::from(until.to_rfc3339()))]);
            self.audit.staged(event)
        };
        let agent = self.store.end_wrap_up(id, self.clock.now(), &audit).await?;
        Ok(AgentView::new(&agent, &self.liveness()))
    }

    /// A one-time console sign-in link for an agent (the admin's): its token, shown only
    /// now, and when it expires (`SIGN_IN_LINK_LIFETIME` from now). Audited as
    /// `sign_in_link_created`.
    ///
    /// # Errors
    /// [`AgentError::NotFound`], [`AgentError::Unexpected`].
    pub async fn create_sign_in_link(
        &self,
        agent_id: &str,
    ) -> Result<(String, DateTime<Utc>), AgentError> {
        let id = parse_id(agent_id)?;
        let now = self.clock.now();
        let expires_at = now + SIGN_IN_LINK_LIFETIME;
        let token = format!("sl_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let event = self
            .event(Caller::Admin, AuditAction::SignInLinkCreated, id)
            .data([("expires_at", Value::from(expires_at.to_rfc3339()))]);
        self.store
            .add_sign_in_link(
                id,
                &token_hash(&token),
                now,
                expires_at,
                self.audit.staged(event),
            )
            .await?;
        Ok((token, expires_at))
    }

    /// Signs in with a one-time link: its agent, once; `None` for a link that is unknown,
    /// used or expired. Audited as `sign_in_link_used`.
    ///
    /// # Errors
    /// [`AgentError::Unexpected`] when the store fails.
    pub async fn use_sign_in_link(&self, token: &str) -> Result<Option<AgentId>, AgentError> {
        let audit = |agent: AgentId| {
            let event = self.event(Caller::Agent(agent), AuditAction::SignInLinkUsed, agent);
            self.audit.staged(event)
        };
        Ok(self
            .store
            .use_sign_in_link(&token_hash(token), self.clock.now(), &audit)
            .await?)
    }

    /// The agent a heartbeat token belongs to.
    ///
    /// # Errors
    /// [`AgentError::Unexpected`] when the store fails.
    pub async fn agent_for_token(&self, token: &str) -> Result<Option<AgentId>, AgentError> {
        Ok(self.store.agent_for_token(&token_hash(token)).await?)
    }

    /// Agents to ring now, longest idle first, at most `limit`.
    ///
    /// # Errors
    /// [`AgentError::Unexpected`] when the store fails.
    pub async fn available_now(&self, limit: u32) -> Result<Vec<Candidate>, AgentError> {
        Ok(self.store.available_now(&self.liveness(), limit).await?)
    }
}

/// An agent's token acts only for its own agent; the admin token for any.
fn may_act_for(caller: Caller, id: AgentId) -> Result<(), AgentError> {
    match caller {
        Caller::Agent(own) if own != id => Err(AgentError::Forbidden),
        _ => Ok(()),
    }
}

/// Audit data for a presence: `key` is its keyword; a pause adds `{key}_reason`.
fn presence_data(key: &str, state: &PresenceState) -> Vec<(String, Value)> {
    let mut data = vec![(key.to_owned(), Value::from(state.keyword()))];
    if let Some(reason) = &state.paused_reason {
        data.push((format!("{key}_reason"), Value::from(reason.as_str())));
    }
    data
}

/// Parses an agent id from a path or body (a malformed id names no agent: 404 in paths).
fn parse_id(s: &str) -> Result<AgentId, AgentError> {
    s.parse().map_err(|_| AgentError::NotFound)
}
