//! Model → XML text (streamed into the xml-rs writer, values borrowed from the model) or
//! model → element tree (for tests and comparisons). Both walk the model with the same code,
//! so they cannot disagree. Attribute order is fixed per element (the order of the struct
//! fields), so the output is deterministic.

use std::borrow::Cow;

use xml::EmitterConfig;
use xml::attribute::Attribute;
use xml::name::Name;
use xml::namespace::Namespace;
use xml::writer::{EventWriter, XmlEvent};

use crate::model::{
    Conference, Dial, DialNoun, Enqueue, Gather, GatherChild, Number, Pause, Play, PlaySource,
    Queue, Record, Redirect, Reject, Response, Say, Sip, Verb,
};
use crate::tree::{Element, escape_attribute, escape_text};
use crate::values::{Digits, DtmfKeys, EventSet, Keyword, PhoneNumber, Text, Token, Url};

type Attrs<'a> = Vec<(&'static str, Cow<'a, str>)>;

/// Converts a field into an attribute value without copying when it can.
trait AttrValue<'a> {
    fn attr_value(self) -> Cow<'a, str>;
}

impl<'a> AttrValue<'a> for &'a Text {
    fn attr_value(self) -> Cow<'a, str> {
        Cow::Borrowed(self.as_str())
    }
}

impl<'a> AttrValue<'a> for &'a Url {
    fn attr_value(self) -> Cow<'a, str> {
        Cow::Borrowed(self.as_str())
    }
}

macro_rules! borrowed_attr {
    ($($ty:ty),+) => {
        $(impl<'a> AttrValue<'a> for &'a $ty {
            fn attr_value(self) -> Cow<'a, str> {
                Cow::Borrowed(self.as_str())
            }
        })+
    };
}
borrowed_attr!(DtmfKeys, Digits, Token, PhoneNumber);

impl<'a, K: Keyword> AttrValue<'a> for &'a EventSet<K> {
    fn attr_value(self) -> Cow<'a, str> {
        Cow::Borrowed(self.as_str())
    }
}

impl<'a> AttrValue<'a> for bool {
    fn attr_value(self) -> Cow<'a, str> {
        Cow::Borrowed(if self { "true" } else { "false" })
    }
}

macro_rules! keyword_attr {
    ($($ty:ident),+) => {
        $(impl<'a> AttrValue<'a> for crate::values::$ty {
            fn attr_value(self) -> Cow<'a, str> {
                Cow::Borrowed(self.as_str())
            }
        })+
    };
}
keyword_attr!(
    HttpMethod,
    DialRecord,
    RecordingChannels,
    RejectReason,
    GatherInput,
    RecordFormat,
    Trim,
    TranscriptionEngine,
    ConferenceBeep,
    ConferenceRecord
);

macro_rules! number_attr {
    ($($ty:ident),+) => {
        $(impl<'a> AttrValue<'a> for crate::values::$ty {
            fn attr_value(self) -> Cow<'a, str> {
                Cow::Owned(self.get().to_string())
            }
        })+
    };
}
number_attr!(
    SayLoop,
    PlayLoop,
    PauseLength,
    DialTimeout,
    TimeLimit,
    MaxLength,
    RecordTimeout,
    DigitCount,
    GatherTimeout,
    MaxParticipants,
    MaxWaitTime
);

/// Collects an element's attributes in order.
struct A<'a>(Attrs<'a>);

impl<'a> A<'a> {
    fn new() -> Self {
        Self(Vec::with_capacity(8))
    }

    fn opt(mut self, name: &'static str, value: Option<impl AttrValue<'a>>) -> Self {
        if let Some(v) = value {
            self.0.push((name, v.attr_value()));
        }
        self
    }
}

