//! The browser side: the agent console (`/console`) and the supervisor wallboard
//! (`/wallboard`), server-rendered, live through Server-Sent Events, with a little plain
//! JavaScript compiled into the binary. Sessions are signed cookies ([`session`]); every
//! form carries a CSRF token; every page is served under a strict Content-Security-Policy.
//! The pages act through the same services as the JSON API, so every change is audited the
//! same way.

pub mod live;
pub mod pages;
pub mod session;

use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use agents::{AgentId, AgentService, AgentView, Caller, Clock, EffectiveStatus, PauseReason};
use audit::{AuditLog, VerifyReport, verify_chain};
use call_center::reports::{Summary, summary};
use call_center::{CallFilter, CallFlow, CallView, InboxState, VoicemailInbox};
use chrono::{DateTime, Utc};
use maud::Markup;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use self::live::Changes;
use self::pages::{Board, CurrentCall};
use self::session::{PRE_COOKIE, Session, Sessions, Who, cookie_name};
use super::problem::ApiError;
use super::state::{Auth, Reports};

/// How long a verification of the audit chain is shown before the next one runs.
const AUDIT_CHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Calls the pages list.
const RECENT_CALLS: u32 = 20;

/// What the pages need besides the services.
pub struct Console {
    /// Signs and reads sessions.
    pub sessions: Sessions,
    /// Wakes the live pages.
    pub changes: Changes,
    /// The reasons an agent may pause for.
    pub pause_reasons: Vec<PauseReason>,
    /// How often the console's script sends a heartbeat.
    pub heartbeat_every: Duration,
    /// Time.
    pub clock: std::sync::Arc<dyn Clock>,
    /// The last verification of the audit chain.
    pub audit_check: Mutex<Option<(DateTime<Utc>, VerifyReport)>>,
    /// The server's public base URL (`WEBHOOK_BASE_URL`), for sign-in links.
    pub public_base: String,
}

impl Console {
    /// The URL of a one-time sign-in link.
    #[must_use]
    pub fn sign_in_link_url(&self, token: &str) -> String {
        format!(
            "{}/console/link/{token}",
            self.public_base.trim_end_matches('/')
        )
    }
}

/// What a page reads: the services, as cheap clones of the app's handles (an extractor, so
/// a page handler takes one argument, and an event stream keeps one clone).
#[derive(Clone)]
struct Services {
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
    inbox: web::Data<VoicemailInbox>,
    reports: web::Data<Reports>,
    audit: web::Data<dyn AuditLog>,
}

impl Services {
    fn of(req: &HttpRequest) -> Option<Self> {
        Some(Self {
            console: req.app_data::<web::Data<Console>>()?.clone(),
            agents: req.app_data::<web::Data<AgentService>>()?.clone(),
            flow: req.app_data::<web::Data<CallFlow>>()?.clone(),
            inbox: req.app_data::<web::Data<VoicemailInbox>>()?.clone(),
            reports: req.app_data::<web::Data<Reports>>()?.clone(),
            audit: req.app_data::<web::Data<dyn AuditLog>>()?.clone(),
        })
    }
}

impl actix_web::FromRequest for Services {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Self::of(req).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("the console's services are not configured"))
        }))
    }
}

