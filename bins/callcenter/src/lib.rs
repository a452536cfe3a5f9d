//! # callcenter: the server
//!
//! A thin actix-web layer over the domain crates: configuration, telemetry, the HTTP API
//! (Telnyx webhooks, agents, calls, audit, operations), webhook signature verification,
//! the callback spool, background jobs, and the command line. `main` only parses the command line.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo_data;
pub mod http;
pub mod queue_jobs;
pub mod signature;
pub mod spool;
pub mod telemetry;

pub use app::{Application, Shutdown};
pub use config::Settings;
