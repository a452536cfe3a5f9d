//! Browser sessions of the agent console and the supervisor wallboard: a cookie the server
//! signs (HMAC-SHA256 with a key derived from the URL secret, so every instance reads it),
//! and a CSRF token per session that every form and script request carries.
//!
//! The cookie holds who signed in, until when, and a random nonce; never a token. The
//! supervisor's session is bound to a hash of the admin token, so changing the token ends
//! every supervisor session. An agent's session ends with the agent (it is read again on
//! every request).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use agents::AgentId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The session cookie of the console (an agent's) and of the wallboard (the supervisor's):
/// two, so one browser can hold both.
#[must_use]
pub fn cookie_name(supervisor: bool) -> &'static str {
    if supervisor {
        "cc_wallboard"
    } else {
        "cc_console"
    }
}
/// The cookie that binds the sign-in form's CSRF token before there is a session.
pub const PRE_COOKIE: &str = "cc_pre";
/// How long a session lasts.
pub const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// An agent (the console).
    Agent(AgentId),
    /// The admin (the wallboard).
    Supervisor,
}

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who signed in.
    pub who: Who,
    /// Random, per sign-in: the CSRF token is derived from it.
    pub nonce: String,
}

/// Signs and reads sessions.
#[derive(Clone)]
pub struct Sessions {
    key: [u8; 32],
    admin_binding: String,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(***)")
    }
}

fn binding_of(admin_token: &Secret) -> String {
    hex::encode(&Sha256::digest(admin_token.expose().as_bytes())[..8])
}

impl Sessions {
    /// Sessions signed with `key`; supervisor sessions bound to `admin_token`.
    #[must_use]
    pub fn new(key: [u8; 32], admin_token: &Secret) -> Self {
        Self {
            key,
            admin_binding: binding_of(admin_token),
        }
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The cookie value of a new session for `who`, valid until `now` + [`LIFETIME`].
    #[must_use]
    pub fn issue(&self, who: Who, now: DateTime<Utc>) -> String {
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
        let subject = match who {
            Who::Agent(id) => format!("a|{id}"),
            Who::Supervisor => format!("s|{}", self.admin_binding),
        };
        let expires = (now + LIFETIME).timestamp();
        let payload = format!("v1|{subject}|{expires}|{nonce}");
        let mac = self.mac(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The session of a cookie value, if it is genuine and current.
    #[must_use]
    pub fn read(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let (payload, mac) = value.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !bool::from(self.mac(&payload).as_slice().ct_eq(&mac)) {
            return None;
        }
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.split('|');
        let (version, kind, subject, expires, nonce) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if version != "v1" || parts.next().is_some() {
            return None;
        }
        if expires.parse::<i64>().ok()? <= now.timestamp() {
            return None;
        }
        let who = match kind {
            "a" => Who::Agent(subject.parse().ok()?),
            "s" if subject == self.admin_binding => Who::Supervisor,
            _ => return None,
        };
        Some(Session {
            who,
            nonce: nonce.to_owned(),
        })
    }

    /// The CSRF token of a session (or pre-session) nonce.
    #[must_use]
    pub fn csrf(&self, nonce: &str) -> String {
        hex::encode(&self.mac(format!("csrf|{nonce}").as_bytes())[..16])
    }

    /// Whether `presented` is the CSRF token of `nonce` (constant time).
    #[must_use]
    pub fn csrf_matches(&self, nonce: &str, presented: &str) -> bool {
        self.csrf(nonce)
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }

    /// The session of a request's console (or wallboard) cookie.
    #[must_use]
    pub fn of_request(
        &self,
        req: &HttpRequest,
        supervisor: bool,
        now: DateTime<Utc>,
    ) -> Option<Session> {
        self.read(req.cookie(cookie_name(supervisor))?.value(), now)
    }
}

/// Whether cookies get `Secure`: the request came over HTTPS (directly or as the proxy
/// says).
fn over_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// A cookie the browser sends back only to this site's pages, never to scripts.
#[must_use]
pub fn cookie(req: &HttpRequest, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_https(req))
        .finish()
}

/// A cookie that removes `name`.
#[must_use]
pub fn removal(req: &HttpRequest, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(req, name, String::new());
    c.make_removal();
    c
}

/// A fresh pre-session nonce (for the sign-in form).
#[must_use]
pub fn pre_nonce() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new([7; 32], &Secret::new("admin-token"))
    }

    #[test]
    fn a_session_reads_back_until_it_expires() {
        let s = sessions();
        let now = Utc::now();
        let id = AgentId(uuid::Uuid::new_v4());
        let value = s.issue(Who::Agent(id), now);
        let read = s.read(&value, now).unwrap();
        assert_eq!(read.who, Who::Agent(id));
        assert!(s.read(&value, now + LIFETIME).is_none());
        let sup = s.issue(Who::Supervisor, now);
        assert_eq!(s.read(&sup, now).unwrap().who, Who::Supervisor);
    }

    #[test]
    fn a_changed_cookie_or_another_key_or_admin_token_is_refused() {
        let s = sessions();
        let now = Utc::now();
        let value = s.issue(Who::Supervisor, now);
        let (payload, mac) = value.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace("|s|", "|a|"),
        );
        assert!(s.read(&format!("{forged}.{mac}"), now).is_none());
        assert!(s.read("junk", now).is_none());
        assert!(s.read("a.b", now).is_none());
        let other_key = Sessions::new([8; 32], &Secret::new("admin-token"));
        assert!(other_key.read(&value, now).is_none());
        let rotated = Sessions::new([7; 32], &Secret::new("new-admin-token"));
        assert!(rotated.read(&value, now).is_none());
    }

    #[test]
    fn the_csrf_token_belongs_to_its_nonce() {
        let s = sessions();
        let token = s.csrf("n1");
        assert!(s.csrf_matches("n1", &token));
        assert!(!s.csrf_matches("n2", &token));
        assert!(!s.csrf_matches("n1", ""));
    }
}
