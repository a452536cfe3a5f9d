//! SQLite without a hand-off to another thread: connections of the same file and the same
//! SQLite library as sqlx's pool, driven through rusqlite where the work is done. sqlx runs
//! each statement on a worker thread of its connection, so every statement costs two thread
//! switches; on the hot path that cost, not SQLite, was the server's ceiling.
//!
//! - [`Readers`]: the hot reads (a call's load, the matcher's view) run inline on the calling
//!   thread. In WAL mode a reader never waits for the writer, and these reads are a few
//!   index lookups in pages SQLite or the OS already holds.
//! - The writer thread ([`super::writer`]) applies whole batches of call changes.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use rusqlite::{Connection, OpenFlags, ToSql};

/// Idle read connections kept (more are opened when more readers run at once, then closed).
const IDLE_READERS: usize = 16;

/// Opens `path` with WAL (the pool set it on the file), `synchronous = NORMAL` like the pool,
/// foreign keys, the busy timeout, no checkpoint on commit (the writer's checkpointer does
/// them), and room for every multi-row statement; read-only connections refuse writes
/// (`query_only`).
pub(super) fn open(
    path: &Path,
    busy_timeout: StdDuration,
    read_only: bool,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0;",
    )?;
    // A statement whose plan looked at a bound value (SQLite 3.51 reads a bound `LIMIT`)
    // is prepared again whenever that value changes; with the query planner stability
    // guarantee each statement keeps the plan it was prepared with.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    conn.set_prepared_statement_cache_capacity(400);
    Ok(conn)
}

/// Binds `values` to a statement written with numbered placeholders (`$1`, `$2`, … as sqlx
/// writes them; SQLite treats `$n` as a name, so each is looked up by its number).
pub(super) fn bind_numbered(
    stmt: &mut rusqlite::CachedStatement<'_>,
    values: &[&dyn ToSql],
) -> rusqlite::Result<()> {
    for index in 1..=stmt.parameter_count() {
        let number = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(format!("parameter {index}")))?;
        let value = number
            .checked_sub(1)
            .and_then(|at| values.get(at))
            .ok_or(rusqlite::Error::InvalidParameterCount(number, values.len()))?;
        stmt.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

/// Read connections for inline reads.
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: StdDuration,
    idle: std::sync::Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readers")
    }
}

impl Readers {
    pub(super) fn new(path: PathBuf, busy_timeout: StdDuration) -> Self {
        Self {
            path,
            busy_timeout,
            idle: std::sync::Mutex::default(),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `read` on an idle connection (one is opened when none is idle), on this thread.
    /// A connection whose read failed is closed, not kept.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let taken = self.idle().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => open(&self.path, self.busy_timeout, true)?,
        };
        let result = read(&conn);
        if result.is_ok() {
            let mut idle = self.idle();
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

/// Runs `sql` (prepared once per connection) with `values`, each row through `decode`.
pub(super) fn query<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    mut decode: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind_numbered(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}
