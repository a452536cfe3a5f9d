//! One caller, as Telnyx sees it: place the call, follow every document (speak, pause,
//! redirect, dial, record, hang up), ring the agents' legs and report their progress, and
//! remember what really happened for the consistency check.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use texml::{Dial, DialNoun, Record, Verb};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::agents::{SimAgent, Softphones};
use crate::client::{Answer, Server};
use crate::rest::FakeTelnyxApi;
use crate::scenario::Scenario;
use crate::stats::Stats;

/// What really happened to a call.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// The call.
    pub call_sid: String,
    /// `answered`, `voicemail`, `abandoned` or `unanswered`.
    pub outcome: &'static str,
    /// The agent who talked (server id).
    pub answered_by: Option<String>,
    /// Seconds talked.
    pub talk_seconds: Option<i64>,
    /// Agents whose offer counts as missed, once per offer.
    pub misses: Vec<String>,
    /// Whether a voicemail was recorded.
    pub voicemail: bool,
    /// When the server's answer to `/inbound` arrived: the caller's joining the queue was
    /// committed by then (the server answers after its commit).
    pub joined_by: Option<chrono::DateTime<chrono::Utc>>,
}

/// A status callback to deliver: where, and the exact form body.
#[derive(Debug, Clone)]
struct Callback {
    url: String,
    body: String,
    /// A leg's `initiated` or `ringing`: the server stores nothing for it.
    progress: bool,
}

/// Drives one call.
pub struct CallDriver<'a> {
    server: &'a Server,
    phones: &'a Softphones,
    scenario: &'a Scenario,
    stats: &'a Stats,
    rng: StdRng,
    truth: Truth,
    from: String,
    deferred: Vec<Callback>,
    trace: Vec<String>,
    seq: u64,
    /// The caller's number in the run.
    n: usize,
    /// Telnyx's REST API, when the run plays it.
    api: Option<&'a FakeTelnyxApi>,
    /// URLs the server pushed to this call through the REST update-call.
    pushes: Option<UnboundedReceiver<String>>,
    /// Since when the caller waits for an agent (timeline seconds).
    waiting_since: Option<f64>,
    /// When this caller gives up waiting (timeline seconds), if it does.
    gives_up_at: Option<f64>,
    /// Agents the server may offer again after the current `<Dial>` (reordered
    /// callbacks: known when the dial ends), with the delay.
    ready_later: Vec<(String, f64)>,
    /// Agents of a bridged round, ready once the held callbacks are delivered.
    ready_at_flush: Vec<(String, f64)>,
    /// Agents that missed in the current `<Dial>` (callbacks held back).
    missed_later: Vec<String>,
    /// Agents that missed in a bridged round, their delay from the delivery.
    missed_at_flush: Vec<String>,
    /// Requests sent about this call (callbacks sent twice count twice), and of them the
    /// instruction requests (whose answer the caller waits for).
    sent: crate::stats::Sent,
}

/// What interrupted a wait.
enum Interrupted {
    /// The server redirected the call (REST update-call) to this URL.
    Pushed(String),
    /// The caller hung up.
    GaveUp,
}

