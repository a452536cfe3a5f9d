//! The URLs the server writes into TeXML documents, and the MAC that makes their parameters
//! trustworthy.
//!
//! Telnyx signs a request's body, never its URL. So every parameter the server needs back
//! (the call, the round, the agent of an offer, the kind of callback) travels in the URL
//! under the server's own MAC: HMAC-SHA256 with a server secret over the method, the path and
//! the parameters, truncated to 128 bits. The server acts on URL parameters only when the MAC
//! verifies; the portal URLs (`/inbound`, `/events`) carry none and take nothing from the
//! query. Several instances share the secret (configured, or generated once and kept in the
//! database); after a rotation the previous secret still verifies for a while.

use std::fmt;

use agents::AgentId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use texml::Url;
use thiserror::Error;

use crate::event::Endpoint;
use crate::settings::SettingsError;

/// Bytes of the MAC kept in a URL (128 bits).
const MAC_BYTES: usize = 16;

/// A secret that signs and verifies URLs. Its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlKey([u8; 32]);

impl UrlKey {
    /// A key from 32 secret bytes.
    #[must_use]
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    #[must_use]
    pub fn random() -> Self {
        Self(rand::random())
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(message);
        mac
    }
}

impl fmt::Debug for UrlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlKey(***)")
    }
}

/// The key that signs new URLs, and every key that verifies (the previous one too, for a
/// while after a rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlKeys {
    signing: UrlKey,
    previous: Vec<UrlKey>,
}

impl UrlKeys {
    /// Signs with `signing`; also accepts `previous`.
    #[must_use]
    pub fn new(signing: UrlKey, previous: Vec<UrlKey>) -> Self {
        Self { signing, previous }
    }

    /// A random key (tests, embedding without a database).
    #[must_use]
    pub fn random() -> Self {
        Self::new(UrlKey::random(), Vec::new())
    }

    /// A key for another purpose (`purpose` names it), derived from the signing key: the
    /// same on every instance, independent of the URL MAC and of other purposes.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        self.signing
            .mac(purpose.as_bytes())
            .finalize()
            .into_bytes()
            .into()
    }
}

/// What kind of request a URL is for, where one path serves several.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    serde::Serialize,
    serde::Deserialize,
)]
#[strum(serialize_all = "kebab-case")]
#[serde(rename_all = "kebab-case")]
pub enum UrlKind {
    /// The `<Record action>`.
    Action,
    /// A recording-status callback.
    Recording,
    /// The transcription callback.
    Transcription,
    /// The end of a round that rang nobody (a hold message, then this redirect).
    Hold,
    /// The push target: Telnyx's REST update-call redirected the waiting caller here to
    /// receive its reserved offer.
    Push,
}

/// What a server-written URL says, under its MAC.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Signed {
    /// The caller's call.
    pub call: String,
    /// The round.
    pub round: Option<i32>,
    /// The agent of the offer (a `<Sip>` leg's callback).
    pub agent: Option<AgentId>,
    /// The kind of request.
    pub kind: Option<UrlKind>,
}

impl Signed {
    /// Parameters for `call`.
    #[must_use]
    pub fn call(call: &str) -> Self {
        Self {
            call: call.to_owned(),
            ..Self::default()
        }
    }

    /// With a round.
    #[must_use]
    pub fn round(mut self, round: i32) -> Self {
        self.round = Some(round);
        self
    }

    /// With an agent.
    #[must_use]
    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// With a kind.
    #[must_use]
    pub fn kind(mut self, kind: UrlKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The parameters in their one canonical order, as strings.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("call", self.call.clone())];
        if let Some(r) = self.round {
            pairs.push(("round", r.to_string()));
        }
        if let Some(a) = self.agent {
            pairs.push(("agent", a.to_string()));
        }
        if let Some(k) = self.kind {
            pairs.push(("kind", <&str>::from(k).to_owned()));
        }
        pairs
    }
}

/// Why a URL's parameters were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    /// Parameters without a MAC, or a MAC that no key verifies: not written by this server,
    /// or written for another method or path.
    #[error("the URL's parameters are not signed by this server")]
    BadMac,
    /// A signed parameter that cannot be read.
    #[error("malformed URL parameter {0}")]
    Malformed(&'static str),
}

