//! The `callcenter` command line: `serve` (the default), `migrate`, `config check`, agent
//! management, audit verification and retention, over the same services as the server.

use std::process::ExitCode;
use std::sync::Arc;

use agents::{Caller, NewAgent, SystemClock};
use audit::verify_chain;
use clap::{Parser, Subcommand};

use crate::app::{Application, Shutdown, open_store, services};
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
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted), or name each problem.
    Check,
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
        /// Initial presence: available, busy or offline.
        #[arg(long)]
        status: Option<String>,
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
    if let Command::Config {
        action: ConfigAction::Check,
    } = command
    {
        return config_check();
    }
    let settings = match settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::telemetry::init(settings.log_format, &settings.log_filter);
    let result = match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => open_store(&settings).await.map(|store| {
            println!("migrations applied ({})", store.backend().as_str());
        }),
        Command::Agents { action } => agents(settings, action).await,
        Command::Audit {
            action: AuditAction::Verify,
        } => audit_verify(settings).await,
        Command::Retention {
            action: RetentionAction::Run { days },
        } => retention(settings, days).await,
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
                println!("{name}={value}");
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
    let (_, service) = services(&settings, &store, Arc::new(SystemClock))?;
    match action {
        AgentsAction::Add {
            name,
            sip_uri,
            status,
        } => {
            let input = NewAgent {
                name: &name,
                sip_uri: &sip_uri,
                status: status.as_deref(),
            };
            let (agent, token) = service
                .register(input, Caller::Admin)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
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
            println!("{:<36}  {:<9}  {:<24}  SIP URI", "ID", "STATUS", "NAME");
            for a in list {
                println!(
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
            println!("removed {id}");
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
    println!("{}", serde_json::to_string_pretty(&report)?);
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
    let (flow, _) = services(&settings, &store, Arc::new(SystemClock))?;
    let redacted = flow.apply_retention(days).await?;
    println!("redacted {redacted} call(s) older than {days} days");
    store.close().await;
    Ok(())
}