/// Routes of the console and the wallboard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(console_page))
        .route("/console/sign-in", web::post().to(console_sign_in))
        .route("/console/sign-out", web::post().to(sign_out))
        .route("/console/status", web::post().to(console_status))
        .route("/console/ready", web::post().to(console_ready))
        .route("/console/heartbeat", web::post().to(console_heartbeat))
        .route(
            "/console/voicemails/{call_sid}/done",
            web::post().to(console_voicemail_done),
        )
        .route("/console/events", web::get().to(console_events))
        .route("/console/link/{token}", web::get().to(link_page))
        .route("/console/link", web::post().to(link_sign_in))
        .route(pages::SCRIPT_PATH, web::get().to(script))
        .route(pages::STYLE_PATH, web::get().to(style))
        .route("/wallboard", web::get().to(wallboard_page))
        .route("/wallboard/sign-in", web::post().to(wallboard_sign_in))
        .route("/wallboard/sign-out", web::post().to(sign_out))
        .route(
            "/wallboard/agents/{agent_id}/release",
            web::post().to(wallboard_release),
        )
        .route(
            "/wallboard/agents/{agent_id}/resume",
            web::post().to(wallboard_resume),
        )
        .route(
            "/wallboard/agents/{agent_id}/sign-in-link",
            web::post().to(wallboard_sign_in_link),
        )
        .route(
            "/wallboard/voicemails/{call_sid}/assign",
            web::post().to(wallboard_assign),
        )
        .route("/wallboard/events", web::get().to(wallboard_events));
}

/// The Content-Security-Policy of every page: only this server's script and style, no
/// inline code, no frames, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn secure_headers(mut res: HttpResponse) -> HttpResponse {
    let h = res.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        h.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    res
}

fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    secure_headers(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(markup.into_string()),
    )
}

fn see_other(to: &str) -> HttpResponse {
    secure_headers(
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, to))
            .finish(),
    )
}

/// A refused request as a page: the status of the API's answer and its message (the cause
/// of a server error only in the log).
fn refused(e: &ApiError, back: &str) -> HttpResponse {
    let status = e.status_code();
    let message = if status.is_server_error() {
        tracing::error!(error = ?e, "console request failed");
        "Something went wrong on the server. Try again in a moment.".to_owned()
    } else {
        let m = e.to_string();
        let mut chars = m.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
            .unwrap_or_default()
    };
    page(status, pages::problem("Not done", &message, back))
}

/// The form refused for a missing or wrong CSRF token.
fn csrf_refused(back: &str) -> HttpResponse {
    page(
        StatusCode::FORBIDDEN,
        pages::problem(
            "Form refused",
            "This form did not come from this page (its security token is missing or wrong). \
             Reload the page and try again.",
            back,
        ),
    )
}

fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed form: {e}")))
}

/// A form that only carries its CSRF token.
#[derive(Debug, Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

/// The session of a request, if it is of the expected kind.
fn session_of(req: &HttpRequest, console: &Console, supervisor: bool) -> Option<Session> {
    let s = console
        .sessions
        .of_request(req, supervisor, console.clock.now())?;
    match (s.who, supervisor) {
        (Who::Supervisor, true) | (Who::Agent(_), false) => Some(s),
        _ => None,
    }
}

/// Checks the CSRF token of a form (or the `X-CSRF-Token` header) against the session.
fn csrf_ok(console: &Console, session: &Session, req: &HttpRequest, field: Option<&str>) -> bool {
    let presented = field.or_else(|| {
        req.headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
    });
    presented.is_some_and(|t| console.sessions.csrf_matches(&session.nonce, t))
}

/// A signed-in form post: the session and the parsed form, or the page that refuses it.
fn signed_in_form<T: DeserializeOwned>(
    req: &HttpRequest,
    console: &Console,
    body: &[u8],
    supervisor: bool,
    csrf_of: impl Fn(&T) -> Option<&str>,
) -> Result<(Session, T), Box<HttpResponse>> {
    let back = if supervisor { "/wallboard" } else { "/console" };
    let Some(session) = session_of(req, console, supervisor) else {
        return Err(Box::new(see_other(back)));
    };
    let parsed: T = form(body).map_err(|e| Box::new(refused(&e, back)))?;
    if !csrf_ok(console, &session, req, csrf_of(&parsed)) {
        return Err(Box::new(csrf_refused(back)));
    }
    Ok((session, parsed))
}

/// A signed-in post whose form carries only its CSRF token: the session, or the page that
/// refuses it.
fn csrf_only(
    req: &HttpRequest,
    console: &Console,
    body: &[u8],
    supervisor: bool,
) -> Result<Session, Box<HttpResponse>> {
    signed_in_form::<CsrfOnly>(req, console, body, supervisor, |f| f.csrf.as_deref())
        .map(|(session, _)| session)
}

