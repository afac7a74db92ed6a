//! Principals and their credentials, the IAM and STS APIs, and
//! authorization.
//!
//! - Credential lookup for SigV4: access key id -> principal + signing key
//!   ([`Identity::signing_key`]), and for temporary credentials
//!   [`Identity::session_signing_key`], which checks the session token.
//! - The IAM (users, access keys, roles, inline and managed policies) and
//!   STS (GetCallerIdentity, GetSessionToken, AssumeRole) Query APIs:
//!   [`Identity::iam_call`] and [`Identity::sts_call`].
//! - Authorization with tumbler-iam: [`Identity::authorize`].
//!
//! The secret half of an access key is sealed under a root-derived key in the
//! store (SigV4 needs the secret itself to recompute the HMAC, so it cannot
//! be hashed), and lives unsealed only in this process's cache. STS session
//! tokens are stateless: see [`token`].
//!
//! # Authorizing a request (for services)
//! ```no_run
//! # use tumbler_identity::{ContextKeys, Identity, NamedPolicy, Principal, RequestInfo, ResourcePolicy};
//! # fn check(identity: &Identity, caller: &Principal, secret_arn: &str, name: &str,
//! #          secret_policy: Option<&NamedPolicy>, peer: std::net::SocketAddr, tls: bool) -> Result<(), String> {
//! let request = RequestInfo { now: jiff::Timestamp::now(), source_ip: Some(peer.ip()), secure_transport: tls };
//! let mut keys = ContextKeys::new();
//! keys.insert("secretsmanager:Name", name);
//! let auth = identity
//!     .authorize(caller, "secretsmanager:GetSecretValue", secret_arn, &request, keys,
//!                secret_policy.map(ResourcePolicy::new))
//!     .map_err(|e| e.to_string())?;
//! if !auth.is_allowed() {
//!     // AccessDeniedException, with AWS's wording and the deciding policy.
//!     return Err(auth.message);
//! }
//! # Ok(())
//! # }
//! ```
//! `authorize` assembles the caller's policies (inline and attached managed
//! policies of the user, or of the role for role sessions, plus the session
//! policy), fills the global keys (aws:PrincipalArn, aws:username,
//! aws:userid, aws:PrincipalTag/*, aws:CurrentTime, aws:EpochTime,
//! aws:SecureTransport, aws:SourceIp) over the service's own `keys`, and
//! evaluates. The assembled policies are cached per principal and dropped
//! on every IAM change made through this node.

mod api;
mod authz;
mod simulate;
pub mod token;

pub use api::{Call, Params};
pub use authz::{Authorization, RequestInfo, ResourcePolicy};
pub use simulate::{ContextEntry, MatchedStatement, SimulationRequest, SimulationResult};
pub use tumbler_iam::{ContextKeys, Decision, NamedPolicy};

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use token::{SessionClaims, TokenError, TokenSealer};
use tumbler_crypto::{Kek, MasterKey, Purpose};
use tumbler_sigv4::SigningKey;
use tumbler_store::{AccessKeyRow, PrincipalRow, Store, StoreError, Write};
use tumbler_types::{Sensitive, SensitiveString};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] tumbler_crypto::CryptoError),
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub arn: String,
    pub account: String,
    /// AWS's UserId (`AIDA...` for users).
    pub user_id: String,
    pub name: String,
    pub kind: String,
    /// Set for temporary credentials (AssumeRole, GetSessionToken).
    pub session: Option<Arc<SessionClaims>>,
}

impl Principal {
    /// A user or role as a caller without a session (an OAuth client's
    /// principal).
    pub fn from_row(row: &PrincipalRow) -> Principal {
        Principal {
            arn: row.arn.clone(),
            account: row.account.clone(),
            user_id: row.unique_id.clone(),
            name: row.name.clone(),
            kind: row.kind.clone(),
            session: None,
        }
    }
}

struct Credential {
    principal: Arc<Principal>,
    secret: Sensitive,
    active: bool,
}

/// A credential scope as its text, `AKID/date/region/service` (the parts
/// come from splitting that text at `/`, so none holds one).
type ScopeKey = String;

/// Run `f` with the scope key of `parts`, joined on the stack: looking a
/// key up once per request should not allocate it.
fn with_scope_key<R>(parts: [&str; 4], f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 160];
    if parts.iter().map(|p| p.len() + 1).sum::<usize>() > buf.len() {
        return f(&parts.join("/"));
    }
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            buf[at] = b'/';
            at += 1;
        }
        buf[at..at + part.len()].copy_from_slice(part.as_bytes());
        at += part.len();
    }
    // Whole strings joined by an ASCII byte are UTF-8.
    f(std::str::from_utf8(&buf[..at]).unwrap_or_default())
}

