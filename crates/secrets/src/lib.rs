//! The Secrets Manager operations with AWS's semantics: versions, staging
//! labels, idempotency by ClientRequestToken, deletion with a recovery
//! window, tags, filters, resource policies, replication between regions.
//!
//! Every write is computed from a consistent read of the secret and
//! committed with the revision it read; on a concurrent change the operation
//! re-reads and recomputes (`mutate`). Values are sealed here (AES-256-GCM
//! under a fresh data key, associated data = secret ARN + version id) and the
//! data key is wrapped by the secret's KMS key, so the store only ever holds
//! ciphertext.

pub mod authz;
pub mod filters;
pub mod labels;
pub mod meta;
mod ops;
pub mod password;
mod policy;
mod replication;
pub mod schedule;

use std::sync::Arc;

use jiff::Timestamp;
use tumbler_kms::{KeyRef, Kms, KmsError};
use tumbler_store::{
    Applied, AuditRecord, Journal, SealedValue, SecretRow, SecretState, Store, StoreError, ValueKind, VersionMeta,
    Write,
};
use tumbler_types::{Sensitive, SensitiveString};
use tumbler_wire::AwsError;

pub use authz::{ActionAuthorizer, AllowAll, Authorizer, ServiceForCaller};
use authz::{Check, FactsCache};
pub use meta::SecretMeta;
pub use ops::rotation::{
    ClaimedRotation, MAX_ROTATION_ATTEMPTS, ROTATION_LEASE_MS, RotationEnd, RotationOutcome, RotatorNames,
};
pub use ops::{OPERATIONS, is_read_only};

/// Who is calling and where: the account of the principal and the region
/// of the request's SigV4 scope.
/// Every call is authorized through `authorizer`: see [`authz`].
#[derive(Clone)]
pub struct Ctx {
    pub account: String,
    pub region: String,
    pub principal_arn: String,
    pub now: Timestamp,
    authorizer: Arc<dyn Authorizer>,
    /// The operation's action and request condition keys, set by `call`.
    check: Check,
    /// Where the call's audit event goes with its change.
    journal: Option<Arc<dyn Journal>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("account", &self.account)
            .field("region", &self.region)
            .field("principal_arn", &self.principal_arn)
            .field("action", &self.check.action)
            .finish()
    }
}

/// What only a secret's owning service may do to it (tags, resource
/// policies and the rotation schedule stay the user's).
const OWNER_ONLY: &[&str] = &[
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:CancelRotateSecret",
    "secretsmanager:ReplicateSecretToRegions",
];

impl Ctx {
    /// Whether this call is the owning service's own (or the rotation
    /// engine's, which runs the owner's rotator): AWS's "managed by
    /// another service" refusal otherwise.
    pub(crate) fn check_owner(&self, owner: &str) -> Result<(), AwsError> {
        if self.principal_arn == owner || self.principal_arn == ops::rotation::SERVICE_PRINCIPAL {
            return Ok(());
        }
        Err(AwsError::invalid_request(format!(
            "This secret is managed by the service {owner}, and you must use that service to update it."
        )))
    }

    pub fn new(
        account: impl Into<String>,
        region: impl Into<String>,
        principal_arn: impl Into<String>,
        now: Timestamp,
        authorizer: Arc<dyn Authorizer>,
    ) -> Ctx {
        Ctx {
            account: account.into(),
            region: region.into(),
            principal_arn: principal_arn.into(),
            now,
            authorizer,
            check: Check::default(),
            journal: None,
        }
    }

