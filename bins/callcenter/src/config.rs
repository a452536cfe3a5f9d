//! Configuration from the environment (and `.env` when present): every variable typed,
//! validated, and reported one problem per line, naming the variable, what is wrong and
//! what is accepted. Secrets never print.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A secret: prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value (only where it is used, never in logs).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// SQLite writes one transaction at a time, so beyond a few readers more connections only
/// cost memory (each keeps its own page and statement caches); PostgreSQL gets 10.
fn default_pool_size(database_url: &str) -> u32 {
    match store::Backend::of(database_url) {
        Ok(store::Backend::Sqlite) => 4,
        _ => 10,
    }
}

/// Where audit events go (`null` only to measure what auditing costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSinkKind {
    /// Into the hash chain (always, in production).
    Chain,
    /// Dropped: benchmarks only.
    Null,
}

/// The effective configuration. Its `Debug` is [`Settings::describe`]: secrets and the
/// database password never print.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub database_max_connections: u32,
    pub bind_addr: SocketAddr,
    pub webhook_base_url: String,
    pub telnyx_public_key: Option<[u8; 32]>,
    pub telnyx_verify_signatures: bool,
    pub telnyx_signature_tolerance: u32,
    pub telnyx_api_key: Option<Secret>,
    pub call_center_number: Option<String>,
    pub telnyx_outbound_profile_id: Option<String>,
    pub max_dial_attempts: i32,
    pub dial_timeout: u32,
    pub voicemail_enabled: bool,
    pub recording_enabled: bool,
    pub heartbeat_ttl: u32,
    pub admin_token: Option<Secret>,
    pub greeting: String,
    pub recording_notice: String,
    pub voicemail_max_length: u32,
    pub max_agents_per_round: u32,
    pub retention_days: Option<u32>,
    pub service_level_seconds: u32,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub http_body_limit: usize,
    pub http_request_timeout: u32,
    pub http_workers: usize,
    pub auth_failure_limit: u32,
    pub trust_forwarded_for: bool,
    pub audit_sink: AuditSinkKind,
    pub audit_seal_interval_ms: u64,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.describe() {
            map.entry(&name, &value);
        }
        map.finish()
    }
}

/// Reads a variable from a map (the process environment or a test's).
pub trait Env {
    /// The value, if set and not blank.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name)
            .cloned()
            .filter(|v| !v.trim().is_empty())
    }
}

/// Collects problems while reading variables, so `config check` can name each of them.
struct Reader<'a> {
    env: &'a dyn Env,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn problem(&mut self, name: &str, value: &str, what: &str) {
        self.problems.push(format!("{name}={value:?}: {what}"));
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.env.get(name).unwrap_or_else(|| default.to_owned())
    }

    fn number<T>(&mut self, name: &str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
    {
        let Some(raw) = self.env.get(name) else {
            return default;
        };
        match raw.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            Ok(_) => {
                self.problem(
                    name,
                    &raw,
                    &format!("out of range; accepted: {min}..={max}"),
                );
                default
            }
            Err(_) => {
                self.problem(
                    name,
                    &raw,
                    &format!("not a whole number; accepted: {min}..={max}"),
                );
                default
            }
        }
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.env.get(name) else {
            return default;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.problem(name, &raw, "not a boolean; accepted: true or false");
                default
            }
        }
    }
}

/// The default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/callcenter.db";

impl Settings {
    /// Reads and validates the configuration.
    ///
    /// # Errors
    /// One line per problem.
    pub fn from_env(env: &dyn Env) -> Result<Self, Vec<String>> {
        let mut r = Reader {
            env,
            problems: Vec::new(),
        };
        let settings = Self::read(&mut r);
        if r.problems.is_empty() {
            Ok(settings)
        } else {
            Err(r.problems)
        }
    }

