//! The contract every [`AgentStore`] must meet, as test stories run against the in-memory
//! fake (here) and against SQLite and PostgreSQL (in the `store` crate). Enabled by the
//! `contract` feature; each function panics on a violation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::sync::Arc;

use audit::{Actor, AuditAction, AuditFilter, AuditLog, NewAuditEvent};
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};

use crate::model::{
    Agent, AgentId, AgentMetrics, AgentName, EffectiveStatus, Liveness, PauseReason, Presence,
    PresenceState,
};
use crate::port::{AgentPatch, AgentStore, AgentStoreError};
use crate::sip::SipUri;

/// A fixed instant the stories start from.
#[must_use]
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0)
        .single()
        .unwrap()
}

/// A minimal agent for stories.
#[must_use]
pub fn agent(
    name: &str,
    sip: &str,
    presence: Presence,
    heartbeat: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Agent {
    Agent {
        id: AgentId::new(),
        name: AgentName::parse(name).unwrap(),
        sip_uri: SipUri::parse(sip).unwrap(),
        presence,
        paused_reason: None,
        presence_since: at,
        last_heartbeat_at: heartbeat.map(|h| h.trunc_subsecs(6)),
        current_call_sid: None,
        idle_since: at,
        created_at: at,
        updated_at: at,
        metrics: AgentMetrics::default(),
        missed_in_a_row: 0,
        offer_call_sid: None,
        offer_ringing: false,
        no_answer_until: None,
    }
}

/// A presence without a pause.
#[must_use]
pub fn said(presence: Presence) -> PresenceState {
    PresenceState {
        presence,
        paused_reason: None,
    }
}

/// A pause for `reason`.
#[must_use]
pub fn paused(reason: &str) -> PresenceState {
    PresenceState {
        presence: Presence::Available,
        paused_reason: Some(PauseReason::parse(reason).unwrap()),
    }
}

fn event(action: AuditAction, id: AgentId) -> Vec<NewAuditEvent> {
    vec![NewAuditEvent::new(t0(), Actor::Admin, action).agent(id.0)]
}

async fn audited(log: &dyn AuditLog, id: AgentId) -> Vec<AuditAction> {
    let filter = AuditFilter {
        agent_id: Some(id.0),
        ..AuditFilter::default()
    };
    log.entries(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Insert, read back by id, token and SIP key; the audit event lands with the insert.
pub async fn insert_and_read_back(store: Arc<dyn AgentStore>, log: Arc<dyn AuditLog>) {
    let a = agent(
        "Alice Smith",
        "sip:alice@Example.com",
        Presence::Available,
        Some(t0()),
        t0(),
    );
    store
        .insert(&a, "hash-a", event(AuditAction::AgentRegistered, a.id))
        .await
        .unwrap();
    assert_eq!(store.get(a.id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.agent_for_token("hash-a").await.unwrap(), Some(a.id));
    assert_eq!(store.agent_for_token("nope").await.unwrap(), None);
    assert_eq!(
        store
            .find_by_sip_key("alice@example.com")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(a.id)
    );
    assert_eq!(store.get(AgentId::new()).await.unwrap(), None);
    let b = agent(
        "Bob Jones",
        "sip:bob@example.com",
        Presence::Offline,
        None,
        t0(),
    );
    store
        .insert(&b, "hash-b", event(AuditAction::AgentRegistered, b.id))
        .await
        .unwrap();
    let ids = |agents: Vec<Agent>| agents.into_iter().map(|x| x.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.get_many(&[b.id, AgentId::new(), a.id]).await.unwrap()),
        vec![b.id, a.id],
        "the agents that exist, in the order asked"
    );
    assert_eq!(store.get_many(&[a.id]).await.unwrap(), vec![a.clone()]);
    assert!(store.get_many(&[]).await.unwrap().is_empty());
    assert_eq!(
        audited(log.as_ref(), a.id).await,
        vec![AuditAction::AgentRegistered]
    );
}

/// The SIP key is unique on insert and on update; a refused write leaves no audit entry.
pub async fn sip_uri_is_unique(store: Arc<dyn AgentStore>, log: Arc<dyn AuditLog>) {
    let a = agent(
        "A",
        "sip:alice@example.com",
        Presence::Available,
        None,
        t0(),
    );
    let b = agent("B", "sip:bob@example.com", Presence::Available, None, t0());
    store.insert(&a, "ha", vec![]).await.unwrap();
    store.insert(&b, "hb", vec![]).await.unwrap();
    let dup = agent(
        "A2",
        "sips:alice@EXAMPLE.com;transport=tls",
        Presence::Available,
        None,
        t0(),
    );
    let err = store
        .insert(&dup, "hd", event(AuditAction::AgentRegistered, dup.id))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentStoreError::DuplicateSipUri), "{err:?}");
    assert!(audited(log.as_ref(), dup.id).await.is_empty());
    let patch = AgentPatch {
        sip_uri: Some(SipUri::parse("sip:alice@example.com").unwrap()),
        ..AgentPatch::default()
    };
    let err = store
        .update(b.id, &patch, t0(), event(AuditAction::AgentUpdated, b.id))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentStoreError::DuplicateSipUri), "{err:?}");
    assert!(audited(log.as_ref(), b.id).await.is_empty());
    // Keeping one's own URI is no conflict.
    let own = AgentPatch {
        sip_uri: Some(SipUri::parse("sip:bob@example.com;lr").unwrap()),
        ..AgentPatch::default()
    };
    let updated = store.update(b.id, &own, t0(), vec![]).await.unwrap();
    assert_eq!(updated.sip_uri.as_str(), "sip:bob@example.com;lr");
}

