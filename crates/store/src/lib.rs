//! Tumbler's storage interface and its SQLite implementation.
//!
//! The store knows rows, not rules: it persists secrets, versions, staging
//! labels, KMS keys and principals, applies a batch of writes atomically and
//! durably, and enforces the structural invariants a crash must never break
//! (a label on at most one version, never on a version that does not exist).
//! Secrets-domain rules (how labels move, idempotency) live above it, in
//! `tumbler-secrets`; a secret's non-indexed metadata is an opaque JSON
//! document (`SecretRow::meta`) that only the domain interprets.
//!
//! The store only ever sees ciphertext. It does not depend on `tumbler-crypto`.
//!
//! `Store` is the interface a PostgreSQL backend will implement; nothing
//! above this crate names SQLite.

mod sqlite;

use std::sync::Arc;

pub use sqlite::{SqliteStore, audit_log_events, decode_audit_block, encode_audit_block, encode_sealed_audit_block};

/// Failures a caller can act on; anything else is `Backend`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A secret with this (account, region, name) exists (possibly pending deletion).
    #[error("a secret with this name already exists")]
    NameExists,
    /// Another writer changed the secret since it was read; reload and retry.
    #[error("the secret changed concurrently")]
    Conflict,
    /// A unique key other than a secret name was taken (alias, key id, access key).
    #[error("duplicate key: {0}")]
    Duplicate(String),
    #[error("not found")]
    NotFound,
    #[error("storage backend failure: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A secret's row. `id` is assigned by the store on creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRow {
    pub id: i64,
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    /// Bumped by every committed change; writes name the revision they read.
    pub revision: i64,
    pub created_ms: i64,
    pub last_changed_ms: i64,
    pub last_accessed_ms: Option<i64>,
    /// When DeleteSecret was called (AWS's DeletedDate), while pending deletion.
    pub deleted_ms: Option<i64>,
    /// When the sweeper may purge the secret.
    pub purge_at_ms: Option<i64>,
    /// The domain's JSON document for everything else.
    pub meta: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Binary,
}

impl ValueKind {
    fn as_str(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Binary => "binary",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(ValueKind::String),
            "binary" => Some(ValueKind::Binary),
            _ => None,
        }
    }
}

/// A version's encrypted value: the value sealed under a data key, and the
/// data key wrapped by the KMS key `kms_key_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub kind: ValueKind,
    pub kms_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("kind", &self.kind)
            .field("kms_key_id", &self.kms_key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// A version without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionMeta {
    pub version_id: String,
    pub created_ms: i64,
    pub last_accessed_ms: Option<i64>,
    /// None for the rotation placeholder (no value yet).
    pub kind: Option<ValueKind>,
    pub kms_key_id: Option<String>,
    /// Sorted.
    pub stages: Vec<String>,
}

/// A secret with the metadata of all its versions.
#[derive(Clone, Debug)]
pub struct SecretState {
    pub row: SecretRow,
    /// Ordered by creation time, oldest first.
    pub versions: Vec<VersionMeta>,
}

/// A secret as ListSecrets needs it: the row and its label map.
#[derive(Clone, Debug)]
pub struct SecretListing {
    pub row: SecretRow,
    /// (version_id, sorted stages) for labelled versions only.
    pub stages: Vec<(String, Vec<String>)>,
}

#[derive(Clone, Debug)]
pub struct NewVersion {
    pub version_id: String,
    pub created_ms: i64,
    /// None creates the rotation placeholder.
    pub value: Option<SealedValue>,
}

