//! The call flow as pure functions: (call state, event, context) → (change, reply).
//!
//! No I/O here. The service ([`crate::CallFlow`]) loads the state, calls [`decide`], and
//! applies the change atomically; when another request changed the call first, it reloads
//! and decides again. Every rule is written so that a repeated or reordered callback ends
//! in the same state (see `docs/call-flow.md` for the state tables).

use agents::{AgentEffect, AgentId, Candidate, MetricsDelta, OfferMark};
use audit::{Actor, AuditAction, NewAuditEvent};
use chrono::{DateTime, Utc};
use serde_json::Value;
use texml::Response;
use tracing::{debug, warn};

use crate::documents;
use crate::event::{Event, LegEvent, RecordingInfo, TranscriptionInfo};
use crate::model::{
    Call, CallState, CallStatus, Delivery, Offer, OfferState, Outcome, RoundResult,
};
use crate::port::{AttemptChange, CallChange};
use crate::settings::{FlowSettings, QueueStrategy, Texts};
use crate::urls::Urls;
use crate::vocabulary::{CallerStatus, DialStatus, LegStatus};

/// What a decision needs besides the call.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// The flow's settings.
    pub settings: &'a FlowSettings,
    /// Callback URLs.
    pub urls: &'a Urls,
    /// Agents eligible now, longest idle first: read by the matcher for [`reserve`], and by
    /// the service for a caller at the queue's head whose request may offer it agents in
    /// its own answer (`inline`).
    pub candidates: &'a [Candidate],
    /// Whether the decision's change will be applied (the request is no repeat): only then
    /// may the answer carry what the change starts — a round reserved from `candidates`
    /// (`offer_delivered` via `inline`), or the voicemail prompt and `<Record>` — instead of
    /// a `<Redirect>` to the request that would start it.
    pub inline: bool,
    /// Whether nobody waits ahead of this caller (read with `candidates`): only then may a
    /// request offer it agents in its own answer.
    pub at_head: bool,
    /// Agents of the caller's ringing offers found eligible but for that offer (present,
    /// not paused, heartbeat fresh): with no no-answer delay, the `<Dial action>` of their
    /// round may ring them again (read only then).
    pub ring_again: &'a [AgentId],
    /// The queue priority of a new caller (from the priority rules; read only at
    /// `/inbound`).
    pub priority: i32,
    /// The caller's place in the queue (read only for a waiting caller's hold request).
    pub place: Option<QueuePlace>,
}

/// A waiting caller's place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePlace {
    /// 1: next in line.
    pub position: i64,
    /// What recent answers suggest (`None`: no recent answers to go by).
    pub expected_wait: Option<chrono::Duration>,
}

impl<'a> Context<'a> {
    /// A context with nothing read from the stores.
    #[must_use]
    pub fn new(now: DateTime<Utc>, settings: &'a FlowSettings, urls: &'a Urls) -> Self {
        Self {
            now,
            settings,
            urls,
            candidates: &[],
            inline: false,
            at_head: false,
            ring_again: &[],
            priority: 0,
            place: None,
        }
    }
}

/// What to answer Telnyx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A TeXML document (instruction endpoints, and the `<Record action>`).
    Document(Response),
    /// An empty `<Response/>` for status callbacks.
    Ack,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to store, if anything (receipts are added by the service).
    pub change: Option<CallChange>,
    /// What to answer.
    pub reply: Reply,
}

/// Whether the answer to `event` may announce the caller's place in the queue (the service
/// reads it then): a waiting caller's hold request, or the `/inbound` of a caller not
/// offered agents yet, whose greeting goes on with the first hold segment.
#[must_use]
pub fn wants_place(call: Option<&Call>, event: &Event) -> bool {
    match event {
        Event::DialAgents { round: Some(_), .. } => call.is_some_and(Call::is_waiting),
        Event::Inbound { .. } => call.is_none_or(|c| {
            matches!(c.status, CallStatus::Ringing | CallStatus::Dialing) && !c.round_open
        }),
        _ => false,
    }
}

/// Whether `event` may offer the caller agents in its own answer, so the service reads the
/// queue's head and the free agents first ([`Context::candidates`]): a new or waiting
/// caller's `/inbound`, a waiting caller's hold request, the `<Dial action>` of the open
/// round when it did not connect and rounds are left.
#[must_use]
pub fn may_offer(call: Option<&Call>, event: &Event, settings: &FlowSettings) -> bool {
    match event {
        Event::Inbound { .. } => call.is_none_or(|c| {
            matches!(c.status, CallStatus::Ringing | CallStatus::Dialing) && !c.round_open
        }),
        Event::DialAgents { round: Some(_), .. } => call.is_some_and(Call::is_waiting),
        Event::DialResult {
            round: Some(n),
            dial_call_status,
            ..
        } => call.is_some_and(|c| {
            c.status == CallStatus::Dialing
                && c.round_open
                && c.attempts == *n
                && c.attempts < settings.max_attempts
                && !dial_call_status.is_some_and(DialStatus::connected)
        }),
        _ => false,
    }
}

/// Decides what `event` does to the call in `state` (`None`: not stored).
#[must_use]
pub fn decide(state: Option<&CallState>, event: &Event, ctx: &Context<'_>) -> Decision {
    match event {
        Event::Inbound {
            call_sid,
            from,
            to,
            account_sid,
            connection_id,
        } => inbound(
            state,
            ctx,
            call_sid,
            from,
            to,
            account_sid.as_deref(),
            connection_id.as_deref(),
        ),
        Event::DialAgents {
            call_sid,
            round,
            pushed,
        } => {
            let d = Draft::load(state, call_sid, "dial-agents", ctx);
            match round {
                None => repeat(d),
                Some(n) => dial_agents(d, *n, *pushed),
            }
        }
        Event::DialResult {
            call_sid,
            round,
            dial_call_status,
            dial_call_sid,
            without_agents,
        } => {
            let d = Draft::load(state, call_sid, "retry-dial", ctx);
            match round {
                // Not a URL the server signed: the call's own next step, nothing changed.
                None => repeat(d),
                Some(n) if *without_agents => round_ended(d, *n, None, None),
                Some(n) => round_ended(d, *n, *dial_call_status, dial_call_sid.as_deref()),
            }
        }
        Event::Voicemail { call_sid } => voicemail(Draft::load(state, call_sid, "voicemail", ctx)),
        Event::VoicemailRecorded {
            call_sid,
            recording,
        } => {
            let mut d = Draft::load(state, call_sid, "voicemail-callback", ctx);
            store_voicemail_recording(&mut d, recording, false);
            voicemail_left(&mut d);
            d.finish(Reply::Document(documents::voicemail_thanks(ctx.settings)))
        }
        Event::VoicemailRecording {
            call_sid,
            recording,
        } => {
            if !recording.is_complete() {
                return ack();
            }
            let mut d = Draft::load(state, call_sid, "voicemail-callback", ctx);
            store_voicemail_recording(&mut d, recording, true);
            voicemail_left(&mut d);
            d.finish(Reply::Ack)
        }
        Event::VoicemailTranscription {
            call_sid,
            transcription,
        } => {
            let mut d = Draft::load(state, call_sid, "voicemail-callback", ctx);
            store_transcription(&mut d, transcription);
            d.finish(Reply::Ack)
        }
        Event::Leg(leg) => match state {
            Some(s) => leg_status(Draft::from_state(s, ctx), leg),
            None => ack(),
        },
        // `/events` never creates a call: an unknown `CallSid` is not a caller's call this
        // server answered (an agent's leg, or another application's call).
        Event::CallStatus { call_status, .. } => match state {
            Some(s) if call_status.is_terminal() => {
                call_ended(Draft::from_state(s, ctx), *call_status)
            }
            _ => ack(),
        },
        Event::CallRecording { recording, .. } => match state {
            Some(s) if recording.is_complete() => {
                let mut d = Draft::from_state(s, ctx);
                store_call_recording(&mut d, recording);
                d.finish(Reply::Ack)
            }
            _ => ack(),
        },
    }
}

