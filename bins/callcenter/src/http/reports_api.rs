//! `GET /reports/summary` (contract section 3): the metrics of docs/reporting.md over calls
//! started in `[from, to)`.

#![allow(unused_qualifications)] // utoipa's path macro expands qualified paths

use actix_web::{HttpRequest, HttpResponse, get, web};
use call_center::reports::{ReportError, Summary, summary};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Admin;
use super::json;
use super::problem::{ApiError, Problem};
use super::state::Reports;

/// `GET /reports/summary` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start (inclusive): RFC 3339 (a plain `YYYY-MM-DD` means midnight UTC). Default: 24
    /// hours before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 (a plain `YYYY-MM-DD` means midnight UTC). Default: now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
}

/// Reads an RFC 3339 instant or a `YYYY-MM-DD` date (midnight UTC).
#[must_use]
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

fn field(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|s| {
        parse_instant(s).ok_or_else(|| ApiError::Unprocessable {
            field: name.to_owned(),
            message: "must be RFC 3339 or YYYY-MM-DD".into(),
        })
    })
    .transpose()
}

/// Contact-center metrics over a time range.
#[utoipa::path(
    tag = "reports",
    params(SummaryQuery),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The summary", body = Summary),
        (status = 401, description = "No admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid date", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentication attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/reports/summary")]
pub async fn summary_handler(
    _: Admin,
    req: HttpRequest,
    reports: web::Data<Reports>,
) -> Result<HttpResponse, ApiError> {
    let q: SummaryQuery = json::query(&req)?;
    let to = field("to", q.to.as_deref())?.unwrap_or_else(|| reports.clock.now());
    let from = field("from", q.from.as_deref())?.unwrap_or(to - chrono::Duration::hours(24));
    let sl = crate::config::seconds(reports.service_level);
    let s = summary(reports.store.as_ref(), from, to, sl)
        .await
        .map_err(|ReportError::Unexpected(e)| ApiError::Internal(e))?;
    Ok(HttpResponse::Ok().json(s))
}
