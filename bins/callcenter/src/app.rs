//! Building and running the server: the listener is bound first (so tests can use port 0),
//! the store opened and migrated, background jobs started, and on SIGINT or SIGTERM
//! in-flight requests finish, jobs stop, the pool closes and `run` returns `Ok`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use agents::{AgentService, Clock, SystemClock};
use anyhow::Context as _;
use audit::{AuditSink, ChainSink, NullSink};
use base64::Engine;
use call_center::{CallFlow, Ports, Urls};
use store::{Store, StoreOptions};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{AuditSinkKind, Secret, Settings};
use crate::http::AppData;
use crate::http::auth::FailureLimiter;
use crate::http::metrics::Metrics;
use crate::http::retry::CallbackRetries;
use crate::http::state::{Auth, Ops, Reports, Webhooks};
use crate::signature::Verifier;

/// Policy numbers of the server process, named once.
pub mod policy {
    use std::time::Duration;

    /// An idle keep-alive connection stays open this long: longer than the idle timeout of
    /// common load balancers and HTTP client pools (60 s), so the client, not the server,
    /// closes it and no request is sent on a connection being closed.
    pub const KEEP_ALIVE: Duration = Duration::from_secs(75);
    /// A client that disconnects gets this long to finish closing.
    pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// New connections accepted per worker at once.
    pub const MAX_CONNECTION_RATE: usize = 1024;
    /// On SIGTERM, requests in flight get this long to finish.
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    /// Status callbacks held in memory for retry while the store fails, at most.
    pub const CALLBACK_RETRY_CAPACITY: usize = 10_000;
    /// Receipts guard against repeats within Telnyx's retry window and the signature
    /// tolerance; two days is far beyond both.
    pub const RECEIPT_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(2);
    /// How often old receipts are pruned.
    pub const RECEIPT_PRUNE_PERIOD: Duration = Duration::from_secs(600);
    /// How often retention runs (when configured).
    pub const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
}

/// A server ready to run.
pub struct Application {
    listener: TcpListener,
    settings: Arc<Settings>,
    store: Store,
    data: AppData,
    stop: CancellationToken,
}

/// How the server is told to stop (tests use the token; the binary uses signals).
pub enum Shutdown {
    /// SIGINT or SIGTERM.
    Signals,
    /// A token.
    Token(CancellationToken),
}

/// Opens and migrates the store.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let mut options = StoreOptions::new(&settings.database_url);
    options.max_connections = settings.database_max_connections;
    let store = Store::open(&options).context("opening the store")?;
    store.migrate().await.context("migrating the store")?;
    store
        .reports()
        .set_service_level_seconds(crate::config::seconds(settings.service_level))
        .await
        .context("writing the service-level threshold for the report views")?;
    Ok(store)
}

