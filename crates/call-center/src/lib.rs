//! # call-center: the call flow, as decisions
//!
//! A caller dials the company's Telnyx number; Telnyx asks this domain what to do at each
//! step. The steps and their rules:
//!
//! 1. `/inbound`: record the call, answer a greeting (and the recording notice), redirect to
//!    round 1.
//! 2. `/dial-agents`: open round *n*, ring **every available agent at once** (one `<Sip>` per
//!    agent); with nobody available the round still takes its time (hold message, pause).
//! 3. `/outbound/event`: agent legs report; the **first answer wins** (a conditional update
//!    in the store), later answers are recorded as late; missed offers count once per agent
//!    per round.
//! 4. `/retry-dial`: the round ended; retry up to `max_attempts`, then voicemail (or
//!    goodbye).
//! 5. `/voicemail` and `/voicemail/callback`: record and transcribe; the recording and the
//!    transcription are stored whichever arrives first.
//! 6. `/events`: the caller's call ended; the outcome is fixed and any agent still held is
//!    released.
//!
//! Every decision is a pure function ([`decide`]: state + event → change + TeXML); the
//! [`CallFlow`] service loads the state through the [`CallStore`] port, decides, and applies
//! the change in one transaction with optimistic concurrency, retrying on a lost race.
//! Repeated and reordered callbacks end in the same state.
//!
//! Run whole calls without HTTP or a database: `cargo run -p call-center --example embedded`.

mod decide;
pub mod documents;
mod event;
mod flow;
mod memory;
mod model;
mod picks;
mod port;
pub mod queue;
pub mod reports;
mod settings;
mod urls;
mod vocabulary;
pub mod voicemail;

#[cfg(feature = "contract")]
pub mod contract;

pub use agents::AgentEffect;
pub use decide::{
    Context, Decision, MISSED_CALLS, QueuePlace, Reply, claim_push, decide, may_offer, push_failed,
    repair, reserve, wants_place, withdraw,
};
pub use event::{
    Endpoint, Event, EventError, LegEvent, Params, RecordingInfo, TranscriptionInfo, check_sid,
    from_call_control, from_params, mask_number,
};
pub use flow::{
    CallFlow, FlowError, Handled, MatchPass, Ports, PushJob, QueueError, Reconciliation,
};
pub use memory::MemoryCallStore;
pub use model::{
    Attempt, Call, CallState, CallStatus, CallView, Delivery, Offer, OfferState, Outcome,
    RoundResult, VoicemailView,
};
pub use port::{
    Applied, AttemptChange, CallChange, CallFilter, CallStore, CallStoreError, Receipt, Redaction,
    SignedRequest, Snapshot,
};
pub use queue::{
    MatchView, MatchWant, NumberPattern, PRIORITY_RANGE, PriorityRule, QueueStore, QueuedCaller,
    QueuedState, RuleError, expected_wait, priority_of,
};
pub use settings::{
    DEFAULT_GREETING, DEFAULT_RECORDING_NOTICE, FlowSettings, QueueSettings, QueueStrategy,
    SettingsError, Texts,
};
pub use urls::{HOLD_MUSIC_PATH, Signed, UrlError, UrlKey, UrlKeys, UrlKind, Urls};
pub use vocabulary::{CallerStatus, DialStatus, LegStatus};
pub use voicemail::{
    InboxError, InboxFilter, InboxState, Voicemail, VoicemailInbox, VoicemailStore,
    VoicemailStoreError,
};
