//! The contract every [`CallStore`] must meet, run against the in-memory fake and against
//! SQLite and PostgreSQL (`store` crate). Enabled by the `contract` feature; each story
//! panics on a violation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::sync::Arc;

use agents::contract::{agent, t0};
use agents::{
    AgentEffect, AgentId, AgentStore, EffectiveStatus, Liveness, MetricsDelta, OfferMark, Presence,
};
use audit::{Actor, AuditAction, AuditFilter, AuditLog, NewAuditEvent};
use chrono::Duration;

use crate::model::{Call, CallStatus, Delivery, Offer, OfferState, Outcome, RoundResult};
use crate::port::{Applied, AttemptChange, CallChange, CallFilter, CallStore, Receipt, Redaction};
use crate::queue::{MatchWant, PriorityRule, QueueStore};
use crate::vocabulary::LegStatus;
use crate::voicemail::{InboxFilter, InboxState, Voicemail, VoicemailStore, VoicemailStoreError};

/// The three stores a story needs.
#[derive(Clone)]
pub struct Stores {
    /// Calls.
    pub calls: Arc<dyn CallStore>,
    /// Agents (effects land there).
    pub agents: Arc<dyn AgentStore>,
    /// The audit log (events land there).
    pub audit: Arc<dyn AuditLog>,
    /// The voicemail inbox (over the same calls).
    pub voicemails: Arc<dyn VoicemailStore>,
    /// The queue (over the same calls).
    pub queue: Arc<dyn QueueStore>,
}

fn call(sid: &str) -> Call {
    let mut c = Call::new(sid, "+13125550100", "+13125550199", t0());
    c.version = 1;
    c
}

fn offer(sid: &str, attempt: i32, agent: AgentId, n: usize) -> Offer {
    Offer {
        call_sid: sid.to_owned(),
        attempt,
        agent_id: agent,
        sip_uri: format!("sip:a{n}@example.com"),
        sip_key: format!("a{n}@example.com"),
        leg_sid: None,
        state: OfferState::Ringing,
        leg_status: None,
        offered_at: t0(),
        answered_at: None,
        ended_at: None,
        closed_at: None,
        leg_duration: None,
        talk_seconds: None,
        talk_final: false,
        misses_before: 0,
    }
}

fn event(sid: &str, action: AuditAction) -> NewAuditEvent {
    NewAuditEvent::new(t0(), Actor::Telnyx, action).call(sid)
}

fn create(sid: &str) -> CallChange {
    CallChange {
        expected_version: 0,
        call: call(sid),
        offers: vec![],
        attempts: vec![],
        agents: vec![],
        receipts: vec![],
        audit: vec![event(sid, AuditAction::CallReceived)],
    }
}

/// The change that takes call `sid` from `version - 1` to `version` with these agent
/// effects and nothing else (the stories about agents, and the store's lock-order test).
#[must_use]
pub fn effects_on(sid: &str, version: i64, agents: Vec<AgentEffect>) -> CallChange {
    let mut next = call(sid);
    next.version = version;
    CallChange {
        expected_version: version - 1,
        call: next,
        offers: vec![],
        attempts: vec![],
        agents,
        receipts: vec![],
        audit: vec![],
    }
}

/// An effect on `agent`: these counter increments, engaging or releasing it.
#[must_use]
pub fn effect(agent: AgentId, delta: MetricsDelta, engage: bool, release: bool) -> AgentEffect {
    AgentEffect {
        agent_id: agent,
        delta,
        engage,
        release,
        ..AgentEffect::default()
    }
}

/// One missed offer, releasing the agent if it holds the call.
#[must_use]
pub fn missed(agent: AgentId) -> AgentEffect {
    let delta = MetricsDelta {
        missed: 1,
        ..MetricsDelta::default()
    };
    effect(agent, delta, false, true)
}

