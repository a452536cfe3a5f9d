//! What an audit entry says: when, who, what, about which call or agent, and a few ids.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Who caused the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A Telnyx webhook.
    Telnyx,
    /// A holder of the admin token.
    Admin,
    /// An agent, with its heartbeat token.
    Agent(Uuid),
    /// The server itself (retention, reconciliation).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Telnyx => f.write_str("telnyx"),
            Self::Admin => f.write_str("admin"),
            Self::Agent(id) => write!(f, "agent:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

/// A stored actor this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown actor {0:?}")]
pub struct UnknownActor(pub String);

impl FromStr for Actor {
    type Err = UnknownActor;
    fn from_str(s: &str) -> Result<Self, UnknownActor> {
        match s {
            "telnyx" => Ok(Self::Telnyx),
            "admin" => Ok(Self::Admin),
            "system" => Ok(Self::System),
            _ => s
                .strip_prefix("agent:")
                .and_then(|id| Uuid::parse_str(id).ok())
                .map(Self::Agent)
                .ok_or_else(|| UnknownActor(s.to_owned())),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident),+ $(,)?) => {
        /// What happened. The snake_case names are stored and are part of the public interface.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
            strum::EnumString, strum::IntoStaticStr, strum::Display, strum::VariantArray,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum AuditAction {
            $($(#[$doc])* $variant),+
        }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [Self] = <Self as strum::VariantArray>::VARIANTS;

            /// The stored name.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

actions! {
    /// Telnyx delivered a new inbound call.
    CallReceived,
    /// The recording notice was played to the caller.
    RecordingNoticePlayed,
    /// A dial round started.
    AttemptOpened,
    /// An agent was rung in a round.
    OfferMade,
    /// An offer ended without an answer and counts as missed.
    OfferMissed,
    /// The first agent answered.
    CallAnswered,
    /// Another agent answered after the call was taken.
    LateAnswer,
    /// The call entered voicemail.
    VoicemailStarted,
    /// A voicemail recording or transcription was stored.
    VoicemailStored,
    /// A call recording was stored.
    RecordingStored,
    /// The call ended with an outcome.
    CallCompleted,
    /// Recordings and transcriptions of a call were removed.
    RecordingRedacted,
    /// An agent was registered.
    AgentRegistered,
    /// An agent's name, SIP URI or presence was changed by an admin.
    AgentUpdated,
    /// An agent was removed.
    AgentRemoved,
    /// An agent's reported presence changed (heartbeat).
    AgentStatusChanged,
    /// The agent holding a call was released.
    AgentReleased,
    /// An administrative run (retention, seeding, ...).
    AdminAction,
    /// The answer credited to one agent moved to the agent Telnyx bridged (`DialCallSid`).
    AnswerCorrected,
    /// The reconciler repaired a state that nothing else would have (with the reason).
    Reconciled,
    /// The outcome recorded at the hang-up was corrected by a later callback (a voicemail
    /// left through the fallback document, recorded after the hang-up was processed).
    OutcomeCorrected,
    /// An agent ended its wrap-up early (`until`: when it would have ended).
    WrapUpEnded,
    /// A voicemail was given to an agent to handle (`agent_id`; `from` the previous one).
    VoicemailAssigned,
    /// A voicemail was marked handled.
    VoicemailDone,
    /// The caller joined the queue (`priority`).
    CallEnqueued,
    /// The reserved round's `<Dial>` reached the caller (`via`: `push` or `pull`).
    OfferDelivered,
    /// A reservation was withdrawn before anyone answered (`reason`); the caller keeps its
    /// place in the queue.
    OfferWithdrawn,
    /// A queue priority rule was set or removed (`pattern`, `priority`).
    PriorityRuleChanged,
    /// An admin created a one-time console sign-in link for the agent (`expires_at`).
    SignInLinkCreated,
    /// The agent signed in to the console with a one-time link.
    SignInLinkUsed,
}

/// An event to be written, in the transaction of the change it describes.
///
/// `data` holds ids, counts and enum values only: never caller numbers, names or
/// transcripts, so the log can be kept and shown to auditors without leaking them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// When it happened, truncated to microseconds (what both databases keep).
    pub occurred_at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: AuditAction,
    /// The call concerned.
    pub call_sid: Option<String>,
    /// The agent concerned.
    pub agent_id: Option<Uuid>,
    /// Ids and small facts as a JSON object, serialised once and stored as text.
    pub data: String,
}

impl NewAuditEvent {
    /// An event without subject or data.
    #[must_use]
    pub fn new(occurred_at: DateTime<Utc>, actor: Actor, action: AuditAction) -> Self {
        Self {
            occurred_at: occurred_at.trunc_subsecs(6),
            actor,
            action,
            call_sid: None,
            agent_id: None,
            data: "{}".to_owned(),
        }
    }

    /// About this call.
    #[must_use]
    pub fn call(mut self, call_sid: impl Into<String>) -> Self {
        self.call_sid = Some(call_sid.into());
        self
    }

    /// About this agent.
    #[must_use]
    pub fn agent(mut self, agent_id: Uuid) -> Self {
        self.agent_id = Some(agent_id);
        self
    }

    /// Sets the data object from key/value pairs (sorted by key when serialised).
    #[must_use]
    pub fn data<I, K>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        // Sorted explicitly: serde_json keeps insertion order when `preserve_order` is on.
        let sorted: BTreeMap<String, Value> =
            pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let map: Map<String, Value> = sorted.into_iter().collect();
        self.data = Value::Object(map).to_string();
        self
    }
}

/// A stored entry. `seq`, `prev_digest` and `digest` are set when the sealer puts the entry
/// into the chain; until then the entry is pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Storage id (insertion order; not part of the chain).
    pub id: i64,
    /// Position in the chain, from 1; `None` while pending.
    pub seq: Option<i64>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who: `telnyx`, `admin`, `agent:<id>` or `system`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "agent:5f0c6c9e-1b2a-4c3d-8e9f-001122334455"))]
    pub actor: Actor,
    /// What.
    pub action: AuditAction,
    /// The call concerned.
    pub call_sid: Option<String>,
    /// The agent concerned.
    pub agent_id: Option<Uuid>,
    /// The data object as stored.
    pub data: String,
    /// Digest of the previous entry (64 zeros for the first).
    pub prev_digest: Option<String>,
    /// This entry's digest.
    pub digest: Option<String>,
}

impl AuditEntry {
    /// The event part of the entry.
    #[must_use]
    pub fn event(&self) -> NewAuditEvent {
        NewAuditEvent {
            occurred_at: self.occurred_at,
            actor: self.actor,
            action: self.action,
            call_sid: self.call_sid.clone(),
            agent_id: self.agent_id,
            data: self.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_through_text() {
        let id = Uuid::new_v4();
        for actor in [Actor::Telnyx, Actor::Admin, Actor::System, Actor::Agent(id)] {
            assert_eq!(actor.to_string().parse::<Actor>().unwrap(), actor);
        }
        assert!("agent:nope".parse::<Actor>().is_err());
    }

    #[test]
    fn actions_round_trip_through_text() {
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>().unwrap(), *a);
        }
    }

    #[test]
    fn data_is_a_sorted_json_object() {
        let e = NewAuditEvent::new(Utc::now(), Actor::System, AuditAction::AdminAction)
            .data([("z", Value::from(1)), ("a", Value::from("x"))]);
        assert_eq!(e.data, r#"{"a":"x","z":1}"#);
    }
}
