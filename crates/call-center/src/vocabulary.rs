//! Telnyx's status vocabulary, parsed once at the edge (`event.rs`) into enums that the
//! decisions match exhaustively. Spellings are Telnyx's (kebab-case); a few aliases seen in
//! TwiML and Call Control are accepted.

/// The status of an agent's leg (`CallStatus` on a `<Sip statusCallback>`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
pub enum LegStatus {
    /// Dialing started.
    #[strum(to_string = "initiated", serialize = "queued")]
    Initiated,
    /// The agent's phone rings.
    #[strum(to_string = "ringing")]
    Ringing,
    /// The agent answered.
    #[strum(to_string = "in-progress", serialize = "answered")]
    InProgress,
    /// The leg ended after an answer (or Telnyx says completed).
    #[strum(to_string = "completed")]
    Completed,
    /// The agent declined.
    #[strum(to_string = "busy")]
    Busy,
    /// Rang out.
    #[strum(to_string = "no-answer")]
    NoAnswer,
    /// Stopped by Telnyx (someone else answered, the caller left, the round ended).
    #[strum(to_string = "canceled", serialize = "cancelled")]
    Canceled,
    /// Could not be placed.
    #[strum(to_string = "failed")]
    Failed,
}

impl LegStatus {
    /// Telnyx's spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads Telnyx's `CallStatus`; `None` for a status this flow does not know.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// Progress only (dialing, ringing): nothing about the offer changes.
    #[must_use]
    pub fn is_progress(self) -> bool {
        matches!(self, Self::Initiated | Self::Ringing)
    }

    /// A leg that ended because the agent did not or could not take it.
    #[must_use]
    pub fn is_declined(self) -> bool {
        matches!(self, Self::Busy | Self::NoAnswer | Self::Failed)
    }
}

/// The status of the caller's call (`CallStatus` on the application's status callback).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "kebab-case")]
pub enum CallerStatus {
    /// Not yet placed.
    Queued,
    /// Placed.
    Initiated,
    /// Ringing.
    Ringing,
    /// Answered (by Telnyx's TeXML application).
    #[strum(to_string = "in-progress", serialize = "answered")]
    InProgress,
    /// Ended normally.
    Completed,
    /// Busy.
    Busy,
    /// Not answered.
    NoAnswer,
    /// Canceled before it was answered.
    #[strum(to_string = "canceled", serialize = "cancelled")]
    Canceled,
    /// Failed.
    Failed,
}

impl CallerStatus {
    /// Telnyx's spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the call is over.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Completed | Self::Busy | Self::NoAnswer | Self::Canceled | Self::Failed => true,
            Self::Queued | Self::Initiated | Self::Ringing | Self::InProgress => false,
        }
    }
}

/// How a `<Dial>` ended (`DialCallStatus` on the `<Dial action>` request). Telnyx does not
/// publish the list; a value it may add is read as [`DialStatus::Failed`] (the round went
/// unanswered), never as an answer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "kebab-case")]
pub enum DialStatus {
    /// The bridged call ended normally.
    Completed,
    /// The callee answered (TwiML's spelling for a call still up).
    Answered,
    /// Declined.
    Busy,
    /// Rang out.
    NoAnswer,
    /// Could not be placed, or a status this flow does not know.
    Failed,
    /// Canceled: the caller hung up while it rang.
    #[strum(to_string = "canceled", serialize = "cancelled")]
    Canceled,
}

impl DialStatus {
    /// Reads Telnyx's `DialCallStatus`; an unknown value is [`DialStatus::Failed`].
    #[must_use]
    pub fn parse(s: &str) -> Self {
        s.parse().unwrap_or(Self::Failed)
    }

    /// Whether an agent was connected.
    #[must_use]
    pub fn connected(self) -> bool {
        matches!(self, Self::Completed | Self::Answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnyx_spellings_and_aliases_parse() {
        assert_eq!(LegStatus::parse("in-progress"), Some(LegStatus::InProgress));
        assert_eq!(LegStatus::parse("answered"), Some(LegStatus::InProgress));
        assert_eq!(LegStatus::parse("cancelled"), Some(LegStatus::Canceled));
        assert_eq!(LegStatus::parse("teleported"), None);
        assert_eq!(LegStatus::NoAnswer.as_str(), "no-answer");
        assert_eq!(
            "no-answer".parse::<CallerStatus>().ok(),
            Some(CallerStatus::NoAnswer)
        );
        assert!(CallerStatus::Canceled.is_terminal());
        assert!(!CallerStatus::InProgress.is_terminal());
        assert_eq!(DialStatus::parse("no-answer"), DialStatus::NoAnswer);
        assert_eq!(DialStatus::parse("rejected-by-mars"), DialStatus::Failed);
        assert!(DialStatus::parse("completed").connected());
    }
}
