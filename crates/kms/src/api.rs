//! The KMS API (awsJson1_1, `TrentService.<Operation>`) over [`Kms`]:
//! customer-managed symmetric keys, aliases, key states, the key policy, and
//! the cryptographic operations, with KMS's names, limits and errors.
//!
//! Every operation on a key is authorized on the key's ARN with its key
//! policy, which must allow it as KMS requires: the default policy lets the
//! account's IAM policies decide. Keys are found by key id, key ARN, alias
//! name or alias ARN wherever KMS allows.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tumbler_iam::{ContextKeys, NamedPolicy, PolicyKind};
use tumbler_store::{Journal, KmsKeyRow, StoreError, Write};
use tumbler_types::Sensitive;
use tumbler_wire::kms::{self as w, error, internal, invalid_state, not_found, validation};
use tumbler_wire::{AwsError, decode, encode};

use crate::{KeyRef, Kms, KmsError, material_aad};

mod grants;

pub use grants::CustomerKey;

/// Encryption algorithm of symmetric keys, the only kind Tumbler makes.
const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
const MAX_PLAINTEXT: usize = 4096;
const MAX_CIPHERTEXT: usize = 6144;
const MAX_POLICY: usize = 32_768;
const MAX_DESCRIPTION: usize = 8192;
const DEFAULT_PAGE: usize = 100;

/// The identity layer's decision on one KMS action.
pub trait KeyAuthorizer: Send + Sync {
    /// `Ok` when the caller may perform `action` (`kms:Decrypt`) on
    /// `resource` (a key or alias ARN, or `*`). With `key_policy`, the key
    /// policy must allow too (an account principal in it defers to IAM).
    fn authorize(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        key_policy: Option<&NamedPolicy>,
    ) -> Result<(), AwsError>;

    /// As [`Self::authorize`] for a call that a grant on the key covers: it
    /// is allowed unless a policy explicitly denies it.
    fn authorize_granted(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        key_policy: &NamedPolicy,
    ) -> Result<(), AwsError>;

    /// The ARNs a grant's grantee or retiring principal may use to name
    /// the caller: its own and, for a role session, its role's.
    fn grantee_arns(&self) -> Vec<String>;
}

/// One KMS call's caller and where its audit event goes.
pub struct KmsCtx {
    pub account: String,
    pub region: String,
    pub now: jiff::Timestamp,
    pub authorizer: Arc<dyn KeyAuthorizer>,
    pub journal: Option<Arc<dyn Journal>>,
}

/// A key's `meta` document in the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct KeyMeta {
    pub description: Option<String>,
    /// The key policy as the caller sent it; None: the default policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_window_days: Option<i64>,
    /// Automatic rotation: its period, and when it is next due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_ms: Option<i64>,
    /// Past rotations as (time ms, AUTOMATIC | ON_DEMAND).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<(i64, String)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<grants::Grant>,
}

impl KeyMeta {
    pub(crate) fn parse(meta: &str) -> KeyMeta {
        serde_json::from_str(meta).unwrap_or_default()
    }
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Read-only operations: they change nothing, and CloudTrail marks them so
/// (the cryptographic operations included).
pub fn is_read_only(op: &str) -> bool {
    matches!(
        op,
        "DescribeKey"
            | "ListKeys"
            | "ListAliases"
            | "GetKeyPolicy"
            | "ListKeyPolicies"
            | "Encrypt"
            | "Decrypt"
            | "ReEncrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateRandom"
            | "ListResourceTags"
            | "GetKeyRotationStatus"
            | "ListKeyRotations"
            | "ListGrants"
            | "ListRetirableGrants"
    )
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn store_err(e: StoreError) -> AwsError {
    tracing::error!(error = %e, "store failure in KMS");
    internal()
}

fn kms_err(e: KmsError) -> AwsError {
    match e {
        KmsError::NotFound(m) => not_found(m),
        KmsError::Disabled(m) => error("DisabledException", m),
        KmsError::InvalidCiphertext => error(
            "InvalidCiphertextException",
            "The ciphertext refers to a key that does not exist, or it or its encryption context was altered.",
        ),
        KmsError::Store(e) => store_err(e),
        KmsError::Crypto(e) => {
            tracing::error!(error = %e, "cryptographic failure in KMS");
            internal()
        }
    }
}

fn required<'a>(v: &'a Option<String>, member: &str) -> Result<&'a str, AwsError> {
    match v.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(validation(member, "Member must have length greater than or equal to 1")),
        None => Err(validation(member, "Member must not be null")),
    }
}

fn key_id_param<'a>(v: &'a Option<String>, member: &str) -> Result<&'a str, AwsError> {
    let id = required(v, member)?;
    if id.len() > 2048 {
        return Err(validation(member, "Member must have length less than or equal to 2048"));
    }
    Ok(id)
}

/// The default key policy of a customer key: the account decides, through IAM.
fn default_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

/// The policy of the AWS-managed `aws/secretsmanager` key, as AWS writes
/// it (but with unique Sids, which the policy language requires): the
/// account's principals may use it through Secrets Manager, and read its
/// metadata directly.
fn aws_managed_policy(account: &str, region: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"auto-secretsmanager-2","Statement":[{{"Sid":"Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager","Effect":"Allow","Principal":{{"AWS":"*"}},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:CreateGrant","kms:DescribeKey"],"Resource":"*","Condition":{{"StringEquals":{{"kms:CallerAccount":"{account}","kms:ViaService":"secretsmanager.{region}.amazonaws.com"}}}}}},{{"Sid":"Allow data keys through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager","Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"kms:GenerateDataKey*","Resource":"*","Condition":{{"StringEquals":{{"kms:CallerAccount":"{account}"}},"StringLike":{{"kms:ViaService":"secretsmanager.{region}.amazonaws.com"}}}}}},{{"Sid":"Allow direct access to key metadata to the account","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":["kms:Describe*","kms:Get*","kms:List*"],"Resource":"*"}}]}}"#
    )
}

fn parse_key_policy(text: &str) -> Result<NamedPolicy, AwsError> {
    if text.chars().count() > MAX_POLICY {
        return Err(validation(
            "policy",
            "Member must have length less than or equal to 32768",
        ));
    }
    tumbler_iam::parse_policy(text, PolicyKind::Resource)
        .map(|p| NamedPolicy::new("key policy", p))
        .map_err(|e| error("MalformedPolicyDocumentException", e.to_string()))
}

/// A key's row and what its metadata and policy say.
struct Key {
    row: Arc<KmsKeyRow>,
    meta: KeyMeta,
    policy: NamedPolicy,
}

