//! What handlers reach, in small pieces registered as separate `web::Data`: each handler
//! takes the pieces it uses.

use std::sync::Arc;
use std::time::Duration;

use agents::{AgentService, Clock};
use call_center::CallFlow;
use call_center::reports::ReportStore;
use store::Store;

use super::auth::FailureLimiter;
use super::metrics::Metrics;
use crate::config::Secret;
use crate::signature::Verifier;
use crate::spool::Spool;

/// Who may call the JSON API.
pub struct Auth {
    /// The admin bearer token (configured or generated).
    pub admin_token: Secret,
    /// Brake on repeated authentication failures.
    pub limiter: FailureLimiter,
    /// Proxies whose `X-Forwarded-For` is read (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Agents, for heartbeat tokens.
    pub agents: AgentService,
}

/// The Telnyx webhooks.
pub struct Webhooks {
    /// The call flow.
    pub flow: CallFlow,
    /// Signature verifier; `None` only when verification was switched off.
    pub verifier: Option<Verifier>,
    /// Callbacks acknowledged but not yet stored.
    pub spool: Arc<Spool>,
    /// The longest a webhook is worked on (`WEBHOOK_DEADLINE_MS`).
    pub deadline: Duration,
    /// Fallback counts.
    pub metrics: Metrics,
    /// Time (for the signature's age).
    pub clock: Arc<dyn Clock>,
}

/// `GET /reports/summary`.
pub struct Reports {
    /// The sums.
    pub store: Arc<dyn ReportStore>,
    /// The service-level threshold.
    pub service_level: Duration,
    /// Time (the default range ends now).
    pub clock: Arc<dyn Clock>,
}

/// The operations endpoints and the 404/405 answers.
pub struct Ops {
    /// The database (readiness).
    pub store: Store,
    /// Whether webhook signatures are verified (readiness says so loudly when not).
    pub verifying: bool,
    /// The OpenAPI document, generated from the routes.
    pub openapi_json: String,
    /// Its paths and methods (for 405 answers).
    pub documented_routes: Vec<super::ops::DocumentedRoute>,
}
