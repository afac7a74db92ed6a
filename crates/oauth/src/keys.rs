//! The ES256 keys that sign access tokens. The newest signs; a key is
//! replaced after `ROTATE_AFTER`, and a replaced key stays in the JWKS until
//! every token it signed has expired (`MAX_LIFETIME` after it was replaced),
//! so brokers can still verify them. Private keys are kept sealed under the
//! master key (AAD: the key id), as resource rows of kind `oauth-signing-key`.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tumbler_crypto::Kek;
use tumbler_crypto::jws::Es256Key;
use tumbler_store::{ResourceRow, Store, Write};

const KIND: &str = "oauth-signing-key";
/// Signing keys belong to the server, not to an account.
const OWNER: &str = "tumbler";
pub const ROTATE_AFTER_MS: i64 = 30 * 86_400_000;
/// The longest a token lives; a replaced key is kept this long (and a margin).
pub const MAX_LIFETIME_S: u64 = 3600;
const RETIRE_MARGIN_MS: i64 = 5 * 60_000;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    kid: String,
    created_ms: i64,
    /// When a newer key took over (then it only verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaced_ms: Option<i64>,
    /// PKCS#8, sealed (base64).
    sealed: String,
    x: String,
    y: String,
}

pub struct SigningKey {
    pub kid: String,
    key: Es256Key,
}

impl SigningKey {
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.key.sign(message).map_err(|e| e.to_string())
    }
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    kek: Kek,
    /// The signing key, its creation time, and when it was read: re-read
    /// every minute, so a key another node rotated in is picked up long
    /// before the replaced one leaves the JWKS.
    current: Mutex<Option<(Arc<SigningKey>, i64, i64)>>,
}

const REREAD_MS: i64 = 60_000;

fn arn(kid: &str) -> String {
    format!("arn:aws:tumbler:::oauth-signing-key/{kid}")
}

impl KeyRing {
    pub fn new(store: Arc<dyn Store>, kek: Kek) -> Self {
        KeyRing {
            store,
            kek,
            current: Mutex::new(None),
        }
    }