fn ack() -> Decision {
    Decision {
        change: None,
        reply: Reply::Ack,
    }
}

fn document(doc: Response) -> Reply {
    Reply::Document(doc)
}

/// A call being changed: the state read, the state being built, and what to record. What
/// to write is derived in [`Draft::finish`] by comparing the two, so no rule can forget to
/// say that it changed something.
struct Draft<'a> {
    ctx: &'a Context<'a>,
    /// The stored call and its offers, as read (`None`: a call not stored yet).
    before: Option<&'a CallState>,
    call: Call,
    offers: Vec<Offer>,
    attempts: Vec<AttemptChange>,
    effects: Vec<AgentEffect>,
    audit: Vec<NewAuditEvent>,
    /// [`Context::inline`], switched off for an answer whose change is dropped.
    inline: bool,
}

impl<'a> Draft<'a> {
    fn from_state(state: &'a CallState, ctx: &'a Context<'a>) -> Self {
        Self {
            ctx,
            before: Some(state),
            call: state.call.clone(),
            offers: state.offers.clone(),
            attempts: Vec::new(),
            effects: Vec::new(),
            audit: Vec::new(),
            inline: ctx.inline,
        }
    }

    /// The stored call, or a new one created on the spot (a call already in progress when
    /// the database was replaced, or callbacks arriving before `/inbound` was stored).
    fn load(state: Option<&'a CallState>, call_sid: &str, via: &str, ctx: &'a Context<'a>) -> Self {
        if let Some(s) = state {
            return Self::from_state(s, ctx);
        }
        let mut d = Self {
            ctx,
            before: None,
            call: Call::new(call_sid, "", "", ctx.now),
            offers: Vec::new(),
            attempts: Vec::new(),
            effects: Vec::new(),
            audit: Vec::new(),
            inline: ctx.inline,
        };
        d.record(
            AuditAction::CallReceived,
            [("created_by", Value::from(via))],
        );
        d
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx.now
    }

    fn settings(&self) -> &FlowSettings {
        self.ctx.settings
    }

    fn record<const N: usize>(&mut self, action: AuditAction, data: [(&str, Value); N]) {
        let event = NewAuditEvent::new(self.ctx.now, Actor::Telnyx, action)
            .call(self.call.call_sid.as_str())
            .data(data);
        self.audit.push(event);
    }

    fn record_for<const N: usize>(
        &mut self,
        agent: AgentId,
        action: AuditAction,
        data: [(&str, Value); N],
    ) {
        self.record(action, data);
        if let Some(last) = self.audit.last_mut() {
            last.agent_id = Some(agent.0);
        }
    }

    fn effect(&mut self, agent: AgentId) -> &mut AgentEffect {
        let i = match self.effects.iter().position(|e| e.agent_id == agent) {
            Some(i) => i,
            None => {
                self.effects.push(AgentEffect {
                    agent_id: agent,
                    ..AgentEffect::default()
                });
                self.effects.len() - 1
            }
        };
        &mut self.effects[i]
    }

