//! XML text → element tree → model.
//!
//! Strict mode stops at the first unknown element or attribute or invalid value. Lenient mode
//! skips what it cannot use (an unknown attribute, a verb it does not model, an invalid value)
//! and reports each skip as a warning; only ill-formed XML or a root other than `<Response>`
//! stops it.

use crate::error::{ParseError, TexmlError};
use crate::model::{
    Conference, Dial, DialNoun, Enqueue, Gather, GatherChild, Hangup, Leave, Number, Pause, Play,
    PlaySource, Queue, Record, Redirect, Reject, Response, Say, Sip, Verb,
};
use crate::tree::{Element, read_document};
use crate::values::{
    DialTimeout, DigitCount, Digits, DtmfKeys, EventSet, GatherTimeout, Keyword, MaxLength,
    MaxParticipants, MaxWaitTime, PauseLength, PhoneNumber, PlayLoop, RecordTimeout, SayLoop,
    SipAddress, Text, TimeLimit, Token, Url,
};

/// A document read in lenient mode, with what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lenient {
    /// What could be read.
    pub response: Response,
    /// One entry per skipped element, attribute or value.
    pub warnings: Vec<ParseError>,
}

impl Response {
    /// Reads a document strictly.
    ///
    /// ```
    /// use texml::Response;
    /// let doc = Response::parse(r#"<Response><Say>Hi</Say><Hangup/></Response>"#).unwrap();
    /// assert_eq!(doc.verbs.len(), 2);
    /// assert!(Response::parse("<Response><Dance/></Response>").is_err());
    /// ```
    ///
    /// # Errors
    /// [`ParseError`] for ill-formed XML, a wrong root, an unknown element or attribute, or a
    /// value TeXML does not accept.
    pub fn parse(xml: &str) -> Result<Self, ParseError> {
        let root = read_document(xml)?;
        let mut ctx = Ctx {
            lenient: false,
            warnings: Vec::new(),
        };
        response(&mut ctx, &root)
    }

    /// Reads a document, skipping what it does not understand.
    ///
    /// ```
    /// use texml::Response;
    /// let read = Response::parse_lenient(r#"<Response><Dance/><Say colour="red">Hi</Say></Response>"#).unwrap();
    /// assert_eq!(read.response.verbs.len(), 1);
    /// assert_eq!(read.warnings.len(), 2);
    /// ```
    ///
    /// # Errors
    /// [`ParseError`] only for ill-formed XML or a root other than `<Response>`.
    pub fn parse_lenient(xml: &str) -> Result<Lenient, ParseError> {
        let root = read_document(xml)?;
        let mut ctx = Ctx {
            lenient: true,
            warnings: Vec::new(),
        };
        let response = response(&mut ctx, &root)?;
        Ok(Lenient {
            response,
            warnings: ctx.warnings,
        })
    }
}

struct Ctx {
    lenient: bool,
    warnings: Vec<ParseError>,
}

impl Ctx {
    /// Strict: the problem is the result. Lenient: it is noted and parsing goes on.
    fn problem(&mut self, e: ParseError) -> Result<(), ParseError> {
        if self.lenient {
            self.warnings.push(e);
            Ok(())
        } else {
            Err(e)
        }
    }

    /// Like `problem`, for an item that must then be skipped.
    fn skip<T>(&mut self, e: ParseError) -> Result<Option<T>, ParseError> {
        self.problem(e).map(|()| None)
    }
}

struct Attrs<'a> {
    el: &'a Element,
    used: Vec<bool>,
}

impl<'a> Attrs<'a> {
    fn new(el: &'a Element) -> Self {
        Self {
            el,
            used: vec![false; el.attributes.len()],
        }
    }

    fn raw(&mut self, name: &str) -> Option<&'a str> {
        let i = self.el.attributes.iter().position(|(n, _)| n == name)?;
        if let Some(flag) = self.used.get_mut(i) {
            *flag = true;
        }
        self.el.attributes.get(i).map(|(_, v)| v.as_str())
    }

    fn get<T>(
        &mut self,
        ctx: &mut Ctx,
        name: &str,
        convert: impl FnOnce(&str) -> Result<T, TexmlError>,
    ) -> Result<Option<T>, ParseError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        match convert(raw) {
            Ok(v) => Ok(Some(v)),
            Err(source) => ctx.skip(ParseError::InvalidValue {
                element: self.el.name.clone(),
                attribute: name.to_owned(),
                source,
            }),
        }
    }

    fn finish(self, ctx: &mut Ctx) -> Result<(), ParseError> {
        for ((name, _), used) in self.el.attributes.iter().zip(self.used) {
            if !used {
                ctx.problem(ParseError::UnknownAttribute {
                    element: self.el.name.clone(),
                    attribute: name.clone(),
                })?;
            }
        }
        Ok(())
    }
}

