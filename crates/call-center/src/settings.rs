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
    /// Before each retry round.
    pub still_busy: Say,
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
            still_busy: say(
                "still_busy",
                "All of our agents are still busy. Please continue to hold.",
            )?,
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
