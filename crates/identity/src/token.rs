//! STS session tokens: stateless and self-authenticating. A token is the
//! session's claims (its access key id and secret, expiry, principal,
//! session policy and tags) sealed with AES-256-GCM under a key derived from
//! the master key, then base64. Any node with the master key can check one, and
//! AssumeRole writes nothing to the store.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tumbler_crypto::{Kek, MasterKey, Purpose};
use tumbler_types::SensitiveString;

/// Sealed tokens name their format, so a future format can coexist.
const FORMAT: u8 = 1;
const AAD: &[u8] = b"tumbler sts session token";

/// What a session token carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(rename = "k")]
    pub access_key_id: String,
    #[serde(rename = "s")]
    pub(crate) secret: String,
    #[serde(rename = "i")]
    pub issued_s: i64,
    #[serde(rename = "e")]
    pub expires_s: i64,
    #[serde(rename = "a")]
    pub account: String,
    /// The session's ARN: `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`,
    /// or the user's ARN for GetSessionToken.
    #[serde(rename = "p")]
    pub arn: String,
    /// `AROA...:SESSION` for role sessions, the user's `AIDA...` otherwise.
    #[serde(rename = "u")]
    pub user_id: String,
    /// Set for role sessions.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// The inline session policy passed to AssumeRole.
    #[serde(rename = "sp", default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// Managed session policies passed to AssumeRole (PolicyArns); their
    /// current default versions apply, as on AWS.
    #[serde(rename = "pa", default, skip_serializing_if = "Vec::is_empty")]
    pub policy_arns: Vec<String>,
    /// AssumeRole's SourceIdentity, kept through role chaining.
    #[serde(rename = "si", default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// When an MFA code was checked for this session (Unix seconds).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub mfa_s: Option<i64>,
}

impl std::fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClaims")
            .field("access_key_id", &self.access_key_id)
            .field("arn", &self.arn)
            .field("expires_s", &self.expires_s)
            .finish_non_exhaustive()
    }
}

impl SessionClaims {
    pub fn secret(&self) -> SensitiveString {
        SensitiveString::new(self.secret.clone())
    }

    /// Drop the secret once the signing key is derived: the claims then
    /// travel with the request's principal.
    pub(crate) fn forget_secret(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl Drop for SessionClaims {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token we issued, tampered with, or for another access key.
    Invalid,
    Expired,
}

pub(crate) struct TokenSealer(Kek);

impl TokenSealer {
    /// A key of its own, derived from the master key with a label no
    /// other use shares.
    pub(crate) fn new(master: &MasterKey) -> Self {
        Self(master.derive(Purpose::SessionToken))
    }

    pub(crate) fn seal(&self, claims: &SessionClaims) -> Result<String, tumbler_crypto::CryptoError> {
        let mut plain = serde_json::to_vec(claims).expect("claims serialise");
        let sealed = self.0.seal(&plain, AAD);
        zeroize::Zeroize::zeroize(&mut plain);
        let mut out = vec![FORMAT];
        out.extend_from_slice(&sealed?);
        Ok(STANDARD.encode(out))
    }

    /// The claims of `token` if it is ours, names `access_key_id`, and has
    /// not expired at `now_s`.
    pub(crate) fn open(&self, token: &str, access_key_id: &str, now_s: i64) -> Result<SessionClaims, TokenError> {
        let raw = STANDARD.decode(token.trim()).map_err(|_| TokenError::Invalid)?;
        let (format, sealed) = raw.split_first().ok_or(TokenError::Invalid)?;
        if *format != FORMAT {
            return Err(TokenError::Invalid);
        }
        let plain = self.0.open(sealed, AAD).map_err(|_| TokenError::Invalid)?;
        let claims: SessionClaims = serde_json::from_slice(plain.expose()).map_err(|_| TokenError::Invalid)?;
        if claims.access_key_id != access_key_id {
            return Err(TokenError::Invalid);
        }
        if now_s >= claims.expires_s {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
            secret: "s3cret".into(),
            issued_s: 1_000,
            expires_s: 1_900,
            account: "000000000000".into(),
            arn: "arn:aws:sts::000000000000:assumed-role/r/s".into(),
            user_id: "AROAX:s".into(),
            role_arn: Some("arn:aws:iam::000000000000:role/r".into()),
            session_name: Some("s".into()),
            session_policy: None,
            tags: vec![("team".into(), "blue".into())],
            policy_arns: Vec::new(),
            source_identity: None,
            mfa_s: None,
        }
    }

    #[test]
    fn round_trip_expiry_and_tampering() {
        let sealer = TokenSealer::new(&MasterKey::from_bytes(&[7; 32]).unwrap());
        let token = sealer.seal(&claims()).unwrap();
        assert!(!token.contains("s3cret"));
        assert_eq!(sealer.open(&token, "ASIAAAAAAAAAAAAAAAAA", 1_899).unwrap(), claims());
        assert_eq!(
            sealer.open(&token, "ASIAAAAAAAAAAAAAAAAA", 1_900),
            Err(TokenError::Expired)
        );
        assert_eq!(
            sealer.open(&token, "ASIABBBBBBBBBBBBBBBB", 1_000),
            Err(TokenError::Invalid)
        );
        let mut raw = STANDARD.decode(&token).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            sealer.open(&STANDARD.encode(raw), "ASIAAAAAAAAAAAAAAAAA", 1_000),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            sealer.open("garbage", "ASIAAAAAAAAAAAAAAAAA", 1_000),
            Err(TokenError::Invalid)
        );
        // Another root key cannot open it.
        let other = TokenSealer::new(&MasterKey::from_bytes(&[8; 32]).unwrap());
        assert_eq!(
            other.open(&token, "ASIAAAAAAAAAAAAAAAAA", 1_000),
            Err(TokenError::Invalid)
        );
    }
}