    /// Marks each agent's open offer from what changed: a new ringing offer reserves the
    /// agent, an offer that stopped ringing clears it, a delivered round rings it.
    fn mark_offers(&mut self) {
        let before = self.before;
        let before_offers = before.map_or(&[][..], |s| s.offers.as_slice());
        let delivered_now = self.call.delivery == Some(Delivery::Delivered)
            && before.is_none_or(|s| s.call.delivery != Some(Delivery::Delivered));
        let round = self.call.attempts;
        let marks: Vec<(AgentId, OfferMark)> = self
            .offers
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let was = before_offers.get(i).map(|b| b.state);
                let mark = match (was, o.state) {
                    (None, OfferState::Ringing) if delivered_now && o.attempt == round => {
                        OfferMark::ReserveRinging
                    }
                    (None, OfferState::Ringing) => OfferMark::Reserve,
                    (Some(OfferState::Ringing), now) if now != OfferState::Ringing => {
                        OfferMark::Clear
                    }
                    (Some(OfferState::Ringing), OfferState::Ringing)
                        if delivered_now && o.attempt == round =>
                    {
                        OfferMark::Ring
                    }
                    _ => return None,
                };
                Some((o.agent_id, mark))
            })
            .collect();
        let now = self.now();
        for o in &mut self.offers {
            if o.state != OfferState::Ringing && o.closed_at.is_none() {
                o.closed_at = Some(now);
            }
        }
        for (agent, mark) in marks {
            self.effect(agent).offer = Some(mark);
        }
    }

    fn finish(mut self, reply: Reply) -> Decision {
        self.mark_offers();
        let before_offers = self.before.map_or(&[][..], |s| s.offers.as_slice());
        let offers: Vec<Offer> = self
            .offers
            .into_iter()
            .enumerate()
            .filter(|(i, o)| before_offers.get(*i) != Some(o))
            .map(|(_, o)| o)
            .collect();
        let effects: Vec<AgentEffect> = self
            .effects
            .into_iter()
            .filter(|e| {
                e.engage
                    || e.release
                    || e.delta != MetricsDelta::default()
                    || e.offer.is_some()
                    || e.no_answer_until.is_some()
            })
            .collect();
        let call_changed = self.before.is_none_or(|s| s.call != self.call);
        let changed = call_changed
            || !offers.is_empty()
            || !effects.is_empty()
            || !self.attempts.is_empty()
            || !self.audit.is_empty();
        if !changed {
            return Decision {
                change: None,
                reply,
            };
        }
        let expected_version = self.before.map_or(0, |s| s.call.version);
        let mut call = self.call;
        call.version = expected_version + 1;
        // A callback decided late (replayed with the time it was received) never moves the
        // call's last change back.
        call.updated_at = self
            .before
            .map_or(self.ctx.now, |s| s.call.updated_at.max(self.ctx.now));
        let change = CallChange {
            expected_version,
            call,
            offers,
            attempts: self.attempts,
            agents: effects,
            receipts: Vec::new(),
            audit: self.audit,
        };
        Decision {
            change: Some(change),
            reply,
        }
    }

    /// Closes the open round: offers still ringing become missed (`missed`), or canceled.
    fn close_round(&mut self, result: RoundResult, missed: bool) {
        if !self.end_round(result) {
            return;
        }
        let attempt = self.call.attempts;
        for i in self.ringing(attempt) {
            if missed {
                self.miss(i, result.as_str());
            } else {
                self.offers[i].state = OfferState::Canceled;
            }
        }
    }

    /// Ends the open round (`false`: none was open) and leaves its offers as they are:
    /// the ringing ones wait for their legs' own reports.
    fn end_round(&mut self, result: RoundResult) -> bool {
        if !self.call.round_open {
            return false;
        }
        self.call.round_open = false;
        self.call.delivery = None;
        self.attempts.push(AttemptChange::Closed {
            attempt: self.call.attempts,
            ended_at: self.now(),
            result,
        });
        true
    }

    /// The offers of round `attempt` still ringing.
    fn ringing(&self, attempt: i32) -> Vec<usize> {
        (0..self.offers.len())
            .filter(|&i| {
                self.offers[i].attempt == attempt && self.offers[i].state == OfferState::Ringing
            })
            .collect()
    }

    /// The end of a wrap-up starting now (`None`: no wrap-up configured).
    fn wrap_up_until(&self) -> Option<DateTime<Utc>> {
        let wrap_up = self.settings().wrap_up;
        (wrap_up > chrono::Duration::zero()).then(|| self.now() + wrap_up)
    }

    /// Whether offer `i`'s round is over (a later round, the round closed, the call over).
    fn round_over(&self, i: usize) -> bool {
        self.offers[i].attempt < self.call.attempts || !self.call.round_open || self.call.is_over()
    }

    /// Offer `i` was missed: counted, and the agent's no-answer delay starts now. Its
    /// `ended_at` says when the server learned it (a leg's late report may turn an offer
    /// canceled earlier into a miss). Whether the misses in a row now pause the agent is
    /// the store's to say, from its own count ([`crate::CallFlow`] asks after the change):
    /// a miss learned late counts with the misses learned before it.
    fn miss(&mut self, i: usize, reason: &str) {
        let agent = self.offers[i].agent_id;
        let attempt = self.offers[i].attempt;
        let now = self.now();
        self.offers[i].state = OfferState::Missed;
        self.offers[i].ended_at.get_or_insert(now);
        let q = &self.ctx.settings.queue;
        let delay =
            (q.no_answer_delay > chrono::Duration::zero()).then(|| self.now() + q.no_answer_delay);
        let effect = self.effect(agent);
        effect.delta.missed += 1;
        effect.no_answer_until = delay;
        self.record_for(
            agent,
            AuditAction::OfferMissed,
            [("attempt", attempt.into()), ("reason", reason.into())],
        );
    }

    /// Whether the caller may go on waiting: offer rounds left, and its longest wait not
    /// reached.
    fn may_wait(&self) -> bool {
        let s = self.settings();
        self.call.attempts < s.max_attempts
            && self
                .call
                .enqueued_at
                .is_none_or(|t| self.now() - t < s.queue.max_wait)
    }

    /// One segment of the hold loop; the caller's place is announced when it is known and
    /// due (the first time, then only when it improved and the interval passed).
    fn hold(&mut self, may_announce: bool) -> Reply {
        let now = self.now();
        let interval = self.settings().queue.position_interval;
        let announce = self.ctx.place.filter(|p| {
            may_announce
                && interval > chrono::Duration::zero()
                && match (self.call.announced_position, self.call.announced_at) {
                    (Some(last), Some(at)) => p.position < i64::from(last) && now - at >= interval,
                    _ => true,
                }
        });
        if let Some(p) = announce {
            self.call.announced_position = Some(i32::try_from(p.position).unwrap_or(i32::MAX));
            self.call.announced_at = Some(now);
        }
        let say = announce.and_then(|p| Texts::position(p.position, p.expected_wait));
        let (s, urls) = (self.ctx.settings, self.ctx.urls);
        let doc = documents::hold(s, urls, &self.call.call_sid, self.call.attempts + 1, say);
        document(doc)
    }

    /// The reserved round's `<Dial>`, delivered now by `via` (`push` or `pull`).
    fn deliver(&mut self, via: &'static str) -> Reply {
        if self.call.delivery != Some(Delivery::Delivered) {
            self.call.delivery = Some(Delivery::Delivered);
            self.call.delivery_at = Some(self.now());
            let attempt = self.call.attempts;
            self.record(
                AuditAction::OfferDelivered,
                [("attempt", attempt.into()), ("via", via.into())],
            );
        }
        self.open_round_document()
    }

    fn open_round_document(&self) -> Reply {
        let (call, s, urls) = (&self.call, self.ctx.settings, self.ctx.urls);
        document(documents::dial(
            s,
            urls,
            call.call_sid.as_str(),
            call.attempts,
            self.offers.iter().filter(|o| o.attempt == call.attempts),
        ))
    }

    /// Puts a caller not yet in the queue in it, with its priority; `enqueued_at` is never
    /// changed afterwards.
    fn enqueue(&mut self) {
        if self.call.enqueued_at.is_some()
            || !matches!(self.call.status, CallStatus::Ringing | CallStatus::Dialing)
        {
            return;
        }
        self.call.enqueued_at = Some(self.now());
        self.call.priority = self.ctx.priority;
        let priority = self.ctx.priority;
        self.record(AuditAction::CallEnqueued, [("priority", priority.into())]);
    }

    /// What comes next for a caller without an answer: the open round's `<Dial>`; while it
    /// may wait, a round offered in this answer when it is at the queue's head and agents
    /// are free, else the hold loop; then voicemail or goodbye.
    fn next_step(&mut self) -> Reply {
        if self.call.round_open {
            return self.open_round_document();
        }
        if self.may_wait() {
            if let Some(offer) = self.offer_inline() {
                return offer;
            }
            return self.hold(true);
        }
        let (s, urls) = (self.ctx.settings, self.ctx.urls);
        if s.voicemail_enabled {
            if self.inline {
                return self.start_voicemail();
            }
            return document(documents::to_voicemail(urls, &self.call.call_sid));
        }
        self.call.outcome.get_or_insert(Outcome::Unanswered);
        document(documents::goodbye(s))
    }

    /// Reserves the agents read for this caller (`ctx.candidates`) in a new round and
    /// delivers it in this answer. `None`: not a request whose change is applied, nobody
    /// read as free, or the caller does not wait (or may wait no longer).
    fn offer_inline(&mut self) -> Option<Reply> {
        if !self.inline || !self.ctx.at_head || !self.call.is_waiting() || !self.may_wait() {
            return None;
        }
        let mut agents = self.rung_again();
        for c in self.ctx.candidates {
            if !agents.iter().any(|a| a.id == c.id) {
                agents.push(c.clone());
            }
        }
        if agents.is_empty() {
            return None;
        }
        open_round(self, &agents);
        Some(self.deliver("inline"))
    }

    /// With no no-answer delay, the agents whose offers this change found missed (the round
    /// just closed) are free again the moment it is stored, and no other request can take
    /// them first: the next round rings them first (those still eligible, `ring_again`;
    /// not those the miss pauses).
    fn rung_again(&self) -> Vec<Candidate> {
        let q = &self.settings().queue;
        if q.no_answer_delay > chrono::Duration::zero() {
            return Vec::new();
        }
        let before = self.before.map_or(&[][..], |s| s.offers.as_slice());
        self.offers
            .iter()
            .zip(before)
            .filter(|(now, was)| {
                was.state == OfferState::Ringing
                    && now.state == OfferState::Missed
                    && now.attempt == self.call.attempts
                    && self.ctx.ring_again.contains(&now.agent_id)
                    && (q.misses_to_pause <= 0 || now.misses_before + 1 < q.misses_to_pause)
            })
            .filter_map(|(o, _)| {
                Some(Candidate {
                    id: o.agent_id,
                    sip_uri: agents::SipUri::parse(&o.sip_uri).ok()?,
                    missed_in_a_row: o.misses_before + 1,
                })
            })
            .collect()
    }

    /// Voicemail starts: an open round closed (its offers canceled: nobody knows they
    /// rang), the status `voicemail`; the prompt and `<Record>`.
    fn start_voicemail(&mut self) -> Reply {
        if self.call.status != CallStatus::Voicemail {
            self.close_round(RoundResult::Voicemail, false);
            self.call.status = CallStatus::Voicemail;
            self.call.voicemail_started_at = Some(self.now());
            self.record(AuditAction::VoicemailStarted, []);
        }
        let (s, urls) = (self.ctx.settings, self.ctx.urls);
        document(documents::voicemail(s, urls, &self.call.call_sid))
    }
}

