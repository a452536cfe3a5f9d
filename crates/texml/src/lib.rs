//! # texml: Telnyx TeXML documents that cannot be wrong
//!
//! Every answer a call-center server gives Telnyx is a TeXML document. A misspelt attribute
//! or a broken escape means a caller hears silence, so this crate models the documents as
//! types:
//!
//! - [`Response`] holds [`Verb`]s; a [`Dial`] holds only [`DialNoun`]s and is never empty; a
//!   [`Gather`] holds only [`GatherChild`]ren.
//! - Ranged numbers ([`DialTimeout`] 5–120, [`PauseLength`] 1–180, [`SayLoop`] 0–10,
//!   [`MaxLength`] 0–14400, ...) and URLs ([`Url`]: absolute http/https) are checked when a
//!   value is built: a typed [`TexmlError`], never a silent clamp.
//! - Closed value sets are enums ([`HttpMethod`], [`DialRecord`], [`CallProgressEvent`],
//!   [`RejectReason`], [`GatherInput`], ...) with Telnyx's spellings: `transcription` and
//!   `transcriptionCallback`, not Twilio's `transcribe`.
//! - Text and attribute values that contain characters XML 1.0 forbids (C0 controls other
//!   than tab, LF and CR; U+FFFE; U+FFFF) are **rejected** with
//!   [`TexmlError::ForbiddenCharacter`]. Nothing is dropped silently, nothing forbidden is
//!   emitted.
//! - [`Response::render`] writes UTF-8 with an XML declaration through xml-rs, in a fixed
//!   attribute order; [`Response::parse`] reads it back (strict), [`Response::parse_lenient`]
//!   skips what it does not know and lists it.
//!
//! No I/O, no async runtime, no web framework.
//!
//! ```
//! use texml::*;
//!
//! let base = "https://cc.example.com/api/call-center";
//! let events = EventSet::new([
//!     CallProgressEvent::Initiated, CallProgressEvent::Ringing,
//!     CallProgressEvent::Answered, CallProgressEvent::Completed,
//! ])?;
//! let agent = Sip::new(SipAddress::new("sip:alice@example.sip.telnyx.com")?)
//!     .status_callback(Url::parse(&format!("{base}/outbound/event"))?, events);
//! let dial = Dial::new([DialNoun::Sip(agent)])?
//!     .action(Url::parse(&format!("{base}/retry-dial"))?)
//!     .timeout(DialTimeout::new(30)?);
//! let doc = Response::new().say(Say::new("Connecting you now.")?).dial(dial);
//! let xml = doc.render();
//! assert_eq!(Response::parse(&xml)?, doc);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod model;
mod parse;
mod render;
pub mod tree;
mod values;

pub use error::{ParseError, TexmlError};
pub use model::{
    Conference, Dial, DialNoun, Enqueue, Gather, GatherChild, Hangup, Leave, Number, Pause, Play,
    PlaySource, Queue, Record, Redirect, Reject, Response, Say, Sip, Verb,
};
pub use parse::Lenient;
pub use values::{
    CallProgressEvent, ConferenceBeep, ConferenceEvent, ConferenceRecord, DialRecord, DialTimeout,
    DigitCount, Digits, DtmfKeys, EventSet, GatherInput, GatherTimeout, HttpMethod, Keyword,
    MaxLength, MaxParticipants, MaxWaitTime, PauseLength, PhoneNumber, PlayLoop, RecordFormat,
    RecordTimeout, RecordingChannels, RecordingEvent, RejectReason, SayLoop, SipAddress, Text,
    TimeLimit, Token, TranscriptionEngine, Trim, Url, is_xml_char,
};

/// The `Content-Type` to send with a rendered document.
pub const CONTENT_TYPE: &str = "application/xml; charset=utf-8";
