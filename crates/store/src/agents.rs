//! [`AgentStore`] for both backends, written once: every statement here has the same text on
//! PostgreSQL and SQLite. A backend provides `pool`, `write()` (a [`crate::common::WriteTx`])
//! and `insert_audit`; `$lock` is what makes the heartbeat's read of the previous presence
//! (and pause)
//! exclusive (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already is).

macro_rules! agent_store {
    ($store:ty, $db:ty, $lock:literal) => {
        impl $store {
            /// One agent by id, its row locked for the rest of the transaction.
            fn locked_agent_sql() -> &'static str {
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!("{}{}", *crate::common::sql::AGENT_BY_ID, $lock)
                });
                SQL.as_str()
            }
        }

        #[async_trait::async_trait]
        impl ::agents::AgentStore for $store {
            #[tracing::instrument(skip_all, err)]
            async fn insert(
                &self,
                agent: &::agents::Agent,
                token_hash: &str,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<(), ::agents::AgentStoreError> {
                use crate::common::{agent_write_error, sql, unexpected};
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                crate::schema::AgentRow::from(agent)
                    .bind(sqlx::query::<$db>(*sql::AGENT_INSERT))
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(agent_write_error)?;
                Self::commit_audited(tx, &audit).await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, err)]
            async fn get(
                &self,
                id: ::agents::AgentId,
            ) -> Result<Option<::agents::Agent>, ::agents::AgentStoreError> {
                let row = self
                    .agent_row(crate::common::AgentKey::Id(crate::types::SqlId(id.0)))
                    .await?;
                Ok(row.map(::agents::Agent::try_from).transpose()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn get_many(
                &self,
                ids: &[::agents::AgentId],
            ) -> Result<Vec<::agents::Agent>, ::agents::AgentStoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut rows = self.agent_rows(ids).await?;
                let mut agents = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(at) = rows.iter().position(|r| r.id.0 == id.0) {
                        agents.push(::agents::Agent::try_from(rows.swap_remove(at))?);
                    }
                }
                Ok(agents)
            }

            #[tracing::instrument(skip_all, err)]
            async fn agent_for_token(
                &self,
                token_hash: &str,
            ) -> Result<Option<::agents::AgentId>, ::agents::AgentStoreError> {
                let id: Option<crate::types::SqlId> = sqlx::query_scalar::<$db, _>(
                    "SELECT id FROM agents WHERE heartbeat_token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(crate::common::unexpected("token lookup"))?;
                Ok(id.map(|i| ::agents::AgentId(i.0)))
            }

            #[tracing::instrument(skip_all, err)]
            async fn find_by_sip_key(
                &self,
                key: &str,
            ) -> Result<Option<::agents::Agent>, ::agents::AgentStoreError> {
                let row = self.agent_row(crate::common::AgentKey::SipKey(key)).await?;
                Ok(row.map(::agents::Agent::try_from).transpose()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn list(
                &self,
                status: Option<::agents::EffectiveStatus>,
                liveness: &::agents::Liveness,
            ) -> Result<Vec<::agents::Agent>, ::agents::AgentStoreError> {
                use crate::common::sql;
                use ::agents::EffectiveStatus as S;
                let cutoff = crate::types::SqlTime(liveness.cutoff);
                let now = crate::types::SqlTime(liveness.now);
                let query = match status {
                    None => sqlx::query_as::<$db, crate::schema::AgentRow>(*sql::AGENTS_ALL),
                    Some(S::Available) => sqlx::query_as(*sql::AGENTS_AVAILABLE)
                        .bind(cutoff)
                        .bind(now),
                    Some(S::Busy) => sqlx::query_as(*sql::AGENTS_BUSY).bind(cutoff).bind(now),
                    Some(S::Paused) => sqlx::query_as(*sql::AGENTS_PAUSED).bind(cutoff),
                    Some(S::Offline) => sqlx::query_as(*sql::AGENTS_OFFLINE).bind(cutoff),
                };
                let rows = query
                    .fetch_all(&self.pool)
                    .await
                    .map_err(crate::common::unexpected("list agents"))?;
                Ok(rows
                    .into_iter()
                    .map(::agents::Agent::try_from)
                    .collect::<anyhow::Result<_>>()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn update(
                &self,
                id: ::agents::AgentId,
                patch: &::agents::AgentPatch,
                now: chrono::DateTime<chrono::Utc>,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<::agents::Agent, ::agents::AgentStoreError> {
                use crate::common::{agent_write_error, sql, unexpected};
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let row: crate::schema::AgentRow = sqlx::query_as::<$db, _>(*sql::AGENT_UPDATE)
                    .bind(crate::types::SqlId(id.0))
                    .bind(patch.name.as_ref().map(|n| n.as_str().to_owned()))
                    .bind(patch.sip_uri.as_ref().map(|u| u.as_str().to_owned()))
                    .bind(patch.sip_uri.as_ref().map(|u| u.key().to_owned()))
                    .bind(patch.presence.as_ref().map(|p| p.presence.as_str()))
                    .bind(crate::types::SqlTime(now))
                    .bind(crate::agents::pause_of(patch.presence.as_ref()))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(agent_write_error)?
                    .ok_or(::agents::AgentStoreError::NotFound)?;
                Self::commit_audited(tx, &audit).await?;
                Ok(::agents::Agent::try_from(row)?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn heartbeat(
                &self,
                id: ::agents::AgentId,
                presence: Option<&::agents::PresenceState>,
                now: chrono::DateTime<chrono::Utc>,
                on_change: ::agents::PresenceAudit<'_>,
            ) -> Result<::agents::Agent, ::agents::AgentStoreError> {
                use crate::common::{sql, unexpected};
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let previous: Option<crate::schema::AgentRow> =
                    sqlx::query_as::<$db, _>(Self::locked_agent_sql())
                        .bind(crate::types::SqlId(id.0))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unexpected("heartbeat"))?;
                let previous = ::agents::Agent::try_from(
                    previous.ok_or(::agents::AgentStoreError::NotFound)?,
                )?
                .presence_state();
                let row: crate::schema::AgentRow = sqlx::query_as::<$db, _>(*sql::AGENT_HEARTBEAT)
                    .bind(crate::types::SqlId(id.0))
                    .bind(crate::types::SqlTime(now))
                    .bind(presence.map(|p| p.presence.as_str()))
                    .bind(crate::agents::pause_of(presence))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unexpected("heartbeat"))?;
                let agent = ::agents::Agent::try_from(row)?;
                let events = if previous == agent.presence_state() {
                    Vec::new()
                } else {
                    on_change(&previous, &agent.presence_state())
                };
                Self::commit_audited(tx, &events).await?;
                Ok(agent)
            }

            #[tracing::instrument(skip_all, err)]
            async fn release(
                &self,
                id: ::agents::AgentId,
                call: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
                audit: ::agents::ReleaseAudit<'_>,
            ) -> Result<Option<String>, ::agents::AgentStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let held: Option<String> = sqlx::query_scalar::<$db, Option<String>>(concat!(
                    "SELECT current_call_sid FROM agents WHERE id = $1",
                    $lock
                ))
                .bind(crate::types::SqlId(id.0))
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("release"))?
                .ok_or(::agents::AgentStoreError::NotFound)?;
                let Some(held) = held.filter(|held| call.is_none_or(|c| c == held)) else {
                    return Ok(None);
                };
                sqlx::query::<$db>(
                    "UPDATE agents SET current_call_sid = NULL, idle_since = $2 WHERE id = $1",
                )
                .bind(crate::types::SqlId(id.0))
                .bind(crate::types::SqlTime(now))
                .execute(&mut *tx)
                .await
                .map_err(unexpected("release"))?;
                Self::commit_audited(tx, &audit(&held)).await?;
                Ok(Some(held))
            }

            #[tracing::instrument(skip_all, err)]
            async fn end_wrap_up(
                &self,
                id: ::agents::AgentId,
                now: chrono::DateTime<chrono::Utc>,
                audit: ::agents::WrapUpAudit<'_>,
            ) -> Result<::agents::Agent, ::agents::AgentStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let row: crate::schema::AgentRow =
                    sqlx::query_as::<$db, _>(Self::locked_agent_sql())
                        .bind(crate::types::SqlId(id.0))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unexpected("ending a wrap-up"))?
                        .ok_or(::agents::AgentStoreError::NotFound)?;
                let mut agent = ::agents::Agent::try_from(row)?;
                let Some(until) = agent.wrap_up_until(now) else {
                    return Ok(agent);
                };
                sqlx::query::<$db>("UPDATE agents SET idle_since = $2 WHERE id = $1")
                    .bind(crate::types::SqlId(id.0))
                    .bind(crate::types::SqlTime(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("ending a wrap-up"))?;
                Self::commit_audited(tx, &audit(until)).await?;
                agent.idle_since = now;
                Ok(agent)
            }

            #[tracing::instrument(skip_all, err)]
            async fn pause_for_misses(
                &self,
                misses: i32,
                reason: &::agents::PauseReason,
                now: chrono::DateTime<chrono::Utc>,
                audit: ::agents::MissesAudit<'_>,
            ) -> Result<Vec<::agents::AgentId>, ::agents::AgentStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let rows: Vec<(crate::types::SqlId, i32)> = sqlx::query_as::<$db, _>(
                    "UPDATE agents SET paused_reason = $1, updated_at = $2, presence_since = $2 \
                     WHERE missed_in_a_row >= $3 AND presence = 'available' \
                     AND paused_reason IS NULL RETURNING id, missed_in_a_row",
                )
                .bind(reason.as_str())
                .bind(crate::types::SqlTime(now))
                .bind(misses)
                .fetch_all(&mut *tx)
                .await
                .map_err(unexpected("pausing agents for missed offers"))?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let mut events = Vec::new();
                let mut paused = Vec::with_capacity(rows.len());
                for (id, in_a_row) in rows {
                    let id = ::agents::AgentId(id.0);
                    events.extend(audit(id, in_a_row));
                    paused.push(id);
                }
                Self::commit_audited(tx, &events).await?;
                paused.sort();
                Ok(paused)
            }

            #[tracing::instrument(skip_all, err)]
            async fn add_sign_in_link(
                &self,
                id: ::agents::AgentId,
                token_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<(), ::agents::AgentStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                sqlx::query::<$db>("DELETE FROM sign_in_links WHERE expires_at < $1")
                    .bind(crate::types::SqlTime(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("forgetting expired sign-in links"))?;
                let stored = sqlx::query::<$db>(
                    "INSERT INTO sign_in_links (token_hash, agent_id, created_at, expires_at) \
                     SELECT $1, id, $3, $4 FROM agents WHERE id = $2",
                )
                .bind(token_hash)
                .bind(crate::types::SqlId(id.0))
                .bind(crate::types::SqlTime(now))
                .bind(crate::types::SqlTime(expires_at))
                .execute(&mut *tx)
                .await
                .map_err(unexpected("storing a sign-in link"))?;
                if stored.rows_affected() == 0 {
                    return Err(::agents::AgentStoreError::NotFound);
                }
                Self::commit_audited(tx, &audit).await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, err)]
            async fn use_sign_in_link(
                &self,
                token_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: ::agents::SignInAudit<'_>,
            ) -> Result<Option<::agents::AgentId>, ::agents::AgentStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let agent: Option<crate::types::SqlId> = sqlx::query_scalar::<$db, _>(
                    "UPDATE sign_in_links SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     RETURNING agent_id",
                )
                .bind(token_hash)
                .bind(crate::types::SqlTime(now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("using a sign-in link"))?;
                let Some(agent) = agent.map(|id| ::agents::AgentId(id.0)) else {
                    return Ok(None);
                };
                Self::commit_audited(tx, &audit(agent)).await?;
                Ok(Some(agent))
            }

            #[tracing::instrument(skip_all, err)]
            async fn delete(
                &self,
                id: ::agents::AgentId,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<(), ::agents::AgentStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let done = sqlx::query::<$db>("DELETE FROM agents WHERE id = $1")
                    .bind(crate::types::SqlId(id.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("delete agent"))?;
                if done.rows_affected() == 0 {
                    return Err(::agents::AgentStoreError::NotFound);
                }
                Self::commit_audited(tx, &audit).await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, err)]
            async fn available_now(
                &self,
                liveness: &::agents::Liveness,
                limit: u32,
            ) -> Result<Vec<::agents::Candidate>, ::agents::AgentStoreError> {
                let rows: Vec<crate::common::FreeAgentRow> =
                    sqlx::query_as::<$db, _>(crate::common::sql::AVAILABLE_NOW)
                        .bind(crate::types::SqlTime(liveness.cutoff))
                        .bind(i64::from(limit))
                        .bind(crate::types::SqlTime(liveness.now))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("available agents"))?;
                Ok(crate::common::candidates(rows)?)
            }
        }
    };
}

pub(crate) use agent_store;

/// The stored pause of a presence change (`None`: no pause, or no change).
pub(crate) fn pause_of(state: Option<&::agents::PresenceState>) -> Option<&str> {
    state.and_then(|s| s.paused_reason.as_ref().map(::agents::PauseReason::as_str))
}
