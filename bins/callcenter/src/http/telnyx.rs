//! The seven Telnyx-facing endpoints (contract section 1). Each accepts GET (query string)
//! and POST (form body; `/outbound/event` also Call Control JSON). Instruction endpoints
//! never answer 5xx: when anything fails they answer the fallback document.
//!
//! What is trusted, and why (docs/security.md has the whole argument):
//! - Telnyx's Ed25519 signature covers `timestamp|body`, checked on the raw body first.
//! - The URL is not covered by it: the parameters the server wrote into its own URLs are
//!   trusted only under the server's MAC ([`call_center::UrlKeys`]); the portal URLs take
//!   nothing from the query.
//! - A signature is remembered (the receipt) with what it was matched to: the endpoint the
//!   router resolved (never the raw, `%XX`-encoded path) and the signed URL parameters. The
//!   same signed body on another server-written URL is another legitimate request; a
//!   byte-identical redelivery is a duplicate. A GET's signature covers no parameters at
//!   all, so it is good for one request: the same signature with another endpoint or query
//!   is refused.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use call_center::{
    Endpoint, Event, EventError, Params, Receipt, Reply, Signed, SignedRequest, UrlError,
    from_call_control, from_params,
};
use texml::Response;

use super::auth::client_ip;
use super::problem::ApiError;
use super::state::{Auth, Webhooks};
use crate::signature::{Verified, fingerprint};

/// Registers the endpoints under the current scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for endpoint in Endpoint::ALL {
        let handler = move |req: HttpRequest,
                            body: web::Bytes,
                            hooks: web::Data<Webhooks>,
                            auth: web::Data<Auth>| async move {
            webhook(&req, &body, &hooks, &auth, endpoint).await
        };
        cfg.service(
            web::resource(endpoint.path())
                .route(web::get().to(handler))
                .route(web::post().to(handler)),
        );
    }
}

fn xml(doc: &Response) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, texml::CONTENT_TYPE))
        .body(doc.render())
}

fn ack() -> HttpResponse {
    xml(&Response::new())
}

fn pairs(encoded: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(encoded)
        .map_err(|_| ApiError::BadRequest("the parameters are not valid form encoding".into()))
}

/// Checks Telnyx's signature (unless verification is off).
fn verify_signature(
    req: &HttpRequest,
    body: &[u8],
    hooks: &Webhooks,
    auth: &Auth,
) -> Result<Option<Verified>, ApiError> {
    let Some(verifier) = &hooks.verifier else {
        return Ok(None);
    };
    let ip = client_ip(req, auth.trust_forwarded_for);
    auth.limiter.check(ip)?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let now = hooks.clock.now().timestamp();
    match verifier.verify(
        header("telnyx-signature-ed25519"),
        header("telnyx-timestamp"),
        body,
        now,
    ) {
        Ok(verified) => Ok(Some(verified)),
        Err(reason) => {
            auth.limiter.fail(ip);
            tracing::warn!(%reason, "webhook refused");
            Err(ApiError::Unauthorized)
        }
    }
}

/// The receipt that makes a signature's second use a duplicate (POST: per endpoint and
/// signed URL parameters) or a refused replay (GET: once, whatever the endpoint and query).
fn receipt(
    req: &HttpRequest,
    verified: &Verified,
    endpoint: Endpoint,
    signed: Option<&Signed>,
) -> SignedRequest {
    if req.method() == Method::GET {
        return SignedRequest {
            receipt: Receipt {
                key: verified.key.clone(),
                fingerprint: fingerprint("GET", endpoint.path(), req.query_string(), b""),
            },
            covers_parameters: false,
        };
    }
    let matched = signed.map_or_else(
        || "-".to_owned(),
        |s| format!("{}:{:?}:{:?}:{:?}", s.call, s.round, s.agent, s.kind),
    );
    SignedRequest {
        receipt: Receipt {
            key: format!("{}:{}:{matched}", verified.key, endpoint.path()),
            fingerprint: String::new(),
        },
        covers_parameters: true,
    }
}

