//! PostgreSQL adapter: every port in SQL. A webhook's change is one statement (writable
//! CTEs, bulk `unnest` inserts), so it is one transaction and one round trip.

use std::time::Duration as StdDuration;

use agents::{
    Agent, AgentId, AgentPatch, AgentStore, AgentStoreError, Candidate, EffectiveStatus, Liveness,
    MetricsDelta, Presence, PresenceAudit, SipUri,
};
use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use audit::{AuditEntry, AuditError, AuditFilter, AuditLog, ChainHead, NewAuditEvent, chain};
use call_center::{
    Applied, AttemptChange, Call, CallChange, CallFilter, CallState, CallStore, CallStoreError,
    Offer, Receipt, Redaction, Snapshot,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::records::{
    AgentRecord, AuditColumns, AuditRecord, CallRecord, OfferRecord, is_unique_violation,
};

/// The embedded PostgreSQL migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Advisory lock key that serialises sealers across instances.
const SEALER_LOCK: i64 = 0x0063_635f_6175_6469; // "cc_audi"

/// Stores on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

fn unexpected(context: &'static str) -> impl FnOnce(sqlx::Error) -> anyhow::Error {
    move |e| anyhow::Error::new(e).context(context)
}

impl PgStore {
    /// Connects lazily (the first query opens the first connection), so the server starts
    /// and reports "not ready" while the database is down.
    ///
    /// # Errors
    /// When the URL cannot be parsed.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        acquire_timeout: StdDuration,
    ) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .context("DATABASE_URL is not a PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(options.application_name("callcenter"));
        Ok(Self { pool })
    }

    /// The pool, for tests and tools.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs pending migrations.
    ///
    /// # Errors
    /// When a migration fails or the database is unreachable.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("running PostgreSQL migrations")
    }

    /// `SELECT 1`.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .context("pinging PostgreSQL")
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

// ---------------------------------------------------------------------------------------
// Agents

fn agent_from_row(row: &PgRow) -> Result<Agent, AgentStoreError> {
    let record = AgentRecord {
        id: row.try_get("id").map_err(unexpected("agent row"))?,
        name: row.try_get("name").map_err(unexpected("agent row"))?,
        sip_uri: row.try_get("sip_uri").map_err(unexpected("agent row"))?,
        presence: row.try_get("presence").map_err(unexpected("agent row"))?,
        last_heartbeat_at: row
            .try_get("last_heartbeat_at")
            .map_err(unexpected("agent row"))?,
        current_call_sid: row
            .try_get("current_call_sid")
            .map_err(unexpected("agent row"))?,
        idle_since: row.try_get("idle_since").map_err(unexpected("agent row"))?,
        calls_answered: row
            .try_get("calls_answered")
            .map_err(unexpected("agent row"))?,
        calls_missed: row
            .try_get("calls_missed")
            .map_err(unexpected("agent row"))?,
        total_talk_seconds: row
            .try_get("total_talk_seconds")
            .map_err(unexpected("agent row"))?,
        created_at: row.try_get("created_at").map_err(unexpected("agent row"))?,
        updated_at: row.try_get("updated_at").map_err(unexpected("agent row"))?,
    };
    Agent::try_from(record).map_err(AgentStoreError::Unexpected)
}

fn agent_write_error(e: sqlx::Error) -> AgentStoreError {
    if is_unique_violation(&e, "sip_key") {
        AgentStoreError::DuplicateSipUri
    } else {
        AgentStoreError::Unexpected(anyhow::Error::new(e).context("writing an agent"))
    }
}

async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewAuditEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let c = AuditColumns::of(events);
    sqlx::query(
        "INSERT INTO audit_log (occurred_at, actor, action, call_sid, agent_id, data)
         SELECT t.occurred_at, t.actor, t.action, t.call_sid, t.agent_id, t.data
         FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[])
              WITH ORDINALITY AS t(occurred_at, actor, action, call_sid, agent_id, data, n)
         ORDER BY t.n",
    )
    .bind(c.occurred_at)
    .bind(c.actor)
    .bind(c.action)
    .bind(c.call_sid)
    .bind(c.agent_id)
    .bind(c.data)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

const LIST_ALL: &str = "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, \
     calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents \
     WHERE $1::timestamptz IS NOT NULL ORDER BY created_at, id";
const LIST_AVAILABLE: &str = "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, \
     calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents \
     WHERE presence = 'available' AND current_call_sid IS NULL AND last_heartbeat_at >= $1 ORDER BY created_at, id";
const LIST_BUSY: &str = "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, \
     calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents \
     WHERE current_call_sid IS NOT NULL OR (presence = 'busy' AND last_heartbeat_at >= $1) ORDER BY created_at, id";
const LIST_OFFLINE: &str = "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, \
     calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents \
     WHERE current_call_sid IS NULL AND (presence = 'offline' OR last_heartbeat_at IS NULL OR last_heartbeat_at < $1) \
     ORDER BY created_at, id";

