//! The call store contract against the in-memory fake.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;

use agents::MemoryAgentStore;
use audit::MemoryAuditLog;
use call_center::MemoryCallStore;
use call_center::contract::{Stores, run_all};

async fn fresh() -> Stores {
    let audit = MemoryAuditLog::new();
    let agents = MemoryAgentStore::new(audit.clone());
    let calls = MemoryCallStore::new(agents.clone(), audit.clone());
    Stores {
        calls: Arc::new(calls.clone()),
        agents: Arc::new(agents),
        audit: Arc::new(audit),
        voicemails: Arc::new(calls.clone()),
        queue: Arc::new(calls),
    }
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    run_all(fresh).await;
}
