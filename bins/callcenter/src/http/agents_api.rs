//! Agent management (contract section 2).

#![allow(unused_qualifications)] // utoipa's path macro expands qualified paths

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use agents::{
    AgentChanges, AgentService, AgentView, Caller, EffectiveStatus, NewAgent, RequestedStatus,
};
use call_center::CallFlow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, AdminOrAgent};
use super::json;
use super::problem::{ApiError, Problem};

/// `POST /agents/register` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterAgent {
    /// 1–100 characters (trimmed), not blank, no control characters.
    #[schema(schema_with = super::schemas::name, example = "Alice Smith")]
    pub name: String,
    /// `sip:` or `sips:` `user@host[:port][;params]` (RFC 3261's basic grammar).
    #[schema(schema_with = super::schemas::sip_uri, example = "sip:alice@example.sip.telnyx.com")]
    pub sip_uri: String,
    /// Initial presence; `available` counts as a first heartbeat.
    pub status: Option<RequestedStatus>,
    /// With `status` `paused`: why, one of `CALL_CENTER_PAUSE_REASONS`.
    #[schema(example = "lunch")]
    pub reason: Option<String>,
}

/// `POST /agents/register` answer: the token is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// The new agent.
    pub agent: AgentView,
    /// The agent's own token for `/agents/heartbeat`.
    pub heartbeat_token: String,
}

/// `POST /agents/heartbeat` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Heartbeat {
    /// The agent's id.
    #[schema(format = Uuid)]
    pub agent_id: String,
    /// New presence, or `paused` with a `reason`; `available` ends a pause.
    pub status: Option<RequestedStatus>,
    /// With `status` `paused`: why, one of `CALL_CENTER_PAUSE_REASONS`.
    #[schema(example = "lunch")]
    pub reason: Option<String>,
}

/// `PUT /agents/{agent_id}` body: any of the fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateAgent {
    /// New name: 1–100 characters (trimmed), not blank, no control characters.
    #[schema(schema_with = super::schemas::optional_name)]
    pub name: Option<String>,
    /// New SIP URI.
    #[schema(schema_with = super::schemas::optional_sip_uri)]
    pub sip_uri: Option<String>,
    /// New presence, or `paused` with a `reason`; `available` ends a pause.
    pub status: Option<RequestedStatus>,
    /// With `status` `paused`: why, one of `CALL_CENTER_PAUSE_REASONS`.
    #[schema(example = "lunch")]
    pub reason: Option<String>,
}

/// `GET /agents/list` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only agents with this effective status.
    pub status: Option<EffectiveStatus>,
}

/// `GET /agents/list` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    /// The agents, oldest first.
    pub agents: Vec<AgentView>,
}

/// The literal routes beside `/agents/{agent_id}` and the method each answers: asking one
/// of them with another method is a 405, not an agent lookup.
fn literal_sibling(segment: &str) -> Option<ApiError> {
    let allow = match segment {
        "register" | "heartbeat" => "POST",
        "list" => "GET",
        _ => return None,
    };
    Some(ApiError::MethodNotAllowed {
        allow: allow.to_owned(),
    })
}

/// The agent id of a path: 405 for a literal sibling route, 404 for anything not a UUID.
fn path_id(segment: &str) -> Result<&str, ApiError> {
    if let Some(e) = literal_sibling(segment) {
        return Err(e);
    }
    uuid::Uuid::parse_str(segment)
        .map(|_| segment)
        .map_err(|_| ApiError::NotFound("agent"))
}

/// Registers an agent.
#[utoipa::path(
    tag = "agents",
    request_body = RegisterAgent,
    security(("admin" = [])),
    responses(
        (status = 201, description = "Registered", body = Registered),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "sip_uri already registered", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/agents/register")]
pub async fn register(
    _: Admin,
    req: HttpRequest,
    body: web::Bytes,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let input: RegisterAgent = json::body(&req, &body)?;
    let new = NewAgent {
        name: &input.name,
        sip_uri: &input.sip_uri,
        status: input.status.map(RequestedStatus::as_str),
        reason: input.reason.as_deref(),
    };
    let (agent, heartbeat_token) = agents.register(new, Caller::Admin).await?;
    flow.nudge();
    Ok(HttpResponse::Created().json(Registered {
        agent,
        heartbeat_token,
    }))
}

/// Records a heartbeat (admin token, or the agent's own heartbeat token).
#[utoipa::path(
    tag = "agents",
    request_body = Heartbeat,
    security(("admin" = []), ("heartbeat" = [])),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another agent's token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/agents/heartbeat")]
pub async fn heartbeat(
    AdminOrAgent(caller): AdminOrAgent,
    req: HttpRequest,
    body: web::Bytes,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let input: Heartbeat = json::body(&req, &body)?;
    let agent = agents
        .heartbeat(
            caller,
            &input.agent_id,
            input.status.map(RequestedStatus::as_str),
            input.reason.as_deref(),
        )
        .await?;
    if input.status.is_some() {
        // A change of presence may free an agent for a waiting caller.
        flow.nudge();
    }
    Ok(HttpResponse::Ok().json(agent))
}

/// Lists agents, optionally by effective status.
#[utoipa::path(
    tag = "agents",
    params(ListQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Agents", body = AgentList),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/agents/list")]
