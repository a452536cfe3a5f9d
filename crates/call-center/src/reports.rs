//! Contact-center metrics over a time range, with the definitions written down once
//! (`docs/reporting.md`). The store sums; these functions divide and round, exactly as the
//! SQL views do.
//!
//! - **Offered**: calls that started in `[from, to)`.
//! - **Wait**: to answer (`answered_at − started_at`) or to abandon (`ended_at − started_at`).
//! - **Service level** (threshold *T*): answered within *T* ÷ (offered − abandoned within
//!   *T*) × 100. Calls abandoned before *T* are neutral; voicemail, unanswered and failed
//!   calls count against it.
//! - **ASA**: mean wait of answered calls. **AHT**: mean talk time of answered calls (this
//!   product has no hold or after-call work to add).
//! - **Abandonment rate**: abandoned ÷ offered × 100.
//! - **Agent answer rate**: answered ÷ (answered + missed) × 100; rings ended by another
//!   agent's answer or by the caller (canceled, late) do not count against the agent.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

/// The store failed.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Call counts and sums over a range, as the store computes them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallTotals {
    /// Calls started in the range.
    pub offered: i64,
    /// Outcome answered.
    pub answered: i64,
    /// Outcome abandoned.
    pub abandoned: i64,
    /// Outcome voicemail.
    pub voicemail: i64,
    /// Outcome unanswered.
    pub unanswered: i64,
    /// Outcome failed.
    pub failed: i64,
    /// Answered with wait ≤ T.
    pub answered_within_sl: i64,
    /// Abandoned with wait ≤ T.
    pub abandoned_within_sl: i64,
    /// Sum of waits of answered calls, seconds.
    pub answer_wait_sum: f64,
    /// Sum of talk seconds of answered calls that have one.
    pub talk_sum: i64,
    /// Answered calls with a talk time.
    pub talk_count: i64,
    /// Sum of waits of abandoned calls (joining the queue to hanging up), seconds.
    pub abandon_wait_sum: f64,
    /// Offers made to agents for these calls.
    pub offers: i64,
}

/// One agent's offers over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTotals {
    /// The agent.
    pub agent_id: Uuid,
    /// Its name (absent once removed).
    pub name: Option<String>,
    /// Times rung.
    pub offers: i64,
    /// Answered first.
    pub answered: i64,
    /// Missed.
    pub missed: i64,
    /// Talk seconds of answered offers.
    pub talk_seconds: i64,
    /// Times it was paused after missing offers in a row (in the range).
    pub pauses_for_misses: i64,
}

/// Where the sums come from.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Call totals for calls started in `[from, to)` with service-level threshold `sl_seconds`.
    ///
    /// # Errors
    /// [`ReportError::Unexpected`].
    async fn call_totals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        sl_seconds: u32,
    ) -> Result<CallTotals, ReportError>;

    /// Per-agent totals for offers made in `[from, to)`, by agent name then id.
    ///
    /// # Errors
    /// [`ReportError::Unexpected`].
    async fn agent_totals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgentTotals>, ReportError>;

    /// Writes the service-level threshold the SQL views use.
    ///
    /// # Errors
    /// [`ReportError::Unexpected`].
    async fn set_service_level_seconds(&self, seconds: u32) -> Result<(), ReportError>;
}

/// `100 × part ÷ whole` rounded to 0.01, `None` when `whole` is 0.
#[must_use]
pub fn pct(part: i64, whole: i64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    (whole > 0).then(|| round2(100.0 * part as f64 / whole as f64))
}

/// Rounds to 0.01 (as SQL's `ROUND(x, 2)`).
#[must_use]
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `sum ÷ count` rounded to 0.01, `None` when `count` is 0.
#[must_use]
pub fn mean(sum: f64, count: i64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    (count > 0).then(|| round2(sum / count as f64))
}

/// One agent in the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSummary {
    /// The agent.
    pub agent_id: Uuid,
    /// Its name (null once removed).
    pub name: Option<String>,
    /// Times rung.
    pub offers: i64,
    /// Answered first.
    pub answered: i64,
    /// Missed.
    pub missed: i64,
    /// Talk seconds.
    pub talk_seconds: i64,
    /// answered ÷ (answered + missed) × 100.
    pub answer_rate_pct: Option<f64>,
    /// Times it was paused (`missed-calls`) after missing offers in a row.
    pub pauses_for_misses: i64,
}