/// The answer to a wallboard action that may free an agent: the matcher is woken and the
/// page shown again, or the refusal.
fn freed<T, E: Into<ApiError>>(done: Result<T, E>, flow: &CallFlow) -> HttpResponse {
    match done {
        Ok(_) => {
            flow.nudge();
            see_other("/wallboard")
        }
        Err(e) => refused(&e.into(), "/wallboard"),
    }
}

fn agent_of(session: &Session) -> Option<AgentId> {
    match session.who {
        Who::Agent(id) => Some(id),
        Who::Supervisor => None,
    }
}

/// The sign-in page with a fresh pre-session nonce in its cookie.
fn sign_in_page(
    req: &HttpRequest,
    console: &Console,
    supervisor: bool,
    status: StatusCode,
    message: Option<&str>,
) -> HttpResponse {
    let nonce = session::pre_nonce();
    let csrf = console.sessions.csrf(&nonce);
    let mut res = page(status, pages::sign_in(supervisor, &csrf, message));
    let _ = res.add_cookie(&session::cookie(req, PRE_COOKIE, nonce));
    res
}

/// The sign-in form's CSRF check: the token of the pre-session cookie's nonce.
fn pre_csrf_ok(req: &HttpRequest, console: &Console, presented: Option<&str>) -> bool {
    let Some(nonce) = req.cookie(PRE_COOKIE) else {
        return false;
    };
    presented.is_some_and(|t| console.sessions.csrf_matches(nonce.value(), t))
}

/// Signed in: the session cookie, the pre-session cookie gone, on to `to`.
fn signed_in(req: &HttpRequest, console: &Console, who: Who, to: &str) -> HttpResponse {
    let value = console.sessions.issue(who, console.clock.now());
    let mut res = see_other(to);
    let name = cookie_name(who == Who::Supervisor);
    let _ = res.add_cookie(&session::cookie(req, name, value));
    let _ = res.add_cookie(&session::removal(req, PRE_COOKIE));
    res
}

/// A sign-in form: the console's (agent id and token), the wallboard's (the admin token),
/// or a sign-in link's (its token).
#[derive(Debug, Deserialize)]
struct SignInForm {
    agent_id: Option<String>,
    token: Option<String>,
    csrf: Option<String>,
}

/// A posted sign-in form whose CSRF token matches the pre-session cookie, or the page that
/// refuses it.
fn sign_in_form(
    req: &HttpRequest,
    console: &Console,
    body: &[u8],
    back: &str,
) -> Result<SignInForm, Box<HttpResponse>> {
    let f: SignInForm = form(body).map_err(|e| Box::new(refused(&e, back)))?;
    if !pre_csrf_ok(req, console, f.csrf.as_deref()) {
        return Err(Box::new(csrf_refused(back)));
    }
    Ok(f)
}

async fn console_sign_in(
    req: HttpRequest,
    body: web::Bytes,
    console: web::Data<Console>,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let f = match sign_in_form(&req, &console, &body, "/console") {
        Ok(f) => f,
        Err(res) => return *res,
    };
    let id = f.agent_id.as_deref().unwrap_or("").trim();
    let token = f.token.as_deref().unwrap_or("").trim();
    let found = match auth.agents.agent_for_token(token).await {
        Ok(found) => found,
        Err(e) => return refused(&e.into(), "/console"),
    };
    match found {
        Some(agent) if !token.is_empty() && agent.to_string() == id => {
            signed_in(&req, &console, Who::Agent(agent), "/console")
        }
        _ => {
            let (status, message) = failed_sign_in(&auth, &req);
            sign_in_page(&req, &console, false, status, Some(message))
        }
    }
}

