//! SQLite adapter: the embedded default. WAL mode, foreign keys on, a busy timeout; writes
//! run in `BEGIN IMMEDIATE` transactions (SQLite has one writer at a time, so there is no
//! upgrade deadlock and id order is commit order).
//!
//! Writers of this process queue on an async mutex before they touch the file: SQLite
//! would serialize them anyway, but through its busy handler, which sleeps and retries.
//! Queueing in the process hands the write lock over at once; the busy timeout is left for
//! other processes (the CLI) writing to the same file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{Mutex, MutexGuard, OwnedMutexGuard};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::records::{AgentRecord, AuditRecord, CallRecord, OfferRecord, is_unique_violation};
use crate::sqltime::SqlTime;

/// The embedded SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Stores in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<Mutex<()>>,
}

/// A write transaction, holding this process's turn to write.
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

fn unexpected(context: &'static str) -> impl FnOnce(sqlx::Error) -> anyhow::Error {
    move |e| anyhow::Error::new(e).context(context)
}

fn t(dt: DateTime<Utc>) -> SqlTime {
    SqlTime(dt)
}

fn ot(dt: Option<DateTime<Utc>>) -> Option<SqlTime> {
    dt.map(SqlTime)
}

fn get_time(row: &SqliteRow, col: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    row.try_get::<SqlTime, _>(col).map(|t| t.0)
}

fn get_opt_time(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    row.try_get::<Option<SqlTime>, _>(col)
        .map(|t| t.map(|t| t.0))
}

fn get_uuid(row: &SqliteRow, col: &str) -> Result<Uuid, sqlx::Error> {
    row.try_get::<Hyphenated, _>(col).map(Hyphenated::into_uuid)
}

fn get_opt_uuid(row: &SqliteRow, col: &str) -> Result<Option<Uuid>, sqlx::Error> {
    row.try_get::<Option<Hyphenated>, _>(col)
        .map(|u| u.map(Hyphenated::into_uuid))
}

impl SqliteStore {
    /// Opens (creating the file and its folder on first run) with WAL, foreign keys and a
    /// busy timeout.
    ///
    /// # Errors
    /// When the URL is not a SQLite URL or the folder cannot be created.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        acquire_timeout: StdDuration,
    ) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(StdDuration::from_secs(5))
            .pragma("cache_size", "-1024");
        if let Some(parent) = Path::new(options.get_filename()).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// The pool, for tests and tools.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs pending migrations.
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("running SQLite migrations")
    }

    /// `SELECT 1`.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .context("pinging SQLite")
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Waits for this process's turn to write, then begins an immediate transaction.
    async fn write(&self) -> Result<WriteTx, sqlx::Error> {
        let turn = Arc::clone(&self.writer).lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// This process's turn to write, for single statements outside a transaction.
    async fn turn(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().await
    }
}

