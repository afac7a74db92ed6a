//! Tumbler's key service: KMS keys whose material is sealed by the root key,
//! and data-key wrapping bound to an encryption context.
//!
//! Today it holds the AWS-managed default key `alias/aws/secretsmanager`,
//! created per account and region on first use; the KMS API (customer keys,
//! aliases, policies, rotation) builds on the same store tables.
//!
//! Ciphertext blob (what AWS calls CiphertextBlob), version 1:
//! `0x01 | key id (36 ASCII bytes, a UUID) | material version (u32 BE) | nonce | sealed key | tag`.
//! It names its key and key material, so rotated keys still open old data.

mod api;

pub use api::{CustomerKey, KeyAuthorizer, KmsCtx, ServiceEvent, is_read_only};

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tumbler_crypto::{Kek, MasterKey, Purpose};
use tumbler_store::{KmsKeyRow, Store, StoreError, Write};
use tumbler_types::Sensitive;

pub const SECRETS_MANAGER_ALIAS: &str = "alias/aws/secretsmanager";
const BLOB_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 36;

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Disabled(String),
    #[error("the ciphertext refers to a key or context that does not match")]
    InvalidCiphertext,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] tumbler_crypto::CryptoError),
}

/// A resolved key: its id and ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub key_id: String,
    pub arn: String,
    /// True for AWS-managed keys (the default `aws/secretsmanager` key).
    pub aws_managed: bool,
}

/// Encryption context: sorted key/value pairs, authenticated with the data key.
pub type EncryptionContext<'a> = &'a [(&'a str, &'a str)];

fn context_aad(key_id: &str, version: u32, ctx: EncryptionContext<'_>) -> Vec<u8> {
    let mut pairs: Vec<_> = ctx.to_vec();
    pairs.sort();
    let mut aad = Vec::new();
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    for (k, v) in pairs {
        // Length-prefixed, so no two contexts serialise alike.
        for part in [k, v] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
    }
    aad
}

pub struct Kms {
    store: Arc<dyn Store>,
    material_kek: Kek,
    /// Unsealed key material by (key id, version): unsealing costs an AEAD
    /// open and a key schedule, and it sits on every GetSecretValue.
    material: RwLock<HashMap<(String, u32), Arc<Kek>>>,
    /// Unwrapped data keys, ready for AES-GCM, by their ciphertext blob.
    /// Reading a secret would otherwise unwrap its data key and expand its
    /// key schedule on every call. The key state is checked on every use
    /// all the same, so disabling a key takes effect at once.
    data_keys: RwLock<HashMap<Box<[u8]>, Arc<PreparedDataKey>>>,
    /// Compiled key policies by key id, with the text they were compiled from.
    policies: RwLock<HashMap<String, (String, tumbler_iam::NamedPolicy)>>,
    /// Held across a read-modify-write of a key's `meta` (grants, tags),
    /// so that two such calls cannot lose one another's change.
    key_writes: std::sync::Mutex<()>,
}

/// A data key ready to use, and the encryption context it was unwrapped
/// under: a blob copied next to another context must not find it.
struct PreparedDataKey {
    aad: Vec<u8>,
    key: Arc<Kek>,
}

/// Bound on [`Kms::data_keys`]: a few MB of prepared keys.
const MAX_CACHED_DATA_KEYS: usize = 4096;

impl Kms {
    pub fn new(store: Arc<dyn Store>, master: &MasterKey) -> Self {
        Self {
            store,
            material_kek: master.derive(Purpose::KmsKeyMaterial),
            material: RwLock::new(HashMap::new()),
            data_keys: RwLock::new(HashMap::new()),
            policies: RwLock::new(HashMap::new()),
            key_writes: std::sync::Mutex::new(()),
        }
    }

