//! Agents, their validated fields, and how reported presence, call holding and heartbeat
//! liveness combine into the effective status the API shows and routing uses.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sip::SipUri;

/// An agent's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct AgentId(pub Uuid);

impl AgentId {
    /// A fresh random id.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for AgentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AgentId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AgentName(String);

impl AgentName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Trims and validates.
    ///
    /// # Errors
    /// A message when the name is empty, too long or holds control characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let trimmed = s.trim();
        let count = trimmed.chars().count();
        if count == 0 {
            return Err("must not be empty".into());
        }
        if count > Self::MAX_CHARS {
            return Err(format!(
                "must be at most {} characters, got {count}",
                Self::MAX_CHARS
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident,)+ }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
            strum::EnumString, strum::IntoStaticStr, strum::Display, strum::VariantArray,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
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

status_enum!(
    /// What the agent (or an admin) last said about itself; a pause is kept beside it
    /// ([`Agent::paused_reason`]).
    Presence {
        /// Ready for calls.
        Available,
        /// Not taking calls right now.
        Busy,
        /// Away.
        Offline,
    }
);
status_enum!(
    /// What the API shows and routing uses: see [`effective_status`].
    EffectiveStatus {
        /// Ready for calls.
        Available,
        /// On a call, or said it is busy.
        Busy,
        /// Online but paused, with a reason.
        Paused,
        /// Away, or its heartbeat is too old.
        Offline,
    }
);
status_enum!(
    /// What an agent (or an admin) may ask for: a presence, or a pause (with a reason).
    RequestedStatus {
        /// Ready for calls.
        Available,
        /// Not taking calls right now.
        Busy,
        /// Online, not taking calls, for a reason.
        Paused,
        /// Away.
        Offline,
    }
);

/// Why an agent is paused: a short code such as `break`, `lunch` or the server's own
/// `missed-calls` (lowercase letters, digits and `-`, 1 to 32 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct PauseReason(String);

impl PauseReason {
    /// Longest accepted code, in characters.
    pub const MAX_CHARS: usize = 32;

    /// Validates a code's spelling (whether it is one of the configured reasons is the
    /// service's question).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=Self::MAX_CHARS).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "must be 1 to {} lowercase letters, digits or '-'; got {s:?}",
                Self::MAX_CHARS
            ))
        }
    }

    /// The code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an agent says about itself, as stored: its presence and, when paused, why. A pause
/// keeps the agent online (its presence is `available` underneath): resuming is asking for
/// `available` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceState {
    /// Available, busy or offline.
    pub presence: Presence,
    /// Why the agent is paused; `None` when it is not.
    pub paused_reason: Option<PauseReason>,
}

impl PresenceState {
    /// The state a request asks for; a pause needs its reason, nothing else takes one.
    ///
    /// # Errors
    /// A message when a pause has no reason or another status has one.
    pub fn requested(
        status: RequestedStatus,
        reason: Option<PauseReason>,
    ) -> Result<Self, &'static str> {
        let presence = match (status, &reason) {
            (RequestedStatus::Paused, None) => return Err("a pause needs a reason"),
            (RequestedStatus::Paused, Some(_)) => Presence::Available,
            (_, Some(_)) => return Err("only a pause takes a reason"),
            (RequestedStatus::Available, None) => Presence::Available,
            (RequestedStatus::Busy, None) => Presence::Busy,
            (RequestedStatus::Offline, None) => Presence::Offline,
        };
        Ok(Self {
            presence,
            paused_reason: reason,
        })
    }

    /// The status keyword this state was asked with (`paused` for a pause).
    #[must_use]
    pub fn keyword(&self) -> &'static str {
        if self.paused_reason.is_some() {
            RequestedStatus::Paused.as_str()
        } else {
            self.presence.as_str()
        }
    }
}

/// Parses one of `T`'s spellings, or says which are accepted (for API errors).
///
/// # Errors
/// `must be one of …; got …`.
pub fn parse_keyword<T>(s: &str) -> Result<T, String>
where
    T: FromStr + strum::VariantArray + Into<&'static str> + Copy,
{
    s.parse().map_err(|_| {
        let accepted: Vec<&'static str> = T::VARIANTS.iter().map(|v| (*v).into()).collect();
        format!("must be one of {}; got {s:?}", accepted.join(", "))
    })
}

