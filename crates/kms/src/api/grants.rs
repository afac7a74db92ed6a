//! KMS grants: CreateGrant, ListGrants, ListRetirableGrants, RevokeGrant,
//! RetireGrant, and what a grant allows.
//!
//! A grant lets its grantee principal perform the listed operations on one
//! key, optionally only under an encryption context that contains
//! (`EncryptionContextSubset`) or equals (`EncryptionContextEquals`) the
//! given pairs. As in KMS a grant only ever allows: an explicit deny in the
//! key policy or the caller's IAM policies still wins. Grants are effective
//! at once, so grant tokens are accepted and not needed.
//!
//! Grants live in the key's `meta` document, so they go with the key when
//! it is deleted. Constraints apply to the operations that take an
//! encryption context; DescribeKey, CreateGrant and RetireGrant ignore them.

use serde::{Deserialize, Serialize};
use tumbler_wire::kms::{self as w, error, not_found, validation};
use tumbler_wire::{AwsError, encode};

use super::{Key, KeyMeta, KmsCtx, context_keys, key_id_param, page, seconds, store_err};
use crate::Kms;

/// Grant operations that make sense on a symmetric encryption key.
const SYMMETRIC_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
];
/// Every operation in the botocore model's GrantOperation enum.
const ALL_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];
/// Operations whose calls carry an encryption context for constraints.
const CONTEXT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
];
/// KMS's default quota of grants per key is 50,000; a key's grants live in
/// one document here, so the bound is lower.
const MAX_GRANTS_PER_KEY: usize = 1000;

/// One grant, as kept in the key's `meta`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Grant {
    pub id: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_ms: i64,
    pub grantee: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<String>,
    pub issuing_account: String,
    pub operations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<w::GrantConstraints>,
}

impl Grant {
    /// Does this grant let one of `callers` (the caller's ARN and, for a
    /// role session, its role's) perform `operation` under `context`?
    pub(crate) fn covers(&self, callers: &[String], operation: &str, context: Option<&w::EncryptionContext>) -> bool {
        if !callers.contains(&self.grantee) || !self.operations.iter().any(|o| o == operation) {
            return false;
        }
        if !CONTEXT_OPERATIONS.contains(&operation) {
            return true;
        }
        let Some(c) = &self.constraints else {
            return true;
        };
        let empty = w::EncryptionContext::new();
        let request = context.unwrap_or(&empty);
        let subset_ok = c
            .encryption_context_subset
            .as_ref()
            .is_none_or(|want| want.iter().all(|(k, v)| request.get(k) == Some(v)));
        let equals_ok = c.encryption_context_equals.as_ref().is_none_or(|want| want == request);
        subset_ok && equals_ok
    }

    fn entry(&self, key_id: &str) -> w::GrantListEntry {
        w::GrantListEntry {
            key_id: key_id.to_owned(),
            grant_id: self.id.clone(),
            name: self.name.clone(),
            creation_date: seconds(self.created_ms),
            grantee_principal: self.grantee.clone(),
            retiring_principal: self.retiring.clone(),
            issuing_account: self.issuing_account.clone(),
            operations: self.operations.clone(),
            constraints: self.constraints.clone(),
        }
    }
}

/// The grant operation behind a `kms:` action (`kms:Decrypt` -> `Decrypt`).
pub(crate) fn operation_of(action: &str) -> &str {
    action.strip_prefix("kms:").unwrap_or(action)
}

fn principal_param<'a>(v: &'a Option<String>, member: &str) -> Result<&'a str, AwsError> {
    let p = super::required(v, member)?;
    if p.len() > 256 {
        return Err(validation(member, "Member must have length less than or equal to 256"));
    }
    let pattern_ok = p
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "+=,.@:/-".contains(c));
    if !pattern_ok {
        return Err(validation(
            member,
            r"Member must satisfy regular expression pattern: ^[\w+=,.@:/-]+$",
        ));
    }
    // An IAM or STS principal ARN, an account, or a service principal.
    let principal_ok = p.starts_with("arn:aws:iam::")
        || p.starts_with("arn:aws:sts::")
        || (p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()))
        || p.ends_with(".amazonaws.com");
    if !principal_ok {
        return Err(AwsError::validation(format!(
            "Invalid {member}: {p} is not a valid principal."
        )));
    }
    Ok(p)
}

