//! The SQLite writer thread: applies batches of call changes on its own connection
//! (rusqlite, on the same file and the same SQLite library as sqlx), so a batch of any size
//! costs one hand-off between threads instead of one per statement. A statement is
//! executed where SQLite runs, prepared once and kept in the connection's cache.
//!
//! The thread takes this process's write turn ([`super::SqliteStore::turn`]) for each
//! batch, so it never competes with the pool's writers for the file's write lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, mpsc};
use std::time::Duration as StdDuration;

use ::audit::ChainHead;
use agents::OfferMark;
use call_center::{Applied, CallChange};
use rusqlite::{Connection, ToSql};
use tokio::sync::oneshot;

use super::direct::{bind_numbered, query};
use crate::committed::Committed;
use crate::schema::{AuditEventRow, AuditSealRow, CallRow, OfferRow, PushParams, Table};
use crate::types::SqlTime;

/// Changes one transaction applies at most.
const BATCH_MAX: usize = 64;

/// A change for the thread, and where its result goes.
struct Queued {
    change: CallChange,
    done: oneshot::Sender<anyhow::Result<Applied>>,
}

/// The handle of the writer thread; the thread ends when the last handle is dropped.
pub(crate) struct Writer {
    queue: mpsc::Sender<Queued>,
    /// Dropped with the writer: ends the checkpointer.
    _checkpoints: mpsc::Sender<()>,
}

/// How often the checkpointer moves the WAL's pages into the database file.
const CHECKPOINT_EVERY: StdDuration = StdDuration::from_millis(250);

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the thread for the database file at `path`, writing under `turn` (this
    /// process's write turn, shared with the pool's writers), and its checkpointer. The
    /// thread opens its connection on its first batch (after the migrations have run), and
    /// again after a connection failed.
    pub(crate) fn start(
        path: PathBuf,
        busy_timeout: StdDuration,
        turn: Arc<tokio::sync::Mutex<()>>,
        committed: Arc<Committed>,
    ) -> anyhow::Result<Self> {
        let (queue, changes) = mpsc::channel::<Queued>();
        let path_for_checkpoints = path.clone();
        let turn_for_checkpoints = Arc::clone(&turn);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || {
                write_until_closed(&changes, &path, busy_timeout, &turn, &committed);
            })?;
        let (checkpoints, stop) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                checkpoint_until(
                    &stop,
                    &path_for_checkpoints,
                    busy_timeout,
                    &turn_for_checkpoints,
                );
            })?;
        Ok(Self {
            queue,
            _checkpoints: checkpoints,
        })
    }

    /// Queues `change`; its result comes after the commit of the batch that applied it.
    pub(crate) fn submit(
        &self,
        change: CallChange,
    ) -> anyhow::Result<oneshot::Receiver<anyhow::Result<Applied>>> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Queued { change, done })
            .map_err(|_| anyhow::anyhow!("the SQLite writer thread has stopped"))?;
        Ok(result)
    }
}

