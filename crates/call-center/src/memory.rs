//! An in-memory [`CallStore`]: the fake for unit tests and the store of the embedding
//! example. One mutex plays the transaction; agent effects and audit events go to the
//! in-memory agent store and audit log it shares with the rest of the fake world.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use agents::{AgentId, MemoryAgentStore, OfferMark};
use async_trait::async_trait;
use audit::{Actor, MemoryAuditLog, NewAuditEvent};
use chrono::{DateTime, Utc};

use crate::model::{Call, CallState, Offer, OfferState};
use crate::port::{
    Applied, CallChange, CallFilter, CallStore, CallStoreError, Receipt, Redaction, Snapshot,
};
use crate::queue::{MatchView, MatchWant};
use crate::voicemail::{
    InboxAudit, InboxFilter, InboxState, Voicemail, VoicemailStore, VoicemailStoreError,
};

/// Who owns a voicemail, kept beside the calls.
#[derive(Debug, Clone, Default)]
struct InboxRow {
    assigned_to: Option<AgentId>,
    assigned_at: Option<DateTime<Utc>>,
    done_at: Option<DateTime<Utc>>,
    done_by: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: HashMap<String, CallState>,
    rules: Vec<crate::queue::PriorityRule>,
    inbox: HashMap<String, InboxRow>,
    receipts: HashMap<String, (String, DateTime<Utc>)>,
    fail: bool,
}

/// Calls in memory; clones share them.
#[derive(Debug, Clone)]
pub struct MemoryCallStore {
    inner: Arc<Mutex<Inner>>,
    agents: MemoryAgentStore,
    audit: MemoryAuditLog,
}

