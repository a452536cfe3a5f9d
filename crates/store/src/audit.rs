//! [`AuditLog`](::audit::AuditLog) for both backends: appending and reading are written once;
//! sealing differs (PostgreSQL seals only below the oldest transaction still running, under
//! an advisory lock; SQLite's one writer makes id order commit order) and is the backend's
//! `seal_pending_entries`.

use ::audit::chain::{self, Seal};
use ::audit::{AuditEntry, ChainHead, NewAuditEvent};
use anyhow::Context as _;
use chrono::SubsecRound as _;

use crate::schema::{AuditEventRow, AuditSealRow, Table};
use crate::types::SqlTime;

/// Decodes the columns of [`crate::schema::audit_columns`] from position `first` of `row`.
pub(crate) fn entry_at<R>(row: &R, first: usize) -> anyhow::Result<AuditEntry>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> SqlTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> crate::types::SqlId: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<crate::types::SqlId>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let event = AuditEventRow::decode_at(row, first).context("audit row")?;
    let seal =
        AuditSealRow::decode_at(row, first + AuditEventRow::COLUMNS.len()).context("audit row")?;
    crate::rows::audit_entry(event, seal)
}

/// The chain head (the sealer appends its backend's row lock).
pub(crate) const CHAIN_HEAD: &str = "SELECT seq, digest FROM audit_chain_head WHERE id = 1";

/// Moves the chain head (in the sealer's transaction).
pub(crate) const SET_CHAIN_HEAD: &str =
    "UPDATE audit_chain_head SET seq = $1, digest = $2 WHERE id = 1";

/// Entries per sealing transaction.
pub(crate) const SEAL_BATCH: i64 = 5_000;

/// The seals of pending `entries` (in chain order) after `head`, and the head after them.
pub(crate) fn seal(head: &ChainHead, entries: &[AuditEntry]) -> (Vec<Seal>, ChainHead) {
    let pending: Vec<(i64, NewAuditEvent)> = entries.iter().map(|e| (e.id, e.event())).collect();
    chain::seal(head, &pending)
}

/// An audit entry with its chain columns, inserted as one row (a writer that holds the
/// chain's head seals its entries as it inserts them).
pub(crate) struct SealedAuditRow {
    pub(crate) event: AuditEventRow,
    pub(crate) seq: i64,
    pub(crate) prev_digest: String,
    pub(crate) digest: String,
}

/// Seals `events` after `head` (advanced past them), as the sealer would once they were
/// stored: each entry is hashed as it reads back (both databases store microseconds).
pub(crate) fn sealed_rows(
    head: &mut ChainHead,
    events: Vec<AuditEventRow>,
) -> anyhow::Result<Vec<SealedAuditRow>> {
    let entries = events
        .iter()
        .map(|event| {
            let mut stored = event.clone();
            stored.occurred_at = SqlTime(stored.occurred_at.0.trunc_subsecs(6));
            crate::rows::audit_entry(
                stored,
                AuditSealRow {
                    id: 0,
                    seq: None,
                    prev_digest: None,
                    digest: None,
                },
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (seals, new_head) = seal(head, &entries);
    *head = new_head;
    Ok(events
        .into_iter()
        .zip(seals)
        .map(|(event, seal)| SealedAuditRow {
            event,
            seq: seal.seq,
            prev_digest: seal.prev_digest,
            digest: seal.digest,
        })
        .collect())
}

/// Decodes rows selected with [`crate::schema::audit_columns`].
macro_rules! entries {
    ($rows:expr) => {
        $rows
            .iter()
            .map(|row| crate::audit::entry_at(row, 0))
            .collect::<anyhow::Result<Vec<_>>>()
    };
}

pub(crate) use entries;

/// The chain head from its row, or genesis when there is none.
pub(crate) fn head(row: Option<(i64, String)>) -> ChainHead {
    row.map_or_else(ChainHead::genesis, |(seq, digest)| ChainHead {
        seq,
        digest,
    })
}

macro_rules! audit_log {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl ::audit::AuditLog for $store {
            #[tracing::instrument(skip_all, err)]
            async fn append(
                &self,
                events: Vec<::audit::NewAuditEvent>,
            ) -> Result<(), ::audit::AuditError> {
                use crate::common::unexpected;
                let tx = self.write().await.map_err(unexpected("begin"))?;
                Self::commit_audited(tx, &events).await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, err)]
            async fn seal_pending(&self) -> Result<u64, ::audit::AuditError> {
                use crate::common::unexpected;
                let mut sealed = 0;
                loop {
                    let mut tx = self
                        .begin_sealing()
                        .await
                        .map_err(unexpected("begin seal"))?;
                    let head = Self::chain_head_for_sealing(&mut tx).await?;
                    let rows = sqlx::query::<$db>(Self::pending_audit())
                        .bind(crate::audit::SEAL_BATCH)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(unexpected("pending audit"))?;
                    let (seals, new_head) =
                        crate::audit::seal(&head, &crate::audit::entries!(rows)?);
                    Self::write_seals(&mut tx, &seals).await?;
                    Self::set_chain_head(&mut tx, &new_head).await?;
                    tx.commit().await.map_err(unexpected("commit seal"))?;
                    sealed += seals.len() as u64;
                    if (seals.len() as i64) < crate::audit::SEAL_BATCH {
                        return Ok(sealed);
                    }
                }
            }

            #[tracing::instrument(skip_all, err)]
            async fn entries(
                &self,
                filter: &::audit::AuditFilter,
            ) -> Result<Vec<::audit::AuditEntry>, ::audit::AuditError> {
                let rows = sqlx::query::<$db>(*crate::common::sql::AUDIT_ENTRIES)
                    .bind(&filter.call_sid)
                    .bind(filter.agent_id.map(crate::types::SqlId))
                    .bind(i64::from(filter.limit.unwrap_or(10_000)))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(crate::common::unexpected("list audit"))?;
                Ok(crate::audit::entries!(rows)?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn chain_page(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<::audit::AuditEntry>, ::audit::AuditError> {
                let rows = sqlx::query::<$db>(*crate::common::sql::AUDIT_CHAIN_PAGE)
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(crate::common::unexpected("chain page"))?;
                Ok(crate::audit::entries!(rows)?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn head(&self) -> Result<::audit::ChainHead, ::audit::AuditError> {
                let row: Option<(i64, String)> = sqlx::query_as::<$db, _>(
                    "SELECT seq, digest FROM audit_chain_head WHERE id = 1",
                )
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::common::unexpected("chain head"))?;
                Ok(crate::audit::head(row))
            }
        }
    };
}

pub(crate) use audit_log;