    fn read(r: &mut Reader<'_>) -> Self {
        let database_url = r.string("DATABASE_URL", DEFAULT_DATABASE_URL);
        if store::Backend::of(&database_url).is_err() {
            r.problem(
                "DATABASE_URL",
                &store::redact_url(&database_url),
                "unsupported; accepted: sqlite:<path> or postgres://...",
            );
        }
        let bind = r.string("BIND_ADDR", "127.0.0.1:8080");
        let bind_addr = bind.parse().unwrap_or_else(|_| {
            r.problem(
                "BIND_ADDR",
                &bind,
                "not an address; accepted: host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let webhook_base_url = r.string("WEBHOOK_BASE_URL", "http://127.0.0.1:8080");
        if call_center::Urls::new(&webhook_base_url, 1).is_err() {
            r.problem(
                "WEBHOOK_BASE_URL",
                &webhook_base_url,
                "not an absolute URL; accepted: http(s)://host[:port][/path]",
            );
        }
        let telnyx_public_key = r
            .env
            .get("TELNYX_PUBLIC_KEY")
            .and_then(|k| match decode_key(&k) {
                Some(key) => Some(key),
                None => {
                    r.problem(
                        "TELNYX_PUBLIC_KEY",
                        "<redacted>",
                        "not a key; accepted: base64 of a 32-byte Ed25519 public key",
                    );
                    None
                }
            });
        let telnyx_verify_signatures = r.boolean("TELNYX_VERIFY_SIGNATURES", true);
        if telnyx_verify_signatures
            && telnyx_public_key.is_none()
            && r.env.get("TELNYX_PUBLIC_KEY").is_none()
        {
            r.problems.push(
                "TELNYX_PUBLIC_KEY is not set: webhooks cannot be verified; accepted: the account's base64 Ed25519 public key \
                 (or TELNYX_VERIFY_SIGNATURES=false for local work only)"
                    .to_owned(),
            );
        }
        let call_center_number = r.env.get("CALL_CENTER_NUMBER");
        if let Some(n) = &call_center_number
            && texml::PhoneNumber::new(n.as_str()).is_err()
        {
            r.problem(
                "CALL_CENTER_NUMBER",
                n,
                "not E.164; accepted: + and 2 to 15 digits",
            );
        }
        let admin_token = r.env.get("CALL_CENTER_ADMIN_TOKEN").map(Secret::new);
        if admin_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            r.problem(
                "CALL_CENTER_ADMIN_TOKEN",
                "<redacted>",
                "too short; accepted: at least 16 characters",
            );
        }
        let log_format = match r
            .string("LOG_FORMAT", "human")
            .to_ascii_lowercase()
            .as_str()
        {
            "human" | "text" | "pretty" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                let other = other.to_owned();
                r.problem("LOG_FORMAT", &other, "unknown; accepted: human or json");
                LogFormat::Human
            }
        };
        let audit_sink = match r.string("CALL_CENTER_AUDIT_SINK", "chain").as_str() {
            "chain" => AuditSinkKind::Chain,
            "null" => AuditSinkKind::Null,
            other => {
                let other = other.to_owned();
                r.problem(
                    "CALL_CENTER_AUDIT_SINK",
                    &other,
                    "unknown; accepted: chain (or null, for benchmarks only)",
                );
                AuditSinkKind::Chain
            }
        };
        let greeting = r.string("CALL_CENTER_GREETING", call_center::DEFAULT_GREETING);
        let recording_notice = r.string(
            "CALL_CENTER_RECORDING_NOTICE",
            call_center::DEFAULT_RECORDING_NOTICE,
        );
        if let Err(e) = call_center::Texts::english(&greeting, &recording_notice) {
            r.problems.push(format!(
                "{e}; accepted: plain text without control characters"
            ));
        }
        let retention_days = r.env.get("CALL_CENTER_RETENTION_DAYS").and_then(|v| {
            if v.trim().eq_ignore_ascii_case("off") {
                return None;
            }
            Some(r.number("CALL_CENTER_RETENTION_DAYS", 0u32, 1, 36_500)).filter(|d| *d > 0)
        });
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            database_max_connections: r.number(
                "DATABASE_MAX_CONNECTIONS",
                default_pool_size(&database_url),
                1,
                500,
            ),
            database_url,
            bind_addr,
            webhook_base_url,
            telnyx_public_key,
            telnyx_verify_signatures,
            telnyx_signature_tolerance: r.number("TELNYX_SIGNATURE_TOLERANCE", 300, 1, 3600),
            telnyx_api_key: r.env.get("TELNYX_API_KEY").map(Secret::new),
            call_center_number,
            telnyx_outbound_profile_id: r.env.get("TELNYX_OUTBOUND_PROFILE_ID"),
            max_dial_attempts: r.number("CALL_CENTER_MAX_DIAL_ATTEMPTS", 2, 1, 10),
            dial_timeout: r.number("CALL_CENTER_DIAL_TIMEOUT", 30, 5, 120),
            voicemail_enabled: r.boolean("CALL_CENTER_VOICEMAIL_ENABLED", true),
            recording_enabled: r.boolean("CALL_CENTER_RECORDING_ENABLED", true),
            heartbeat_ttl: r.number("CALL_CENTER_AGENT_HEARTBEAT_TTL", 60, 5, 86_400),
            admin_token,
            greeting,
            recording_notice,
            voicemail_max_length: r.number("CALL_CENTER_VOICEMAIL_MAX_LENGTH", 120, 1, 14_400),
            max_agents_per_round: r.number("CALL_CENTER_MAX_AGENTS_PER_ROUND", 50, 1, 200),
            retention_days,
            service_level_seconds: r.number("CALL_CENTER_SERVICE_LEVEL_SECONDS", 20, 1, 3600),
            log_format,
            log_filter: r.string("RUST_LOG", "info,sqlx=warn"),
            http_body_limit: r.number("HTTP_BODY_LIMIT_BYTES", 64 * 1024, 1024, 10 * 1024 * 1024),
            http_request_timeout: r.number("HTTP_REQUEST_TIMEOUT", 30, 1, 300),
            http_workers: r.number("HTTP_WORKERS", cpus, 1, 256),
            auth_failure_limit: r.number("AUTH_FAILURE_LIMIT", 20, 1, 100_000),
            trust_forwarded_for: r.boolean("TRUST_X_FORWARDED_FOR", false),
            audit_sink,
            audit_seal_interval_ms: r.number(
                "CALL_CENTER_AUDIT_SEAL_INTERVAL_MS",
                500,
                10,
                600_000,
            ),
        }
    }

