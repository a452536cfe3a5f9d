//! [`VoicemailStore`](call_center::VoicemailStore) for both backends, one text for both.
//! An item is a call that reached voicemail joined with its `voicemail_inbox` row (none:
//! `new`). A change first makes sure the row exists, then reads it locked (`$lock`: `FOR
//! UPDATE OF v` on PostgreSQL, never the call's row; SQLite's write transaction already is), so two supervisors
//! assigning at once are applied one after the other.

use call_center::{InboxState, Voicemail};

use crate::types::{SqlId, SqlTime};

/// The item's columns, from `calls c` and `voicemail_inbox v`.
const ITEM: &str = "SELECT c.call_sid, c.from_number, c.voicemail_started_at AS left_at, \
     c.voicemail_duration_seconds AS duration_seconds, c.voicemail_transcription AS transcription, \
     c.voicemail_recording_url AS recording_url, v.assigned_to, v.assigned_at, v.done_at, v.done_by \
     FROM calls c ";

/// The state an item's row says, in SQL (for the list filter).
const STATE: &str = "CASE WHEN v.done_at IS NOT NULL THEN 'done' \
     WHEN v.assigned_to IS NOT NULL THEN 'assigned' ELSE 'new' END";

pub(crate) mod sql {
    use std::sync::LazyLock;

    use super::{ITEM, STATE};

    /// Items in state `$1` (null: any) owned by `$2` (null: anyone), newest first, `$3` at most.
    pub(crate) static LIST: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{ITEM}LEFT JOIN voicemail_inbox v ON v.call_sid = c.call_sid \
             WHERE c.voicemail_started_at IS NOT NULL \
             AND ($1 IS NULL OR {STATE} = $1) AND ($2 IS NULL OR v.assigned_to = $2) \
             ORDER BY c.voicemail_started_at DESC, c.call_sid DESC LIMIT $3"
        )
    });

    /// One item.
    pub(crate) static ONE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{ITEM}LEFT JOIN voicemail_inbox v ON v.call_sid = c.call_sid \
             WHERE c.call_sid = $1 AND c.voicemail_started_at IS NOT NULL"
        )
    });

    /// One item whose row exists, to be read locked (the backend appends its lock).
    pub(crate) static ONE_KEPT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{ITEM}JOIN voicemail_inbox v ON v.call_sid = c.call_sid \
             WHERE c.call_sid = $1 AND c.voicemail_started_at IS NOT NULL"
        )
    });

    /// The item's row, when the call reached voicemail.
    pub(crate) const ENSURE: &str = "INSERT INTO voicemail_inbox (call_sid) \
         SELECT call_sid FROM calls WHERE call_sid = $1 AND voicemail_started_at IS NOT NULL \
         ON CONFLICT (call_sid) DO NOTHING";

    /// Gives item `$1` to `$2` at `$3`.
    pub(crate) const ASSIGN: &str =
        "UPDATE voicemail_inbox SET assigned_to = $2, assigned_at = $3 WHERE call_sid = $1";

    /// Marks item `$1` done at `$2` by `$3`.
    pub(crate) const FINISH: &str =
        "UPDATE voicemail_inbox SET done_at = $2, done_by = $3 WHERE call_sid = $1";
}

/// A row of [`sql::LIST`] and its siblings.
#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    call_sid: String,
    from_number: String,
    left_at: SqlTime,
    duration_seconds: Option<i64>,
    transcription: Option<String>,
    recording_url: Option<String>,
    assigned_to: Option<SqlId>,
    assigned_at: Option<SqlTime>,
    done_at: Option<SqlTime>,
    done_by: Option<String>,
}

impl From<ItemRow> for Voicemail {
    fn from(r: ItemRow) -> Self {
        let state = InboxState::of(r.done_at.is_some(), r.assigned_to.is_some());
        Self {
            call_sid: r.call_sid,
            from: r.from_number,
            left_at: r.left_at.0,
            duration_seconds: r.duration_seconds,
            transcription: r.transcription,
            recording_url: r.recording_url,
            state,
            assigned_to: r.assigned_to.map(|id| agents::AgentId(id.0)),
            assigned_at: r.assigned_at.map(|t| t.0),
            done_at: r.done_at.map(|t| t.0),
            done_by: r.done_by,
        }
    }
}

