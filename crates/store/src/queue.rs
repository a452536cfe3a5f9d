//! [`QueueStore`](call_center::QueueStore) for both backends, one SQL text for both. The
//! predicates repeat the partial indexes' own text (`calls_waiting`, `calls_open_rounds`)
//! so SQLite's planner can use them too.

use call_center::{NumberPattern, PriorityRule};

use crate::types::{SqlId, SqlTime};

pub(crate) mod sql {
    use std::sync::LazyLock;

    use crate::schema::{CallRow, Table};

    /// Who is in the queue at all (waiting, or with a round reserved).
    const IN_QUEUE: &str = "status IN ('ringing', 'dialing') AND enqueued_at IS NOT NULL";

    /// The priority of caller `$1`: the longest rule equal to it, or a prefix of it.
    pub(crate) const PRIORITY_FOR: &str = "SELECT priority FROM priority_rules \
         WHERE pattern = $1 OR (substr(pattern, length(pattern), 1) = '*' \
             AND substr($1, 1, length(pattern) - 1) = substr(pattern, 1, length(pattern) - 1)) \
         ORDER BY length(pattern) DESC LIMIT 1";

    /// Every rule.
    pub(crate) const RULES: &str =
        "SELECT id, pattern, priority, label, created_at FROM priority_rules ORDER BY pattern";

    /// Sets the rule for a pattern (its id kept when it exists).
    pub(crate) const PUT_RULE: &str = "INSERT INTO priority_rules \
         (id, pattern, priority, label, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (pattern) DO UPDATE SET priority = excluded.priority, label = excluded.label \
         RETURNING id, pattern, priority, label, created_at";

    /// Removes rule `$1`.
    pub(crate) const REMOVE_RULE: &str = "DELETE FROM priority_rules WHERE id = $1";

    /// The matcher's heads: waiting since `$1` or later, fewer than `$2` rounds, `$3` at most.
    pub(crate) const HEADS: &str = "SELECT call_sid FROM calls \
         WHERE status IN ('ringing', 'dialing') AND round_open = false AND enqueued_at IS NOT NULL \
         AND enqueued_at >= $1 AND attempts < $2 \
         ORDER BY priority DESC, enqueued_at, call_sid LIMIT $3";

    /// [`HEADS`] on SQLite, held to the partial index `calls_waiting` (the waiting calls
    /// only, in the order asked for). Without statistics SQLite's planner took
    /// `calls_status_started_at` instead, then looked up every call in a round and sorted.
    pub(crate) static HEADS_SQLITE: LazyLock<String> =
        LazyLock::new(|| HEADS.replacen("FROM calls", "FROM calls INDEXED BY calls_waiting", 1));

    /// One read for a match on PostgreSQL (one round trip): the agents of
    /// [`AVAILABLE_NOW`](crate::common::sql::AVAILABLE_NOW) (`$1..$3`) as arrays in their
    /// order, and the [`HEADS`] (`$4..$6`).
    pub(crate) static MATCH_VIEW_PG: LazyLock<String> = LazyLock::new(|| {
        let heads = HEADS
            .replace("$1", "$4")
            .replace("$2", "$5")
            .replace("$3", "$6");
        format!(
            "WITH free AS MATERIALIZED ({}) SELECT ARRAY({heads}) AS heads, \
             ARRAY(SELECT id FROM free ORDER BY idle_since, id) AS ids, \
             ARRAY(SELECT sip_uri FROM free ORDER BY idle_since, id) AS sip_uris, \
             ARRAY(SELECT missed_in_a_row FROM free ORDER BY idle_since, id) AS missed",
            crate::common::sql::AVAILABLE_NOW
        )
    });

    /// Everyone in the queue, in order, `$1` at most.
    pub(crate) static QUEUED: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{}WHERE {IN_QUEUE} ORDER BY priority DESC, enqueued_at, call_sid LIMIT $1",
            CallRow::select()
        )
    });

    /// Callers ahead of (priority `$1`, enqueued `$2`, sid `$3`); calls answered since `$5`
    /// (started since `$4`).
    pub(crate) static PLACE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT (SELECT count(*) FROM calls WHERE {IN_QUEUE} \
                 AND (priority > $1 OR (priority = $1 AND (enqueued_at < $2 \
                     OR (enqueued_at = $2 AND call_sid < $3))))) AS ahead, \
             (SELECT count(*) FROM calls WHERE started_at >= $4 AND answered_at >= $5) AS answered"
        )
    });

    /// Rounds open whose delivery last moved at `$1` or before, `$2` at most.
    pub(crate) const OPEN_ROUNDS: &str = "SELECT call_sid FROM calls \
         WHERE round_open = true AND status IN ('ringing', 'dialing') AND delivery_at <= $1 \
         ORDER BY delivery_at LIMIT $2";

    /// Offers waiting for a push, `$1` at most.
    pub(crate) const PENDING_PUSHES: &str = "SELECT call_sid FROM calls \
         WHERE round_open = true AND status IN ('ringing', 'dialing') AND delivery = 'pending' \
         ORDER BY delivery_at LIMIT $1";
}

