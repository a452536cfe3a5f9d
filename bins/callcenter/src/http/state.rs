//! What handlers reach, in small pieces registered as separate `web::Data`: each handler
//! takes the pieces it uses.

use std::sync::Arc;
use std::time::Duration;

use agents::{AgentService, Clock};
use call_center::CallFlow;
use call_center::reports::ReportStore;
use store::Store;

use super::auth::FailureLimiter;
use super::retry::CallbackRetries;
use crate::config::Secret;
use crate::signature::Verifier;

/// Who may call the JSON API.
pub struct Auth {
    /// The admin bearer token (configured or generated).
    pub admin_token: Secret,
    /// Brake on repeated authentication failures.
    pub limiter: FailureLimiter,
    /// Whether the client address comes from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Agents, for heartbeat tokens.
    pub agents: AgentService,
}

/// The Telnyx webhooks.
pub struct Webhooks {
    /// The call flow.
    pub flow: CallFlow,
    /// Signature verifier; `None` only when verification was switched off.
    pub verifier: Option<Verifier>,
    /// Callbacks held while the store fails.
    pub retries: CallbackRetries,
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
