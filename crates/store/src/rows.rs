//! Rows to domain values and back, once for both backends. Stored enums are text; a value
//! the domain does not know is an error, never a guess.

use agents::{Agent, AgentEffect, AgentId, AgentMetrics, AgentName, PauseReason, SipUri};
use anyhow::{Context as _, anyhow};
use audit::{AuditEntry, NewAuditEvent};
use call_center::{AttemptChange, Call, Offer, Receipt};
use chrono::{DateTime, Utc};

use crate::schema::{
    AgentRow, AuditEventRow, AuditSealRow, CallRow, EffectRow, OfferRow, ReceiptRow,
    RoundClosedRow, RoundOpenedRow,
};
use crate::types::{SqlId, SqlTime};

fn parsed<T: std::str::FromStr>(what: &str, s: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| anyhow!("stored {what} {s:?}: {e}"))
}

fn time(t: Option<SqlTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.0)
}

fn sql_time(t: Option<DateTime<Utc>>) -> Option<SqlTime> {
    t.map(SqlTime)
}

impl TryFrom<AgentRow> for Agent {
    type Error = anyhow::Error;
    fn try_from(r: AgentRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: AgentId(r.id.0),
            name: AgentName::parse(&r.name).map_err(|e| anyhow!("stored agent name: {e}"))?,
            sip_uri: SipUri::parse(&r.sip_uri).context("stored SIP URI")?,
            presence: parsed("presence", &r.presence)?,
            paused_reason: r
                .paused_reason
                .map(|p| PauseReason::parse(&p).map_err(|e| anyhow!("stored pause reason: {e}")))
                .transpose()?,
            presence_since: r.presence_since.0,
            last_heartbeat_at: time(r.last_heartbeat_at),
            current_call_sid: r.current_call_sid,
            idle_since: r.idle_since.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            metrics: AgentMetrics {
                calls_answered: r.calls_answered,
                calls_missed: r.calls_missed,
                total_talk_seconds: r.total_talk_seconds,
            },
            missed_in_a_row: r.missed_in_a_row,
            offer_call_sid: r.offer_call_sid,
            offer_ringing: r.offer_ringing,
            no_answer_until: time(r.no_answer_until),
        })
    }
}

impl From<&Agent> for AgentRow {
    fn from(a: &Agent) -> Self {
        Self {
            id: SqlId(a.id.0),
            name: a.name.as_str().to_owned(),
            sip_uri: a.sip_uri.as_str().to_owned(),
            sip_key: a.sip_uri.key().to_owned(),
            presence: a.presence.as_str().to_owned(),
            paused_reason: a.paused_reason.as_ref().map(|p| p.as_str().to_owned()),
            presence_since: SqlTime(a.presence_since),
            last_heartbeat_at: sql_time(a.last_heartbeat_at),
            current_call_sid: a.current_call_sid.clone(),
            idle_since: SqlTime(a.idle_since),
            calls_answered: a.metrics.calls_answered,
            calls_missed: a.metrics.calls_missed,
            total_talk_seconds: a.metrics.total_talk_seconds,
            created_at: SqlTime(a.created_at),
            updated_at: SqlTime(a.updated_at),
            missed_in_a_row: a.missed_in_a_row,
            offer_call_sid: a.offer_call_sid.clone(),
            offer_ringing: a.offer_ringing,
            no_answer_until: sql_time(a.no_answer_until),
        }
    }
}

