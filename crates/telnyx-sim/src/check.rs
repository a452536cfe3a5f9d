//! The end-of-run consistency check: the server's calls, agent metrics and audit chain
//! against what the simulator saw.

use std::collections::HashMap;

use serde_json::Value;

use crate::agents::Softphones;
use crate::call::Truth;
use crate::client::Server;

/// Mismatches found (empty: consistent).
#[derive(Debug, Default)]
pub struct Report {
    /// One line per mismatch.
    pub mismatches: Vec<String>,
    /// Audit entries verified.
    pub audit_entries: i64,
}

/// Waits up to `window` until every server's callback spool is empty and no agent is busy
/// (what a fault left behind, settled by the spool's replay and the reconciler); says
/// what it saw last.
pub async fn settle(server: &Server, window: std::time::Duration) -> String {
    let started = std::time::Instant::now();
    loop {
        let pending = server.spool_pending().await;
        let busy = server.agents().await.map_or(usize::MAX, |a| {
            a.iter().filter(|a| a.status == "busy").count()
        });
        let state = format!("spooled callbacks {pending:?}, busy agents {busy}");
        let empty = pending.iter().all(|p| *p == Some(0));
        if (empty && busy == 0) || started.elapsed() >= window {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Compares the server's state with `truths`.
///
/// # Errors
/// When the server cannot be asked.
pub async fn check(
    server: &Server,
    phones: &Softphones,
    truths: &[Truth],
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for t in truths {
        let call = server.call(&t.call_sid).await?;
        compare_call(&mut report, t, &call);
    }
    compare_agents(&mut report, server, phones, truths).await?;
    let audit = server.verify_audit().await?;
    report.audit_entries = audit["entries"].as_i64().unwrap_or(0);
    if audit["ok"] != Value::Bool(true) {
        report
            .mismatches
            .push(format!("audit chain does not verify: {audit}"));
    }
    Ok(report)
}

fn compare_call(report: &mut Report, t: &Truth, call: &Value) {
    let sid = &t.call_sid;
    let mut expect = |what: &str, got: &Value, want: Value| {
        if *got != want {
            report
                .mismatches
                .push(format!("{sid}: {what} is {got}, the simulator saw {want}"));
        }
    };
    expect("status", &call["status"], Value::from("completed"));
    expect("outcome", &call["outcome"], Value::from(t.outcome));
    expect(
        "answered_by",
        &call["answered_by"],
        t.answered_by.clone().map_or(Value::Null, Value::from),
    );
    if t.outcome == "answered" {
        expect(
            "talk_seconds",
            &call["talk_seconds"],
            t.talk_seconds.map_or(Value::Null, Value::from),
        );
    }
    if t.voicemail {
        expect(
            "voicemail recorded",
            &Value::Bool(call["voicemail"]["recording_url"].is_string()),
            Value::Bool(true),
        );
        expect(
            "voicemail transcribed",
            &Value::Bool(call["voicemail"]["transcription"].is_string()),
            Value::Bool(true),
        );
    }
}

async fn compare_agents(
    report: &mut Report,
    server: &Server,
    phones: &Softphones,
    truths: &[Truth],
) -> anyhow::Result<()> {
    let mut answered: HashMap<&str, i64> = HashMap::new();
    let mut talk: HashMap<&str, i64> = HashMap::new();
    let mut missed: HashMap<&str, i64> = HashMap::new();
    for t in truths {
        if let Some(a) = &t.answered_by {
            *answered.entry(a).or_default() += 1;
            *talk.entry(a).or_default() += t.talk_seconds.unwrap_or(0);
        }
        for m in &t.misses {
            *missed.entry(m).or_default() += 1;
        }
    }
    let on_server = server.agents().await?;
    for agent in &phones.list {
        let Some(a) = on_server.iter().find(|s| s.id == agent.id) else {
            report
                .mismatches
                .push(format!("agent {} is gone", agent.id));
            continue;
        };
        let id = agent.id.as_str();
        let want = (
            answered.get(id).copied().unwrap_or(0),
            missed.get(id).copied().unwrap_or(0),
            talk.get(id).copied().unwrap_or(0),
        );
        let got = (
            a.metrics.calls_answered,
            a.metrics.calls_missed,
            a.metrics.total_talk_seconds,
        );
        if got != want {
            report.mismatches.push(format!(
                "{} ({id}): answered/missed/talk {got:?}, the simulator counted {want:?}",
                a.name
            ));
        }
        if a.status == "busy" {
            report
                .mismatches
                .push(format!("{} ({id}) is left busy", a.name));
        }
    }
    Ok(())
}
