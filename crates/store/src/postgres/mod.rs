//! PostgreSQL adapter: production, and several server instances on one database. A webhook's
//! change is one statement (writable CTEs over `unnest` arrays), so it is one transaction and
//! one round trip.

mod audit;
mod batch;
mod calls;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres};

use crate::common::WriteTx;
use crate::schema::{AuditEventRow, Table};

pub use crate::common::sql::AVAILABLE_NOW;

/// A PostgreSQL query with bound arguments (the statements built over `unnest` arrays).
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// The embedded PostgreSQL migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

static INSERT_AUDIT: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "INSERT INTO audit_log ({cols}) SELECT {cols} FROM unnest({arrays}) WITH ORDINALITY \
         AS t({cols}, n) ORDER BY n",
        cols = AuditEventRow::columns(None),
        arrays = AuditEventRow::arrays(1)
    ))
});

/// The settings of the `changes` pool's sessions. Plans are generic, made once per
/// connection (planning the apply statement costs more than running it), often while the
/// tables are nearly empty; with sequential scans off such a plan still reaches every table
/// by an index, so a webhook's cost does not grow with the rows kept (a plan made on an
/// empty `agents` table scanned it at every apply).
pub(crate) const CHANGES_SESSION: [(&str, &str); 2] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
];

/// Stores on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Reads, reports, admin changes: plans made for the values at hand.
    pool: PgPool,
    /// A webhook's load and change (by primary key): the plans are fixed (generic) per
    /// connection, so the apply statement is planned once, not at every call (planning it
    /// costs more than running it).
    changes: PgPool,
    /// The calls as this process committed them: a webhook's first try decides from the
    /// copy instead of loading the call ([`crate::committed`]).
    committed: Arc<crate::committed::Committed>,
    /// The queue of call changes and the tasks that apply them in batches ([`batch`]).
    batcher: Arc<batch::Batcher>,
    /// How long a request waits for its change's batch (the pool's acquire timeout).
    write_wait: Duration,
}

impl PgStore {
    /// One agent's row by `key` (SQLite reads it inline).
    pub(crate) async fn agent_row(
        &self,
        key: crate::common::AgentKey<'_>,
    ) -> anyhow::Result<Option<crate::schema::AgentRow>> {
        let query = sqlx::query_as(key.sql());
        let query = match key {
            crate::common::AgentKey::Id(id) => query.bind(id),
            crate::common::AgentKey::SipKey(key) => query.bind(key),
        };
        query
            .fetch_optional(&self.pool)
            .await
            .context("agent lookup")
    }

    /// The agents of `ids` that exist, in no particular order, in one statement.
    pub(crate) async fn agent_rows(
        &self,
        ids: &[::agents::AgentId],
    ) -> anyhow::Result<Vec<crate::schema::AgentRow>> {
        sqlx::query_as(*crate::common::sql::AGENTS_BY_IDS)
            .bind(ids.iter().map(|id| id.0).collect::<Vec<uuid::Uuid>>())
            .fetch_all(&self.pool)
            .await
            .context("agents lookup")
    }

    /// The priority of the rule matching `number`, if one does.
    pub(crate) async fn priority_row(&self, number: &str) -> anyhow::Result<Option<i32>> {
        sqlx::query_scalar(crate::queue::sql::PRIORITY_FOR)
            .bind(number)
            .fetch_optional(&self.pool)
            .await
            .context("caller priority")
    }

    /// The matcher's read in one statement ([`crate::queue::sql::MATCH_VIEW_PG`]).
    pub(crate) async fn read_match_view(
        &self,
        want: &call_center::MatchWant,
    ) -> anyhow::Result<call_center::MatchView> {
        type Arrays = (Vec<String>, Vec<uuid::Uuid>, Vec<String>, Vec<i32>);
        let (heads, ids, sip_uris, missed): Arrays =
            sqlx::query_as(crate::queue::sql::MATCH_VIEW_PG.as_str())
                .bind(crate::types::SqlTime(want.liveness.cutoff))
                .bind(i64::from(want.agents))
                .bind(crate::types::SqlTime(want.liveness.now))
                .bind(crate::types::SqlTime(want.enqueued_after))
                .bind(want.max_rounds)
                .bind(i64::from(want.heads))
                .fetch_one(&self.changes)
                .await
                .context("the queue's head and the eligible agents")?;
        let rows = ids
            .into_iter()
            .zip(sip_uris)
            .zip(missed)
            .map(|((id, uri), m)| {
                (
                    crate::types::SqlId(id),
                    uri,
                    m,
                    crate::types::SqlTime(want.liveness.now),
                )
            });
        Ok(call_center::MatchView {
            heads,
            free: crate::common::candidates(rows)?,
        })
    }

    /// Connects lazily (the first query opens the first connection), so the server starts
    /// and reports "not ready" while the database is down. Every connection runs with the
    /// options' `statement_timeout`.
    ///
    /// # Errors
    /// When the URL cannot be parsed.
    pub fn connect_lazy(options: &crate::StoreOptions) -> anyhow::Result<Self> {
        let connect: PgConnectOptions = options
            .url
            .parse()
            .context("DATABASE_URL is not a PostgreSQL URL")?;
        let timeout_ms = options.statement_timeout.as_millis().max(1).to_string();
        let connect = connect
            .application_name("callcenter")
            .options([("statement_timeout", timeout_ms.as_str())]);
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(options.max_connections)
                .min_connections(0)
                .acquire_timeout(options.acquire_timeout)
                .test_before_acquire(false)
        };
        let changes = pool_options().connect_lazy_with(connect.clone().options(CHANGES_SESSION));
        Ok(Self {
            pool: pool_options().connect_lazy_with(connect),
            changes,
            committed: Arc::default(),
            batcher: Arc::new(batch::Batcher::new()),
            write_wait: options.acquire_timeout,
        })
    }

    /// The store as the batch tasks use it: the same pools and committed calls, without
    /// the queue, so the tasks end when the last store holding the queue is dropped.
    fn for_batches(&self) -> Self {
        Self {
            batcher: Arc::new(batch::Batcher::new()),
            ..self.clone()
        }
    }

    /// A transaction.
    pub(crate) async fn write(&self) -> Result<WriteTx<Postgres>, sqlx::Error> {
        Ok(WriteTx {
            tx: self.pool.begin().await?,
            _turn: None,
        })
    }

    /// Writes audit events (pending; the sealer chains them) in the caller's transaction,
    /// in one statement.
    pub(crate) async fn insert_audit(
        conn: &mut PgConnection,
        events: &[::audit::NewAuditEvent],
    ) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = crate::rows::audit_rows(events);
        AuditEventRow::bind_arrays(&rows, sqlx::query(*INSERT_AUDIT))
            .execute(conn)
            .await
            .map(|_| ())
    }
}

crate::common::backend!(PgStore, Postgres, PgPool, MIGRATOR, " FOR UPDATE");
