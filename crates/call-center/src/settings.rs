//! What the flow is configured with: rounds, ring time, voicemail and recording switches,
//! spoken texts.

use texml::{DialTimeout, MaxLength, Say, TexmlError};
use thiserror::Error;

/// A setting the flow cannot work with.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// A value outside its range.
    #[error("{name} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// Which setting.
        name: &'static str,
        /// The value.
        value: i64,
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// A text or URL TeXML would refuse.
    #[error("{name}: {source}")]
    Texml {
        /// Which setting.
        name: &'static str,
        /// Why.
        source: TexmlError,
    },
}

/// What the caller hears. Each is a validated `<Say>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    /// First words.
    pub greeting: Say,
    /// Played after the greeting when recording is on.
    pub recording_notice: Say,
    /// When a round finds nobody to ring.
    pub no_agents: Say,
    /// Before the beep.
    pub voicemail_prompt: Say,
    /// After the message.
    pub voicemail_thanks: Say,
    /// Last words when every round failed and voicemail is off.
    pub goodbye: Say,
    /// When something broke.
    pub apology: Say,
}

impl Texts {
    /// The caller's place in line, and the expected wait when there is one.
    #[must_use]
    pub fn position(position: i64, expected_wait: Option<chrono::Duration>) -> Option<Say> {
        let place = if position <= 1 {
            "You are next in line.".to_owned()
        } else {
            format!("You are number {position} in line.")
        };
        let wait = match expected_wait.map(|w| w.num_seconds()) {
            Some(s) if s < 60 => " Your expected wait is less than a minute.".to_owned(),
            Some(s) => {
                let minutes = (s + 59) / 60;
                let unit = if minutes == 1 { "minute" } else { "minutes" };
                format!(" Your expected wait is about {minutes} {unit}.")
            }
            None => String::new(),
        };
        Say::new(format!("{place}{wait}")).ok()
    }
}

fn say(name: &'static str, text: &str) -> Result<Say, SettingsError> {
    Say::new(text).map_err(|source| SettingsError::Texml { name, source })
}

/// The default recording notice.
pub const DEFAULT_RECORDING_NOTICE: &str =
    "This call may be recorded for quality and training purposes.";

/// The default greeting.
pub const DEFAULT_GREETING: &str =
    "Thank you for calling. Please hold while we connect you to an agent.";

impl Texts {
    /// English defaults with the given greeting and recording notice.
    ///
    /// # Errors
    /// [`SettingsError::Texml`] when a text is blank or holds XML-forbidden characters.
    pub fn english(greeting: &str, recording_notice: &str) -> Result<Self, SettingsError> {
        Ok(Self {
            greeting: say("CALL_CENTER_GREETING", greeting)?,
            recording_notice: say("CALL_CENTER_RECORDING_NOTICE", recording_notice)?,
            no_agents: say(
                "no_agents",
                "All of our agents are busy at the moment. Please hold.",
            )?,
            voicemail_prompt: say(
                "voicemail_prompt",
                "Sorry, no one is available to take your call. Please leave a message after the beep, and press the pound key when you are done.",
            )?,
            voicemail_thanks: say("voicemail_thanks", "Thank you for your message. Goodbye.")?,
            goodbye: say(
                "goodbye",
                "Sorry, no one is available to take your call. Please try again later. Goodbye.",
            )?,
            apology: say(
                "apology",
                "We are sorry, we are having technical difficulties.",
            )?,
        })
    }
}

impl Default for Texts {
    #[allow(clippy::expect_used)] // constant texts, checked by the `defaults_are_valid` test
    fn default() -> Self {
        Self::english(DEFAULT_GREETING, DEFAULT_RECORDING_NOTICE)
            .expect("default texts are valid TeXML")
    }
}

/// How the flow behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSettings {
    /// Rounds before voicemail (1..=10).
    pub max_attempts: i32,
    /// Ring time per round.
    pub dial_timeout: DialTimeout,
    /// Voicemail after the last round.
    pub voicemail_enabled: bool,
    /// Record agent calls (and play the notice).
    pub recording_enabled: bool,
    /// Most agents rung in one round.
    pub max_agents_per_round: u32,
    /// Longest voicemail.
    pub voicemail_max_length: MaxLength,
    /// What the caller hears.
    pub texts: Texts,
    /// Longer than any call can last without a word from Telnyx (Telnyx cuts a bridged
    /// `<Dial>` at 4 h by default): the reconciler closes a call silent for longer, and
    /// frees the agent it held.
    pub max_call_length: chrono::Duration,
    /// After an answered call's leg ends, the agent is not offered a call for this long
    /// (after-call work; it may end it early). Zero: free at once.
    pub wrap_up: chrono::Duration,
    /// The queue: hold loop, matcher, push.
    pub queue: QueueSettings,
}

