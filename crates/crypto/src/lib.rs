//! Tumbler's cryptography: the root key, the master key it seals, the
//! key-encryption keys derived from the master key, and AES-256-GCM sealing
//! used for every envelope layer.
//!
//! The layers (see docs/ARCHITECTURE.md):
//! root key (a file, the environment, a passphrase via Argon2id, or a remote KMS)
//!   -> seals the master key (DIR/keyring.json), and nothing else
//!   -> HKDF -> purpose KEKs (KMS key material, access-key secrets, MFA seeds, ...)
//!   -> KMS key material wraps each version's data key
//!   -> the data key seals the secret value.
//! Replacing the root key re-seals one master key, so it needs neither a
//! store rewrite nor downtime. Every seal binds associated data (the secret
//! ARN and version id, the key id, the access key id), so a ciphertext moved
//! to another row fails to open.
//!
//! Pure: no I/O. aws-lc-rs is the crypto library; Argon2id (which it lacks)
//! comes from RustCrypto's argon2.

pub mod jws;
pub mod scram;

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
    #[error("key derivation parameters are out of range")]
    Parameters,
}

/// Fill a fresh vector from the system CSPRNG.
/// SHA-256, for fingerprints of high-entropy secrets (OAuth client secrets).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
    out
}

pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut v = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut v).map_err(|_| CryptoError::Random)?;
    Ok(v)
}

/// `bytes` as a 256-bit key, refused at any other length.
fn key_of(bytes: &[u8]) -> Result<Sensitive, CryptoError> {
    if bytes.len() != KEY_LEN {
        return Err(CryptoError::KeyLength);
    }
    Ok(Sensitive::new(bytes.to_vec()))
}

/// A fresh 256-bit key (a data key or KMS key material).
pub fn generate_key() -> Result<Sensitive, CryptoError> {
    random_bytes(KEY_LEN).map(Sensitive::new)
}

/// The key every stored key is sealed under (through purpose KEKs). It
/// lives only in memory and, sealed by the root key, in the keyring file.
pub struct MasterKey(Sensitive);

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        generate_key().map(Self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        key_of(bytes).map(Self)
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
        hkdf_expand(self.0.expose(), label)
    }
}

/// HKDF-SHA256 of `ikm`, 32 bytes for `label`.
fn hkdf_expand(ikm: &[u8], label: &str) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tumbler root key v1").extract(ikm);
    let mut out = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    // Expanding 32 bytes from SHA-256 cannot fail (limit is 255 * 32).
    prk.expand(&[label.as_bytes()], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut *out))
        .expect("HKDF-SHA256 expand of 32 bytes");
    out
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
    /// An HMAC-SHA256 key of a shared secret (a webhook's signing secret).
    pub fn from_secret(secret: &[u8]) -> MacKey {
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

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

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The root of trust. It seals the master key and nothing else, so it can
/// be replaced (`tumbler admin rotate-root-key`) by re-sealing one key.
pub struct RootKey(Sensitive);

/// Argon2id cost parameters, kept next to the salt so they can grow later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassphraseCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PassphraseCost {
    /// RFC 9106's second recommended setting (64 MiB, three passes), with
    /// one lane: the key is derived once per start, not per request.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Associated data of the sealed master key.
const KEYRING_AAD: &[u8] = b"tumbler keyring v1";

impl RootKey {
    pub fn generate() -> Result<Self, CryptoError> {
        generate_key().map(Self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        key_of(bytes).map(Self)
    }

    /// A root key stretched from a passphrase with Argon2id.
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8], cost: PassphraseCost) -> Result<Self, CryptoError> {
        let params = argon2::Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(KEY_LEN))
            .map_err(|_| CryptoError::Parameters)?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase, salt, &mut *out)
            .map_err(|_| CryptoError::Parameters)?;
        Self::from_bytes(&*out)
    }

    /// The raw key, only to write it to its file or hand it to a remote KMS.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    fn keyring_kek(&self) -> Kek {
        Kek::new(&*hkdf_expand(self.0.expose(), "keyring")).expect("32-byte key")
    }

    pub fn seal_master(&self, master: &MasterKey) -> Result<Vec<u8>, CryptoError> {
        self.keyring_kek().seal(master.0.expose(), KEYRING_AAD)
    }

    /// The master key sealed by [`Self::seal_master`]; `Authentication` if
    /// this is not the root key that sealed it.
    pub fn open_master(&self, sealed: &[u8]) -> Result<MasterKey, CryptoError> {
        let plain = self.keyring_kek().open(sealed, KEYRING_AAD)?;
        MasterKey::from_bytes(plain.expose())
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
    /// STS session tokens (held by clients, not stored).
    SessionToken,
    /// The private keys that sign OAuth access tokens (JWTs).
    OAuthSigningKey,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::KmsKeyMaterial => "kms-key-material",
            Purpose::AccessKeySecret => "access-key-secret",
            Purpose::MfaSeed => "mfa-seed",
            Purpose::SessionToken => "sts-session-token",
            Purpose::OAuthSigningKey => "oauth-signing-key",
        }
    }
}

