//! What both backends share: the write transaction, error mapping, and the statements whose
//! text is the same on PostgreSQL and SQLite (both read `$1`-style parameters through sqlx).

use std::sync::LazyLock;

use agents::AgentStoreError;
use sqlx::{Database, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::schema::{AgentRow, CallRow, Table, audit_columns};

/// A write transaction. On SQLite it also holds this process's turn to write (writers queue
/// in the process instead of spinning in SQLite's busy handler); on PostgreSQL it is a plain
/// transaction.
pub(crate) struct WriteTx<DB: Database> {
    pub tx: Transaction<'static, DB>,
    pub _turn: Option<OwnedMutexGuard<()>>,
}

impl<DB: Database> WriteTx<DB> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl<DB: Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// What every backend has the same way: pool access, migrations, ping, close, committing a
/// write with its audit events, moving the chain head, and the ports (their shared
/// parts in [`crate::agents`], [`crate::calls`] and [`crate::audit`]). `$migrator` is the
/// backend's embedded migrations; `$lock` as in [`crate::agents`].
macro_rules! backend {
    ($store:ty, $db:ty, $pool:ty, $migrator:ident, $lock:literal) => {
        impl $store {
            /// The pool, for tests and tools.
            #[must_use]
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Runs pending migrations.
            ///
            /// # Errors
            /// When a migration fails or the database is unreachable.
            pub async fn migrate(&self) -> anyhow::Result<()> {
                anyhow::Context::context($migrator.run(&self.pool).await, "running migrations")
            }

            /// `SELECT 1`.
            ///
            /// # Errors
            /// When the database does not answer.
            pub async fn ping(&self) -> anyhow::Result<()> {
                let done = sqlx::query("SELECT 1").execute(&self.pool).await;
                anyhow::Context::context(done.map(|_| ()), "pinging the database")
            }

            /// The secret of server-written URLs kept in the database: the one stored, or
            /// `candidate` when none was (the first instance to ask stores it; every other
            /// gets that one).
            ///
            /// # Errors
            /// When the database refuses.
            pub async fn url_secret(&self, candidate: &str) -> anyhow::Result<String> {
                use crate::common::unexpected;
                sqlx::query::<$db>(
                    "INSERT INTO url_secret (id, secret, created_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(candidate)
                .bind(crate::types::SqlTime(chrono::Utc::now()))
                .execute(&self.pool)
                .await
                .map_err(unexpected("storing the URL secret"))?;
                sqlx::query_scalar::<$db, String>("SELECT secret FROM url_secret WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(unexpected("reading the URL secret"))
            }

            /// The newest audit entry's id (0 when there is none).
            ///
            /// # Errors
            /// When the database refuses.
            pub async fn change_mark(&self) -> anyhow::Result<i64> {
                sqlx::query_scalar::<$db, i64>("SELECT COALESCE(MAX(id), 0) FROM audit_log")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(crate::common::unexpected("reading the change mark"))
            }

            /// Closes the pool, waiting for connections in use to be returned.
            pub async fn close(&self) {
                self.pool.close().await;
            }

            /// Writes `audit` in `tx`, then commits.
            async fn commit_audited(
                mut tx: crate::common::WriteTx<$db>,
                audit: &[::audit::NewAuditEvent],
            ) -> anyhow::Result<()> {
                use crate::common::unexpected;
                Self::insert_audit(&mut tx, audit)
                    .await
                    .map_err(unexpected("audit"))?;
                tx.commit().await.map_err(unexpected("commit"))
            }

            /// Reads the chain head for the sealer (locked on PostgreSQL).
            async fn chain_head_for_sealing(
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> anyhow::Result<::audit::ChainHead> {
                static SQL: std::sync::LazyLock<String> =
                    std::sync::LazyLock::new(|| format!("{}{}", crate::audit::CHAIN_HEAD, $lock));
                let row: Option<(i64, String)> = sqlx::query_as::<$db, _>(SQL.as_str())
                    .fetch_optional(conn)
                    .await
                    .map_err(crate::common::unexpected("chain head"))?;
                Ok(crate::audit::head(row))
            }

            /// Moves the chain head (in the sealer's transaction).
            async fn set_chain_head(
                conn: &mut <$db as sqlx::Database>::Connection,
                head: &::audit::ChainHead,
            ) -> anyhow::Result<()> {
                sqlx::query::<$db>(crate::audit::SET_CHAIN_HEAD)
                    .bind(head.seq)
                    .bind(&head.digest)
                    .execute(conn)
                    .await
                    .map_err(crate::common::unexpected("moving the chain head"))?;
                Ok(())
            }
        }

        crate::agents::agent_store!($store, $db, $lock);
        crate::calls::call_store!($store, $db);
        crate::audit::audit_log!($store, $db);
        crate::reports::report_store!($store, $db);
        crate::voicemails::voicemail_store!($store, $db, $lock);
        crate::queue::queue_store!($store, $db);
    };
}

pub(crate) use backend;

/// Wraps a database error with what was being done.
pub(crate) fn unexpected(context: &'static str) -> impl FnOnce(sqlx::Error) -> anyhow::Error {
    move |e| anyhow::Error::new(e).context(context)
}

/// Whether `e` is a unique violation of the constraint or column named by `hint`.
pub(crate) fn is_unique_violation(e: &sqlx::Error, hint: &str) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    db.is_unique_violation()
        && (db.constraint().is_none_or(|c| c.contains(hint)) || db.message().contains(hint))
}

/// `agents::Agent::reservable` in SQL, once for both backends: the agents row `g` (a
/// prefix such as `g.`, or empty) may be reserved for the call `call` at `now` (both
/// parameter names, e.g. `$1`).
pub(crate) fn reservable_sql(g: &str, call: &str, now: &str) -> String {
    format!(
        "({g}presence = 'available' AND {g}paused_reason IS NULL \
         AND {g}current_call_sid IS NULL AND ({g}offer_call_sid IS NULL OR {g}offer_call_sid = {call}) \
         AND {g}idle_since <= {now} AND ({g}no_answer_until IS NULL OR {g}no_answer_until <= {now}))"
    )
}

/// The key of a one-agent lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AgentKey<'a> {
    /// By id.
    Id(crate::types::SqlId),
    /// By the SIP URI's key.
    SipKey(&'a str),
}

impl AgentKey<'_> {
    /// The lookup's statement ([`sql::AGENT_BY_ID`] or [`sql::AGENT_BY_SIP_KEY`]).
    pub(crate) fn sql(&self) -> &'static str {
        match self {
            Self::Id(_) => *sql::AGENT_BY_ID,
            Self::SipKey(_) => *sql::AGENT_BY_SIP_KEY,
        }
    }
}

/// One row of [`sql::AVAILABLE_NOW`]: id, SIP URI, misses in a row, idle since.
pub(crate) type FreeAgentRow = (crate::types::SqlId, String, i32, crate::types::SqlTime);

/// The candidates of [`sql::AVAILABLE_NOW`]'s rows, in their order.
pub(crate) fn candidates(
    rows: impl IntoIterator<Item = FreeAgentRow>,
) -> anyhow::Result<Vec<::agents::Candidate>> {
    rows.into_iter()
        .map(|(id, uri, missed_in_a_row, _)| {
            Ok(::agents::Candidate {
                missed_in_a_row,
                id: ::agents::AgentId(id.0),
                sip_uri: anyhow::Context::context(::agents::SipUri::parse(&uri), "stored SIP URI")?,
            })
        })
        .collect()
}

/// Whether an agent effect's `release` applies to the agents row `g` for the call `call`:
/// it holds the call, or holds no call but the call's open offer (an answer learned after
/// the talk ended; see `agents::AgentEffect::release`).
pub(crate) fn releases_sql(g: &str, call: &str) -> String {
    format!(
        "({g}current_call_sid = {call} OR ({g}current_call_sid IS NULL AND {g}offer_call_sid = {call}))"
    )
}

/// Waits at most `wait` for the result of a change handed to a group-commit writer (`writer`
/// names it in the errors): a request must not wait on a stalled writer for ever; a change
/// not yet taken when its requester gave up is skipped by the writer.
pub(crate) async fn batch_result(
    result: tokio::sync::oneshot::Receiver<anyhow::Result<call_center::Applied>>,
    wait: std::time::Duration,
    writer: &str,
) -> anyhow::Result<call_center::Applied> {
    match tokio::time::timeout(wait, result).await {
        Ok(Ok(applied)) => applied,
        Ok(Err(_)) => Err(anyhow::anyhow!("{writer} dropped a call change")),
        Err(_) => Err(anyhow::anyhow!(
            "waited {} ms for {writer}",
            wait.as_millis()
        )),
    }
}

/// A serialization failure (SQLSTATE 40001), which PostgreSQL's apply statement also raises
/// when an agent it reserves is no longer reservable: the change is decided again.
pub(crate) fn is_serialization_failure(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|c| c == "40001")
}

