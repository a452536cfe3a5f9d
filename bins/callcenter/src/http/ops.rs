//! Operations endpoints, outside `/api/call-center` and without auth: liveness, readiness,
//! metrics. Also the OpenAPI document.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::problem::ApiError;
use super::state::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the store answers (within 2 s), else 503. Says so loudly when
/// webhook signature verification is off.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let store_ok = matches!(ping, Ok(Ok(())));
    let verification = if state.verifier.is_some() {
        "on"
    } else {
        "OFF"
    };
    let mut body = json!({
        "status": if store_ok { "ready" } else { "not ready" },
        "store": { "backend": state.store.backend().as_str(), "ok": store_ok },
        "signature_verification": verification,
    });
    if state.verifier.is_none() {
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
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(state.metrics.render())
}

/// `GET /api/call-center/openapi.json`: the OpenAPI 3.1 document of the JSON API.
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(state.openapi_json.clone())
}

/// Any unknown route: 404 problem+json.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("resource"))
}