/// An AES-256-GCM key with random nonces. Sealed form: nonce || ciphertext || tag.
/// The key schedule lives in an aws-lc `EVP_AEAD_CTX` on aws-lc's heap,
/// freed by `EVP_AEAD_CTX_free` -> `OPENSSL_free`, which cleanses the memory:
/// dropping a Kek zeroizes its key.
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

    /// Known answer for the sealed format `nonce || ciphertext || tag`
    /// (AES-256-GCM), computed independently with Python's `cryptography`
    /// (AESGCM): stored data written by any build must keep opening.
    #[test]
    fn sealed_format_known_answer() {
        let key: Vec<u8> = (0u8..32).collect();
        let sealed = hex_bytes("000102030405060708090a0b266ebf78a0c8b17eee33f2ff673d303963684eba14c94885715c7e69");
        let kek = Kek::new(&key).unwrap();
        assert_eq!(kek.open(&sealed, b"arn|v1").unwrap().expose(), b"alice-secret");
        assert_eq!(kek.open(&sealed, b"arn|v2"), Err(CryptoError::Authentication));
        // Every byte is covered: nonce, ciphertext and tag.
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x01;
            assert_eq!(
                kek.open(&flipped, b"arn|v1"),
                Err(CryptoError::Authentication),
                "byte {i}"
            );
        }
        // And what this build seals, that format opens.
        let ours = kek.seal(b"alice-secret", b"arn|v1").unwrap();
        assert_eq!(ours.len(), sealed.len());
        assert_eq!(kek.open(&ours, b"arn|v1").unwrap().expose(), b"alice-secret");
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
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
        let root = MasterKey::from_bytes(&[1u8; 32]).unwrap();
        let a = root.derive(Purpose::KmsKeyMaterial).seal(b"m", b"").unwrap();
        assert!(root.derive(Purpose::AccessKeySecret).open(&a, b"").is_err());
        assert!(root.derive(Purpose::KmsKeyMaterial).open(&a, b"").is_ok());
        assert_eq!(MasterKey::from_bytes(&[1u8; 3]).err(), Some(CryptoError::KeyLength));
    }

    #[test]
    fn only_its_root_key_opens_the_master_key() {
        let master = MasterKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        let sealed = root.seal_master(&master).unwrap();
        let opened = root.open_master(&sealed).unwrap();
        let probe = master.derive(Purpose::KmsKeyMaterial).seal(b"m", b"").unwrap();
        assert!(opened.derive(Purpose::KmsKeyMaterial).open(&probe, b"").is_ok());
        let other = RootKey::generate().unwrap();
        assert_eq!(other.open_master(&sealed).err(), Some(CryptoError::Authentication));
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(root.open_master(&flipped).err(), Some(CryptoError::Authentication));
    }

    /// Known answer: Argon2id with these inputs must never change, or
    /// every passphrase-sealed data directory would stop opening.
    #[test]
    fn passphrase_root_key_known_answer() {
        let cost = PassphraseCost {
            memory_kib: 64,
            iterations: 2,
            parallelism: 1,
        };
        let a = RootKey::from_passphrase(b"correct horse battery staple", b"tumbler-salt-0001", cost).unwrap();
        let b = RootKey::from_passphrase(b"correct horse battery staple", b"tumbler-salt-0001", cost).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(hex_of(a.expose()), KNOWN_ARGON2ID);
        let c = RootKey::from_passphrase(b"correct horse battery stapl3", b"tumbler-salt-0001", cost).unwrap();
        assert_ne!(a.expose(), c.expose());
        let bad = PassphraseCost { memory_kib: 1, ..cost };
        assert_eq!(
            RootKey::from_passphrase(b"x", b"tumbler-salt-0001", bad).err(),
            Some(CryptoError::Parameters)
        );
    }

    // Computed independently with argon2-cffi (hash_secret_raw, Type.ID).
    const KNOWN_ARGON2ID: &str = "0a6694d65a65059dc9096f98b6dd88f0badb685dd5b32b996ef58ce34ac92452";

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
