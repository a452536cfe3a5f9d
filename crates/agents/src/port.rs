//! The agent store port. Implementations: [`crate::MemoryAgentStore`] here, SQLite and
//! PostgreSQL in the `store` crate; all pass [`crate::contract`].

use async_trait::async_trait;
use audit::NewAuditEvent;
use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::model::{
    Agent, AgentId, AgentName, Candidate, EffectiveStatus, Liveness, PauseReason, PresenceState,
};
use crate::sip::SipUri;

/// Failures of an [`AgentStore`].
#[derive(Debug, Error)]
pub enum AgentStoreError {
    /// No agent with that id.
    #[error("agent not found")]
    NotFound,
    /// Another agent already has a SIP URI with the same key.
    #[error("an agent with this SIP URI is already registered")]
    DuplicateSipUri,
    /// The store failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Fields an admin may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentPatch {
    /// New name.
    pub name: Option<AgentName>,
    /// New SIP URI.
    pub sip_uri: Option<SipUri>,
    /// New presence (and pause: a state without a reason ends a pause).
    pub presence: Option<PresenceState>,
}

/// Builds the audit events for a presence change (a pause included) seen by the store
/// inside its transaction: `(previous, new) -> events`.
pub type PresenceAudit<'a> =
    &'a (dyn Fn(&PresenceState, &PresenceState) -> Vec<NewAuditEvent> + Send + Sync);

/// Builds the audit events of a release from the call the agent was freed from, inside the
/// store's transaction.
pub type ReleaseAudit<'a> = &'a (dyn Fn(&str) -> Vec<NewAuditEvent> + Send + Sync);

/// Builds the audit events of a wrap-up ended early from when it would have ended, inside
/// the store's transaction.
pub type WrapUpAudit<'a> = &'a (dyn Fn(DateTime<Utc>) -> Vec<NewAuditEvent> + Send + Sync);

/// Builds the audit events of a pause for missed offers from the agent and its misses in a
/// row, inside the store's transaction.
pub type MissesAudit<'a> = &'a (dyn Fn(AgentId, i32) -> Vec<NewAuditEvent> + Send + Sync);

/// Builds the audit events of a sign-in with a one-time link from its agent, inside the
/// store's transaction.
pub type SignInAudit<'a> = &'a (dyn Fn(AgentId) -> Vec<NewAuditEvent> + Send + Sync);

/// Where agents live.
///
/// Every write takes the audit events that describe it and writes them in the same
/// transaction. Counters change by atomic increments, never read-modify-write.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores a new agent and the hash of its heartbeat token.
    ///
    /// # Errors
    /// [`AgentStoreError::DuplicateSipUri`] when the SIP URI key is taken.
    async fn insert(
        &self,
        agent: &Agent,
        token_hash: &str,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(), AgentStoreError>;

    /// One agent.
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn get(&self, id: AgentId) -> Result<Option<Agent>, AgentStoreError>;

    /// The agents of `ids` that exist, in `ids`' order (one read: a `<Dial action>` that
    /// rings a round's agents again checks them all at once).
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn get_many(&self, ids: &[AgentId]) -> Result<Vec<Agent>, AgentStoreError>;

    /// The agent whose heartbeat token hashes to `token_hash`.
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn agent_for_token(&self, token_hash: &str) -> Result<Option<AgentId>, AgentStoreError>;

    /// The agent registered with this SIP URI key.
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn find_by_sip_key(&self, key: &str) -> Result<Option<Agent>, AgentStoreError>;

    /// All agents, or those with this effective status at `liveness`, oldest first.
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn list(
        &self,
        status: Option<EffectiveStatus>,
        liveness: &Liveness,
    ) -> Result<Vec<Agent>, AgentStoreError>;

    /// Applies an admin change.
    ///
    /// # Errors
    /// [`AgentStoreError::NotFound`], [`AgentStoreError::DuplicateSipUri`].
    async fn update(
        &self,
        id: AgentId,
        patch: &AgentPatch,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Agent, AgentStoreError>;

    /// Records a heartbeat at `now`, and a new presence if given; when the presence
    /// changes, the events built by `on_change` are written in the same transaction.
    ///
    /// # Errors
    /// [`AgentStoreError::NotFound`].
    async fn heartbeat(
        &self,
        id: AgentId,
        presence: Option<&PresenceState>,
        now: DateTime<Utc>,
        on_change: PresenceAudit<'_>,
    ) -> Result<Agent, AgentStoreError>;

    /// Frees the agent from the call it holds: only from `call` when given (a
    /// compare-and-set, so a concurrent change is never undone), from any call otherwise.
    /// When it did, the agent is idle since `now` and the events of `audit(call)` are
    /// written in the same transaction. Returns the call it was freed from (`None`: it held
    /// none, or another one).
    ///
    /// # Errors
    /// [`AgentStoreError::NotFound`].
    async fn release(
        &self,
        id: AgentId,
        call: Option<&str>,
        now: DateTime<Utc>,
        audit: ReleaseAudit<'_>,
    ) -> Result<Option<String>, AgentStoreError>;

    /// Ends the agent's wrap-up now, when it has one ahead of `now` and holds no call
    /// (then it is idle since `now` and the events of `audit(until)` are written in the same
    /// transaction); otherwise changes nothing. Returns the agent as it is now.
    ///
    /// # Errors
    /// [`AgentStoreError::NotFound`].
    async fn end_wrap_up(
        &self,
        id: AgentId,
        now: DateTime<Utc>,
        audit: WrapUpAudit<'_>,
    ) -> Result<Agent, AgentStoreError>;

    /// Pauses with `reason` every agent that is available, not paused, and has missed
    /// `misses` or more offers in a row by its own count (whatever order the misses were
    /// learned in); the events of `audit(agent, misses_in_a_row)` in the same transaction.
    /// Returns the agents paused.
    ///
    /// # Errors
    /// [`AgentStoreError::Unexpected`].
    async fn pause_for_misses(
        &self,
        misses: i32,
        reason: &PauseReason,
        now: DateTime<Utc>,
        audit: MissesAudit<'_>,
    ) -> Result<Vec<AgentId>, AgentStoreError>;

    /// Stores a one-time console sign-in link for agent `id`: the hash of its token, valid
    /// until `expires_at`; the events in the same transaction. Links that expired before
    /// `now` are forgotten then.
    ///
    /// # Errors
    /// [`AgentStoreError::NotFound`].
    async fn add_sign_in_link(
        &self,
        id: AgentId,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(), AgentStoreError>;

    /// Uses a sign-in link: when one with `token_hash` exists, was never used and has not
    /// expired at `now`, marks it used (the events of `audit(agent)` in the same
    /// transaction) and returns its agent; otherwise changes nothing. A link works once.
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn use_sign_in_link(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        audit: SignInAudit<'_>,
    ) -> Result<Option<AgentId>, AgentStoreError>;

    /// Removes an agent.
    ///
    /// # Errors
    /// [`AgentStoreError::NotFound`].
    async fn delete(&self, id: AgentId, audit: Vec<NewAuditEvent>) -> Result<(), AgentStoreError>;

    /// Agents that can be rung now (presence available, not paused, heartbeat fresh, no
    /// call, wrap-up over), longest idle first, then by id; at most `limit`. One indexed
    /// query.
    ///
    /// # Errors
    /// Only [`AgentStoreError::Unexpected`].
    async fn available_now(
        &self,
        liveness: &Liveness,
        limit: u32,
    ) -> Result<Vec<Candidate>, AgentStoreError>;
}
