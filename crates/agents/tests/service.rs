//! The agent service over the in-memory store: validation, tokens, heartbeat expiry with a
//! controllable clock (no sleeps), audit events.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;

use agents::*;
use audit::{AuditAction, ChainSink, MemoryAuditLog};
use chrono::{Duration, TimeZone, Utc};

fn setup() -> (AgentService, ManualClock, MemoryAuditLog) {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap());
    let log = MemoryAuditLog::new();
    let store = Arc::new(MemoryAgentStore::new(log.clone()));
    let service = AgentService::new(
        store,
        Arc::new(clock.clone()),
        Arc::new(ChainSink),
        Duration::seconds(60),
    );
    (service, clock, log)
}

fn alice() -> NewAgent<'static> {
    NewAgent {
        name: " Alice Smith ",
        sip_uri: "sip:alice@example.sip.telnyx.com",
        status: Some("available"),
        reason: None,
    }
}

#[tokio::test]
async fn heartbeat_expiry_follows_the_clock() {
    let (service, clock, _) = setup();
    let (a, _) = service.register(alice(), Caller::Admin).await.unwrap();
    let id = a.id.to_string();
    assert_eq!(
        a.status,
        EffectiveStatus::Available,
        "registering as available is a first heartbeat"
    );
    clock.advance(Duration::seconds(60));
    assert_eq!(
        service.get(&id).await.unwrap().status,
        EffectiveStatus::Available,
        "exactly the TTL is fresh"
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        service.get(&id).await.unwrap().status,
        EffectiveStatus::Offline
    );
    assert!(service.available_now(10).await.unwrap().is_empty());
    let back = service
        .heartbeat(Caller::Agent(a.id), &id, None, None)
        .await
        .unwrap();
    assert_eq!(back.status, EffectiveStatus::Available);
    assert_eq!(back.last_heartbeat_at, Some(clock.now()));
    assert_eq!(service.available_now(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn registration_without_status_waits_for_a_heartbeat() {
    let (service, _, _) = setup();
    let input = NewAgent {
        status: None,
        reason: None,
        ..alice()
    };
    let (a, _) = service.register(input, Caller::Admin).await.unwrap();
    assert_eq!(a.status, EffectiveStatus::Offline);
    assert_eq!(a.last_heartbeat_at, None);
    let hb = service
        .heartbeat(Caller::Admin, &a.id.to_string(), None, None)
        .await
        .unwrap();
    assert_eq!(hb.status, EffectiveStatus::Available);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let (service, _, _) = setup();
    let cases = [
        (
            NewAgent {
                name: "  ",
                ..alice()
            },
            "name",
        ),
        (
            NewAgent {
                name: &"x".repeat(101),
                ..alice()
            },
            "name",
        ),
        (
            NewAgent {
                sip_uri: "alice@example.com",
                ..alice()
            },
            "sip_uri",
        ),
        (
            NewAgent {
                status: Some("sleeping"),
                reason: None,
                ..alice()
            },
            "status",
        ),
    ];
    for (input, field) in cases {
        match service.register(input, Caller::Admin).await {
            Err(AgentError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    assert!(matches!(
        service.list(Some("gone")).await,
        Err(AgentError::Invalid {
            field: "status",
            ..
        })
    ));
}

#[tokio::test]
async fn tokens_act_only_for_their_agent() {
    let (service, _, _) = setup();
    let (a, token_a) = service.register(alice(), Caller::Admin).await.unwrap();
    let (b, token_b) = service
        .register(
            NewAgent {
                name: "Bob",
                sip_uri: "sip:bob@example.com",
                status: None,
                reason: None,
            },
            Caller::Admin,
        )
        .await
        .unwrap();
    assert_ne!(token_a, token_b);
    assert!(token_a.starts_with("hb_") && token_a.len() > 40);
    assert_eq!(service.agent_for_token(&token_a).await.unwrap(), Some(a.id));
    assert_eq!(service.agent_for_token("hb_forged").await.unwrap(), None);
    let err = service
        .heartbeat(Caller::Agent(a.id), &b.id.to_string(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Forbidden));
    let err = service
        .heartbeat(
            Caller::Agent(a.id),
            &uuid::Uuid::new_v4().to_string(),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::Forbidden),
        "another id is forbidden before it is looked up"
    );
    let err = service
        .heartbeat(Caller::Admin, &uuid::Uuid::new_v4().to_string(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::NotFound));
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor() {
    let (service, _, log) = setup();
    let (a, _) = service.register(alice(), Caller::Admin).await.unwrap();
    let id = a.id.to_string();
    service
        .heartbeat(Caller::Agent(a.id), &id, Some("busy"), None)
        .await
        .unwrap();
    service
        .heartbeat(Caller::Agent(a.id), &id, Some("busy"), None)
        .await
        .unwrap();
    service
        .update(
            &id,
            AgentChanges {
                name: Some("Alice S."),
                ..AgentChanges::default()
            },
        )
        .await
        .unwrap();
    service.remove(&id).await.unwrap();
    let entries = log.all();
    let actions: Vec<AuditAction> = entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::AgentRegistered,
            AuditAction::AgentStatusChanged,
            AuditAction::AgentUpdated,
            AuditAction::AgentRemoved
        ]
    );
    assert_eq!(entries[1].actor.to_string(), format!("agent:{id}"));
    assert_eq!(entries[1].data, r#"{"from":"available","to":"busy"}"#);
    assert!(
        entries
            .iter()
            .all(|e| !e.data.contains("alice@") && !e.data.contains("Alice")),
        "ids only"
    );
}

#[tokio::test]
async fn a_pause_takes_a_configured_reason_and_keeps_the_agent_from_calls() {
    let (service, _, log) = setup();
    let service = service.with_pause_reasons(vec![PauseReason::parse("coaching").unwrap()]);
    let (a, _) = service.register(alice(), Caller::Admin).await.unwrap();
    let id = a.id.to_string();
    let me = Caller::Agent(a.id);
    let refused = service
        .heartbeat(me, &id, Some("paused"), Some("lunch"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        r#"reason: must be one of coaching; got "lunch""#
    );
    let paused = service
        .heartbeat(me, &id, Some("paused"), Some("coaching"))
        .await
        .unwrap();
    assert_eq!(paused.status, EffectiveStatus::Paused);
    assert_eq!(
        paused.paused_reason.as_ref().map(PauseReason::as_str),
        Some("coaching")
    );
    assert!(
        service.available_now(10).await.unwrap().is_empty(),
        "not rung"
    );
    let again = service.heartbeat(me, &id, None, None).await.unwrap();
    assert_eq!(
        again.status,
        EffectiveStatus::Paused,
        "a bare heartbeat keeps the pause"
    );
    let back = service
        .heartbeat(me, &id, Some("available"), None)
        .await
        .unwrap();
    assert_eq!(
        (back.status, back.paused_reason),
        (EffectiveStatus::Available, None)
    );
    let data: Vec<String> = log
        .all()
        .iter()
        .filter(|e| e.action == AuditAction::AgentStatusChanged)
        .map(|e| e.data.clone())
        .collect();
    assert_eq!(
        data,
        [
            r#"{"from":"available","to":"paused","to_reason":"coaching"}"#,
            r#"{"from":"paused","from_reason":"coaching","to":"available"}"#,
        ]
    );
}
