//! End-to-end harness: a real `callcenter` server (the library's `Application`) on a random
//! port over a fresh SQLite file or PostgreSQL database, driven over HTTP with signed
//! webhooks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)] // test support

pub mod browser;

use std::collections::BTreeMap;

use callcenter::{Application, Settings, Shutdown};
use reqwest::Method;
use serde_json::Value;
use telnyx_sim::faults::Proxy;
use telnyx_sim::{Answer, Server, Signer};
use testing::TestDb;
use texml::{DialNoun, Response, Verb};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The public base URL the server writes into documents in tests.
pub const PUBLIC_BASE: &str = "https://cc.example.test";
/// The admin token of test servers.
pub const ADMIN: &str = "test-admin-token-0123456789";
/// The key of test servers' URL MAC (`CALL_CENTER_URL_SECRET`), so tests can write the same
/// signed URLs the server writes into its documents.
pub const URL_KEY: [u8; 32] = [9; 32];

/// The URLs a test server writes (signed with [`URL_KEY`]).
#[must_use]
pub fn test_urls() -> call_center::Urls {
    let keys = call_center::UrlKeys::new(call_center::UrlKey::new(URL_KEY), vec![]);
    call_center::Urls::new(PUBLIC_BASE, keys).expect("test URLs")
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database (`TEST_DATABASE_URL`).
    Postgres,
}

/// A running server with its database and a client.
pub struct TestApp {
    /// Client: signed webhooks and the JSON API (admin token).
    pub server: Server,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The database (kept alive for the test).
    pub db: TestDb,
    /// A direct handle on the database, for raw SQL.
    pub store: store::Store,
    /// The running server (`None` only during a restart).
    instance: Option<Instance>,
    /// The database URL the server connects with (through a proxy, for some tests).
    server_url: String,
}

/// One running server (an `Application` on a random port).
pub struct Instance {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    signer: Option<Signer>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    /// Its own spool folder, unless the test named one.
    _spool: Option<tempfile::TempDir>,
}

