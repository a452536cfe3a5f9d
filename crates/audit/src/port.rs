//! Ports: how domain code hands events to the log ([`AuditSink`]) and how the log is read,
//! sealed and verified ([`AuditLog`]).

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

use crate::chain::{ChainHead, Verifier, VerifyReport};
use crate::event::{AuditEntry, NewAuditEvent};

/// Failures of an [`AuditLog`] implementation.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The store failed; the cause is kept for the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// How domain code records an event: into the batch that the store writes in the same
/// transaction as the change the event describes. Nothing is recorded that did not happen,
/// and nothing that happened goes unrecorded.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Adds `event` to `batch` (or not).
    fn stage(&self, batch: &mut Vec<NewAuditEvent>, event: NewAuditEvent);

    /// The batch of one change that writes only `event` (or nothing).
    fn staged(&self, event: NewAuditEvent) -> Vec<NewAuditEvent> {
        let mut batch = Vec::with_capacity(1);
        self.stage(&mut batch, event);
        batch
    }
}

/// The production sink: every event goes into the chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChainSink;

impl AuditSink for ChainSink {
    fn stage(&self, batch: &mut Vec<NewAuditEvent>, event: NewAuditEvent) {
        batch.push(event);
    }
}

/// A sink that drops everything: the baseline for measuring what auditing costs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl AuditSink for NullSink {
    fn stage(&self, _batch: &mut Vec<NewAuditEvent>, _event: NewAuditEvent) {}
}

/// Which entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries about this call.
    pub call_sid: Option<String>,
    /// Only entries about this agent.
    pub agent_id: Option<Uuid>,
    /// At most this many (the store may cap it).
    pub limit: Option<u32>,
}

/// The stored log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Writes events that accompany no other change (admin runs, reads worth noting), in
    /// one transaction.
    ///
    /// # Errors
    /// [`AuditError::Unexpected`] when the store fails; nothing is written then.
    async fn append(&self, events: Vec<NewAuditEvent>) -> Result<(), AuditError>;

    /// Puts pending entries into the chain in commit order and moves the head. Several
    /// callers (threads or server instances) may call it at once; they take turns. An entry
    /// whose transaction is still open is left for a later call, never skipped.
    ///
    /// # Errors
    /// [`AuditError::Unexpected`] when the store fails; nothing is sealed then.
    async fn seal_pending(&self) -> Result<u64, AuditError>;

    /// Entries matching `filter`: sealed ones in chain order, then pending ones.
    ///
    /// # Errors
    /// [`AuditError::Unexpected`] when the store fails.
    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AuditError>;

    /// Sealed entries with `seq > after_seq`, in `seq` order, at most `limit`.
    ///
    /// # Errors
    /// [`AuditError::Unexpected`] when the store fails.
    async fn chain_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, AuditError>;

    /// The recorded head of the chain.
    ///
    /// # Errors
    /// [`AuditError::Unexpected`] when the store fails.
    async fn head(&self) -> Result<ChainHead, AuditError>;
}

/// Recomputes the whole chain up to the recorded head, page by page, and names the first
/// broken entry.
///
/// # Errors
/// [`AuditError::Unexpected`] when the store fails.
pub async fn verify_chain(log: &dyn AuditLog) -> Result<VerifyReport, AuditError> {
    const PAGE: u32 = 2_000;
    let head = log.head().await?;
    let mut verifier = Verifier::new();
    let mut after = 0;
    loop {
        let page = log.chain_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq.unwrap_or(after + 1);
        for entry in page.iter().filter(|e| e.seq.is_none_or(|s| s <= head.seq)) {
            verifier.push(entry);
        }
        if verifier.is_broken() || after >= head.seq {
            break;
        }
    }
    Ok(verifier.finish(&head))
}
