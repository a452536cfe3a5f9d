//! Reports against a fixture with hand-computed figures (T = 20 s): the SQL views on SQLite
//! and PostgreSQL, the HTTP summary and the CLI give exactly these numbers. A read-only
//! PostgreSQL role can read the views and cannot write.
//!
//! Day 1 (2026-11-02): c1 answered by Ann after 10 s (talk 100), c2 answered by Bob after 30 s
//! (talk 200), c3 abandoned after 5 s, c4 abandoned after 45 s, c5 voicemail.
//!   offered 5, answered 2, abandoned 2 (1 within T), voicemail 1
//!   SL = 1 / (5 − 1) = 25.00 %, ASA = 20.00, AHT = 150.00, abandonment = 40.00 %
//! Day 2 (2026-11-03): c6 answered by Ann after exactly 20 s (talk 60), c7 unanswered,
//! c8 abandoned after 20 s.
//!   offered 3, answered 1 (within T), abandoned 1 (within T), unanswered 1
//!   SL = 1 / (3 − 1) = 50.00 %, ASA = 20.00, AHT = 60.00, abandonment = 33.33 %
//! Both days: SL = 2 / (8 − 2) = 33.33 %, ASA = 20.00, AHT = 120.00, abandonment = 37.50 %,
//! abandoned callers' mean wait (5 + 45 + 20) / 3 = 23.33 s, offers per call 15 / 8 = 1.88.
//! (Waits run from `enqueued_at`; these fixture calls, like calls from before the queue,
//! have none, so from their start.)
//! Offers: Ann day 1 answered 1, missed 3, canceled 1 (rate 25.00); day 2 answered 1,
//! missed 1, canceled 1 (rate 50.00). Bob day 1 answered 1, missed 2, canceled 2 (33.33);
//! day 2 late 1, missed 1 (0.00). Both days: Ann 8 offers, 2/6 = 33.33; Bob 7, 1/4 = 25.00.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;

use agents::contract::agent;
use agents::{AgentId, Presence};
use call_center::{Call, CallChange, CallStatus, Offer, OfferState, Outcome};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::Row;
use store::{Store, StoreOptions};
use testing::TestDb;

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 10, 0, 0).unwrap()
}

struct Fixture {
    ann: AgentId,
    bob: AgentId,
}

#[allow(clippy::too_many_arguments)]
fn call(
    sid: &str,
    start: DateTime<Utc>,
    outcome: Outcome,
    wait: Option<i64>,
    talk: Option<i64>,
    by: Option<AgentId>,
) -> Call {
    let mut c = Call::new(sid, "+13125550100", "+13125550199", start);
    c.status = CallStatus::Completed;
    c.outcome = Some(outcome);
    c.attempts = 1;
    c.answered_by = by;
    c.version = 1;
    match outcome {
        Outcome::Answered => {
            let w = wait.unwrap();
            c.answered_at = Some(start + Duration::seconds(w));
            c.talk_seconds = talk;
            c.ended_at = Some(start + Duration::seconds(w + talk.unwrap()));
        }
        Outcome::Abandoned => c.ended_at = Some(start + Duration::seconds(wait.unwrap())),
        Outcome::Voicemail => {
            c.voicemail_started_at = Some(start + Duration::seconds(60));
            c.ended_at = Some(start + Duration::seconds(90));
        }
        _ => c.ended_at = Some(start + Duration::seconds(65)),
    }
    c
}

fn offer(c: &Call, agent: AgentId, state: OfferState, talk: Option<i64>) -> Offer {
    Offer {
        call_sid: c.call_sid.clone(),
        attempt: 1,
        agent_id: agent,
        sip_uri: "sip:x@example.com".into(),
        sip_key: "x@example.com".into(),
        leg_sid: None,
        state,
        leg_status: None,
        offered_at: c.started_at,
        answered_at: None,
        ended_at: None,
        leg_duration: None,
        talk_seconds: talk,
        talk_final: talk.is_some(),
        misses_before: 0,
        closed_at: None,
    }
}

