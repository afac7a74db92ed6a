//! OAuth clients: each stands for one IAM user or role, which becomes the
//! token's subject (`sub`, the Kafka principal `User:<name>`). The secret
//! is shown once; only its SHA-256 is kept (it is 40 random characters, so
//! a fast hash is enough), compared in constant time.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub const KIND: &str = "oauth-client";
pub const DEFAULT_LIFETIME_S: u64 = 900;
pub const DEFAULT_SCOPE: &str = "kafka";
/// Client ids and secrets use only characters that need no encoding in a
/// Basic header or a form, so every client sends them the same way.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub client_id: String,
    pub principal_arn: String,
    pub secret_sha256: String,
    pub scopes: Vec<String>,
    pub lifetime_s: u64,
    /// What signs its tokens (clients made before RS256 existed: ES256).
    #[serde(default)]
    pub algorithm: crate::keys::Algorithm,
}

impl Client {
    pub fn arn(region: &str, account: &str, id: &str) -> String {
        format!("arn:aws:tumbler:{region}:{account}:oauth-client/{id}")
    }

    pub fn secret_matches(&self, secret: &str) -> bool {
        let given = hex::encode(tumbler_crypto::sha256(secret.as_bytes()));
        given.as_bytes().ct_eq(self.secret_sha256.as_bytes()).into()
    }
}

/// `n` random characters of the unreserved alphabet.
pub fn random_text(n: usize) -> Result<String, String> {
    let bytes = tumbler_crypto::random_bytes(n * 2).map_err(|e| e.to_string())?;
    // Rejection sampling keeps the characters uniform.
    let limit = 256 - 256 % ALPHABET.len();
    let out: String = bytes
        .iter()
        .filter(|b| usize::from(**b) < limit)
        .take(n)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    if out.len() < n {
        return random_text(n);
    }
    Ok(out)
}
