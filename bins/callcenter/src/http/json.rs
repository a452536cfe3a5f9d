//! Reading JSON bodies and query strings with the contract's status codes: malformed → 400,
//! well-formed but invalid → 422 naming the field, wrong content type → 415.

use actix_web::HttpRequest;
use actix_web::http::header;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Parses a JSON body into `T`.
///
/// # Errors
/// 415 for a non-JSON content type, 400 for malformed JSON, 422 for a body of the wrong
/// shape.
pub fn body<T: DeserializeOwned>(req: &HttpRequest, bytes: &[u8]) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !media.is_empty() && media != "application/json" && !media.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected application/json, got {media}"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::Unprocessable {
            field: "body".into(),
            message: "must be a JSON object".into(),
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names a missing field only in its message: "missing field `name`".
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (missing, path.as_str()) {
            (Some(name), _) => name.to_owned(),
            (None, "" | ".") => "body".to_owned(),
            (None, p) => p.to_owned(),
        };
        ApiError::Unprocessable { field, message }
    })
}

/// Parses the query string into `T`.
///
/// # Errors
/// 422 naming the problem.
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::Unprocessable {
        field: "query".into(),
        message: e.to_string(),
    })
}
