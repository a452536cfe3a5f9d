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
    Stores {
        calls: Arc::new(MemoryCallStore::new(agents.clone(), audit.clone())),
        agents: Arc::new(agents),
        audit: Arc::new(audit),
    }
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    run_all(fresh).await;
}