/// Update and delete: not-found, field changes, tokens gone with the agent.
pub async fn update_and_delete(store: Arc<dyn AgentStore>, log: Arc<dyn AuditLog>) {
    let a = agent("A", "sip:a@example.com", Presence::Available, None, t0());
    store.insert(&a, "ha", vec![]).await.unwrap();
    let later = t0() + Duration::seconds(5);
    let patch = AgentPatch {
        name: Some(AgentName::parse("Alice").unwrap()),
        sip_uri: None,
        presence: Some(paused("training")),
    };
    let updated = store
        .update(a.id, &patch, later, event(AuditAction::AgentUpdated, a.id))
        .await
        .unwrap();
    assert_eq!(
        (
            updated.name.as_str(),
            updated.presence_state(),
            updated.updated_at
        ),
        ("Alice", paused("training"), later)
    );
    let resumed = AgentPatch {
        presence: Some(said(Presence::Busy)),
        ..AgentPatch::default()
    };
    let updated = store.update(a.id, &resumed, later, vec![]).await.unwrap();
    assert_eq!(
        updated.presence_state(),
        said(Presence::Busy),
        "a pause ends"
    );
    assert!(matches!(
        store.update(AgentId::new(), &patch, later, vec![]).await,
        Err(AgentStoreError::NotFound)
    ));
    store
        .delete(a.id, event(AuditAction::AgentRemoved, a.id))
        .await
        .unwrap();
    assert_eq!(store.get(a.id).await.unwrap(), None);
    assert_eq!(store.agent_for_token("ha").await.unwrap(), None);
    assert!(matches!(
        store.delete(a.id, vec![]).await,
        Err(AgentStoreError::NotFound)
    ));
    assert_eq!(
        audited(log.as_ref(), a.id).await,
        vec![AuditAction::AgentUpdated, AuditAction::AgentRemoved]
    );
}

/// Heartbeats refresh liveness; a presence change (a pause, its reason, its end) is
/// audited once, in the same write.
pub async fn heartbeat_and_presence_changes(store: Arc<dyn AgentStore>, log: Arc<dyn AuditLog>) {
    let a = agent("A", "sip:a@example.com", Presence::Available, None, t0());
    store.insert(&a, "ha", vec![]).await.unwrap();
    let ttl = Duration::seconds(60);
    let on_change = |from: &PresenceState, to: &PresenceState| {
        vec![
            NewAuditEvent::new(t0(), Actor::Agent(a.id.0), AuditAction::AgentStatusChanged)
                .agent(a.id.0)
                .data([("from", from.keyword().into()), ("to", to.keyword().into())]),
        ]
    };
    let status = |agent: &Agent, at: DateTime<Utc>| agent.status(&Liveness::new(at, ttl));
    assert_eq!(
        status(&store.get(a.id).await.unwrap().unwrap(), t0()),
        EffectiveStatus::Offline
    );

    let hb = store.heartbeat(a.id, None, t0(), &on_change).await.unwrap();
    assert_eq!(status(&hb, t0()), EffectiveStatus::Available);
    assert_eq!(status(&hb, t0() + ttl), EffectiveStatus::Available);
    assert_eq!(
        status(&hb, t0() + ttl + Duration::seconds(1)),
        EffectiveStatus::Offline
    );

    let later = t0() + Duration::seconds(90);
    let hb = store
        .heartbeat(a.id, Some(&said(Presence::Available)), later, &on_change)
        .await
        .unwrap();
    assert_eq!(status(&hb, later), EffectiveStatus::Available);
    assert!(
        audited(log.as_ref(), a.id).await.is_empty(),
        "no change, no entry"
    );

    let hb = store
        .heartbeat(a.id, Some(&said(Presence::Busy)), later, &on_change)
        .await
        .unwrap();
    assert_eq!(status(&hb, later), EffectiveStatus::Busy);
    assert_eq!(
        audited(log.as_ref(), a.id).await,
        vec![AuditAction::AgentStatusChanged]
    );

    for (state, expected) in [
        (paused("break"), EffectiveStatus::Paused),
        (paused("break"), EffectiveStatus::Paused),
        (paused("lunch"), EffectiveStatus::Paused),
        (said(Presence::Available), EffectiveStatus::Available),
    ] {
        let hb = store
            .heartbeat(a.id, Some(&state), later, &on_change)
            .await
            .unwrap();
        assert_eq!((hb.presence_state(), status(&hb, later)), (state, expected));
        assert_eq!(
            store.get(a.id).await.unwrap().unwrap().presence_state(),
            hb.presence_state(),
            "stored as answered"
        );
    }
    assert_eq!(
        audited(log.as_ref(), a.id).await.len(),
        4,
        "busy, break, lunch, available: the repeated break changed nothing"
    );

    assert!(matches!(
        store
            .heartbeat(AgentId::new(), None, later, &on_change)
            .await,
        Err(AgentStoreError::NotFound)
    ));
}

