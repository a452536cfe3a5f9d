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

/// Seals one statement writes at most.
pub(super) const SEALS_PER_STATEMENT: usize = 64;

/// The chain columns of `n` entries: `(id, seq, prev_digest, digest)` per entry.
fn write_seals_sql(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("({})", crate::schema::params(1 + 4 * i, 4)))
        .collect();
    format!(
        "UPDATE audit_log SET seq = e.column2, prev_digest = e.column3, digest = e.column4 \
         FROM (VALUES {}) AS e WHERE audit_log.id = e.column1",
        values.join(", ")
    )
}

pub(super) static WRITE_SEALS: LazyLock<super::MultiInsert> =
    LazyLock::new(|| super::MultiInsert::up_to(SEALS_PER_STATEMENT, write_seals_sql));

impl SqliteStore {
    /// The pending-entries query ([`PENDING_AUDIT`]).
    pub(crate) fn pending_audit() -> &'static str {
        *PENDING_AUDIT
    }

    /// The sealer's transaction: this process's turn to write.
    pub(crate) async fn begin_sealing(&self) -> Result<WriteTx<Sqlite>, sqlx::Error> {
        self.write().await
    }

    /// Writes the chain columns of sealed entries, [`SEALS_PER_STATEMENT`] per statement
    /// (the sealer holds the write turn meanwhile: one statement per entry held every
    /// webhook behind it for as long as thousands of statements took).
    pub(crate) async fn write_seals(
        conn: &mut SqliteConnection,
        seals: &[Seal],
    ) -> anyhow::Result<()> {
        for chunk in seals.chunks(SEALS_PER_STATEMENT) {
            let mut q = sqlx::query(WRITE_SEALS.rows(chunk.len()));
            for s in chunk {
                q = q
                    .bind(s.id)
                    .bind(s.seq)
                    .bind(&s.prev_digest)
                    .bind(&s.digest);
            }
            q.execute(&mut *conn).await.map_err(unexpected("sealing"))?;
        }
        Ok(())
    }
}