impl Key {
    fn aws_managed(&self) -> bool {
        self.row.key_manager == "AWS"
    }

    fn metadata(&self) -> w::KeyMetadata {
        let r = &self.row;
        w::KeyMetadata {
            aws_account_id: r.account.clone(),
            key_id: r.key_id.clone(),
            arn: r.arn.clone(),
            creation_date: seconds(r.created_ms),
            enabled: r.state == "Enabled",
            description: self.meta.description.clone().unwrap_or_default(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_state: r.state.clone(),
            deletion_date: self.meta.deletion_ms.map(seconds),
            origin: "AWS_KMS".into(),
            key_manager: r.key_manager.clone(),
            customer_master_key_spec: SYMMETRIC_DEFAULT.into(),
            key_spec: SYMMETRIC_DEFAULT.into(),
            encryption_algorithms: vec![SYMMETRIC_DEFAULT.into()],
            multi_region: false,
            pending_deletion_window_in_days: self.meta.pending_window_days,
        }
    }

    /// The key can encrypt and decrypt now; KMS's error otherwise.
    fn usable(&self) -> Result<(), AwsError> {
        match self.row.state.as_str() {
            "Enabled" => Ok(()),
            "Disabled" => Err(error("DisabledException", format!("{} is disabled.", self.row.arn))),
            _ => Err(invalid_state(format!("{} is pending deletion.", self.row.arn))),
        }
    }
}

/// How the caller named a key, for kms:RequestAlias.
struct Found {
    key: Key,
    alias: Option<String>,
}

fn context_keys(ctx: &KmsCtx, context: Option<&w::EncryptionContext>, alias: Option<&str>) -> ContextKeys {
    let mut keys = ContextKeys::new();
    keys.insert("kms:CallerAccount", ctx.account.clone());
    if let Some(c) = context {
        for (k, v) in c {
            keys.insert(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
        keys.insert_multi("kms:EncryptionContextKeys", c.keys().cloned());
    }
    if let Some(a) = alias {
        keys.insert("kms:RequestAlias", a.to_owned());
    }
    keys
}

fn pairs(context: &Option<w::EncryptionContext>) -> Vec<(&str, &str)> {
    context
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn check_context(context: &Option<w::EncryptionContext>, member: &str) -> Result<(), AwsError> {
    if let Some(c) = context {
        let size: usize = c.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > 8192 {
            return Err(validation(member, "the encryption context is larger than 8192 bytes"));
        }
    }
    Ok(())
}

fn check_algorithm(algorithm: &Option<String>, member: &str) -> Result<(), AwsError> {
    match algorithm.as_deref() {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(_) => Err(error(
            "InvalidKeyUsageException",
            format!("{member} must be SYMMETRIC_DEFAULT for a symmetric encryption key."),
        )),
    }
}

/// `Limit` and `Marker`: a page of `items` (sorted by their key) after the marker.
fn page<T>(
    limit: Option<i64>,
    marker: &Option<String>,
    items: Vec<(String, T)>,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(l) if (1..=1000).contains(&l) => l as usize,
        Some(_) => return Err(validation("limit", "Member must have value between 1 and 1000")),
    };
    let start = match marker {
        None => 0,
        Some(m) => {
            let Some(i) = items.iter().position(|(k, _)| k == m) else {
                return Err(error("InvalidMarkerException", "The marker is not valid."));
            };
            i + 1
        }
    };
    let mut rest: Vec<(String, T)> = items.into_iter().skip(start).collect();
    let next = (rest.len() > limit).then(|| rest[limit - 1].0.clone());
    rest.truncate(limit);
    Ok((rest.into_iter().map(|(_, t)| t).collect(), next))
}

impl Kms {
    /// A customer key's ARN, compiled key policy and grants, for services
    /// that use the key on a caller's behalf and must ask whether the
    /// caller may; None for AWS-managed keys, whose policy lets every
    /// principal of the account use them through the service.
    pub fn customer_key_use(&self, key_id: &str) -> Result<Option<CustomerKey>, AwsError> {
        let Some(row) = self.store.kms_key(key_id).map_err(store_err)? else {
            return Ok(None);
        };
        if row.key_manager == "AWS" {
            return Ok(None);
        }
        let meta = KeyMeta::parse(&row.meta);
        let text = meta.policy.unwrap_or_else(|| default_policy(&row.account));
        let policy = self.compiled_policy(&row.key_id, &text)?;
        Ok(Some(CustomerKey {
            arn: row.arn.clone(),
            policy,
            grants: meta.grants,
        }))
    }

    /// One KMS API call: `op` is the target's operation name, `body` its JSON.
    pub fn call(&self, ctx: &KmsCtx, op: &str, body: &[u8]) -> Result<Vec<u8>, AwsError> {
        match op {
            "CreateKey" => self.create_key(ctx, decode(body)?),
            "DescribeKey" => self.describe_key(ctx, decode(body)?),
            "ListKeys" => self.list_keys(ctx, decode(body)?),
            "EnableKey" => self.set_enabled(ctx, decode(body)?, true),
            "DisableKey" => self.set_enabled(ctx, decode(body)?, false),
            "ScheduleKeyDeletion" => self.schedule_key_deletion(ctx, decode(body)?),
            "CancelKeyDeletion" => self.cancel_key_deletion(ctx, decode(body)?),
            "CreateAlias" => self.put_alias(ctx, decode(body)?, false),
            "UpdateAlias" => self.put_alias(ctx, decode(body)?, true),
            "DeleteAlias" => self.delete_alias(ctx, decode(body)?),
            "ListAliases" => self.list_aliases(ctx, decode(body)?),
            "Encrypt" => self.encrypt(ctx, decode(body)?),
            "Decrypt" => self.decrypt(ctx, decode(body)?),
            "ReEncrypt" => self.re_encrypt(ctx, decode(body)?),
            "GenerateDataKey" => self.generate_data_key(ctx, decode(body)?, true),
            "GenerateDataKeyWithoutPlaintext" => self.generate_data_key(ctx, decode(body)?, false),
            "GenerateRandom" => self.generate_random(ctx, decode(body)?),
            "GetKeyPolicy" => self.get_key_policy(ctx, decode(body)?),
            "PutKeyPolicy" => self.put_key_policy(ctx, decode(body)?),
            "ListKeyPolicies" => self.list_key_policies(ctx, decode(body)?),
            "TagResource" => self.tag_resource(ctx, decode(body)?),
            "UntagResource" => self.untag_resource(ctx, decode(body)?),
            "ListResourceTags" => self.list_resource_tags(ctx, decode(body)?),
            "EnableKeyRotation" => self.enable_key_rotation(ctx, decode(body)?),
            "DisableKeyRotation" => self.disable_key_rotation(ctx, decode(body)?),
            "GetKeyRotationStatus" => self.get_key_rotation_status(ctx, decode(body)?),
            "RotateKeyOnDemand" => self.rotate_key_on_demand(ctx, decode(body)?),
            "ListKeyRotations" => self.list_key_rotations(ctx, decode(body)?),
            "CreateGrant" => self.create_grant(ctx, decode(body)?),
            "ListGrants" => self.list_grants(ctx, decode(body)?),
            "ListRetirableGrants" => self.list_retirable_grants(ctx, decode(body)?),
            "RevokeGrant" => self.revoke_grant(ctx, decode(body)?),
            "RetireGrant" => self.retire_grant(ctx, decode(body)?),
            "" => Err(AwsError::unknown_operation("The request names no operation.")),
            other => Err(AwsError::unknown_operation(format!(
                "KMS's {other} is not served here."
            ))),
        }
    }

    fn commit(&self, ctx: &KmsCtx, writes: Vec<Write>) -> Result<(), StoreError> {
        tumbler_store::apply_journaled(self.store.as_ref(), ctx.journal.as_deref(), writes).map(|_| ())
    }

    fn load(&self, ctx: &KmsCtx, row: Arc<KmsKeyRow>) -> Result<Key, AwsError> {
        let meta = KeyMeta::parse(&row.meta);
        let text = match (&meta.policy, row.key_manager.as_str()) {
            (Some(p), _) => p.clone(),
            (None, "AWS") => aws_managed_policy(&ctx.account, &ctx.region),
            (None, _) => default_policy(&ctx.account),
        };
        let policy = self.compiled_policy(&row.key_id, &text)?;
        Ok(Key { row, meta, policy })
    }

    /// A key policy, compiled once per key and text.
    fn compiled_policy(&self, key_id: &str, text: &str) -> Result<NamedPolicy, AwsError> {
        if let Some((t, p)) = self.policies.read().ok().and_then(|m| m.get(key_id).cloned())
            && t == text
        {
            return Ok(p);
        }
        let p = parse_key_policy(text).inspect_err(|e| {
            tracing::warn!(key = key_id, error = %e.message, "stored key policy does not parse");
        })?;
        if let Ok(mut m) = self.policies.write() {
            if m.len() >= 4096 {
                m.clear();
            }
            m.insert(key_id.to_owned(), (text.to_owned(), p.clone()));
        }
        Ok(p)
    }

    /// The key a reference names in the caller's account and region.
    fn find(&self, ctx: &KmsCtx, reference: &str) -> Result<Found, AwsError> {
        let key = self.resolve(&ctx.account, &ctx.region, reference).map_err(kms_err)?;
        let row = self
            .store
            .kms_key(&key.key_id)
            .map_err(store_err)?
            .ok_or_else(|| not_found(format!("Key '{reference}' does not exist")))?;
        let alias = reference
            .rsplit_once(":alias/")
            .map(|(_, a)| format!("alias/{a}"))
            .or_else(|| reference.starts_with("alias/").then(|| reference.to_owned()));
        Ok(Found {
            key: self.load(ctx, row)?,
            alias,
        })
    }

    fn allow(&self, ctx: &KmsCtx, action: &str, key: &Key, keys: ContextKeys) -> Result<(), AwsError> {
        ctx.authorizer.authorize(action, &key.row.arn, keys, Some(&key.policy))
    }

    /// As [`Self::allow`], where a grant on the key may allow the call too.
    fn allow_granted(
        &self,
        ctx: &KmsCtx,
        action: &str,
        key: &Key,
        keys: ContextKeys,
        granted: bool,
    ) -> Result<(), AwsError> {
        if granted {
            ctx.authorizer
                .authorize_granted(action, &key.row.arn, keys, &key.policy)
        } else {
            self.allow(ctx, action, key, keys)
        }
    }

    /// A call that uses the key (the cryptographic operations, DescribeKey):
    /// allowed by the policies or by a grant that covers it and `context`.
    fn allow_use(
        &self,
        ctx: &KmsCtx,
        action: &str,
        key: &Key,
        keys: ContextKeys,
        context: Option<&w::EncryptionContext>,
    ) -> Result<(), AwsError> {
        let granted = !key.meta.grants.is_empty() && {
            let callers = ctx.authorizer.grantee_arns();
            let op = grants::operation_of(action);
            key.meta.grants.iter().any(|g| g.covers(&callers, op, context))
        };
        self.allow_granted(ctx, action, key, keys, granted)
    }

    /// A customer key for a management operation (AWS-managed keys are
    /// managed by AWS alone).
    fn customer_key(&self, ctx: &KmsCtx, reference: &str, action: &str) -> Result<Key, AwsError> {
        let found = self.find(ctx, reference)?;
        self.allow(ctx, action, &found.key, context_keys(ctx, None, found.alias.as_deref()))?;
        if found.key.aws_managed() {
            return Err(error(
                "UnsupportedOperationException",
                format!("{} is an AWS managed key; it can't be changed.", found.key.row.arn),
            ));
        }
        Ok(found.key)
    }

    fn create_key(&self, ctx: &KmsCtx, r: w::CreateKeyRequest) -> Result<Vec<u8>, AwsError> {
        let unsupported = |what: &str| {
            error(
                "UnsupportedOperationException",
                format!("{what} is not supported: Tumbler makes symmetric ENCRYPT_DECRYPT keys."),
            )
        };
        if r.key_usage.as_deref().is_some_and(|u| u != "ENCRYPT_DECRYPT") {
            return Err(unsupported("This KeyUsage"));
        }
        for spec in [&r.key_spec, &r.customer_master_key_spec] {
            if spec.as_deref().is_some_and(|s| s != SYMMETRIC_DEFAULT) {
                return Err(unsupported("This KeySpec"));
            }
        }
        if r.origin.as_deref().is_some_and(|o| o != "AWS_KMS") {
            return Err(unsupported("This Origin"));
        }
        if r.multi_region == Some(true) {
            return Err(unsupported("A multi-Region key"));
        }
        if r.custom_key_store_id.is_some() {
            return Err(error(
                "CustomKeyStoreNotFoundException",
                "Tumbler has no custom key stores.",
            ));
        }
        if r.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(validation(
                "description",
                "Member must have length less than or equal to 8192",
            ));
        }
        let tags = tags(&r.tags)?;
        let mut keys = context_keys(ctx, None, None);
        for (k, v) in &tags {
            keys.insert(&format!("aws:RequestTag/{k}"), v.clone());
        }
        keys.insert_multi("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()));
        ctx.authorizer.authorize("kms:CreateKey", "*", keys, None)?;

        let key_id = uuid::Uuid::new_v4().to_string();
        let arn = format!("arn:aws:kms:{}:{}:key/{key_id}", ctx.region, ctx.account);
        let policy_text = r.policy.clone().unwrap_or_else(|| default_policy(&ctx.account));
        let policy = parse_key_policy(&policy_text)?;
        if !r.bypass_policy_lockout_safety_check.unwrap_or(false) {
            self.lockout_check(ctx, &arn, &policy)?;
        }
        let material = tumbler_crypto::generate_key().map_err(|e| kms_err(e.into()))?;
        let wrapped = self
            .material_kek
            .seal(material.expose(), &material_aad(&key_id, 1))
            .map_err(|e| kms_err(e.into()))?;
        let meta = KeyMeta {
            description: r.description.clone(),
            policy: r.policy.clone(),
            tags,
            ..KeyMeta::default()
        };
        let row = KmsKeyRow {
            key_id: key_id.clone(),
            account: ctx.account.clone(),
            region: ctx.region.clone(),
            arn,
            key_manager: "CUSTOMER".into(),
            state: "Enabled".into(),
            created_ms: ctx.now.as_millisecond(),
            current_material: 1,
            meta: meta.to_json(),
        };
        self.commit(
            ctx,
            vec![Write::CreateKmsKey {
                key: row.clone(),
                wrapped_material: wrapped,
                aliases: Vec::new(),
            }],
        )
        .map_err(store_err)?;
        let key = Key {
            row: Arc::new(row),
            meta,
            policy,
        };
        Ok(encode(&w::KeyMetadataResponse {
            key_metadata: key.metadata(),
        }))
    }

    /// KMS refuses a key policy that would lock the caller out of changing it.
    fn lockout_check(&self, ctx: &KmsCtx, arn: &str, policy: &NamedPolicy) -> Result<(), AwsError> {
        ctx.authorizer
            .authorize("kms:PutKeyPolicy", arn, context_keys(ctx, None, None), Some(policy))
            .map_err(|_| {
                error(
                    "MalformedPolicyDocumentException",
                    "The new key policy will not allow you to update the key policy in the future.",
                )
            })
    }

    fn describe_key(&self, ctx: &KmsCtx, r: w::KeyIdRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let found = self.find(ctx, reference)?;
        self.allow_use(
            ctx,
            "kms:DescribeKey",
            &found.key,
            context_keys(ctx, None, found.alias.as_deref()),
            None,
        )?;
        Ok(encode(&w::KeyMetadataResponse {
            key_metadata: found.key.metadata(),
        }))
    }

    fn list_keys(&self, ctx: &KmsCtx, r: w::ListRequest) -> Result<Vec<u8>, AwsError> {
        ctx.authorizer
            .authorize("kms:ListKeys", "*", context_keys(ctx, None, None), None)?;
        let rows = self.store.kms_keys(&ctx.account, &ctx.region).map_err(store_err)?;
        let items = rows
            .iter()
            .map(|k| {
                (
                    k.key_id.clone(),
                    w::KeyListEntry {
                        key_id: k.key_id.clone(),
                        key_arn: k.arn.clone(),
                    },
                )
            })
            .collect();
        let (keys, next) = page(r.limit, &r.marker, items)?;
        Ok(encode(&w::ListKeysResponse {
            keys,
            truncated: next.is_some(),
            next_marker: next,
        }))
    }

    fn update(&self, ctx: &KmsCtx, key: &Key, state: &str, meta: &KeyMeta) -> Result<(), AwsError> {
        match self.commit(
            ctx,
            vec![Write::UpdateKmsKey {
                key_id: key.row.key_id.clone(),
                state: state.to_owned(),
                meta: meta.to_json(),
            }],
        ) {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found(format!("Key '{}' does not exist", key.row.arn))),
            Err(e) => Err(store_err(e)),
        }
    }

    fn set_enabled(&self, ctx: &KmsCtx, r: w::KeyIdRequest, enable: bool) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let action = if enable { "kms:EnableKey" } else { "kms:DisableKey" };
        let key = self.customer_key(ctx, reference, action)?;
        if key.row.state == "PendingDeletion" {
            return Err(invalid_state(format!("{} is pending deletion.", key.row.arn)));
        }
        let state = if enable { "Enabled" } else { "Disabled" };
        if key.row.state != state {
            self.update(ctx, &key, state, &key.meta)?;
        }
        Ok(b"{}".to_vec())
    }

    fn schedule_key_deletion(&self, ctx: &KmsCtx, r: w::ScheduleKeyDeletionRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let days = r.pending_window_in_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(validation(
                "pendingWindowInDays",
                "Member must have value between 7 and 30",
            ));
        }
        let key = self.customer_key(ctx, reference, "kms:ScheduleKeyDeletion")?;
        if key.row.state == "PendingDeletion" {
            return Err(invalid_state(format!("{} is pending deletion.", key.row.arn)));
        }
        let mut meta = key.meta.clone();
        let deletion_ms = ctx.now.as_millisecond() + days * 86_400_000;
        meta.deletion_ms = Some(deletion_ms);
        meta.pending_window_days = Some(days);
        self.update(ctx, &key, "PendingDeletion", &meta)?;
        tracing::warn!(
            key = %key.row.arn,
            deletion_date = %jiff::Timestamp::from_millisecond(deletion_ms).unwrap_or(ctx.now),
            "KMS key scheduled for deletion: once deleted, data encrypted under it can never be decrypted \
             (CancelKeyDeletion until then)"
        );
        Ok(encode(&w::ScheduleKeyDeletionResponse {
            key_id: key.row.arn.clone(),
            deletion_date: seconds(deletion_ms),
            key_state: "PendingDeletion".into(),
            pending_window_in_days: days,
        }))
    }

