//! The store contract against the in-memory fake.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;

use agents::{AgentStore, MemoryAgentStore};
use audit::{AuditLog, MemoryAuditLog};

async fn fresh() -> (Arc<dyn AgentStore>, Arc<dyn AuditLog>) {
    let log = MemoryAuditLog::new();
    (Arc::new(MemoryAgentStore::new(log.clone())), Arc::new(log))
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    agents::contract::run_all(fresh).await;
}
