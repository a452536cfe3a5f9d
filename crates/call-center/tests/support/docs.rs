//! Every document the call flow emits, built with default settings, for the golden and
//! Twilio peer tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use agents::AgentId;
use call_center::documents;
use call_center::{FlowSettings, Offer, OfferState, UrlKey, UrlKeys, Urls};
use chrono::{TimeZone, Utc};
use texml::Response;

/// The call the golden documents are for.
pub const CALL: &str = "v3:golden";

/// URLs signed with a fixed key, so the golden files are stable.
pub fn urls() -> Urls {
    Urls::new(
        "https://cc.example.com",
        UrlKeys::new(UrlKey::new([7; 32]), vec![]),
    )
    .unwrap()
}

pub fn offers(n: usize) -> Vec<Offer> {
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
    (0..n)
        .map(|i| Offer {
            call_sid: "v3:golden".into(),
            attempt: 1,
            agent_id: AgentId(uuid_from(i)),
            sip_uri: format!("sip:agent{i}@example.sip.telnyx.com"),
            sip_key: format!("agent{i}@example.sip.telnyx.com"),
            leg_sid: None,
            state: OfferState::Ringing,
            leg_status: None,
            offered_at: at,
            answered_at: None,
            ended_at: None,
            closed_at: None,
            leg_duration: None,
            talk_seconds: None,
            talk_final: false,
            misses_before: 0,
        })
        .collect()
}

fn uuid_from(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(i as u128 + 1)
}

/// Every document, by golden-file name.
pub fn documents() -> Vec<(&'static str, Response)> {
    let s = FlowSettings::default();
    let no_vm = FlowSettings {
        voicemail_enabled: false,
        ..FlowSettings::default()
    };
    let no_rec = FlowSettings {
        recording_enabled: false,
        ..FlowSettings::default()
    };
    let urls = urls();
    let c = CALL;
    vec![
        (
            "greeting",
            documents::greeting(&s, true, documents::to_hold_loop(&urls, c)),
        ),
        (
            "greeting_without_recording_notice",
            documents::greeting(&no_rec, false, documents::to_hold_loop(&urls, c)),
        ),
        (
            "dial_0_agents",
            documents::dial(&s, &urls, c, 1, &offers(0)),
        ),
        ("dial_1_agent", documents::dial(&s, &urls, c, 1, &offers(1))),
        (
            "dial_3_agents",
            documents::dial(&s, &urls, c, 1, &offers(3)),
        ),
        (
            "dial_3_agents_without_recording",
            documents::dial(&no_rec, &urls, c, 1, &offers(3)),
        ),
        (
            "hold",
            documents::hold(
                &s,
                &urls,
                c,
                2,
                call_center::Texts::position(3, Some(chrono::Duration::seconds(100))),
            ),
        ),
        ("hold_quiet", documents::hold(&s, &urls, c, 2, None)),
        ("to_voicemail", documents::to_voicemail(&urls, c)),
        ("voicemail", documents::voicemail(&s, &urls, c)),
        ("voicemail_thanks", documents::voicemail_thanks(&s)),
        ("goodbye", documents::goodbye(&s)),
        ("hangup", documents::hangup()),
        ("fallback", documents::fallback(&s, &urls, Some(c))),
        (
            "fallback_without_voicemail",
            documents::fallback(&no_vm, &urls, Some(c)),
        ),
        (
            "fallback_without_a_call",
            documents::fallback(&s, &urls, None),
        ),
    ]
}