/// The pause reason of an agent who missed too many offers in a row.
pub const MISSED_CALLS: &str = "missed-calls";

fn inbound(
    state: Option<&CallState>,
    ctx: &Context<'_>,
    call_sid: &str,
    from: &str,
    to: &str,
    account_sid: Option<&str>,
    connection_id: Option<&str>,
) -> Decision {
    let mut d = Draft::load(state, call_sid, "inbound", ctx);
    if d.call.is_over() {
        return d.finish(document(documents::hangup()));
    }
    let fresh = state.is_none();
    if d.call.from.is_empty() && !from.is_empty() {
        d.call.from = from.to_owned();
        d.call.to = to.to_owned();
    }
    if d.call.account_sid.is_none() && account_sid.is_some() {
        d.call.account_sid = account_sid.map(str::to_owned);
        d.call.connection_id = connection_id.map(str::to_owned);
    }
    d.enqueue();
    if fresh && ctx.settings.recording_enabled {
        d.call.recording_notice_played = true;
        d.record(AuditAction::RecordingNoticePlayed, []);
    }
    let notice = d.call.recording_notice_played;
    // Straight on to the offer when agents are free for the caller, else to the first
    // hold segment (its place announced). A caller already offered (a repeat) goes
    // through the hold loop's request, which knows whether a push is delivering the offer.
    let next = match d.offer_inline() {
        Some(Reply::Document(dial)) => dial,
        None if d.inline && d.call.is_waiting() && d.may_wait() => match d.hold(true) {
            Reply::Document(hold) => hold,
            Reply::Ack => documents::to_hold_loop(ctx.urls, &d.call.call_sid),
        },
        _ => documents::to_hold_loop(ctx.urls, &d.call.call_sid),
    };
    let doc = documents::greeting(ctx.settings, notice, next);
    d.finish(document(doc))
}

/// `/dial-agents` (signed, naming `round`): the hold loop's request, or the push target
/// (`pushed`). Delivers the reserved round's `<Dial>` unless a push is delivering it;
/// otherwise another hold segment, or voicemail when the caller may wait no longer.
fn dial_agents(mut d: Draft<'_>, round: i32, pushed: bool) -> Decision {
    match d.call.status {
        CallStatus::Completed | CallStatus::Answered => {
            return d.finish(document(documents::hangup()));
        }
        CallStatus::Voicemail => {
            let doc = documents::to_voicemail(d.ctx.urls, &d.call.call_sid);
            return d.finish(document(doc));
        }
        CallStatus::Ringing | CallStatus::Dialing => {}
    }
    d.enqueue();
    if d.call.round_open {
        let claim_fresh = d.call.delivery == Some(Delivery::Pushing)
            && d.call
                .delivery_at
                .is_some_and(|t| d.now() - t < d.settings().queue.push_claim_ttl);
        if pushed && round == d.call.attempts {
            let reply = d.deliver("push");
            return d.finish(reply);
        }
        if !pushed && !claim_fresh {
            let reply = d.deliver("pull");
            return d.finish(reply);
        }
        if !pushed {
            // A push is on its way: it will interrupt this segment.
            let reply = d.hold(false);
            return d.finish(reply);
        }
    }
    let reply = d.next_step();
    d.finish(reply)
}

