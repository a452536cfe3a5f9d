//! The voicemail inbox: every call that reached voicemail is an item someone owns, `new`
//! until a supervisor assigns it to an agent, `done` when handled. The voicemail itself
//! (recording, duration, transcription) stays on the call; the inbox keeps only who owns it
//! and when, so a voicemail is an item from the moment the caller reaches voicemail,
//! without a write on the call path.

use std::sync::Arc;

use agents::{AgentId, Caller, Clock};
use async_trait::async_trait;
use audit::{Actor, AuditAction, AuditSink, NewAuditEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// Where an item stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    serde::Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum InboxState {
    /// Nobody owns it yet.
    New,
    /// An agent owns it.
    Assigned,
    /// Handled.
    Done,
}

impl InboxState {
    /// The state an inbox row says: done once finished, else assigned once it has an owner.
    #[must_use]
    pub fn of(done: bool, assigned: bool) -> Self {
        match (done, assigned) {
            (true, _) => Self::Done,
            (false, true) => Self::Assigned,
            (false, false) => Self::New,
        }
    }

    /// The stored and JSON spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A voicemail as the inbox shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Voicemail {
    /// The caller's call (the item's id).
    pub call_sid: String,
    /// The caller's number.
    pub from: String,
    /// When the caller reached voicemail.
    pub left_at: DateTime<Utc>,
    /// Seconds recorded (`null` until the recording is reported, or when nothing was said).
    pub duration_seconds: Option<i64>,
    /// The transcription (`null` until it arrives, or after retention redacted it).
    pub transcription: Option<String>,
    /// The recording (`null` until it arrives, or after retention redacted it).
    pub recording_url: Option<String>,
    /// Where it stands.
    pub state: InboxState,
    /// The agent who owns it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub assigned_to: Option<AgentId>,
    /// When it was last assigned.
    pub assigned_at: Option<DateTime<Utc>>,
    /// When it was marked done.
    pub done_at: Option<DateTime<Utc>>,
    /// Who marked it done (`admin` or `agent:<id>`).
    pub done_by: Option<String>,
}

/// Which items to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxFilter {
    /// Only items in this state.
    pub state: Option<InboxState>,
    /// Only items this agent owns.
    pub assigned_to: Option<AgentId>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// Failures of a [`VoicemailStore`].
#[derive(Debug, Error)]
pub enum VoicemailStoreError {
    /// No call that reached voicemail has this id.
    #[error("no voicemail for this call")]
    NotFound,
    /// The item is done: it cannot be assigned again.
    #[error("this voicemail is already done")]
    AlreadyDone,
    /// The item is not assigned to the agent who asked.
    #[error("this voicemail is assigned to another agent")]
    NotOwner,
    /// The store failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Builds the audit events of an inbox change from the item as it was, inside the store's
/// transaction.
pub type InboxAudit<'a> = &'a (dyn Fn(&Voicemail) -> Vec<NewAuditEvent> + Send + Sync);

/// Where inbox items live. Implementations: [`crate::MemoryCallStore`], SQLite and
/// PostgreSQL in the `store` crate; all pass `contract::voicemail_inbox`.
#[async_trait]
pub trait VoicemailStore: Send + Sync {
    /// Items, newest first.
    ///
    /// # Errors
    /// Only [`VoicemailStoreError::Unexpected`].
    async fn voicemails(&self, filter: &InboxFilter)
    -> Result<Vec<Voicemail>, VoicemailStoreError>;

    /// One item.
    ///
    /// # Errors
    /// Only [`VoicemailStoreError::Unexpected`].
    async fn voicemail(&self, call_sid: &str) -> Result<Option<Voicemail>, VoicemailStoreError>;

    /// Gives the item to `agent` (again, if another had it) and writes the events of
    /// `audit(previous)` in the same transaction.
    ///
    /// # Errors
    /// [`VoicemailStoreError::NotFound`], [`VoicemailStoreError::AlreadyDone`].
    async fn assign_voicemail(
        &self,
        call_sid: &str,
        agent: AgentId,
        now: DateTime<Utc>,
        audit: InboxAudit<'_>,
    ) -> Result<Voicemail, VoicemailStoreError>;

