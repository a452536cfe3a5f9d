//! What Telnyx tells the server, read tolerantly from form parameters (TeXML) or a Call
//! Control JSON event. Unknown parameters are ignored; values are trimmed; a missing
//! optional value is `None`, never an error.

use std::ops::RangeInclusive;

use serde::Deserialize;
use thiserror::Error;
use tracing::warn;

use agents::AgentId;

use crate::urls::{Signed, UrlKind};
use crate::vocabulary::{CallerStatus, DialStatus, LegStatus};

/// A request that cannot be understood at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// `CallSid` (or the leg's id) is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A callback URL without the server's MAC (or with parameters for another call):
    /// HTTP 401.
    #[error("this callback URL is not one the server wrote")]
    Unsigned,
    /// A parameter is present but unusable.
    #[error("{param}: {reason}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// Why.
        reason: String,
    },
    /// The JSON body is not a Call Control event.
    #[error("not a Call Control event: {0}")]
    Json(String),
}

/// Request parameters in arrival order; the first occurrence of a name wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps decoded pairs.
    #[must_use]
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// A parameter's trimmed value, `None` when absent or blank.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// An integer parameter; unparsable values count as absent (Telnyx documents integers,
    /// some deliver `"12.0"`; that is read as 12).
    #[must_use]
    pub fn int(&self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        v.parse::<i64>().ok().or_else(|| {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        })
    }

    /// A number Telnyx sends, within the range it can take: anything else (negative,
    /// huge, not a number) is logged and read as absent, so it is never stored or added
    /// to a sum; the rest of the request is handled as usual.
    #[must_use]
    pub fn bounded(&self, name: &str, range: &RangeInclusive<i64>) -> Option<i64> {
        let raw = self.get(name)?;
        match self.int(name) {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                warn!(
                    param = name,
                    value = %raw.chars().take(32).collect::<String>(),
                    accepted = %format!("{}..={}", range.start(), range.end()),
                    "a number out of range; ignored (not stored)"
                );
                None
            }
        }
    }

    /// A duration in seconds (`CallDuration`, `RecordingDuration`): see [`SECONDS`].
    fn seconds(&self, name: &str) -> Option<i64> {
        self.bounded(name, &SECONDS)
    }

    /// `SequenceNumber`: see [`SEQUENCE`].
    fn sequence(&self) -> Option<i64> {
        self.bounded("SequenceNumber", &SEQUENCE)
    }
}

/// Durations Telnyx reports, in seconds: no call, leg or recording lasts longer than a
/// day (a `<Dial>` is cut at 4 h by default, a `<Record>` at 4 h at most).
pub const SECONDS: RangeInclusive<i64> = 0..=86_400;
/// Sequence numbers of one call's callbacks.
pub const SEQUENCE: RangeInclusive<i64> = 0..=1_000_000;

const MAX_SID: usize = 128;

/// Checks a Telnyx id: 1–128 printable characters without whitespace.
///
/// # Errors
/// [`EventError::Invalid`] otherwise.
pub fn check_sid(param: &'static str, s: &str) -> Result<String, EventError> {
    if s.chars().count() > MAX_SID || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EventError::Invalid {
            param,
            reason: "must be 1-128 printable characters without spaces".into(),
        });
    }
    Ok(s.to_owned())
}

fn sid(p: &Params, name: &'static str) -> Result<String, EventError> {
    check_sid(name, p.get(name).ok_or(EventError::Missing(name))?)
}

fn opt_sid(p: &Params, name: &'static str) -> Result<Option<String>, EventError> {
    p.get(name).map(|s| check_sid(name, s)).transpose()
}

/// Recording fields from any recording callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingInfo {
    /// `RecordingSid`.
    pub sid: Option<String>,
    /// `RecordingStatus` (`in-progress`, `completed`, `absent`).
    pub status: Option<String>,
    /// `RecordingUrl`.
    pub url: Option<String>,
    /// `RecordingDuration`, seconds.
    pub duration: Option<i64>,
}

impl RecordingInfo {
    fn read(p: &Params) -> Result<Self, EventError> {
        Ok(Self {
            sid: opt_sid(p, "RecordingSid")?,
            status: p.owned("RecordingStatus"),
            url: p.owned("RecordingUrl"),
            duration: p.seconds("RecordingDuration"),
        })
    }

    /// Whether this is the final state of the recording (or carries no status at all, as
    /// the `<Record action>` request).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "completed")
    }
}

