//! Authorization of Secrets Manager calls: the action AWS names for each
//! operation, the resource it is checked on, and the condition keys the
//! request and the secret contribute. The decision itself belongs to the
//! identity layer behind [`Authorizer`].
//!
//! Where a call names a secret, the check happens where the secret is looked
//! up ([`crate::SecretsService::find`]), on the secret's ARN with its tags and
//! resource policy. A secret that does not exist is checked on the ARN the
//! caller named (or `arn:...:secret:<name>`), so a caller who may not touch it
//! learns nothing about whether it exists.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tumbler_iam::{ContextKeys, NamedPolicy, PolicyKind};
use tumbler_store::SecretState;
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager as sm;

use crate::meta::SecretMeta;

/// The identity layer's answer for the services built on secrets (database
/// registrations, Kafka clusters): may the caller do `action`
/// (`tumbler:RegisterDatabase`, `kafka:BatchAssociateScramSecret`, ...) on
/// `resource`? Otherwise AccessDeniedException saying who, what, where and why.
pub trait ActionAuthorizer: Send + Sync {
    fn authorize(&self, action: &str, resource: &str) -> Result<(), AwsError>;
}

/// The identity layer's decision on one action.
pub trait Authorizer: Send + Sync {
    /// `Ok` when the caller may perform `action` (`secretsmanager:GetSecretValue`)
    /// on `resource` (an ARN or `*`); otherwise the `AccessDeniedException`
    /// to answer with. `keys` are the request's and the resource's condition
    /// keys; the authorizer adds the global `aws:` ones about the caller.
    fn authorize(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        resource_policy: Option<&NamedPolicy>,
    ) -> Result<(), AwsError>;

    /// `Ok` when the caller may have Secrets Manager use a customer KMS key
    /// for it (`kms:Decrypt`, `kms:GenerateDataKey`); the key policy must
    /// allow, as KMS requires, unless a KMS grant covers the use
    /// (`granted`), which an explicit deny still overrides.
    fn authorize_key(
        &self,
        action: &str,
        key_arn: &str,
        keys: ContextKeys,
        key_policy: &NamedPolicy,
        granted: bool,
    ) -> Result<(), AwsError>;

    /// The ARNs a KMS grant may name to mean the caller.
    fn grantee_arns(&self) -> Vec<String>;
}