    /// The effective configuration, secrets redacted, one `NAME=value` per line.
    #[must_use]
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_owned());
        let secret =
            |s: &Option<Secret>| if s.is_some() { "*** (set)" } else { "(unset)" }.to_owned();
        vec![
            ("DATABASE_URL", store::redact_url(&self.database_url)),
            (
                "DATABASE_MAX_CONNECTIONS",
                self.database_max_connections.to_string(),
            ),
            ("BIND_ADDR", self.bind_addr.to_string()),
            ("WEBHOOK_BASE_URL", self.webhook_base_url.clone()),
            (
                "TELNYX_PUBLIC_KEY",
                if self.telnyx_public_key.is_some() {
                    "(set)"
                } else {
                    "(unset)"
                }
                .to_owned(),
            ),
            (
                "TELNYX_VERIFY_SIGNATURES",
                self.telnyx_verify_signatures.to_string(),
            ),
            (
                "TELNYX_SIGNATURE_TOLERANCE",
                self.telnyx_signature_tolerance.to_string(),
            ),
            ("TELNYX_API_KEY", secret(&self.telnyx_api_key)),
            ("CALL_CENTER_NUMBER", opt(&self.call_center_number)),
            (
                "TELNYX_OUTBOUND_PROFILE_ID",
                opt(&self.telnyx_outbound_profile_id),
            ),
            (
                "CALL_CENTER_MAX_DIAL_ATTEMPTS",
                self.max_dial_attempts.to_string(),
            ),
            ("CALL_CENTER_DIAL_TIMEOUT", self.dial_timeout.to_string()),
            (
                "CALL_CENTER_VOICEMAIL_ENABLED",
                self.voicemail_enabled.to_string(),
            ),
            (
                "CALL_CENTER_RECORDING_ENABLED",
                self.recording_enabled.to_string(),
            ),
            (
                "CALL_CENTER_AGENT_HEARTBEAT_TTL",
                self.heartbeat_ttl.to_string(),
            ),
            (
                "CALL_CENTER_ADMIN_TOKEN",
                if self.admin_token.is_some() {
                    "*** (set)"
                } else {
                    "(unset: generated at startup)"
                }
                .to_owned(),
            ),
            ("CALL_CENTER_GREETING", self.greeting.clone()),
            (
                "CALL_CENTER_RECORDING_NOTICE",
                self.recording_notice.clone(),
            ),
            (
                "CALL_CENTER_VOICEMAIL_MAX_LENGTH",
                self.voicemail_max_length.to_string(),
            ),
            (
                "CALL_CENTER_MAX_AGENTS_PER_ROUND",
                self.max_agents_per_round.to_string(),
            ),
            (
                "CALL_CENTER_RETENTION_DAYS",
                self.retention_days
                    .map_or_else(|| "off".to_owned(), |d| d.to_string()),
            ),
            (
                "CALL_CENTER_SERVICE_LEVEL_SECONDS",
                self.service_level_seconds.to_string(),
            ),
            (
                "CALL_CENTER_AUDIT_SINK",
                format!("{:?}", self.audit_sink).to_ascii_lowercase(),
            ),
            (
                "CALL_CENTER_AUDIT_SEAL_INTERVAL_MS",
                self.audit_seal_interval_ms.to_string(),
            ),
            (
                "LOG_FORMAT",
                format!("{:?}", self.log_format).to_ascii_lowercase(),
            ),
            ("RUST_LOG", self.log_filter.clone()),
            ("HTTP_BODY_LIMIT_BYTES", self.http_body_limit.to_string()),
            (
                "HTTP_REQUEST_TIMEOUT",
                self.http_request_timeout.to_string(),
            ),
            ("HTTP_WORKERS", self.http_workers.to_string()),
            ("AUTH_FAILURE_LIMIT", self.auth_failure_limit.to_string()),
            (
                "TRUST_X_FORWARDED_FOR",
                self.trust_forwarded_for.to_string(),
            ),
        ]
    }

    /// The flow settings these values describe.
    ///
    /// # Errors
    /// When a value the flow checks again is out of range (validated already).
    pub fn flow(&self) -> Result<call_center::FlowSettings, call_center::SettingsError> {
        let texts = call_center::Texts::english(&self.greeting, &self.recording_notice)?;
        let mut flow = call_center::FlowSettings::new(
            self.max_dial_attempts,
            self.dial_timeout,
            self.voicemail_enabled,
            self.recording_enabled,
            texts,
        )?;
        flow.max_agents_per_round = self.max_agents_per_round;
        flow.voicemail_max_length =
            texml::MaxLength::new(self.voicemail_max_length).map_err(|source| {
                call_center::SettingsError::Texml {
                    name: "CALL_CENTER_VOICEMAIL_MAX_LENGTH",
                    source,
                }
            })?;
        Ok(flow)
    }
}

