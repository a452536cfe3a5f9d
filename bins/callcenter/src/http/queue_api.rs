//! The queue: who waits (in order, with place and wait), and the priority rules that put
//! some callers ahead (VIP numbers and prefixes).

#![allow(unused_qualifications)] // utoipa's path macro expands qualified paths

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use audit::Actor;
use call_center::{CallFlow, PriorityRule, QueueError, QueuedCaller, RuleError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::json;
use super::problem::{ApiError, Problem};

/// `GET /queue` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// At most this many callers, in queue order (default 200).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `GET /queue` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// In queue order: priority (higher first), then arrival.
    pub callers: Vec<QueuedCaller>,
}

/// `GET /queue/priority-rules` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriorityRules {
    /// By pattern.
    pub rules: Vec<PriorityRule>,
}

/// `POST /queue/priority-rules` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetPriorityRule {
    /// A caller number (E.164 digits, optional `+`), or a prefix ending in `*`.
    #[schema(example = "+1555*")]
    pub pattern: String,
    /// -100..=100; higher waits ahead, 0 is everyone else.
    pub priority: i32,
    /// What it is for.
    #[serde(default)]
    pub label: String,
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(e) => Self::Unprocessable {
                field: match e {
                    RuleError::Pattern => "pattern",
                    RuleError::Priority => "priority",
                    RuleError::Label => "label",
                }
                .into(),
                message: e.to_string(),
            },
            QueueError::Flow(e) => e.into(),
        }
    }
}

/// The callers in the queue, in order, with their place, wait and state.
#[utoipa::path(
    tag = "queue",
    params(QueueQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The queue", body = QueueView),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/queue")]
pub async fn queue(
    _: Admin,
    req: HttpRequest,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let q: QueueQuery = json::query(&req)?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Unprocessable {
            field: "limit".into(),
            message: "must be between 1 and 1000".into(),
        });
    }
    let callers = flow.queue(limit).await?;
    Ok(HttpResponse::Ok().json(QueueView { callers }))
}

/// The priority rules.
#[utoipa::path(
    tag = "queue",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The rules", body = PriorityRules),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/queue/priority-rules")]
pub async fn rules(_: Admin, flow: web::Data<CallFlow>) -> Result<HttpResponse, ApiError> {
    let rules = flow.priority_rules().await?;
    Ok(HttpResponse::Ok().json(PriorityRules { rules }))
}

/// Sets the priority of callers whose number matches `pattern` (the rule for the same
/// pattern is replaced, keeping its id); callers who join the queue afterwards wait with it.
/// Audited as `priority_rule_changed`.
#[utoipa::path(
    tag = "queue",
    request_body = SetPriorityRule,
    security(("admin" = [])),
    responses(
        (status = 200, description = "The rule as stored", body = PriorityRule),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid pattern, priority or label", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/queue/priority-rules")]
pub async fn set_rule(
    _: Admin,
    req: HttpRequest,
    body: web::Bytes,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let input: SetPriorityRule = json::body(&req, &body)?;
    let rule = flow
        .set_priority_rule(&input.pattern, input.priority, &input.label, Actor::Admin)
        .await?;
    Ok(HttpResponse::Ok().json(rule))
}

/// Removes a priority rule. Audited as `priority_rule_changed`.
#[utoipa::path(
    tag = "queue",
    params(("rule_id" = uuid::Uuid, Path, description = "The rule's id")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown rule", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/queue/priority-rules/{rule_id}")]
pub async fn remove_rule(
    _: Admin,
    path: web::Path<String>,
    flow: web::Data<CallFlow>,
) -> Result<HttpResponse, ApiError> {
    let id: uuid::Uuid = path
        .parse()
        .map_err(|_| ApiError::NotFound("priority rule"))?;
    if flow.remove_priority_rule(id, Actor::Admin).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("priority rule"))
    }
}
