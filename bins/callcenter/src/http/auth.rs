//! Who may call: the admin bearer token (compared in constant time), agents' heartbeat
//! tokens, and a per-address limit on repeated authentication failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use agents::Caller;
use futures::future::{LocalBoxFuture, Ready, ready};
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

/// The client address used for the failure limit.
#[must_use]
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    req.peer_addr().map(|a| a.ip())
}

/// Counts authentication failures per address in a fixed window. Kept in memory per
/// instance: it is a brake on guessing, not state that matters.
#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    /// At most `limit` failures per address per minute.
    #[must_use]
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            window: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses an address over the limit.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`].
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&ip) {
            Some((count, since)) if *count >= self.limit && since.elapsed() < self.window => {
                let retry_after = self.window.saturating_sub(since.elapsed()).as_secs().max(1);
                Err(ApiError::TooManyRequests { retry_after })
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure.
    pub fn fail(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

impl Auth {
    /// Checks the admin token of `req`.
    ///
    /// # Errors
    /// 429 over the failure limit, 401 without the admin token.
    pub fn admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let ip = client_ip(req, self.trust_forwarded_for);
        self.limiter.check(ip)?;
        match bearer(req) {
            Some(token) if is_admin_token(token, &self.admin_token) => Ok(()),
            _ => {
                self.limiter.fail(ip);
                Err(ApiError::Unauthorized)
            }
        }
    }

    /// The admin token or an agent's heartbeat token.
    ///
    /// # Errors
    /// 429 over the failure limit, 401 for anything else.
    pub async fn admin_or_agent(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        let ip = client_ip(req, self.trust_forwarded_for);
        self.limiter.check(ip)?;
        let Some(token) = bearer(req) else {
            self.limiter.fail(ip);
            return Err(ApiError::Unauthorized);
        };
        if is_admin_token(token, &self.admin_token) {
            return Ok(Caller::Admin);
        }
        match self.agents.agent_for_token(token).await? {
            Some(id) => Ok(Caller::Agent(id)),
            None => {
                self.limiter.fail(ip);
                Err(ApiError::Unauthorized)
            }
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
    fn the_limiter_blocks_after_the_limit_and_per_address() {
        let limiter = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(Some(a)).is_ok());
            limiter.fail(Some(a));
        }
        assert!(matches!(
            limiter.check(Some(a)),
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(limiter.check(Some(b)).is_ok());
    }
}
