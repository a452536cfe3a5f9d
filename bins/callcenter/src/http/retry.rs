//! Status callbacks always get 200 at once (Telnyx must not be kept waiting or sent to the
//! failover URL for our outage). When the store fails, the callback is held in memory and
//! retried with backoff for about a minute, then logged as lost. This is a best-effort
//! bridge over short database outages, bounded in size; instruction requests never need it
//! (they answer the fallback document).

use std::sync::Arc;
use std::time::Duration;

use call_center::{CallFlow, Event, FlowError, SignedRequest};
use prometheus::IntGauge;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const DELAYS: [u64; 6] = [1, 2, 4, 8, 16, 32];

/// Retries of failed callbacks.
#[derive(Debug, Clone)]
pub struct CallbackRetries {
    slots: Arc<Semaphore>,
    pending: IntGauge,
    stop: CancellationToken,
}

impl CallbackRetries {
    /// At most `capacity` callbacks held at once.
    #[must_use]
    pub fn new(capacity: usize, pending: IntGauge, stop: CancellationToken) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            pending,
            stop,
        }
    }

    /// Holds `event` and retries it; drops it (logged) when full.
    pub fn hold(&self, flow: CallFlow, event: Event, receipt: Option<SignedRequest>) {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            tracing::error!(
                call_sid = event.call_sid().unwrap_or("-"),
                "callback lost: retry buffer full"
            );
            return;
        };
        let (pending, stop) = (self.pending.clone(), self.stop.clone());
        pending.inc();
        tokio::spawn(async move {
            let _slot = slot;
            for delay in DELAYS {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(delay)) => {}
                }
                match flow.handle(&event, receipt.clone()).await {
                    Ok(_) => {
                        tracing::info!(
                            call_sid = event.call_sid().unwrap_or("-"),
                            "held callback applied"
                        );
                        pending.dec();
                        return;
                    }
                    Err(FlowError::Replay) => break,
                    Err(e) => {
                        tracing::warn!(call_sid = event.call_sid().unwrap_or("-"), error = %crate::telemetry::chain(&e), "held callback still failing")
                    }
                }
            }
            pending.dec();
            tracing::error!(
                call_sid = event.call_sid().unwrap_or("-"),
                "callback lost: the store did not come back in time"
            );
        });
    }
}