enum DialEnd {
    Action(String, Vec<(&'static str, String)>),
    CallerHungUp,
}

fn params_body(params: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}

fn now_stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl<'a> CallDriver<'a> {
    /// A caller numbered `n`.
    #[must_use]
    pub fn new(
        server: &'a Server,
        phones: &'a Softphones,
        scenario: &'a Scenario,
        stats: &'a Stats,
        n: usize,
        seed: u64,
    ) -> Self {
        let call_sid = format!("v3:sim-{}", uuid::Uuid::new_v4().simple());
        let truth = Truth {
            call_sid,
            ..Truth::default()
        };
        Self {
            server,
            phones,
            scenario,
            stats,
            rng: StdRng::seed_from_u64(seed),
            truth,
            from: format!("+1312555{:04}", n % 10_000),
            deferred: Vec::new(),
            trace: Vec::new(),
            seq: 0,
            n,
            api: None,
            pushes: None,
            waiting_since: None,
            gives_up_at: None,
            ready_later: Vec::new(),
            ready_at_flush: Vec::new(),
            missed_later: Vec::new(),
            missed_at_flush: Vec::new(),
            sent: crate::stats::Sent::default(),
        }
    }

    /// Plays Telnyx's REST API too: the server's update-calls reach this caller.
    #[must_use]
    pub fn with_api(mut self, api: Option<&'a FakeTelnyxApi>) -> Self {
        self.api = api;
        self
    }

    /// Whether a document keeps the caller waiting in the queue (a greeting or a hold
    /// segment, ending in a `<Redirect>`) rather than ringing agents, recording or ending.
    fn keeps_waiting(doc: &texml::Response) -> bool {
        let redirect = doc.verbs.iter().any(|v| matches!(v, Verb::Redirect(_)));
        let settled = doc.verbs.iter().any(|v| {
            matches!(
                v,
                Verb::Dial(_) | Verb::Record(_) | Verb::Hangup(_) | Verb::Reject(_)
            )
        });
        redirect && !settled
    }

    fn wait_starts(&mut self) {
        if self.waiting_since.is_some() {
            return;
        }
        let now = self.phones.timeline.now();
        self.waiting_since = Some(now);
        let gives_up = self
            .rng
            .random_bool(self.scenario.abandon_probability.clamp(0.0, 1.0));
        if gives_up && self.gives_up_at.is_none() {
            let patience = self
                .rng
                .random_range(1.0..self.scenario.patience_max.max(1.1));
            self.gives_up_at = Some(now + self.scenario.real(patience).as_secs_f64());
        }
    }

    fn wait_ends(&mut self) {
        if let Some(from) = self.waiting_since.take() {
            self.phones.timeline.waited(&self.truth.call_sid, from);
        }
    }

    /// Sleeps `simulated` seconds of a verb, unless the server pushes a new URL or the
    /// waiting caller gives up first.
    async fn interruptible(&mut self, simulated: f64) -> Option<Interrupted> {
        let sleep = tokio::time::sleep(self.scenario.real(simulated));
        let give_up = self
            .gives_up_at
            .filter(|_| self.waiting_since.is_some())
            .map(|at| (at - self.phones.timeline.now()).max(0.0));
        let give_up = async move {
            match give_up {
                Some(s) => tokio::time::sleep(std::time::Duration::from_secs_f64(s)).await,
                None => std::future::pending().await,
            }
        };
        let pushed = async {
            match self.pushes.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => None,
            () = give_up => Some(Interrupted::GaveUp),
            Some(url) = pushed => Some(Interrupted::Pushed(url)),
        }
    }

    /// A push that arrived while the call was ringing agents or recording: Telnyx would
    /// have torn that down; the server must never do it.
    fn no_push_during(&mut self, verb: &str) {
        if let Some(url) = self.pushes.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.stats.anomaly(&format!("push during <{verb}>"));
            self.note(format!(
                "  ANOMALY: pushed {} during <{verb}>",
                crate::stats::endpoint(&url)
            ));
        }
    }

    /// The server may offer `agent` again after `delay` seconds (now, or when the dial
    /// ends when callbacks are held back).
    fn agent_ready(&mut self, agent: &SimAgent, delay: f64) {
        if self.scenario.reorder {
            self.ready_later.push((agent.id.clone(), delay));
        } else {
            self.ready_now(&agent.id, delay);
        }
    }

    /// The agent is ready after `delay` from now, and not before the no-answer delay of its
    /// last miss ends as the server counts it (from when it learned of the miss, which may
    /// have been late): an offer canceled now does not end that delay.
    fn ready_now(&self, agent: &str, delay: f64) {
        let now = self.phones.timeline.now();
        let left = self
            .phones
            .list
            .iter()
            .find(|a| a.id == agent)
            .map_or(0.0, |a| a.delay_left(now));
        self.phones.timeline.ready_after(agent, delay.max(left));
    }

    /// An agent missed an offer: ready after the no-answer delay, or paused (its softphone
    /// resumes it at the next heartbeat).
    fn agent_missed(&mut self, agent: &SimAgent) {
        let q = self.scenario.server_queue;
        // A resume (after a pause for misses) does not end the last miss's no-answer delay,
        // which starts when the server learns of the miss (with callbacks held back: when
        // the dial ends, or when they are delivered).
        if self.scenario.reorder {
            self.missed_later.push(agent.id.clone());
        } else {
            agent.resume_not_before(self.phones.timeline.now() + q.no_answer_delay);
        }
        if !agent.missed(q.misses_to_pause) {
            self.agent_ready(agent, q.no_answer_delay);
        }
    }

    /// The server learns now of these agents' misses: their no-answer delays start.
    fn delay_from_now(&self, agents: &[String]) {
        let until = self.phones.timeline.now() + self.scenario.server_queue.no_answer_delay;
        for a in self.phones.list.iter().filter(|a| agents.contains(&a.id)) {
            a.resume_not_before(until);
        }
    }

    fn note(&mut self, line: String) {
        if self.scenario.verbose {
            self.trace.push(line);
        }
    }

    /// Parameters Telnyx sends with every request about this call. `Timestamp` makes two
    /// requests within one real second differ, as they would in Telnyx's uncompressed time.
    fn base(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AccountSid",
                "00000000-0000-4000-8000-000000000001".to_owned(),
            ),
            ("CallSid", self.truth.call_sid.clone()),
            ("From", self.from.clone()),
            ("To", "+13125550199".to_owned()),
            ("ConnectionId", "sim-connection".to_owned()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("Timestamp", now_stamp()),
        ]
    }

