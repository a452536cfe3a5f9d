//! What every handler can reach.

use std::sync::Arc;

use agents::{AgentService, Clock};
use audit::AuditLog;
use call_center::CallFlow;
use store::Store;

use super::auth::FailureLimiter;
use super::metrics::Metrics;
use super::retry::CallbackRetries;
use crate::config::{Secret, Settings};
use crate::signature::Verifier;

/// Shared application state (one per process, behind `web::Data`).
pub struct AppState {
    /// Effective configuration.
    pub settings: Arc<Settings>,
    /// The database.
    pub store: Store,
    /// The call flow.
    pub flow: CallFlow,
    /// Agent management.
    pub agents: AgentService,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The admin bearer token (configured or generated).
    pub admin_token: Secret,
    /// Webhook signature verifier; `None` only when verification was switched off.
    pub verifier: Option<Verifier>,
    /// Brake on repeated authentication failures.
    pub limiter: FailureLimiter,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Callbacks held while the store fails.
    pub retries: CallbackRetries,
    /// The OpenAPI document, generated from the routes.
    pub openapi_json: String,
    /// Its paths and methods (for 405 answers).
    pub documented_routes: Vec<super::ops::DocumentedRoute>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}