/// The signed message: method, path and the form-encoded canonical parameters.
fn message(method: &str, endpoint: Endpoint, pairs: &[(&'static str, String)]) -> Vec<u8> {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{method} {}?{query}", endpoint.path()).into_bytes()
}

impl UrlKeys {
    /// The MAC of `signed` for `method` and `endpoint`, as written in the URL.
    #[must_use]
    pub fn mac(&self, method: &str, endpoint: Endpoint, signed: &Signed) -> String {
        let tag = self
            .signing
            .mac(&message(method, endpoint, &signed.pairs()))
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..MAC_BYTES])
    }

    /// Reads the signed parameters of a request's query (decoded pairs): `Ok(None)` when it
    /// carries none of them (a portal URL), `Err` when they are not the server's.
    ///
    /// # Errors
    /// [`UrlError`]: a missing or wrong MAC, a duplicated or malformed parameter.
    pub fn verify(
        &self,
        method: &str,
        endpoint: Endpoint,
        query: &[(String, String)],
    ) -> Result<Option<Signed>, UrlError> {
        let get = |name: &'static str| -> Result<Option<&str>, UrlError> {
            let mut found = query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str());
            let first = found.next();
            if found.next().is_some() {
                return Err(UrlError::Malformed(name));
            }
            Ok(first)
        };
        let (call, mac) = (get("call")?, get("mac")?);
        let (round, agent, kind) = (get("round")?, get("agent")?, get("kind")?);
        if call.is_none() && mac.is_none() && round.is_none() && agent.is_none() && kind.is_none() {
            return Ok(None);
        }
        let (Some(call), Some(mac)) = (call, mac) else {
            return Err(UrlError::BadMac);
        };
        let signed = Signed {
            call: call.to_owned(),
            round: round
                .map(|r| r.parse().map_err(|_| UrlError::Malformed("round")))
                .transpose()?,
            agent: agent
                .map(|a| a.parse().map_err(|_| UrlError::Malformed("agent")))
                .transpose()?,
            kind: kind
                .map(|k| k.parse().map_err(|_| UrlError::Malformed("kind")))
                .transpose()?,
        };
        let tag = URL_SAFE_NO_PAD.decode(mac).map_err(|_| UrlError::BadMac)?;
        if tag.len() != MAC_BYTES {
            return Err(UrlError::BadMac);
        }
        let msg = message(method, endpoint, &signed.pairs());
        let verifies = std::iter::once(&self.signing)
            .chain(&self.previous)
            .any(|key| key.mac(&msg).verify_truncated_left(&tag).is_ok());
        if verifies {
            Ok(Some(signed))
        } else {
            Err(UrlError::BadMac)
        }
    }
}

/// The absolute URLs written into documents: each endpoint's address built once from
/// `WEBHOOK_BASE_URL`, and per call the signed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    keys: UrlKeys,
    dial_agents: Url,
    retry_dial: Url,
    outbound_event: Url,
    voicemail: Url,
    voicemail_callback: Url,
    events: Url,
    hold_music: Url,
}

/// Where the server serves its own hold music, under `{base}/api/call-center`.
pub const HOLD_MUSIC_PATH: &str = "/hold-music.wav";

impl Urls {
    /// The URLs under `{base}/api/call-center`, signed with `keys`. `https://x.example` and
    /// `https://x.example/` give the same URLs.
    ///
    /// # Errors
    /// [`SettingsError::Texml`] when `base` is not an absolute http(s) URL.
    pub fn new(base: &str, keys: UrlKeys) -> Result<Self, SettingsError> {
        let base = format!("{}/api/call-center", base.trim().trim_end_matches('/'));
        let parse = |endpoint: Endpoint| {
            Url::parse(&format!("{base}{}", endpoint.path())).map_err(|source| {
                SettingsError::Texml {
                    name: "WEBHOOK_BASE_URL",
                    source,
                }
            })
        };
        Ok(Self {
            keys,
            dial_agents: parse(Endpoint::DialAgents)?,
            retry_dial: parse(Endpoint::RetryDial)?,
            outbound_event: parse(Endpoint::OutboundEvent)?,
            voicemail: parse(Endpoint::Voicemail)?,
            voicemail_callback: parse(Endpoint::VoicemailCallback)?,
            events: parse(Endpoint::Events)?,
            hold_music: Url::parse(&format!("{base}{HOLD_MUSIC_PATH}")).map_err(|source| {
                SettingsError::Texml {
                    name: "WEBHOOK_BASE_URL",
                    source,
                }
            })?,
        })
    }

    /// The server's own hold music (public, cacheable, unsigned).
    #[must_use]
    pub fn hold_music(&self) -> &Url {
        &self.hold_music
    }

    /// The push target: `/dial-agents` for the offer of round `round`, marked as pushed.
    #[must_use]
    pub fn pushed_offer(&self, call: &str, round: i32) -> Url {
        let s = Signed::call(call).round(round).kind(UrlKind::Push);
        self.signed(&self.dial_agents, Endpoint::DialAgents, &s)
    }

    /// The keys (to verify requests).
    #[must_use]
    pub fn keys(&self) -> &UrlKeys {
        &self.keys
    }

    fn signed(&self, url: &Url, endpoint: Endpoint, signed: &Signed) -> Url {
        let mac = self.keys.mac("POST", endpoint, signed);
        let pairs = signed.pairs();
        url.with_query(
            pairs
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .chain([("mac", mac.as_str())]),
        )
    }