/// One write. A batch of writes (`Store::apply`) commits all or nothing.
#[derive(Clone, Debug)]
pub enum Write {
    /// Insert a secret with its first versions and labels.
    CreateSecret {
        row: SecretRow,
        versions: Vec<NewVersion>,
        /// (stage, version_id)
        stages: Vec<(String, String)>,
    },
    /// Change a secret read at `row.revision`: replace its row, add versions,
    /// fill placeholders, remove versions, and (if given) replace its whole
    /// label map. Fails with `Conflict` if the revision moved on.
    UpdateSecret {
        row: SecretRow,
        new_versions: Vec<NewVersion>,
        /// Give a value to a placeholder version.
        fill_versions: Vec<(String, SealedValue)>,
        delete_versions: Vec<String>,
        stages: Option<Vec<(String, String)>>,
        /// Re-wrapped data keys for existing versions: (version_id, kms_key_id, wrapped_key).
        rewrap_versions: Vec<(String, String, Vec<u8>)>,
    },
    /// Purge a secret and everything under it (end of the recovery window, or force delete).
    PurgeSecret {
        id: i64,
    },
    CreateKmsKey {
        key: KmsKeyRow,
        wrapped_material: Vec<u8>,
        aliases: Vec<String>,
    },
    /// Replace a KMS key's state and `meta`; `NotFound` if it is gone.
    UpdateKmsKey {
        key_id: String,
        state: String,
        meta: String,
    },
    /// Point an alias at a key: a new alias (`Duplicate` if the name is
    /// taken) or, with `replace`, an existing one (`NotFound` if it isn't).
    PutKmsAlias {
        account: String,
        region: String,
        alias_name: String,
        key_id: String,
        created_ms: i64,
        replace: bool,
    },
    /// New key material (a rotation): stored as `version`, which becomes the
    /// key's current material, with the key's new `meta`. `NotFound` if
    /// the key is gone, `Conflict` if `version` is not the next one.
    AddKmsMaterial {
        key_id: String,
        version: i64,
        wrapped: Vec<u8>,
        created_ms: i64,
        meta: String,
    },
    /// Delete a KMS key with its material and aliases.
    DeleteKmsKey {
        key_id: String,
    },
    /// `NotFound` if there is no such alias.
    DeleteKmsAlias {
        account: String,
        region: String,
        alias_name: String,
    },
    CreatePrincipal(PrincipalRow),
    CreateAccessKey(AccessKeyRow),
    /// Replace a user's or role's `meta`; `NotFound` if it is gone.
    UpdatePrincipal {
        arn: String,
        meta: String,
    },
    /// Delete a principal with its access keys, inline policies and attachments.
    DeletePrincipal {
        arn: String,
    },
    SetAccessKeyStatus {
        access_key_id: String,
        status: String,
    },
    DeleteAccessKey {
        access_key_id: String,
    },
    /// Create or replace an inline policy.
    PutInlinePolicy {
        principal_arn: String,
        name: String,
        document: String,
    },
    /// `NotFound` if there is no such policy.
    DeleteInlinePolicy {
        principal_arn: String,
        name: String,
    },
    /// A customer-managed policy with its first version.
    CreateManagedPolicy {
        row: ManagedPolicyRow,
        version: PolicyVersionRow,
    },
    /// Replace a managed policy's `updated_ms` and `meta`.
    UpdateManagedPolicy(ManagedPolicyRow),
    DeleteManagedPolicy {
        arn: String,
    },
    PutPolicyVersion {
        policy_arn: String,
        version: PolicyVersionRow,
    },
    DeletePolicyVersion {
        policy_arn: String,
        version_id: String,
    },
    AttachPolicy {
        principal_arn: String,
        policy_arn: String,
    },
    /// `NotFound` if the policy was not attached.
    DetachPolicy {
        principal_arn: String,
        policy_arn: String,
    },
    /// Put a user in a group (no change if already in it); `NotFound` if
    /// either is gone.
    AddGroupMember {
        group_arn: String,
        user_arn: String,
    },
    /// `NotFound` if the user was not in the group.
    RemoveGroupMember {
        group_arn: String,
        user_arn: String,
    },
    /// `Duplicate` if the serial is taken.
    CreateMfaDevice(MfaDeviceRow),
    /// Assign a device to a user; `NotFound` unless it exists and is unassigned.
    EnableMfaDevice {
        serial: String,
        user_arn: String,
        enabled_ms: i64,
        last_step: i64,
    },
    /// `NotFound` unless the device is enabled for this user.
    DeactivateMfaDevice {
        serial: String,
        user_arn: String,
    },
    /// `NotFound` unless the device exists and is unassigned.
    DeleteMfaDevice {
        serial: String,
    },
    /// Delete audit events `1..=anchor.seq` and make `anchor` the chain's
    /// start. `NotFound` unless event `anchor.seq` is stored with MAC
    /// `anchor.mac` and a later event exists (the newest event is never
    /// pruned: the writer continues the chain from it).
    PruneAudit {
        anchor: AuditAnchor,
    },
    /// Accept a code of TOTP step `step`: `NotFound` if the device is not
    /// enabled for this user or a code of this step or a later one was
    /// accepted already (a replay).
    UseMfaCode {
        serial: String,
        user_arn: String,
        step: i64,
    },
    /// A new registered resource; `Duplicate` if its ARN or its (kind,
    /// account, region, name) is taken.
    CreateResource(ResourceRow),
    /// Replace a resource's `meta` if it is still at `row.revision`;
    /// `Conflict` if it moved on or is gone.
    UpdateResource(ResourceRow),
    /// `NotFound` if there is no such resource.
    DeleteResource {
        arn: String,
    },
}