    fn cancel_key_deletion(&self, ctx: &KmsCtx, r: w::KeyIdRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let key = self.customer_key(ctx, reference, "kms:CancelKeyDeletion")?;
        if key.row.state != "PendingDeletion" {
            return Err(invalid_state(format!("{} is not pending deletion.", key.row.arn)));
        }
        let mut meta = key.meta.clone();
        meta.deletion_ms = None;
        meta.pending_window_days = None;
        // As on AWS, a key whose deletion is cancelled comes back disabled.
        self.update(ctx, &key, "Disabled", &meta)?;
        Ok(encode(&w::KeyIdResponse {
            key_id: key.row.arn.clone(),
        }))
    }

    /// Keys whose deletion window ended by `now`: deleted with their
    /// material and aliases; data under them can't be decrypted any more.
    pub fn delete_due_keys(&self, now: jiff::Timestamp, event: &ServiceEvent<'_>) -> Result<usize, KmsError> {
        let due = self.store.kms_keys_due_for_deletion(now.as_millisecond())?;
        for key_id in &due {
            let Some(row) = self.store.kms_key(key_id)? else {
                continue;
            };
            self.store.apply_with_event(
                vec![Write::DeleteKmsKey { key_id: key_id.clone() }],
                event(&row, "DeleteKey"),
            )?;
            self.forget(key_id);
            tracing::warn!(
                key = %row.arn,
                "deleted a KMS key at the end of its deletion window: data encrypted under it can no longer be decrypted"
            );
        }
        Ok(due.len())
    }

