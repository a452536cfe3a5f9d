//! The audit chain in the database: tampering with raw SQL is detected and located, on
//! SQLite and PostgreSQL; the PostgreSQL sealer never skips a transaction that commits late.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use audit::{
    Actor, AuditAction, AuditLog, Break, NewAuditEvent, VerifyReport, chain, verify_chain,
};
use chrono::{TimeZone, Utc};
use sqlx::Row;
use store::{Store, StoreOptions};
use testing::TestDb;

const N: i64 = 10;

async fn chain_of_ten(postgres: bool) -> Option<(Store, TestDb)> {
    let db = if postgres {
        TestDb::postgres().await?
    } else {
        TestDb::sqlite()
    };
    let store = Store::open(&StoreOptions::new(&db.url)).unwrap();
    store.migrate().await.unwrap();
    let log = store.audit();
    for i in 1..=N {
        let at = Utc
            .timestamp_opt(1_790_000_000 + i, 123_456_000)
            .single()
            .unwrap();
        let e = NewAuditEvent::new(at, Actor::Telnyx, AuditAction::OfferMade)
            .call(format!("v3:call-{i}"))
            .data([("attempt", serde_json::Value::from(i))]);
        log.append(vec![e]).await.unwrap();
    }
    assert_eq!(seal_all(log.as_ref(), N as u64).await, N as u64);
    let report = verify_chain(log.as_ref()).await.unwrap();
    assert!(report.ok && report.entries == N, "{report:?}");
    Some((store, db))
}