/// Transcription fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscriptionInfo {
    /// `TranscriptionSid`.
    pub sid: Option<String>,
    /// `TranscriptionStatus`.
    pub status: Option<String>,
    /// `TranscriptionText`.
    pub text: Option<String>,
}

/// A status callback for an agent's leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegEvent {
    /// The leg's `CallSid` (`call_control_id` in Call Control).
    pub leg_sid: String,
    /// The caller's call: from the server-signed callback URL (a JSON event names none; the
    /// store finds it by the leg once bound).
    pub call_sid: Option<String>,
    /// The offer the leg was dialled for (round, agent), from the signed callback URL.
    pub offer: Option<(i32, AgentId)>,
    /// What happened.
    pub status: LegStatus,
    /// The agent's address as Telnyx reports it (logged as a cross-check; never needed to
    /// find the agent).
    pub to: Option<String>,
    /// `CallDuration`.
    pub duration: Option<i64>,
    /// `SequenceNumber`.
    pub sequence: Option<i64>,
    /// Call Control event id, when the event came as JSON.
    pub event_id: Option<String>,
}

/// Everything the call flow reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `/inbound`: a new call.
    Inbound {
        /// `CallSid`.
        call_sid: String,
        /// `From`.
        from: String,
        /// `To`.
        to: String,
        /// `AccountSid`.
        account_sid: Option<String>,
        /// `ConnectionId`.
        connection_id: Option<String>,
    },
    /// `/dial-agents`: the hold loop's request (the reserved offer's `<Dial>`, or another
    /// hold segment), or the push target.
    DialAgents {
        /// `CallSid`.
        call_sid: String,
        /// The round the server-signed URL names (`None`: no valid signature, so the
        /// answer follows the call's state and changes nothing).
        round: Option<i32>,
        /// Whether Telnyx's update-call brought the caller here (the push path).
        pushed: bool,
    },
    /// `/retry-dial`: a `<Dial>` ended (or a round without agents timed out).
    DialResult {
        /// `CallSid`.
        call_sid: String,
        /// The round the server-signed action URL names (`None`: no valid signature).
        round: Option<i32>,
        /// `DialCallStatus` (absent for a round that rang nobody).
        dial_call_status: Option<DialStatus>,
        /// `DialCallSid`: the bridged leg.
        dial_call_sid: Option<String>,
        /// The request comes from the hold document of a round that rang nobody (its
        /// signed URL says so), not from a `<Dial>`.
        without_agents: bool,
    },
    /// `/voicemail`: start the voicemail.
    Voicemail {
        /// `CallSid`.
        call_sid: String,
    },
    /// `/voicemail/callback` as the `<Record action>`.
    VoicemailRecorded {
        /// `CallSid`.
        call_sid: String,
        /// Whatever recording fields came with it.
        recording: RecordingInfo,
    },
    /// `/voicemail/callback` as the recording status callback.
    VoicemailRecording {
        /// `CallSid`.
        call_sid: String,
        /// The recording.
        recording: RecordingInfo,
    },
    /// `/voicemail/callback` as the transcription callback.
    VoicemailTranscription {
        /// `CallSid`.
        call_sid: String,
        /// The transcription.
        transcription: TranscriptionInfo,
    },
    /// `/outbound/event`: an agent's leg.
    Leg(LegEvent),
    /// `/events`: the caller's call changed status.
    CallStatus {
        /// `CallSid`.
        call_sid: String,
        /// `CallStatus`.
        call_status: CallerStatus,
        /// `SequenceNumber`.
        sequence: Option<i64>,
    },
    /// `/events`: a `<Dial>` recording.
    CallRecording {
        /// `CallSid`.
        call_sid: String,
        /// The recording.
        recording: RecordingInfo,
    },
}

impl Event {
    /// The caller's call this event concerns, when the event names it.
    #[must_use]
    pub fn call_sid(&self) -> Option<&str> {
        match self {
            Self::Inbound { call_sid, .. }
            | Self::DialAgents { call_sid, .. }
            | Self::DialResult { call_sid, .. }
            | Self::Voicemail { call_sid }
            | Self::VoicemailRecorded { call_sid, .. }
            | Self::VoicemailRecording { call_sid, .. }
            | Self::VoicemailTranscription { call_sid, .. }
            | Self::CallStatus { call_sid, .. }
            | Self::CallRecording { call_sid, .. } => Some(call_sid),
            Self::Leg(leg) => leg.call_sid.as_deref(),
        }
    }