    fn check_alias_name(name: &str) -> Result<(), AwsError> {
        let Some(rest) = name.strip_prefix("alias/") else {
            return Err(validation("aliasName", "Member must begin with alias/"));
        };
        if name.len() > 256 || rest.is_empty() {
            return Err(validation("aliasName", "Member must have length between 7 and 256"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b)) {
            return Err(validation(
                "aliasName",
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
            ));
        }
        if rest.starts_with("aws/") {
            return Err(error(
                "NotAuthorizedException",
                "Aliases that begin with alias/aws/ are reserved for AWS managed keys.",
            ));
        }
        Ok(())
    }

    fn alias_arn(ctx: &KmsCtx, name: &str) -> String {
        format!("arn:aws:kms:{}:{}:{name}", ctx.region, ctx.account)
    }

    fn put_alias(&self, ctx: &KmsCtx, r: w::AliasRequest, replace: bool) -> Result<Vec<u8>, AwsError> {
        let name = required(&r.alias_name, "aliasName")?;
        let target = key_id_param(&r.target_key_id, "targetKeyId")?;
        Self::check_alias_name(name)?;
        if target.starts_with("alias/") || target.contains(":alias/") {
            return Err(validation("targetKeyId", "Specify a key ID or key ARN, not an alias."));
        }
        let action = if replace { "kms:UpdateAlias" } else { "kms:CreateAlias" };
        // On the alias (IAM) and on each key it touches (key policy).
        ctx.authorizer
            .authorize(action, &Self::alias_arn(ctx, name), context_keys(ctx, None, None), None)?;
        let key = self.customer_key(ctx, target, action)?;
        if replace {
            let old = self
                .store
                .kms_alias(&ctx.account, &ctx.region, name)
                .map_err(store_err)?
                .ok_or_else(|| not_found(format!("Alias {} is not found.", Self::alias_arn(ctx, name))))?;
            self.customer_key(ctx, &old, action)?;
        }
        if key.row.state == "PendingDeletion" {
            return Err(invalid_state(format!("{} is pending deletion.", key.row.arn)));
        }
        match self.commit(
            ctx,
            vec![Write::PutKmsAlias {
                account: ctx.account.clone(),
                region: ctx.region.clone(),
                alias_name: name.to_owned(),
                key_id: key.row.key_id.clone(),
                created_ms: ctx.now.as_millisecond(),
                replace,
            }],
        ) {
            Ok(()) => Ok(b"{}".to_vec()),
            Err(StoreError::Duplicate(_)) => Err(error(
                "AlreadyExistsException",
                format!("An alias with the name {} already exists", Self::alias_arn(ctx, name)),
            )),
            Err(StoreError::NotFound) => Err(not_found(format!("Alias {} is not found.", Self::alias_arn(ctx, name)))),
            Err(e) => Err(store_err(e)),
        }
    }

    fn delete_alias(&self, ctx: &KmsCtx, r: w::AliasRequest) -> Result<Vec<u8>, AwsError> {
        let name = required(&r.alias_name, "aliasName")?;
        Self::check_alias_name(name)?;
        ctx.authorizer.authorize(
            "kms:DeleteAlias",
            &Self::alias_arn(ctx, name),
            context_keys(ctx, None, None),
            None,
        )?;
        let not_found_alias = || not_found(format!("Alias {} is not found.", Self::alias_arn(ctx, name)));
        let target = self
            .store
            .kms_alias(&ctx.account, &ctx.region, name)
            .map_err(store_err)?
            .ok_or_else(not_found_alias)?;
        self.customer_key(ctx, &target, "kms:DeleteAlias")?;
        match self.commit(
            ctx,
            vec![Write::DeleteKmsAlias {
                account: ctx.account.clone(),
                region: ctx.region.clone(),
                alias_name: name.to_owned(),
            }],
        ) {
            Ok(()) => Ok(b"{}".to_vec()),
            Err(StoreError::NotFound) => Err(not_found_alias()),
            Err(e) => Err(store_err(e)),
        }
    }

    fn list_aliases(&self, ctx: &KmsCtx, r: w::ListRequest) -> Result<Vec<u8>, AwsError> {
        let only = match &r.key_id {
            Some(reference) => {
                let found = self.find(ctx, reference)?;
                self.allow(ctx, "kms:ListAliases", &found.key, context_keys(ctx, None, None))?;
                Some(found.key.row.key_id.clone())
            }
            None => {
                ctx.authorizer
                    .authorize("kms:ListAliases", "*", context_keys(ctx, None, None), None)?;
                None
            }
        };
        let aliases = self.store.kms_aliases(&ctx.account, &ctx.region).map_err(store_err)?;
        let items = aliases
            .into_iter()
            .filter(|(_, key_id, _)| only.as_ref().is_none_or(|o| o == key_id))
            .map(|(name, key_id, created_ms)| {
                let entry = w::AliasListEntry {
                    alias_arn: Self::alias_arn(ctx, &name),
                    alias_name: name.clone(),
                    target_key_id: Some(key_id),
                    creation_date: Some(seconds(created_ms)),
                };
                (name, entry)
            })
            .collect();
        let (aliases, next) = page(r.limit, &r.marker, items)?;
        Ok(encode(&w::ListAliasesResponse {
            aliases,
            truncated: next.is_some(),
            next_marker: next,
        }))
    }

    /// Seal `plaintext` under the key for `context` (a ciphertext blob that
    /// names the key and its material version).
    fn seal_under(
        &self,
        key: &Key,
        plaintext: &Sensitive,
        context: &Option<w::EncryptionContext>,
    ) -> Result<Vec<u8>, AwsError> {
        let key_ref = KeyRef {
            key_id: key.row.key_id.clone(),
            arn: key.row.arn.clone(),
            aws_managed: key.aws_managed(),
        };
        self.wrap(&key_ref, plaintext, &pairs(context)).map_err(kms_err)
    }

    fn encrypt(&self, ctx: &KmsCtx, r: w::EncryptRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let plaintext = r
            .plaintext
            .as_ref()
            .ok_or_else(|| validation("plaintext", "Member must not be null"))?;
        if plaintext.expose().is_empty() || plaintext.expose().len() > MAX_PLAINTEXT {
            return Err(validation("plaintext", "Member must have length between 1 and 4096"));
        }
        check_context(&r.encryption_context, "encryptionContext")?;
        check_algorithm(&r.encryption_algorithm, "EncryptionAlgorithm")?;
        let found = self.find(ctx, reference)?;
        let keys = context_keys(ctx, r.encryption_context.as_ref(), found.alias.as_deref());
        self.allow_use(ctx, "kms:Encrypt", &found.key, keys, r.encryption_context.as_ref())?;
        found.key.usable()?;
        let blob = self.seal_under(&found.key, plaintext, &r.encryption_context)?;
        Ok(encode(&w::CryptoResponse {
            ciphertext_blob: Some(blob),
            key_id: Some(found.key.row.arn.clone()),
            encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
            ..Default::default()
        }))
    }

    /// The key a ciphertext blob names, checked against the `KeyId` the
    /// caller may have given.
    fn key_of_blob(&self, ctx: &KmsCtx, blob: &[u8], expected: &Option<String>) -> Result<Found, AwsError> {
        if blob.is_empty() || blob.len() > MAX_CIPHERTEXT {
            return Err(validation(
                "ciphertextBlob",
                "Member must have length between 1 and 6144",
            ));
        }
        let key_id = crate::blob_key_id(blob).ok_or_else(|| kms_err(KmsError::InvalidCiphertext))?;
        let row = self
            .store
            .kms_key(key_id)
            .map_err(store_err)?
            .filter(|k| k.account == ctx.account && k.region == ctx.region)
            .ok_or_else(|| kms_err(KmsError::InvalidCiphertext))?;
        if let Some(expected) = expected.as_deref() {
            let named = self.find(ctx, expected)?;
            if named.key.row.key_id != row.key_id {
                return Err(error(
                    "IncorrectKeyException",
                    "The key ID in the request does not identify a KMS key that can perform this operation.",
                ));
            }
        }
        Ok(Found {
            key: self.load(ctx, row)?,
            alias: None,
        })
    }

    fn decrypt(&self, ctx: &KmsCtx, r: w::DecryptRequest) -> Result<Vec<u8>, AwsError> {
        let blob = r
            .ciphertext_blob
            .as_deref()
            .ok_or_else(|| validation("ciphertextBlob", "Member must not be null"))?;
        check_context(&r.encryption_context, "encryptionContext")?;
        check_algorithm(&r.encryption_algorithm, "EncryptionAlgorithm")?;
        let found = self.key_of_blob(ctx, blob, &r.key_id)?;
        let keys = context_keys(ctx, r.encryption_context.as_ref(), None);
        self.allow_use(ctx, "kms:Decrypt", &found.key, keys, r.encryption_context.as_ref())?;
        found.key.usable()?;
        let plaintext = self.unwrap(blob, &pairs(&r.encryption_context)).map_err(kms_err)?;
        Ok(encode(&w::CryptoResponse {
            plaintext: Some(plaintext),
            key_id: Some(found.key.row.arn.clone()),
            encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
            ..Default::default()
        }))
    }

    fn re_encrypt(&self, ctx: &KmsCtx, r: w::ReEncryptRequest) -> Result<Vec<u8>, AwsError> {
        let blob = r
            .ciphertext_blob
            .as_deref()
            .ok_or_else(|| validation("ciphertextBlob", "Member must not be null"))?;
        let destination = key_id_param(&r.destination_key_id, "destinationKeyId")?;
        check_context(&r.source_encryption_context, "sourceEncryptionContext")?;
        check_context(&r.destination_encryption_context, "destinationEncryptionContext")?;
        let source = self.key_of_blob(ctx, blob, &r.source_key_id)?;
        let keys = context_keys(ctx, r.source_encryption_context.as_ref(), None);
        self.allow_use(
            ctx,
            "kms:ReEncryptFrom",
            &source.key,
            keys,
            r.source_encryption_context.as_ref(),
        )?;
        source.key.usable()?;
        let dest = self.find(ctx, destination)?;
        let keys = context_keys(ctx, r.destination_encryption_context.as_ref(), dest.alias.as_deref());
        self.allow_use(
            ctx,
            "kms:ReEncryptTo",
            &dest.key,
            keys,
            r.destination_encryption_context.as_ref(),
        )?;
        dest.key.usable()?;
        let plaintext = self
            .unwrap(blob, &pairs(&r.source_encryption_context))
            .map_err(kms_err)?;
        let sealed = self.seal_under(&dest.key, &plaintext, &r.destination_encryption_context)?;
        Ok(encode(&w::CryptoResponse {
            ciphertext_blob: Some(sealed),
            source_key_id: Some(source.key.row.arn.clone()),
            key_id: Some(dest.key.row.arn.clone()),
            source_encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
            destination_encryption_algorithm: Some(SYMMETRIC_DEFAULT.into()),
            ..Default::default()
        }))
    }

    fn generate_data_key(
        &self,
        ctx: &KmsCtx,
        r: w::GenerateDataKeyRequest,
        with_plaintext: bool,
    ) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let bytes = match (r.number_of_bytes, r.key_spec.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(AwsError::validation(
                    "Please specify either number of bytes or key spec.",
                ));
            }
            (Some(n), None) if (1..=1024).contains(&n) => n as usize,
            (Some(_), None) => {
                return Err(validation("numberOfBytes", "Member must have value between 1 and 1024"));
            }
            (None, Some("AES_256")) => 32,
            (None, Some("AES_128")) => 16,
            (None, Some(_)) => {
                return Err(validation(
                    "keySpec",
                    "Member must satisfy enum value set: [AES_256, AES_128]",
                ));
            }
            (None, None) => {
                return Err(AwsError::validation(
                    "Please specify either number of bytes or key spec.",
                ));
            }
        };
        check_context(&r.encryption_context, "encryptionContext")?;
        let found = self.find(ctx, reference)?;
        let action = if with_plaintext {
            "kms:GenerateDataKey"
        } else {
            "kms:GenerateDataKeyWithoutPlaintext"
        };
        let keys = context_keys(ctx, r.encryption_context.as_ref(), found.alias.as_deref());
        self.allow_use(ctx, action, &found.key, keys, r.encryption_context.as_ref())?;
        found.key.usable()?;
        let data_key = Sensitive::new(tumbler_crypto::random_bytes(bytes).map_err(|e| kms_err(e.into()))?);
        let blob = self.seal_under(&found.key, &data_key, &r.encryption_context)?;
        Ok(encode(&w::CryptoResponse {
            ciphertext_blob: Some(blob),
            plaintext: with_plaintext.then_some(data_key),
            key_id: Some(found.key.row.arn.clone()),
            ..Default::default()
        }))
    }

    fn generate_random(&self, ctx: &KmsCtx, r: w::GenerateRandomRequest) -> Result<Vec<u8>, AwsError> {
        let n = match r.number_of_bytes {
            Some(n) if (1..=1024).contains(&n) => n as usize,
            Some(_) => return Err(validation("numberOfBytes", "Member must have value between 1 and 1024")),
            None => return Err(validation("numberOfBytes", "Member must not be null")),
        };
        ctx.authorizer
            .authorize("kms:GenerateRandom", "*", context_keys(ctx, None, None), None)?;
        let bytes = tumbler_crypto::random_bytes(n).map_err(|e| kms_err(e.into()))?;
        Ok(encode(&w::CryptoResponse {
            plaintext: Some(Sensitive::new(bytes)),
            ..Default::default()
        }))
    }

    fn policy_name(name: &Option<String>) -> Result<(), AwsError> {
        match name.as_deref() {
            None | Some("default") => Ok(()),
            Some(other) => Err(not_found(format!(
                "No such policy: {other}. A key has one policy, \"default\"."
            ))),
        }
    }

    fn get_key_policy(&self, ctx: &KmsCtx, r: w::KeyPolicyRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        Self::policy_name(&r.policy_name)?;
        let found = self.find(ctx, reference)?;
        self.allow(ctx, "kms:GetKeyPolicy", &found.key, context_keys(ctx, None, None))?;
        let text = match &found.key.meta.policy {
            Some(p) => p.clone(),
            None if found.key.aws_managed() => aws_managed_policy(&ctx.account, &ctx.region),
            None => default_policy(&ctx.account),
        };
        Ok(encode(&w::GetKeyPolicyResponse {
            policy: text,
            policy_name: "default".into(),
        }))
    }

    fn put_key_policy(&self, ctx: &KmsCtx, r: w::KeyPolicyRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        Self::policy_name(&r.policy_name)?;
        let text = required(&r.policy, "policy")?;
        let key = self.customer_key(ctx, reference, "kms:PutKeyPolicy")?;
        let policy = parse_key_policy(text)?;
        if !r.bypass_policy_lockout_safety_check.unwrap_or(false) {
            self.lockout_check(ctx, &key.row.arn, &policy)?;
        }
        let mut meta = key.meta.clone();
        meta.policy = Some(text.to_owned());
        self.update(ctx, &key, &key.row.state, &meta)?;
        Ok(b"{}".to_vec())
    }

    fn list_key_policies(&self, ctx: &KmsCtx, r: w::ListRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let found = self.find(ctx, reference)?;
        self.allow(ctx, "kms:ListKeyPolicies", &found.key, context_keys(ctx, None, None))?;
        Ok(encode(&w::ListKeyPoliciesResponse {
            policy_names: vec!["default".into()],
            truncated: false,
        }))
    }
}

