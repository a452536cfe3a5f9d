//! `callcenter seed-demo-data`: finished demo calls written straight into the database, so
//! reports and the wallboard have something to show (and `make bench` something to sum).
//! Not used by the server.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::Row;
use store::{PgStore, SqlTime, SqliteStore, Store};
use uuid::Uuid;

/// Generates `calls` finished demo calls over the last `days` days, answered by `agents`
/// demo agents (created if missing): about 70 % answered, 12 % abandoned, 10 % voicemail,
/// 5 % unanswered, 3 % failed, with plausible waits and talk times, one answered offer
/// per answered call and a missed offer on a third of the calls.
///
/// # Errors
/// When the database refuses.
pub async fn seed(store: &Store, calls: u64, agents: u32, days: u32) -> anyhow::Result<u64> {
    let agents = agents.max(1);
    let ids: Vec<Uuid> = (0..agents)
        .map(|i| Uuid::from_u128(0xdead_0000_0000_0000_0000_0000_0000_0000 + u128::from(i)))
        .collect();
    match (store.as_postgres(), store.as_sqlite()) {
        (Some(pg), _) => seed_postgres(pg, calls, &ids, days).await,
        (_, Some(lite)) => seed_sqlite(lite, calls, &ids, days).await,
        _ => anyhow::bail!("a store is SQLite or PostgreSQL"),
    }
}

const PG_SEED_AGENTS: &str = "INSERT INTO agents (id, name, sip_uri, sip_key, presence, last_heartbeat_at, idle_since,
        heartbeat_token_hash, created_at, updated_at, presence_since)
    SELECT id, 'Demo Agent ' || n, 'sip:demo-agent-' || n || '@demo.invalid', 'demo-agent-' || n || '@demo.invalid',
        'offline', NULL, now(), md5(random()::text) || md5(random()::text), now(), now(), now()
    FROM unnest($1::uuid[]) WITH ORDINALITY AS a(id, n)
    ON CONFLICT DO NOTHING";

const PG_SEED_CALLS: &str = "WITH g AS (
        SELECT i,
            date_trunc('second', now() - random() * make_interval(days => $2)) AS started,
            random() AS r,
            1 + floor(random() * array_length($3::uuid[], 1))::int AS agent,
            1 + floor(random() * array_length($3::uuid[], 1))::int AS other,
            (1 + floor(random() * 60))::int AS wait,
            (20 + floor(random() * 580))::int AS talk
        FROM generate_series(1, $1::bigint) AS i
    ),
    c AS (
        INSERT INTO calls (call_sid, from_number, to_number, status, outcome, attempts, round_open, answered_by,
            started_at, answered_at, ended_at, talk_seconds, voicemail_started_at, recording_notice_played, version, updated_at)
        SELECT 'demo-' || md5(random()::text || i::text), '+1555' || lpad((i % 10000000)::text, 7, '0'), '+15550000000',
            'completed',
            CASE WHEN r < 0.70 THEN 'answered' WHEN r < 0.82 THEN 'abandoned' WHEN r < 0.92 THEN 'voicemail'
                 WHEN r < 0.97 THEN 'unanswered' ELSE 'failed' END,
            CASE WHEN r < 0.70 THEN 1 ELSE 2 END, false,
            CASE WHEN r < 0.70 THEN ($3::uuid[])[agent] END,
            started,
            CASE WHEN r < 0.70 THEN started + make_interval(secs => wait) END,
            started + make_interval(secs => wait + CASE WHEN r < 0.70 THEN talk ELSE 30 END),
            CASE WHEN r < 0.70 THEN talk END,
            CASE WHEN r >= 0.82 AND r < 0.92 THEN started + make_interval(secs => 60) END,
            true, 1, started
        FROM g
        RETURNING call_sid, outcome, answered_by, started_at, answered_at, talk_seconds
    ),
    answered AS (
        INSERT INTO offers (call_sid, attempt, agent_id, sip_uri, sip_key, state, offered_at, answered_at, ended_at,
            talk_seconds, talk_final)
        SELECT c.call_sid, 1, c.answered_by, 'sip:demo@demo.invalid', 'demo@demo.invalid', 'answered', c.started_at,
            c.answered_at, c.answered_at + make_interval(secs => c.talk_seconds), c.talk_seconds, true
        FROM c WHERE c.outcome = 'answered'
    )
    INSERT INTO offers (call_sid, attempt, agent_id, sip_uri, sip_key, state, offered_at, talk_final)
    SELECT c.call_sid, 1, ($3::uuid[])[1 + (abs(hashtext(c.call_sid)) % array_length($3::uuid[], 1))],
        'sip:demo@demo.invalid', 'demo@demo.invalid', 'missed', c.started_at, false
    FROM c
    WHERE abs(hashtext(c.call_sid)) % 3 = 0
      AND (c.answered_by IS NULL OR c.answered_by <> ($3::uuid[])[1 + (abs(hashtext(c.call_sid)) % array_length($3::uuid[], 1))])";

async fn seed_postgres(
    pg: &PgStore,
    calls: u64,
    agents: &[Uuid],
    days: u32,
) -> anyhow::Result<u64> {
    sqlx::query(PG_SEED_AGENTS)
        .bind(agents)
        .execute(pg.pool())
        .await
        .context("seeding agents")?;
    let total = i64::try_from(calls).context("too many calls")?;
    let mut done = 0;
    while done < total {
        let batch = (total - done).min(100_000);
        sqlx::query(PG_SEED_CALLS)
            .bind(batch)
            .bind(i32::try_from(days.max(1)).unwrap_or(i32::MAX))
            .bind(agents)
            .execute(pg.pool())
            .await
            .context("seeding calls")?;
        done += batch;
    }
    sqlx::query("ANALYZE calls, offers")
        .execute(pg.pool())
        .await
        .context("analyze")?;
    Ok(calls)
}

