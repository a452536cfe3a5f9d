//! Field schemas built from the same constants the validators use, so the OpenAPI
//! document is exactly as strict as the server.

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Object, RefOr, Schema};

/// Names and reasons: not blank, no control characters (ECMA/Python regex).
pub const NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

fn text(max: usize, pattern: &str, nullable: bool) -> Object {
    let ty = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .build()
}

/// An agent's name.
pub fn name() -> impl Into<RefOr<Schema>> {
    text(100, NAME_PATTERN, false)
}

/// An agent's name, optional.
pub fn optional_name() -> impl Into<RefOr<Schema>> {
    text(100, NAME_PATTERN, true)
}

/// A SIP URI.
pub fn sip_uri() -> impl Into<RefOr<Schema>> {
    text(256, agents::SIP_URI_PATTERN, false)
}

/// A SIP URI, optional.
pub fn optional_sip_uri() -> impl Into<RefOr<Schema>> {
    text(256, agents::SIP_URI_PATTERN, true)
}

/// A redaction reason.
pub fn reason() -> impl Into<RefOr<Schema>> {
    text(500, NAME_PATTERN, false)
}
