//! Golden files: the exact text of every document the call flow emits.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p call-center --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod support;

use std::path::PathBuf;

use support::docs::documents;
use texml::Response;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_document_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (name, doc) in documents() {
        let path = golden_dir().join(format!("{name}.xml"));
        let rendered = doc.render_pretty() + "\n";
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
        if expected != rendered {
            mismatches.push(format!(
                "{name}:\n--- expected\n{expected}\n--- got\n{rendered}"
            ));
        }
        // Strict parsing accepts what we emit, and reads back the same model.
        assert_eq!(Response::parse(&rendered).unwrap(), doc, "{name}");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn documents_carry_only_absolute_post_callbacks() {
    for (name, doc) in documents() {
        let xml = doc.render();
        assert!(!xml.contains("method=\"GET\""), "{name}");
        for attr in [
            "action=\"",
            "statusCallback=\"",
            "recordingStatusCallback=\"",
            "transcriptionCallback=\"",
        ] {
            for (i, _) in xml.match_indices(attr) {
                assert!(
                    xml[i + attr.len()..].starts_with("https://cc.example.com/api/call-center/"),
                    "{name}: {attr}"
                );
            }
        }
    }
}
