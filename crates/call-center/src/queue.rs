//! The queue: who waits, in which order, with which priority; the [`QueueStore`] port the
//! matcher, the hold loop and the push worker read through; priority rules (VIP numbers and
//! prefixes) managed by admins.
//!
//! The order is `priority` (higher first), then `enqueued_at` (set once at `/inbound`,
//! never reset: a failed offer leaves the caller where it was), then `call_sid`.

use agents::{Candidate, Liveness};
use async_trait::async_trait;
use audit::NewAuditEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

use crate::decide::QueuePlace;
use crate::model::Call;
use crate::port::CallStoreError;

/// Longest priority rule pattern: `+`, 15 digits, `*`.
const MAX_PATTERN: usize = 17;
/// Priorities a rule may give.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -100..=100;
/// The window of recent answers the expected wait is estimated from.
pub const EXPECTED_WAIT_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Why a priority rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// Not `+`? digits (1–15), optionally ending in `*`.
    #[error(
        "pattern must be a number of 1 to 15 digits with an optional leading '+', optionally ending in '*' for a prefix"
    )]
    Pattern,
    /// Out of [`PRIORITY_RANGE`].
    #[error("priority must be between -100 and 100")]
    Priority,
    /// Over 100 characters.
    #[error("label must be at most 100 characters")]
    Label,
}

/// A caller number, or a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct NumberPattern(String);

impl NumberPattern {
    /// Checks the spelling.
    ///
    /// # Errors
    /// [`RuleError::Pattern`].
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        let body = s.strip_prefix('+').unwrap_or(s);
        let digits = body.strip_suffix('*').unwrap_or(body);
        let ok = s.len() <= MAX_PATTERN
            && (1..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RuleError::Pattern)
        }
    }

    /// As written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `number` (as Telnyx sent `From`) is this number, or starts with this prefix.
    #[must_use]
    pub fn matches(&self, number: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => number.starts_with(prefix),
            None => number == self.0,
        }
    }
}

/// A priority rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PriorityRule {
    /// Id.
    pub id: Uuid,
    /// The number or prefix (`*` at the end).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "+1555*"))]
    pub pattern: NumberPattern,
    /// Higher waits ahead; 0 is everyone else.
    pub priority: i32,
    /// What it is for (free text).
    pub label: String,
    /// When it was set.
    pub created_at: DateTime<Utc>,
}

impl PriorityRule {
    /// A new rule.
    ///
    /// # Errors
    /// [`RuleError`] for a bad pattern, priority or label.
    pub fn new(
        pattern: &str,
        priority: i32,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, RuleError> {
        if !PRIORITY_RANGE.contains(&priority) {
            return Err(RuleError::Priority);
        }
        if label.chars().count() > 100 {
            return Err(RuleError::Label);
        }
        Ok(Self {
            id: Uuid::new_v4(),
            pattern: NumberPattern::parse(pattern)?,
            priority,
            label: label.to_owned(),
            created_at: now,
        })
    }
}

/// The priority of `number` under `rules`: the longest matching pattern's, else 0.
#[must_use]
pub fn priority_of<'a>(rules: impl IntoIterator<Item = &'a PriorityRule>, number: &str) -> i32 {
    rules
        .into_iter()
        .filter(|r| r.pattern.matches(number))
        .max_by_key(|r| r.pattern.as_str().len())
        .map_or(0, |r| r.priority)
}

/// The expected wait at `position` when `answered` callers were answered in the last
/// [`EXPECTED_WAIT_WINDOW`] (`None` without any).
#[must_use]
pub fn expected_wait(position: i64, answered: i64) -> Option<chrono::Duration> {
    (answered > 0).then(|| {
        let per_answer = EXPECTED_WAIT_WINDOW.num_seconds() / answered;
        chrono::Duration::seconds(position.saturating_mul(per_answer))
    })
}

/// Where a queued caller stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueuedState {
    /// Holding, nobody reserved.
    Waiting,
    /// Agents reserved, the offer not yet delivered.
    Reserved,
    /// The reserved agents' phones ring.
    Ringing,
}

/// A caller in the queue, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedCaller {
    /// 1: next in line.
    pub position: i64,
    /// The caller's `CallSid`.
    pub call_sid: String,
    /// The caller's number.
    pub from: String,
    /// Its priority (higher first).
    pub priority: i32,
    /// When it joined the queue.
    pub enqueued_at: DateTime<Utc>,
    /// Seconds waited so far.
    pub wait_seconds: i64,
    /// Waiting, reserved or ringing.
    pub state: QueuedState,
    /// Offer rounds so far.
    pub offer_rounds: i32,
}