    /// The default `aws/secretsmanager` key of an account and region,
    /// created on first use.
    pub fn default_secrets_key(&self, account: &str, region: &str) -> Result<KeyRef, KmsError> {
        if let Some(k) = self.by_alias(account, region, SECRETS_MANAGER_ALIAS)? {
            return Ok(k);
        }
        let key_id = uuid::Uuid::new_v4().to_string();
        let arn = format!("arn:aws:kms:{region}:{account}:key/{key_id}");
        let material = tumbler_crypto::generate_key()?;
        let wrapped = self.material_kek.seal(material.expose(), &material_aad(&key_id, 1))?;
        let row = KmsKeyRow {
            key_id: key_id.clone(),
            account: account.to_owned(),
            region: region.to_owned(),
            arn,
            key_manager: "AWS".into(),
            state: "Enabled".into(),
            created_ms: jiff::Timestamp::now().as_millisecond(),
            current_material: 1,
            meta: r#"{"Description":"Default key that protects my Secrets Manager data when no other key is defined"}"#
                .into(),
        };
        match self.store.apply(vec![Write::CreateKmsKey {
            key: row,
            wrapped_material: wrapped,
            aliases: vec![SECRETS_MANAGER_ALIAS.into()],
        }]) {
            Ok(_) => {}
            // Another request created it first; use theirs.
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.by_alias(account, region, SECRETS_MANAGER_ALIAS)?
            .ok_or_else(|| KmsError::NotFound("the default key vanished after creation".into()))
    }

    fn by_alias(&self, account: &str, region: &str, alias: &str) -> Result<Option<KeyRef>, KmsError> {
        let Some(id) = self.store.kms_alias(account, region, alias)? else {
            return Ok(None);
        };
        Ok(self.store.kms_key(&id)?.map(key_ref))
    }

    /// Resolve a key id, key ARN, alias name or alias ARN in the caller's
    /// account and region, as KMS does.
    pub fn resolve(&self, account: &str, region: &str, reference: &str) -> Result<KeyRef, KmsError> {
        let not_found = || KmsError::NotFound(format!("Key '{reference}' does not exist"));
        if reference == SECRETS_MANAGER_ALIAS {
            return self.default_secrets_key(account, region);
        }
        if let Some(alias) = reference.strip_prefix("alias/") {
            let _ = alias;
            return self.by_alias(account, region, reference)?.ok_or_else(not_found);
        }
        if let Some(arn) = tumbler_types::Arn::parse(reference) {
            if arn.service != "kms" || arn.account != account || arn.region != region {
                return Err(not_found());
            }
            if arn.resource == SECRETS_MANAGER_ALIAS {
                return self.default_secrets_key(account, region);
            }
            if arn.resource.starts_with("alias/") {
                return self.by_alias(account, region, arn.resource)?.ok_or_else(not_found);
            }
            let id = arn.resource.strip_prefix("key/").ok_or_else(not_found)?;
            return self.by_id(account, region, id)?.ok_or_else(not_found);
        }
        self.by_id(account, region, reference)?.ok_or_else(not_found)
    }

    fn by_id(&self, account: &str, region: &str, id: &str) -> Result<Option<KeyRef>, KmsError> {
        Ok(self
            .store
            .kms_key(id)?
            .filter(|k| k.account == account && k.region == region)
            .map(key_ref))
    }

    fn material(&self, key_id: &str, version: u32) -> Result<Arc<Kek>, KmsError> {
        if let Some(k) = self
            .material
            .read()
            .ok()
            .and_then(|m| m.get(&(key_id.to_owned(), version)).cloned())
        {
            return Ok(k);
        }
        let wrapped = self
            .store
            .kms_material(key_id, version as i64)?
            .ok_or(KmsError::InvalidCiphertext)?;
        let plain = self.material_kek.open(&wrapped, &material_aad(key_id, version))?;
        let kek = Arc::new(Kek::new(plain.expose())?);
        if let Ok(mut m) = self.material.write() {
            m.insert((key_id.to_owned(), version), kek.clone());
        }
        Ok(kek)
    }

    fn usable(&self, key_id: &str) -> Result<Arc<KmsKeyRow>, KmsError> {
        let row = self
            .store
            .kms_key(key_id)?
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_id}' does not exist")))?;
        if row.state != "Enabled" {
            return Err(KmsError::Disabled(format!(
                "{} is {}",
                row.arn,
                if row.state == "PendingDeletion" {
                    "pending deletion".to_owned()
                } else {
                    row.state.to_lowercase()
                }
            )));
        }
        Ok(row)
    }