/// A verified access key's principal and its signing key for one scope.
pub type SigningCredential = (Arc<Principal>, Arc<SigningKey>);

pub struct Identity {
    store: Arc<dyn Store>,
    kek: Kek,
    mfa_kek: Kek,
    credentials: RwLock<HashMap<String, Arc<Credential>>>,
    /// Derived signing keys by (access key, date, region, service): deriving
    /// costs four HMACs, verifying with a cached key one.
    signing_keys: RwLock<HashMap<ScopeKey, Arc<SigningKey>>>,
    sealer: TokenSealer,
    /// Each principal's assembled identity policies and tags.
    policies: RwLock<HashMap<String, Arc<authz::PrincipalPolicies>>>,
    /// Compiled session policies by their text, and managed session
    /// policies by `arn\0` + ARN.
    session_policies: RwLock<HashMap<String, NamedPolicy>>,
    /// Serializes IAM changes on this node (see `iam_call`).
    iam_writes: std::sync::Mutex<()>,
    /// Told of every IAM change made through this node (the Kafka ACLs
    /// follow policies).
    change_listeners: RwLock<Vec<Box<dyn Fn() + Send + Sync>>>,
    /// Bumped by every IAM change: a cache entry read from the store
    /// before a change is not kept after it (see `cache`).
    generation: std::sync::atomic::AtomicU64,
}

/// A user or role with the policies that decide what it may do: what the
/// Kafka ACL compiler reads.
pub struct PolicyHolder {
    pub arn: String,
    /// `user` or `role`.
    pub kind: String,
    pub name: String,
    pub unique_id: String,
    /// Its own policies and its groups'.
    pub identity: Vec<NamedPolicy>,
    pub boundary: Option<NamedPolicy>,
}

const MAX_CACHED_SIGNING_KEYS: usize = 10_000;
const MAX_CACHED_CREDENTIALS: usize = 100_000;

/// `AKIA` + 16 characters of AWS's access key alphabet.
pub fn new_access_key_id() -> Result<String, IdentityError> {
    Ok(format!("AKIA{}", random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)?))
}

/// 40 characters, like AWS's secret access keys.
pub fn new_secret_access_key() -> Result<SensitiveString, IdentityError> {
    Ok(SensitiveString::new(random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    )?))
}

