//! The typed document model: `Response`, its verbs and the nouns of `<Dial>`.
//!
//! Every field holds a validated type, so a value outside Telnyx's documented range cannot be
//! stored; nesting is fixed by the types (only [`DialNoun`]s inside a [`Dial`], only
//! [`GatherChild`]ren inside a [`Gather`]).

use crate::error::TexmlError;
use crate::values::{
    CallProgressEvent, ConferenceBeep, ConferenceEvent, ConferenceRecord, DialRecord, DialTimeout,
    DigitCount, Digits, DtmfKeys, EventSet, GatherInput, GatherTimeout, HttpMethod, MaxLength,
    MaxParticipants, MaxWaitTime, PauseLength, PhoneNumber, PlayLoop, RecordFormat, RecordTimeout,
    RecordingChannels, RecordingEvent, RejectReason, SayLoop, SipAddress, Text, TimeLimit, Token,
    TranscriptionEngine, Trim, Url,
};

/// A TeXML document: the verbs Telnyx runs top to bottom.
///
/// ```
/// use texml::{Response, Say, Hangup};
/// let doc = Response::new().say(Say::new("Goodbye.").unwrap()).hangup();
/// assert_eq!(
///     doc.render(),
///     r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Goodbye.</Say><Hangup/></Response>"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The verbs in order.
    pub verbs: Vec<Verb>,
}

/// One instruction of a [`Response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// Speak text.
    Say(Say),
    /// Play audio or DTMF.
    Play(Play),
    /// Wait.
    Pause(Pause),
    /// Collect digits or speech.
    Gather(Gather),
    /// Call one or more parties.
    Dial(Dial),
    /// Record the caller.
    Record(Record),
    /// End the call.
    Hangup(Hangup),
    /// Fetch the next document.
    Redirect(Redirect),
    /// Refuse the call.
    Reject(Reject),
    /// Put the caller in a queue.
    Enqueue(Enqueue),
    /// Leave the queue.
    Leave(Leave),
}

macro_rules! verb_from {
    ($($ty:ident),+) => {
        $(impl From<$ty> for Verb {
            fn from(v: $ty) -> Self {
                Verb::$ty(v)
            }
        })+
    };
}
verb_from!(
    Say, Play, Pause, Gather, Dial, Record, Hangup, Redirect, Reject, Enqueue, Leave
);

impl Response {
    /// An empty document (`<Response/>`), the acknowledgement for status callbacks.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends any verb.
    #[must_use]
    pub fn verb(mut self, verb: impl Into<Verb>) -> Self {
        self.verbs.push(verb.into());
        self
    }

    /// Appends a `<Say>`.
    #[must_use]
    pub fn say(self, say: Say) -> Self {
        self.verb(say)
    }

    /// Appends a `<Pause>`.
    #[must_use]
    pub fn pause(self, pause: Pause) -> Self {
        self.verb(pause)
    }

    /// Appends a `<Dial>`.
    #[must_use]
    pub fn dial(self, dial: Dial) -> Self {
        self.verb(dial)
    }

    /// Appends a `<Record>`.
    #[must_use]
    pub fn record(self, record: Record) -> Self {
        self.verb(record)
    }

    /// Appends a `<Redirect>`.
    #[must_use]
    pub fn redirect(self, redirect: Redirect) -> Self {
        self.verb(redirect)
    }

    /// Appends a `<Hangup/>`.
    #[must_use]
    pub fn hangup(self) -> Self {
        self.verb(Hangup)
    }
}

/// `<Say>`: speaks its text.
///
/// ```
/// use texml::{Say, SayLoop, Text};
/// let say = Say::new("Thanks for calling").unwrap()
///     .voice(Text::non_empty("voice", "Polly.Joanna").unwrap())
///     .loop_count(SayLoop::new(2).unwrap());
/// assert_eq!(texml::Response::new().say(say).render_body(),
///     r#"<Response><Say voice="Polly.Joanna" loop="2">Thanks for calling</Say></Response>"#);
/// assert!(SayLoop::new(11).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    /// What to say; must not be blank.
    pub text: Text,
    /// `voice`, e.g. `woman`, `alice`, `Polly.Joanna`, `Telnyx.KokoroTTS.af`.
    pub voice: Option<Text>,
    /// `language`, used with `alice`.
    pub language: Option<Text>,
    /// `loop`.
    pub loop_count: Option<SayLoop>,
}