/// Seals until `expected` entries are sealed. On PostgreSQL the sealer waits for the oldest
/// writing transaction of the whole cluster, so other tests' transactions (other databases,
/// same server) can delay it for a moment; it never skips.
async fn seal_all(log: &dyn AuditLog, expected: u64) -> u64 {
    let mut sealed = 0;
    for _ in 0..200 {
        sealed += log.seal_pending().await.unwrap();
        if sealed >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    sealed
}

/// Runs raw SQL with the append-only triggers out of the way (what an attacker with database
/// access would do).
async fn tamper(store: &Store, statements: &[&str]) {
    if let Some(pg) = store.as_postgres() {
        let mut tx = pg.pool().begin().await.unwrap();
        sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
            .execute(&mut *tx)
            .await
            .unwrap();
        for s in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER USER")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    } else {
        let pool = store.as_sqlite().unwrap().pool();
        sqlx::raw_sql("DROP TRIGGER IF EXISTS audit_log_seal_once; DROP TRIGGER IF EXISTS audit_log_no_delete;").execute(pool).await.unwrap();
        for s in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn verify(store: &Store) -> VerifyReport {
    verify_chain(store.audit().as_ref()).await.unwrap()
}

async fn broken_at(store: &Store) -> (i64, Break) {
    let report = verify(store).await;
    assert!(!report.ok, "tampering went unnoticed");
    let b = report.first_broken.unwrap();
    (b.seq, b.reason)
}

async fn data_changed(postgres: bool) {
    let Some((store, _db)) = chain_of_ten(postgres).await else {
        return;
    };
    tamper(
        &store,
        &[r#"UPDATE audit_log SET data = '{"attempt":99}' WHERE seq = 4"#],
    )
    .await;
    assert_eq!(broken_at(&store).await, (4, Break::DigestMismatch));
}

async fn entry_deleted(postgres: bool) {
    let Some((store, _db)) = chain_of_ten(postgres).await else {
        return;
    };
    tamper(&store, &["DELETE FROM audit_log WHERE seq = 6"]).await;
    let (seq, reason) = broken_at(&store).await;
    assert_eq!(seq, 6);
    assert!(
        matches!(
            reason,
            Break::SequenceGap {
                expected_seq: 6,
                found_seq: 7
            }
        ),
        "{reason:?}"
    );
}

/// The strongest insert: the attacker computes a correct digest for the new entry.
async fn entry_inserted(postgres: bool) {
    let Some((store, _db)) = chain_of_ten(postgres).await else {
        return;
    };
    let prev: String = {
        let entries = store.audit().chain_page(2, 1).await.unwrap();
        entries[0].digest.clone().unwrap()
    };
    let at = Utc
        .timestamp_opt(1_790_000_003, 500_000_000)
        .single()
        .unwrap();
    let forged = NewAuditEvent::new(at, Actor::Admin, AuditAction::AdminAction)
        .data([("note", "forged".into())]);
    let digest = chain::digest(&prev, 4, &forged);
    let at_text = if postgres {
        chain::chain_time(&at)
    } else {
        store::SqlTime(at).text()
    };
    let insert = format!(
        "INSERT INTO audit_log (seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest) \
         VALUES (4, '{at_text}', 'admin', 'admin_action', NULL, NULL, '{}', '{prev}', '{digest}')",
        forged.data
    );
    let shift = "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 4";
    let unshift = "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000";
    tamper(&store, &[shift, unshift, &insert]).await;
    let (seq, reason) = broken_at(&store).await;
    assert_eq!(seq, 5, "the forged entry links, the next one does not");
    assert!(matches!(reason, Break::BrokenLink { .. }), "{reason:?}");
}

async fn entries_swapped(postgres: bool) {
    let Some((store, _db)) = chain_of_ten(postgres).await else {
        return;
    };
    tamper(
        &store,
        &[
            "UPDATE audit_log SET seq = -2 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 7",
            "UPDATE audit_log SET seq = 7 WHERE seq = -2",
        ],
    )
    .await;
    let (seq, _) = broken_at(&store).await;
    assert_eq!(seq, 2);
}

async fn tail_truncated_then_a_later_entry_readded(postgres: bool) {
    let Some((store, _db)) = chain_of_ten(postgres).await else {
        return;
    };
    let last = store.audit().chain_page(N - 1, 1).await.unwrap().remove(0);
    tamper(&store, &["DELETE FROM audit_log WHERE seq >= 8"]).await;
    let (seq, reason) = broken_at(&store).await;
    assert_eq!(seq, 8, "the head still records entry 10");
    assert!(
        matches!(
            reason,
            Break::MissingTail {
                last_seq: 7,
                head_seq: 10
            }
        ),
        "{reason:?}"
    );
    // Put the original last entry back, digests and all.
    let at_text = if postgres {
        chain::chain_time(&last.occurred_at)
    } else {
        store::SqlTime(last.occurred_at).text()
    };
    let readd = format!(
        "INSERT INTO audit_log (seq, occurred_at, actor, action, call_sid, agent_id, data, prev_digest, digest) \
         VALUES (10, '{at_text}', 'telnyx', 'offer_made', '{}', NULL, '{}', '{}', '{}')",
        last.call_sid.unwrap(),
        last.data,
        last.prev_digest.unwrap(),
        last.digest.unwrap()
    );
    tamper(&store, &[&readd]).await;
    let (seq, reason) = broken_at(&store).await;
    assert_eq!(seq, 8);
    assert!(
        matches!(
            reason,
            Break::SequenceGap {
                expected_seq: 8,
                found_seq: 10
            }
        ),
        "{reason:?}"
    );
}

async fn append_only_triggers(postgres: bool) {
    let Some((store, _db)) = chain_of_ten(postgres).await else {
        return;
    };
    let attempts = [
        "UPDATE audit_log SET data = '{}' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
    ];
    for sql in attempts {
        let result = match (store.as_postgres(), store.as_sqlite()) {
            (Some(pg), _) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(pg.pool())
                .await
                .map(|_| ()),
            (_, Some(lite)) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(lite.pool())
                .await
                .map(|_| ()),
            _ => unreachable!(),
        };
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("append-only") || err.contains("cannot be changed"),
            "{sql}: {err}"
        );
    }
    assert!(verify(&store).await.ok);
}

macro_rules! both {
    ($($name:ident),+) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
            async fn postgres() {
                super::$name(true).await;
            }
        })+
    };
}

