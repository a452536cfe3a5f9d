//! SQLite's side of the call store: the load (three short queries on one connection) and
//! the apply, with group commit: a change joins the queue of pending changes and waits for
//! the writer's turn; whoever gets the turn first applies every change queued by then in
//! one `BEGIN IMMEDIATE` transaction, each inside its own savepoint (a conflict or an error
//! rolls back that change alone), commits once, and only then answers each. The pages
//! several changes share (agents, the audit log's tail, indexes) are written to the WAL
//! once per batch instead of once per change.

use std::sync::LazyLock;

use agents::OfferMark;
use call_center::{Applied, CallChange, CallState, Receipt, Snapshot};
use sqlx::SqliteConnection;
use tokio::sync::oneshot;

use super::SqliteStore;
use crate::common::{is_unique_violation, unexpected};
use crate::schema::{CallRow, OfferRow, ReceiptRow, RoundOpenedRow, Table, offer_upsert_suffix};
use crate::types::SqlTime;

static INSERT_CALL: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "{} ON CONFLICT (call_sid) DO NOTHING",
        CallRow::insert(1)
    ))
});
static UPDATE_CALL: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "UPDATE calls SET {} WHERE call_sid = $1 AND version = ${}",
        CallRow::assignments(1, 1),
        CallRow::COLUMNS.len() + 1
    ))
});
static OFFERS: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "{} WHERE call_sid = $1 ORDER BY attempt, offered_at, agent_id",
        OfferRow::select()
    ))
});
static UPSERT_OFFERS: LazyLock<super::MultiInsert> = LazyLock::new(|| {
    super::MultiInsert::new(|n| format!("{}{}", OfferRow::insert_rows(n), offer_upsert_suffix()))
});
static OPEN_ROUND: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "{} ON CONFLICT (call_sid, attempt) DO NOTHING",
        RoundOpenedRow::insert(1)
    ))
});
const CLOSE_ROUND: &str = "UPDATE dial_attempts SET ended_at = $3, result = $4 \
     WHERE call_sid = $1 AND attempt = $2 AND ended_at IS NULL";
static INSERT_RECEIPT: LazyLock<&'static str> =
    LazyLock::new(|| String::leak(ReceiptRow::insert(1)));
/// An agent effect ([`crate::schema::EffectRow`] as `$1..$9`, the call `$10`, now `$11`):
/// counters added; the call engaged only if the agent holds none, released only if it holds
/// this one (then idle from the end of its wrap-up `$7`, or from now); the no-answer delay
/// `$8` only moves forward; misses in a row reset by an answer, counted by a miss; the
/// open-offer mark `$9` (reserve, ring, clear) only about this call.
static AGENT_EFFECT: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "UPDATE agents SET
        calls_answered = calls_answered + $2, calls_missed = calls_missed + $3,
        total_talk_seconds = total_talk_seconds + $4,
        idle_since = CASE WHEN $6 AND {releases} THEN COALESCE($7, $11) ELSE idle_since END,
        current_call_sid = CASE
            WHEN $5 AND current_call_sid IS NULL THEN $10
            WHEN $6 AND current_call_sid = $10 THEN NULL
            ELSE current_call_sid END,
        no_answer_until = CASE WHEN $8 IS NOT NULL AND (no_answer_until IS NULL OR no_answer_until < $8)
            THEN $8 ELSE no_answer_until END,
        missed_in_a_row = CASE WHEN $2 > 0 THEN 0 ELSE missed_in_a_row + $3 END,
        offer_ringing = CASE
            WHEN $9 = 'reserve' THEN 0
            WHEN $9 = 'reserve-ring' THEN 1
            WHEN $9 = 'ring' AND offer_call_sid = $10 THEN 1
            WHEN $9 = 'clear' AND offer_call_sid = $10 THEN 0
            ELSE offer_ringing END,
        offer_call_sid = CASE
            WHEN $9 IN ('reserve', 'reserve-ring') THEN $10
            WHEN $9 = 'clear' AND offer_call_sid = $10 THEN NULL
            ELSE offer_call_sid END
    WHERE id = $1 AND ($9 IS NULL OR $9 NOT IN ('reserve', 'reserve-ring') OR {reservable})",
        releases = crate::common::releases_sql("", "$10"),
        reservable = crate::common::reservable_sql("", "$10", "$11"),
    ))
});

