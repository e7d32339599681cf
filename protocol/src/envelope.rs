//! DSSE envelopes ("Dead Simple Signing Envelope", JSON form), docs/protocol.md §4.
//!
//! The signature covers `PAE(payloadType, payload)`, never the JSON around
//! it, so re-encoding the envelope cannot change what was signed. The payload
//! is handed out only through verification (see [`crate::verify`]); parsing
//! an envelope never parses its payload.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::Rejection;
use crate::keys::SigningKey;

/// Envelopes larger than this are dropped unread.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Most signature entries an envelope may carry. A root rotation, the most
/// signed document, needs a threshold of the old root keys and one of the
/// new ([`crate::Root::validate`] keeps each threshold to half of this);
/// anything beyond that would only make a device hash the payload again.
pub const MAX_SIGNATURES: usize = 16;

/// The payloadType of a document kind: `application/vnd.phare.<kind>+json`.
pub fn payload_type(kind: &str) -> String {
    format!("application/vnd.phare.{kind}+json")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard base64 of the exact payload bytes.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub keyid: String,
    /// Standard base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// Pre-Authentication Encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Envelope {
    /// Wraps `payload` and signs it with every key given.
    pub fn sign(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Envelope {
        let mut envelope = Envelope {
            payload_type: payload_type.to_string(),
            payload: BASE64.encode(payload),
            signatures: Vec::new(),
        };
        for key in keys {
            envelope.add_signature(key);
        }
        envelope
    }

    /// Adds one more signature (threshold signing by several key holders).
    /// A key that already signed is not added twice.
    pub fn add_signature(&mut self, key: &SigningKey) {
        let keyid = key.keyid();
        if self.signatures.iter().any(|s| s.keyid == keyid) {
            return;
        }
        let body = self.payload_bytes().unwrap_or_default();
        let sig = key.sign(&pae(&self.payload_type, &body));
        self.signatures.push(Signature {
            keyid,
            sig: BASE64.encode(sig),
        });
    }

    /// Parses an envelope received from an untrusted mirror, enforcing the size cap first.
    pub fn from_slice(bytes: &[u8]) -> Result<Envelope, Rejection> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Rejection::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(format!("envelope: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }

    /// The raw payload bytes. Not trusted until verified.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, Rejection> {
        BASE64
            .decode(&self.payload)
            .map_err(|e| Rejection::Malformed(format!("payload is not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_vector() {
        // The example from the DSSE specification (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn oversize_envelopes_are_refused_before_parsing() {
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(Envelope::from_slice(&big).unwrap_err().code(), "too_large");
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(
            Envelope::from_slice(b"{nope").unwrap_err().code(),
            "malformed"
        );
    }

    #[test]
    fn a_key_signs_once() {
        let key = SigningKey::generate().unwrap();
        let mut env = Envelope::sign("t", b"x", &[&key]);
        env.add_signature(&key);
        assert_eq!(env.signatures.len(), 1);
    }
}