/// A resource registered with one of Tumbler's own services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRow {
    pub arn: String,
    /// Which service's (`database`, ...).
    pub kind: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub created_ms: i64,
    pub revision: i64,
    pub meta: String,
}

/// What a successful `Write` produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A created secret's id.
    SecretId(i64),
    Done,
}

/// Best-effort, non-durable bookkeeping for reads (AWS's LastAccessedDate is
/// date-granular, so losing one on a crash is harmless).
#[derive(Clone, Debug)]
pub struct AccessTouch {
    pub secret_id: i64,
    pub version_id: String,
    pub day_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    CreatedDate,
    LastAccessedDate,
    LastChangedDate,
    Name,
}

/// Position after the last row of a page: the sort value and the row id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    Int(i64, i64),
    Text(String, i64),
}

/// Live secrets by rotation state (the secrets domain's `meta` fields
/// `rotationEnabled`, `rotationRun` and `rotationFailure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationCounts {
    /// Rotation enabled.
    pub enabled: u64,
    /// A rotation under way (claimed or waiting for its next attempt).
    pub running: u64,
    /// A rotation under way whose last attempt failed.
    pub retrying: u64,
    /// No rotation under way, and the last one was given up.
    pub failed: u64,
}

#[derive(Clone, Debug)]
pub struct ListQuery {
    pub account: String,
    pub region: String,
    pub sort: SortKey,
    pub descending: bool,
    pub include_deleted: bool,
    pub after: Option<Cursor>,
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsKeyRow {
    pub key_id: String,
    pub account: String,
    pub region: String,
    pub arn: String,
    /// `AWS` or `CUSTOMER`.
    pub key_manager: String,
    pub state: String,
    pub created_ms: i64,
    pub current_material: i64,
    pub meta: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalRow {
    pub arn: String,
    pub account: String,
    pub kind: String,
    pub name: String,
    pub unique_id: String,
    pub created_ms: i64,
    pub meta: String,
}

/// A virtual MFA device; `user_arn` and `enabled_ms` are set while it is
/// enabled for a user.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaDeviceRow {
    /// `arn:aws:iam::ACCOUNT:mfa/NAME`.
    pub serial: String,
    pub account: String,
    pub sealed_seed: Vec<u8>,
    pub created_ms: i64,
    pub user_arn: Option<String>,
    pub enabled_ms: Option<i64>,
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for MfaDeviceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaDeviceRow")
            .field("serial", &self.serial)
            .field("user_arn", &self.user_arn)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub principal_arn: String,
    pub status: String,
    pub sealed_secret: Vec<u8>,
    pub created_ms: i64,
}

impl std::fmt::Debug for AccessKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRow")
            .field("access_key_id", &self.access_key_id)
            .field("principal_arn", &self.principal_arn)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPolicyRow {
    pub arn: String,
    pub account: String,
    pub name: String,
    pub policy_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The identity domain's JSON document (default version, path, ...).
    pub meta: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersionRow {
    pub version_id: String,
    pub document: String,
    pub created_ms: i64,
}

/// One audit event, ready to be numbered and chained by the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The event's JSON, exactly as it will be stored and chained.
    pub json: String,
}

/// Computes an event's chain MAC from the previous event's MAC (all zeros
/// before the first), its number and its JSON. The store calls it inside
/// the transaction that writes the event, so numbering and chaining follow
/// commit order; the key stays with the implementor (tumbler-audit).
pub trait AuditLinker: Send + Sync + 'static {
    fn link(&self, prev: &[u8], seq: u64, json: &str) -> Vec<u8>;
    /// The MAC of a block of events `first..=last` after the link `prev`,
    /// over the block's stored bytes (`StoredAuditEvent::block`): one MAC
    /// for a whole batch of events of reads, over their compressed form.
    fn link_block(&self, prev: &[u8], first: u64, last: u64, block: &[u8]) -> Vec<u8>;
}

