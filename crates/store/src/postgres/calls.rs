//! PostgreSQL's side of the call store: the load (one query: the call, its offers and the
//! receipts asked for) and the apply (one statement of writable CTEs).

use std::sync::LazyLock;

use anyhow::{Context as _, anyhow};
use call_center::{Applied, CallChange, CallState, Receipt, Snapshot};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgQuery, PgStore};
use crate::common::{is_serialization_failure, is_unique_violation, unexpected};
use crate::schema::{
    AuditEventRow, CallRow, EffectRow, OfferRow, ReceiptRow, RoundClosedRow, RoundOpenedRow, Table,
    offer_upsert_suffix,
};
use crate::types::SqlTime;

/// One round trip: the call with one row per offer (a call without offers is one row with
/// null offer columns; no call is one row of nulls), plus the receipts asked for, read in
/// one scan so keys and fingerprints pair up (the aggregate always yields the one row the
/// joins hang on). Binary columns, no JSON: this runs on every webhook.
static LOAD: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "SELECT {}, {}, seen.keys, seen.fingerprints
         FROM (SELECT array_agg(r.key) AS keys, array_agg(r.fingerprint) AS fingerprints
               FROM webhook_receipts r WHERE r.key = ANY($2)) AS seen
         LEFT JOIN calls c ON c.call_sid = $1
         LEFT JOIN offers o ON o.call_sid = c.call_sid
         ORDER BY o.attempt, o.offered_at, o.agent_id",
        CallRow::columns(Some("c")),
        OfferRow::columns(Some("o"))
    ))
});

const OFFERS_AT: usize = CallRow::COLUMNS.len();
const SEEN_AT: usize = OFFERS_AT + OfferRow::COLUMNS.len();

fn snapshot(rows: &[PgRow]) -> anyhow::Result<Snapshot> {
    let first = rows
        .first()
        .ok_or_else(|| anyhow!("the load query returned no row"))?;
    let keys: Option<Vec<String>> = first.try_get(SEEN_AT).context("receipts")?;
    let fingerprints: Option<Vec<String>> = first.try_get(SEEN_AT + 1).context("receipts")?;
    let seen = keys
        .unwrap_or_default()
        .into_iter()
        .zip(fingerprints.unwrap_or_default())
        .map(|(key, fingerprint)| Receipt { key, fingerprint })
        .collect();
    if first
        .try_get::<Option<String>, _>(0)
        .context("call row")?
        .is_none()
    {
        return Ok(Snapshot { state: None, seen });
    }
    let call = CallRow::decode_at(first, 0)
        .context("call row")?
        .try_into()?;
    let mut offers = Vec::with_capacity(rows.len());
    for row in rows {
        if row.try_get::<Option<String>, _>(OFFERS_AT)?.is_some() {
            offers.push(
                OfferRow::decode_at(row, OFFERS_AT)
                    .context("offer row")?
                    .try_into()?,
            );
        }
    }
    Ok(Snapshot {
        state: Some(CallState { call, offers }),
        seen,
    })
}

/// Where each part of the apply statement's parameters starts: the call's columns, the
/// expected version, now, then one array per column of each part, in this order.
struct Layout {
    version: usize,
    now: usize,
    receipts: usize,
    offers: usize,
    opened: usize,
    closed: usize,
    effects: usize,
    audit: usize,
}

const LAYOUT: Layout = {
    let version = CallRow::COLUMNS.len() + 1;
    let receipts = version + 2;
    let offers = receipts + ReceiptRow::COLUMNS.len();
    let opened = offers + OfferRow::COLUMNS.len();
    let closed = opened + RoundOpenedRow::COLUMNS.len();
    let effects = closed + RoundClosedRow::COLUMNS.len();
    let audit = effects + EffectRow::COLUMNS.len();
    Layout {
        version,
        now: version + 1,
        receipts,
        offers,
        opened,
        closed,
        effects,
        audit,
    }
};

