//! The end-of-run consistency check: the server's calls, agent metrics and audit chain
//! against what the simulator saw.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::agents::Softphones;
use crate::call::Truth;
use crate::client::Server;
use crate::queue::QueueReport;
use crate::scenario::Scenario;

/// Mismatches found (empty: consistent).
#[derive(Debug, Default)]
pub struct Report {
    /// One line per mismatch.
    pub mismatches: Vec<String>,
    /// Audit entries verified.
    pub audit_entries: i64,
    /// What the server's offers say about the queue.
    pub queue: QueueFacts,
}

/// The queue from the server's calls and offers.
#[derive(Debug, Default, Clone)]
pub struct QueueFacts {
    /// Offers made.
    pub offers: usize,
    /// Calls whose first offer went to them while a caller ahead of them in
    /// `(priority, enqueued_at)` order waited without one.
    pub out_of_order: usize,
    /// Calls checked for order.
    pub ordered: usize,
    /// Agent pauses after missed offers, as the server's summary counts them.
    pub pauses: i64,
    /// Abandoned calls and their mean wait (seconds) in the server's summary.
    pub abandoned: i64,
    /// Mean wait of abandoned calls in the summary, seconds.
    pub abandoned_wait_avg: Option<f64>,
    /// The longest time from joining the queue to voicemail, seconds.
    pub longest_to_voicemail: f64,
    /// Answered or missed offers whose outcome the server learned only after it had offered
    /// the agent again (the round had closed without them, e.g. the caller hung up, and the
    /// leg's own report came later): their wrap-up or delay is not checked.
    pub outcomes_learned_late: usize,
    /// Callers that looked passed over by their times but whose joining the audit log
    /// recorded after the other caller's offer (a slow commit of the enqueue).
    pub joined_late: usize,
}