/// Counts a failed sign-in; the status and message to show.
fn failed_sign_in(auth: &Auth, req: &HttpRequest) -> (StatusCode, &'static str) {
    match auth.refuse(req) {
        ApiError::TooManyRequests { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins from this address. Wait a minute and try again.",
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "Sign-in failed: the agent id or the token is wrong.",
        ),
    }
}

/// The page of a sign-in link: one button. Opening the link changes nothing (link
/// previews and prefetchers open links too); the button's post uses it.
async fn link_page(
    req: HttpRequest,
    path: web::Path<String>,
    console: web::Data<Console>,
) -> HttpResponse {
    let nonce = session::pre_nonce();
    let csrf = console.sessions.csrf(&nonce);
    let mut res = page(StatusCode::OK, pages::link(&path, &csrf));
    let _ = res.add_cookie(&session::cookie(&req, PRE_COOKIE, nonce));
    res
}

async fn link_sign_in(
    req: HttpRequest,
    body: web::Bytes,
    console: web::Data<Console>,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let f = match sign_in_form(&req, &console, &body, "/console") {
        Ok(f) => f,
        Err(res) => return *res,
    };
    match auth
        .agents
        .use_sign_in_link(f.token.as_deref().unwrap_or(""))
        .await
    {
        Ok(Some(agent)) => signed_in(&req, &console, Who::Agent(agent), "/console"),
        Ok(None) => {
            let status = match auth.refuse(&req) {
                ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            sign_in_page(
                &req,
                &console,
                false,
                status,
                Some(
                    "This sign-in link does not work any more: it was used, it expired, or it \
                     was never made. Ask for a new one, or sign in with your agent id and token.",
                ),
            )
        }
        Err(e) => refused(&e.into(), "/console"),
    }
}

async fn wallboard_sign_in(
    req: HttpRequest,
    body: web::Bytes,
    console: web::Data<Console>,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let f = match sign_in_form(&req, &console, &body, "/wallboard") {
        Ok(f) => f,
        Err(res) => return *res,
    };
    let token = f.token.as_deref().unwrap_or("").trim();
    if super::auth::is_admin_token(token, &auth.admin_token) {
        return signed_in(&req, &console, Who::Supervisor, "/wallboard");
    }
    let (status, message) = failed_sign_in(&auth, &req);
    let message = if status == StatusCode::UNAUTHORIZED {
        "Sign-in failed: that is not the admin token."
    } else {
        message
    };
    sign_in_page(&req, &console, true, status, Some(message))
}

async fn sign_out(req: HttpRequest, body: web::Bytes, console: web::Data<Console>) -> HttpResponse {
    let supervisor = req.path().starts_with("/wallboard");
    let back = if supervisor { "/wallboard" } else { "/console" };
    match csrf_only(&req, &console, &body, supervisor) {
        Ok(_) => {
            let mut res = see_other(back);
            let _ = res.add_cookie(&session::removal(&req, cookie_name(supervisor)));
            res
        }
        Err(res) => *res,
    }
}

// ---------------------------------------------------------------------------------------
// The agent console.

async fn console_page(req: HttpRequest, services: Services) -> HttpResponse {
    let console = &services.console;
    let Some(session) = session_of(&req, console, false) else {
        return sign_in_page(&req, console, false, StatusCode::OK, None);
    };
    let csrf = console.sessions.csrf(&session.nonce);
    let Some(me) = agent_of(&session) else {
        return see_other("/console");
    };
    match console_live(&services, me, &csrf).await {
        Ok((view, live)) => page(
            StatusCode::OK,
            pages::console(
                &view,
                &console.pause_reasons,
                &csrf,
                console.heartbeat_every.as_secs().max(1),
                live,
                None,
            ),
        ),
        // The agent was removed: the session is over.
        Err(ApiError::NotFound(_)) => {
            let mut res = sign_in_page(&req, console, false, StatusCode::OK, None);
            let _ = res.add_cookie(&session::removal(&req, cookie_name(false)));
            res
        }
        Err(e) => refused(&e, "/console"),
    }
}

/// The caller an agent is busy with, and when it answered.
async fn current_call(flow: &CallFlow, agent: &AgentView) -> Result<CurrentCall, ApiError> {
    let Some(sid) = agent.call_sid.as_deref() else {
        return Ok(CurrentCall::default());
    };
    Ok(match flow.call(sid).await? {
        Some(call) => CurrentCall {
            offered_at: call
                .offers
                .iter()
                .filter(|o| o.agent_id == agent.id)
                .map(|o| o.offered_at)
                .max(),
            answered_at: call
                .answered_at
                .filter(|_| call.answered_by == Some(agent.id)),
            from: Some(call.from),
        },
        None => CurrentCall::default(),
    })
}

/// Today's summary (midnight UTC to now), as `GET /reports/summary?from=<today>` sums it.
async fn today(reports: &Reports) -> Result<Summary, ApiError> {
    let now = reports.clock.now();
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    let sl = crate::config::seconds(reports.service_level);
    summary(reports.store.as_ref(), midnight, now, sl)
        .await
        .map_err(|call_center::reports::ReportError::Unexpected(e)| ApiError::Internal(e))
}

/// The newest calls (answered by `agent` only, when given).
async fn recent_calls(flow: &CallFlow, agent: Option<AgentId>) -> Result<Vec<CallView>, ApiError> {
    Ok(flow
        .calls(&CallFilter {
            limit: RECENT_CALLS,
            status: None,
            answered_by: agent,
        })
        .await?)
}

/// The console's live part for agent `me`, and its view.
async fn console_live(
    s: &Services,
    me: AgentId,
    csrf: &str,
) -> Result<(AgentView, Markup), ApiError> {
    let view = s.agents.get(&me.to_string()).await?;
    let call = current_call(&s.flow, &view).await?;
    let summary = today(&s.reports).await?;
    let mine = summary.agents.iter().find(|a| a.agent_id == me.0);
    let recent = recent_calls(&s.flow, Some(me)).await?;
    let voicemails = s
        .inbox
        .list(Caller::Agent(me), Some(InboxState::Assigned), Some(me), 50)
        .await?;
    let live = pages::console_live(
        &view,
        &call,
        mine,
        &recent,
        &voicemails,
        csrf,
        s.console.clock.now(),
    );
    Ok((view, live))
}

#[derive(Debug, Deserialize)]
struct StatusForm {
    status: Option<String>,
    reason: Option<String>,
    csrf: Option<String>,
}

async fn console_status(
    req: HttpRequest,
    body: web::Bytes,
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
) -> HttpResponse {
    let (session, f) =
        match signed_in_form::<StatusForm>(&req, &console, &body, false, |f| f.csrf.as_deref()) {
            Ok(ok) => ok,
            Err(res) => return *res,
        };
    let Some(me) = agent_of(&session) else {
        return see_other("/console");
    };
    let status = f.status.as_deref().unwrap_or("");
    let reason = (status == "paused")
        .then_some(f.reason.as_deref())
        .flatten();
    match agents
        .heartbeat(Caller::Agent(me), &me.to_string(), Some(status), reason)
        .await
    {
        Ok(_) => see_other("/console"),
        Err(e) => refused(&e.into(), "/console"),
    }
}

async fn console_ready(
    req: HttpRequest,
    body: web::Bytes,
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> HttpResponse {
    let session = match csrf_only(&req, &console, &body, false) {
        Ok(ok) => ok,
        Err(res) => return *res,
    };
    let Some(me) = agent_of(&session) else {
        return see_other("/console");
    };
    match agents.ready(Caller::Agent(me), &me.to_string()).await {
        Ok(_) => {
            flow.nudge();
            see_other("/console")
        }
        Err(e) => refused(&e.into(), "/console"),
    }
}

/// The console's script keeps the agent online while the page is open.
async fn console_heartbeat(
    req: HttpRequest,
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
) -> HttpResponse {
    let Some(session) = session_of(&req, &console, false) else {
        return secure_headers(HttpResponse::Unauthorized().finish());
    };
    if !csrf_ok(&console, &session, &req, None) {
        return secure_headers(HttpResponse::Forbidden().finish());
    }
    let Some(me) = agent_of(&session) else {
        return secure_headers(HttpResponse::Unauthorized().finish());
    };
    match agents
        .heartbeat(Caller::Agent(me), &me.to_string(), None, None)
        .await
    {
        Ok(_) => secure_headers(HttpResponse::NoContent().finish()),
        Err(e) => {
            let e: ApiError = e.into();
            if e.status_code().is_server_error() {
                tracing::warn!(error = ?e, "console heartbeat failed");
            }
            secure_headers(HttpResponse::build(e.status_code()).finish())
        }
    }
}

async fn console_voicemail_done(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    console: web::Data<Console>,
    inbox: web::Data<VoicemailInbox>,
) -> HttpResponse {
    let session = match csrf_only(&req, &console, &body, false) {
        Ok(ok) => ok,
        Err(res) => return *res,
    };
    let Some(me) = agent_of(&session) else {
        return see_other("/console");
    };
    match inbox.done(Caller::Agent(me), &path).await {
        Ok(_) => see_other("/console"),
        Err(e) => refused(&e.into(), "/console"),
    }
}

async fn console_events(req: HttpRequest, services: Services) -> HttpResponse {
    let Some(session) = session_of(&req, &services.console, false) else {
        return secure_headers(HttpResponse::Unauthorized().finish());
    };
    let Some(me) = agent_of(&session) else {
        return secure_headers(HttpResponse::Unauthorized().finish());
    };
    events(services, &session, move |s, csrf| async move {
        console_live(&s, me, &csrf).await.map(|(_, live)| live)
    })
}

/// The event stream of a page's live part, rendered by `render` (with the session's CSRF
/// token) at once and after every change; it ends when `render` fails.
fn events<F, Fut>(services: Services, session: &Session, render: F) -> HttpResponse
where
    F: Fn(Services, String) -> Fut + 'static,
    Fut: Future<Output = Result<Markup, ApiError>> + 'static,
{
    let csrf = services.console.sessions.csrf(&session.nonce);
    let changes = services.console.changes.clone();
    let render = move || {
        let rendered = render(services.clone(), csrf.clone());
        async move {
            match rendered.await {
                Ok(live) => Some(live.into_string()),
                Err(e) => {
                    tracing::debug!(error = ?e, "a live page's stream ends");
                    None
                }
            }
        }
    };
    secure_headers(live::response(live::stream(&changes, "live", render)))
}

// ---------------------------------------------------------------------------------------
// The wallboard.

async fn wallboard_page(req: HttpRequest, services: Services) -> HttpResponse {
    let Some(session) = session_of(&req, &services.console, true) else {
        return sign_in_page(&req, &services.console, true, StatusCode::OK, None);
    };
    let csrf = services.console.sessions.csrf(&session.nonce);
    match wallboard_live(&services, &csrf).await {
        Ok(live) => page(StatusCode::OK, pages::wallboard(&csrf, live, None)),
        Err(e) => refused(&e, "/wallboard"),
    }
}

/// The audit chain's last verification, run again when it is older than
/// [`AUDIT_CHECK_EVERY`].
async fn audit_check(
    console: &Console,
    audit: &dyn AuditLog,
) -> Result<Option<(DateTime<Utc>, VerifyReport)>, ApiError> {
    let now = console.clock.now();
    let fresh = console
        .audit_check
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .filter(|(at, _)| now - *at < AUDIT_CHECK_EVERY);
    if fresh.is_some() {
        return Ok(fresh);
    }
    let report = verify_chain(audit).await?;
    let checked = Some((now, report));
    if let Ok(mut c) = console.audit_check.lock() {
        c.clone_from(&checked);
    }
    Ok(checked)
}

async fn wallboard_live(s: &Services, csrf: &str) -> Result<Markup, ApiError> {
    let queue = s.flow.queue(200).await?;
    let mut agents = Vec::new();
    for a in s.agents.list(None).await? {
        let call = current_call(&s.flow, &a).await?;
        agents.push((a, call));
    }
    // By state: available, busy, paused, offline; by name within one.
    agents.sort_by(|(a, _), (b, _)| {
        let rank = |v: &AgentView| match v.status {
            EffectiveStatus::Available => 0,
            EffectiveStatus::Busy => 1,
            EffectiveStatus::Paused => 2,
            EffectiveStatus::Offline => 3,
        };
        rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name))
    });
    let today = today(&s.reports).await?;
    let recent = recent_calls(&s.flow, None).await?;
    let audit = audit_check(&s.console, s.audit.get_ref()).await?;
    let voicemails: Vec<_> = s
        .inbox
        .list(Caller::Admin, None, None, 100)
        .await?
        .into_iter()
        .filter(|v| v.state != InboxState::Done)
        .collect();
    let board = Board {
        queue: &queue,
        agents: &agents,
        today: &today,
        recent: &recent,
        audit: audit.as_ref(),
        voicemails: &voicemails,
        now: s.console.clock.now(),
    };
    Ok(pages::wallboard_live(&board, csrf))
}

