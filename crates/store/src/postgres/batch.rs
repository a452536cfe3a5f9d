//! Group commit on PostgreSQL: the changes of several webhooks in one statement, one
//! transaction, one round trip and one WAL flush.
//!
//! [`Batcher`] queues each change; a task (of [`IN_FLIGHT`]) takes every change queued by then
//! (at most [`BATCH_MAX`], on distinct calls and distinct agents; a change that shares one
//! waits for the next batch) and applies them together. A batch of one runs the
//! single-change statement ([`super::calls`]), whose audit entries the sealer chains later.
//! A batch of several is one transaction: [`BATCH`] applies each change whose call is at its
//! expected version and skips the others (each still all-or-nothing: every part of a change
//! is written only if its call row was), then the audit entries of the changes applied are
//! inserted already sealed, after whatever other writers left pending
//! ([`PgStore::insert_sealed`], under the sealer's lock). A change that reserves an agent
//! another call reserved first is skipped like a stale version. Anything that fails the
//! batch as a whole (a duplicate receipt, a unique offer, a deadlock, a lost connection)
//! rolls it back, and each change is then applied alone, so one change's
//! conflict never costs another its write. A change is answered only after the commit of
//! the transaction that applied it.
//!
//! Lock order, as the single statement's: calls before agents, calls in `call_sid` order
//! (the batch is sorted), agents in id order, so two batches, or a batch and a single change,
//! never wait on each other in a cycle. One exception: a new call's row does not exist to
//! be locked, and is inserted after the agents' locks. Two instances inserting the same new
//! call at the same moment (Telnyx's retry of `/inbound` reaching a second instance while
//! the first still writes) can then deadlock; PostgreSQL ends one after its
//! `deadlock_timeout`, that batch's changes are applied one by one, and the repeated call
//! conflicts, as it would have anyway.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use call_center::{Applied, CallChange};
use sqlx::Row as _;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{PgQuery, PgStore};
use crate::schema::{
    CallRow, EffectRow, OfferRow, ReceiptRow, RoundClosedRow, RoundOpenedRow, Table,
    offer_upsert_suffix,
};
use crate::types::SqlTime;

/// Changes one statement applies at most.
const BATCH_MAX: usize = 64;

/// Batches in flight at once per process. Two: a batch that waits for a row lock (another
/// instance's batch, an admin change) or for a slow commit does not hold back every other
/// change of the instance, and the next batch's statement runs while this one commits (the
/// chain's lock is taken only after the row locks). Measured against one (alternating
/// rounds): as many calls a second, a lower p99 on the answered flow (33–36 ms against
/// 39–55 ms), 10–20 % more of PostgreSQL's CPU a call (smaller batches).
const IN_FLIGHT: usize = 2;

/// A change waiting for a batch, and where its result goes.
struct Queued {
    change: CallChange,
    done: oneshot::Sender<anyhow::Result<Applied>>,
}

/// The queue of changes and the tasks that apply them (started on the first change, on the
/// runtime that sends it; they end when the store's last clone is dropped).
#[derive(Debug)]
pub(crate) struct Batcher {
    queue: std::sync::OnceLock<mpsc::UnboundedSender<Queued>>,
}

impl Batcher {
    pub(crate) fn new() -> Self {
        Self {
            queue: std::sync::OnceLock::new(),
        }
    }
}

impl PgStore {
    /// Queues `change` for the next batch and waits for its result (at most the pool's
    /// acquire timeout, as a request waits for a connection; a change not yet taken when its
    /// requester gave up is skipped).
    pub(crate) async fn apply_change(&self, change: &CallChange) -> anyhow::Result<Applied> {
        let (done, result) = oneshot::channel();
        let queue = self.batcher.queue.get_or_init(|| self.start_batches());
        queue
            .send(Queued {
                change: change.clone(),
                done,
            })
            .map_err(|_| anyhow::anyhow!("the PostgreSQL batch tasks have stopped"))?;
        crate::common::batch_result(result, self.write_wait, "a PostgreSQL batch").await
    }

    /// Starts the [`IN_FLIGHT`] batch tasks. They hold the pools, not the store, so they
    /// end when the queue's sender (in the store) is dropped.
    fn start_batches(&self) -> mpsc::UnboundedSender<Queued> {
        let (queue, changes) = mpsc::unbounded_channel();
        let changes = Arc::new(Mutex::new(Gathering {
            changes,
            held: Vec::new(),
        }));
        for _ in 0..IN_FLIGHT {
            let store = self.for_batches();
            let changes = Arc::clone(&changes);
            tokio::spawn(async move { store.apply_until_closed(&changes).await });
        }
        queue
    }

