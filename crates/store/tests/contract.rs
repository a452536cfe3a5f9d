//! The agent and call store contracts on SQLite (always) and PostgreSQL (with
//! `TEST_DATABASE_URL`; required in CI).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::{Arc, Mutex};

use agents::AgentStore;
use audit::AuditLog;
use call_center::contract::Stores;
use store::{Store, StoreOptions};
use testing::TestDb;

/// Fresh databases for one test, kept alive until the test ends.
#[derive(Clone, Default)]
struct Databases(Arc<Mutex<Vec<TestDb>>>);

impl Databases {
    async fn fresh(&self, postgres: bool) -> Store {
        let db = if postgres {
            TestDb::postgres().await.unwrap()
        } else {
            TestDb::sqlite()
        };
        let store = Store::open(&StoreOptions::new(&db.url)).unwrap();
        store.migrate().await.unwrap();
        self.0.lock().unwrap().push(db);
        store
    }
}

async fn agent_contract(postgres: bool) {
    let dbs = Databases::default();
    agents::contract::run_all(|| {
        let dbs = dbs.clone();
        async move {
            let s = dbs.fresh(postgres).await;
            (s.agents(), s.audit()) as (Arc<dyn AgentStore>, Arc<dyn AuditLog>)
        }
    })
    .await;
}

async fn call_contract(postgres: bool) {
    let dbs = Databases::default();
    call_center::contract::run_all(|| {
        let dbs = dbs.clone();
        async move {
            let s = dbs.fresh(postgres).await;
            Stores {
                calls: s.calls(),
                agents: s.agents(),
                audit: s.audit(),
                voicemails: s.voicemails(),
                queue: s.queue(),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_meets_the_agent_store_contract() {
    agent_contract(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_meets_the_call_store_contract() {
    call_contract(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn postgres_meets_the_agent_store_contract() {
    if testing::postgres_url().is_some() {
        agent_contract(true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
async fn postgres_meets_the_call_store_contract() {
    if testing::postgres_url().is_some() {
        call_contract(true).await;
    }
}