impl MemoryCallStore {
    /// A store applying agent effects to `agents` and writing audit events to `audit`.
    #[must_use]
    pub fn new(agents: MemoryAgentStore, audit: MemoryAuditLog) -> Self {
        Self {
            inner: Arc::default(),
            agents,
            audit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes every later call fail (to test the fallback path); `false` heals it.
    pub fn set_failing(&self, fail: bool) {
        self.lock().fail = fail;
    }

    /// Whether `change` opens an offer for an agent that holds an open offer of another
    /// call (or of another round of this call).
    /// Whether `change` takes an open offer of another round or call (the databases' unique
    /// index; the change's own rows are written in order, so an offer it ends first is not
    /// open any more).
    fn takes_an_open_offer(inner: &Inner, change: &CallChange) -> bool {
        change
            .offers
            .iter()
            .filter(|o| o.state == OfferState::Ringing)
            .any(|new| {
                inner.calls.values().any(|s| {
                    s.offers.iter().any(|o| {
                        o.agent_id == new.agent_id
                            && o.state == OfferState::Ringing
                            && (o.call_sid != new.call_sid || o.attempt != new.attempt)
                            && !ends_in(change, o)
                    })
                })
            })
    }

    /// Whether every agent `change` reserves may still be reserved.
    fn reservations_hold(&self, change: &CallChange) -> bool {
        change
            .agents
            .iter()
            .filter(|e| e.offer.is_some_and(OfferMark::reserves))
            .all(|e| {
                self.agents
                    .reservable(e.agent_id, &change.call.call_sid, change.call.updated_at)
            })
    }

    fn check(inner: &Inner) -> Result<(), CallStoreError> {
        if inner.fail {
            return Err(CallStoreError::Unexpected(anyhow::anyhow!(
                "the store is failing (test switch)"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl CallStore for MemoryCallStore {
    /// The stored state itself: the flow's first try then always decides from it, as on
    /// SQLite when the call was written by this process.
    fn committed(&self, call_sid: &str) -> Option<CallState> {
        let inner = self.lock();
        if inner.fail {
            return None;
        }
        inner.calls.get(call_sid).cloned()
    }

    async fn load(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> Result<Snapshot, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let seen = receipt_keys
            .iter()
            .filter_map(|k| {
                inner.receipts.get(k).map(|(fp, _)| Receipt {
                    key: k.clone(),
                    fingerprint: fp.clone(),
                })
            })
            .collect();
        Ok(Snapshot {
            state: inner.calls.get(call_sid).cloned(),
            seen,
        })
    }

    async fn apply(&self, change: &CallChange) -> Result<Applied, CallStoreError> {
        let mut inner = self.lock();
        Self::check(&inner)?;
        let stored_version = inner
            .calls
            .get(&change.call.call_sid)
            .map_or(0, |s| s.call.version);
        if stored_version != change.expected_version
            || change
                .receipts
                .iter()
                .any(|r| inner.receipts.contains_key(&r.key))
        {
            return Ok(Applied::Conflict);
        }
        if Self::takes_an_open_offer(&inner, change) || !self.reservations_hold(change) {
            // As the stores' unique index on open offers per agent and their re-check of a
            // reserved agent's eligibility inside the transaction.
            return Ok(Applied::Conflict);
        }
        let state = inner
            .calls
            .entry(change.call.call_sid.clone())
            .or_insert_with(|| CallState {
                call: change.call.clone(),
                offers: Vec::new(),
            });
        state.call = change.call.clone();
        for offer in &change.offers {
            match state
                .offers
                .iter_mut()
                .find(|o| o.attempt == offer.attempt && o.agent_id == offer.agent_id)
            {
                Some(existing) => *existing = offer.clone(),
                None => state.offers.push(offer.clone()),
            }
        }
        let now = change.call.updated_at;
        for r in &change.receipts {
            inner
                .receipts
                .insert(r.key.clone(), (r.fingerprint.clone(), now));
        }
        for e in &change.agents {
            self.agents.apply_effect(e, &change.call.call_sid, now);
        }
        self.audit.push(change.audit.clone());
        Ok(Applied::Yes)
    }

    async fn record_receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<Applied, CallStoreError> {
        let mut inner = self.lock();
        Self::check(&inner)?;
        if receipts.iter().any(|r| inner.receipts.contains_key(&r.key)) {
            return Ok(Applied::Conflict);
        }
        for r in receipts {
            inner
                .receipts
                .insert(r.key.clone(), (r.fingerprint.clone(), now));
        }
        Ok(Applied::Yes)
    }

    async fn call_for_leg(&self, leg_sid: &str) -> Result<Option<String>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        Ok(inner
            .calls
            .values()
            .find(|s| {
                s.offers
                    .iter()
                    .any(|o| o.leg_sid.as_deref() == Some(leg_sid))
            })
            .map(|s| s.call.call_sid.clone()))
    }

    async fn get(&self, call_sid: &str) -> Result<Option<Call>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        Ok(inner.calls.get(call_sid).map(|s| s.call.clone()))
    }

    async fn list(&self, filter: &CallFilter) -> Result<Vec<Call>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut calls: Vec<Call> = inner
            .calls
            .values()
            .map(|s| s.call.clone())
            .filter(|c| filter.status.is_none_or(|st| c.status == st))
            .filter(|c| filter.answered_by.is_none_or(|a| c.answered_by == Some(a)))
            .collect();
        calls.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.call_sid.cmp(&a.call_sid))
        });
        calls.truncate(filter.limit as usize);
        Ok(calls)
    }

    async fn redact(
        &self,
        call_sid: &str,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Redaction, CallStoreError> {
        let mut inner = self.lock();
        Self::check(&inner)?;
        let Some(state) = inner.calls.get_mut(call_sid) else {
            return Ok(Redaction::NotFound);
        };
        let c = &mut state.call;
        if c.redacted_at.is_some() {
            return Ok(Redaction::AlreadyRedacted);
        }
        c.recording_url = None;
        c.voicemail_recording_url = None;
        c.voicemail_transcription = None;
        c.redacted_at = Some(now);
        c.version += 1;
        self.audit.push(audit);
        Ok(Redaction::Redacted)
    }

    async fn calls_to_reconcile(
        &self,
        silent_before: DateTime<Utc>,
        stray_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut sids: Vec<String> = inner
            .calls
            .values()
            .filter(|s| {
                let c = &s.call;
                let silent = !c.is_over() && c.updated_at < silent_before;
                let stray = c.updated_at < stray_before
                    && s.offers.iter().any(|o| {
                        o.state == OfferState::Ringing
                            && (c.is_over() || !c.round_open || o.attempt < c.attempts)
                    });
                silent || stray
            })
            .map(|s| s.call.call_sid.clone())
            .collect();
        sids.sort();
        sids.truncate(limit as usize);
        Ok(sids)
    }

    async fn calls_to_redact(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut old: Vec<&Call> = inner
            .calls
            .values()
            .map(|s| &s.call)
            .filter(|c| c.started_at < before && c.redacted_at.is_none())
            .filter(|c| {
                c.recording_url.is_some()
                    || c.voicemail_recording_url.is_some()
                    || c.voicemail_transcription.is_some()
            })
            .collect();
        old.sort_by_key(|c| c.started_at);
        Ok(old
            .into_iter()
            .take(limit as usize)
            .map(|c| c.call_sid.clone())
            .collect())
    }

    async fn prune_receipts(&self, before: DateTime<Utc>) -> Result<u64, CallStoreError> {
        let mut inner = self.lock();
        Self::check(&inner)?;
        let n = inner.receipts.len();
        inner.receipts.retain(|_, (_, at)| *at >= before);
        Ok((n - inner.receipts.len()) as u64)
    }
}

impl Inner {
    /// The inbox item of a call that reached voicemail.
    fn voicemail(&self, call_sid: &str) -> Option<Voicemail> {
        let call = &self.calls.get(call_sid)?.call;
        let left_at = call.voicemail_started_at?;
        let row = self.inbox.get(call_sid).cloned().unwrap_or_default();
        let state = InboxState::of(row.done_at.is_some(), row.assigned_to.is_some());
        Some(Voicemail {
            call_sid: call.call_sid.clone(),
            from: call.from.clone(),
            left_at,
            duration_seconds: call.voicemail_duration_seconds,
            transcription: call.voicemail_transcription.clone(),
            recording_url: call.voicemail_recording_url.clone(),
            state,
            assigned_to: row.assigned_to,
            assigned_at: row.assigned_at,
            done_at: row.done_at,
            done_by: row.done_by,
        })
    }
}

#[async_trait]
impl VoicemailStore for MemoryCallStore {
    async fn voicemails(
        &self,
        filter: &InboxFilter,
    ) -> Result<Vec<Voicemail>, VoicemailStoreError> {
        let inner = self.lock();
        Self::check(&inner).map_err(|e| VoicemailStoreError::Unexpected(e.into()))?;
        let mut items: Vec<Voicemail> = inner
            .calls
            .keys()
            .filter_map(|sid| inner.voicemail(sid))
            .filter(|v| filter.state.is_none_or(|s| s == v.state))
            .filter(|v| filter.assigned_to.is_none_or(|a| v.assigned_to == Some(a)))
            .collect();
        items.sort_by(|a, b| (b.left_at, &b.call_sid).cmp(&(a.left_at, &a.call_sid)));
        items.truncate(filter.limit as usize);
        Ok(items)
    }

    async fn voicemail(&self, call_sid: &str) -> Result<Option<Voicemail>, VoicemailStoreError> {
        let inner = self.lock();
        Self::check(&inner).map_err(|e| VoicemailStoreError::Unexpected(e.into()))?;
        Ok(inner.voicemail(call_sid))
    }

    async fn assign_voicemail(
        &self,
        call_sid: &str,
        agent: AgentId,
        now: DateTime<Utc>,
        audit: InboxAudit<'_>,
    ) -> Result<Voicemail, VoicemailStoreError> {
        let mut inner = self.lock();
        let before = inner
            .voicemail(call_sid)
            .ok_or(VoicemailStoreError::NotFound)?;
        if before.state == InboxState::Done {
            return Err(VoicemailStoreError::AlreadyDone);
        }
        let row = inner.inbox.entry(call_sid.to_owned()).or_default();
        row.assigned_to = Some(agent);
        row.assigned_at = Some(now);
        self.audit.push(audit(&before));
        inner
            .voicemail(call_sid)
            .ok_or(VoicemailStoreError::NotFound)
    }

    async fn finish_voicemail(
        &self,
        call_sid: &str,
        by: &Actor,
        owner: Option<AgentId>,
        now: DateTime<Utc>,
        audit: InboxAudit<'_>,
    ) -> Result<Voicemail, VoicemailStoreError> {
        let mut inner = self.lock();
        let before = inner
            .voicemail(call_sid)
            .ok_or(VoicemailStoreError::NotFound)?;
        if owner.is_some_and(|o| before.assigned_to != Some(o)) {
            return Err(VoicemailStoreError::NotOwner);
        }
        if before.state != InboxState::Done {
            let row = inner.inbox.entry(call_sid.to_owned()).or_default();
            row.done_at = Some(now);
            row.done_by = Some(by.to_string());
            self.audit.push(audit(&before));
        }
        inner
            .voicemail(call_sid)
            .ok_or(VoicemailStoreError::NotFound)
    }
}

/// Queue order: priority (higher first), then `enqueued_at`, then the sid.
fn queue_key(c: &Call) -> (std::cmp::Reverse<i32>, Option<DateTime<Utc>>, &str) {
    (
        std::cmp::Reverse(c.priority),
        c.enqueued_at,
        c.call_sid.as_str(),
    )
}

fn in_queue(c: &Call) -> bool {
    matches!(
        c.status,
        crate::model::CallStatus::Ringing | crate::model::CallStatus::Dialing
    ) && c.enqueued_at.is_some()
}

#[async_trait]
impl crate::queue::QueueStore for MemoryCallStore {
    async fn priority_for(&self, number: &str) -> Result<i32, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        Ok(crate::queue::priority_of(&inner.rules, number))
    }

    async fn priority_rules(&self) -> Result<Vec<crate::queue::PriorityRule>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut rules = inner.rules.clone();
        rules.sort_by(|a, b| a.pattern.as_str().cmp(b.pattern.as_str()));
        Ok(rules)
    }

    async fn put_priority_rule(
        &self,
        rule: &crate::queue::PriorityRule,
        audit: Vec<NewAuditEvent>,
    ) -> Result<crate::queue::PriorityRule, CallStoreError> {
        let mut inner = self.lock();
        Self::check(&inner)?;
        let stored = match inner.rules.iter_mut().find(|r| r.pattern == rule.pattern) {
            Some(r) => {
                r.priority = rule.priority;
                r.label.clone_from(&rule.label);
                r.clone()
            }
            None => {
                inner.rules.push(rule.clone());
                rule.clone()
            }
        };
        self.audit.push(audit);
        Ok(stored)
    }

    async fn remove_priority_rule(
        &self,
        id: uuid::Uuid,
        audit: Vec<NewAuditEvent>,
    ) -> Result<bool, CallStoreError> {
        let mut inner = self.lock();
        Self::check(&inner)?;
        let before = inner.rules.len();
        inner.rules.retain(|r| r.id != id);
        let removed = inner.rules.len() < before;
        if removed {
            self.audit.push(audit);
        }
        Ok(removed)
    }

    async fn match_view(&self, want: &MatchWant) -> Result<MatchView, CallStoreError> {
        let heads = {
            let inner = self.lock();
            Self::check(&inner)?;
            let mut heads: Vec<&Call> = inner
                .calls
                .values()
                .map(|s| &s.call)
                .filter(|c| {
                    c.is_waiting()
                        && c.attempts < want.max_rounds
                        && c.enqueued_at.is_some_and(|t| t >= want.enqueued_after)
                })
                .collect();
            heads.sort_by(|a, b| queue_key(a).cmp(&queue_key(b)));
            heads
                .into_iter()
                .take(want.heads as usize)
                .map(|c| c.call_sid.clone())
                .collect()
        };
        let free = agents::AgentStore::available_now(&self.agents, &want.liveness, want.agents)
            .await
            .map_err(|e| CallStoreError::Unexpected(anyhow::Error::new(e)))?;
        Ok(MatchView { heads, free })
    }

    async fn queued_calls(&self, limit: u32) -> Result<Vec<Call>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut calls: Vec<&Call> = inner
            .calls
            .values()
            .map(|s| &s.call)
            .filter(|c| in_queue(c))
            .collect();
        calls.sort_by(|a, b| queue_key(a).cmp(&queue_key(b)));
        Ok(calls.into_iter().take(limit as usize).cloned().collect())
    }

