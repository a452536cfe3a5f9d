//! Sealing on PostgreSQL: under an advisory lock (one sealer across instances), only the
//! entries of transactions older than every transaction still running, so a late commit is
//! never skipped.

use std::sync::LazyLock;

use ::audit::ChainHead;
use ::audit::chain::Seal;
use sqlx::Row as _;
use sqlx::{PgConnection, Postgres};

use super::{PgQuery, PgStore};
use crate::audit::SealedAuditRow;
use crate::common::{WriteTx, unexpected};
use crate::schema::{AuditEventRow, AuditSealRow, Table, audit_columns};

/// Advisory lock key that serialises sealers across instances.
const SEALER_LOCK: i64 = 0x0063_635f_6175_6469; // "cc_audi"

/// Pending entries whose transactions have all finished, at most `$1` (a row whose
/// transaction is still open waits for a later batch; it is never skipped).
static PENDING_AUDIT: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT {} FROM audit_log WHERE seq IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY txid, id LIMIT $1",
        audit_columns()
    ))
});

/// The chain head (two columns) with, to its right, every pending entry this statement
/// sees, in the sealer's order, one per row (null columns when there are none). A batch
/// reads it after taking the sealer's lock and writes no pending entry itself, so each
/// entry it sees was committed before: it seals them all, where the sealer, which may run
/// beside transactions still writing pending entries, waits until every older
/// transaction has ended ([`PENDING_AUDIT`]).
static HEAD_AND_PENDING: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT h.seq, h.digest, {p_cols} FROM audit_chain_head h LEFT JOIN LATERAL (
             SELECT {cols}, row_number() OVER (ORDER BY txid, id) AS n FROM audit_log
             WHERE seq IS NULL ORDER BY txid, id LIMIT $1) p ON true
         WHERE h.id = 1 ORDER BY p.n",
        cols = audit_columns(),
        p_cols = AuditEventRow::COLUMNS
            .iter()
            .chain(AuditSealRow::COLUMNS)
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    ))
});

/// Where the entry's id is among the audit columns ([`audit_columns`]).
const PENDING_ID_AT: usize = AuditEventRow::COLUMNS.len();

/// One statement: the seals of pending entries (`$1`–`$4`), the new entries inserted
/// sealed (the event's columns, then `seq`, `prev_digest`, `digest`, in order), and the
/// head moved past both.
static EXTEND_CHAIN: LazyLock<&'static str> = LazyLock::new(|| {
    let first = 5;
    let n = AuditEventRow::COLUMNS.len();
    String::leak(format!(
        "WITH seals AS ({SEAL_PENDING}),
         sealed AS (
             INSERT INTO audit_log ({cols}, seq, prev_digest, digest)
             SELECT {cols}, seq, prev_digest, digest
             FROM unnest({arrays}, ${seq}::int8[], ${prev}::text[], ${digest}::text[])
                 WITH ORDINALITY AS t({cols}, seq, prev_digest, digest, n)
             ORDER BY n
         )
         UPDATE audit_chain_head SET seq = ${head_seq}, digest = ${head_digest} WHERE id = 1",
        cols = AuditEventRow::columns(None),
        arrays = AuditEventRow::arrays(first),
        seq = first + n,
        prev = first + n + 1,
        digest = first + n + 2,
        head_seq = first + n + 3,
        head_digest = first + n + 4,
    ))
});

/// Binds [`EXTEND_CHAIN`].
fn bind_extension<'q>(
    seals: &[Seal],
    rows: &[SealedAuditRow],
    head: &ChainHead,
    q: PgQuery<'q>,
) -> PgQuery<'q> {
    let q = bind_seals(seals, q);
    let events: Vec<AuditEventRow> = rows.iter().map(|r| r.event.clone()).collect();
    AuditEventRow::bind_arrays(&events, q)
        .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.prev_digest.clone())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.digest.clone()).collect::<Vec<_>>())
        .bind(head.seq)
        .bind(head.digest.clone())
}

/// Binds the seals' ids, positions, previous digests and digests, one array each
/// (`$1`–`$4` of [`SEAL_PENDING`], and of [`EXTEND_CHAIN`] which starts with it).
fn bind_seals<'q>(seals: &[Seal], q: PgQuery<'q>) -> PgQuery<'q> {
    q.bind(seals.iter().map(|s| s.id).collect::<Vec<_>>())
        .bind(seals.iter().map(|s| s.seq).collect::<Vec<_>>())
        .bind(
            seals
                .iter()
                .map(|s| s.prev_digest.clone())
                .collect::<Vec<_>>(),
        )
        .bind(seals.iter().map(|s| s.digest.clone()).collect::<Vec<_>>())
}

/// Writes the chain columns of pending entries (`$1`–`$4`: ids, positions, previous digests,
/// digests).
const SEAL_PENDING: &str =
    "UPDATE audit_log a SET seq = s.seq, prev_digest = s.prev, digest = s.digest
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) AS s(id, seq, prev, digest)
             WHERE a.id = s.id";

/// Serialises whoever extends the chain, across instances, until the transaction ends.
async fn take_sealer_lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEALER_LOCK)
        .execute(conn)
        .await
        .map(|_| ())
}

impl PgStore {
    /// The pending-entries query ([`PENDING_AUDIT`]).
    pub(crate) fn pending_audit() -> &'static str {
        *PENDING_AUDIT
    }

    /// The sealer's transaction, holding the sealer lock.
    pub(crate) async fn begin_sealing(&self) -> Result<WriteTx<Postgres>, sqlx::Error> {
        let mut tx = self.write().await?;
        take_sealer_lock(&mut tx).await?;
        Ok(tx)
    }

    /// Seals `events` as they are inserted, in the caller's transaction (a batch of call
    /// changes), in three round trips: takes the sealer lock (held until the commit); reads
    /// the head with the pending entries of transactions already committed
    /// ([`HEAD_AND_PENDING`], a statement begun after the lock, so it sees the last
    /// sealer's commit); then seals those, inserts `events` sealed after them and moves the
    /// head ([`EXTEND_CHAIN`]). Entries committed before the batch are thus always chained
    /// before its own, even while some older transaction elsewhere in the cluster keeps the
    /// sealer waiting.
    pub(crate) async fn insert_sealed(
        conn: &mut PgConnection,
        events: Vec<AuditEventRow>,
    ) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        take_sealer_lock(conn)
            .await
            .map_err(unexpected("sealer lock"))?;
        let rows = sqlx::query(*HEAD_AND_PENDING)
            .bind(crate::audit::SEAL_BATCH)
            .fetch_all(&mut *conn)
            .await
            .map_err(unexpected("chain head and pending audit"))?;
        let head = crate::audit::head(match rows.first() {
            Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
            None => None,
        });
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<i64>, _>(2 + PENDING_ID_AT)?.is_some() {
                pending.push(crate::audit::entry_at(row, 2)?);
            }
        }
        let (seals, mut head) = crate::audit::seal(&head, &pending);
        let sealed = crate::audit::sealed_rows(&mut head, events)?;
        bind_extension(&seals, &sealed, &head, sqlx::query(*EXTEND_CHAIN))
            .execute(&mut *conn)
            .await
            .map_err(unexpected("extending the audit chain"))?;
        Ok(())
    }

    /// Writes the chain columns of sealed entries, in one statement.
    pub(crate) async fn write_seals(conn: &mut PgConnection, seals: &[Seal]) -> anyhow::Result<()> {
        bind_seals(seals, sqlx::query(SEAL_PENDING))
            .execute(conn)
            .await
            .map_err(unexpected("sealing"))?;
        Ok(())
    }
}
