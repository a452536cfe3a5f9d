//! Peer check against Twilio's own helper library: for the subset TeXML shares with TwiML,
//! our documents and the ones `tools/twiml_fixtures.py` generated with `twilio` (PyPI) are
//! the same structures: element names, attributes (as sets), text, child order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use texml::tree::{Element, read_document};

/// Names that differ because they are Telnyx's own: (Telnyx name, Twilio name).
const TELNYX_ONLY: &[(&str, &str)] = &[
    ("transcription", "transcribe"),
    ("transcriptionCallback", "transcribeCallback"),
];

/// Telnyx-only attributes with no TwiML counterpart: left out of the comparison.
const TELNYX_EXTRA: &[&str] = &["audioUrl", "continueOnError"];

/// Our URLs carry signed parameters Twilio's fixtures cannot know; the peer check is about
/// the documents' structure, so URLs are compared without their query.
fn without_query(v: &str) -> String {
    if v.starts_with("https://") {
        v.split('?').next().unwrap_or(v).to_owned()
    } else {
        v.to_owned()
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Shape {
    name: String,
    attributes: BTreeMap<String, String>,
    text: String,
    children: Vec<Shape>,
}

fn shape(el: &Element) -> Shape {
    let attributes = el
        .attributes
        .iter()
        .filter(|(k, _)| !TELNYX_EXTRA.contains(&k.as_str()))
        .map(|(k, v)| {
            let k = TELNYX_ONLY
                .iter()
                .find(|(telnyx, _)| telnyx == k)
                .map_or(k.as_str(), |(_, twilio)| twilio);
            (k.to_owned(), without_query(v))
        })
        .collect();
    Shape {
        name: el.name.clone(),
        attributes,
        text: if el.children.is_empty() {
            without_query(&el.text)
        } else {
            String::new()
        },
        children: el.children.iter().map(shape).collect(),
    }
}

#[test]
fn our_documents_match_twilios_for_the_shared_subset() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/twilio");
    let mut compared = 0;
    for (name, doc) in support::docs::documents() {
        let path = dir.join(format!("{name}.xml"));
        let Ok(twilio) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ours = shape(&read_document(&doc.render()).unwrap());
        let theirs = shape(&read_document(&twilio).unwrap());
        assert_eq!(ours, theirs, "{name}");
        compared += 1;
    }
    assert_eq!(
        compared, 10,
        "every fixture written by tools/twiml_fixtures.py is compared"
    );
}

#[test]
fn the_telnyx_spelling_is_what_we_emit() {
    let voicemail = support::docs::documents()
        .into_iter()
        .find(|(n, _)| *n == "voicemail")
        .unwrap()
        .1
        .render();
    assert!(
        voicemail.contains("transcription=\"true\"")
            && voicemail.contains("transcriptionCallback=")
    );
    assert!(!voicemail.contains("transcribe="));
}