/// Opens round `attempts + 1` for the candidates the strategy takes: each becomes an
/// offer, its agent reserved (one open offer per agent, the stores' unique index).
fn open_round(d: &mut Draft<'_>, agents: &[Candidate]) {
    let n = d.call.attempts + 1;
    let now = d.now();
    d.call.attempts = n;
    d.call.round_open = true;
    d.call.status = CallStatus::Dialing;
    d.call.delivery = Some(Delivery::Pending);
    d.call.delivery_at = Some(now);
    d.call.push_attempts = 0;
    let limit = match d.settings().queue.strategy {
        QueueStrategy::RingAll => d.settings().max_agents_per_round as usize,
        QueueStrategy::LongestIdle => 1,
    };
    let candidates: Vec<&Candidate> = agents.iter().take(limit).collect();
    d.attempts.push(AttemptChange::Opened {
        attempt: n,
        started_at: now,
        offered: candidates.len().try_into().unwrap_or(i32::MAX),
    });
    d.record(
        AuditAction::AttemptOpened,
        [("attempt", n.into()), ("offered", candidates.len().into())],
    );
    for c in candidates {
        d.offers.push(Offer {
            call_sid: d.call.call_sid.clone(),
            attempt: n,
            agent_id: c.id,
            sip_uri: c.sip_uri.as_str().to_owned(),
            sip_key: c.sip_uri.key().to_owned(),
            leg_sid: None,
            state: OfferState::Ringing,
            leg_status: None,
            offered_at: now,
            answered_at: None,
            ended_at: None,
            closed_at: None,
            leg_duration: None,
            talk_seconds: None,
            talk_final: false,
            misses_before: c.missed_in_a_row,
        });
        d.record_for(c.id, AuditAction::OfferMade, [("attempt", n.into())]);
    }
}

/// The matcher's step for one waiting caller: reserve `ctx.candidates` (as the strategy
/// takes them) in a new round, to be delivered by push or by the caller's next hold
/// request. `None`: the caller is not waiting (or may wait no longer), or nobody is free.
#[must_use]
pub fn reserve(state: &CallState, ctx: &Context<'_>) -> Option<CallChange> {
    if !state.call.is_waiting() || ctx.candidates.is_empty() {
        return None;
    }
    let mut d = Draft::from_state(state, ctx);
    if !d.may_wait() {
        return None;
    }
    open_round(&mut d, ctx.candidates);
    d.finish(Reply::Ack).change
}

/// Withdraws a reservation nobody took up in time: not delivered within the reservation's
/// life, or delivered and not reported within the ring time after it. The offers are
/// canceled (no fault of the agents), the agents free; the caller keeps its place.
#[must_use]
pub fn withdraw(state: &CallState, ctx: &Context<'_>) -> Option<CallChange> {
    let c = &state.call;
    if !c.round_open || c.is_over() || c.answered_by.is_some() || c.status != CallStatus::Dialing {
        return None;
    }
    let q = &ctx.settings.queue;
    let mut life = q.reservation_ttl;
    if c.delivery == Some(Delivery::Delivered) {
        life += chrono::Duration::seconds(i64::from(ctx.settings.dial_timeout.get()));
    }
    if c.delivery_at.is_some_and(|t| ctx.now - t < life) {
        return None;
    }
    let delivery = c.delivery.map(Delivery::as_str);
    let mut d = Draft::from_state(state, ctx);
    let attempt = d.call.attempts;
    d.close_round(RoundResult::Withdrawn, false);
    d.record(
        AuditAction::OfferWithdrawn,
        [
            ("attempt", attempt.into()),
            ("delivery", Value::from(delivery)),
        ],
    );
    d.finish(Reply::Ack).change
}

/// A push worker claims the delivery of the open round (pending → pushing). `None`: the
/// offer is no longer pending (delivered, withdrawn, or claimed).
#[must_use]
pub fn claim_push(state: &CallState, ctx: &Context<'_>) -> Option<CallChange> {
    let c = &state.call;
    if !c.round_open || c.delivery != Some(Delivery::Pending) {
        return None;
    }
    let mut d = Draft::from_state(state, ctx);
    d.call.delivery = Some(Delivery::Pushing);
    d.call.delivery_at = Some(ctx.now);
    d.finish(Reply::Ack).change
}

/// A push of round `round` failed before Telnyx accepted it: the offer is pending again
/// for another push, or left to the hold loop after the last attempt.
#[must_use]
pub fn push_failed(state: &CallState, ctx: &Context<'_>, round: i32) -> Option<CallChange> {
    let c = &state.call;
    if !c.round_open || c.attempts != round || c.delivery != Some(Delivery::Pushing) {
        return None;
    }
    let mut d = Draft::from_state(state, ctx);
    d.call.push_attempts = d.call.push_attempts.saturating_add(1);
    d.call.delivery = Some(
        if d.call.push_attempts >= ctx.settings.queue.max_push_attempts {
            Delivery::Pull
        } else {
            Delivery::Pending
        },
    );
    d.finish(Reply::Ack).change
}

/// A request whose URL the server did not sign (or signed for another call): the document
/// for the call's real state, and no change.
fn repeat(mut d: Draft<'_>) -> Decision {
    d.inline = false;
    let reply = match d.call.status {
        CallStatus::Completed | CallStatus::Answered => document(documents::hangup()),
        CallStatus::Voicemail => document(documents::to_voicemail(d.ctx.urls, &d.call.call_sid)),
        CallStatus::Ringing | CallStatus::Dialing => d.next_step(),
    };
    Decision {
        change: None,
        reply,
    }
}

/// Round `round` ended: `<Dial>` reports how (`status`, and the bridged leg), or the round
/// rang nobody (`status` `None`).
fn round_ended(
    mut d: Draft<'_>,
    round: i32,
    status: Option<DialStatus>,
    dial_call_sid: Option<&str>,
) -> Decision {
    if status.is_some_and(DialStatus::connected) {
        // Authoritative even when the caller's hang-up was processed first.
        if let Some(leg) = dial_call_sid {
            bridged(&mut d, leg);
        } else if d.call.answered_by.is_none() && !d.call.is_over() {
            d.call.status = CallStatus::Answered;
            d.call.answered_at.get_or_insert(d.ctx.now);
            d.record(AuditAction::CallAnswered, [("agent", Value::Null)]);
        }
    }
    if d.call.is_over() {
        return d.finish(document(documents::hangup()));
    }
    if d.call.answered_by.is_some() || d.call.status == CallStatus::Answered {
        if d.call.answered_by.is_some() {
            d.close_round(RoundResult::Answered, false);
        } else {
            // Bridged to a leg whose own callbacks have not arrived: which agent talked is
            // not known yet, so none is freed; each offer closes when its leg reports
            // (the winner's with its wrap-up), or after the reconciler's grace.
            d.end_round(RoundResult::Answered);
        }
        return d.finish(document(documents::hangup()));
    }
    if d.call.status == CallStatus::Voicemail {
        let doc = documents::to_voicemail(d.ctx.urls, &d.call.call_sid);
        return d.finish(document(doc));
    }
    if round == d.call.attempts {
        let result = round_result(status);
        let caller_left = result == RoundResult::Canceled;
        d.close_round(result, !caller_left);
        if caller_left {
            return d.finish(document(documents::hangup()));
        }
    }
    let reply = d.next_step();
    d.finish(reply)
}

