//! One error type for the HTTP layer, rendered as `application/problem+json` (RFC 9457) with
//! the request id. 5xx bodies are fixed; causes go to the log only.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;

use super::context;

/// The problem content type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything an endpoint can answer besides success.
#[derive(Debug, Error)]
pub enum ApiError {
    /// 400: malformed JSON, form data or query.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials (deliberately vague).
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// 403: valid credentials that may not do this.
    #[error("these credentials may not act on this resource")]
    Forbidden,
    /// 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405 on a path that answers other methods.
    #[error("method not allowed; this resource answers {allow}")]
    MethodNotAllowed {
        /// The methods the path answers.
        allow: String,
    },
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("the request body is larger than the configured limit")]
    PayloadTooLarge,
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid.
    #[error("{field}: {message}")]
    Unprocessable {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// 429: too many failed authentication attempts from this address.
    #[error("too many failed authentication attempts; try again later")]
    TooManyRequests {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// 503.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
/// An RFC 9457 problem.
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The request id (also in `x-request-id`).
    pub request_id: String,
    /// The invalid field, for 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn slug(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Unprocessable { .. } => "invalid-field",
            Self::TooManyRequests { .. } => "too-many-requests",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// A problem+json response for `status` with `detail`.
#[must_use]
pub fn problem_response(
    status: StatusCode,
    slug: &str,
    detail: String,
    field: Option<String>,
) -> HttpResponse {
    let body = Problem {
        kind: format!("/problems/{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        request_id: context::current_request_id().unwrap_or_default(),
        field,
    };
    let json = serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned());
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)))
        .body(json)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if let Self::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let field = match self {
            Self::Unprocessable { field, .. } => Some(field.clone()),
            _ => None,
        };
        let mut response =
            problem_response(self.status_code(), self.slug(), self.to_string(), field);
        if let Self::TooManyRequests { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Self::MethodNotAllowed { allow } = self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, v);
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<agents::AgentError> for ApiError {
    fn from(e: agents::AgentError) -> Self {
        match e {
            agents::AgentError::Invalid { field, message } => Self::Unprocessable {
                field: field.to_owned(),
                message,
            },
            agents::AgentError::NotFound => Self::NotFound("agent"),
            agents::AgentError::DuplicateSipUri => {
                Self::Conflict("an agent with this sip_uri is already registered".into())
            }
            agents::AgentError::Forbidden => Self::Forbidden,
            agents::AgentError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}

impl From<call_center::FlowError> for ApiError {
    fn from(e: call_center::FlowError) -> Self {
        match e {
            call_center::FlowError::Replay => Self::Unauthorized,
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<audit::AuditError> for ApiError {
    fn from(e: audit::AuditError) -> Self {
        match e {
            audit::AuditError::Unexpected(cause) => Self::Internal(cause),
        }
    }
}