/// Where the audit chain starts after pruning: events `1..=seq` are gone
/// and the next one links to `mac`; `anchor_mac` vouches for both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: u64,
    pub mac: Vec<u8>,
    pub anchor_mac: Vec<u8>,
    pub pruned_ms: i64,
}

/// An event as stored.
///
/// An event chained on its own carries its MAC. Events chained as a block
/// (a batch of events of reads) share one MAC over the block's bytes: every
/// event of the block but the last has an empty `mac`; the last carries the
/// block's MAC and, in `block`, the bytes it was computed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub seq: u64,
    pub json: String,
    pub mac: Vec<u8>,
    pub block: Option<Vec<u8>>,
}

/// Which events `audit_events` returns, in `seq` order. String filters
/// match the event's JSON fields exactly.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only events numbered above this.
    pub after_seq: u64,
    /// Newest first (then `after_seq` is ignored and `before_seq` pages).
    pub descending: bool,
    /// Only events numbered below this (0: no bound).
    pub before_seq: u64,
    /// `eventTime` bounds, RFC 3339 UTC strings as events carry them.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub event_name: Option<String>,
    pub event_source: Option<String>,
    /// The caller's ARN (`userIdentity.arn`) or, for role sessions, the role's ARN.
    pub principal: Option<String>,
    pub access_key_id: Option<String>,
    /// An ARN in `resources`, or a name or ARN in the request's `secretId`/`name`.
    pub resource: Option<String>,
    pub event_id: Option<String>,
    /// `userIdentity.userName`, or the last part of the caller's ARN (a role session's name).
    pub user_name: Option<String>,
    /// A `resources[].type`, e.g. `AWS::SecretsManager::Secret`.
    pub resource_type: Option<String>,
    /// `recipientAccountId` and `awsRegion`: the events one account sees in one region.
    pub account: Option<String>,
    pub region: Option<String>,
    pub read_only: Option<bool>,
    pub errors_only: bool,
    pub limit: usize,
}

impl AuditQuery {
    fn filters(&self) -> bool {
        self.start_time.is_some()
            || self.end_time.is_some()
            || self.event_name.is_some()
            || self.event_source.is_some()
            || self.principal.is_some()
            || self.access_key_id.is_some()
            || self.resource.is_some()
            || self.event_id.is_some()
            || self.user_name.is_some()
            || self.resource_type.is_some()
            || self.account.is_some()
            || self.region.is_some()
            || self.read_only.is_some()
            || self.errors_only
    }

