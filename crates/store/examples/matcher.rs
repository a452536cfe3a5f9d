//! Benchmark of the queue's matcher on a real database: 10,000 callers waiting and 1,000
//! agents free, the server's own `CallFlow::match_queue` reserving until no agent is left
//! (one match: read the head of the queue and the eligible agents, reserve in one versioned
//! change). Each round frees the agents again (SQL) and tops the queue up to its size; the
//! time of every match is kept. Prints one JSON line with the percentiles.
//!
//! ```text
//! cargo run --release -p store --example matcher -- DATABASE_URL [longest-idle|ring-all] [CALLERS] [AGENTS] [ROUNDS]
//! ```
//! Use a scratch database: the example empties its calls and agents (`make bench` creates
//! one).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is a bug report

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{arg, percentile};

use agents::{Clock, SystemClock};
use audit::ChainSink;
use call_center::{CallFlow, Event, FlowSettings, Ports, QueueStrategy, UrlKeys, Urls};
use futures::StreamExt;
use store::{Store, StoreOptions};

/// Agents, all available with a fresh heartbeat, idle for different times.
const AGENTS: &str = "INSERT INTO agents (id, name, sip_uri, sip_key, presence, last_heartbeat_at,
        idle_since, heartbeat_token_hash, created_at, updated_at, presence_since)
    SELECT gen_random_uuid(), 'Agent ' || n, 'sip:agent-' || n || '@bench.invalid',
        'agent-' || n || '@bench.invalid', 'available', now() + interval '1 hour',
        now() - make_interval(secs => n), md5('token' || n), now(), now(), now()
    FROM generate_series(1, $1::int) AS n";

/// Frees every agent again (as answers and hang-ups would) and closes the open rounds'
/// offers, so the next round has the same number of eligible agents.
const FREE_AGENTS: [&str; 2] = [
    "UPDATE offers SET state = 'canceled', closed_at = now() WHERE state = 'ringing'",
    "UPDATE agents SET offer_call_sid = NULL, offer_ringing = false, last_heartbeat_at = now() + interval '1 hour'",
];

fn inbound(n: usize) -> Event {
    Event::Inbound {
        call_sid: format!("v3:bench-{n:08}"),
        from: format!("+1312555{:04}", n % 10_000),
        to: "+13125550199".into(),
        account_sid: Some("bench-account".into()),
        connection_id: Some("bench-connection".into()),
    }
}

/// The machine's ceiling for one write, measured in the same run: one single-row `UPDATE`
/// committed on its own (a round trip and a WAL flush), `n` times; the times in ms, sorted.
/// A match is a few of these (read, load, one change), so its p99 is read against this one.
async fn write_ceiling(pool: &sqlx::PgPool, n: usize) -> Vec<f64> {
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM agents LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        sqlx::query("UPDATE agents SET updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    ms
}

/// Callers until `waiting` wait (each joins through the flow, as `/inbound` does).
async fn top_up(flow: &CallFlow, pool: &sqlx::PgPool, waiting: usize, next: &mut usize) {
    let now: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM calls WHERE status IN ('ringing', 'dialing') AND NOT round_open",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let missing = waiting.saturating_sub(usize::try_from(now).unwrap_or(0));
    let first = *next;
    *next += missing;
    futures::stream::iter(first..first + missing)
        .map(|n| async move { flow.handle(&inbound(n), None).await.unwrap() })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .expect("usage: matcher DATABASE_URL [longest-idle|ring-all] [CALLERS] [AGENTS] [ROUNDS]");
    let strategy = match args.get(2).map_or("longest-idle", String::as_str) {
        "ring-all" => QueueStrategy::RingAll,
        _ => QueueStrategy::LongestIdle,
    };
    let callers: usize = arg(&args, 3, 10_000);
    let agents: i32 = arg(&args, 4, 1_000);
    let rounds: usize = arg(&args, 5, 3);

    let store = Store::open(&StoreOptions::new(url)).unwrap();
    store.migrate().await.unwrap();
    let pg = store
        .as_postgres()
        .expect("a postgres:// URL")
        .pool()
        .clone();
    for sql in [
        "DELETE FROM offers",
        "DELETE FROM dial_attempts",
        "DELETE FROM calls",
        "DELETE FROM agents",
    ] {
        sqlx::query(sql).execute(&pg).await.unwrap();
    }
    let mut settings = FlowSettings::default();
    settings.queue.strategy = strategy;
    settings.queue.max_wait = chrono::Duration::hours(10);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = Ports {
        calls: store.calls(),
        queue: store.queue(),
        agents: store.agents(),
        clock,
        audit: Arc::new(ChainSink),
    };
    let urls = Urls::new("https://bench.invalid", UrlKeys::random()).unwrap();
    let flow = CallFlow::new(ports, settings, urls, chrono::Duration::hours(2));

    let mut next = 0;
    let seeding = Instant::now();
    top_up(&flow, &pg, callers, &mut next).await;
    sqlx::query(AGENTS).bind(agents).execute(&pg).await.unwrap();
    for sql in [
        "VACUUM ANALYZE calls",
        "VACUUM ANALYZE agents",
        "VACUUM ANALYZE offers",
    ] {
        sqlx::query(sql).execute(&pg).await.unwrap();
    }
    eprintln!(
        "matcher: {callers} callers and {agents} agents seeded in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let ceiling = write_ceiling(&pg, 1000).await;
    let mut times: Vec<Duration> = Vec::new();
    let mut reserved = 0;
    let started = Instant::now();
    for round in 0..rounds {
        if round > 0 {
            for sql in FREE_AGENTS {
                sqlx::query(sql).execute(&pg).await.unwrap();
            }
            top_up(&flow, &pg, callers, &mut next).await;
        }
        loop {
            let pass = flow.match_queue().await.unwrap();
            reserved += pass.reserved.len();
            times.extend(&pass.match_times);
            if pass.reserved.is_empty() {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let label = match strategy {
        QueueStrategy::RingAll => "matcher-ring-all",
        QueueStrategy::LongestIdle => "matcher-longest-idle",
    };
    println!(
        "{}",
        serde_json::json!({
            "label": label,
            "callers_waiting": callers,
            "agents": agents,
            "matches": ms.len(),
            "reserved": reserved,
            "p50_ms": percentile(&ms, 0.5),
            "p90_ms": percentile(&ms, 0.9),
            "p99_ms": percentile(&ms, 0.99),
            "max_ms": ms.last().copied().unwrap_or(0.0),
            "matches_per_second": ms.len() as f64 / elapsed.as_secs_f64(),
            "one_write_p50_ms": percentile(&ceiling, 0.5),
            "one_write_p99_ms": percentile(&ceiling, 0.99),
            "p99_in_writes": percentile(&ms, 0.99) / percentile(&ceiling, 0.99).max(1e-9),
        })
    );
}
