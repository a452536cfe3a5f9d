//! Rows as both backends return them, and their conversion into domain types. Stored
//! enums are text; a value the domain does not know is an error, never a guess.

use agents::{Agent, AgentId, AgentMetrics, AgentName, Presence, SipUri};
use anyhow::{Context as _, anyhow};
use audit::{AuditEntry, NewAuditEvent};
use call_center::{Call, Offer};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// A `calls` row.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CallRecord {
    pub call_sid: String,
    pub from_number: String,
    pub to_number: String,
    pub account_sid: Option<String>,
    pub connection_id: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub attempts: i32,
    pub round_open: bool,
    pub answered_by: Option<Uuid>,
    pub answered_leg_sid: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub talk_seconds: Option<i64>,
    pub recording_url: Option<String>,
    pub recording_sid: Option<String>,
    pub voicemail_started_at: Option<DateTime<Utc>>,
    pub voicemail_recording_url: Option<String>,
    pub voicemail_recording_sid: Option<String>,
    pub voicemail_duration_seconds: Option<i64>,
    pub voicemail_transcription: Option<String>,
    pub recording_notice_played: bool,
    pub redacted_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<CallRecord> for Call {
    type Error = anyhow::Error;
    fn try_from(r: CallRecord) -> anyhow::Result<Self> {
        Ok(Self {
            status: r.status.parse().map_err(|e: String| anyhow!(e))?,
            outcome: r
                .outcome
                .map(|o| o.parse().map_err(|e: String| anyhow!(e)))
                .transpose()?,
            call_sid: r.call_sid,
            from: r.from_number,
            to: r.to_number,
            account_sid: r.account_sid,
            connection_id: r.connection_id,
            attempts: r.attempts,
            round_open: r.round_open,
            answered_by: r.answered_by.map(AgentId),
            answered_leg_sid: r.answered_leg_sid,
            started_at: r.started_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            talk_seconds: r.talk_seconds,
            recording_url: r.recording_url,
            recording_sid: r.recording_sid,
            voicemail_started_at: r.voicemail_started_at,
            voicemail_recording_url: r.voicemail_recording_url,
            voicemail_recording_sid: r.voicemail_recording_sid,
            voicemail_duration_seconds: r.voicemail_duration_seconds,
            voicemail_transcription: r.voicemail_transcription,
            recording_notice_played: r.recording_notice_played,
            redacted_at: r.redacted_at,
            version: r.version,
            updated_at: r.updated_at,
        })
    }
}

/// An `offers` row.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OfferRecord {
    pub call_sid: String,
    pub attempt: i32,
    pub agent_id: Uuid,
    pub sip_uri: String,
    pub sip_key: String,
    pub leg_sid: Option<String>,
    pub state: String,
    pub leg_status: Option<String>,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub leg_duration: Option<i64>,
    pub talk_seconds: Option<i64>,
    pub talk_final: bool,
}

impl TryFrom<OfferRecord> for Offer {
    type Error = anyhow::Error;
    fn try_from(r: OfferRecord) -> anyhow::Result<Self> {
        Ok(Self {
            state: r.state.parse().map_err(|e: String| anyhow!(e))?,
            call_sid: r.call_sid,
            attempt: r.attempt,
            agent_id: AgentId(r.agent_id),
            sip_uri: r.sip_uri,
            sip_key: r.sip_key,
            leg_sid: r.leg_sid,
            leg_status: r.leg_status,
            offered_at: r.offered_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            leg_duration: r.leg_duration,
            talk_seconds: r.talk_seconds,
            talk_final: r.talk_final,
        })
    }
}

/// An `agents` row (without the token hash).
#[derive(Debug, Clone)]
pub(crate) struct AgentRecord {
    pub id: Uuid,
    pub name: String,
    pub sip_uri: String,
    pub presence: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub current_call_sid: Option<String>,
    pub idle_since: DateTime<Utc>,
    pub calls_answered: i64,
    pub calls_missed: i64,
    pub total_talk_seconds: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<AgentRecord> for Agent {
    type Error = anyhow::Error;
    fn try_from(r: AgentRecord) -> anyhow::Result<Self> {
        Ok(Self {
            id: AgentId(r.id),
            name: AgentName::parse(&r.name).map_err(|e| anyhow!("stored agent name: {e}"))?,
            sip_uri: SipUri::parse(&r.sip_uri).context("stored SIP URI")?,
            presence: r.presence.parse::<Presence>().map_err(|e| anyhow!(e))?,
            last_heartbeat_at: r.last_heartbeat_at,
            current_call_sid: r.current_call_sid,
            idle_since: r.idle_since,
            created_at: r.created_at,
            updated_at: r.updated_at,
            metrics: AgentMetrics {
                calls_answered: r.calls_answered,
                calls_missed: r.calls_missed,
                total_talk_seconds: r.total_talk_seconds,
            },
        })
    }
}

/// An `audit_log` row.
#[derive(Debug, Clone)]
pub(crate) struct AuditRecord {
    pub id: i64,
    pub seq: Option<i64>,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub call_sid: Option<String>,
    pub agent_id: Option<Uuid>,
    pub data: String,
    pub prev_digest: Option<String>,
    pub digest: Option<String>,
}

impl TryFrom<AuditRecord> for AuditEntry {
    type Error = anyhow::Error;
    fn try_from(r: AuditRecord) -> anyhow::Result<Self> {
        Ok(Self {
            id: r.id,
            seq: r.seq,
            occurred_at: r.occurred_at,
            actor: r.actor.parse().map_err(|e: String| anyhow!(e))?,
            action: r.action.parse().map_err(|e: String| anyhow!(e))?,
            call_sid: r.call_sid,
            agent_id: r.agent_id,
            data: r.data,
            prev_digest: r.prev_digest,
            digest: r.digest,
        })
    }
}

/// Column vectors of audit events, for bulk inserts.
#[derive(Debug, Default)]
pub(crate) struct AuditColumns {
    pub occurred_at: Vec<DateTime<Utc>>,
    pub actor: Vec<String>,
    pub action: Vec<String>,
    pub call_sid: Vec<Option<String>>,
    pub agent_id: Vec<Option<Uuid>>,
    pub data: Vec<String>,
}

impl AuditColumns {
    pub fn of(events: &[NewAuditEvent]) -> Self {
        let mut c = Self::default();
        for e in events {
            c.occurred_at.push(e.occurred_at);
            c.actor.push(e.actor.to_string());
            c.action.push(e.action.as_str().to_owned());
            c.call_sid.push(e.call_sid.clone());
            c.agent_id.push(e.agent_id);
            c.data.push(e.data.clone());
        }
        c
    }
}

/// `Conflict` when a unique constraint with this name failed, else the error.
pub(crate) fn is_unique_violation(e: &sqlx::Error, constraint_hint: &str) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    db.is_unique_violation()
        && (db.constraint().is_none_or(|c| c.contains(constraint_hint))
            || db.message().contains(constraint_hint))
}
