//! The call-flow service: load, decide, apply — retried when another request changed the
//! call first. Also the read side (`GET /calls`), redaction and retention.

use std::collections::HashMap;
use std::sync::Arc;

use agents::{AgentId, AgentStore, AgentStoreError, Clock, Liveness, PauseReason};
use audit::{Actor, AuditAction, AuditSink, NewAuditEvent};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::decide::{Context, Reply, decide, may_offer, wants_place};
use crate::documents;
use crate::event::Event;
use crate::model::{Call, CallState, CallView};
use crate::picks::{Pick, PickedAgents, Picks};
use crate::port::{
    Applied, CallFilter, CallStore, CallStoreError, Receipt, Redaction, SignedRequest, Snapshot,
};
use crate::queue::{MatchView, MatchWant, PriorityRule, QueueStore, QueuedCaller, RuleError};
use crate::settings::{FlowSettings, QueueStrategy};
use crate::urls::Urls;

/// How often a decision is retried after losing a race before giving up. Requests on one
/// call in one process take turns ([`CallTurns`]), so races are lost only to another
/// instance; with the backoff below, 40 tries span about two seconds.
const MAX_TRIES: u32 = 40;
/// The first backoff after a lost race; it doubles up to [`BACKOFF_CAP`], each wait drawn
/// at random below it ("full jitter"), so racing instances spread out.
const BACKOFF_START: std::time::Duration = std::time::Duration::from_millis(2);
/// The longest backoff.
const BACKOFF_CAP: std::time::Duration = std::time::Duration::from_millis(100);
/// Turnstiles kept before the ones nobody holds or waits for are swept (a waiter dropped
/// at the deadline can leave one behind).
const TURNS_SWEEP_AT: usize = 4096;

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

/// Why a queue change was refused.
#[derive(Debug, Error)]
pub enum QueueError {
    /// A bad priority rule.
    #[error(transparent)]
    Invalid(#[from] RuleError),
    /// The store failed.
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// What the matcher's step did for one waiting caller.
enum Reservation {
    /// Round `round` opened.
    Made { round: i32 },
    /// An agent or the caller moved since they were read.
    Conflict,
    /// The caller does not wait any more.
    NotWaiting,
}

/// What a try decides from.
enum Basis {
    /// The call and the webhook's receipts, read from the store.
    Read,
    /// The call as this process committed it ([`CallStore::committed`]; no read).
    Committed(Box<CallState>),
    /// No call: a first `/inbound` for a call this process has not written (no read; a
    /// call that exists after all, a retry reaching this instance, makes the insert
    /// conflict, and the next try reads).
    Absent,
}

impl Basis {
    /// Whether nothing was read: the webhook's receipts are then checked only by the
    /// store, when a change is applied.
    fn presumed(&self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// How one try at deciding a request went.
enum Try {
    /// Decided (and applied, when it changed something).
    Done(Handled),
    /// Another request changed the call or took an agent first; `offered`: the change
    /// offered agents read as free.
    Lost { offered: bool },
}

/// A request offering agents in its own answer picks them among this many times as many
/// of the longest idle ([`CallFlow::free_for`]).
const INLINE_SPREAD: u32 = 4;
/// Reads again at most this many times when every free agent is held by another request
/// of this process ([`CallFlow::free_for`]).
const PICK_WAITS: u32 = 4;
/// The longest wait for another request's release of its agents (it is released when that
/// request's change is stored, normally within a write turn).
const PICK_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(50);

/// Callers the matcher looks at per read of the queue's head.
const HEADS: u32 = 8;
/// Reservations, and reads of the queue's head, one matcher pass makes at most (the next
/// pass, a moment later, goes on).
const MATCHES_PER_PASS: u32 = 256;
/// Reservations the sweep checks, and pushes a worker claims, per pass.
const SWEEP_BATCH: u32 = 200;

/// What one matcher pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MatchPass {
    /// Callers for whom a round was reserved (call sid, round), in the order matched.
    pub reserved: Vec<(String, i32)>,
    /// Reservations withdrawn (not taken up in time).
    pub withdrawn: u64,
    /// Agents paused for missed offers (normally paused right after the miss; this pass
    /// catches a pause a crash or a database error left undone).
    pub paused: usize,
    /// How long each match took (read the head and the eligible agents, reserve), in
    /// order: what the matcher benchmark and the `callcenter_match_seconds` metric report.
    pub match_times: Vec<std::time::Duration>,
}

/// A push to make: redirect `call_sid` (of `account_sid`) to `url`, for `round`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushJob {
    /// The caller's call.
    pub call_sid: String,
    /// The Telnyx account the call belongs to (`AccountSid` of `/inbound`).
    pub account_sid: String,
    /// The reserved round.
    pub round: i32,
    /// The push target (signed).
    pub url: texml::Url,
}

/// Calls the reconciler repairs per pass, at most (the next pass takes the rest).
const RECONCILE_BATCH: u32 = 500;
/// How long an offer may stay ringing after its round ended before the reconciler cancels
/// it: the time its leg has to report its own end. A round answered by a leg the server
/// did not know yet (its callbacks behind the caller's `<Dial action>`) keeps its agents
/// held until their legs report, so a late answer still gets its wrap-up.
const LEG_REPORT_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// What one pass of [`CallFlow::reconcile`] repaired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciliation {
    /// Calls closed or whose stray offers were canceled.
    pub calls: u64,
    /// Agents freed from a call that no longer needed them.
    pub agents: u64,
}

/// Why an agent holding `call` should be freed (`None`: the hold is legitimate).
fn stranded(call: Option<&Call>, silent_before: DateTime<Utc>) -> Option<&'static str> {
    match call {
        None => Some("held by a call this server does not know"),
        Some(c) if c.is_over() => Some("held by a call that has ended"),
        Some(c) if c.updated_at < silent_before => Some(crate::decide::SILENT_CALL),
        Some(_) => None,
    }
}