async fn insert_audit(
    conn: &mut SqliteConnection,
    events: &[NewAuditEvent],
) -> Result<(), sqlx::Error> {
    for e in events {
        sqlx::query(
            "INSERT INTO audit_log (occurred_at, actor, action, call_sid, agent_id, data) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(t(e.occurred_at))
        .bind(e.actor.to_string())
        .bind(e.action.as_str())
        .bind(&e.call_sid)
        .bind(e.agent_id.map(Uuid::hyphenated))
        .bind(&e.data)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Agents

fn agent_from_row(row: &SqliteRow) -> Result<Agent, AgentStoreError> {
    let read = || -> Result<AgentRecord, sqlx::Error> {
        Ok(AgentRecord {
            id: get_uuid(row, "id")?,
            name: row.try_get("name")?,
            sip_uri: row.try_get("sip_uri")?,
            presence: row.try_get("presence")?,
            last_heartbeat_at: get_opt_time(row, "last_heartbeat_at")?,
            current_call_sid: row.try_get("current_call_sid")?,
            idle_since: get_time(row, "idle_since")?,
            calls_answered: row.try_get("calls_answered")?,
            calls_missed: row.try_get("calls_missed")?,
            total_talk_seconds: row.try_get("total_talk_seconds")?,
            created_at: get_time(row, "created_at")?,
            updated_at: get_time(row, "updated_at")?,
        })
    };
    let record = read().map_err(unexpected("agent row"))?;
    Agent::try_from(record).map_err(AgentStoreError::Unexpected)
}

fn agent_write_error(e: sqlx::Error) -> AgentStoreError {
    if is_unique_violation(&e, "sip_key") {
        AgentStoreError::DuplicateSipUri
    } else {
        AgentStoreError::Unexpected(anyhow::Error::new(e).context("writing an agent"))
    }
}

const LIST_ALL: &str = concat!(
    "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, ",
    "calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents ",
    "WHERE ?1 IS NOT NULL ORDER BY created_at, id"
);
const LIST_AVAILABLE: &str = concat!(
    "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, ",
    "calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents ",
    "WHERE presence = 'available' AND current_call_sid IS NULL AND last_heartbeat_at >= ?1 ORDER BY created_at, id"
);
const LIST_BUSY: &str = concat!(
    "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, ",
    "calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents ",
    "WHERE current_call_sid IS NOT NULL OR (presence = 'busy' AND last_heartbeat_at >= ?1) ORDER BY created_at, id"
);
const LIST_OFFLINE: &str = concat!(
    "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, ",
    "calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents ",
    "WHERE current_call_sid IS NULL AND (presence = 'offline' OR last_heartbeat_at IS NULL OR last_heartbeat_at < ?1) ",
    "ORDER BY created_at, id"
);

#[async_trait]
impl AgentStore for SqliteStore {
    async fn insert(
        &self,
        agent: &Agent,
        token_hash: &str,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(), AgentStoreError> {
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        sqlx::query(
            "INSERT INTO agents (id, name, sip_uri, sip_key, presence, last_heartbeat_at, current_call_sid, idle_since,
                 heartbeat_token_hash, calls_answered, calls_missed, total_talk_seconds, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(agent.id.0.hyphenated())
        .bind(agent.name.as_str())
        .bind(agent.sip_uri.as_str())
        .bind(agent.sip_uri.key())
        .bind(agent.presence.as_str())
        .bind(ot(agent.last_heartbeat_at))
        .bind(&agent.current_call_sid)
        .bind(t(agent.idle_since))
        .bind(token_hash)
        .bind(agent.metrics.calls_answered)
        .bind(agent.metrics.calls_missed)
        .bind(agent.metrics.total_talk_seconds)
        .bind(t(agent.created_at))
        .bind(t(agent.updated_at))
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
        let sql = concat!(
            "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, ",
            "calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents WHERE id = ?"
        );
        let row = sqlx::query(sql)
            .bind(id.0.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(unexpected("get agent"))?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn agent_for_token(&self, token_hash: &str) -> Result<Option<AgentId>, AgentStoreError> {
        let id: Option<Hyphenated> =
            sqlx::query_scalar("SELECT id FROM agents WHERE heartbeat_token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("token lookup"))?;
        Ok(id.map(|u| AgentId(u.into_uuid())))
    }

    async fn find_by_sip_key(&self, key: &str) -> Result<Option<Agent>, AgentStoreError> {
        let sql = concat!(
            "SELECT id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since, ",
            "calls_answered, calls_missed, total_talk_seconds, created_at, updated_at FROM agents WHERE sip_key = ?"
        );
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
            .bind(t(liveness.cutoff))
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
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        let sql = "UPDATE agents SET name = COALESCE(?2, name), sip_uri = COALESCE(?3, sip_uri),
                       sip_key = COALESCE(?4, sip_key), presence = COALESCE(?5, presence), updated_at = ?6
                   WHERE id = ?1
                   RETURNING id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since,
                       calls_answered, calls_missed, total_talk_seconds, created_at, updated_at";
        let row = sqlx::query(sql)
            .bind(id.0.hyphenated())
            .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
            .bind(patch.sip_uri.as_ref().map(|u| u.as_str().to_owned()))
            .bind(patch.sip_uri.as_ref().map(|u| u.key().to_owned()))
            .bind(patch.presence.map(Presence::as_str))
            .bind(t(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(agent_write_error)?
            .ok_or(AgentStoreError::NotFound)?;
        let agent = agent_from_row(&row)?;
        insert_audit(&mut tx, &audit)
            .await
            .map_err(unexpected("agent audit"))?;
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(agent)
    }

    async fn heartbeat(
        &self,
        id: AgentId,
        presence: Option<Presence>,
        now: DateTime<Utc>,
        on_change: PresenceAudit<'_>,
    ) -> Result<Agent, AgentStoreError> {
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT presence FROM agents WHERE id = ?")
                .bind(id.0.hyphenated())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("heartbeat"))?;
        let previous: Presence = previous
            .ok_or(AgentStoreError::NotFound)?
            .parse()
            .map_err(|e: String| AgentStoreError::Unexpected(anyhow!(e)))?;
        let sql = "UPDATE agents SET last_heartbeat_at = ?2, updated_at = ?2, presence = COALESCE(?3, presence)
                   WHERE id = ?1
                   RETURNING id, name, sip_uri, presence, last_heartbeat_at, current_call_sid, idle_since,
                       calls_answered, calls_missed, total_talk_seconds, created_at, updated_at";
        let row = sqlx::query(sql)
            .bind(id.0.hyphenated())
            .bind(t(now))
            .bind(presence.map(Presence::as_str))
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("heartbeat"))?;
        let agent = agent_from_row(&row)?;
        if previous != agent.presence {
            insert_audit(&mut tx, &on_change(previous, agent.presence))
                .await
                .map_err(unexpected("heartbeat audit"))?;
        }
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(agent)
    }

    async fn delete(&self, id: AgentId, audit: Vec<NewAuditEvent>) -> Result<(), AgentStoreError> {
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        let done = sqlx::query("DELETE FROM agents WHERE id = ?")
            .bind(id.0.hyphenated())
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
        let rows = sqlx::query(
            "SELECT id, sip_uri FROM agents
             WHERE presence = 'available' AND current_call_sid IS NULL AND last_heartbeat_at >= ?
             ORDER BY idle_since, id LIMIT ?",
        )
        .bind(t(liveness.cutoff))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("available agents"))?;
        rows.iter()
            .map(|r| {
                let id = get_uuid(r, "id").map_err(unexpected("candidate"))?;
                let uri: String = r.try_get("sip_uri").map_err(unexpected("candidate"))?;
                Ok(Candidate {
                    id: AgentId(id),
                    sip_uri: SipUri::parse(&uri).context("stored SIP URI")?,
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
        let _turn = self.turn().await;
        let done = sqlx::query(
            "UPDATE agents SET current_call_sid = ? WHERE id = ? AND current_call_sid IS NULL",
        )
        .bind(call_sid)
        .bind(id.0.hyphenated())
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
        let _turn = self.turn().await;
        let done = sqlx::query("UPDATE agents SET current_call_sid = NULL, idle_since = ? WHERE id = ? AND current_call_sid = ?")
            .bind(t(now))
            .bind(id.0.hyphenated())
            .bind(call_sid)
            .execute(&self.pool)
            .await
            .map_err(unexpected("release"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_metrics(&self, id: AgentId, d: MetricsDelta) -> Result<(), AgentStoreError> {
        let _turn = self.turn().await;
        let done = sqlx::query(
            "UPDATE agents SET calls_answered = calls_answered + ?, calls_missed = calls_missed + ?,
                 total_talk_seconds = total_talk_seconds + ? WHERE id = ?",
        )
        .bind(d.answered)
        .bind(d.missed)
        .bind(d.talk_seconds)
        .bind(id.0.hyphenated())
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

fn call_from_row(row: &SqliteRow) -> anyhow::Result<Call> {
    let read = || -> Result<CallRecord, sqlx::Error> {
        Ok(CallRecord {
            call_sid: row.try_get("call_sid")?,
            from_number: row.try_get("from_number")?,
            to_number: row.try_get("to_number")?,
            account_sid: row.try_get("account_sid")?,
            connection_id: row.try_get("connection_id")?,
            status: row.try_get("status")?,
            outcome: row.try_get("outcome")?,
            attempts: row.try_get("attempts")?,
            round_open: row.try_get("round_open")?,
            answered_by: get_opt_uuid(row, "answered_by")?,
            answered_leg_sid: row.try_get("answered_leg_sid")?,
            started_at: get_time(row, "started_at")?,
            answered_at: get_opt_time(row, "answered_at")?,
            ended_at: get_opt_time(row, "ended_at")?,
            talk_seconds: row.try_get("talk_seconds")?,
            recording_url: row.try_get("recording_url")?,
            recording_sid: row.try_get("recording_sid")?,
            voicemail_started_at: get_opt_time(row, "voicemail_started_at")?,
            voicemail_recording_url: row.try_get("voicemail_recording_url")?,
            voicemail_recording_sid: row.try_get("voicemail_recording_sid")?,
            voicemail_duration_seconds: row.try_get("voicemail_duration_seconds")?,
            voicemail_transcription: row.try_get("voicemail_transcription")?,
            recording_notice_played: row.try_get("recording_notice_played")?,
            redacted_at: get_opt_time(row, "redacted_at")?,
            version: row.try_get("version")?,
            updated_at: get_time(row, "updated_at")?,
        })
    };
    Call::try_from(read().context("call row")?)
}

fn offer_from_row(row: &SqliteRow) -> anyhow::Result<Offer> {
    let read = || -> Result<OfferRecord, sqlx::Error> {
        Ok(OfferRecord {
            call_sid: row.try_get("call_sid")?,
            attempt: row.try_get("attempt")?,
            agent_id: get_uuid(row, "agent_id")?,
            sip_uri: row.try_get("sip_uri")?,
            sip_key: row.try_get("sip_key")?,
            leg_sid: row.try_get("leg_sid")?,
            state: row.try_get("state")?,
            leg_status: row.try_get("leg_status")?,
            offered_at: get_time(row, "offered_at")?,
            answered_at: get_opt_time(row, "answered_at")?,
            ended_at: get_opt_time(row, "ended_at")?,
            leg_duration: row.try_get("leg_duration")?,
            talk_seconds: row.try_get("talk_seconds")?,
            talk_final: row.try_get("talk_final")?,
        })
    };
    Offer::try_from(read().context("offer row")?)
}

/// Binds the call's columns in the order of `INSERT INTO calls` below.
macro_rules! bind_call {
    ($q:expr, $c:expr) => {
        $q.bind(&$c.call_sid)
            .bind(&$c.from)
            .bind(&$c.to)
            .bind(&$c.account_sid)
            .bind(&$c.connection_id)
            .bind($c.status.as_str())
            .bind($c.outcome.map(|o| o.as_str()))
            .bind($c.attempts)
            .bind($c.round_open)
            .bind($c.answered_by.map(|a| a.0.hyphenated()))
            .bind(&$c.answered_leg_sid)
            .bind(t($c.started_at))
            .bind(ot($c.answered_at))
            .bind(ot($c.ended_at))
            .bind($c.talk_seconds)
            .bind(&$c.recording_url)
            .bind(&$c.recording_sid)
            .bind(ot($c.voicemail_started_at))
            .bind(&$c.voicemail_recording_url)
            .bind(&$c.voicemail_recording_sid)
            .bind($c.voicemail_duration_seconds)
            .bind(&$c.voicemail_transcription)
            .bind($c.recording_notice_played)
            .bind(ot($c.redacted_at))
            .bind($c.version)
            .bind(t($c.updated_at))
    };
}

const INSERT_CALL: &str = "INSERT INTO calls (call_sid, from_number, to_number, account_sid, connection_id, status, outcome,
        attempts, round_open, answered_by, answered_leg_sid, started_at, answered_at, ended_at, talk_seconds,
        recording_url, recording_sid, voicemail_started_at, voicemail_recording_url, voicemail_recording_sid,
        voicemail_duration_seconds, voicemail_transcription, recording_notice_played, redacted_at, version, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
        ?23, ?24, ?25, ?26)
    ON CONFLICT (call_sid) DO NOTHING";

const UPDATE_CALL: &str = "UPDATE calls SET from_number = ?2, to_number = ?3, account_sid = ?4, connection_id = ?5,
        status = ?6, outcome = ?7, attempts = ?8, round_open = ?9, answered_by = ?10, answered_leg_sid = ?11,
        started_at = ?12, answered_at = ?13, ended_at = ?14, talk_seconds = ?15, recording_url = ?16,
        recording_sid = ?17, voicemail_started_at = ?18, voicemail_recording_url = ?19,
        voicemail_recording_sid = ?20, voicemail_duration_seconds = ?21, voicemail_transcription = ?22,
        recording_notice_played = ?23, redacted_at = ?24, version = ?25, updated_at = ?26
    WHERE call_sid = ?1 AND version = ?27";

async fn write_offer(conn: &mut SqliteConnection, o: &Offer) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO offers (call_sid, attempt, agent_id, sip_uri, sip_key, leg_sid, state, leg_status, offered_at,
             answered_at, ended_at, leg_duration, talk_seconds, talk_final)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (call_sid, attempt, agent_id) DO UPDATE SET
             leg_sid = excluded.leg_sid, state = excluded.state, leg_status = excluded.leg_status,
             answered_at = excluded.answered_at, ended_at = excluded.ended_at,
             leg_duration = excluded.leg_duration, talk_seconds = excluded.talk_seconds,
             talk_final = excluded.talk_final",
    )
    .bind(&o.call_sid)
    .bind(o.attempt)
    .bind(o.agent_id.0.hyphenated())
    .bind(&o.sip_uri)
    .bind(&o.sip_key)
    .bind(&o.leg_sid)
    .bind(o.state.as_str())
    .bind(&o.leg_status)
    .bind(t(o.offered_at))
    .bind(ot(o.answered_at))
    .bind(ot(o.ended_at))
    .bind(o.leg_duration)
    .bind(o.talk_seconds)
    .bind(o.talk_final)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

async fn write_attempt(
    conn: &mut SqliteConnection,
    call_sid: &str,
    a: &AttemptChange,
) -> Result<(), sqlx::Error> {
    match a {
        AttemptChange::Opened {
            attempt,
            started_at,
            offered,
        } => {
            sqlx::query(
                "INSERT INTO dial_attempts (call_sid, attempt, started_at, offered) VALUES (?, ?, ?, ?)
                 ON CONFLICT (call_sid, attempt) DO NOTHING",
            )
            .bind(call_sid)
            .bind(attempt)
            .bind(t(*started_at))
            .bind(offered)
            .execute(&mut *conn)
            .await?;
        }
        AttemptChange::Closed {
            attempt,
            ended_at,
            result,
        } => {
            sqlx::query(
                "UPDATE dial_attempts SET ended_at = ?, result = ? WHERE call_sid = ? AND attempt = ? AND ended_at IS NULL",
            )
            .bind(t(*ended_at))
            .bind(result)
            .bind(call_sid)
            .bind(attempt)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn write_effects(
    conn: &mut SqliteConnection,
    change: &CallChange,
) -> Result<(), sqlx::Error> {
    let sid = &change.call.call_sid;
    for e in &change.agents {
        sqlx::query(
            "UPDATE agents SET
                 calls_answered = calls_answered + ?2, calls_missed = calls_missed + ?3,
                 total_talk_seconds = total_talk_seconds + ?4,
                 idle_since = CASE WHEN ?6 AND current_call_sid = ?7 THEN ?8 ELSE idle_since END,
                 current_call_sid = CASE
                     WHEN ?5 AND current_call_sid IS NULL THEN ?7
                     WHEN ?6 AND current_call_sid = ?7 THEN NULL
                     ELSE current_call_sid END
             WHERE id = ?1",
        )
        .bind(e.agent_id.0.hyphenated())
        .bind(e.delta.answered)
        .bind(e.delta.missed)
        .bind(e.delta.talk_seconds)
        .bind(e.engage)
        .bind(e.release)
        .bind(sid)
        .bind(t(change.call.updated_at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The writes of [`CallStore::apply`] inside the transaction; `false` when the call row was
/// not at the expected version.
async fn apply_in(conn: &mut SqliteConnection, change: &CallChange) -> Result<bool, sqlx::Error> {
    let c = &change.call;
    let written = if change.expected_version == 0 {
        bind_call!(sqlx::query(INSERT_CALL), c)
            .execute(&mut *conn)
            .await?
    } else {
        bind_call!(sqlx::query(UPDATE_CALL), c)
            .bind(change.expected_version)
            .execute(&mut *conn)
            .await?
    };
    if written.rows_affected() != 1 {
        return Ok(false);
    }
    for r in &change.receipts {
        sqlx::query(
            "INSERT INTO webhook_receipts (key, fingerprint, received_at) VALUES (?, ?, ?)",
        )
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(t(c.updated_at))
        .execute(&mut *conn)
        .await?;
    }
    for o in &change.offers {
        write_offer(conn, o).await?;
    }
    for a in &change.attempts {
        write_attempt(conn, &c.call_sid, a).await?;
    }
    write_effects(conn, change).await?;
    insert_audit(conn, &change.audit).await?;
    Ok(true)
}

#[async_trait]
impl CallStore for SqliteStore {
    async fn load(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> Result<Snapshot, CallStoreError> {
        let mut conn = self.pool.acquire().await.map_err(unexpected("acquire"))?;
        let call_sql = concat!(
            "SELECT call_sid, from_number, to_number, account_sid, connection_id, status, outcome, ",
            "attempts, round_open, answered_by, answered_leg_sid, started_at, answered_at, ended_at, talk_seconds, ",
            "recording_url, recording_sid, voicemail_started_at, voicemail_recording_url, voicemail_recording_sid, ",
            "voicemail_duration_seconds, voicemail_transcription, recording_notice_played, redacted_at, version, updated_at ",
            "FROM calls WHERE call_sid = ?"
        );
        let row = sqlx::query(call_sql)
            .bind(call_sid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unexpected("load call"))?;
        let state = match row {
            Some(row) => {
                let offers = sqlx::query("SELECT * FROM offers WHERE call_sid = ? ORDER BY attempt, offered_at, agent_id")
                    .bind(call_sid)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(unexpected("load offers"))?;
                Some(CallState {
                    call: call_from_row(&row)?,
                    offers: offers
                        .iter()
                        .map(offer_from_row)
                        .collect::<anyhow::Result<_>>()?,
                })
            }
            None => None,
        };
        let mut seen = Vec::new();
        for key in receipt_keys {
            let fp: Option<String> =
                sqlx::query_scalar("SELECT fingerprint FROM webhook_receipts WHERE key = ?")
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(unexpected("load receipts"))?;
            if let Some(fingerprint) = fp {
                seen.push(Receipt {
                    key: key.clone(),
                    fingerprint,
                });
            }
        }
        Ok(Snapshot { state, seen })
    }

    async fn apply(&self, change: &CallChange) -> Result<Applied, CallStoreError> {
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        match apply_in(&mut tx, change).await {
            Ok(true) => {
                tx.commit().await.map_err(unexpected("commit"))?;
                Ok(Applied::Yes)
            }
            Ok(false) => Ok(Applied::Conflict),
            Err(e) if is_unique_violation(&e, "webhook_receipts") => Ok(Applied::Conflict),
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
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        for r in receipts {
            let result = sqlx::query(
                "INSERT INTO webhook_receipts (key, fingerprint, received_at) VALUES (?, ?, ?)",
            )
            .bind(&r.key)
            .bind(&r.fingerprint)
            .bind(t(now))
            .execute(&mut *tx)
            .await;
            match result {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e, "webhook_receipts") => {
                    return Ok(Applied::Conflict);
                }
                Err(e) => return Err(anyhow::Error::new(e).context("recording receipts").into()),
            }
        }
        tx.commit().await.map_err(unexpected("commit"))?;
        Ok(Applied::Yes)
    }

    async fn call_for_leg(&self, leg_sid: &str) -> Result<Option<String>, CallStoreError> {
        Ok(
            sqlx::query_scalar("SELECT call_sid FROM offers WHERE leg_sid = ? LIMIT 1")
                .bind(leg_sid)
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("leg lookup"))?,
        )
    }

    async fn ringing_call_for_sip(&self, sip_key: &str) -> Result<Option<String>, CallStoreError> {
        Ok(sqlx::query_scalar(
            "SELECT call_sid FROM offers WHERE sip_key = ? AND state = 'ringing' ORDER BY offered_at DESC LIMIT 1",
        )
        .bind(sip_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("ringing lookup"))?)
    }

    async fn get(&self, call_sid: &str) -> Result<Option<Call>, CallStoreError> {
        let sql = concat!(
            "SELECT call_sid, from_number, to_number, account_sid, connection_id, status, outcome, ",
            "attempts, round_open, answered_by, answered_leg_sid, started_at, answered_at, ended_at, talk_seconds, ",
            "recording_url, recording_sid, voicemail_started_at, voicemail_recording_url, voicemail_recording_sid, ",
            "voicemail_duration_seconds, voicemail_transcription, recording_notice_played, redacted_at, version, updated_at ",
            "FROM calls WHERE call_sid = ?"
        );
        let row = sqlx::query(sql)
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(unexpected("get call"))?;
        Ok(row.as_ref().map(call_from_row).transpose()?)
    }

    async fn list(&self, filter: &CallFilter) -> Result<Vec<Call>, CallStoreError> {
        let sql = concat!(
            "SELECT call_sid, from_number, to_number, account_sid, connection_id, status, outcome, ",
            "attempts, round_open, answered_by, answered_leg_sid, started_at, answered_at, ended_at, talk_seconds, ",
            "recording_url, recording_sid, voicemail_started_at, voicemail_recording_url, voicemail_recording_sid, ",
            "voicemail_duration_seconds, voicemail_transcription, recording_notice_played, redacted_at, version, updated_at ",
            "FROM calls WHERE (?1 IS NULL OR status = ?1) ORDER BY started_at DESC, call_sid DESC LIMIT ?2"
        );
        let rows = sqlx::query(sql)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("list calls"))?;
        Ok(rows
            .iter()
            .map(call_from_row)
            .collect::<anyhow::Result<_>>()?)
    }

    async fn redact(
        &self,
        call_sid: &str,
        now: DateTime<Utc>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<Redaction, CallStoreError> {
        let mut tx = self.write().await.map_err(unexpected("begin"))?;
        let done = sqlx::query(
            "UPDATE calls SET recording_url = NULL, voicemail_recording_url = NULL, voicemail_transcription = NULL,
                 redacted_at = ?2, version = version + 1, updated_at = ?2
             WHERE call_sid = ?1 AND redacted_at IS NULL",
        )
        .bind(call_sid)
        .bind(t(now))
        .execute(&mut *tx)
        .await
        .map_err(unexpected("redact"))?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM calls WHERE call_sid = ?")
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
        Ok(sqlx::query_scalar(
            "SELECT call_sid FROM calls WHERE redacted_at IS NULL AND started_at < ?
               AND (recording_url IS NOT NULL OR voicemail_recording_url IS NOT NULL OR voicemail_transcription IS NOT NULL)
             ORDER BY started_at LIMIT ?",
        )
        .bind(t(before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("retention scan"))?)
    }

    async fn prune_receipts(&self, before: DateTime<Utc>) -> Result<u64, CallStoreError> {
        let _turn = self.turn().await;
        let done = sqlx::query("DELETE FROM webhook_receipts WHERE received_at < ?")
            .bind(t(before))
            .execute(&self.pool)
            .await
            .map_err(unexpected("prune receipts"))?;
        Ok(done.rows_affected())
    }
}

// ---------------------------------------------------------------------------------------
// Audit

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry, AuditError> {
    let read = || -> Result<AuditRecord, sqlx::Error> {
        Ok(AuditRecord {
            id: row.try_get("id")?,
            seq: row.try_get("seq")?,
            occurred_at: get_time(row, "occurred_at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            call_sid: row.try_get("call_sid")?,
            agent_id: get_opt_uuid(row, "agent_id")?,
            data: row.try_get("data")?,
            prev_digest: row.try_get("prev_digest")?,
            digest: row.try_get("digest")?,
        })
    };
    let record =
        read().map_err(|e| AuditError::Unexpected(anyhow::Error::new(e).context("audit row")))?;
    AuditEntry::try_from(record).map_err(AuditError::Unexpected)
}

fn audit_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> AuditError {
    move |e| AuditError::Unexpected(anyhow::Error::new(e).context(context))
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, events: Vec<NewAuditEvent>) -> Result<(), AuditError> {
        let mut tx = self.write().await.map_err(audit_error("begin"))?;
        insert_audit(&mut tx, &events)
            .await
            .map_err(audit_error("append audit"))?;
        tx.commit().await.map_err(audit_error("commit"))
    }

    async fn seal_pending(&self) -> Result<u64, AuditError> {
        let mut tx = self.write().await.map_err(audit_error("begin seal"))?;
        let head_row = sqlx::query("SELECT seq, digest FROM audit_chain_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(audit_error("chain head"))?;
        let head = ChainHead {
            seq: head_row.try_get("seq").map_err(audit_error("chain head"))?,
            digest: head_row
                .try_get("digest")
                .map_err(audit_error("chain head"))?,
        };
        let rows = sqlx::query(
            "SELECT id, seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest
             FROM audit_log WHERE seq IS NULL ORDER BY id",
        )
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
        for s in &seals {
            sqlx::query("UPDATE audit_log SET seq = ?, prev_digest = ?, digest = ? WHERE id = ?")
                .bind(s.seq)
                .bind(&s.prev_digest)
                .bind(&s.digest)
                .bind(s.id)
                .execute(&mut *tx)
                .await
                .map_err(audit_error("sealing"))?;
        }
        sqlx::query("UPDATE audit_chain_head SET seq = ?, digest = ? WHERE id = 1")
            .bind(new_head.seq)
            .bind(&new_head.digest)
            .execute(&mut *tx)
            .await
            .map_err(audit_error("moving the head"))?;
        tx.commit().await.map_err(audit_error("commit seal"))?;
        Ok(seals.len() as u64)
    }

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AuditError> {
        let rows = sqlx::query(
            "SELECT id, seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest
             FROM audit_log WHERE (?1 IS NULL OR call_sid = ?1) AND (?2 IS NULL OR agent_id = ?2)
             ORDER BY seq IS NULL, seq, id LIMIT ?3",
        )
        .bind(&filter.call_sid)
        .bind(filter.agent_id.map(Uuid::hyphenated))
        .bind(i64::from(filter.limit.unwrap_or(10_000)))
        .fetch_all(&self.pool)
        .await
        .map_err(audit_error("list audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn chain_page(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, AuditError> {
        let rows = sqlx::query(
            "SELECT id, seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest
             FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
        )
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
