#!/usr/bin/env python3
"""Regenerates webhook-signature fixtures with an independent Ed25519 implementation (PyNaCl).

Writes bins/callcenter/tests/fixtures/signatures.json: a public key and cases, each a
timestamp header string, a raw body and a signature, with whether Telnyx's scheme
(Ed25519 over `timestamp|body`) accepts it. The Rust test `signature_interop` verifies
them and fails if the server would also accept a signature over the body alone or over
`timestamp.body` (Standard Webhooks' layout).

Usage:  make signature-fixtures   (creates .venv with `pynacl` from PyPI, then runs this)
"""

import base64
import json
import pathlib

from nacl.signing import SigningKey

OUT = pathlib.Path(__file__).resolve().parent.parent / "bins/callcenter/tests/fixtures/signatures.json"
SEED = bytes(range(32))  # fixed, so the file is reproducible
TS = "1795000000"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def main():
    key = SigningKey(SEED)
    sign = lambda message: b64(key.sign(message).signature)
    bodies = {
        "inbound_form": b"AccountSid=0b7c1f4e-acct&CallSid=v3%3AabcDEF_123&CallStatus=ringing&From=%2B13125550100&To=%2B13125550199",
        "plus_and_percent": b"CallSid=v3%3Ax&TranscriptionText=caf%C3%A9+%26+cr%C3%A8me+a%2Bb",
        "call_control_json": b'{"data":{"id":"0ccc7b54","event_type":"call.answered","payload":{"call_control_id":"v3:leg"}}}',
        "empty_get": b"",
    }
    cases = []
    for name, body in bodies.items():
        message = TS.encode() + b"|" + body
        cases.append({"name": name, "timestamp": TS, "body": body.decode(), "signature": sign(message), "valid": True})
        cases.append({"name": name + "_signed_body_only", "timestamp": TS, "body": body.decode(), "signature": sign(body), "valid": False})
        cases.append({"name": name + "_signed_timestamp_dot_body", "timestamp": TS, "body": body.decode(),
                      "signature": sign(TS.encode() + b"." + body), "valid": False})
        cases.append({"name": name + "_other_timestamp", "timestamp": str(int(TS) + 1), "body": body.decode(),
                      "signature": sign(message), "valid": False})
    fixture = {
        "generator": "PyNaCl (libsodium) via tools/signature_fixtures.py",
        "public_key": b64(bytes(key.verify_key)),
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