fn grant_id_param(v: &Option<String>) -> Result<&str, AwsError> {
    let id = super::required(v, "grantId")?;
    if id.len() > 128 {
        return Err(validation(
            "grantId",
            "Member must have length less than or equal to 128",
        ));
    }
    Ok(id)
}

fn dry_run(flag: Option<bool>) -> Result<(), AwsError> {
    if flag == Some(true) {
        return Err(AwsError::custom(
            "DryRunOperationException",
            412,
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(())
}

fn check_tokens(tokens: &Option<Vec<String>>) -> Result<(), AwsError> {
    let tokens = tokens.as_deref().unwrap_or_default();
    if tokens.len() > 10 {
        return Err(validation(
            "grantTokens",
            "Member must have length less than or equal to 10",
        ));
    }
    if tokens.iter().any(|t| t.is_empty() || t.len() > 8192) {
        return Err(error("InvalidGrantTokenException", "The grant token is not valid."));
    }
    Ok(())
}

fn new_grant_id() -> Result<String, AwsError> {
    let bytes = tumbler_crypto::random_bytes(32).map_err(|_| super::internal())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn new_grant_token() -> Result<String, AwsError> {
    use base64::Engine;
    let bytes = tumbler_crypto::random_bytes(48).map_err(|_| super::internal())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

/// A customer key as a service using it on a caller's behalf sees it.
pub struct CustomerKey {
    pub arn: String,
    pub policy: tumbler_iam::NamedPolicy,
    pub(super) grants: Vec<Grant>,
}

impl CustomerKey {
    /// Does a grant let one of `callers()` perform `action` under `context`?
    /// `callers` runs only if the key has grants.
    pub fn grant_allows(&self, callers: &dyn Fn() -> Vec<String>, action: &str, context: &[(&str, &str)]) -> bool {
        if self.grants.is_empty() {
            return false;
        }
        let context: w::EncryptionContext = context
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (op, callers) = (operation_of(action), callers());
        self.grants.iter().any(|g| g.covers(&callers, op, Some(&context)))
    }
}

impl Kms {
    pub(super) fn create_grant(&self, ctx: &KmsCtx, r: w::CreateGrantRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let grantee = principal_param(&r.grantee_principal, "granteePrincipal")?.to_owned();
        let retiring = match &r.retiring_principal {
            None => None,
            some => Some(principal_param(some, "retiringPrincipal")?.to_owned()),
        };
        let operations = r
            .operations
            .clone()
            .ok_or_else(|| validation("operations", "Member must not be null"))?;
        if operations.is_empty() {
            return Err(validation(
                "operations",
                "Member must have length greater than or equal to 1",
            ));
        }
        if let Some(bad) = operations.iter().find(|o| !ALL_OPERATIONS.contains(&o.as_str())) {
            return Err(validation(
                "operations",
                &format!(
                    "Member must satisfy enum value set: [{}] ({bad} is not one)",
                    ALL_OPERATIONS.join(", ")
                ),
            ));
        }
        let unsupported: Vec<&str> = operations
            .iter()
            .map(String::as_str)
            .filter(|o| !SYMMETRIC_OPERATIONS.contains(o))
            .collect();
        if !unsupported.is_empty() {
            return Err(AwsError::validation(format!(
                "Grant operations {} are not valid for a symmetric encryption KMS key.",
                unsupported.join(", ")
            )));
        }
        let mut operations: Vec<String> = operations;
        operations.sort();
        operations.dedup();
        if let Some(name) = &r.name {
            let ok = !name.is_empty()
                && name.len() <= 256
                && name.chars().all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c));
            if !ok {
                return Err(validation(
                    "name",
                    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
                ));
            }
        }
        let constraints = r.constraints.clone().filter(|c| {
            c.encryption_context_subset.as_ref().is_some_and(|m| !m.is_empty())
                || c.encryption_context_equals.as_ref().is_some_and(|m| !m.is_empty())
        });
        if let Some(c) = &constraints {
            for m in [&c.encryption_context_subset, &c.encryption_context_equals] {
                super::check_context(m, "constraints")?;
            }
        }
        check_tokens(&r.grant_tokens)?;

        let _guard = self.key_writes.lock().unwrap_or_else(|e| e.into_inner());
        let found = self.find(ctx, reference)?;
        let keys = context_keys(ctx, None, found.alias.as_deref());
        let callers = ctx.authorizer.grantee_arns();
        // A grantee with CreateGrant may pass on at most what it holds.
        let parent = found
            .key
            .meta
            .grants
            .iter()
            .find(|g| g.covers(&callers, "CreateGrant", None))
            .cloned();
        if let Err(denied) = self.allow(ctx, "kms:CreateGrant", &found.key, keys.clone()) {
            let Some(parent) = &parent else {
                return Err(denied);
            };
            // An explicit deny still wins over the grant.
            self.allow_granted(ctx, "kms:CreateGrant", &found.key, keys, true)?;
            let wider = operations.iter().any(|o| !parent.operations.contains(o));
            if wider || (parent.constraints.is_some() && parent.constraints != constraints) {
                return Err(AwsError::access_denied(format!(
                    "User: {} is not authorized to perform: kms:CreateGrant on resource: {} because the grant \
                     that allows it does not cover these operations or constraints",
                    callers.first().map(String::as_str).unwrap_or("the caller"),
                    found.key.row.arn
                )));
            }
        }
        found.key.usable()?;
        dry_run(r.dry_run)?;

        // With a Name, the same grant asked for again is the grant already made.
        let same = |g: &&Grant| {
            r.name.is_some()
                && g.name == r.name
                && g.grantee == grantee
                && g.retiring == retiring
                && g.operations == operations
                && g.constraints == constraints
        };
        if let Some(g) = found.key.meta.grants.iter().find(same) {
            return Ok(encode(&w::CreateGrantResponse {
                grant_token: g.token.clone(),
                grant_id: g.id.clone(),
            }));
        }
        if found.key.meta.grants.len() >= MAX_GRANTS_PER_KEY {
            return Err(error(
                "LimitExceededException",
                format!("The key {} already has {MAX_GRANTS_PER_KEY} grants.", found.key.row.arn),
            ));
        }
        let grant = Grant {
            id: new_grant_id()?,
            token: new_grant_token()?,
            name: r.name.clone(),
            created_ms: ctx.now.as_millisecond(),
            grantee,
            retiring,
            issuing_account: format!("arn:aws:iam::{}:root", ctx.account),
            operations,
            constraints,
        };
        let mut meta = found.key.meta.clone();
        meta.grants.push(grant.clone());
        self.update(ctx, &found.key, &found.key.row.state, &meta)?;
        Ok(encode(&w::CreateGrantResponse {
            grant_token: grant.token,
            grant_id: grant.id,
        }))
    }

    pub(super) fn list_grants(&self, ctx: &KmsCtx, r: w::ListGrantsRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        if let Some(id) = &r.grant_id {
            grant_id_param(&Some(id.clone()))?;
        }
        let grantee = match &r.grantee_principal {
            None => None,
            some => Some(principal_param(some, "granteePrincipal")?),
        };
        let found = self.find(ctx, reference)?;
        self.allow(ctx, "kms:ListGrants", &found.key, context_keys(ctx, None, None))?;
        let items = found
            .key
            .meta
            .grants
            .iter()
            .filter(|g| r.grant_id.as_ref().is_none_or(|id| *id == g.id))
            .filter(|g| grantee.is_none_or(|p| p == g.grantee))
            .map(|g| (g.id.clone(), g.entry(&found.key.row.key_id)))
            .collect();
        let (grants, next_marker) = page(r.limit, &r.marker, items)?;
        Ok(encode(&w::ListGrantsResponse {
            grants,
            truncated: next_marker.is_some(),
            next_marker,
        }))
    }

    pub(super) fn list_retirable_grants(
        &self,
        ctx: &KmsCtx,
        r: w::ListRetirableGrantsRequest,
    ) -> Result<Vec<u8>, AwsError> {
        let retiring = principal_param(&r.retiring_principal, "retiringPrincipal")?;
        ctx.authorizer
            .authorize("kms:ListRetirableGrants", "*", context_keys(ctx, None, None), None)?;
        let mut items = Vec::new();
        for row in self.store.kms_keys(&ctx.account, &ctx.region).map_err(store_err)? {
            for g in KeyMeta::parse(&row.meta).grants {
                if g.retiring.as_deref() == Some(retiring) {
                    items.push((format!("{}/{}", row.key_id, g.id), g.entry(&row.key_id)));
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (grants, next_marker) = page(r.limit, &r.marker, items)?;
        Ok(encode(&w::ListGrantsResponse {
            grants,
            truncated: next_marker.is_some(),
            next_marker,
        }))
    }

    pub(super) fn revoke_grant(&self, ctx: &KmsCtx, r: w::RevokeGrantRequest) -> Result<Vec<u8>, AwsError> {
        let reference = key_id_param(&r.key_id, "keyId")?;
        let grant_id = grant_id_param(&r.grant_id)?;
        let _guard = self.key_writes.lock().unwrap_or_else(|e| e.into_inner());
        let found = self.find(ctx, reference)?;
        self.allow(ctx, "kms:RevokeGrant", &found.key, context_keys(ctx, None, None))?;
        if !found.key.meta.grants.iter().any(|g| g.id == grant_id) {
            return Err(not_found(format!("Grant ID {grant_id} not found")));
        }
        dry_run(r.dry_run)?;
        self.remove_grant(ctx, &found.key, grant_id)
    }

    pub(super) fn retire_grant(&self, ctx: &KmsCtx, r: w::RetireGrantRequest) -> Result<Vec<u8>, AwsError> {
        let _guard = self.key_writes.lock().unwrap_or_else(|e| e.into_inner());
        let (key, grant) = match (&r.grant_token, &r.key_id, &r.grant_id) {
            (Some(token), _, _) => {
                if token.is_empty() || token.len() > 8192 {
                    return Err(error("InvalidGrantTokenException", "The grant token is not valid."));
                }
                self.grant_by_token(ctx, token)?
            }
            (None, Some(_), Some(_)) => {
                let reference = key_id_param(&r.key_id, "keyId")?;
                let grant_id = grant_id_param(&r.grant_id)?;
                let found = self.find(ctx, reference)?;
                let grant = found.key.meta.grants.iter().find(|g| g.id == grant_id).cloned();
                let grant = grant.ok_or_else(|| not_found(format!("Grant ID {grant_id} not found")))?;
                (found.key, grant)
            }
            _ => {
                return Err(AwsError::validation(
                    "Either GrantToken, or both KeyId and GrantId, must be specified.",
                ));
            }
        };
        // The retiring principal, or a grantee granted RetireGrant, may
        // retire a grant; otherwise the key policy must allow kms:RetireGrant.
        let callers = ctx.authorizer.grantee_arns();
        let may =
            grant.retiring.as_ref().is_some_and(|p| callers.contains(p)) || grant.covers(&callers, "RetireGrant", None);
        if !may {
            self.allow(ctx, "kms:RetireGrant", &key, context_keys(ctx, None, None))?;
        }
        dry_run(r.dry_run)?;
        self.remove_grant(ctx, &key, &grant.id)
    }

    /// The key and grant a token belongs to, in the caller's account and region.
    fn grant_by_token(&self, ctx: &KmsCtx, token: &str) -> Result<(Key, Grant), AwsError> {
        for row in self.store.kms_keys(&ctx.account, &ctx.region).map_err(store_err)? {
            let meta = KeyMeta::parse(&row.meta);
            if let Some(g) = meta.grants.iter().find(|g| same_token(&g.token, token)).cloned() {
                return Ok((self.load(ctx, row)?, g));
            }
        }
        Err(error("InvalidGrantTokenException", "The grant token is not valid."))
    }

    fn remove_grant(&self, ctx: &KmsCtx, key: &Key, grant_id: &str) -> Result<Vec<u8>, AwsError> {
        let mut meta = key.meta.clone();
        meta.grants.retain(|g| g.id != grant_id);
        self.update(ctx, key, &key.row.state, &meta)?;
        Ok(b"{}".to_vec())
    }
}