/// The apply statement: `call_row` inserts (version 0) or updates the call at the expected
/// version; every other part writes only if it did (`EXISTS (SELECT 1 FROM call_row)`).
///
/// `dial_attempts` is reached by the call's key (`d.call_sid = $1`), not only through a
/// join to an `unnest`: the plan is generic and made once per connection, often while the
/// tables are nearly empty, and a plan that chose to scan `dial_attempts` then scanned
/// every round of every call ever made, at each webhook (3,500 rows at the end of a 10 s
/// benchmark). The pool's sessions run with sequential scans off for the rest
/// ([`super::CHANGES_SESSION`]); the test `the_change_statements_reach_every_table_by_its_key`
/// checks the plans.
///
/// Lock order: the call's row first, then its agents' rows in id order (`agent_locks`,
/// whatever order the change lists them in), and only then are they updated, so two calls
/// touching the same agents can never wait on each other in a cycle (the contract story
/// `crossed_agent_effects_never_deadlock`).
fn apply_statement(insert: bool) -> String {
    let l = &LAYOUT;
    let call_row = if insert {
        format!(
            "INSERT INTO calls ({}) SELECT {} WHERE ${}::int8 = 0 \
             ON CONFLICT (call_sid) DO NOTHING RETURNING call_sid",
            CallRow::columns(None),
            crate::schema::params(1, CallRow::COLUMNS.len()),
            l.version
        )
    } else {
        format!(
            "UPDATE calls SET {} WHERE call_sid = $1 AND version = ${} RETURNING call_sid",
            CallRow::assignments(1, 1),
            l.version
        )
    };
    let applied = "WHERE EXISTS (SELECT 1 FROM call_row)";
    format!(
        "WITH call_row AS ({call_row}),
receipts AS (
    INSERT INTO webhook_receipts ({receipt_cols}) SELECT {receipt_cols} FROM {receipts} {applied}
),
offer_rows AS (
    INSERT INTO offers ({offer_cols}) SELECT {offer_cols} FROM {offers} {applied}{offer_upsert}
),
rounds_opened AS (
    INSERT INTO dial_attempts ({opened_cols}) SELECT {opened_cols} FROM {opened} {applied}
    ON CONFLICT (call_sid, attempt) DO NOTHING
),
rounds_closed AS (
    UPDATE dial_attempts d SET ended_at = a.ended_at, result = a.result FROM {closed}
    WHERE d.call_sid = $1 AND d.call_sid = a.call_sid AND d.attempt = a.attempt
      AND d.ended_at IS NULL AND EXISTS (SELECT 1 FROM call_row)
),
agent_locks AS MATERIALIZED (
    SELECT g.id, {reservable} AS reservable FROM agents g
    WHERE g.id IN (SELECT e.agent_id FROM {effects}) AND EXISTS (SELECT 1 FROM call_row)
    ORDER BY g.id FOR UPDATE OF g
),
agent_effects AS (
    UPDATE agents g SET {agent_sets}
    FROM {effects} JOIN agent_locks l ON l.id = e.agent_id
    WHERE g.id = e.agent_id
),
audit AS (
    INSERT INTO audit_log ({audit_cols}) SELECT {audit_cols}
    FROM unnest({audit_arrays}) WITH ORDINALITY AS t({audit_cols}, n) {applied} ORDER BY t.n
)
SELECT (SELECT count(*) FROM call_row) + reservation_conflict((
    SELECT count(*) FROM {effects} LEFT JOIN agent_locks l ON l.id = e.agent_id
    WHERE {refused} AND EXISTS (SELECT 1 FROM call_row))) AS applied",
        refused = REFUSED_RESERVATION,
        reservable = crate::common::reservable_sql("g.", "$1", &format!("${}", l.now)),
        agent_sets = agent_effect_sets("$1", &format!("${}", l.now)),
        receipt_cols = ReceiptRow::columns(None),
        receipts = ReceiptRow::unnest(l.receipts, "r"),
        offer_cols = OfferRow::columns(None),
        offers = OfferRow::unnest(l.offers, "o"),
        offer_upsert = offer_upsert_suffix(),
        opened_cols = RoundOpenedRow::columns(None),
        opened = RoundOpenedRow::unnest(l.opened, "a"),
        closed = RoundClosedRow::unnest(l.closed, "a"),
        effects = EffectRow::unnest(l.effects, "e"),
        audit_cols = AuditEventRow::columns(None),
        audit_arrays = AuditEventRow::arrays(l.audit),
    )
}

