//! ES256 (ECDSA P-256 with SHA-256, RFC 7518 §3.4) and RS256 signing keys
//! for the JSON Web Tokens Tumbler issues, and their public JWKs. The private
//! key is kept as PKCS#8 (sealed by the caller under the master key); the
//! signature is JWS's fixed 64-byte `r || s`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use tumbler_types::Sensitive;

use crate::CryptoError;

pub struct Es256Key(EcdsaKeyPair);

impl Es256Key {
    /// A new key, and its PKCS#8 form to seal and keep.
    pub fn generate() -> Result<(Es256Key, Sensitive), CryptoError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| CryptoError::Random)?;
        let pkcs8 = Sensitive::new(pkcs8.as_ref().to_vec());
        Ok((Self::from_pkcs8(pkcs8.expose())?, pkcs8))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Es256Key, CryptoError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map(Es256Key)
            .map_err(|_| CryptoError::Malformed)
    }

    /// The public point's coordinates, as a JWK's `x` and `y`.
    pub fn public_xy(&self) -> ([u8; 32], [u8; 32]) {
        // An uncompressed SEC1 point: 0x04 || X || Y.
        let point = self.0.public_key().as_ref();
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(&point[1..33]);
        y.copy_from_slice(&point[33..65]);
        (x, y)
    }

    /// The JWS signature of `message` (the `header.payload` signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CryptoError::Random)
    }
}

/// Whether `signature` (JWS `r || s`) over `message` verifies with the
/// public key (`x`, `y`).
pub fn verify_es256(x: &[u8], y: &[u8], message: &[u8], signature: &[u8]) -> bool {
    if x.len() != 32 || y.len() != 32 {
        return false;
    }
    let mut point = Vec::with_capacity(65);
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(message, signature)
        .is_ok()
}

/// An RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) signing key,
/// 2048 bits: for brokers and libraries that accept RSA only.
pub struct Rs256Key(aws_lc_rs::rsa::KeyPair);

impl Rs256Key {
    /// A new key, and its PKCS#8 form to seal and keep.
    pub fn generate() -> Result<(Rs256Key, Sensitive), CryptoError> {
        use aws_lc_rs::encoding::AsDer;
        let key =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| CryptoError::Random)?;
        let pkcs8 = key.as_der().map_err(|_| CryptoError::Random)?;
        Ok((Rs256Key(key), Sensitive::new(pkcs8.as_ref().to_vec())))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Rs256Key, CryptoError> {
        aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
            .map(Rs256Key)
            .map_err(|_| CryptoError::Malformed)
    }

    /// The public modulus and exponent (big-endian, no leading zeros), as a
    /// JWK's `n` and `e`.
    pub fn public_ne(&self) -> (Vec<u8>, Vec<u8>) {
        let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(self.0.public_key());
        (c.n, c.e)
    }

    /// The JWS signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut signature = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| CryptoError::Random)?;
        Ok(signature)
    }
}

/// Whether an RS256 `signature` over `message` verifies with (`n`, `e`).
pub fn verify_rs256(n: &[u8], e: &[u8], message: &[u8], signature: &[u8]) -> bool {
    aws_lc_rs::rsa::PublicKeyComponents { n, e }
        .verify(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rs256_signs_and_verifies_and_survives_pkcs8() {
        let (key, pkcs8) = Rs256Key::generate().unwrap();
        let sig = key.sign(b"header.payload").unwrap();
        assert_eq!(sig.len(), 256);
        let (n, e) = key.public_ne();
        assert_eq!(n.len(), 256);
        assert!(verify_rs256(&n, &e, b"header.payload", &sig));
        assert!(!verify_rs256(&n, &e, b"header.payloaD", &sig));
        let again = Rs256Key::from_pkcs8(pkcs8.expose()).unwrap();
        assert_eq!(again.public_ne(), (n.clone(), e.clone()));
        assert!(verify_rs256(&n, &e, b"m", &again.sign(b"m").unwrap()));
    }

    #[test]
    fn signs_and_verifies_and_survives_pkcs8() {
        let (key, pkcs8) = Es256Key::generate().unwrap();
        let sig = key.sign(b"header.payload").unwrap();
        assert_eq!(sig.len(), 64);
        let (x, y) = key.public_xy();
        assert!(verify_es256(&x, &y, b"header.payload", &sig));
        assert!(!verify_es256(&x, &y, b"header.payloaD", &sig));
        let again = Es256Key::from_pkcs8(pkcs8.expose()).unwrap();
        assert_eq!(again.public_xy(), (x, y));
        assert!(verify_es256(&x, &y, b"m", &again.sign(b"m").unwrap()));
        assert!(Es256Key::from_pkcs8(b"not a key").is_err());
        assert!(!verify_es256(&x[..31], &y, b"m", &sig));
    }
}