    /// Gathers a batch, applies it, answers each change; until the queue closes.
    async fn apply_until_closed(&self, changes: &Mutex<Gathering>) {
        loop {
            let batch = changes.lock().await.next_batch().await;
            let Some(batch) = batch else { return };
            let (changes, answers): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|q| (q.change, q.done)).unzip();
            let results = self.apply_together(&changes).await;
            for (done, applied) in answers.into_iter().zip(results) {
                // The requester may have given up meanwhile: nothing to tell.
                let _ = done.send(applied);
            }
        }
    }

    /// Applies `changes` (distinct calls and agents) in one statement, or each alone after
    /// the statement failed as a whole.
    async fn apply_together(&self, changes: &[CallChange]) -> Vec<anyhow::Result<Applied>> {
        match changes {
            // Every requester gathered had given up.
            [] => return Vec::new(),
            [change] => return vec![self.apply_alone(change).await],
            _ => {}
        }
        match self.apply_batch(changes).await {
            Ok(applied) => {
                for (change, applied) in changes.iter().zip(&applied) {
                    if *applied == Applied::Yes {
                        self.committed.record(change);
                    }
                }
                applied.into_iter().map(Ok).collect()
            }
            Err(e) => {
                tracing::debug!(error = %e, changes = changes.len(), "a batch failed; applying its changes one by one");
                let mut results = Vec::with_capacity(changes.len());
                for change in changes {
                    results.push(self.apply_alone(change).await);
                }
                results
            }
        }
    }

    /// One transaction for the batch: the statement that applies every change it can,
    /// then the audit entries of those that applied, sealed as they are inserted
    /// ([`PgStore::insert_sealed`]). Whether each change applied, in `changes`' order.
    async fn apply_batch(&self, changes: &[CallChange]) -> anyhow::Result<Vec<Applied>> {
        let mut order: Vec<&CallChange> = changes.iter().collect();
        order.sort_by(|a, b| a.call.call_sid.cmp(&b.call.call_sid));
        let mut tx = self.changes.begin().await?;
        let row = bind_batch(sqlx::query(*BATCH), &order)
            .fetch_one(&mut *tx)
            .await?;
        let applied: Vec<String> = row.try_get("applied")?;
        let applied: HashSet<String> = applied.into_iter().collect();
        let audit = order
            .iter()
            .filter(|c| applied.contains(&c.call.call_sid))
            .flat_map(|c| crate::rows::audit_rows(&c.audit))
            .collect();
        Self::insert_sealed(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(changes
            .iter()
            .map(|c| {
                if applied.contains(&c.call.call_sid) {
                    Applied::Yes
                } else {
                    Applied::Conflict
                }
            })
            .collect())
    }
}

/// The receiving end of the queue, shared by the batch tasks, and the changes held back
/// from a batch because they share a call or an agent with one in it (they lead the next).
struct Gathering {
    changes: mpsc::UnboundedReceiver<Queued>,
    held: Vec<Queued>,
}

impl Gathering {
    /// Waits for a change (or takes a held one), then takes every change queued by then
    /// that touches no call or agent already in the batch, up to [`BATCH_MAX`]. None when
    /// the queue has closed and nothing is held.
    async fn next_batch(&mut self) -> Option<Vec<Queued>> {
        let mut waiting: Vec<Queued> = std::mem::take(&mut self.held);
        if waiting.is_empty() {
            waiting.push(self.changes.recv().await?);
        }
        while waiting.len() < BATCH_MAX * 2
            && let Ok(next) = self.changes.try_recv()
        {
            waiting.push(next);
        }
        let mut batch = Vec::with_capacity(waiting.len().min(BATCH_MAX));
        let mut touched = Touched::default();
        for queued in waiting {
            if queued.done.is_closed() {
                continue;
            }
            if batch.len() < BATCH_MAX && touched.take(&queued.change) {
                batch.push(queued);
            } else {
                self.held.push(queued);
            }
        }
        Some(batch)
    }
}

/// The calls and agents a batch's changes write.
#[derive(Default)]
struct Touched {
    calls: HashSet<String>,
    agents: HashSet<uuid::Uuid>,
}

