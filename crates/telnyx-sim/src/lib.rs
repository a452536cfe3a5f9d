//! # telnyx-sim: Telnyx and the agents' softphones, simulated
//!
//! Drives a real call-center server over HTTP: signs webhooks with Ed25519 like Telnyx,
//! follows the TeXML it gets back, rings agents, answers or lets them ring, posts the leg
//! status callbacks, records voicemails, and checks at the end that the server's view
//! matches what happened.

pub mod client;

pub use client::{AgentJson, Answer, MetricsJson, Server, Signer};