async fn audited(log: &dyn AuditLog, sid: &str) -> Vec<AuditAction> {
    let filter = AuditFilter {
        call_sid: Some(sid.to_owned()),
        ..AuditFilter::default()
    };
    log.entries(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn new_agent(s: &Stores, n: usize) -> AgentId {
    let a = agent(
        &format!("A{n}"),
        &format!("sip:a{n}@example.com"),
        Presence::Available,
        Some(t0()),
        t0(),
    );
    s.agents.insert(&a, &format!("h{n}"), vec![]).await.unwrap();
    a.id
}

/// A new call is inserted at version 1; a second insert of the same call conflicts and
/// writes nothing.
pub async fn insert_once(s: Stores) {
    assert_eq!(s.calls.apply(&create("c1")).await.unwrap(), Applied::Yes);
    let loaded = s.calls.load("c1", &[]).await.unwrap().state.unwrap();
    assert_eq!(loaded.call, call("c1"));
    assert!(loaded.offers.is_empty());
    assert_eq!(
        s.calls.apply(&create("c1")).await.unwrap(),
        Applied::Conflict
    );
    if let Some(copy) = s.calls.committed("c1") {
        assert_eq!(copy, loaded);
    }
    assert_eq!(
        audited(s.audit.as_ref(), "c1").await,
        vec![AuditAction::CallReceived]
    );
    assert!(s.calls.load("nope", &[]).await.unwrap().state.is_none());
}

/// Every field of a call and its offers survives a round trip; offers are upserted.
pub async fn full_round_trip(s: Stores) {
    let a = new_agent(&s, 1).await;
    let b = new_agent(&s, 2).await;
    s.calls.apply(&create("c2")).await.unwrap();
    let mut c = call("c2");
    c.status = CallStatus::Answered;
    c.outcome = Some(Outcome::Answered);
    c.attempts = 2;
    c.round_open = true;
    c.answered_by = Some(a);
    c.answered_leg_sid = Some("leg-a".into());
    c.answered_at = Some(t0() + Duration::milliseconds(1500));
    c.ended_at = Some(t0() + Duration::seconds(90));
    c.talk_seconds = Some(88);
    c.recording_url = Some("https://r.example/1.mp3".into());
    c.recording_sid = Some("rec-1".into());
    c.voicemail_started_at = Some(t0() + Duration::seconds(1));
    c.voicemail_recording_url = Some("https://r.example/vm.mp3".into());
    c.voicemail_recording_sid = Some("vm-1".into());
    c.voicemail_duration_seconds = Some(12);
    c.voicemail_transcription = Some("héllo ' \" <b> & 😀".into());
    c.recording_notice_played = true;
    c.account_sid = Some("acct".into());
    c.connection_id = Some("conn".into());
    c.version = 2;
    let mut oa = offer("c2", 2, a, 1);
    oa.leg_sid = Some("leg-a".into());
    oa.state = OfferState::Answered;
    oa.leg_status = Some(LegStatus::Completed);
    oa.answered_at = Some(t0() + Duration::seconds(3));
    oa.ended_at = Some(t0() + Duration::seconds(90));
    oa.leg_duration = Some(87);
    oa.talk_seconds = Some(87);
    oa.talk_final = true;
    let ob = offer("c2", 2, b, 2);
    let change = CallChange {
        expected_version: 1,
        call: c.clone(),
        offers: vec![oa.clone(), ob.clone()],
        attempts: vec![AttemptChange::Opened {
            attempt: 2,
            started_at: t0(),
            offered: 2,
        }],
        agents: vec![],
        receipts: vec![],
        audit: vec![],
    };
    assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    let mut ob2 = ob.clone();
    ob2.state = OfferState::Canceled;
    c.version = 3;
    let update = CallChange {
        expected_version: 2,
        call: c.clone(),
        offers: vec![ob2.clone()],
        attempts: vec![AttemptChange::Closed {
            attempt: 2,
            ended_at: t0(),
            result: RoundResult::Answered,
        }],
        ..change.clone()
    };
    assert_eq!(s.calls.apply(&update).await.unwrap(), Applied::Yes);
    let loaded = s.calls.load("c2", &[]).await.unwrap().state.unwrap();
    // A store that keeps its committed copy of a call keeps what it stored, offers upserted.
    if let Some(copy) = s.calls.committed("c2") {
        assert_eq!(copy, loaded);
    }
    assert_eq!(loaded.call, c);
    let mut offers = loaded.offers.clone();
    offers.sort_by_key(|o| o.sip_uri.clone());
    assert_eq!(offers, vec![oa, ob2]);
    assert_eq!(s.calls.get("c2").await.unwrap(), Some(c));
    assert_eq!(
        s.calls.call_for_leg("leg-a").await.unwrap().as_deref(),
        Some("c2")
    );
    assert_eq!(s.calls.call_for_leg("leg-x").await.unwrap(), None);
}

/// Optimistic concurrency: a change made from an old version conflicts and writes nothing,
/// not even its audit events or receipts.
pub async fn stale_versions_conflict(s: Stores) {
    let a = new_agent(&s, 1).await;
    s.calls.apply(&create("c3")).await.unwrap();
    let mut next = call("c3");
    next.version = 2;
    let change = CallChange {
        expected_version: 1,
        call: next,
        offers: vec![],
        attempts: vec![],
        agents: vec![AgentEffect {
            agent_id: a,
            delta: MetricsDelta {
                answered: 1,
                ..MetricsDelta::default()
            },
            engage: true,
            release: false,
            ..AgentEffect::default()
        }],
        receipts: vec![Receipt {
            key: "k3".into(),
            fingerprint: String::new(),
        }],
        audit: vec![event("c3", AuditAction::CallAnswered)],
    };
    let (x, y) = futures::join!(s.calls.apply(&change), s.calls.apply(&change));
    let results = [x.unwrap(), y.unwrap()];
    assert_eq!(
        results.iter().filter(|r| **r == Applied::Yes).count(),
        1,
        "{results:?}"
    );
    assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Conflict);
    assert_eq!(
        audited(s.audit.as_ref(), "c3").await,
        vec![AuditAction::CallReceived, AuditAction::CallAnswered]
    );
    let agent = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(
        (
            agent.metrics.calls_answered,
            agent.current_call_sid.as_deref()
        ),
        (1, Some("c3"))
    );
}

/// Receipts: reported by `load` with their fingerprint; a change carrying a known receipt
/// conflicts; `record_receipts` refuses known keys; pruning forgets old ones.
pub async fn receipts(s: Stores) {
    s.calls.apply(&create("c4")).await.unwrap();
    let mut next = call("c4");
    next.version = 2;
    let r1 = Receipt {
        key: "sig:one".into(),
        fingerprint: "fp-1".into(),
    };
    let change = CallChange {
        expected_version: 1,
        call: next.clone(),
        offers: vec![],
        attempts: vec![],
        agents: vec![],
        receipts: vec![r1.clone()],
        audit: vec![],
    };
    assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    let keys = vec!["sig:one".to_owned(), "sig:two".to_owned()];
    assert_eq!(
        s.calls.load("c4", &keys).await.unwrap().seen,
        vec![r1.clone()]
    );
    let mut again = change.clone();
    again.expected_version = 2;
    again.call.version = 3;
    assert_eq!(
        s.calls.apply(&again).await.unwrap(),
        Applied::Conflict,
        "known receipt"
    );
    assert_eq!(s.calls.get("c4").await.unwrap().unwrap().version, 2);
    let r2 = Receipt {
        key: "sig:two".into(),
        fingerprint: "fp-2".into(),
    };
    assert_eq!(
        s.calls
            .record_receipts(std::slice::from_ref(&r2), t0())
            .await
            .unwrap(),
        Applied::Yes
    );
    assert_eq!(
        s.calls.record_receipts(&[r2], t0()).await.unwrap(),
        Applied::Conflict
    );
    let pruned = s
        .calls
        .prune_receipts(t0() + Duration::days(1))
        .await
        .unwrap();
    assert!(pruned >= 1);
    assert!(s.calls.load("c4", &keys).await.unwrap().seen.is_empty());
}

/// Agent effects: engage is a compare-and-set, release only for the held call, counters
/// are increments.
pub async fn agent_effects(s: Stores) {
    let a = new_agent(&s, 1).await;
    for sid in ["c5", "c6"] {
        s.calls.apply(&create(sid)).await.unwrap();
    }
    let effect = |sid: &str, engage: bool, release: bool, talk: i64| {
        let delta = MetricsDelta {
            answered: i64::from(engage),
            missed: 0,
            talk_seconds: talk,
        };
        effects_on(sid, 2, vec![effect(a, delta, engage, release)])
    };
    s.calls.apply(&effect("c5", true, false, 0)).await.unwrap();
    s.calls.apply(&effect("c6", true, false, 0)).await.unwrap();
    let held = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(
        held.current_call_sid.as_deref(),
        Some("c5"),
        "engage is a compare-and-set"
    );
    let mut release_other = effect("c6", false, true, 0);
    release_other.expected_version = 2;
    release_other.call.version = 3;
    s.calls.apply(&release_other).await.unwrap();
    assert_eq!(
        s.agents
            .get(a)
            .await
            .unwrap()
            .unwrap()
            .current_call_sid
            .as_deref(),
        Some("c5")
    );
    let mut release = effect("c5", false, true, 30);
    release.expected_version = 2;
    release.call.version = 3;
    let wrap_up_until = t0() + Duration::seconds(90);
    release.agents[0].wrap_up_until = Some(wrap_up_until);
    s.calls.apply(&release).await.unwrap();
    let freed = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(freed.current_call_sid, None);
    assert_eq!(
        (
            freed.metrics.calls_answered,
            freed.metrics.total_talk_seconds
        ),
        (2, 30)
    );
    assert_eq!(
        freed.idle_since, wrap_up_until,
        "idle from the end of its wrap-up"
    );
    let at = |secs: i64| Liveness::new(t0() + Duration::seconds(secs), Duration::hours(1));
    assert_eq!(freed.status(&at(60)), EffectiveStatus::Busy, "wrapping up");
    assert!(
        s.agents
            .available_now(&at(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.agents
            .list(Some(EffectiveStatus::Busy), &at(60))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.agents.available_now(&at(90), 10).await.unwrap().len(),
        1,
        "over at its end"
    );
    assert_eq!(
        s.agents
            .list(Some(EffectiveStatus::Available), &at(90))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// What production does when agents answer at once: 20 calls, each applying "engage this
/// agent and count the answer" concurrently. Exactly one call holds the agent; every
/// increment lands; the agent released by its call becomes the most recently idle.
pub async fn concurrent_answers_engage_one_call(s: Stores) {
    let a = new_agent(&s, 1).await;
    let sids: Vec<String> = (0..20).map(|i| format!("race-{i}")).collect();
    for sid in &sids {
        s.calls.apply(&create(sid)).await.unwrap();
    }
    let answer = |sid: &str, engage: bool, release: bool| {
        let delta = MetricsDelta {
            answered: 1,
            missed: 0,
            talk_seconds: 10,
        };
        effects_on(sid, 2, vec![effect(a, delta, engage, release)])
    };
    let races = sids.iter().map(|sid| {
        let (calls, change) = (Arc::clone(&s.calls), answer(sid, true, false));
        tokio::spawn(async move { calls.apply(&change).await.unwrap() })
    });
    for applied in futures::future::join_all(races).await {
        assert_eq!(applied.unwrap(), Applied::Yes);
    }
    let held = s.agents.get(a).await.unwrap().unwrap();
    let winner = held
        .current_call_sid
        .clone()
        .expect("one call holds the agent");
    assert!(sids.contains(&winner));
    assert_eq!(
        (held.metrics.calls_answered, held.metrics.total_talk_seconds),
        (20, 200),
        "increments are atomic"
    );
    let mut release = answer(&winner, false, true);
    (release.expected_version, release.call.version) = (2, 3);
    release.call.updated_at = t0() + Duration::seconds(90);
    release.agents[0].delta = MetricsDelta::default();
    assert_eq!(s.calls.apply(&release).await.unwrap(), Applied::Yes);
    let freed = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(
        (freed.current_call_sid, freed.idle_since),
        (None, t0() + Duration::seconds(90))
    );
}

/// Rounds closing at once on calls that rang the same agents (the no-answer flow with two
/// shared agents: every `/retry-dial` counts a miss for both), each change naming them in
/// its own order, wave after wave: every apply succeeds and every increment lands. (The
/// interleaving that deadlocked PostgreSQL is forced step by step, against PostgreSQL's own
/// lock queue, in `crates/store/tests/lock_order.rs`.)
pub async fn crossed_agent_effects_never_deadlock(s: Stores) {
    const WAVES: usize = 8;
    const PER_WAVE: usize = 20;
    let agents = [new_agent(&s, 1).await, new_agent(&s, 2).await];
    let close = |i: usize, sid: &str| {
        let mut order = agents.to_vec();
        if i % 2 == 1 {
            order.reverse();
        }
        let mut change = effects_on(sid, 2, order.into_iter().map(missed).collect());
        change.audit = vec![event(sid, AuditAction::OfferMissed)];
        change
    };
    let mut failures = Vec::new();
    for wave in 0..WAVES {
        let sids: Vec<String> = (0..PER_WAVE).map(|i| format!("cross-{wave}-{i}")).collect();
        for sid in &sids {
            s.calls.apply(&create(sid)).await.unwrap();
        }
        let races = sids.iter().enumerate().map(|(i, sid)| {
            let (calls, change) = (Arc::clone(&s.calls), close(i, sid));
            tokio::spawn(async move { calls.apply(&change).await })
        });
        for applied in futures::future::join_all(races).await {
            match applied.unwrap() {
                Ok(applied) => assert_eq!(applied, Applied::Yes),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
    }
    assert!(failures.is_empty(), "applies failed: {failures:?}");
    for agent in agents {
        let missed = s
            .agents
            .get(agent)
            .await
            .unwrap()
            .unwrap()
            .metrics
            .calls_missed;
        assert_eq!(missed, (WAVES * PER_WAVE) as i64, "every increment lands");
    }
}

/// Changes on different calls and agents at once, which a store may apply together (one
/// transaction for several webhooks): each applies or conflicts on its own merits. A stale
/// version (first wave), a receipt already stored (second wave) or an agent no longer
/// reservable (third wave) conflicts without costing another change its write, and every
/// part of a change (call, offer, agent effect, receipt, audit entry) lands or none does.
pub async fn concurrent_changes_apply_each_on_its_own(s: Stores) {
    const CALLS: usize = 24;
    let sids: Vec<String> = (0..CALLS).map(|i| format!("together-{i}")).collect();
    let mut agents = Vec::with_capacity(CALLS);
    for n in 1..=CALLS {
        agents.push(new_agent(&s, n).await);
    }
    let all = |changes: Vec<CallChange>| {
        let calls = Arc::clone(&s.calls);
        async move {
            let applies = changes.into_iter().map(|change| {
                let calls = Arc::clone(&calls);
                tokio::spawn(async move { calls.apply(&change).await.unwrap() })
            });
            futures::future::join_all(applies)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        }
    };
    let created = all(sids.iter().map(|sid| create(sid)).collect()).await;
    assert!(created.iter().all(|a| *a == Applied::Yes));
    let stale = |i: usize| i % 4 == 3;
    let first = |i: usize, sid: &str| {
        let delta = MetricsDelta {
            answered: 1,
            missed: 0,
            talk_seconds: 5,
        };
        let mut c = effects_on(sid, 2, vec![effect(agents[i], delta, true, false)]);
        c.offers = vec![offer(sid, 1, agents[i], i + 1)];
        c.receipts = vec![Receipt {
            key: format!("sig:{sid}"),
            fingerprint: "fp".into(),
        }];
        c.audit = vec![event(sid, AuditAction::OfferMade)];
        if stale(i) {
            (c.expected_version, c.call.version) = (7, 8);
        }
        c
    };
    let applied = all(sids
        .iter()
        .enumerate()
        .map(|(i, sid)| first(i, sid))
        .collect())
    .await;
    for (i, (sid, applied)) in sids.iter().zip(applied).enumerate() {
        let state = s.calls.load(sid, &[]).await.unwrap().state.unwrap();
        let agent = s.agents.get(agents[i]).await.unwrap().unwrap();
        let audit = audited(s.audit.as_ref(), sid).await;
        if stale(i) {
            assert_eq!(applied, Applied::Conflict, "{sid}");
            assert_eq!(state.call.version, 1, "{sid}");
            assert!(state.offers.is_empty(), "{sid}");
            assert_eq!(agent.current_call_sid, None, "{sid}");
            assert_eq!(agent.metrics.calls_answered, 0, "{sid}");
            assert_eq!(audit, vec![AuditAction::CallReceived], "{sid}");
        } else {
            assert_eq!(applied, Applied::Yes, "{sid}");
            assert_eq!(state.call.version, 2, "{sid}");
            assert_eq!(state.offers, vec![offer(sid, 1, agents[i], i + 1)], "{sid}");
            assert_eq!(
                agent.current_call_sid.as_deref(),
                Some(sid.as_str()),
                "{sid}"
            );
            assert_eq!(agent.metrics.calls_answered, 1, "{sid}");
            assert_eq!(
                audit,
                vec![AuditAction::CallReceived, AuditAction::OfferMade],
                "{sid}"
            );
            let key = format!("sig:{sid}");
            assert_eq!(s.calls.load(sid, &[key]).await.unwrap().seen.len(), 1);
        }
        if let Some(copy) = s.calls.committed(sid) {
            assert_eq!(copy, state, "{sid}: the committed copy is the stored call");
        }
    }
    // The second wave, on the calls at version 2: one repeats a receipt already stored.
    let moved: Vec<usize> = (0..CALLS).filter(|i| !stale(*i)).collect();
    let repeats = moved[2];
    let second = |i: usize| {
        let sid = &sids[i];
        let mut c = effects_on(sid, 3, vec![]);
        c.receipts = vec![Receipt {
            key: if i == repeats {
                format!("sig:{}", sids[moved[0]])
            } else {
                format!("sig:{sid}:2")
            },
            fingerprint: "fp".into(),
        }];
        c.audit = vec![event(sid, AuditAction::OfferMissed)];
        c
    };
    let applied = all(moved.iter().map(|i| second(*i)).collect()).await;
    for (i, applied) in moved.iter().copied().zip(applied) {
        let sid = &sids[i];
        let version = s.calls.get(sid).await.unwrap().unwrap().version;
        let audit = audited(s.audit.as_ref(), sid).await;
        if i == repeats {
            assert_eq!(
                (applied, version, audit.len()),
                (Applied::Conflict, 2, 2),
                "{sid}"
            );
        } else {
            assert_eq!(
                (applied, version, audit.len()),
                (Applied::Yes, 3, 3),
                "{sid}"
            );
        }
    }
    // The third wave, on the calls at version 3: each reserves an agent of its own, but one
    // reserves the agent engaged on the first call, which is not reservable: only that
    // change conflicts, the others apply.
    let third: Vec<usize> = moved.iter().copied().filter(|i| *i != repeats).collect();
    let refused = third[1];
    let mut own = Vec::with_capacity(third.len());
    for n in 0..third.len() {
        own.push(new_agent(&s, CALLS + 1 + n).await);
    }
    let engaged = agents[moved[0]];
    let reserve = |k: usize, i: usize| {
        let sid = &sids[i];
        let agent_id = if i == refused { engaged } else { own[k] };
        let mut c = effects_on(
            sid,
            4,
            vec![AgentEffect {
                agent_id,
                offer: Some(OfferMark::Reserve),
                ..AgentEffect::default()
            }],
        );
        c.audit = vec![event(sid, AuditAction::AttemptOpened)];
        c
    };
    let applied = all(third
        .iter()
        .enumerate()
        .map(|(k, i)| reserve(k, *i))
        .collect())
    .await;
    for (k, (i, applied)) in third.iter().copied().zip(applied).enumerate() {
        let sid = &sids[i];
        let version = s.calls.get(sid).await.unwrap().unwrap().version;
        let audit = audited(s.audit.as_ref(), sid).await;
        let reserved = s.agents.get(own[k]).await.unwrap().unwrap().offer_call_sid;
        if i == refused {
            assert_eq!(
                (applied, version, audit.len(), reserved),
                (Applied::Conflict, 3, 3, None),
                "{sid}"
            );
        } else {
            assert_eq!(
                (applied, version, audit.len(), reserved.as_deref()),
                (Applied::Yes, 4, 4, Some(sid.as_str())),
                "{sid}"
            );
        }
    }
    let engaged = s.agents.get(engaged).await.unwrap().unwrap();
    assert_eq!(
        (engaged.current_call_sid.as_deref(), engaged.offer_call_sid),
        (Some(sids[moved[0]].as_str()), None),
        "the refused reservation left the engaged agent as it was"
    );
}

/// An agent's release: only from the call named (a compare-and-set against a newer hold),
/// or from whatever call it holds; idle since then; audited only when something was
/// released; an unknown agent is `NotFound`.
pub async fn agent_release_is_a_compare_and_set(s: Stores) {
    let a = new_agent(&s, 1).await;
    let hold = |sid: &str| {
        let engage = effect(a, MetricsDelta::default(), true, false);
        effects_on(sid, 2, vec![engage])
    };
    let audit = |sid: &str| {
        vec![
            NewAuditEvent::new(t0(), Actor::System, AuditAction::AgentReleased)
                .agent(a.0)
                .call(sid),
        ]
    };
    let later = t0() + Duration::seconds(90);
    assert_eq!(
        s.agents.release(a, None, later, &audit).await.unwrap(),
        None
    );
    for sid in ["held-1", "held-2"] {
        s.calls.apply(&create(sid)).await.unwrap();
    }
    s.calls.apply(&hold("held-1")).await.unwrap();
    assert_eq!(
        s.agents
            .release(a, Some("held-2"), later, &audit)
            .await
            .unwrap(),
        None,
        "a release for another call leaves the hold alone"
    );
    assert_eq!(
        s.agents
            .release(a, Some("held-1"), later, &audit)
            .await
            .unwrap()
            .as_deref(),
        Some("held-1")
    );
    let freed = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!((freed.current_call_sid, freed.idle_since), (None, later));
    s.calls.apply(&hold("held-2")).await.unwrap();
    assert_eq!(
        s.agents
            .release(a, None, later, &audit)
            .await
            .unwrap()
            .as_deref(),
        Some("held-2"),
        "with no call named, whatever it holds"
    );
    assert_eq!(
        audited(s.audit.as_ref(), "held-1").await,
        vec![AuditAction::CallReceived, AuditAction::AgentReleased]
    );
    assert_eq!(
        audited(s.audit.as_ref(), "held-2")
            .await
            .iter()
            .filter(|x| **x == AuditAction::AgentReleased)
            .count(),
        1,
        "audited only when something was released"
    );
    assert!(matches!(
        s.agents.release(AgentId::new(), None, later, &audit).await,
        Err(agents::AgentStoreError::NotFound)
    ));
}

/// What the reconciler is shown: calls not over and silent since before the cutoff, and
/// calls with an offer still ringing in a round that has ended (or of a call that has),
/// quiet for the legs' grace.
pub async fn calls_to_reconcile(s: Stores) {
    // One agent per call: an agent holds at most one open offer.
    let mut agents = Vec::new();
    for n in 1..=5 {
        agents.push(new_agent(&s, n).await);
    }
    let add = |n: usize, sid: &'static str, status: CallStatus, round_open: bool, ringing: bool| {
        let mut change = create(sid);
        change.call.status = status;
        change.call.attempts = 1;
        change.call.round_open = round_open;
        let mut o = offer(sid, 1, agents[n], n + 1);
        if !ringing {
            o.state = OfferState::Missed;
        }
        change.offers = vec![o];
        change
    };
    let changes = [
        add(0, "silent", CallStatus::Dialing, true, true),
        add(1, "ended-ringing", CallStatus::Completed, false, true),
        add(2, "closed-ringing", CallStatus::Dialing, false, true),
        add(3, "ended-clean", CallStatus::Completed, false, false),
        add(4, "dialing-now", CallStatus::Dialing, true, true),
    ];
    for mut change in changes {
        if change.call.call_sid == "dialing-now" {
            change.call.updated_at = t0() + Duration::hours(2);
        }
        assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    }
    let later = t0() + Duration::seconds(1);
    let found = s
        .calls
        .calls_to_reconcile(t0() + Duration::hours(1), later, 10)
        .await
        .unwrap();
    assert_eq!(found, ["closed-ringing", "ended-ringing", "silent"]);
    let found = s.calls.calls_to_reconcile(t0(), later, 10).await.unwrap();
    assert_eq!(
        found,
        ["closed-ringing", "ended-ringing"],
        "silent only before the cutoff"
    );
    let found = s
        .calls
        .calls_to_reconcile(t0() + Duration::hours(1), t0(), 10)
        .await
        .unwrap();
    assert_eq!(
        found,
        ["closed-ringing", "silent"],
        "strays only once their legs had the grace to report (closed-ringing is silent too)"
    );
    assert_eq!(
        s.calls
            .calls_to_reconcile(t0(), later, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Listing: newest first, by status, limited; a bound leg finds its call.
pub async fn listing_and_lookups(s: Stores) {
    let a = new_agent(&s, 1).await;
    for (i, sid) in ["l1", "l2", "l3"].iter().enumerate() {
        let mut change = create(sid);
        change.call.started_at = t0() + Duration::seconds(i as i64);
        change.call.updated_at = change.call.started_at;
        if *sid == "l2" {
            change.call.status = CallStatus::Completed;
            change.call.answered_by = Some(a);
        }
        change.offers = vec![offer(sid, 1, a, 1)];
        change.offers[0].offered_at = change.call.started_at;
        if *sid != "l1" {
            // An agent holds one open offer at a time.
            change.offers[0].state = OfferState::Missed;
        }
        assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    }
    let all = s
        .calls
        .list(&CallFilter {
            limit: 10,
            status: None,
            answered_by: None,
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|c| c.call_sid.as_str()).collect::<Vec<_>>(),
        ["l3", "l2", "l1"]
    );
    let done = s
        .calls
        .list(&CallFilter {
            limit: 10,
            status: Some(CallStatus::Completed),
            answered_by: None,
        })
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        s.calls
            .list(&CallFilter {
                limit: 2,
                status: None,
                answered_by: None,
            })
            .await
            .unwrap()
            .len(),
        2
    );
    let answered = s
        .calls
        .list(&CallFilter {
            limit: 10,
            status: None,
            answered_by: Some(a),
        })
        .await
        .unwrap();
    assert_eq!(
        answered
            .iter()
            .map(|c| c.call_sid.as_str())
            .collect::<Vec<_>>(),
        ["l2"],
        "only the calls the agent answered"
    );
    let mut bound = offer("l1", 1, a, 1);
    bound.leg_sid = Some("v3:leg-of-l1".into());
    let mut change = create("l1");
    (change.expected_version, change.call.version) = (1, 2);
    change.call.started_at = t0();
    change.call.updated_at = t0();
    change.offers = vec![bound];
    assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    assert_eq!(
        s.calls
            .call_for_leg("v3:leg-of-l1")
            .await
            .unwrap()
            .as_deref(),
        Some("l1"),
        "a bound leg names its caller's call"
    );
    assert_eq!(s.calls.call_for_leg("v3:unbound").await.unwrap(), None);
}

/// Redaction removes recordings and transcription once, audited once; retention finds old
/// calls that still hold something.
pub async fn redaction_and_retention(s: Stores) {
    let mut change = create("r1");
    change.call.recording_url = Some("https://r.example/1.mp3".into());
    change.call.voicemail_transcription = Some("secret".into());
    s.calls.apply(&change).await.unwrap();
    s.calls.apply(&create("r2")).await.unwrap();
    let later = t0() + Duration::days(1);
    assert_eq!(
        s.calls.calls_to_redact(later, 10).await.unwrap(),
        vec!["r1".to_owned()]
    );
    assert!(
        s.calls.calls_to_redact(t0(), 10).await.unwrap().is_empty(),
        "started before the cutoff only"
    );
    let audit = vec![event("r1", AuditAction::RecordingRedacted)];
    assert_eq!(
        s.calls.redact("r1", later, audit.clone()).await.unwrap(),
        Redaction::Redacted
    );
    assert_eq!(
        s.calls.redact("r1", later, audit.clone()).await.unwrap(),
        Redaction::AlreadyRedacted
    );
    assert_eq!(
        s.calls.redact("missing", later, audit).await.unwrap(),
        Redaction::NotFound
    );
    let c = s.calls.get("r1").await.unwrap().unwrap();
    assert_eq!(
        (c.recording_url, c.voicemail_transcription, c.redacted_at),
        (None, None, Some(later))
    );
    assert!(s.calls.calls_to_redact(later, 10).await.unwrap().is_empty());
    let redactions = audited(s.audit.as_ref(), "r1")
        .await
        .iter()
        .filter(|a| **a == AuditAction::RecordingRedacted)
        .count();
    assert_eq!(redactions, 1);
}

/// The voicemail inbox: every call that reached voicemail is an item (newest first), `new`
/// until assigned, `assigned` (again, to another agent) until done; done twice is done
/// once; a done item cannot be assigned; each change writes its audit events with it.
pub async fn voicemail_inbox(s: Stores) {
    let alice = new_agent(&s, 1).await;
    let bob = new_agent(&s, 2).await;
    for (i, sid) in ["vm1", "vm2", "plain"].iter().enumerate() {
        s.calls.apply(&create(sid)).await.unwrap();
        let mut c = call(sid);
        c.version = 2;
        if *sid != "plain" {
            c.status = CallStatus::Voicemail;
            c.voicemail_started_at = Some(t0() + Duration::seconds(i64::try_from(i).unwrap()));
        }
        if *sid == "vm2" {
            c.voicemail_recording_url = Some("https://r.example/vm2.mp3".into());
            c.voicemail_duration_seconds = Some(14);
            c.voicemail_transcription = Some("please call me back".into());
        }
        let mut change = effects_on(sid, 2, vec![]);
        change.call = c;
        assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    }
    let all = |state: Option<InboxState>, assigned_to: Option<AgentId>| {
        let store = Arc::clone(&s.voicemails);
        async move {
            let filter = InboxFilter {
                state,
                assigned_to,
                limit: 10,
            };
            let items: Vec<Voicemail> = store.voicemails(&filter).await.unwrap();
            items
                .into_iter()
                .map(|v| (v.call_sid, v.state))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        all(None, None).await,
        [
            ("vm2".to_owned(), InboxState::New),
            ("vm1".to_owned(), InboxState::New)
        ],
        "newest first; a call that never reached voicemail is no item"
    );
    let vm2 = s.voicemails.voicemail("vm2").await.unwrap().unwrap();
    assert_eq!(
        (
            vm2.from.as_str(),
            vm2.left_at,
            vm2.duration_seconds,
            vm2.transcription.as_deref()
        ),
        (
            "+13125550100",
            t0() + Duration::seconds(1),
            Some(14),
            Some("please call me back")
        )
    );
    assert_eq!(
        vm2.recording_url.as_deref(),
        Some("https://r.example/vm2.mp3")
    );
    assert!(s.voicemails.voicemail("plain").await.unwrap().is_none());
    let filter = InboxFilter {
        state: None,
        assigned_to: None,
        limit: 1,
    };
    assert_eq!(
        s.voicemails.voicemails(&filter).await.unwrap().len(),
        1,
        "limited"
    );

    let later = t0() + Duration::seconds(60);
    let audit = |before: &Voicemail| vec![event(&before.call_sid, AuditAction::VoicemailAssigned)];
    let v = s
        .voicemails
        .assign_voicemail("vm1", alice, later, &audit)
        .await
        .unwrap();
    assert_eq!(
        (v.state, v.assigned_to, v.assigned_at),
        (InboxState::Assigned, Some(alice), Some(later))
    );
    let v = s
        .voicemails
        .assign_voicemail("vm1", bob, later, &audit)
        .await
        .unwrap();
    assert_eq!(v.assigned_to, Some(bob), "reassigned");
    assert_eq!(
        all(Some(InboxState::Assigned), Some(bob)).await,
        [("vm1".to_owned(), InboxState::Assigned)]
    );
    assert!(all(None, Some(alice)).await.is_empty());
    assert!(matches!(
        s.voicemails
            .assign_voicemail("plain", bob, later, &audit)
            .await,
        Err(VoicemailStoreError::NotFound)
    ));

    let done_audit = |before: &Voicemail| vec![event(&before.call_sid, AuditAction::VoicemailDone)];
    let by = Actor::Agent(bob.0);
    assert!(
        matches!(
            s.voicemails
                .finish_voicemail(
                    "vm1",
                    &Actor::Agent(alice.0),
                    Some(alice),
                    later,
                    &done_audit
                )
                .await,
            Err(VoicemailStoreError::NotOwner)
        ),
        "an agent finishes only its own"
    );
    let v = s
        .voicemails
        .finish_voicemail("vm1", &by, Some(bob), later, &done_audit)
        .await
        .unwrap();
    assert_eq!(
        (v.state, v.done_at, v.done_by.clone()),
        (InboxState::Done, Some(later), Some(by.to_string()))
    );
    assert_eq!(v.assigned_to, Some(bob), "the owner stays");
    let again = s
        .voicemails
        .finish_voicemail(
            "vm1",
            &Actor::Admin,
            None,
            later + Duration::seconds(5),
            &done_audit,
        )
        .await
        .unwrap();
    assert_eq!(again, v, "done twice is done once");
    assert!(matches!(
        s.voicemails
            .assign_voicemail("vm1", alice, later, &audit)
            .await,
        Err(VoicemailStoreError::AlreadyDone)
    ));
    assert!(matches!(
        s.voicemails
            .finish_voicemail("nope", &by, None, later, &done_audit)
            .await,
        Err(VoicemailStoreError::NotFound)
    ));
    let v = s
        .voicemails
        .finish_voicemail("vm2", &Actor::Admin, None, later, &done_audit)
        .await
        .unwrap();
    assert_eq!(
        (v.state, v.assigned_to),
        (InboxState::Done, None),
        "done without an owner"
    );
    assert_eq!(all(Some(InboxState::New), None).await, []);
    let inbox_events: Vec<AuditAction> = audited(s.audit.as_ref(), "vm1")
        .await
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                AuditAction::VoicemailAssigned | AuditAction::VoicemailDone
            )
        })
        .collect();
    assert_eq!(
        inbox_events,
        [
            AuditAction::VoicemailAssigned,
            AuditAction::VoicemailAssigned,
            AuditAction::VoicemailDone
        ]
    );
}

/// Runs every story, each on fresh stores from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Stores>,
{
    insert_once(fresh().await).await;
    full_round_trip(fresh().await).await;
    stale_versions_conflict(fresh().await).await;
    receipts(fresh().await).await;
    agent_effects(fresh().await).await;
    concurrent_answers_engage_one_call(fresh().await).await;
    crossed_agent_effects_never_deadlock(fresh().await).await;
    concurrent_changes_apply_each_on_its_own(fresh().await).await;
    agent_release_is_a_compare_and_set(fresh().await).await;
    calls_to_reconcile(fresh().await).await;
    listing_and_lookups(fresh().await).await;
    redaction_and_retention(fresh().await).await;
    voicemail_inbox(fresh().await).await;
    one_open_offer_per_agent(fresh().await).await;
    queue_order_and_place(fresh().await).await;
    priority_rules(fresh().await).await;
    misses_delays_and_pauses(fresh().await).await;
    stale_reservations_conflict(fresh().await).await;
}

/// A waiting caller `sid` enqueued at `t0 + at` seconds with `priority`.
fn enqueued(sid: &str, at: i64, priority: i32) -> CallChange {
    let mut change = create(sid);
    change.call.enqueued_at = Some(t0() + Duration::seconds(at));
    change.call.priority = priority;
    change
}

/// An agent holds at most one open (ringing) offer: a second call's offer to it conflicts;
/// the agent row marks the offer (reserved, then ringing, then cleared); once it ended, the
/// agent can be offered again.
pub async fn one_open_offer_per_agent(s: Stores) {
    let a = new_agent(&s, 1).await;
    let reserve = |sid: &str| {
        let mut change = create(sid);
        change.call.round_open = true;
        change.call.attempts = 1;
        change.offers = vec![offer(sid, 1, a, 1)];
        change.agents = vec![AgentEffect {
            agent_id: a,
            offer: Some(OfferMark::Reserve),
            ..AgentEffect::default()
        }];
        change
    };
    assert_eq!(s.calls.apply(&reserve("o1")).await.unwrap(), Applied::Yes);
    let held = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(
        (held.offer_call_sid.as_deref(), held.offer_ringing),
        (Some("o1"), false)
    );
    assert_eq!(
        s.calls.apply(&reserve("o2")).await.unwrap(),
        Applied::Conflict,
        "a second open offer for the same agent"
    );
    assert!(
        s.calls.get("o2").await.unwrap().is_none(),
        "nothing of it stored"
    );
    let liveness = Liveness::new(t0(), Duration::seconds(60));
    assert!(
        s.agents
            .available_now(&liveness, 10)
            .await
            .unwrap()
            .is_empty(),
        "a reserved agent is not eligible"
    );
    let mark = |version: i64, state: OfferState, m: OfferMark| {
        let mut change = effects_on("o1", version, vec![]);
        change.call.round_open = true;
        change.call.attempts = 1;
        let mut o = offer("o1", 1, a, 1);
        o.state = state;
        change.offers = vec![o];
        change.agents = vec![AgentEffect {
            agent_id: a,
            offer: Some(m),
            ..AgentEffect::default()
        }];
        change
    };
    s.calls
        .apply(&mark(2, OfferState::Ringing, OfferMark::Ring))
        .await
        .unwrap();
    assert!(s.agents.get(a).await.unwrap().unwrap().offer_ringing);
    s.calls
        .apply(&mark(3, OfferState::Canceled, OfferMark::Clear))
        .await
        .unwrap();
    let freed = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!((freed.offer_call_sid, freed.offer_ringing), (None, false));
    assert_eq!(
        s.agents.available_now(&liveness, 10).await.unwrap().len(),
        1
    );
    assert_eq!(s.calls.apply(&reserve("o2")).await.unwrap(), Applied::Yes);
}

/// The queue's order (priority, then `enqueued_at`, then sid), who counts as waiting, a
/// caller's place, open rounds and pending pushes.
pub async fn queue_order_and_place(s: Stores) {
    for change in [
        enqueued("q-late", 30, 0),
        enqueued("q-early", 10, 0),
        enqueued("q-vip", 40, 5),
        enqueued("q-old", -700, 0),
    ] {
        assert_eq!(s.calls.apply(&change).await.unwrap(), Applied::Yes);
    }
    let mut reserved = enqueued("q-reserved", 20, 0);
    reserved.call.round_open = true;
    reserved.call.attempts = 1;
    reserved.call.status = CallStatus::Dialing;
    reserved.call.delivery = Some(Delivery::Pending);
    reserved.call.delivery_at = Some(t0() + Duration::seconds(20));
    s.calls.apply(&reserved).await.unwrap();
    let mut over = enqueued("q-over", 0, 9);
    over.call.status = CallStatus::Completed;
    s.calls.apply(&over).await.unwrap();
    let mut spent = enqueued("q-spent", 5, 0);
    spent.call.attempts = 2;
    s.calls.apply(&spent).await.unwrap();

    let want = |heads: u32| MatchWant {
        heads,
        enqueued_after: t0() - Duration::seconds(600),
        max_rounds: 2,
        agents: 10,
        liveness: Liveness::new(t0(), Duration::hours(1)),
        free_if_nobody_waits: true,
    };
    let view = s.queue.match_view(&want(10)).await.unwrap();
    assert_eq!(
        view.heads,
        ["q-vip", "q-early", "q-late"],
        "priority first, then arrival; not reserved, ended, past the longest wait or out of rounds"
    );
    assert_eq!(s.queue.match_view(&want(1)).await.unwrap().heads, ["q-vip"]);
    let queued: Vec<String> = s
        .queue
        .queued_calls(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_sid)
        .collect();
    assert_eq!(
        queued,
        [
            "q-vip",
            "q-old",
            "q-spent",
            "q-early",
            "q-reserved",
            "q-late"
        ]
    );
    let late = s.calls.get("q-late").await.unwrap().unwrap();
    let place = s
        .queue
        .place(&late, t0() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!((place.position, place.expected_wait), (6, None));
    let vip = s.calls.get("q-vip").await.unwrap().unwrap();
    assert_eq!(s.queue.place(&vip, t0()).await.unwrap().position, 1);

    assert_eq!(
        s.queue
            .open_rounds_before(t0() + Duration::seconds(20), 10)
            .await
            .unwrap(),
        ["q-reserved"]
    );
    assert!(
        s.queue
            .open_rounds_before(t0() + Duration::seconds(19), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.queue.pending_pushes(10).await.unwrap(), ["q-reserved"]);
}

/// Priority rules: set (replacing the same pattern, keeping its id), the longest matching
/// pattern decides, removed; each change with its audit event.
pub async fn priority_rules(s: Stores) {
    let event = || {
        vec![NewAuditEvent::new(
            t0(),
            Actor::Admin,
            AuditAction::PriorityRuleChanged,
        )]
    };
    let prefix = PriorityRule::new("+1555*", 5, "", t0()).unwrap();
    let exact = PriorityRule::new("+15551234567", 10, "VIP", t0()).unwrap();
    s.queue.put_priority_rule(&prefix, event()).await.unwrap();
    let stored = s.queue.put_priority_rule(&exact, event()).await.unwrap();
    assert_eq!(stored, exact);
    assert_eq!(s.queue.priority_for("+15551234567").await.unwrap(), 10);
    assert_eq!(s.queue.priority_for("+15559999999").await.unwrap(), 5);
    assert_eq!(s.queue.priority_for("+4420").await.unwrap(), 0);
    let again = PriorityRule::new("+1555*", 7, "changed", t0()).unwrap();
    let replaced = s.queue.put_priority_rule(&again, event()).await.unwrap();
    assert_eq!(
        (replaced.id, replaced.priority),
        (prefix.id, 7),
        "same pattern, same id"
    );
    assert_eq!(s.queue.priority_rules().await.unwrap().len(), 2);
    assert!(
        s.queue
            .remove_priority_rule(exact.id, event())
            .await
            .unwrap()
    );
    assert!(
        !s.queue
            .remove_priority_rule(exact.id, event())
            .await
            .unwrap()
    );
    assert_eq!(s.queue.priority_for("+15551234567").await.unwrap(), 7);
    let audited = s
        .audit
        .entries(&AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == AuditAction::PriorityRuleChanged)
        .count();
    assert_eq!(audited, 4, "three sets and one removal");
}

/// Pauses the agents with `limit` misses in a row or more; the ones paused.
async fn pause_for_misses(s: &Stores, limit: i32) -> Vec<AgentId> {
    let reason = agents::PauseReason::parse("missed-calls").unwrap();
    let audit = |agent: AgentId, in_a_row: i32| {
        let mut e = NewAuditEvent::new(t0(), Actor::System, AuditAction::AgentStatusChanged)
            .data([("missed_in_a_row", serde_json::Value::from(in_a_row))]);
        e.agent_id = Some(agent.0);
        vec![e]
    };
    s.agents
        .pause_for_misses(limit, &reason, t0(), &audit)
        .await
        .unwrap()
}

/// Misses in a row: counted by a miss, reset by an answer; a no-answer delay only moves
/// forward and keeps the agent from "available now"; the pause for misses lands only on an
/// available agent that is not paused and has missed enough in a row, by the store's count.
pub async fn misses_delays_and_pauses(s: Stores) {
    let a = new_agent(&s, 1).await;
    s.calls.apply(&create("m1")).await.unwrap();
    let miss = |version: i64, until: i64| {
        let delta = MetricsDelta {
            missed: 1,
            ..MetricsDelta::default()
        };
        let mut e = effect(a, delta, false, false);
        e.no_answer_until = Some(t0() + Duration::seconds(until));
        effects_on("m1", version, vec![e])
    };
    s.calls.apply(&miss(2, 10)).await.unwrap();
    s.calls.apply(&miss(3, 5)).await.unwrap();
    assert!(pause_for_misses(&s, 3).await.is_empty(), "two misses");
    let agent = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(agent.missed_in_a_row, 2);
    assert_eq!(
        agent.no_answer_until,
        Some(t0() + Duration::seconds(10)),
        "only forward"
    );
    let at = |secs| Liveness::new(t0() + Duration::seconds(secs), Duration::seconds(600));
    assert!(s.agents.available_now(&at(9), 10).await.unwrap().is_empty());
    let free = s.agents.available_now(&at(10), 10).await.unwrap();
    assert_eq!((free.len(), free[0].missed_in_a_row), (1, 2));
    let matcher_reads = MatchWant {
        heads: 1,
        enqueued_after: t0(),
        max_rounds: 1,
        agents: 10,
        liveness: at(10),
        free_if_nobody_waits: true,
    };
    assert_eq!(
        s.queue.match_view(&matcher_reads).await.unwrap().free,
        free,
        "the matcher's read sees the same agents"
    );
    s.calls.apply(&miss(4, 11)).await.unwrap();
    assert_eq!(pause_for_misses(&s, 3).await, [a]);
    assert!(pause_for_misses(&s, 3).await.is_empty(), "already paused");
    let paused = s.agents.get(a).await.unwrap().unwrap();
    assert_eq!(
        (
            paused.missed_in_a_row,
            paused
                .paused_reason
                .as_ref()
                .map(agents::PauseReason::as_str)
        ),
        (3, Some("missed-calls"))
    );
    let answered = MetricsDelta {
        answered: 1,
        ..MetricsDelta::default()
    };
    s.calls
        .apply(&effects_on(
            "m1",
            5,
            vec![effect(a, answered, false, false)],
        ))
        .await
        .unwrap();
    assert_eq!(s.agents.get(a).await.unwrap().unwrap().missed_in_a_row, 0);
}

/// The matcher reads its candidates before it reserves them: a reservation of an agent
/// that stopped being reservable in between (a no-answer delay, a pause, a call taken)
/// conflicts and stores nothing; the others still reserve.
pub async fn stale_reservations_conflict(s: Stores) {
    let (delayed, paused, busy, free) = (
        new_agent(&s, 1).await,
        new_agent(&s, 2).await,
        new_agent(&s, 3).await,
        new_agent(&s, 4).await,
    );
    s.calls.apply(&create("m1")).await.unwrap();
    let missed = MetricsDelta {
        missed: 1,
        ..MetricsDelta::default()
    };
    let mut delay = effect(delayed, MetricsDelta::default(), false, false);
    delay.no_answer_until = Some(t0() + Duration::seconds(30));
    let pause = effect(paused, missed, false, false);
    let engage = effect(busy, MetricsDelta::default(), true, false);
    s.calls
        .apply(&effects_on("m1", 2, vec![delay, pause, engage]))
        .await
        .unwrap();
    assert_eq!(pause_for_misses(&s, 1).await, [paused]);
    let reserve = |sid: &str, agent: AgentId, n: usize| {
        let mut change = create(sid);
        change.call.round_open = true;
        change.call.attempts = 1;
        change.offers = vec![offer(sid, 1, agent, n)];
        change.agents = vec![AgentEffect {
            agent_id: agent,
            offer: Some(OfferMark::Reserve),
            ..AgentEffect::default()
        }];
        change
    };
    for (sid, agent, n, why) in [
        ("r1", delayed, 1, "in its no-answer delay"),
        ("r2", paused, 2, "paused"),
        ("r3", busy, 3, "on a call"),
    ] {
        assert_eq!(
            s.calls.apply(&reserve(sid, agent, n)).await.unwrap(),
            Applied::Conflict,
            "an agent {why}"
        );
        assert!(s.calls.get(sid).await.unwrap().is_none(), "nothing stored");
        assert_eq!(
            s.agents.get(agent).await.unwrap().unwrap().offer_call_sid,
            None
        );
    }
    assert_eq!(
        s.calls.apply(&reserve("r4", free, 4)).await.unwrap(),
        Applied::Yes
    );
}

/// Telnyx's own documented callback examples (`../shared/telnyx-fixtures/*.form`, beside the
/// project), adapted to a test call: the shapes tests and the simulator must handle.
pub mod fixtures {
    use std::path::PathBuf;

    /// Where the fixtures are: `TELNYX_FIXTURES`, else `../shared/telnyx-fixtures` beside the
    /// workspace.
    #[must_use]
    pub fn dir() -> PathBuf {
        std::env::var_os("TELNYX_FIXTURES").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/telnyx-fixtures"),
            PathBuf::from,
        )
    }

    /// The pairs of fixture `file` (`texml-call-answered.form`, …), in order, with the
    /// value of every key named in `set` (and of its `…Legacy` twin) replaced, and keys set
    /// to `None` removed.
    #[must_use]
    pub fn form(file: &str, set: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
        let path = dir().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text.trim()).unwrap();
        pairs
            .into_iter()
            .filter_map(|(k, v)| {
                let base = k.strip_suffix("Legacy").unwrap_or(&k);
                match set.iter().find(|(name, _)| *name == base) {
                    Some((_, Some(value))) => Some((k, (*value).to_owned())),
                    Some((_, None)) => None,
                    None => Some((k, v)),
                }
            })
            .collect()
    }

    /// [`form`], encoded as Telnyx sends it.
    #[must_use]
    pub fn body(name: &str, set: &[(&str, Option<&str>)]) -> String {
        serde_urlencoded::to_string(form(name, set)).unwrap()
    }
}