async fn load_fixture(store: &Store) -> Fixture {
    let ann = agent(
        "Ann",
        "sip:ann@example.com",
        Presence::Available,
        None,
        day(1),
    );
    let bob = agent(
        "Bob",
        "sip:bob@example.com",
        Presence::Available,
        None,
        day(1),
    );
    store.agents().insert(&ann, "h-ann", vec![]).await.unwrap();
    store.agents().insert(&bob, "h-bob", vec![]).await.unwrap();
    let (a, b) = (ann.id, bob.id);
    use OfferState::{Answered as Ans, Canceled as Can, Late, Missed as Mis};
    let d1 = day(2);
    let d2 = day(3);
    let calls = vec![
        (
            call("c1", d1, Outcome::Answered, Some(10), Some(100), Some(a)),
            vec![(a, Ans, Some(100)), (b, Can, None)],
        ),
        (
            call(
                "c2",
                d1 + Duration::minutes(5),
                Outcome::Answered,
                Some(30),
                Some(200),
                Some(b),
            ),
            vec![(a, Mis, None), (b, Ans, Some(200))],
        ),
        (
            call(
                "c3",
                d1 + Duration::minutes(10),
                Outcome::Abandoned,
                Some(5),
                None,
                None,
            ),
            vec![(a, Can, None), (b, Can, None)],
        ),
        (
            call(
                "c4",
                d1 + Duration::minutes(15),
                Outcome::Abandoned,
                Some(45),
                None,
                None,
            ),
            vec![(a, Mis, None), (b, Mis, None)],
        ),
        (
            call(
                "c5",
                d1 + Duration::minutes(20),
                Outcome::Voicemail,
                None,
                None,
                None,
            ),
            vec![(a, Mis, None), (b, Mis, None)],
        ),
        (
            call("c6", d2, Outcome::Answered, Some(20), Some(60), Some(a)),
            vec![(a, Ans, Some(60)), (b, Late, None)],
        ),
        (
            call(
                "c7",
                d2 + Duration::minutes(5),
                Outcome::Unanswered,
                None,
                None,
                None,
            ),
            vec![(a, Mis, None), (b, Mis, None)],
        ),
        (
            call(
                "c8",
                d2 + Duration::minutes(10),
                Outcome::Abandoned,
                Some(20),
                None,
                None,
            ),
            vec![(a, Can, None)],
        ),
    ];
    for (c, offers) in calls {
        let offers = offers
            .into_iter()
            .map(|(agent, state, talk)| offer(&c, agent, state, talk))
            .collect();
        let change = CallChange {
            expected_version: 0,
            call: c,
            offers,
            attempts: vec![],
            agents: vec![],
            receipts: vec![],
            audit: vec![],
        };
        assert_eq!(
            store.calls().apply(&change).await.unwrap(),
            call_center::Applied::Yes
        );
    }
    Fixture { ann: a, bob: b }
}

type Daily = BTreeMap<
    String,
    (
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
    ),
>;

async fn daily_view(store: &Store) -> Daily {
    let sql = "SELECT CAST(day AS TEXT) AS day, offered, answered, abandoned, voicemail, unanswered, \
               service_level_pct, asa_seconds, aht_seconds, abandonment_rate_pct FROM report_daily ORDER BY day";
    let mut out = Daily::new();
    macro_rules! read {
        ($rows:expr) => {
            for r in $rows {
                out.insert(
                    r.get("day"),
                    (
                        r.get("offered"),
                        r.get("answered"),
                        r.get("abandoned"),
                        r.get("voicemail"),
                        r.get("unanswered"),
                        r.get("service_level_pct"),
                        r.get("asa_seconds"),
                        r.get("aht_seconds"),
                        r.get("abandonment_rate_pct"),
                    ),
                );
            }
        };
    }
    match (store.as_postgres(), store.as_sqlite()) {
        (Some(pg), _) => read!(sqlx::query(sql).fetch_all(pg.pool()).await.unwrap()),
        (_, Some(lite)) => read!(sqlx::query(sql).fetch_all(lite.pool()).await.unwrap()),
        _ => unreachable!(),
    }
    out
}

