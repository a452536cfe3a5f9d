//! Cost of the hash chain: sealing pending events (what the sealer does every interval) and
//! verifying sealed entries (what `callcenter audit verify` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use audit::chain::{Verifier, seal};
use audit::{Actor, AuditAction, AuditEntry, ChainHead, NewAuditEvent};
use chrono::{TimeZone as _, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn events(n: i64) -> Vec<(i64, NewAuditEvent)> {
    (1..=n)
        .map(|i| {
            let at = Utc.timestamp_opt(1_700_000_000 + i, 0).single().unwrap();
            let event = NewAuditEvent::new(at, Actor::Telnyx, AuditAction::OfferMissed)
                .call(format!("v3:call-{i}"))
                .agent(uuid::Uuid::from_u128(u128::try_from(i).unwrap()))
                .data([
                    ("attempt", serde_json::Value::from(1)),
                    ("leg_status", "no-answer".into()),
                ]);
            (i, event)
        })
        .collect()
}

fn sealed(pending: &[(i64, NewAuditEvent)]) -> (Vec<AuditEntry>, ChainHead) {
    let (seals, head) = seal(&ChainHead::genesis(), pending);
    let entries = pending
        .iter()
        .zip(seals)
        .map(|((_, e), s)| s.into_entry(e))
        .collect();
    (entries, head)
}

fn chain(c: &mut Criterion) {
    let pending = events(1000);
    let (entries, head) = sealed(&pending);
    let mut group = c.benchmark_group("audit_chain");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("seal_1000", |b| {
        b.iter(|| seal(black_box(&ChainHead::genesis()), black_box(&pending)));
    });
    group.bench_function("verify_1000", |b| {
        b.iter(|| {
            let mut v = Verifier::new();
            for e in &entries {
                v.push(black_box(e));
            }
            v.finish(&head)
        });
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