/// Changes one transaction applies at most.
const BATCH_MAX: usize = 64;

/// A change waiting for the writer, and where its result goes.
struct Queued {
    change: CallChange,
    done: oneshot::Sender<anyhow::Result<Applied>>,
}

/// The changes waiting for the writer's turn.
#[derive(Default)]
pub(crate) struct Pending(std::sync::Mutex<Vec<Queued>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({})", self.lock().len())
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, queued: Queued) {
        self.lock().push(queued);
    }

    /// The oldest waiting changes (at most [`BATCH_MAX`]) whose requester still waits.
    fn take(&self) -> Vec<Queued> {
        let mut queue = self.lock();
        queue.retain(|q| !q.done.is_closed());
        let n = queue.len().min(BATCH_MAX);
        queue.drain(..n).collect()
    }
}

impl SqliteStore {
    pub(crate) async fn load_snapshot(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> anyhow::Result<Snapshot> {
        let mut conn = self.pool.acquire().await.map_err(unexpected("acquire"))?;
        let call: Option<CallRow> = sqlx::query_as(*crate::common::sql::CALL_BY_SID)
            .bind(call_sid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unexpected("load call"))?;
        let state = match call {
            Some(call) => {
                let offers: Vec<OfferRow> = sqlx::query_as(*OFFERS)
                    .bind(call_sid)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(unexpected("load offers"))?;
                Some(CallState {
                    call: call.try_into()?,
                    offers: offers
                        .into_iter()
                        .map(TryInto::try_into)
                        .collect::<anyhow::Result<_>>()?,
                })
            }
            None => None,
        };
        let mut seen = Vec::new();
        for key in receipt_keys {
            let fingerprint: Option<String> =
                sqlx::query_scalar("SELECT fingerprint FROM webhook_receipts WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(unexpected("load receipts"))?;
            if let Some(fingerprint) = fingerprint {
                seen.push(Receipt {
                    key: key.clone(),
                    fingerprint,
                });
            }
        }
        Ok(Snapshot { state, seen })
    }

    /// Queues `change` and waits for its result: applied by whoever takes the writer's
    /// turn first, this request or one queued before it (group commit). The batch runs on
    /// its own task, so a request given up on (its deadline) never cuts a batch short.
    pub(crate) async fn apply_change(&self, change: &CallChange) -> anyhow::Result<Applied> {
        let (done, mut result) = oneshot::channel();
        self.pending.push(Queued {
            change: change.clone(),
            done,
        });
        // A timeout here drops `result`: the change is skipped by the next batch.
        let turn = self.turn().await.map_err(unexpected("waiting to write"))?;
        match result.try_recv() {
            Ok(applied) => return applied,
            Err(oneshot::error::TryRecvError::Closed) => {
                return Err(anyhow::anyhow!("the batch writer dropped a call change"));
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let batch = self.pending.take();
        let store = self.clone();
        tokio::spawn(async move {
            let results = store.apply_batch(&batch).await;
            drop(turn);
            for (queued, applied) in batch.into_iter().zip(results) {
                // The requester may have given up meanwhile: nothing to tell.
                let _ = queued.done.send(applied);
            }
        });
        result
            .await
            .map_err(|_| anyhow::anyhow!("the batch writer dropped a call change"))?
    }

    /// One transaction for `batch`: each change inside a savepoint (not needed for one
    /// alone), one commit; a result per change, all failed when the transaction is.
    async fn apply_batch(&self, batch: &[Queued]) -> Vec<anyhow::Result<Applied>> {
        let failed = |what: &str, e: &sqlx::Error| -> Vec<anyhow::Result<Applied>> {
            batch
                .iter()
                .map(|_| Err(anyhow::anyhow!("{what}: {e}")))
                .collect()
        };
        let mut tx = match self.pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => return failed("begin", &e),
        };
        let alone = batch.len() == 1;
        let mut results = Vec::with_capacity(batch.len());
        for queued in batch {
            if !alone && let Err(e) = savepoint(&mut tx, "SAVEPOINT change").await {
                return failed("savepoint", &e);
            }
            let applied = apply_in(&mut tx, &queued.change).await;
            let kept = matches!(applied, Ok(true));
            if !alone
                && !kept
                && let Err(e) = savepoint(&mut tx, "ROLLBACK TO change").await
            {
                return failed("rollback to savepoint", &e);
            }
            if !alone && let Err(e) = savepoint(&mut tx, "RELEASE change").await {
                return failed("release savepoint", &e);
            }
            results.push(match applied {
                Ok(true) => Ok(Applied::Yes),
                Ok(false) => Ok(Applied::Conflict),
                Err(e)
                    if is_unique_violation(&e, "webhook_receipts")
                        || is_unique_violation(&e, "offers") =>
                {
                    Ok(Applied::Conflict)
                }
                Err(e) => Err(anyhow::Error::new(e).context("applying a call change")),
            });
        }
        if alone && !matches!(results.first(), Some(Ok(Applied::Yes))) {
            // Dropped: rolled back.
            return results;
        }
        if let Err(e) = tx.commit().await {
            return failed("commit", &e);
        }
        results
    }

    pub(crate) async fn insert_receipts(&self, rows: &[ReceiptRow]) -> Result<(), sqlx::Error> {
        let mut tx = self.write().await?;
        insert_receipts(&mut tx, rows).await?;
        tx.commit().await
    }
}

async fn savepoint(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}

async fn insert_receipts(
    conn: &mut SqliteConnection,
    rows: &[ReceiptRow],
) -> Result<(), sqlx::Error> {
    for row in rows {
        row.clone()
            .bind(sqlx::query(*INSERT_RECEIPT))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The call row at the expected version; `false` when another change got there first.
async fn write_call(conn: &mut SqliteConnection, change: &CallChange) -> Result<bool, sqlx::Error> {
    let row = CallRow::from(&change.call);
    let written = if change.expected_version == 0 {
        row.bind(sqlx::query(*INSERT_CALL)).execute(conn).await?
    } else {
        row.bind(sqlx::query(*UPDATE_CALL))
            .bind(change.expected_version)
            .execute(conn)
            .await?
    };
    Ok(written.rows_affected() == 1)
}

/// The writes of [`SqliteStore::apply_change`] inside the transaction; `false` when the
/// call row was not at the expected version or an agent it reserves is no longer
/// reservable (see [`agents::Agent::reservable`]; the caller then rolls back).
async fn apply_in(conn: &mut SqliteConnection, change: &CallChange) -> Result<bool, sqlx::Error> {
    if !write_call(conn, change).await? {
        return Ok(false);
    }
    let now = change.call.updated_at;
    insert_receipts(conn, &crate::rows::receipts(&change.receipts, now)).await?;
    for chunk in change.offers.chunks(super::ROWS_PER_INSERT) {
        let mut q = sqlx::query(UPSERT_OFFERS.rows(chunk.len()));
        for offer in chunk {
            q = OfferRow::from(offer).bind(q);
        }
        q.execute(&mut *conn).await?;
    }
    let (opened, closed) = crate::rows::rounds(&change.call.call_sid, &change.attempts);
    for round in opened {
        round
            .bind(sqlx::query(*OPEN_ROUND))
            .execute(&mut *conn)
            .await?;
    }
    for round in closed {
        round
            .bind(sqlx::query(CLOSE_ROUND))
            .execute(&mut *conn)
            .await?;
    }
    for (effect, row) in change
        .agents
        .iter()
        .zip(crate::rows::effects(&change.agents))
    {
        let written = row
            .bind(sqlx::query(*AGENT_EFFECT))
            .bind(&change.call.call_sid)
            .bind(SqlTime(now))
            .execute(&mut *conn)
            .await?;
        if effect.offer.is_some_and(OfferMark::reserves) && written.rows_affected() == 0 {
            // The agent stopped being reservable since the matcher read it (a miss, a
            // pause, another reservation): the whole change is a conflict.
            return Ok(false);
        }
    }
    SqliteStore::insert_audit(conn, &change.audit).await?;
    Ok(true)
}
