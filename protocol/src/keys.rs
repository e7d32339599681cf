//! Ed25519 keys as Phare uses them: PKCS#8 private keys, raw 32-byte public
//! keys, and key ids (lowercase hex SHA-256 of the raw public key).

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Key id of a raw Ed25519 public key: lowercase hex of its SHA-256.
pub fn keyid_of(public: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, public))
}

/// Checks an Ed25519 signature over `message`.
pub fn verify_ed25519(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, signature)
        .is_ok()
}

/// A private signing key, kept with its PKCS#8 encoding so it can be saved.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a key: {0}")]
    Generate(ring::error::Unspecified),
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    Parse(ring::error::KeyRejected),
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(KeyError::Generate)?;
        SigningKey::from_pkcs8(pkcs8.as_ref())
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(KeyError::Parse)?;
        Ok(SigningKey {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn keyid(&self) -> String {
        keyid_of(self.public_key())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

impl std::fmt::Debug for SigningKey {
    // Never print private material, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("keyid", &self.keyid())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyid_is_sha256_of_public_key() {
        // SHA-256 of 32 zero bytes, computed independently.
        assert_eq!(
            keyid_of(&[0u8; 32]),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn pkcs8_round_trip_keeps_identity() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(key.keyid(), again.keyid());
        let sig = again.sign(b"hello");
        assert!(verify_ed25519(key.public_key(), b"hello", &sig));
        assert!(!verify_ed25519(key.public_key(), b"hellO", &sig));
    }
}