    /// Whether an event's JSON passes the query's filters (not its `seq`
    /// bounds or limit). JSON that does not parse passes no filter.
    pub fn matches(&self, json: &str) -> bool {
        if !self.filters() {
            return true;
        }
        let Ok(e) = serde_json::from_str::<serde_json::Value>(json) else {
            return false;
        };
        let text = |path: &str| e.pointer(path).and_then(|v| v.as_str());
        let is = |path: &str, want: &Option<String>| want.as_deref().is_none_or(|w| text(path) == Some(w));
        let resources = || e["resources"].as_array().into_iter().flatten();
        self.start_time
            .as_deref()
            .is_none_or(|t| text("/eventTime").is_some_and(|v| v >= t))
            && self
                .end_time
                .as_deref()
                .is_none_or(|t| text("/eventTime").is_some_and(|v| v <= t))
            && is("/eventName", &self.event_name)
            && is("/eventSource", &self.event_source)
            && is("/userIdentity/accessKeyId", &self.access_key_id)
            && is("/eventID", &self.event_id)
            && is("/recipientAccountId", &self.account)
            && is("/awsRegion", &self.region)
            && self.principal.as_deref().is_none_or(|p| {
                text("/userIdentity/arn") == Some(p)
                    || text("/userIdentity/sessionContext/sessionIssuer/arn") == Some(p)
            })
            && self.resource.as_deref().is_none_or(|r| {
                [
                    "/requestParameters/secretId",
                    "/requestParameters/name",
                    "/requestParameters/userName",
                ]
                .iter()
                .any(|p| text(p) == Some(r))
                    || resources().any(|x| x["ARN"].as_str() == Some(r))
            })
            && self.user_name.as_deref().is_none_or(|u| {
                text("/userIdentity/userName") == Some(u)
                    || text("/userIdentity/arn")
                        .and_then(|arn| arn.strip_suffix(u))
                        .is_some_and(|head| head.ends_with('/'))
            })
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| resources().any(|x| x["type"].as_str() == Some(t)))
            && self.read_only.is_none_or(|ro| e["readOnly"].as_bool() == Some(ro))
            && (!self.errors_only || !e["errorCode"].is_null())
    }
}

/// The audit side of one API call: the event that the call's change
/// commits with, so that no change is stored without its event. A call
/// makes at most one event; once that is committed, later writes of the
/// same call (follow-on replica syncs) go without.
pub trait Journal: Send + Sync {
    /// The event for a change about to be committed, given its writes;
    /// None once the call's event is committed (or when nothing is audited).
    fn event_for(&self, writes: &[Write]) -> Option<AuditRecord>;
    /// The event `event_for` last returned was committed with its change.
    fn committed(&self);
    /// The call resolved a resource (a secret it named by name or ARN), so
    /// that its event lists the resource's ARN.
    fn resource(&self, _arn: &str, _account: &str, _kind: &'static str) {}
}

/// Apply `writes` with the call's audit event in the same transaction.
pub fn apply_journaled(store: &dyn Store, journal: Option<&dyn Journal>, writes: Vec<Write>) -> Result<Vec<Applied>> {
    let event = journal.and_then(|j| j.event_for(&writes));
    let with_event = event.is_some();
    let out = store.apply_with_event(writes, event)?;
    if with_event && let Some(j) = journal {
        j.committed();
    }
    Ok(out)
}

/// Called once the events recorded with `Store::record` are stored (or
/// not), on the caller's thread when that is at once.
pub type RecordDone = Box<dyn FnOnce(Result<()>) + Send>;

/// The storage interface. Reads are cheap and may run on async workers;
/// `apply` blocks until the batch is durably committed.
pub trait Store: Send + Sync + 'static {
    fn secret_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<Arc<SecretState>>>;
    fn secret_by_arn(&self, arn: &str) -> Result<Option<Arc<SecretState>>>;
    fn secret_by_id(&self, id: i64) -> Result<Option<Arc<SecretState>>>;
    /// The sealed value of a version; None if the version is unknown or a placeholder.
    fn version_value(&self, secret_id: i64, version_id: &str) -> Result<Option<Arc<SealedValue>>>;
    fn list_secrets(&self, query: &ListQuery) -> Result<Vec<SecretListing>>;
    /// Secrets whose recovery window ended by `now_ms`.
    fn secrets_due_for_purge(&self, now_ms: i64, limit: usize) -> Result<Vec<i64>>;
    /// Live primaries with a replica whose last mirror did not succeed
    /// (the secrets domain's `meta.replicas[].status` other than `InSync`).
    fn secrets_with_unsynced_replicas(&self, limit: usize) -> Result<Vec<i64>>;
    /// Live secrets with rotation enabled whose rotation run may be worked
    /// on at `now_ms` (its backoff and lease passed), or, without a run,
    /// whose next rotation window opened (the secrets domain's `meta`
    /// fields `rotationEnabled`, `rotationRun`, `nextRotationStartMs`).
    fn secrets_due_for_rotation(&self, now_ms: i64, limit: usize) -> Result<Vec<i64>>;
    /// Live secrets whose rotation was ever configured.
    fn secrets_with_rotation(&self, limit: usize) -> Result<Vec<i64>>;
    /// How many live secrets are in each rotation state, for metrics.
    fn rotation_counts(&self) -> Result<RotationCounts>;

