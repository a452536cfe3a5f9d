#!/usr/bin/env python3
"""Regenerates the TwiML peer fixtures with Twilio's own helper library.

For the subset TeXML shares with TwiML, the documents the call flow emits are built here,
independently, with `twilio.twiml.voice_response.VoiceResponse`, and written to
`crates/call-center/tests/fixtures/twilio/<name>.xml`. The Rust test `twilio_peer` parses
them and ours and compares them as structures (element names, attributes, text).

Telnyx-only names are written with Twilio's spelling here (`transcribe`,
`transcribeCallback`); the Rust test maps them (see TELNYX_ONLY there). Telnyx-only
attributes Twilio has no counterpart for (`audioUrl`, `continueOnError`) are left out of the
comparison (TELNYX_EXTRA there).

Usage:  make twilio-fixtures   (creates .venv with `twilio` from PyPI, then runs this)
"""

import pathlib

from twilio.twiml.voice_response import Dial, Record, VoiceResponse

BASE = "https://cc.example.com/api/call-center"
OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/call-center/tests/fixtures/twilio"

GREETING = "Thank you for calling. Please hold while we connect you to an agent."
NOTICE = "This call may be recorded for quality and training purposes."
PLACE = "You are number 3 in line. Your expected wait is about 2 minutes."
NO_AGENTS = "All of our agents are busy at the moment. Please hold."
PROMPT = ("Sorry, no one is available to take your call. Please leave a message after the beep, "
          "and press the pound key when you are done.")
THANKS = "Thank you for your message. Goodbye."
GOODBYE = "Sorry, no one is available to take your call. Please try again later. Goodbye."
APOLOGY = "We are sorry, we are having technical difficulties."
LEG_EVENTS = "initiated ringing answered completed"


def greeting():
    r = VoiceResponse()
    r.say(GREETING)
    r.say(NOTICE)
    r.redirect(f"{BASE}/dial-agents?attempt=1", method="POST")
    return r


def dial(n):
    r = VoiceResponse()
    d = Dial(action=f"{BASE}/retry-dial?attempt=1", method="POST", timeout=30,
             record="record-from-answer-dual",
             recording_status_callback=f"{BASE}/events",
             recording_status_callback_method="POST")
    for i in range(n):
        d.sip(f"sip:agent{i}@example.sip.telnyx.com",
              status_callback=f"{BASE}/outbound/event?attempt=1",
              status_callback_event=LEG_EVENTS,
              status_callback_method="POST")
    r.append(d)
    return r


def hold():
    r = VoiceResponse()
    r.say(NO_AGENTS)
    r.pause(length=30)
    r.redirect(f"{BASE}/retry-dial?attempt=1", method="POST")
    return r


def hold_segment():
    r = VoiceResponse()
    r.say(PLACE)
    r.play(f"{BASE}/hold-music.wav")
    r.redirect(f"{BASE}/dial-agents?round=2", method="POST")
    return r


def to_voicemail():
    r = VoiceResponse()
    r.redirect(f"{BASE}/voicemail", method="POST")
    return r


def record():
    cb = f"{BASE}/voicemail/callback"
    return Record(action=cb, method="POST", finish_on_key="#", max_length=120, play_beep=True,
                  recording_status_callback=cb, recording_status_callback_method="POST",
                  transcribe=True, transcribe_callback=cb)


def voicemail():
    r = VoiceResponse()
    r.say(PROMPT)
    r.append(record())
    return r


def said_then_hangup(text):
    r = VoiceResponse()
    r.say(text)
    r.hangup()
    return r


def fallback():
    r = VoiceResponse()
    r.say(APOLOGY)
    r.say(PROMPT)
    r.append(record())
    return r


DOCUMENTS = {
    "greeting": greeting(),
    "dial_0_agents": hold(),
    "dial_1_agent": dial(1),
    "dial_3_agents": dial(3),
    "hold": hold_segment(),
    "to_voicemail": to_voicemail(),
    "voicemail": voicemail(),
    "voicemail_thanks": said_then_hangup(THANKS),
    "goodbye": said_then_hangup(GOODBYE),
    "fallback": fallback(),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, doc in DOCUMENTS.items():
        (OUT / f"{name}.xml").write_text(str(doc) + "\n", encoding="utf-8")
        print(f"wrote {OUT / name}.xml")


if __name__ == "__main__":
    main()