/// `list` filters by effective status exactly as [`crate::effective_status`] says, for
/// every row of the status table.
pub async fn list_filters_by_effective_status(store: Arc<dyn AgentStore>) {
    let now = t0() + Duration::seconds(600);
    let ttl = Duration::seconds(60);
    let fresh = Some(now - Duration::seconds(10));
    let stale = Some(now - Duration::seconds(61));
    let rows = [
        (
            "busy-on-call-stale",
            Presence::Available,
            stale,
            true,
            false,
            false,
        ),
        (
            "busy-on-call-offline",
            Presence::Offline,
            fresh,
            true,
            false,
            false,
        ),
        (
            "busy-on-call-paused",
            Presence::Available,
            fresh,
            true,
            true,
            false,
        ),
        ("available", Presence::Available, fresh, false, false, false),
        ("busy-presence", Presence::Busy, fresh, false, false, false),
        (
            "offline-fresh",
            Presence::Offline,
            fresh,
            false,
            false,
            false,
        ),
        (
            "available-stale",
            Presence::Available,
            stale,
            false,
            false,
            false,
        ),
        ("busy-stale", Presence::Busy, stale, false, false, false),
        ("never", Presence::Available, None, false, false, false),
        ("paused", Presence::Available, fresh, false, true, false),
        ("paused-busy", Presence::Busy, fresh, false, true, false),
        (
            "paused-stale",
            Presence::Available,
            stale,
            false,
            true,
            false,
        ),
        (
            "paused-offline",
            Presence::Offline,
            fresh,
            false,
            true,
            false,
        ),
        (
            "wrapping-up",
            Presence::Available,
            fresh,
            false,
            false,
            true,
        ),
        (
            "wrapping-up-paused",
            Presence::Available,
            fresh,
            false,
            true,
            true,
        ),
        (
            "wrapping-up-stale",
            Presence::Available,
            stale,
            false,
            false,
            true,
        ),
        (
            "wrapping-up-offline",
            Presence::Offline,
            fresh,
            false,
            false,
            true,
        ),
    ];
    let mut agents = Vec::new();
    for (i, (name, presence, hb, on_call, pause, wrapping)) in rows.iter().enumerate() {
        let mut a = agent(
            name,
            &format!("sip:{name}@example.com"),
            *presence,
            *hb,
            t0() + Duration::seconds(i as i64),
        );
        a.current_call_sid = on_call.then(|| format!("call-{i}"));
        if *wrapping {
            a.idle_since = now + Duration::seconds(30);
        }
        a.paused_reason = pause.then(|| PauseReason::parse("break").unwrap());
        store.insert(&a, &format!("h{i}"), vec![]).await.unwrap();
        agents.push(store.get(a.id).await.unwrap().unwrap());
    }
    let liveness = Liveness::new(now, ttl);
    for &status in <EffectiveStatus as strum::VariantArray>::VARIANTS {
        let mut expected: Vec<AgentId> = agents
            .iter()
            .filter(|a| a.status(&liveness) == status)
            .map(|a| a.id)
            .collect();
        let mut got: Vec<AgentId> = store
            .list(Some(status), &liveness)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "status {status}");
    }
    let all: Vec<AgentId> = store
        .list(None, &liveness)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        all,
        agents.iter().map(|a| a.id).collect::<Vec<_>>(),
        "oldest first"
    );
}