    fn resource(&self, arn: &str) -> Result<Option<ResourceRow>>;
    /// An account's resources of one kind in a region, by name.
    fn resources(&self, kind: &str, account: &str, region: &str) -> Result<Vec<ResourceRow>>;
    /// Every resource of `kind`, in every account and region (background work).
    fn resources_of_kind(&self, kind: &str) -> Result<Vec<ResourceRow>>;
    /// The resources of `kind` named `name`, in any account and region.
    fn resources_named(&self, kind: &str, name: &str) -> Result<Vec<ResourceRow>>;
    /// Every region of `account` that holds a secret named `name`.
    fn secret_regions(&self, account: &str, name: &str) -> Result<Vec<String>>;

    fn kms_key(&self, key_id: &str) -> Result<Option<Arc<KmsKeyRow>>>;
    fn kms_alias(&self, account: &str, region: &str, alias_name: &str) -> Result<Option<String>>;
    fn kms_material(&self, key_id: &str, version: i64) -> Result<Option<Vec<u8>>>;
    /// Keys pending deletion whose window ended by `now_ms` (the KMS
    /// domain's `meta.DeletionMs`).
    fn kms_keys_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>>;
    /// Enabled keys whose automatic rotation is due by `now_ms` (the KMS
    /// domain's `meta.NextRotationMs`).
    fn kms_keys_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>>;
    /// An account's KMS keys in a region, by key id.
    fn kms_keys(&self, account: &str, region: &str) -> Result<Vec<Arc<KmsKeyRow>>>;
    /// An account's aliases in a region as (alias name, key id, created ms), by name.
    fn kms_aliases(&self, account: &str, region: &str) -> Result<Vec<(String, String, i64)>>;

    fn principal(&self, arn: &str) -> Result<Option<PrincipalRow>>;
    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>>;
    /// Principals of one kind (`user`, `role`) in an account, by name.
    fn principals(&self, account: &str, kind: &str) -> Result<Vec<PrincipalRow>>;
    /// A principal's access keys, oldest first.
    fn access_keys_of(&self, principal_arn: &str) -> Result<Vec<AccessKeyRow>>;
    /// A principal's inline policies as (name, document), by name.
    fn inline_policies(&self, principal_arn: &str) -> Result<Vec<(String, String)>>;
    fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicyRow>>;
    /// An account's customer-managed policies, by name.
    fn managed_policies(&self, account: &str) -> Result<Vec<ManagedPolicyRow>>;
    /// A managed policy's versions, oldest first.
    fn policy_versions(&self, policy_arn: &str) -> Result<Vec<PolicyVersionRow>>;
    /// ARNs of the managed policies attached to a principal, sorted.
    fn attached_policies(&self, principal_arn: &str) -> Result<Vec<String>>;
    /// How many principals a managed policy is attached to.
    fn attachment_count(&self, policy_arn: &str) -> Result<i64>;
    /// ARNs of a group's users, sorted.
    fn group_members(&self, group_arn: &str) -> Result<Vec<String>>;
    /// ARNs of the groups a user is in, sorted.
    fn groups_of(&self, user_arn: &str) -> Result<Vec<String>>;
    fn mfa_device(&self, serial: &str) -> Result<Option<MfaDeviceRow>>;
    /// An account's MFA devices, by serial.
    fn mfa_devices(&self, account: &str) -> Result<Vec<MfaDeviceRow>>;

    /// Commit a batch atomically and durably; results are in write order.
    fn apply(&self, writes: Vec<Write>) -> Result<Vec<Applied>> {
        self.apply_with_event(writes, None)
    }
    /// `apply`, with an audit event committed in the same transaction (and
    /// not at all if the writes fail).
    fn apply_with_event(&self, writes: Vec<Write>, event: Option<AuditRecord>) -> Result<Vec<Applied>>;
    /// Record the events of calls that changed nothing (reads, refusals,
    /// failures), a batch of them in one go; `done` runs once they are
    /// stored (durable against a crash of the process; on disk with the next
    /// change or within a second), or with the error that kept them out.
    fn record(&self, events: Vec<AuditRecord>, done: RecordDone);
    /// Stored events matching `query`, in `seq` order.
    fn audit_events(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>>;
    /// The chain's start, once events were pruned.
    fn audit_anchor(&self) -> Result<Option<AuditAnchor>>;
    /// Record reads without waiting for disk.
    fn touch(&self, touch: AccessTouch);
}

#[cfg(test)]
mod audit_query_tests {
    use super::AuditQuery;