impl TryFrom<CallRow> for Call {
    type Error = anyhow::Error;
    fn try_from(r: CallRow) -> anyhow::Result<Self> {
        Ok(Self {
            status: parsed("call status", &r.status)?,
            outcome: r
                .outcome
                .as_deref()
                .map(|o| parsed("outcome", o))
                .transpose()?,
            call_sid: r.call_sid,
            from: r.from_number,
            to: r.to_number,
            account_sid: r.account_sid,
            connection_id: r.connection_id,
            attempts: r.attempts,
            round_open: r.round_open,
            answered_by: r.answered_by.map(|a| AgentId(a.0)),
            answered_leg_sid: r.answered_leg_sid,
            started_at: r.started_at.0,
            answered_at: time(r.answered_at),
            ended_at: time(r.ended_at),
            talk_seconds: r.talk_seconds,
            recording_url: r.recording_url,
            recording_sid: r.recording_sid,
            voicemail_started_at: time(r.voicemail_started_at),
            voicemail_recording_url: r.voicemail_recording_url,
            voicemail_recording_sid: r.voicemail_recording_sid,
            voicemail_duration_seconds: r.voicemail_duration_seconds,
            voicemail_transcription: r.voicemail_transcription,
            recording_notice_played: r.recording_notice_played,
            redacted_at: time(r.redacted_at),
            version: r.version,
            updated_at: r.updated_at.0,
            enqueued_at: time(r.enqueued_at),
            priority: r.priority,
            delivery: r
                .delivery
                .as_deref()
                .map(|d| parsed("delivery", d))
                .transpose()?,
            delivery_at: time(r.delivery_at),
            push_attempts: r.push_attempts,
            announced_position: r.announced_position,
            announced_at: time(r.announced_at),
        })
    }
}

impl From<&Call> for CallRow {
    fn from(c: &Call) -> Self {
        Self {
            call_sid: c.call_sid.clone(),
            from_number: c.from.clone(),
            to_number: c.to.clone(),
            account_sid: c.account_sid.clone(),
            connection_id: c.connection_id.clone(),
            status: c.status.as_str().to_owned(),
            outcome: c.outcome.map(|o| o.as_str().to_owned()),
            attempts: c.attempts,
            round_open: c.round_open,
            answered_by: c.answered_by.map(|a| SqlId(a.0)),
            answered_leg_sid: c.answered_leg_sid.clone(),
            started_at: SqlTime(c.started_at),
            answered_at: sql_time(c.answered_at),
            ended_at: sql_time(c.ended_at),
            talk_seconds: c.talk_seconds,
            recording_url: c.recording_url.clone(),
            recording_sid: c.recording_sid.clone(),
            voicemail_started_at: sql_time(c.voicemail_started_at),
            voicemail_recording_url: c.voicemail_recording_url.clone(),
            voicemail_recording_sid: c.voicemail_recording_sid.clone(),
            voicemail_duration_seconds: c.voicemail_duration_seconds,
            voicemail_transcription: c.voicemail_transcription.clone(),
            recording_notice_played: c.recording_notice_played,
            redacted_at: sql_time(c.redacted_at),
            version: c.version,
            updated_at: SqlTime(c.updated_at),
            enqueued_at: sql_time(c.enqueued_at),
            priority: c.priority,
            delivery: c.delivery.map(|d| d.as_str().to_owned()),
            delivery_at: sql_time(c.delivery_at),
            push_attempts: c.push_attempts,
            announced_position: c.announced_position,
            announced_at: sql_time(c.announced_at),
        }
    }
}

impl TryFrom<OfferRow> for Offer {
    type Error = anyhow::Error;
    fn try_from(r: OfferRow) -> anyhow::Result<Self> {
        Ok(Self {
            state: parsed("offer state", &r.state)?,
            leg_status: r
                .leg_status
                .as_deref()
                .map(|s| parsed("leg status", s))
                .transpose()?,
            call_sid: r.call_sid,
            attempt: r.attempt,
            agent_id: AgentId(r.agent_id.0),
            sip_uri: r.sip_uri,
            sip_key: r.sip_key,
            leg_sid: r.leg_sid,
            offered_at: r.offered_at.0,
            answered_at: time(r.answered_at),
            ended_at: time(r.ended_at),
            closed_at: time(r.closed_at),
            leg_duration: r.leg_duration,
            talk_seconds: r.talk_seconds,
            talk_final: r.talk_final,
            misses_before: r.misses_before,
        })
    }
}

