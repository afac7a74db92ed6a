//! The keys that sign access tokens: one current ES256 key and one current
//! RS256 key. The newest of an algorithm signs; a key is replaced after
//! `ROTATE_AFTER` (or when an operator rotates it). Its successor is in the
//! JWKS `PUBLISH_AHEAD` before it signs, so brokers (which re-read the JWKS
//! hourly by default) know it before its first token; a replaced key stays
//! in the JWKS until every token it signed has expired (`MAX_LIFETIME`
//! after it was replaced, and a margin), so brokers can still verify them;
//! an operator who fears a key leaked retires it at once instead. Private
//! keys are kept sealed under the master key (AAD: the key id), as
//! resource rows of kind `oauth-signing-key`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tumbler_crypto::Kek;
use tumbler_crypto::jws::{Es256Key, Rs256Key};
use tumbler_store::{ResourceRow, Store, Write};

const KIND: &str = "oauth-signing-key";
/// Signing keys belong to the server, not to an account.
const OWNER: &str = "tumbler";
pub const ROTATE_AFTER_MS: i64 = 30 * 86_400_000;
/// How long the next key is published before it signs.
pub const PUBLISH_AHEAD_MS: i64 = 2 * 3_600_000;
/// The longest a token lives; a replaced key is kept this long (and a margin).
pub const MAX_LIFETIME_S: u64 = 3600;
/// Covers clock skew and the brokers' JWKS caches.
const RETIRE_MARGIN_MS: i64 = 5 * 60_000;

/// A JWS algorithm Tumbler signs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    ES256,
    RS256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::ES256, Algorithm::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    kid: String,
    /// Keys made before RS256 existed are ES256.
    #[serde(default)]
    alg: Algorithm,
    created_ms: i64,
    /// When a newer key took over (then it only verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaced_ms: Option<i64>,
    /// When it starts signing, if later than its creation (a successor
    /// published ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_ms: Option<i64>,
    /// PKCS#8, sealed (base64).
    sealed: String,
    /// The public JWK's members: `x`, `y` (EC) or `n`, `e` (RSA), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

impl StoredKey {
    fn jwk(&self) -> Value {
        match self.alg {
            Algorithm::ES256 => json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
                "kid": self.kid, "use": "sig", "alg": "ES256"}),
            Algorithm::RS256 => json!({"kty": "RSA", "n": self.n, "e": self.e,
                "kid": self.kid, "use": "sig", "alg": "RS256"}),
        }
    }

    fn active(&self) -> i64 {
        self.active_ms.unwrap_or(self.created_ms)
    }

    /// Whether a token it signed may still be alive.
    fn verifies(&self, now_ms: i64) -> bool {
        self.replaced_ms
            .is_none_or(|at| now_ms - at <= MAX_LIFETIME_S as i64 * 1000 + RETIRE_MARGIN_MS)
    }
}

enum Signer {
    Es256(Es256Key),
    Rs256(Rs256Key),
}

pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    key: Signer,
}

impl SigningKey {
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match &self.key {
            Signer::Es256(k) => k.sign(message),
            Signer::Rs256(k) => k.sign(message),
        }
        .map_err(|e| e.to_string())
    }
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    kek: Kek,
    /// Per algorithm, the signing key, its creation time, and when it was
    /// read: re-read every minute, so a key another node rotated in is
    /// picked up long before the replaced one leaves the JWKS.
    current: Mutex<HashMap<Algorithm, CachedKey>>,
}

/// A signing key, when it was created, and when it was read.
type CachedKey = (Arc<SigningKey>, i64, i64);

const REREAD_MS: i64 = 60_000;

fn arn(kid: &str) -> String {
    format!("arn:aws:tumbler:::oauth-signing-key/{kid}")
}