/// Where a walk of the model goes: XML text or an element tree.
trait Out<'a> {
    fn open(&mut self, name: &'static str, attrs: A<'a>);
    fn text(&mut self, text: &'a str);
    fn close(&mut self, name: &'static str);

    fn leaf(&mut self, name: &'static str, attrs: A<'a>, text: &'a str) {
        self.open(name, attrs);
        if !text.is_empty() {
            self.text(text);
        }
        self.close(name);
    }
}

struct XmlOut<W: std::io::Write> {
    writer: EventWriter<W>,
    failed: Option<xml::writer::Error>,
}

impl<W: std::io::Write> XmlOut<W> {
    fn record(&mut self, result: Result<(), xml::writer::Error>) {
        if let Err(e) = result {
            self.failed.get_or_insert(e);
        }
    }
}

impl<'a, W: std::io::Write> Out<'a> for XmlOut<W> {
    fn open(&mut self, name: &'static str, attrs: A<'a>) {
        let escaped: Vec<(&'static str, Cow<'_, str>)> = attrs
            .0
            .iter()
            .map(|(n, v)| (*n, escape_attribute(v)))
            .collect();
        let attributes: Vec<Attribute<'_>> = escaped
            .iter()
            .map(|(n, v)| Attribute {
                name: Name::local(n),
                value: v.as_ref(),
            })
            .collect();
        let event = XmlEvent::StartElement {
            name: Name::local(name),
            attributes: Cow::Borrowed(&attributes),
            namespace: Cow::Owned(Namespace::empty()),
        };
        let result = self.writer.write(event);
        self.record(result);
    }

    fn text(&mut self, text: &'a str) {
        let escaped = escape_text(text);
        let result = self.writer.write(XmlEvent::Characters(&escaped));
        self.record(result);
    }

    fn close(&mut self, name: &'static str) {
        let result = self.writer.write(XmlEvent::EndElement {
            name: Some(Name::local(name)),
        });
        self.record(result);
    }
}

struct TreeOut {
    stack: Vec<Element>,
    root: Option<Element>,
}

impl<'a> Out<'a> for TreeOut {
    fn open(&mut self, name: &'static str, attrs: A<'a>) {
        let mut el = Element::new(name);
        el.attributes = attrs
            .0
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.into_owned()))
            .collect();
        self.stack.push(el);
    }

    fn text(&mut self, text: &'a str) {
        if let Some(top) = self.stack.last_mut() {
            top.text.push_str(text);
        }
    }

    fn close(&mut self, _name: &'static str) {
        if let Some(done) = self.stack.pop() {
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(done),
                None => self.root = Some(done),
            }
        }
    }
}

impl Response {
    /// The document as an element tree.
    #[must_use]
    pub fn to_element(&self) -> Element {
        let mut out = TreeOut {
            stack: Vec::new(),
            root: None,
        };
        response(&mut out, self);
        out.root.unwrap_or_else(|| Element::new("Response"))
    }

    /// Renders the document: XML declaration, UTF-8, no indentation.
    #[must_use]
    pub fn render(&self) -> String {
        self.write(false)
    }

    /// Renders with indentation, for people and golden files.
    #[must_use]
    pub fn render_pretty(&self) -> String {
        self.write(true)
    }

    /// Renders without the XML declaration (handy in examples and tests).
    #[must_use]
    pub fn render_body(&self) -> String {
        let full = self.render();
        match full.find("?>") {
            Some(end) => full[end + 2..].to_owned(),
            None => full,
        }
    }

