//! An in-memory [`AuditLog`] for unit tests and for embedding without a database.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::chain::{ChainHead, seal};
use crate::event::{AuditEntry, NewAuditEvent};
use crate::port::{AuditError, AuditFilter, AuditLog};

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<AuditEntry>,
    head: Option<ChainHead>,
}

/// A log held in memory. Clones share the same log.
#[derive(Debug, Clone, Default)]
pub struct MemoryAuditLog {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryAuditLog {
    /// An empty log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the Vec half-written; keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds pending entries at once; in-memory stores call this while they hold their own
    /// lock, which plays the part of the transaction.
    pub fn push(&self, events: Vec<NewAuditEvent>) {
        let mut inner = self.lock();
        for e in events {
            let id = i64::try_from(inner.entries.len()).unwrap_or(i64::MAX) + 1;
            inner.entries.push(AuditEntry {
                id,
                seq: None,
                occurred_at: e.occurred_at,
                actor: e.actor,
                action: e.action,
                call_sid: e.call_sid,
                agent_id: e.agent_id,
                data: e.data,
                prev_digest: None,
                digest: None,
            });
        }
    }

    /// Every entry, in storage order (for assertions).
    #[must_use]
    pub fn all(&self) -> Vec<AuditEntry> {
        self.lock().entries.clone()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(&self, events: Vec<NewAuditEvent>) -> Result<(), AuditError> {
        self.push(events);
        Ok(())
    }

    async fn seal_pending(&self) -> Result<u64, AuditError> {
        let mut inner = self.lock();
        let head = inner.head.clone().unwrap_or_else(ChainHead::genesis);
        let pending: Vec<(i64, NewAuditEvent)> = inner
            .entries
            .iter()
            .filter(|e| e.seq.is_none())
            .map(|e| (e.id, e.event()))
            .collect();
        let (seals, new_head) = seal(&head, &pending);
        for s in &seals {
            if let Some(e) = inner.entries.iter_mut().find(|e| e.id == s.id) {
                e.seq = Some(s.seq);
                e.prev_digest = Some(s.prev_digest.clone());
                e.digest = Some(s.digest.clone());
            }
        }
        inner.head = Some(new_head);
        Ok(seals.len() as u64)
    }

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AuditError> {
        let inner = self.lock();
        let mut out: Vec<AuditEntry> = inner
            .entries
            .iter()
            .filter(|e| {
                filter
                    .call_sid
                    .as_ref()
                    .is_none_or(|c| e.call_sid.as_ref() == Some(c))
            })
            .filter(|e| filter.agent_id.is_none_or(|a| e.agent_id == Some(a)))
            .cloned()
            .collect();
        out.sort_by_key(|e| (e.seq.is_none(), e.seq, e.id));
        out.truncate(filter.limit.unwrap_or(u32::MAX) as usize);
        Ok(out)
    }

    async fn chain_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, AuditError> {
        let inner = self.lock();
        let mut out: Vec<AuditEntry> = inner
            .entries
            .iter()
            .filter(|e| e.seq.is_some_and(|s| s > after_seq))
            .cloned()
            .collect();
        out.sort_by_key(|e| e.seq);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        Ok(self.lock().head.clone().unwrap_or_else(ChainHead::genesis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, AuditAction};
    use crate::port::verify_chain;
    use chrono::Utc;

    #[tokio::test]
    async fn sealed_entries_verify_and_pending_ones_wait() {
        let log = MemoryAuditLog::new();
        let event = |a| NewAuditEvent::new(Utc::now(), Actor::System, a);
        log.push(vec![
            event(AuditAction::AdminAction),
            event(AuditAction::CallReceived),
        ]);
        assert_eq!(log.seal_pending().await.unwrap(), 2);
        log.push(vec![event(AuditAction::CallCompleted)]);
        let report = verify_chain(&log).await.unwrap();
        assert!(report.ok);
        assert_eq!(report.entries, 2);
        assert_eq!(log.seal_pending().await.unwrap(), 1);
        assert_eq!(verify_chain(&log).await.unwrap().entries, 3);
    }
}
