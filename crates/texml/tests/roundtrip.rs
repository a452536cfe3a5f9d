//! Property tests: `parse(render(doc)) == doc`, and hostile text never breaks the document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use proptest::prelude::*;
use texml::tree::read_document;
use texml::*;

/// Characters that stress escaping, mixed with arbitrary Unicode (controls included).
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        1 => prop::sample::select(vec![
            '<', '>', '&', '"', '\'', ']', '\r', '\n', '\t', ' ', '\u{0}', '\u{1}', '\u{8}',
            '\u{B}', '\u{1F}', '\u{7F}', '\u{85}', '\u{FFFE}', '\u{FFFF}', '\u{FEFF}', 'é', '😀',
        ]),
        1 => prop::sample::select(vec!["]]>", "&amp;", "</Say>", "<Hangup/>", "<!--", "?>"])
            .prop_flat_map(|s| Just(s.chars().next().unwrap_or('x'))),
    ]
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(nasty_char(), 0..24).prop_map(|v| v.into_iter().collect()),
        prop::sample::select(vec![
            "]]>".to_owned(),
            "</Say><Hangup/><Say>".to_owned(),
            "a\"b'c<d>e&f".to_owned(),
            "\r\n\t".to_owned(),
        ]),
    ]
}

/// Only XML characters, never blank: what the model accepts for spoken text.
fn clean_text() -> impl Strategy<Value = String> {
    nasty_string().prop_map(|s| {
        let s: String = s.chars().filter(|c| is_xml_char(*c)).collect();
        if s.trim().is_empty() {
            format!("x{s}")
        } else {
            s
        }
    })
}

fn text() -> impl Strategy<Value = Text> {
    clean_text().prop_map(|s| Text::new(s).unwrap())
}

fn url() -> impl Strategy<Value = Url> {
    (0u8..4, nasty_string()).prop_map(|(host, q)| {
        let q: String = q.chars().filter(|c| is_xml_char(*c)).collect();
        Url::parse(&format!("https://h{host}.example/api/call-center/x?q={q}"))
            .unwrap_or_else(|_| Url::parse("https://fallback.example/").unwrap())
    })
}

fn method() -> impl Strategy<Value = HttpMethod> {
    prop::sample::select(HttpMethod::ALL.to_vec())
}

fn keyword<K: Keyword + std::fmt::Debug>() -> impl Strategy<Value = K> {
    prop::sample::select(K::ALL.to_vec())
}

fn events<K: Keyword + std::fmt::Debug>() -> impl Strategy<Value = EventSet<K>> {
    prop::collection::vec(keyword::<K>(), 1..4).prop_map(|v| EventSet::new(v).unwrap())
}

