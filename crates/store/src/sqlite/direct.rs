//! SQLite without a hand-off to another thread: connections of the same file and the same
//! SQLite library as sqlx's pool, driven through rusqlite where the work is done. sqlx runs
//! each statement on a worker thread of its connection, so every statement costs two thread
//! switches; on the hot path that cost, not SQLite, was the server's ceiling.
//!
//! - [`Readers`]: the hot reads (a call's load, the matcher's view, one-agent lookups, the
//!   caller's priority) run inline on the calling thread. In WAL mode a reader never waits for the writer, and these reads are a few
//!   index lookups in pages SQLite or the OS already holds.
//! - The writer thread ([`super::writer`]) applies whole batches of call changes.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use rusqlite::{Connection, OpenFlags, ToSql};

/// Idle read connections kept (more are opened when more readers run at once, then closed).
const IDLE_READERS: usize = 16;

/// The size (bytes) a WAL file is cut back to when it is started over: one that grew while a
/// long read kept it from being checkpointed does not keep its disk space.
pub(super) const WAL_SIZE_LIMIT: &str = "67108864";

/// Opens `path` with WAL (the pool set it on the file), `synchronous = NORMAL` like the pool,
/// foreign keys, the busy timeout, no checkpoint on commit (the writer's checkpointer does
/// them), the WAL's size limit, and room for every multi-row statement; read-only
/// connections refuse writes (`query_only`).
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
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
    ))?;
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

/// For each parameter of a statement, the number of its value (`$3` → 3), per statement
/// text (a `'static` text, so its address names it) and per thread: SQLite finds a
/// parameter's name by a linear search, so looking up every name at every execution of a
/// 144-parameter statement costs more than running it.
type ParamNumbers = std::collections::HashMap<(usize, usize), std::rc::Rc<[usize]>>;

thread_local! {
    static PARAM_NUMBERS: std::cell::RefCell<ParamNumbers> = std::cell::RefCell::default();
}

/// The value number of each parameter of `stmt`, read from their names.
fn param_numbers(stmt: &rusqlite::CachedStatement<'_>) -> rusqlite::Result<std::rc::Rc<[usize]>> {
    (1..=stmt.parameter_count())
        .map(|index| {
            stmt.parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(format!("parameter {index}")))
        })
        .collect()
}

/// Binds `values` to `stmt`, prepared from `sql`, a statement written with numbered
/// placeholders (`$1`, `$2`, … as sqlx writes them; SQLite treats `$n` as a name, so each is
/// bound by its number).
pub(super) fn bind_numbered(
    stmt: &mut rusqlite::CachedStatement<'_>,
    sql: &'static str,
    values: &[&dyn ToSql],
) -> rusqlite::Result<()> {
    let key = (sql.as_ptr() as usize, sql.len());
    let cached = PARAM_NUMBERS.with(|numbers| numbers.borrow().get(&key).cloned());
    let numbers = match cached {
        Some(numbers) => numbers,
        None => {
            let numbers = param_numbers(stmt)?;
            PARAM_NUMBERS.with(|all| all.borrow_mut().insert(key, numbers.clone()));
            numbers
        }
    };
    for (index, number) in numbers.iter().enumerate() {
        let value = values
            .get(number - 1)
            .ok_or(rusqlite::Error::InvalidParameterCount(
                *number,
                values.len(),
            ))?;
        stmt.raw_bind_parameter(index + 1, value)?;
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
    sql: &'static str,
    values: &[&dyn ToSql],
    mut decode: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind_numbered(&mut stmt, sql, values)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}
