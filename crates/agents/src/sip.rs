//! SIP URIs as agents register them: `sip:` or `sips:` `user@host[:port][;params]`, checked
//! against RFC 3261's basic grammar (section 25.1) and normalised for comparison.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated SIP URI with a normalised comparison key.
///
/// The key is `user@host[:port]` with the host lowercased, percent-escapes of unreserved
/// characters decoded (the rest uppercased), the scheme and parameters left out: `sip:` and
/// `sips:` for the same address, or the same address with `;transport=tls`, are one agent.
///
/// ```
/// use agents::SipUri;
/// let a = SipAddress("sip:Alice@Example.SIP.telnyx.com;transport=tls");
/// let b = SipAddress("sips:Alice@example.sip.TELNYX.com");
/// assert_eq!(a.key(), b.key());
/// assert_ne!(SipAddress("sip:alice@x.example").key(), SipAddress("sip:Alice@x.example").key()); // user part is case-sensitive
/// # fn SipAddress(s: &str) -> SipUri { SipUri::parse(s).unwrap() }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    raw: String,
    key: String,
}

/// Why a SIP URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SipUriError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, SipUriError> {
    Err(SipUriError(msg.into()))
}

const MAX_LEN: usize = 256;

/// The grammar [`SipUri::parse`] accepts, as a regular expression (ECMA/Python flavour) for
/// API schemas. Everything it matches, the parser accepts (property-tested); the parser also
/// trims surrounding whitespace.
pub const SIP_URI_PATTERN: &str = concat!(
    "^[sS][iI][pP][sS]?:",
    "(?:[A-Za-z0-9\\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+",
    "@",
    "(?:",
    "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    "|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\\.?",
    "|\\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\\]",
    ")",
    "(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?",
    "(?:;(?:[A-Za-z0-9\\-_.!~*'()\\[\\]/:&+$]|%[0-9A-Fa-f]{2})+(?:=(?:[A-Za-z0-9\\-_.!~*'()\\[\\]/:&+$]|%[0-9A-Fa-f]{2})+)?)*",
    "$"
);

fn is_mark(c: char) -> bool {
    matches!(c, '-' | '_' | '.' | '!' | '~' | '*' | '\'' | '(' | ')')
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_mark(c)
}

fn is_user_char(c: char) -> bool {
    is_unreserved(c) || matches!(c, '&' | '=' | '+' | '$' | ',' | ';' | '?' | '/')
}

fn is_param_char(c: char) -> bool {
    is_unreserved(c) || matches!(c, '[' | ']' | '/' | ':' | '&' | '+' | '$')
}

/// Checks `%HH` escapes and the allowed characters; returns the normalised form.
fn escaped_run(s: &str, allowed: fn(char) -> bool, what: &str) -> Result<String, SipUriError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let (Some(h), Some(l)) = (chars.next(), chars.next()) else {
                return err(format!("{what} has an incomplete %-escape"));
            };
            let (Some(hv), Some(lv)) = (h.to_digit(16), l.to_digit(16)) else {
                return err(format!("{what} has an invalid %-escape"));
            };
            let decoded = char::from_u32(hv * 16 + lv).unwrap_or('\0');
            if is_unreserved(decoded) {
                out.push(decoded);
            } else {
                out.push('%');
                out.push(h.to_ascii_uppercase());
                out.push(l.to_ascii_uppercase());
            }
        } else if allowed(c) {
            out.push(c);
        } else {
            return err(format!("{what} may not contain {c:?}"));
        }
    }
    Ok(out)
}

fn check_label(label: &str, top: bool) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let first_ok = if top {
        first.is_ascii_alphabetic()
    } else {
        first.is_ascii_alphanumeric()
    };
    first_ok
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

fn check_host(host: &str) -> Result<String, SipUriError> {
    if let Some(inner) = host.strip_prefix('[') {
        let Some(v6) = inner.strip_suffix(']') else {
            return err("IPv6 host needs a closing ]");
        };
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            || !v6.contains(':')
        {
            return err("invalid IPv6 host");
        }
        return Ok(host.to_ascii_lowercase());
    }
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = trimmed.split('.').collect();
    let is_ipv4 = labels.len() == 4
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 3 && l.parse::<u8>().is_ok());
    if is_ipv4 {
        return Ok(trimmed.to_owned());
    }
    let Some((top, rest)) = labels.split_last() else {
        return err("missing host");
    };
    if !check_label(top, true) || !rest.iter().all(|l| check_label(l, false)) {
        return err(format!("invalid host {host:?}"));
    }
    Ok(trimmed.to_ascii_lowercase())
}