fn random_from(alphabet: &[u8], n: usize) -> Result<String, IdentityError> {
    // 64 divides 256 and 32 divides 256, so `byte % len` is unbiased here.
    debug_assert!(256 % alphabet.len() == 0);
    let bytes = tumbler_crypto::random_bytes(n)?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

/// True for strings shaped like an access key id we could have issued.
pub fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Identity {
    pub fn new(store: Arc<dyn Store>, master: &MasterKey) -> Self {
        Self {
            store,
            kek: master.derive(Purpose::AccessKeySecret),
            mfa_kek: master.derive(Purpose::MfaSeed),
            credentials: RwLock::new(HashMap::new()),
            signing_keys: RwLock::new(HashMap::new()),
            sealer: TokenSealer::new(master),
            policies: RwLock::new(HashMap::new()),
            session_policies: RwLock::new(HashMap::new()),
            iam_writes: std::sync::Mutex::new(()),
            change_listeners: RwLock::new(Vec::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The IAM generation, read before a store read whose result is cached.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cache `value` unless IAM changed since `seen`: without the check, a
    /// read that raced a change could cache the state before it after the
    /// change had emptied the cache, and keep it until the next change.
    /// Full maps are emptied first.
    pub(crate) fn cache<K: std::hash::Hash + Eq, V>(
        &self,
        map: &RwLock<HashMap<K, V>>,
        seen: u64,
        limit: usize,
        key: K,
        value: V,
    ) {
        if let Ok(mut m) = map.write() {
            // Checked under the lock `invalidate` clears the map with.
            if self.generation() != seen {
                return;
            }
            if m.len() >= limit {
                m.clear();
            }
            m.insert(key, value);
        }
    }

    /// Call `listener` after every IAM change made through this node. It
    /// runs inside the change's call, so it should only signal.
    pub fn on_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut l) = self.change_listeners.write() {
            l.push(Box::new(listener));
        }
    }

    /// Every user and role of `account`, with its policies.
    pub fn policy_holders(&self, account: &str) -> Result<Vec<PolicyHolder>, IdentityError> {
        let mut holders = Vec::new();
        for kind in ["user", "role"] {
            for row in self.store.principals(account, kind)? {
                let policies = self.policies_of(&row.arn)?;
                holders.push(PolicyHolder {
                    identity: policies.identity.clone(),
                    boundary: policies.boundary.clone(),
                    arn: row.arn,
                    kind: row.kind,
                    name: row.name,
                    unique_id: row.unique_id,
                });
            }
        }
        Ok(holders)
    }

    /// Forget everything derived from IAM state: after any IAM change.
    fn invalidate(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut m) = self.policies.write() {
            m.clear();
        }
        if let Ok(mut m) = self.credentials.write() {
            m.clear();
        }
        if let Ok(mut m) = self.signing_keys.write() {
            m.clear();
        }
        // Managed session policies are cached here too.
        if let Ok(mut m) = self.session_policies.write() {
            m.clear();
        }
        if let Ok(listeners) = self.change_listeners.read() {
            for listener in listeners.iter() {
                listener();
            }
        }
    }

    /// Make sure the bootstrap administrator exists with this access key.
    /// Returns true if it was created now.
    pub fn ensure_bootstrap(
        &self,
        account: &str,
        access_key_id: &str,
        secret: &SensitiveString,
    ) -> Result<bool, IdentityError> {
        if let Some(existing) = self.credential(access_key_id)? {
            if existing.secret.expose() != secret.expose().as_bytes() {
                return Err(IdentityError::Conflict(format!(
                    "access key {access_key_id} already exists with a different secret"
                )));
            }
            self.ensure_admin_policy(&existing.principal.arn)?;
            return Ok(false);
        }
        let arn = format!("arn:aws:iam::{account}:user/admin");
        let now = jiff::Timestamp::now().as_millisecond();
        let mut writes = Vec::new();
        if self.store.principal(&arn)?.is_none() {
            writes.push(Write::CreatePrincipal(PrincipalRow {
                arn: arn.clone(),
                account: account.to_owned(),
                kind: "user".into(),
                name: "admin".into(),
                unique_id: format!("AIDA{}", random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17)?),
                created_ms: now,
                meta: r#"{"Path":"/","Bootstrap":true}"#.into(),
            }));
        }
        writes.push(Write::CreateAccessKey(AccessKeyRow {
            access_key_id: access_key_id.to_owned(),
            principal_arn: arn.clone(),
            status: "Active".into(),
            sealed_secret: self.kek.seal(secret.expose().as_bytes(), access_key_id.as_bytes())?,
            created_ms: now,
        }));
        self.store.apply(writes)?;
        self.ensure_admin_policy(&arn)?;
        Ok(true)
    }

    /// The bootstrap administrator has AdministratorAccess, also in stores
    /// created before IAM policies existed.
    fn ensure_admin_policy(&self, arn: &str) -> Result<(), IdentityError> {
        if self.store.principal(arn)?.is_none()
            || self
                .store
                .attached_policies(arn)?
                .iter()
                .any(|p| p == authz::ADMINISTRATOR_ACCESS)
        {
            return Ok(());
        }
        self.store.apply(vec![Write::AttachPolicy {
            principal_arn: arn.to_owned(),
            policy_arn: authz::ADMINISTRATOR_ACCESS.to_owned(),
        }])?;
        self.invalidate();
        Ok(())
    }

    fn credential(&self, access_key_id: &str) -> Result<Option<Arc<Credential>>, IdentityError> {
        if let Some(c) = self.credentials.read().ok().and_then(|m| m.get(access_key_id).cloned()) {
            return Ok(Some(c));
        }
        let seen = self.generation();
        let Some(row) = self.store.access_key(access_key_id)? else {
            return Ok(None);
        };
        let Some(p) = self.store.principal(&row.principal_arn)? else {
            return Ok(None);
        };
        let secret = self.kek.open(&row.sealed_secret, access_key_id.as_bytes())?;
        let cred = Arc::new(Credential {
            principal: Arc::new(Principal {
                arn: p.arn,
                account: p.account,
                user_id: p.unique_id,
                name: p.name,
                kind: p.kind,
                session: None,
            }),
            secret,
            active: row.status == "Active",
        });
        self.cache(
            &self.credentials,
            seen,
            MAX_CACHED_CREDENTIALS,
            access_key_id.to_owned(),
            cred.clone(),
        );
        Ok(Some(cred))
    }

    /// The principal behind an active access key and the signing key for one
    /// credential scope; None if the key is unknown or inactive.
    pub fn signing_key(
        &self,
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> Result<Option<SigningCredential>, IdentityError> {
        let seen = self.generation();
        let Some(cred) = self.credential(access_key_id)? else {
            return Ok(None);
        };
        if !cred.active {
            return Ok(None);
        }
        let parts = [access_key_id, date, region, service];
        let cached = with_scope_key(parts, |scope| {
            self.signing_keys.read().ok().and_then(|m| m.get(scope).cloned())
        });
        if let Some(k) = cached {
            return Ok(Some((cred.principal.clone(), k)));
        }
        let key = Arc::new(SigningKey::derive(cred.secret.expose(), date, region, service));
        self.cache(
            &self.signing_keys,
            seen,
            MAX_CACHED_SIGNING_KEYS,
            parts.join("/"),
            key.clone(),
        );
        Ok(Some((cred.principal.clone(), key)))
    }
}

/// The signing key and principal of temporary credentials.
pub enum SessionLookup {
    Found(SigningCredential),
    Invalid,
    Expired,
}

impl Identity {
    /// Check a session token against the access key id it was presented
    /// with, at `now`, and derive the signing key for one scope.
    pub fn session_signing_key(
        &self,
        token: &str,
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
        now: jiff::Timestamp,
    ) -> SessionLookup {
        let mut claims = match self.sealer.open(token, access_key_id, now.as_second()) {
            Ok(c) => c,
            Err(TokenError::Invalid) => return SessionLookup::Invalid,
            Err(TokenError::Expired) => return SessionLookup::Expired,
        };
        let secret = claims.secret();
        let key = Arc::new(SigningKey::derive(secret.expose().as_bytes(), date, region, service));
        claims.forget_secret();
        let kind = if claims.role_arn.is_some() {
            "assumed-role"
        } else {
            "user"
        };
        let principal = Principal {
            arn: claims.arn.clone(),
            account: claims.account.clone(),
            user_id: claims.user_id.clone(),
            name: claims.session_name.clone().unwrap_or_default(),
            kind: kind.into(),
            session: Some(Arc::new(claims)),
        };
        SessionLookup::Found((Arc::new(principal), key))
    }
}

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_are_the_scope_text_long_or_short() {
        let parts = ["AKIAEXAMPLE000000001", "20261125", "us-east-1", "secretsmanager"];
        assert_eq!(
            with_scope_key(parts, str::to_owned),
            "AKIAEXAMPLE000000001/20261125/us-east-1/secretsmanager"
        );
        let long = "s".repeat(200);
        let parts = ["AKIAEXAMPLE000000001", "20261125", "us-east-1", &long];
        assert_eq!(with_scope_key(parts, str::to_owned), parts.join("/"));
        let edge = "s".repeat(160 - 4 - 20 - 8 - 9);
        let parts = ["AKIAEXAMPLE000000001", "20261125", "us-east-1", &edge];
        assert_eq!(with_scope_key(parts, str::to_owned), parts.join("/"));
    }

    #[test]
    fn bootstrap_and_lookup() {
        let dir = std::env::temp_dir().join(format!("tumbler-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
        let id = Identity::new(store.clone(), &MasterKey::from_bytes(&[3; 32]).unwrap());
        let akid = new_access_key_id().unwrap();
        let secret = new_secret_access_key().unwrap();
        assert!(id.ensure_bootstrap("000000000000", &akid, &secret).unwrap());
        assert!(!id.ensure_bootstrap("000000000000", &akid, &secret).unwrap());
        let other = new_secret_access_key().unwrap();
        assert!(id.ensure_bootstrap("000000000000", &akid, &other).is_err());
        let (p, _) = id
            .signing_key(&akid, "20261123", "us-east-1", "secretsmanager")
            .unwrap()
            .unwrap();
        assert_eq!(p.arn, "arn:aws:iam::000000000000:user/admin");
        assert!(
            id.signing_key("AKIANOPE", "20261123", "us-east-1", "x")
                .unwrap()
                .is_none()
        );
        // The secret is not stored in plaintext.
        let row = store.access_key(&akid).unwrap().unwrap();
        assert!(!row.sealed_secret.windows(40).any(|w| w == secret.expose().as_bytes()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