pub async fn list(
    _: Admin,
    req: HttpRequest,
    agents: web::Data<AgentService>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = json::query(&req)?;
    let agents = agents.list(q.status.map(EffectiveStatus::as_str)).await?;
    Ok(HttpResponse::Ok().json(AgentList { agents }))
}

/// One agent.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = uuid::Uuid, Path, description = "The agent's id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/agents/{agent_id}")]
pub async fn get_agent(
    _: Admin,
    path: web::Path<String>,
    agents: web::Data<AgentService>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(agents.get(path_id(&path)?).await?))
}

/// Changes an agent's name, SIP URI or presence.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = uuid::Uuid, Path, description = "The agent's id")),
    request_body = UpdateAgent,
    security(("admin" = [])),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 405, description = "A literal route (register, heartbeat, list) with another method", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "sip_uri already registered", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/agents/{agent_id}")]
pub async fn update(
    _: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path)?;
    let input: UpdateAgent = json::body(&req, &body)?;
    if input.name.is_none()
        && input.sip_uri.is_none()
        && input.status.is_none()
        && input.reason.is_none()
    {
        // Nothing to change: answer the agent as it is.
        return Ok(HttpResponse::Ok().json(agents.get(id).await?));
    }
    let changes = AgentChanges {
        name: input.name.as_deref(),
        sip_uri: input.sip_uri.as_deref(),
        status: input.status.map(RequestedStatus::as_str),
        reason: input.reason.as_deref(),
    };
    let agent = agents.update(id, changes).await?;
    flow.nudge();
    Ok(HttpResponse::Ok().json(agent))
}

/// Removes an agent.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = uuid::Uuid, Path, description = "The agent's id")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/agents/{agent_id}")]
pub async fn remove(
    _: Admin,
    path: web::Path<String>,
    agents: web::Data<AgentService>,
) -> Result<HttpResponse, ApiError> {
    agents.remove(path_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /agents/{agent_id}/sign-in-link` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInLink {
    /// Opens the agent console's sign-in for this agent; works once. Shown only here.
    pub url: String,
    /// When it stops working (15 minutes after it was made).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Creates a one-time sign-in link to the agent console for an agent: hand it over (chat,
/// e-mail) instead of the heartbeat token. It works once, for 15 minutes; only its hash is
/// stored. Audited as `sign_in_link_created` (and `sign_in_link_used` when opened).
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = uuid::Uuid, Path, description = "The agent's id")),
    security(("admin" = [])),
    responses(
        (status = 201, description = "The link", body = SignInLink),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/agents/{agent_id}/sign-in-link")]
pub async fn sign_in_link(
    _: Admin,
    path: web::Path<String>,
    agents: web::Data<AgentService>,
    console: web::Data<super::console::Console>,
) -> Result<HttpResponse, ApiError> {
    let (token, expires_at) = agents.create_sign_in_link(path_id(&path)?).await?;
    Ok(HttpResponse::Created().json(SignInLink {
        url: console.sign_in_link_url(&token),
        expires_at,
    }))
}

/// Frees an agent from the call it holds, whatever that call's state: the agent is offered
/// calls again at once. For an agent left busy by a call that ended without the server
/// hearing of it (the reconciler does the same on its own once the call is over or silent
/// longer than any call lasts). Audited as `agent_released`; an agent holding no call is
/// answered as it is.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = uuid::Uuid, Path, description = "The agent's id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The agent, holding no call", body = AgentView),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/agents/{agent_id}/release")]
pub async fn release(
    _: Admin,
    path: web::Path<String>,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let agent = agents.release(path_id(&path)?, Caller::Admin).await?;
    flow.nudge();
    Ok(HttpResponse::Ok().json(agent))
}

/// Ends the agent's wrap-up (after-call work, `CALL_CENTER_WRAP_UP_SECONDS`) now: the agent
/// is offered calls again. The agent's own token or the admin's. Audited as `wrap_up_ended`;
/// an agent not wrapping up is answered as it is.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = uuid::Uuid, Path, description = "The agent's id")),
    security(("admin" = []), ("heartbeat" = [])),
    responses(
        (status = 200, description = "The agent, its wrap-up over", body = AgentView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another agent's token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/agents/{agent_id}/ready")]
pub async fn ready(
    AdminOrAgent(caller): AdminOrAgent,
    path: web::Path<String>,
    agents: web::Data<AgentService>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let agent = agents.ready(caller, path_id(&path)?).await?;
    flow.nudge();
    Ok(HttpResponse::Ok().json(agent))
}
