//! An in-memory [`AgentStore`]: the fake for unit tests and for embedding without a
//! database. One mutex stands in for the database's transactions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use audit::{MemoryAuditLog, NewAuditEvent};
use chrono::{DateTime, Utc};

use crate::model::{
    Agent, AgentEffect, AgentId, Candidate, EffectiveStatus, Liveness, OfferMark, PauseReason,
    Presence, PresenceState,
};
use crate::port::{
    AgentPatch, AgentStore, AgentStoreError, MissesAudit, PresenceAudit, ReleaseAudit, SignInAudit,
    WrapUpAudit,
};

#[derive(Debug, Default)]
struct Inner {
    agents: BTreeMap<AgentId, Agent>,
    tokens: BTreeMap<String, AgentId>,
    /// Sign-in links by token hash: agent, expiry, used.
    links: BTreeMap<String, (AgentId, DateTime<Utc>, bool)>,
}

/// Agents in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryAgentStore {
    inner: Arc<Mutex<Inner>>,
    audit: MemoryAuditLog,
}

impl MemoryAgentStore {
    /// An empty store writing its audit events to `audit`.
    #[must_use]
    pub fn new(audit: MemoryAuditLog) -> Self {
        Self {
            inner: Arc::default(),
            audit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a call's effect on an agent, for the in-memory call store: counters added,
    /// the call engaged only if the agent holds none, released only if it holds this one.
    /// Unknown agents are ignored (an agent may be removed while a call it took runs).
    pub fn apply_effect(&self, effect: &AgentEffect, call_sid: &str, now: DateTime<Utc>) {
        let mut inner = self.lock();
        let Some(a) = inner.agents.get_mut(&effect.agent_id) else {
            return;
        };
        a.metrics.calls_answered += effect.delta.answered;
        a.metrics.calls_missed += effect.delta.missed;
        a.metrics.total_talk_seconds += effect.delta.talk_seconds;
        if effect.engage && a.current_call_sid.is_none() {
            a.current_call_sid = Some(call_sid.to_owned());
        }
        let held_by_offer =
            a.current_call_sid.is_none() && a.offer_call_sid.as_deref() == Some(call_sid);
        if effect.release && (a.current_call_sid.as_deref() == Some(call_sid) || held_by_offer) {
            a.current_call_sid = None;
            a.idle_since = effect.wrap_up_until.unwrap_or(now);
        }
        if effect.no_answer_until.is_some() {
            a.no_answer_until = effect.no_answer_until.max(a.no_answer_until);
        }
        a.missed_in_a_row = next_missed_in_a_row(a.missed_in_a_row, &effect.delta);
        mark_offer(a, effect.offer, call_sid);
    }

    /// Whether a change made at `now` may reserve `agent` for `call_sid` (see
    /// [`Agent::reservable`]); an unknown agent may not.
    #[must_use]
    pub fn reservable(&self, agent: AgentId, call_sid: &str, now: DateTime<Utc>) -> bool {
        self.lock()
            .agents
            .get(&agent)
            .is_some_and(|a| a.reservable(call_sid, now))
    }

    /// Whether `agent` holds an open offer (tests).
    #[must_use]
    pub fn offer_of(&self, agent: AgentId) -> Option<String> {
        self.lock()
            .agents
            .get(&agent)
            .and_then(|a| a.offer_call_sid.clone())
    }

    fn key_taken(inner: &Inner, key: &str, except: Option<AgentId>) -> bool {
        inner
            .agents
            .values()
            .any(|a| a.sip_uri.key() == key && Some(a.id) != except)
    }
}

/// Misses in a row after a change's counters: an answer resets them, a miss adds.
fn next_missed_in_a_row(before: i32, delta: &crate::MetricsDelta) -> i32 {
    if delta.answered > 0 {
        0
    } else {
        before.saturating_add(i32::try_from(delta.missed).unwrap_or(0).max(0))
    }
}

/// The open-offer marker after `mark` by `call_sid` (what the SQL adapters do too).
fn mark_offer(a: &mut Agent, mark: Option<OfferMark>, call_sid: &str) {
    match mark {
        Some(m @ (OfferMark::Reserve | OfferMark::ReserveRinging)) => {
            a.offer_call_sid = Some(call_sid.to_owned());
            a.offer_ringing = m == OfferMark::ReserveRinging;
        }
        Some(OfferMark::Ring) if a.offer_call_sid.as_deref() == Some(call_sid) => {
            a.offer_ringing = true;
        }
        Some(OfferMark::Clear) if a.offer_call_sid.as_deref() == Some(call_sid) => {
            a.offer_call_sid = None;
            a.offer_ringing = false;
        }
        _ => {}
    }
}

/// A resumed agent starts counting misses again.
fn resumed(a: &mut Agent, next: &PresenceState) {
    if a.paused_reason.is_some() && next.paused_reason.is_none() {
        a.missed_in_a_row = 0;
    }
}

#[async_trait]
impl AgentStore for MemoryAgentStore {
    async fn insert(
        &self,
        agent: &Agent,
        token_hash: &str,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(), AgentStoreError> {
        let mut inner = self.lock();
        if Self::key_taken(&inner, agent.sip_uri.key(), None) {
            return Err(AgentStoreError::DuplicateSipUri);
        }
        inner.agents.insert(agent.id, agent.clone());
        inner.tokens.insert(token_hash.to_owned(), agent.id);
        self.audit.push(audit);
        Ok(())
    }

    async fn get(&self, id: AgentId) -> Result<Option<Agent>, AgentStoreError> {
        Ok(self.lock().agents.get(&id).cloned())
    }

    async fn get_many(&self, ids: &[AgentId]) -> Result<Vec<Agent>, AgentStoreError> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| inner.agents.get(id).cloned())
            .collect())
    }