type AgentDaily = BTreeMap<(String, String), (i64, i64, i64, i64, Option<f64>)>;

async fn agent_view(store: &Store) -> AgentDaily {
    let sql = "SELECT agent_name, CAST(day AS TEXT) AS day, offers, answered, missed, talk_seconds, answer_rate_pct FROM report_agent_daily";
    let mut out = AgentDaily::new();
    macro_rules! read {
        ($rows:expr) => {
            for r in $rows {
                out.insert(
                    (r.get("agent_name"), r.get("day")),
                    (
                        r.get("offers"),
                        r.get("answered"),
                        r.get("missed"),
                        r.get("talk_seconds"),
                        r.get("answer_rate_pct"),
                    ),
                );
            }
        };
    }
    match (store.as_postgres(), store.as_sqlite()) {
        (Some(pg), _) => read!(sqlx::query(sql).fetch_all(pg.pool()).await.unwrap()),
        (_, Some(lite)) => read!(sqlx::query(sql).fetch_all(lite.pool()).await.unwrap()),
        _ => unreachable!(),
    }
    out
}

fn expected_daily() -> Daily {
    BTreeMap::from([
        (
            "2026-11-02".into(),
            (
                5,
                2,
                2,
                1,
                0,
                Some(25.0),
                Some(20.0),
                Some(150.0),
                Some(40.0),
            ),
        ),
        (
            "2026-11-03".into(),
            (
                3,
                1,
                1,
                0,
                1,
                Some(50.0),
                Some(20.0),
                Some(60.0),
                Some(33.33),
            ),
        ),
    ])
}

fn expected_agents() -> AgentDaily {
    let k = |n: &str, d: &str| (n.to_owned(), d.to_owned());
    BTreeMap::from([
        (k("Ann", "2026-11-02"), (5, 1, 3, 100, Some(25.0))),
        (k("Ann", "2026-11-03"), (3, 1, 1, 60, Some(50.0))),
        (k("Bob", "2026-11-02"), (5, 1, 2, 200, Some(33.33))),
        (k("Bob", "2026-11-03"), (2, 0, 1, 0, Some(0.0))),
    ])
}

fn expected_summary(f: &Fixture) -> Value {
    json!({
        "from": "2026-11-02T00:00:00Z", "to": "2026-11-04T00:00:00Z",
        "offered": 8, "answered": 3, "abandoned": 3, "voicemail": 1, "unanswered": 1, "failed": 0,
        "service_level_seconds": 20, "service_level_pct": 33.33, "asa_seconds": 20.0, "aht_seconds": 120.0,
        "abandonment_rate_pct": 37.5, "abandoned_wait_avg_seconds": 23.33, "offers_per_call": 1.88,
        "agents": [
            {"agent_id": f.ann.to_string(), "name": "Ann", "offers": 8, "answered": 2, "missed": 4, "talk_seconds": 160, "answer_rate_pct": 33.33, "pauses_for_misses": 0},
            {"agent_id": f.bob.to_string(), "name": "Bob", "offers": 7, "answered": 1, "missed": 3, "talk_seconds": 200, "answer_rate_pct": 25.0, "pauses_for_misses": 0},
        ]
    })
}

async fn fixture_db(postgres: bool) -> Option<(TestDb, Store, Fixture)> {
    let db = if postgres {
        TestDb::postgres().await?
    } else {
        TestDb::sqlite()
    };
    let store = Store::open(&StoreOptions::new(&db.url)).unwrap();
    store.migrate().await.unwrap();
    let f = load_fixture(&store).await;
    Some((db, store, f))
}

async fn views_give_the_hand_computed_figures(postgres: bool) {
    let Some((_db, store, _)) = fixture_db(postgres).await else {
        return;
    };
    assert_eq!(daily_view(&store).await, expected_daily());
    assert_eq!(agent_view(&store).await, expected_agents());
}

