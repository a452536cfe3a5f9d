//! The audit log (contract section 3): entries in order, and verification of the chain.

#![allow(unused_qualifications)] // utoipa's path macro expands qualified paths

use actix_web::{HttpRequest, HttpResponse, get, web};
use audit::{AuditEntry, AuditFilter, AuditLog, VerifyReport, verify_chain};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::json;
use super::problem::{ApiError, Problem};

/// `GET /audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this call.
    pub call_sid: Option<String>,
    /// Only entries about this agent.
    pub agent_id: Option<uuid::Uuid>,
    /// At most this many (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// `GET /audit` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Sealed entries in chain order, then any still pending.
    pub entries: Vec<AuditEntry>,
}

/// Audit entries in order.
#[utoipa::path(
    tag = "audit",
    params(AuditQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Entries", body = AuditList),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/audit")]
pub async fn list(
    _: Admin,
    req: HttpRequest,
    audit: web::Data<dyn AuditLog>,
) -> Result<HttpResponse, ApiError> {
    let q: AuditQuery = json::query(&req)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::Unprocessable {
            field: "limit".into(),
            message: "must be from 1 to 10000".into(),
        });
    }
    audit.seal_pending().await?;
    let filter = AuditFilter {
        call_sid: q.call_sid,
        agent_id: q.agent_id,
        limit: Some(limit),
    };
    Ok(HttpResponse::Ok().json(AuditList {
        entries: audit.entries(&filter).await?,
    }))
}

/// Recomputes the hash chain and names the first broken entry.
#[utoipa::path(
    tag = "audit",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The verdict (ok false names the first broken entry)", body = VerifyReport),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/audit/verify")]
pub async fn verify(_: Admin, audit: web::Data<dyn AuditLog>) -> Result<HttpResponse, ApiError> {
    audit.seal_pending().await?;
    let report = verify_chain(audit.get_ref()).await?;
    if !report.ok {
        tracing::error!(first_broken = ?report.first_broken, "audit chain verification failed");
    }
    Ok(HttpResponse::Ok().json(report))
}
