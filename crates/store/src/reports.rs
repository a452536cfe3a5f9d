//! Reports over the SQL views (so the API, the CLI and people's own SQL agree by
//! construction), one text for both backends.

use call_center::reports::{AgentTotals, CallTotals};

/// Totals over `report_calls` for calls started in `[$1, $2)`, threshold `$3` seconds.
/// (`CAST(… AS DOUBLE PRECISION)` is a float on PostgreSQL and has REAL affinity on SQLite.)
pub(crate) const CALL_TOTALS: &str = "SELECT
        count(*) AS offered,
        count(*) FILTER (WHERE outcome = 'answered') AS answered,
        count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
        count(*) FILTER (WHERE outcome = 'voicemail') AS voicemail,
        count(*) FILTER (WHERE outcome = 'unanswered') AS unanswered,
        count(*) FILTER (WHERE outcome = 'failed') AS failed,
        count(*) FILTER (WHERE outcome = 'answered' AND wait_seconds <= $3) AS answered_within_sl,
        count(*) FILTER (WHERE outcome = 'abandoned' AND wait_seconds <= $3) AS abandoned_within_sl,
        CAST(COALESCE(sum(wait_seconds) FILTER (WHERE outcome = 'answered'), 0) AS DOUBLE PRECISION)
            AS answer_wait_sum,
        CAST(COALESCE(sum(talk_seconds) FILTER (WHERE outcome = 'answered' AND talk_seconds IS NOT NULL), 0)
            AS BIGINT) AS talk_sum,
        count(*) FILTER (WHERE outcome = 'answered' AND talk_seconds IS NOT NULL) AS talk_count,
        CAST(COALESCE(sum(wait_seconds) FILTER (WHERE outcome = 'abandoned'), 0) AS DOUBLE PRECISION)
            AS abandon_wait_sum,
        CAST(COALESCE(sum(offers), 0) AS BIGINT) AS offers
    FROM report_calls WHERE started_at >= $1 AND started_at < $2";

/// Per agent rung in `[$1, $2)`.
pub(crate) const AGENT_TOTALS: &str = "SELECT o.agent_id, a.name,
        count(*) AS offers,
        count(*) FILTER (WHERE o.state = 'answered') AS answered,
        count(*) FILTER (WHERE o.state = 'missed') AS missed,
        CAST(COALESCE(sum(o.talk_seconds) FILTER (WHERE o.state = 'answered'), 0) AS BIGINT) AS talk_seconds,
        (SELECT count(*) FROM audit_log l WHERE l.agent_id = o.agent_id
            AND l.action = 'agent_status_changed' AND l.data LIKE '%\"to_reason\":\"missed-calls\"%'
            AND l.occurred_at >= $1 AND l.occurred_at < $2) AS pauses_for_misses
    FROM offers o LEFT JOIN agents a ON a.id = o.agent_id
    WHERE o.offered_at >= $1 AND o.offered_at < $2
    GROUP BY o.agent_id, a.name
    ORDER BY a.name NULLS LAST, o.agent_id";

/// The row of [`CALL_TOTALS`].
#[derive(sqlx::FromRow)]
pub(crate) struct CallTotalsRow {
    offered: i64,
    answered: i64,
    abandoned: i64,
    voicemail: i64,
    unanswered: i64,
    failed: i64,
    answered_within_sl: i64,
    abandoned_within_sl: i64,
    answer_wait_sum: f64,
    talk_sum: i64,
    talk_count: i64,
    abandon_wait_sum: f64,
    offers: i64,
}

impl From<CallTotalsRow> for CallTotals {
    fn from(r: CallTotalsRow) -> Self {
        Self {
            offered: r.offered,
            answered: r.answered,
            abandoned: r.abandoned,
            voicemail: r.voicemail,
            unanswered: r.unanswered,
            failed: r.failed,
            answered_within_sl: r.answered_within_sl,
            abandoned_within_sl: r.abandoned_within_sl,
            answer_wait_sum: r.answer_wait_sum,
            talk_sum: r.talk_sum,
            talk_count: r.talk_count,
            abandon_wait_sum: r.abandon_wait_sum,
            offers: r.offers,
        }
    }
}

/// The row of [`AGENT_TOTALS`].
#[derive(sqlx::FromRow)]
pub(crate) struct AgentTotalsRow {
    agent_id: crate::types::SqlId,
    name: Option<String>,
    offers: i64,
    answered: i64,
    missed: i64,
    talk_seconds: i64,
    pauses_for_misses: i64,
}

impl From<AgentTotalsRow> for AgentTotals {
    fn from(r: AgentTotalsRow) -> Self {
        Self {
            agent_id: r.agent_id.0,
            name: r.name,
            offers: r.offers,
            answered: r.answered,
            missed: r.missed,
            talk_seconds: r.talk_seconds,
            pauses_for_misses: r.pauses_for_misses,
        }
    }
}

/// [`ReportStore`] for a backend (part of [`crate::common::backend`]).
macro_rules! report_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl call_center::reports::ReportStore for $store {
            #[tracing::instrument(skip_all, err)]
            async fn call_totals(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
                sl: u32,
            ) -> Result<call_center::reports::CallTotals, call_center::reports::ReportError> {
                let row: crate::reports::CallTotalsRow =
                    sqlx::query_as::<$db, _>(crate::reports::CALL_TOTALS)
                        .bind(crate::types::SqlTime(from))
                        .bind(crate::types::SqlTime(to))
                        .bind(f64::from(sl))
                        .fetch_one(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("call totals"))?;
                Ok(row.into())
            }

            #[tracing::instrument(skip_all, err)]
            async fn agent_totals(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<call_center::reports::AgentTotals>, call_center::reports::ReportError>
            {
                let rows: Vec<crate::reports::AgentTotalsRow> =
                    sqlx::query_as::<$db, _>(crate::reports::AGENT_TOTALS)
                        .bind(crate::types::SqlTime(from))
                        .bind(crate::types::SqlTime(to))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(crate::common::unexpected("agent totals"))?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            #[tracing::instrument(skip_all, err)]
            async fn set_service_level_seconds(
                &self,
                seconds: u32,
            ) -> Result<(), call_center::reports::ReportError> {
                sqlx::query::<$db>(
                    "UPDATE report_settings SET service_level_seconds = $1 WHERE id = 1",
                )
                .bind(i64::from(seconds))
                .execute(&self.pool)
                .await
                .map_err(crate::common::unexpected("report settings"))?;
                Ok(())
            }
        }
    };
}

pub(crate) use report_store;