fn check_params(params: &str) -> Result<(), SipUriError> {
    for param in params.split(';') {
        let (name, value) = param
            .split_once('=')
            .map_or((param, None), |(n, v)| (n, Some(v)));
        if name.is_empty() {
            return err("empty URI parameter name");
        }
        escaped_run(name, is_param_char, "URI parameter")?;
        if let Some(v) = value {
            if v.is_empty() {
                return err("empty URI parameter value");
            }
            escaped_run(v, is_param_char, "URI parameter")?;
        }
    }
    Ok(())
}

impl SipUri {
    /// Parses and validates.
    ///
    /// # Errors
    /// [`SipUriError`] naming what is wrong.
    pub fn parse(input: &str) -> Result<Self, SipUriError> {
        let s = input.trim();
        if s.len() > MAX_LEN {
            return err(format!("longer than {MAX_LEN} characters"));
        }
        let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
        let rest = if lower == "sips:" {
            &s[5..]
        } else if lower.starts_with("sip:") {
            &s[4..]
        } else {
            return err("must start with sip: or sips:");
        };
        let Some((user, hostpart)) = rest.split_once('@') else {
            return err("must be user@host");
        };
        if user.is_empty() {
            return err("the user part is empty");
        }
        let user = escaped_run(user, is_user_char, "the user part")?;
        if hostpart.contains('?') {
            return err("headers (?...) are not accepted");
        }
        let (hostport, params) = hostpart
            .split_once(';')
            .map_or((hostpart, None), |(h, p)| (h, Some(p)));
        let (host, port) = split_port(hostport)?;
        let host = check_host(host)?;
        if let Some(p) = params {
            check_params(p)?;
        }
        let key = match port {
            Some(port) => format!("{user}@{host}:{port}"),
            None => format!("{user}@{host}"),
        };
        Ok(Self {
            raw: s.to_owned(),
            key,
        })
    }

    /// The URI as registered (trimmed).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The comparison key (see the type's documentation).
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

fn split_port(hostport: &str) -> Result<(&str, Option<u16>), SipUriError> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => {
                let (h, after) = hostport.split_at(end + 1);
                (h, after.strip_prefix(':'))
            }
            None => (hostport, None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    match port {
        None => Ok((host, None)),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Ok((host, Some(n))),
            _ => err(format!("invalid port {p:?}")),
        },
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for SipUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for SipUri {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_basic_grammar() {
        for ok in [
            "sip:alice@example.sip.telnyx.com",
            "sips:bob@10.0.0.7:5061",
            "sip:+13125550100@sip.telnyx.com;user=phone",
            "sip:o'neil&co=1@host.example;transport=tls;lr",
            "sip:a%20b@h.example",
            "sip:x@[2001:db8::1]:5060",
            "SIP:carol@Example.COM.",
        ] {
            assert!(SipUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_the_grammar_does_not_allow() {
        for bad in [
            "alice@example.com",
            "tel:+1555",
            "sip:example.com",
            "sip:@example.com",
            "sip:a b@example.com",
            "sip:a<b>@example.com",
            "sip:a@exa_mple.com",
            "sip:a@-x.com",
            "sip:a@example.com:0",
            "sip:a@example.com:99999",
            "sip:a@example.com?subject=x",
            "sip:a%2@example.com",
            "sip:a@example.com;=x",
            "sip:a@[nothex]",
            "sip:a@1example.123",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
        }
        assert!(SipUri::parse(&format!("sip:{}@x.example", "a".repeat(300))).is_err());
    }

    fn unanchored() -> &'static str {
        SIP_URI_PATTERN
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, ..Default::default() })]

        #[test]
        fn everything_the_published_pattern_allows_is_accepted(uri in proptest::string::string_regex(unanchored()).unwrap()) {
            if uri.len() <= MAX_LEN {
                proptest::prop_assert!(SipUri::parse(&uri).is_ok(), "{uri:?}: {:?}", SipUri::parse(&uri));
            }
        }
    }

    #[test]
    fn normalises_for_comparison() {
        let key = |s: &str| SipUri::parse(s).unwrap().key().to_owned();
        assert_eq!(key("sip:alice@EXAMPLE.com"), "alice@example.com");
        assert_eq!(
            key("sips:alice@example.com;transport=tls"),
            "alice@example.com"
        );
        assert_eq!(key("sip:%61lice@example.com"), "alice@example.com");
        assert_eq!(key("sip:a%3cb@example.com"), "a%3Cb@example.com");
        assert_eq!(key("sip:alice@example.com:5060"), "alice@example.com:5060");
        assert_ne!(key("sip:Alice@example.com"), key("sip:alice@example.com"));
    }
}