impl KeyRing {
    pub fn new(store: Arc<dyn Store>, kek: Kek) -> Self {
        KeyRing {
            store,
            kek,
            current: Mutex::new(HashMap::new()),
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

    /// The key that signs `alg` now: the newest active one. Its successor
    /// is published when it is due; a key is replaced at once only when
    /// none is (the first key, or a server that was down past the date).
    pub fn current(&self, now_ms: i64, alg: Algorithm) -> Result<Arc<SigningKey>, String> {
        let mut cached = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((key, active, read)) = cached.get(&alg)
            && now_ms - active < ROTATE_AFTER_MS
            && (0..REREAD_MS).contains(&(now_ms - read))
        {
            return Ok(key.clone());
        }
        let keys = self.stored();
        let live = |k: &StoredKey| k.alg == alg && k.replaced_ms.is_none();
        let signing = keys.iter().rev().find(|(_, k)| live(k) && k.active() <= now_ms);
        let (key, active) = match signing {
            Some((_, k)) if now_ms - k.active() < ROTATE_AFTER_MS => {
                self.retire_predecessors(&keys, k);
                let due = now_ms - k.active() >= ROTATE_AFTER_MS - PUBLISH_AHEAD_MS;
                if due && !keys.iter().any(|(_, n)| live(n) && n.active() > k.active()) {
                    self.publish_successor(alg, now_ms, k.active() + ROTATE_AFTER_MS);
                }
                (self.open(k)?, k.active())
            }
            _ => self.rotate(&keys, alg, now_ms, false)?.0,
        };
        let key = Arc::new(key);
        cached.insert(alg, (key.clone(), active, now_ms));
        Ok(key)
    }

    /// Mark the older keys of `signing`'s algorithm replaced when it took
    /// over (once: they are then no longer unreplaced). Best effort: the
    /// next read tries again.
    fn retire_predecessors(&self, keys: &[(ResourceRow, StoredKey)], signing: &StoredKey) {
        let mut writes = Vec::new();
        for (row, old) in keys {
            if old.alg == signing.alg && old.replaced_ms.is_none() && old.created_ms < signing.created_ms {
                let mut replaced = serde_json::to_value(old).unwrap_or(Value::Null);
                replaced["replacedMs"] = json!(signing.active());
                writes.push(Write::UpdateResource(ResourceRow {
                    meta: replaced.to_string(),
                    ..row.clone()
                }));
            }
        }
        if !writes.is_empty()
            && let Err(e) = self.store.apply(writes)
        {
            tracing::info!(error = %e, "marking replaced signing keys raced; the next read does it");
        }
    }

    /// Publish the key that signs from `active_ms` (best effort: the next
    /// read tries again; two nodes racing publish two, and the newer wins).
    fn publish_successor(&self, alg: Algorithm, now_ms: i64, active_ms: i64) {
        match self.new_key(alg, now_ms, Some(active_ms)) {
            Ok((_, row)) => match self.store.apply(vec![Write::CreateResource(row)]) {
                Ok(_) => tracing::info!(alg = alg.as_str(), active_ms, "next OAuth signing key published"),
                Err(e) => tracing::warn!(error = %e, "the next OAuth signing key was not stored"),
            },
            Err(e) => tracing::warn!(error = %e, "the next OAuth signing key was not made"),
        }
    }

    /// Replace the `alg` key now (an operator's rotation): the new key's id,
    /// and the ids of the keys retired at once (with `retire_replaced`, every
    /// older `alg` key: tokens they signed stop verifying once brokers
    /// refresh their JWKS; other nodes sign with the new key within a minute).
    pub fn rotate_now(
        &self,
        alg: Algorithm,
        now_ms: i64,
        retire_replaced: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut cached = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let keys = self.stored();
        let ((key, created), retired) = self.rotate(&keys, alg, now_ms, retire_replaced)?;
        let kid = key.kid.clone();
        cached.insert(alg, (Arc::new(key), created, now_ms));
        Ok((kid, retired))
    }

    fn open(&self, stored: &StoredKey) -> Result<SigningKey, String> {
        let sealed = STANDARD
            .decode(&stored.sealed)
            .map_err(|_| "a signing key is not base64")?;
        let pkcs8 = self
            .kek
            .open(&sealed, stored.kid.as_bytes())
            .map_err(|e| format!("a signing key does not open: {e}"))?;
        let key = match stored.alg {
            Algorithm::ES256 => Signer::Es256(Es256Key::from_pkcs8(pkcs8.expose()).map_err(|e| e.to_string())?),
            Algorithm::RS256 => Signer::Rs256(Rs256Key::from_pkcs8(pkcs8.expose()).map_err(|e| e.to_string())?),
        };
        Ok(SigningKey {
            kid: stored.kid.clone(),
            alg: stored.alg,
            key,
        })
    }

    /// A new `alg` key, signing from `active_ms` (or at once), and its row.
    fn new_key(
        &self,
        alg: Algorithm,
        now_ms: i64,
        active_ms: Option<i64>,
    ) -> Result<(SigningKey, ResourceRow), String> {
        let kid = uuid::Uuid::new_v4().simple().to_string();
        let mut stored = StoredKey {
            kid: kid.clone(),
            alg,
            created_ms: now_ms,
            replaced_ms: None,
            active_ms,
            sealed: String::new(),
            x: None,
            y: None,
            n: None,
            e: None,
        };
        let (key, pkcs8) = match alg {
            Algorithm::ES256 => {
                let (key, pkcs8) = Es256Key::generate().map_err(|e| e.to_string())?;
                let (x, y) = key.public_xy();
                stored.x = Some(URL_SAFE_NO_PAD.encode(x));
                stored.y = Some(URL_SAFE_NO_PAD.encode(y));
                (Signer::Es256(key), pkcs8)
            }
            Algorithm::RS256 => {
                let (key, pkcs8) = Rs256Key::generate().map_err(|e| e.to_string())?;
                let (n, e) = key.public_ne();
                stored.n = Some(URL_SAFE_NO_PAD.encode(n));
                stored.e = Some(URL_SAFE_NO_PAD.encode(e));
                (Signer::Rs256(key), pkcs8)
            }
        };
        let sealed = self
            .kek
            .seal(pkcs8.expose(), kid.as_bytes())
            .map_err(|e| e.to_string())?;
        stored.sealed = STANDARD.encode(sealed);
        let row = ResourceRow {
            arn: arn(&kid),
            kind: KIND.into(),
            account: OWNER.into(),
            region: OWNER.into(),
            name: kid.clone(),
            created_ms: now_ms,
            revision: 0,
            meta: serde_json::to_string(&stored).unwrap_or_default(),
        };
        Ok((SigningKey { kid, alg, key }, row))
    }

    /// A new `alg` key; the older ones marked replaced (or, retiring,
    /// deleted), and every key replaced long enough ago that no token it
    /// signed is alive deleted. Returns the key and the retired key ids.
    #[allow(clippy::type_complexity)]
    fn rotate(
        &self,
        keys: &[(ResourceRow, StoredKey)],
        alg: Algorithm,
        now_ms: i64,
        retire: bool,
    ) -> Result<((SigningKey, i64), Vec<String>), String> {
        let (key, row) = self.new_key(alg, now_ms, None)?;
        let kid = key.kid.clone();
        let mut writes = vec![Write::CreateResource(row)];
        let mut retired = Vec::new();
        for (row, old) in keys {
            if old.alg == alg && old.active() > now_ms {
                // A successor published ahead: it never signed, and this
                // key takes its place.
                writes.push(Write::DeleteResource { arn: row.arn.clone() });
            } else if (retire && old.alg == alg) || !old.verifies(now_ms) {
                writes.push(Write::DeleteResource { arn: row.arn.clone() });
                if old.verifies(now_ms) {
                    retired.push(old.kid.clone());
                }
            } else if old.alg == alg && old.replaced_ms.is_none() {
                let mut replaced = serde_json::to_value(old).unwrap_or(Value::Null);
                replaced["replacedMs"] = json!(now_ms);
                writes.push(Write::UpdateResource(ResourceRow {
                    meta: replaced.to_string(),
                    ..row.clone()
                }));
            }
        }
        if let Err(e) = self.store.apply(writes) {
            if retire {
                return Err(format!("the signing keys changed meanwhile ({e}); try again"));
            }
            // Two nodes rotating at once: one wins, the other uses its key.
            tracing::info!(error = %e, "signing key rotation raced; using the stored key");
            let keys = self.stored();
            let (_, newest) = keys
                .iter()
                .rev()
                .find(|(_, k)| k.alg == alg && k.replaced_ms.is_none() && k.active() <= now_ms)
                .ok_or("no signing key")?;
            return Ok(((self.open(newest)?, newest.active()), Vec::new()));
        }
        tracing::info!(kid = %kid, alg = alg.as_str(), retired = ?retired, "new OAuth signing key");
        Ok(((key, now_ms), retired))
    }

    /// The JWKS: every key that signs or still verifies live tokens.
    pub fn jwks(&self, now_ms: i64) -> Value {
        // The signing keys first exist when they are first needed, and a
        // broker must know a key before it sees a token it signed.
        for alg in Algorithm::ALL {
            let _ = self.current(now_ms, alg);
        }
        let keys: Vec<Value> = self
            .stored()
            .iter()
            .rev()
            .filter(|(_, k)| k.verifies(now_ms))
            .map(|(_, k)| k.jwk())
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

    /// The ES256 kids of a JWKS, newest first.
    fn es256(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "ES256")
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_next_key_is_published_before_it_signs() {
        let (ring, dir) = ring("publish");
        let es = Algorithm::ES256;
        let t0 = 1_800_000_000_000;
        let first = ring.current(t0, es).unwrap();
        let due = t0 + ROTATE_AFTER_MS - PUBLISH_AHEAD_MS;
        assert_eq!(ring.current(due - 1, es).unwrap().kid, first.kid);
        assert_eq!(es256(&ring.jwks(due - 1)), std::slice::from_ref(&first.kid));
        // Due: the successor is in the JWKS, the first key still signs.
        let later = due + REREAD_MS;
        assert_eq!(ring.current(later, es).unwrap().kid, first.kid);
        let published = es256(&ring.jwks(later));
        assert_eq!(published.len(), 2);
        assert_eq!(published[1], first.kid);
        let next = published[0].clone();
        let switch = t0 + ROTATE_AFTER_MS;
        assert_eq!(ring.current(switch - 1, es).unwrap().kid, first.kid);
        assert_eq!(es256(&ring.jwks(switch - 1)).len(), 2, "published once");
        // It signs from then on; the first key stays while its tokens live.
        assert_eq!(ring.current(switch + REREAD_MS, es).unwrap().kid, next);
        let gone = switch + MAX_LIFETIME_S as i64 * 1000 + RETIRE_MARGIN_MS;
        assert_eq!(es256(&ring.jwks(gone)), [next.clone(), first.kid.clone()]);
        assert_eq!(es256(&ring.jwks(gone + 1)), std::slice::from_ref(&next));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn keys_rotate_and_stay_in_the_jwks_while_their_tokens_live() {
        let (ring, dir) = ring("rotate");
        let es = Algorithm::ES256;
        let t0 = 1_800_000_000_000;
        let first = ring.current(t0, es).unwrap();
        assert_eq!(
            ring.current(t0 + 1000, es).unwrap().kid,
            first.kid,
            "no rotation before it is due"
        );
        assert_eq!(es256(&ring.jwks(t0)), std::slice::from_ref(&first.kid));
        assert_eq!(kids(&ring.jwks(t0)).len(), 2, "an ES256 and an RS256 key");

        let t1 = t0 + ROTATE_AFTER_MS + 1;
        let second = ring.current(t1, es).unwrap();
        assert_ne!(second.kid, first.kid);
        // The newest first; the replaced key still verifies tokens it signed.
        assert_eq!(es256(&ring.jwks(t1)), [second.kid.clone(), first.kid.clone()]);
        let live_until = t1 + MAX_LIFETIME_S as i64 * 1000 + RETIRE_MARGIN_MS;
        assert_eq!(es256(&ring.jwks(live_until)).len(), 2);
        assert_eq!(es256(&ring.jwks(live_until + 1)), std::slice::from_ref(&second.kid));

        // The next rotation deletes it; a restarted ring opens the sealed key.
        let t2 = t1 + ROTATE_AFTER_MS + 1;
        let third = ring.current(t2, es).unwrap();
        let stored: Vec<StoredKey> = ring
            .stored()
            .into_iter()
            .map(|(_, k)| k)
            .filter(|k| k.alg == es)
            .collect();
        assert_eq!(stored.len(), 2);
        let reopened = ring.open(&stored[1]).unwrap();
        assert_eq!(reopened.kid, third.kid);
        let sig = reopened.sign(b"m").unwrap();
        assert!(tumbler_crypto::jws::verify_es256(
            &URL_SAFE_NO_PAD.decode(stored[1].x.as_ref().unwrap()).unwrap(),
            &URL_SAFE_NO_PAD.decode(stored[1].y.as_ref().unwrap()).unwrap(),
            b"m",
            &sig
        ));

        // An operator's rotation keeps the old key for its tokens; retiring
        // drops every older key of the algorithm at once, and no other.
        let rs = ring.current(t2, Algorithm::RS256).unwrap();
        let (fourth, retired) = ring.rotate_now(es, t2 + 1, false).unwrap();
        assert!(retired.is_empty());
        assert_eq!(
            es256(&ring.jwks(t2 + 2)),
            [fourth.clone(), third.kid.clone(), second.kid.clone()]
        );
        let (fifth, retired) = ring.rotate_now(es, t2 + 3, true).unwrap();
        assert_eq!(retired, [second.kid.clone(), third.kid.clone(), fourth.clone()]);
        assert_eq!(es256(&ring.jwks(t2 + 4)), std::slice::from_ref(&fifth));
        assert_eq!(ring.current(t2 + 5, es).unwrap().kid, fifth);
        assert!(kids(&ring.jwks(t2 + 6)).contains(&rs.kid));
        let _ = std::fs::remove_dir_all(dir);
    }
}
