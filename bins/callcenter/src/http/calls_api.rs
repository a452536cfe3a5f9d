//! Calls (contract section 3): list, one, and redaction of recordings.

#![allow(unused_qualifications)] // utoipa's path macro expands qualified paths

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use audit::Actor;
use call_center::{CallFilter, CallFlow, CallStatus, CallView, Redaction};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::json;
use super::problem::{ApiError, Problem};

/// `GET /calls` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// At most this many, newest first (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only calls with this status.
    pub status: Option<CallStatus>,
    /// Only calls this agent answered.
    #[param(value_type = Option<String>, format = Uuid)]
    pub answered_by: Option<String>,
}

/// `GET /calls` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    /// Newest first.
    pub calls: Vec<CallView>,
}

/// `POST /calls/{call_sid}/redact` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RedactRequest {
    /// Why (kept in the audit log): 1–500 characters, not blank, no control characters.
    #[schema(schema_with = super::schemas::reason, example = "caller asked for deletion")]
    pub reason: String,
}

/// `POST /calls/{call_sid}/redact` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redacted {
    /// `redacted`, or `already_redacted` when there was nothing left to remove.
    pub result: String,
    /// The call afterwards.
    pub call: CallView,
}

fn parse_filter(q: &CallsQuery) -> Result<CallFilter, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Unprocessable {
            field: "limit".into(),
            message: "must be from 1 to 1000".into(),
        });
    }
    let answered_by = q
        .answered_by
        .as_deref()
        .map(|id| {
            id.parse().map_err(|_| ApiError::Unprocessable {
                field: "answered_by".into(),
                message: "must be an agent id (a UUID)".into(),
            })
        })
        .transpose()?;
    Ok(CallFilter {
        limit,
        status: q.status,
        answered_by,
    })
}

/// Lists calls, newest first.
#[utoipa::path(
    tag = "calls",
    params(CallsQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Calls", body = CallList),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or status", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/calls")]
pub async fn list(
    _: Admin,
    req: HttpRequest,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(&json::query::<CallsQuery>(&req)?)?;
    let calls = flow.calls(&filter).await?;
    Ok(HttpResponse::Ok().json(CallList { calls }))
}

/// One call.
#[utoipa::path(
    tag = "calls",
    params(("call_sid" = String, Path, description = "Telnyx CallSid of the caller's call")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The call", body = CallView),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown call", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/calls/{call_sid}")]
pub async fn get_call(
    _: Admin,
    path: web::Path<String>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let call = flow.call(&path).await?.ok_or(ApiError::NotFound("call"))?;
    Ok(HttpResponse::Ok().json(call))
}

/// Removes a call's recording URLs, voicemail recording and transcription; audited.
#[utoipa::path(
    tag = "calls",
    params(("call_sid" = String, Path, description = "Telnyx CallSid of the caller's call")),
    request_body = RedactRequest,
    security(("admin" = [])),
    responses(
        (status = 200, description = "Redacted (or nothing left to redact)", body = Redacted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown call", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid reason", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/calls/{call_sid}/redact")]
pub async fn redact(
    _: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let input: RedactRequest = json::body(&req, &body)?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::Unprocessable {
            field: "reason".into(),
            message: "1 to 500 characters, no control characters".into(),
        });
    }
    let result = match flow.redact(&path, reason, Actor::Admin).await? {
        Redaction::NotFound => return Err(ApiError::NotFound("call")),
        Redaction::Redacted => "redacted",
        Redaction::AlreadyRedacted => "already_redacted",
    };
    let call = flow.call(&path).await?.ok_or(ApiError::NotFound("call"))?;
    Ok(HttpResponse::Ok().json(Redacted {
        result: result.to_owned(),
        call,
    }))
}