impl QueuedCaller {
    /// The queue's callers as the API shows them, `calls` in queue order, at `now`.
    #[must_use]
    pub fn list(calls: &[Call], now: DateTime<Utc>) -> Vec<Self> {
        calls
            .iter()
            .zip(1..)
            .map(|(c, position)| {
                let enqueued_at = c.enqueued_at.unwrap_or(c.started_at);
                let state = match (c.round_open, c.delivery) {
                    (false, _) => QueuedState::Waiting,
                    (true, Some(crate::model::Delivery::Delivered)) => QueuedState::Ringing,
                    (true, _) => QueuedState::Reserved,
                };
                Self {
                    position,
                    call_sid: c.call_sid.clone(),
                    from: c.from.clone(),
                    priority: c.priority,
                    enqueued_at,
                    wait_seconds: (now - enqueued_at).num_seconds().max(0),
                    state,
                    offer_rounds: c.attempts,
                }
            })
            .collect()
    }
}

/// What the matcher asks for before a match.
#[derive(Debug, Clone, Copy)]
pub struct MatchWant {
    /// How many callers from the head: waiting (no round open), enqueued after
    /// `enqueued_after` (the longest wait), with fewer than `max_rounds` rounds so far, in
    /// queue order.
    pub heads: u32,
    /// The longest wait's start.
    pub enqueued_after: DateTime<Utc>,
    /// The rounds a caller may have.
    pub max_rounds: i32,
    /// How many eligible agents, as `agents::AgentStore::available_now` takes them.
    pub agents: u32,
    /// The heartbeat window and the time eligibility is judged at.
    pub liveness: Liveness,
    /// Whether the agents are wanted even when nobody waits (a request offering agents in
    /// its own answer); when not, a store may skip reading them for an empty queue.
    pub free_if_nobody_waits: bool,
}

/// The head of the queue and the agents eligible, read together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchView {
    /// The callers, in queue order.
    pub heads: Vec<String>,
    /// The agents, longest idle first.
    pub free: Vec<Candidate>,
}

/// The queue as the stores keep it.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// The priority a caller from `number` waits with (the longest matching rule's, else 0).
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn priority_for(&self, number: &str) -> Result<i32, CallStoreError>;

    /// Every priority rule, by pattern.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn priority_rules(&self) -> Result<Vec<PriorityRule>, CallStoreError>;

    /// Sets the rule for `rule.pattern` (replacing one with the same pattern, which keeps
    /// its id), with `audit`, in one transaction; returns the stored rule.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn put_priority_rule(
        &self,
        rule: &PriorityRule,
        audit: Vec<NewAuditEvent>,
    ) -> Result<PriorityRule, CallStoreError>;

    /// Removes rule `id` with `audit` (written only if it existed); whether it existed.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn remove_priority_rule(
        &self,
        id: Uuid,
        audit: Vec<NewAuditEvent>,
    ) -> Result<bool, CallStoreError>;

    /// What one match reads, in one round trip where the store can: the callers at the
    /// head of the queue and the agents eligible now (see [`MatchWant`]).
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn match_view(&self, want: &MatchWant) -> Result<MatchView, CallStoreError>;

    /// Everyone in the queue (waiting, or with a round reserved and not answered), in queue
    /// order, at most `limit`.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn queued_calls(&self, limit: u32) -> Result<Vec<Call>, CallStoreError>;

    /// `call`'s place: callers ahead of it in the queue, plus one; the expected wait from
    /// the answers since `now - EXPECTED_WAIT_WINDOW`.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn place(&self, call: &Call, now: DateTime<Utc>) -> Result<QueuePlace, CallStoreError>;

    /// Calls with a round open whose delivery last moved at `before` or earlier, oldest first
    /// (reservations the sweep may withdraw).
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn open_rounds_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, CallStoreError>;

    /// Calls whose reserved offer waits for a push, oldest first.
    ///
    /// # Errors
    /// [`CallStoreError::Unexpected`].
    async fn pending_pushes(&self, limit: u32) -> Result<Vec<String>, CallStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_priorities() {
        for ok in [
            "+15551234567",
            "15551234567",
            "+1555*",
            "4*",
            "+123456789012345",
        ] {
            assert!(NumberPattern::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "+",
            "*",
            "+*",
            "1*2",
            "+1 555",
            "abc",
            "+1234567890123456",
            "1**",
        ] {
            assert_eq!(NumberPattern::parse(bad), Err(RuleError::Pattern), "{bad}");
        }
        let now = Utc::now();
        let rules = [
            PriorityRule::new("+1555*", 5, "", now).unwrap(),
            PriorityRule::new("+15551234567", 10, "vip", now).unwrap(),
            PriorityRule::new("+44*", -3, "", now).unwrap(),
        ];
        assert_eq!(
            priority_of(&rules, "+15551234567"),
            10,
            "the longest match wins"
        );
        assert_eq!(priority_of(&rules, "+15559999999"), 5);
        assert_eq!(priority_of(&rules, "+442071234567"), -3);
        assert_eq!(priority_of(&rules, "+33123"), 0);
        assert_eq!(
            PriorityRule::new("+1", 101, "", now),
            Err(RuleError::Priority)
        );
    }

    #[test]
    fn the_expected_wait_follows_recent_answers() {
        assert_eq!(expected_wait(3, 0), None);
        assert_eq!(expected_wait(3, 30), Some(chrono::Duration::seconds(90)));
    }
}