    async fn sleep(&self, simulated: f64) {
        tokio::time::sleep(self.scenario.real(simulated)).await;
    }

    /// An instruction request: its answer is the next document.
    async fn instruction(
        &mut self,
        url: &str,
        extra: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Answer> {
        let mut params = self.base();
        params.extend(extra);
        let started = Instant::now();
        self.sent.requests += 1;
        self.sent.instructions += 1;
        let answer = self.server.post_form(url, &params).await;
        let ok = matches!(&answer, Ok(a) if a.status == 200);
        self.stats.request(url, started.elapsed(), ok);
        let answer = answer?;
        anyhow::ensure!(
            answer.status == 200,
            "{url}: HTTP {} {}",
            answer.status,
            answer.body
        );
        if answer.body.contains(crate::stats::FALLBACK_MARK) {
            self.stats.fallback();
            self.note(format!(
                "  {} answered the fallback document",
                crate::stats::endpoint(url)
            ));
        }
        Ok(answer)
    }

    /// A status callback: sent now, or held for the end when reordering; sometimes twice
    /// (byte-identical, same signature).
    async fn callback(
        &mut self,
        url: &str,
        mut params: Vec<(&'static str, String)>,
    ) -> anyhow::Result<()> {
        self.seq += 1;
        params.push(("SequenceNumber", self.seq.to_string()));
        params.push(("Timestamp", now_stamp()));
        let progress = params
            .iter()
            .any(|(k, v)| *k == "CallStatus" && (v == "initiated" || v == "ringing"));
        let cb = Callback {
            url: url.to_owned(),
            body: params_body(&params),
            progress,
        };
        let twice = self
            .rng
            .random_bool(self.scenario.duplicate_probability.clamp(0.0, 1.0));
        if self.scenario.reorder {
            if twice {
                self.deferred.push(cb.clone());
            }
            self.deferred.push(cb);
            return Ok(());
        }
        self.deliver(&cb, twice).await
    }

    async fn deliver(&mut self, cb: &Callback, twice: bool) -> anyhow::Result<()> {
        let ts = chrono::Utc::now().timestamp();
        for _ in 0..if twice { 2 } else { 1 } {
            self.sent.requests += 1;
            let started = Instant::now();
            let answer = self
                .server
                .post_raw(
                    &cb.url,
                    cb.body.clone().into_bytes(),
                    "application/x-www-form-urlencoded",
                    ts,
                )
                .await;
            let ok = matches!(&answer, Ok(a) if a.status == 200);
            let mut name = crate::stats::endpoint(&cb.url);
            if cb.progress {
                name.push_str(crate::stats::PROGRESS);
            }
            self.stats.request_as(name, started.elapsed(), ok);
            let answer = answer?;
            anyhow::ensure!(
                answer.status == 200,
                "{}: HTTP {} {}",
                cb.url,
                answer.status,
                answer.body
            );
        }
        Ok(())
    }

    /// Runs the call to its end; returns what happened and the trace.
    ///
    /// # Errors
    /// A request failed or a document could not be read.
    pub async fn run(mut self) -> anyhow::Result<(Truth, Vec<String>)> {
        let wave = self.scenario.concurrency.max(1);
        if self.n < wave {
            #[allow(clippy::cast_precision_loss)]
            let share = self.n as f64 / wave as f64;
            self.sleep(self.scenario.ramp_up * share).await;
        }
        let started = Instant::now();
        if let Some(api) = self.api {
            self.pushes = Some(api.call_started(&self.truth.call_sid));
        }
        let mut extra = vec![("CallStatus", "ringing".to_owned())];
        let mut url = "/api/call-center/inbound".to_owned();
        let mut outcome: Option<&'static str> = None;
        'call: loop {
            let answer = self.instruction(&url, std::mem::take(&mut extra)).await?;
            self.truth.joined_by.get_or_insert_with(chrono::Utc::now);
            let doc = answer.texml()?;
            self.note(format!(
                "  {} <- {}",
                crate::stats::endpoint(&url),
                summarize(&doc)
            ));
            if Self::keeps_waiting(&doc) {
                self.wait_starts();
            } else {
                self.wait_ends();
            }
            let mut next = None;
            for verb in &doc.verbs {
                let length = match verb {
                    Verb::Say(s) => Some(Scenario::speech(s.text.as_str())),
                    Verb::Pause(p) => Some(f64::from(p.length.map_or(1, texml::PauseLength::get))),
                    Verb::Play(_) => Some(self.scenario.play_seconds),
                    _ => None,
                };
                if let Some(length) = length {
                    match self.interruptible(length).await {
                        None => continue,
                        Some(Interrupted::Pushed(u)) => {
                            self.stats.push_followed();
                            self.note(format!("  pushed to {}", crate::stats::endpoint(&u)));
                            next = Some((u, vec![("CallStatus", "in-progress".to_owned())]));
                            break;
                        }
                        Some(Interrupted::GaveUp) => {
                            self.note("  the caller gave up waiting".to_owned());
                            self.wait_ends();
                            outcome = Some("abandoned");
                            break 'call;
                        }
                    }
                }
                match verb {
                    Verb::Say(_) | Verb::Pause(_) | Verb::Play(_) => {}
                    Verb::Redirect(r) => {
                        next = Some((r.url.as_str().to_owned(), Vec::new()));
                        break;
                    }
                    Verb::Dial(d) => {
                        let end = self.dial(d).await?;
                        self.no_push_during("Dial");
                        match end {
                            DialEnd::Action(u, p) => next = Some((u, p)),
                            DialEnd::CallerHungUp => {
                                outcome = Some("abandoned");
                                break 'call;
                            }
                        }
                        break;
                    }
                    Verb::Record(r) => {
                        next = Some(self.record(r).await?);
                        self.no_push_during("Record");
                        break;
                    }
                    Verb::Hangup(_) | Verb::Reject(_) => break 'call,
                    Verb::Gather(_) | Verb::Enqueue(_) | Verb::Leave(_) => {}
                }
            }
            match next {
                Some((u, p)) => {
                    url = u;
                    extra = p;
                }
                None => break,
            }
        }
        self.wait_ends();
        if let Some(api) = self.api {
            api.hang_up(&self.truth.call_sid);
        }
        let outcome = outcome.unwrap_or(if self.truth.answered_by.is_some() {
            "answered"
        } else if self.truth.voicemail {
            "voicemail"
        } else {
            "unanswered"
        });
        self.truth.outcome = outcome;
        let duration = started.elapsed().as_secs_f64() * self.scenario.time_compression;
        let mut params = vec![
            ("CallSid", self.truth.call_sid.clone()),
            ("CallStatus", "completed".to_owned()),
        ];
        #[allow(clippy::cast_possible_truncation)]
        params.push(("CallDuration", (duration as i64).to_string()));
        self.callback("/api/call-center/events", params).await?;
        self.flush().await?;
        self.stats.outcome(outcome, self.sent);
        let head = format!("call {} from {}: {outcome}", self.truth.call_sid, self.from);
        self.trace.insert(0, head);
        Ok((self.truth, self.trace))
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        let mut pending = std::mem::take(&mut self.deferred);
        pending.shuffle(&mut self.rng);
        if !pending.is_empty() {
            self.note(format!(
                "  delivered {} held status callbacks, shuffled",
                pending.len()
            ));
        }
        for cb in &pending {
            self.deliver(cb, false).await?;
        }
        for (agent, delay) in std::mem::take(&mut self.ready_at_flush) {
            self.ready_now(&agent, delay);
        }
        let missed = std::mem::take(&mut self.missed_at_flush);
        self.delay_from_now(&missed);
        Ok(())
    }

    /// A leg's status callback in the shape of Telnyx's documented example
    /// (`texml-call-*.form` in the shared fixtures): the leg and its parent, both with their
    /// legacy twins, the callback source, and `To` as Telnyx writes a SIP leg's address —
    /// without the `sip:` scheme, and on odd calls with the host's case, a port and a
    /// transport parameter changed, which must not matter.
    async fn leg(
        &mut self,
        status_url: &str,
        leg: &str,
        sip: &str,
        status: &str,
        duration: Option<i64>,
    ) -> anyhow::Result<()> {
        let mut params = vec![
            (
                "AccountSid",
                "00000000-0000-4000-8000-000000000001".to_owned(),
            ),
            ("CallSid", leg.to_owned()),
            ("CallSidLegacy", leg.to_owned()),
            ("CallStatus", status.to_owned()),
            ("CallbackSource", "call-progress-events".to_owned()),
            ("ConnectionId", "sim-connection".to_owned()),
            ("From", self.from.clone()),
            ("To", telnyx_to(sip, self.n)),
            ("CallerId", self.from.clone()),
            ("ParentCallSid", self.truth.call_sid.clone()),
            ("ParentCallSidLegacy", self.truth.call_sid.clone()),
        ];
        if let Some(d) = duration {
            params.push(("CallDuration", d.to_string()));
        }
        self.callback(status_url, params).await
    }

    /// Rings every `<Sip>` at once: each agent answers, declines or lets it ring; the
    /// first to answer (and free) wins; the caller may hang up while they ring.
    ///
    /// With callbacks held back, the server learns of a bridged round's winner only from
    /// the legs' own callbacks (it keeps the round's agents until they report): their
    /// readiness waits for the flush. An unanswered round's `<Dial action>` settles its
    /// agents at once.
    async fn dial(&mut self, d: &Dial) -> anyhow::Result<DialEnd> {
        let end = self.ring(d).await;
        let ready = std::mem::take(&mut self.ready_later);
        let bridged = matches!(&end, Ok(DialEnd::Action(_, params))
            if params.iter().any(|(k, v)| *k == "DialCallStatus" && v == "completed"));
        let missed = std::mem::take(&mut self.missed_later);
        if bridged {
            self.ready_at_flush.extend(ready);
            self.missed_at_flush.extend(missed);
        } else {
            for (agent, delay) in ready {
                self.ready_now(&agent, delay);
            }
            self.delay_from_now(&missed);
        }
        end
    }

    async fn ring(&mut self, d: &Dial) -> anyhow::Result<DialEnd> {
        let rang_at = self.phones.timeline.now();
        let timeout = f64::from(d.timeout.map_or(30, texml::DialTimeout::get));
        let action = d
            .action
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .context("a <Dial> without action")?;
        struct Leg {
            sid: String,
            sip: String,
            callback: String,
            agent: Option<Arc<SimAgent>>,
            decline_at: Option<f64>,
            answer_at: Option<f64>,
        }
        let mut legs = Vec::new();
        for noun in d.nouns() {
            let DialNoun::Sip(sip) = noun else { continue };
            let uri = sip.uri.as_str().to_owned();
            let r: f64 = self.rng.random();
            let (decline_at, answer_at) = if r < self.scenario.decline_probability {
                (Some(self.rng.random_range(0.5..3.0)), None)
            } else if r < self.scenario.decline_probability + self.scenario.answer_probability {
                (
                    None,
                    Some(
                        self.rng
                            .random_range(0.5..self.scenario.answer_delay_max.max(0.6)),
                    ),
                )
            } else {
                (None, None)
            };
            legs.push(Leg {
                sid: format!("v3:leg-{}", uuid::Uuid::new_v4().simple()),
                agent: self.phones.by_sip.get(&uri).cloned(),
                sip: uri,
                callback: sip
                    .status_callback
                    .as_ref()
                    .map(|u| u.as_str().to_owned())
                    .context("a <Sip> without statusCallback")?,
                decline_at,
                answer_at,
            });
        }
        self.note(format!("  ringing {} agent(s)", legs.len()));
        for l in &legs {
            let (cb, sid, sip) = (l.callback.clone(), l.sid.clone(), l.sip.clone());
            self.leg(&cb, &sid, &sip, "initiated", None).await?;
            self.leg(&cb, &sid, &sip, "ringing", None).await?;
        }
        let hangup_at = self
            .rng
            .random_bool(self.scenario.hangup_probability.clamp(0.0, 1.0))
            .then(|| self.rng.random_range(1.0..timeout));
        // Events in time order: declines, answers, the caller's hang-up, the timeout.
        let mut order: Vec<(f64, usize, u8)> = Vec::new();
        for (i, l) in legs.iter().enumerate() {
            if let Some(t) = l.decline_at {
                order.push((t, i, 0));
            }
            if let Some(t) = l.answer_at.filter(|t| *t < timeout) {
                order.push((t, i, 1));
            }
        }
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut ended = vec![false; legs.len()];
        let mut clock = 0.0;
        for (t, i, kind) in order {
            if hangup_at.is_some_and(|h| h < t) {
                break;
            }
            self.sleep(t - clock).await;
            clock = t;
            let (cb, sid, sip) = (
                legs[i].callback.clone(),
                legs[i].sid.clone(),
                legs[i].sip.clone(),
            );
            let takes = kind == 1 && legs[i].agent.as_ref().is_some_and(|a| a.try_take());
            if !takes {
                // Declined, or the agent is already on another call: busy.
                ended[i] = true;
                // The leg ends now; the server may free the agent while the callback's
                // answer is still on its way back.
                let ended_at = self.phones.timeline.now();
                self.leg(&cb, &sid, &sip, "busy", None).await?;
                if let Some(a) = legs[i].agent.clone() {
                    self.phones.timeline.busy_until(&a.id, rang_at, ended_at);
                    self.truth.misses.push(a.id.clone());
                    self.agent_missed(&a);
                }
                continue;
            }
            // The winner: Telnyx stops the other legs at once (their callbacks follow).
            let answered_at = self.phones.timeline.now();
            let agent = legs[i].agent.clone().context("winner without agent")?;
            // Misses in a row start again with the answer, as the server counts them. Not
            // at the hang-up: once the server has the leg's `completed` it may offer the
            // agent to a waiting caller, whose ring can find the softphone still on this
            // call (busy, a miss) before this task has freed it.
            agent.answered();
            self.leg(&cb, &sid, &sip, "in-progress", None).await?;
            for (j, other) in legs.iter().enumerate() {
                if j != i && !ended[j] {
                    let (c, s, p) = (other.callback.clone(), other.sid.clone(), other.sip.clone());
                    self.leg(&c, &s, &p, "canceled", None).await?;
                    if let Some(a) = &other.agent {
                        self.phones.timeline.busy_until(&a.id, rang_at, answered_at);
                        self.agent_ready(a, 0.0);
                    }
                }
            }
            let talk = i64::from(
                self.rng.random_range(
                    self.scenario.talk_seconds.0
                        ..=self
                            .scenario
                            .talk_seconds
                            .1
                            .max(self.scenario.talk_seconds.0),
                ),
            );
            self.note(format!("  {sip} answered after {t:.1} s, talks {talk} s"));
            #[allow(clippy::cast_precision_loss)]
            self.sleep(talk as f64).await;
            let hung_up_at = self.phones.timeline.now();
            self.leg(&cb, &sid, &sip, "completed", Some(talk)).await?;
            self.phones
                .timeline
                .busy_until(&agent.id, rang_at, hung_up_at);
            self.agent_ready(&agent, self.scenario.server_queue.wrap_up);
            agent.free();
            self.truth.answered_by = Some(agent.id.clone());
            self.truth.talk_seconds = Some(talk);
            let params = vec![
                ("DialCallStatus", "completed".to_owned()),
                ("DialCallSid", sid),
                ("DialCallDuration", talk.to_string()),
                ("CallStatus", "in-progress".to_owned()),
            ];
            return Ok(DialEnd::Action(action, params));
        }
        if let Some(h) = hangup_at {
            self.sleep(h - clock).await;
            self.note(format!("  the caller hung up after {h:.1} s of ringing"));
            let hung_up_at = self.phones.timeline.now();
            for (i, l) in legs.iter().enumerate() {
                if !ended[i] {
                    let (c, s, p) = (l.callback.clone(), l.sid.clone(), l.sip.clone());
                    self.leg(&c, &s, &p, "canceled", None).await?;
                    if let Some(a) = &l.agent {
                        self.phones.timeline.busy_until(&a.id, rang_at, hung_up_at);
                        self.agent_ready(a, 0.0);
                    }
                }
            }
            return Ok(DialEnd::CallerHungUp);
        }
        self.sleep(timeout - clock).await;
        let timed_out_at = self.phones.timeline.now();
        for (i, l) in legs.iter().enumerate() {
            if !ended[i] {
                let (c, s, p) = (l.callback.clone(), l.sid.clone(), l.sip.clone());
                self.leg(&c, &s, &p, "no-answer", None).await?;
                if let Some(a) = &l.agent {
                    self.phones
                        .timeline
                        .busy_until(&a.id, rang_at, timed_out_at);
                    self.truth.misses.push(a.id.clone());
                    self.agent_missed(a);
                }
            }
        }
        self.note("  nobody answered".to_owned());
        Ok(DialEnd::Action(
            action,
            vec![
                ("DialCallStatus", "no-answer".to_owned()),
                ("CallStatus", "in-progress".to_owned()),
            ],
        ))
    }

    /// Records a message, then delivers the `<Record action>`, the recording status and the
    /// transcription in a random order; the action's answer is the next document.
    async fn record(
        &mut self,
        r: &Record,
    ) -> anyhow::Result<(String, Vec<(&'static str, String)>)> {
        let seconds = self.scenario.voicemail_seconds;
        self.sleep(f64::from(seconds)).await;
        self.truth.voicemail = true;
        let rec_sid = uuid::Uuid::new_v4().to_string();
        let url = format!("https://api.telnyx.com/v2/recordings/{rec_sid}.mp3");
        let action = r
            .action
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .context("a <Record> without action")?;
        let status_cb = r
            .recording_status_callback
            .as_ref()
            .map(|u| u.as_str().to_owned());
        let transcription_cb = r
            .transcription_callback
            .as_ref()
            .map(|u| u.as_str().to_owned());
        let mut steps = [0u8, 1, 2];
        steps.shuffle(&mut self.rng);
        let action_params = vec![
            ("RecordingUrl", url.clone()),
            ("RecordingSid", rec_sid.clone()),
            ("RecordingDuration", seconds.to_string()),
            ("Digits", "#".to_owned()),
        ];
        for step in steps {
            match (step, &status_cb, &transcription_cb) {
                (1, Some(cb), _) => {
                    let params = vec![
                        ("CallSid", self.truth.call_sid.clone()),
                        ("RecordingSid", rec_sid.clone()),
                        ("RecordingStatus", "completed".to_owned()),
                        ("RecordingUrl", url.clone()),
                        ("RecordingDuration", seconds.to_string()),
                        ("RecordingChannels", "1".to_owned()),
                    ];
                    self.callback(&cb.clone(), params).await?;
                }
                (2, _, Some(cb)) => {
                    let params = vec![
                        ("CallSid", self.truth.call_sid.clone()),
                        ("RecordingSid", rec_sid.clone()),
                        ("TranscriptionSid", uuid::Uuid::new_v4().to_string()),
                        ("TranscriptionStatus", "completed".to_owned()),
                        (
                            "TranscriptionText",
                            "Hi, this is a simulated caller. Please call me back.".to_owned(),
                        ),
                    ];
                    self.callback(&cb.clone(), params).await?;
                }
                _ => {}
            }
        }
        self.note(format!("  left a {seconds} s voicemail"));
        Ok((action, action_params))
    }
}

/// How Telnyx may write a SIP leg's `To`: the URI without its scheme; on odd calls with the
/// host upper-cased, port 5060 and `;transport=tls` (all legal spellings of one address).
fn telnyx_to(sip: &str, n: usize) -> String {
    let bare = sip.strip_prefix("sip:").unwrap_or(sip);
    if n.is_multiple_of(2) {
        return bare.to_owned();
    }
    match bare.split_once('@') {
        Some((user, host)) => format!("{user}@{}:5060;transport=tls", host.to_uppercase()),
        None => bare.to_owned(),
    }
}

/// A one-line description of a document for the trace.
#[must_use]
pub fn summarize(doc: &texml::Response) -> String {
    let parts: Vec<String> = doc
        .verbs
        .iter()
        .map(|v| match v {
            Verb::Say(s) => {
                let t: String = s.text.as_str().chars().take(40).collect();
                format!("Say \"{t}…\"")
            }
            Verb::Pause(p) => format!("Pause {}s", p.length.map_or(1, texml::PauseLength::get)),
            Verb::Redirect(r) => format!("Redirect {}", crate::stats::endpoint(r.url.as_str())),
            Verb::Dial(d) => format!("Dial {} agent(s)", d.nouns().len()),
            Verb::Record(_) => "Record (voicemail, transcribed)".to_owned(),
            Verb::Hangup(_) => "Hangup".to_owned(),
            Verb::Play(p) => match &p.source {
                texml::PlaySource::Url(u) => format!("Play {}", crate::stats::endpoint(u.as_str())),
                _ => "Play".to_owned(),
            },
            other => format!("{other:?}").chars().take(30).collect(),
        })
        .collect();
    parts.join(", ")
}
