//! Configuration from the environment (and `.env` when present): every variable typed,
//! validated, and reported one problem per line, naming the variable, what is wrong and
//! what is accepted. Secrets never print.

pub mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use self::table::{self as t, Reader};

/// The default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = t::DATABASE_URL.default;

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
/// database password never print. Every field comes from one row of [`table::ALL`].
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub database_max_connections: u32,
    pub bind_addr: SocketAddr,
    pub webhook_base_url: String,
    pub telnyx_public_key: Option<[u8; 32]>,
    pub telnyx_verify_signatures: bool,
    pub telnyx_signature_tolerance: Duration,
    pub telnyx_api_key: Option<Secret>,
    pub call_center_number: Option<String>,
    pub telnyx_outbound_profile_id: Option<String>,
    pub max_dial_attempts: i32,
    pub dial_timeout: Duration,
    pub voicemail_enabled: bool,
    pub recording_enabled: bool,
    pub heartbeat_ttl: Duration,
    /// `CALL_CENTER_PAUSE_REASONS`.
    pub pause_reasons: Vec<agents::PauseReason>,
    pub admin_token: Option<Secret>,
    /// `CALL_CENTER_URL_SECRET`: the first signs, all verify; empty: kept in the database.
    pub url_secrets: Vec<[u8; 32]>,
    pub greeting: String,
    pub recording_notice: String,
    pub voicemail_max_length: Duration,
    pub max_agents_per_round: u32,
    pub retention_days: Option<u32>,
    pub service_level: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub http_body_limit: usize,
    pub http_request_timeout: Duration,
    pub http_workers: usize,
    pub auth_failure_limit: u32,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_call_length: Duration,
    /// `CALL_CENTER_WRAP_UP_SECONDS`.
    pub wrap_up: Duration,
    /// The queue's settings (`CALL_CENTER_QUEUE_STRATEGY` and its siblings).
    pub queue: call_center::QueueSettings,
    /// `TELNYX_API_BASE_URL`.
    pub telnyx_api_base_url: String,
    /// `CALL_CENTER_MATCHER_INTERVAL_MS`.
    pub matcher_interval: Duration,
    pub webhook_deadline: Duration,
    pub statement_timeout: Duration,
    pub spool_dir: std::path::PathBuf,
    pub spool_max_bytes: u64,
    pub audit_sink: AuditSinkKind,
    pub audit_seal_interval: Duration,
    effective: Vec<(&'static str, String)>,
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

impl Settings {
    /// Reads and validates the configuration.
    ///
    /// # Errors
    /// One line per problem.
    pub fn from_env(env: &dyn Env) -> Result<Self, Vec<String>> {
        let mut r = Reader::new(env);
        let mut settings = Self::read(&mut r);
        settings.effective = r.effective();
        if r.problems.is_empty() {
            Ok(settings)
        } else {
            Err(r.problems)
        }
    }

    fn read(r: &mut Reader<'_>) -> Self {
        let database_url = read_database_url(r);
        let telnyx_public_key = read_public_key(r);
        let telnyx_verify_signatures = r.boolean(&t::TELNYX_VERIFY_SIGNATURES);
        if telnyx_verify_signatures && r.raw(&t::TELNYX_PUBLIC_KEY).is_none() {
            r.problems.push(
                "TELNYX_PUBLIC_KEY is not set: webhooks cannot be verified; accepted: the account's base64 Ed25519 public key \
                 (or TELNYX_VERIFY_SIGNATURES=false for local work only)"
                    .to_owned(),
            );
        }
        let (greeting, recording_notice) = read_texts(r);
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            database_max_connections: r.int(
                &t::DATABASE_MAX_CONNECTIONS,
                default_pool_size(&database_url),
            ),
            bind_addr: read_bind_addr(r),
            webhook_base_url: read_base_url(r),
            telnyx_public_key,
            telnyx_verify_signatures,
            telnyx_signature_tolerance: r.duration(&t::TELNYX_SIGNATURE_TOLERANCE),
            telnyx_api_key: r.secret(&t::TELNYX_API_KEY),
            call_center_number: read_number(r),
            telnyx_outbound_profile_id: r.optional(&t::TELNYX_OUTBOUND_PROFILE_ID),
            max_dial_attempts: r.int(&t::CALL_CENTER_MAX_DIAL_ATTEMPTS, 2),
            dial_timeout: r.duration(&t::CALL_CENTER_DIAL_TIMEOUT),
            voicemail_enabled: r.boolean(&t::CALL_CENTER_VOICEMAIL_ENABLED),
            recording_enabled: r.boolean(&t::CALL_CENTER_RECORDING_ENABLED),
            heartbeat_ttl: r.duration(&t::CALL_CENTER_AGENT_HEARTBEAT_TTL),
            pause_reasons: read_pause_reasons(r),
            admin_token: read_admin_token(r),
            url_secrets: read_url_secrets(r),
            greeting,
            recording_notice,
            voicemail_max_length: r.duration(&t::CALL_CENTER_VOICEMAIL_MAX_LENGTH),
            max_agents_per_round: r.int(&t::CALL_CENTER_MAX_AGENTS_PER_ROUND, 50),
            retention_days: read_retention(r),
            service_level: r.duration(&t::CALL_CENTER_SERVICE_LEVEL_SECONDS),
            log_format: match r.choice(&t::LOG_FORMAT) {
                "json" => LogFormat::Json,
                _ => LogFormat::Human,
            },
            log_filter: r.text(&t::RUST_LOG),
            http_body_limit: usize::try_from(r.int(&t::HTTP_BODY_LIMIT_BYTES, 65_536_u32))
                .unwrap_or(65_536),
            http_request_timeout: r.duration(&t::HTTP_REQUEST_TIMEOUT),
            http_workers: usize::try_from(
                r.int(&t::HTTP_WORKERS, u32::try_from(cpus).unwrap_or(2)),
            )
            .unwrap_or(2),
            auth_failure_limit: r.int(&t::AUTH_FAILURE_LIMIT, 20),
            trusted_proxies: read_trusted_proxies(r),
            max_call_length: r.duration(&t::CALL_CENTER_MAX_CALL_SECONDS),
            wrap_up: r.duration(&t::CALL_CENTER_WRAP_UP_SECONDS),
            queue: read_queue(r),
            telnyx_api_base_url: read_api_base_url(r),
            matcher_interval: r.duration(&t::CALL_CENTER_MATCHER_INTERVAL_MS),
            webhook_deadline: r.duration(&t::WEBHOOK_DEADLINE_MS),
            statement_timeout: r.duration(&t::DATABASE_STATEMENT_TIMEOUT_MS),
            spool_dir: read_spool_dir(r, &database_url),
            spool_max_bytes: r
                .int(&t::CALL_CENTER_SPOOL_MAX_BYTES, 67_108_864_i64)
                .unsigned_abs(),
            audit_sink: match r.choice(&t::CALL_CENTER_AUDIT_SINK) {
                "null" => AuditSinkKind::Null,
                _ => AuditSinkKind::Chain,
            },
            audit_seal_interval: r.duration(&t::CALL_CENTER_AUDIT_SEAL_INTERVAL_MS),
            database_url,
            effective: Vec::new(),
        }
    }

    /// The effective configuration, secrets redacted, one `NAME=value` per setting, in the
    /// order of the settings table.
    #[must_use]
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        self.effective.clone()
    }

    /// The flow settings these values describe.
    ///
    /// # Errors
    /// When a value the flow checks again is out of range (validated already).
    pub fn flow(&self) -> Result<call_center::FlowSettings, call_center::SettingsError> {
        let texts = call_center::Texts::english(&self.greeting, &self.recording_notice)?;
        let mut flow = call_center::FlowSettings::new(
            self.max_dial_attempts,
            seconds(self.dial_timeout),
            self.voicemail_enabled,
            self.recording_enabled,
            texts,
        )?;
        flow.max_agents_per_round = self.max_agents_per_round;
        flow.max_call_length =
            chrono::Duration::from_std(self.max_call_length).unwrap_or(flow.max_call_length);
        flow.wrap_up = chrono::Duration::from_std(self.wrap_up).unwrap_or(flow.wrap_up);
        flow.queue = self.queue.clone();
        flow.voicemail_max_length = texml::MaxLength::new(seconds(self.voicemail_max_length))
            .map_err(|source| call_center::SettingsError::Texml {
                name: "CALL_CENTER_VOICEMAIL_MAX_LENGTH",
                source,
            })?;
        Ok(flow)
    }
}

