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
use sqlx::{Row as _, SqliteConnection};
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
/// The call and its offers, a row per offer (one row with null offer columns when it has
/// none, one row of nulls when there is no call), and on each row the receipts asked for
/// (`$2`, a JSON array of keys) as a JSON array of `[key, fingerprint]`: one statement.
static LOAD: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT {}, {}, (SELECT json_group_array(json_array(r.key, r.fingerprint)) \
             FROM webhook_receipts r WHERE r.key IN (SELECT value FROM json_each($2))) \
         FROM (SELECT 1) AS one LEFT JOIN calls c ON c.call_sid = $1 \
         LEFT JOIN offers o ON o.call_sid = c.call_sid \
         ORDER BY o.attempt, o.offered_at, o.agent_id",
        CallRow::columns(Some("c")),
        OfferRow::columns(Some("o"))
    ))
});
const OFFERS_AT: usize = CallRow::COLUMNS.len();
const SEEN_AT: usize = OFFERS_AT + OfferRow::COLUMNS.len();

/// What must hold before a change writes anything (`$1` the call, `$2` its receipts' keys
/// and `$3` the agents it reserves as JSON arrays, `$4` now): the call's version (null: no
/// call), how many of the receipts are already stored, how many of the agents are still
/// reservable.
static CHECK: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT (SELECT version FROM calls WHERE call_sid = $1), \
         (SELECT count(*) FROM webhook_receipts WHERE key IN (SELECT value FROM json_each($2))), \
         (SELECT count(*) FROM agents WHERE id IN (SELECT value FROM json_each($3)) AND {})",
        crate::common::reservable_sql("", "$1", "$4")
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
static INSERT_RECEIPTS: LazyLock<super::MultiInsert> =
    LazyLock::new(|| super::MultiInsert::new(ReceiptRow::insert_rows));
/// The agent effects of a change, `rows` of them ([`crate::schema::EffectRow`], each as
/// `column1..column9` of `e`), the call and now after them: counters added; the call
/// engaged only if the agent holds none, released only if it holds this one (then idle from
/// the end of its wrap-up, or from now); the no-answer delay only moves forward; misses in a
/// row reset by an answer, counted by a miss; the open-offer mark (reserve, ring, clear)
/// only about this call. One statement for every agent of the change. (Reservability was
/// checked before anything was written.)
fn agent_effects(rows: usize) -> String {
    let n = crate::schema::EffectRow::COLUMNS.len();
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", crate::schema::params(1 + r * n, n)))
        .collect();
    let call = format!("${}", rows * n + 1);
    let now = format!("${}", rows * n + 2);
    format!(
        "UPDATE agents SET
        calls_answered = calls_answered + e.column2, calls_missed = calls_missed + e.column3,
        total_talk_seconds = total_talk_seconds + e.column4,
        idle_since = CASE WHEN e.column6 AND {releases} THEN COALESCE(e.column7, {now}) ELSE idle_since END,
        current_call_sid = CASE
            WHEN e.column5 AND current_call_sid IS NULL THEN {call}
            WHEN e.column6 AND current_call_sid = {call} THEN NULL
            ELSE current_call_sid END,
        no_answer_until = CASE WHEN e.column8 IS NOT NULL
                AND (no_answer_until IS NULL OR no_answer_until < e.column8)
            THEN e.column8 ELSE no_answer_until END,
        missed_in_a_row = CASE WHEN e.column2 > 0 THEN 0 ELSE missed_in_a_row + e.column3 END,
        offer_ringing = CASE
            WHEN e.column9 = 'reserve' THEN 0
            WHEN e.column9 = 'reserve-ring' THEN 1
            WHEN e.column9 = 'ring' AND offer_call_sid = {call} THEN 1
            WHEN e.column9 = 'clear' AND offer_call_sid = {call} THEN 0
            ELSE offer_ringing END,
        offer_call_sid = CASE
            WHEN e.column9 IN ('reserve', 'reserve-ring') THEN {call}
            WHEN e.column9 = 'clear' AND offer_call_sid = {call} THEN NULL
            ELSE offer_call_sid END
    FROM (VALUES {values}) AS e WHERE agents.id = e.column1",
        releases = crate::common::releases_sql("", &call),
        values = values.join(", "),
    )
}