    fn stored(&self) -> Vec<(ResourceRow, StoredKey)> {
        let mut keys: Vec<(ResourceRow, StoredKey)> = self
            .store
            .resources_of_kind(KIND)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| {
                let key = serde_json::from_str(&row.meta).ok()?;
                Some((row, key))
            })
            .collect();
        keys.sort_by_key(|(_, k)| k.created_ms);
        keys
    }

    /// The key that signs now: the newest, replaced (and old keys retired)
    /// when it is due.
    pub fn current(&self, now_ms: i64) -> Result<Arc<SigningKey>, String> {
        let mut cached = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((key, created, read)) = cached.as_ref()
            && now_ms - created < ROTATE_AFTER_MS
            && (0..REREAD_MS).contains(&(now_ms - read))
        {
            return Ok(key.clone());
        }
        let keys = self.stored();
        let newest = keys.iter().rev().find(|(_, k)| k.replaced_ms.is_none());
        let (key, created) = match newest {
            Some((_, k)) if now_ms - k.created_ms < ROTATE_AFTER_MS => (self.open(k)?, k.created_ms),
            _ => self.rotate(&keys, now_ms)?,
        };
        let key = Arc::new(key);
        *cached = Some((key.clone(), created, now_ms));
        Ok(key)
    }

    fn open(&self, stored: &StoredKey) -> Result<SigningKey, String> {
        let sealed = STANDARD
            .decode(&stored.sealed)
            .map_err(|_| "a signing key is not base64")?;
        let pkcs8 = self
            .kek
            .open(&sealed, stored.kid.as_bytes())
            .map_err(|e| format!("a signing key does not open: {e}"))?;
        let key = Es256Key::from_pkcs8(pkcs8.expose()).map_err(|e| e.to_string())?;
        Ok(SigningKey {
            kid: stored.kid.clone(),
            key,
        })
    }

    /// A new key; the others marked replaced, and those replaced long enough
    /// ago that no token they signed is alive, deleted.
    fn rotate(&self, keys: &[(ResourceRow, StoredKey)], now_ms: i64) -> Result<(SigningKey, i64), String> {
        let (key, pkcs8) = Es256Key::generate().map_err(|e| e.to_string())?;
        let kid = uuid::Uuid::new_v4().simple().to_string();
        let sealed = self
            .kek
            .seal(pkcs8.expose(), kid.as_bytes())
            .map_err(|e| e.to_string())?;
        let (x, y) = key.public_xy();
        let stored = StoredKey {
            kid: kid.clone(),
            created_ms: now_ms,
            replaced_ms: None,
            sealed: STANDARD.encode(sealed),
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        };
        let mut writes = vec![Write::CreateResource(ResourceRow {
            arn: arn(&kid),
            kind: KIND.into(),
            account: OWNER.into(),
            region: OWNER.into(),
            name: kid.clone(),
            created_ms: now_ms,
            revision: 0,
            meta: serde_json::to_string(&stored).unwrap_or_default(),
        })];
        for (row, old) in keys {
            match old.replaced_ms {
                Some(at) if now_ms - at > MAX_LIFETIME_S as i64 * 1000 + RETIRE_MARGIN_MS => {
                    writes.push(Write::DeleteResource { arn: row.arn.clone() });
                }
                Some(_) => {}
                None => {
                    let mut replaced = serde_json::to_value(old).unwrap_or(Value::Null);
                    replaced["replacedMs"] = json!(now_ms);
                    writes.push(Write::UpdateResource(ResourceRow {
                        meta: replaced.to_string(),
                        ..row.clone()
                    }));
                }
            }
        }
        // Two nodes rotating at once: one wins, the other uses its key.
        if let Err(e) = self.store.apply(writes) {
            tracing::info!(error = %e, "signing key rotation raced; using the stored key");
            let keys = self.stored();
            let (_, newest) = keys
                .iter()
                .rev()
                .find(|(_, k)| k.replaced_ms.is_none())
                .ok_or("no signing key")?;
            return Ok((self.open(newest)?, newest.created_ms));
        }
        tracing::info!(kid = %kid, "new OAuth signing key");
        Ok((SigningKey { kid, key }, now_ms))
    }

    /// The JWKS: every key that signs or still verifies live tokens.
    pub fn jwks(&self, now_ms: i64) -> Value {
        // The signing key first exists when it is first needed.
        let _ = self.current(now_ms);
        let keys: Vec<Value> = self
            .stored()
            .iter()
            .rev()
            .filter(|(_, k)| {
                k.replaced_ms
                    .is_none_or(|at| now_ms - at <= MAX_LIFETIME_S as i64 * 1000 + RETIRE_MARGIN_MS)
            })
            .map(|(_, k)| json!({"kty": "EC", "crv": "P-256", "x": k.x, "y": k.y, "kid": k.kid, "use": "sig", "alg": "ES256"}))
            .collect();
        json!({"keys": keys})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(tag: &str) -> (KeyRing, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tumbler-oauth-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
        let master = tumbler_crypto::MasterKey::from_bytes(&[7; 32]).unwrap();
        (
            KeyRing::new(store, master.derive(tumbler_crypto::Purpose::OAuthSigningKey)),
            dir,
        )
    }

    fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn keys_rotate_and_stay_in_the_jwks_while_their_tokens_live() {
        let (ring, dir) = ring("rotate");
        let t0 = 1_800_000_000_000;
        let first = ring.current(t0).unwrap();
        assert_eq!(
            ring.current(t0 + 1000).unwrap().kid,
            first.kid,
            "no rotation before it is due"
        );
        assert_eq!(kids(&ring.jwks(t0)), std::slice::from_ref(&first.kid));

        let t1 = t0 + ROTATE_AFTER_MS + 1;
        let second = ring.current(t1).unwrap();
        assert_ne!(second.kid, first.kid);
        // The newest first; the replaced key still verifies tokens it signed.
        assert_eq!(kids(&ring.jwks(t1)), [second.kid.clone(), first.kid.clone()]);
        let live_until = t1 + MAX_LIFETIME_S as i64 * 1000 + RETIRE_MARGIN_MS;
        assert_eq!(kids(&ring.jwks(live_until)).len(), 2);
        assert_eq!(kids(&ring.jwks(live_until + 1)), std::slice::from_ref(&second.kid));

        // The next rotation deletes it; a restarted ring opens the sealed key.
        let third = ring.current(t1 + ROTATE_AFTER_MS + 1).unwrap();
        assert_eq!(ring.stored().len(), 2);
        let (x, y) = (ring.stored()[1].1.x.clone(), ring.stored()[1].1.y.clone());
        let reopened = ring.open(&ring.stored()[1].1).unwrap();
        assert_eq!(reopened.kid, third.kid);
        let sig = reopened.sign(b"m").unwrap();
        assert!(tumbler_crypto::jws::verify_es256(
            &URL_SAFE_NO_PAD.decode(x).unwrap(),
            &URL_SAFE_NO_PAD.decode(y).unwrap(),
            b"m",
            &sig
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