impl Say {
    /// A `<Say>` with default voice.
    ///
    /// # Errors
    /// [`TexmlError`] for blank text or XML-forbidden characters.
    pub fn new(text: impl Into<String>) -> Result<Self, TexmlError> {
        Ok(Self {
            text: Text::non_empty("Say text", text)?,
            voice: None,
            language: None,
            loop_count: None,
        })
    }

    /// Sets `voice`.
    #[must_use]
    pub fn voice(mut self, voice: Text) -> Self {
        self.voice = Some(voice);
        self
    }

    /// Sets `language`.
    #[must_use]
    pub fn language(mut self, language: Text) -> Self {
        self.language = Some(language);
        self
    }

    /// Sets `loop`.
    #[must_use]
    pub fn loop_count(mut self, n: SayLoop) -> Self {
        self.loop_count = Some(n);
        self
    }
}

/// What a `<Play>` plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaySource {
    /// An MP3 or WAV file at this URL (the body).
    Url(Url),
    /// A file in Telnyx media storage, by name (`mediaStorage="true"`).
    Media(Text),
    /// DTMF tones (`digits`), with an empty body.
    Digits(Digits),
}

/// `<Play>`: plays audio or DTMF.
///
/// ```
/// use texml::{Play, PlaySource, Url};
/// let play = Play::new(PlaySource::Url(Url::parse("https://cdn.example.com/hold.mp3").unwrap()));
/// assert_eq!(texml::Response::new().verb(play).render_body(),
///     "<Response><Play>https://cdn.example.com/hold.mp3</Play></Response>");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    /// The audio or tones.
    pub source: PlaySource,
    /// `loop`.
    pub loop_count: Option<PlayLoop>,
    /// `continueOnError`: go on with the document when the audio cannot be played
    /// (Telnyx's default, false, ends the script).
    pub continue_on_error: Option<bool>,
}

impl Play {
    /// A `<Play>` of `source`, once.
    #[must_use]
    pub fn new(source: PlaySource) -> Self {
        Self {
            source,
            loop_count: None,
            continue_on_error: None,
        }
    }
}

/// `<Pause>`: silence for `length` seconds (1 when absent).
///
/// ```
/// use texml::{Pause, PauseLength};
/// let p = Pause::seconds(PauseLength::new(3).unwrap());
/// assert_eq!(texml::Response::new().pause(p).render_body(), r#"<Response><Pause length="3"/></Response>"#);
/// assert!(PauseLength::new(0).is_err() && PauseLength::new(181).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pause {
    /// `length`.
    pub length: Option<PauseLength>,
}

impl Pause {
    /// A pause of `length` seconds.
    #[must_use]
    pub fn seconds(length: PauseLength) -> Self {
        Self {
            length: Some(length),
        }
    }
}

/// What a `<Gather>` may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatherChild {
    /// A prompt to speak.
    Say(Say),
    /// Audio to play.
    Play(Play),
    /// A pause (Twilio allows it; for Telnyx this is unconfirmed).
    Pause(Pause),
}

/// `<Gather>`: collects DTMF or speech, then requests `action`.
///
/// ```
/// use texml::{Gather, GatherChild, GatherInput, DigitCount, Say, Url};
/// let mut g = Gather::new();
/// g.action = Some(Url::parse("https://cc.example.com/menu").unwrap());
/// g.input = Some(GatherInput::Dtmf);
/// g.num_digits = Some(DigitCount::new(1).unwrap());
/// g.children.push(GatherChild::Say(Say::new("Press 1 for sales.").unwrap()));
/// assert_eq!(texml::Response::new().verb(g).render_body(),
///     r#"<Response><Gather action="https://cc.example.com/menu" input="dtmf" numDigits="1"><Say>Press 1 for sales.</Say></Gather></Response>"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gather {
    /// `action`: requested with the collected input.
    pub action: Option<Url>,
    /// `input`.
    pub input: Option<GatherInput>,
    /// `numDigits`.
    pub num_digits: Option<DigitCount>,
    /// `minDigits`.
    pub min_digits: Option<DigitCount>,
    /// `maxDigits`.
    pub max_digits: Option<DigitCount>,
    /// `timeout`.
    pub timeout: Option<GatherTimeout>,
    /// `finishOnKey`.
    pub finish_on_key: Option<DtmfKeys>,
    /// `validDigits`.
    pub valid_digits: Option<DtmfKeys>,
    /// `language` for speech.
    pub language: Option<Text>,
    /// `hints` for speech.
    pub hints: Option<Text>,
    /// Prompts played while gathering.
    pub children: Vec<GatherChild>,
}