/// An agent effect (`e`) that reserves its agent, whose locked row (`l`, from `agent_locks`)
/// is gone or not reservable for the call: the single statement fails on one, the batch
/// skips the change that holds it.
pub(super) const REFUSED_RESERVATION: &str =
    "e.offer IN ('reserve', 'reserve-ring') AND (l.id IS NULL OR NOT l.reservable)";

/// The `SET` list of the `UPDATE agents g … FROM … e` that applies agent effects (`e`, an
/// [`EffectRow`]) for the call `call` at time `now` (SQL expressions: a parameter, or the
/// batch's per-row columns): counters added; engage, release and the offer marks as
/// compare-and-sets against the call.
pub(super) fn agent_effect_sets(call: &str, now: &str) -> String {
    format!(
        "calls_answered = g.calls_answered + e.answered,
        calls_missed = g.calls_missed + e.missed,
        total_talk_seconds = g.total_talk_seconds + e.talk,
        current_call_sid = CASE
            WHEN e.engage AND g.current_call_sid IS NULL THEN {call}
            WHEN e.release AND g.current_call_sid = {call} THEN NULL
            ELSE g.current_call_sid END,
        idle_since = CASE WHEN e.release AND {releases}
            THEN COALESCE(e.wrap_up_until, {now}) ELSE g.idle_since END,
        no_answer_until = GREATEST(g.no_answer_until, e.no_answer_until),
        missed_in_a_row = CASE WHEN e.answered > 0 THEN 0 ELSE g.missed_in_a_row + e.missed END,
        offer_ringing = CASE
            WHEN e.offer = 'reserve' THEN false
            WHEN e.offer = 'reserve-ring' THEN true
            WHEN e.offer = 'ring' AND g.offer_call_sid = {call} THEN true
            WHEN e.offer = 'clear' AND g.offer_call_sid = {call} THEN false
            ELSE g.offer_ringing END,
        offer_call_sid = CASE
            WHEN e.offer IN ('reserve', 'reserve-ring') THEN {call}
            WHEN e.offer = 'clear' AND g.offer_call_sid = {call} THEN NULL
            ELSE g.offer_call_sid END",
        releases = crate::common::releases_sql("g.", call),
    )
}

static APPLY_INSERT: LazyLock<&'static str> = LazyLock::new(|| String::leak(apply_statement(true)));
static APPLY_UPDATE: LazyLock<&'static str> =
    LazyLock::new(|| String::leak(apply_statement(false)));

/// Binds a change in [`LAYOUT`] order.
fn bind_change<'q>(q: PgQuery<'q>, change: &CallChange) -> PgQuery<'q> {
    let now = change.call.updated_at;
    let (opened, closed) = crate::rows::rounds(&change.call.call_sid, &change.attempts);
    let offers: Vec<OfferRow> = change.offers.iter().map(OfferRow::from).collect();
    let q = CallRow::from(&change.call)
        .bind(q)
        .bind(change.expected_version)
        .bind(SqlTime(now));
    let q = ReceiptRow::bind_arrays(&crate::rows::receipts(&change.receipts, now), q);
    let q = OfferRow::bind_arrays(&offers, q);
    let q = RoundOpenedRow::bind_arrays(&opened, q);
    let q = RoundClosedRow::bind_arrays(&closed, q);
    let q = EffectRow::bind_arrays(&crate::rows::effects(&change.agents), q);
    AuditEventRow::bind_arrays(&crate::rows::audit_rows(&change.audit), q)
}

static INSERT_RECEIPTS: LazyLock<&'static str> = LazyLock::new(|| {
    String::leak(format!(
        "INSERT INTO webhook_receipts ({}) SELECT * FROM {}",
        ReceiptRow::columns(None),
        ReceiptRow::unnest(1, "r")
    ))
});