    /// `/dial-agents`: the hold loop's next request (`round`: the round the caller waits
    /// for, one past its last).
    #[must_use]
    pub fn dial_agents(&self, call: &str, round: i32) -> Url {
        let s = Signed::call(call).round(round);
        self.signed(&self.dial_agents, Endpoint::DialAgents, &s)
    }

    /// `/retry-dial`: the `<Dial action>` of round `round`.
    #[must_use]
    pub fn retry_dial(&self, call: &str, round: i32) -> Url {
        let s = Signed::call(call).round(round);
        self.signed(&self.retry_dial, Endpoint::RetryDial, &s)
    }

    /// `/retry-dial` after a round that rang nobody.
    #[must_use]
    pub fn round_without_agents(&self, call: &str, round: i32) -> Url {
        let s = Signed::call(call).round(round).kind(UrlKind::Hold);
        self.signed(&self.retry_dial, Endpoint::RetryDial, &s)
    }

    /// `/outbound/event`: the status callback of the offer to `agent` in round `round`.
    #[must_use]
    pub fn outbound_event(&self, call: &str, round: i32, agent: AgentId) -> Url {
        let s = Signed::call(call).round(round).agent(agent);
        self.signed(&self.outbound_event, Endpoint::OutboundEvent, &s)
    }

    /// `/voicemail` for `call`.
    #[must_use]
    pub fn voicemail(&self, call: &str) -> Url {
        self.signed(&self.voicemail, Endpoint::Voicemail, &Signed::call(call))
    }

    /// `/voicemail/callback` of one kind (action, recording or transcription) for `call`.
    #[must_use]
    pub fn voicemail_callback(&self, call: &str, kind: UrlKind) -> Url {
        let s = Signed::call(call).kind(kind);
        self.signed(&self.voicemail_callback, Endpoint::VoicemailCallback, &s)
    }

    /// `/events` for the `<Dial>` recording of `call`.
    #[must_use]
    pub fn call_recording(&self, call: &str) -> Url {
        let s = Signed::call(call).kind(UrlKind::Recording);
        self.signed(&self.events, Endpoint::Events, &s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &Url) -> Vec<(String, String)> {
        let q = url.as_str().split_once('?').map_or("", |(_, q)| q);
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn a_written_url_verifies_and_nothing_else_does() {
        let urls = Urls::new("https://cc.example/", UrlKeys::random()).unwrap();
        let agent = AgentId::new();
        let url = urls.outbound_event("v3:abc&d", 2, agent);
        let q = query(&url);
        let keys = urls.keys();
        let got = keys
            .verify("POST", Endpoint::OutboundEvent, &q)
            .unwrap()
            .unwrap();
        assert_eq!(got, Signed::call("v3:abc&d").round(2).agent(agent));
        // another endpoint, another method, another value, another key: refused
        assert_eq!(
            keys.verify("POST", Endpoint::Events, &q),
            Err(UrlError::BadMac)
        );
        assert_eq!(
            keys.verify("GET", Endpoint::OutboundEvent, &q),
            Err(UrlError::BadMac)
        );
        let mut forged = q.clone();
        forged[1].1 = "7".into();
        assert_eq!(
            keys.verify("POST", Endpoint::OutboundEvent, &forged),
            Err(UrlError::BadMac)
        );
        let other = UrlKeys::random();
        assert_eq!(
            other.verify("POST", Endpoint::OutboundEvent, &q),
            Err(UrlError::BadMac)
        );
        // no parameters: a portal URL
        assert_eq!(keys.verify("POST", Endpoint::Events, &[]), Ok(None));
        // parameters without a MAC
        let unsigned = vec![("round".to_owned(), "7".to_owned())];
        assert_eq!(
            keys.verify("POST", Endpoint::DialAgents, &unsigned),
            Err(UrlError::BadMac)
        );
    }

    #[test]
    fn a_trailing_slash_makes_no_difference() {
        let keys = UrlKeys::random();
        let a = Urls::new("https://x.example", keys.clone()).unwrap();
        let b = Urls::new("https://x.example/", keys).unwrap();
        assert_eq!(a, b);
        assert!(
            a.dial_agents("c", 2)
                .as_str()
                .starts_with("https://x.example/api/call-center/dial-agents?call=c&round=2&mac=")
        );
        assert!(Urls::new("not a url", UrlKeys::random()).is_err());
    }

    #[test]
    fn the_previous_key_still_verifies_after_a_rotation() {
        let old = UrlKey::random();
        let before = Urls::new("https://cc.example", UrlKeys::new(old.clone(), vec![])).unwrap();
        let url = before.dial_agents("v3:c", 1);
        let after = UrlKeys::new(UrlKey::random(), vec![old]);
        assert!(
            after
                .verify("POST", Endpoint::DialAgents, &query(&url))
                .is_ok()
        );
        assert_eq!(
            UrlKeys::random().verify("POST", Endpoint::DialAgents, &query(&url)),
            Err(UrlError::BadMac)
        );
    }
}