    async fn agent_for_token(&self, token_hash: &str) -> Result<Option<AgentId>, AgentStoreError> {
        Ok(self.lock().tokens.get(token_hash).copied())
    }

    async fn find_by_sip_key(&self, key: &str) -> Result<Option<Agent>, AgentStoreError> {
        Ok(self
            .lock()
            .agents
            .values()
            .find(|a| a.sip_uri.key() == key)
            .cloned())
    }

    async fn list(
        &self,
        status: Option<EffectiveStatus>,
        liveness: &Liveness,
    ) -> Result<Vec<Agent>, AgentStoreError> {
        let inner = self.lock();
        let mut out: Vec<Agent> = inner
            .agents
            .values()
            .filter(|a| status.is_none_or(|s| a.status(liveness) == s))
            .cloned()
            .collect();
        out.sort_by_key(|a| (a.created_at, a.id));
        Ok(out)
    }

    async fn update(
        &self,
        id: AgentId,
        patch: &AgentPatch,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Agent, AgentStoreError> {
        let mut inner = self.lock();
        if !inner.agents.contains_key(&id) {
            return Err(AgentStoreError::NotFound);
        }
        if let Some(uri) = &patch.sip_uri
            && Self::key_taken(&inner, uri.key(), Some(id))
        {
            return Err(AgentStoreError::DuplicateSipUri);
        }
        let agent = inner.agents.get_mut(&id).ok_or(AgentStoreError::NotFound)?;
        if let Some(name) = &patch.name {
            agent.name = name.clone();
        }
        if let Some(uri) = &patch.sip_uri {
            agent.sip_uri = uri.clone();
        }
        if let Some(p) = &patch.presence {
            resumed(agent, p);
            if *p != agent.presence_state() {
                agent.presence_since = now;
            }
            agent.presence = p.presence;
            agent.paused_reason.clone_from(&p.paused_reason);
        }
        agent.updated_at = now;
        let updated = agent.clone();
        self.audit.push(audit);
        Ok(updated)
    }

    async fn heartbeat(
        &self,
        id: AgentId,
        presence: Option<&PresenceState>,
        now: DateTime<Utc>,
        on_change: PresenceAudit<'_>,
    ) -> Result<Agent, AgentStoreError> {
        let mut inner = self.lock();
        let agent = inner.agents.get_mut(&id).ok_or(AgentStoreError::NotFound)?;
        let previous = agent.presence_state();
        agent.last_heartbeat_at = Some(now);
        agent.updated_at = now;
        if let Some(p) = presence {
            resumed(agent, p);
            if *p != previous {
                agent.presence_since = now;
            }
            agent.presence = p.presence;
            agent.paused_reason.clone_from(&p.paused_reason);
            if *p != previous {
                self.audit.push(on_change(&previous, p));
            }
        }
        Ok(agent.clone())
    }

    async fn release(
        &self,
        id: AgentId,
        call: Option<&str>,
        now: DateTime<Utc>,
        audit: ReleaseAudit<'_>,
    ) -> Result<Option<String>, AgentStoreError> {
        let mut inner = self.lock();
        let agent = inner.agents.get_mut(&id).ok_or(AgentStoreError::NotFound)?;
        let Some(held) = agent
            .current_call_sid
            .take_if(|held| call.is_none_or(|c| c == held))
        else {
            return Ok(None);
        };
        agent.idle_since = now;
        self.audit.push(audit(&held));
        Ok(Some(held))
    }

    async fn end_wrap_up(
        &self,
        id: AgentId,
        now: DateTime<Utc>,
        audit: WrapUpAudit<'_>,
    ) -> Result<Agent, AgentStoreError> {
        let mut inner = self.lock();
        let agent = inner.agents.get_mut(&id).ok_or(AgentStoreError::NotFound)?;
        if let Some(until) = agent.wrap_up_until(now) {
            agent.idle_since = now;
            self.audit.push(audit(until));
        }
        Ok(agent.clone())
    }

    async fn pause_for_misses(
        &self,
        misses: i32,
        reason: &PauseReason,
        now: DateTime<Utc>,
        audit: MissesAudit<'_>,
    ) -> Result<Vec<AgentId>, AgentStoreError> {
        let mut inner = self.lock();
        let mut paused = Vec::new();
        for a in inner.agents.values_mut() {
            if a.missed_in_a_row >= misses
                && a.presence == Presence::Available
                && a.paused_reason.is_none()
            {
                a.paused_reason = Some(reason.clone());
                a.presence_since = now;
                a.updated_at = now;
                self.audit.push(audit(a.id, a.missed_in_a_row));
                paused.push(a.id);
            }
        }
        paused.sort();
        Ok(paused)
    }

    async fn add_sign_in_link(
        &self,
        id: AgentId,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(), AgentStoreError> {
        let mut inner = self.lock();
        if !inner.agents.contains_key(&id) {
            return Err(AgentStoreError::NotFound);
        }
        inner.links.retain(|_, (_, until, _)| *until >= now);
        inner
            .links
            .insert(token_hash.to_owned(), (id, expires_at, false));
        self.audit.push(audit);
        Ok(())
    }

    async fn use_sign_in_link(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        audit: SignInAudit<'_>,
    ) -> Result<Option<AgentId>, AgentStoreError> {
        let mut inner = self.lock();
        let Some((agent, until, used)) = inner.links.get_mut(token_hash) else {
            return Ok(None);
        };
        if *used || *until <= now {
            return Ok(None);
        }
        *used = true;
        let agent = *agent;
        self.audit.push(audit(agent));
        Ok(Some(agent))
    }

    async fn delete(&self, id: AgentId, audit: Vec<NewAuditEvent>) -> Result<(), AgentStoreError> {
        let mut inner = self.lock();
        inner.agents.remove(&id).ok_or(AgentStoreError::NotFound)?;
        inner.tokens.retain(|_, a| *a != id);
        inner.links.retain(|_, (a, _, _)| *a != id);
        self.audit.push(audit);
        Ok(())
    }

    async fn available_now(
        &self,
        liveness: &Liveness,
        limit: u32,
    ) -> Result<Vec<Candidate>, AgentStoreError> {
        let inner = self.lock();
        let mut ready: Vec<&Agent> = inner
            .agents
            .values()
            .filter(|a| a.eligible(liveness))
            .collect();
        ready.sort_by_key(|a| (a.idle_since, a.id));
        Ok(ready
            .into_iter()
            .take(limit as usize)
            .map(|a| Candidate {
                id: a.id,
                sip_uri: a.sip_uri.clone(),
                missed_in_a_row: a.missed_in_a_row,
            })
            .collect())
    }
}
