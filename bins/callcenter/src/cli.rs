//! The `callcenter` command line: `serve` (the default), `migrate`, `config check`, agent
//! management, audit verification and retention, over the same services as the server.

use std::process::ExitCode;
use std::sync::Arc;

use agents::{Caller, NewAgent, SystemClock};
use audit::verify_chain;
use clap::{Parser, Subcommand};

use crate::app::{Application, Shutdown, open_store, services, url_keys};

/// Prints a line to stdout; a closed pipe (`callcenter report | head`) ends the command
/// quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        emit(&format!($($arg)*))
    };
}

fn emit(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        std::process::exit(0);
    }
}
use crate::config::{ProcessEnv, Settings};

/// The call-center server for Telnyx.
#[derive(Debug, Parser)]
#[command(name = "callcenter", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Run database migrations and exit.
    Migrate,
    /// Configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage agents.
    Agents {
        #[command(subcommand)]
        action: AgentsAction,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Retention of recordings and transcriptions.
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// Contact-center metrics over calls started in [from, to).
    Report {
        /// Start (inclusive): RFC 3339 or YYYY-MM-DD (midnight UTC).
        #[arg(long)]
        from: String,
        /// End (exclusive): RFC 3339 or YYYY-MM-DD (midnight UTC).
        #[arg(long)]
        to: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Generate finished demo calls to try the reports (and for the benchmark).
    SeedDemoData {
        /// How many calls.
        #[arg(long, default_value_t = 1000)]
        calls: u64,
        /// How many demo agents answer them.
        #[arg(long, default_value_t = 10)]
        agents: u32,
        /// Spread over the last this many days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

/// How `report` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    /// Aligned columns.
    Table,
    /// Comma-separated values (a summary row, then one row per agent).
    Csv,
    /// The JSON of `GET /reports/summary`.
    Json,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted), or name each problem.
    Check,
    /// Print `.env.example`: every setting with its default, accepted values and meaning.
    Example,
}

#[derive(Debug, Subcommand)]
enum AgentsAction {
    /// Register an agent; prints its heartbeat token once.
    Add {
        /// Display name.
        #[arg(long)]
        name: String,
        /// SIP URI, e.g. sip:alice@example.sip.telnyx.com.
        #[arg(long)]
        sip_uri: String,
        /// Initial presence: available, busy, paused (with --reason) or offline.
        #[arg(long)]
        status: Option<String>,
        /// With --status paused: why (one of CALL_CENTER_PAUSE_REASONS).
        #[arg(long)]
        reason: Option<String>,
    },
    /// List agents.
    List {
        /// Only this effective status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Remove an agent.
    Remove {
        /// The agent's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Seal pending entries, recompute the chain and name the first broken entry.
    Verify,
}

#[derive(Debug, Subcommand)]
enum RetentionAction {
    /// Redact recordings and transcriptions older than the retention period now.
    Run {
        /// Days to keep (default: CALL_CENTER_RETENTION_DAYS).
        #[arg(long)]
        days: Option<u32>,
    },
}

fn settings() -> Result<Settings, ExitCode> {
    Settings::from_env(&ProcessEnv).map_err(|problems| {
        for p in &problems {
            eprintln!("configuration error: {p}");
        }
        ExitCode::from(2)
    })
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Config {
            action: ConfigAction::Check,
        } => return config_check(),
        Command::Config {
            action: ConfigAction::Example,
        } => {
            print!("{}", crate::config::table::env_example());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let settings = match settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::telemetry::init(settings.log_format, &settings.log_filter);
    let result = match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => open_store(&settings).await.map(|store| {
            say!("migrations applied ({})", store.backend().as_str());
        }),
        Command::Agents { action } => agents(settings, action).await,
        Command::Audit {
            action: AuditAction::Verify,
        } => audit_verify(settings).await,
        Command::Retention {
            action: RetentionAction::Run { days },
        } => retention(settings, days).await,
        Command::Report { from, to, format } => report(settings, &from, &to, format).await,
        Command::SeedDemoData {
            calls,
            agents,
            days,
        } => seed(settings, calls, agents, days).await,
        Command::Config { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<VerificationFailed>().is_some() {
                return ExitCode::from(3);
            }
            fail(&e)
        }
    }
}

fn config_check() -> ExitCode {
    match Settings::from_env(&ProcessEnv) {
        Ok(s) => {
            for (name, value) in s.describe() {
                say!("{name}={value}");
            }
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("configuration error: {p}");
            }
            ExitCode::from(2)
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    Application::build(settings)
        .await?
        .run(Shutdown::Signals)
        .await
}

async fn agents(settings: Settings, action: AgentsAction) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let keys = url_keys(&settings, &store).await?;
    let (_, service) = services(&settings, &store, Arc::new(SystemClock), keys)?;
    match action {
        AgentsAction::Add {
            name,
            sip_uri,
            status,
            reason,
        } => {
            let input = NewAgent {
                name: &name,
                sip_uri: &sip_uri,
                status: status.as_deref(),
                reason: reason.as_deref(),
            };
            let (agent, token) = service
                .register(input, Caller::Admin)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "agent": agent, "heartbeat_token": token })
                )?
            );
        }
        AgentsAction::List { status } => {
            let list = service
                .list(status.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say!("{:<36}  {:<9}  {:<24}  SIP URI", "ID", "STATUS", "NAME");
            for a in list {
                say!(
                    "{:<36}  {:<9}  {:<24}  {}",
                    a.id,
                    a.status.as_str(),
                    a.name,
                    a.sip_uri
                );
            }
        }
        AgentsAction::Remove { id } => {
            service
                .remove(&id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say!("removed {id}");
        }
    }
    store.close().await;
    Ok(())
}

/// The chain did not verify (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("the audit chain does not verify")]
struct VerificationFailed;

async fn audit_verify(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let log = store.audit();
    log.seal_pending().await?;
    let report = verify_chain(log.as_ref()).await?;
    say!("{}", serde_json::to_string_pretty(&report)?);
    store.close().await;
    if report.ok {
        Ok(())
    } else {
        Err(VerificationFailed.into())
    }
}

async fn retention(settings: Settings, days: Option<u32>) -> anyhow::Result<()> {
    let Some(days) = days.or(settings.retention_days) else {
        anyhow::bail!("no retention period: pass --days N or set CALL_CENTER_RETENTION_DAYS");
    };
    let store = open_store(&settings).await?;
    let keys = url_keys(&settings, &store).await?;
    let (flow, _) = services(&settings, &store, Arc::new(SystemClock), keys)?;
    let redacted = flow.apply_retention(days).await?;
    say!("redacted {redacted} call(s) older than {days} days");
    store.close().await;
    Ok(())
}

async fn report(
    settings: Settings,
    from: &str,
    to: &str,
    format: ReportFormat,
) -> anyhow::Result<()> {
    use crate::http::reports_api::parse_instant;
    let from = parse_instant(from)
        .ok_or_else(|| anyhow::anyhow!("--from must be RFC 3339 or YYYY-MM-DD"))?;
    let to =
        parse_instant(to).ok_or_else(|| anyhow::anyhow!("--to must be RFC 3339 or YYYY-MM-DD"))?;
    let store = open_store(&settings).await?;
    let reports = store.reports();
    let s = call_center::reports::summary(
        reports.as_ref(),
        from,
        to,
        crate::config::seconds(settings.service_level),
    )
    .await?;
    store.close().await;
    let opt = |v: Option<f64>| v.map_or_else(String::new, |x| format!("{x:.2}"));
    match format {
        ReportFormat::Json => say!("{}", serde_json::to_string_pretty(&s)?),
        ReportFormat::Csv => {
            say!(
                "from,to,offered,answered,abandoned,voicemail,unanswered,failed,service_level_seconds,service_level_pct,asa_seconds,aht_seconds,abandonment_rate_pct"
            );
            say!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                s.from.to_rfc3339(),
                s.to.to_rfc3339(),
                s.offered,
                s.answered,
                s.abandoned,
                s.voicemail,
                s.unanswered,
                s.failed,
                s.service_level_seconds,
                opt(s.service_level_pct),
                opt(s.asa_seconds),
                opt(s.aht_seconds),
                opt(s.abandonment_rate_pct)
            );
            say!("agent_id,name,offers,answered,missed,talk_seconds,answer_rate_pct");
            for a in &s.agents {
                let name = a.name.clone().unwrap_or_default().replace('"', "\"\"");
                say!(
                    "{},\"{name}\",{},{},{},{},{}",
                    a.agent_id,
                    a.offers,
                    a.answered,
                    a.missed,
                    a.talk_seconds,
                    opt(a.answer_rate_pct)
                );
            }
        }
        ReportFormat::Table => {
            say!(
                "Calls started in [{}, {})",
                s.from.to_rfc3339(),
                s.to.to_rfc3339()
            );
            say!(
                "  offered {:>8}   answered {:>8}   abandoned {:>8}",
                s.offered,
                s.answered,
                s.abandoned
            );
            say!(
                "  voicemail {:>6}   unanswered {:>6}   failed {:>11}",
                s.voicemail,
                s.unanswered,
                s.failed
            );
            say!(
                "  service level ({} s) {:>7} %",
                s.service_level_seconds,
                opt(s.service_level_pct)
            );
            say!(
                "  ASA {:>8} s   AHT {:>8} s   abandonment {:>6} %",
                opt(s.asa_seconds),
                opt(s.aht_seconds),
                opt(s.abandonment_rate_pct)
            );
            say!(
                "\n  {:<24} {:>7} {:>9} {:>7} {:>8} {:>12}",
                "AGENT",
                "OFFERS",
                "ANSWERED",
                "MISSED",
                "TALK s",
                "ANSWER RATE"
            );
            for a in &s.agents {
                let name = a.name.clone().unwrap_or_else(|| a.agent_id.to_string());
                say!(
                    "  {:<24} {:>7} {:>9} {:>7} {:>8} {:>10} %",
                    name,
                    a.offers,
                    a.answered,
                    a.missed,
                    a.talk_seconds,
                    opt(a.answer_rate_pct)
                );
            }
        }
    }
    Ok(())
}

async fn seed(settings: Settings, calls: u64, agents: u32, days: u32) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let started = std::time::Instant::now();
    let n = crate::demo_data::seed(&store, calls, agents, days).await?;
    store.close().await;
    say!(
        "seeded {n} demo calls with {agents} demo agents over {days} days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
