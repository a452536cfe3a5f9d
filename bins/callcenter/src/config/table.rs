//! Every setting, once: its variable, default, accepted values, unit and description. This
//! table drives reading ([`Reader`]), `config check` (the effective values, secrets
//! redacted) and `.env.example` (`callcenter config example`, checked by a test).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Env, Secret};

/// What a setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number in `min..=max`, in `unit`.
    Int {
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
        /// What the number counts.
        unit: Unit,
    },
    /// `true` or `false` (also 1/0, yes/no, on/off).
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text (checked by the code that reads it, with `accepted` saying what passes).
    Text(&'static str),
    /// A secret: never printed.
    Secret(&'static str),
}

/// The unit of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Seconds (read as a [`Duration`]).
    Seconds,
    /// Milliseconds (read as a [`Duration`]).
    Milliseconds,
    /// Bytes.
    Bytes,
}

/// Where a setting is listed in `.env.example`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// The contract's variables (http-contract.md section 6).
    Contract,
    /// The call flow and the queue of callers.
    Flow,
    /// Operations: logs, HTTP, limits, jobs.
    Operations,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The variable.
    pub name: &'static str,
    /// Its default as written in `.env.example`; empty when unset by default.
    pub default: &'static str,
    /// When the default depends on something else, what it depends on (the line is then
    /// commented out in `.env.example`).
    pub computed: Option<&'static str>,
    /// What it accepts.
    pub kind: Kind,
    /// What it does (one or more sentences).
    pub doc: &'static str,
    /// Where it is listed.
    pub section: Section,
}

impl Spec {
    /// What is accepted, in words.
    #[must_use]
    pub fn accepted(&self) -> String {
        match self.kind {
            Kind::Int { min, max, unit } => {
                let unit = match unit {
                    Unit::Count => "",
                    Unit::Seconds => " seconds",
                    Unit::Milliseconds => " milliseconds",
                    Unit::Bytes => " bytes",
                };
                format!("{min}..={max}{unit}")
            }
            Kind::Bool => "true or false".to_owned(),
            Kind::Choice(words) => words.join(" or "),
            Kind::Text(what) | Kind::Secret(what) => what.to_owned(),
        }
    }
}

/// Reads settings from an [`Env`], collecting one line per problem and the effective
/// value of each setting (secrets redacted) for `config check`.
pub struct Reader<'a> {
    env: &'a dyn Env,
    /// One line per problem: `NAME="value": what is wrong; accepted: …`.
    pub problems: Vec<String>,
    effective: BTreeMap<&'static str, String>,
}

impl<'a> Reader<'a> {
    /// A reader over `env`.
    #[must_use]
    pub fn new(env: &'a dyn Env) -> Self {
        Self {
            env,
            problems: Vec::new(),
            effective: BTreeMap::new(),
        }
    }

    /// The raw value, if set and not blank.
    #[must_use]
    pub fn raw(&self, spec: &Spec) -> Option<String> {
        self.env.get(spec.name)
    }

    /// The raw value of a variable outside the table (a retired one), if set.
    #[must_use]
    pub fn raw_named(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    /// Records a problem with `spec`'s value.
    pub fn problem(&mut self, spec: &Spec, shown: &str, what: &str) {
        self.problems.push(format!(
            "{}={shown:?}: {what}; accepted: {}",
            spec.name,
            spec.accepted()
        ));
    }

    /// Records what `config check` prints for `spec`.
    pub fn show(&mut self, spec: &Spec, value: impl Into<String>) {
        self.effective.insert(spec.name, value.into());
    }

    /// The effective values in table order.
    #[must_use]
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        ALL.iter()
            .filter_map(|s| self.effective.get(s.name).map(|v| (s.name, v.clone())))
            .collect()
    }