/// The services over a store.
///
/// # Errors
/// When the flow settings are invalid (they were validated with the configuration).
pub fn services(
    settings: &Settings,
    store: &Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(CallFlow, AgentService)> {
    let audit: Arc<dyn AuditSink> = match settings.audit_sink {
        AuditSinkKind::Chain => Arc::new(ChainSink),
        AuditSinkKind::Null => Arc::new(NullSink),
    };
    let ttl = chrono::Duration::from_std(settings.heartbeat_ttl).unwrap_or(chrono::TimeDelta::MAX);
    let agents = AgentService::new(store.agents(), Arc::clone(&clock), Arc::clone(&audit), ttl);
    let flow_settings = settings.flow()?;
    let urls = Urls::new(&settings.webhook_base_url, flow_settings.max_attempts)?;
    let ports = Ports {
        calls: store.calls(),
        agents: store.agents(),
        clock,
        audit,
    };
    Ok((CallFlow::new(ports, flow_settings, urls, ttl), agents))
}

fn admin_token(settings: &Settings) -> Secret {
    if let Some(t) = &settings.admin_token {
        return t.clone();
    }
    let token = format!(
        "adm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    // Printed once to the terminal, never to the log.
    eprintln!(
        "\nCALL_CENTER_ADMIN_TOKEN is not set; this run's admin token is:\n\n    {token}\n\n\
         Set CALL_CENTER_ADMIN_TOKEN to keep one across restarts (required with several instances).\n"
    );
    Secret::new(token)
}

impl Application {
    /// Binds the listener, opens the store and builds the state.
    ///
    /// # Errors
    /// When the address cannot be bound, or the store cannot be opened or migrated.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind_addr)
            .with_context(|| format!("binding {}", settings.bind_addr))?;
        let store = open_store(&settings).await?;
        Self::with_store(settings, listener, store)
    }

    /// Builds on an already bound listener and opened store.
    ///
    /// # Errors
    /// When the configuration cannot produce the services.
    pub fn with_store(
        settings: Settings,
        listener: TcpListener,
        store: Store,
    ) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (flow, agents) = services(&settings, &store, Arc::clone(&clock))?;
        let metrics = Metrics::new().context("metrics registry")?;
        let verifier = verifier(&settings)?;
        metrics
            .signature_verification
            .set(i64::from(verifier.is_some()));
        if settings.audit_sink == AuditSinkKind::Null {
            tracing::warn!(
                "CALL_CENTER_AUDIT_SINK=null: audit events are DROPPED. Benchmarks only."
            );
        }
        let stop = CancellationToken::new();
        let openapi = crate::http::openapi_document();
        let data = AppData {
            auth: web::Data::new(Auth {
                admin_token: admin_token(&settings),
                limiter: FailureLimiter::new(settings.auth_failure_limit),
                trust_forwarded_for: settings.trust_forwarded_for,
                agents: agents.clone(),
            }),
            ops: web::Data::new(Ops {
                store: store.clone(),
                verifying: verifier.is_some(),
                openapi_json: openapi.to_pretty_json().context("OpenAPI document")?,
                documented_routes: crate::http::ops::documented_routes(&openapi),
            }),
            webhooks: web::Data::new(Webhooks {
                flow: flow.clone(),
                verifier,
                retries: CallbackRetries::new(
                    policy::CALLBACK_RETRY_CAPACITY,
                    metrics.callback_retries_pending.clone(),
                    stop.clone(),
                ),
                clock: Arc::clone(&clock),
            }),
            reports: web::Data::new(Reports {
                store: store.reports(),
                service_level: settings.service_level,
                clock,
            }),
            agents: web::Data::new(agents),
            flow: web::Data::new(flow),
            audit: web::Data::from(store.audit()),
            metrics: web::Data::new(metrics),
        };
        Ok(Self {
            listener,
            settings: Arc::new(settings),
            store,
            data,
            stop,
        })
    }

    /// The bound port.
    ///
    /// # Panics
    /// Never in practice: a bound listener has an address.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// The admin token in use (tests and tools).
    #[must_use]
    pub fn admin_token(&self) -> &Secret {
        &self.data.auth.admin_token
    }

    /// Serves until told to stop, then shuts down in order.
    ///
    /// # Errors
    /// When the server cannot start.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let settings = Arc::clone(&self.settings);
        let (data, limit) = (self.data.clone(), settings.http_body_limit);
        let server = HttpServer::new(move || crate::http::app(data.clone(), limit))
            .workers(settings.http_workers)
            .client_request_timeout(settings.http_request_timeout)
            .client_disconnect_timeout(policy::CLIENT_DISCONNECT_TIMEOUT)
            .keep_alive(policy::KEEP_ALIVE)
            .max_connection_rate(policy::MAX_CONNECTION_RATE)
            .shutdown_timeout(policy::SHUTDOWN_TIMEOUT.as_secs())
            .disable_signals()
            .listen(self.listener)
            .context("starting the HTTP server")?
            .run();
        let handle = server.handle();
        let mut jobs = background_jobs(&self.data, &settings, &self.stop);
        let serving = tokio::spawn(server);
        tracing::info!(
            port = settings.bind_addr.port(),
            backend = self.store.backend().as_str(),
            "serving"
        );
        match shutdown {
            Shutdown::Signals => wait_for_signal().await,
            Shutdown::Token(token) => token.cancelled().await,
        }
        tracing::info!("shutting down: finishing in-flight requests");
        handle.stop(true).await;
        self.stop.cancel();
        while jobs.join_next().await.is_some() {}
        let _ = serving.await;
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The webhook signature verifier the settings ask for (`None`: verification off, loudly).
fn verifier(settings: &Settings) -> anyhow::Result<Option<Verifier>> {
    match (
        &settings.telnyx_public_key,
        settings.telnyx_verify_signatures,
    ) {
        (Some(key), true) => Ok(Some(
            Verifier::new(
                key,
                crate::config::seconds(settings.telnyx_signature_tolerance),
            )
            .context("TELNYX_PUBLIC_KEY is not an Ed25519 key")?,
        )),
        (None, true) => {
            anyhow::bail!("TELNYX_PUBLIC_KEY is required while TELNYX_VERIFY_SIGNATURES is on")
        }
        (_, false) => {
            tracing::warn!(
                "TELNYX WEBHOOK SIGNATURE VERIFICATION IS OFF (TELNYX_VERIFY_SIGNATURES=false): anyone who can reach this server can drive calls. Use this for local work only."
            );
            Ok(None)
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = int.recv() => tracing::info!("SIGINT"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sealing the audit chain, forgetting old receipts, and retention (when configured).
fn background_jobs(data: &AppData, settings: &Settings, stop: &CancellationToken) -> JoinSet<()> {
    let mut jobs = JoinSet::new();
    let (audit, metrics) = (data.audit.clone(), data.metrics.clone());
    jobs.spawn(every(settings.audit_seal_interval, stop.clone(), move || {
        let (audit, metrics) = (audit.clone(), metrics.clone());
        async move {
            match audit.seal_pending().await {
                Ok(n) => metrics
                    .audit_sealed
                    .add(i64::try_from(n).unwrap_or(i64::MAX)),
                Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "audit sealing failed; will retry"),
            }
        }
    }));
    let flow = data.flow.clone();
    jobs.spawn(every(
        policy::RECEIPT_PRUNE_PERIOD,
        stop.clone(),
        move || {
            let flow = flow.clone();
            async move {
                if let Err(e) = flow.prune_receipts(policy::RECEIPT_MAX_AGE).await {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "pruning receipts failed");
                }
            }
        },
    ));
    if let Some(days) = settings.retention_days {
        let flow = data.flow.clone();
        jobs.spawn(every(policy::RETENTION_PERIOD, stop.clone(), move || {
            let flow = flow.clone();
            async move {
                match flow.apply_retention(days).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(redacted = n, days, "retention applied"),
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "retention failed; will retry"),
                }
            }
        }));
    }
    jobs
}

async fn every<F, Fut>(period: Duration, stop: CancellationToken, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => job().await,
        }
    }
}