    /// Commit the call's changes together with its audit event.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Ctx {
        self.journal = Some(journal);
        self
    }

    fn now_ms(&self) -> i64 {
        self.now.as_millisecond()
    }

    pub(crate) fn with_check(&self, check: Check) -> Ctx {
        Ctx { check, ..self.clone() }
    }

    /// Authorize this call's action on `resource` (an ARN or `*`).
    pub(crate) fn authorize_resource(
        &self,
        resource: &str,
        facts: Option<&authz::SecretFacts>,
    ) -> Result<(), AwsError> {
        if self.check.action.is_empty() {
            // Every operation sets its action; reaching here without one is
            // a bug, and a bug must not grant access.
            tracing::error!(resource, "authorization without an action");
            return Err(AwsError::access_denied("Access to this resource is denied."));
        }
        let mut keys = self.check.keys.clone();
        let policy = facts.and_then(|f| {
            authz::add_resource_tags(&mut keys, &f.tags);
            f.policy.as_ref()
        });
        self.authorizer.authorize(self.check.action, resource, keys, policy)
    }
}

/// A secret's type in audit events (CloudFormation's resource type, as CloudTrail names it).
const SECRET_RESOURCE_TYPE: &str = "AWS::SecretsManager::Secret";

/// Versions beyond this many are cleaned up (unlabelled, older than a day).
pub const MAX_VERSIONS: usize = 100;
const DAY_MS: i64 = 86_400_000;

/// A decrypted secret value.
pub enum Value {
    String(SensitiveString),
    Binary(Sensitive),
}

impl Value {
    fn bytes(&self) -> &[u8] {
        match self {
            Value::String(s) => s.expose().as_bytes(),
            Value::Binary(b) => b.expose(),
        }
    }
    fn kind(&self) -> ValueKind {
        match self {
            Value::String(_) => ValueKind::String,
            Value::Binary(_) => ValueKind::Binary,
        }
    }
    /// Same kind and same bytes, compared in constant time.
    fn same_as(&self, other: &Value) -> bool {
        use subtle_eq::ct_eq;
        self.kind() == other.kind() && ct_eq(self.bytes(), other.bytes())
    }
}

mod subtle_eq {
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
    }
}

pub struct SecretsService {
    store: Arc<dyn Store>,
    kms: Arc<Kms>,
    facts: FactsCache,
    /// The rotation functions RotateSecret accepts (set by the server).
    rotators: std::sync::OnceLock<Arc<dyn RotatorNames>>,
    /// Told (secret ARN, version id) whenever a secret's AWSCURRENT moves.
    current_listener: std::sync::OnceLock<CurrentListener>,
    /// Told when a RotateSecret is recorded, so the engine runs it now
    /// whoever called (a user, or a service of Tumbler's own).
    rotation_waker: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// Called with (secret ARN, version id) after AWSCURRENT moved (a put, a
/// label move, a rotation's finish), once the change is committed.
pub type CurrentListener = Box<dyn Fn(&str, &str) + Send + Sync>;

pub(crate) const NOT_FOUND: &str = "Secrets Manager can't find the specified secret.";
pub(crate) const MARKED_DELETED: &str =
    "You can't perform this operation on the secret because it was marked for deletion.";
pub(crate) const ON_REPLICA: &str =
    "Operation not permitted on a replica secret. Call must be made in primary secret's region.";
pub(crate) const INVALID_NAME: &str =
    "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!";

pub(crate) fn store_err(e: StoreError) -> AwsError {
    tracing::error!(error = %e, "store failure");
    AwsError::internal("An internal error occurred. Try the request again.")
}

pub(crate) fn parse_meta(row: &SecretRow) -> Result<SecretMeta, AwsError> {
    SecretMeta::parse(&row.meta).map_err(|e| {
        tracing::error!(secret = %row.arn, error = %e, "unreadable secret metadata");
        AwsError::internal("An internal error occurred. Try the request again.")
    })
}

pub(crate) fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

pub(crate) fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The AAD of a version's sealed value: it binds the ciphertext to its row.
fn value_aad(arn: &str, version_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(arn.len() + version_id.len() + 1);
    aad.extend_from_slice(arn.as_bytes());
    aad.push(0);
    aad.extend_from_slice(version_id.as_bytes());
    aad
}

/// The state of a secret after a change, as the operations build it.
pub(crate) struct Draft {
    pub state: Arc<SecretState>,
    pub meta: SecretMeta,
    pub labels: labels::Labels,
}

impl Draft {
    fn new(state: Arc<SecretState>) -> Result<Self, AwsError> {
        let meta = parse_meta(&state.row)?;
        let labels = state
            .versions
            .iter()
            .flat_map(|v| v.stages.iter().map(move |s| (s.clone(), v.version_id.clone())))
            .collect();
        Ok(Self { state, meta, labels })
    }