    /// A whole number within the spec's range; `default` when unset or invalid.
    pub fn int<T>(&mut self, spec: &Spec, default: T) -> T
    where
        T: TryFrom<i64> + Into<i64> + Copy,
    {
        let Kind::Int { min, max, .. } = spec.kind else {
            unreachable_kind(spec);
            return default;
        };
        let value = match self.raw(spec) {
            None => default,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => T::try_from(v).unwrap_or(default),
                Ok(_) => {
                    self.problem(spec, &raw, "out of range");
                    default
                }
                Err(_) => {
                    self.problem(spec, &raw, "not a whole number");
                    default
                }
            },
        };
        self.show(spec, value.into().to_string());
        value
    }

    /// A number of the spec's time unit, as a [`Duration`].
    pub fn duration(&mut self, spec: &Spec) -> Duration {
        let default = spec.default.parse::<i64>().unwrap_or(0);
        let n = self.int(spec, default).unsigned_abs();
        match spec.kind {
            Kind::Int {
                unit: Unit::Milliseconds,
                ..
            } => Duration::from_millis(n),
            _ => Duration::from_secs(n),
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, spec: &Spec) -> bool {
        let default = spec.default == "true";
        let value = match self.raw(spec) {
            None => default,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.problem(spec, &raw, "not a boolean");
                    default
                }
            },
        };
        self.show(spec, value.to_string());
        value
    }

    /// One of the spec's words.
    pub fn choice(&mut self, spec: &Spec) -> &'static str {
        let Kind::Choice(words) = spec.kind else {
            unreachable_kind(spec);
            return spec.default;
        };
        let value = match self.raw(spec) {
            None => spec.default,
            Some(raw) => {
                let lower = raw.trim().to_ascii_lowercase();
                words
                    .iter()
                    .copied()
                    .find(|w| *w == lower)
                    .unwrap_or_else(|| {
                        self.problem(spec, &raw, "unknown");
                        spec.default
                    })
            }
        };
        self.show(spec, value);
        value
    }

    /// Text (the default when unset). The caller checks it and shows it.
    pub fn text(&mut self, spec: &Spec) -> String {
        let value = self.raw(spec).unwrap_or_else(|| spec.default.to_owned());
        self.show(spec, value.clone());
        value
    }

    /// Optional text (`None` when unset).
    pub fn optional(&mut self, spec: &Spec) -> Option<String> {
        let value = self.raw(spec);
        self.show(spec, value.clone().unwrap_or_else(|| "(unset)".to_owned()));
        value
    }

    /// A secret (`None` when unset); shown as `*** (set)`.
    pub fn secret(&mut self, spec: &Spec) -> Option<Secret> {
        let value = self.raw(spec).map(Secret::new);
        let shown = if value.is_some() {
            "*** (set)"
        } else {
            "(unset)"
        };
        self.show(spec, shown);
        value
    }
}

/// A reader method used on a spec of another kind: a programming error, reported as a
/// configuration problem rather than a panic.
fn unreachable_kind(spec: &Spec) {
    tracing::error!(
        setting = spec.name,
        "a setting was read as a kind it is not"
    );
}

const fn int(min: i64, max: i64, unit: Unit) -> Kind {
    Kind::Int { min, max, unit }
}