/// The "available now" query (also shown with `EXPLAIN` in docs/agents.md).
pub const AVAILABLE_NOW: &str = "SELECT id, sip_uri FROM agents \
     WHERE presence = 'available' AND current_call_sid IS NULL AND last_heartbeat_at >= $1 \
     ORDER BY idle_since, id LIMIT $2";

#[async_trait]
impl AgentStore for PgStore {
    async fn insert(
        &self,
        agent: &Agent,
        token_hash: &str,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(), AgentStoreError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("begin"))?;
        sqlx::query(
            "INSERT INTO agents (id, name, sip_uri, sip_key, presence, last_heartbeat_at, current_call_sid, idle_since,
                 heartbeat_token_hash, calls_answered, calls_missed, total_talk_seconds, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(agent.id.0)
        .bind(agent.name.as_str())
        .bind(agent.sip_uri.as_str())
        .bind(agent.sip_uri.key())
        .bind(agent.presence.as_str())
        .bind(agent.last_heartbeat_at)
        .bind(&agent.current_call_sid)
        .bind(agent.idle_since)
        .bind(token_hash)
        .bind(agent.metrics.calls_answered)
        .bind(agent.metrics.calls_missed)
        .bind(agent.metrics.total_talk_seconds)
        .bind(agent.created_at)
        .bind(agent.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(agent_write_error)?;
        insert_audit(&mut tx, &audit)
            .await
            .map_err(unexpected("agent audit"))?;
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(())
    }

    async fn get(&self, id: AgentId) -> Result<Option<Agent>, AgentStoreError> {
        let sql = "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, \
                   calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents WHERE id = $1";
        let row = sqlx::query(sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(unexpected("get agent"))?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn agent_for_token(&self, token_hash: &str) -> Result<Option<AgentId>, AgentStoreError> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM agents WHERE heartbeat_token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("token lookup"))?;
        Ok(id.map(AgentId))
    }

    async fn find_by_sip_key(&self, key: &str) -> Result<Option<Agent>, AgentStoreError> {
        let sql = "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, \
                   calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents WHERE sip_key = $1";
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(unexpected("sip lookup"))?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn list(
        &self,
        status: Option<EffectiveStatus>,
        liveness: &Liveness,
    ) -> Result<Vec<Agent>, AgentStoreError> {
        let sql = match status {
            None => LIST_ALL,
            Some(EffectiveStatus::Available) => LIST_AVAILABLE,
            Some(EffectiveStatus::Busy) => LIST_BUSY,
            Some(EffectiveStatus::Offline) => LIST_OFFLINE,
        };
        let rows = sqlx::query(sql)
            .bind(liveness.cutoff)
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("list agents"))?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn update(
        &self,
        id: AgentId,
        patch: &AgentPatch,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Agent, AgentStoreError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("begin"))?;
        let sql = "UPDATE agents SET name = COALESCE($2, name), sip_uri = COALESCE($3, sip_uri),
                       sip_key = COALESCE($4, sip_key), presence = COALESCE($5, presence), updated_at = $6
                   WHERE id = $1
                   RETURNING id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since,
                       calls_answered, calls_missed, total_talk_seconds, created_at, updated_at";
        let row = sqlx::query(sql)
            .bind(id.0)
            .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
            .bind(patch.sip_uri.as_ref().map(|u| u.as_str().to_owned()))
            .bind(patch.sip_uri.as_ref().map(|u| u.key().to_owned()))
            .bind(patch.presence.map(Presence::as_str))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(agent_write_error)?
            .ok_or(AgentStoreError::NotFound)?;
        insert_audit(&mut tx, &audit)
            .await
            .map_err(unexpected("agent audit"))?;
        tx.commit().await.map_err(unexpected("commit"))?;
        agent_from_row(&row)
    }

    async fn heartbeat(
        &self,
        id: AgentId,
        presence: Option<Presence>,
        now: DateTime<Utc>,
        on_change: PresenceAudit<'_>,
    ) -> Result<Agent, AgentStoreError> {
        let sql = "WITH old AS (SELECT id, presence FROM agents WHERE id = $1 FOR UPDATE)
                   UPDATE agents a SET last_heartbeat_at = $2, updated_at = $2, presence = COALESCE($3, a.presence)
                   FROM old WHERE a.id = old.id
                   RETURNING a.id, a.name, a.sip_uri, a.presence, a.last_heartbeat_at, a.current_call_sid, a.idle_since,
                       a.calls_answered, a.calls_missed, a.total_talk_seconds, a.created_at, a.updated_at,
                       old.presence AS previous";
        let mut tx = self.pool.begin().await.map_err(unexpected("begin"))?;
        let row = sqlx::query(sql)
            .bind(id.0)
            .bind(now)
            .bind(presence.map(Presence::as_str))
            .fetch_optional(&mut *tx)
            .await
            .map_err(unexpected("heartbeat"))?
            .ok_or(AgentStoreError::NotFound)?;
        let agent = agent_from_row(&row)?;
        let previous: String = row
            .try_get("previous")
            .map_err(unexpected("heartbeat row"))?;
        let previous: Presence = previous
            .parse()
            .map_err(|e: String| AgentStoreError::Unexpected(anyhow!(e)))?;
        if previous != agent.presence {
            insert_audit(&mut tx, &on_change(previous, agent.presence))
                .await
                .map_err(unexpected("heartbeat audit"))?;
        }
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(agent)
    }

    async fn delete(&self, id: AgentId, audit: Vec<NewAuditEvent>) -> Result<(), AgentStoreError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("begin"))?;
        let done = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("delete agent"))?;
        if done.rows_affected() == 0 {
            return Err(AgentStoreError::NotFound);
        }
        insert_audit(&mut tx, &audit)
            .await
            .map_err(unexpected("agent audit"))?;
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(())
    }

    async fn available_now(
        &self,
        liveness: &Liveness,
        limit: u32,
    ) -> Result<Vec<Candidate>, AgentStoreError> {
        let rows = sqlx::query(AVAILABLE_NOW)
            .bind(liveness.cutoff)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("available agents"))?;
        rows.iter()
            .map(|r| {
                let id: Uuid = r.try_get("id").map_err(unexpected("candidate"))?;
                let uri: String = r.try_get("sip_uri").map_err(unexpected("candidate"))?;
                let sip_uri = SipUri::parse(&uri).context("stored SIP URI")?;
                Ok(Candidate {
                    id: AgentId(id),
                    sip_uri,
                })
            })
            .collect()
    }

    async fn engage(
        &self,
        id: AgentId,
        call_sid: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, AgentStoreError> {
        let done = sqlx::query(
            "UPDATE agents SET current_call_sid = $2 WHERE id = $1 AND current_call_sid IS NULL",
        )
        .bind(id.0)
        .bind(call_sid)
        .execute(&self.pool)
        .await
        .map_err(unexpected("engage"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(
        &self,
        id: AgentId,
        call_sid: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AgentStoreError> {
        let done = sqlx::query(
            "UPDATE agents SET current_call_sid = NULL, idle_since = $3 WHERE id = $1 AND current_call_sid = $2",
        )
        .bind(id.0)
        .bind(call_sid)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(unexpected("release"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_metrics(&self, id: AgentId, d: MetricsDelta) -> Result<(), AgentStoreError> {
        let done = sqlx::query(
            "UPDATE agents SET calls_answered = calls_answered + $2, calls_missed = calls_missed + $3,
                 total_talk_seconds = total_talk_seconds + $4 WHERE id = $1",
        )
        .bind(id.0)
        .bind(d.answered)
        .bind(d.missed)
        .bind(d.talk_seconds)
        .execute(&self.pool)
        .await
        .map_err(unexpected("metrics"))?;
        if done.rows_affected() == 0 {
            Err(AgentStoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Calls

/// One round trip: the call with one row per offer (a call without offers is one row with
/// null offer columns; no call is one row of nulls), plus the receipts asked for, read in
/// one scan so keys and fingerprints pair up (the aggregate always yields the one row the
/// joins hang on). Binary columns, no JSON: this runs on every webhook.
const LOAD: &str = "SELECT c.call_sid, c.from_number, c.to_number, c.account_sid, c.connection_id, c.status,
        c.outcome, c.attempts, c.round_open, c.answered_by, c.answered_leg_sid, c.started_at, c.answered_at,
        c.ended_at, c.talk_seconds, c.recording_url, c.recording_sid, c.voicemail_started_at,
        c.voicemail_recording_url, c.voicemail_recording_sid, c.voicemail_duration_seconds,
        c.voicemail_transcription, c.recording_notice_played, c.redacted_at, c.version, c.updated_at,
        o.attempt AS o_attempt, o.agent_id AS o_agent_id, o.sip_uri AS o_sip_uri, o.sip_key AS o_sip_key,
        o.leg_sid AS o_leg_sid, o.state AS o_state, o.leg_status AS o_leg_status,
        o.offered_at AS o_offered_at, o.answered_at AS o_answered_at, o.ended_at AS o_ended_at,
        o.leg_duration AS o_leg_duration, o.talk_seconds AS o_talk_seconds, o.talk_final AS o_talk_final,
        seen.keys AS seen_keys, seen.fingerprints AS seen_fingerprints
    FROM (SELECT array_agg(r.key) AS keys, array_agg(r.fingerprint) AS fingerprints
          FROM webhook_receipts r WHERE r.key = ANY($2)) AS seen
    LEFT JOIN calls c ON c.call_sid = $1
    LEFT JOIN offers o ON o.call_sid = c.call_sid
    ORDER BY o.attempt, o.offered_at, o.agent_id";

fn call_record(row: &PgRow) -> Result<Option<CallRecord>, sqlx::Error> {
    let Some(call_sid) = row.try_get::<Option<String>, _>("call_sid")? else {
        return Ok(None);
    };
    Ok(Some(CallRecord {
        call_sid,
        from_number: row.try_get("from_number")?,
        to_number: row.try_get("to_number")?,
        account_sid: row.try_get("account_sid")?,
        connection_id: row.try_get("connection_id")?,
        status: row.try_get("status")?,
        outcome: row.try_get("outcome")?,
        attempts: row.try_get("attempts")?,
        round_open: row.try_get("round_open")?,
        answered_by: row.try_get("answered_by")?,
        answered_leg_sid: row.try_get("answered_leg_sid")?,
        started_at: row.try_get("started_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        talk_seconds: row.try_get("talk_seconds")?,
        recording_url: row.try_get("recording_url")?,
        recording_sid: row.try_get("recording_sid")?,
        voicemail_started_at: row.try_get("voicemail_started_at")?,
        voicemail_recording_url: row.try_get("voicemail_recording_url")?,
        voicemail_recording_sid: row.try_get("voicemail_recording_sid")?,
        voicemail_duration_seconds: row.try_get("voicemail_duration_seconds")?,
        voicemail_transcription: row.try_get("voicemail_transcription")?,
        recording_notice_played: row.try_get("recording_notice_played")?,
        redacted_at: row.try_get("redacted_at")?,
        version: row.try_get("version")?,
        updated_at: row.try_get("updated_at")?,
    }))
}

fn offer_record(call_sid: &str, row: &PgRow) -> Result<Option<OfferRecord>, sqlx::Error> {
    let Some(attempt) = row.try_get::<Option<i32>, _>("o_attempt")? else {
        return Ok(None);
    };
    Ok(Some(OfferRecord {
        call_sid: call_sid.to_owned(),
        attempt,
        agent_id: row.try_get("o_agent_id")?,
        sip_uri: row.try_get("o_sip_uri")?,
        sip_key: row.try_get("o_sip_key")?,
        leg_sid: row.try_get("o_leg_sid")?,
        state: row.try_get("o_state")?,
        leg_status: row.try_get("o_leg_status")?,
        offered_at: row.try_get("o_offered_at")?,
        answered_at: row.try_get("o_answered_at")?,
        ended_at: row.try_get("o_ended_at")?,
        leg_duration: row.try_get("o_leg_duration")?,
        talk_seconds: row.try_get("o_talk_seconds")?,
        talk_final: row.try_get("o_talk_final")?,
    }))
}

fn seen_receipts(row: &PgRow) -> Result<Vec<Receipt>, sqlx::Error> {
    let keys: Option<Vec<String>> = row.try_get("seen_keys")?;
    let fingerprints: Option<Vec<String>> = row.try_get("seen_fingerprints")?;
    Ok(keys
        .unwrap_or_default()
        .into_iter()
        .zip(fingerprints.unwrap_or_default())
        .map(|(key, fingerprint)| Receipt { key, fingerprint })
        .collect())
}

fn snapshot(rows: &[PgRow]) -> anyhow::Result<Snapshot> {
    let Some(first) = rows.first() else {
        return Err(anyhow!("the load query returned no row"));
    };
    let seen = seen_receipts(first).context("receipts")?;
    let Some(call) = call_record(first).context("call row")? else {
        return Ok(Snapshot { state: None, seen });
    };
    let mut offers = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(o) = offer_record(&call.call_sid, row).context("offer row")? {
            offers.push(Offer::try_from(o)?);
        }
    }
    Ok(Snapshot {
        state: Some(CallState {
            call: Call::try_from(call)?,
            offers,
        }),
        seen,
    })
}

macro_rules! apply_sql {
    ($head:literal) => {
        concat!(
            $head,
            "
receipts AS (
    INSERT INTO webhook_receipts (key, fingerprint, received_at)
    SELECT r.key, r.fp, $28 FROM unnest($29::text[], $30::text[]) AS r(key, fp)
    WHERE EXISTS (SELECT 1 FROM call_row)
),
offer_rows AS (
    INSERT INTO offers (call_sid, attempt, agent_id, sip_uri, sip_key, leg_sid, state, leg_status,
        offered_at, answered_at, ended_at, leg_duration, talk_seconds, talk_final)
    SELECT $1, o.attempt, o.agent_id, o.sip_uri, o.sip_key, o.leg_sid, o.state, o.leg_status,
        o.offered_at, o.answered_at, o.ended_at, o.leg_duration, o.talk_seconds, o.talk_final
    FROM unnest($31::int4[], $32::uuid[], $33::text[], $34::text[], $35::text[], $36::text[], $37::text[],
        $38::timestamptz[], $39::timestamptz[], $40::timestamptz[], $41::int8[], $42::int8[], $43::bool[])
        AS o(attempt, agent_id, sip_uri, sip_key, leg_sid, state, leg_status, offered_at, answered_at,
             ended_at, leg_duration, talk_seconds, talk_final)
    WHERE EXISTS (SELECT 1 FROM call_row)
    ON CONFLICT (call_sid, attempt, agent_id) DO UPDATE SET
        leg_sid = EXCLUDED.leg_sid, state = EXCLUDED.state, leg_status = EXCLUDED.leg_status,
        answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
        leg_duration = EXCLUDED.leg_duration, talk_seconds = EXCLUDED.talk_seconds,
        talk_final = EXCLUDED.talk_final
),
rounds_opened AS (
    INSERT INTO dial_attempts (call_sid, attempt, started_at, offered)
    SELECT $1, a.attempt, a.started_at, a.offered
    FROM unnest($44::int4[], $45::timestamptz[], $46::int4[]) AS a(attempt, started_at, offered)
    WHERE EXISTS (SELECT 1 FROM call_row)
    ON CONFLICT (call_sid, attempt) DO NOTHING
),
rounds_closed AS (
    UPDATE dial_attempts d SET ended_at = a.ended_at, result = a.result
    FROM unnest($47::int4[], $48::timestamptz[], $49::text[]) AS a(attempt, ended_at, result)
    WHERE d.call_sid = $1 AND d.attempt = a.attempt AND d.ended_at IS NULL
      AND EXISTS (SELECT 1 FROM call_row)
),
agent_effects AS (
    UPDATE agents g SET
        calls_answered = g.calls_answered + e.answered,
        calls_missed = g.calls_missed + e.missed,
        total_talk_seconds = g.total_talk_seconds + e.talk,
        current_call_sid = CASE
            WHEN e.engage AND g.current_call_sid IS NULL THEN $1
            WHEN e.release AND g.current_call_sid = $1 THEN NULL
            ELSE g.current_call_sid END,
        idle_since = CASE WHEN e.release AND g.current_call_sid = $1 THEN $28 ELSE g.idle_since END
    FROM unnest($50::uuid[], $51::int8[], $52::int8[], $53::int8[], $54::bool[], $55::bool[])
        AS e(agent_id, answered, missed, talk, engage, release)
    WHERE g.id = e.agent_id AND EXISTS (SELECT 1 FROM call_row)
),
audit AS (
    INSERT INTO audit_log (occurred_at, actor, action, call_sid, agent_id, data)
    SELECT t.occurred_at, t.actor, t.action, t.call_sid, t.agent_id, t.data
    FROM unnest($56::timestamptz[], $57::text[], $58::text[], $59::text[], $60::uuid[], $61::text[])
        WITH ORDINALITY AS t(occurred_at, actor, action, call_sid, agent_id, data, n)
    WHERE EXISTS (SELECT 1 FROM call_row)
    ORDER BY t.n
)
SELECT count(*) AS applied FROM call_row"
        )
    };
}

/// Inserts a new call (expected version 0).
const APPLY_INSERT: &str = apply_sql!(
    "WITH call_row AS (
    INSERT INTO calls (call_sid, from_number, to_number, account_sid, connection_id, status, outcome, attempts,
        round_open, answered_by, answered_leg_sid, started_at, answered_at, ended_at, talk_seconds, recording_url,
        recording_sid, voicemail_started_at, voicemail_recording_url, voicemail_recording_sid,
        voicemail_duration_seconds, voicemail_transcription, recording_notice_played, redacted_at, version, updated_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23, $24, $25, $26
    WHERE $27::int8 = 0
    ON CONFLICT (call_sid) DO NOTHING
    RETURNING call_sid
),"
);

/// Updates a call at the expected version.
const APPLY_UPDATE: &str = apply_sql!(
    "WITH call_row AS (
    UPDATE calls SET from_number = $2, to_number = $3, account_sid = $4, connection_id = $5, status = $6,
        outcome = $7, attempts = $8, round_open = $9, answered_by = $10, answered_leg_sid = $11, started_at = $12,
        answered_at = $13, ended_at = $14, talk_seconds = $15, recording_url = $16, recording_sid = $17,
        voicemail_started_at = $18, voicemail_recording_url = $19, voicemail_recording_sid = $20,
        voicemail_duration_seconds = $21, voicemail_transcription = $22, recording_notice_played = $23,
        redacted_at = $24, version = $25, updated_at = $26
    WHERE call_sid = $1 AND version = $27
    RETURNING call_sid
),"
);

fn decode<T: serde::de::DeserializeOwned>(
    json: Option<Json<serde_json::Value>>,
    what: &'static str,
) -> anyhow::Result<Option<T>> {
    json.map(|Json(v)| serde_json::from_value(v).with_context(|| format!("decoding {what}")))
        .transpose()
}

#[async_trait]
impl CallStore for PgStore {
    async fn load(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> Result<Snapshot, CallStoreError> {
        let rows = sqlx::query(LOAD)
            .bind(call_sid)
            .bind(receipt_keys)
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("loading a call"))?;
        Ok(snapshot(&rows)?)
    }

    async fn apply(&self, change: &CallChange) -> Result<Applied, CallStoreError> {
        let sql = if change.expected_version == 0 {
            APPLY_INSERT
        } else {
            APPLY_UPDATE
        };
        let c = &change.call;
        let query = sqlx::query(sql)
            .bind(&c.call_sid)
            .bind(&c.from)
            .bind(&c.to)
            .bind(&c.account_sid)
            .bind(&c.connection_id)
            .bind(c.status.as_str())
            .bind(c.outcome.map(|o| o.as_str()))
            .bind(c.attempts)
            .bind(c.round_open)
            .bind(c.answered_by.map(|a| a.0))
            .bind(&c.answered_leg_sid)
            .bind(c.started_at)
            .bind(c.answered_at)
            .bind(c.ended_at)
            .bind(c.talk_seconds)
            .bind(&c.recording_url)
            .bind(&c.recording_sid)
            .bind(c.voicemail_started_at)
            .bind(&c.voicemail_recording_url)
            .bind(&c.voicemail_recording_sid)
            .bind(c.voicemail_duration_seconds)
            .bind(&c.voicemail_transcription)
            .bind(c.recording_notice_played)
            .bind(c.redacted_at)
            .bind(c.version)
            .bind(c.updated_at)
            .bind(change.expected_version)
            .bind(c.updated_at);
        let query = bind_receipts(query, &change.receipts);
        let query = bind_offers(query, &change.offers);
        let query = bind_attempts(query, &change.attempts);
        let query = bind_effects(query, change);
        let a = AuditColumns::of(&change.audit);
        let query = query
            .bind(a.occurred_at)
            .bind(a.actor)
            .bind(a.action)
            .bind(a.call_sid)
            .bind(a.agent_id)
            .bind(a.data);
        match query.fetch_one(&self.pool).await {
            Ok(row) => {
                let applied: i64 = row.try_get("applied").map_err(unexpected("apply result"))?;
                Ok(if applied == 1 {
                    Applied::Yes
                } else {
                    Applied::Conflict
                })
            }
            Err(e)
                if is_unique_violation(&e, "webhook_receipts")
                    || is_unique_violation(&e, "calls_pkey") =>
            {
                Ok(Applied::Conflict)
            }
            Err(e) => Err(anyhow::Error::new(e)
                .context("applying a call change")
                .into()),
        }
    }

    async fn record_receipts(
        &self,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<Applied, CallStoreError> {
        let keys: Vec<&str> = receipts.iter().map(|r| r.key.as_str()).collect();
        let fps: Vec<&str> = receipts.iter().map(|r| r.fingerprint.as_str()).collect();
        let result = sqlx::query(
            "INSERT INTO webhook_receipts (key, fingerprint, received_at)
             SELECT k, f, $3 FROM unnest($1::text[], $2::text[]) AS r(k, f)",
        )
        .bind(keys)
        .bind(fps)
        .bind(now)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(Applied::Yes),
            Err(e) if is_unique_violation(&e, "webhook_receipts") => Ok(Applied::Conflict),
            Err(e) => Err(anyhow::Error::new(e).context("recording receipts").into()),
        }
    }

    async fn call_for_leg(&self, leg_sid: &str) -> Result<Option<String>, CallStoreError> {
        let sid = sqlx::query_scalar("SELECT call_sid FROM offers WHERE leg_sid = $1 LIMIT 1")
            .bind(leg_sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(unexpected("leg lookup"))?;
        Ok(sid)
    }

    async fn ringing_call_for_sip(&self, sip_key: &str) -> Result<Option<String>, CallStoreError> {
        let sid = sqlx::query_scalar(
            "SELECT call_sid FROM offers WHERE sip_key = $1 AND state = 'ringing' ORDER BY offered_at DESC LIMIT 1",
        )
        .bind(sip_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("ringing lookup"))?;
        Ok(sid)
    }

    async fn get(&self, call_sid: &str) -> Result<Option<Call>, CallStoreError> {
        let json: Option<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT to_jsonb(c) FROM calls c WHERE c.call_sid = $1")
                .bind(call_sid)
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("get call"))?;
        let record: Option<CallRecord> = decode(json, "call")?;
        Ok(record.map(Call::try_from).transpose()?)
    }

    async fn list(&self, filter: &CallFilter) -> Result<Vec<Call>, CallStoreError> {
        let rows: Vec<Json<serde_json::Value>> = sqlx::query_scalar(
            "SELECT to_jsonb(c) FROM calls c WHERE ($1::text IS NULL OR c.status = $1)
             ORDER BY c.started_at DESC, c.call_sid DESC LIMIT $2",
        )
        .bind(filter.status.map(|s| s.as_str()))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("list calls"))?;
        let calls = rows
            .into_iter()
            .map(|Json(v)| {
                serde_json::from_value::<CallRecord>(v)
                    .context("decoding call")
                    .and_then(Call::try_from)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(calls)
    }

    async fn redact(
        &self,
        call_sid: &str,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Redaction, CallStoreError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("begin"))?;
        let done = sqlx::query(
            "UPDATE calls SET recording_url = NULL, voicemail_recording_url = NULL, voicemail_transcription = NULL,
                 redacted_at = $2, version = version + 1, updated_at = $2
             WHERE call_sid = $1 AND redacted_at IS NULL",
        )
        .bind(call_sid)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("redact"))?;
        if done.rows_affected() == 0 {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM calls WHERE call_sid = $1")
                .bind(call_sid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("redact lookup"))?;
            return Ok(if exists.is_some() {
                Redaction::AlreadyRedacted
            } else {
                Redaction::NotFound
            });
        }
        insert_audit(&mut tx, &audit)
            .await
            .map_err(unexpected("redaction audit"))?;
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(Redaction::Redacted)
    }

    async fn calls_to_redact(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError> {
        let sids = sqlx::query_scalar(
            "SELECT call_sid FROM calls WHERE redacted_at IS NULL AND started_at < $1
               AND (recording_url IS NOT NULL OR voicemail_recording_url IS NOT NULL OR voicemail_transcription IS NOT NULL)
             ORDER BY started_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("retention scan"))?;
        Ok(sids)
    }

    async fn prune_receipts(&self, before: DateTime<Utc>) -> Result<u64, CallStoreError> {
        let done = sqlx::query("DELETE FROM webhook_receipts WHERE received_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(unexpected("prune receipts"))?;
        Ok(done.rows_affected())
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn bind_receipts<'q>(q: PgQuery<'q>, receipts: &[Receipt]) -> PgQuery<'q> {
    let keys: Vec<String> = receipts.iter().map(|r| r.key.clone()).collect();
    let fps: Vec<String> = receipts.iter().map(|r| r.fingerprint.clone()).collect();
    q.bind(keys).bind(fps)
}

fn bind_offers<'q>(q: PgQuery<'q>, offers: &[Offer]) -> PgQuery<'q> {
    q.bind(offers.iter().map(|o| o.attempt).collect::<Vec<i32>>())
        .bind(offers.iter().map(|o| o.agent_id.0).collect::<Vec<Uuid>>())
        .bind(
            offers
                .iter()
                .map(|o| o.sip_uri.clone())
                .collect::<Vec<String>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.sip_key.clone())
                .collect::<Vec<String>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.leg_sid.clone())
                .collect::<Vec<Option<String>>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.state.as_str().to_owned())
                .collect::<Vec<String>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.leg_status.clone())
                .collect::<Vec<Option<String>>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.offered_at)
                .collect::<Vec<DateTime<Utc>>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.answered_at)
                .collect::<Vec<Option<DateTime<Utc>>>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.ended_at)
                .collect::<Vec<Option<DateTime<Utc>>>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.leg_duration)
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(
            offers
                .iter()
                .map(|o| o.talk_seconds)
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(offers.iter().map(|o| o.talk_final).collect::<Vec<bool>>())
}

fn bind_attempts<'q>(q: PgQuery<'q>, attempts: &[AttemptChange]) -> PgQuery<'q> {
    let (mut oa, mut os, mut oo) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ca, mut ce, mut cr) = (Vec::new(), Vec::new(), Vec::new());
    for a in attempts {
        match a {
            AttemptChange::Opened {
                attempt,
                started_at,
                offered,
            } => {
                oa.push(*attempt);
                os.push(*started_at);
                oo.push(*offered);
            }
            AttemptChange::Closed {
                attempt,
                ended_at,
                result,
            } => {
                ca.push(*attempt);
                ce.push(*ended_at);
                cr.push(result.clone());
            }
        }
    }
    q.bind(oa).bind(os).bind(oo).bind(ca).bind(ce).bind(cr)
}

