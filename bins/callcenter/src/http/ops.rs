//! Operations endpoints, outside `/api/call-center` and without auth: liveness, readiness,
//! metrics. Also the OpenAPI document.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::metrics::Metrics;
use super::problem::ApiError;
use super::state::Ops;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// How long readiness waits for the store.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: 200 when the store answers (within [`READINESS_TIMEOUT`]), else 503. Says
/// so loudly when webhook signature verification is off.
pub async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let ping = tokio::time::timeout(READINESS_TIMEOUT, ops.store.ping()).await;
    let store_ok = matches!(ping, Ok(Ok(())));
    let verification = if ops.verifying { "on" } else { "OFF" };
    let mut body = json!({
        "status": if store_ok { "ready" } else { "not ready" },
        "store": { "backend": ops.store.backend().as_str(), "ok": store_ok },
        "signature_verification": verification,
    });
    if !ops.verifying {
        body["warning"] = json!(
            "Telnyx webhook signature verification is OFF (TELNYX_VERIFY_SIGNATURES=false): anyone can drive calls. Local work only."
        );
    }
    if store_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(metrics.render())
}

/// `GET /api/call-center/openapi.json`: the OpenAPI 3.1 document of the JSON API.
pub async fn openapi(ops: web::Data<Ops>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(ops.openapi_json.clone())
}

/// A documented path and the methods it answers, from the OpenAPI document.
#[derive(Debug, Clone)]
pub struct DocumentedRoute {
    segments: Vec<String>,
    methods: Vec<String>,
}

/// The routes of the OpenAPI document.
#[must_use]
pub fn documented_routes(doc: &utoipa::openapi::OpenApi) -> Vec<DocumentedRoute> {
    let json = serde_json::to_value(doc).unwrap_or_default();
    let Some(paths) = json.get("paths").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, ops)| DocumentedRoute {
            segments: path.split('/').map(str::to_owned).collect(),
            methods: ops
                .as_object()
                .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                .unwrap_or_default(),
        })
        .collect()
}

fn matches(route: &DocumentedRoute, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == route.segments.len()
        && route
            .segments
            .iter()
            .zip(&parts)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// Any unmatched request: 405 with `Allow` when the path is documented (another method was
/// asked for), else 404; problem+json either way.
pub async fn not_found(
    req: actix_web::HttpRequest,
    ops: web::Data<Ops>,
) -> Result<HttpResponse, ApiError> {
    let matching: Vec<&DocumentedRoute> = ops
        .documented_routes
        .iter()
        .filter(|r| matches(r, req.path()))
        .collect();
    // A literal path wins over a template it also fits (`/agents/list` over `/agents/{agent_id}`).
    let literal: Vec<&DocumentedRoute> = matching
        .iter()
        .copied()
        .filter(|r| !r.segments.iter().any(|s| s.starts_with('{')))
        .collect();
    let chosen = if literal.is_empty() {
        matching
    } else {
        literal
    };
    let mut allowed: Vec<&str> = chosen
        .iter()
        .flat_map(|r| r.methods.iter().map(String::as_str))
        .collect();
    if allowed.is_empty() {
        return Err(ApiError::NotFound("resource"));
    }
    allowed.sort_unstable();
    allowed.dedup();
    Err(ApiError::MethodNotAllowed {
        allow: allowed.join(", "),
    })
}