impl Gather {
    /// An empty `<Gather>` with Telnyx defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// `<Number>` noun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// The E.164 number to call.
    pub number: PhoneNumber,
    /// `statusCallback` for this leg.
    pub status_callback: Option<Url>,
    /// `statusCallbackEvent`.
    pub status_callback_event: Option<EventSet<CallProgressEvent>>,
    /// `statusCallbackMethod`.
    pub status_callback_method: Option<HttpMethod>,
    /// `sendDigits` once answered.
    pub send_digits: Option<Digits>,
    /// `url`: a whisper document run on the callee.
    pub url: Option<Url>,
    /// `method` for `url`.
    pub method: Option<HttpMethod>,
}

impl Number {
    /// A `<Number>` without options.
    #[must_use]
    pub fn new(number: PhoneNumber) -> Self {
        Self {
            number,
            status_callback: None,
            status_callback_event: None,
            status_callback_method: None,
            send_digits: None,
            url: None,
            method: None,
        }
    }
}

/// `<Sip>` noun: rings a SIP URI, e.g. an agent's softphone.
///
/// ```
/// use texml::{Sip, SipAddress, Url, EventSet, CallProgressEvent as E, HttpMethod};
/// let sip = Sip::new(SipAddress::new("sip:alice@example.sip.telnyx.com").unwrap())
///     .status_callback(
///         Url::parse("https://cc.example.com/api/call-center/outbound/event").unwrap(),
///         EventSet::new([E::Initiated, E::Ringing, E::Answered, E::Completed]).unwrap(),
///     );
/// assert_eq!(sip.status_callback_method, Some(HttpMethod::Post));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    /// The SIP URI (the body).
    pub uri: SipAddress,
    /// `username` for digest authentication.
    pub username: Option<Text>,
    /// `password` for digest authentication.
    pub password: Option<Text>,
    /// `statusCallback` for this leg.
    pub status_callback: Option<Url>,
    /// `statusCallbackEvent`.
    pub status_callback_event: Option<EventSet<CallProgressEvent>>,
    /// `statusCallbackMethod`.
    pub status_callback_method: Option<HttpMethod>,
    /// `url`: a whisper document run on the callee.
    pub url: Option<Url>,
    /// `method` for `url`.
    pub method: Option<HttpMethod>,
}

impl Sip {
    /// A `<Sip>` without options.
    #[must_use]
    pub fn new(uri: SipAddress) -> Self {
        Self {
            uri,
            username: None,
            password: None,
            status_callback: None,
            status_callback_event: None,
            status_callback_method: None,
            url: None,
            method: None,
        }
    }

    /// Sets `statusCallback`, its events, and `statusCallbackMethod="POST"` (signed bodies).
    #[must_use]
    pub fn status_callback(mut self, url: Url, events: EventSet<CallProgressEvent>) -> Self {
        self.status_callback = Some(url);
        self.status_callback_event = Some(events);
        self.status_callback_method = Some(HttpMethod::Post);
        self
    }
}

/// `<Queue>` noun: bridges to the caller at the head of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The queue name (the body).
    pub name: Text,
    /// `url` run on the queued caller before the bridge.
    pub url: Option<Url>,
    /// `method` for `url`.
    pub method: Option<HttpMethod>,
}

/// `<Conference>` noun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// The conference name (the body).
    pub name: Text,
    /// `muted`.
    pub muted: Option<bool>,
    /// `startConferenceOnEnter`.
    pub start_conference_on_enter: Option<bool>,
    /// `endConferenceOnExit`.
    pub end_conference_on_exit: Option<bool>,
    /// `maxParticipants`.
    pub max_participants: Option<MaxParticipants>,
    /// `beep`.
    pub beep: Option<ConferenceBeep>,
    /// `record`.
    pub record: Option<ConferenceRecord>,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<Url>,
    /// `statusCallback`.
    pub status_callback: Option<Url>,
    /// `statusCallbackEvent`.
    pub status_callback_event: Option<EventSet<ConferenceEvent>>,
    /// `statusCallbackMethod`.
    pub status_callback_method: Option<HttpMethod>,
    /// `waitUrl`: hold music or a document.
    pub wait_url: Option<Url>,
    /// `waitMethod`.
    pub wait_method: Option<HttpMethod>,
}

impl Conference {
    /// A `<Conference>` without options.
    ///
    /// # Errors
    /// [`TexmlError`] for a blank name.
    pub fn new(name: impl Into<String>) -> Result<Self, TexmlError> {
        Ok(Self {
            name: Text::non_empty("Conference name", name)?,
            muted: None,
            start_conference_on_enter: None,
            end_conference_on_exit: None,
            max_participants: None,
            beep: None,
            record: None,
            recording_status_callback: None,
            status_callback: None,
            status_callback_event: None,
            status_callback_method: None,
            wait_url: None,
            wait_method: None,
        })
    }
}