fn is_json(req: &HttpRequest, body: &[u8]) -> bool {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    declared || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The request's parameters: the body of a POST, the query of a GET (which must have no
/// body: its signature would cover that body, not the query the server reads).
fn params(req: &HttpRequest, body: &[u8]) -> Result<Params, ApiError> {
    if req.method() == Method::GET {
        if !body.is_empty() {
            return Err(ApiError::BadRequest(
                "a GET webhook carries its parameters in the query, not a body".into(),
            ));
        }
        return Ok(Params::new(pairs(req.query_string().as_bytes())?));
    }
    Ok(Params::new(pairs(body)?))
}

/// Reads the event; `Ok(None)` for something to acknowledge and ignore.
fn read_event(
    req: &HttpRequest,
    body: &[u8],
    endpoint: Endpoint,
    signed: Option<&Signed>,
) -> Result<Option<Event>, ReadError> {
    let is_post = req.method() == Method::POST;
    if is_post && endpoint == Endpoint::OutboundEvent && is_json(req, body) {
        return from_call_control(body).map_err(ReadError::Event);
    }
    let params = params(req, body).map_err(ReadError::Api)?;
    from_params(endpoint, &params, signed).map_err(ReadError::Event)
}

enum ReadError {
    Api(ApiError),
    Event(EventError),
}

/// What the URL's own parameters say, under the server's MAC. On a callback a URL the
/// server did not write is refused; on an instruction endpoint its parameters are ignored
/// (the answer then follows the call's real state).
fn signed_params(
    req: &HttpRequest,
    hooks: &Webhooks,
    endpoint: Endpoint,
) -> Result<Option<Signed>, ApiError> {
    if endpoint == Endpoint::Inbound {
        return Ok(None);
    }
    let query = pairs(req.query_string().as_bytes())?;
    match hooks
        .flow
        .urls()
        .keys()
        .verify(req.method().as_str(), endpoint, &query)
    {
        Ok(signed) => Ok(signed),
        Err(e @ (UrlError::BadMac | UrlError::Malformed(_))) if endpoint.is_instruction() => {
            tracing::warn!(error = %e, path = endpoint.path(), "unsigned URL parameters ignored");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, path = endpoint.path(), "callback refused");
            Err(ApiError::Unauthorized)
        }
    }
}

fn call_sid_of(req: &HttpRequest, body: &[u8]) -> Option<String> {
    let params = params(req, body).ok()?;
    params.get("CallSid").map(str::to_owned)
}

async fn webhook(
    req: &HttpRequest,
    body: &[u8],
    hooks: &Webhooks,
    auth: &Auth,
    endpoint: Endpoint,
) -> Result<HttpResponse, ApiError> {
    let verified = verify_signature(req, body, hooks, auth)?;
    let signed = signed_params(req, hooks, endpoint)?;
    let receipt = verified.map(|v| receipt(req, &v, endpoint, signed.as_ref()));
    let event = match read_event(req, body, endpoint, signed.as_ref()) {
        Ok(Some(event)) => event,
        Ok(None) => {
            tracing::debug!(path = endpoint.path(), "nothing to do; acknowledged");
            return Ok(ack());
        }
        Err(ReadError::Api(e)) => return Err(e),
        Err(ReadError::Event(EventError::Unsigned)) => {
            tracing::warn!(
                path = endpoint.path(),
                "callback without the server's URL signature"
            );
            return Err(ApiError::Unauthorized);
        }
        Err(ReadError::Event(e)) if endpoint.is_instruction() => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "instruction request without usable ids; answering the fallback document");
            let call =
                call_sid_of(req, body).filter(|c| call_center::check_sid("CallSid", c).is_ok());
            return Ok(xml(&hooks.flow.fallback(call.as_deref())));
        }
        Err(ReadError::Event(e)) => return Err(ApiError::BadRequest(e.to_string())),
    };
    match hooks.flow.handle(&event, receipt.clone()).await {
        Ok(handled) => Ok(match handled.reply {
            Reply::Document(doc) => xml(&doc),
            Reply::Ack => ack(),
        }),
        Err(call_center::FlowError::Replay) => {
            tracing::warn!(
                call_sid = event.call_sid().unwrap_or("-"),
                "signature replayed for a different request"
            );
            Err(ApiError::Unauthorized)
        }
        Err(e) if endpoint.is_instruction() => {
            tracing::error!(call_sid = event.call_sid().unwrap_or("-"), error = %crate::telemetry::chain(&e), "answering the fallback document");
            Ok(xml(&hooks.flow.fallback(event.call_sid())))
        }
        Err(e) => {
            tracing::error!(call_sid = event.call_sid().unwrap_or("-"), error = %crate::telemetry::chain(&e), "callback not stored yet; held for retry");
            hooks.retries.hold(hooks.flow.clone(), event, receipt);
            Ok(ack())
        }
    }
}
