//! Rendering cost of the documents the call flow sends most often.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use texml::*;

const BASE: &str = "https://cc.example.com/api/call-center";

fn url(path: &str) -> Url {
    Url::parse(&format!("{BASE}{path}")).unwrap()
}

fn greeting() -> Response {
    Response::new()
        .say(
            Say::new("Thank you for calling. Please hold while we connect you to an agent.")
                .unwrap(),
        )
        .say(Say::new("This call may be recorded for quality and training purposes.").unwrap())
        .redirect(Redirect::post(url("/dial-agents?attempt=1")))
}

fn dial(agents: usize) -> Response {
    let events = EventSet::new([
        CallProgressEvent::Initiated,
        CallProgressEvent::Ringing,
        CallProgressEvent::Answered,
        CallProgressEvent::Completed,
    ])
    .unwrap();
    let nouns = (0..agents).map(|i| {
        DialNoun::Sip(
            Sip::new(SipAddress::new(format!("sip:agent{i}@example.sip.telnyx.com")).unwrap())
                .status_callback(url("/outbound/event?attempt=1"), events.clone()),
        )
    });
    let d = Dial::new(nouns)
        .unwrap()
        .action(url("/retry-dial?attempt=1"))
        .timeout(DialTimeout::new(30).unwrap())
        .record(DialRecord::RecordFromAnswerDual, url("/events"));
    Response::new().dial(d)
}

fn voicemail() -> Response {
    let cb = url("/voicemail/callback");
    let mut rec = Record::new().action(cb.clone());
    rec.max_length = Some(MaxLength::new(120).unwrap());
    rec.play_beep = Some(true);
    rec.finish_on_key = Some(DtmfKeys::new("#").unwrap());
    rec.transcription = Some(true);
    rec.transcription_callback = Some(cb.clone());
    rec.recording_status_callback = Some(cb);
    rec.recording_status_callback_method = Some(HttpMethod::Post);
    Response::new()
        .say(Say::new("No one is available. Please leave a message after the beep.").unwrap())
        .record(rec)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("texml_render");
    let doc = greeting();
    group.bench_function("greeting", |b| b.iter(|| black_box(&doc).render()));
    for n in [1usize, 10, 100] {
        let doc = dial(n);
        group.bench_with_input(BenchmarkId::new("dial_agents", n), &doc, |b, d| {
            b.iter(|| black_box(d).render())
        });
    }
    let doc = voicemail();
    group.bench_function("voicemail", |b| b.iter(|| black_box(&doc).render()));
    group.finish();

    let mut group = c.benchmark_group("texml_build_and_render");
    group.bench_function("dial_agents/10", |b| {
        b.iter(|| black_box(dial(10)).render())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
