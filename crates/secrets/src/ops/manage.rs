//! Operations on a secret's metadata, labels, lifecycle and policy.

use std::collections::BTreeMap;

use base64::Engine;
use tumbler_store::{Cursor, ListQuery, SecretListing, SecretRow, SortKey, Write};
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager::{self as sm, SecretDescription};

use super::values::{merge_tags, stored_tags, validate_tags};
use crate::labels::{self, CURRENT, PREVIOUS};
use crate::meta::SecretMeta;
use crate::{
    Ctx, Draft, MARKED_DELETED, ON_REPLICA, SecretsService, check_label_count, filters, label_pairs, parse_meta, secs,
    store_err, update_row, versions_to_clean,
};

const DAY_MS: i64 = 86_400_000;
/// Rows ListSecrets examines per call when filters reject most of them; past
/// this it answers with what it has and a NextToken (AWS may return an empty
/// page with a token too).
const SCAN_BUDGET: usize = 5_000;

pub(crate) struct ListPage {
    pub entries: Vec<SecretListing>,
    pub next_token: Option<String>,
}

/// What a NextToken of ListSecrets carries; opaque to clients.
#[derive(serde::Serialize, serde::Deserialize)]
struct ListToken {
    /// Sort key and order, so a token cannot be replayed with other settings.
    s: String,
    i: i64,
    t: Option<String>,
    n: Option<i64>,
}

fn encode_token<T: serde::Serialize>(t: &T) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode_token<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, AwsError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| AwsError::invalid_next_token("The NextToken value is invalid."))
}

pub(crate) fn describe(
    row: &SecretRow,
    meta: &SecretMeta,
    stages: BTreeMap<String, Vec<String>>,
    list_form: bool,
) -> SecretDescription {
    let stages = Some(stages).filter(|m| !m.is_empty());
    let replication_status = Some(crate::replication::statuses(meta)).filter(|s| !s.is_empty());
    SecretDescription {
        arn: row.arn.clone(),
        name: row.name.clone(),
        secret_type: meta.secret_type.clone(),
        description: meta.description.clone(),
        kms_key_id: meta.kms_key_id.clone(),
        rotation_enabled: meta.rotation_enabled,
        rotation_lambda_arn: meta.rotation_lambda_arn.clone(),
        rotation_rules: meta.rotation_rules.as_ref().map(Into::into),
        last_rotated_date: meta.last_rotated_ms.map(secs),
        last_changed_date: secs(row.last_changed_ms),
        last_accessed_date: row.last_accessed_ms.map(secs),
        deleted_date: row.deleted_ms.map(secs),
        next_rotation_date: if meta.rotation_enabled == Some(true) {
            meta.next_rotation_ms.map(secs)
        } else {
            None
        },
        tags: meta.tags.as_ref().map(|t| t.iter().map(Into::into).collect()),
        version_ids_to_stages: if list_form { None } else { stages.clone() },
        secret_versions_to_stages: if list_form { stages } else { None },
        owning_service: meta.owning_service.clone(),
        created_date: secs(row.created_ms),
        primary_region: meta.primary_region.clone(),
        replication_status: if meta.replica { None } else { replication_status },
        tumbler_rotation_status: meta.rotation_status(),
    }
}

impl SecretsService {
    pub(crate) fn describe_secret(&self, ctx: &Ctx, r: sm::SecretIdRequest) -> Result<SecretDescription, AwsError> {
        let d = Draft::new(self.resolve(ctx, r.secret_id.as_deref().unwrap_or_default())?)?;
        Ok(describe(&d.state.row, &d.meta, labels::by_version(&d.labels), false))
    }

