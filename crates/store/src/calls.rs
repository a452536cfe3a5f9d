//! [`CallStore`](call_center::CallStore) for both backends: the read side, redaction,
//! retention and receipt pruning are written once here; a backend provides `load_snapshot`,
//! `apply_change` and `insert_receipts` (where one statement per webhook matters), plus
//! `pool`, `write()` and `insert_audit`.

macro_rules! call_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl call_center::CallStore for $store {
            fn committed(&self, call_sid: &str) -> Option<call_center::CallState> {
                self.committed_state(call_sid)
            }

            #[tracing::instrument(skip_all, err)]
            async fn load(
                &self,
                call_sid: &str,
                receipt_keys: &[String],
            ) -> Result<call_center::Snapshot, call_center::CallStoreError> {
                Ok(self.load_snapshot(call_sid, receipt_keys).await?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn apply(
                &self,
                change: &call_center::CallChange,
            ) -> Result<call_center::Applied, call_center::CallStoreError> {
                Ok(self.apply_change(change).await?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn record_receipts(
                &self,
                receipts: &[call_center::Receipt],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<call_center::Applied, call_center::CallStoreError> {
                let rows = crate::rows::receipts(receipts, now);
                match self.insert_receipts(&rows).await {
                    Ok(()) => Ok(call_center::Applied::Yes),
                    Err(e) if crate::common::is_unique_violation(&e, "webhook_receipts") => {
                        Ok(call_center::Applied::Conflict)
                    }
                    Err(e) => Err(anyhow::Error::new(e).context("recording receipts").into()),
                }
            }

            #[tracing::instrument(skip_all, err)]
            async fn call_for_leg(
                &self,
                leg_sid: &str,
            ) -> Result<Option<String>, call_center::CallStoreError> {
                Ok(sqlx::query_scalar::<$db, String>(
                    "SELECT call_sid FROM offers WHERE leg_sid = $1 LIMIT 1",
                )
                .bind(leg_sid)
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::common::unexpected("leg lookup"))?)
            }


            #[tracing::instrument(skip_all, err)]
            async fn get(
                &self,
                call_sid: &str,
            ) -> Result<Option<call_center::Call>, call_center::CallStoreError> {
                let row: Option<crate::schema::CallRow> =
                    sqlx::query_as::<$db, _>(*crate::common::sql::CALL_BY_SID)
                        .bind(call_sid)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("get call"))?;
                Ok(row.map(call_center::Call::try_from).transpose()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn list(
                &self,
                filter: &call_center::CallFilter,
            ) -> Result<Vec<call_center::Call>, call_center::CallStoreError> {
                let rows: Vec<crate::schema::CallRow> =
                    sqlx::query_as::<$db, _>(*crate::common::sql::CALLS_LIST)
                        .bind(filter.status.map(|s| s.as_str()))
                        .bind(i64::from(filter.limit))
                        .bind(filter.answered_by.map(|a| crate::types::SqlId(a.0)))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("list calls"))?;
                Ok(rows
                    .into_iter()
                    .map(call_center::Call::try_from)
                    .collect::<anyhow::Result<_>>()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn redact(
                &self,
                call_sid: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<call_center::Redaction, call_center::CallStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let done = sqlx::query::<$db>(
                    "UPDATE calls SET recording_url = NULL, voicemail_recording_url = NULL, \
                     voicemail_transcription = NULL, redacted_at = $2, version = version + 1, \
                     updated_at = $2 WHERE call_sid = $1 AND redacted_at IS NULL",
                )
                .bind(call_sid)
                .bind(crate::types::SqlTime(now))
                .execute(&mut *tx)
                .await
                .map_err(unexpected("redact"))?;
                if done.rows_affected() == 0 {
                    let exists: i64 =
                        sqlx::query_scalar::<$db, _>("SELECT count(*) FROM calls WHERE call_sid = $1")
                            .bind(call_sid)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(unexpected("redact lookup"))?;
                    return Ok(if exists > 0 {
                        call_center::Redaction::AlreadyRedacted
                    } else {
                        call_center::Redaction::NotFound
                    });
                }
                Self::commit_audited(tx, &audit).await?;
                Ok(call_center::Redaction::Redacted)
            }

            #[tracing::instrument(skip_all, err)]
            async fn calls_to_redact(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<String>, call_center::CallStoreError> {
                Ok(sqlx::query_scalar::<$db, String>(
                    "SELECT call_sid FROM calls WHERE redacted_at IS NULL AND started_at < $1 \
                     AND (recording_url IS NOT NULL OR voicemail_recording_url IS NOT NULL \
                     OR voicemail_transcription IS NOT NULL) ORDER BY started_at LIMIT $2",
                )
                .bind(crate::types::SqlTime(before))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(crate::common::unexpected("retention scan"))?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn calls_to_reconcile(
                &self,
                silent_before: chrono::DateTime<chrono::Utc>,
                stray_before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<String>, call_center::CallStoreError> {
                // Calls not over are few (those in progress), found by calls_status_started_at;
                // ringing offers by offers_ringing.
                Ok(sqlx::query_scalar::<$db, String>(
                    "SELECT call_sid FROM calls \
                     WHERE status IN ('ringing', 'dialing', 'answered', 'voicemail') AND updated_at < $1 \
                     UNION \
                     SELECT o.call_sid FROM offers o JOIN calls c ON c.call_sid = o.call_sid \
                     WHERE o.state = 'ringing' AND c.updated_at < $3 \
                     AND (c.status = 'completed' OR NOT c.round_open OR o.attempt < c.attempts) \
                     ORDER BY 1 LIMIT $2",
                )
                .bind(crate::types::SqlTime(silent_before))
                .bind(i64::from(limit))
                .bind(crate::types::SqlTime(stray_before))
                .fetch_all(&self.pool)
                .await
                .map_err(crate::common::unexpected("reconciler scan"))?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn prune_receipts(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, call_center::CallStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let done = sqlx::query::<$db>("DELETE FROM webhook_receipts WHERE received_at < $1")
                    .bind(crate::types::SqlTime(before))
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("prune receipts"))?;
                tx.commit().await.map_err(unexpected("commit"))?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use call_store;