    /// Whether the event reports something that happened, so that it can be applied later
    /// (from the spool) even though its answer was the fallback document: every status
    /// callback, the `<Record action>` and the `<Dial action>`. `/inbound`, `/dial-agents`
    /// and `/voicemail` only ask for the next step; applied later they would record a step
    /// the caller never took.
    #[must_use]
    pub fn is_report(&self) -> bool {
        !matches!(
            self,
            Self::Inbound { .. } | Self::DialAgents { .. } | Self::Voicemail { .. }
        )
    }

    /// Whether the event only reports progress that changes nothing (an agent's leg
    /// initiated or ringing): the offer was stored when the round opened.
    #[must_use]
    pub fn is_progress_only(&self) -> bool {
        matches!(self, Self::Leg(leg) if leg.status.is_progress())
    }

    /// The natural idempotency key of a callback; instruction requests have none (they are
    /// idempotent by the call's state).
    #[must_use]
    pub fn natural_key(&self) -> Option<String> {
        let seq = |s: Option<i64>| s.map_or_else(|| "-".to_owned(), |n| n.to_string());
        match self {
            Self::Leg(leg) => Some(match &leg.event_id {
                Some(id) => format!("cc:{id}"),
                None => format!(
                    "leg:{}:{}:{}",
                    leg.leg_sid,
                    leg.status.as_str(),
                    seq(leg.sequence)
                ),
            }),
            Self::CallStatus {
                call_sid,
                call_status,
                sequence,
            } => Some(format!(
                "call:{call_sid}:{}:{}",
                call_status.as_str(),
                seq(*sequence)
            )),
            Self::VoicemailRecording { recording, .. } | Self::CallRecording { recording, .. } => {
                recording
                    .sid
                    .as_ref()
                    .map(|sid| format!("rec:{sid}:{}", recording.status.as_deref().unwrap_or("-")))
            }
            Self::VoicemailTranscription {
                call_sid,
                transcription,
            } => Some(match &transcription.sid {
                Some(sid) => format!("tr:{sid}"),
                None => format!(
                    "tr:{call_sid}:{}",
                    transcription.status.as_deref().unwrap_or("-")
                ),
            }),
            Self::VoicemailRecorded {
                call_sid,
                recording,
            } => Some(format!(
                "vm-action:{call_sid}:{}",
                recording.sid.as_deref().unwrap_or("-")
            )),
            Self::Inbound { .. }
            | Self::DialAgents { .. }
            | Self::DialResult { .. }
            | Self::Voicemail { .. } => None,
        }
    }
}

/// The Telnyx-facing endpoints, for reading their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `/inbound`.
    Inbound,
    /// `/dial-agents`.
    DialAgents,
    /// `/retry-dial`.
    RetryDial,
    /// `/voicemail`.
    Voicemail,
    /// `/voicemail/callback`.
    VoicemailCallback,
    /// `/outbound/event`.
    OutboundEvent,
    /// `/events`.
    Events,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Self; 7] = [
        Self::Inbound,
        Self::DialAgents,
        Self::RetryDial,
        Self::Voicemail,
        Self::VoicemailCallback,
        Self::OutboundEvent,
        Self::Events,
    ];

    /// Its path under `/api/call-center`.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Inbound => "/inbound",
            Self::DialAgents => "/dial-agents",
            Self::RetryDial => "/retry-dial",
            Self::Voicemail => "/voicemail",
            Self::VoicemailCallback => "/voicemail/callback",
            Self::OutboundEvent => "/outbound/event",
            Self::Events => "/events",
        }
    }

    /// Whether Telnyx expects instructions (a document) rather than an acknowledgement.
    #[must_use]
    pub fn is_instruction(self) -> bool {
        matches!(
            self,
            Self::Inbound | Self::DialAgents | Self::RetryDial | Self::Voicemail
        )
    }
}

