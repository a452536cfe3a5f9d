//! Signatures made by an independent implementation (PyNaCl, `tools/signature_fixtures.py`)
//! verify with the server's code; signatures over the body alone or over `timestamp.body`
//! do not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use callcenter::config::decode_key;
use callcenter::signature::{SignatureError, Verifier};
use serde_json::Value;

#[test]
fn pynacl_fixtures_verify_exactly_as_labelled() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures.json"
    ))
    .unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let key = decode_key(fixture["public_key"].as_str().unwrap()).unwrap();
    let verifier = Verifier::new(&key, 300).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 16);
    let mut refused_layouts = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let ts = case["timestamp"].as_str().unwrap();
        let result = verifier.verify(
            Some(case["signature"].as_str().unwrap()),
            Some(ts),
            case["body"].as_str().unwrap().as_bytes(),
            1_795_000_000,
        );
        if case["valid"].as_bool().unwrap() {
            assert!(result.is_ok(), "{name}: {result:?}");
        } else {
            assert_eq!(result.unwrap_err(), SignatureError::Invalid, "{name}");
            if name.ends_with("_signed_body_only") || name.ends_with("_signed_timestamp_dot_body") {
                refused_layouts += 1;
            }
        }
    }
    assert_eq!(
        refused_layouts, 8,
        "both wrong layouts are present for every body, and refused"
    );
}