static AGENT_EFFECTS: LazyLock<super::MultiInsert> =
    LazyLock::new(|| super::MultiInsert::new(agent_effects));

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
    /// The call with its offers and the receipts asked for, in one statement.
    pub(crate) async fn load_snapshot(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> anyhow::Result<Snapshot> {
        let keys = serde_json::to_string(receipt_keys)?;
        let rows = sqlx::query(*LOAD)
            .bind(call_sid)
            .bind(keys)
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("load call"))?;
        let first = rows
            .first()
            .ok_or_else(|| anyhow::anyhow!("the load query returned no row"))?;
        let seen: String = first.try_get(SEEN_AT).map_err(unexpected("receipts"))?;
        let seen: Vec<(String, String)> = serde_json::from_str(&seen)?;
        let seen = seen
            .into_iter()
            .map(|(key, fingerprint)| Receipt { key, fingerprint })
            .collect();
        let called = first
            .try_get::<Option<String>, _>(0)
            .map_err(unexpected("call row"))?
            .is_some();
        let state = if called {
            let call = CallRow::decode_at(first, 0).map_err(unexpected("call row"))?;
            let mut offers = Vec::with_capacity(rows.len());
            for row in &rows {
                if row
                    .try_get::<Option<String>, _>(OFFERS_AT)
                    .map_err(unexpected("offer row"))?
                    .is_some()
                {
                    let offer =
                        OfferRow::decode_at(row, OFFERS_AT).map_err(unexpected("offer row"))?;
                    offers.push(offer.try_into()?);
                }
            }
            Some(CallState {
                call: call.try_into()?,
                offers,
            })
        } else {
            None
        };
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

    /// One transaction for `batch`, one commit; a result per change. A change found in
    /// conflict by its check writes nothing. Should anything fail (an error no check
    /// foresaw), the batch is rolled back and each change applied alone, so one change's
    /// failure is its own.
    async fn apply_batch(&self, batch: &[Queued]) -> Vec<anyhow::Result<Applied>> {
        if batch.len() > 1 {
            match self.try_batch(batch).await {
                Ok(results) => return results,
                Err(e) => {
                    tracing::warn!(error = %e, changes = batch.len(), "a batch failed; applying its changes one by one");
                }
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        for queued in batch {
            results.push(self.apply_alone(&queued.change).await);
        }
        results
    }

    async fn try_batch(
        &self,
        batch: &[Queued],
    ) -> Result<Vec<anyhow::Result<Applied>>, sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut results = Vec::with_capacity(batch.len());
        for queued in batch {
            results.push(Ok(if apply_in(&mut tx, &queued.change).await? {
                Applied::Yes
            } else {
                Applied::Conflict
            }));
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn apply_alone(&self, change: &CallChange) -> anyhow::Result<Applied> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("begin"))?;
        match apply_in(&mut tx, change).await {
            Ok(true) => {
                tx.commit().await.map_err(unexpected("commit"))?;
                Ok(Applied::Yes)
            }
            Ok(false) => Ok(Applied::Conflict),
            Err(e)
                if is_unique_violation(&e, "webhook_receipts")
                    || is_unique_violation(&e, "offers") =>
            {
                Ok(Applied::Conflict)
            }
            Err(e) => Err(anyhow::Error::new(e).context("applying a call change")),
        }
    }

    pub(crate) async fn insert_receipts(&self, rows: &[ReceiptRow]) -> Result<(), sqlx::Error> {
        let mut tx = self.write().await?;
        insert_receipts(&mut tx, rows).await?;
        tx.commit().await
    }
}

async fn insert_receipts(
    conn: &mut SqliteConnection,
    rows: &[ReceiptRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(super::ROWS_PER_INSERT) {
        let mut q = sqlx::query(INSERT_RECEIPTS.rows(chunk.len()));
        for row in chunk {
            q = row.clone().bind(q);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Whether `change` may be written: its call at the expected version, none of its receipts
/// stored, every agent it reserves still reservable (checked before anything is written,
/// under the write lock, so a change in conflict leaves nothing to roll back).
async fn check(conn: &mut SqliteConnection, change: &CallChange) -> Result<bool, sqlx::Error> {
    let keys: Vec<&str> = change.receipts.iter().map(|r| r.key.as_str()).collect();
    let reserved: Vec<String> = change
        .agents
        .iter()
        .filter(|e| e.offer.is_some_and(OfferMark::reserves))
        .map(|e| e.agent_id.0.hyphenated().to_string())
        .collect();
    let json = |v: &[&str]| serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned());
    let reserved_ids: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let (version, seen, reservable): (Option<i64>, i64, i64) = sqlx::query_as(*CHECK)
        .bind(&change.call.call_sid)
        .bind(json(&keys))
        .bind(json(&reserved_ids))
        .bind(SqlTime(change.call.updated_at))
        .fetch_one(&mut *conn)
        .await?;
    let at_version = match version {
        None => change.expected_version == 0,
        Some(v) => change.expected_version != 0 && v == change.expected_version,
    };
    Ok(at_version && seen == 0 && usize::try_from(reservable).is_ok_and(|n| n == reserved.len()))
}

/// The call row at the expected version.
async fn write_call(conn: &mut SqliteConnection, change: &CallChange) -> Result<(), sqlx::Error> {
    let row = CallRow::from(&change.call);
    let written = if change.expected_version == 0 {
        row.bind(sqlx::query(*INSERT_CALL)).execute(conn).await?
    } else {
        row.bind(sqlx::query(*UPDATE_CALL))
            .bind(change.expected_version)
            .execute(conn)
            .await?
    };
    if written.rows_affected() == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "call {} moved from version {} after its check",
            change.call.call_sid, change.expected_version
        )))
    }
}

/// The writes of a change inside the transaction; `false` (nothing written) when the call
/// row was not at the expected version, a receipt is already stored, or an agent it
/// reserves is no longer reservable (see [`agents::Agent::reservable`]).
async fn apply_in(conn: &mut SqliteConnection, change: &CallChange) -> Result<bool, sqlx::Error> {
    if !check(conn, change).await? {
        return Ok(false);
    }
    write_call(conn, change).await?;
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
    let effects = crate::rows::effects(&change.agents);
    for chunk in effects.chunks(super::ROWS_PER_INSERT) {
        let mut q = sqlx::query(AGENT_EFFECTS.rows(chunk.len()));
        for row in chunk {
            q = row.clone().bind(q);
        }
        q.bind(&change.call.call_sid)
            .bind(SqlTime(now))
            .execute(&mut *conn)
            .await?;
    }
    SqliteStore::insert_audit(conn, &change.audit).await?;
    Ok(true)
}