/// Whole seconds of a configured duration (configured durations are whole seconds within
/// `u32`).
#[must_use]
pub fn seconds(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn read_database_url(r: &mut Reader<'_>) -> String {
    let url = r
        .raw(&t::DATABASE_URL)
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    let shown = store::redact_url(&url);
    if store::Backend::of(&url).is_err() {
        r.problem(&t::DATABASE_URL, &shown, "unsupported");
    }
    r.show(&t::DATABASE_URL, shown);
    url
}

/// `TRUSTED_PROXIES`: addresses and CIDR blocks (an address alone is a /32 or /128).
/// `TRUST_X_FORWARDED_FOR=true`, which it replaces, is refused so that a deployment relying
/// on it does not silently lose its proxy setting (`false` changes nothing and is ignored).
fn read_trusted_proxies(r: &mut Reader<'_>) -> Vec<ipnet::IpNet> {
    let retired = r.raw_named("TRUST_X_FORWARDED_FOR");
    if let Some(old) = retired.filter(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        )
    }) {
        r.problems.push(format!(
            "TRUST_X_FORWARDED_FOR={old:?}: no longer read; accepted: TRUSTED_PROXIES, the \
             addresses or CIDR blocks of the proxies in front of the server"
        ));
    }
    let raw = r.text(&t::TRUSTED_PROXIES);
    let mut nets = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = item
            .parse::<ipnet::IpNet>()
            .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(net) => nets.push(net),
            Err(_) => r.problem(&t::TRUSTED_PROXIES, item, "not an IP address or CIDR block"),
        }
    }
    nets
}