/// How an unanswered round ended, from `<Dial>`'s report (none: a round without agents).
fn round_result(status: Option<DialStatus>) -> RoundResult {
    match status {
        None => RoundResult::NoAgents,
        Some(DialStatus::NoAnswer) => RoundResult::NoAnswer,
        Some(DialStatus::Busy) => RoundResult::Busy,
        Some(DialStatus::Canceled) => RoundResult::Canceled,
        Some(DialStatus::Failed) => RoundResult::Failed,
        Some(DialStatus::Completed | DialStatus::Answered) => RoundResult::Answered,
    }
}

/// `<Dial>` bridged the leg `leg` (`DialCallSid`): it is the winner, whatever was credited
/// before. An earlier credit to another agent is reversed (its answer, its talk time, its
/// hold on the agent) in the same change, audited as a correction; when the bridged leg's
/// own callbacks have not arrived yet, its offer wins when they do.
fn bridged(d: &mut Draft<'_>, leg: &str) {
    let to = d
        .offers
        .iter()
        .position(|o| o.leg_sid.as_deref() == Some(leg));
    let from = d
        .offers
        .iter()
        .position(|o| o.state == OfferState::Answered);
    if to.is_some() && to == from {
        return;
    }
    if let Some(f) = from {
        reverse_answer(d, f, leg);
    }
    d.call.answered_by = None;
    d.call.answered_leg_sid = Some(leg.to_owned());
    if d.call.is_over() {
        d.call.outcome = Some(Outcome::Answered);
    } else {
        d.call.status = CallStatus::Answered;
    }
    d.call.answered_at.get_or_insert(d.ctx.now);
    match to {
        Some(t) => win(d, t),
        None if from.is_none() => {
            d.record(AuditAction::CallAnswered, [("agent", Value::Null)]);
        }
        None => {}
    }
}

/// Takes back the answer credited to offer `i`: it becomes a late answer; the counters it
/// added are subtracted and its agent released from this call.
fn reverse_answer(d: &mut Draft<'_>, i: usize, bridged_leg: &str) {
    let (agent, attempt) = (d.offers[i].agent_id, d.offers[i].attempt);
    let talk = d.offers[i].talk_seconds.unwrap_or(0);
    let o = &mut d.offers[i];
    o.state = OfferState::Late;
    o.talk_seconds = None;
    o.talk_final = false;
    let effect = d.effect(agent);
    effect.delta.answered -= 1;
    effect.delta.talk_seconds -= talk;
    effect.engage = false;
    effect.release = true;
    d.call.talk_seconds = None;
    d.record_for(
        agent,
        AuditAction::AnswerCorrected,
        [
            ("attempt", attempt.into()),
            ("bridged_leg", Value::from(bridged_leg)),
            ("talk_seconds_reversed", talk.into()),
        ],
    );
}

/// `/voicemail`. A round still open here was not ended by its `<Dial>` (the caller came
/// through the fallback document): its offers are canceled, not missed, since nobody knows
/// they rang; a leg that did ring still counts its miss from its own callback.
fn voicemail(mut d: Draft<'_>) -> Decision {
    if d.call.is_over() || d.call.answered_by.is_some() || d.call.status == CallStatus::Answered {
        return d.finish(document(documents::hangup()));
    }
    if !d.settings().voicemail_enabled {
        d.close_round(RoundResult::NoVoicemail, false);
        d.call.outcome.get_or_insert(Outcome::Unanswered);
        let reply = document(documents::goodbye(d.settings()));
        return d.finish(reply);
    }
    let reply = d.start_voicemail();
    d.finish(reply)
}

/// Stores the voicemail recording. The status callback is authoritative; the `<Record
/// action>` only fills fields still empty. Nothing is stored again after a redaction.
fn store_voicemail_recording(d: &mut Draft<'_>, rec: &RecordingInfo, authoritative: bool) {
    let c = &mut d.call;
    if c.redacted_at.is_some() || (rec.url.is_none() && rec.sid.is_none()) {
        return;
    }
    if !authoritative && c.voicemail_recording_url.is_some() {
        return;
    }
    let first = c.voicemail_recording_sid.is_none() && c.voicemail_recording_url.is_none();
    let old = (
        c.voicemail_recording_url.clone(),
        c.voicemail_recording_sid.clone(),
    );
    if rec.url.is_some() {
        c.voicemail_recording_url.clone_from(&rec.url);
    }
    if rec.sid.is_some() {
        c.voicemail_recording_sid.clone_from(&rec.sid);
    }
    if rec.duration.is_some() {
        c.voicemail_duration_seconds = rec.duration;
    }
    let stored = old
        != (
            c.voicemail_recording_url.clone(),
            c.voicemail_recording_sid.clone(),
        );
    if first && stored {
        let sid = Value::from(rec.sid.clone());
        d.record(
            AuditAction::VoicemailStored,
            [("part", "recording".into()), ("recording_sid", sid)],
        );
    }
}

/// A voicemail was recorded: the call counts as voicemail even when the caller reached the
/// recording through the fallback document (the call still ringing or dialing, its round
/// still open) or its hang-up was processed first (`abandoned` is corrected). An answered
/// call keeps its outcome.
fn voicemail_left(d: &mut Draft<'_>) {
    let c = &d.call;
    let recorded = c.voicemail_recording_url.is_some() || c.voicemail_recording_sid.is_some();
    let answered = c.answered_by.is_some() || c.answered_leg_sid.is_some();
    if !recorded || answered {
        return;
    }
    let now = d.now();
    match d.call.status {
        CallStatus::Voicemail | CallStatus::Answered => {}
        CallStatus::Ringing | CallStatus::Dialing => {
            d.close_round(RoundResult::Voicemail, false);
            d.call.status = CallStatus::Voicemail;
            d.call.voicemail_started_at.get_or_insert(now);
            d.record(AuditAction::VoicemailStarted, [("via", "fallback".into())]);
        }
        CallStatus::Completed => {
            d.call.voicemail_started_at.get_or_insert(now);
            let before = d.call.outcome;
            if matches!(before, None | Some(Outcome::Abandoned)) {
                d.call.outcome = Some(Outcome::Voicemail);
                let from = Value::from(before.map(Outcome::as_str));
                d.record(
                    AuditAction::OutcomeCorrected,
                    [("from", from), ("to", Outcome::Voicemail.as_str().into())],
                );
            }
        }
    }
}

