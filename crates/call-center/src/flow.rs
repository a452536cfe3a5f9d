//! The call-flow service: load, decide, apply — retried when another request changed the
//! call first. Also the read side (`GET /calls`), redaction and retention.

use std::sync::Arc;

use agents::{AgentStore, AgentStoreError, Clock, Liveness};
use audit::{Actor, AuditAction, AuditSink, NewAuditEvent};
use chrono::Duration;
use serde_json::Value;
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::decide::{Context, Reply, decide, opens_round};
use crate::documents;
use crate::event::Event;
use crate::model::{Call, CallView};
use crate::port::{
    Applied, CallFilter, CallStore, CallStoreError, Receipt, Redaction, SignedRequest,
};
use crate::settings::FlowSettings;
use crate::urls::Urls;

/// How often a decision is retried after losing a race before giving up.
const MAX_TRIES: usize = 8;

/// Why a webhook could not be handled.
#[derive(Debug, Error)]
pub enum FlowError {
    /// The signature was already used for a different request (a replay with another query
    /// string or body): HTTP 401.
    #[error("webhook signature replayed for a different request")]
    Replay,
    /// The call store failed.
    #[error("call store failure")]
    Calls(#[from] CallStoreError),
    /// The agent store failed.
    #[error("agent store failure")]
    Agents(#[from] AgentStoreError),
    /// Too many concurrent changes to one call.
    #[error("too many concurrent changes to call {0}")]
    Contention(String),
}

/// What the server answers, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The reply to send.
    pub reply: Reply,
    /// Whether the request was a repeat (nothing applied).
    pub duplicate: bool,
    /// Whether a change was written.
    pub applied: bool,
}

/// The call flow over its ports.
#[derive(Clone)]
pub struct CallFlow {
    calls: Arc<dyn CallStore>,
    agents: Arc<dyn AgentStore>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
    settings: Arc<FlowSettings>,
    urls: Arc<Urls>,
    heartbeat_ttl: Duration,
}

impl std::fmt::Debug for CallFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFlow")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The ports a [`CallFlow`] works through.
#[derive(Clone)]
pub struct Ports {
    /// Calls.
    pub calls: Arc<dyn CallStore>,
    /// Agents (read for routing).
    pub agents: Arc<dyn AgentStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Audit events go through this sink into each change.
    pub audit: Arc<dyn AuditSink>,
}

impl CallFlow {
    /// A flow; `heartbeat_ttl` decides which agents count as available.
    #[must_use]
    pub fn new(ports: Ports, settings: FlowSettings, urls: Urls, heartbeat_ttl: Duration) -> Self {
        Self {
            calls: ports.calls,
            agents: ports.agents,
            clock: ports.clock,
            audit: ports.audit,
            settings: Arc::new(settings),
            urls: Arc::new(urls),
            heartbeat_ttl,
        }
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    /// The document to answer when anything failed: never dead air. `call` is the caller's
    /// `CallSid` when the request named one.
    #[must_use]
    pub fn fallback(&self, call: Option<&str>) -> texml::Response {
        documents::fallback(&self.settings, &self.urls, call)
    }

    /// The URLs (and the keys that verify them).
    #[must_use]
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// Handles one webhook. `signature` is the receipt of a verified signature (none when
    /// verification is off).
    ///
    /// # Errors
    /// [`FlowError::Replay`] for a signature seen with another request; store failures and
    /// contention otherwise (the HTTP layer answers the fallback document).
    pub async fn handle(
        &self,
        event: &Event,
        signature: Option<SignedRequest>,
    ) -> Result<Handled, FlowError> {
        if event.is_progress_only() && signature.as_ref().is_none_or(|s| s.covers_parameters) {
            // Nothing to store, and a signed body cannot be replayed into anything else.
            return Ok(Handled {
                reply: Reply::Ack,
                duplicate: false,
                applied: false,
            });
        }
        let signature = signature.map(|s| s.receipt);
        let natural = event.natural_key().map(|key| Receipt {
            key,
            fingerprint: String::new(),
        });
        let receipts: Vec<Receipt> = natural.into_iter().chain(signature).collect();
        let Some(call_sid) = self.call_sid_for(event).await? else {
            debug!("callback for an unknown call; acknowledged");
            self.remember(&receipts).await?;
            return Ok(Handled {
                reply: Reply::Ack,
                duplicate: false,
                applied: false,
            });
        };
        let keys: Vec<String> = receipts.iter().map(|r| r.key.clone()).collect();
        for _ in 0..MAX_TRIES {
            if let Some(done) = self.try_once(event, &call_sid, &keys, &receipts).await? {
                return Ok(done);
            }
        }
        Err(FlowError::Contention(call_sid))
    }

    async fn try_once(
        &self,
        event: &Event,
        call_sid: &str,
        keys: &[String],
        receipts: &[Receipt],
    ) -> Result<Option<Handled>, FlowError> {
        let snapshot = self.calls.load(call_sid, keys).await?;
        for seen in &snapshot.seen {
            let replayed = receipts
                .iter()
                .any(|r| r.key == seen.key && r.fingerprint != seen.fingerprint);
            if replayed {
                return Err(FlowError::Replay);
            }
        }
        let duplicate = !snapshot.seen.is_empty();
        let state = snapshot.state.as_ref();
        let now = self.clock.now();
        let candidates = if !duplicate && opens_round(state.map(|s| &s.call), event, &self.settings)
        {
            let liveness = Liveness::new(now, self.heartbeat_ttl);
            self.agents
                .available_now(&liveness, self.settings.max_agents_per_round)
                .await?
        } else {
            Vec::new()
        };
        let ctx = Context {
            now,
            settings: &self.settings,
            urls: &self.urls,
            candidates: &candidates,
        };
        let decision = decide(state, event, &ctx);
        if duplicate {
            return Ok(Some(Handled {
                reply: decision.reply,
                duplicate: true,
                applied: false,
            }));
        }
        let Some(mut change) = decision.change else {
            let signed: Vec<Receipt> = receipts
                .iter()
                .filter(|r| !r.fingerprint.is_empty())
                .cloned()
                .collect();
            if self.remember(&signed).await? == Applied::Conflict {
                return Ok(None);
            }
            return Ok(Some(Handled {
                reply: decision.reply,
                duplicate: false,
                applied: false,
            }));
        };
        change.receipts = receipts.to_vec();
        let staged = std::mem::take(&mut change.audit);
        for e in staged {
            self.audit.stage(&mut change.audit, e);
        }
        match self.calls.apply(&change).await? {
            Applied::Yes => Ok(Some(Handled {
                reply: decision.reply,
                duplicate: false,
                applied: true,
            })),
            Applied::Conflict => {
                debug!(call_sid, "lost a race; deciding again");
                Ok(None)
            }
        }
    }

    async fn remember(&self, receipts: &[Receipt]) -> Result<Applied, FlowError> {
        if receipts.is_empty() {
            return Ok(Applied::Yes);
        }
        Ok(self
            .calls
            .record_receipts(receipts, self.clock.now())
            .await?)
    }

    /// The caller's call an event concerns. A Call Control event names only the agent's
    /// leg: it counts only once a TeXML callback bound that leg to its offer; an unbound leg
    /// is acknowledged and ignored (logged).
    async fn call_sid_for(&self, event: &Event) -> Result<Option<String>, FlowError> {
        if let Some(sid) = event.call_sid() {
            return Ok(Some(sid.to_owned()));
        }
        let Event::Leg(leg) = event else {
            return Ok(None);
        };
        let call = self.calls.call_for_leg(&leg.leg_sid).await?;
        if call.is_none() {
            info!(leg = %leg.leg_sid, "a Call Control event for a leg bound to no offer; ignored");
        }
        Ok(call)
    }

    /// One call as the API shows it.
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn call(&self, call_sid: &str) -> Result<Option<CallView>, FlowError> {
        Ok(self.calls.get(call_sid).await?.as_ref().map(CallView::from))
    }

    /// Calls, newest first.
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn calls(&self, filter: &CallFilter) -> Result<Vec<CallView>, FlowError> {
        Ok(self
            .calls
            .list(filter)
            .await?
            .iter()
            .map(CallView::from)
            .collect())
    }

    /// The stored call (all fields).
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn stored_call(&self, call_sid: &str) -> Result<Option<Call>, FlowError> {
        Ok(self.calls.get(call_sid).await?)
    }

    /// Removes a call's recordings and transcription, auditing who and why.
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn redact(
        &self,
        call_sid: &str,
        reason: &str,
        actor: Actor,
    ) -> Result<Redaction, FlowError> {
        let now = self.clock.now();
        let event = NewAuditEvent::new(now, actor, AuditAction::RecordingRedacted)
            .call(call_sid)
            .data([("reason", Value::from(reason))]);
        let mut batch = Vec::new();
        self.audit.stage(&mut batch, event);
        Ok(self.calls.redact(call_sid, now, batch).await?)
    }

    /// Redacts recordings and transcriptions of calls older than `days` days. Several
    /// instances may run it at once: each call is redacted (and audited) once.
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn apply_retention(&self, days: u32) -> Result<u64, FlowError> {
        let cutoff = self.clock.now() - Duration::days(i64::from(days));
        let mut redacted = 0;
        loop {
            let batch = self.calls.calls_to_redact(cutoff, 200).await?;
            if batch.is_empty() {
                return Ok(redacted);
            }
            let mut progressed = false;
            for sid in &batch {
                let reason = format!("retention: older than {days} days");
                if self.redact(sid, &reason, Actor::System).await? == Redaction::Redacted {
                    redacted += 1;
                    progressed = true;
                }
            }
            if !progressed {
                warn!(
                    count = batch.len(),
                    "retention found calls it could not redact"
                );
                return Ok(redacted);
            }
        }
    }

    /// Forgets receipts older than `age` (they only guard against repeats within Telnyx's
    /// retry window and the signature tolerance).
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn prune_receipts(&self, age: Duration) -> Result<u64, FlowError> {
        Ok(self.calls.prune_receipts(self.clock.now() - age).await?)
    }
}
