//! The seven Telnyx-facing endpoints (contract section 1). Each accepts GET (query string)
//! and POST (form body; `/outbound/event` also Call Control JSON). The signature is checked
//! on the raw body before anything is parsed. Instruction endpoints never answer 5xx: when
//! anything fails they answer the fallback document.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use call_center::{
    Endpoint, Event, EventError, Params, Receipt, Reply, SignedRequest, from_call_control,
    from_params,
};
use texml::Response;

use super::auth::client_ip;
use super::problem::ApiError;
use super::state::{Auth, Webhooks};
use crate::signature::fingerprint;

/// Registers the endpoints under the current scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let endpoints = [
        ("/inbound", Endpoint::Inbound),
        ("/dial-agents", Endpoint::DialAgents),
        ("/retry-dial", Endpoint::RetryDial),
        ("/voicemail", Endpoint::Voicemail),
        ("/voicemail/callback", Endpoint::VoicemailCallback),
        ("/outbound/event", Endpoint::OutboundEvent),
        ("/events", Endpoint::Events),
    ];
    for (path, endpoint) in endpoints {
        let handler = move |req: HttpRequest,
                            body: web::Bytes,
                            hooks: web::Data<Webhooks>,
                            auth: web::Data<Auth>| async move {
            webhook(&req, &body, &hooks, &auth, endpoint).await
        };
        cfg.service(
            web::resource(path)
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

/// Verifies the signature (unless switched off) and returns the request's receipt.
fn verify(
    req: &HttpRequest,
    body: &[u8],
    hooks: &Webhooks,
    auth: &Auth,
) -> Result<Option<SignedRequest>, ApiError> {
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
        Ok(verified) => {
            // Telnyx's signature does not bind the URL, and two different requests can share
            // a body and a second (a redirect answered by a redirect). So a signature is
            // remembered per method and path; on the same path it must come with the same
            // query string and body again, else it is a replay with another query: 401.
            let key = format!("{}:{} {}", verified.key, req.method(), req.path());
            let fp = fingerprint(req.method().as_str(), req.path(), req.query_string(), body);
            Ok(Some(SignedRequest {
                receipt: Receipt {
                    key,
                    fingerprint: fp,
                },
                covers_parameters: req.method() == actix_web::http::Method::POST,
            }))
        }
        Err(reason) => {
            auth.limiter.fail(ip);
            tracing::warn!(%reason, "webhook refused");
            Err(ApiError::Unauthorized)
        }
    }
}

fn pairs(encoded: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(encoded)
        .map_err(|_| ApiError::BadRequest("the parameters are not valid form encoding".into()))
}

fn attempt(req: &HttpRequest) -> Option<i32> {
    let query = pairs(req.query_string().as_bytes()).ok()?;
    query
        .iter()
        .find(|(k, _)| k == "attempt")
        .and_then(|(_, v)| v.parse().ok())
        .filter(|n| (1..=100).contains(n))
}

fn is_json(req: &HttpRequest, body: &[u8]) -> bool {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    declared || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads the event; `Ok(None)` for something to acknowledge and ignore.
fn read_event(
    req: &HttpRequest,
    body: &[u8],
    endpoint: Endpoint,
) -> Result<Option<Event>, ReadError> {
    let attempt = attempt(req);
    let is_post = req.method() == actix_web::http::Method::POST;
    if is_post && endpoint == Endpoint::OutboundEvent && is_json(req, body) {
        return from_call_control(body, attempt).map_err(ReadError::Event);
    }
    let raw = if is_post {
        body
    } else {
        req.query_string().as_bytes()
    };
    let params = Params::new(pairs(raw).map_err(ReadError::Api)?);
    from_params(endpoint, &params, attempt).map_err(ReadError::Event)
}

enum ReadError {
    Api(ApiError),
    Event(EventError),
}

async fn webhook(
    req: &HttpRequest,
    body: &[u8],
    hooks: &Webhooks,
    auth: &Auth,
    endpoint: Endpoint,
) -> Result<HttpResponse, ApiError> {
    let receipt = verify(req, body, hooks, auth)?;
    let event = match read_event(req, body, endpoint) {
        Ok(Some(event)) => event,
        Ok(None) => return Ok(ack()),
        Err(ReadError::Api(e)) => return Err(e),
        Err(ReadError::Event(e)) if endpoint.is_instruction() => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "instruction request without usable ids; answering the fallback document");
            return Ok(xml(&hooks.flow.fallback()));
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
            Ok(xml(&hooks.flow.fallback()))
        }
        Err(e) => {
            tracing::error!(call_sid = event.call_sid().unwrap_or("-"), error = %crate::telemetry::chain(&e), "callback not stored yet; held for retry");
            hooks.retries.hold(hooks.flow.clone(), event, receipt);
            Ok(ack())
        }
    }
}