macro_rules! specs {
    ($($(#[$doc:meta])* $id:ident = $section:ident $name:literal default $default:literal $(computed $computed:literal)? : $kind:expr, $text:literal;)+) => {
        $(
            $(#[$doc])*
            pub const $id: Spec = Spec {
                name: $name,
                default: $default,
                computed: specs!(@computed $($computed)?),
                kind: $kind,
                doc: $text,
                section: Section::$section,
            };
        )+

        /// Every setting, in `.env.example` order.
        pub const ALL: &[Spec] = &[$($id),+];
    };
    (@computed) => { None };
    (@computed $c:literal) => { Some($c) };
}

specs! {
    DATABASE_URL = Contract "DATABASE_URL" default "sqlite://data/callcenter.db":
        Kind::Text("sqlite:<path> or postgres://..."),
        "Database: sqlite:<path> (the file and its folder are created on first run) or \
         postgres://user:password@host:5432/db (production; required for several instances).";
    BIND_ADDR = Contract "BIND_ADDR" default "127.0.0.1:8080":
        Kind::Text("host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"),
        "Listen address.";
    WEBHOOK_BASE_URL = Contract "WEBHOOK_BASE_URL" default "http://127.0.0.1:8080":
        Kind::Text("http(s)://host[:port][/path]"),
        "Public base URL Telnyx reaches this server at; written into every TeXML document as \
         absolute URLs under /api/call-center. A trailing slash makes no difference.";
    TELNYX_PUBLIC_KEY = Contract "TELNYX_PUBLIC_KEY" default "":
        Kind::Text("base64 of a 32-byte Ed25519 public key"),
        "The account's Ed25519 public key: Mission Control > Keys & Credentials > Public Key. \
         Required while TELNYX_VERIFY_SIGNATURES is true: the server refuses to start without it.";
    TELNYX_VERIFY_SIGNATURES = Contract "TELNYX_VERIFY_SIGNATURES" default "true": Kind::Bool,
        "false switches webhook signature verification off: local work only (the server then \
         warns at startup, on /readyz and in /metrics). `make run` does this for you when no key \
         is configured.";
    TELNYX_SIGNATURE_TOLERANCE = Contract "TELNYX_SIGNATURE_TOLERANCE" default "300":
        int(1, 3600, Unit::Seconds),
        "Clock skew accepted on telnyx-timestamp, past or future.";
    TELNYX_API_KEY = Contract "TELNYX_API_KEY" default "": Kind::Secret("a Telnyx API key"),
        "Telnyx REST API key (secret; never logged). With it, a caller for whom agents were \
         reserved is redirected to the offer at once (REST update-call, the push); without it \
         (or when a push fails) the caller's next hold-loop request collects it.";
    CALL_CENTER_NUMBER = Contract "CALL_CENTER_NUMBER" default "":
        Kind::Text("+ and 2 to 15 digits (E.164)"),
        "The public number. Informational.";
    TELNYX_OUTBOUND_PROFILE_ID = Contract "TELNYX_OUTBOUND_PROFILE_ID" default "":
        Kind::Text("an outbound voice profile id"),
        "Outbound voice profile id for agent legs. Informational.";
    CALL_CENTER_MAX_DIAL_ATTEMPTS = Contract "CALL_CENTER_MAX_DIAL_ATTEMPTS" default "2":
        int(1, 10, Unit::Count),
        "Offer rounds a caller gets (each rings the agents reserved for it) before voicemail \
         (or goodbye).";
    CALL_CENTER_DIAL_TIMEOUT = Contract "CALL_CENTER_DIAL_TIMEOUT" default "30":
        int(5, 120, Unit::Seconds),
        "Ring time per round (Telnyx's <Dial timeout> range).";
    CALL_CENTER_VOICEMAIL_ENABLED = Contract "CALL_CENTER_VOICEMAIL_ENABLED" default "true":
        Kind::Bool,
        "Voicemail after the last round (false: a goodbye and hang-up).";
    CALL_CENTER_RECORDING_ENABLED = Contract "CALL_CENTER_RECORDING_ENABLED" default "true":
        Kind::Bool,
        "Record agent calls (record-from-answer-dual) and play the recording notice.";
    CALL_CENTER_AGENT_HEARTBEAT_TTL = Contract "CALL_CENTER_AGENT_HEARTBEAT_TTL" default "60":
        int(5, 86_400, Unit::Seconds),
        "How long a heartbeat keeps an agent online.";
    CALL_CENTER_ADMIN_TOKEN = Contract "CALL_CENTER_ADMIN_TOKEN" default "":
        Kind::Secret("at least 16 characters"),
        "Bearer token for the JSON API (secret). Unset: a random one is generated at startup \
         and printed once to the terminal. Set it when running several instances (they must \
         share it).";
    CALL_CENTER_URL_SECRET = Contract "CALL_CENTER_URL_SECRET" default "":
        Kind::Secret("base64 of 32 random bytes; several comma-separated: the first signs, all verify"),
        "Key of the MAC on every URL the server writes into TeXML (secret). Unset: one is \
         generated once and kept in the database, so every instance shares it. To rotate \
         without refusing a URL in flight: NEW appended (OLD,NEW), then NEW first (NEW,OLD), \
         then OLD dropped a day later, each step a rolling restart.";
    CALL_CENTER_GREETING = Flow "CALL_CENTER_GREETING"
        default "Thank you for calling. Please hold while we connect you to an agent.":
        Kind::Text("plain text without control characters"),
        "What the caller hears first.";
    CALL_CENTER_RECORDING_NOTICE = Flow "CALL_CENTER_RECORDING_NOTICE"
        default "This call may be recorded for quality and training purposes.":
        Kind::Text("plain text without control characters"),
        "Played after the greeting when recording is on.";
    CALL_CENTER_VOICEMAIL_MAX_LENGTH = Flow "CALL_CENTER_VOICEMAIL_MAX_LENGTH" default "120":
        int(1, 14_400, Unit::Seconds),
        "Longest voicemail.";
    CALL_CENTER_MAX_AGENTS_PER_ROUND = Flow "CALL_CENTER_MAX_AGENTS_PER_ROUND" default "50":
        int(1, 200, Unit::Count),
        "Most agents rung at once in one round (longest idle first).";
    CALL_CENTER_WRAP_UP_SECONDS = Flow "CALL_CENTER_WRAP_UP_SECONDS" default "0":
        int(0, 3600, Unit::Seconds),
        "After-call work: once an answered call's agent leg ends, the agent is offered no \
         call for this long (status busy, wrap_up_until in the agent object) unless it ends \
         the wrap-up early with POST /agents/{id}/ready. 0: free at once.";
    CALL_CENTER_QUEUE_STRATEGY = Flow "CALL_CENTER_QUEUE_STRATEGY" default "ring-all":
        Kind::Choice(&["ring-all", "longest-idle"]),
        "Which eligible agents a match reserves for the caller at the head of the queue: \
         ring-all (all of them, up to CALL_CENTER_MAX_AGENTS_PER_ROUND; first answer wins) or \
         longest-idle (the one idle longest).";
    CALL_CENTER_MAX_WAIT_SECONDS = Flow "CALL_CENTER_MAX_WAIT_SECONDS" default "600":
        int(1, 86_400, Unit::Seconds),
        "The longest a caller waits in the queue before voicemail (or goodbye); checked at \
         each hold segment.";
    CALL_CENTER_NO_ANSWER_DELAY_SECONDS = Flow "CALL_CENTER_NO_ANSWER_DELAY_SECONDS"
        default "10": int(0, 3600, Unit::Seconds),
        "After an agent misses an offer (no answer, declined, failed), it is offered no call \
         for this long.";
    CALL_CENTER_MISSES_TO_PAUSE = Flow "CALL_CENTER_MISSES_TO_PAUSE" default "3":
        int(0, 100, Unit::Count),
        "Offers missed in a row that pause an agent with reason missed-calls (audited; the \
         agent or an admin resumes it). 0: never.";
    CALL_CENTER_POSITION_INTERVAL_SECONDS = Flow "CALL_CENTER_POSITION_INTERVAL_SECONDS"
        default "30": int(0, 3600, Unit::Seconds),
        "A waiting caller hears its place in line (and the expected wait, from the last 15 \
         minutes' answers) when it joins, then at most this often and only when the place \
         improved. 0: never.";
    CALL_CENTER_HOLD_MUSIC_URL = Flow "CALL_CENTER_HOLD_MUSIC_URL" default ""
        computed "the server's own 10 s piece at WEBHOOK_BASE_URL/api/call-center/hold-music.wav":
        Kind::Text("an absolute http(s) URL of an MP3 or WAV"),
        "One hold segment: played once per hold-loop request. Keep it short (10 to 20 s): \
         without a push, a reserved offer waits for the end of the segment.";
    CALL_CENTER_RESERVATION_SECONDS = Flow "CALL_CENTER_RESERVATION_SECONDS" default "30":
        int(5, 600, Unit::Seconds),
        "A reservation the caller has not taken up within this long (or a delivered <Dial> \
         not reported within its ring time plus this) is withdrawn: the agents are freed and \
         the caller keeps its place. Longer than one hold segment.";
    CALL_CENTER_PAUSE_REASONS = Flow "CALL_CENTER_PAUSE_REASONS"
        default "break,lunch,meeting,training,other":
        Kind::Text("comma-separated codes of 1 to 32 lowercase letters, digits or '-'"),
        "The reasons an agent may give for a pause (status paused). A paused agent stays \
         online and is offered no call until it asks for available again.";
    CALL_CENTER_MAX_CALL_SECONDS = Flow "CALL_CENTER_MAX_CALL_SECONDS" default "18000":
        int(600, 86_400, Unit::Seconds),
        "Longer than any call lasts without a word from Telnyx (Telnyx cuts a bridged <Dial> at \
         4 h by default). The reconciler closes a call silent for longer (audited as \
         reconciled) and frees the agent it held.";
    CALL_CENTER_RETENTION_DAYS = Operations "CALL_CENTER_RETENTION_DAYS" default "off":
        Kind::Text("off or 1..=36500"),
        "Days to keep recordings and transcriptions; older ones are redacted hourly (audited).";
    CALL_CENTER_SERVICE_LEVEL_SECONDS = Operations "CALL_CENTER_SERVICE_LEVEL_SECONDS"
        default "20": int(1, 3600, Unit::Seconds),
        "Service-level threshold for reports.";
    CALL_CENTER_AUDIT_SEAL_INTERVAL_MS = Operations "CALL_CENTER_AUDIT_SEAL_INTERVAL_MS"
        default "500": int(10, 600_000, Unit::Milliseconds),
        "How often pending audit entries are sealed into the hash chain.";
    CALL_CENTER_AUDIT_SINK = Operations "CALL_CENTER_AUDIT_SINK" default "chain":
        Kind::Choice(&["chain", "null"]),
        "null drops audit events: for measuring what auditing costs, never in production.";
    WEBHOOK_DEADLINE_MS = Operations "WEBHOOK_DEADLINE_MS" default "3000":
        int(100, 25_000, Unit::Milliseconds),
        "The longest a Telnyx webhook is worked on, well below Telnyx's own webhook timeout. \
         Past it an instruction request gets the fallback document at once (an apology and \
         voicemail) and a status callback is kept in the spool and acknowledged.";
    DATABASE_STATEMENT_TIMEOUT_MS = Operations "DATABASE_STATEMENT_TIMEOUT_MS" default "10000":
        int(100, 3_600_000, Unit::Milliseconds),
        "PostgreSQL statement_timeout of every connection: a statement stuck on a lock or a \
         stalled server fails after this long instead of holding its connection. On SQLite, \
         a write waits at most 3 s for its turn.";
    CALL_CENTER_SPOOL_DIR = Operations "CALL_CENTER_SPOOL_DIR" default "data/spool"
        computed "spool/ beside the SQLite file; data/spool with PostgreSQL":
        Kind::Text("a folder path (created when missing)"),
        "Where status callbacks acknowledged to Telnyx but not yet stored wait (append-only \
         files, fsynced before the acknowledgement, replayed at start and every few seconds). \
         One folder per instance; an instance refuses to start on a folder another one holds.";
    CALL_CENTER_SPOOL_MAX_BYTES = Operations "CALL_CENTER_SPOOL_MAX_BYTES" default "67108864":
        int(65_536, 10_737_418_240, Unit::Bytes),
        "Largest spool. When full, a callback that cannot be stored is answered 503 (Telnyx \
         then retries or uses the failover URL), logged as an error and counted in \
         callcenter_spool_refused_total.";
    DATABASE_MAX_CONNECTIONS = Operations "DATABASE_MAX_CONNECTIONS" default "10"
        computed "4 on SQLite (one writer at a time; more connections only cost memory), 10 on PostgreSQL":
        int(1, 500, Unit::Count),
        "Database pool size.";
    TELNYX_API_BASE_URL = Operations "TELNYX_API_BASE_URL" default "https://api.telnyx.com":
        Kind::Text("an absolute http(s) URL"),
        "Where Telnyx's REST API is (the push: POST {base}/v2/texml/Accounts/{AccountSid}/Calls/{CallSid}). \
         Tests and the simulator point it at a fake on loopback.";
    CALL_CENTER_MATCHER_INTERVAL_MS = Operations "CALL_CENTER_MATCHER_INTERVAL_MS" default "250":
        int(20, 10_000, Unit::Milliseconds),
        "The matcher runs after every change this instance applies and at least this often \
         (changes made by other instances, wrap-ups and delays ending, reservations expiring).";
    LOG_FORMAT = Operations "LOG_FORMAT" default "human": Kind::Choice(&["human", "json"]),
        "json: one JSON object per line, with the request id of each request's lines.";
    RUST_LOG = Operations "RUST_LOG" default "info,sqlx=warn":
        Kind::Text("a tracing-subscriber EnvFilter"),
        "Log filter.";
    HTTP_BODY_LIMIT_BYTES = Operations "HTTP_BODY_LIMIT_BYTES" default "65536":
        int(1024, 10_485_760, Unit::Bytes),
        "Largest accepted request body. Larger bodies get 413.";
    HTTP_REQUEST_TIMEOUT = Operations "HTTP_REQUEST_TIMEOUT" default "30":
        int(1, 300, Unit::Seconds),
        "Time a client has to send a request's headers.";
    HTTP_WORKERS = Operations "HTTP_WORKERS" default "2" computed "the number of CPUs":
        int(1, 256, Unit::Count),
        "HTTP worker threads.";
    AUTH_FAILURE_LIMIT = Operations "AUTH_FAILURE_LIMIT" default "20":
        int(1, 100_000, Unit::Count),
        "Failed authentications per client address per minute before 429.";
    TRUSTED_PROXIES = Operations "TRUSTED_PROXIES" default "":
        Kind::Text("comma-separated IP addresses or CIDR blocks, e.g. 10.0.0.0/8,127.0.0.1"),
        "Reverse proxies in front of the server. A request from one of them is counted against \
         the rightmost X-Forwarded-For address that is not itself a trusted proxy; any other \
         request against its own peer address. Empty: X-Forwarded-For is never read. (Replaces \
         TRUST_X_FORWARDED_FOR.)";
}

/// The text of `.env.example`, from the table.
#[must_use]
pub fn env_example() -> String {
    let mut out = String::from(
        "# Call center for Telnyx: configuration. Copy to `.env` (read at startup when present;\n\
         # real environment variables win). Every variable is optional; the default is shown.\n\
         # Invalid values stop startup with one line naming the variable and what is accepted.\n\
         # `callcenter config check` prints the effective configuration (secrets redacted).\n\
         # Generated from the settings table: `callcenter config example > .env.example`.\n",
    );
    let mut section = None;
    for spec in ALL {
        if section != Some(spec.section) {
            section = Some(spec.section);
            let title = match spec.section {
                Section::Contract => {
                    "Contract variables (../shared/docs/http-contract.md, section 6)"
                }
                Section::Flow => "Call flow",
                Section::Operations => "Operations",
            };
            let _ = write!(out, "\n# --- {title} {}\n", "-".repeat(86 - title.len()));
        }
        out.push('\n');
        for line in wrap(&format!("{} Accepted: {}.", spec.doc, spec.accepted()), 88) {
            let _ = writeln!(out, "# {line}");
        }
        match spec.computed {
            Some(depends) => {
                let _ = writeln!(
                    out,
                    "# Default: {depends}.\n# {}={}",
                    spec.name, spec.default
                );
            }
            None => {
                let _ = writeln!(out, "{}={}", spec.name, spec.default);
            }
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last().map_or(0, String::len);
        if line > 0 && line + 1 + word.len() > width {
            lines.push(String::new());
        }
        if let Some(last) = lines.last_mut() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}