const DAY_MS: i64 = 86_400_000;

impl Kms {
    fn tag_resource(&self, ctx: &KmsCtx, r: w::TagResourceRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let new = tags(&r.tags)?;
        if new.is_empty() {
            return Err(validation("tags", "Member must not be null"));
        }
        let _guard = self.key_writes.lock().unwrap_or_else(|e| e.into_inner());
        let found = self.find(ctx, reference)?;
        let mut keys = context_keys(ctx, None, None);
        for (k, v) in &new {
            keys.insert(&format!("aws:RequestTag/{k}"), v.clone());
        }
        keys.insert_multi("aws:TagKeys", new.iter().map(|(k, _)| k.clone()));
        self.allow(ctx, "kms:TagResource", &found.key, keys)?;
        let key = self.managed_by_customer(found.key)?;
        let mut meta = key.meta.clone();
        for (k, v) in new {
            meta.tags.retain(|(old, _)| *old != k);
            meta.tags.push((k, v));
        }
        meta.tags.sort();
        if meta.tags.len() > 50 {
            return Err(error("TagException", "A key has at most 50 tags."));
        }
        self.update(ctx, &key, &key.row.state, &meta)?;
        Ok(b"{}".to_vec())
    }

    fn untag_resource(&self, ctx: &KmsCtx, r: w::UntagResourceRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let gone = r.tag_keys.clone().unwrap_or_default();
        if gone.is_empty() {
            return Err(validation("tagKeys", "Member must not be null"));
        }
        let _guard = self.key_writes.lock().unwrap_or_else(|e| e.into_inner());
        let found = self.find(ctx, reference)?;
        let mut keys = context_keys(ctx, None, None);
        keys.insert_multi("aws:TagKeys", gone.iter().cloned());
        self.allow(ctx, "kms:UntagResource", &found.key, keys)?;
        let key = self.managed_by_customer(found.key)?;
        let mut meta = key.meta.clone();
        meta.tags.retain(|(k, _)| !gone.contains(k));
        self.update(ctx, &key, &key.row.state, &meta)?;
        Ok(b"{}".to_vec())
    }