fn say() -> impl Strategy<Value = Say> {
    (
        clean_text(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(0u32..=10),
    )
        .prop_map(|(t, voice, language, n)| Say {
            text: Text::new(t).unwrap(),
            voice,
            language,
            loop_count: n.map(|n| SayLoop::new(n).unwrap()),
        })
}

fn play() -> impl Strategy<Value = Play> {
    let source = prop_oneof![
        url().prop_map(PlaySource::Url),
        clean_text().prop_map(|t| PlaySource::Media(Text::new(t).unwrap())),
        "[0-9*#w]{1,8}".prop_map(|d| PlaySource::Digits(Digits::new(d).unwrap())),
    ];
    (
        source,
        proptest::option::of(0u32..=1000),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(source, n, continue_on_error)| Play {
            source,
            loop_count: n.map(|n| PlayLoop::new(n).unwrap()),
            continue_on_error,
        })
}

fn pause() -> impl Strategy<Value = Pause> {
    proptest::option::of(1u32..=180).prop_map(|n| Pause {
        length: n.map(|n| PauseLength::new(n).unwrap()),
    })
}

fn gather() -> impl Strategy<Value = Gather> {
    let children = prop::collection::vec(
        prop_oneof![
            say().prop_map(GatherChild::Say),
            play().prop_map(GatherChild::Play),
            pause().prop_map(GatherChild::Pause)
        ],
        0..3,
    );
    (
        proptest::option::of(url()),
        proptest::option::of(keyword::<GatherInput>()),
        proptest::option::of(1u32..=128),
        proptest::option::of(1u32..=120),
        proptest::option::of("[0-9*#]{1,3}"),
        proptest::option::of(text()),
        children,
    )
        .prop_map(
            |(action, input, digits, timeout, finish, hints, children)| Gather {
                action,
                input,
                num_digits: digits.map(|d| DigitCount::new(d).unwrap()),
                min_digits: None,
                max_digits: digits.map(|d| DigitCount::new(d).unwrap()),
                timeout: timeout.map(|t| GatherTimeout::new(t).unwrap()),
                finish_on_key: finish.map(|f| DtmfKeys::new(f).unwrap()),
                valid_digits: None,
                language: None,
                hints,
                children,
            },
        )
}

fn sip() -> impl Strategy<Value = Sip> {
    (
        "[a-z0-9._&'=+$,;?/-]{1,12}",
        "[a-z]{1,8}",
        proptest::option::of(text()),
        proptest::option::of(url()),
        proptest::option::of(events::<CallProgressEvent>()),
        proptest::option::of(method()),
    )
        .prop_map(|(user, host, password, cb, ev, m)| {
            let mut s = Sip::new(SipAddress::new(format!("sip:{user}@{host}.example")).unwrap());
            s.password = password;
            s.status_callback = cb;
            s.status_callback_event = ev;
            s.status_callback_method = m;
            s
        })
}

fn noun() -> impl Strategy<Value = DialNoun> {
    prop_oneof![
        3 => sip().prop_map(DialNoun::Sip),
        1 => ("\\+[1-9][0-9]{6,13}", proptest::option::of(events::<CallProgressEvent>())).prop_map(|(n, ev)| {
            let mut number = Number::new(PhoneNumber::new(n).unwrap());
            number.status_callback_event = ev;
            DialNoun::Number(number)
        }),
        1 => (clean_text(), proptest::option::of(url())).prop_map(|(name, url)| DialNoun::Queue(Queue {
            name: Text::new(name).unwrap(), url, method: None,
        })),
        1 => (clean_text(), proptest::option::of(2u32..=250), proptest::option::of(keyword::<ConferenceBeep>()), proptest::option::of(events::<ConferenceEvent>()))
            .prop_map(|(name, max, beep, ev)| {
                let mut c = Conference::new(name).unwrap();
                c.max_participants = max.map(|m| MaxParticipants::new(m).unwrap());
                c.beep = beep;
                c.status_callback_event = ev;
                DialNoun::Conference(c)
            }),
    ]
}

fn dial() -> impl Strategy<Value = Dial> {
    (
        prop::collection::vec(noun(), 1..5),
        proptest::option::of(url()),
        proptest::option::of(5u32..=120),
        proptest::option::of(60u32..=14400),
        proptest::option::of(keyword::<DialRecord>()),
        proptest::option::of(events::<RecordingEvent>()),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(nouns, action, timeout, limit, record, rec_events, bridge)| {
                let mut d = Dial::new(nouns).unwrap();
                d.action = action;
                d.timeout = timeout.map(|t| DialTimeout::new(t).unwrap());
                d.time_limit = limit.map(|t| TimeLimit::new(t).unwrap());
                d.record = record;
                d.recording_status_callback_event = rec_events;
                d.answer_on_bridge = bridge;
                d
            },
        )
}

fn record() -> impl Strategy<Value = Record> {
    (
        proptest::option::of(url()),
        proptest::option::of(0u32..=14400),
        proptest::option::of(any::<bool>()),
        proptest::option::of(keyword::<TranscriptionEngine>()),
        proptest::option::of(keyword::<RecordFormat>()),
        proptest::option::of(keyword::<Trim>()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(action, max, transcription, engine, format, trim, lang)| Record {
                transcription_callback: action.clone(),
                action,
                max_length: max.map(|m| MaxLength::new(m).unwrap()),
                transcription,
                transcription_engine: engine,
                format,
                trim,
                transcription_language: lang,
                ..Record::default()
            },
        )
}

fn verb() -> impl Strategy<Value = Verb> {
    prop_oneof![
        say().prop_map(Verb::Say),
        play().prop_map(Verb::Play),
        pause().prop_map(Verb::Pause),
        gather().prop_map(Verb::Gather),
        dial().prop_map(Verb::Dial),
        record().prop_map(Verb::Record),
        Just(Verb::Hangup(Hangup)),
        (url(), proptest::option::of(method()))
            .prop_map(|(url, method)| Verb::Redirect(Redirect { url, method })),
        proptest::option::of(keyword::<RejectReason>())
            .prop_map(|reason| Verb::Reject(Reject { reason })),
        (text(), proptest::option::of(1u32..=14400)).prop_map(|(name, w)| {
            let mut e = Enqueue::new(Text::new(format!("q{name}")).unwrap());
            e.max_wait_time = w.map(|w| MaxWaitTime::new(w).unwrap());
            Verb::Enqueue(e)
        }),
        Just(Verb::Leave(Leave)),
    ]
}

fn document() -> impl Strategy<Value = Response> {
    prop::collection::vec(verb(), 0..6).prop_map(|verbs| Response { verbs })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_of_render_is_identity(doc in document()) {
        let xml = doc.render();
        prop_assert_eq!(Response::parse(&xml).unwrap(), doc.clone());
        let pretty = doc.render_pretty();
        prop_assert_eq!(Response::parse(&pretty).unwrap(), doc);
    }

    #[test]
    fn output_is_well_formed_with_exactly_the_modelled_elements(doc in document()) {
        let xml = doc.render();
        prop_assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        let tree = read_document(&xml).unwrap();
        prop_assert_eq!(tree.count(), doc.to_element().count());
        prop_assert_eq!(tree, doc.to_element());
    }

    #[test]
    fn arbitrary_text_is_either_rejected_or_carried_exactly(s in nasty_string()) {
        let forbidden = s.chars().any(|c| !is_xml_char(c));
        match Say::new(s.clone()) {
            Err(TexmlError::ForbiddenCharacter { code, .. }) => {
                prop_assert!(forbidden);
                prop_assert!(!is_xml_char(char::from_u32(code).unwrap()));
            }
            Err(e) => prop_assert!(s.trim().is_empty(), "unexpected error {e}"),
            Ok(say) => {
                prop_assert!(!forbidden);
                let doc = Response::new().say(say);
                let tree = read_document(&doc.render()).unwrap();
                prop_assert_eq!(tree.count(), 2);
                prop_assert_eq!(&tree.children[0].text, &s);
            }
        }
    }

    #[test]
    fn arbitrary_attribute_values_never_add_elements(s in nasty_string()) {
        if let Ok(voice) = Text::new(s.clone()) {
            let doc = Response::new().say(Say::new("hello").unwrap().voice(voice));
            let tree = read_document(&doc.render()).unwrap();
            prop_assert_eq!(tree.count(), 2);
            prop_assert_eq!(tree.children[0].attribute("voice"), Some(s.as_str()));
        } else {
            prop_assert!(s.chars().any(|c| !is_xml_char(c)));
        }
    }
}

#[test]
fn strict_parse_names_unknown_attributes_and_values() {
    let unknown = Response::parse(
        r#"<Response><Dial timeout="30" colour="red"><Sip>sip:a@b.example</Sip></Dial></Response>"#,
    );
    assert_eq!(
        unknown.unwrap_err(),
        ParseError::UnknownAttribute {
            element: "Dial".into(),
            attribute: "colour".into()
        }
    );
    let out_of_range = Response::parse(
        r#"<Response><Dial timeout="500"><Sip>sip:a@b.example</Sip></Dial></Response>"#,
    );
    assert!(matches!(
        out_of_range.unwrap_err(),
        ParseError::InvalidValue {
            source: TexmlError::OutOfRange {
                value: 500,
                min: 5,
                max: 120,
                ..
            },
            ..
        }
    ));
    let nested = Response::parse("<Response><Dial><Say>hi</Say></Dial></Response>");
    assert_eq!(
        nested.unwrap_err(),
        ParseError::UnknownElement {
            parent: "Dial".into(),
            name: "Say".into()
        }
    );
    let twilio_name = Response::parse(r#"<Response><Record transcribe="true"/></Response>"#);
    assert!(matches!(
        twilio_name.unwrap_err(),
        ParseError::UnknownAttribute { .. }
    ));
    assert!(matches!(
        Response::parse("<Hangup/>").unwrap_err(),
        ParseError::NotAResponse(_)
    ));
    assert!(matches!(
        Response::parse("<Response><Say>x</Response>").unwrap_err(),
        ParseError::Xml(_)
    ));
}

#[test]
fn lenient_parse_keeps_going_and_lists_what_it_skipped() {
    let read = Response::parse_lenient(
        r#"<Response><Say loop="99">Hi</Say><Dial><Client>bob</Client></Dial><Hangup/></Response>"#,
    )
    .unwrap();
    // loop=99 skipped (value kept out), <Client> skipped, the then-empty <Dial> skipped.
    assert_eq!(
        read.response,
        Response::new().say(Say::new("Hi").unwrap()).hangup()
    );
    assert_eq!(read.warnings.len(), 3);
}

#[test]
fn values_are_validated_when_built_never_clamped() {
    assert!(matches!(
        DialTimeout::new(4),
        Err(TexmlError::OutOfRange {
            min: 5,
            max: 120,
            ..
        })
    ));
    assert!(DialTimeout::new(5).is_ok() && DialTimeout::new(120).is_ok());
    assert!(TimeLimit::new(59).is_err() && TimeLimit::new(14401).is_err());
    assert!(PauseLength::new(0).is_err() && PauseLength::new(180).is_ok());
    assert!(SayLoop::new(10).is_ok() && SayLoop::new(11).is_err());
    assert!(MaxLength::new(14400).is_ok() && MaxLength::new(14401).is_err());
    assert!(Url::parse("http://example.com").is_ok());
    assert!(Url::parse("javascript:alert(1)").is_err());
    assert!(Url::parse("//example.com/x").is_err());
    assert!(SipAddress::new("tel:+1555").is_err());
    assert!(SipAddress::new("sip:a b@c").is_err());
    assert!(DtmfKeys::new("#*1").is_ok() && DtmfKeys::new("a").is_err());
    assert!(matches!(Dial::new(vec![]), Err(TexmlError::EmptyDial)));
    assert!(matches!(
        Say::new("bell\u{7}"),
        Err(TexmlError::ForbiddenCharacter {
            code: 7,
            position: 4,
            ..
        })
    ));
}

#[test]
fn attributes_are_rendered_in_a_fixed_order() {
    let mut d = Dial::new([DialNoun::Sip(Sip::new(
        SipAddress::new("sip:a@b.example").unwrap(),
    ))])
    .unwrap();
    d.answer_on_bridge = Some(false);
    d.timeout = Some(DialTimeout::new(20).unwrap());
    let d = d.action(Url::parse("https://x.example/a").unwrap());
    assert_eq!(
        Response::new().dial(d).render_body(),
        r#"<Response><Dial action="https://x.example/a" method="POST" timeout="20" answerOnBridge="false"><Sip>sip:a@b.example</Sip></Dial></Response>"#
    );
}