/// How the matcher picks agents for the head caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum QueueStrategy {
    /// Every eligible agent at once (capped by `max_agents_per_round`), first answer wins.
    RingAll,
    /// The eligible agent idle the longest, alone.
    LongestIdle,
}

/// The queue's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The audio of one hold segment (`None`: the server's own, at `/hold-music.wav`).
    pub hold_music: Option<texml::Url>,
    /// Between position announcements, at least; zero: never announced.
    pub position_interval: chrono::Duration,
    /// The longest a caller waits before voicemail (or goodbye).
    pub max_wait: chrono::Duration,
    /// After a missed offer, the agent is not offered another for this long.
    pub no_answer_delay: chrono::Duration,
    /// Misses in a row that pause an agent (`missed-calls`); 0: never.
    pub misses_to_pause: i32,
    /// Which agents a match reserves.
    pub strategy: QueueStrategy,
    /// A reservation not delivered (or a delivered `<Dial>` not reported, after its ring
    /// time) within this is withdrawn; the caller keeps its place.
    pub reservation_ttl: chrono::Duration,
    /// A push claim older than this is taken over by the caller's next hold request.
    pub push_claim_ttl: chrono::Duration,
    /// Failed pushes of one offer before it is left to the hold loop.
    pub max_push_attempts: i32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            hold_music: None,
            position_interval: chrono::Duration::seconds(30),
            max_wait: chrono::Duration::seconds(600),
            no_answer_delay: chrono::Duration::seconds(10),
            misses_to_pause: 3,
            strategy: QueueStrategy::RingAll,
            reservation_ttl: chrono::Duration::seconds(30),
            push_claim_ttl: chrono::Duration::seconds(10),
            max_push_attempts: 3,
        }
    }
}

/// The default of [`FlowSettings::max_call_length`]: 5 hours.
pub const DEFAULT_MAX_CALL_LENGTH: chrono::Duration = chrono::Duration::hours(5);

impl FlowSettings {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`SettingsError::OutOfRange`].
    pub fn new(
        max_attempts: i32,
        dial_timeout_secs: u32,
        voicemail_enabled: bool,
        recording_enabled: bool,
        texts: Texts,
    ) -> Result<Self, SettingsError> {
        if !(1..=10).contains(&max_attempts) {
            return Err(SettingsError::OutOfRange {
                name: "CALL_CENTER_MAX_DIAL_ATTEMPTS",
                value: max_attempts.into(),
                min: 1,
                max: 10,
            });
        }
        let dial_timeout =
            DialTimeout::new(dial_timeout_secs).map_err(|_| SettingsError::OutOfRange {
                name: "CALL_CENTER_DIAL_TIMEOUT",
                value: dial_timeout_secs.into(),
                min: DialTimeout::MIN.into(),
                max: DialTimeout::MAX.into(),
            })?;
        Ok(Self {
            max_attempts,
            dial_timeout,
            voicemail_enabled,
            recording_enabled,
            max_agents_per_round: 50,
            voicemail_max_length: MaxLength::new(120).map_err(|source| SettingsError::Texml {
                name: "voicemail_max_length",
                source,
            })?,
            texts,
            max_call_length: DEFAULT_MAX_CALL_LENGTH,
            wrap_up: chrono::Duration::zero(),
            queue: QueueSettings::default(),
        })
    }
}

impl Default for FlowSettings {
    /// The contract's defaults: 2 rounds of 30 s, voicemail and recording on.
    #[allow(clippy::expect_used)] // constant values, checked by the `defaults_are_valid` test
    fn default() -> Self {
        Self::new(2, 30, true, true, Texts::default()).expect("default settings are in range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Texts::english(DEFAULT_GREETING, DEFAULT_RECORDING_NOTICE).is_ok());
        assert!(FlowSettings::new(2, 30, true, true, Texts::default()).is_ok());
        assert!(matches!(
            FlowSettings::new(0, 30, true, true, Texts::default()),
            Err(SettingsError::OutOfRange { .. })
        ));
        assert!(matches!(
            FlowSettings::new(2, 500, true, true, Texts::default()),
            Err(SettingsError::OutOfRange { .. })
        ));
    }
}
