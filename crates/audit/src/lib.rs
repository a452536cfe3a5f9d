//! # audit: a tamper-evident audit log for the call center
//!
//! Every call event and every administrative action becomes an entry: when, who
//! ([`Actor`]), what ([`AuditAction`]), which call or agent, and a small JSON object of ids.
//! Entries hold ids, never caller numbers or transcripts.
//!
//! Entries are written **pending**, in the same transaction as the change they describe
//! (domain code stages them through an [`AuditSink`]; the store writes them). A sealer then
//! puts pending entries into a SHA-256 hash chain **in commit order** ([`chain::seal`]), so
//! webhooks never wait on a global lock. [`verify_chain`] recomputes the chain and names the
//! first broken entry; a separately stored [`ChainHead`] exposes a chain cut short at the
//! end. See `docs/compliance.md` for what the chain proves and what it does not.
//!
//! ```
//! use audit::*;
//! use chrono::Utc;
//!
//! # tokio_test();
//! # fn tokio_test() { tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let log = MemoryAuditLog::new();
//! let mut batch = Vec::new();
//! ChainSink.stage(&mut batch, NewAuditEvent::new(Utc::now(), Actor::Telnyx, AuditAction::CallReceived).call("v3:abc"));
//! log.push(batch);
//! log.seal_pending().await.unwrap();
//! assert!(verify_chain(&log).await.unwrap().ok);
//! # }) }
//! ```

pub mod chain;
mod event;
mod memory;
mod port;

pub use chain::{Break, BrokenEntry, ChainHead, VerifyReport};
pub use event::{Actor, AuditAction, AuditEntry, NewAuditEvent, UnknownActor};
pub use memory::MemoryAuditLog;
pub use port::{AuditError, AuditFilter, AuditLog, AuditSink, ChainSink, NullSink, verify_chain};