impl Touched {
    /// Adds `change` if it shares no call and no agent with what is there.
    fn take(&mut self, change: &CallChange) -> bool {
        let agents: Vec<uuid::Uuid> = change
            .agents
            .iter()
            .map(|e| e.agent_id.0)
            .chain(change.offers.iter().map(|o| o.agent_id.0))
            .collect();
        if self.calls.contains(&change.call.call_sid)
            || agents.iter().any(|a| self.agents.contains(a))
        {
            return false;
        }
        self.calls.insert(change.call.call_sid.clone());
        self.agents.extend(agents);
        true
    }
}

/// The batch statement's parameters: the calls' columns and expected versions, then each
/// part's arrays, with an `owner` (the call's sid) where the part's rows do not carry it.
struct Layout {
    expected: usize,
    receipts: usize,
    offers: usize,
    opened: usize,
    closed: usize,
    effects: usize,
}

const LAYOUT: Layout = {
    let expected = CallRow::COLUMNS.len() + 1;
    let receipts = expected + 1;
    let offers = receipts + 1 + ReceiptRow::COLUMNS.len();
    let opened = offers + OfferRow::COLUMNS.len();
    let closed = opened + RoundOpenedRow::COLUMNS.len();
    let effects = closed + RoundClosedRow::COLUMNS.len();
    Layout {
        expected,
        receipts,
        offers,
        opened,
        closed,
        effects,
    }
};