fn bind_effects<'q>(q: PgQuery<'q>, change: &CallChange) -> PgQuery<'q> {
    let e = &change.agents;
    q.bind(e.iter().map(|x| x.agent_id.0).collect::<Vec<Uuid>>())
        .bind(e.iter().map(|x| x.delta.answered).collect::<Vec<i64>>())
        .bind(e.iter().map(|x| x.delta.missed).collect::<Vec<i64>>())
        .bind(e.iter().map(|x| x.delta.talk_seconds).collect::<Vec<i64>>())
        .bind(e.iter().map(|x| x.engage).collect::<Vec<bool>>())
        .bind(e.iter().map(|x| x.release).collect::<Vec<bool>>())
}

// ---------------------------------------------------------------------------------------
// Audit

fn audit_from_row(row: &PgRow) -> Result<AuditEntry, AuditError> {
    let get = |e: sqlx::Error| AuditError::Unexpected(anyhow::Error::new(e).context("audit row"));
    let record = AuditRecord {
        id: row.try_get("id").map_err(get)?,
        seq: row.try_get("seq").map_err(get)?,
        occurred_at: row.try_get("occurred_at").map_err(get)?,
        actor: row.try_get("actor").map_err(get)?,
        action: row.try_get("action").map_err(get)?,
        call_sid: row.try_get("call_sid").map_err(get)?,
        agent_id: row.try_get("agent_id").map_err(get)?,
        data: row.try_get("data").map_err(get)?,
        prev_digest: row.try_get("prev_digest").map_err(get)?,
        digest: row.try_get("digest").map_err(get)?,
    };
    AuditEntry::try_from(record).map_err(AuditError::Unexpected)
}

