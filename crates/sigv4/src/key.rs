//! The derived SigV4 signing key.

use aws_lc_rs::hmac;
use std::fmt;
use zeroize::Zeroizing;

/// `kSigning`, derived from a secret access key for one (date, region,
/// service). Deriving costs four HMACs, so callers cache it per
/// (access key, date, region, service).
///
/// The bytes are wiped on drop and never printed.
///
/// The HMAC key schedule is prepared once here, since every request
/// verified with this key would otherwise redo it.
#[derive(Clone)]
pub struct SigningKey {
    prepared: hmac::Key,
    #[cfg(test)]
    bytes: [u8; 32],
}

impl SigningKey {
    /// Derives `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    pub fn derive(secret_access_key: &[u8], scope_date: &str, region: &str, service: &str) -> SigningKey {
        let mut seed = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret_access_key);
        let k_date = hmac_sha256(&seed, scope_date.as_bytes());
        let k_region = hmac_sha256(&*k_date, region.as_bytes());
        let k_service = hmac_sha256(&*k_region, service.as_bytes());
        let k_signing = hmac_sha256(&*k_service, b"aws4_request");
        SigningKey {
            prepared: hmac::Key::new(hmac::HMAC_SHA256, &*k_signing),
            #[cfg(test)]
            bytes: *k_signing,
        }
    }

    /// Constant-time check that `signature` is the HMAC of `string_to_sign`.
    pub(crate) fn verify(&self, string_to_sign: &[u8], signature: &[u8]) -> bool {
        hmac::verify(&self.prepared, string_to_sign, signature).is_ok()
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// One HMAC step of the derivation, returning bytes that are wiped on drop.
fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived key from AWS's "Signing AWS API requests" IAM example.
    #[test]
    fn derives_the_documented_iam_key() {
        let key = SigningKey::derive(
            b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key.bytes()),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn debug_does_not_print_the_bytes() {
        let key = SigningKey::derive(b"secret", "20150830", "us-east-1", "iam");
        let shown = format!("{key:?}");
        assert_eq!(shown, "SigningKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(&key.bytes()[..4])));
    }
}
