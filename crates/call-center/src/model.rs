//! Calls, their dial attempts (rounds) and the offers made to agents in each round.

use std::fmt;
use std::str::FromStr;

use agents::{AgentId, MetricsDelta};
use chrono::{DateTime, Utc};
use serde::Serialize;

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored and JSON spelling.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!("unknown {} {s:?}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a call is (the `status` of the contract's Call object).
    CallStatus {
        /// Greeted, not yet dialing.
        Ringing => "ringing",
        /// Agents are being rung (or the caller holds between rounds).
        Dialing => "dialing",
        /// An agent took the call.
        Answered => "answered",
        /// The caller is in voicemail.
        Voicemail => "voicemail",
        /// The caller's call ended.
        Completed => "completed",
    }
);

text_enum!(
    /// How a call ended.
    Outcome {
        /// An agent answered.
        Answered => "answered",
        /// The caller reached voicemail.
        Voicemail => "voicemail",
        /// The caller hung up before an agent or voicemail.
        Abandoned => "abandoned",
        /// Every round went unanswered and voicemail is off: the caller heard goodbye.
        Unanswered => "unanswered",
        /// The caller's call failed.
        Failed => "failed",
    }
);

text_enum!(
    /// What became of ringing one agent in one round.
    OfferState {
        /// Still ringing, or ended without a verdict yet.
        Ringing => "ringing",
        /// This agent answered first.
        Answered => "answered",
        /// Rang out, declined, failed, or still ringing when the round ended unanswered.
        Missed => "missed",
        /// Stopped because another agent answered or the caller left: no fault of the agent.
        Canceled => "canceled",
        /// Answered after another agent had the call.
        Late => "late",
    }
);

/// A caller's call as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Telnyx `CallSid` of the caller's leg.
    pub call_sid: String,
    /// The caller (E.164 as Telnyx sent it; masked in logs).
    pub from: String,
    /// The number dialled.
    pub to: String,
    /// Telnyx `AccountSid`.
    pub account_sid: Option<String>,
    /// Telnyx `ConnectionId`.
    pub connection_id: Option<String>,
    /// Where the call is.
    pub status: CallStatus,
    /// How it ended; may be known just before the end (goodbye path).
    pub outcome: Option<Outcome>,
    /// Rounds opened so far.
    pub attempts: i32,
    /// Whether round `attempts` is still open.
    pub round_open: bool,
    /// The agent who answered first.
    pub answered_by: Option<AgentId>,
    /// That agent's leg.
    pub answered_leg_sid: Option<String>,
    /// When Telnyx delivered the call.
    pub started_at: DateTime<Utc>,
    /// When the agent answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the caller's call ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds the agent talked.
    pub talk_seconds: Option<i64>,
    /// Call recording (from `<Dial record>`).
    pub recording_url: Option<String>,
    /// Its Telnyx id.
    pub recording_sid: Option<String>,
    /// When the caller entered voicemail.
    pub voicemail_started_at: Option<DateTime<Utc>>,
    /// Voicemail recording URL.
    pub voicemail_recording_url: Option<String>,
    /// Its Telnyx id.
    pub voicemail_recording_sid: Option<String>,
    /// Its length.
    pub voicemail_duration_seconds: Option<i64>,
    /// Transcription text.
    pub voicemail_transcription: Option<String>,
    /// Whether the recording notice was played.
    pub recording_notice_played: bool,
    /// When recordings and transcriptions were removed, if they were.
    pub redacted_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency version, bumped by every change.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Call {
    /// A call just delivered by Telnyx (version 0: not stored yet).
    #[must_use]
    pub fn new(call_sid: &str, from: &str, to: &str, now: DateTime<Utc>) -> Self {
        Self {
            call_sid: call_sid.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            account_sid: None,
            connection_id: None,
            status: CallStatus::Ringing,
            outcome: None,
            attempts: 0,
            round_open: false,
            answered_by: None,
            answered_leg_sid: None,
            started_at: now,
            answered_at: None,
            ended_at: None,
            talk_seconds: None,
            recording_url: None,
            recording_sid: None,
            voicemail_started_at: None,
            voicemail_recording_url: None,
            voicemail_recording_sid: None,
            voicemail_duration_seconds: None,
            voicemail_transcription: None,
            recording_notice_played: false,
            redacted_at: None,
            version: 0,
            updated_at: now,
        }
    }

    /// Whether the caller's call has ended.
    #[must_use]
    pub fn is_over(&self) -> bool {
        self.status == CallStatus::Completed
    }
}

