//! The HTTP layer: routes, middleware, OpenAPI.

pub mod agents_api;
pub mod audit_api;
pub mod auth;
pub mod calls_api;
pub mod console;
pub mod context;
pub mod hold_music;
mod json;
pub mod metrics;
pub mod ops;
pub mod problem;
pub mod queue_api;
pub mod reports_api;
mod schemas;
pub mod state;
pub mod telnyx;
pub mod voicemails_api;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, Error, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, scope};

use agents::AgentService;
use audit::AuditLog;
use call_center::{CallFlow, VoicemailInbox};

use self::metrics::Metrics;
use self::state::{Auth, Ops, Reports, Webhooks};

/// Where the API lives.
pub const API_PREFIX: &str = "/api/call-center";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Call center for Telnyx: JSON API",
        description = "Agent management, calls, reports and the audit log. Every operation needs \
                       `Authorization: Bearer <CALL_CENTER_ADMIN_TOKEN>`; `/agents/heartbeat`, `/agents/{id}/ready` \
                       and the voicemail reads and `done` also accept the agent's own heartbeat token (for its own heartbeats \
                       and voicemails). Errors are RFC 9457 problem+json. The Telnyx-facing \
                       TeXML webhooks (`/inbound`, `/dial-agents`, ...) are not part of this document: they speak \
                       form-encoded TeXML, see docs/telnyx-setup.md.",
        version = env!("CARGO_PKG_VERSION"),
    ),
    modifiers(&Security),
    tags(
        (name = "agents", description = "Agents: registration, heartbeats, status, metrics"),
        (name = "calls", description = "Calls and their recordings"),
        (name = "reports", description = "Contact-center metrics over a time range"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "voicemails", description = "The voicemail inbox: assign, mark done"),
        (name = "queue", description = "The queue of waiting callers and its priority rules"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(desc.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme("admin", bearer("CALL_CENTER_ADMIN_TOKEN"));
        components.add_security_scheme(
            "heartbeat",
            bearer(
                "An agent's heartbeat_token (only for its own heartbeats, wrap-up and voicemails)",
            ),
        );
    }
}

/// The JSON API under [`API_PREFIX`], collected into the OpenAPI document, plus the Telnyx
/// endpoints (not documented there) in the same scope.
fn api_scope() -> scope::Scope<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    // The Telnyx endpoints first: the router tries resources in this order, and each
    // pattern with a `{segment}` ahead of a webhook's path would cost it a regex match.
    scope(API_PREFIX)
        .map(|s| {
            s.configure(telnyx::configure)
                .route(
                    call_center::HOLD_MUSIC_PATH,
                    web::get().to(hold_music::serve),
                )
                .route("/openapi.json", web::get().to(ops::openapi))
        })
        .service(agents_api::register)
        .service(agents_api::heartbeat)
        .service(agents_api::list)
        .service(agents_api::get_agent)
        .service(agents_api::update)
        .service(agents_api::remove)
        .service(agents_api::release)
        .service(agents_api::sign_in_link)
        .service(agents_api::ready)
        .service(calls_api::list)
        .service(calls_api::redact)
        .service(calls_api::get_call)
        .service(reports_api::summary_handler)
        .service(audit_api::verify)
        .service(audit_api::list)
        .service(voicemails_api::list)
        .service(voicemails_api::get_voicemail)
        .service(voicemails_api::assign)
        .service(voicemails_api::done)
        .service(queue_api::queue)
        .service(queue_api::rules)
        .service(queue_api::set_rule)
        .service(queue_api::remove_rule)
}

/// The OpenAPI 3.1 document, generated from the registered handlers.
#[must_use]
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(api_scope())
        .split_for_parts()
        .1
}

/// What the handlers reach, each piece its own `web::Data` (cheap clones of `Arc`s).
#[derive(Clone)]
pub struct AppData {
    /// The agent console and the wallboard.
    pub console: web::Data<console::Console>,
    /// Authentication of the JSON API.
    pub auth: web::Data<Auth>,
    /// The Telnyx webhooks.
    pub webhooks: web::Data<Webhooks>,
    /// Reports.
    pub reports: web::Data<Reports>,
    /// Operations endpoints.
    pub ops: web::Data<Ops>,
    /// Agents.
    pub agents: web::Data<AgentService>,
    /// Calls.
    pub flow: web::Data<CallFlow>,
    /// The voicemail inbox.
    pub voicemails: web::Data<VoicemailInbox>,
    /// The audit log.
    pub audit: web::Data<dyn AuditLog>,
    /// Prometheus metrics.
    pub metrics: web::Data<Metrics>,
}

/// The application for one worker.
pub fn app(
    data: AppData,
    body_limit: usize,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(data.console)
        .app_data(data.auth)
        .app_data(data.webhooks)
        .app_data(data.reports)
        .app_data(data.ops)
        .app_data(data.agents)
        .app_data(data.flow)
        .app_data(data.voicemails)
        .app_data(data.audit)
        .app_data(data.metrics)
        .app_data(web::PayloadConfig::new(body_limit))
        .wrap(ErrorHandlers::new().default_handler(context::problem_fallback))
        .wrap(from_fn(context::request_context))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .into_utoipa_app()
        .service(api_scope())
        .into_app()
        // After the API (Telnyx's webhooks among it): its patterns with `{segment}`s are
        // regex matches a webhook would otherwise try first.
        .configure(console::configure)
        .default_service(web::to(ops::not_found))
}