/// A `priority_rules` row.
#[derive(sqlx::FromRow)]
pub(crate) struct RuleRow {
    id: SqlId,
    pattern: String,
    priority: i32,
    label: String,
    created_at: SqlTime,
}

impl TryFrom<RuleRow> for PriorityRule {
    type Error = anyhow::Error;
    fn try_from(r: RuleRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: r.id.0,
            pattern: NumberPattern::parse(&r.pattern)
                .map_err(|e| anyhow::anyhow!("stored priority pattern {:?}: {e}", r.pattern))?,
            priority: r.priority,
            label: r.label,
            created_at: r.created_at.0,
        })
    }
}

/// [`QueueStore`](call_center::QueueStore) for a backend (part of
/// [`crate::common::backend`]).
macro_rules! queue_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl call_center::QueueStore for $store {
            #[tracing::instrument(skip_all, err)]
            async fn priority_for(&self, number: &str) -> Result<i32, call_center::CallStoreError> {
                Ok(self.priority_row(number).await?.unwrap_or(0))
            }

            #[tracing::instrument(skip_all, err)]
            async fn priority_rules(
                &self,
            ) -> Result<Vec<call_center::PriorityRule>, call_center::CallStoreError> {
                let rows: Vec<crate::queue::RuleRow> =
                    sqlx::query_as::<$db, _>(crate::queue::sql::RULES)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("priority rules"))?;
                Ok(rows
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<anyhow::Result<_>>()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn put_priority_rule(
                &self,
                rule: &call_center::PriorityRule,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<call_center::PriorityRule, call_center::CallStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let row: crate::queue::RuleRow =
                    sqlx::query_as::<$db, crate::queue::RuleRow>(crate::queue::sql::PUT_RULE)
                        .bind(crate::types::SqlId(rule.id))
                        .bind(rule.pattern.as_str())
                        .bind(rule.priority)
                        .bind(rule.label.as_str())
                        .bind(crate::types::SqlTime(rule.created_at))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(unexpected("setting a priority rule"))?;
                Self::commit_audited(tx, &audit).await?;
                Ok(row.try_into()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn remove_priority_rule(
                &self,
                id: uuid::Uuid,
                audit: Vec<::audit::NewAuditEvent>,
            ) -> Result<bool, call_center::CallStoreError> {
                use crate::common::unexpected;
                let mut tx = self.write().await.map_err(unexpected("begin"))?;
                let done = sqlx::query::<$db>(crate::queue::sql::REMOVE_RULE)
                    .bind(crate::types::SqlId(id))
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("removing a priority rule"))?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                Self::commit_audited(tx, &audit).await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, err)]
            async fn match_view(
                &self,
                want: &call_center::MatchWant,
            ) -> Result<call_center::MatchView, call_center::CallStoreError> {
                Ok(self.read_match_view(want).await?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn queued_calls(
                &self,
                limit: u32,
            ) -> Result<Vec<call_center::Call>, call_center::CallStoreError> {
                let rows: Vec<crate::schema::CallRow> =
                    sqlx::query_as::<$db, _>(crate::queue::sql::QUEUED.as_str())
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("queued calls"))?;
                Ok(rows
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<anyhow::Result<_>>()?)
            }

            #[tracing::instrument(skip_all, err)]
            async fn place(
                &self,
                call: &call_center::Call,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<call_center::QueuePlace, call_center::CallStoreError> {
                let since = now - call_center::queue::EXPECTED_WAIT_WINDOW;
                let (ahead, answered): (i64, i64) =
                    sqlx::query_as::<$db, _>(crate::queue::sql::PLACE.as_str())
                        .bind(call.priority)
                        .bind(crate::types::SqlTime(call.enqueued_at.unwrap_or(now)))
                        .bind(&call.call_sid)
                        .bind(crate::types::SqlTime(since - chrono::Duration::hours(1)))
                        .bind(crate::types::SqlTime(since))
                        .fetch_one(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("queue place"))?;
                let position = ahead + 1;
                Ok(call_center::QueuePlace {
                    position,
                    expected_wait: call_center::expected_wait(position, answered),
                })
            }

            #[tracing::instrument(skip_all, err)]
            async fn open_rounds_before(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<String>, call_center::CallStoreError> {
                Ok(
                    sqlx::query_scalar::<$db, String>(crate::queue::sql::OPEN_ROUNDS)
                        .bind(crate::types::SqlTime(before))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("open rounds"))?,
                )
            }

            #[tracing::instrument(skip_all, err)]
            async fn pending_pushes(
                &self,
                limit: u32,
            ) -> Result<Vec<String>, call_center::CallStoreError> {
                Ok(
                    sqlx::query_scalar::<$db, String>(crate::queue::sql::PENDING_PUSHES)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("pending pushes"))?,
                )
            }
        }
    };
}

pub(crate) use queue_store;
