//! SQLite adapter: the embedded default. WAL mode, foreign keys on, a busy timeout; writes
//! run in `BEGIN IMMEDIATE` transactions (SQLite has one writer at a time, so there is no
//! upgrade deadlock and id order is commit order).
//!
//! Writers of this process queue on an async mutex before they touch the file: SQLite
//! would serialize them anyway, but through its busy handler, which sleeps and retries.
//! Queueing in the process hands the write lock over at once; the busy timeout is left for
//! other processes (the CLI) writing to the same file. The wait in that queue is bounded
//! (the pool's acquire timeout): a writer that stalls fails the writes behind it instead of
//! stalling them forever.

mod audit;
mod calls;
mod direct;
mod writer;

use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration as StdDuration;

use anyhow::Context as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection};
use tokio::sync::Mutex;

use crate::common::WriteTx;
use crate::schema::{AuditEventRow, Table};

/// The embedded SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Rows one multi-row `INSERT` writes at most (longer lists take several).
pub(crate) const ROWS_PER_INSERT: usize = 16;

/// A statement over `n` rows (`INSERT … VALUES (…) × n`, `UPDATE … FROM (VALUES …)`) for
/// n = 1..=max, built once: several rows cost one trip to SQLite's thread, not n.
pub(crate) struct MultiInsert(Vec<&'static str>);

impl MultiInsert {
    /// For 1..=[`ROWS_PER_INSERT`] rows.
    pub(crate) fn new(build: fn(usize) -> String) -> Self {
        Self::up_to(ROWS_PER_INSERT, build)
    }

    /// For 1..=`max` rows.
    pub(crate) fn up_to(max: usize, build: fn(usize) -> String) -> Self {
        Self((1..=max.max(1)).map(|n| &*String::leak(build(n))).collect())
    }

    /// The statement for `rows` rows (1..=max).
    pub(crate) fn rows(&self, rows: usize) -> &'static str {
        self.0[rows.clamp(1, self.0.len()) - 1]
    }
}

pub(super) static INSERT_AUDIT: LazyLock<MultiInsert> =
    LazyLock::new(|| MultiInsert::new(AuditEventRow::insert_rows));

/// Stores in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's write turn: the pool's writers and the writer thread take it in turn.
    write_turn: Arc<Mutex<()>>,
    /// Connections for the hot reads, run inline.
    readers: Arc<direct::Readers>,
    /// The thread that applies call changes in batches on its own connection (group
    /// commit), taking this process's write turn for each batch.
    batch_writer: Arc<writer::Writer>,
    /// The calls as the writer thread committed them.
    committed: Arc<crate::committed::Committed>,
    /// The longest a write waits for its turn (then it fails: a stalled writer must not
    /// stall every request behind it).
    write_wait: StdDuration,
}

impl SqliteStore {
    /// The matcher's read: the queue's head, then the eligible agents, on one connection,
    /// inline ([`direct::Readers`]).
    pub(crate) async fn read_match_view(
        &self,
        want: &call_center::MatchWant,
    ) -> anyhow::Result<call_center::MatchView> {
        let rows = self
            .readers
            .read(|conn| read_match_view(conn, want))
            .context("the queue's head and the eligible agents")?;
        let Some((heads, rows)) = rows else {
            return Ok(call_center::MatchView::default());
        };
        Ok(call_center::MatchView {
            heads,
            free: crate::common::candidates(rows)?,
        })
    }

    /// One agent's row by `key`, read inline.
    pub(crate) async fn agent_row(
        &self,
        key: crate::common::AgentKey<'_>,
    ) -> anyhow::Result<Option<crate::schema::AgentRow>> {
        let sql = key.sql();
        let rows = self
            .readers
            .read(|conn| {
                let key: &dyn rusqlite::ToSql = match &key {
                    crate::common::AgentKey::Id(id) => id,
                    crate::common::AgentKey::SipKey(key) => key,
                };
                direct::query(conn, sql, &[key], |row| {
                    crate::schema::AgentRow::from_rusqlite(row, 0)
                })
            })
            .context("agent lookup")?;
        Ok(rows.into_iter().next())
    }

    /// The agents of `ids` that exist, in no particular order, read inline (one lookup by
    /// id each, on one connection).
    pub(crate) async fn agent_rows(
        &self,
        ids: &[::agents::AgentId],
    ) -> anyhow::Result<Vec<crate::schema::AgentRow>> {
        let ids: Vec<crate::types::SqlId> =
            ids.iter().map(|id| crate::types::SqlId(id.0)).collect();
        self.readers
            .read(|conn| {
                let mut rows = Vec::with_capacity(ids.len());
                for id in &ids {
                    rows.extend(direct::query(
                        conn,
                        *crate::common::sql::AGENT_BY_ID,
                        &[id],
                        |row| crate::schema::AgentRow::from_rusqlite(row, 0),
                    )?);
                }
                Ok(rows)
            })
            .context("agents lookup")
    }

