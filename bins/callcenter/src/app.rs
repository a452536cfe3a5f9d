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
use crate::http::auth::FailureLimiter;
use crate::http::metrics::Metrics;
use crate::http::retry::CallbackRetries;
use crate::http::state::AppState;
use crate::signature::Verifier;

/// Seconds an idle keep-alive connection stays open.
const KEEP_ALIVE_SECS: u64 = 75;

/// A server ready to run.
pub struct Application {
    listener: TcpListener,
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
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
        .set_service_level_seconds(settings.service_level_seconds)
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
    let ttl = chrono::Duration::seconds(i64::from(settings.heartbeat_ttl));
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
        let verifier = match (
            &settings.telnyx_public_key,
            settings.telnyx_verify_signatures,
        ) {
            (Some(key), true) => Some(
                Verifier::new(key, settings.telnyx_signature_tolerance)
                    .context("TELNYX_PUBLIC_KEY is not an Ed25519 key")?,
            ),
            (None, true) => {
                anyhow::bail!("TELNYX_PUBLIC_KEY is required while TELNYX_VERIFY_SIGNATURES is on")
            }
            (_, false) => None,
        };
        metrics
            .signature_verification
            .set(i64::from(verifier.is_some()));
        if verifier.is_none() {
            tracing::warn!(
                "TELNYX WEBHOOK SIGNATURE VERIFICATION IS OFF (TELNYX_VERIFY_SIGNATURES=false): anyone who can reach this server can drive calls. Use this for local work only."
            );
        }
        if settings.audit_sink == AuditSinkKind::Null {
            tracing::warn!(
                "CALL_CENTER_AUDIT_SINK=null: audit events are DROPPED. Benchmarks only."
            );
        }
        let stop = CancellationToken::new();
        let openapi = crate::http::openapi_document();
        let openapi_json = openapi.to_pretty_json().context("OpenAPI document")?;
        let documented_routes = crate::http::ops::documented_routes(&openapi);
        let state = AppState {
            admin_token: admin_token(&settings),
            limiter: FailureLimiter::new(settings.auth_failure_limit),
            retries: CallbackRetries::new(
                10_000,
                metrics.callback_retries_pending.clone(),
                stop.clone(),
            ),
            audit: store.audit(),
            settings: Arc::new(settings),
            store,
            flow,
            agents,
            clock,
            verifier,
            metrics: metrics.clone(),
            openapi_json,
            documented_routes,
        };
        Ok(Self {
            listener,
            state: web::Data::new(state),
            metrics: web::Data::new(metrics),
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
        &self.state.admin_token
    }

    /// Serves until told to stop, then shuts down in order.
    ///
    /// # Errors
    /// When the server cannot start.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let settings = Arc::clone(&self.state.settings);
        let (state, metrics, limit) = (
            self.state.clone(),
            self.metrics.clone(),
            settings.http_body_limit,
        );
        let server =
            HttpServer::new(move || crate::http::app(state.clone(), metrics.clone(), limit))
                .workers(settings.http_workers)
                .client_request_timeout(Duration::from_secs(u64::from(
                    settings.http_request_timeout,
                )))
                .client_disconnect_timeout(Duration::from_secs(5))
                // Longer than the idle timeout of common load balancers and HTTP client pools
                // (60 s): the client, not the server, closes an idle connection, so a request
                // is never sent on a connection the server is closing at that moment.
                .keep_alive(Duration::from_secs(KEEP_ALIVE_SECS))
                .max_connection_rate(1024)
                .shutdown_timeout(30)
                .disable_signals()
                .listen(self.listener)
                .context("starting the HTTP server")?
                .run();
        let handle = server.handle();
        let mut jobs = background_jobs(&self.state, &self.stop);
        let serving = tokio::spawn(server);
        tracing::info!(
            port = settings.bind_addr.port(),
            backend = self.state.store.backend().as_str(),
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
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
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
fn background_jobs(state: &web::Data<AppState>, stop: &CancellationToken) -> JoinSet<()> {
    let mut jobs = JoinSet::new();
    let seal_every = Duration::from_millis(state.settings.audit_seal_interval_ms);
    let (s, st) = (state.clone(), stop.clone());
    jobs.spawn(every(seal_every, st, move || {
        let s = s.clone();
        async move {
            match s.audit.seal_pending().await {
                Ok(n) => s
                    .metrics
                    .audit_sealed
                    .add(i64::try_from(n).unwrap_or(i64::MAX)),
                Err(e) => tracing::warn!(error = %e, "audit sealing failed; will retry"),
            }
        }
    }));
    let (s, st) = (state.clone(), stop.clone());
    jobs.spawn(every(Duration::from_secs(600), st, move || {
        let s = s.clone();
        async move {
            // Receipts guard against repeats within Telnyx's retry window and the signature
            // tolerance; two days is far beyond both.
            if let Err(e) = s.flow.prune_receipts(chrono::Duration::days(2)).await {
                tracing::warn!(error = %e, "pruning receipts failed");
            }
        }
    }));
    if let Some(days) = state.settings.retention_days {
        let (s, st) = (state.clone(), stop.clone());
        jobs.spawn(every(Duration::from_secs(3600), st, move || {
            let s = s.clone();
            async move {
                match s.flow.apply_retention(days).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(redacted = n, days, "retention applied"),
                    Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
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