/// An agent write's error: a taken SIP URI, or anything else.
pub(crate) fn agent_write_error(e: sqlx::Error) -> AgentStoreError {
    if is_unique_violation(&e, "sip_key") {
        AgentStoreError::DuplicateSipUri
    } else {
        AgentStoreError::Unexpected(anyhow::Error::new(e).context("writing an agent"))
    }
}

/// Statements with the same text on both backends, built once from the table definitions.
pub(crate) mod sql {
    use super::{AgentRow, CallRow, LazyLock, Table, audit_columns};

    macro_rules! statement {
        ($(#[$doc:meta])* $name:ident = $build:expr) => {
            $(#[$doc])*
            pub static $name: LazyLock<&'static str> = LazyLock::new(|| String::leak($build));
        };
    }

    statement!(
        /// One agent by id.
        AGENT_BY_ID = format!("{}WHERE id = $1", AgentRow::select())
    );
    statement!(
        /// The agents whose ids are in the array `$1` (PostgreSQL).
        AGENTS_BY_IDS = format!("{}WHERE id = ANY($1)", AgentRow::select())
    );
    statement!(
        /// One agent by SIP key.
        AGENT_BY_SIP_KEY = format!("{}WHERE sip_key = $1", AgentRow::select())
    );
    statement!(
        /// Inserts an agent (its columns, then the token hash).
        AGENT_INSERT = format!(
            "INSERT INTO agents ({}, heartbeat_token_hash) VALUES ({})",
            AgentRow::columns(None),
            crate::schema::params(1, AgentRow::COLUMNS.len() + 1)
        )
    );
    statement!(
        /// An admin's change; `$2..$5` may be null to keep a field; with a presence `$5`,
        /// the pause becomes `$7` (null: none).
        AGENT_UPDATE = format!(
            "UPDATE agents SET name = COALESCE($2, name), sip_uri = COALESCE($3, sip_uri), \
             sip_key = COALESCE($4, sip_key), presence = COALESCE($5, presence), \
             paused_reason = CASE WHEN $5 IS NULL THEN paused_reason ELSE $7 END, updated_at = $6, \
             presence_since = CASE WHEN $5 IS NOT NULL AND ($5 <> presence \
                 OR COALESCE($7, '') <> COALESCE(paused_reason, '')) THEN $6 ELSE presence_since END, \
             missed_in_a_row = CASE WHEN $5 IS NOT NULL AND $7 IS NULL AND paused_reason IS NOT NULL \
                 THEN 0 ELSE missed_in_a_row END \
             WHERE id = $1 RETURNING {}",
            AgentRow::columns(None)
        )
    );
    statement!(
        /// A heartbeat, and a new presence when `$3` is not null (then the pause becomes
        /// `$4`, null: none).
        AGENT_HEARTBEAT = format!(
            "UPDATE agents SET last_heartbeat_at = $2, updated_at = $2, presence = COALESCE($3, presence), \
             paused_reason = CASE WHEN $3 IS NULL THEN paused_reason ELSE $4 END, \
             presence_since = CASE WHEN $3 IS NOT NULL AND ($3 <> presence \
                 OR COALESCE($4, '') <> COALESCE(paused_reason, '')) THEN $2 ELSE presence_since END, \
             missed_in_a_row = CASE WHEN $3 IS NOT NULL AND $4 IS NULL AND paused_reason IS NOT NULL \
                 THEN 0 ELSE missed_in_a_row END \
             WHERE id = $1 RETURNING {}",
            AgentRow::columns(None)
        )
    );
    statement!(
        /// Every agent, oldest first.
        AGENTS_ALL = format!("{}ORDER BY created_at, id", AgentRow::select())
    );
    statement!(
        /// Agents effectively available at cutoff `$1` and time `$2`.
        AGENTS_AVAILABLE = format!(
            "{}WHERE presence = 'available' AND paused_reason IS NULL AND current_call_sid IS NULL \
             AND offer_call_sid IS NULL AND last_heartbeat_at >= $1 AND idle_since <= $2 \
             ORDER BY created_at, id",
            AgentRow::select()
        )
    );
    statement!(
        /// Agents effectively busy at cutoff `$1` and time `$2` (on a call, holding an offer,
        /// said busy, or wrapping up).
        AGENTS_BUSY = format!(
            "{}WHERE current_call_sid IS NOT NULL OR offer_call_sid IS NOT NULL \
             OR (presence <> 'offline' AND paused_reason IS NULL AND last_heartbeat_at >= $1 \
                 AND (presence = 'busy' OR idle_since > $2)) \
             ORDER BY created_at, id",
            AgentRow::select()
        )
    );
    statement!(
        /// Agents effectively paused at cutoff `$1`.
        AGENTS_PAUSED = format!(
            "{}WHERE current_call_sid IS NULL AND offer_call_sid IS NULL AND presence <> 'offline' \
             AND paused_reason IS NOT NULL \
             AND last_heartbeat_at >= $1 ORDER BY created_at, id",
            AgentRow::select()
        )
    );
    statement!(
        /// Agents effectively offline at cutoff `$1`.
        AGENTS_OFFLINE = format!(
            "{}WHERE current_call_sid IS NULL AND offer_call_sid IS NULL \
             AND (presence = 'offline' OR last_heartbeat_at IS NULL \
             OR last_heartbeat_at < $1) ORDER BY created_at, id",
            AgentRow::select()
        )
    );
    /// "Available now" (eligible for an offer): presence available, not paused, fresh
    /// heartbeat (cutoff `$1`), no call, no open offer, wrap-up and no-answer delay over
    /// (time `$3`); longest idle first (the plan is in docs/agents.md). `idle_since` orders
    /// them where this is a part of a larger statement.
    pub const AVAILABLE_NOW: &str = "SELECT id, sip_uri, missed_in_a_row, idle_since FROM agents \
         WHERE presence = 'available' AND paused_reason IS NULL AND current_call_sid IS NULL \
         AND offer_call_sid IS NULL AND idle_since <= $3 AND last_heartbeat_at >= $1 \
         AND (no_answer_until IS NULL OR no_answer_until <= $3) ORDER BY idle_since, id LIMIT $2";
    statement!(
        /// One call.
        CALL_BY_SID = format!("{}WHERE call_sid = $1", CallRow::select())
    );
    statement!(
        /// Calls, newest first, optionally of one status.
        CALLS_LIST = format!(
            "{}WHERE ($1 IS NULL OR status = $1) AND ($3 IS NULL OR answered_by = $3) \
             ORDER BY started_at DESC, call_sid DESC LIMIT $2",
            CallRow::select()
        )
    );
    statement!(
        /// Audit entries of a call or agent, chain order.
        AUDIT_ENTRIES = format!(
            "SELECT {} FROM audit_log WHERE ($1 IS NULL OR call_sid = $1) AND ($2 IS NULL OR agent_id = $2) \
             ORDER BY seq NULLS LAST, id LIMIT $3",
            audit_columns()
        )
    );
    statement!(
        /// A page of the sealed chain.
        AUDIT_CHAIN_PAGE = format!(
            "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            audit_columns()
        )
    );
}