impl From<&Offer> for OfferRow {
    fn from(o: &Offer) -> Self {
        Self {
            call_sid: o.call_sid.clone(),
            attempt: o.attempt,
            agent_id: SqlId(o.agent_id.0),
            sip_uri: o.sip_uri.clone(),
            sip_key: o.sip_key.clone(),
            leg_sid: o.leg_sid.clone(),
            state: o.state.as_str().to_owned(),
            leg_status: o.leg_status.map(|s| s.as_str().to_owned()),
            offered_at: SqlTime(o.offered_at),
            answered_at: sql_time(o.answered_at),
            ended_at: sql_time(o.ended_at),
            closed_at: sql_time(o.closed_at),
            leg_duration: o.leg_duration,
            talk_seconds: o.talk_seconds,
            talk_final: o.talk_final,
            misses_before: o.misses_before,
        }
    }
}

/// The `dial_attempts` rows a change opens and closes.
pub(crate) fn rounds(
    call_sid: &str,
    changes: &[AttemptChange],
) -> (Vec<RoundOpenedRow>, Vec<RoundClosedRow>) {
    let (mut opened, mut closed) = (Vec::new(), Vec::new());
    for c in changes {
        match c {
            AttemptChange::Opened {
                attempt,
                started_at,
                offered,
            } => opened.push(RoundOpenedRow {
                call_sid: call_sid.to_owned(),
                attempt: *attempt,
                started_at: SqlTime(*started_at),
                offered: *offered,
            }),
            AttemptChange::Closed {
                attempt,
                ended_at,
                result,
            } => closed.push(RoundClosedRow {
                call_sid: call_sid.to_owned(),
                attempt: *attempt,
                ended_at: SqlTime(*ended_at),
                result: result.as_str().to_owned(),
            }),
        }
    }
    (opened, closed)
}

/// How an [`agents::OfferMark`] is bound (`reserve`, `reserve-ring`, `ring`, `clear`).
fn offer_mark(m: agents::OfferMark) -> &'static str {
    match m {
        agents::OfferMark::Reserve => "reserve",
        agents::OfferMark::ReserveRinging => "reserve-ring",
        agents::OfferMark::Ring => "ring",
        agents::OfferMark::Clear => "clear",
    }
}

/// The agent effects of a change, as bound.
pub(crate) fn effects(effects: &[AgentEffect]) -> Vec<EffectRow> {
    effects
        .iter()
        .map(|e| EffectRow {
            agent_id: SqlId(e.agent_id.0),
            answered: e.delta.answered,
            missed: e.delta.missed,
            talk: e.delta.talk_seconds,
            engage: e.engage,
            release: e.release,
            wrap_up_until: sql_time(e.wrap_up_until),
            no_answer_until: sql_time(e.no_answer_until),
            offer: e.offer.map(|m| offer_mark(m).to_owned()),
        })
        .collect()
}

/// Receipt rows stored at `now`.
pub(crate) fn receipts(receipts: &[Receipt], now: DateTime<Utc>) -> Vec<ReceiptRow> {
    receipts
        .iter()
        .map(|r| ReceiptRow {
            key: r.key.clone(),
            fingerprint: r.fingerprint.clone(),
            received_at: SqlTime(now),
        })
        .collect()
}

impl From<&NewAuditEvent> for AuditEventRow {
    fn from(e: &NewAuditEvent) -> Self {
        Self {
            occurred_at: SqlTime(e.occurred_at),
            actor: e.actor.to_string(),
            action: e.action.as_str().to_owned(),
            call_sid: e.call_sid.clone(),
            agent_id: e.agent_id.map(SqlId),
            data: e.data.clone(),
        }
    }
}

/// Audit rows of `events`.
pub(crate) fn audit_rows(events: &[NewAuditEvent]) -> Vec<AuditEventRow> {
    events.iter().map(AuditEventRow::from).collect()
}

/// A whole audit entry from its event and chain columns.
pub(crate) fn audit_entry(event: AuditEventRow, seal: AuditSealRow) -> anyhow::Result<AuditEntry> {
    Ok(AuditEntry {
        id: seal.id,
        seq: seal.seq,
        occurred_at: event.occurred_at.0,
        actor: parsed("audit actor", &event.actor)?,
        action: parsed("audit action", &event.action)?,
        call_sid: event.call_sid,
        agent_id: event.agent_id.map(|a| a.0),
        data: event.data,
        prev_digest: seal.prev_digest,
        digest: seal.digest,
    })
}