    fn write(&self, pretty: bool) -> String {
        let mut buffer = Vec::with_capacity(128 + 160 * self.verbs.len());
        let mut config = EmitterConfig::new();
        config.perform_indent = pretty;
        config.perform_escaping = false; // escaped by hand, see `tree`
        config.write_document_declaration = true;
        config.normalize_empty_elements = true;
        config.pad_self_closing = false;
        config.keep_element_names_stack = false;
        let mut out = XmlOut {
            writer: config.create_writer(&mut buffer),
            failed: None,
        };
        response(&mut out, self);
        if let Some(e) = out.failed {
            // Unreachable with a Vec sink and the model's fixed element names; never emit a
            // truncated document.
            return format!("<!-- texml writer error: {e} -->");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

fn response<'a>(out: &mut impl Out<'a>, r: &'a Response) {
    out.open("Response", A::new());
    for v in &r.verbs {
        verb(out, v);
    }
    out.close("Response");
}

fn verb<'a>(out: &mut impl Out<'a>, v: &'a Verb) {
    match v {
        Verb::Say(s) => say(out, s),
        Verb::Play(p) => play(out, p),
        Verb::Pause(p) => pause(out, p),
        Verb::Gather(g) => gather(out, g),
        Verb::Dial(d) => dial(out, d),
        Verb::Record(r) => record(out, r),
        Verb::Hangup(_) => out.leaf("Hangup", A::new(), ""),
        Verb::Redirect(r) => redirect(out, r),
        Verb::Reject(r) => reject(out, r),
        Verb::Enqueue(e) => enqueue(out, e),
        Verb::Leave(_) => out.leaf("Leave", A::new(), ""),
    }
}

fn say<'a>(out: &mut impl Out<'a>, s: &'a Say) {
    let attrs = A::new()
        .opt("voice", s.voice.as_ref())
        .opt("language", s.language.as_ref())
        .opt("loop", s.loop_count);
    out.leaf("Say", attrs, s.text.as_str());
}

fn play<'a>(out: &mut impl Out<'a>, p: &'a Play) {
    let attrs = A::new()
        .opt("loop", p.loop_count)
        .opt("continueOnError", p.continue_on_error);
    match &p.source {
        PlaySource::Url(u) => out.leaf("Play", attrs, u.as_str()),
        PlaySource::Media(name) => {
            out.leaf("Play", attrs.opt("mediaStorage", Some(true)), name.as_str())
        }
        PlaySource::Digits(d) => out.leaf("Play", attrs.opt("digits", Some(d)), ""),
    }
}

fn pause<'a>(out: &mut impl Out<'a>, p: &'a Pause) {
    out.leaf("Pause", A::new().opt("length", p.length), "");
}

fn gather<'a>(out: &mut impl Out<'a>, g: &'a Gather) {
    let attrs = A::new()
        .opt("action", g.action.as_ref())
        .opt("input", g.input)
        .opt("numDigits", g.num_digits)
        .opt("minDigits", g.min_digits)
        .opt("maxDigits", g.max_digits)
        .opt("timeout", g.timeout)
        .opt("finishOnKey", g.finish_on_key.as_ref())
        .opt("validDigits", g.valid_digits.as_ref())
        .opt("language", g.language.as_ref())
        .opt("hints", g.hints.as_ref());
    out.open("Gather", attrs);
    for child in &g.children {
        match child {
            GatherChild::Say(s) => say(out, s),
            GatherChild::Play(p) => play(out, p),
            GatherChild::Pause(p) => pause(out, p),
        }
    }
    out.close("Gather");
}

fn dial<'a>(out: &mut impl Out<'a>, d: &'a Dial) {
    let attrs = A::new()
        .opt("action", d.action.as_ref())
        .opt("method", d.method)
        .opt("callerId", d.caller_id.as_ref())
        .opt("timeout", d.timeout)
        .opt("timeLimit", d.time_limit)
        .opt("hangupOnStar", d.hangup_on_star)
        .opt("record", d.record)
        .opt("recordingChannels", d.recording_channels)
        .opt("recordMaxLength", d.record_max_length)
        .opt(
            "recordingStatusCallback",
            d.recording_status_callback.as_ref(),
        )
        .opt(
            "recordingStatusCallbackMethod",
            d.recording_status_callback_method,
        )
        .opt(
            "recordingStatusCallbackEvent",
            d.recording_status_callback_event.as_ref(),
        )
        .opt("ringTone", d.ring_tone.as_ref())
        .opt("audioUrl", d.audio_url.as_ref())
        .opt("answerOnBridge", d.answer_on_bridge);
    out.open("Dial", attrs);
    for n in d.nouns() {
        match n {
            DialNoun::Number(n) => number(out, n),
            DialNoun::Sip(s) => sip(out, s),
            DialNoun::Queue(q) => queue(out, q),
            DialNoun::Conference(c) => conference(out, c),
        }
    }
    out.close("Dial");
}

