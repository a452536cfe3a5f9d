//! What a run does: how many calls and agents, how agents and callers behave, how time is
//! compressed, and which delivery faults to inject.

use std::time::Duration;

/// The knobs of a run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Calls to place.
    pub calls: usize,
    /// Calls in progress at once (closed model: a new call starts when one ends).
    pub concurrency: usize,
    /// Agents to register and keep heartbeating.
    pub agents: usize,
    /// Chance that a rung agent answers (else it rings out, or declines).
    pub answer_probability: f64,
    /// Chance that a rung agent declines at once (busy).
    pub decline_probability: f64,
    /// Simulated seconds before an answering agent picks up (uniform 0..=this).
    pub answer_delay_max: f64,
    /// Chance that the caller hangs up while agents ring.
    pub hangup_probability: f64,
    /// Simulated talk seconds (uniform between the two).
    pub talk_seconds: (u32, u32),
    /// Simulated seconds of a voicemail message.
    pub voicemail_seconds: u32,
    /// Simulated seconds over which the first `concurrency` calls start, evenly spread (so a
    /// closed-loop run does not start with every caller dialing in the same instant).
    pub ramp_up: f64,
    /// Simulated seconds per real second (1000: a 30 s ring takes 30 ms).
    pub time_compression: f64,
    /// Chance that each status callback is delivered twice.
    pub duplicate_probability: f64,
    /// Deliver a call's status callbacks shuffled, after its instructions.
    pub reorder: bool,
    /// Print a per-call trace.
    pub verbose: bool,
    /// Random seed (None: random).
    pub seed: Option<u64>,
    /// Before the consistency check, wait up to this long for every server's spool to empty
    /// and every agent to be free (callbacks kept through a fault, the reconciler).
    pub settle: Duration,
    /// Simulated seconds one `<Play>` (a hold-music segment) lasts.
    pub play_seconds: f64,
    /// Chance that a caller gives up while waiting in the queue.
    pub abandon_probability: f64,
    /// Longest a caller who gives up waits first, simulated seconds (uniform from 1).
    pub patience_max: f64,
    /// The server's queue settings, for the queue check.
    pub server_queue: ServerQueue,
    /// Fail the run when a caller waited longer than this (simulated seconds) while an
    /// agent the server could have offered it to sat idle.
    pub idle_wait_limit: Option<f64>,
}

/// The server's queue settings as configured (real seconds), so that the simulator knows
/// when the server may offer an agent again.
#[derive(Debug, Clone, Copy)]
pub struct ServerQueue {
    /// `CALL_CENTER_WRAP_UP_SECONDS`.
    pub wrap_up: f64,
    /// `CALL_CENTER_NO_ANSWER_DELAY_SECONDS`.
    pub no_answer_delay: f64,
    /// `CALL_CENTER_MISSES_TO_PAUSE`.
    pub misses_to_pause: u32,
    /// `CALL_CENTER_MAX_WAIT_SECONDS`.
    pub max_wait: f64,
}

impl Default for ServerQueue {
    /// The server's defaults.
    fn default() -> Self {
        Self {
            wrap_up: 0.0,
            no_answer_delay: 10.0,
            misses_to_pause: 3,
            max_wait: 600.0,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            calls: 20,
            concurrency: 5,
            agents: 5,
            answer_probability: 0.6,
            decline_probability: 0.05,
            answer_delay_max: 8.0,
            hangup_probability: 0.05,
            talk_seconds: (20, 180),
            voicemail_seconds: 15,
            ramp_up: 60.0,
            time_compression: 1000.0,
            duplicate_probability: 0.0,
            reorder: false,
            verbose: false,
            seed: None,
            settle: Duration::ZERO,
            play_seconds: 10.0,
            abandon_probability: 0.0,
            patience_max: 120.0,
            server_queue: ServerQueue::default(),
            idle_wait_limit: None,
        }
    }
}

impl Scenario {
    /// Real time for `simulated` seconds.
    #[must_use]
    pub fn real(&self, simulated: f64) -> Duration {
        Duration::from_secs_f64((simulated / self.time_compression.max(1e-6)).max(0.0))
    }

    /// Simulated seconds for `real` seconds.
    #[must_use]
    pub fn simulated(&self, real: f64) -> f64 {
        real * self.time_compression
    }

    /// Rough speaking time of a text, simulated seconds (about 15 characters a second).
    #[must_use]
    pub fn speech(text: &str) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let chars = text.chars().count() as f64;
        chars / 15.0
    }
}