async fn wallboard_release(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> HttpResponse {
    if let Err(res) = csrf_only(&req, &console, &body, true) {
        return *res;
    }
    freed(agents.release(&path, Caller::Admin).await, &flow)
}

async fn wallboard_resume(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> HttpResponse {
    if let Err(res) = csrf_only(&req, &console, &body, true) {
        return *res;
    }
    let changes = agents::AgentChanges {
        status: Some("available"),
        ..Default::default()
    };
    freed(agents.update(&path, changes).await, &flow)
}

/// Makes a one-time sign-in link for an agent and shows it (only here, only now).
async fn wallboard_sign_in_link(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    console: web::Data<Console>,
    agents: web::Data<AgentService>,
) -> HttpResponse {
    if let Err(res) = csrf_only(&req, &console, &body, true) {
        return *res;
    }
    let made = async {
        let agent = agents.get(&path).await?;
        let (token, expires_at) = agents.create_sign_in_link(&path).await?;
        Ok::<_, agents::AgentError>((agent, token, expires_at))
    };
    match made.await {
        Ok((agent, token, expires_at)) => page(
            StatusCode::OK,
            pages::link_made(&agent.name, &console.sign_in_link_url(&token), expires_at),
        ),
        Err(e) => refused(&e.into(), "/wallboard"),
    }
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    agent_id: Option<String>,
    csrf: Option<String>,
}

async fn wallboard_assign(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    console: web::Data<Console>,
    inbox: web::Data<VoicemailInbox>,
) -> HttpResponse {
    let f = match signed_in_form::<AssignForm>(&req, &console, &body, true, |f| f.csrf.as_deref()) {
        Ok((_, f)) => f,
        Err(res) => return *res,
    };
    match inbox
        .assign(&path, f.agent_id.as_deref().unwrap_or(""))
        .await
    {
        Ok(_) => see_other("/wallboard"),
        Err(e) => refused(&e.into(), "/wallboard"),
    }
}

async fn wallboard_events(req: HttpRequest, services: Services) -> HttpResponse {
    let Some(session) = session_of(&req, &services.console, true) else {
        return secure_headers(HttpResponse::Unauthorized().finish());
    };
    events(services, &session, |s, csrf| async move {
        wallboard_live(&s, &csrf).await
    })
}

// ---------------------------------------------------------------------------------------
// The script and the stylesheet, compiled in.

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("console.js"))
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", include_str!("console.css"))
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("cache-control", "public, max-age=300"))
        .body(body)
}