impl Instance {
    /// Starts a server on the database at `url` with test settings and `overrides`.
    pub async fn start(url: &str, overrides: &[(&str, &str)]) -> Self {
        let signer = Signer::from_seed([42u8; 32]);
        let mut env: BTreeMap<String, String> = [
            ("DATABASE_URL", url),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("WEBHOOK_BASE_URL", PUBLIC_BASE),
            ("CALL_CENTER_ADMIN_TOKEN", ADMIN),
            ("HTTP_WORKERS", "2"),
            ("DATABASE_MAX_CONNECTIONS", "8"),
            ("CALL_CENTER_AUDIT_SEAL_INTERVAL_MS", "200"),
            ("AUTH_FAILURE_LIMIT", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("TELNYX_PUBLIC_KEY".into(), signer.public_key_b64());
        env.insert(
            "CALL_CENTER_URL_SECRET".into(),
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, URL_KEY),
        );
        let spool = tempfile::tempdir().expect("a spool folder");
        env.insert(
            "CALL_CENTER_SPOOL_DIR".into(),
            spool.path().display().to_string(),
        );
        for (k, v) in overrides {
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        let settings = Settings::from_env(&env).unwrap_or_else(|p| panic!("test settings: {p:?}"));
        let verify = settings.telnyx_verify_signatures;
        let app = Application::build(settings).await.expect("server builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run(Shutdown::Token(stop.clone())));
        Self {
            base,
            signer: verify.then_some(signer),
            stop,
            task,
            _spool: Some(spool),
        }
    }

    /// A client of this instance alone.
    pub fn client(&self) -> Server {
        Self::client_of(&[self])
    }

    /// A client that spreads its requests over `instances`.
    pub fn client_of(instances: &[&Self]) -> Server {
        let bases = instances.iter().map(|i| i.base.clone()).collect();
        let signer = instances.first().and_then(|i| i.signer.clone());
        Server::new(bases, ADMIN.to_owned(), signer).unwrap()
    }

    /// Stops the server and waits for a clean shutdown.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("server task")
            .expect("clean shutdown");
    }
}

impl TestApp {
    /// A server on `backend` with default settings; `None` when the Postgres suite is skipped.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    /// A server with configuration overrides.
    pub async fn spawn_with(backend: Backend, overrides: &[(&str, &str)]) -> Option<Self> {
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres().await?,
        };
        let url = db.url.clone();
        Some(Self::spawn_on(db, &url, overrides).await)
    }

    /// A PostgreSQL-backed server that reaches its database through a [`Proxy`].
    pub async fn spawn_behind_proxy(overrides: &[(&str, &str)]) -> Option<(Self, Proxy)> {
        let db = TestDb::postgres().await?;
        let proxy = Proxy::start(testing::host_port(&db.url).expect("host:port"))
            .await
            .expect("a proxy on loopback");
        let url = testing::via_port(&db.url, proxy.port);
        Some((Self::spawn_on(db, &url, overrides).await, proxy))
    }

    /// A server on `db`, connecting with `server_url`.
    pub async fn spawn_on(db: TestDb, server_url: &str, overrides: &[(&str, &str)]) -> Self {
        let instance = Instance::start(server_url, overrides).await;
        let store = store::Store::open(&store::StoreOptions::new(&db.url)).unwrap();
        Self {
            server: instance.client(),
            base: instance.base.clone(),
            db,
            store,
            instance: Some(instance),
            server_url: server_url.to_owned(),
        }
    }

    /// Stops this server, runs `meanwhile`, and starts another on the same database with
    /// `overrides` (a restart: give it the same `CALL_CENTER_SPOOL_DIR` to find what the
    /// first one kept).
    pub async fn restart(
        &mut self,
        meanwhile: impl Future<Output = ()>,
        overrides: &[(&str, &str)],
    ) {
        if let Some(previous) = self.instance.take() {
            previous.stop().await;
        }
        meanwhile.await;
        let next = Instance::start(&self.server_url, overrides).await;
        self.server = next.client();
        self.base = next.base.clone();
        self.instance = Some(next);
    }

    /// This server.
    pub fn instance(&self) -> &Instance {
        self.instance.as_ref().expect("the server runs")
    }

    /// Another server process's worth of state on the same database (a second instance
    /// behind a load balancer).
    pub async fn another_instance(&self, overrides: &[(&str, &str)]) -> Instance {
        Instance::start(&self.db.url, overrides).await
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        if let Some(instance) = self.instance {
            instance.stop().await;
        }
        self.store.close().await;
    }

    /// The lines of `GET /metrics` that start with `prefix` (comments left out).
    pub async fn metric_lines(&self, prefix: &str) -> usize {
        self.metrics_text()
            .await
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// A metric's value, summed over its labels (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split([' ', '{']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics text")
    }

    /// A signed form POST to a path under `/api/call-center` or to an absolute URL.
    pub async fn post(&self, path_or_url: &str, params: &[(&str, &str)]) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("/api/call-center{path_or_url}")
        };
        let mut owned: Vec<(&str, String)> =
            params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        // Real requests a second apart differ in their timestamp; tests are faster than a
        // second, so each carries its own (the server ignores it).
        owned.push((
            "Timestamp",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ));
        self.server.post_form(&url, &owned).await.expect("request")
    }

    /// A JSON API call with the admin token.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server
            .api(method, path, body.as_ref())
            .await
            .expect("request")
    }

    /// Registers an available agent `name` at `sip:<name>@example.sip.telnyx.com`.
    pub async fn agent(&self, name: &str) -> (telnyx_sim::AgentJson, String) {
        let sip = format!("sip:{}@example.sip.telnyx.com", name.to_lowercase());
        self.server
            .register_agent(name, &sip, "available")
            .await
            .expect("register")
    }

    /// `/inbound` for a new call.
    pub async fn inbound(&self, call_sid: &str) -> Answer {
        self.post(
            "/inbound",
            &[
                ("CallSid", call_sid),
                ("From", "+13125550100"),
                ("To", "+13125550199"),
                ("CallStatus", "ringing"),
                ("AccountSid", "acct-1"),
                ("ConnectionId", "conn-1"),
            ],
        )
        .await
    }

    /// Waits (up to 5 s) until the matcher reserved round `round` for `call`: its entry in
    /// `GET /queue` is `reserved` (or already `ringing`) with that many offer rounds.
    ///
    /// # Panics
    /// When it does not happen in time.
    pub async fn reserved(&self, call: &str, round: i64) {
        for _ in 0..250 {
            let (_, queue) = self.api(Method::GET, "/queue", None).await;
            let reserved = queue["callers"].as_array().is_some_and(|callers| {
                callers.iter().any(|c| {
                    c["call_sid"] == call
                        && c["offer_rounds"] == round
                        && (c["state"] == "reserved" || c["state"] == "ringing")
                })
            });
            if reserved {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("round {round} of {call} was not reserved within 5 s");
    }

    /// `/dial-agents` for round `round` of `call`, as the server signs it.
    pub fn dial_agents_url(&self, call: &str, round: i32) -> String {
        test_urls().dial_agents(call, round).as_str().to_owned()
    }

    /// `/retry-dial` (the `<Dial action>`) of round `round`.
    pub fn retry_dial_url(&self, call: &str, round: i32) -> String {
        test_urls().retry_dial(call, round).as_str().to_owned()
    }

    /// `/retry-dial` after a round that rang nobody.
    pub fn without_agents_url(&self, call: &str, round: i32) -> String {
        test_urls()
            .round_without_agents(call, round)
            .as_str()
            .to_owned()
    }

    /// `/voicemail` of `call`.
    pub fn voicemail_url(&self, call: &str) -> String {
        test_urls().voicemail(call).as_str().to_owned()
    }

    /// `/voicemail/callback` of one kind (`action`, `recording`, `transcription`).
    pub fn voicemail_callback_url(&self, call: &str, kind: &str) -> String {
        let kind = kind.parse().expect("a voicemail callback kind");
        test_urls()
            .voicemail_callback(call, kind)
            .as_str()
            .to_owned()
    }

    /// `/outbound/event` of the offer to `agent` in round `round`.
    pub fn leg_url(&self, call: &str, round: i32, agent: &telnyx_sim::AgentJson) -> String {
        let id: agents::AgentId = agent.id.parse().expect("an agent id");
        test_urls()
            .outbound_event(call, round, id)
            .as_str()
            .to_owned()
    }

    /// An agent leg's status callback, to the signed URL of its offer, with `To` as Telnyx
    /// writes it for a SIP leg (no scheme).
    pub async fn leg(
        &self,
        call_sid: &str,
        attempt: i32,
        agent: &telnyx_sim::AgentJson,
        leg_sid: &str,
        status: &str,
        seq: i64,
    ) -> Answer {
        let seq = seq.to_string();
        let to = agent.sip_uri.trim_start_matches("sip:").to_owned();
        let mut params = vec![
            ("CallSid", leg_sid),
            ("ParentCallSid", call_sid),
            ("CallStatus", status),
            ("To", to.as_str()),
            ("SequenceNumber", seq.as_str()),
            ("CallbackSource", "call-progress-events"),
        ];
        if status == "completed" {
            params.push(("CallDuration", "42"));
        }
        self.post(&self.leg_url(call_sid, attempt, agent), &params)
            .await
    }

    /// The caller's call-status callback.
    pub async fn call_status(&self, call_sid: &str, status: &str) -> Answer {
        self.post(
            "/events",
            &[
                ("CallSid", call_sid),
                ("CallStatus", status),
                ("CallDuration", "60"),
            ],
        )
        .await
    }

    /// A caller who reaches voicemail and leaves a message ("Please call me back.", 14 s,
    /// recorded at `https://api.telnyx.com/vm.mp3`).
    pub async fn leave_voicemail(&self, sid: &str) {
        self.inbound(sid).await;
        let record = self
            .post(&self.voicemail_url(sid), &[("CallSid", sid)])
            .await;
        assert!(record.body.contains("<Record "), "{}", record.body);
        self.post(
            &self.voicemail_callback_url(sid, "recording"),
            &[
                ("CallSid", sid),
                ("RecordingSid", "rec-vm"),
                ("RecordingStatus", "completed"),
                ("RecordingUrl", "https://api.telnyx.com/vm.mp3"),
                ("RecordingDuration", "14"),
            ],
        )
        .await;
        self.post(
            &self.voicemail_callback_url(sid, "transcription"),
            &[
                ("CallSid", sid),
                ("TranscriptionSid", "tr-1"),
                ("TranscriptionStatus", "completed"),
                ("TranscriptionText", "Please call me back."),
            ],
        )
        .await;
    }

    /// A call's JSON.
    pub async fn call(&self, call_sid: &str) -> Value {
        self.server.call(call_sid).await.expect("call")
    }

    /// An agent's JSON.
    pub async fn agent_json(&self, id: &str) -> Value {
        self.api(Method::GET, &format!("/agents/{id}"), None)
            .await
            .1
    }
}

/// The SIP URIs a `<Dial>` document rings.
#[must_use]
pub fn rung(doc: &Response) -> Vec<String> {
    doc.verbs
        .iter()
        .filter_map(|v| if let Verb::Dial(d) = v { Some(d) } else { None })
        .flat_map(|d| d.nouns().iter())
        .filter_map(|n| {
            if let DialNoun::Sip(s) = n {
                Some(s.uri.as_str().to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// The `<Redirect>` target of a document, if any.
#[must_use]
pub fn redirect(doc: &Response) -> Option<String> {
    doc.verbs.iter().find_map(|v| {
        if let Verb::Redirect(r) = v {
            Some(r.url.as_str().to_owned())
        } else {
            None
        }
    })
}

/// Runs `$test(app)` on SQLite and on PostgreSQL (ignored without `TEST_DATABASE_URL`).
#[macro_export]
macro_rules! on_both_backends {
    (with $overrides:expr; $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    if let Some(app) =
                        $crate::TestApp::spawn_with($crate::Backend::Sqlite, $overrides).await
                    {
                        super::$test(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
                async fn postgres() {
                    let app = $crate::TestApp::spawn_with($crate::Backend::Postgres, $overrides)
                        .await
                        .expect("TEST_DATABASE_URL is set");
                    super::$test(app).await;
                }
            }
        )+
    };
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    if let Some(app) = $crate::TestApp::spawn($crate::Backend::Sqlite).await {
                        super::$test(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(not(pg), ignore = "PostgreSQL: set TEST_DATABASE_URL")]
                async fn postgres() {
                    let app = $crate::TestApp::spawn($crate::Backend::Postgres)
                        .await
                        .expect("TEST_DATABASE_URL is set");
                    super::$test(app).await;
                }
            }
        )+
    };
}
