//! Sealing on PostgreSQL: under an advisory lock (one sealer across instances), only the
//! entries of transactions older than every transaction still running, so a late commit is
//! never skipped.

use std::sync::LazyLock;

use ::audit::chain::Seal;
use sqlx::{PgConnection, Postgres};

use super::PgStore;
use crate::common::{WriteTx, unexpected};
use crate::schema::audit_columns;

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

impl PgStore {
    /// The pending-entries query ([`PENDING_AUDIT`]).
    pub(crate) fn pending_audit() -> &'static str {
        *PENDING_AUDIT
    }

    /// The sealer's transaction, holding the sealer lock.
    pub(crate) async fn begin_sealing(&self) -> Result<WriteTx<Postgres>, sqlx::Error> {
        let mut tx = self.write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SEALER_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
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
