//! Sealing on SQLite: one writer at a time, so id order is commit order and every pending
//! entry can be chained as soon as it is there.

use std::sync::LazyLock;

use ::audit::chain::Seal;
use sqlx::{Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::common::{WriteTx, unexpected};
use crate::schema::audit_columns;

/// Pending entries in id (= commit) order, at most `$1`.
static PENDING_AUDIT: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT {} FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT $1",
        audit_columns()
    ))
});

impl SqliteStore {
    /// The pending-entries query ([`PENDING_AUDIT`]).
    pub(crate) fn pending_audit() -> &'static str {
        *PENDING_AUDIT
    }

    /// The sealer's transaction: this process's turn to write.
    pub(crate) async fn begin_sealing(&self) -> Result<WriteTx<Sqlite>, sqlx::Error> {
        self.write().await
    }

    /// Writes the chain columns of sealed entries.
    pub(crate) async fn write_seals(
        conn: &mut SqliteConnection,
        seals: &[Seal],
    ) -> anyhow::Result<()> {
        for s in seals {
            sqlx::query(
                "UPDATE audit_log SET seq = $1, prev_digest = $2, digest = $3 WHERE id = $4",
            )
            .bind(s.seq)
            .bind(&s.prev_digest)
            .bind(&s.digest)
            .bind(s.id)
            .execute(&mut *conn)
            .await
            .map_err(unexpected("sealing"))?;
        }
        Ok(())
    }
}