    /// The priority of the rule matching `number`, if one does, read inline.
    pub(crate) async fn priority_row(&self, number: &str) -> anyhow::Result<Option<i32>> {
        let rows = self
            .readers
            .read(|conn| {
                direct::query(conn, crate::queue::sql::PRIORITY_FOR, &[&number], |row| {
                    row.get::<_, i32>(0)
                })
            })
            .context("caller priority")?;
        Ok(rows.into_iter().next())
    }

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
        let busy_timeout = StdDuration::from_secs(5);
        let options = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // Each multi-row statement is prepared once per row count (see MultiInsert).
            .statement_cache_capacity(400)
            .pragma("cache_size", "-1024")
            // The writer's checkpointer thread checkpoints (see writer.rs), not a commit.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", direct::WAL_SIZE_LIMIT);
        let file = options.get_filename().to_path_buf();
        if file.as_os_str().is_empty()
            || file.as_os_str() == ":memory:"
            || url.contains("mode=memory")
        {
            anyhow::bail!(
                "an in-memory SQLite database cannot be shared by the server's connections; \
                 give DATABASE_URL a file, e.g. sqlite://data/callcenter.db"
            );
        }
        if let Some(parent) = file.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        let turn = Arc::new(Mutex::new(()));
        let committed = Arc::new(crate::committed::Committed::default());
        Ok(Self {
            pool,
            write_turn: Arc::clone(&turn),
            readers: Arc::new(direct::Readers::new(file.clone(), busy_timeout)),
            batch_writer: Arc::new(writer::Writer::start(
                file,
                busy_timeout,
                turn,
                Arc::clone(&committed),
            )?),
            committed,
            write_wait: acquire_timeout,
        })
    }

    /// Waits for this process's turn to write (at most the acquire timeout).
    pub(crate) async fn turn(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, sqlx::Error> {
        tokio::time::timeout(self.write_wait, Arc::clone(&self.write_turn).lock_owned())
            .await
            .map_err(|_| {
                sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "waited {} ms for the SQLite writer's turn",
                        self.write_wait.as_millis()
                    ),
                ))
            })
    }

    /// Waits for this process's turn to write (at most the acquire timeout), then begins an
    /// immediate transaction.
    pub(crate) async fn write(&self) -> Result<WriteTx<Sqlite>, sqlx::Error> {
        let turn = self.turn().await?;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            _turn: Some(turn),
        })
    }

    /// Writes audit events (pending; the sealer chains them) in the caller's transaction.
    pub(crate) async fn insert_audit(
        conn: &mut SqliteConnection,
        events: &[::audit::NewAuditEvent],
    ) -> Result<(), sqlx::Error> {
        let rows = crate::rows::audit_rows(events);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<AuditEventRow> = rows.by_ref().take(ROWS_PER_INSERT).collect();
            let mut q = sqlx::query(INSERT_AUDIT.rows(chunk.len()));
            for row in chunk {
                q = row.bind(q);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// The queue's head and, when someone waits (or `free_if_nobody_waits`), the eligible
/// agents; `None` when nobody waits and no agents are wanted.
#[allow(clippy::type_complexity)]
fn read_match_view(
    conn: &rusqlite::Connection,
    want: &call_center::MatchWant,
) -> rusqlite::Result<Option<(Vec<String>, Vec<crate::common::FreeAgentRow>)>> {
    use crate::types::SqlTime;
    let heads = direct::query(
        conn,
        crate::queue::sql::HEADS_SQLITE.as_str(),
        &[
            &SqlTime(want.enqueued_after),
            &want.max_rounds,
            &i64::from(want.heads),
        ],
        |row| row.get::<_, String>(0),
    )?;
    if heads.is_empty() && !want.free_if_nobody_waits {
        return Ok(None);
    }
    let agents = direct::query(
        conn,
        crate::common::sql::AVAILABLE_NOW,
        &[
            &SqlTime(want.liveness.cutoff),
            &i64::from(want.agents),
            &SqlTime(want.liveness.now),
        ],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    Ok(Some((heads, agents)))
}

crate::common::backend!(SqliteStore, Sqlite, SqlitePool, MIGRATOR, "");