fn store_transcription(d: &mut Draft<'_>, t: &TranscriptionInfo) {
    let usable = t.status.as_deref().is_none_or(|s| s == "completed");
    if d.call.redacted_at.is_some() || !usable {
        return;
    }
    let Some(text) = t.text.clone() else { return };
    let first = d.call.voicemail_transcription.is_none();
    if d.call.voicemail_transcription.as_ref() == Some(&text) {
        return;
    }
    d.call.voicemail_transcription = Some(text);
    if first {
        let sid = Value::from(t.sid.clone());
        d.record(
            AuditAction::VoicemailStored,
            [("part", "transcription".into()), ("transcription_sid", sid)],
        );
    }
}

fn store_call_recording(d: &mut Draft<'_>, rec: &RecordingInfo) {
    if d.call.redacted_at.is_some()
        || rec.url.is_none()
        || d.call.recording_sid == rec.sid && d.call.recording_url.is_some()
    {
        return;
    }
    d.call.recording_url.clone_from(&rec.url);
    d.call.recording_sid.clone_from(&rec.sid);
    d.record(
        AuditAction::RecordingStored,
        [("recording_sid", Value::from(rec.sid.clone()))],
    );
}

/// Finds the offer a leg callback is about: by the offer its signed callback URL names
/// (round and agent), else (a Call Control event, which names only the leg) by the leg it
/// was bound to. `To` is never needed: Telnyx documents no format for it.
fn find_offer(offers: &[Offer], leg: &LegEvent) -> Option<usize> {
    match leg.offer {
        Some((round, agent)) => offers
            .iter()
            .position(|o| o.attempt == round && o.agent_id == agent),
        None => offers
            .iter()
            .position(|o| o.leg_sid.as_deref() == Some(leg.leg_sid.as_str())),
    }
}

/// Whether `to` (as Telnyx reported it) names the user rung for `offer`: a cross-check for
/// the logs only (scheme, host spelling, port and parameters may all differ).
fn to_matches(offer: &Offer, to: Option<&str>) -> bool {
    let user = |s: &str| {
        let s = s.trim();
        let s = s
            .strip_prefix("sips:")
            .or_else(|| s.strip_prefix("sip:"))
            .unwrap_or(s);
        s.split('@').next().unwrap_or_default().to_owned()
    };
    to.is_none_or(|to| user(to) == user(&offer.sip_key))
}

fn leg_status(mut d: Draft<'_>, leg: &LegEvent) -> Decision {
    let Some(i) = find_offer(&d.offers, leg) else {
        debug!(leg = %leg.leg_sid, "a leg callback for no offer of this call; acknowledged");
        return ack();
    };
    if leg.status.is_progress() {
        // Nothing to store: the offer was stored when the round opened.
        return ack();
    }
    match d.offers[i].leg_sid.as_deref() {
        None => {
            if !to_matches(&d.offers[i], leg.to.as_deref()) {
                debug!(leg = %leg.leg_sid, "the leg's To does not look like the agent rung (kept: the offer decides)");
            }
            d.offers[i].leg_sid = Some(leg.leg_sid.clone());
        }
        Some(bound) if bound != leg.leg_sid => {
            warn!(
                leg = %leg.leg_sid,
                bound,
                "a second leg for one offer; ignored (the first leg bound to it counts)"
            );
            return ack();
        }
        Some(_) => {}
    }
    match leg.status {
        LegStatus::Initiated | LegStatus::Ringing => {}
        LegStatus::InProgress => answer(&mut d, i),
        LegStatus::Completed => leg_completed(&mut d, i, leg.duration),
        LegStatus::Busy | LegStatus::NoAnswer | LegStatus::Failed => {
            leg_ended(&mut d, i, leg.status);
            if matches!(
                d.offers[i].state,
                OfferState::Ringing | OfferState::Canceled
            ) {
                d.miss(i, leg.status.as_str());
            }
        }
        LegStatus::Canceled => {
            leg_ended(&mut d, i, leg.status);
            if d.offers[i].state == OfferState::Ringing && d.round_over(i) {
                // Kept ringing for its leg's report (the round ended before its winner
                // was known): this agent did not take the call.
                d.offers[i].state = OfferState::Canceled;
            }
        }
    }
    d.finish(Reply::Ack)
}

fn leg_ended(d: &mut Draft<'_>, i: usize, status: LegStatus) {
    let now = d.now();
    if d.offers[i].ended_at.is_none() || d.offers[i].leg_status.is_none() {
        let o = &mut d.offers[i];
        o.leg_status = Some(status);
        o.ended_at = o.ended_at.or(Some(now));
    }
}

fn leg_completed(d: &mut Draft<'_>, i: usize, duration: Option<i64>) {
    if d.offers[i].leg_duration.is_none() && duration.is_some() {
        d.offers[i].leg_duration = duration;
    }
    leg_ended(d, i, LegStatus::Completed);
    let bridged_by_dial = d.call.answered_by.is_none()
        && d.call.answered_leg_sid.is_some()
        && d.call.answered_leg_sid == d.offers[i].leg_sid;
    if bridged_by_dial && !matches!(d.offers[i].state, OfferState::Answered | OfferState::Late) {
        answer(d, i);
    } else if d.offers[i].state == OfferState::Answered {
        finish_talk(d, i, true);
    }
}

/// An agent answered: the first answer wins; any later one is recorded as late.
fn answer(d: &mut Draft<'_>, i: usize) {
    // When `<Dial action>` already named the bridged leg, that leg is the winner whatever
    // arrived in between; otherwise the first answer seen wins.
    let open_for_answer = d.call.answered_by.is_none()
        && match d.call.answered_leg_sid.as_deref() {
            Some(bridged) => d.offers[i].leg_sid.as_deref() == Some(bridged),
            None => match d.call.status {
                CallStatus::Ringing | CallStatus::Dialing | CallStatus::Answered => true,
                // The caller's hang-up was processed before this (earlier) answer arrived.
                CallStatus::Completed => matches!(d.call.outcome, None | Some(Outcome::Abandoned)),
                CallStatus::Voicemail => false,
            },
        };
    match d.offers[i].state {
        OfferState::Answered | OfferState::Late => {}
        _ if open_for_answer => win(d, i),
        _ => {
            let (agent, attempt) = (d.offers[i].agent_id, d.offers[i].attempt);
            d.offers[i].state = OfferState::Late;
            d.record_for(
                agent,
                AuditAction::LateAnswer,
                [("attempt", attempt.into())],
            );
        }
    }
}