/// [`VoicemailStore`](call_center::VoicemailStore) for a backend (part of
/// [`crate::common::backend`]).
macro_rules! voicemail_store {
    ($store:ty, $db:ty, $lock:literal) => {
        impl $store {
            /// Makes sure the item's row exists and reads it locked, in `tx`.
            async fn kept_voicemail(
                tx: &mut <$db as sqlx::Database>::Connection,
                call_sid: &str,
            ) -> Result<call_center::Voicemail, call_center::VoicemailStoreError> {
                use crate::common::unexpected;
                use crate::voicemails::sql;
                // Only the inbox row is locked, never the call's (the call flow writes it).
                static LOCKED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    let lock = if $lock.is_empty() {
                        ""
                    } else {
                        " FOR UPDATE OF v"
                    };
                    format!("{}{lock}", *sql::ONE_KEPT)
                });
                sqlx::query::<$db>(sql::ENSURE)
                    .bind(call_sid)
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("voicemail row"))?;
                let row: Option<crate::voicemails::ItemRow> =
                    sqlx::query_as::<$db, _>(LOCKED.as_str())
                        .bind(call_sid)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unexpected("voicemail"))?;
                row.map(Into::into)
                    .ok_or(call_center::VoicemailStoreError::NotFound)
            }
        }

        #[async_trait::async_trait]
        impl call_center::VoicemailStore for $store {
            #[tracing::instrument(skip_all, err)]
            async fn voicemails(
                &self,
                filter: &call_center::InboxFilter,
            ) -> Result<Vec<call_center::Voicemail>, call_center::VoicemailStoreError> {
                let rows: Vec<crate::voicemails::ItemRow> =
                    sqlx::query_as::<$db, _>(crate::voicemails::sql::LIST.as_str())
                        .bind(filter.state.map(call_center::InboxState::as_str))
                        .bind(filter.assigned_to.map(|a| crate::types::SqlId(a.0)))
                        .bind(i64::from(filter.limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("voicemails"))?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            #[tracing::instrument(skip_all, err)]
            async fn voicemail(
                &self,
                call_sid: &str,
            ) -> Result<Option<call_center::Voicemail>, call_center::VoicemailStoreError> {
                let row: Option<crate::voicemails::ItemRow> =
                    sqlx::query_as::<$db, _>(crate::voicemails::sql::ONE.as_str())
                        .bind(call_sid)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("voicemail"))?;
                Ok(row.map(Into::into))
            }

            #[tracing::instrument(skip_all, err)]
            async fn assign_voicemail(
                &self,
                call_sid: &str,
                agent: ::agents::AgentId,
                now: chrono::DateTime<chrono::Utc>,
                audit: call_center::voicemail::InboxAudit<'_>,
            ) -> Result<call_center::Voicemail, call_center::VoicemailStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let before = Self::kept_voicemail(&mut *tx, call_sid).await?;
                if before.state == call_center::InboxState::Done {
                    return Err(call_center::VoicemailStoreError::AlreadyDone);
                }
                sqlx::query::<$db>(crate::voicemails::sql::ASSIGN)
                    .bind(call_sid)
                    .bind(crate::types::SqlId(agent.0))
                    .bind(crate::types::SqlTime(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("assigning a voicemail"))?;
                let after = Self::kept_voicemail(&mut *tx, call_sid).await?;
                Self::commit_audited(tx, &audit(&before)).await?;
                Ok(after)
            }

            #[tracing::instrument(skip_all, err)]
            async fn finish_voicemail(
                &self,
                call_sid: &str,
                by: &::audit::Actor,
                owner: Option<::agents::AgentId>,
                now: chrono::DateTime<chrono::Utc>,
                audit: call_center::voicemail::InboxAudit<'_>,
            ) -> Result<call_center::Voicemail, call_center::VoicemailStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let before = Self::kept_voicemail(&mut *tx, call_sid).await?;
                if owner.is_some_and(|o| before.assigned_to != Some(o)) {
                    return Err(call_center::VoicemailStoreError::NotOwner);
                }
                if before.state == call_center::InboxState::Done {
                    return Ok(before);
                }
                sqlx::query::<$db>(crate::voicemails::sql::FINISH)
                    .bind(call_sid)
                    .bind(crate::types::SqlTime(now))
                    .bind(by.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("finishing a voicemail"))?;
                let after = Self::kept_voicemail(&mut *tx, call_sid).await?;
                Self::commit_audited(tx, &audit(&before)).await?;
                Ok(after)
            }
        }
    };
}

pub(crate) use voicemail_store;
