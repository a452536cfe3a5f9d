//! Validated attribute and body values: ranged numbers, XML-safe text, absolute URLs,
//! digit sets and the closed keyword sets of TeXML.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::TexmlError;

/// True for characters XML 1.0 allows in a document (the `Char` production).
#[must_use]
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Rejects text that XML 1.0 cannot carry (the crate's one documented policy: reject).
pub(crate) fn check_xml_chars(what: &'static str, s: &str) -> Result<(), TexmlError> {
    match s.chars().enumerate().find(|(_, c)| !is_xml_char(*c)) {
        Some((position, c)) => Err(TexmlError::ForbiddenCharacter {
            what,
            code: u32::from(c),
            position,
        }),
        None => Ok(()),
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> TexmlError {
    TexmlError::InvalidValue {
        what,
        reason: reason.into(),
    }
}

/// Text that can be written into a document: any string without XML-forbidden characters.
///
/// ```
/// use texml::Text;
/// assert!(Text::new("Tom & Jerry <3").is_ok());
/// assert!(Text::new("bell \u{7}").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(String);

impl Text {
    /// Validates `s` for XML 1.0.
    ///
    /// # Errors
    /// [`TexmlError::ForbiddenCharacter`] when `s` holds a character XML 1.0 forbids.
    pub fn new(s: impl Into<String>) -> Result<Self, TexmlError> {
        let s = s.into();
        check_xml_chars("text", &s)?;
        Ok(Self(s))
    }

    /// Like [`Text::new`] but also refuses an empty or blank string.
    ///
    /// # Errors
    /// As [`Text::new`], plus [`TexmlError::InvalidValue`] for blank input.
    pub fn non_empty(what: &'static str, s: impl Into<String>) -> Result<Self, TexmlError> {
        let s = s.into();
        check_xml_chars(what, &s)?;
        if s.trim().is_empty() {
            return Err(invalid(what, "must not be empty"));
        }
        Ok(Self(s))
    }

    /// The text as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute `http` or `https` URL, kept in the normalised form of the `url` crate.
///
/// ```
/// use texml::Url;
/// let u = Url::parse("https://cc.example.com/api/call-center/dial-agents?attempt=1").unwrap();
/// assert_eq!(u.as_str(), "https://cc.example.com/api/call-center/dial-agents?attempt=1");
/// assert!(Url::parse("/relative").is_err());
/// assert!(Url::parse("ftp://example.com/x").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url(String);

impl Url {
    /// Parses and checks an absolute http(s) URL.
    ///
    /// # Errors
    /// [`TexmlError::InvalidUrl`] for relative URLs, other schemes or URLs without a host.
    pub fn parse(s: &str) -> Result<Self, TexmlError> {
        Self::parse_as("URL", s)
    }

    pub(crate) fn parse_as(what: &'static str, s: &str) -> Result<Self, TexmlError> {
        check_xml_chars(what, s)?;
        let parsed = url::Url::parse(s).map_err(|e| TexmlError::InvalidUrl {
            what,
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TexmlError::InvalidUrl {
                what,
                reason: format!("scheme {:?}", parsed.scheme()),
            });
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(TexmlError::InvalidUrl {
                what,
                reason: "no host".into(),
            });
        }
        Ok(Self(parsed.into()))
    }

    /// The normalised URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This URL (which has no query) with `pairs` as its query string, form-encoded. No
    /// re-parsing: encoding keeps the URL valid and its characters XML-safe.
    #[must_use]
    pub fn with_query<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = String::with_capacity(self.0.len() + 96);
        out.push_str(&self.0);
        let mut query = url::form_urlencoded::Serializer::new(String::with_capacity(96));
        query.extend_pairs(pairs);
        let query = query.finish();
        if !query.is_empty() {
            out.push(if self.0.contains('?') { '&' } else { '?' });
            out.push_str(&query);
        }
        Self(out)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! ranged {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal ..= $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u32);

        impl $name {
            /// Smallest accepted value.
            pub const MIN: u32 = $min;
            /// Largest accepted value.
            pub const MAX: u32 = $max;

            /// Checks the documented range.
            ///
            /// # Errors
            /// [`TexmlError::OutOfRange`] outside `MIN..=MAX`.
            pub fn new(value: u32) -> Result<Self, TexmlError> {
                Self::check(i64::from(value))
            }

            pub(crate) fn check(value: i64) -> Result<Self, TexmlError> {
                match u32::try_from(value) {
                    Ok(v) if (Self::MIN..=Self::MAX).contains(&v) => Ok(Self(v)),
                    _ => Err(TexmlError::OutOfRange {
                        what: $what,
                        value,
                        min: i64::from(Self::MIN),
                        max: i64::from(Self::MAX),
                    }),
                }
            }

            /// The value.
            #[must_use]
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<u32> for $name {
            type Error = TexmlError;
            fn try_from(value: u32) -> Result<Self, TexmlError> {
                Self::new(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

ranged!(
    /// `<Say loop>`: 0–10, 0 repeats forever.
    SayLoop, "Say loop", 0..=10
);
ranged!(
    /// `<Play loop>`: 0–1000 (Telnyx documents an integer; 0 repeats forever).
    PlayLoop, "Play loop", 0..=1000
);
ranged!(
    /// `<Pause length>`: 1–180 seconds.
    PauseLength, "Pause length", 1..=180
);
ranged!(
    /// `<Dial timeout>`: 5–120 seconds of ringing.
    DialTimeout, "Dial timeout", 5..=120
);
ranged!(
    /// `<Dial timeLimit>`: 60–14400 seconds.
    TimeLimit, "Dial timeLimit", 60..=14400
);
ranged!(
    /// `<Record maxLength>` and `<Dial recordMaxLength>`: 0–14400 seconds, 0 means no limit.
    MaxLength, "maxLength", 0..=14400
);
ranged!(
    /// `<Record timeout>`: seconds of silence before the recording stops, 0 = never.
    /// Telnyx gives no upper bound; this crate accepts up to 3600.
    RecordTimeout, "Record timeout", 0..=3600
);
ranged!(
    /// `<Gather numDigits|minDigits|maxDigits>`: 1–128.
    DigitCount, "Gather digit count", 1..=128
);
ranged!(
    /// `<Gather timeout>`: 1–120 seconds.
    GatherTimeout, "Gather timeout", 1..=120
);
ranged!(
    /// `<Conference maxParticipants>`: 2–250.
    MaxParticipants, "Conference maxParticipants", 2..=250
);
ranged!(
    /// `<Enqueue maxWaitTimeSecs>`: 1–14400 seconds.
    MaxWaitTime, "Enqueue maxWaitTimeSecs", 1..=14400
);

macro_rules! charset {
    ($(#[$doc:meta])* $name:ident, $what:literal, $allowed:expr, $desc:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks that `s` is non-empty and made only of the allowed characters.
            ///
            /// # Errors
            /// [`TexmlError::InvalidValue`] otherwise.
            pub fn new(s: impl Into<String>) -> Result<Self, TexmlError> {
                let s = s.into();
                let allowed: fn(char) -> bool = $allowed;
                if s.is_empty() || !s.chars().all(allowed) {
                    return Err(invalid($what, concat!("must be one or more of ", $desc)));
                }
                Ok(Self(s))
            }

            /// The characters.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

charset!(
    /// DTMF keys for `finishOnKey` and `validDigits`: `0-9`, `*`, `#`.
    DtmfKeys, "DTMF keys", |c| c.is_ascii_digit() || c == '*' || c == '#', "0-9 * #"
);
charset!(
    /// Digits to play or send: `0-9`, `*`, `#`, and `w` for a half-second wait.
    Digits, "digits", |c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'w'), "0-9 * # w"
);
charset!(
    /// A short keyword such as a ring tone country code (`us`, `uk`, `us-old`).
    Token, "token", |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'), "letters, digits, - _ ."
);

/// An E.164 phone number, `+` and 2 to 15 digits, as `<Number>` and `callerId` take it.
///
/// ```
/// use texml::PhoneNumber;
/// assert!(PhoneNumber::new("+13125550100").is_ok());
/// assert!(PhoneNumber::new("555-0100").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Validates the E.164 shape.
    ///
    /// # Errors
    /// [`TexmlError::InvalidValue`] when it is not `+` followed by 2–15 digits.
    pub fn new(s: impl Into<String>) -> Result<Self, TexmlError> {
        let s = s.into();
        let digits = s.strip_prefix('+').unwrap_or("");
        if !(2..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(
                "phone number",
                "must be E.164: + and 2 to 15 digits",
            ));
        }
        Ok(Self(s))
    }

    /// The number.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of a `<Sip>` noun: a `sip:` or `sips:` URI without whitespace.
///
/// Full RFC 3261 validation belongs to whoever registers SIP addresses (the agents crate);
/// this type guarantees what the document needs: the scheme, no blanks, XML-safe text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipAddress(String);

impl SipAddress {
    /// Checks the scheme and characters.
    ///
    /// # Errors
    /// [`TexmlError`] when the scheme is missing, the URI is blank after it, holds
    /// whitespace, is longer than 512 characters or holds XML-forbidden characters.
    pub fn new(s: impl Into<String>) -> Result<Self, TexmlError> {
        let s = s.into();
        check_xml_chars("SIP URI", &s)?;
        let lower = s.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("sips:")
            .or_else(|| lower.strip_prefix("sip:"));
        match rest {
            None => Err(invalid("SIP URI", "must start with sip: or sips:")),
            Some("") => Err(invalid("SIP URI", "has nothing after the scheme")),
            Some(_) if s.chars().any(char::is_whitespace) => {
                Err(invalid("SIP URI", "must not contain whitespace"))
            }
            Some(_) if s.chars().count() > 512 => {
                Err(invalid("SIP URI", "longer than 512 characters"))
            }
            Some(_) => Ok(Self(s)),
        }
    }

    /// The URI as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A keyword of one of TeXML's closed value sets.
pub trait Keyword: Sized + Copy + Ord + 'static {
    /// Every value, in the canonical order used when rendering sets.
    const ALL: &'static [Self];
    /// What the attribute is called in errors.
    const WHAT: &'static str;
    /// The spelling in a document.
    fn as_str(self) -> &'static str;
    /// Reads a spelling (exact match).
    fn from_keyword(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

macro_rules! keyword {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl Keyword for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            const WHAT: &'static str = $what;
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword!(
    /// HTTP method for callbacks and redirects. Prefer `Post`: Telnyx signs only the body.
    HttpMethod, "method" { Get => "GET", Post => "POST" }
);
keyword!(
    /// `<Dial record>` modes.
    DialRecord, "Dial record" {
        /// No recording (Telnyx's default).
        DoNotRecord => "do-not-record",
        /// Record from answer, one channel.
        RecordFromAnswer => "record-from-answer",
        /// Record from ringing, one channel.
        RecordFromRinging => "record-from-ringing",
        /// Record from answer, caller and agent on separate channels.
        RecordFromAnswerDual => "record-from-answer-dual",
        /// Record from ringing, two channels.
        RecordFromRingingDual => "record-from-ringing-dual",
    }
);
keyword!(
    /// Mono or dual-channel recordings (`recordingChannels`, `<Record channels>`).
    RecordingChannels, "recording channels" { Single => "single", Dual => "dual" }
);
keyword!(
    /// Events of `recordingStatusCallbackEvent`.
    RecordingEvent, "recording status callback event" {
        InProgress => "in-progress", Completed => "completed", Absent => "absent",
    }
);
keyword!(
    /// Events of a noun's `statusCallbackEvent` (`amd` and `dtmf` are Telnyx-only).
    CallProgressEvent, "status callback event" {
        Initiated => "initiated", Ringing => "ringing", Answered => "answered",
        Amd => "amd", Dtmf => "dtmf", Completed => "completed",
    }
);
keyword!(
    /// Events of `<Conference statusCallbackEvent>`.
    ConferenceEvent, "conference status callback event" {
        Start => "start", End => "end", Join => "join", Leave => "leave", Speaker => "speaker",
    }
);
keyword!(
    /// `<Reject reason>`.
    RejectReason, "Reject reason" { Rejected => "rejected", Busy => "busy" }
);
keyword!(
    /// `<Gather input>`.
    GatherInput, "Gather input" { Dtmf => "dtmf", Speech => "speech", DtmfSpeech => "dtmf speech" }
);
keyword!(
    /// `<Record format>` (Telnyx-only).
    RecordFormat, "Record format" { Mp3 => "mp3", Wav => "wav" }
);
keyword!(
    /// `<Record trim>`.
    Trim, "trim" { TrimSilence => "trim-silence", DoNotTrim => "do-not-trim" }
);
keyword!(
    /// `<Record transcriptionEngine>` (Telnyx-only): `A` is Google, `B` is Telnyx.
    TranscriptionEngine, "transcription engine" { A => "A", B => "B", Deepgram => "Deepgram" }
);
keyword!(
    /// `<Conference beep>`.
    ConferenceBeep, "Conference beep" {
        Yes => "true", No => "false", OnEnter => "onEnter", OnExit => "onExit",
    }
);
keyword!(
    /// `<Conference record>`.
    ConferenceRecord, "Conference record" {
        DoNotRecord => "do-not-record", RecordFromStart => "record-from-start",
    }
);

/// A non-empty set of keywords, rendered space-separated in canonical order.
///
/// ```
/// use texml::{CallProgressEvent as E, EventSet};
/// let set = EventSet::new([E::Completed, E::Initiated, E::Answered, E::Ringing]).unwrap();
/// assert_eq!(set.to_string(), "initiated ringing answered completed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventSet<K: Keyword> {
    set: BTreeSet<K>,
    rendered: String,
}

impl<K: Keyword> EventSet<K> {
    /// Builds a set; duplicates collapse.
    ///
    /// # Errors
    /// [`TexmlError::InvalidValue`] when `events` is empty.
    pub fn new(events: impl IntoIterator<Item = K>) -> Result<Self, TexmlError> {
        let set: BTreeSet<K> = events.into_iter().collect();
        if set.is_empty() {
            return Err(invalid(K::WHAT, "needs at least one event"));
        }
        let rendered = set.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" ");
        Ok(Self { set, rendered })
    }

    /// Reads a space-separated list.
    ///
    /// # Errors
    /// [`TexmlError::InvalidValue`] for an unknown event or an empty list.
    pub fn parse(s: &str) -> Result<Self, TexmlError> {
        let events = s
            .split_ascii_whitespace()
            .map(|word| {
                K::from_keyword(word)
                    .ok_or_else(|| invalid(K::WHAT, format!("unknown event {word:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(events)
    }

    /// The events in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = K> + '_ {
        self.set.iter().copied()
    }

    /// The space-separated spelling, in canonical order.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.rendered
    }

    /// Whether `event` is in the set.
    #[must_use]
    pub fn contains(&self, event: K) -> bool {
        self.set.contains(&event)
    }
}

impl<K: Keyword> fmt::Display for EventSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered)
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn a_query_is_encoded_onto_a_valid_url() {
        let base = Url::parse("https://cc.example/api/call-center/retry-dial").unwrap();
        let u = base.with_query([("call", "v3:a b&c"), ("round", "2")]);
        assert_eq!(
            u.as_str(),
            "https://cc.example/api/call-center/retry-dial?call=v3%3Aa+b%26c&round=2"
        );
        assert_eq!(Url::parse(u.as_str()).unwrap(), u);
    }
}