/// One offer from the call view.
#[derive(Debug, Clone)]
struct OfferSeen {
    call: String,
    attempt: i64,
    state: String,
    offered_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

/// A call's place in the queue from the call view.
#[derive(Debug, Clone)]
struct Queued {
    call: String,
    priority: i64,
    enqueued_at: DateTime<Utc>,
    /// When the simulator had the answer to its `/inbound` (the join committed by then).
    joined_by: Option<DateTime<Utc>>,
    first_offer: Option<DateTime<Utc>>,
    left_at: Option<DateTime<Utc>>,
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn seconds(d: chrono::Duration) -> f64 {
    d.as_seconds_f64()
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
    scenario: &Scenario,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut calls = Vec::with_capacity(truths.len());
    for t in truths {
        let call = server.call(&t.call_sid).await?;
        compare_call(&mut report, t, &call);
        calls.push(call);
    }
    compare_agents(&mut report, server, phones, truths).await?;
    let order = AuditOrder::read(server, phones).await?;
    check_offers(&mut report, &calls, scenario, &order);
    let suspects = check_order(&mut report, &calls, truths, scenario);
    confirm_passed_over(&mut report, server, suspects).await?;
    check_summary(&mut report, server, phones, truths).await?;
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

/// Per agent, from the server's offers: never two open at once, every one closed, the
/// wrap-up after an answered offer and the no-answer delay after a missed one kept.
///
/// With reordered callbacks the caller's `<Dial action>` (the round over) can reach the
/// server before the agent leg's own callbacks: the server then frees the agent without
/// knowing it talked, and learns of the answer (`ended_at` set) only later. Wrap-up is
/// checked only where the answer's end was known before the next offer.
fn check_offers(report: &mut Report, calls: &[Value], scenario: &Scenario, order: &AuditOrder) {
    let q = scenario.server_queue;
    let mut by_agent: HashMap<String, Vec<OfferSeen>> = HashMap::new();
    for c in calls {
        let sid = c["call_sid"].as_str().unwrap_or_default();
        for o in c["offers"].as_array().map_or(&[][..], Vec::as_slice) {
            let Some(offered_at) = time(&o["offered_at"]) else {
                report
                    .mismatches
                    .push(format!("{sid}: an offer without offered_at: {o}"));
                continue;
            };
            by_agent
                .entry(o["agent_id"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(OfferSeen {
                    call: sid.to_owned(),
                    attempt: o["attempt"].as_i64().unwrap_or_default(),
                    state: o["state"].as_str().unwrap_or_default().to_owned(),
                    offered_at,
                    closed_at: time(&o["closed_at"]),
                    ended_at: time(&o["ended_at"]),
                });
            report.queue.offers += 1;
        }
    }
    // The server computes wrap-up and delay ends from the same instant it records; allow
    // only clock rounding.
    let slack = chrono::Duration::milliseconds(2);
    let wrap_up = chrono::Duration::milliseconds((q.wrap_up * 1000.0) as i64);
    let delay = chrono::Duration::milliseconds((q.no_answer_delay * 1000.0) as i64);
    for (agent, offers) in &mut by_agent {
        offers.sort_by_key(|o| o.offered_at);
        for o in offers.iter().filter(|o| o.closed_at.is_none()) {
            report.mismatches.push(format!(
                "agent {agent}: the offer for {} was left open ({})",
                o.call, o.state
            ));
        }
        for w in offers.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let Some(closed) = a.closed_at else { continue };
            if b.offered_at < closed {
                report.mismatches.push(format!(
                    "agent {agent}: two open offers at once ({} until {closed}, {} from {})",
                    a.call, b.call, b.offered_at
                ));
            }
            // When the server learned the outcome (`ended_at`): after the next offer, the
            // agent had already been freed (the round closed first) and nothing was to keep.
            // An outcome that came after its offer had closed (the agent freed by then) may
            // also be committed just after a reservation decided a few milliseconds later.
            // A callback replayed from the server's spool keeps the time it was received,
            // so its outcome can carry a time before an offer the server made before it
            // learned that outcome: the audit log's order says which came first.
            let race = chrono::Duration::milliseconds(100);
            let learned_late = matches!(a.state.as_str(), "answered" | "missed")
                && (a
                    .ended_at
                    .is_some_and(|e| e > b.offered_at || (e > closed && e + race > b.offered_at))
                    || order.outcome_after_offer(agent, a, b));
            if learned_late {
                report.queue.outcomes_learned_late += 1;
            }
            let free_from = match a.state.as_str() {
                _ if learned_late => None,
                "answered" => a.ended_at.map(|e| e + wrap_up),
                // The delay runs from when the server learned of the miss (`ended_at`).
                "missed" => Some(a.ended_at.unwrap_or(closed) + delay),
                _ => None,
            };
            if let Some(free) = free_from
                && b.offered_at + slack < free
            {
                report.mismatches.push(format!(
                    "agent {agent}: offered {} at {} before its {} ended at {free}",
                    b.call,
                    b.offered_at,
                    if a.state == "answered" {
                        "wrap-up"
                    } else {
                        "no-answer delay"
                    }
                ));
            }
        }
    }
}

/// The order in which the server recorded each agent's offers and their outcomes (audit
/// entry ids are in insertion order).
#[derive(Debug, Default)]
struct AuditOrder {
    /// Per agent: `(call, attempt)` → the id of its `offer_made` entry.
    made: HashMap<String, HashMap<(String, i64), i64>>,
    /// Per agent: `(call, attempt)` → the id of its last outcome entry (missed, answered).
    outcome: HashMap<String, HashMap<(String, i64), i64>>,
}

impl AuditOrder {
    /// The entries each agent has in the audit log (only ever read after a run).
    async fn read(server: &Server, phones: &Softphones) -> anyhow::Result<Self> {
        const LIMIT: u32 = 10_000;
        let mut order = Self::default();
        for a in &phones.list {
            let entries = server.agent_audit(&a.id, LIMIT).await?;
            if entries.len() >= LIMIT as usize {
                tracing::warn!(agent = %a.id, "more audit entries than one read returns; offers checked by time only");
                continue;
            }
            for e in entries {
                let (Some(id), Some(call)) = (e["id"].as_i64(), e["call_sid"].as_str()) else {
                    continue;
                };
                let data: Value =
                    serde_json::from_str(e["data"].as_str().unwrap_or("{}")).unwrap_or_default();
                let Some(attempt) = data["attempt"].as_i64() else {
                    continue;
                };
                let into = match e["action"].as_str().unwrap_or_default() {
                    "offer_made" => &mut order.made,
                    "offer_missed" | "call_answered" | "late_answer" => &mut order.outcome,
                    _ => continue,
                };
                let slot = into
                    .entry(a.id.clone())
                    .or_default()
                    .entry((call.to_owned(), attempt))
                    .or_default();
                *slot = (*slot).max(id);
            }
        }
        Ok(order)
    }

    /// Whether `agent`'s offer `a` got its outcome recorded after offer `b` was made.
    fn outcome_after_offer(&self, agent: &str, a: &OfferSeen, b: &OfferSeen) -> bool {
        let outcome = self
            .outcome
            .get(agent)
            .and_then(|m| m.get(&(a.call.clone(), a.attempt)));
        let made = self
            .made
            .get(agent)
            .and_then(|m| m.get(&(b.call.clone(), b.attempt)));
        matches!((outcome, made), (Some(o), Some(m)) if o > m)
    }
}

/// A first offer made while a caller ahead seemed to wait, by the calls' times.
#[derive(Debug)]
struct PassedOver {
    offered: String,
    offered_at: DateTime<Utc>,
    ahead: String,
    ahead_priority: i64,
    ahead_joined: DateTime<Utc>,
}

/// From the server's calls: each first offer went to the caller at the head of the queue,
/// in `(priority, enqueued_at)` order. A caller ahead counts as passed over when it had
/// joined more than `TOLERANCE` before the offer (by its time, and by when the simulator had
/// the server's answer to its `/inbound`, which comes after the join's commit: a commit slow
/// on a loaded machine is no pass-over), was still within its max wait, and had
/// neither an offer nor left the queue by then; [`confirm_passed_over`] then asks the audit
/// log whether its joining was committed before that offer. Returns the suspects.
fn check_order(
    report: &mut Report,
    calls: &[Value],
    truths: &[Truth],
    scenario: &Scenario,
) -> Vec<PassedOver> {
    let joined_by: HashMap<&str, DateTime<Utc>> = truths
        .iter()
        .filter_map(|t| Some((t.call_sid.as_str(), t.joined_by?)))
        .collect();
    let mut suspects = Vec::new();
    const TOLERANCE_MS: i64 = 100;
    let max_wait = chrono::Duration::milliseconds((scenario.server_queue.max_wait * 1000.0) as i64);
    let mut queued: Vec<Queued> = calls
        .iter()
        .filter_map(|c| {
            let enqueued_at = time(&c["enqueued_at"])?;
            let first_offer = c["offers"]
                .as_array()
                .and_then(|os| os.iter().filter_map(|o| time(&o["offered_at"])).min());
            let left_at = first_offer
                .or_else(|| time(&c["voicemail"]["started_at"]))
                .or_else(|| time(&c["ended_at"]));
            let call = c["call_sid"].as_str().unwrap_or_default();
            Some(Queued {
                call: call.to_owned(),
                priority: c["priority"].as_i64().unwrap_or(0),
                enqueued_at,
                joined_by: joined_by.get(call).copied(),
                first_offer,
                left_at,
            })
        })
        .collect();
    queued.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.enqueued_at.cmp(&b.enqueued_at))
    });
    let tolerance = chrono::Duration::milliseconds(TOLERANCE_MS);
    for (i, x) in queued.iter().enumerate() {
        let Some(t) = x.first_offer else { continue };
        report.queue.ordered += 1;
        let passed_over = queued[..i].iter().find(|y| {
            y.enqueued_at + tolerance < t
                && y.joined_by.is_none_or(|j| j + tolerance < t)
                && t - y.enqueued_at < max_wait
                && y.left_at.is_none_or(|l| l > t + tolerance)
        });
        if let Some(y) = passed_over {
            suspects.push(PassedOver {
                offered: x.call.clone(),
                offered_at: t,
                ahead: y.call.clone(),
                ahead_priority: y.priority,
                ahead_joined: y.enqueued_at,
            });
        }
    }
    for c in calls {
        if let (Some(vm), Some(enq)) =
            (time(&c["voicemail"]["started_at"]), time(&c["enqueued_at"]))
        {
            report.queue.longest_to_voicemail =
                report.queue.longest_to_voicemail.max(seconds(vm - enq));
        }
    }
    // Max wait sends the caller to voicemail at the next hold request: within one hold
    // segment (plus the greeting and a request) of the limit.
    let segment = scenario.real(scenario.play_seconds).as_secs_f64();
    let bound = scenario.server_queue.max_wait + segment + scenario.real(30.0).as_secs_f64() + 1.0;
    if report.queue.longest_to_voicemail > bound {
        report.mismatches.push(format!(
            "a caller reached voicemail {:.2} s after joining the queue (max wait {} s, bound {bound:.2} s)",
            report.queue.longest_to_voicemail, scenario.server_queue.max_wait
        ));
    }
    suspects
}

/// A suspect is passed over unless the audit log recorded the caller ahead joining
/// (`call_enqueued`) after the other caller's first offer (`offer_made`): the time a caller
/// joins is when its webhook arrived, and its commit may come later on a loaded machine.
async fn confirm_passed_over(
    report: &mut Report,
    server: &Server,
    suspects: Vec<PassedOver>,
) -> anyhow::Result<()> {
    for p in suspects {
        let joined = first_entry(server, &p.ahead, "call_enqueued").await?;
        let offered = first_entry(server, &p.offered, "offer_made").await?;
        if let (Some(j), Some(o)) = (joined, offered)
            && j > o
        {
            report.queue.joined_late += 1;
            continue;
        }
        report.queue.out_of_order += 1;
        if report.queue.out_of_order <= 5 {
            report.mismatches.push(format!(
                "{} was offered at {} while {} (ahead: priority {}, joined {}) still waited",
                p.offered, p.offered_at, p.ahead, p.ahead_priority, p.ahead_joined
            ));
        }
    }
    Ok(())
}

/// The id of `call`'s first audit entry with `action`.
async fn first_entry(server: &Server, call: &str, action: &str) -> anyhow::Result<Option<i64>> {
    Ok(server
        .call_audit(call)
        .await?
        .iter()
        .filter(|e| e["action"] == action)
        .filter_map(|e| e["id"].as_i64())
        .min())
}

/// The summary's pauses and abandoned calls against what the simulator saw.
async fn check_summary(
    report: &mut Report,
    server: &Server,
    phones: &Softphones,
    truths: &[Truth],
) -> anyhow::Result<()> {
    let summary = server.summary().await?;
    let ours: HashMap<&str, u32> = phones
        .list
        .iter()
        .map(|a| {
            (
                a.id.as_str(),
                a.pauses_expected.load(std::sync::atomic::Ordering::SeqCst),
            )
        })
        .collect();
    let mut pauses = 0;
    for a in summary["agents"].as_array().map_or(&[][..], Vec::as_slice) {
        let id = a["agent_id"].as_str().unwrap_or_default();
        let Some(want) = ours.get(id) else { continue };
        let got = a["pauses_for_misses"].as_i64().unwrap_or(0);
        pauses += got;
        if got != i64::from(*want) {
            report.mismatches.push(format!(
                "agent {id}: paused {got} time(s) for missed offers, the simulator expected {want}"
            ));
        }
    }
    report.queue.pauses = pauses;
    let abandoned = truths.iter().filter(|t| t.outcome == "abandoned").count();
    report.queue.abandoned = summary["abandoned"].as_i64().unwrap_or(0);
    report.queue.abandoned_wait_avg = summary["abandoned_wait_avg_seconds"].as_f64();
    if abandoned > 0 && report.queue.abandoned_wait_avg.is_none() {
        report
            .mismatches
            .push("abandoned calls without an abandoned wait in the summary".to_owned());
    }
    Ok(())
}

/// The simulator's own view: no softphone rang twice at once, and (when a limit is set) no
/// caller waited longer than it while an agent the server could have offered it to idled.
pub fn check_timeline(report: &mut Report, queue: &QueueReport, scenario: &Scenario) {
    for line in queue.overlapping_legs.iter().take(5) {
        report
            .mismatches
            .push(format!("two legs ringing at once: {line}"));
    }
    if let Some(limit) = scenario.idle_wait_limit {
        let waited = scenario.simulated(queue.max_idle_wait);
        if waited > limit {
            report.mismatches.push(format!(
                "a caller waited {waited:.2} s (simulated) while an agent idled (limit {limit} s): {:?}; {}",
                queue.max_idle_wait_at, queue.max_idle_wait_spans
            ));
        }
    }
}