/// The window in which a heartbeat keeps an agent online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The current time.
    pub now: DateTime<Utc>,
    /// Heartbeats at or after this instant are fresh (`now - ttl`).
    pub cutoff: DateTime<Utc>,
}

impl Liveness {
    /// The window for `ttl` ending at `now`.
    #[must_use]
    pub fn new(now: DateTime<Utc>, ttl: Duration) -> Self {
        Self {
            now,
            cutoff: now - ttl,
        }
    }

    /// Whether a heartbeat at `at` is still fresh.
    #[must_use]
    pub fn is_fresh(&self, at: Option<DateTime<Utc>>) -> bool {
        at.is_some_and(|t| t >= self.cutoff)
    }
}

/// The effective status (the transition table in `docs/agents.md`). "Wrapping up": no call
/// held, but the end of its last call's wrap-up is still ahead.
///
/// | holds a call | presence  | heartbeat fresh | paused | wrapping up | effective |
/// |---|---|---|---|---|---|
/// | yes | any | any | any | any | busy |
/// | no | offline | any | any | any | offline |
/// | no | available or busy | no (or never) | any | any | offline |
/// | no | available or busy | yes | yes | any | paused |
/// | no | available or busy | yes | no | yes | busy |
/// | no | available | yes | no | no | available |
/// | no | busy | yes | no | no | busy |
#[must_use]
pub fn effective_status(
    presence: Presence,
    holds_call: bool,
    heartbeat_fresh: bool,
    paused: bool,
    wrapping_up: bool,
) -> EffectiveStatus {
    match (holds_call, presence, heartbeat_fresh, paused, wrapping_up) {
        (true, ..) => EffectiveStatus::Busy,
        (false, Presence::Offline, ..) | (false, _, false, ..) => EffectiveStatus::Offline,
        (false, _, true, true, _) => EffectiveStatus::Paused,
        (false, _, true, false, true) | (false, Presence::Busy, true, false, false) => {
            EffectiveStatus::Busy
        }
        (false, Presence::Available, true, false, false) => EffectiveStatus::Available,
    }
}

/// Counters kept by atomic increments in the store; they never reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AgentMetrics {
    /// Calls this agent answered first.
    pub calls_answered: i64,
    /// Offers that rang out, were declined or failed (once per agent per round).
    pub calls_missed: i64,
    /// Seconds talked on answered calls.
    pub total_talk_seconds: i64,
}

impl AgentMetrics {
    /// `total_talk_seconds / calls_answered`, rounded to 0.1 s; 0 before the first call.
    #[must_use]
    pub fn average_call_duration_seconds(&self) -> f64 {
        if self.calls_answered <= 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)] // counters far below 2^52
        let avg = self.total_talk_seconds as f64 / self.calls_answered as f64;
        (avg * 10.0).round() / 10.0
    }
}

/// A registered agent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Id.
    pub id: AgentId,
    /// Display name.
    pub name: AgentName,
    /// Where to ring.
    pub sip_uri: SipUri,
    /// Reported presence.
    pub presence: Presence,
    /// Why the agent is paused, if it is.
    pub paused_reason: Option<PauseReason>,
    /// When the presence or the pause last changed (registration, the agent's or an
    /// admin's change, a pause for missed offers); heartbeats leave it.
    pub presence_since: DateTime<Utc>,
    /// Last heartbeat, if any.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// The call-center call this agent is on, if any.
    pub current_call_sid: Option<String>,
    /// Since when the agent has been free for the next call (longest idle is rung first):
    /// the end of its last call's wrap-up, which may still be ahead.
    pub idle_since: DateTime<Utc>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Counters.
    pub metrics: AgentMetrics,
    /// Offers missed since the agent last answered or was resumed.
    pub missed_in_a_row: i32,
    /// The call whose offer this agent holds (reserved for it, or ringing): at most one.
    pub offer_call_sid: Option<String>,
    /// Whether that offer is ringing (the caller received the `<Dial>`), not only reserved.
    pub offer_ringing: bool,
    /// After a missed offer, not offered another before this (the no-answer delay).
    pub no_answer_until: Option<DateTime<Utc>>,
}

