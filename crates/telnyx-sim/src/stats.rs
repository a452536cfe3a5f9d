//! What a run measured: requests and errors, latency per endpoint, calls by outcome.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Suffix of the endpoint name under which leg progress callbacks are counted.
pub const PROGRESS: &str = " (progress)";

/// Counters shared by every call of a run.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    latency: BTreeMap<String, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    sent_by_outcome: BTreeMap<String, Sent>,
    requests: u64,
    fallbacks: u64,
    pushes_followed: u64,
}

/// Requests sent about calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    /// Every request (callbacks sent twice count twice).
    pub requests: u64,
    /// Instruction requests: the caller waits for each answer.
    pub instructions: u64,
}

/// Requests per call for one outcome (means over the calls that ended so).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PerCall {
    /// Calls that ended so.
    pub calls: u64,
    /// Requests per call.
    pub requests: f64,
    /// Instruction requests per call.
    pub instructions: f64,
}

/// The words of the server's fallback document (its default apology): an instruction
/// answered with them was not decided by the flow.
pub const FALLBACK_MARK: &str = "technical difficulties";

/// The endpoint of a URL, without host and query: `/dial-agents`.
#[must_use]
pub fn endpoint(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    match path.find("/api/call-center") {
        Some(i) => path[i + "/api/call-center".len()..].to_owned(),
        None => path.to_owned(),
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one request.
    pub fn request(&self, url: &str, took: Duration, ok: bool) {
        self.request_as(endpoint(url), took, ok);
    }

    /// Records one request under `name`.
    pub fn request_as(&self, name: String, took: Duration, ok: bool) {
        let mut inner = self.lock();
        inner.requests += 1;
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let hist = inner
            .latency
            .entry(name.clone())
            .or_insert_with(new_histogram);
        let _ = hist.record(micros.min(60_000_000));
        if !ok {
            *inner.errors.entry(name).or_default() += 1;
        }
    }

    /// Records something that must not happen (counted as an error under `what`).
    pub fn anomaly(&self, what: &str) {
        *self.lock().errors.entry(what.to_owned()).or_default() += 1;
    }

    /// Records a call redirected by the server's REST update-call.
    pub fn push_followed(&self) {
        self.lock().pushes_followed += 1;
    }

    /// Calls redirected by the server's REST update-call.
    #[must_use]
    pub fn pushes_followed(&self) -> u64 {
        self.lock().pushes_followed
    }

    /// Records an instruction answered with the fallback document.
    pub fn fallback(&self) {
        self.lock().fallbacks += 1;
    }

    /// Instructions answered with the fallback document.
    #[must_use]
    pub fn fallbacks(&self) -> u64 {
        self.lock().fallbacks
    }

    /// Records a call's outcome as the simulator saw it, with the requests it took.
    pub fn outcome(&self, outcome: &str, sent: Sent) {
        let mut inner = self.lock();
        *inner.outcomes.entry(outcome.to_owned()).or_default() += 1;
        let total = inner.sent_by_outcome.entry(outcome.to_owned()).or_default();
        total.requests += sent.requests;
        total.instructions += sent.instructions;
    }

    /// Requests per call, by outcome.
    #[must_use]
    pub fn per_call(&self) -> BTreeMap<String, PerCall> {
        let inner = self.lock();
        inner
            .sent_by_outcome
            .iter()
            .map(|(outcome, sent)| {
                let calls = inner.outcomes.get(outcome).copied().unwrap_or(0).max(1);
                #[allow(clippy::cast_precision_loss)]
                let mean = |n: u64| n as f64 / calls as f64;
                let per = PerCall {
                    calls,
                    requests: mean(sent.requests),
                    instructions: mean(sent.instructions),
                };
                (outcome.clone(), per)
            })
            .collect()
    }

    /// Requests under endpoint names ending in ` (progress)`: leg progress callbacks the
    /// server acknowledges without touching its database.
    #[must_use]
    pub fn progress_requests(&self) -> u64 {
        self.lock()
            .latency
            .iter()
            .filter(|(name, _)| name.ends_with(PROGRESS))
            .map(|(_, h)| h.len())
            .sum()
    }

    /// Calls by outcome, as the simulator saw them.
    #[must_use]
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        self.lock().outcomes.clone()
    }

    /// Requests made.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Requests that failed.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.lock().errors.values().sum()
    }

    /// `p`-th percentile of webhook latency over every endpoint, milliseconds.
    #[must_use]
    pub fn overall_percentile_ms(&self, p: f64) -> f64 {
        self.percentile_ms(p, |_| true)
    }

    /// `p`-th percentile over the webhooks the server stores something for (all but leg
    /// progress callbacks), milliseconds.
    #[must_use]
    pub fn stored_percentile_ms(&self, p: f64) -> f64 {
        self.percentile_ms(p, |name| !name.ends_with(PROGRESS))
    }

    fn percentile_ms(&self, p: f64, include: impl Fn(&str) -> bool) -> f64 {
        let inner = self.lock();
        let mut all: Option<Histogram<u64>> = None;
        for (_, h) in inner.latency.iter().filter(|(name, _)| include(name)) {
            match &mut all {
                Some(a) => {
                    let _ = a.add(h);
                }
                None => all = Some(h.clone()),
            }
        }
        #[allow(clippy::cast_precision_loss)]
        all.map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
    }

    /// The summary table.
    #[must_use]
    pub fn report(&self, calls: usize, elapsed: Duration) -> String {
        let inner = self.lock();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut out = String::new();
        let outcomes: Vec<String> = inner
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "calls: {calls} ({})", outcomes.join(", "));
        #[allow(clippy::cast_precision_loss)]
        let (cps, rps) = (calls as f64 / secs, inner.requests as f64 / secs);
        let errors: u64 = inner.errors.values().sum();
        let _ = writeln!(
            out,
            "requests: {}, errors: {errors}, fallback documents: {}, elapsed {secs:.2} s: {cps:.1} calls/s, {rps:.1} requests/s",
            inner.requests, inner.fallbacks
        );
        drop(inner);
        let per_call: Vec<String> = self
            .per_call()
            .iter()
            .map(|(k, p)| format!("{k} {:.1} ({:.1} instructions)", p.requests, p.instructions))
            .collect();
        let _ = writeln!(out, "requests per call: {}", per_call.join(", "));
        let inner = self.lock();
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "latency (ms)", "count", "p50", "p90", "p99", "max", "errors"
        );
        for (name, h) in &inner.latency {
            #[allow(clippy::cast_precision_loss)]
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            #[allow(clippy::cast_precision_loss)]
            let max = h.max() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name:<28} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
                h.len(),
                ms(0.5),
                ms(0.9),
                ms(0.99),
                max,
                inner.errors.get(name).copied().unwrap_or(0)
            );
        }
        out
    }
}

#[allow(clippy::expect_used)] // constant, valid bounds: 1 µs to 60 s, 3 significant figures
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