    fn list_resource_tags(&self, ctx: &KmsCtx, r: w::ListRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let found = self.find(ctx, reference)?;
        self.allow(ctx, "kms:ListResourceTags", &found.key, context_keys(ctx, None, None))?;
        let items = found
            .key
            .meta
            .tags
            .iter()
            .map(|(k, v)| {
                let tag = w::Tag {
                    tag_key: Some(k.clone()),
                    tag_value: Some(v.clone()),
                };
                (k.clone(), tag)
            })
            .collect();
        let (tags, next) = page(r.limit, &r.marker, items)?;
        Ok(encode(&w::ListResourceTagsResponse {
            tags,
            truncated: next.is_some(),
            next_marker: next,
        }))
    }

    /// Refuse changes to AWS-managed keys (after authorization, so that a
    /// caller who may not see a key learns nothing of it).
    fn managed_by_customer(&self, key: Key) -> Result<Key, AwsError> {
        if key.aws_managed() {
            return Err(error(
                "UnsupportedOperationException",
                format!("{} is an AWS managed key; it can't be changed.", key.row.arn),
            ));
        }
        Ok(key)
    }

    fn enable_key_rotation(&self, ctx: &KmsCtx, r: w::EnableKeyRotationRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let days = r.rotation_period_in_days.unwrap_or(365);
        if !(90..=2560).contains(&days) {
            return Err(validation(
                "rotationPeriodInDays",
                "Member must have value between 90 and 2560",
            ));
        }
        let key = self.customer_key(ctx, reference, "kms:EnableKeyRotation")?;
        key.usable()?;
        let mut meta = key.meta.clone();
        meta.rotation_period_days = Some(days);
        meta.next_rotation_ms = Some(ctx.now.as_millisecond() + days * DAY_MS);
        self.update(ctx, &key, &key.row.state, &meta)?;
        Ok(b"{}".to_vec())
    }