fn audit_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> AuditError {
    move |e| AuditError::Unexpected(anyhow::Error::new(e).context(context))
}

#[async_trait]
impl AuditLog for PgStore {
    async fn append(&self, events: Vec<NewAuditEvent>) -> Result<(), AuditError> {
        let mut tx = self.pool.begin().await.map_err(audit_error("begin"))?;
        insert_audit(&mut tx, &events)
            .await
            .map_err(audit_error("append audit"))?;
        tx.commit().await.map_err(audit_error("commit"))
    }

    async fn seal_pending(&self) -> Result<u64, AuditError> {
        const BATCH: i64 = 5_000;
        let mut sealed = 0;
        loop {
            let n = self.seal_batch(BATCH).await?;
            sealed += n;
            if n < BATCH as u64 {
                return Ok(sealed);
            }
        }
    }

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AuditError> {
        let sql = "SELECT id, seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest
                   FROM audit_log WHERE ($1::text IS NULL OR call_sid = $1) AND ($2::uuid IS NULL OR agent_id = $2)
                   ORDER BY seq NULLS LAST, id LIMIT $3";
        let rows = sqlx::query(sql)
            .bind(&filter.call_sid)
            .bind(filter.agent_id)
            .bind(i64::from(filter.limit.unwrap_or(10_000)))
            .fetch_all(&self.pool)
            .await
            .map_err(audit_error("list audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn chain_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, AuditError> {
        let sql = "SELECT id, seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest
                   FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";
        let rows = sqlx::query(sql)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(audit_error("chain page"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        let row = sqlx::query("SELECT seq, digest FROM audit_chain_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(audit_error("chain head"))?;
        Ok(match row {
            Some(r) => ChainHead {
                seq: r.try_get("seq").map_err(audit_error("chain head"))?,
                digest: r.try_get("digest").map_err(audit_error("chain head"))?,
            },
            None => ChainHead::genesis(),
        })
    }
}

impl PgStore {
    /// Seals up to `limit` pending entries whose transactions have all finished.
    async fn seal_batch(&self, limit: i64) -> Result<u64, AuditError> {
        let mut tx = self.pool.begin().await.map_err(audit_error("begin seal"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SEALER_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(audit_error("sealer lock"))?;
        let head_row =
            sqlx::query("SELECT seq, digest FROM audit_chain_head WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await
                .map_err(audit_error("chain head"))?;
        let head = ChainHead {
            seq: head_row.try_get("seq").map_err(audit_error("chain head"))?,
            digest: head_row
                .try_get("digest")
                .map_err(audit_error("chain head"))?,
        };
        // Only rows of transactions older than every transaction still running: those have
        // all committed (or aborted, and their rows do not exist). A row whose transaction
        // is still open waits for a later batch; it is never skipped.
        let sql = "SELECT id, seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest
                   FROM audit_log
                   WHERE seq IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())
                   ORDER BY txid, id LIMIT $1";
        let rows = sqlx::query(sql)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(audit_error("pending audit"))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let pending: Vec<(i64, NewAuditEvent)> = rows
            .iter()
            .map(|r| audit_from_row(r).map(|e| (e.id, e.event())))
            .collect::<Result<_, _>>()?;
        let (seals, new_head) = chain::seal(&head, &pending);
        sqlx::query(
            "UPDATE audit_log a SET seq = s.seq, prev_digest = s.prev, digest = s.digest
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) AS s(id, seq, prev, digest)
             WHERE a.id = s.id",
        )
        .bind(seals.iter().map(|s| s.id).collect::<Vec<_>>())
        .bind(seals.iter().map(|s| s.seq).collect::<Vec<_>>())
        .bind(
            seals
                .iter()
                .map(|s| s.prev_digest.clone())
                .collect::<Vec<_>>(),
        )
        .bind(seals.iter().map(|s| s.digest.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(audit_error("sealing"))?;
        sqlx::query("UPDATE audit_chain_head SET seq = $1, digest = $2 WHERE id = 1")
            .bind(new_head.seq)
            .bind(&new_head.digest)
            .execute(&mut *tx)
            .await
            .map_err(audit_error("moving the head"))?;
        tx.commit().await.map_err(audit_error("commit seal"))?;
        Ok(seals.len() as u64)
    }
}