/// What a `<Dial>` may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialNoun {
    /// A phone number.
    Number(Number),
    /// A SIP URI.
    Sip(Sip),
    /// A queue.
    Queue(Queue),
    /// A conference room.
    Conference(Conference),
}

/// `<Dial>`: rings its nouns at the same time; the first to answer is bridged.
///
/// ```
/// use texml::{Dial, DialNoun, DialTimeout, Sip, SipAddress, Url};
/// let agents = ["sip:a@x.example", "sip:b@x.example"]
///     .map(|u| DialNoun::Sip(Sip::new(SipAddress::new(u).unwrap())));
/// let dial = Dial::new(agents).unwrap()
///     .action(Url::parse("https://cc.example.com/retry").unwrap())
///     .timeout(DialTimeout::new(30).unwrap());
/// assert_eq!(dial.nouns().len(), 2);
/// assert!(Dial::new(Vec::<DialNoun>::new()).is_err()); // no empty <Dial>
/// assert!(DialTimeout::new(500).is_err());            // 5..=120
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// `action`: requested when the dial ends (with `DialCallStatus`).
    pub action: Option<Url>,
    /// `method` for `action`.
    pub method: Option<HttpMethod>,
    /// `callerId`.
    pub caller_id: Option<PhoneNumber>,
    /// `timeout`: ring time.
    pub timeout: Option<DialTimeout>,
    /// `timeLimit`: longest call.
    pub time_limit: Option<TimeLimit>,
    /// `hangupOnStar`.
    pub hangup_on_star: Option<bool>,
    /// `record`.
    pub record: Option<DialRecord>,
    /// `recordingChannels` (Telnyx-only).
    pub recording_channels: Option<RecordingChannels>,
    /// `recordMaxLength` (Telnyx-only).
    pub record_max_length: Option<MaxLength>,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<Url>,
    /// `recordingStatusCallbackMethod`.
    pub recording_status_callback_method: Option<HttpMethod>,
    /// `recordingStatusCallbackEvent`.
    pub recording_status_callback_event: Option<EventSet<RecordingEvent>>,
    /// `ringTone`.
    pub ring_tone: Option<Token>,
    /// `audioUrl` (Telnyx-only): audio the caller hears instead of ringback while the
    /// nouns ring; overrides `ringTone`.
    pub audio_url: Option<Url>,
    /// `answerOnBridge`.
    pub answer_on_bridge: Option<bool>,
    nouns: Vec<DialNoun>,
}

impl Dial {
    /// A `<Dial>` of `nouns`, rung at the same time.
    ///
    /// # Errors
    /// [`TexmlError::EmptyDial`] when `nouns` is empty.
    pub fn new(nouns: impl IntoIterator<Item = DialNoun>) -> Result<Self, TexmlError> {
        let nouns: Vec<DialNoun> = nouns.into_iter().collect();
        if nouns.is_empty() {
            return Err(TexmlError::EmptyDial);
        }
        Ok(Self {
            action: None,
            method: None,
            caller_id: None,
            timeout: None,
            time_limit: None,
            hangup_on_star: None,
            record: None,
            recording_channels: None,
            record_max_length: None,
            recording_status_callback: None,
            recording_status_callback_method: None,
            recording_status_callback_event: None,
            ring_tone: None,
            audio_url: None,
            answer_on_bridge: None,
            nouns,
        })
    }

    /// The nouns, never empty.
    #[must_use]
    pub fn nouns(&self) -> &[DialNoun] {
        &self.nouns
    }

    /// Sets `action` with `method="POST"`.
    #[must_use]
    pub fn action(mut self, url: Url) -> Self {
        self.action = Some(url);
        self.method = Some(HttpMethod::Post);
        self
    }

    /// Sets `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: DialTimeout) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets `record` and a POST `recordingStatusCallback` for the `completed` event.
    #[must_use]
    pub fn record(mut self, mode: DialRecord, status_callback: Url) -> Self {
        self.record = Some(mode);
        self.recording_status_callback = Some(status_callback);
        self.recording_status_callback_method = Some(HttpMethod::Post);
        self
    }
}