/// Allows everything: for callers that act as the service itself (the
/// sweeper, tests of the domain logic).
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &str, _: &str, _: ContextKeys, _: Option<&NamedPolicy>) -> Result<(), AwsError> {
        Ok(())
    }
    fn authorize_key(&self, _: &str, _: &str, _: ContextKeys, _: &NamedPolicy, _: bool) -> Result<(), AwsError> {
        Ok(())
    }
    fn grantee_arns(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A service of Tumbler's own acting for a caller: its Secrets Manager
/// actions are its own (allowed), but a customer KMS key it uses must be
/// one the caller may have Secrets Manager use (as RDS requires of whoever
/// names a key for a managed master password).
pub struct ServiceForCaller(pub Arc<dyn Authorizer>);

impl Authorizer for ServiceForCaller {
    fn authorize(&self, _: &str, _: &str, _: ContextKeys, _: Option<&NamedPolicy>) -> Result<(), AwsError> {
        Ok(())
    }
    fn authorize_key(
        &self,
        action: &str,
        key_arn: &str,
        keys: ContextKeys,
        key_policy: &NamedPolicy,
        granted: bool,
    ) -> Result<(), AwsError> {
        self.0.authorize_key(action, key_arn, keys, key_policy, granted)
    }
    fn grantee_arns(&self) -> Vec<String> {
        self.0.grantee_arns()
    }
}

/// The action being authorized and the condition keys its request carries.
#[derive(Clone, Default)]
pub struct Check {
    pub action: &'static str,
    pub keys: ContextKeys,
}

/// What a secret contributes to its authorization, derived once per
/// revision: parsing its metadata and compiling its policy on every read
/// would cost more than the read.
pub(crate) struct SecretFacts {
    pub tags: Vec<(String, String)>,
    /// Named by the secret's ARN, which denial messages cite.
    pub policy: Option<NamedPolicy>,
}

/// Bound on cached facts; cleared whole when reached.
const MAX_FACTS: usize = 16_384;

#[derive(Default)]
pub(crate) struct FactsCache(RwLock<HashMap<i64, (i64, Arc<SecretFacts>)>>);

impl FactsCache {
    pub fn get(&self, state: &SecretState) -> Arc<SecretFacts> {
        let row = &state.row;
        if let Some((revision, facts)) = self.0.read().ok().and_then(|m| m.get(&row.id).cloned())
            && revision == row.revision
        {
            return facts;
        }
        let meta = SecretMeta::parse(&row.meta).unwrap_or_default();
        let policy = meta.resource_policy.as_deref().and_then(|doc| {
            // Stored policies were validated when put; one that no longer
            // parses grants nothing (and denies nothing).
            match tumbler_iam::parse_policy(doc, PolicyKind::Resource) {
                Ok(p) => Some(NamedPolicy::new(row.arn.clone(), p)),
                Err(e) => {
                    tracing::warn!(secret = %row.arn, error = %e.message, "stored resource policy does not parse");
                    None
                }
            }
        });
        let tags = meta
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect();
        let facts = Arc::new(SecretFacts { tags, policy });
        if let Ok(mut m) = self.0.write() {
            if m.len() >= MAX_FACTS {
                m.clear();
            }
            m.insert(row.id, (row.revision, facts.clone()));
        }
        facts
    }
}

/// The condition keys of a secret's tags, under both names AWS defines.
pub(crate) fn add_resource_tags(keys: &mut ContextKeys, tags: &[(String, String)]) {
    for (k, v) in tags {
        keys.insert(&format!("secretsmanager:ResourceTag/{k}"), v.clone());
        keys.insert(&format!("aws:ResourceTag/{k}"), v.clone());
    }
}

fn add_request_tags(keys: &mut ContextKeys, tags: &[sm::Tag]) {
    for t in tags {
        if let (Some(k), Some(v)) = (&t.key, &t.value) {
            keys.insert(&format!("aws:RequestTag/{k}"), v.clone());
        }
    }
    keys.insert_multi("aws:TagKeys", tags.iter().filter_map(|t| t.key.clone()));
}

fn add_secret_id(keys: &mut ContextKeys, id: &Option<String>) {
    if let Some(id) = id {
        keys.insert("secretsmanager:SecretId", id.clone());
    }
}

/// A check on the secret the request names, with the keys `extra` adds.
fn on_secret(action: &'static str, secret_id: &Option<String>, extra: impl FnOnce(&mut ContextKeys)) -> Check {
    let mut keys = ContextKeys::new();
    add_secret_id(&mut keys, secret_id);
    extra(&mut keys);
    Check { action, keys }
}

/// The action and request condition keys of each operation, as AWS lists
/// them for Secrets Manager.
pub(crate) trait RequestCheck {
    fn check(&self) -> Check;
}

macro_rules! simple_check {
    ($($req:ty => $action:literal),* $(,)?) => {$(
        impl RequestCheck for $req {
            fn check(&self) -> Check {
                on_secret($action, &self.secret_id, |_| {})
            }
        }
    )*};
}

simple_check! {
    sm::ListSecretVersionIdsRequest => "secretsmanager:ListSecretVersionIds",
    sm::PutSecretValueRequest => "secretsmanager:PutSecretValue",
    sm::RemoveRegionsFromReplicationRequest => "secretsmanager:RemoveRegionsFromReplication",
    sm::ValidateResourcePolicyRequest => "secretsmanager:ValidateResourcePolicy",
}

impl RequestCheck for sm::CreateSecretRequest {
    fn check(&self) -> Check {
        let mut keys = ContextKeys::new();
        if let Some(name) = &self.name {
            keys.insert("secretsmanager:Name", name.clone());
        }
        if let Some(d) = &self.description {
            keys.insert("secretsmanager:Description", d.clone());
        }
        if let Some(k) = &self.kms_key_id {
            keys.insert("secretsmanager:KmsKeyId", k.clone());
        }
        if let Some(tags) = &self.tags {
            add_request_tags(&mut keys, tags);
        }
        if let Some(regions) = &self.add_replica_regions {
            keys.insert_multi(
                "secretsmanager:AddReplicaRegions",
                regions.iter().filter_map(|r| r.region.clone()),
            );
        }
        if let Some(force) = self.force_overwrite_replica_secret {
            keys.insert_bool("secretsmanager:ForceOverwriteReplicaSecret", force);
        }
        Check {
            action: "secretsmanager:CreateSecret",
            keys,
        }
    }
}

impl RequestCheck for sm::GetSecretValueRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:GetSecretValue", &self.secret_id, |keys| {
            if let Some(v) = &self.version_id {
                keys.insert("secretsmanager:VersionId", v.clone());
            }
            // AWS's documented default when the request names no stage.
            let stage = match (&self.version_stage, &self.version_id) {
                (Some(s), _) => Some(s.clone()),
                (None, None) => Some("AWSCURRENT".to_owned()),
                (None, Some(_)) => None,
            };
            if let Some(stage) = stage {
                keys.insert("secretsmanager:VersionStage", stage);
            }
        })
    }
}

