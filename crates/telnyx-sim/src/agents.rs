//! The agents' softphones: registered through the API, heartbeating, and deciding whether
//! to answer when rung. An agent takes one call at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::Server;
use crate::queue::Timeline;

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
    misses_in_a_row: AtomicU32,
    /// Times the server should have paused it (misses in a row reaching the setting).
    pub pauses_expected: AtomicU32,
    /// The end of the no-answer delay of its last miss (timeline seconds), which a resume
    /// after a pause does not shorten.
    not_before: std::sync::Mutex<f64>,
}

impl SimAgent {
    /// Counts a missed offer; true when it is the `pause_after`-th in a row (the server
    /// pauses the agent; the softphone resumes at its next heartbeat).
    pub fn missed(&self, pause_after: u32) -> bool {
        let n = self.misses_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
        if pause_after > 0 && n >= pause_after {
            self.misses_in_a_row.store(0, Ordering::SeqCst);
            self.pauses_expected.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// A resume makes it ready no earlier than `at` (timeline seconds; the latest wins).
    pub fn resume_not_before(&self, at: f64) {
        let mut not_before = self
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *not_before = not_before.max(at);
    }

    /// Seconds from `now` until the no-answer delay of its last miss ends, as the server
    /// counts it (from when it learned of the miss); 0 when it is over.
    pub fn delay_left(&self, now: f64) -> f64 {
        let not_before = *self
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (not_before - now).max(0.0)
    }

    /// An answer: misses in a row start again.
    pub fn answered(&self) {
        self.misses_in_a_row.store(0, Ordering::SeqCst);
    }

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
    /// When callers waited and softphones rang.
    pub timeline: Arc<Timeline>,
    /// Times the server paused an agent and its softphone resumed it.
    pub resumed: Arc<AtomicU64>,
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
                misses_in_a_row: AtomicU32::new(0),
                pauses_expected: AtomicU32::new(0),
                not_before: std::sync::Mutex::new(0.0),
            }));
        }
        let by_sip = list
            .iter()
            .map(|a| (a.sip_uri.clone(), Arc::clone(a)))
            .collect();
        let stop = CancellationToken::new();
        let timeline = Arc::new(Timeline::default());
        let resumed = Arc::new(AtomicU64::new(0));
        let heartbeats = Some(tokio::spawn(heartbeat_loop(
            server.clone(),
            list.clone(),
            every,
            Resumer {
                timeline: Arc::clone(&timeline),
                resumed: Arc::clone(&resumed),
            },
            stop.clone(),
        )));
        Ok(Self {
            by_sip,
            list,
            timeline,
            resumed,
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

/// What the heartbeat does for an agent the server paused after missed offers: resumes it,
/// as an agent back at the desk would.
struct Resumer {
    timeline: Arc<Timeline>,
    resumed: Arc<AtomicU64>,
}

async fn heartbeat_loop(
    server: Server,
    agents: Vec<Arc<SimAgent>>,
    every: Duration,
    resumer: Resumer,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        for a in &agents {
            match server.heartbeat(&a.id, &a.token, None).await {
                Ok(view) if view.status == "paused" => resume(&server, a, &resumer).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(agent = %a.id, error = format!("{e:#}"), "heartbeat failed");
                }
            }
        }
    }
}

async fn resume(server: &Server, a: &SimAgent, resumer: &Resumer) {
    match server.heartbeat(&a.id, &a.token, Some("available")).await {
        Ok(_) => {
            a.misses_in_a_row.store(0, Ordering::SeqCst);
            resumer.resumed.fetch_add(1, Ordering::Relaxed);
            let not_before = *a
                .not_before
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = resumer.timeline.now();
            resumer.timeline.ready_after(&a.id, not_before - now);
        }
        Err(e) => tracing::warn!(agent = %a.id, error = format!("{e:#}"), "resuming failed"),
    }
}