impl Agent {
    /// The effective status at `liveness`.
    #[must_use]
    pub fn status(&self, liveness: &Liveness) -> EffectiveStatus {
        effective_status(
            self.presence,
            self.current_call_sid.is_some() || self.offer_call_sid.is_some(),
            liveness.is_fresh(self.last_heartbeat_at),
            self.paused_reason.is_some(),
            self.wrap_up_until(liveness.now).is_some(),
        )
    }

    /// When its wrap-up ends, while it has one ahead of `now` (and holds no call).
    #[must_use]
    pub fn wrap_up_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.current_call_sid.is_none() && self.idle_since > now).then_some(self.idle_since)
    }

    /// What the agent is doing at `now`.
    #[must_use]
    pub fn activity(&self, now: DateTime<Utc>) -> Activity {
        if self.current_call_sid.is_some() {
            Activity::OnCall
        } else if self.offer_call_sid.is_some() && self.offer_ringing {
            Activity::Ringing
        } else if self.offer_call_sid.is_some() {
            Activity::Reserved
        } else if self.wrap_up_until(now).is_some() {
            Activity::WrapUp
        } else {
            Activity::Idle
        }
    }

    /// Whether the matcher may offer this agent a call at `liveness` (available, no offer,
    /// no call, wrap-up and no-answer delay over).
    #[must_use]
    pub fn eligible(&self, liveness: &Liveness) -> bool {
        self.status(liveness) == EffectiveStatus::Available
            && self.no_answer_until.is_none_or(|t| t <= liveness.now)
    }

    /// Whether a change made at `now` may reserve this agent for `call_sid`: what the
    /// stores re-check inside the reserving transaction, since the matcher read its
    /// candidates before (a miss, a pause or another reservation may have come between).
    /// Heartbeat freshness is not re-checked: an agent gone stale since simply misses.
    #[must_use]
    pub fn reservable(&self, call_sid: &str, now: DateTime<Utc>) -> bool {
        self.presence == Presence::Available
            && self.paused_reason.is_none()
            && self.current_call_sid.is_none()
            && self
                .offer_call_sid
                .as_deref()
                .is_none_or(|held| held == call_sid)
            && self.idle_since <= now
            && self.no_answer_until.is_none_or(|t| t <= now)
    }

    /// What the agent last said about itself.
    #[must_use]
    pub fn presence_state(&self) -> PresenceState {
        PresenceState {
            presence: self.presence,
            paused_reason: self.paused_reason.clone(),
        }
    }
}

/// What an agent is doing (the `activity` of the Agent object); the contract's `status`
/// shows all but `idle` as `busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Activity {
    /// Free (or paused, or offline).
    Idle,
    /// Reserved for a waiting caller who has not received the `<Dial>` yet.
    Reserved,
    /// Its phone is ringing for a caller.
    Ringing,
    /// On a call.
    OnCall,
    /// After-call work.
    WrapUp,
}

/// How a change marks the agent's one open offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferMark {
    /// Reserved for this call.
    Reserve,
    /// Reserved for this call and rung at once: the offer went out in the same answer that
    /// reserved it.
    ReserveRinging,
    /// This call's offer now rings.
    Ring,
    /// This call's offer is over.
    Clear,
}

impl OfferMark {
    /// Whether the mark reserves the agent (only an agent still reservable may be).
    #[must_use]
    pub fn reserves(self) -> bool {
        matches!(self, Self::Reserve | Self::ReserveRinging)
    }
}

/// An agent that can be rung now, as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Id.
    pub id: AgentId,
    /// Where to ring.
    pub sip_uri: SipUri,
    /// Offers it missed since it last answered (or was resumed).
    pub missed_in_a_row: i32,
}

/// Changes to an agent's counters, applied atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsDelta {
    /// Added to `calls_answered`.
    pub answered: i64,
    /// Added to `calls_missed`.
    pub missed: i64,
    /// Added to `total_talk_seconds`.
    pub talk_seconds: i64,
}