/// Reads the parameters of a form (TeXML) request to `endpoint`. `signed` is what the
/// request's URL carries under the server's MAC (verified by the caller; `None` for a
/// portal URL).
///
/// - `/inbound` and `/events` take nothing from the URL but a `<Dial>` recording's signed
///   call; a request that carries `ParentCallSid` is an agent leg: `Ok(None)` (acknowledge,
///   ignore), never a new or ended caller's call.
/// - Instruction endpoints act on a round only when it is signed for this `CallSid`.
/// - Callbacks (`/outbound/event`, `/voicemail/callback`) need their signed parameters:
///   without them, [`EventError::Unsigned`].
///
/// # Errors
/// [`EventError`] when the ids the endpoint needs are missing or malformed, or a callback
/// URL is not signed. A status the flow does not know is not an error: `Ok(None)`.
pub fn from_params(
    endpoint: Endpoint,
    p: &Params,
    signed: Option<&Signed>,
) -> Result<Option<Event>, EventError> {
    let is_leg = p.get("ParentCallSid").is_some();
    Ok(Some(match endpoint {
        Endpoint::Inbound if is_leg => return Ok(None),
        Endpoint::Inbound => Event::Inbound {
            call_sid: sid(p, "CallSid")?,
            from: p.owned("From").unwrap_or_default(),
            to: p.owned("To").unwrap_or_default(),
            account_sid: opt_sid(p, "AccountSid")?,
            connection_id: opt_sid(p, "ConnectionId")?,
        },
        Endpoint::DialAgents => {
            let call_sid = sid(p, "CallSid")?;
            let signed = signed_for(signed, &call_sid);
            Event::DialAgents {
                call_sid,
                round: signed.and_then(|s| s.round),
                pushed: signed.is_some_and(|s| s.kind == Some(UrlKind::Push)),
            }
        }
        Endpoint::RetryDial => {
            let call_sid = sid(p, "CallSid")?;
            let signed = signed_for(signed, &call_sid);
            Event::DialResult {
                round: signed.and_then(|s| s.round),
                without_agents: signed.is_some_and(|s| s.kind == Some(UrlKind::Hold)),
                dial_call_status: p.get("DialCallStatus").map(DialStatus::parse),
                dial_call_sid: opt_sid(p, "DialCallSid")?,
                call_sid,
            }
        }
        Endpoint::Voicemail => Event::Voicemail {
            call_sid: sid(p, "CallSid")?,
        },
        Endpoint::VoicemailCallback => voicemail_callback(p, signed)?,
        Endpoint::OutboundEvent => return leg_callback(p, signed),
        Endpoint::Events => return call_callback(p, signed, is_leg),
    }))
}

/// The signed parameters, if they are for `call_sid`.
fn signed_for<'a>(signed: Option<&'a Signed>, call_sid: &str) -> Option<&'a Signed> {
    signed.filter(|s| s.call == call_sid)
}

fn leg_callback(p: &Params, signed: Option<&Signed>) -> Result<Option<Event>, EventError> {
    let Some(Signed {
        call,
        round: Some(round),
        agent: Some(agent),
        ..
    }) = signed
    else {
        return Err(EventError::Unsigned);
    };
    if p.get("ParentCallSid").is_some_and(|parent| parent != call) {
        return Err(EventError::Unsigned);
    }
    let Some(status) = p.get("CallStatus").and_then(LegStatus::parse) else {
        return Ok(None);
    };
    let leg_sid = sid(p, "CallSid")?;
    if leg_sid == *call {
        return Err(EventError::Invalid {
            param: "CallSid",
            reason: "a leg callback about the caller's own call".into(),
        });
    }
    Ok(Some(Event::Leg(LegEvent {
        leg_sid,
        call_sid: Some(call.clone()),
        offer: Some((*round, *agent)),
        status,
        to: p.owned("To"),
        duration: p.seconds("CallDuration"),
        sequence: p.sequence(),
        event_id: None,
    })))
}

fn call_callback(
    p: &Params,
    signed: Option<&Signed>,
    is_leg: bool,
) -> Result<Option<Event>, EventError> {
    if let Some(s) = signed {
        if s.kind != Some(UrlKind::Recording) {
            return Err(EventError::Unsigned);
        }
        return Ok(Some(Event::CallRecording {
            call_sid: s.call.clone(),
            recording: RecordingInfo::read(p)?,
        }));
    }
    if is_leg {
        return Ok(None);
    }
    let call_sid = sid(p, "CallSid")?;
    if p.get("RecordingSid").is_some() || p.get("RecordingStatus").is_some() {
        return Ok(Some(Event::CallRecording {
            call_sid,
            recording: RecordingInfo::read(p)?,
        }));
    }
    let Some(call_status) = p.get("CallStatus").and_then(|s| s.parse().ok()) else {
        return Ok(None);
    };
    Ok(Some(Event::CallStatus {
        call_sid,
        call_status,
        sequence: p.sequence(),
    }))
}

