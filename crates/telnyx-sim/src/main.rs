//! `telnyx-sim`: see `telnyx-sim --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use telnyx_sim::rest::{FakeTelnyxApi, RestFaults};
use telnyx_sim::scenario::ServerQueue;
use telnyx_sim::{Outcome, Scenario, Server, Signer};

/// Plays Telnyx and the agents' softphones against a call-center server.
#[derive(Debug, Parser)]
#[command(name = "telnyx-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a new signing key (for this tool) and its public key (for the server).
    Keygen,
    /// Run calls against a server.
    Run(Box<RunArgs>),
    /// Exit 0 when the server answers `GET /readyz` with 200, else 1 (for scripts).
    Ready {
        /// Server base URL.
        #[arg(long)]
        server: String,
    },
    /// A TCP proxy for fault runs (`make faults`): SIGUSR1 toggles a stall (connections stay
    /// open, no byte moves), SIGUSR2 toggles a cut (connections dropped and refused).
    Proxy {
        /// Where to listen, e.g. 127.0.0.1:15432.
        #[arg(long)]
        listen: String,
        /// Where to forward, e.g. 127.0.0.1:5432.
        #[arg(long)]
        target: String,
    },
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)]
struct RunArgs {
    /// Server base URL; repeat to spread requests over several instances.
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// The server's admin token.
    #[arg(long, env = "CALL_CENTER_ADMIN_TOKEN")]
    admin_token: String,
    /// Base64 signing-key seed (from `keygen`); generated when absent.
    #[arg(long, env = "TELNYX_SIM_SIGNING_KEY")]
    signing_key: Option<String>,
    /// Send unsigned webhooks (for servers with TELNYX_VERIFY_SIGNATURES=false).
    #[arg(long)]
    no_sign: bool,
    /// Calls to place.
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Calls in progress at once.
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// Agents to register.
    #[arg(long, default_value_t = 5)]
    agents: usize,
    /// Chance that a rung agent answers.
    #[arg(long, default_value_t = 0.6)]
    answer_probability: f64,
    /// Chance that a rung agent declines at once.
    #[arg(long, default_value_t = 0.05)]
    decline_probability: f64,
    /// Longest time (simulated seconds) before an agent answers.
    #[arg(long, default_value_t = 8.0)]
    answer_delay: f64,
    /// Chance that the caller hangs up while agents ring.
    #[arg(long, default_value_t = 0.05)]
    hangup_probability: f64,
    /// Shortest talk time, simulated seconds.
    #[arg(long, default_value_t = 20)]
    talk_min: u32,
    /// Longest talk time, simulated seconds.
    #[arg(long, default_value_t = 180)]
    talk_max: u32,
    /// Simulated seconds over which the first wave of calls starts.
    #[arg(long, default_value_t = 60.0)]
    ramp_up: f64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1000.0)]
    time_compression: f64,
    /// Chance that a status callback is delivered twice.
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// Deliver each call's status callbacks shuffled, after its instructions.
    #[arg(long)]
    reorder: bool,
    /// Print a trace of every call.
    #[arg(long, short)]
    verbose: bool,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Skip the consistency check.
    #[arg(long)]
    no_check: bool,
    /// Real seconds between heartbeats.
    #[arg(long, default_value_t = 15)]
    heartbeat_every: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<std::path::PathBuf>,
    /// Send a webhook again, on any instance, for up to this many seconds when the server
    /// cannot be reached or answers 5xx (Telnyx's failover URL); 0: never.
    #[arg(long, default_value_t = 0)]
    failover_seconds: u64,
    /// Before the consistency check, wait up to this many seconds for the servers' spools
    /// to empty and every agent to be free.
    #[arg(long, default_value_t = 0)]
    settle_seconds: u64,
    /// Simulated seconds of one `<Play>` (a hold-music segment).
    #[arg(long, default_value_t = 10.0)]
    play_seconds: f64,
    /// Chance that a caller gives up while waiting in the queue.
    #[arg(long, default_value_t = 0.0)]
    abandon_probability: f64,
    /// Longest a caller who gives up waits first, simulated seconds.
    #[arg(long, default_value_t = 120.0)]
    patience_max: f64,
    /// The server's CALL_CENTER_WRAP_UP_SECONDS (for the queue check).
    #[arg(long, default_value_t = 0.0)]
    server_wrap_up: f64,
    /// The server's CALL_CENTER_NO_ANSWER_DELAY_SECONDS (for the queue check).
    #[arg(long, default_value_t = 10.0)]
    server_no_answer_delay: f64,
    /// The server's CALL_CENTER_MISSES_TO_PAUSE (for the queue check).
    #[arg(long, default_value_t = 3)]
    server_misses_to_pause: u32,
    /// The server's CALL_CENTER_MAX_WAIT_SECONDS (for the queue check).
    #[arg(long, default_value_t = 600.0)]
    server_max_wait: f64,
    /// Fail when a caller waited longer than this (simulated seconds) while an agent the
    /// server could have offered it to was idle.
    #[arg(long)]
    idle_wait_limit: Option<f64>,
    /// Play Telnyx's REST API on this address (the server's TELNYX_API_BASE_URL is
    /// http://<address>), so the server's pushes redirect the simulated calls.
    #[arg(long)]
    rest_listen: Option<String>,
    /// The bearer token the fake REST API accepts (the server's TELNYX_API_KEY).
    #[arg(long, env = "TELNYX_API_KEY", default_value = "KEYsimulator")]
    rest_key: String,
    /// Added latency of the fake REST API, milliseconds.
    #[arg(long, default_value_t = 20)]
    rest_latency_ms: u64,
    /// Chance the fake REST API answers 5xx (no redirect).
    #[arg(long, default_value_t = 0.0)]
    rest_5xx: f64,
    /// Chance the fake REST API answers 429 (no redirect).
    #[arg(long, default_value_t = 0.0)]
    rest_429: f64,
    /// Chance the fake REST API redirects the call but its answer never arrives.
    #[arg(long, default_value_t = 0.0)]
    rest_drop: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Keygen => {
            let signer = Signer::generate();
            println!("TELNYX_SIM_SIGNING_KEY={}", signer.seed_b64());
            println!("TELNYX_PUBLIC_KEY={}", signer.public_key_b64());
            ExitCode::SUCCESS
        }
        Command::Ready { server } => {
            let url = format!("{}/readyz", server.trim_end_matches('/'));
            let ready = reqwest::Client::new()
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Proxy { listen, target } => {
            match telnyx_sim::faults::serve(&listen, &target).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("telnyx-sim proxy: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run(args) => match run(*args).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("telnyx-sim: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let signer = if args.no_sign {
        None
    } else if let Some(seed) = &args.signing_key {
        Some(Signer::from_seed_b64(seed)?)
    } else {
        let s = Signer::generate();
        eprintln!(
            "telnyx-sim: no signing key given; generated one. Start the server with TELNYX_PUBLIC_KEY={}",
            s.public_key_b64()
        );
        Some(s)
    };
    let server = Server::new(args.servers.clone(), args.admin_token.clone(), signer)?
        .with_failover(Duration::from_secs(args.failover_seconds));
    let scenario = Scenario {
        calls: args.calls,
        concurrency: args.concurrency,
        agents: args.agents,
        answer_probability: args.answer_probability,
        decline_probability: args.decline_probability,
        answer_delay_max: args.answer_delay,
        hangup_probability: args.hangup_probability,
        talk_seconds: (args.talk_min, args.talk_max),
        voicemail_seconds: 15,
        ramp_up: args.ramp_up,
        time_compression: args.time_compression,
        duplicate_probability: args.duplicates,
        reorder: args.reorder,
        verbose: args.verbose,
        seed: args.seed,
        settle: Duration::from_secs(args.settle_seconds),
        play_seconds: args.play_seconds,
        abandon_probability: args.abandon_probability,
        patience_max: args.patience_max,
        server_queue: ServerQueue {
            wrap_up: args.server_wrap_up,
            no_answer_delay: args.server_no_answer_delay,
            misses_to_pause: args.server_misses_to_pause,
            max_wait: args.server_max_wait,
        },
        idle_wait_limit: args.idle_wait_limit,
    };
    let api = match &args.rest_listen {
        Some(listen) => Some(FakeTelnyxApi::start_on(
            listen,
            args.rest_key.clone(),
            RestFaults {
                latency: Duration::from_millis(args.rest_latency_ms),
                server_error: args.rest_5xx,
                rate_limited: args.rest_429,
                dropped_answer: args.rest_drop,
            },
        )?),
        None => None,
    };
    let outcome = telnyx_sim::run_with_api(
        &server,
        &scenario,
        Duration::from_secs(args.heartbeat_every),
        !args.no_check,
        api.as_ref(),
    )
    .await?;
    println!(
        "\n{}",
        outcome.stats.report(outcome.completed, outcome.elapsed)
    );
    let queue = queue_summary(&outcome, &scenario, api.as_ref());
    println!("{}", queue_line(&queue));
    if let Some(api) = &api {
        api.stop().await;
    }
    if server.failovers() > 0 {
        println!(
            "webhooks sent again after a failure (failover): {}",
            server.failovers()
        );
    }
    for f in outcome.failures.iter().take(10) {
        println!("FAILED CALL: {f}");
    }
    if let Some(check) = &outcome.check {
        if check.mismatches.is_empty() {
            println!(
                "consistency: OK ({} calls, {} agents, audit chain verified with {} entries)",
                outcome.completed, args.agents, check.audit_entries
            );
        } else {
            println!("consistency: {} MISMATCH(ES)", check.mismatches.len());
            for m in check.mismatches.iter().take(20) {
                println!("  {m}");
            }
        }
    }
    if let Some(path) = &args.summary_json {
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        #[allow(clippy::cast_precision_loss)]
        let summary = serde_json::json!({
            "calls": outcome.completed,
            "failed_calls": outcome.failures.len(),
            "requests": outcome.stats.requests(),
            "errors": outcome.stats.errors(),
            "elapsed_seconds": secs,
            "calls_per_second": outcome.completed as f64 / secs,
            "requests_per_second": outcome.stats.requests() as f64 / secs,
            "progress_requests": outcome.stats.progress_requests(),
            "stored_requests_per_second":
                (outcome.stats.requests() - outcome.stats.progress_requests()) as f64 / secs,
            "p50_ms": outcome.stats.overall_percentile_ms(0.5),
            "p90_ms": outcome.stats.overall_percentile_ms(0.9),
            "p99_ms": outcome.stats.overall_percentile_ms(0.99),
            "max_ms": outcome.stats.overall_percentile_ms(1.0),
            "stored_p50_ms": outcome.stats.stored_percentile_ms(0.5),
            "stored_p90_ms": outcome.stats.stored_percentile_ms(0.9),
            "stored_p99_ms": outcome.stats.stored_percentile_ms(0.99),
            "mismatches": outcome.check.as_ref().map_or(0, |c| c.mismatches.len()),
            "mismatch_lines": outcome.check.as_ref().map_or_else(Vec::new, |c| c.mismatches.iter().take(20).cloned().collect()),
            "fallbacks": outcome.stats.fallbacks(),
            "failovers": server.failovers(),
            "slowest_answer_ms": server.slowest_answer().as_secs_f64() * 1000.0,
            "failures": outcome.failures.iter().take(10).cloned().collect::<Vec<_>>(),
            "outcomes": outcome.stats.outcomes(),
            "requests_per_call": outcome.stats.per_call(),
            "queue": queue,
        });
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(outcome.ok())
}

/// The queue's figures of a run, as JSON.
fn queue_summary(
    outcome: &Outcome,
    scenario: &Scenario,
    api: Option<&FakeTelnyxApi>,
) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let q = &outcome.queue;
    let facts = outcome
        .check
        .as_ref()
        .map(|c| c.queue.clone())
        .unwrap_or_default();
    let rest = api.map(|a| {
        let c = &a.counts;
        serde_json::json!({
            "redirected": c.redirected.load(Relaxed),
            "server_errors": c.server_errors.load(Relaxed),
            "rate_limited": c.rate_limited.load(Relaxed),
            "dropped": c.dropped.load(Relaxed),
            "unknown_call": c.unknown_call.load(Relaxed),
            "unauthorized": c.unauthorized.load(Relaxed),
        })
    });
    serde_json::json!({
        "max_idle_wait_simulated_seconds": scenario.simulated(q.max_idle_wait),
        "max_idle_wait_real_seconds": q.max_idle_wait,
        "longest_wait_simulated_seconds": scenario.simulated(q.longest_wait),
        "overlapping_legs": q.overlapping_legs.len(),
        "pushes_followed": outcome.stats.pushes_followed(),
        "pauses_resumed": outcome.pauses,
        "offers": facts.offers,
        "first_offers_checked_for_order": facts.ordered,
        "out_of_order": facts.out_of_order,
        "joined_after_the_offer": facts.joined_late,
        "pauses_in_summary": facts.pauses,
        "abandoned_in_summary": facts.abandoned,
        "abandoned_wait_avg_seconds": facts.abandoned_wait_avg,
        "longest_to_voicemail_seconds": facts.longest_to_voicemail,
        "outcomes_learned_late": facts.outcomes_learned_late,
        "rest_api": rest,
    })
}

fn queue_line(q: &serde_json::Value) -> String {
    format!(
        "queue: longest wait with an agent idle {:.2} s simulated; longest hold {:.1} s simulated; {} offers ({} outcomes learned after the next offer, unchecked), {} first offers in order ({} out of order, {} callers ahead whose joining was committed after the offer); legs overlapping {}; pushes followed {}; pauses {} (summary {}); abandoned {} (mean wait {}); fake REST API {}",
        q["max_idle_wait_simulated_seconds"].as_f64().unwrap_or(0.0),
        q["longest_wait_simulated_seconds"].as_f64().unwrap_or(0.0),
        q["offers"],
        q["outcomes_learned_late"],
        q["first_offers_checked_for_order"],
        q["out_of_order"],
        q["joined_after_the_offer"],
        q["overlapping_legs"],
        q["pushes_followed"],
        q["pauses_resumed"],
        q["pauses_in_summary"],
        q["abandoned_in_summary"],
        q["abandoned_wait_avg_seconds"],
        q["rest_api"],
    )
}
