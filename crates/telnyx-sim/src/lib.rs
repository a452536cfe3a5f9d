//! # telnyx-sim: Telnyx and the agents' softphones, simulated
//!
//! Drives a real call-center server over HTTP: registers agents and keeps them
//! heartbeating, places calls to `/inbound` the way Telnyx does (form POSTs signed with
//! Ed25519), follows the TeXML it gets back (`Say`/`Pause` take simulated time, `Redirect`
//! and every `action` are followed, `Dial` rings each `Sip` leg whose agent answers,
//! declines or lets it ring, `Record` leaves a transcribed voicemail), and checks at the end
//! that the server's calls, agent metrics and audit chain match what happened.

pub mod agents;
pub mod call;
pub mod check;
pub mod client;
pub mod faults;
pub mod queue;
pub mod rest;
pub mod scenario;
pub mod stats;

use std::time::{Duration, Instant};

use futures::StreamExt as _;

pub use client::{AgentJson, Answer, MetricsJson, Server, Signer};
pub use scenario::Scenario;

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Calls that ran to their end.
    pub completed: usize,
    /// Calls that failed, with why.
    pub failures: Vec<String>,
    /// Measurements.
    pub stats: stats::Stats,
    /// Wall time.
    pub elapsed: Duration,
    /// The consistency check, when asked for.
    pub check: Option<check::Report>,
    /// The queue as the simulator saw it.
    pub queue: queue::QueueReport,
    /// Times the server paused an agent after missed offers (the softphone resumed it).
    pub pauses: u64,
}

impl Outcome {
    /// Whether everything went right.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
            && self.stats.errors() == 0
            && self.check.as_ref().is_none_or(|c| c.mismatches.is_empty())
    }
}

/// Runs `scenario` against `server`: registers agents, places the calls with the given
/// concurrency, and (with `check`) compares the server's state with what happened.
///
/// # Errors
/// When agents cannot be registered or the check cannot ask the server.
pub async fn run(
    server: &Server,
    scenario: &Scenario,
    heartbeat_every: Duration,
    check: bool,
) -> anyhow::Result<Outcome> {
    run_with_api(server, scenario, heartbeat_every, check, None).await
}

/// [`run`], with Telnyx's REST API played by `api` (the server's pushes redirect the
/// simulated calls).
///
/// # Errors
/// When agents cannot be registered or the check cannot ask the server.
pub async fn run_with_api(
    server: &Server,
    scenario: &Scenario,
    heartbeat_every: Duration,
    check: bool,
    api: Option<&rest::FakeTelnyxApi>,
) -> anyhow::Result<Outcome> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut phones =
        agents::Softphones::register(server, &run_id, scenario.agents, heartbeat_every).await?;
    let stats = stats::Stats::default();
    let seed = scenario.seed.unwrap_or_else(rand::random);
    let started = Instant::now();
    let results: Vec<anyhow::Result<(call::Truth, Vec<String>)>> =
        futures::stream::iter(0..scenario.calls)
            .map(|n| {
                call::CallDriver::new(
                    server,
                    &phones,
                    scenario,
                    &stats,
                    n,
                    seed.wrapping_add(n as u64),
                )
                .with_api(api)
                .run()
            })
            .buffer_unordered(scenario.concurrency.max(1))
            .inspect(|r| {
                if scenario.verbose
                    && let Ok((_, trace)) = r
                {
                    println!("{}", trace.join("\n"));
                }
            })
            .collect()
            .await;
    let elapsed = started.elapsed();
    let queue = phones.timeline.report();
    let mut truths = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok((t, _)) => truths.push(t),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let check = if check {
        let settled = check::settle(server, scenario.settle).await;
        if scenario.settle > Duration::ZERO {
            println!(
                "settled in {:.1} s: {settled}",
                started.elapsed().as_secs_f64() - elapsed.as_secs_f64()
            );
        }
        let mut report = check::check(server, &phones, &truths, scenario).await?;
        check::check_timeline(&mut report, &queue, scenario);
        Some(report)
    } else {
        None
    };
    phones.stop().await;
    let pauses = phones.resumed.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Outcome {
        completed: truths.len(),
        failures,
        stats,
        elapsed,
        check,
        queue,
        pauses,
    })
}
