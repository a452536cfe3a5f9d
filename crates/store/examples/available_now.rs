//! Benchmark of the routing query: "which agents are available now", among 10,000
//! registered agents of whom 1,000 are available (fresh heartbeat, no call). The rest are
//! offline, busy, on a call, or available with an expired heartbeat: the cases the query
//! must skip. Prints the query plan and one JSON line with latency percentiles.
//!
//! ```text
//! cargo run --release -p store --example available_now -- DATABASE_URL [QUERIES]
//! ```
//! Use a scratch database: the example inserts its agents (`make bench` creates one).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is a bug report

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;
use support::percentile;

use agents::Liveness;
use chrono::{Duration, Utc};
use store::{Store, StoreOptions};

/// 10,000 agents: every tenth (1,000) available with a fresh heartbeat; the others offline,
/// busy, on a call, or with a heartbeat 10 minutes old.
const SEED: &str = "INSERT INTO agents (id, name, sip_uri, sip_key, presence, last_heartbeat_at, current_call_sid,
        idle_since, heartbeat_token_hash, created_at, updated_at, presence_since)
    SELECT gen_random_uuid(), 'Agent ' || n, 'sip:agent-' || n || '@bench.invalid', 'agent-' || n || '@bench.invalid',
        CASE WHEN n % 10 IN (0, 1, 2, 3) THEN 'available' WHEN n % 10 IN (4, 5) THEN 'busy' ELSE 'offline' END,
        CASE WHEN n % 10 = 0 THEN now() ELSE now() - interval '10 minutes' END,
        CASE WHEN n % 10 IN (1, 2) THEN 'v3:call-' || n END,
        now() - make_interval(secs => n),
        md5('token' || n), now(), now(), now()
    FROM generate_series(1, 10000) AS n";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .expect("usage: available_now DATABASE_URL [QUERIES]");
    let queries: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let store = Store::open(&StoreOptions::new(url)).unwrap();
    store.migrate().await.unwrap();
    let pg = store.as_postgres().expect("a postgres:// URL");
    sqlx::query("DELETE FROM agents")
        .execute(pg.pool())
        .await
        .unwrap();
    sqlx::query(SEED).execute(pg.pool()).await.unwrap();
    sqlx::query("ANALYZE agents")
        .execute(pg.pool())
        .await
        .unwrap();

    let agents = store.agents();
    let limit = 50;
    let liveness = || Liveness::new(Utc::now(), Duration::seconds(60));
    for _ in 0..200 {
        agents.available_now(&liveness(), limit).await.unwrap();
    }
    let mut took = Vec::with_capacity(queries);
    let mut rows = 0;
    for _ in 0..queries {
        let started = Instant::now();
        rows = agents
            .available_now(&liveness(), limit)
            .await
            .unwrap()
            .len();
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);

    // The constants are this crate's own SQL; no outside input reaches the text.
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {}",
        store::postgres::AVAILABLE_NOW
            .replace("$1", "now() - interval '60 seconds'")
            .replace("$2", &limit.to_string())
            .replace("$3", "now()")
    )))
    .fetch_all(pg.pool())
    .await
    .unwrap();
    eprintln!("EXPLAIN ANALYZE of the query:\n  {}", plan.join("\n  "));
    let line = serde_json::json!({
        "label": "available-now",
        "agents": 10_000,
        "available": 1_000,
        "limit": limit,
        "rows": rows,
        "queries": queries,
        "p50_ms": percentile(&took, 0.5),
        "p99_ms": percentile(&took, 0.99),
        "max_ms": percentile(&took, 1.0),
    });
    println!("{line}");
    store.close().await;
}
