//! A fake of Telnyx's REST API on loopback: the TeXML update-call
//! (`POST /v2/texml/Accounts/{AccountSid}/Calls/{CallSid}` with `Url` and `Method`, bearer
//! token), which interrupts a live simulated call and makes it fetch `Url`. Switches for
//! latency, 5xx, 429 and dropped answers (the redirect happens, the answer never comes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rand::Rng as _;
use tokio::sync::mpsc;

/// The fake's behaviour.
#[derive(Debug, Clone)]
pub struct RestFaults {
    /// Added before each answer.
    pub latency: Duration,
    /// Chance of answering 503 without redirecting.
    pub server_error: f64,
    /// Chance of answering 429 without redirecting.
    pub rate_limited: f64,
    /// Chance of redirecting and then never answering in time (the client times out).
    pub dropped_answer: f64,
}

impl Default for RestFaults {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            server_error: 0.0,
            rate_limited: 0.0,
            dropped_answer: 0.0,
        }
    }
}

/// What the fake did.
#[derive(Debug, Default)]
pub struct RestCounts {
    /// Redirects made and answered 200.
    pub redirected: AtomicU64,
    /// Answered 503.
    pub server_errors: AtomicU64,
    /// Answered 429.
    pub rate_limited: AtomicU64,
    /// Redirected, answer withheld.
    pub dropped: AtomicU64,
    /// For a call not live (404).
    pub unknown_call: AtomicU64,
    /// Without the right bearer token (401).
    pub unauthorized: AtomicU64,
}

/// Live calls' push inboxes, by `CallSid`.
pub type Inboxes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<String>>>>;

struct State {
    key: String,
    faults: RestFaults,
    calls: Inboxes,
    counts: Arc<RestCounts>,
}

/// The running fake.
pub struct FakeTelnyxApi {
    /// `http://127.0.0.1:<port>`: the server's `TELNYX_API_BASE_URL`.
    pub base: String,
    /// The bearer token it accepts: the server's `TELNYX_API_KEY`.
    pub key: String,
    calls: Inboxes,
    /// What it did.
    pub counts: Arc<RestCounts>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeTelnyxApi {
    /// Starts on a random loopback port with a random key.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start(faults: RestFaults) -> anyhow::Result<Self> {
        let key = format!("KEYsim{}", uuid::Uuid::new_v4().simple());
        Self::start_on("127.0.0.1:0", key, faults)
    }

    /// Starts on `listen` (e.g. `127.0.0.1:18090`), accepting `key`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start_on(listen: &str, key: String, faults: RestFaults) -> anyhow::Result<Self> {
        let calls: Inboxes = Arc::default();
        let counts = Arc::new(RestCounts::default());
        let state = web::Data::new(State {
            key: key.clone(),
            faults,
            calls: Arc::clone(&calls),
            counts: Arc::clone(&counts),
        });
        let listener = std::net::TcpListener::bind(listen)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new().app_data(state.clone()).route(
                "/v2/texml/Accounts/{account}/Calls/{call}",
                web::post().to(update_call),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            key,
            calls,
            counts,
            handle,
        })
    }

    /// A live call's inbox: URLs pushed to it arrive here until it is dropped from
    /// [`FakeTelnyxApi::hang_up`].
    #[must_use]
    pub fn call_started(&self, call_sid: &str) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(call_sid.to_owned(), tx);
        rx
    }

    /// The call ended: pushes to it are answered 404.
    pub fn hang_up(&self, call_sid: &str) {
        self.lock().remove(call_sid);
    }

    /// The inboxes (to hand to callers).
    #[must_use]
    pub fn inboxes(&self) -> Inboxes {
        Arc::clone(&self.calls)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<String>>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops it.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

#[derive(serde::Deserialize)]
struct UpdateCall {
    #[serde(rename = "Url")]
    url: Option<String>,
}

async fn update_call(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<UpdateCall>,
    state: web::Data<State>,
) -> HttpResponse {
    let c = &state.counts;
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", state.key));
    if !authorized {
        c.unauthorized.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::Unauthorized().finish();
    }
    tokio::time::sleep(state.faults.latency).await;
    let (fail, limit, drop) = {
        let mut rng = rand::rng();
        (
            rng.random_bool(state.faults.server_error.clamp(0.0, 1.0)),
            rng.random_bool(state.faults.rate_limited.clamp(0.0, 1.0)),
            rng.random_bool(state.faults.dropped_answer.clamp(0.0, 1.0)),
        )
    };
    if fail {
        c.server_errors.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::ServiceUnavailable().finish();
    }
    if limit {
        c.rate_limited.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::TooManyRequests().finish();
    }
    let call = path.into_inner().1;
    let sent = {
        let calls = state
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (calls.get(&call), form.into_inner().url) {
            (Some(tx), Some(url)) => tx.send(url).is_ok(),
            _ => false,
        }
    };
    if !sent {
        c.unknown_call.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::NotFound().finish();
    }
    if drop {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        // Longer than any client waits: the answer is lost.
        tokio::time::sleep(Duration::from_secs(8)).await;
        return HttpResponse::GatewayTimeout().finish();
    }
    c.redirected.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok().json(serde_json::json!({"sid": call, "status": "in-progress"}))
}