async fn api_and_cli_give_the_hand_computed_figures(postgres: bool) {
    let Some((db, store, f)) = fixture_db(postgres).await else {
        return;
    };
    store.close().await;
    // The HTTP API.
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    let env: BTreeMap<String, String> = [
        ("DATABASE_URL", db.url.as_str()),
        ("CALL_CENTER_SPOOL_DIR", spool_dir.as_str()),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("TELNYX_VERIFY_SIGNATURES", "false"),
        ("CALL_CENTER_ADMIN_TOKEN", "reports-admin-token-123"),
        ("HTTP_WORKERS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let app = callcenter::Application::build(callcenter::Settings::from_env(&env).unwrap())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run(callcenter::Shutdown::Token(stop.clone())));
    let http = reqwest::Client::new();
    let get = |q: &str| {
        http.get(format!("{base}/api/call-center/reports/summary?{q}"))
            .bearer_auth("reports-admin-token-123")
            .send()
    };
    let summary: Value = get("from=2026-11-02&to=2026-11-04T00:00:00Z")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary, expected_summary(&f));
    let day2: Value = get("from=2026-11-03&to=2026-11-04")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            day2["offered"].as_i64(),
            day2["service_level_pct"].as_f64(),
            day2["abandonment_rate_pct"].as_f64()
        ),
        (Some(3), Some(50.0), Some(33.33))
    );
    let reversed: Value = get("from=2026-11-04&to=2026-11-02")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reversed["offered"], 0, "a reversed range is empty");
    assert_eq!(get("from=yesterday").await.unwrap().status(), 422);
    stop.cancel();
    running.await.unwrap().unwrap();
    // The CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callcenter"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("TELNYX_VERIFY_SIGNATURES", "false")
        .args([
            "report",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-04",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, expected_summary(&f));
    let csv = std::process::Command::new(env!("CARGO_BIN_EXE_callcenter"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("TELNYX_VERIFY_SIGNATURES", "false")
        .args([
            "report",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-04",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .ends_with(",8,3,3,1,1,0,20,33.33,20.00,120.00,37.50"),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_views() {
    views_give_the_hand_computed_figures(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn postgres_views() {
    views_give_the_hand_computed_figures(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_api_and_cli() {
    api_and_cli_give_the_hand_computed_figures(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn postgres_api_and_cli() {
    api_and_cli_give_the_hand_computed_figures(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_role_reads_the_views_and_cannot_write() {
    let Some((db, store, _)) = fixture_db(true).await else {
        return;
    };
    let pg = store.as_postgres().unwrap();
    let role = format!("cc_report_{}", uuid::Uuid::new_v4().simple());
    let db_name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE {db_name} TO {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!(
            "GRANT SELECT ON report_calls, report_daily, report_agent_daily, report_voicemails TO {role}"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pg.pool())
            .await
            .unwrap();
    }
    let ro_url = db
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let ro = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&ro_url)
        .await
        .unwrap();
    let offered: i64 = sqlx::query_scalar("SELECT sum(offered)::bigint FROM report_daily")
        .fetch_one(&ro)
        .await
        .unwrap();
    assert_eq!(offered, 8);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM report_calls")
        .fetch_one(&ro)
        .await
        .unwrap();
    assert_eq!(rows, 8);
    let voicemails: i64 = sqlx::query_scalar("SELECT count(*) FROM report_voicemails")
        .fetch_one(&ro)
        .await
        .unwrap();
    assert!(
        voicemails >= 0,
        "the inbox view is readable with the views' grant"
    );
    for write in [
        "INSERT INTO calls (call_sid) VALUES ('x')",
        "UPDATE calls SET outcome = 'answered'",
        "DELETE FROM audit_log",
        "SELECT count(*) FROM calls",
    ] {
        let err = sqlx::raw_sql(write)
            .execute(&ro)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "{write}: {err}");
    }
    ro.close().await;
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pg.pool())
            .await
            .unwrap();
    }
}