impl RequestCheck for sm::UpdateSecretRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:UpdateSecret", &self.secret_id, |keys| {
            if let Some(d) = &self.description {
                keys.insert("secretsmanager:Description", d.clone());
            }
            if let Some(k) = &self.kms_key_id {
                keys.insert("secretsmanager:KmsKeyId", k.clone());
            }
        })
    }
}

impl RequestCheck for sm::UpdateSecretVersionStageRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:UpdateSecretVersionStage", &self.secret_id, |keys| {
            if let Some(s) = &self.version_stage {
                keys.insert("secretsmanager:VersionStage", s.clone());
            }
        })
    }
}

impl RequestCheck for sm::DeleteSecretRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:DeleteSecret", &self.secret_id, |keys| {
            if let Some(days) = self.recovery_window_in_days {
                keys.insert("secretsmanager:RecoveryWindowInDays", days.to_string());
            }
            if let Some(force) = self.force_delete_without_recovery {
                keys.insert_bool("secretsmanager:ForceDeleteWithoutRecovery", force);
            }
        })
    }
}

impl RequestCheck for sm::TagResourceRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:TagResource", &self.secret_id, |keys| {
            if let Some(tags) = &self.tags {
                add_request_tags(keys, tags);
            }
        })
    }
}

impl RequestCheck for sm::UntagResourceRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:UntagResource", &self.secret_id, |keys| {
            if let Some(tag_keys) = &self.tag_keys {
                keys.insert_multi("aws:TagKeys", tag_keys.iter().cloned());
            }
        })
    }
}

impl RequestCheck for sm::PutResourcePolicyRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:PutResourcePolicy", &self.secret_id, |keys| {
            keys.insert_bool(
                "secretsmanager:BlockPublicPolicy",
                self.block_public_policy.unwrap_or(false),
            );
        })
    }
}

impl RequestCheck for sm::RotateSecretRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:RotateSecret", &self.secret_id, |keys| {
            if let Some(arn) = &self.rotation_lambda_arn {
                keys.insert("secretsmanager:RotationLambdaARN", arn.clone());
            }
        })
    }
}

impl RequestCheck for sm::ReplicateSecretToRegionsRequest {
    fn check(&self) -> Check {
        on_secret("secretsmanager:ReplicateSecretToRegions", &self.secret_id, |keys| {
            if let Some(regions) = &self.add_replica_regions {
                keys.insert_multi(
                    "secretsmanager:AddReplicaRegions",
                    regions.iter().filter_map(|r| r.region.clone()),
                );
            }
            if let Some(force) = self.force_overwrite_replica_secret {
                keys.insert_bool("secretsmanager:ForceOverwriteReplicaSecret", force);
            }
        })
    }
}

/// Operations whose request is a bare `SecretId`: the action comes from the
/// operation name.
pub(crate) fn secret_id_check(action: &'static str, r: &sm::SecretIdRequest) -> Check {
    on_secret(action, &r.secret_id, |_| {})
}

/// Operations on no particular secret (`ListSecrets`, `GetRandomPassword`,
/// `BatchGetSecretValue`): checked on resource `*`.
pub(crate) fn unscoped(action: &'static str) -> Check {
    Check {
        action,
        keys: ContextKeys::new(),
    }
}