    /// Wrap a data key under `key` for `context`; returns the ciphertext blob.
    pub fn wrap(
        &self,
        key: &KeyRef,
        data_key: &Sensitive,
        context: EncryptionContext<'_>,
    ) -> Result<Vec<u8>, KmsError> {
        let row = self.usable(&key.key_id)?;
        let version = row.current_material as u32;
        let kek = self.material(&row.key_id, version)?;
        let sealed = kek.seal(data_key.expose(), &context_aad(&row.key_id, version, context))?;
        let mut blob = Vec::with_capacity(1 + KEY_ID_LEN + 4 + sealed.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(row.key_id.as_bytes());
        blob.extend_from_slice(&version.to_be_bytes());
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Unwrap a ciphertext blob; the key is named by the blob itself.
    pub fn unwrap(&self, blob: &[u8], context: EncryptionContext<'_>) -> Result<Sensitive, KmsError> {
        let (key_id, version, sealed) = parse_blob(blob).ok_or(KmsError::InvalidCiphertext)?;
        self.usable(key_id)?;
        let kek = self.material(key_id, version)?;
        kek.open(sealed, &context_aad(key_id, version, context))
            .map_err(|_| KmsError::InvalidCiphertext)
    }
}

impl Kms {
    /// Unwrap a data key and prepare it for AES-GCM, like [`Kms::unwrap`]
    /// but cached: the same blob under the same context yields the same
    /// prepared key without another unwrap.
    pub fn unwrap_prepared(&self, blob: &[u8], context: EncryptionContext<'_>) -> Result<Arc<Kek>, KmsError> {
        let (key_id, version, sealed) = parse_blob(blob).ok_or(KmsError::InvalidCiphertext)?;
        self.usable(key_id)?;
        let aad = context_aad(key_id, version, context);
        if let Some(hit) = self.data_keys.read().ok().and_then(|m| m.get(blob).cloned())
            && hit.aad == aad
        {
            return Ok(hit.key.clone());
        }
        let plain = self
            .material(key_id, version)?
            .open(sealed, &aad)
            .map_err(|_| KmsError::InvalidCiphertext)?;
        let key = Arc::new(Kek::new(plain.expose())?);
        if let Ok(mut m) = self.data_keys.write() {
            if m.len() >= MAX_CACHED_DATA_KEYS {
                m.clear();
            }
            m.insert(blob.into(), Arc::new(PreparedDataKey { aad, key: key.clone() }));
        }
        Ok(key)
    }
}

impl Kms {
    /// Drop everything cached about a deleted key.
    fn forget(&self, key_id: &str) {
        if let Ok(mut m) = self.material.write() {
            m.retain(|(id, _), _| id != key_id);
        }
        if let Ok(mut m) = self.data_keys.write() {
            m.retain(|blob, _| blob_key_id(blob) != Some(key_id));
        }
        if let Ok(mut m) = self.policies.write() {
            m.remove(key_id);
        }
    }
}

/// The key a ciphertext blob names, if it is one of ours.
fn blob_key_id(blob: &[u8]) -> Option<&str> {
    parse_blob(blob).map(|(id, _, _)| id)
}

fn material_aad(key_id: &str, version: u32) -> Vec<u8> {
    let mut aad = b"kms-material|".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn parse_blob(blob: &[u8]) -> Option<(&str, u32, &[u8])> {
    if blob.first() != Some(&BLOB_VERSION) || blob.len() < 1 + KEY_ID_LEN + 4 {
        return None;
    }
    let key_id = std::str::from_utf8(&blob[1..1 + KEY_ID_LEN]).ok()?;
    let version = u32::from_be_bytes(blob[1 + KEY_ID_LEN..1 + KEY_ID_LEN + 4].try_into().ok()?);
    Some((key_id, version, &blob[1 + KEY_ID_LEN + 4..]))
}

fn key_ref(row: Arc<KmsKeyRow>) -> KeyRef {
    KeyRef {
        aws_managed: row.key_manager == "AWS",
        key_id: row.key_id.clone(),
        arn: row.arn.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kms() -> (std::path::PathBuf, Kms) {
        let dir = std::env::temp_dir().join(format!(
            "tumbler-kms-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
        (dir, Kms::new(store, &MasterKey::from_bytes(&[9; 32]).unwrap()))
    }

    /// The bytes that bind a blob to its key, material version and
    /// encryption context: pinned, since changing them would strand every
    /// stored data key.
    #[test]
    fn blob_and_context_layout_known_answer() {
        let aad = context_aad("k", 2, &[("b", "22"), ("a", "1")]);
        let mut want = b"k".to_vec();
        want.extend_from_slice(&[0, 0, 0, 2]);
        for part in ["a", "1", "b", "22"] {
            want.extend_from_slice(&(part.len() as u32).to_be_bytes());
            want.extend_from_slice(part.as_bytes());
        }
        assert_eq!(aad, want);
        assert_eq!(material_aad("k", 3), b"kms-material|k\x00\x00\x00\x03");
        let id = "0b8f2d6c-3a1e-4f7b-9c2d-5e6f7a8b9c0d";
        let mut blob = vec![1u8];
        blob.extend_from_slice(id.as_bytes());
        blob.extend_from_slice(&7u32.to_be_bytes());
        blob.extend_from_slice(b"sealed");
        assert_eq!(parse_blob(&blob), Some((id, 7, &b"sealed"[..])));
        blob[0] = 2;
        assert_eq!(parse_blob(&blob), None);
    }

    #[test]
    fn default_key_wraps_with_context() {
        let (dir, kms) = kms();
        let k = kms.default_secrets_key("000000000000", "us-east-1").unwrap();
        assert_eq!(k, kms.default_secrets_key("000000000000", "us-east-1").unwrap());
        assert_eq!(kms.resolve("000000000000", "us-east-1", &k.arn).unwrap(), k);
        assert_eq!(
            kms.resolve("000000000000", "us-east-1", "alias/aws/secretsmanager")
                .unwrap(),
            k
        );
        assert!(kms.resolve("000000000000", "us-west-2", &k.key_id).is_err());
        let dek = Sensitive::new(vec![5; 32]);
        let blob = kms
            .wrap(&k, &dek, &[("SecretARN", "a"), ("SecretVersionId", "v")])
            .unwrap();
        let back = kms
            .unwrap(&blob, &[("SecretVersionId", "v"), ("SecretARN", "a")])
            .unwrap();
        assert_eq!(back, dek);
        assert!(matches!(
            kms.unwrap(&blob, &[("SecretARN", "b")]),
            Err(KmsError::InvalidCiphertext)
        ));
        assert!(matches!(kms.unwrap(&blob[..10], &[]), Err(KmsError::InvalidCiphertext)));
        let _ = std::fs::remove_dir_all(dir);
    }

    struct AllowAll;
    impl KeyAuthorizer for AllowAll {
        fn authorize(
            &self,
            _: &str,
            _: &str,
            _: tumbler_iam::ContextKeys,
            _: Option<&tumbler_iam::NamedPolicy>,
        ) -> Result<(), tumbler_wire::AwsError> {
            Ok(())
        }

        fn authorize_granted(
            &self,
            _: &str,
            _: &str,
            _: tumbler_iam::ContextKeys,
            _: &tumbler_iam::NamedPolicy,
        ) -> Result<(), tumbler_wire::AwsError> {
            Ok(())
        }

        fn grantee_arns(&self) -> Vec<String> {
            vec!["arn:aws:iam::000000000000:root".into()]
        }
    }

    fn allow_all_ctx() -> KmsCtx {
        KmsCtx {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            now: jiff::Timestamp::now(),
            authorizer: Arc::new(AllowAll),
            journal: None,
        }
    }

    #[test]
    fn keys_are_deleted_at_the_end_of_their_window_only() {
        let (dir, kms) = kms();
        let ctx = allow_all_ctx();
        let created: serde_json::Value = serde_json::from_slice(&kms.call(&ctx, "CreateKey", b"{}").unwrap()).unwrap();
        let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let body = format!(r#"{{"KeyId":"{key_id}","Plaintext":"aGk="}}"#);
        let sealed: serde_json::Value =
            serde_json::from_slice(&kms.call(&ctx, "Encrypt", body.as_bytes()).unwrap()).unwrap();
        let blob = sealed["CiphertextBlob"].as_str().unwrap().to_owned();
        let schedule = format!(r#"{{"KeyId":"{key_id}","PendingWindowInDays":7}}"#);
        kms.call(&ctx, "ScheduleKeyDeletion", schedule.as_bytes()).unwrap();
        let events = std::sync::Mutex::new(Vec::new());
        let record = |row: &KmsKeyRow, name: &str| {
            events.lock().unwrap().push((row.key_id.clone(), name.to_owned()));
            None
        };
        let six_days = ctx.now + jiff::SignedDuration::from_hours(24 * 6);
        assert_eq!(kms.delete_due_keys(six_days, &record).unwrap(), 0);
        let eight_days = ctx.now + jiff::SignedDuration::from_hours(24 * 8);
        assert_eq!(kms.delete_due_keys(eight_days, &record).unwrap(), 1);
        // The deletion is the service's own act, audited as such.
        assert_eq!(*events.lock().unwrap(), vec![(key_id.clone(), "DeleteKey".to_owned())]);
        // Gone, and what it encrypted can't be decrypted any more.
        let describe = format!(r#"{{"KeyId":"{key_id}"}}"#);
        assert_eq!(
            kms.call(&ctx, "DescribeKey", describe.as_bytes()).unwrap_err().code,
            "NotFoundException"
        );
        let decrypt = format!(r#"{{"CiphertextBlob":"{blob}"}}"#);
        assert_eq!(
            kms.call(&ctx, "Decrypt", decrypt.as_bytes()).unwrap_err().code,
            "InvalidCiphertextException"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rotation_is_due_after_its_period_and_old_ciphertext_still_opens() {
        let (dir, kms) = kms();
        let ctx = allow_all_ctx();
        let call = |op: &str, body: String| -> serde_json::Value {
            serde_json::from_slice(&kms.call(&ctx, op, body.as_bytes()).unwrap()).unwrap()
        };
        let key_id = call("CreateKey", "{}".into())["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        let old = call("Encrypt", format!(r#"{{"KeyId":"{key_id}","Plaintext":"b2xk"}}"#))["CiphertextBlob"]
            .as_str()
            .unwrap()
            .to_owned();
        call(
            "EnableKeyRotation",
            format!(r#"{{"KeyId":"{key_id}","RotationPeriodInDays":90}}"#),
        );
        let events = std::sync::Mutex::new(Vec::new());
        let record = |row: &KmsKeyRow, name: &str| {
            events.lock().unwrap().push((row.key_id.clone(), name.to_owned()));
            None
        };
        assert_eq!(
            kms.rotate_due_keys(ctx.now + jiff::SignedDuration::from_hours(24 * 89), &record)
                .unwrap(),
            0
        );
        assert_eq!(
            kms.rotate_due_keys(ctx.now + jiff::SignedDuration::from_hours(24 * 91), &record)
                .unwrap(),
            1
        );
        assert_eq!(*events.lock().unwrap(), vec![(key_id.clone(), "RotateKey".to_owned())]);
        let rotations = call("ListKeyRotations", format!(r#"{{"KeyId":"{key_id}"}}"#));
        assert_eq!(rotations["Rotations"][0]["RotationType"], "AUTOMATIC");
        let new = call("Encrypt", format!(r#"{{"KeyId":"{key_id}","Plaintext":"bmV3"}}"#))["CiphertextBlob"]
            .as_str()
            .unwrap()
            .to_owned();
        // The blob names its material: version 1 before the rotation, 2 after.
        let version = |blob: &str| parse_blob(&tumbler_wire::kms::decode_blob(blob).unwrap()).unwrap().1;
        assert_eq!((version(&old), version(&new)), (1, 2));
        for (blob, plain) in [(old, "b2xk"), (new, "bmV3")] {
            let out = call("Decrypt", format!(r#"{{"CiphertextBlob":"{blob}"}}"#));
            assert_eq!(out["Plaintext"], plain);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn prepared_data_keys_stay_bound_to_their_context() {
        let (dir, kms) = kms();
        let k = kms.default_secrets_key("000000000000", "us-east-1").unwrap();
        let dek = Sensitive::new(vec![7; 32]);
        let ctx: EncryptionContext<'_> = &[("SecretARN", "a"), ("SecretVersionId", "v")];
        let blob = kms.wrap(&k, &dek, ctx).unwrap();
        let sealed = Kek::new(dek.expose()).unwrap().seal(b"value", b"aad").unwrap();
        // Twice: the second comes from the cache and must be the same key.
        for _ in 0..2 {
            let prepared = kms.unwrap_prepared(&blob, ctx).unwrap();
            assert_eq!(prepared.open(&sealed, b"aad").unwrap().expose(), b"value");
        }
        // A cached blob presented with another context is still refused.
        assert!(matches!(
            kms.unwrap_prepared(&blob, &[("SecretARN", "b"), ("SecretVersionId", "v")]),
            Err(KmsError::InvalidCiphertext)
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