/// `CALL_CENTER_SPOOL_DIR`, by default `spool/` beside the SQLite file (so each database
/// file has its own), or `data/spool` with PostgreSQL.
fn read_spool_dir(r: &mut Reader<'_>, database_url: &str) -> std::path::PathBuf {
    let dir = r.raw(&t::CALL_CENTER_SPOOL_DIR).map_or_else(
        || default_spool_dir(database_url),
        |d| std::path::PathBuf::from(d.trim()),
    );
    r.show(&t::CALL_CENTER_SPOOL_DIR, dir.display().to_string());
    dir
}

fn default_spool_dir(database_url: &str) -> std::path::PathBuf {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|path| !path.is_empty() && !path.starts_with(':'));
    match file.and_then(|f| std::path::Path::new(f).parent()) {
        Some(parent) => parent.join("spool"),
        None => std::path::PathBuf::from(t::CALL_CENTER_SPOOL_DIR.default),
    }
}

fn read_bind_addr(r: &mut Reader<'_>) -> SocketAddr {
    let raw = r.text(&t::BIND_ADDR);
    raw.trim().parse().unwrap_or_else(|_| {
        r.problem(&t::BIND_ADDR, &raw, "not an address");
        SocketAddr::from(([127, 0, 0, 1], 8080))
    })
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

fn read_queue(r: &mut Reader<'_>) -> call_center::QueueSettings {
    let strategy = match r.choice(&t::CALL_CENTER_QUEUE_STRATEGY) {
        "longest-idle" => call_center::QueueStrategy::LongestIdle,
        _ => call_center::QueueStrategy::RingAll,
    };
    let hold_music = r.optional(&t::CALL_CENTER_HOLD_MUSIC_URL).and_then(|u| {
        let parsed = texml::Url::parse(&u).ok();
        if parsed.is_none() {
            r.problem(
                &t::CALL_CENTER_HOLD_MUSIC_URL,
                &u,
                "not an absolute http(s) URL",
            );
        }
        parsed
    });
    call_center::QueueSettings {
        hold_music,
        position_interval: chrono_duration(r.duration(&t::CALL_CENTER_POSITION_INTERVAL_SECONDS)),
        max_wait: chrono_duration(r.duration(&t::CALL_CENTER_MAX_WAIT_SECONDS)),
        no_answer_delay: chrono_duration(r.duration(&t::CALL_CENTER_NO_ANSWER_DELAY_SECONDS)),
        misses_to_pause: r.int(&t::CALL_CENTER_MISSES_TO_PAUSE, 3),
        strategy,
        reservation_ttl: chrono_duration(r.duration(&t::CALL_CENTER_RESERVATION_SECONDS)),
        ..call_center::QueueSettings::default()
    }
}

fn read_api_base_url(r: &mut Reader<'_>) -> String {
    let url = r.text(&t::TELNYX_API_BASE_URL);
    if texml::Url::parse(&url).is_err() {
        r.problem(&t::TELNYX_API_BASE_URL, &url, "not an absolute http(s) URL");
    }
    url.trim_end_matches('/').to_owned()
}

fn read_base_url(r: &mut Reader<'_>) -> String {
    let url = r.text(&t::WEBHOOK_BASE_URL);
    if call_center::Urls::new(&url, call_center::UrlKeys::random()).is_err() {
        r.problem(&t::WEBHOOK_BASE_URL, &url, "not an absolute URL");
    }
    url
}

fn read_public_key(r: &mut Reader<'_>) -> Option<[u8; 32]> {
    let raw = r.raw(&t::TELNYX_PUBLIC_KEY);
    r.show(
        &t::TELNYX_PUBLIC_KEY,
        if raw.is_some() { "(set)" } else { "(unset)" },
    );
    let key = decode_key(&raw?);
    if key.is_none() {
        r.problem(&t::TELNYX_PUBLIC_KEY, "<redacted>", "not a key");
    }
    key
}

fn read_number(r: &mut Reader<'_>) -> Option<String> {
    let number = r.optional(&t::CALL_CENTER_NUMBER);
    if let Some(n) = &number
        && texml::PhoneNumber::new(n.as_str()).is_err()
    {
        r.problem(&t::CALL_CENTER_NUMBER, n, "not E.164");
    }
    number
}

fn read_admin_token(r: &mut Reader<'_>) -> Option<Secret> {
    let token = r.secret(&t::CALL_CENTER_ADMIN_TOKEN);
    if token.as_ref().is_some_and(|t| t.expose().len() < 16) {
        r.problem(&t::CALL_CENTER_ADMIN_TOKEN, "<redacted>", "too short");
    }
    if token.is_none() {
        r.show(&t::CALL_CENTER_ADMIN_TOKEN, "(unset: generated at startup)");
    }
    token
}

fn read_url_secrets(r: &mut Reader<'_>) -> Vec<[u8; 32]> {
    let Some(raw) = r.secret(&t::CALL_CENTER_URL_SECRET) else {
        r.show(&t::CALL_CENTER_URL_SECRET, "(unset: kept in the database)");
        return Vec::new();
    };
    let keys: Option<Vec<[u8; 32]>> = raw.expose().split(',').map(decode_key).collect();
    keys.unwrap_or_else(|| {
        r.problem(
            &t::CALL_CENTER_URL_SECRET,
            "<redacted>",
            "not base64 of 32 bytes",
        );
        Vec::new()
    })
}

fn read_texts(r: &mut Reader<'_>) -> (String, String) {
    let greeting = r.text(&t::CALL_CENTER_GREETING);
    let notice = r.text(&t::CALL_CENTER_RECORDING_NOTICE);
    if let Err(e) = call_center::Texts::english(&greeting, &notice) {
        r.problems.push(format!(
            "{e}; accepted: plain text without control characters"
        ));
    }
    (greeting, notice)
}

fn read_pause_reasons(r: &mut Reader<'_>) -> Vec<agents::PauseReason> {
    let spec = &t::CALL_CENTER_PAUSE_REASONS;
    let raw = r.text(spec);
    let mut reasons = Vec::new();
    for code in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match agents::PauseReason::parse(code) {
            Ok(reason) if !reasons.contains(&reason) => reasons.push(reason),
            Ok(_) => {}
            Err(e) => r.problem(spec, &raw, &format!("{code:?}: {e}")),
        }
    }
    if reasons.is_empty() {
        r.problem(spec, &raw, "names no reason");
    }
    reasons
}