fn number<'a>(out: &mut impl Out<'a>, n: &'a Number) {
    let attrs = A::new()
        .opt("statusCallback", n.status_callback.as_ref())
        .opt("statusCallbackEvent", n.status_callback_event.as_ref())
        .opt("statusCallbackMethod", n.status_callback_method)
        .opt("sendDigits", n.send_digits.as_ref())
        .opt("url", n.url.as_ref())
        .opt("method", n.method);
    out.leaf("Number", attrs, n.number.as_str());
}

fn sip<'a>(out: &mut impl Out<'a>, s: &'a Sip) {
    let attrs = A::new()
        .opt("username", s.username.as_ref())
        .opt("password", s.password.as_ref())
        .opt("statusCallback", s.status_callback.as_ref())
        .opt("statusCallbackEvent", s.status_callback_event.as_ref())
        .opt("statusCallbackMethod", s.status_callback_method)
        .opt("url", s.url.as_ref())
        .opt("method", s.method);
    out.leaf("Sip", attrs, s.uri.as_str());
}

fn queue<'a>(out: &mut impl Out<'a>, q: &'a Queue) {
    let attrs = A::new().opt("url", q.url.as_ref()).opt("method", q.method);
    out.leaf("Queue", attrs, q.name.as_str());
}

fn conference<'a>(out: &mut impl Out<'a>, c: &'a Conference) {
    let attrs = A::new()
        .opt("muted", c.muted)
        .opt("startConferenceOnEnter", c.start_conference_on_enter)
        .opt("endConferenceOnExit", c.end_conference_on_exit)
        .opt("maxParticipants", c.max_participants)
        .opt("beep", c.beep)
        .opt("record", c.record)
        .opt(
            "recordingStatusCallback",
            c.recording_status_callback.as_ref(),
        )
        .opt("statusCallback", c.status_callback.as_ref())
        .opt("statusCallbackEvent", c.status_callback_event.as_ref())
        .opt("statusCallbackMethod", c.status_callback_method)
        .opt("waitUrl", c.wait_url.as_ref())
        .opt("waitMethod", c.wait_method);
    out.leaf("Conference", attrs, c.name.as_str());
}

fn record<'a>(out: &mut impl Out<'a>, r: &'a Record) {
    let attrs = A::new()
        .opt("action", r.action.as_ref())
        .opt("method", r.method)
        .opt("finishOnKey", r.finish_on_key.as_ref())
        .opt("timeout", r.timeout)
        .opt("maxLength", r.max_length)
        .opt("playBeep", r.play_beep)
        .opt("trim", r.trim)
        .opt("channels", r.channels)
        .opt("format", r.format)
        .opt(
            "recordingStatusCallback",
            r.recording_status_callback.as_ref(),
        )
        .opt(
            "recordingStatusCallbackMethod",
            r.recording_status_callback_method,
        )
        .opt(
            "recordingStatusCallbackEvent",
            r.recording_status_callback_event.as_ref(),
        )
        .opt("transcription", r.transcription)
        .opt("transcriptionCallback", r.transcription_callback.as_ref())
        .opt("transcriptionEngine", r.transcription_engine)
        .opt("transcriptionLanguage", r.transcription_language.as_ref());
    out.leaf("Record", attrs, "");
}

fn redirect<'a>(out: &mut impl Out<'a>, r: &'a Redirect) {
    out.leaf("Redirect", A::new().opt("method", r.method), r.url.as_str());
}

fn reject<'a>(out: &mut impl Out<'a>, r: &'a Reject) {
    out.leaf("Reject", A::new().opt("reason", r.reason), "");
}

fn enqueue<'a>(out: &mut impl Out<'a>, e: &'a Enqueue) {
    let attrs = A::new()
        .opt("action", e.action.as_ref())
        .opt("method", e.method)
        .opt("waitUrl", e.wait_url.as_ref())
        .opt("waitUrlMethod", e.wait_url_method)
        .opt("maxWaitTimeSecs", e.max_wait_time);
    out.leaf("Enqueue", attrs, e.name.as_str());
}
