//! Talking to the server the way Telnyx and softphones do: Ed25519-signed form posts to the
//! TeXML endpoints, and the JSON API with bearer tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::Deserialize;
use serde_json::Value;

/// Signs webhook requests like Telnyx: Ed25519 over `timestamp|body`.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(public {})", self.public_key_b64())
    }
}

impl Signer {
    /// A fresh random key.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_seed(rand::random())
    }

    /// A key from a 32-byte seed (tests use fixed seeds).
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// A key from a base64 seed.
    ///
    /// # Errors
    /// When the text is not base64 of 32 bytes.
    pub fn from_seed_b64(b64: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = STANDARD
            .decode(b64.trim())
            .context("seed is not base64")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("seed must be 32 bytes"))?;
        Ok(Self::from_seed(bytes))
    }

    /// The seed, base64 (to hand the same key to another process).
    #[must_use]
    pub fn seed_b64(&self) -> String {
        STANDARD.encode(self.key.to_bytes())
    }

    /// The public key, base64: the server's `TELNYX_PUBLIC_KEY`.
    #[must_use]
    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().to_bytes())
    }

    /// The `telnyx-signature-ed25519` value for `timestamp` and `body`.
    #[must_use]
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let message = [timestamp.as_bytes(), b"|", body].concat();
        STANDARD.encode(self.key.sign(&message).to_bytes())
    }
}

/// What the server answered a webhook.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Body.
    pub body: String,
}

impl Answer {
    /// The TeXML document, read leniently (what Telnyx would execute).
    ///
    /// # Errors
    /// When the body is not a TeXML document.
    pub fn texml(&self) -> anyhow::Result<texml::Response> {
        Ok(texml::Response::parse_lenient(&self.body)
            .context("not a TeXML document")?
            .response)
    }
}

/// The JSON agent object.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentJson {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// SIP URI.
    pub sip_uri: String,
    /// Effective status.
    pub status: String,
    /// Counters.
    pub metrics: MetricsJson,
}

/// The agent's counters.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct MetricsJson {
    /// Answered.
    pub calls_answered: i64,
    /// Missed.
    pub calls_missed: i64,
    /// Talk time.
    pub total_talk_seconds: i64,
    /// Average.
    pub average_call_duration_seconds: f64,
}

/// A call-center server reached over HTTP.
#[derive(Debug, Clone)]
pub struct Server {
    bases: Vec<String>,
    http: reqwest::Client,
    /// How long a webhook is sent again when the server cannot be reached or answers 5xx,
    /// as Telnyx falls over to the failover URL (here: any instance); `None`: never.
    failover: Option<Duration>,
    /// Webhooks sent again that way.
    failovers: Arc<AtomicU64>,
    /// The slowest webhook answered 200, microseconds (one attempt, not its retries).
    slowest: Arc<AtomicU64>,
    /// Instances that refused a connection, and until when they are passed over (a load
    /// balancer's health check).
    down: Arc<std::sync::Mutex<Vec<Option<std::time::Instant>>>>,
    /// The admin token.
    pub admin_token: String,
    /// The webhook signer (`None`: send unsigned, for servers with verification off).
    pub signer: Option<Signer>,
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Server {
    /// A server at `base` (e.g. `http://127.0.0.1:8080`); several bases spread requests
    /// over several instances, one request at a time.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        bases: Vec<String>,
        admin_token: String,
        signer: Option<Signer>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(512)
            // Drop idle connections well before the server's keep-alive (75 s) ends them, as
            // a well-behaved HTTP client does; otherwise a request can race the server's close.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("HTTP client")?;
        let bases: Vec<String> = bases
            .into_iter()
            .map(|b| b.trim_end_matches('/').to_owned())
            .collect();
        let n = bases.len();
        Ok(Self {
            bases,
            http,
            failover: None,
            failovers: Arc::default(),
            slowest: Arc::default(),
            down: Arc::new(std::sync::Mutex::new(vec![None; n])),
            admin_token,
            signer,
        })
    }

    /// Sends a webhook again, on any instance, for up to `window` when the server cannot be
    /// reached or answers 5xx (Telnyx's failover URL pointing at the same load balancer).
    #[must_use]
    pub fn with_failover(mut self, window: Duration) -> Self {
        self.failover = Some(window);
        self
    }

    /// Webhooks sent again after a failure.
    #[must_use]
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// The slowest webhook the server answered with 200 (one attempt).
    #[must_use]
    pub fn slowest_answer(&self) -> Duration {
        Duration::from_micros(self.slowest.load(Ordering::Relaxed))
    }

