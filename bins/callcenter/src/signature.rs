//! Telnyx webhook signatures (Ed25519 over `timestamp|body`), exactly as the contract's
//! section 4 says: the raw body bytes as received, the timestamp header string as sent,
//! `|now - timestamp| <= tolerance`, strict verification.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a request was refused (logged; the client only learns "401").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// `telnyx-signature-ed25519` or `telnyx-timestamp` is absent.
    #[error("signature headers missing")]
    Missing,
    /// The timestamp is not Unix seconds.
    #[error("malformed timestamp")]
    MalformedTimestamp,
    /// The signature is not base64 of 64 bytes.
    #[error("malformed signature")]
    MalformedSignature,
    /// Outside the tolerance, in the past or the future.
    #[error("timestamp outside the tolerance")]
    Stale,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Invalid,
}

/// Verifies with the account's public key.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: VerifyingKey,
    tolerance: i64,
}

/// What a verified signature proves, for replay detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `sig:` + SHA-256 of the signature bytes.
    pub key: String,
}

impl Verifier {
    /// A verifier for `public_key` accepting `tolerance_secs` of clock skew.
    ///
    /// # Errors
    /// When the bytes are not a valid Ed25519 point.
    pub fn new(
        public_key: &[u8; 32],
        tolerance_secs: u32,
    ) -> Result<Self, ed25519_dalek::SignatureError> {
        Ok(Self {
            key: VerifyingKey::from_bytes(public_key)?,
            tolerance: i64::from(tolerance_secs),
        })
    }

    /// Checks `signature_b64` over `timestamp|body` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`SignatureError`] naming the first check that failed.
    pub fn verify(
        &self,
        signature_b64: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, SignatureError> {
        let (Some(sig_b64), Some(ts)) = (signature_b64, timestamp) else {
            return Err(SignatureError::Missing);
        };
        let t: i64 = ts.parse().map_err(|_| SignatureError::MalformedTimestamp)?;
        if ts.starts_with('+') || ts.is_empty() {
            return Err(SignatureError::MalformedTimestamp);
        }
        let sig_bytes: [u8; 64] = STANDARD
            .decode(sig_b64.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureError::MalformedSignature)?;
        if now.abs_diff(t) > self.tolerance.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        let mut message = Vec::with_capacity(ts.len() + 1 + body.len());
        message.extend_from_slice(ts.as_bytes());
        message.push(b'|');
        message.extend_from_slice(body);
        self.key
            .verify_strict(&message, &Signature::from_bytes(&sig_bytes))
            .map_err(|_| SignatureError::Invalid)?;
        Ok(Verified {
            key: format!("sig:{}", hex::encode(Sha256::digest(sig_bytes))),
        })
    }
}

/// What a request was, including the parts the signature does not cover (method, path,
/// query string): a replayed signature must come with exactly this.
#[must_use]
pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        method.as_bytes(),
        b" ",
        path.as_bytes(),
        b"?",
        query.as_bytes(),
        b"\n",
    ] {
        h.update(part);
    }
    h.update(body);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn sign(ts: &str, body: &[u8]) -> String {
        let msg = [ts.as_bytes(), b"|", body].concat();
        STANDARD.encode(key().sign(&msg).to_bytes())
    }

    fn verifier() -> Verifier {
        Verifier::new(&key().verifying_key().to_bytes(), 300).unwrap()
    }

    #[test]
    fn a_good_signature_verifies_and_everything_else_fails() {
        let v = verifier();
        let body = b"CallSid=v3%3Aabc&From=%2B13125550100";
        let sig = sign("1700000000", body);
        assert!(
            v.verify(Some(&sig), Some("1700000000"), body, 1_700_000_100)
                .is_ok()
        );
        assert_eq!(
            v.verify(None, Some("1700000000"), body, 1_700_000_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            v.verify(Some(&sig), None, body, 1_700_000_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            v.verify(
                Some(&sig),
                Some("1700000000"),
                b"CallSid=other",
                1_700_000_000
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            v.verify(Some(&sig), Some("1700000000"), body, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            v.verify(Some(&sig), Some("1700000000"), body, 1_699_999_699),
            Err(SignatureError::Stale),
            "future"
        );
        assert_eq!(
            v.verify(Some("%%%"), Some("1700000000"), body, 1_700_000_000),
            Err(SignatureError::MalformedSignature)
        );
        assert_eq!(
            v.verify(Some(&sig), Some("soon"), body, 1_700_000_000),
            Err(SignatureError::MalformedTimestamp)
        );
        let other = Verifier::new(
            &SigningKey::from_bytes(&[8u8; 32])
                .verifying_key()
                .to_bytes(),
            300,
        )
        .unwrap();
        assert_eq!(
            other.verify(Some(&sig), Some("1700000000"), body, 1_700_000_000),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn signatures_over_the_body_alone_or_with_a_dot_are_refused() {
        let v = verifier();
        let body = b"CallSid=v3%3Aabc";
        let body_only = STANDARD.encode(key().sign(body).to_bytes());
        let dotted = STANDARD.encode(
            key()
                .sign(&[b"1700000000.".as_slice(), body].concat())
                .to_bytes(),
        );
        assert_eq!(
            v.verify(Some(&body_only), Some("1700000000"), body, 1_700_000_000),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            v.verify(Some(&dotted), Some("1700000000"), body, 1_700_000_000),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn the_fingerprint_covers_the_unsigned_query() {
        assert_ne!(
            fingerprint("GET", "/a", "CallSid=1", b""),
            fingerprint("GET", "/a", "CallSid=2", b"")
        );
        assert_eq!(
            fingerprint("POST", "/a", "", b"x"),
            fingerprint("POST", "/a", "", b"x")
        );
    }
}