const SQLITE_SEED_CALLS: &str = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1),
    g AS (
        SELECT i,
            strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || (abs(random()) % (?2 * 86400)) || ' seconds') AS started,
            (abs(random()) % 1000000) / 1000000.0 AS r,
            abs(random()) % ?3 AS agent,
            1 + abs(random()) % 60 AS wait,
            20 + abs(random()) % 580 AS talk
        FROM seq
    )
    SELECT i, started, r, agent, wait, talk FROM g";

async fn seed_sqlite(
    lite: &SqliteStore,
    calls: u64,
    agents: &[Uuid],
    days: u32,
) -> anyhow::Result<u64> {
    let now = SqlTime(Utc::now()).text();
    let mut tx = lite
        .pool()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .context("begin")?;
    for (n, id) in agents.iter().enumerate() {
        let n = n + 1;
        sqlx::query(
            "INSERT INTO agents (id, name, sip_uri, sip_key, presence, idle_since, heartbeat_token_hash, created_at, updated_at, presence_since)
             VALUES (?, ?, ?, ?, 'offline', ?, hex(randomblob(32)), ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(id.hyphenated())
        .bind(format!("Demo Agent {n}"))
        .bind(format!("sip:demo-agent-{n}@demo.invalid"))
        .bind(format!("demo-agent-{n}@demo.invalid"))
        .bind(&now)
        .bind(&now)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .context("seeding agents")?;
    }
    let ids: Vec<String> = agents.iter().map(|u| u.hyphenated().to_string()).collect();
    let rows = sqlx::query(SQLITE_SEED_CALLS)
        .bind(i64::try_from(calls).context("too many calls")?)
        .bind(i64::from(days.max(1)))
        .bind(i64::try_from(ids.len()).unwrap_or(1))
        .fetch_all(&mut *tx)
        .await
        .context("generating calls")?;
    for row in rows {
        let i: i64 = row.try_get("i")?;
        let started_text: String = row.try_get("started")?;
        let started = SqlTime::parse(&format!("{started_text}Z"))
            .context("seed time")?
            .0;
        let r: f64 = row.try_get("r")?;
        let agent = usize::try_from(row.try_get::<i64, _>("agent")?).unwrap_or(0);
        let wait: i64 = row.try_get("wait")?;
        let talk: i64 = row.try_get("talk")?;
        insert_seed_call(
            &mut tx,
            i,
            started,
            r,
            ids.get(agent).map(String::as_str),
            wait,
            talk,
            &ids,
        )
        .await?;
    }
    tx.commit().await.context("commit")?;
    Ok(calls)
}

#[allow(clippy::too_many_arguments)]
async fn insert_seed_call(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    i: i64,
    started: DateTime<Utc>,
    r: f64,
    agent: Option<&str>,
    wait: i64,
    talk: i64,
    ids: &[String],
) -> anyhow::Result<()> {
    let outcome = match r {
        x if x < 0.70 => "answered",
        x if x < 0.82 => "abandoned",
        x if x < 0.92 => "voicemail",
        x if x < 0.97 => "unanswered",
        _ => "failed",
    };
    let answered = outcome == "answered";
    let sid = format!("demo-{}", Uuid::new_v4().simple());
    let at = |secs: i64| SqlTime(started + chrono::Duration::seconds(secs));
    sqlx::query(
        "INSERT INTO calls (call_sid, from_number, to_number, status, outcome, attempts, round_open, answered_by,
             started_at, answered_at, ended_at, talk_seconds, voicemail_started_at, recording_notice_played, version, updated_at)
         VALUES (?, ?, '+15550000000', 'completed', ?, ?, 0, ?, ?, ?, ?, ?, ?, 1, 1, ?)",
    )
    .bind(&sid)
    .bind(format!("+1555{:07}", i % 10_000_000))
    .bind(outcome)
    .bind(if answered { 1 } else { 2 })
    .bind(answered.then_some(agent).flatten())
    .bind(SqlTime(started))
    .bind(answered.then(|| at(wait)))
    .bind(at(wait + if answered { talk } else { 30 }))
    .bind(answered.then_some(talk))
    .bind((outcome == "voicemail").then(|| at(60)))
    .bind(SqlTime(started))
    .execute(&mut **tx)
    .await
    .context("seeding a call")?;
    if let (true, Some(agent)) = (answered, agent) {
        sqlx::query(
            "INSERT INTO offers (call_sid, attempt, agent_id, sip_uri, sip_key, state, offered_at, answered_at, ended_at, talk_seconds, talk_final)
             VALUES (?, 1, ?, 'sip:demo@demo.invalid', 'demo@demo.invalid', 'answered', ?, ?, ?, ?, 1)",
        )
        .bind(&sid)
        .bind(agent)
        .bind(SqlTime(started))
        .bind(at(wait))
        .bind(at(wait + talk))
        .bind(talk)
        .execute(&mut **tx)
        .await
        .context("seeding an offer")?;
    }
    let other = ids
        .get(usize::try_from(i).unwrap_or(0) % ids.len().max(1))
        .map(String::as_str);
    if i % 3 == 0 && other.is_some() && other != agent.filter(|_| answered) {
        sqlx::query(
            "INSERT INTO offers (call_sid, attempt, agent_id, sip_uri, sip_key, state, offered_at, talk_final)
             VALUES (?, 1, ?, 'sip:demo@demo.invalid', 'demo@demo.invalid', 'missed', ?, 0)",
        )
        .bind(&sid)
        .bind(other)
        .bind(SqlTime(started))
        .execute(&mut **tx)
        .await
        .context("seeding a missed offer")?;
    }
    Ok(())
}