    fn disable_key_rotation(&self, ctx: &KmsCtx, r: w::KeyIdRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let key = self.customer_key(ctx, reference, "kms:DisableKeyRotation")?;
        key.usable()?;
        let mut meta = key.meta.clone();
        meta.rotation_period_days = None;
        meta.next_rotation_ms = None;
        self.update(ctx, &key, &key.row.state, &meta)?;
        Ok(b"{}".to_vec())
    }

    fn get_key_rotation_status(&self, ctx: &KmsCtx, r: w::KeyIdRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let found = self.find(ctx, reference)?;
        self.allow(
            ctx,
            "kms:GetKeyRotationStatus",
            &found.key,
            context_keys(ctx, None, None),
        )?;
        let meta = &found.key.meta;
        Ok(encode(&w::GetKeyRotationStatusResponse {
            key_rotation_enabled: meta.next_rotation_ms.is_some(),
            key_id: found.key.row.arn.clone(),
            rotation_period_in_days: meta.rotation_period_days,
            next_rotation_date: meta.next_rotation_ms.map(seconds),
            on_demand_rotation_start_date: None,
        }))
    }

    fn rotate_key_on_demand(&self, ctx: &KmsCtx, r: w::KeyIdRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let key = self.customer_key(ctx, reference, "kms:RotateKeyOnDemand")?;
        key.usable()?;
        let write = self.rotation(&key.row, &key.meta, ctx.now.as_millisecond(), "ON_DEMAND")?;
        rotated(
            tumbler_store::apply_journaled(self.store.as_ref(), ctx.journal.as_deref(), vec![write]),
            &key.row,
        )?;
        Ok(encode(&w::KeyIdResponse {
            key_id: key.row.arn.clone(),
        }))
    }