fn ranged<T>(
    check: fn(i64) -> Result<T, TexmlError>,
) -> impl FnOnce(&str) -> Result<T, TexmlError> {
    move |s| {
        let n: i64 = s.trim().parse().map_err(|_| TexmlError::InvalidValue {
            what: "number",
            reason: format!("{s:?} is not a whole number"),
        })?;
        check(n)
    }
}

fn boolean(s: &str) -> Result<bool, TexmlError> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(TexmlError::InvalidValue {
            what: "boolean",
            reason: format!("{s:?} is not true or false"),
        }),
    }
}

fn keyword<K: Keyword>(s: &str) -> Result<K, TexmlError> {
    K::from_keyword(s).ok_or_else(|| TexmlError::InvalidValue {
        what: K::WHAT,
        reason: format!(
            "{s:?} is not one of {}",
            K::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn url(s: &str) -> Result<Url, TexmlError> {
    Url::parse(s)
}

fn text(s: &str) -> Result<Text, TexmlError> {
    Text::new(s)
}

/// The element's text, which must be present and valid.
fn body<T>(
    ctx: &mut Ctx,
    el: &Element,
    what: &'static str,
    convert: impl FnOnce(&str) -> Result<T, TexmlError>,
) -> Result<Option<T>, ParseError> {
    if el.text.trim().is_empty() {
        return ctx.skip(ParseError::Missing {
            element: el.name.clone(),
            what,
        });
    }
    match convert(&el.text) {
        Ok(v) => Ok(Some(v)),
        Err(source) => ctx.skip(ParseError::InvalidValue {
            element: el.name.clone(),
            attribute: "body".into(),
            source,
        }),
    }
}

/// URL bodies may be surrounded by whitespace in hand-written documents.
fn trimmed_url(s: &str) -> Result<Url, TexmlError> {
    Url::parse(s.trim())
}

fn no_children(ctx: &mut Ctx, el: &Element) -> Result<(), ParseError> {
    for child in &el.children {
        ctx.problem(ParseError::UnknownElement {
            parent: el.name.clone(),
            name: child.name.clone(),
        })?;
    }
    Ok(())
}

fn no_text(ctx: &mut Ctx, el: &Element) -> Result<(), ParseError> {
    if el.text.trim().is_empty() {
        Ok(())
    } else {
        ctx.problem(ParseError::UnexpectedText {
            element: el.name.clone(),
        })
    }
}

fn response(ctx: &mut Ctx, root: &Element) -> Result<Response, ParseError> {
    if root.name != "Response" {
        return Err(ParseError::NotAResponse(root.name.clone()));
    }
    Attrs::new(root).finish(ctx)?;
    no_text(ctx, root)?;
    let mut verbs = Vec::with_capacity(root.children.len());
    for el in &root.children {
        if let Some(v) = verb(ctx, el)? {
            verbs.push(v);
        }
    }
    Ok(Response { verbs })
}

fn verb(ctx: &mut Ctx, el: &Element) -> Result<Option<Verb>, ParseError> {
    Ok(match el.name.as_str() {
        "Say" => say(ctx, el)?.map(Verb::Say),
        "Play" => play(ctx, el)?.map(Verb::Play),
        "Pause" => pause(ctx, el)?.map(Verb::Pause),
        "Gather" => gather(ctx, el)?.map(Verb::Gather),
        "Dial" => dial(ctx, el)?.map(Verb::Dial),
        "Record" => record(ctx, el)?.map(Verb::Record),
        "Hangup" => empty(ctx, el)?.then_some(Verb::Hangup(Hangup)),
        "Leave" => empty(ctx, el)?.then_some(Verb::Leave(Leave)),
        "Redirect" => redirect(ctx, el)?.map(Verb::Redirect),
        "Reject" => reject(ctx, el)?.map(Verb::Reject),
        "Enqueue" => enqueue(ctx, el)?.map(Verb::Enqueue),
        _ => ctx.skip(ParseError::UnknownElement {
            parent: "Response".into(),
            name: el.name.clone(),
        })?,
    })
}

fn empty(ctx: &mut Ctx, el: &Element) -> Result<bool, ParseError> {
    Attrs::new(el).finish(ctx)?;
    no_children(ctx, el)?;
    no_text(ctx, el)?;
    Ok(true)
}

fn say(ctx: &mut Ctx, el: &Element) -> Result<Option<Say>, ParseError> {
    let mut a = Attrs::new(el);
    let voice = a.get(ctx, "voice", text)?;
    let language = a.get(ctx, "language", text)?;
    let loop_count = a.get(ctx, "loop", ranged(SayLoop::check))?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let Some(text) = body(ctx, el, "text to say", |s| Text::non_empty("Say text", s))? else {
        return Ok(None);
    };
    Ok(Some(Say {
        text,
        voice,
        language,
        loop_count,
    }))
}

fn play(ctx: &mut Ctx, el: &Element) -> Result<Option<Play>, ParseError> {
    let mut a = Attrs::new(el);
    let loop_count = a.get(ctx, "loop", ranged(PlayLoop::check))?;
    let media = a.get(ctx, "mediaStorage", boolean)?.unwrap_or(false);
    let digits = a.get(ctx, "digits", |s| Digits::new(s))?;
    let continue_on_error = a.get(ctx, "continueOnError", boolean)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let source = match (digits, media) {
        (Some(d), _) if el.text.trim().is_empty() => Some(PlaySource::Digits(d)),
        (_, true) => body(ctx, el, "a media name", |s| {
            Text::non_empty("media name", s)
        })?
        .map(PlaySource::Media),
        _ => body(ctx, el, "an audio URL", trimmed_url)?.map(PlaySource::Url),
    };
    Ok(source.map(|source| Play {
        source,
        loop_count,
        continue_on_error,
    }))
}

fn pause(ctx: &mut Ctx, el: &Element) -> Result<Option<Pause>, ParseError> {
    let mut a = Attrs::new(el);
    let length = a.get(ctx, "length", ranged(PauseLength::check))?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    no_text(ctx, el)?;
    Ok(Some(Pause { length }))
}

fn gather(ctx: &mut Ctx, el: &Element) -> Result<Option<Gather>, ParseError> {
    let mut a = Attrs::new(el);
    let mut g = Gather {
        action: a.get(ctx, "action", url)?,
        input: a.get(ctx, "input", keyword)?,
        num_digits: a.get(ctx, "numDigits", ranged(DigitCount::check))?,
        min_digits: a.get(ctx, "minDigits", ranged(DigitCount::check))?,
        max_digits: a.get(ctx, "maxDigits", ranged(DigitCount::check))?,
        timeout: a.get(ctx, "timeout", ranged(GatherTimeout::check))?,
        finish_on_key: a.get(ctx, "finishOnKey", |s| DtmfKeys::new(s))?,
        valid_digits: a.get(ctx, "validDigits", |s| DtmfKeys::new(s))?,
        language: a.get(ctx, "language", text)?,
        hints: a.get(ctx, "hints", text)?,
        children: Vec::new(),
    };
    a.finish(ctx)?;
    no_text(ctx, el)?;
    for child in &el.children {
        let parsed = match child.name.as_str() {
            "Say" => say(ctx, child)?.map(GatherChild::Say),
            "Play" => play(ctx, child)?.map(GatherChild::Play),
            "Pause" => pause(ctx, child)?.map(GatherChild::Pause),
            _ => ctx.skip(ParseError::UnknownElement {
                parent: "Gather".into(),
                name: child.name.clone(),
            })?,
        };
        g.children.extend(parsed);
    }
    Ok(Some(g))
}

fn dial(ctx: &mut Ctx, el: &Element) -> Result<Option<Dial>, ParseError> {
    let mut a = Attrs::new(el);
    let action = a.get(ctx, "action", url)?;
    let method = a.get(ctx, "method", keyword)?;
    let caller_id = a.get(ctx, "callerId", |s| PhoneNumber::new(s))?;
    let timeout = a.get(ctx, "timeout", ranged(DialTimeout::check))?;
    let time_limit = a.get(ctx, "timeLimit", ranged(TimeLimit::check))?;
    let hangup_on_star = a.get(ctx, "hangupOnStar", boolean)?;
    let record_mode = a.get(ctx, "record", keyword)?;
    let recording_channels = a.get(ctx, "recordingChannels", keyword)?;
    let record_max_length = a.get(ctx, "recordMaxLength", ranged(MaxLength::check))?;
    let recording_status_callback = a.get(ctx, "recordingStatusCallback", url)?;
    let recording_status_callback_method = a.get(ctx, "recordingStatusCallbackMethod", keyword)?;
    let recording_status_callback_event =
        a.get(ctx, "recordingStatusCallbackEvent", EventSet::parse)?;
    let ring_tone = a.get(ctx, "ringTone", |s| Token::new(s))?;
    let audio_url = a.get(ctx, "audioUrl", url)?;
    let answer_on_bridge = a.get(ctx, "answerOnBridge", boolean)?;
    a.finish(ctx)?;
    no_text(ctx, el)?;
    let mut nouns = Vec::with_capacity(el.children.len());
    for child in &el.children {
        nouns.extend(noun(ctx, child)?);
    }
    let mut d = match Dial::new(nouns) {
        Ok(d) => d,
        Err(source) => {
            return ctx.skip(ParseError::InvalidValue {
                element: "Dial".into(),
                attribute: "nouns".into(),
                source,
            });
        }
    };
    d.action = action;
    d.method = method;
    d.caller_id = caller_id;
    d.timeout = timeout;
    d.time_limit = time_limit;
    d.hangup_on_star = hangup_on_star;
    d.record = record_mode;
    d.recording_channels = recording_channels;
    d.record_max_length = record_max_length;
    d.recording_status_callback = recording_status_callback;
    d.recording_status_callback_method = recording_status_callback_method;
    d.recording_status_callback_event = recording_status_callback_event;
    d.ring_tone = ring_tone;
    d.audio_url = audio_url;
    d.answer_on_bridge = answer_on_bridge;
    Ok(Some(d))
}

fn noun(ctx: &mut Ctx, el: &Element) -> Result<Option<DialNoun>, ParseError> {
    Ok(match el.name.as_str() {
        "Number" => number(ctx, el)?.map(DialNoun::Number),
        "Sip" => sip(ctx, el)?.map(DialNoun::Sip),
        "Queue" => queue(ctx, el)?.map(DialNoun::Queue),
        "Conference" => conference(ctx, el)?.map(DialNoun::Conference),
        _ => ctx.skip(ParseError::UnknownElement {
            parent: "Dial".into(),
            name: el.name.clone(),
        })?,
    })
}

fn number(ctx: &mut Ctx, el: &Element) -> Result<Option<Number>, ParseError> {
    let mut a = Attrs::new(el);
    let status_callback = a.get(ctx, "statusCallback", url)?;
    let status_callback_event = a.get(ctx, "statusCallbackEvent", EventSet::parse)?;
    let status_callback_method = a.get(ctx, "statusCallbackMethod", keyword)?;
    let send_digits = a.get(ctx, "sendDigits", |s| Digits::new(s))?;
    let target = a.get(ctx, "url", url)?;
    let method = a.get(ctx, "method", keyword)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let number = body(ctx, el, "a phone number", |s| PhoneNumber::new(s.trim()))?;
    Ok(number.map(|number| Number {
        number,
        status_callback,
        status_callback_event,
        status_callback_method,
        send_digits,
        url: target,
        method,
    }))
}

fn sip(ctx: &mut Ctx, el: &Element) -> Result<Option<Sip>, ParseError> {
    let mut a = Attrs::new(el);
    let username = a.get(ctx, "username", text)?;
    let password = a.get(ctx, "password", text)?;
    let status_callback = a.get(ctx, "statusCallback", url)?;
    let status_callback_event = a.get(ctx, "statusCallbackEvent", EventSet::parse)?;
    let status_callback_method = a.get(ctx, "statusCallbackMethod", keyword)?;
    let target = a.get(ctx, "url", url)?;
    let method = a.get(ctx, "method", keyword)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let uri = body(ctx, el, "a SIP URI", |s| SipAddress::new(s.trim()))?;
    Ok(uri.map(|uri| Sip {
        uri,
        username,
        password,
        status_callback,
        status_callback_event,
        status_callback_method,
        url: target,
        method,
    }))
}

fn queue(ctx: &mut Ctx, el: &Element) -> Result<Option<Queue>, ParseError> {
    let mut a = Attrs::new(el);
    let target = a.get(ctx, "url", url)?;
    let method = a.get(ctx, "method", keyword)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let name = body(ctx, el, "a queue name", |s| {
        Text::non_empty("queue name", s)
    })?;
    Ok(name.map(|name| Queue {
        name,
        url: target,
        method,
    }))
}

fn conference(ctx: &mut Ctx, el: &Element) -> Result<Option<Conference>, ParseError> {
    let mut a = Attrs::new(el);
    let muted = a.get(ctx, "muted", boolean)?;
    let start = a.get(ctx, "startConferenceOnEnter", boolean)?;
    let end = a.get(ctx, "endConferenceOnExit", boolean)?;
    let max_participants = a.get(ctx, "maxParticipants", ranged(MaxParticipants::check))?;
    let beep = a.get(ctx, "beep", keyword)?;
    let record_mode = a.get(ctx, "record", keyword)?;
    let recording_status_callback = a.get(ctx, "recordingStatusCallback", url)?;
    let status_callback = a.get(ctx, "statusCallback", url)?;
    let status_callback_event = a.get(ctx, "statusCallbackEvent", EventSet::parse)?;
    let status_callback_method = a.get(ctx, "statusCallbackMethod", keyword)?;
    let wait_url = a.get(ctx, "waitUrl", url)?;
    let wait_method = a.get(ctx, "waitMethod", keyword)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let name = body(ctx, el, "a conference name", |s| {
        Text::non_empty("Conference name", s)
    })?;
    Ok(name.map(|name| Conference {
        name,
        muted,
        start_conference_on_enter: start,
        end_conference_on_exit: end,
        max_participants,
        beep,
        record: record_mode,
        recording_status_callback,
        status_callback,
        status_callback_event,
        status_callback_method,
        wait_url,
        wait_method,
    }))
}

fn record(ctx: &mut Ctx, el: &Element) -> Result<Option<Record>, ParseError> {
    let mut a = Attrs::new(el);
    let r = Record {
        action: a.get(ctx, "action", url)?,
        method: a.get(ctx, "method", keyword)?,
        finish_on_key: a.get(ctx, "finishOnKey", |s| DtmfKeys::new(s))?,
        timeout: a.get(ctx, "timeout", ranged(RecordTimeout::check))?,
        max_length: a.get(ctx, "maxLength", ranged(MaxLength::check))?,
        play_beep: a.get(ctx, "playBeep", boolean)?,
        trim: a.get(ctx, "trim", keyword)?,
        channels: a.get(ctx, "channels", keyword)?,
        format: a.get(ctx, "format", keyword)?,
        recording_status_callback: a.get(ctx, "recordingStatusCallback", url)?,
        recording_status_callback_method: a.get(ctx, "recordingStatusCallbackMethod", keyword)?,
        recording_status_callback_event: a.get(
            ctx,
            "recordingStatusCallbackEvent",
            EventSet::parse,
        )?,
        transcription: a.get(ctx, "transcription", boolean)?,
        transcription_callback: a.get(ctx, "transcriptionCallback", url)?,
        transcription_engine: a.get(ctx, "transcriptionEngine", keyword)?,
        transcription_language: a.get(ctx, "transcriptionLanguage", text)?,
    };
    a.finish(ctx)?;
    no_children(ctx, el)?;
    no_text(ctx, el)?;
    Ok(Some(r))
}

fn redirect(ctx: &mut Ctx, el: &Element) -> Result<Option<Redirect>, ParseError> {
    let mut a = Attrs::new(el);
    let method = a.get(ctx, "method", keyword)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let target = body(ctx, el, "a URL", trimmed_url)?;
    Ok(target.map(|url| Redirect { url, method }))
}

fn reject(ctx: &mut Ctx, el: &Element) -> Result<Option<Reject>, ParseError> {
    let mut a = Attrs::new(el);
    let reason = a.get(ctx, "reason", keyword)?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    no_text(ctx, el)?;
    Ok(Some(Reject { reason }))
}

fn enqueue(ctx: &mut Ctx, el: &Element) -> Result<Option<Enqueue>, ParseError> {
    let mut a = Attrs::new(el);
    let action = a.get(ctx, "action", url)?;
    let method = a.get(ctx, "method", keyword)?;
    let wait_url = a.get(ctx, "waitUrl", url)?;
    let wait_url_method = a.get(ctx, "waitUrlMethod", keyword)?;
    let max_wait_time = a.get(ctx, "maxWaitTimeSecs", ranged(MaxWaitTime::check))?;
    a.finish(ctx)?;
    no_children(ctx, el)?;
    let name = body(ctx, el, "a queue name", |s| {
        Text::non_empty("queue name", s)
    })?;
    Ok(name.map(|name| Enqueue {
        name,
        action,
        method,
        wait_url,
        wait_url_method,
        max_wait_time,
    }))
}