both!(
    data_changed,
    entry_deleted,
    entry_inserted,
    entries_swapped,
    tail_truncated_then_a_later_entry_readded,
    append_only_triggers
);

/// A transaction that began before another but commits after it is sealed too, in xid order,
/// and nothing is sealed while it is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn postgres_sealer_waits_for_late_commits() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = Store::open(&StoreOptions::new(&db.url)).unwrap();
    store.migrate().await.unwrap();
    let pg = store.as_postgres().unwrap();
    let insert = "INSERT INTO audit_log (occurred_at, actor, action, data) VALUES (now(), 'system', 'admin_action', $1)";
    let mut early = pg.pool().begin().await.unwrap();
    sqlx::query(insert)
        .bind(r#"{"tx":"early"}"#)
        .execute(&mut *early)
        .await
        .unwrap();
    let mut late = pg.pool().begin().await.unwrap();
    sqlx::query(insert)
        .bind(r#"{"tx":"late"}"#)
        .execute(&mut *late)
        .await
        .unwrap();
    late.commit().await.unwrap();
    assert_eq!(
        store.audit().seal_pending().await.unwrap(),
        0,
        "the early transaction is still open"
    );
    early.commit().await.unwrap();
    assert_eq!(seal_all(store.audit().as_ref(), 2).await, 2);
    let rows = sqlx::query("SELECT data FROM audit_log ORDER BY seq")
        .fetch_all(pg.pool())
        .await
        .unwrap();
    let order: Vec<String> = rows.iter().map(|r| r.get::<String, _>("data")).collect();
    assert_eq!(order, [r#"{"tx":"early"}"#, r#"{"tx":"late"}"#]);
    assert!(verify(&store).await.ok);
}

/// Sealers on several instances take turns and never seal twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn concurrent_sealers_take_turns() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let stores: Vec<Store> = (0..4)
        .map(|_| Store::open(&StoreOptions::new(&db.url)).unwrap())
        .collect();
    stores[0].migrate().await.unwrap();
    let writers = (0..8).map(|w| {
        let log = stores[w % 4].audit();
        tokio::spawn(async move {
            for i in 0..50 {
                let e = NewAuditEvent::new(Utc::now(), Actor::System, AuditAction::AdminAction)
                    .data([("w", w.into()), ("i", i.into())]);
                log.append(vec![e]).await.unwrap();
            }
        })
    });
    let sealers = (0..4).map(|s| {
        let log = stores[s].audit();
        tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..40 {
                n += log.seal_pending().await.unwrap();
                tokio::task::yield_now().await;
            }
            n
        })
    });
    futures_join(writers).await;
    let mut sealed: u64 = 0;
    for s in sealers {
        sealed += s.await.unwrap();
    }
    sealed += seal_all(stores[0].audit().as_ref(), 400 - sealed).await;
    assert_eq!(sealed, 400, "every entry sealed exactly once");
    let report = verify(&stores[0]).await;
    assert!(report.ok && report.entries == 400, "{report:?}");
}

async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<()>>) {
    for h in handles {
        h.await.unwrap();
    }
}

/// A fresh store whose audit log holds one entry, pending (an agent's registration, at a
/// time with nanoseconds), and that time.
async fn store_with_a_pending_entry(postgres: bool) -> (TestDb, Store, chrono::DateTime<Utc>) {
    let db = if postgres {
        TestDb::postgres()
            .await
            .expect("PostgreSQL (TEST_DATABASE_URL)")
    } else {
        TestDb::sqlite()
    };
    let store = Store::open(&StoreOptions::new(&db.url)).unwrap();
    store.migrate().await.unwrap();
    let at = Utc
        .timestamp_opt(1_790_000_000, 987_654_321)
        .single()
        .unwrap();
    store
        .audit()
        .append(vec![NewAuditEvent::new(
            at,
            Actor::Admin,
            AuditAction::AgentRegistered,
        )])
        .await
        .unwrap();
    (db, store, at)
}

