//! Who may call: the admin bearer token (compared in constant time), agents' heartbeat
//! tokens, and a per-address limit on repeated authentication failures.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use agents::Caller;
use futures::future::{LocalBoxFuture, Ready, ready};
use ipnet::IpNet;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::ApiError;
use super::state::Auth;
use crate::config::Secret;

/// Compares a presented token with the admin token without leaking where they differ (both
/// sides are hashed first, so lengths do not leak either).
#[must_use]
pub fn is_admin_token(presented: &str, admin: &Secret) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(admin.expose().as_bytes());
    a.ct_eq(&b).into()
}

/// The bearer token of the request, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The client address used for the failure limit: the peer's, unless the peer is one of
/// the `trusted` proxies; then the rightmost `X-Forwarded-For` hop that is not itself a
/// trusted proxy (hops further left were written by whoever sent the request, so they are
/// never taken). When every hop is trusted, the leftmost.
#[must_use]
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !peer.as_ref().is_some_and(is_trusted) {
        return peer;
    }
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Not an address: whoever wrote it is past the last hop that can be trusted.
            return client;
        };
        client = Some(ip);
        if !is_trusted(&ip) {
            return client;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Counts failed authentications per client address in a fixed window, and refuses an
/// address over the limit (429) only for a request that fails again: valid credentials
/// always pass. Kept in memory per instance: it is a brake on guessing, not state that
/// matters. A bounded concurrent map: at most [`FailureLimiter::CAPACITY`] addresses, the
/// least used forgotten first.
pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    failures: Cache<IpAddr, (u32, Instant)>,
}

impl std::fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limit", &self.limit)
            .field("addresses", &self.failures.len())
            .finish()
    }
}

impl FailureLimiter {
    /// Addresses remembered at most.
    pub const CAPACITY: usize = 100_000;

    /// At most `limit` failures per address per minute.
    #[must_use]
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            window: Duration::from_secs(60),
            failures: Cache::new(Self::CAPACITY),
        }
    }

    /// Counts one failure of `ip`: 429 when the address is over the limit, else 401.
    #[must_use]
    pub fn refuse(&self, ip: Option<IpAddr>) -> ApiError {
        let Some(ip) = ip else {
            return ApiError::Unauthorized;
        };
        let (count, since) = match self.failures.get(&ip) {
            Some((count, since)) if since.elapsed() < self.window => (count + 1, since),
            _ => (1, Instant::now()),
        };
        self.failures.insert(ip, (count, since));
        if count > self.limit {
            let retry_after = self.window.saturating_sub(since.elapsed()).as_secs().max(1);
            ApiError::TooManyRequests { retry_after }
        } else {
            ApiError::Unauthorized
        }
    }
}

impl Auth {
    /// Counts a failed authentication of `req`: 429 over the limit, else 401.
    #[must_use]
    pub fn refuse(&self, req: &HttpRequest) -> ApiError {
        self.limiter.refuse(client_ip(req, &self.trusted_proxies))
    }

    /// Checks the admin token of `req`.
    ///
    /// # Errors
    /// 401 without the admin token (429 after too many failures from the address).
    pub fn admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        match bearer(req) {
            Some(token) if is_admin_token(token, &self.admin_token) => Ok(()),
            _ => Err(self.refuse(req)),
        }
    }

    /// The admin token or an agent's heartbeat token.
    ///
    /// # Errors
    /// 401 for anything else (429 after too many failures from the address).
    pub async fn admin_or_agent(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        let Some(token) = bearer(req) else {
            return Err(self.refuse(req));
        };
        if is_admin_token(token, &self.admin_token) {
            return Ok(Caller::Admin);
        }
        match self.agents.agent_for_token(token).await? {
            Some(id) => Ok(Caller::Agent(id)),
            None => Err(self.refuse(req)),
        }
    }
}

fn auth_of(req: &HttpRequest) -> Result<web::Data<Auth>, ApiError> {
    req.app_data::<web::Data<Auth>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("authentication is not configured")))
}

/// Proof that the request carries the admin token: an admin handler takes it as an
/// argument, so it cannot run without authentication (and `tests/tests/security.rs` asks
/// every documented operation without a token).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(auth_of(req).and_then(|auth| auth.admin(req)).map(|()| Self))
    }
}

/// Who called: the admin token, or an agent's heartbeat token.
#[derive(Debug, Clone, Copy)]
pub struct AdminOrAgent(pub Caller);

impl FromRequest for AdminOrAgent {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = auth_of(&req)?;
            auth.admin_or_agent(&req).await.map(Self)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_comparison_matches_only_the_token() {
        let admin = Secret::new("correct-horse-battery-staple");
        assert!(is_admin_token("correct-horse-battery-staple", &admin));
        assert!(!is_admin_token("correct-horse-battery-stapl", &admin));
        assert!(!is_admin_token("", &admin));
    }

    #[test]
    fn the_limiter_refuses_failures_over_the_limit_per_address() {
        let limiter = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(matches!(limiter.refuse(Some(a)), ApiError::Unauthorized));
        }
        assert!(matches!(
            limiter.refuse(Some(a)),
            ApiError::TooManyRequests { .. }
        ));
        assert!(matches!(limiter.refuse(Some(b)), ApiError::Unauthorized));
    }

    #[test]
    fn the_limiter_map_stays_bounded() {
        let limiter = FailureLimiter::new(3);
        for n in 0..(FailureLimiter::CAPACITY as u32 + 5_000) {
            let _ = limiter.refuse(Some(IpAddr::from(n.to_be_bytes())));
        }
        assert!(limiter.failures.len() <= FailureLimiter::CAPACITY);
    }

    fn from(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for f in forwarded {
            req = req.append_header(("x-forwarded-for", *f));
        }
        req.to_http_request()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not from a trusted proxy: the header is the client's own writing.
        assert_eq!(
            client_ip(&from("203.0.113.9:1234", &["1.1.1.1"]), &proxies),
            ip("203.0.113.9")
        );
        // Through two proxies; the leftmost entry was written by the client.
        assert_eq!(
            client_ip(
                &from("10.0.0.2:1234", &["6.6.6.6, 198.51.100.7", "10.0.0.1"]),
                &proxies
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(&from("10.0.0.2:1234", &["198.51.100.7:5060"]), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(&from("10.0.0.2:1234", &["junk, 10.0.0.1"]), &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(&from("10.0.0.2:1234", &[]), &proxies),
            ip("10.0.0.2")
        );
        // No trusted proxies: never read.
        assert_eq!(
            client_ip(&from("10.0.0.2:1234", &["198.51.100.7"]), &[]),
            ip("10.0.0.2")
        );
    }
}