/// "Available now": presence available, not paused, fresh heartbeat, no call; longest idle first;
/// limited.
pub async fn available_now_is_ordered_and_limited(store: Arc<dyn AgentStore>) {
    let now = t0() + Duration::seconds(600);
    let liveness = Liveness::new(now, Duration::seconds(60));
    let fresh = Some(now);
    let mut expected = Vec::new();
    for i in 0..5 {
        // idle_since goes backwards, so the last inserted is the longest idle.
        let a = agent(
            &format!("a{i}"),
            &format!("sip:a{i}@example.com"),
            Presence::Available,
            fresh,
            t0() - Duration::seconds(i),
        );
        store.insert(&a, &format!("h{i}"), vec![]).await.unwrap();
        expected.insert(0, a.id);
    }
    let busy = agent(
        "b",
        "sip:b@example.com",
        Presence::Busy,
        fresh,
        t0() - Duration::seconds(100),
    );
    let stale = agent(
        "s",
        "sip:s@example.com",
        Presence::Available,
        Some(now - Duration::seconds(61)),
        t0() - Duration::seconds(100),
    );
    let mut on_call = agent(
        "c",
        "sip:c@example.com",
        Presence::Available,
        fresh,
        t0() - Duration::seconds(100),
    );
    on_call.current_call_sid = Some("call-x".into());
    let mut paused = agent(
        "p",
        "sip:p@example.com",
        Presence::Available,
        fresh,
        t0() - Duration::seconds(100),
    );
    paused.paused_reason = Some(PauseReason::parse("lunch").unwrap());
    for (a, h) in [
        (&busy, "hb"),
        (&stale, "hs"),
        (&on_call, "hc"),
        (&paused, "hp"),
    ] {
        store.insert(a, h, vec![]).await.unwrap();
    }
    let got: Vec<AgentId> = store
        .available_now(&liveness, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, expected);
    let limited = store.available_now(&liveness, 2).await.unwrap();
    assert_eq!(
        limited.iter().map(|c| c.id).collect::<Vec<_>>(),
        expected[..2]
    );
}

/// A sign-in link works once, before it expires, for its agent only; an unknown agent gets
/// none; the events land with the writes that happened.
pub async fn sign_in_links_work_once(store: Arc<dyn AgentStore>, log: Arc<dyn AuditLog>) {
    let a = agent("Ann", "sip:ann@example.com", Presence::Offline, None, t0());
    store.insert(&a, "hash-ann", Vec::new()).await.unwrap();
    let later = |secs| t0() + Duration::seconds(secs);
    let created = || event(AuditAction::SignInLinkCreated, a.id);
    let used = |id: AgentId| event(AuditAction::SignInLinkUsed, id);
    store
        .add_sign_in_link(a.id, "link-1", t0(), later(900), created())
        .await
        .unwrap();
    store
        .add_sign_in_link(a.id, "link-2", t0(), later(60), created())
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_sign_in_link(AgentId::new(), "link-x", t0(), later(900), created())
            .await,
        Err(AgentStoreError::NotFound)
    ));
    assert_eq!(
        store
            .use_sign_in_link("nope", later(1), &used)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .use_sign_in_link("link-1", later(1), &used)
            .await
            .unwrap(),
        Some(a.id)
    );
    assert_eq!(
        store
            .use_sign_in_link("link-1", later(2), &used)
            .await
            .unwrap(),
        None,
        "once"
    );
    assert_eq!(
        store
            .use_sign_in_link("link-2", later(60), &used)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        audited(log.as_ref(), a.id).await,
        vec![
            AuditAction::SignInLinkCreated,
            AuditAction::SignInLinkCreated,
            AuditAction::SignInLinkUsed
        ]
    );
}

/// Runs every story, each on a fresh store from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn AgentStore>, Arc<dyn AuditLog>)>,
{
    let (s, l) = fresh().await;
    insert_and_read_back(s, l).await;
    let (s, l) = fresh().await;
    sip_uri_is_unique(s, l).await;
    let (s, l) = fresh().await;
    update_and_delete(s, l).await;
    let (s, l) = fresh().await;
    heartbeat_and_presence_changes(s, l).await;
    let (s, l) = fresh().await;
    sign_in_links_work_once(s, l).await;
    list_filters_by_effective_status(fresh().await.0).await;
    available_now_is_ordered_and_limited(fresh().await.0).await;
}