/// The three voicemail callbacks share a path and are told apart by their signed `kind`,
/// never by which fields arrived.
fn voicemail_callback(p: &Params, signed: Option<&Signed>) -> Result<Event, EventError> {
    let Some(Signed {
        call,
        kind: Some(kind),
        ..
    }) = signed
    else {
        return Err(EventError::Unsigned);
    };
    if p.get("CallSid").is_some_and(|sid| sid != call) {
        return Err(EventError::Unsigned);
    }
    let call_sid = call.clone();
    Ok(match kind {
        UrlKind::Transcription => Event::VoicemailTranscription {
            call_sid,
            transcription: TranscriptionInfo {
                sid: opt_sid(p, "TranscriptionSid")?,
                status: p.owned("TranscriptionStatus"),
                text: p.get("TranscriptionText").map(str::to_owned),
            },
        },
        UrlKind::Recording => Event::VoicemailRecording {
            call_sid,
            recording: RecordingInfo::read(p)?,
        },
        UrlKind::Action | UrlKind::Hold | UrlKind::Push => Event::VoicemailRecorded {
            call_sid,
            recording: RecordingInfo::read(p)?,
        },
    })
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    id: Option<String>,
    event_type: String,
    #[serde(default)]
    payload: Payload,
}

#[derive(Debug, Default, Deserialize)]
struct Payload {
    call_control_id: Option<String>,
    to: Option<String>,
    hangup_cause: Option<String>,
}

/// Reads a Telnyx Call Control JSON event from an agent's SIP connection. Event types other
/// than `call.initiated`, `call.answered` and `call.hangup` give `Ok(None)`. Such an event
/// names only the agent's leg: it counts only for a leg already bound to an offer.
///
/// # Errors
/// [`EventError::Json`] when the body is not a Call Control envelope, [`EventError`] for a
/// missing or malformed `call_control_id`.
pub fn from_call_control(body: &[u8]) -> Result<Option<Event>, EventError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| EventError::Json(e.to_string()))?;
    let status = match env.data.event_type.as_str() {
        "call.initiated" => LegStatus::Initiated,
        "call.answered" => LegStatus::InProgress,
        "call.hangup" => hangup_status(env.data.payload.hangup_cause.as_deref()),
        _ => return Ok(None),
    };
    let leg = env
        .data
        .payload
        .call_control_id
        .ok_or(EventError::Missing("data.payload.call_control_id"))?;
    Ok(Some(Event::Leg(LegEvent {
        leg_sid: check_sid("call_control_id", leg.trim())?,
        call_sid: None,
        offer: None,
        status,
        to: env.data.payload.to,
        duration: None,
        sequence: None,
        event_id: env.data.id.map(|id| id.chars().take(MAX_SID).collect()),
    })))
}

fn hangup_status(cause: Option<&str>) -> LegStatus {
    match cause {
        Some("normal_clearing") => LegStatus::Completed,
        Some("originator_cancel") => LegStatus::Canceled,
        Some("timeout" | "no_answer") => LegStatus::NoAnswer,
        Some("user_busy" | "call_rejected") => LegStatus::Busy,
        _ => LegStatus::Failed,
    }
}