/// The statement: `c` is the batch's calls; `call_row` the sids of those written (a new
/// call inserted, or an existing one at its expected version, unless it is `refused`);
/// every other part writes only the rows of a change whose call is in `call_row`. The agent
/// effects are [`super::calls`]'s, with the owning call and its time per row instead of one
/// `$1`.
///
/// A change that reserves an agent no longer reservable (`refused`: another call reserved
/// it first) is skipped like a stale version, so it costs no other change its write. That
/// needs the agents' rows locked before any call is written, in the single statement's
/// order: `call_locks` locks the batch's existing calls (sorted) first, then `agent_locks`
/// the agents in id order (the one-time filter on `call_locks` runs before its first row),
/// and each agent's reservability is read from its locked, latest row.
fn batch_statement() -> String {
    let l = &LAYOUT;
    let call_cols = CallRow::columns(None);
    let call_sets = CallRow::COLUMNS
        .iter()
        .skip(1)
        .map(|c| format!("{c} = c.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let written = "IN (SELECT call_sid FROM call_row)";
    let not_refused = "NOT IN (SELECT owner FROM refused)";
    format!(
        "WITH c AS MATERIALIZED (
    SELECT * FROM unnest({call_arrays}, ${expected}::int8[]) AS c({call_cols}, expected)
),
effects AS MATERIALIZED (
    SELECT * FROM unnest(${effects}::text[], ${effects_now}::timestamptz[], {effect_arrays})
        AS e(owner, now, {effect_cols})
),
call_locks AS MATERIALIZED (
    SELECT t.call_sid FROM calls t JOIN c ON c.call_sid = t.call_sid
    WHERE c.expected <> 0 ORDER BY t.call_sid FOR UPDATE OF t
),
agent_locks AS MATERIALIZED (
    SELECT g.id, e.owner, {reservable} AS reservable FROM agents g JOIN effects e ON e.agent_id = g.id
    WHERE (SELECT count(*) FROM call_locks) >= 0
    ORDER BY g.id FOR UPDATE OF g
),
refused AS MATERIALIZED (
    SELECT e.owner FROM effects e
    LEFT JOIN agent_locks l ON l.id = e.agent_id AND l.owner = e.owner
    WHERE {refused_reservation}
),
inserted AS (
    INSERT INTO calls ({call_cols}) SELECT {c_cols} FROM c
    WHERE c.expected = 0 AND c.call_sid {not_refused}
    ORDER BY c.call_sid ON CONFLICT (call_sid) DO NOTHING RETURNING call_sid
),
updated AS (
    UPDATE calls t SET {call_sets} FROM c
    WHERE c.expected <> 0 AND t.call_sid = c.call_sid AND t.version = c.expected
      AND c.call_sid {not_refused}
    RETURNING t.call_sid
),
call_row AS MATERIALIZED (
    SELECT call_sid FROM inserted UNION ALL SELECT call_sid FROM updated
),
receipts AS (
    INSERT INTO webhook_receipts ({receipt_cols}) SELECT {r_cols}
    FROM unnest(${receipts}::text[], {receipt_arrays}) AS r(owner, {receipt_cols})
    WHERE r.owner {written}
),
offer_rows AS (
    INSERT INTO offers ({offer_cols}) SELECT {o_cols} FROM {offers}
    WHERE o.call_sid {written}{offer_upsert}
),
rounds_opened AS (
    INSERT INTO dial_attempts ({opened_cols}) SELECT {a_opened_cols} FROM {opened}
    WHERE a.call_sid {written}
    ON CONFLICT (call_sid, attempt) DO NOTHING
),
rounds_closed AS (
    UPDATE dial_attempts d SET ended_at = a.ended_at, result = a.result FROM {closed}
    WHERE d.call_sid = a.call_sid AND d.attempt = a.attempt AND d.ended_at IS NULL
      AND a.call_sid {written}
),
e AS MATERIALIZED (
    SELECT * FROM effects WHERE owner {written}
),
agent_effects AS (
    UPDATE agents g SET {agent_sets} FROM e WHERE g.id = e.agent_id
)
SELECT ARRAY(SELECT call_sid FROM call_row) AS applied",
        call_arrays = CallRow::arrays(1),
        expected = l.expected,
        c_cols = CallRow::columns(Some("c")),
        receipts = l.receipts,
        receipt_cols = ReceiptRow::columns(None),
        r_cols = ReceiptRow::columns(Some("r")),
        receipt_arrays = ReceiptRow::arrays(l.receipts + 1),
        offer_cols = OfferRow::columns(None),
        o_cols = OfferRow::columns(Some("o")),
        offers = OfferRow::unnest(l.offers, "o"),
        offer_upsert = offer_upsert_suffix(),
        opened_cols = RoundOpenedRow::columns(None),
        a_opened_cols = RoundOpenedRow::columns(Some("a")),
        opened = RoundOpenedRow::unnest(l.opened, "a"),
        closed = RoundClosedRow::unnest(l.closed, "a"),
        effects = l.effects,
        effects_now = l.effects + 1,
        effect_arrays = EffectRow::arrays(l.effects + 2),
        effect_cols = EffectRow::columns(None),
        reservable = crate::common::reservable_sql("g.", "e.owner", "e.now"),
        refused_reservation = super::calls::REFUSED_RESERVATION,
        agent_sets = super::calls::agent_effect_sets("e.owner", "e.now"),
    )
}

static BATCH: LazyLock<&'static str> = LazyLock::new(|| String::leak(batch_statement()));

/// Binds `changes` in [`LAYOUT`] order, each part's rows concatenated in `changes`' order.
fn bind_batch<'q>(q: PgQuery<'q>, changes: &[&CallChange]) -> PgQuery<'q> {
    let calls: Vec<CallRow> = changes.iter().map(|c| CallRow::from(&c.call)).collect();
    let expected: Vec<i64> = changes.iter().map(|c| c.expected_version).collect();
    let mut receipt_owners = Vec::new();
    let mut receipts = Vec::new();
    let mut offers = Vec::new();
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    let mut effect_owners = Vec::new();
    let mut effect_times = Vec::new();
    let mut effects = Vec::new();
    for change in changes {
        let sid = &change.call.call_sid;
        let now = change.call.updated_at;
        for row in crate::rows::receipts(&change.receipts, now) {
            receipt_owners.push(sid.clone());
            receipts.push(row);
        }
        offers.extend(change.offers.iter().map(OfferRow::from));
        let (o, c) = crate::rows::rounds(sid, &change.attempts);
        opened.extend(o);
        closed.extend(c);
        for row in crate::rows::effects(&change.agents) {
            effect_owners.push(sid.clone());
            effect_times.push(SqlTime(now));
            effects.push(row);
        }
    }
    let q = CallRow::bind_arrays(&calls, q).bind(expected);
    let q = ReceiptRow::bind_arrays(&receipts, q.bind(receipt_owners));
    let q = OfferRow::bind_arrays(&offers, q);
    let q = RoundOpenedRow::bind_arrays(&opened, q);
    let q = RoundClosedRow::bind_arrays(&closed, q);
    EffectRow::bind_arrays(&effects, q.bind(effect_owners).bind(effect_times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_statement_numbers_every_parameter_once() {
        let sql = batch_statement();
        let last = LAYOUT.effects + 1 + EffectRow::COLUMNS.len();
        for n in 1..=last {
            assert!(sql.contains(&format!("${n}:")), "${n} unused");
        }
        assert!(!sql.contains(&format!("${}", last + 1)));
    }
}
