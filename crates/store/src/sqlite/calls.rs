//! SQLite's side of the call store: the load (one statement) and the apply, with group
//! commit: a change joins the writer thread's queue ([`super::writer`]); the thread takes
//! every change queued by then, applies them in one `BEGIN IMMEDIATE` transaction (each
//! checked first: a change in conflict writes nothing), commits once, and only then are
//! they answered. The pages several changes share (agents, the audit log's tail, indexes)
//! are written to the WAL once per batch instead of once per change.

use std::sync::LazyLock;

use call_center::{Applied, CallChange, CallState, Receipt, Snapshot};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::schema::{CallRow, OfferRow, ReceiptRow, RoundOpenedRow, Table, offer_upsert_suffix};

pub(super) static INSERT_CALL: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "{} ON CONFLICT (call_sid) DO NOTHING",
        CallRow::insert(1)
    ))
});
pub(super) static UPDATE_CALL: LazyLock<&'static str> = LazyLock::new(|| {
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
             FROM json_each($2) AS k JOIN webhook_receipts r ON r.key = k.value) \
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
pub(super) static CHECK: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT (SELECT version FROM calls WHERE call_sid = $1), \
         (SELECT count(*) FROM json_each($2) AS k JOIN webhook_receipts r ON r.key = k.value), \
         (SELECT count(*) FROM json_each($3) AS k JOIN agents ON agents.id = k.value WHERE {})",
        crate::common::reservable_sql("", "$1", "$4")
    ))
});
pub(super) static UPSERT_OFFERS: LazyLock<super::MultiInsert> = LazyLock::new(|| {
    super::MultiInsert::new(|n| format!("{}{}", OfferRow::insert_rows(n), offer_upsert_suffix()))
});
pub(super) static OPEN_ROUND: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "{} ON CONFLICT (call_sid, attempt) DO NOTHING",
        RoundOpenedRow::insert(1)
    ))
});
pub(super) const CLOSE_ROUND: &str = "UPDATE dial_attempts SET ended_at = $3, result = $4 \
     WHERE call_sid = $1 AND attempt = $2 AND ended_at IS NULL";
pub(super) static INSERT_RECEIPTS: LazyLock<super::MultiInsert> =
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

pub(super) static AGENT_EFFECTS: LazyLock<super::MultiInsert> =
    LazyLock::new(|| super::MultiInsert::new(agent_effects));

/// The call's rows as the domain reads them (`None`: no such call).
fn call_state(call: Option<CallRow>, offers: Vec<OfferRow>) -> anyhow::Result<Option<CallState>> {
    let Some(call) = call else {
        return Ok(None);
    };
    Ok(Some(CallState {
        call: call.try_into()?,
        offers: offers
            .into_iter()
            .map(TryInto::try_into)
            .collect::<anyhow::Result<_>>()?,
    }))
}

impl SqliteStore {
    /// The call with its offers and the receipts asked for, in one statement, read inline
    /// ([`super::direct::Readers`]).
    pub(crate) async fn load_snapshot(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> anyhow::Result<Snapshot> {
        let keys = serde_json::to_string(receipt_keys)?;
        let (seen, call, offers) = self
            .readers
            .read(|conn| read_call(conn, call_sid, &keys))
            .map_err(|e| anyhow::Error::new(e).context("load call"))?;
        let seen: Vec<(String, String)> = serde_json::from_str(&seen)?;
        let seen = seen
            .into_iter()
            .map(|(key, fingerprint)| Receipt { key, fingerprint })
            .collect();
        Ok(Snapshot {
            state: call_state(call, offers)?,
            seen,
        })
    }

    /// The call as this process last committed it ([`super::committed`]). In debug builds
    /// (every test) it is compared with the stored call when both are at the same version:
    /// the same version must be the same state.
    pub(crate) fn committed_state(&self, call_sid: &str) -> Option<CallState> {
        let state = self.committed.get(call_sid)?;
        #[cfg(debug_assertions)]
        self.same_as_stored(&state);
        Some(state)
    }

    #[cfg(debug_assertions)]
    fn same_as_stored(&self, state: &CallState) {
        let stored = self
            .readers
            .read(|conn| read_call(conn, &state.call.call_sid, "[]"))
            .ok()
            .and_then(|(_, call, offers)| call_state(call, offers).ok().flatten());
        if let Some(stored) = stored.filter(|s| s.call.version == state.call.version) {
            debug_assert_eq!(
                &stored, state,
                "the committed copy differs from the stored call at the same version"
            );
        }
    }

    /// Hands `change` to the writer thread ([`super::writer`]) and waits for its result:
    /// the thread applies every change queued by then in one transaction (group commit) and
    /// answers each after the commit. A request that waited longer than the pool's acquire
    /// timeout gives up (a stalled writer must not hold every request); a change not yet
    /// taken when its requester gave up is skipped.
    pub(crate) async fn apply_change(&self, change: &CallChange) -> anyhow::Result<Applied> {
        let result = self.batch_writer.submit(change.clone())?;
        crate::common::batch_result(result, self.write_wait, "the SQLite writer").await
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

/// [`LOAD`]'s rows: the receipts seen (a JSON array), the call row (decoded from the first
/// row) and its offers.
fn read_call(
    conn: &rusqlite::Connection,
    call_sid: &str,
    keys: &str,
) -> rusqlite::Result<(String, Option<CallRow>, Vec<OfferRow>)> {
    let mut seen = None;
    let mut call = None;
    let mut offers = Vec::new();
    super::direct::query(conn, &LOAD, &[&call_sid, &keys], |row| {
        if seen.is_none() {
            seen = Some(row.get::<_, String>(SEEN_AT)?);
            if row.get::<_, Option<String>>(0)?.is_some() {
                call = Some(CallRow::from_rusqlite(row, 0)?);
            }
        }
        if row.get::<_, Option<String>>(OFFERS_AT)?.is_some() {
            offers.push(OfferRow::from_rusqlite(row, OFFERS_AT)?);
        }
        Ok(())
    })?;
    let seen = seen.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok((seen, call, offers))
}