/// The writer thread: waits for a change, takes every change queued by then (at most
/// [`BATCH_MAX`]; one whose requester gave up is skipped), waits for the write turn, applies
/// them in one transaction, answers each; until every handle is gone. No hand-over happens
/// between batches: the next one starts as soon as the commit is done.
fn write_until_closed(
    changes: &mpsc::Receiver<Queued>,
    path: &Path,
    busy_timeout: StdDuration,
    turn: &tokio::sync::Mutex<()>,
    committed: &Committed,
) {
    let mut conn: Option<Connection> = None;
    while let Ok(first) = changes.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX
            && let Ok(next) = changes.try_recv()
        {
            batch.push(next);
        }
        batch.retain(|q| !q.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (changes, answers): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|q| (q.change, q.done)).unzip();
        let results = {
            let _turn = turn.blocking_lock();
            match connection(&mut conn, path, busy_timeout) {
                Ok(c) => apply_batch(c, &changes),
                Err(e) => {
                    conn = None;
                    changes
                        .iter()
                        .map(|_| {
                            Err(anyhow::anyhow!(
                                "opening the SQLite writer's connection: {e}"
                            ))
                        })
                        .collect()
                }
            }
        };
        // Before any answer: the next webhook of a call waits for this one's answer.
        for (change, applied) in changes.iter().zip(&results) {
            if matches!(applied, Ok(Applied::Yes)) {
                committed.record(change);
            }
        }
        for (done, applied) in answers.into_iter().zip(results) {
            // The requester may have given up meanwhile: nothing to tell.
            let _ = done.send(applied);
        }
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] until `stop` is dropped, in passes that
/// are all passive (a reader is never blocked):
///
/// 1. without the write turn, so webhooks keep committing while the WAL is copied into the
///    database file; again while a pass had more than [`SMALL_PASS`] frames to copy (at
///    most [`PASSES_WITHOUT_TURN`] times), so what is left for the last pass is little;
/// 2. holding the write turn, so nothing is appended while the last frames are copied: the
///    WAL is then wholly checkpointed, and the next write starts it over from its
///    beginning.
///
/// Without the last pass a writer that never pauses keeps the WAL from ever being wholly
/// checkpointed, so it is never started over: it grew by 150 MB a second under load, and
/// every frame appended made the kernel allocate and zero new file blocks. With a single
/// pass before it, the last one copied and synced everything appended during the first
/// (its sync the longest part), and the webhooks waiting for the turn meanwhile doubled
/// the p99 at six concurrent callers.
///
/// Neither the writer nor the pool checkpoints on commit (`wal_autocheckpoint = 0`): a
/// checkpoint syncs the file, and one run by the committing writer held every webhook
/// queued behind it for as long as the whole copy took.
fn checkpoint_until(
    stop: &mpsc::Receiver<()>,
    path: &Path,
    busy_timeout: StdDuration,
    turn: &tokio::sync::Mutex<()>,
) {
    let mut conn: Option<Connection> = None;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let done =
            connection(&mut conn, path, busy_timeout).and_then(|c| checkpoint_passes(c, turn));
        if let Err(e) = done {
            conn = None;
            tracing::warn!(error = %e, "checkpointing the SQLite WAL");
        }
    }
}

/// A pass that copied at most this many frames (4 KiB pages) was short, so little was
/// appended meanwhile.
const SMALL_PASS: i64 = 256;

/// Passes without the write turn at most, before the last one.
const PASSES_WITHOUT_TURN: usize = 4;

/// The passes of [`checkpoint_until`].
fn checkpoint_passes(conn: &Connection, turn: &tokio::sync::Mutex<()>) -> rusqlite::Result<()> {
    let mut copied_before = 0;
    for _ in 0..PASSES_WITHOUT_TURN {
        let pass = checkpoint(conn)?;
        let copied = pass.wal_frames - copied_before.min(pass.wal_frames);
        copied_before = pass.checkpointed;
        if copied <= SMALL_PASS {
            break;
        }
    }
    let _turn = turn.blocking_lock();
    checkpoint(conn).map(|_| ())
}

/// What a passive checkpoint reports.
struct Pass {
    /// Frames in the WAL when it began.
    wal_frames: i64,
    /// Frames of the WAL now in the database file.
    checkpointed: i64,
}

/// One passive checkpoint.
fn checkpoint(conn: &Connection) -> rusqlite::Result<Pass> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(Pass {
            wal_frames: row.get(1)?,
            checkpointed: row.get(2)?,
        })
    })
}

/// The thread's connection, opened when there is none.
fn connection<'c>(
    conn: &'c mut Option<Connection>,
    path: &Path,
    busy_timeout: StdDuration,
) -> rusqlite::Result<&'c Connection> {
    let open = match conn.take() {
        Some(open) => open,
        None => super::direct::open(path, busy_timeout, false)?,
    };
    Ok(conn.insert(open))
}

/// One `BEGIN IMMEDIATE` transaction for the batch, one commit; a result per change. A
/// change found in conflict by its check writes nothing. Should anything fail (an error no
/// check foresaw), the batch is rolled back and each change applied alone, so one change's
/// failure is its own.
fn apply_batch(conn: &Connection, changes: &[CallChange]) -> Vec<anyhow::Result<Applied>> {
    if changes.len() > 1 {
        match try_batch(conn, changes) {
            Ok(results) => return results,
            Err(e) => {
                rollback(conn);
                tracing::warn!(error = %e, changes = changes.len(), "a batch failed; applying its changes one by one");
            }
        }
    }
    changes
        .iter()
        .map(|change| apply_alone(conn, change))
        .collect()
}