    async fn place(
        &self,
        call: &Call,
        now: DateTime<Utc>,
    ) -> Result<crate::decide::QueuePlace, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let key = queue_key(call);
        let ahead = inner
            .calls
            .values()
            .filter(|s| in_queue(&s.call) && queue_key(&s.call) < key)
            .count();
        let since = now - crate::queue::EXPECTED_WAIT_WINDOW;
        let answered = inner
            .calls
            .values()
            .filter(|s| s.call.answered_at.is_some_and(|t| t >= since))
            .count();
        let position = i64::try_from(ahead).unwrap_or(i64::MAX - 1) + 1;
        Ok(crate::decide::QueuePlace {
            position,
            expected_wait: crate::queue::expected_wait(
                position,
                i64::try_from(answered).unwrap_or(i64::MAX),
            ),
        })
    }

    async fn open_rounds_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut open: Vec<&Call> = inner
            .calls
            .values()
            .map(|s| &s.call)
            .filter(|c| c.round_open && in_queue(c) && c.delivery_at.is_some_and(|t| t <= before))
            .collect();
        open.sort_by_key(|c| c.delivery_at);
        Ok(open
            .into_iter()
            .take(limit as usize)
            .map(|c| c.call_sid.clone())
            .collect())
    }

    async fn pending_pushes(&self, limit: u32) -> Result<Vec<String>, CallStoreError> {
        let inner = self.lock();
        Self::check(&inner)?;
        let mut pending: Vec<&Call> = inner
            .calls
            .values()
            .map(|s| &s.call)
            .filter(|c| c.round_open && c.delivery == Some(crate::model::Delivery::Pending))
            .collect();
        pending.sort_by_key(|c| c.delivery_at);
        Ok(pending
            .into_iter()
            .take(limit as usize)
            .map(|c| c.call_sid.clone())
            .collect())
    }
}

/// Whether `change` also writes `offer` as no longer ringing.
fn ends_in(change: &CallChange, offer: &Offer) -> bool {
    change.offers.iter().any(|o| {
        o.call_sid == offer.call_sid
            && o.attempt == offer.attempt
            && o.agent_id == offer.agent_id
            && o.state != OfferState::Ringing
    })
}
