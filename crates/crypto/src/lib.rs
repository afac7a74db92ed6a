//! Tumbler's cryptography: the root key, key-encryption keys derived from it,
//! and AES-256-GCM sealing used for every envelope layer.
//!
//! The layers (see docs/ARCHITECTURE.md):
//! root key (file or env, never in the store)
//!   -> HKDF -> purpose KEKs (KMS key material, access-key secrets)
//!   -> KMS key material wraps each version's data key
//!   -> the data key seals the secret value.
//! Every seal binds associated data (the secret ARN and version id, the key
//! id, the access key id), so a ciphertext moved to another row fails to open.
//!
//! Pure: no I/O. aws-lc-rs is the only crypto library.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use tumbler_types::Sensitive;

pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext does not authenticate under this key and context")]
    Authentication,
    #[error("ciphertext is truncated or malformed")]
    Malformed,
    #[error("key material has the wrong length")]
    KeyLength,
    #[error("the system random number generator failed")]
    Random,
}

/// Fill a fresh vector from the system CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut v = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut v).map_err(|_| CryptoError::Random)?;
    Ok(v)
}

/// A fresh 256-bit key (a data key or KMS key material).
pub fn generate_key() -> Result<Sensitive, CryptoError> {
    random_bytes(KEY_LEN).map(Sensitive::new)
}

/// The root of trust: 32 bytes kept in `DIR/root.key` or the environment.
pub struct RootKey(Sensitive);

impl RootKey {
    pub fn generate() -> Result<Self, CryptoError> {
        generate_key().map(Self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::KeyLength);
        }
        Ok(Self(Sensitive::new(bytes.to_vec())))
    }

    /// The raw key, only for writing it to its file on first start.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// A key-encryption key for one purpose. Distinct purposes give
    /// independent keys, so one compromised use cannot open another's data.
    pub fn derive(&self, purpose: Purpose) -> Kek {
        Kek::new(&*self.expand(purpose.label())).expect("32-byte key")
    }

    /// A MAC key for one purpose, independent of every other derived key.
    pub fn derive_mac(&self, purpose: MacPurpose) -> MacKey {
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, &*self.expand(purpose.label())))
    }

    fn expand(&self, label: &str) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tumbler root key v1").extract(self.0.expose());
        let info = [label.as_bytes()];
        let mut out = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        // Expanding 32 bytes from SHA-256 cannot fail (limit is 255 * 32).
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut *out))
            .expect("HKDF-SHA256 expand of 32 bytes");
        out
    }
}

/// What a derived MAC key authenticates.
#[derive(Clone, Copy, Debug)]
pub enum MacPurpose {
    /// The hash chain of the audit trail.
    AuditChain,
}

impl MacPurpose {
    fn label(self) -> &'static str {
        match self {
            MacPurpose::AuditChain => "audit-chain",
        }
    }
}

/// HMAC-SHA256 under a root-derived key.
pub struct MacKey(hmac::Key);

impl MacKey {
    /// The MAC of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Constant-time check of `tag` against the MAC of `parts`.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.sign(parts), tag).is_ok()
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// What a derived key-encryption key protects.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    KmsKeyMaterial,
    AccessKeySecret,
    /// The TOTP seeds of virtual MFA devices.
    MfaSeed,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::KmsKeyMaterial => "kms-key-material",
            Purpose::AccessKeySecret => "access-key-secret",
            Purpose::MfaSeed => "mfa-seed",
        }
    }
}

/// An AES-256-GCM key with random nonces. Sealed form: nonce || ciphertext || tag.
pub struct Kek(RandomizedNonceKey);

impl Kek {
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != KEY_LEN {
            return Err(CryptoError::KeyLength);
        }
        RandomizedNonceKey::new(&AES_256_GCM, key)
            .map(Self)
            .map_err(|_| CryptoError::KeyLength)
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(NONCE_LEN);
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(aad), &mut body)
            .map_err(|_| CryptoError::Random)?;
        out.copy_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Sensitive, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Malformed)?;
        let mut buf = body.to_vec();
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Authentication)?
            .len();
        buf.truncate(len);
        Ok(Sensitive::new(buf))
    }
}

/// Seal `plaintext` under a fresh data key; returns the data key (to be
/// wrapped by a KMS key) and the sealed value.
pub fn seal_with_new_data_key(plaintext: &[u8], aad: &[u8]) -> Result<(Sensitive, Vec<u8>), CryptoError> {
    let dek = generate_key()?;
    let sealed = Kek::new(dek.expose())?.seal(plaintext, aad)?;
    Ok((dek, sealed))
}

/// Open a value sealed by [`seal_with_new_data_key`].
pub fn open_with_data_key(dek: &Sensitive, sealed: &[u8], aad: &[u8]) -> Result<Sensitive, CryptoError> {
    Kek::new(dek.expose())?.open(sealed, aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let (dek, sealed) = seal_with_new_data_key(b"alice-secret", b"arn|v1").unwrap();
        assert_eq!(
            open_with_data_key(&dek, &sealed, b"arn|v1").unwrap().expose(),
            b"alice-secret"
        );
        assert_eq!(
            open_with_data_key(&dek, &sealed, b"arn|v2"),
            Err(CryptoError::Authentication)
        );
        assert!(!sealed.windows(12).any(|w| w == b"alice-secret"));
    }

    #[test]
    fn tampered_and_truncated() {
        let k = Kek::new(&[7u8; 32]).unwrap();
        let mut s = k.seal(b"x", b"").unwrap();
        *s.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(&s, b""), Err(CryptoError::Authentication));
        assert_eq!(k.open(&[0u8; 5], b""), Err(CryptoError::Malformed));
    }

    #[test]
    fn purposes_differ() {
        let root = RootKey::from_bytes(&[1u8; 32]).unwrap();
        let a = root.derive(Purpose::KmsKeyMaterial).seal(b"m", b"").unwrap();
        assert!(root.derive(Purpose::AccessKeySecret).open(&a, b"").is_err());
        assert!(root.derive(Purpose::KmsKeyMaterial).open(&a, b"").is_ok());
        assert_eq!(RootKey::from_bytes(&[1u8; 3]).err(), Some(CryptoError::KeyLength));
    }
}