/// The summary of contract section 3.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Start of the range (inclusive).
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// Calls started in the range.
    pub offered: i64,
    /// Answered by an agent.
    pub answered: i64,
    /// Caller hung up before an agent or voicemail.
    pub abandoned: i64,
    /// Reached voicemail.
    pub voicemail: i64,
    /// Every round failed and voicemail was off.
    pub unanswered: i64,
    /// The caller's call failed.
    pub failed: i64,
    /// The threshold T, seconds.
    pub service_level_seconds: u32,
    /// Answered within T ÷ (offered − abandoned within T) × 100.
    pub service_level_pct: Option<f64>,
    /// Mean wait of answered calls, seconds.
    pub asa_seconds: Option<f64>,
    /// Mean talk time of answered calls, seconds.
    pub aht_seconds: Option<f64>,
    /// Abandoned ÷ offered × 100.
    pub abandonment_rate_pct: Option<f64>,
    /// Mean wait of abandoned calls (joining the queue to hanging up), seconds.
    pub abandoned_wait_avg_seconds: Option<f64>,
    /// Offers made to agents ÷ offered calls.
    pub offers_per_call: Option<f64>,
    /// Per agent.
    pub agents: Vec<AgentSummary>,
}

impl Summary {
    /// Divides and rounds the totals.
    #[must_use]
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        sl_seconds: u32,
        t: &CallTotals,
        agents: &[AgentTotals],
    ) -> Self {
        Self {
            from,
            to,
            offered: t.offered,
            answered: t.answered,
            abandoned: t.abandoned,
            voicemail: t.voicemail,
            unanswered: t.unanswered,
            failed: t.failed,
            service_level_seconds: sl_seconds,
            service_level_pct: pct(t.answered_within_sl, t.offered - t.abandoned_within_sl),
            asa_seconds: mean(t.answer_wait_sum, t.answered),
            #[allow(clippy::cast_precision_loss)]
            aht_seconds: mean(t.talk_sum as f64, t.talk_count),
            abandonment_rate_pct: pct(t.abandoned, t.offered),
            abandoned_wait_avg_seconds: mean(t.abandon_wait_sum, t.abandoned),
            #[allow(clippy::cast_precision_loss)]
            offers_per_call: mean(t.offers as f64, t.offered),
            agents: agents
                .iter()
                .map(|a| AgentSummary {
                    agent_id: a.agent_id,
                    name: a.name.clone(),
                    offers: a.offers,
                    answered: a.answered,
                    missed: a.missed,
                    talk_seconds: a.talk_seconds,
                    answer_rate_pct: pct(a.answered, a.answered + a.missed),
                    pauses_for_misses: a.pauses_for_misses,
                })
                .collect(),
        }
    }
}

/// Computes the summary for `[from, to)` (empty, all zeros, when `from >= to`).
///
/// # Errors
/// Store failures.
pub async fn summary(
    store: &dyn ReportStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sl_seconds: u32,
) -> Result<Summary, ReportError> {
    if from >= to {
        return Ok(Summary::new(
            from,
            to,
            sl_seconds,
            &CallTotals::default(),
            &[],
        ));
    }
    let totals = store.call_totals(from, to, sl_seconds).await?;
    let agents = store.agent_totals(from, to).await?;
    Ok(Summary::new(from, to, sl_seconds, &totals, &agents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formulas() {
        let t = CallTotals {
            offered: 10,
            answered: 6,
            abandoned: 3,
            voicemail: 1,
            unanswered: 0,
            failed: 0,
            answered_within_sl: 4,
            abandoned_within_sl: 1,
            answer_wait_sum: 70.0,
            talk_sum: 600,
            talk_count: 6,
            abandon_wait_sum: 45.0,
            offers: 25,
        };
        let s = Summary::new(DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH, 20, &t, &[]);
        assert_eq!(s.service_level_pct, Some(44.44), "4 / (10 - 1)");
        assert_eq!(s.asa_seconds, Some(11.67));
        assert_eq!(s.aht_seconds, Some(100.0));
        assert_eq!(s.abandonment_rate_pct, Some(30.0));
        assert_eq!(s.abandoned_wait_avg_seconds, Some(15.0));
        assert_eq!(s.offers_per_call, Some(2.5));
        let empty = Summary::new(
            DateTime::UNIX_EPOCH,
            DateTime::UNIX_EPOCH,
            20,
            &CallTotals::default(),
            &[],
        );
        assert_eq!(
            (
                empty.service_level_pct,
                empty.asa_seconds,
                empty.abandonment_rate_pct
            ),
            (None, None, None)
        );
    }
}