impl PgStore {
    /// The call as this process last committed it ([`crate::committed`]). Another
    /// instance may have written the call since; the apply statement's version check
    /// then turns the decision taken from this copy into a conflict and a load.
    pub(crate) fn committed_state(&self, call_sid: &str) -> Option<CallState> {
        self.committed.get(call_sid)
    }

    pub(crate) async fn load_snapshot(
        &self,
        call_sid: &str,
        receipt_keys: &[String],
    ) -> anyhow::Result<Snapshot> {
        let rows = sqlx::query(*LOAD)
            .bind(call_sid)
            .bind(receipt_keys)
            .fetch_all(&self.changes)
            .await
            .map_err(unexpected("loading a call"))?;
        snapshot(&rows)
    }

    /// Applies `change` alone, in the single-change statement.
    pub(crate) async fn apply_alone(&self, change: &CallChange) -> anyhow::Result<Applied> {
        let sql: &str = if change.expected_version == 0 {
            &APPLY_INSERT
        } else {
            &APPLY_UPDATE
        };
        match bind_change(sqlx::query(sql), change)
            .fetch_one(&self.changes)
            .await
        {
            Ok(row) => {
                let applied: i64 = row.try_get("applied").context("apply result")?;
                Ok(if applied == 1 {
                    self.committed.record(change);
                    Applied::Yes
                } else {
                    Applied::Conflict
                })
            }
            Err(e)
                if is_unique_violation(&e, "webhook_receipts")
                    || is_unique_violation(&e, "calls_pkey")
                    || is_unique_violation(&e, "offers_one_open_per_agent")
                    || is_serialization_failure(&e) =>
            {
                Ok(Applied::Conflict)
            }
            Err(e) => Err(anyhow::Error::new(e).context("applying a call change")),
        }
    }

    pub(crate) async fn insert_receipts(&self, rows: &[ReceiptRow]) -> Result<(), sqlx::Error> {
        ReceiptRow::bind_arrays(rows, sqlx::query(*INSERT_RECEIPTS))
            .execute(&self.changes)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    /// The generic plans of the statements the `changes` pool runs at every webhook, made
    /// on empty tables (as a fresh server's first connections make them) with the pool's
    /// session settings: no table is scanned, so the cost of a webhook does not grow with
    /// the history kept.
    #[tokio::test]
    #[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
    async fn the_change_statements_reach_every_table_by_its_key() {
        let db = testing::TestDb::postgres()
            .await
            .expect("TEST_DATABASE_URL is set");
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        super::super::MIGRATOR
            .run(&mut conn)
            .await
            .expect("migrate");
        for (setting, value) in super::super::CHANGES_SESSION {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET {setting} = {value}")))
                .execute(&mut conn)
                .await
                .expect("the pool's session settings");
        }
        let apply_params = LAYOUT.audit + AuditEventRow::COLUMNS.len() - 1;
        let statements: [(&str, &str, usize); 3] = [
            ("apply", *APPLY_UPDATE, apply_params),
            ("load", *LOAD, 2),
            ("match_view", crate::queue::sql::MATCH_VIEW_PG.as_str(), 6),
        ];
        for (name, sql, params) in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("prepare {name}: {e}"));
            let nulls = vec!["NULL"; params].join(", ");
            let plan: Vec<String> = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "EXPLAIN EXECUTE {name}({nulls})"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("explain {name}: {e}"))
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
            let plan = plan.join("\n");
            for table in [
                "calls",
                "offers",
                "dial_attempts",
                "agents",
                "webhook_receipts",
                "audit_log",
            ] {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table} ")),
                    "{name} scans {table}:\n{plan}"
                );
            }
        }
    }

    #[test]
    fn the_apply_statement_numbers_every_parameter_once() {
        for insert in [true, false] {
            let sql = apply_statement(insert);
            let last = LAYOUT.audit + AuditEventRow::COLUMNS.len() - 1;
            for n in 1..=last {
                assert!(
                    sql.contains(&format!("${n}")),
                    "${n} unused (insert {insert})"
                );
            }
            assert!(!sql.contains(&format!("${}", last + 1)));
        }
    }
}