/// What one call-center change does to one agent, applied in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentEffect {
    /// The agent.
    pub agent_id: AgentId,
    /// Counter increments.
    pub delta: MetricsDelta,
    /// Give the agent this call if it holds none (a compare-and-set).
    pub engage: bool,
    /// Free the agent if it holds this call, and start its wrap-up; also the wrap-up of an
    /// agent that holds no call but this call's open offer (an answer learned only after
    /// the talk ended).
    pub release: bool,
    /// With `release`: the end of the agent's wrap-up (its new `idle_since`); `None`: free
    /// at once.
    pub wrap_up_until: Option<DateTime<Utc>>,
    /// Not offered a call before this (the no-answer delay after a miss).
    pub no_answer_until: Option<DateTime<Utc>>,
    /// The agent's open offer: reserved, ringing, or over.
    pub offer: Option<OfferMark>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_status_table() {
        use EffectiveStatus as E;
        use Presence as P;
        let rows = [
            // holds call, presence, fresh, paused, wrapping up -> effective
            (true, P::Available, true, false, false, E::Busy),
            (true, P::Available, false, false, false, E::Busy),
            (true, P::Busy, true, false, false, E::Busy),
            (true, P::Offline, false, false, false, E::Busy),
            (true, P::Available, true, true, false, E::Busy),
            (false, P::Available, true, false, false, E::Available),
            (false, P::Busy, true, false, false, E::Busy),
            (false, P::Offline, true, false, false, E::Offline),
            (false, P::Offline, false, false, false, E::Offline),
            (false, P::Available, false, false, false, E::Offline),
            (false, P::Busy, false, false, false, E::Offline),
            (false, P::Available, true, true, false, E::Paused),
            (false, P::Busy, true, true, false, E::Paused),
            (false, P::Available, false, true, false, E::Offline),
            (false, P::Offline, true, true, false, E::Offline),
            (false, P::Available, true, false, true, E::Busy),
            (false, P::Busy, true, false, true, E::Busy),
            (false, P::Available, true, true, true, E::Paused),
            (false, P::Available, false, false, true, E::Offline),
            (false, P::Offline, true, false, true, E::Offline),
        ];
        for (holds, presence, fresh, paused, wrapping, expected) in rows {
            assert_eq!(
                effective_status(presence, holds, fresh, paused, wrapping),
                expected,
                "{holds} {presence} {fresh} {paused} {wrapping}"
            );
        }
    }

    #[test]
    fn a_pause_needs_a_reason_and_only_a_pause_takes_one() {
        let lunch = PauseReason::parse("lunch").unwrap();
        let paused = PresenceState::requested(RequestedStatus::Paused, Some(lunch.clone()));
        assert_eq!(
            paused,
            Ok(PresenceState {
                presence: Presence::Available,
                paused_reason: Some(lunch.clone())
            })
        );
        assert_eq!(paused.unwrap().keyword(), "paused");
        assert!(PresenceState::requested(RequestedStatus::Paused, None).is_err());
        assert!(PresenceState::requested(RequestedStatus::Busy, Some(lunch)).is_err());
        let back = PresenceState::requested(RequestedStatus::Available, None).unwrap();
        assert_eq!(back.paused_reason, None);
        assert_eq!(back.keyword(), "available");
    }

    #[test]
    fn pause_reasons_are_short_codes() {
        assert!(PauseReason::parse("missed-calls").is_ok());
        assert!(PauseReason::parse("break2").is_ok());
        for bad in ["", "Lunch", "a b", "<b>", &"x".repeat(33), "é"] {
            assert!(PauseReason::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn heartbeat_exactly_at_the_ttl_is_still_fresh() {
        let now = Utc::now();
        let l = Liveness::new(now, Duration::seconds(60));
        assert!(l.is_fresh(Some(now - Duration::seconds(60))));
        assert!(!l.is_fresh(Some(now - Duration::seconds(61))));
        assert!(!l.is_fresh(None));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            AgentName::parse("  Alice Smith ").unwrap().as_str(),
            "Alice Smith"
        );
        assert!(AgentName::parse("   ").is_err());
        assert!(AgentName::parse(&"é".repeat(100)).is_ok());
        assert!(AgentName::parse(&"é".repeat(101)).is_err());
        assert!(AgentName::parse("a\u{0}b").is_err());
        assert!(AgentName::parse("<b>Bob</b> & co").is_ok());
    }

    #[test]
    fn average_is_rounded_and_zero_without_calls() {
        let m = AgentMetrics {
            calls_answered: 12,
            calls_missed: 3,
            total_talk_seconds: 2410,
        };
        assert!((m.average_call_duration_seconds() - 200.8).abs() < 1e-9);
        assert!(
            AgentMetrics::default()
                .average_call_duration_seconds()
                .abs()
                < f64::EPSILON
        );
    }
}
