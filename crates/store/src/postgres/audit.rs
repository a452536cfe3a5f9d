//! Sealing on PostgreSQL: under an advisory lock (one sealer across instances), only the
//! entries of transactions older than every transaction still running, so a late commit is
//! never skipped.

use std::sync::LazyLock;

use ::audit::chain::Seal;
use sqlx::{PgConnection, Postgres};

use super::PgStore;
use crate::common::{WriteTx, unexpected};
use crate::audit::SealedAuditRow;
use crate::schema::{AuditEventRow, Table, audit_columns};

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

/// Sealed entries, in one statement: the event's columns, then `seq`, `prev_digest`,
/// `digest`, one array each, in order.
static INSERT_SEALED_AUDIT: LazyLock<&'static str> = LazyLock::new(|| {
    let n = AuditEventRow::COLUMNS.len();
    String::leak(format!(
        "INSERT INTO audit_log ({cols}, seq, prev_digest, digest) \
         SELECT {cols}, seq, prev_digest, digest \
         FROM unnest({arrays}, ${seq}::int8[], ${prev}::text[], ${digest}::text[]) WITH ORDINALITY \
         AS t({cols}, seq, prev_digest, digest, n) ORDER BY n",
        cols = AuditEventRow::columns(None),
        arrays = AuditEventRow::arrays(1),
        seq = n + 1,
        prev = n + 2,
        digest = n + 3,
    ))
});

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn bind_sealed<'q>(rows: &[SealedAuditRow], q: PgQuery<'q>) -> PgQuery<'q> {
    let events: Vec<AuditEventRow> = rows.iter().map(|r| r.event.clone()).collect();
    AuditEventRow::bind_arrays(&events, q)
        .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.prev_digest.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.digest.clone()).collect::<Vec<_>>())
}

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
    /// changes): takes the sealer lock (held until the commit), seals first what other
    /// transactions left pending and have finished, as the sealer would, then inserts
    /// `events` after them and moves the head once.
    pub(crate) async fn insert_sealed(
        conn: &mut PgConnection,
        events: Vec<AuditEventRow>,
    ) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        take_sealer_lock(conn).await.map_err(unexpected("sealer lock"))?;
        let mut head = Self::chain_head_for_sealing(conn).await?;
        let rows = sqlx::query(*PENDING_AUDIT)
            .bind(crate::audit::SEAL_BATCH)
            .fetch_all(&mut *conn)
            .await
            .map_err(unexpected("pending audit"))?;
        let (seals, after) = crate::audit::seal(&head, &crate::audit::entries!(rows)?);
        if !seals.is_empty() {
            Self::write_seals(conn, &seals).await?;
            head = after;
        }
        let sealed = crate::audit::sealed_rows(&mut head, events)?;
        bind_sealed(&sealed, sqlx::query(*INSERT_SEALED_AUDIT))
            .execute(&mut *conn)
            .await
            .map_err(unexpected("inserting sealed audit entries"))?;
        Self::set_chain_head(conn, &head).await
    }

    /// Writes the chain columns of sealed entries, in one statement.
    pub(crate) async fn write_seals(conn: &mut PgConnection, seals: &[Seal]) -> anyhow::Result<()> {
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
        .execute(conn)
        .await
        .map_err(unexpected("sealing"))?;
        Ok(())
    }
}