    /// One page of secrets matching `filters`, in the requested order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn list_page(
        &self,
        ctx: &Ctx,
        filter_list: &[sm::Filter],
        sort_by: Option<&str>,
        sort_order: Option<&str>,
        include_deleted: bool,
        max: usize,
        next_token: Option<&str>,
    ) -> Result<ListPage, AwsError> {
        let compiled = filters::compile(filter_list)?;
        let sort = match sort_by.unwrap_or("created-date") {
            "name" => SortKey::Name,
            "last-accessed-date" => SortKey::LastAccessedDate,
            "last-changed-date" => SortKey::LastChangedDate,
            _ => SortKey::CreatedDate,
        };
        let descending = sort_order == Some("desc");
        let shape = format!("{sort:?}/{descending}/{include_deleted}");
        let mut after = match next_token {
            None => None,
            Some(t) => {
                let tok: ListToken = decode_token(t)?;
                if tok.s != shape {
                    return Err(AwsError::invalid_next_token(
                        "The NextToken was issued for a different sort order or IncludePlannedDeletion setting.",
                    ));
                }
                Some(match (tok.t, tok.n) {
                    (Some(t), _) => Cursor::Text(t, tok.i),
                    (None, Some(n)) => Cursor::Int(n, tok.i),
                    (None, None) => {
                        return Err(AwsError::invalid_next_token("The NextToken value is invalid."));
                    }
                })
            }
        };
        let mut entries = Vec::new();
        let mut scanned = 0;
        let batch = (max * 2).clamp(50, 500);
        let mut exhausted = false;
        let mut last: Option<SecretRow> = None;
        'scan: while entries.len() < max && scanned < SCAN_BUDGET {
            let rows = self
                .store
                .list_secrets(&ListQuery {
                    account: ctx.account.clone(),
                    region: ctx.region.clone(),
                    sort,
                    descending,
                    include_deleted,
                    after: after.clone(),
                    limit: batch,
                })
                .map_err(store_err)?;
            if rows.len() < batch {
                exhausted = true;
            }
            if rows.is_empty() {
                break;
            }
            for l in rows {
                scanned += 1;
                after = Some(cursor(&l.row, sort));
                last = Some(l.row.clone());
                let meta = parse_meta(&l.row)?;
                if filters::matches(&compiled, &l.row, &meta) {
                    entries.push(l);
                    if entries.len() == max {
                        // More rows may follow the last one we took.
                        exhausted = false;
                        break 'scan;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        let next_token = if exhausted {
            None
        } else {
            last.map(|row| {
                let (t, n) = match cursor(&row, sort) {
                    Cursor::Text(t, _) => (Some(t), None),
                    Cursor::Int(n, _) => (None, Some(n)),
                };
                encode_token(&ListToken {
                    s: shape.clone(),
                    i: row.id,
                    t,
                    n,
                })
            })
        };
        Ok(ListPage { entries, next_token })
    }

    pub(crate) fn list_secrets(
        &self,
        ctx: &Ctx,
        r: sm::ListSecretsRequest,
    ) -> Result<sm::ListSecretsResponse, AwsError> {
        let page = self.list_page(
            ctx,
            r.filters.as_deref().unwrap_or_default(),
            r.sort_by.as_deref(),
            r.sort_order.as_deref(),
            r.include_planned_deletion.unwrap_or(false),
            r.max_results.unwrap_or(100) as usize,
            r.next_token.as_deref(),
        )?;
        let secret_list = page
            .entries
            .into_iter()
            .map(|l| {
                let meta = parse_meta(&l.row)?;
                Ok(describe(&l.row, &meta, l.stages.into_iter().collect(), true))
            })
            .collect::<Result<_, AwsError>>()?;
        Ok(sm::ListSecretsResponse {
            secret_list,
            next_token: page.next_token,
        })
    }

    pub(crate) fn list_secret_version_ids(
        &self,
        ctx: &Ctx,
        r: sm::ListSecretVersionIdsRequest,
    ) -> Result<sm::ListSecretVersionIdsResponse, AwsError> {
        let d = Draft::new(self.resolve(ctx, r.secret_id.as_deref().unwrap_or_default())?)?;
        let include_deprecated = r.include_deprecated.unwrap_or(false);
        let mut versions: Vec<_> = d
            .state
            .versions
            .iter()
            .filter(|v| include_deprecated || !v.stages.is_empty())
            .collect();
        // Newest first.
        versions.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.version_id.cmp(&a.version_id)));
        let start = match r.next_token.as_deref() {
            None => 0,
            Some(t) => decode_token::<usize>(t)?,
        };
        let max = r.max_results.unwrap_or(100) as usize;
        let page: Vec<_> = versions.iter().skip(start).take(max).collect();
        let next_token = (start + page.len() < versions.len()).then(|| encode_token(&(start + page.len())));
        let default_key = d.meta.kms_key_id.is_none();
        Ok(sm::ListSecretVersionIdsResponse {
            versions: page
                .into_iter()
                .map(|v| sm::SecretVersionsListEntry {
                    version_id: v.version_id.clone(),
                    version_stages: Some(v.stages.clone()).filter(|s| !s.is_empty()),
                    last_accessed_date: v.last_accessed_ms.map(secs),
                    created_date: secs(v.created_ms),
                    kms_key_ids: if default_key {
                        vec!["DefaultEncryptionKey".into()]
                    } else {
                        d.meta.kms_key_id.clone().into_iter().collect()
                    },
                })
                .collect(),
            next_token,
            arn: d.arn().to_owned(),
            name: d.name().to_owned(),
        })
    }

    pub(crate) fn update_secret_version_stage(
        &self,
        ctx: &Ctx,
        r: sm::UpdateSecretVersionStageRequest,
    ) -> Result<sm::ArnNameVersion, AwsError> {
        let stage = r.version_stage.clone().unwrap_or_default();
        let id = r.secret_id.clone().unwrap_or_default();
        self.mutate(ctx, &id, |mut d| {
            let resp = sm::ArnNameVersion { arn: d.arn().to_owned(), name: d.name().to_owned(), version_id: None };
            let holder = d.labels.get(&stage).cloned();
            if let Some(from) = &r.remove_from_version_id
                && holder.as_deref() != Some(from.as_str()) {
                    if d.version(from).is_none() {
                        return Err(AwsError::resource_not_found(format!(
                            "Secrets Manager can't find the specified secret value for VersionId: {from}"
                        )));
                    }
                    return Err(AwsError::invalid_parameter(format!(
                        "The staging label {stage} is not attached to version {from}, so it can't be removed from it."
                    )));
                }
            match (&r.move_to_version_id, &r.remove_from_version_id) {
                (None, None) => {
                    return Err(AwsError::invalid_parameter(
                        "You must specify MoveToVersionId, RemoveFromVersionId, or both.",
                    ));
                }
                (Some(to), from) => {
                    if d.version(to).is_none() {
                        return Err(AwsError::resource_not_found(format!(
                            "Secrets Manager can't find the specified secret value for VersionId: {to}"
                        )));
                    }
                    if let (Some(h), None) = (&holder, from)
                        && h != to {
                            return Err(AwsError::invalid_parameter(format!(
                                "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently \
                                 attached to version {h}, so you must explicitly reference that version in RemoveFromVersionId."
                            )));
                        }
                    if holder.as_deref() == Some(to.as_str()) {
                        return Ok((Vec::new(), resp));
                    }
                    labels::attach(&mut d.labels, to, std::slice::from_ref(&stage), false);
                }
                (None, Some(from)) => {
                    if stage == CURRENT {
                        return Err(AwsError::invalid_parameter(format!(
                            "You can't remove the staging label AWSCURRENT from version {from} without moving it: \
                             specify the version to receive it in MoveToVersionId."
                        )));
                    }
                    d.labels.remove(&stage);
                }
            }
            // AWS keeps AWSPREVIOUS off the version that is now current.
            if d.labels.contains_key(PREVIOUS) && d.labels.get(PREVIOUS) == d.labels.get(CURRENT) {
                d.labels.remove(PREVIOUS);
            }
            check_label_count(&d.labels)?;
            let delete = versions_to_clean(&d.state.versions, 0, &d.labels, ctx.now_ms())?;
            let mut row = d.state.row.clone();
            row.last_changed_ms = ctx.now_ms();
            Ok((
                vec![Write::UpdateSecret {
                    row,
                    new_versions: Vec::new(),
                    fill_versions: Vec::new(),
                    delete_versions: delete,
                    stages: Some(label_pairs(&d.labels)),
                    rewrap_versions: Vec::new(),
                }],
                resp,
            ))
        })
    }

    pub(crate) fn delete_secret(
        &self,
        ctx: &Ctx,
        r: sm::DeleteSecretRequest,
    ) -> Result<sm::DeleteSecretResponse, AwsError> {
        let force = r.force_delete_without_recovery.unwrap_or(false);
        if force && r.recovery_window_in_days.is_some() {
            return Err(AwsError::invalid_parameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let days = r.recovery_window_in_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(AwsError::invalid_parameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
        let id = r.secret_id.clone().unwrap_or_default();
        let now = ctx.now_ms();
        for _ in 0..16 {
            let Some(state) = self.find(ctx, &id)? else {
                if force {
                    // AWS answers a forced delete of a missing secret as if it existed.
                    let name = tumbler_types::Arn::parse(&id)
                        .and_then(|a| a.resource.strip_prefix("secret:").map(str::to_owned))
                        .unwrap_or_else(|| id.clone());
                    return Ok(sm::DeleteSecretResponse {
                        arn: if id.starts_with("arn:") {
                            id.clone()
                        } else {
                            format!("arn:aws:secretsmanager:{}:{}:secret:{name}", ctx.region, ctx.account)
                        },
                        name,
                        deletion_date: secs(now),
                    });
                }
                return Err(AwsError::resource_not_found(crate::NOT_FOUND));
            };
            let meta = parse_meta(&state.row)?;
            if let Some(owner) = &meta.owning_service {
                ctx.check_owner(owner)?;
            }
            if meta.replica {
                return Err(AwsError::invalid_request(ON_REPLICA));
            }
            if !meta.replicas.is_empty() {
                let regions: Vec<_> = meta.replicas.iter().map(|r| r.region.as_str()).collect();
                return Err(AwsError::invalid_request(format!(
                    "You can't delete secret {} while it is replicated to other regions ({}). \
                     Remove the replicas first with RemoveRegionsFromReplication.",
                    state.row.name,
                    regions.join(", ")
                )));
            }
            let resp = |deletion_ms: i64| sm::DeleteSecretResponse {
                arn: state.row.arn.clone(),
                name: state.row.name.clone(),
                deletion_date: secs(deletion_ms),
            };
            if force {
                self.commit(ctx, vec![Write::PurgeSecret { id: state.row.id }])
                    .map_err(store_err)?;
                return Ok(resp(now));
            }
            if state.row.deleted_ms.is_some() {
                return Err(AwsError::invalid_request(
                    "You tried to perform the operation on a secret that's currently marked deleted.",
                ));
            }
            let purge = now + days * DAY_MS;
            let mut row = state.row.clone();
            row.deleted_ms = Some(now);
            row.purge_at_ms = Some(purge);
            row.last_changed_ms = now;
            match self.commit(ctx, vec![update_row(row, Vec::new())]) {
                Ok(_) => return Ok(resp(purge)),
                Err(tumbler_store::StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(AwsError::throttling(
            "Rate exceeded: the secret is changing too fast; retry the request.",
        ))
    }

    pub(crate) fn restore_secret(&self, ctx: &Ctx, r: sm::SecretIdRequest) -> Result<sm::ArnNameVersion, AwsError> {
        let id = r.secret_id.clone().unwrap_or_default();
        for _ in 0..16 {
            let state = self.resolve(ctx, &id)?;
            if let Some(owner) = &parse_meta(&state.row)?.owning_service {
                ctx.check_owner(owner)?;
            }
            let resp = sm::ArnNameVersion {
                arn: state.row.arn.clone(),
                name: state.row.name.clone(),
                version_id: None,
            };
            if state.row.deleted_ms.is_none() {
                return Ok(resp);
            }
            let mut row = state.row.clone();
            row.deleted_ms = None;
            row.purge_at_ms = None;
            row.last_changed_ms = ctx.now_ms();
            match self.commit(ctx, vec![update_row(row, Vec::new())]) {
                Ok(_) => return Ok(resp),
                Err(tumbler_store::StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(AwsError::throttling(
            "Rate exceeded: the secret is changing too fast; retry the request.",
        ))
    }

    /// Change only the metadata document of a secret.
    fn change_meta<R>(
        &self,
        ctx: &Ctx,
        id: &str,
        f: impl Fn(&mut SecretMeta, &SecretRow) -> Result<R, AwsError>,
    ) -> Result<R, AwsError> {
        self.mutate(ctx, id, |mut d| {
            let out = f(&mut d.meta, &d.state.row)?;
            let mut row = d.state.row.clone();
            row.meta = d.meta.to_json();
            row.last_changed_ms = ctx.now_ms();
            Ok((vec![update_row(row, Vec::new())], out))
        })
    }

    pub(crate) fn tag_resource(&self, ctx: &Ctx, r: sm::TagResourceRequest) -> Result<sm::Empty, AwsError> {
        let add = stored_tags(r.tags.as_deref().unwrap_or_default());
        self.change_meta(ctx, r.secret_id.as_deref().unwrap_or_default(), |meta, _| {
            let mut tags = meta.tags.clone().unwrap_or_default();
            merge_tags(&mut tags, add.clone());
            validate_tags(&tags)?;
            meta.tags = Some(tags);
            Ok(sm::Empty {})
        })
    }

    pub(crate) fn untag_resource(&self, ctx: &Ctx, r: sm::UntagResourceRequest) -> Result<sm::Empty, AwsError> {
        let keys = r.tag_keys.clone().unwrap_or_default();
        if let Some(k) = keys.iter().find(|k| k.to_ascii_lowercase().starts_with("aws:")) {
            return Err(AwsError::invalid_parameter(format!(
                "Tag key '{k}' is invalid: keys starting with 'aws:' are reserved for AWS use."
            )));
        }
        self.change_meta(ctx, r.secret_id.as_deref().unwrap_or_default(), |meta, _| {
            if let Some(tags) = &mut meta.tags {
                tags.retain(|t| !keys.contains(&t.key));
            }
            Ok(sm::Empty {})
        })
    }

    pub(crate) fn get_random_password(
        &self,
        _ctx: &Ctx,
        r: sm::GetRandomPasswordRequest,
    ) -> Result<sm::GetRandomPasswordResponse, AwsError> {
        let p = crate::password::generate(&crate::password::Rules::from_request(&r))?;
        Ok(sm::GetRandomPasswordResponse {
            random_password: Some(p),
        })
    }

    pub(crate) fn put_resource_policy(
        &self,
        ctx: &Ctx,
        r: sm::PutResourcePolicyRequest,
    ) -> Result<sm::ArnNameVersion, AwsError> {
        let policy = r.resource_policy.clone().unwrap_or_default();
        let parsed = crate::policy::parse(&policy).map_err(AwsError::malformed_policy)?;
        if r.block_public_policy.unwrap_or(false) && crate::policy::is_public(&parsed, &ctx.account) {
            return Err(AwsError::public_policy(
                "This resource policy will grant public access to the secret. Use a narrower Principal or a Condition, \
                 or set BlockPublicPolicy to false.",
            ));
        }
        self.change_meta(ctx, r.secret_id.as_deref().unwrap_or_default(), |meta, row| {
            meta.resource_policy = Some(policy.clone());
            Ok(sm::ArnNameVersion {
                arn: row.arn.clone(),
                name: row.name.clone(),
                version_id: None,
            })
        })
    }

    pub(crate) fn get_resource_policy(
        &self,
        ctx: &Ctx,
        r: sm::SecretIdRequest,
    ) -> Result<sm::GetResourcePolicyResponse, AwsError> {
        let state = self.resolve(ctx, r.secret_id.as_deref().unwrap_or_default())?;
        if state.row.deleted_ms.is_some() {
            return Err(AwsError::invalid_request(MARKED_DELETED));
        }
        let meta = parse_meta(&state.row)?;
        Ok(sm::GetResourcePolicyResponse {
            arn: state.row.arn.clone(),
            name: state.row.name.clone(),
            resource_policy: meta.resource_policy,
        })
    }

    pub(crate) fn delete_resource_policy(
        &self,
        ctx: &Ctx,
        r: sm::SecretIdRequest,
    ) -> Result<sm::ArnNameVersion, AwsError> {
        self.change_meta(ctx, r.secret_id.as_deref().unwrap_or_default(), |meta, row| {
            meta.resource_policy = None;
            Ok(sm::ArnNameVersion {
                arn: row.arn.clone(),
                name: row.name.clone(),
                version_id: None,
            })
        })
    }

    pub(crate) fn validate_resource_policy(
        &self,
        ctx: &Ctx,
        r: sm::ValidateResourcePolicyRequest,
    ) -> Result<sm::ValidateResourcePolicyResponse, AwsError> {
        if let Some(id) = r.secret_id.as_deref() {
            self.resolve(ctx, id)?;
        }
        let policy = r.resource_policy.unwrap_or_default();
        let mut errors = Vec::new();
        match crate::policy::parse(&policy) {
            Err(m) => errors.push(sm::ValidationErrorsEntry {
                check_name: "SYNTAX_CHECKING".into(),
                error_message: m,
            }),
            Ok(parsed) if crate::policy::is_public(&parsed, &ctx.account) => errors.push(sm::ValidationErrorsEntry {
                check_name: "PUBLIC_ACCESS_CHECKING".into(),
                error_message: "This resource policy grants public access to the secret.".into(),
            }),
            Ok(_) => {}
        }
        Ok(sm::ValidateResourcePolicyResponse {
            policy_validation_passed: errors.is_empty(),
            validation_errors: errors,
        })
    }
}

fn cursor(row: &SecretRow, sort: SortKey) -> Cursor {
    match sort {
        SortKey::CreatedDate => Cursor::Int(row.created_ms, row.id),
        SortKey::LastChangedDate => Cursor::Int(row.last_changed_ms, row.id),
        SortKey::LastAccessedDate => Cursor::Int(row.last_accessed_ms.unwrap_or(0), row.id),
        SortKey::Name => Cursor::Text(row.name.clone(), row.id),
    }
}