fn read_retention(r: &mut Reader<'_>) -> Option<u32> {
    let spec = &t::CALL_CENTER_RETENTION_DAYS;
    let raw = r.text(spec);
    if raw.trim().eq_ignore_ascii_case("off") {
        return None;
    }
    match raw.trim().parse::<u32>() {
        Ok(days) if (1..=36_500).contains(&days) => Some(days),
        _ => {
            r.problem(spec, &raw, "not a number of days");
            None
        }
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
            (2, Duration::from_secs(30), Duration::from_secs(60))
        );
        assert!(s.voicemail_enabled && s.recording_enabled);
        assert_eq!(s.telnyx_signature_tolerance, Duration::from_secs(300));
        assert_eq!(s.audit_seal_interval, Duration::from_millis(500));
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
    fn pause_reasons_default_to_the_agents_crate_list_and_refuse_bad_codes() {
        let s = Settings::from_env(&env(&[])).unwrap();
        let got: Vec<&str> = s
            .pause_reasons
            .iter()
            .map(agents::PauseReason::as_str)
            .collect();
        assert_eq!(got, agents::DEFAULT_PAUSE_REASONS);
        let s = Settings::from_env(&env(&[(
            "CALL_CENTER_PAUSE_REASONS",
            " coaching, break,break ",
        )]))
        .unwrap();
        let got: Vec<&str> = s
            .pause_reasons
            .iter()
            .map(agents::PauseReason::as_str)
            .collect();
        assert_eq!(got, ["coaching", "break"]);
        for bad in ["Lunch", " , ", "a b"] {
            let err = Settings::from_env(&env(&[("CALL_CENTER_PAUSE_REASONS", bad)]))
                .unwrap_err()
                .join("; ");
            assert!(err.contains("CALL_CENTER_PAUSE_REASONS"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn env_example_is_generated_from_the_settings_table() {
        let committed = include_str!("../../../../.env.example");
        assert_eq!(
            committed,
            table::env_example(),
            ".env.example differs from the settings table: run `cargo run -p callcenter -- config example > .env.example`"
        );
    }

    #[test]
    fn every_setting_is_read_and_shown_by_config_check() {
        let s = Settings::from_env(&env(&[])).unwrap();
        let shown: Vec<&str> = s.describe().iter().map(|(n, _)| *n).collect();
        let all: Vec<&str> = table::ALL.iter().map(|spec| spec.name).collect();
        assert_eq!(shown, all);
    }

    #[test]
    fn keys_are_32_byte_base64() {
        assert!(decode_key("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").is_some());
        assert!(decode_key("dG9vIHNob3J0").is_none());
        assert!(decode_key("not base64!").is_none());
    }
}