/// Masks the middle digits of a phone number for logs: `+13125550100` → `+131******00`.
#[must_use]
pub fn mask_number(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let keep_head = 4.min(chars.len() / 3);
    let keep_tail = 2;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i >= chars.len() - keep_tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn voicemail_callbacks_are_told_apart_by_their_signed_kind_not_their_fields() {
        // The Record action carrying RecordingStatus is still the action.
        let action = Signed::call("c").kind(UrlKind::Action);
        let got = from_params(
            Endpoint::VoicemailCallback,
            &params(&[("CallSid", "c"), ("RecordingStatus", "completed")]),
            Some(&action),
        );
        assert!(matches!(got, Ok(Some(Event::VoicemailRecorded { .. }))));
        let tr = Signed::call("c").kind(UrlKind::Transcription);
        let got = from_params(
            Endpoint::VoicemailCallback,
            &params(&[
                ("CallSid", "c"),
                ("RecordingSid", "r"),
                ("TranscriptionText", "hi"),
            ]),
            Some(&tr),
        );
        assert!(matches!(
            got,
            Ok(Some(Event::VoicemailTranscription { .. }))
        ));
        let unsigned = from_params(
            Endpoint::VoicemailCallback,
            &params(&[("CallSid", "c"), ("RecordingUrl", "https://x")]),
            None,
        );
        assert_eq!(unsigned, Err(EventError::Unsigned));
        let other_call = from_params(
            Endpoint::VoicemailCallback,
            &params(&[("CallSid", "someone-else")]),
            Some(&action),
        );
        assert_eq!(other_call, Err(EventError::Unsigned));
    }

    #[test]
    fn agent_legs_never_become_callers_calls() {
        let leg = params(&[
            ("CallSid", "leg"),
            ("ParentCallSid", "c"),
            ("CallStatus", "completed"),
        ]);
        assert_eq!(from_params(Endpoint::Inbound, &leg, None), Ok(None));
        assert_eq!(from_params(Endpoint::Events, &leg, None), Ok(None));
        assert_eq!(
            from_params(Endpoint::OutboundEvent, &leg, None),
            Err(EventError::Unsigned),
            "a leg callback needs its signed offer"
        );
    }

    #[test]
    fn a_round_counts_only_when_signed_for_this_call() {
        let p = params(&[("CallSid", "c")]);
        let signed = Signed::call("c").round(2);
        assert_eq!(
            from_params(Endpoint::DialAgents, &p, Some(&signed)),
            Ok(Some(Event::DialAgents {
                call_sid: "c".into(),
                round: Some(2),
                pushed: false,
            }))
        );
        let for_other = Signed::call("other").round(7);
        assert_eq!(
            from_params(Endpoint::DialAgents, &p, Some(&for_other)),
            Ok(Some(Event::DialAgents {
                call_sid: "c".into(),
                round: None,
                pushed: false,
            }))
        );
    }

    #[test]
    fn missing_and_malformed_ids_are_errors_unknown_statuses_are_ignored() {
        assert_eq!(
            from_params(Endpoint::Inbound, &params(&[]), None),
            Err(EventError::Missing("CallSid"))
        );
        assert!(from_params(Endpoint::Inbound, &params(&[("CallSid", "a b")]), None).is_err());
        let offer = Signed::call("c").round(1).agent(AgentId::new());
        let odd = from_params(
            Endpoint::OutboundEvent,
            &params(&[("CallSid", "l"), ("CallStatus", "teleported")]),
            Some(&offer),
        );
        assert_eq!(odd, Ok(None));
    }

    #[test]
    fn numbers_tolerate_decimals_and_garbage() {
        let p = params(&[("A", "12"), ("B", "12.0"), ("C", "x"), ("D", "1e300")]);
        assert_eq!(
            (p.int("A"), p.int("B"), p.int("C"), p.int("D")),
            (Some(12), Some(12), None, None)
        );
    }

    #[test]
    fn numbers_out_of_their_range_are_read_as_absent() {
        let p = params(&[
            ("CallDuration", "-5"),
            ("RecordingDuration", "-9223372036854775808"),
            ("SequenceNumber", "99999999999"),
            ("Ok", "86400"),
        ]);
        assert_eq!(p.seconds("CallDuration"), None);
        assert_eq!(p.seconds("RecordingDuration"), None);
        assert_eq!(p.sequence(), None);
        assert_eq!(p.seconds("Ok"), Some(86_400));
        let leg = params(&[
            ("CallSid", "v3:leg"),
            ("CallStatus", "completed"),
            ("CallDuration", "-1"),
        ]);
        let signed = Signed {
            call: "v3:caller".into(),
            round: Some(1),
            agent: Some(AgentId(uuid::Uuid::nil())),
            kind: None,
        };
        let Ok(Some(Event::Leg(leg))) = from_params(Endpoint::OutboundEvent, &leg, Some(&signed))
        else {
            panic!("the leg's end is still read")
        };
        assert_eq!((leg.status, leg.duration), (LegStatus::Completed, None));
    }

    #[test]
    fn call_control_events_map_to_leg_statuses() {
        let body = br#"{"data":{"id":"e1","event_type":"call.hangup","payload":{"call_control_id":"v3:leg","to":"sip:a@b.example","hangup_cause":"user_busy"}}}"#;
        let Ok(Some(Event::Leg(leg))) = from_call_control(body) else {
            panic!("not a leg event")
        };
        assert_eq!(
            (leg.status, leg.event_id.as_deref()),
            (LegStatus::Busy, Some("e1"))
        );
        assert_eq!(
            from_call_control(br#"{"data":{"event_type":"call.bridged"}}"#),
            Ok(None)
        );
        assert!(from_call_control(b"not json").is_err());
    }

    #[test]
    fn numbers_are_masked_in_the_middle() {
        assert_eq!(mask_number("+13125550100"), "+131******00");
        assert_eq!(mask_number("1234"), "****");
        assert_eq!(mask_number(""), "");
    }
}