/// `<Record>`: records the caller, e.g. a voicemail.
///
/// ```
/// use texml::{Record, MaxLength, Url};
/// let cb = Url::parse("https://cc.example.com/api/call-center/voicemail/callback").unwrap();
/// let mut rec = Record::new().action(cb.clone());
/// rec.max_length = Some(MaxLength::new(120).unwrap());
/// rec.transcription = Some(true);
/// rec.transcription_callback = Some(cb);
/// assert!(texml::Response::new().record(rec).render_body().contains(r#"transcription="true""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// `action`: requested when recording ends.
    pub action: Option<Url>,
    /// `method` for `action`.
    pub method: Option<HttpMethod>,
    /// `finishOnKey`.
    pub finish_on_key: Option<DtmfKeys>,
    /// `timeout`: seconds of silence, 0 = never.
    pub timeout: Option<RecordTimeout>,
    /// `maxLength`.
    pub max_length: Option<MaxLength>,
    /// `playBeep`.
    pub play_beep: Option<bool>,
    /// `trim`.
    pub trim: Option<Trim>,
    /// `channels`.
    pub channels: Option<RecordingChannels>,
    /// `format` (Telnyx-only).
    pub format: Option<RecordFormat>,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<Url>,
    /// `recordingStatusCallbackMethod`.
    pub recording_status_callback_method: Option<HttpMethod>,
    /// `recordingStatusCallbackEvent`.
    pub recording_status_callback_event: Option<EventSet<RecordingEvent>>,
    /// `transcription` (Twilio calls it `transcribe`).
    pub transcription: Option<bool>,
    /// `transcriptionCallback` (Twilio: `transcribeCallback`).
    pub transcription_callback: Option<Url>,
    /// `transcriptionEngine` (Telnyx-only).
    pub transcription_engine: Option<TranscriptionEngine>,
    /// `transcriptionLanguage` (Telnyx-only).
    pub transcription_language: Option<Text>,
}

impl Record {
    /// A `<Record>` with Telnyx defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `action` with `method="POST"`.
    #[must_use]
    pub fn action(mut self, url: Url) -> Self {
        self.action = Some(url);
        self.method = Some(HttpMethod::Post);
        self
    }
}

/// `<Hangup/>`: ends the call.
///
/// ```
/// assert_eq!(texml::Response::new().hangup().render_body(), "<Response><Hangup/></Response>");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hangup;

/// `<Redirect>`: continues with the document at `url`.
///
/// ```
/// use texml::{Redirect, Url};
/// let r = Redirect::post(Url::parse("https://cc.example.com/next").unwrap());
/// assert_eq!(texml::Response::new().redirect(r).render_body(),
///     r#"<Response><Redirect method="POST">https://cc.example.com/next</Redirect></Response>"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Where to go.
    pub url: Url,
    /// `method`.
    pub method: Option<HttpMethod>,
}

impl Redirect {
    /// A POST redirect, so Telnyx's signature covers its parameters.
    #[must_use]
    pub fn post(url: Url) -> Self {
        Self {
            url,
            method: Some(HttpMethod::Post),
        }
    }
}

/// `<Reject>`: refuses the call (free of charge when it is the first verb).
///
/// ```
/// use texml::{Reject, RejectReason};
/// let r = Reject { reason: Some(RejectReason::Busy) };
/// assert_eq!(texml::Response::new().verb(r).render_body(), r#"<Response><Reject reason="busy"/></Response>"#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reject {
    /// `reason`.
    pub reason: Option<RejectReason>,
}

/// `<Enqueue>`: holds the caller in a named queue.
///
/// ```
/// use texml::{Enqueue, Text};
/// let e = Enqueue::new(Text::non_empty("queue", "support").unwrap());
/// assert_eq!(texml::Response::new().verb(e).render_body(), "<Response><Enqueue>support</Enqueue></Response>");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// The queue name (the body).
    pub name: Text,
    /// `action`: requested when the caller leaves the queue.
    pub action: Option<Url>,
    /// `method` for `action`.
    pub method: Option<HttpMethod>,
    /// `waitUrl`: the hold document.
    pub wait_url: Option<Url>,
    /// `waitUrlMethod`.
    pub wait_url_method: Option<HttpMethod>,
    /// `maxWaitTimeSecs` (Telnyx-only).
    pub max_wait_time: Option<MaxWaitTime>,
}

impl Enqueue {
    /// Enqueues into `name`.
    #[must_use]
    pub fn new(name: Text) -> Self {
        Self {
            name,
            action: None,
            method: None,
            wait_url: None,
            wait_url_method: None,
            max_wait_time: None,
        }
    }
}

/// `<Leave/>`: leaves the queue and continues after the `<Enqueue>`.
///
/// ```
/// assert_eq!(texml::Response::new().verb(texml::Leave).render_body(), "<Response><Leave/></Response>");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leave;