    pub fn version(&self, id: &str) -> Option<&VersionMeta> {
        self.state.versions.iter().find(|v| v.version_id == id)
    }

    pub fn arn(&self) -> &str {
        &self.state.row.arn
    }
    pub fn name(&self) -> &str {
        &self.state.row.name
    }
}

impl SecretsService {
    pub fn new(store: Arc<dyn Store>, kms: Arc<Kms>) -> Self {
        Self {
            store,
            kms,
            facts: FactsCache::default(),
            rotators: std::sync::OnceLock::new(),
            current_listener: std::sync::OnceLock::new(),
            rotation_waker: std::sync::OnceLock::new(),
        }
    }

    /// Be told when a rotation is requested (the rotation engine).
    pub fn set_rotation_waker(&self, waker: Box<dyn Fn() + Send + Sync>) {
        let _ = self.rotation_waker.set(waker);
    }

    pub(crate) fn wake_rotation(&self) {
        if let Some(wake) = self.rotation_waker.get() {
            wake();
        }
    }

    /// Hear about every AWSCURRENT change (for change notifications).
    pub fn set_current_listener(&self, listener: CurrentListener) {
        let _ = self.current_listener.set(listener);
    }

    /// Resolve a SecretId (name, full ARN or partial ARN) in the caller's
    /// account and region, as AWS does.
    /// Look up the secret `id` names and authorize the call on it (on the
    /// named ARN when there is no such secret, so a caller who may not see
    /// it cannot tell whether it exists).
    pub(crate) fn find(&self, ctx: &Ctx, id: &str) -> Result<Option<Arc<SecretState>>, AwsError> {
        let found = self.lookup(ctx, id)?;
        match &found {
            Some(state) => {
                if let Some(j) = &ctx.journal {
                    j.resource(&state.row.arn, &state.row.account, SECRET_RESOURCE_TYPE);
                }
                ctx.authorize_resource(&state.row.arn, Some(&self.facts.get(state)))?
            }
            None if id.starts_with("arn:") => ctx.authorize_resource(id, None)?,
            None => ctx.authorize_resource(
                &format!("arn:aws:secretsmanager:{}:{}:secret:{id}", ctx.region, ctx.account),
                None,
            )?,
        }
        Ok(found)
    }

    fn lookup(&self, ctx: &Ctx, id: &str) -> Result<Option<Arc<SecretState>>, AwsError> {
        if id.starts_with("arn:") {
            let Some(arn) = tumbler_types::Arn::parse(id) else {
                return Ok(None);
            };
            let Some(rest) = arn.resource.strip_prefix("secret:") else {
                return Ok(None);
            };
            if arn.service != "secretsmanager" || arn.account != ctx.account || arn.region != ctx.region {
                return Ok(None);
            }
            if let Some(s) = self.store.secret_by_arn(id).map_err(store_err)? {
                return Ok(Some(s));
            }
            // A partial ARN: the ARN without its random suffix.
            return self
                .store
                .secret_by_name(&ctx.account, &ctx.region, rest)
                .map_err(store_err);
        }
        if !tumbler_wire::secretsmanager::is_secret_name(id) && !is_service_name(id) {
            return Err(AwsError::validation(INVALID_NAME));
        }
        self.store
            .secret_by_name(&ctx.account, &ctx.region, id)
            .map_err(store_err)
    }

