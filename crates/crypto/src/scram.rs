//! SCRAM-SHA-512 (RFC 5802 with SHA-512), as Kafka computes it: the
//! password's raw UTF-8 bytes, no SASLprep (Kafka's `ScramFormatter`).

use aws_lc_rs::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;
use tumbler_types::Sensitive;

/// Kafka's limits on the iteration count (`ScramMechanism`).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// `Hi(password, salt, i)`: PBKDF2-HMAC-SHA-512 with one 64-byte block.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Sensitive {
    let mut out = vec![0u8; 64];
    let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA512, iterations, salt, password, &mut out);
    Sensitive::new(out)
}

pub fn hmac_sha512(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, key), data)
        .as_ref()
        .to_vec()
}

pub fn sha512(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA512, data).as_ref().to_vec()
}

/// What a SCRAM server keeps: `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`
/// and `ServerKey = HMAC(SaltedPassword, "Server Key")`.
pub fn stored_and_server_key(salted: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (
        sha512(&hmac_sha512(salted, b"Client Key")),
        hmac_sha512(salted, b"Server Key"),
    )
}

/// Constant-time equality, for a server signature.
pub fn verify_equal(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// The vector in shared/reference/kafka.md §1.1, computed by Python's
    /// hashlib and a re-implementation of Kafka's ScramFormatter.
    #[test]
    fn matches_kafkas_scram_formatter() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let salted = salted_password(b"alice-secret", b"tumbler-test-salt", 4096);
        assert_eq!(
            b64(salted.expose()),
            "mAIeoalJBaMm+MDb8lO2MfARb2Hdh/pV4c38FDkdr2koEoRGNcudFTs32qgLsplhpGEX4zzfUeAiGCFGOyoaXw=="
        );
        let (stored, server) = stored_and_server_key(salted.expose());
        assert_eq!(
            b64(&stored),
            "SptfvEM6EqEOPimOIJSiSVJNqxyPvsJjA9jfPzt/J/mudtffOooJKEPAi9IbOofbEKf20g/pvoF+Uwbqma7NjA=="
        );
        assert_eq!(
            b64(&server),
            "5R3JjWfssznCNiBVqUhtHbqNUNjx3roTsbxtWVs7QAlJnPS7yUPOTi+M1YaXrCNBsYJmslqVbLWAz0+CT1hbpQ=="
        );
    }
}