    fn base(&self) -> &str {
        let now = std::time::Instant::now();
        let up: Vec<usize> = {
            let down = self
                .down
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (0..self.bases.len())
                .filter(|i| {
                    down.get(*i)
                        .copied()
                        .flatten()
                        .is_none_or(|until| until <= now)
                })
                .collect()
        };
        let i = match up.len() {
            0 => rand::random_range(0..self.bases.len().max(1)),
            1 => up[0],
            n => up[rand::random_range(0..n)],
        };
        self.bases.get(i).map_or("", String::as_str)
    }

    /// Passes over the instance `url` was sent to for a few seconds (it refused a
    /// connection).
    fn mark_down(&self, url: &str) {
        let Some(i) = self.bases.iter().position(|b| url.starts_with(b.as_str())) else {
            return;
        };
        let mut down = self
            .down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = down.get_mut(i) {
            *slot = Some(std::time::Instant::now() + Duration::from_secs(5));
        }
    }

    /// Each instance's `callcenter_spool_pending` (`None`: it did not answer).
    pub async fn spool_pending(&self) -> Vec<Option<i64>> {
        let mut all = Vec::with_capacity(self.bases.len());
        for base in &self.bases {
            let text = match self.http.get(format!("{base}/metrics")).send().await {
                Ok(res) => res.text().await.ok(),
                Err(_) => None,
            };
            all.push(text.and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("callcenter_spool_pending "))
                    .and_then(|v| v.trim().parse().ok())
            }));
        }
        all
    }

    /// The first base URL.
    #[must_use]
    pub fn first_base(&self) -> &str {
        self.bases.first().map_or("", String::as_str)
    }

    /// Turns an absolute URL from a document into one on this server (documents carry the
    /// public `WEBHOOK_BASE_URL`); keeps path and query.
    #[must_use]
    pub fn local(&self, url: &str) -> String {
        match url.find("/api/call-center") {
            Some(i) => format!("{}{}", self.base(), &url[i..]),
            None => url.to_owned(),
        }
    }

    /// POSTs form `params` to `url` (absolute, or a path under the base) as Telnyx does,
    /// signed now.
    ///
    /// # Errors
    /// Network errors.
    pub async fn post_form(&self, url: &str, params: &[(&str, String)]) -> anyhow::Result<Answer> {
        let body = serde_urlencoded::to_string(params).context("encoding form")?;
        self.post_raw(
            url,
            body.into_bytes(),
            "application/x-www-form-urlencoded",
            now_unix(),
        )
        .await
    }

    /// POSTs raw bytes, signed with `timestamp` (tests move it around).
    ///
    /// # Errors
    /// Network errors.
    pub async fn post_raw(
        &self,
        url: &str,
        body: Vec<u8>,
        content_type: &str,
        timestamp: i64,
    ) -> anyhow::Result<Answer> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            let attempt = std::time::Instant::now();
            let sent = self
                .post_once(url, body.clone(), content_type, timestamp)
                .await;
            let failed = match &sent {
                Ok(a) => a.status >= 500,
                Err(_) => true,
            };
            if matches!(&sent, Ok(a) if a.status == 200) {
                let took = u64::try_from(attempt.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.slowest.fetch_max(took, Ordering::Relaxed);
            }
            let window = self.failover.unwrap_or_default();
            if !failed || started.elapsed() + wait > window {
                return sent;
            }
            self.failovers.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    async fn post_once(
        &self,
        url: &str,
        body: Vec<u8>,
        content_type: &str,
        timestamp: i64,
    ) -> anyhow::Result<Answer> {
        let url = if url.starts_with("http") {
            self.local(url)
        } else {
            format!("{}{url}", self.base())
        };
        let mut req = self.http.post(&url).header("content-type", content_type);
        if let Some(signer) = &self.signer {
            let ts = timestamp.to_string();
            req = req
                .header("telnyx-timestamp", &ts)
                .header("telnyx-signature-ed25519", signer.sign(&ts, &body));
        }
        match req.body(body).send().await {
            Ok(res) => answer(res).await,
            Err(e) => {
                if e.is_connect() {
                    self.mark_down(&url);
                }
                Err(e.into())
            }
        }
    }

    /// GETs a webhook with `params` in the query string, signed over the empty body.
    ///
    /// # Errors
    /// Network errors.
    pub async fn get_webhook(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> anyhow::Result<Answer> {
        let query = serde_urlencoded::to_string(params).context("encoding query")?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut req = self.http.get(format!("{}{path}{sep}{query}", self.base()));
        if let Some(signer) = &self.signer {
            let ts = now_unix().to_string();
            req = req
                .header("telnyx-timestamp", &ts)
                .header("telnyx-signature-ed25519", signer.sign(&ts, b""));
        }
        answer(req.send().await?).await
    }

    /// A JSON API call with the admin token; returns status and body.
    ///
    /// # Errors
    /// Network errors.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.api_as(&self.admin_token.clone(), method, path, body)
            .await
    }

    /// A JSON API call with `token`.
    ///
    /// # Errors
    /// Network errors.
    pub async fn api_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let started = std::time::Instant::now();
        let res = loop {
            let url = format!("{}/api/call-center{path}", self.base());
            let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            match req.send().await {
                // An instance that is gone (nothing was sent): another one, as a load
                // balancer would, within the failover window.
                Err(e)
                    if e.is_connect() && started.elapsed() < self.failover.unwrap_or_default() =>
                {
                    self.mark_down(&url);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                sent => break sent?,
            }
        };
        let status = res.status().as_u16();
        let text = res.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// Registers an agent; returns it and its heartbeat token.
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn register_agent(
        &self,
        name: &str,
        sip_uri: &str,
        status: &str,
    ) -> anyhow::Result<(AgentJson, String)> {
        let body = serde_json::json!({ "name": name, "sip_uri": sip_uri, "status": status });
        let (code, value) = self
            .api(reqwest::Method::POST, "/agents/register", Some(&body))
            .await?;
        anyhow::ensure!(code == 201, "registering {name}: {code} {value}");
        let agent: AgentJson = serde_json::from_value(value["agent"].clone())?;
        let token = value["heartbeat_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((agent, token))
    }

    /// Sends a heartbeat with the agent's own token.
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn heartbeat(
        &self,
        agent_id: &str,
        token: &str,
        status: Option<&str>,
    ) -> anyhow::Result<AgentJson> {
        let body = match status {
            Some(s) => serde_json::json!({ "agent_id": agent_id, "status": s }),
            None => serde_json::json!({ "agent_id": agent_id }),
        };
        let (code, value) = self
            .api_as(
                token,
                reqwest::Method::POST,
                "/agents/heartbeat",
                Some(&body),
            )
            .await?;
        anyhow::ensure!(code == 200, "heartbeat {agent_id}: {code} {value}");
        Ok(serde_json::from_value(value)?)
    }

    /// Every agent.
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn agents(&self) -> anyhow::Result<Vec<AgentJson>> {
        let (code, value) = self.api(reqwest::Method::GET, "/agents/list", None).await?;
        anyhow::ensure!(code == 200, "listing agents: {code} {value}");
        Ok(serde_json::from_value(value["agents"].clone())?)
    }

    /// One call's JSON.
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn call(&self, call_sid: &str) -> anyhow::Result<Value> {
        let (code, value) = self
            .api(
                reqwest::Method::GET,
                &format!("/calls/{}", encode_path(call_sid)),
                None,
            )
            .await?;
        anyhow::ensure!(code == 200, "call {call_sid}: {code} {value}");
        Ok(value)
    }

    /// `GET /reports/summary` over the last and the next day (every call of a run).
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn summary(&self) -> anyhow::Result<Value> {
        let now = chrono::Utc::now();
        let day = chrono::Duration::days(1);
        let path = format!(
            "/reports/summary?from={}&to={}",
            (now - day).format("%Y-%m-%d"),
            (now + day + day).format("%Y-%m-%d")
        );
        let (code, value) = self.api(reqwest::Method::GET, &path, None).await?;
        anyhow::ensure!(code == 200, "summary: {code} {value}");
        Ok(value)
    }

    /// `GET /audit?agent_id=`: the agent's audit entries (at most `limit`).
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn agent_audit(&self, agent_id: &str, limit: u32) -> anyhow::Result<Vec<Value>> {
        let path = format!("/audit?agent_id={}&limit={limit}", encode_path(agent_id));
        let (code, value) = self.api(reqwest::Method::GET, &path, None).await?;
        anyhow::ensure!(code == 200, "audit of {agent_id}: {code} {value}");
        Ok(value["entries"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /audit?call_sid=`: the call's audit entries.
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn call_audit(&self, call_sid: &str) -> anyhow::Result<Vec<Value>> {
        let path = format!("/audit?call_sid={}&limit=10000", encode_path(call_sid));
        let (code, value) = self.api(reqwest::Method::GET, &path, None).await?;
        anyhow::ensure!(code == 200, "audit of {call_sid}: {code} {value}");
        Ok(value["entries"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /audit/verify`.
    ///
    /// # Errors
    /// Network errors or a refusal.
    pub async fn verify_audit(&self) -> anyhow::Result<Value> {
        let (code, value) = self
            .api(reqwest::Method::GET, "/audit/verify", None)
            .await?;
        anyhow::ensure!(code == 200, "audit verify: {code} {value}");
        Ok(value)
    }
}

/// Percent-encodes a path segment.
#[must_use]
pub fn encode_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn answer(res: reqwest::Response) -> anyhow::Result<Answer> {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = res.text().await?;
    Ok(Answer {
        status,
        content_type,
        body,
    })
}