fn try_batch(
    conn: &Connection,
    changes: &[CallChange],
) -> rusqlite::Result<Vec<anyhow::Result<Applied>>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut chain = Chain::start(conn)?;
    let mut results = Vec::with_capacity(changes.len());
    for change in changes {
        results.push(Ok(if apply_in(conn, change, &mut chain)? {
            Applied::Yes
        } else {
            Applied::Conflict
        }));
    }
    chain.finish(conn)?;
    conn.execute_batch("COMMIT")?;
    Ok(results)
}

fn apply_alone(conn: &Connection, change: &CallChange) -> anyhow::Result<Applied> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| anyhow::Error::new(e).context("begin"))?;
    let applied = Chain::start(conn).and_then(|mut chain| {
        let written = apply_in(conn, change, &mut chain)?;
        if written {
            chain.finish(conn)?;
            conn.execute_batch("COMMIT")?;
        } else {
            conn.execute_batch("ROLLBACK")?;
        }
        Ok(written)
    });
    match applied {
        Ok(true) => Ok(Applied::Yes),
        Ok(false) => Ok(Applied::Conflict),
        Err(e) => {
            rollback(conn);
            if is_unique_violation(&e, "webhook_receipts") || is_unique_violation(&e, "offers") {
                Ok(Applied::Conflict)
            } else {
                Err(anyhow::Error::new(e).context("applying a call change"))
            }
        }
    }
}

/// The audit chain as a transaction of the writer thread extends it: the entries of its
/// changes are inserted sealed (their place, the digest before theirs and their own), so
/// none is written twice, none enters the pending index, and the sealer finds nothing
/// left to hold the write turn for. The transaction holds the database's write lock, so
/// nothing else extends the chain meanwhile.
struct Chain {
    /// The chain's head so far; `None` when entries written by others could not be sealed
    /// first (the transaction's entries are then inserted pending, in order behind them,
    /// for the sealer, which reports).
    head: Option<ChainHead>,
    /// Whether this transaction's own entries extended the chain (its head is then stored
    /// at the end).
    extended: bool,
}

impl Chain {
    /// Seals the entries pending before this transaction (normally none: only the pool's
    /// writers leave any, for the sealer) and reads the head.
    fn start(conn: &Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("SAVEPOINT seal")?;
        match seal(conn) {
            Ok(sealed) => {
                conn.execute_batch("RELEASE seal")?;
                // A head the leftovers' sealing moved is stored already.
                let head = match sealed {
                    Some(head) => head,
                    None => read_head(conn)?,
                };
                Ok(Self {
                    head: Some(head),
                    extended: false,
                })
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "sealing pending audit entries in the batch failed; the sealer will try again");
                conn.execute_batch("ROLLBACK TO seal; RELEASE seal")?;
                Ok(Self {
                    head: None,
                    extended: false,
                })
            }
        }
    }

    /// Inserts `events` sealed after the head (pending when the head is unknown).
    fn append(&mut self, conn: &Connection, events: Vec<AuditEventRow>) -> rusqlite::Result<()> {
        let Some(head) = self.head.as_mut() else {
            return execute_rows(conn, &super::INSERT_AUDIT, &events, &[]);
        };
        if events.is_empty() {
            return Ok(());
        }
        let sealed = crate::audit::sealed_rows(head, events).map_err(|e| {
            rusqlite::Error::ToSqlConversionFailure(format!("sealing audit entries: {e:#}").into())
        })?;
        self.extended = true;
        execute_rows(conn, &INSERT_SEALED_AUDIT, &sealed, &[])
    }

    /// Stores the head when this transaction extended the chain.
    fn finish(self, conn: &Connection) -> rusqlite::Result<()> {
        match self.head {
            Some(head) if self.extended => {
                execute(
                    conn,
                    crate::audit::SET_CHAIN_HEAD,
                    &[&head.seq, &head.digest],
                )?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl PushParams for crate::audit::SealedAuditRow {
    fn push_params<'a>(&'a self, out: &mut Vec<&'a dyn ToSql>) {
        self.event.push_params(out);
        out.extend([&self.seq as &dyn ToSql, &self.prev_digest, &self.digest]);
    }
}

/// `INSERT` of sealed entries: the event's columns, then `seq`, `prev_digest`, `digest`.
static INSERT_SEALED_AUDIT: LazyLock<super::MultiInsert> = LazyLock::new(|| {
    super::MultiInsert::new(|rows| {
        let n = AuditEventRow::COLUMNS.len() + 3;
        let values: Vec<String> = (0..rows)
            .map(|r| format!("({})", crate::schema::params(1 + r * n, n)))
            .collect();
        format!(
            "INSERT INTO {} ({}, seq, prev_digest, digest) VALUES {}",
            AuditEventRow::NAME,
            AuditEventRow::columns(None),
            values.join(", ")
        )
    })
});

/// The chain's head as stored (genesis when the chain is empty).
fn read_head(conn: &Connection) -> rusqlite::Result<ChainHead> {
    let head = query(conn, crate::audit::CHAIN_HEAD, &[], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?
    .into_iter()
    .next();
    Ok(crate::audit::head(head))
}

/// One round of the sealer, as `seal_pending` does it through sqlx (same statements): the
/// new head, or `None` when nothing was pending.
fn seal(conn: &Connection) -> anyhow::Result<Option<ChainHead>> {
    let at = AuditEventRow::COLUMNS.len();
    let rows = query(
        conn,
        super::SqliteStore::pending_audit(),
        &[&crate::audit::SEAL_BATCH],
        |row| {
            Ok((
                AuditEventRow::from_rusqlite(row, 0)?,
                AuditSealRow::from_rusqlite(row, at)?,
            ))
        },
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let head = read_head(conn)?;
    let entries = rows
        .into_iter()
        .map(|(event, seal)| crate::rows::audit_entry(event, seal))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (seals, new_head) = crate::audit::seal(&head, &entries);
    for chunk in seals.chunks(super::audit::SEALS_PER_STATEMENT) {
        let mut values: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 4);
        for s in chunk {
            values.extend([&s.id as &dyn ToSql, &s.seq, &s.prev_digest, &s.digest]);
        }
        execute(conn, super::audit::WRITE_SEALS.rows(chunk.len()), &values)?;
    }
    execute(
        conn,
        crate::audit::SET_CHAIN_HEAD,
        &[&new_head.seq, &new_head.digest],
    )?;
    Ok(Some(new_head))
}

/// Ends a transaction left open by an error (none open: nothing to do).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "rolling back a failed SQLite batch");
    }
}

/// A unique constraint of `table` refused a row.
fn is_unique_violation(e: &rusqlite::Error, table: &str) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(code, Some(message))
            if code.code == rusqlite::ErrorCode::ConstraintViolation
                && message.contains(&format!("{table}."))
    )
}