/// One agent rung in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The caller's call.
    pub call_sid: String,
    /// The round, from 1.
    pub attempt: i32,
    /// The agent.
    pub agent_id: AgentId,
    /// The SIP URI rung (as registered at the time).
    pub sip_uri: String,
    /// Comparison key of that URI (matches Telnyx's `To`).
    pub sip_key: String,
    /// The agent leg's `CallSid`, once a callback named it.
    pub leg_sid: Option<String>,
    /// The verdict so far.
    pub state: OfferState,
    /// The leg's last terminal `CallStatus`, if any.
    pub leg_status: Option<String>,
    /// When the round rang it.
    pub offered_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the leg ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The leg's `CallDuration` from its completed callback.
    pub leg_duration: Option<i64>,
    /// Talk seconds counted for this offer so far.
    pub talk_seconds: Option<i64>,
    /// Whether `talk_seconds` came from the leg itself (final) or from the caller's hang-up
    /// (provisional, corrected when the leg reports).
    pub talk_final: bool,
}

/// One round as stored for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The caller's call.
    pub call_sid: String,
    /// The round, from 1.
    pub attempt: i32,
    /// When it opened.
    pub started_at: DateTime<Utc>,
    /// When it closed.
    pub ended_at: Option<DateTime<Utc>>,
    /// Agents rung.
    pub offered: i32,
    /// `answered`, `no-answer`, `canceled`, ... (Telnyx's `DialCallStatus` or ours).
    pub result: Option<String>,
}

/// A call with every offer made for it: what a decision reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    /// The call.
    pub call: Call,
    /// Its offers, every round.
    pub offers: Vec<Offer>,
}

impl CallState {
    /// Offers of round `attempt`.
    pub fn round(&self, attempt: i32) -> impl Iterator<Item = &Offer> {
        self.offers.iter().filter(move |o| o.attempt == attempt)
    }
}

/// What an applied change does to one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentEffect {
    /// The agent.
    pub agent_id: AgentId,
    /// Counter increments.
    pub delta: MetricsDelta,
    /// Give the agent this call if it holds none.
    pub engage: bool,
    /// Free the agent if it holds this call.
    pub release: bool,
}

/// The contract's voicemail object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoicemailView {
    /// Recording URL.
    pub recording_url: Option<String>,
    /// Length in seconds.
    pub duration_seconds: Option<i64>,
    /// Transcription.
    pub transcription: Option<String>,
}

/// The contract's Call object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallView {
    /// Telnyx `CallSid`.
    pub call_sid: String,
    /// Caller.
    pub from: String,
    /// Number dialled.
    pub to: String,
    /// Where the call is.
    pub status: CallStatus,
    /// How it ended (`null` until completed).
    pub outcome: Option<Outcome>,
    /// Rounds opened.
    pub attempts: i32,
    /// Agent id.
    pub answered_by: Option<AgentId>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Answer.
    pub answered_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds talked.
    pub talk_seconds: Option<i64>,
    /// Call recording.
    pub recording_url: Option<String>,
    /// Voicemail, when the call reached it.
    pub voicemail: Option<VoicemailView>,
}

impl From<&Call> for CallView {
    fn from(c: &Call) -> Self {
        let reached_voicemail = c.voicemail_started_at.is_some()
            || c.voicemail_recording_sid.is_some()
            || c.voicemail_recording_url.is_some()
            || c.voicemail_transcription.is_some();
        Self {
            call_sid: c.call_sid.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            status: c.status,
            outcome: if c.is_over() { c.outcome } else { None },
            attempts: c.attempts,
            answered_by: c.answered_by,
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            talk_seconds: c.talk_seconds,
            recording_url: c.recording_url.clone(),
            voicemail: reached_voicemail.then(|| VoicemailView {
                recording_url: c.voicemail_recording_url.clone(),
                duration_seconds: c.voicemail_duration_seconds,
                transcription: c.voicemail_transcription.clone(),
            }),
        }
    }
}