    pub(crate) fn resolve(&self, ctx: &Ctx, id: &str) -> Result<Arc<SecretState>, AwsError> {
        self.find(ctx, id)?
            .ok_or_else(|| AwsError::resource_not_found(NOT_FOUND))
    }

    /// Resolve for a change: not pending deletion, not a replica.
    pub(crate) fn resolve_for_change(&self, ctx: &Ctx, id: &str) -> Result<Draft, AwsError> {
        let d = Draft::new(self.resolve(ctx, id)?)?;
        if let Some(owner) = &d.meta.owning_service
            && OWNER_ONLY.contains(&ctx.check.action)
        {
            ctx.check_owner(owner)?;
        }
        if d.state.row.deleted_ms.is_some() {
            return Err(AwsError::invalid_request(MARKED_DELETED));
        }
        if d.meta.replica {
            return Err(AwsError::invalid_request(ON_REPLICA));
        }
        Ok(d)
    }

    /// Commit a call's writes with the call's audit event.
    pub(crate) fn commit(&self, ctx: &Ctx, writes: Vec<Write>) -> Result<Vec<Applied>, StoreError> {
        tumbler_store::apply_journaled(self.store.as_ref(), ctx.journal.as_deref(), writes)
    }

    /// Read, compute, commit with the revision read; recompute on conflict.
    pub(crate) fn mutate<R>(
        &self,
        ctx: &Ctx,
        id: &str,
        mut f: impl FnMut(Draft) -> Result<(Vec<Write>, R), AwsError>,
    ) -> Result<R, AwsError> {
        for _ in 0..16 {
            let draft = self.resolve_for_change(ctx, id)?;
            let primary_id = draft.state.row.id;
            let has_replicas = !draft.meta.replicas.is_empty();
            let old_current = draft.labels.get(labels::CURRENT).cloned();
            let arn = draft.arn().to_owned();
            let (writes, out) = f(draft)?;
            if writes.is_empty() {
                return Ok(out);
            }
            let new_current = writes.iter().find_map(|w| match w {
                Write::UpdateSecret {
                    stages: Some(stages), ..
                } => stages
                    .iter()
                    .find(|(stage, _)| stage == labels::CURRENT)
                    .map(|(_, version)| version.clone()),
                _ => None,
            });
            match self.commit(ctx, writes) {
                Ok(_) => {
                    if has_replicas {
                        self.sync_replicas_of(primary_id);
                    }
                    if let Some(version) = new_current.filter(|v| Some(v) != old_current.as_ref())
                        && let Some(listener) = self.current_listener.get()
                    {
                        listener(&arn, &version);
                    }
                    return Ok(out);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(AwsError::throttling(
            "Rate exceeded: the secret is changing too fast to apply this request; retry it.",
        ))
    }

    /// The KMS key for a user's key reference (None or "" = the default key).
    pub(crate) fn key_for(&self, ctx: &Ctx, reference: Option<&str>) -> Result<KeyRef, AwsError> {
        self.key_in(&ctx.account, &ctx.region, reference)
    }

    pub(crate) fn key_in(&self, account: &str, region: &str, reference: Option<&str>) -> Result<KeyRef, AwsError> {
        let r = match reference {
            None | Some("") => self.kms.default_secrets_key(account, region),
            Some(r) => self.kms.resolve(account, region, r),
        };
        r.map_err(|e| match e {
            KmsError::NotFound(_) => AwsError::resource_not_found(format!(
                "Secrets Manager can't find the specified KMS key: {}",
                reference.unwrap_or_default()
            )),
            KmsError::Disabled(m) => AwsError::encryption_failure(format!("The KMS key can't be used: {m}")),
            other => kms_internal(other),
        })
    }

    pub(crate) fn seal(
        &self,
        key: &KeyRef,
        arn: &str,
        version_id: &str,
        value: &Value,
    ) -> Result<SealedValue, AwsError> {
        let (dek, ciphertext) = tumbler_crypto::seal_with_new_data_key(value.bytes(), &value_aad(arn, version_id))
            .map_err(|e| {
                AwsError::encryption_failure(format!("Secrets Manager can't encrypt the secret value: {e}"))
            })?;
        let wrapped_key = self
            .kms
            .wrap(key, &dek, &[("SecretARN", arn), ("SecretVersionId", version_id)])
            .map_err(|e| match e {
                KmsError::Disabled(m) => AwsError::encryption_failure(format!("The KMS key can't be used: {m}")),
                other => {
                    AwsError::encryption_failure(format!("Secrets Manager can't encrypt the secret value: {other}"))
                }
            })?;
        Ok(SealedValue {
            kind: value.kind(),
            kms_key_id: key.key_id.clone(),
            wrapped_key,
            ciphertext,
        })
    }

    pub(crate) fn open(&self, arn: &str, version_id: &str, sealed: &SealedValue) -> Result<Value, AwsError> {
        let failure = || {
            tracing::error!(secret = %arn, version = %version_id, "a stored ciphertext failed to authenticate");
            AwsError::decryption_failure(format!(
                "Secrets Manager can't decrypt the protected secret text using the provided KMS key: \
                 the ciphertext of version {version_id} does not belong to this secret, or was altered in the store."
            ))
        };
        let dek = self
            .kms
            .unwrap_prepared(
                &sealed.wrapped_key,
                &[("SecretARN", arn), ("SecretVersionId", version_id)],
            )
            .map_err(|e| match e {
                KmsError::Disabled(m) => AwsError::decryption_failure(format!(
                    "Secrets Manager can't decrypt the protected secret text because the KMS key is not usable: {m}"
                )),
                KmsError::Store(s) => store_err(s),
                _ => failure(),
            })?;
        let plain = dek
            .open(&sealed.ciphertext, &value_aad(arn, version_id))
            .map_err(|_| failure())?;
        Ok(match sealed.kind {
            ValueKind::Binary => Value::Binary(plain),
            ValueKind::String => Value::String(SensitiveString::new(
                String::from_utf8(plain.expose().to_vec()).map_err(|_| failure())?,
            )),
        })
    }

    /// The caller must be allowed to have Secrets Manager use the version's
    /// customer key (`kms:Decrypt` to read, `kms:GenerateDataKey` to
    /// write), with the encryption context AWS uses and `kms:ViaService`.
    pub(crate) fn check_key_use(
        &self,
        ctx: &Ctx,
        action: &str,
        key_id: &str,
        arn: &str,
        version_id: &str,
    ) -> Result<(), AwsError> {
        let Some(key) = self.kms.customer_key_use(key_id)? else {
            return Ok(());
        };
        let mut keys = tumbler_iam::ContextKeys::new();
        keys.insert("kms:ViaService", format!("secretsmanager.{}.amazonaws.com", ctx.region));
        keys.insert("kms:CallerAccount", ctx.account.clone());
        keys.insert("kms:EncryptionContext:SecretARN", arn.to_owned());
        keys.insert("kms:EncryptionContext:SecretVersionId", version_id.to_owned());
        keys.insert_multi("kms:EncryptionContextKeys", ["SecretARN", "SecretVersionId"]);
        let context = [("SecretARN", arn), ("SecretVersionId", version_id)];
        let granted = key.grant_allows(&|| ctx.authorizer.grantee_arns(), action, &context);
        ctx.authorizer
            .authorize_key(action, &key.arn, keys, &key.policy, granted)
            .map_err(|e| AwsError::access_denied(format!("Access to KMS is not allowed. {}", e.message)))
    }

    /// A version's value for the caller: checked against its KMS key first.
    pub(crate) fn load_value_for(
        &self,
        ctx: &Ctx,
        d: &SecretState,
        version_id: &str,
    ) -> Result<Option<Value>, AwsError> {
        match self.store.version_value(d.row.id, version_id).map_err(store_err)? {
            None => Ok(None),
            Some(sealed) => {
                self.check_key_use(ctx, "kms:Decrypt", &sealed.kms_key_id, &d.row.arn, version_id)?;
                self.open(&d.row.arn, version_id, &sealed).map(Some)
            }
        }
    }

    pub(crate) fn load_value(&self, d: &SecretState, version_id: &str) -> Result<Option<Value>, AwsError> {
        match self.store.version_value(d.row.id, version_id).map_err(store_err)? {
            None => Ok(None),
            Some(sealed) => self.open(&d.row.arn, version_id, &sealed).map(Some),
        }
    }

    /// Purge secrets whose recovery window has ended, each with the audit
    /// event `event` makes for it. Returns how many.
    pub fn purge_due(
        &self,
        now: Timestamp,
        event: &dyn Fn(&SecretRow) -> Option<AuditRecord>,
    ) -> Result<usize, AwsError> {
        let ids = self
            .store
            .secrets_due_for_purge(now.as_millisecond(), 100)
            .map_err(store_err)?;
        let n = ids.len();
        for id in ids {
            let Some(state) = self.store.secret_by_id(id).map_err(store_err)? else {
                continue;
            };
            self.store
                .apply_with_event(vec![Write::PurgeSecret { id }], event(&state.row))
                .map_err(store_err)?;
        }
        Ok(n)
    }
}

pub(crate) fn kms_internal(e: KmsError) -> AwsError {
    tracing::error!(error = %e, "key service failure");
    AwsError::internal("An internal error occurred. Try the request again.")
}

/// Service-owned names such as `rds!db-...` contain `!`, which users cannot
/// create but can look up.
fn is_service_name(s: &str) -> bool {
    s.contains('!') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-!".contains(&b))
}

/// Remove unlabelled versions beyond the limit, oldest first, sparing those
/// younger than a day (AWS keeps every version of the last 24 hours).
/// Returns the ids to delete, or LimitExceeded if the secret would still
/// hold too many versions.
pub(crate) fn versions_to_clean(
    versions: &[VersionMeta],
    new_count: usize,
    labels: &labels::Labels,
    now_ms: i64,
) -> Result<Vec<String>, AwsError> {
    let total = versions.len() + new_count;
    if total <= MAX_VERSIONS {
        return Ok(Vec::new());
    }
    let labelled: std::collections::BTreeSet<&String> = labels.values().collect();
    let mut removable: Vec<&VersionMeta> = versions
        .iter()
        .filter(|v| !labelled.contains(&v.version_id) && now_ms - v.created_ms >= DAY_MS)
        .collect();
    removable.sort_by_key(|v| v.created_ms);
    let excess = total - MAX_VERSIONS;
    if removable.len() < excess {
        return Err(AwsError::limit_exceeded(format!(
            "You can't create more versions of this secret: it already has {} versions and Secrets Manager keeps \
             every version of the last 24 hours. Write less often, or try again later.",
            versions.len()
        )));
    }
    Ok(removable
        .into_iter()
        .take(excess)
        .map(|v| v.version_id.clone())
        .collect())
}

pub(crate) fn check_label_count(labels: &labels::Labels) -> Result<(), AwsError> {
    if labels.len() > labels::MAX_LABELS {
        return Err(AwsError::limit_exceeded(format!(
            "A secret can have at most {} staging labels across its versions.",
            labels::MAX_LABELS
        )));
    }
    Ok(())
}

pub(crate) fn label_pairs(labels: &labels::Labels) -> Vec<(String, String)> {
    labels.iter().map(|(s, v)| (s.clone(), v.clone())).collect()
}

pub(crate) fn update_row(row: SecretRow, rewrap_versions: Vec<(String, String, Vec<u8>)>) -> Write {
    Write::UpdateSecret {
        row,
        new_versions: Vec::new(),
        fill_versions: Vec::new(),
        delete_versions: Vec::new(),
        stages: None,
        rewrap_versions,
    }
}