    fn list_key_rotations(&self, ctx: &KmsCtx, r: w::ListRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let found = self.find(ctx, reference)?;
        self.allow(ctx, "kms:ListKeyRotations", &found.key, context_keys(ctx, None, None))?;
        let items = found
            .key
            .meta
            .rotations
            .iter()
            .enumerate()
            .map(|(i, (ms, kind))| {
                let entry = w::RotationsListEntry {
                    key_id: found.key.row.arn.clone(),
                    rotation_date: seconds(*ms),
                    rotation_type: kind.clone(),
                };
                (format!("{i:08}"), entry)
            })
            .collect();
        let (rotations, next) = page(r.limit, &r.marker, items)?;
        Ok(encode(&w::ListKeyRotationsResponse {
            rotations,
            truncated: next.is_some(),
            next_marker: next,
        }))
    }

    /// New material for a key: it encrypts from now on, and the old
    /// material stays to decrypt what it encrypted.
    /// The write that rotates a key: new material, current from now on.
    fn rotation(&self, row: &KmsKeyRow, meta: &KeyMeta, now_ms: i64, kind: &str) -> Result<Write, AwsError> {
        let version = row.current_material + 1;
        let material = tumbler_crypto::generate_key().map_err(|e| kms_err(e.into()))?;
        let wrapped = self
            .material_kek
            .seal(material.expose(), &material_aad(&row.key_id, version as u32))
            .map_err(|e| kms_err(e.into()))?;
        let mut meta = meta.clone();
        meta.rotations.push((now_ms, kind.to_owned()));
        if let Some(days) = meta.rotation_period_days {
            meta.next_rotation_ms = Some(now_ms + days * DAY_MS);
        }
        Ok(Write::AddKmsMaterial {
            key_id: row.key_id.clone(),
            version,
            wrapped,
            created_ms: now_ms,
            meta: meta.to_json(),
        })
    }

    /// Keys whose automatic rotation is due by `now`, rotated; each with
    /// the audit event `event(key, "RotateKey")`, written with the change.
    pub fn rotate_due_keys(&self, now: jiff::Timestamp, event: &ServiceEvent<'_>) -> Result<usize, KmsError> {
        let due = self.store.kms_keys_due_for_rotation(now.as_millisecond())?;
        let mut count = 0;
        for key_id in &due {
            let Some(row) = self.store.kms_key(key_id)? else {
                continue;
            };
            let meta = KeyMeta::parse(&row.meta);
            let done = self
                .rotation(&row, &meta, now.as_millisecond(), "AUTOMATIC")
                .and_then(|write| rotated(self.store.apply_with_event(vec![write], event(&row, "RotateKey")), &row));
            match done {
                Ok(()) => count += 1,
                Err(e) => tracing::warn!(key = %key_id, error = %e.message, "automatic key rotation failed"),
            }
        }
        Ok(count)
    }
}

/// The audit event of something the key service does on its own (an
/// automatic rotation, a deletion at the end of its window), named like
/// CloudTrail's; None when auditing is off.
pub type ServiceEvent<'a> = dyn Fn(&KmsKeyRow, &str) -> Option<tumbler_store::AuditRecord> + 'a;

/// A rotation's store result, in KMS's errors.
fn rotated(result: Result<Vec<tumbler_store::Applied>, StoreError>, row: &KmsKeyRow) -> Result<(), AwsError> {
    match result {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict) => Err(error(
            "ConflictException",
            "The key was rotated by another request at the same time; try again.",
        )),
        Err(StoreError::NotFound) => Err(not_found(format!("Key '{}' does not exist", row.arn))),
        Err(e) => Err(store_err(e)),
    }
}

/// `Tags` of CreateKey: at most 50, keys 1..128 and values 0..256 characters.
fn tags(tags: &Option<Vec<w::Tag>>) -> Result<Vec<(String, String)>, AwsError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for t in tags.iter().flatten() {
        let (Some(k), Some(v)) = (&t.tag_key, &t.tag_value) else {
            return Err(error("TagException", "Each tag needs a TagKey and a TagValue."));
        };
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(error(
                "TagException",
                "Tag keys have 1 to 128 characters, values at most 256.",
            ));
        }
        if k.starts_with("aws:") {
            return Err(error("TagException", "Tag keys can't begin with aws:."));
        }
        out.insert(k.clone(), v.clone());
    }
    if out.len() > 50 {
        return Err(error("TagException", "A key has at most 50 tags."));
    }
    Ok(out.into_iter().collect())
}