/// Reads a base64 32-byte Ed25519 public key (standard or URL-safe alphabet).
#[must_use]
pub fn decode_key(b64: &str) -> Option<[u8; 32]> {
    let trimmed = b64.trim();
    let bytes = STANDARD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        m.entry("TELNYX_VERIFY_SIGNATURES".into())
            .or_insert_with(|| "false".into());
        m
    }

    #[test]
    fn defaults_are_the_contracts() {
        let s = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(s.database_url, "sqlite://data/callcenter.db");
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            (s.max_dial_attempts, s.dial_timeout, s.heartbeat_ttl),
            (2, 30, 60)
        );
        assert!(s.voicemail_enabled && s.recording_enabled);
        assert_eq!(s.telnyx_signature_tolerance, 300);
    }

    #[test]
    fn each_problem_is_one_line_naming_the_variable_and_the_accepted_values() {
        let problems = Settings::from_env(&env(&[
            ("CALL_CENTER_DIAL_TIMEOUT", "500"),
            ("DATABASE_URL", "mysql://x"),
            ("BIND_ADDR", "nonsense"),
        ]))
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("CALL_CENTER_DIAL_TIMEOUT=\"500\"") && p.contains("5..=120")));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("DATABASE_URL=") && p.contains("sqlite:"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("BIND_ADDR=\"nonsense\"") && p.contains("host:port"))
        );
        assert!(problems.iter().all(|p| !p.contains('\n')));
    }

    #[test]
    fn verification_without_a_key_refuses_to_start() {
        let mut e = env(&[]);
        e.remove("TELNYX_VERIFY_SIGNATURES");
        let problems = Settings::from_env(&e).unwrap_err();
        assert!(problems[0].starts_with("TELNYX_PUBLIC_KEY is not set"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::from_env(&env(&[
            ("CALL_CENTER_ADMIN_TOKEN", "super-secret-admin-token"),
            ("TELNYX_API_KEY", "KEY0123456789"),
            ("DATABASE_URL", "postgres://app:hunter2@db/cc"),
        ]))
        .unwrap();
        let printed = format!("{s:?} {:?}", s.describe());
        for secret in ["super-secret-admin-token", "KEY0123456789", "hunter2"] {
            assert!(!printed.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn keys_are_32_byte_base64() {
        assert!(decode_key("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").is_some());
        assert!(decode_key("dG9vIHNob3J0").is_none());
        assert!(decode_key("not base64!").is_none());
    }
}
