//! Per-request context: a request id (echoed in `x-request-id`, on every log line of the
//! request through its span, and in problem bodies), the access log line, metrics, and the
//! safety net that turns any non-problem error response into problem+json.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{Error, HttpMessage, web};
use tracing::Instrument;

use super::metrics::Metrics;
use super::problem::{PROBLEM_JSON, problem_response};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id, stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The id of the request being handled, when called from within one.
#[must_use]
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Accept a caller's id if it is short and plain, else make one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The middleware (outermost): id, span, metrics, access log, `x-request-id` header.
///
/// # Errors
/// Passes on the inner service's error.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let result = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut response = result?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    if let Some(m) = metrics {
        m.observe(&route, response.request().method(), status, elapsed);
    }
    span.in_scope(|| {
        if route == "/healthz" || route == "/metrics" {
            tracing::debug!(
                status,
                route,
                elapsed_ms = elapsed * 1000.0,
                "request completed"
            );
        } else {
            tracing::info!(
                status,
                route,
                elapsed_ms = elapsed * 1000.0,
                "request completed"
            );
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    Ok(response)
}

/// Error responses that are not problem+json yet (extractor errors, 405, actix internals)
/// are rewritten as problem+json with the same status; the browser pages' own HTML
/// answers (a refused sign-in or form) are left as they are.
///
/// # Errors
/// Never; the signature is actix's.
pub fn problem_fallback<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let answered = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("text/html"));
    if answered {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = match status.as_u16() {
        400 => "the request could not be read",
        404 => "no such resource",
        405 => "method not allowed on this resource",
        413 => "the request body is larger than the configured limit",
        415 => "unsupported content type",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let slug = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "-");
    let (req, _) = res.into_parts();
    let body: ServiceResponse<BoxBody> = ServiceResponse::new(
        req,
        problem_response(status, &slug, detail.to_owned(), None),
    );
    Ok(ErrorHandlerResponse::Response(body.map_into_right_body()))
}
