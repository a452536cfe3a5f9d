//! The voicemail inbox: every voicemail is an item (`new`, `assigned`, `done`) a supervisor
//! assigns and an agent marks done.

#![allow(unused_qualifications)] // utoipa's path macro expands qualified paths

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use agents::AgentId;
use call_center::{InboxError, InboxState, Voicemail, VoicemailInbox};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, AdminOrAgent};
use super::json;
use super::problem::{ApiError, Problem};

/// `GET /voicemails` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VoicemailsQuery {
    /// Only items in this state.
    pub state: Option<InboxState>,
    /// Only items this agent owns (an agent's token sees only its own anyway).
    #[param(value_type = Option<String>, format = Uuid)]
    pub assigned_to: Option<String>,
    /// At most this many, newest first (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// `GET /voicemails` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoicemailList {
    /// Newest first.
    pub voicemails: Vec<Voicemail>,
}

/// `POST /voicemails/{call_sid}/assign` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignVoicemail {
    /// The agent who will handle it.
    #[schema(format = Uuid)]
    pub agent_id: String,
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::NotFound => Self::NotFound("voicemail"),
            InboxError::AlreadyDone => Self::Conflict(e.to_string()),
            InboxError::Invalid { field, message } => Self::Unprocessable {
                field: field.to_owned(),
                message,
            },
            InboxError::Forbidden => Self::Forbidden,
            InboxError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

/// Lists voicemails, newest first: all of them for the admin token, its own for an agent.
#[utoipa::path(
    tag = "voicemails",
    params(VoicemailsQuery),
    security(("admin" = []), ("heartbeat" = [])),
    responses(
        (status = 200, description = "Voicemails", body = VoicemailList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An agent asking for another agent's items", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid state, agent id or limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/voicemails")]
pub async fn list(
    AdminOrAgent(caller): AdminOrAgent,
    req: HttpRequest,
    inbox: web::Data<VoicemailInbox>,
) -> Result<HttpResponse, ApiError> {
    let q: VoicemailsQuery = json::query(&req)?;
    let assigned_to = q
        .assigned_to
        .as_deref()
        .map(|s| {
            s.parse::<AgentId>().map_err(|_| ApiError::Unprocessable {
                field: "assigned_to".into(),
                message: "must be an agent id (UUID)".into(),
            })
        })
        .transpose()?;
    let voicemails = inbox
        .list(caller, q.state, assigned_to, q.limit.unwrap_or(50))
        .await?;
    Ok(HttpResponse::Ok().json(VoicemailList { voicemails }))
}

/// One voicemail (an agent: only its own).
#[utoipa::path(
    tag = "voicemails",
    params(("call_sid" = String, Path, description = "The caller's call")),
    security(("admin" = []), ("heartbeat" = [])),
    responses(
        (status = 200, description = "The voicemail", body = Voicemail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another agent's voicemail", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No voicemail for this call", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/voicemails/{call_sid}")]
pub async fn get_voicemail(
    AdminOrAgent(caller): AdminOrAgent,
    path: web::Path<String>,
    inbox: web::Data<VoicemailInbox>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(inbox.get(caller, &path).await?))
}

/// Gives a voicemail to an agent (again, to another, while it is not done); audited.
#[utoipa::path(
    tag = "voicemails",
    params(("call_sid" = String, Path, description = "The caller's call")),
    request_body = AssignVoicemail,
    security(("admin" = [])),
    responses(
        (status = 200, description = "The voicemail, assigned", body = Voicemail),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No voicemail for this call", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already done", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/voicemails/{call_sid}/assign")]
pub async fn assign(
    _: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    inbox: web::Data<VoicemailInbox>,
) -> Result<HttpResponse, ApiError> {
    let input: AssignVoicemail = json::body(&req, &body)?;
    Ok(HttpResponse::Ok().json(inbox.assign(&path, &input.agent_id).await?))
}

/// Marks a voicemail handled (the admin token, or the agent it is assigned to); audited.
/// Done twice is done once.
#[utoipa::path(
    tag = "voicemails",
    params(("call_sid" = String, Path, description = "The caller's call")),
    security(("admin" = []), ("heartbeat" = [])),
    responses(
        (status = 200, description = "The voicemail, done", body = Voicemail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another agent's voicemail", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No voicemail for this call", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/voicemails/{call_sid}/done")]
pub async fn done(
    AdminOrAgent(caller): AdminOrAgent,
    path: web::Path<String>,
    inbox: web::Data<VoicemailInbox>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(inbox.done(caller, &path).await?))
}
