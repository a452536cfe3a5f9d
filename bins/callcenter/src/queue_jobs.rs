//! The queue's background work: the matcher (after every change this instance applies that
//! may make a match: a caller waiting, an agent freed; and every
//! `CALL_CENTER_MATCHER_INTERVAL_MS` with the sweeps of stale reservations and missed-call
//! pauses), and with `TELNYX_API_KEY` the push
//! worker, which redirects each caller whose agents were reserved to its offer through
//! Telnyx's REST update-call.
//!
//! Exactly one path delivers an offer: a push claims it first (`pending` → `pushing`, a
//! versioned change), and the caller's hold request leaves a fresh claim alone. A push Telnyx
//! refused, or could not be sent, makes the offer pending again (after three, it is left to
//! the hold loop); a push whose answer was lost stays claimed until the claim is stale, then
//! the hold loop takes over: re-sending it could interrupt the `<Dial>` it started.

use std::sync::Arc;
use std::time::Duration;

use call_center::{CallFlow, PushJob};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::http::metrics::QueueMetrics;

/// Pushes in flight at once, per instance.
const PUSHES_IN_FLIGHT: usize = 32;
/// The longest a push request may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How one push went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushResult {
    /// Telnyx accepted the redirect (2xx): the redirected request delivers the offer.
    Accepted,
    /// Telnyx answered an error (429, 5xx, 4xx): not redirected.
    Refused,
    /// The request never left (connection refused, DNS): not redirected.
    Unreachable,
    /// Sent, but no answer came: maybe redirected; the claim is left to go stale.
    Unknown,
}

impl PushResult {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Unknown => "unknown",
        }
    }
}

/// Telnyx's REST update-call.
#[derive(Clone)]
pub struct Pusher {
    client: reqwest::Client,
    base: String,
    key: Secret,
}

impl Pusher {
    /// A pusher to `base` (`TELNYX_API_BASE_URL`) with `key`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, key: Secret) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(PUSH_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// `POST {base}/v2/texml/Accounts/{AccountSid}/Calls/{CallSid}` with `Url` and `Method`
    /// (form-encoded, as Telnyx's reference shows).
    pub async fn push(&self, job: &PushJob) -> PushResult {
        let url = format!(
            "{}/v2/texml/Accounts/{}/Calls/{}",
            self.base,
            urlencoding(&job.account_sid),
            urlencoding(&job.call_sid)
        );
        let sent = self
            .client
            .post(url)
            .bearer_auth(self.key.expose())
            .form(&[("Url", job.url.as_str()), ("Method", "POST")])
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => PushResult::Accepted,
            Ok(r) => {
                tracing::warn!(call = %job.call_sid, status = r.status().as_u16(), "push refused by Telnyx");
                PushResult::Refused
            }
            Err(e) if e.is_connect() || e.is_builder() => {
                tracing::warn!(call = %job.call_sid, error = %e, "push not sent");
                PushResult::Unreachable
            }
            Err(e) => {
                tracing::warn!(call = %job.call_sid, error = %e, "push sent, no answer; the hold loop takes over if it did not arrive");
                PushResult::Unknown
            }
        }
    }
}

/// Percent-encodes a path segment (sids are `v3:…`; account ids are UUIDs).
fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The matcher loop (and the pushes it makes possible) until `stop`.
pub async fn run(
    flow: CallFlow,
    pusher: Option<Pusher>,
    interval: Duration,
    metrics: QueueMetrics,
    stop: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(PUSHES_IN_FLIGHT));
    // A ticker, not a sleep restarted after each nudge: under steady changes the sweeps
    // still run every interval.
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sweep = tokio::select! {
            () = stop.cancelled() => return,
            () = flow.nudged() => false,
            _ = ticks.tick() => true,
        };
        let pass = if sweep {
            flow.match_queue().await
        } else {
            flow.match_waiting().await
        };
        match pass {
            Ok(pass) => {
                metrics.reserved.inc_by(pass.reserved.len() as u64);
                metrics.withdrawn.inc_by(pass.withdrawn);
                for t in &pass.match_times {
                    metrics.match_seconds.observe(t.as_secs_f64());
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "matcher pass failed; will retry");
            }
        }
        if let Some(pusher) = &pusher {
            push_pending(&flow, pusher, &metrics, &in_flight).await;
        }
    }
}

/// Claims the pending pushes and sends each on its own task (at most
/// [`PUSHES_IN_FLIGHT`] at once).
async fn push_pending(
    flow: &CallFlow,
    pusher: &Pusher,
    metrics: &QueueMetrics,
    in_flight: &Arc<Semaphore>,
) {
    if in_flight.available_permits() == 0 {
        return;
    }
    let jobs = match flow.claim_pushes().await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "claiming pushes failed; will retry");
            return;
        }
    };
    for job in jobs {
        let Ok(permit) = Arc::clone(in_flight).acquire_owned().await else {
            return;
        };
        let (flow, pusher, metrics) = (flow.clone(), pusher.clone(), metrics.clone());
        tokio::spawn(async move {
            let result = pusher.push(&job).await;
            metrics.pushes.with_label_values(&[result.label()]).inc();
            if matches!(result, PushResult::Refused | PushResult::Unreachable)
                && let Err(e) = flow.push_failed(&job).await
            {
                tracing::warn!(error = %crate::telemetry::chain(&e), call = %job.call_sid, "recording a failed push failed; the claim goes stale and the hold loop takes over");
            }
            drop(permit);
        });
    }
}
