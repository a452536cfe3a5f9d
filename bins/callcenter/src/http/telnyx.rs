//! The seven Telnyx-facing endpoints (contract section 1). Each accepts GET (query string)
//! and POST (form body; `/outbound/event` also Call Control JSON). The flow gets
//! `WEBHOOK_DEADLINE_MS`: when the store fails or the deadline passes, an instruction
//! endpoint answers the fallback document (never a 5xx, never dead air) and a status
//! callback is kept in the on-disk spool and acknowledged (503 only when even the spool
//! cannot keep it). What a request reports is kept the same way even when its answer was
//! the fallback ([`call_center::Event::is_report`]).
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
    Endpoint, EventError, FlowError, Params, Receipt, Reply, Signed, SignedRequest, UrlError,
};
use texml::Response;

use super::problem::ApiError;
use super::state::{Auth, Webhooks};
use crate::signature::{Verified, fingerprint};
use crate::spool::{Body, Spooled};

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
            tracing::warn!(%reason, "webhook refused");
            Err(auth.refuse(req))
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

/// What the request carries: the form parameters (the body of a POST, the query of a GET,
/// which must have no body: its signature would cover that body, not the query the server
/// reads), or a Call Control JSON body on `/outbound/event`.
fn read_body(req: &HttpRequest, body: &[u8], endpoint: Endpoint) -> Result<Body, ApiError> {
    if req.method() == Method::GET {
        if !body.is_empty() {
            return Err(ApiError::BadRequest(
                "a GET webhook carries its parameters in the query, not a body".into(),
            ));
        }
        return Ok(Body::Form(pairs(req.query_string().as_bytes())?));
    }
    if endpoint == Endpoint::OutboundEvent && is_json(req, body) {
        let json = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("the JSON body is not UTF-8".into()))?;
        return Ok(Body::CallControl(json));
    }
    Ok(Body::Form(pairs(body)?))
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

fn call_sid_of(body: &Body) -> Option<String> {
    let Body::Form(pairs) = body else {
        return None;
    };
    let sid = Params::new(pairs.clone()).get("CallSid")?.to_owned();
    call_center::check_sid("CallSid", &sid).ok()
}

/// Why the flow did not answer.
enum Failure {
    Store(FlowError),
    Deadline,
}

async fn webhook(
    req: &HttpRequest,
    body: &[u8],
    hooks: &Webhooks,
    auth: &Auth,
    endpoint: Endpoint,
) -> Result<HttpResponse, ApiError> {
    let received_at = hooks.clock.now();
    let verified = verify_signature(req, body, hooks, auth)?;
    let signed = signed_params(req, hooks, endpoint)?;
    let receipt = verified.map(|v| receipt(req, &v, endpoint, signed.as_ref()));
    let input = read_body(req, body, endpoint)?;
    let event = match input.event(endpoint, signed.as_ref()) {
        Ok(Some(event)) => event,
        Ok(None) => {
            tracing::debug!(path = endpoint.path(), "nothing to do; acknowledged");
            return Ok(ack());
        }
        Err(EventError::Unsigned) => {
            tracing::warn!(
                path = endpoint.path(),
                "callback without the server's URL signature"
            );
            return Err(ApiError::Unauthorized);
        }
        Err(e) if endpoint.is_instruction() => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "instruction request without usable ids; answering the fallback document");
            return Ok(fallback(
                hooks,
                call_sid_of(&input).as_deref(),
                "unreadable",
            ));
        }
        Err(e) => return Err(ApiError::BadRequest(e.to_string())),
    };
    let work = hooks.flow.handle_at(&event, receipt.clone(), received_at);
    let failure = match tokio::time::timeout(hooks.deadline, work).await {
        Ok(Ok(handled)) => {
            return Ok(match handled.reply {
                Reply::Document(doc) => xml(&doc),
                Reply::Ack => ack(),
            });
        }
        Ok(Err(FlowError::Replay)) => {
            tracing::warn!(
                call_sid = event.call_sid().unwrap_or("-"),
                "signature replayed for a different request"
            );
            return Err(ApiError::Unauthorized);
        }
        Ok(Err(e)) => Failure::Store(e),
        Err(_) => Failure::Deadline,
    };
    let call_sid = event.call_sid().unwrap_or("-");
    let next = if endpoint.is_instruction() {
        "answering the fallback document"
    } else {
        "keeping it in the spool"
    };
    let reason = match &failure {
        Failure::Store(e) => {
            tracing::error!(call_sid, error = %crate::telemetry::chain(e), path = endpoint.path(), "webhook not stored; {next}");
            "store"
        }
        Failure::Deadline => {
            tracing::error!(
                call_sid,
                deadline_ms = hooks.deadline.as_millis(),
                path = endpoint.path(),
                "webhook not stored within the deadline; {next}"
            );
            "deadline"
        }
    };
    // What the request reports is kept for later; the answer cannot wait for it.
    let kept = event.is_report() && {
        let entry = Spooled {
            received_at,
            endpoint,
            body: input,
            signed,
            receipt,
        };
        hooks.spool.keep(&entry).await.is_ok()
    };
    if endpoint.is_instruction() {
        return Ok(fallback(hooks, event.call_sid(), reason));
    }
    if kept {
        Ok(ack())
    } else {
        Err(ApiError::Unavailable(
            "the callback could not be stored nor kept; send it again".into(),
        ))
    }
}

/// The fallback document, counted by `reason`.
fn fallback(hooks: &Webhooks, call: Option<&str>, reason: &str) -> HttpResponse {
    hooks.metrics.fallbacks.with_label_values(&[reason]).inc();
    xml(&hooks.flow.fallback(call))
}