    const USER_EVENT: &str = r#"{"eventTime":"2026-11-24T10:00:00Z","eventName":"GetSecretValue",
        "eventSource":"secretsmanager.amazonaws.com","awsRegion":"us-east-1","recipientAccountId":"111122223333",
        "eventID":"e-1","readOnly":true,
        "userIdentity":{"arn":"arn:aws:iam::111122223333:user/alice","userName":"alice","accessKeyId":"AKIAALICE"},
        "requestParameters":{"secretId":"prod/db"},
        "resources":[{"ARN":"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf","type":"AWS::SecretsManager::Secret"}]}"#;
    const ROLE_EVENT: &str = r#"{"eventTime":"2026-11-24T11:00:00Z","eventName":"PutSecretValue","readOnly":false,
        "userIdentity":{"arn":"arn:aws:sts::111122223333:assumed-role/app/s1",
          "sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::111122223333:role/app"}}},
        "errorCode":"AccessDeniedException","errorMessage":"no"}"#;

    /// Which of the two events a query keeps.
    fn kept(f: impl Fn(&mut AuditQuery)) -> (bool, bool) {
        let mut q = AuditQuery::default();
        f(&mut q);
        (q.matches(USER_EVENT), q.matches(ROLE_EVENT))
    }

    #[test]
    fn every_filter_keeps_what_it_names() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(kept(|_| {}), (true, true));
        assert_eq!(kept(|q| q.start_time = s("2026-11-24T10:30:00Z")), (false, true));
        assert_eq!(kept(|q| q.end_time = s("2026-11-24T10:30:00Z")), (true, false));
        assert_eq!(kept(|q| q.event_name = s("GetSecretValue")), (true, false));
        assert_eq!(
            kept(|q| q.event_source = s("secretsmanager.amazonaws.com")),
            (true, false)
        );
        assert_eq!(kept(|q| q.access_key_id = s("AKIAALICE")), (true, false));
        assert_eq!(kept(|q| q.event_id = s("e-1")), (true, false));
        assert_eq!(kept(|q| q.account = s("111122223333")), (true, false));
        assert_eq!(kept(|q| q.region = s("us-east-1")), (true, false));
        assert_eq!(
            kept(|q| q.principal = s("arn:aws:iam::111122223333:user/alice")),
            (true, false)
        );
        assert_eq!(
            kept(|q| q.principal = s("arn:aws:iam::111122223333:role/app")),
            (false, true)
        );
        assert_eq!(kept(|q| q.resource = s("prod/db")), (true, false));
        assert_eq!(
            kept(|q| q.resource = s("arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf")),
            (true, false)
        );
        assert_eq!(kept(|q| q.user_name = s("alice")), (true, false));
        assert_eq!(kept(|q| q.user_name = s("s1")), (false, true));
        assert_eq!(kept(|q| q.user_name = s("1")), (false, false));
        assert_eq!(
            kept(|q| q.resource_type = s("AWS::SecretsManager::Secret")),
            (true, false)
        );
        assert_eq!(kept(|q| q.read_only = Some(true)), (true, false));
        assert_eq!(kept(|q| q.read_only = Some(false)), (false, true));
        assert_eq!(kept(|q| q.errors_only = true), (false, true));
        // Filters combine with AND.
        assert_eq!(
            kept(|q| {
                q.event_name = s("GetSecretValue");
                q.errors_only = true
            }),
            (false, false)
        );
        // JSON that does not parse passes no filter, and every unfiltered query.
        let mut q = AuditQuery::default();
        assert!(q.matches("not json"));
        q.event_name = s("GetSecretValue");
        assert!(!q.matches("not json") && !q.matches(""));
    }
}
