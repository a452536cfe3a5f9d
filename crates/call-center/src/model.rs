//! Calls, their dial attempts (rounds) and the offers made to agents in each round.

use agents::AgentId;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::vocabulary::LegStatus;

/// The derives every stored text enum of this crate shares: snake_case in JSON and in the
/// database, parsed with a real error type ([`strum::ParseError`]).
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize,
            strum::EnumString, strum::IntoStaticStr, strum::Display, strum::VariantArray,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored and JSON spelling.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

stored_enum!(
    /// Where a call is (the `status` of the contract's Call object).
    CallStatus {
        /// Greeted, not yet dialing.
        Ringing,
        /// Agents are being rung (or the caller holds between rounds).
        Dialing,
        /// An agent took the call.
        Answered,
        /// The caller is in voicemail.
        Voicemail,
        /// The caller's call ended.
        Completed,
    }
);

stored_enum!(
    /// How a call ended.
    Outcome {
        /// An agent answered.
        Answered,
        /// The caller reached voicemail.
        Voicemail,
        /// The caller hung up before an agent or voicemail.
        Abandoned,
        /// Every round went unanswered and voicemail is off: the caller heard goodbye.
        Unanswered,
        /// The caller's call failed.
        Failed,
    }
);

stored_enum!(
    /// What became of ringing one agent in one round.
    OfferState {
        /// Still ringing, or ended without a verdict yet.
        Ringing,
        /// This agent answered first.
        Answered,
        /// Rang out, declined, failed, or still ringing when the round ended unanswered.
        Missed,
        /// Stopped because another agent answered or the caller left: no fault of the agent.
        Canceled,
        /// Answered after another agent had the call.
        Late,
    }
);

stored_enum!(
    /// How the open round's offer reaches the caller (the `delivery` of a call): exactly one
    /// path delivers it, the push (Telnyx's REST update-call) or the caller's next hold
    /// request (pull).
    Delivery {
        /// Reserved, not delivered: a push may claim it, or the next hold request takes it.
        Pending,
        /// A push worker claimed it and is asking Telnyx to redirect the call; the hold
        /// request leaves it alone until the claim is older than the reservation's life.
        Pushing,
        /// Pushes failed: only the caller's next hold request delivers it.
        Pull,
        /// The caller received the `<Dial>`.
        Delivered,
    }
);

/// How a round ended (the `result` of a `dial_attempts` row; kebab-case as Telnyx spells
/// its statuses).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "kebab-case")]
pub enum RoundResult {
    /// An agent took the call.
    Answered,
    /// `<Dial>` rang out.
    NoAnswer,
    /// Every agent declined.
    Busy,
    /// The legs could not be placed (or Telnyx reported a status we do not know).
    Failed,
    /// Telnyx canceled the `<Dial>`: the caller left.
    Canceled,
    /// The caller's call ended while the round was open.
    CallerLeft,
    /// The caller was sent to voicemail.
    Voicemail,
    /// The last round ended and voicemail is off.
    NoVoicemail,
    /// Nobody could be rung: the round was a hold message.
    NoAgents,
    /// The reservation was withdrawn: the offer was not delivered, or the `<Dial>` never
    /// reported, within the reservation's life.
    Withdrawn,
}

impl RoundResult {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

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
    /// When the caller started waiting for an agent (never reset).
    pub enqueued_at: Option<DateTime<Utc>>,
    /// Queue priority: higher first, then `enqueued_at` (0 unless a priority rule matched
    /// the caller's number).
    pub priority: i32,
    /// How the open round's offer reaches the caller (`None`: no round reserved).
    pub delivery: Option<Delivery>,
    /// When `delivery` last changed (the reservation's clock).
    pub delivery_at: Option<DateTime<Utc>>,
    /// Failed pushes of the current offer.
    pub push_attempts: i32,
    /// The queue position last announced to the caller.
    pub announced_position: Option<i32>,
    /// When it was announced.
    pub announced_at: Option<DateTime<Utc>>,
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
            enqueued_at: None,
            priority: 0,
            delivery: None,
            delivery_at: None,
            push_attempts: 0,
            announced_position: None,
            announced_at: None,
        }
    }

    /// Whether the caller waits in the queue: greeted, not answered, not in voicemail, no
    /// round reserved for them.
    #[must_use]
    pub fn is_waiting(&self) -> bool {
        matches!(self.status, CallStatus::Ringing | CallStatus::Dialing)
            && !self.round_open
            && self.enqueued_at.is_some()
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
    /// The leg's last terminal status, if any.
    pub leg_status: Option<LegStatus>,
    /// When the round rang it.
    pub offered_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the leg ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// When the offer stopped being open (answered, missed, canceled, withdrawn): the
    /// agent's reservation ends here.
    pub closed_at: Option<DateTime<Utc>>,
    /// The leg's `CallDuration` from its completed callback.
    pub leg_duration: Option<i64>,
    /// Talk seconds counted for this offer so far.
    pub talk_seconds: Option<i64>,
    /// Whether `talk_seconds` came from the leg itself (final) or from the caller's hang-up
    /// (provisional, corrected when the leg reports).
    pub talk_final: bool,
    /// The agent's misses in a row when the offer was made (one open offer per agent, so
    /// nothing else changes it until this offer ends).
    pub misses_before: i32,
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
    /// How it ended.
    pub result: Option<RoundResult>,
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

/// The contract's voicemail object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoicemailView {
    /// When the caller reached voicemail (left the queue).
    pub started_at: Option<DateTime<Utc>>,
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
    /// When the caller joined the queue (`null` before it did, or for calls from before the
    /// queue).
    pub enqueued_at: Option<DateTime<Utc>>,
    /// Queue priority (higher first).
    pub priority: i32,
    /// The offers made to agents, every round (only in the single-call view; empty in lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<OfferView>,
}

/// One offer to one agent, as the single-call view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferView {
    /// The round, from 1.
    pub attempt: i32,
    /// The agent.
    pub agent_id: AgentId,
    /// `ringing`, `answered`, `missed`, `canceled`, `late`.
    pub state: OfferState,
    /// When the agent was reserved for it.
    pub offered_at: DateTime<Utc>,
    /// When it stopped being open (`null` while open).
    pub closed_at: Option<DateTime<Utc>>,
    /// When the agent answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the agent's leg ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<&Offer> for OfferView {
    fn from(o: &Offer) -> Self {
        Self {
            attempt: o.attempt,
            agent_id: o.agent_id,
            state: o.state,
            offered_at: o.offered_at,
            closed_at: o.closed_at,
            answered_at: o.answered_at,
            ended_at: o.ended_at,
        }
    }
}

impl From<&CallState> for CallView {
    fn from(s: &CallState) -> Self {
        let mut view = Self::from(&s.call);
        view.offers = s.offers.iter().map(OfferView::from).collect();
        view
    }
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
                started_at: c.voicemail_started_at,
                recording_url: c.voicemail_recording_url.clone(),
                duration_seconds: c.voicemail_duration_seconds,
                transcription: c.voicemail_transcription.clone(),
            }),
            enqueued_at: c.enqueued_at,
            priority: c.priority,
            offers: Vec::new(),
        }
    }
}