fn win(d: &mut Draft<'_>, i: usize) {
    let now = d.now();
    let (agent, attempt, leg) = (
        d.offers[i].agent_id,
        d.offers[i].attempt,
        d.offers[i].leg_sid.clone(),
    );
    let over = d.call.is_over();
    {
        let o = &mut d.offers[i];
        o.state = OfferState::Answered;
        o.answered_at = Some(now);
    }
    d.call.answered_by = Some(agent);
    d.call.answered_leg_sid = leg;
    d.call.answered_at = d.call.answered_at.or(Some(now));
    if over {
        d.call.outcome = Some(Outcome::Answered);
    } else {
        d.call.status = CallStatus::Answered;
    }
    let leg_done = d.offers[i].leg_status == Some(LegStatus::Completed);
    // Learned after the caller's call ended: the talk is over, the wrap-up starts now (the
    // leg's own report still counts the talk time).
    let talk_over = over && !leg_done;
    if talk_over {
        d.offers[i].ended_at.get_or_insert(now);
    }
    let wrap_up_until = d.wrap_up_until();
    let effect = d.effect(agent);
    effect.delta.answered += 1;
    effect.engage = !over && !leg_done;
    if talk_over {
        effect.release = true;
        effect.wrap_up_until = wrap_up_until;
    }
    d.record_for(
        agent,
        AuditAction::CallAnswered,
        [("attempt", attempt.into())],
    );
    if attempt == d.call.attempts {
        d.end_round(RoundResult::Answered);
    }
    // The others are released now (also those a round ended before its winner was known
    // kept ringing).
    for other in d.ringing(attempt) {
        d.offers[other].state = OfferState::Canceled;
    }
    if leg_done {
        finish_talk(d, i, true);
    }
}

/// Counts talk time for the answered offer `i` and frees the agent. The leg's own report
/// is final; a count made when the caller's call ended first is provisional and corrected
/// by the leg's report, so the totals do not depend on the order of callbacks.
fn finish_talk(d: &mut Draft<'_>, i: usize, from_leg: bool) {
    let now = d.now();
    let o = &d.offers[i];
    if o.talk_final || (!from_leg && o.talk_seconds.is_some()) {
        return;
    }
    let answered_at = o.answered_at.or(d.call.answered_at).unwrap_or(now);
    let measured = (now - answered_at).num_seconds().max(0);
    let talk = if from_leg {
        o.leg_duration.unwrap_or(measured)
    } else {
        measured
    };
    let delta = talk - o.talk_seconds.unwrap_or(0);
    let first_end = o.talk_seconds.is_none();
    let agent = o.agent_id;
    {
        let o = &mut d.offers[i];
        o.talk_seconds = Some(talk);
        o.talk_final = from_leg;
        o.ended_at = o.ended_at.or(Some(now));
    }
    d.call.talk_seconds = Some(talk);
    let wrap_up_until = d.wrap_up_until();
    let effect = d.effect(agent);
    effect.delta.talk_seconds += delta;
    effect.release = true;
    effect.engage = false;
    effect.wrap_up_until = wrap_up_until;
    if first_end {
        d.record_for(
            agent,
            AuditAction::AgentReleased,
            [("talk_seconds", talk.into())],
        );
    }
}

fn call_ended(mut d: Draft<'_>, call_status: CallerStatus) -> Decision {
    end_call(&mut d, call_status);
    d.finish(Reply::Ack)
}

/// The caller's call ended (`call_status`, as Telnyx reported it): its outcome, the open
/// round closed, the talk time counted and the agent freed.
fn end_call(d: &mut Draft<'_>, call_status: CallerStatus) {
    if d.call.is_over() {
        return;
    }
    let now = d.now();
    let outcome = if d.call.answered_by.is_some() || d.call.status == CallStatus::Answered {
        Outcome::Answered
    } else if d.call.status == CallStatus::Voicemail
        || d.call.voicemail_started_at.is_some()
        || d.call.voicemail_recording_url.is_some()
    {
        Outcome::Voicemail
    } else if d.call.outcome == Some(Outcome::Unanswered) {
        Outcome::Unanswered
    } else if call_status == CallerStatus::Failed
        || (d.call.attempts == 0
            && matches!(call_status, CallerStatus::Busy | CallerStatus::NoAnswer))
    {
        Outcome::Failed
    } else {
        Outcome::Abandoned
    };
    d.close_round(RoundResult::CallerLeft, false);
    d.call.status = CallStatus::Completed;
    d.call.outcome = Some(outcome);
    d.call.ended_at = Some(now);
    if let Some(i) = d
        .offers
        .iter()
        .position(|o| o.state == OfferState::Answered)
    {
        finish_talk(d, i, false);
    } else if let (Some(at), None) = (d.call.answered_at, d.call.talk_seconds) {
        d.call.talk_seconds = Some((now - at).num_seconds().max(0));
    }
    let talk = Value::from(d.call.talk_seconds);
    d.record(
        AuditAction::CallCompleted,
        [
            ("outcome", outcome.as_str().into()),
            ("attempts", d.call.attempts.into()),
            ("talk_seconds", talk),
        ],
    );
}

/// Why the reconciler closed a call.
pub const SILENT_CALL: &str = "no word from Telnyx for longer than any call lasts";
/// Why the reconciler canceled an offer.
pub const STRAY_OFFER: &str = "an offer still ringing in a round that had ended";

/// The reconciler's repairs of one call (`None`: nothing to repair), each audited as
/// `reconciled` with its reason:
/// - a call not over and silent since before `stale_before` is closed as if it had ended
///   at its last sign of life: outcome, talk time and agent release as at a hang-up;
/// - an offer still ringing in a round that has ended (or of a call that has), the call
///   quiet since before `stray_before`, is canceled (its leg never reported; a leg that
///   does later still reports its own end).
#[must_use]
pub fn repair(
    state: &CallState,
    ctx: &Context<'_>,
    stale_before: DateTime<Utc>,
    stray_before: DateTime<Utc>,
) -> Option<CallChange> {
    let silent = !state.call.is_over() && state.call.updated_at < stale_before;
    let at = if silent {
        Context {
            now: state.call.updated_at,
            ..*ctx
        }
    } else {
        *ctx
    };
    let mut d = Draft::from_state(state, &at);
    if silent {
        end_call(&mut d, CallerStatus::Completed);
        d.record(AuditAction::Reconciled, [("reason", SILENT_CALL.into())]);
    }
    if silent || state.call.updated_at < stray_before {
        cancel_stray_offers(&mut d);
    }
    d.finish(Reply::Ack).change
}

fn cancel_stray_offers(d: &mut Draft<'_>) {
    let now = d.now();
    for i in 0..d.offers.len() {
        if d.offers[i].state != OfferState::Ringing || !d.round_over(i) {
            continue;
        }
        let o = &d.offers[i];
        let (agent, attempt) = (o.agent_id, o.attempt);
        d.offers[i].state = OfferState::Canceled;
        d.offers[i].ended_at.get_or_insert(now);
        d.record_for(
            agent,
            AuditAction::Reconciled,
            [("reason", STRAY_OFFER.into()), ("attempt", attempt.into())],
        );
    }
}
