//! Hostile input never panics: the Telnyx form parser, the Call Control JSON parser and the
//! signature check, fed arbitrary bytes and structured near-misses (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use call_center::{Endpoint, Params, Signed, UrlKeys, UrlKind, from_call_control, from_params};
use callcenter::signature::Verifier;
use proptest::prelude::*;

fn telnyx_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "CallSid",
            "ParentCallSid",
            "CallStatus",
            "To",
            "From",
            "CallDuration",
            "SequenceNumber",
            "DialCallStatus",
            "DialCallSid",
            "RecordingSid",
            "RecordingStatus",
            "RecordingUrl",
            "RecordingDuration",
            "TranscriptionSid",
            "TranscriptionText",
            "TranscriptionStatus",
            "AccountSid",
            "ConnectionId",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "in-progress",
            "completed",
            "no-answer",
            "sip:a@b",
            "1e999",
            "-1",
            "",
            "   "
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_form_parser_never_panics(raw in prop::collection::vec(any::<u8>(), 0..512), pairs in prop::collection::vec((telnyx_name(), value()), 0..12), round in proptest::option::of(any::<i32>()), call in value()) {
        // Raw bytes through the decoder the server uses, then every endpoint, with and
        // without signed URL parameters.
        let signed = round.map(|r| Signed::call(&call).round(r).agent(agents::AgentId::new()).kind(UrlKind::Action));
        if let Ok(decoded) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&raw) {
            let params = Params::new(decoded);
            for e in Endpoint::ALL {
                let _ = from_params(e, &params, signed.as_ref());
            }
        }
        let params = Params::new(pairs);
        for e in Endpoint::ALL {
            let _ = from_params(e, &params, signed.as_ref());
        }
    }

    #[test]
    fn the_url_signature_check_never_panics(query in prop::collection::vec((prop_oneof![Just("call".to_owned()), Just("round".to_owned()), Just("agent".to_owned()), Just("kind".to_owned()), Just("mac".to_owned()), value()], value()), 0..8)) {
        let keys = UrlKeys::random();
        for e in Endpoint::ALL {
            let _ = keys.verify("POST", e, &query);
        }
    }

    #[test]
    fn the_call_control_parser_never_panics(raw in prop::collection::vec(any::<u8>(), 0..512), event_type in any::<String>(), id in any::<String>(), leg in any::<String>(), cause in any::<String>()) {
        let _ = from_call_control(&raw);
        let structured = serde_json::json!({"data": {"id": id, "event_type": event_type, "payload": {"call_control_id": leg, "hangup_cause": cause, "to": 5}}});
        let _ = from_call_control(structured.to_string().as_bytes());
        for kind in ["call.initiated", "call.answered", "call.hangup"] {
            let near = serde_json::json!({"data": {"event_type": kind, "payload": {"call_control_id": leg}}});
            let _ = from_call_control(near.to_string().as_bytes());
        }
    }

    #[test]
    fn the_signature_check_never_panics(sig in proptest::option::of(any::<String>()), ts in proptest::option::of(any::<String>()), body in prop::collection::vec(any::<u8>(), 0..256), now in any::<i64>(), tolerance in any::<u32>()) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]).verifying_key().to_bytes();
        let verifier = Verifier::new(&key, tolerance).unwrap();
        let result = verifier.verify(sig.as_deref(), ts.as_deref(), &body, now);
        prop_assert!(result.is_err(), "random input never verifies");
    }
}