/// Executes `sql` (prepared once per connection) with `values`; the rows it changed.
fn execute(conn: &Connection, sql: &'static str, values: &[&dyn ToSql]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind_numbered(&mut stmt, sql, values)?;
    stmt.raw_execute()
}

/// Executes `sql` with one row's columns as its parameters.
fn execute_row(
    conn: &Connection,
    sql: &'static str,
    row: &impl PushParams,
) -> rusqlite::Result<usize> {
    let mut values = Vec::new();
    row.push_params(&mut values);
    execute(conn, sql, &values)
}

/// Executes `statement` (for 1..=[`super::ROWS_PER_INSERT`] rows) over `rows`, a chunk at a
/// time, each row's columns in order, then `tail` (parameters after the rows).
fn execute_rows<R: PushParams>(
    conn: &Connection,
    statement: &super::MultiInsert,
    rows: &[R],
    tail: &[&dyn ToSql],
) -> rusqlite::Result<()> {
    for chunk in rows.chunks(super::ROWS_PER_INSERT) {
        let mut values: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 12 + tail.len());
        for row in chunk {
            row.push_params(&mut values);
        }
        values.extend_from_slice(tail);
        execute(conn, statement.rows(chunk.len()), &values)?;
    }
    Ok(())
}

/// Whether `change` may be written: its call at the expected version, none of its receipts
/// stored, every agent it reserves still reservable (checked before anything is written,
/// under the write lock, so a change in conflict leaves nothing to roll back).
fn check(conn: &Connection, change: &CallChange) -> rusqlite::Result<bool> {
    let keys: Vec<&str> = change.receipts.iter().map(|r| r.key.as_str()).collect();
    let reserved: Vec<String> = change
        .agents
        .iter()
        .filter(|e| e.offer.is_some_and(OfferMark::reserves))
        .map(|e| e.agent_id.0.hyphenated().to_string())
        .collect();
    let json = |v: &[&str]| serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned());
    let reserved_ids: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let (keys, reserved_ids, now) = (
        json(&keys),
        json(&reserved_ids),
        SqlTime(change.call.updated_at),
    );
    let (version, seen, reservable): (Option<i64>, i64, i64) = query(
        conn,
        &super::calls::CHECK,
        &[&change.call.call_sid, &keys, &reserved_ids, &now],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?
    .into_iter()
    .next()
    .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    let at_version = match version {
        None => change.expected_version == 0,
        Some(v) => change.expected_version != 0 && v == change.expected_version,
    };
    Ok(at_version && seen == 0 && usize::try_from(reservable).is_ok_and(|n| n == reserved.len()))
}

