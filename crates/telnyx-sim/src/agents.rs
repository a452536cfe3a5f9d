//! The agents' softphones: registered through the API, heartbeating, and deciding whether
//! to answer when rung. An agent takes one call at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::Server;

/// One simulated softphone.
#[derive(Debug)]
pub struct SimAgent {
    /// The server's id for it.
    pub id: String,
    /// Its SIP URI.
    pub sip_uri: String,
    /// Its heartbeat token.
    pub token: String,
    on_call: AtomicBool,
}

impl SimAgent {
    /// Takes a call if free (the agent cannot pick up a second call).
    pub fn try_take(&self) -> bool {
        self.on_call
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Hangs up.
    pub fn free(&self) {
        self.on_call.store(false, Ordering::SeqCst);
    }
}

/// The registered agents, by SIP URI, and their heartbeat task.
#[derive(Debug)]
pub struct Softphones {
    /// Agents by SIP URI.
    pub by_sip: HashMap<String, Arc<SimAgent>>,
    /// In registration order.
    pub list: Vec<Arc<SimAgent>>,
    stop: CancellationToken,
    heartbeats: Option<JoinHandle<()>>,
}

impl Softphones {
    /// Registers `n` available agents named after `run` and keeps them heartbeating every
    /// `every`.
    ///
    /// # Errors
    /// When a registration fails.
    pub async fn register(
        server: &Server,
        run: &str,
        n: usize,
        every: Duration,
    ) -> anyhow::Result<Self> {
        let mut list = Vec::with_capacity(n);
        for i in 0..n {
            let sip = format!("sip:sim-{run}-{i}@sim.example.com");
            let (agent, token) = server
                .register_agent(&format!("Sim Agent {i}"), &sip, "available")
                .await?;
            list.push(Arc::new(SimAgent {
                id: agent.id,
                sip_uri: agent.sip_uri,
                token,
                on_call: AtomicBool::new(false),
            }));
        }
        let by_sip = list
            .iter()
            .map(|a| (a.sip_uri.clone(), Arc::clone(a)))
            .collect();
        let stop = CancellationToken::new();
        let heartbeats = Some(tokio::spawn(heartbeat_loop(
            server.clone(),
            list.clone(),
            every,
            stop.clone(),
        )));
        Ok(Self {
            by_sip,
            list,
            stop,
            heartbeats,
        })
    }

    /// Stops heartbeating.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(h) = self.heartbeats.take() {
            let _ = h.await;
        }
    }
}

async fn heartbeat_loop(
    server: Server,
    agents: Vec<Arc<SimAgent>>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        for a in &agents {
            if let Err(e) = server.heartbeat(&a.id, &a.token, None).await {
                tracing::warn!(agent = %a.id, error = format!("{e:#}"), "heartbeat failed");
            }
        }
    }
}
