//! The call store port: load a call with its offers, apply a decided change atomically with
//! optimistic concurrency, read calls for the API, redact.

use async_trait::async_trait;
use audit::NewAuditEvent;
use chrono::{DateTime, Utc};
use thiserror::Error;

use agents::AgentEffect;

use crate::model::{Call, CallState, CallStatus, Offer, RoundResult};

/// The store failed.
#[derive(Debug, Error)]
pub enum CallStoreError {
    /// Anything the store could not do; the cause is for the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A processed request, remembered so that a repeat changes nothing: a callback's natural
/// key (fingerprint empty) or a webhook signature (fingerprint: a hash of what was signed
/// plus the unsigned parts of the request).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The key.
    pub key: String,
    /// What the key was seen with.
    pub fingerprint: String,
}

/// A verified webhook signature and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedRequest {
    /// The signature's receipt (key per method and path, fingerprint of query and body).
    pub receipt: Receipt,
    /// Whether the signature covers the request's parameters (a POST body; a GET's query
    /// string is unsigned). Progress-only events under such a signature are acknowledged
    /// without touching the store: no query string can turn them into a change.
    pub covers_parameters: bool,
}

/// A round opening or closing, for the `dial_attempts` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptChange {
    /// Round `attempt` rang `offered` agents from `started_at`.
    Opened {
        /// Round.
        attempt: i32,
        /// Start.
        started_at: DateTime<Utc>,
        /// Agents rung.
        offered: i32,
    },
    /// Round `attempt` ended.
    Closed {
        /// Round.
        attempt: i32,
        /// End.
        ended_at: DateTime<Utc>,
        /// How it ended.
        result: RoundResult,
    },
}

/// Everything one webhook changes, applied in one transaction or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallChange {
    /// The version the decision read; 0 when the call is new. The store applies the change
    /// only if the stored version is still this one.
    pub expected_version: i64,
    /// The call's new state (its `version` is `expected_version + 1`).
    pub call: Call,
    /// Offers to insert or update (full rows).
    pub offers: Vec<Offer>,
    /// Rounds opened or closed.
    pub attempts: Vec<AttemptChange>,
    /// At most one effect per agent: counter increments, engage, release.
    pub agents: Vec<AgentEffect>,
    /// Requests to remember; all must be new, else the change is a conflict.
    pub receipts: Vec<Receipt>,
    /// Audit events, written in the same transaction.
    pub audit: Vec<NewAuditEvent>,
}

/// A call as a decision reads it, and which of the asked receipts exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The call with its offers, if known.
    pub state: Option<CallState>,
    /// Receipts among those asked that are already stored.
    pub seen: Vec<Receipt>,
}

/// The result of [`CallStore::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Written.
    Yes,
    /// Someone changed the call first (or a receipt exists): reload and decide again.
    Conflict,
}

/// The result of [`CallStore::redact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redaction {
    /// Recordings and transcription removed, audited.
    Redacted,
    /// Nothing left to remove.
    AlreadyRedacted,
    /// No such call.
    NotFound,
}

/// Which calls to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFilter {
    /// At most this many, newest first.
    pub limit: u32,
    /// Only calls with this status.
    pub status: Option<CallStatus>,
    /// Only calls this agent answered.
    pub answered_by: Option<agents::AgentId>,
}

/// Where calls live.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// The call with all its offers, and which of `receipt_keys` are stored (one round trip).
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn load(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> Result<Snapshot, CallStoreError>;

    /// The call as this process last committed it, when the store keeps such a copy (a
    /// store written by one process: SQLite); `None` when it keeps none or has none for
    /// this call. No receipt is read. A decision made from it is safe all the same: a
    /// change is still checked by [`CallStore::apply`] (the call's version and every
    /// receipt), so a copy gone stale, or a webhook seen before, costs a conflict and a
    /// full [`CallStore::load`], never a wrong write; the flow takes no decision without
    /// a change from it.
    fn committed(&self, _call_sid: &str) -> Option<CallState> {
        None
    }

    /// Applies `change` atomically (one transaction): the call (inserted when
    /// `expected_version` is 0, else updated only at that version), offers, rounds, agent
    /// effects, receipts and audit events. Engaging an agent is a compare-and-set; counters
    /// are atomic increments.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`]; a lost race is `Ok(Applied::Conflict)`.
    async fn apply(&self, change: &CallChange) -> Result<Applied, CallStoreError>;

    /// Stores receipts that come with no change (a no-op or an unknown call). `Conflict`
    /// when one exists already.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn record_receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<Applied, CallStoreError>;

    /// The caller's call an agent leg belongs to.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn call_for_leg(&self, leg_sid: &str) -> Result<Option<String>, CallStoreError>;

    /// One call.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn get(&self, call_sid: &str) -> Result<Option<Call>, CallStoreError>;

    /// Calls, newest first.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn list(&self, filter: &CallFilter) -> Result<Vec<Call>, CallStoreError>;

    /// Removes the call's recording URLs, voicemail recording and transcription, and
    /// writes `audit` in the same transaction, only if there was something to remove.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn redact(
        &self,
        call_sid: &str,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Redaction, CallStoreError>;

    /// Calls started before `before` that still hold a recording or transcription, oldest
    /// first, at most `limit` (retention).
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn calls_to_redact(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError>;

    /// Calls the reconciler should look at, at most `limit`: calls not over whose last
    /// change is older than `silent_before`, and calls with an offer still ringing in a
    /// round that has ended (or of a call that has) whose last change is older than
    /// `stray_before` (its leg had that long to report its own end).
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn calls_to_reconcile(
        &self,
        silent_before: DateTime<Utc>,
        stray_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError>;

    /// Forgets receipts stored before `before`; returns how many.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn prune_receipts(&self, before: DateTime<Utc>) -> Result<u64, CallStoreError>;
}