/// One request being decided: what [`CallFlow::try_once`] needs on every try.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    event: &'a Event,
    call_sid: &'a str,
    keys: &'a [String],
    receipts: &'a [Receipt],
    now: DateTime<Utc>,
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

/// Requests on the same call take turns in this process (a burst of a dozen callbacks on
/// one call then costs no lost races, only a short wait); requests on other calls never
/// wait for each other. A turnstile exists while someone holds or waits for it.
/// Correctness never rests on it: the version check decides.
#[derive(Default)]
struct CallTurns(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// A call's turn, held until dropped.
struct Turn<'a> {
    turns: &'a CallTurns,
    call_sid: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl CallTurns {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn take(&self, call_sid: &str) -> Turn<'_> {
        let turnstile = {
            let mut map = self.map();
            if map.len() >= TURNS_SWEEP_AT {
                map.retain(|_, t| Arc::strong_count(t) > 1);
            }
            Arc::clone(map.entry(call_sid.to_owned()).or_default())
        };
        let guard = turnstile.lock_owned().await;
        Turn {
            turns: self,
            call_sid: call_sid.to_owned(),
            guard: Some(guard),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut map = self.turns.map();
        drop(self.guard.take());
        if map
            .get(&self.call_sid)
            .is_some_and(|t| Arc::strong_count(t) == 1)
        {
            map.remove(&self.call_sid);
        }
    }
}

/// Waits after the `n`th lost race (0-based): at random below `BACKOFF_START * 2^n`, capped.
async fn back_off(n: u32) {
    let ceiling = BACKOFF_START
        .saturating_mul(1 << n.min(16))
        .min(BACKOFF_CAP);
    let wait = ceiling.mul_f64(rand::random::<f64>());
    tokio::time::sleep(wait).await;
}

/// The call flow over its ports.
#[derive(Clone)]
pub struct CallFlow {
    calls: Arc<dyn CallStore>,
    queue: Arc<dyn QueueStore>,
    wake: Arc<tokio::sync::Notify>,
    agents: Arc<dyn AgentStore>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
    settings: Arc<FlowSettings>,
    urls: Arc<Urls>,
    heartbeat_ttl: Duration,
    turns: Arc<CallTurns>,
    picked: Arc<PickedAgents>,
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
    /// The queue (usually the same store as `calls`).
    pub queue: Arc<dyn QueueStore>,
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
            queue: ports.queue,
            wake: Arc::default(),
            agents: ports.agents,
            clock: ports.clock,
            audit: ports.audit,
            settings: Arc::new(settings),
            urls: Arc::new(urls),
            heartbeat_ttl,
            turns: Arc::default(),
            picked: Arc::default(),
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

    /// Handles one webhook received now. `signature` is the receipt of a verified signature
    /// (none when verification is off).
    ///
    /// # Errors
    /// As [`CallFlow::handle_at`].
    pub async fn handle(
        &self,
        event: &Event,
        signature: Option<SignedRequest>,
    ) -> Result<Handled, FlowError> {
        self.handle_at(event, signature, self.clock.now()).await
    }

    /// Handles one webhook as of `received_at`, when it was received: a callback replayed
    /// later (from the spool) is decided with the time it happened, not the time of the
    /// replay.
    ///
    /// # Errors
    /// [`FlowError::Replay`] for a signature seen with another request; store failures and
    /// contention otherwise (the HTTP layer answers the fallback document).
    pub async fn handle_at(
        &self,
        event: &Event,
        signature: Option<SignedRequest>,
        received_at: DateTime<Utc>,
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
            self.remember(&receipts, received_at).await?;
            return Ok(Handled {
                reply: Reply::Ack,
                duplicate: false,
                applied: false,
            });
        };
        let keys: Vec<String> = receipts.iter().map(|r| r.key.clone()).collect();
        let _turn = self.turns.take(&call_sid).await;
        let attempt = Attempt {
            event,
            call_sid: &call_sid,
            keys: &keys,
            receipts: &receipts,
            now: received_at,
        };
        for lost in 0..MAX_TRIES {
            // The first try decides from the call as this process committed it, when the
            // store keeps it, or, for an `/inbound`, from no call (no read either way); any
            // other reads the call and the receipts.
            let basis = if lost > 0 {
                Basis::Read
            } else {
                match self.calls.committed(&call_sid) {
                    Some(state) => Basis::Committed(Box::new(state)),
                    None if matches!(event, Event::Inbound { .. }) => Basis::Absent,
                    None => Basis::Read,
                }
            };
            let presumed = basis.presumed();
            match self.try_once(&attempt, basis).await? {
                Try::Done(done) => return Ok(done),
                // Stale, a webhook seen before, or no change to check: read it all, at once.
                Try::Lost { .. } if presumed => {}
                // Another request took an agent read as free: read again at once (the
                // agents it took are gone from the next read). A caller sent to the hold
                // loop instead would wait a hold segment for an agent that may be free.
                Try::Lost { offered: true } => {}
                Try::Lost { offered: false } => back_off(lost).await,
            }
        }
        Err(FlowError::Contention(call_sid))
    }

    /// One decision and its change, from `basis`. When nothing was read
    /// ([`Basis::presumed`]), the receipts are not read either, so only a decision with a
    /// change (checked by the store: version and receipts) is taken from it.
    async fn try_once(&self, a: &Attempt<'_>, basis: Basis) -> Result<Try, FlowError> {
        let Attempt {
            event,
            call_sid,
            keys,
            receipts,
            now,
        } = *a;
        let presumed = basis.presumed();
        let snapshot = match basis {
            Basis::Committed(state) => Snapshot {
                state: Some(*state),
                seen: Vec::new(),
            },
            Basis::Absent => Snapshot {
                state: None,
                seen: Vec::new(),
            },
            Basis::Read => self.calls.load(call_sid, keys).await?,
        };
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
        let priority = match event {
            Event::Inbound { from, .. }
                if !duplicate && state.is_none_or(|s| s.call.enqueued_at.is_none()) =>
            {
                self.queue.priority_for(from).await?
            }
            _ => 0,
        };
        let call = state.map(|s| &s.call);
        let offering = !duplicate && may_offer(call, event, &self.settings);
        let ring_again = match state {
            Some(s) if offering && matches!(event, Event::DialResult { .. }) => {
                self.eligible_again(s, now).await?
            }
            _ => Vec::new(),
        };
        // Held until this try ends: no other request of this process picks them meanwhile.
        let (at_head, free, _picks) = if offering {
            let wanted = self
                .agents_per_offer()
                .saturating_sub(u32::try_from(ring_again.len()).unwrap_or(u32::MAX));
            self.free_for(call_sid, now, wanted).await?
        } else {
            (false, Vec::new(), Picks::none())
        };
        let offered_now = at_head && !free.is_empty();
        let place = if !offered_now && !duplicate && wants_place(call, event) {
            let joining;
            let waiting = match call {
                Some(c) if c.enqueued_at.is_some() => c,
                // Joins the queue with this request: its place as of now, at its priority.
                _ => {
                    joining = Call {
                        priority,
                        enqueued_at: Some(now),
                        ..Call::new(call_sid, "", "", now)
                    };
                    &joining
                }
            };
            Some(self.queue.place(waiting, now).await?)
        } else {
            None
        };
        // An offer made here is timed after the read of its agents (as the matcher's): a
        // request that waited for its turn must not date an offer before what freed them.
        let now = if at_head {
            self.clock.now().max(now)
        } else {
            now
        };
        let ctx = Context {
            priority,
            place,
            candidates: &free,
            inline: !duplicate,
            at_head,
            ring_again: &ring_again,
            ..Context::new(now, &self.settings, &self.urls)
        };
        let decision = decide(state, event, &ctx);
        if duplicate {
            return Ok(Try::Done(Handled {
                reply: decision.reply,
                duplicate: true,
                applied: false,
            }));
        }
        let Some(mut change) = decision.change else {
            if presumed {
                // Nothing for the store to check: whether this webhook was seen before is
                // read with the call.
                return Ok(Try::Lost { offered: false });
            }
            let signed: Vec<Receipt> = receipts
                .iter()
                .filter(|r| !r.fingerprint.is_empty())
                .cloned()
                .collect();
            if self.remember(&signed, now).await? == Applied::Conflict {
                return Ok(Try::Lost { offered: false });
            }
            return Ok(Try::Done(Handled {
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
            Applied::Yes => {
                self.wake_if_matchable(&change);
                if change.agents.iter().any(|e| e.delta.missed > 0) {
                    self.pause_after_misses_or_later(now).await;
                }
                Ok(Try::Done(Handled {
                    reply: decision.reply,
                    duplicate: false,
                    applied: true,
                }))
            }
            Applied::Conflict => {
                debug!(call_sid, "lost a race; deciding again");
                Ok(Try::Lost {
                    offered: change
                        .agents
                        .iter()
                        .any(|e| e.offer.is_some_and(agents::OfferMark::reserves)),
                })
            }
        }
    }

    /// Whether nobody waits ahead of `call_sid` (the queue's head is empty or is this
    /// caller), and the agents free now: what its request may offer it in its own answer.
    /// The store re-checks each agent's reservability when the change is applied.
    ///
    /// Requests run concurrently (the matcher is one loop): each takes the `wanted` agents
    /// (the offer's, less those ringing again) at random among the [`INLINE_SPREAD`] ×
    /// `wanted` longest idle, keeping their order, among
    /// those no other request of this process holds ([`PickedAgents`]); the agents taken
    /// are held until the request's try ends. When every free agent is held, it waits for
    /// a release and reads again (at most [`PICK_WAITS`] times, then it takes what it read
    /// and the store decides).
    async fn free_for(
        &self,
        call_sid: &str,
        now: DateTime<Utc>,
        wanted: u32,
    ) -> Result<(bool, Vec<agents::Candidate>, Picks<'_>), FlowError> {
        let pool = wanted.saturating_mul(INLINE_SPREAD);
        let mut waits = 0;
        loop {
            let released = self.picked.released();
            tokio::pin!(released);
            released.as_mut().enable();
            // Eligibility as of the read (a request decided as of its receipt must still
            // see an agent released since).
            let now = self.clock.now().max(now);
            let view = self
                .queue
                .match_view(&self.match_want(now, 1, pool, true))
                .await?;
            if view.heads.first().is_some_and(|head| head != call_sid) {
                return Ok((false, Vec::new(), Picks::none()));
            }
            let mut free = view.free;
            if waits == PICK_WAITS {
                free.truncate(wanted as usize);
                return Ok((true, free, Picks::none()));
            }
            match self.picked.pick(free, wanted as usize) {
                Pick::Taken(taken, picks) => return Ok((true, taken, picks)),
                Pick::AllHeld => {
                    waits += 1;
                    let _ = tokio::time::timeout(PICK_WAIT_MAX, released).await;
                }
            }
        }
    }

    /// With no no-answer delay: the agents of the caller's ringing offers that are eligible
    /// but for that offer (present, not paused, heartbeat fresh) and whom this miss does not
    /// pause, whom the next round may ring again (the offer needs that many fewer free
    /// agents).
    async fn eligible_again(
        &self,
        state: &CallState,
        now: DateTime<Utc>,
    ) -> Result<Vec<AgentId>, FlowError> {
        if self.settings.queue.no_answer_delay > Duration::zero() {
            return Ok(Vec::new());
        }
        let now = self.clock.now().max(now);
        let liveness = Liveness::new(now, self.heartbeat_ttl);
        let misses_to_pause = self.settings.queue.misses_to_pause;
        let ringing = state.offers.iter().filter(|o| {
            o.attempt == state.call.attempts
                && o.state == crate::model::OfferState::Ringing
                && (misses_to_pause <= 0 || o.misses_before + 1 < misses_to_pause)
        });
        let ids: Vec<AgentId> = ringing.map(|o| o.agent_id).collect();
        let eligible = self
            .agents
            .get_many(&ids)
            .await?
            .into_iter()
            .filter(|agent| {
                agent.reservable(&state.call.call_sid, now)
                    && liveness.is_fresh(agent.last_heartbeat_at)
            })
            .map(|agent| agent.id)
            .collect();
        Ok(eligible)
    }

    /// The read of the queue's first `heads` callers (those who may still wait) with up to
    /// `agents` eligible agents, as of `at`.
    fn match_want(
        &self,
        at: DateTime<Utc>,
        heads: u32,
        agents: u32,
        free_if_nobody_waits: bool,
    ) -> MatchWant {
        MatchWant {
            heads,
            enqueued_after: at - self.settings.queue.max_wait,
            max_rounds: self.settings.max_attempts,
            agents,
            liveness: Liveness::new(at, self.heartbeat_ttl),
            free_if_nobody_waits,
        }
    }

    /// How many agents one offer rings: the strategy's.
    fn agents_per_offer(&self) -> u32 {
        match self.settings.queue.strategy {
            QueueStrategy::RingAll => self.settings.max_agents_per_round,
            QueueStrategy::LongestIdle => 1,
        }
    }

    async fn remember(
        &self,
        receipts: &[Receipt],
        received_at: DateTime<Utc>,
    ) -> Result<Applied, FlowError> {
        if receipts.is_empty() {
            return Ok(Applied::Yes);
        }
        Ok(self.calls.record_receipts(receipts, received_at).await?)
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
        let snapshot = self.calls.load(call_sid, &[]).await?;
        Ok(snapshot.state.as_ref().map(CallView::from))
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

    /// One pass of the reconciler: repairs what no callback will (calls silent for longer
    /// than any call lasts, offers still ringing in rounds that ended, agents held by calls
    /// that are over or unknown), each audited as `reconciled` with the reason. Safe on
    /// several instances at once: a call's repair is a versioned change like any other, an
    /// agent's release a compare-and-set on the call it holds.
    ///
    /// # Errors
    /// [`FlowError::Calls`], [`FlowError::Agents`].
    pub async fn reconcile(&self) -> Result<Reconciliation, FlowError> {
        let now = self.clock.now();
        let silent_before = now - self.settings.max_call_length;
        let stray_before = now - LEG_REPORT_GRACE;
        let mut done = Reconciliation::default();
        let sids = self
            .calls
            .calls_to_reconcile(silent_before, stray_before, RECONCILE_BATCH)
            .await?;
        for sid in sids {
            if self
                .repair_call(&sid, now, silent_before, stray_before)
                .await?
            {
                done.calls += 1;
            }
        }
        done.agents = self.release_stranded_agents(now, silent_before).await?;
        if done != Reconciliation::default() {
            info!(
                calls = done.calls,
                agents = done.agents,
                "reconciler repaired"
            );
        }
        Ok(done)
    }

    async fn repair_call(
        &self,
        sid: &str,
        now: DateTime<Utc>,
        silent_before: DateTime<Utc>,
        stray_before: DateTime<Utc>,
    ) -> Result<bool, FlowError> {
        let _turn = self.turns.take(sid).await;
        let Some(state) = self.calls.load(sid, &[]).await?.state else {
            return Ok(false);
        };
        let ctx = Context::new(now, &self.settings, &self.urls);
        let Some(mut change) = crate::decide::repair(&state, &ctx, silent_before, stray_before)
        else {
            return Ok(false);
        };
        for e in std::mem::take(&mut change.audit) {
            self.audit.stage(&mut change.audit, e);
        }
        // A conflict means the call moved on: the next pass looks again.
        Ok(self.calls.apply(&change).await? == Applied::Yes)
    }

    /// Frees agents held by a call that is over, unknown, or silent for longer than any call
    /// lasts.
    async fn release_stranded_agents(
        &self,
        now: DateTime<Utc>,
        silent_before: DateTime<Utc>,
    ) -> Result<u64, FlowError> {
        let liveness = Liveness::new(now, self.heartbeat_ttl);
        let mut released = 0;
        for agent in self.agents.list(None, &liveness).await? {
            let Some(held) = agent.current_call_sid.as_deref() else {
                continue;
            };
            let call = self.calls.get(held).await?;
            let Some(reason) = stranded(call.as_ref(), silent_before) else {
                continue;
            };
            let audit = |call: &str| {
                let event = NewAuditEvent::new(now, Actor::System, AuditAction::Reconciled)
                    .call(call)
                    .agent(agent.id.0)
                    .data([("reason", Value::from(reason))]);
                let mut batch = Vec::with_capacity(1);
                self.audit.stage(&mut batch, event);
                batch
            };
            if self
                .agents
                .release(agent.id, Some(held), now, &audit)
                .await?
                .is_some()
            {
                warn!(agent = %agent.id, call = held, reason, "agent released by the reconciler");
                released += 1;
            }
        }
        Ok(released)
    }

    /// Pauses (reason `missed-calls`) the agents whose misses in a row reached the limit,
    /// by the store's own count: a miss learned late counts with the ones learned before
    /// it. Audited in the same transaction (actor `system`).
    ///
    /// # Errors
    /// [`FlowError::Agents`].
    pub async fn pause_after_misses(&self, now: DateTime<Utc>) -> Result<Vec<AgentId>, FlowError> {
        let limit = self.settings.queue.misses_to_pause;
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let reason = PauseReason::parse(crate::decide::MISSED_CALLS)
            .map_err(|e| AgentStoreError::Unexpected(anyhow::anyhow!("pause reason: {e}")))?;
        let audit = |agent: AgentId, in_a_row: i32| {
            let mut event = NewAuditEvent::new(now, Actor::System, AuditAction::AgentStatusChanged)
                .data([
                    ("from", Value::from("available")),
                    ("to", Value::from("paused")),
                    ("to_reason", Value::from(crate::decide::MISSED_CALLS)),
                    ("missed_in_a_row", Value::from(in_a_row)),
                ]);
            event.agent_id = Some(agent.0);
            self.audit.staged(event)
        };
        let paused = self
            .agents
            .pause_for_misses(limit, &reason, now, &audit)
            .await?;
        for agent in &paused {
            info!(agent = %agent, "agent paused after {limit} missed offers in a row");
        }
        Ok(paused)
    }

    /// [`CallFlow::pause_after_misses`] right after a change with a miss; when it fails, the
    /// matcher's next pass does it (the change itself is stored).
    async fn pause_after_misses_or_later(&self, now: DateTime<Utc>) {
        if let Err(e) = self.pause_after_misses(now).await {
            warn!(error = %e, "pausing agents after missed offers: left to the matcher's next pass");
        }
    }

    /// Wakes the matcher when an applied change may have made a match possible: the caller
    /// waits in the queue, or an agent was released or its offer ended. (Agents going
    /// available through the API nudge it themselves; the periodic pass catches the rest.)
    fn wake_if_matchable(&self, change: &crate::port::CallChange) {
        let frees = change
            .agents
            .iter()
            .any(|e| e.release || e.offer == Some(agents::OfferMark::Clear));
        if frees || change.call.is_waiting() {
            self.wake.notify_one();
        }
    }

    /// Wakes the matcher (a caller may have joined the queue, an agent may be free).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Waits until [`CallFlow::nudge`] was called (or a change applied) since the last wait.
    pub async fn nudged(&self) {
        self.wake.notified().await;
    }

    /// One matcher pass: withdraws reservations nobody took up, then, while the queue's
    /// head has a caller and an agent is eligible, reserves agents for the head caller
    /// (one versioned change per caller; an agent taken meanwhile by another instance
    /// makes the change conflict, and both are read again). The head and the eligible
    /// agents are read before every match. Safe on several instances at once.
    ///
    /// # Errors
    /// [`FlowError::Calls`], [`FlowError::Agents`].
    pub async fn match_queue(&self) -> Result<MatchPass, FlowError> {
        let withdrawn = self.withdraw_stale().await?;
        let paused = self.pause_after_misses(self.clock.now()).await?.len();
        Ok(MatchPass {
            withdrawn,
            paused,
            ..self.match_waiting().await?
        })
    }

    /// The matching part of [`CallFlow::match_queue`] alone (what a nudge runs: the
    /// sweeps of stale reservations and missed-call pauses run on the matcher's interval).
    ///
    /// # Errors
    /// [`FlowError::Calls`], [`FlowError::Agents`].
    pub async fn match_waiting(&self) -> Result<MatchPass, FlowError> {
        let mut pass = MatchPass::default();
        let per_caller = self.agents_per_offer();
        let mut started = std::time::Instant::now();
        let mut reads = 0;
        while reads < MATCHES_PER_PASS && pass.reserved.len() < MATCHES_PER_PASS as usize {
            reads += 1;
            let read_at = self.clock.now();
            let MatchView { heads, free } = self
                .queue
                .match_view(&self.match_want(read_at, HEADS, per_caller, false))
                .await?;
            if heads.is_empty() || free.is_empty() {
                break;
            }
            // The offer's time is taken after the reads: a read held up (a stalled database)
            // may return changes committed meanwhile, such as a spooled callback replayed as
            // of its receipt, and an offer must not predate what freed its agent. The store
            // checks the agent is still reservable as of this time.
            let now = self.clock.now();
            let mut outcome = None;
            for sid in &heads {
                match self.reserve_for(sid, &free, now).await? {
                    Reservation::Made { round } => {
                        pass.reserved.push((sid.clone(), round));
                        pass.match_times.push(started.elapsed());
                        started = std::time::Instant::now();
                        outcome = Some(true);
                        break;
                    }
                    // An agent or the caller moved meanwhile: read both again.
                    Reservation::Conflict => {
                        outcome = Some(false);
                        break;
                    }
                    // Not waiting any more (answered, in voicemail, gone): the next one.
                    Reservation::NotWaiting => {}
                }
            }
            if outcome.is_none() {
                break;
            }
        }
        Ok(pass)
    }

    /// Reserves the first of `candidates` (as the strategy takes them) for `call_sid` if it
    /// still waits.
    async fn reserve_for(
        &self,
        call_sid: &str,
        candidates: &[agents::Candidate],
        now: DateTime<Utc>,
    ) -> Result<Reservation, FlowError> {
        let _turn = self.turns.take(call_sid).await;
        let Some(state) = self.calls.load(call_sid, &[]).await?.state else {
            return Ok(Reservation::NotWaiting);
        };
        let ctx = Context {
            candidates,
            ..Context::new(now, &self.settings, &self.urls)
        };
        let Some(change) = crate::decide::reserve(&state, &ctx) else {
            return Ok(Reservation::NotWaiting);
        };
        let round = change.call.attempts;
        Ok(match self.apply_staged(change).await? {
            Applied::Yes => Reservation::Made { round },
            Applied::Conflict => Reservation::Conflict,
        })
    }

    /// Stages a change's audit events and applies it.
    async fn apply_staged(
        &self,
        mut change: crate::port::CallChange,
    ) -> Result<Applied, FlowError> {
        for e in std::mem::take(&mut change.audit) {
            self.audit.stage(&mut change.audit, e);
        }
        let applied = self.calls.apply(&change).await?;
        if applied == Applied::Yes {
            self.wake_if_matchable(&change);
        }
        Ok(applied)
    }

    /// Withdraws the reservations nobody took up within their life; how many.
    async fn withdraw_stale(&self) -> Result<u64, FlowError> {
        let now = self.clock.now();
        let before = now - self.settings.queue.reservation_ttl;
        let mut withdrawn = 0;
        for sid in self.queue.open_rounds_before(before, SWEEP_BATCH).await? {
            let _turn = self.turns.take(&sid).await;
            let Some(state) = self.calls.load(&sid, &[]).await?.state else {
                continue;
            };
            let ctx = Context::new(now, &self.settings, &self.urls);
            let Some(change) = crate::decide::withdraw(&state, &ctx) else {
                continue;
            };
            if self.apply_staged(change).await? == Applied::Yes {
                info!(call = %sid, "reservation withdrawn: not taken up in time");
                withdrawn += 1;
            }
        }
        Ok(withdrawn)
    }

    /// Claims the pending pushes (pending → pushing, each a versioned change, so one worker
    /// on one instance gets each); the jobs to send.
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn claim_pushes(&self) -> Result<Vec<PushJob>, FlowError> {
        let mut jobs = Vec::new();
        for sid in self.queue.pending_pushes(SWEEP_BATCH).await? {
            let _turn = self.turns.take(&sid).await;
            let Some(state) = self.calls.load(&sid, &[]).await?.state else {
                continue;
            };
            let Some(account_sid) = state.call.account_sid.clone() else {
                continue;
            };
            let ctx = Context::new(self.clock.now(), &self.settings, &self.urls);
            let Some(change) = crate::decide::claim_push(&state, &ctx) else {
                continue;
            };
            let round = change.call.attempts;
            if self.apply_staged(change).await? == Applied::Yes {
                jobs.push(PushJob {
                    url: self.urls.pushed_offer(&sid, round),
                    call_sid: sid,
                    account_sid,
                    round,
                });
            }
        }
        Ok(jobs)
    }

    /// A push Telnyx did not accept: the offer is pending again, or left to the hold loop
    /// after the last attempt. (An accepted push needs nothing: the redirected request
    /// delivers the offer.)
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn push_failed(&self, job: &PushJob) -> Result<(), FlowError> {
        for lost in 0..MAX_TRIES {
            let turn = self.turns.take(&job.call_sid).await;
            let Some(state) = self.calls.load(&job.call_sid, &[]).await?.state else {
                return Ok(());
            };
            let ctx = Context::new(self.clock.now(), &self.settings, &self.urls);
            let Some(change) = crate::decide::push_failed(&state, &ctx, job.round) else {
                return Ok(());
            };
            if self.apply_staged(change).await? == Applied::Yes {
                return Ok(());
            }
            drop(turn);
            back_off(lost).await;
        }
        Err(FlowError::Contention(job.call_sid.clone()))
    }

    /// Everyone in the queue, in order, with their place and wait (at most `limit`).
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn queue(&self, limit: u32) -> Result<Vec<QueuedCaller>, FlowError> {
        let calls = self.queue.queued_calls(limit).await?;
        Ok(QueuedCaller::list(&calls, self.clock.now()))
    }

    /// The priority rules, by pattern.
    ///
    /// # Errors
    /// [`FlowError::Calls`].
    pub async fn priority_rules(&self) -> Result<Vec<PriorityRule>, FlowError> {
        Ok(self.queue.priority_rules().await?)
    }

    /// Sets the priority of callers matching `pattern` (replacing the rule for the same
    /// pattern), audited as `priority_rule_changed` by `actor`.
    ///
    /// # Errors
    /// [`QueueError::Invalid`] for a bad pattern, priority or label; store failures.
    pub async fn set_priority_rule(
        &self,
        pattern: &str,
        priority: i32,
        label: &str,
        actor: Actor,
    ) -> Result<PriorityRule, QueueError> {
        let now = self.clock.now();
        let rule = PriorityRule::new(pattern, priority, label, now)?;
        let event = NewAuditEvent::new(now, actor, AuditAction::PriorityRuleChanged).data([
            ("pattern", Value::from(pattern)),
            ("priority", Value::from(priority)),
        ]);
        let stored = self
            .queue
            .put_priority_rule(&rule, self.audit.staged(event))
            .await
            .map_err(FlowError::from)?;
        Ok(stored)
    }

    /// Removes priority rule `id`, audited by `actor`; whether it existed.
    ///
    /// # Errors
    /// Store failures.
    pub async fn remove_priority_rule(
        &self,
        id: uuid::Uuid,
        actor: Actor,
    ) -> Result<bool, FlowError> {
        let now = self.clock.now();
        let rule = self
            .queue
            .priority_rules()
            .await?
            .into_iter()
            .find(|r| r.id == id);
        let Some(rule) = rule else {
            return Ok(false);
        };
        let event = NewAuditEvent::new(now, actor, AuditAction::PriorityRuleChanged).data([
            ("pattern", Value::from(rule.pattern.as_str())),
            ("priority", Value::Null),
        ]);
        Ok(self
            .queue
            .remove_priority_rule(id, self.audit.staged(event))
            .await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_per_call_and_forgotten_when_free() {
        let turns = CallTurns::default();
        let a = turns.take("a").await;
        let b = turns.take("b").await;
        let same_call = std::time::Duration::from_millis(20);
        assert!(
            tokio::time::timeout(same_call, turns.take("a"))
                .await
                .is_err(),
            "a second request on the same call waits its turn"
        );
        assert_eq!(turns.map().len(), 2, "another call never waits");
        drop(a);
        drop(b);
        assert!(turns.map().is_empty(), "free turnstiles are forgotten");
    }
}