    /// Marks the item done by `by` unless it already is (then nothing is written); with an
    /// `owner`, only when it is assigned to that agent. The events of `audit(previous)` are
    /// written in the same transaction.
    ///
    /// # Errors
    /// [`VoicemailStoreError::NotFound`], [`VoicemailStoreError::NotOwner`].
    async fn finish_voicemail(
        &self,
        call_sid: &str,
        by: &Actor,
        owner: Option<AgentId>,
        now: DateTime<Utc>,
        audit: InboxAudit<'_>,
    ) -> Result<Voicemail, VoicemailStoreError>;
}

/// What can go wrong in the inbox, as the API reports it.
#[derive(Debug, Error)]
pub enum InboxError {
    /// No such voicemail (404).
    #[error("voicemail not found")]
    NotFound,
    /// Already done (409).
    #[error("this voicemail is already done")]
    AlreadyDone,
    /// A field failed validation (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// An agent acting on an item it does not own (403).
    #[error("this voicemail is assigned to another agent")]
    Forbidden,
    /// The store failed (500); the cause is for the logs only.
    #[error("voicemail store failure")]
    Unexpected(#[source] anyhow::Error),
}

impl From<VoicemailStoreError> for InboxError {
    fn from(e: VoicemailStoreError) -> Self {
        match e {
            VoicemailStoreError::NotFound => Self::NotFound,
            VoicemailStoreError::AlreadyDone => Self::AlreadyDone,
            VoicemailStoreError::NotOwner => Self::Forbidden,
            VoicemailStoreError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

/// The inbox service: who may do what, and the audit of each change.
#[derive(Clone)]
pub struct VoicemailInbox {
    store: Arc<dyn VoicemailStore>,
    agents: Arc<dyn agents::AgentStore>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
}

impl std::fmt::Debug for VoicemailInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoicemailInbox").finish_non_exhaustive()
    }
}

/// The most items one list answers.
pub const MAX_LIST: u32 = 500;

impl VoicemailInbox {
    /// An inbox over `store`; `agents` checks that an assignee exists.
    #[must_use]
    pub fn new(
        store: Arc<dyn VoicemailStore>,
        agents: Arc<dyn agents::AgentStore>,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self {
            store,
            agents,
            clock,
            audit,
        }
    }

    /// Items, newest first: every item for a supervisor, its own for an agent.
    ///
    /// # Errors
    /// [`InboxError::Invalid`] for a limit out of `1..=MAX_LIST`, [`InboxError::Unexpected`].
    pub async fn list(
        &self,
        caller: Caller,
        state: Option<InboxState>,
        assigned_to: Option<AgentId>,
        limit: u32,
    ) -> Result<Vec<Voicemail>, InboxError> {
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(InboxError::Invalid {
                field: "limit",
                message: format!("must be 1 to {MAX_LIST}; got {limit}"),
            });
        }
        let assigned_to = match caller {
            Caller::Admin => assigned_to,
            Caller::Agent(me) => match assigned_to {
                Some(other) if other != me => return Err(InboxError::Forbidden),
                _ => Some(me),
            },
        };
        let filter = InboxFilter {
            state,
            assigned_to,
            limit,
        };
        Ok(self.store.voicemails(&filter).await?)
    }

    /// One item: any for a supervisor, its own for an agent.
    ///
    /// # Errors
    /// [`InboxError::NotFound`], [`InboxError::Forbidden`], [`InboxError::Unexpected`].
    pub async fn get(&self, caller: Caller, call_sid: &str) -> Result<Voicemail, InboxError> {
        let item = self
            .store
            .voicemail(call_sid)
            .await?
            .ok_or(InboxError::NotFound)?;
        match caller {
            Caller::Agent(me) if item.assigned_to != Some(me) => Err(InboxError::Forbidden),
            _ => Ok(item),
        }
    }

    /// Gives an item to an agent (a supervisor's decision), audited `voicemail_assigned`.
    ///
    /// # Errors
    /// [`InboxError::Invalid`] for an unknown agent, [`InboxError::NotFound`],
    /// [`InboxError::AlreadyDone`], [`InboxError::Unexpected`].
    pub async fn assign(&self, call_sid: &str, agent_id: &str) -> Result<Voicemail, InboxError> {
        let unknown = || InboxError::Invalid {
            field: "agent_id",
            message: "must name a registered agent".into(),
        };
        let agent: AgentId = agent_id.parse().map_err(|_| unknown())?;
        if self
            .agents
            .get(agent)
            .await
            .map_err(|e| InboxError::Unexpected(e.into()))?
            .is_none()
        {
            return Err(unknown());
        }
        let now = self.clock.now();
        let audit = |before: &Voicemail| {
            let mut data = vec![("state", Value::from(before.state.as_str()))];
            if let Some(previous) = before.assigned_to {
                data.push(("from", Value::from(previous.to_string())));
            }
            self.audit.staged(
                NewAuditEvent::new(now, Actor::Admin, AuditAction::VoicemailAssigned)
                    .call(call_sid)
                    .agent(agent.0)
                    .data(data),
            )
        };
        Ok(self
            .store
            .assign_voicemail(call_sid, agent, now, &audit)
            .await?)
    }

    /// Marks an item done: a supervisor any, an agent its own; audited `voicemail_done`.
    /// Done twice is done once.
    ///
    /// # Errors
    /// [`InboxError::NotFound`], [`InboxError::Forbidden`], [`InboxError::Unexpected`].
    pub async fn done(&self, caller: Caller, call_sid: &str) -> Result<Voicemail, InboxError> {
        let now = self.clock.now();
        let by = caller.actor();
        let owner = match caller {
            Caller::Admin => None,
            Caller::Agent(me) => Some(me),
        };
        let audit = |before: &Voicemail| {
            let mut event = NewAuditEvent::new(now, by, AuditAction::VoicemailDone)
                .call(call_sid)
                .data([("state", Value::from(before.state.as_str()))]);
            if let Some(owner) = before.assigned_to {
                event = event.agent(owner.0);
            }
            self.audit.staged(event)
        };
        Ok(self
            .store
            .finish_voicemail(call_sid, &by, owner, now, &audit)
            .await?)
    }
}