/// The call row at the expected version.
fn write_call(conn: &Connection, change: &CallChange) -> rusqlite::Result<()> {
    let row = CallRow::from(&change.call);
    let mut values = Vec::with_capacity(CallRow::COLUMNS.len() + 1);
    row.push_params(&mut values);
    let written = if change.expected_version == 0 {
        execute(conn, &super::calls::INSERT_CALL, &values)?
    } else {
        values.push(&change.expected_version);
        execute(conn, &super::calls::UPDATE_CALL, &values)?
    };
    if written == 1 {
        Ok(())
    } else {
        // The call moved from its version after its check: cannot happen under the write
        // lock, and rolls the batch back should it.
        Err(rusqlite::Error::StatementChangedRows(written))
    }
}

/// The writes of a change inside the transaction; `false` (nothing written) when the call
/// row was not at the expected version, a receipt is already stored, or an agent it
/// reserves is no longer reservable (see [`agents::Agent::reservable`]).
fn apply_in(conn: &Connection, change: &CallChange, chain: &mut Chain) -> rusqlite::Result<bool> {
    if !check(conn, change)? {
        return Ok(false);
    }
    write_call(conn, change)?;
    let now = SqlTime(change.call.updated_at);
    let receipts = crate::rows::receipts(&change.receipts, now.0);
    execute_rows(conn, &super::calls::INSERT_RECEIPTS, &receipts, &[])?;
    let offers: Vec<OfferRow> = change.offers.iter().map(OfferRow::from).collect();
    execute_rows(conn, &super::calls::UPSERT_OFFERS, &offers, &[])?;
    let (opened, closed) = crate::rows::rounds(&change.call.call_sid, &change.attempts);
    for round in &opened {
        execute_row(conn, &super::calls::OPEN_ROUND, round)?;
    }
    for round in &closed {
        execute_row(conn, super::calls::CLOSE_ROUND, round)?;
    }
    let effects = crate::rows::effects(&change.agents);
    execute_rows(
        conn,
        &super::calls::AGENT_EFFECTS,
        &effects,
        &[&change.call.call_sid, &now],
    )?;
    chain.append(conn, crate::rows::audit_rows(&change.audit))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    /// Passes without the write turn never catch up with a writer that commits back to
    /// back, so its WAL would hold everything ever written; the last pass (under the write
    /// turn) lets the next write start the WAL over.
    #[test]
    fn a_writer_that_never_pauses_still_gets_its_wal_started_over() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("wal.db");
        let timeout = StdDuration::from_secs(5);
        let setup = super::super::direct::open(&path, timeout, false).expect("open");
        setup
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
            .expect("schema");
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let (path, turn, stop, written) = (
                path.clone(),
                Arc::clone(&turn),
                Arc::clone(&stop),
                Arc::clone(&written),
            );
            std::thread::spawn(move || {
                let conn = super::super::direct::open(&path, timeout, false).expect("open");
                while !stop.load(Ordering::Relaxed) {
                    let _turn = turn.blocking_lock();
                    conn.execute_batch(
                        "BEGIN IMMEDIATE; \
                         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8) \
                         INSERT INTO t (body) SELECT zeroblob(4000) FROM n; \
                         COMMIT",
                    )
                    .expect("a write");
                    written.fetch_add(8 * 4000, Ordering::Relaxed);
                }
            })
        };
        let wal = dir.path().join("wal.db-wal");
        let checkpointer = super::super::direct::open(&path, timeout, false).expect("open");
        let mut largest = 0;
        for _ in 0..40 {
            std::thread::sleep(StdDuration::from_millis(10));
            checkpoint_passes(&checkpointer, &turn).expect("checkpoint");
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the writer");
        let written = written.load(Ordering::Relaxed);
        assert!(
            largest * 4 < written,
            "the WAL reached {largest} bytes while {written} were written"
        );
    }
}