/// A call change's entries are sealed in the change's own transaction on SQLite (inserted
/// with their chain columns), after whatever other writes left pending; on PostgreSQL the
/// sealer seals both. Either way one chain, in commit order, verified whole.
async fn call_change_entries_follow_pending_ones(postgres: bool) {
    let (_db, store, at) = store_with_a_pending_entry(postgres).await;
    let log = store.audit();
    let mut change = call_center::contract::effects_on("v3:call-sealed", 1, vec![]);
    change.audit = vec![
        NewAuditEvent::new(at, Actor::Telnyx, AuditAction::CallReceived).call("v3:call-sealed"),
        NewAuditEvent::new(at, Actor::Telnyx, AuditAction::OfferMade)
            .call("v3:call-sealed")
            .data([("attempt", serde_json::Value::from(1))]),
    ];
    assert_eq!(
        store.calls().apply(&change).await.unwrap(),
        call_center::Applied::Yes
    );
    if postgres {
        assert_eq!(seal_all(log.as_ref(), 3).await, 3);
    } else {
        assert_eq!(
            log.seal_pending().await.unwrap(),
            0,
            "sealed with the change"
        );
    }
    let report = verify(&store).await;
    assert!(report.ok && report.entries == 3, "{report:?}");
    let page = log.chain_page(0, 10).await.unwrap();
    let actions: Vec<AuditAction> = page.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::AgentRegistered,
            AuditAction::CallReceived,
            AuditAction::OfferMade
        ],
        "in commit order"
    );
}

#[tokio::test]
async fn call_change_entries_follow_pending_ones_sqlite() {
    call_change_entries_follow_pending_ones(false).await;
}

#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn call_change_entries_follow_pending_ones_postgres() {
    call_change_entries_follow_pending_ones(true).await;
}

/// Call changes applied at once on PostgreSQL go in batches (one transaction for several
/// webhooks) whose entries are sealed as they are inserted, after whatever other writers
/// left pending; a change applied alone leaves its entries to the sealer. Either way one
/// chain, verified whole, with the entry committed before every change first.
#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn batched_call_changes_extend_the_chain_after_pending_entries_postgres() {
    const CALLS: usize = 16;
    let (_db, store, at) = store_with_a_pending_entry(true).await;
    let log = store.audit();
    let calls = store.calls();
    let applies = (0..CALLS).map(|i| {
        let calls = std::sync::Arc::clone(&calls);
        let sid = format!("v3:batched-{i}");
        let mut change = call_center::contract::effects_on(&sid, 1, vec![]);
        change.audit = vec![
            NewAuditEvent::new(at, Actor::Telnyx, AuditAction::CallReceived).call(&sid),
            NewAuditEvent::new(at, Actor::Telnyx, AuditAction::OfferMade)
                .call(&sid)
                .data([("attempt", serde_json::Value::from(1))]),
        ];
        tokio::spawn(async move { calls.apply(&change).await.unwrap() })
    });
    for applied in futures::future::join_all(applies).await {
        assert_eq!(applied.unwrap(), call_center::Applied::Yes);
    }
    let total = 1 + 2 * CALLS as u64;
    let mut sealed_by_the_sealer = 0;
    for _ in 0..200 {
        sealed_by_the_sealer += log.seal_pending().await.unwrap();
        if log.head().await.unwrap().seq == total as i64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        sealed_by_the_sealer < total,
        "some entries were sealed in a batch"
    );
    let report = verify(&store).await;
    assert!(report.ok && report.entries == total as i64, "{report:?}");
    let page = log.chain_page(0, 100).await.unwrap();
    assert_eq!(
        page[0].action,
        AuditAction::AgentRegistered,
        "in commit order"
    );
    for pair in page.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.map(|s| s + 1), "no gap");
    }
}
