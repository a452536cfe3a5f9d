//! Every TeXML document the flow sends, built from settings and state. Pure functions;
//! golden files in `tests/golden/` pin their exact text.

use texml::{
    CallProgressEvent, Dial, DialNoun, DialRecord, DtmfKeys, EventSet, HttpMethod, Pause,
    PauseLength, Play, PlaySource, Record, Redirect, Response, Say, Sip, SipAddress, Url,
};

use crate::model::Offer;
use crate::settings::FlowSettings;
use crate::urls::{UrlKind, Urls};

/// The audio of one hold segment: the configured music, or the server's own.
fn hold_music<'a>(s: &'a FlowSettings, urls: &'a Urls) -> &'a Url {
    s.queue
        .hold_music
        .as_ref()
        .unwrap_or_else(|| urls.hold_music())
}

/// One segment of the hold loop: the caller's place when it is announced, one play of the
/// hold music, then the next request of the loop (where the reserved offer is delivered
/// when the push did not).
#[must_use]
pub fn hold(
    s: &FlowSettings,
    urls: &Urls,
    call: &str,
    next_round: i32,
    announce: Option<Say>,
) -> Response {
    let mut doc = Response::new();
    if let Some(say) = announce {
        doc = doc.say(say);
    }
    let mut play = Play::new(PlaySource::Url(hold_music(s, urls).clone()));
    play.continue_on_error = Some(true);
    doc.verb(play)
        .redirect(Redirect::post(urls.dial_agents(call, next_round)))
}

/// The greeting, the recording notice when `notice`, then `next`: round 1's `<Dial>` when
/// agents were reserved for the caller at once, else [`to_hold_loop`].
#[must_use]
pub fn greeting(s: &FlowSettings, notice: bool, next: Response) -> Response {
    let mut doc = Response::new().say(s.texts.greeting.clone());
    if notice {
        doc = doc.say(s.texts.recording_notice.clone());
    }
    doc.verbs.extend(next.verbs);
    doc
}

/// On to the hold loop's first request (where a reserved offer is delivered).
#[must_use]
pub fn to_hold_loop(urls: &Urls, call: &str) -> Response {
    Response::new().redirect(Redirect::post(urls.dial_agents(call, 1)))
}

fn leg_events() -> Option<EventSet<CallProgressEvent>> {
    EventSet::new([
        CallProgressEvent::Initiated,
        CallProgressEvent::Ringing,
        CallProgressEvent::Answered,
        CallProgressEvent::Completed,
    ])
    .ok()
}

/// Rings the agents of round `attempt` at once; the first to answer is bridged. Each
/// `<Sip>` reports to a URL naming its offer (round and agent), so a leg is known by its
/// offer whatever Telnyx writes in `To`. Falls back to [`hold_without_agents`] when no
/// offer has a usable SIP URI.
#[must_use]
pub fn dial<'a>(
    s: &FlowSettings,
    urls: &Urls,
    call: &str,
    attempt: i32,
    offers: impl IntoIterator<Item = &'a Offer>,
) -> Response {
    let events = leg_events();
    let nouns: Vec<DialNoun> = offers
        .into_iter()
        .filter_map(|o| Some((o.agent_id, SipAddress::new(o.sip_uri.as_str()).ok()?)))
        .map(|(agent, uri)| {
            let mut sip = Sip::new(uri);
            sip.status_callback = Some(urls.outbound_event(call, attempt, agent));
            sip.status_callback_event.clone_from(&events);
            sip.status_callback_method = Some(HttpMethod::Post);
            DialNoun::Sip(sip)
        })
        .collect();
    let Ok(mut dial) = Dial::new(nouns) else {
        return hold_without_agents(s, urls, call, attempt);
    };
    dial = dial
        .action(urls.retry_dial(call, attempt))
        .timeout(s.dial_timeout);
    dial.audio_url = Some(hold_music(s, urls).clone());
    if s.recording_enabled {
        dial = dial.record(DialRecord::RecordFromAnswerDual, urls.call_recording(call));
    }
    Response::new().dial(dial)
}

/// A round with nobody to ring still takes its time: a short message and a pause as long
/// as the ring time, then the round's end is reported like an unanswered `<Dial>`.
#[must_use]
pub fn hold_without_agents(s: &FlowSettings, urls: &Urls, call: &str, attempt: i32) -> Response {
    let pause = PauseLength::new(s.dial_timeout.get())
        .ok()
        .map(Pause::seconds)
        .unwrap_or_default();
    Response::new()
        .say(s.texts.no_agents.clone())
        .pause(pause)
        .redirect(Redirect::post(urls.round_without_agents(call, attempt)))
}

/// On to voicemail.
#[must_use]
pub fn to_voicemail(urls: &Urls, call: &str) -> Response {
    Response::new().redirect(Redirect::post(urls.voicemail(call)))
}

/// The voicemail prompt and the recording, with transcription.
#[must_use]
pub fn voicemail(s: &FlowSettings, urls: &Urls, call: &str) -> Response {
    Response::new()
        .say(s.texts.voicemail_prompt.clone())
        .record(voicemail_record(s, urls, call))
}

/// `<Record>` with one signed URL per callback kind (action, recording status,
/// transcription).
fn voicemail_record(s: &FlowSettings, urls: &Urls, call: &str) -> Record {
    let mut rec = Record::new().action(urls.voicemail_callback(call, UrlKind::Action));
    rec.finish_on_key = DtmfKeys::new("#").ok();
    rec.max_length = Some(s.voicemail_max_length);
    rec.play_beep = Some(true);
    rec.recording_status_callback = Some(urls.voicemail_callback(call, UrlKind::Recording));
    rec.recording_status_callback_method = Some(HttpMethod::Post);
    rec.transcription = Some(true);
    rec.transcription_callback = Some(urls.voicemail_callback(call, UrlKind::Transcription));
    rec
}

/// After the voicemail was recorded.
#[must_use]
pub fn voicemail_thanks(s: &FlowSettings) -> Response {
    Response::new()
        .say(s.texts.voicemail_thanks.clone())
        .hangup()
}

/// Every round failed and voicemail is off.
#[must_use]
pub fn goodbye(s: &FlowSettings) -> Response {
    Response::new().say(s.texts.goodbye.clone()).hangup()
}

/// Nothing more to do for this call.
#[must_use]
pub fn hangup() -> Response {
    Response::new().hangup()
}

/// The answer when the store or anything else failed: an apology, then voicemail (recorded
/// straight to the callbacks, which store it once the store is back) or a goodbye. Never
/// dead air. Without a usable `CallSid` (`call` is `None`) there is nothing to sign a
/// callback for: an apology and a goodbye.
#[must_use]
pub fn fallback(s: &FlowSettings, urls: &Urls, call: Option<&str>) -> Response {
    let doc = Response::new().say(s.texts.apology.clone());
    match call {
        Some(call) if s.voicemail_enabled => doc
            .say(s.texts.voicemail_prompt.clone())
            .record(voicemail_record(s, urls, call)),
        _ => doc.say(s.texts.goodbye.clone()).hangup(),
    }
}
