//! Operations that write or read secret values.

use std::sync::Arc;

use tumbler_store::{NewVersion, SecretRow, SecretState, StoreError, Write};
use tumbler_types::SensitiveString;
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager::{self as sm, ApiError, SecretValue};

use crate::authz::RequestCheck;
use crate::labels::{self, CURRENT};
use crate::meta::{SecretMeta, StoredTag};
use crate::{
    Ctx, Draft, INVALID_NAME, MARKED_DELETED, NOT_FOUND, SecretsService, Value, check_label_count, day_of, label_pairs,
    secs, store_err, update_row, versions_to_clean,
};

/// What writing a version comes to: a new write, or an idempotent retry
/// that changes nothing.
enum VersionWrite {
    New(Box<Write>, sm::PutSecretValueResponse),
    Retry(sm::PutSecretValueResponse),
}

const NEED_TOKEN: &str = "You must provide a ClientRequestToken value. We recommend a UUID-type value.";

pub(crate) fn one_value(
    string: Option<SensitiveString>,
    binary: Option<tumbler_types::Sensitive>,
) -> Result<Option<Value>, AwsError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(AwsError::invalid_parameter(
            "You can't specify both SecretString and SecretBinary: a secret version holds one or the other.",
        )),
        (Some(s), None) => Ok(Some(Value::String(s))),
        (None, Some(b)) => Ok(Some(Value::Binary(b))),
        (None, None) => Ok(None),
    }
}

pub(crate) fn token_in_use(token: &str, arn: &str) -> AwsError {
    AwsError::resource_exists(format!(
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    ))
}

/// `-` + six random letters and digits, appended to the name in the ARN.
pub(crate) fn arn_suffix() -> Result<String, AwsError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(6);
    while out.len() < 6 {
        let bytes = tumbler_crypto::random_bytes(16)
            .map_err(|_| AwsError::internal("An internal error occurred. Try the request again."))?;
        // Reject bytes >= 248 (62 * 4) so every character is equally likely.
        out.extend(
            bytes
                .iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[(*b % 62) as usize] as char)
                .take(6 - out.len()),
        );
    }
    Ok(out)
}

pub(crate) fn validate_tags(tags: &[StoredTag]) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(AwsError::invalid_parameter(format!(
            "A secret can have at most 50 tags; this request would give it {}.",
            tags.len()
        )));
    }
    for t in tags {
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(AwsError::invalid_parameter(format!(
                "Tag key '{}' is invalid: keys starting with 'aws:' are reserved for AWS use.",
                t.key
            )));
        }
        let ok = |s: &str| s.chars().all(|c| c.is_alphanumeric() || " +-=._:/@".contains(c));
        if !ok(&t.key) || !ok(&t.value) {
            return Err(AwsError::invalid_parameter(format!(
                "Tag '{}' is invalid: tag keys and values may contain only letters, digits, spaces and + - = . _ : / @",
                t.key
            )));
        }
    }
    Ok(())
}

pub(crate) fn stored_tags(tags: &[sm::Tag]) -> Vec<StoredTag> {
    tags.iter()
        .map(|t| StoredTag {
            key: t.key.clone().unwrap_or_default(),
            value: t.value.clone().unwrap_or_default(),
        })
        .collect()
}

/// Merge `add` into `existing`, overwriting values by key.
pub(crate) fn merge_tags(existing: &mut Vec<StoredTag>, add: Vec<StoredTag>) {
    for t in add {
        match existing.iter_mut().find(|e| e.key == t.key) {
            Some(e) => e.value = t.value,
            None => existing.push(t),
        }
    }
}

impl SecretsService {
    pub(crate) fn create_secret(
        &self,
        ctx: &Ctx,
        r: sm::CreateSecretRequest,
    ) -> Result<sm::CreateSecretResponse, AwsError> {
        self.create_secret_owned_by(ctx, r, None)
    }

    /// CreateSecret for a service of Tumbler's own: the secret is
    /// `owner`'s (OwningService), which alone may change or delete it, and
    /// its name may hold `!` as AWS's service-owned names do (`rds!db-...`).
    /// `ctx` must be the owner's (its principal is `owner`).
    pub fn create_owned_secret(
        &self,
        ctx: &Ctx,
        owner: &str,
        r: sm::CreateSecretRequest,
    ) -> Result<sm::CreateSecretResponse, AwsError> {
        let ctx = ctx.with_check(r.check());
        self.create_secret_owned_by(&ctx, r, Some(owner))
    }

    fn create_secret_owned_by(
        &self,
        ctx: &Ctx,
        r: sm::CreateSecretRequest,
        owner: Option<&str>,
    ) -> Result<sm::CreateSecretResponse, AwsError> {
        let name = r.name.clone().unwrap_or_default();
        let checked_name = if owner.is_some() {
            name.replacen('!', "-", 1)
        } else {
            name.clone()
        };
        if !sm::is_secret_name(&checked_name) {
            return Err(AwsError::validation(INVALID_NAME));
        }
        let value = one_value(r.secret_string, r.secret_binary)?;
        let token = match (&value, r.client_request_token.as_deref()) {
            (Some(_), None) => return Err(AwsError::invalid_request(NEED_TOKEN)),
            (Some(_), Some(t)) => Some(t.to_owned()),
            // Without a value there is no version, so the token means nothing.
            (None, _) => None,
        };
        let tags = r.tags.as_deref().map(stored_tags);
        if let Some(t) = &tags {
            validate_tags(t)?;
        }
        let key = self.key_for(ctx, r.kms_key_id.as_deref())?;
        let meta = SecretMeta {
            description: r.description.clone().filter(|d| !d.is_empty()),
            kms_key_id: r.kms_key_id.clone().filter(|k| !k.is_empty()),
            tags,
            secret_type: r.secret_type.clone(),
            owning_service: owner.map(str::to_owned),
            ..Default::default()
        };

        for _ in 0..4 {
            if let Some(existing) = self
                .store
                .secret_by_name(&ctx.account, &ctx.region, &name)
                .map_err(store_err)?
            {
                ctx.authorize_resource(&existing.row.arn, Some(&self.facts.get(&existing)))?;
                return self.create_again(existing, token.as_deref(), value.as_ref());
            }
            let suffix = arn_suffix()?;
            let arn = format!(
                "arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}",
                ctx.region, ctx.account
            );
            ctx.authorize_resource(&arn, None)?;
            if r.tags.as_ref().is_some_and(|t| !t.is_empty()) {
                // Tagging at creation needs TagResource too, as on AWS, so
                // that tag-based conditions can't be sidestepped.
                let tagging = sm::TagResourceRequest {
                    secret_id: Some(arn.clone()),
                    tags: r.tags.clone(),
                };
                ctx.with_check(tagging.check()).authorize_resource(&arn, None)?;
            }
            let now = ctx.now_ms();
            let mut versions = Vec::new();
            let mut stages = Vec::new();
            if let (Some(v), Some(t)) = (&value, &token) {
                versions.push(NewVersion {
                    version_id: t.clone(),
                    created_ms: now,
                    value: Some({
                        self.check_key_use(ctx, "kms:GenerateDataKey", &key.key_id, &arn, t)?;
                        self.seal(&key, &arn, t, v)?
                    }),
                });
                stages.push((CURRENT.to_owned(), t.clone()));
            }
            let row = SecretRow {
                id: 0,
                account: ctx.account.clone(),
                region: ctx.region.clone(),
                name: name.clone(),
                arn: arn.clone(),
                revision: 0,
                created_ms: now,
                last_changed_ms: now,
                last_accessed_ms: None,
                deleted_ms: None,
                purge_at_ms: None,
                meta: meta.to_json(),
            };
            match self.commit(ctx, vec![Write::CreateSecret { row, versions, stages }]) {
                Ok(_) => {
                    let mut resp = sm::CreateSecretResponse {
                        arn,
                        name: name.clone(),
                        version_id: token.clone(),
                        ..Default::default()
                    };
                    if let Some(regions) = r.add_replica_regions.as_deref() {
                        // Replicas need their own permission, as on AWS.
                        let request = sm::ReplicateSecretToRegionsRequest {
                            secret_id: Some(resp.arn.clone()),
                            add_replica_regions: Some(regions.to_vec()),
                            force_overwrite_replica_secret: r.force_overwrite_replica_secret,
                        };
                        let rep = self.replicate_secret_to_regions(&ctx.with_check(request.check()), request)?;
                        resp.replication_status = rep.replication_status;
                    }
                    return Ok(resp);
                }
                // Someone created the name meanwhile: answer as for an existing secret.
                Err(StoreError::NameExists) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(AwsError::internal("An internal error occurred. Try the request again."))
    }

    /// CreateSecret on a name that exists: an idempotent retry, or an error.
    fn create_again(
        &self,
        existing: Arc<SecretState>,
        token: Option<&str>,
        value: Option<&Value>,
    ) -> Result<sm::CreateSecretResponse, AwsError> {
        if existing.row.deleted_ms.is_some() {
            return Err(AwsError::invalid_request(
                "You can't create this secret because a secret with this name is already scheduled for deletion.",
            ));
        }
        if let (Some(t), Some(v)) = (token, value)
            && existing.versions.iter().any(|x| x.version_id == t)
        {
            return match self.load_value(&existing, t)? {
                Some(old) if old.same_as(v) => Ok(sm::CreateSecretResponse {
                    arn: existing.row.arn.clone(),
                    name: existing.row.name.clone(),
                    version_id: Some(t.to_owned()),
                    ..Default::default()
                }),
                _ => Err(token_in_use(t, &existing.row.arn)),
            };
        }
        Err(AwsError::resource_exists(format!(
            "The operation failed because the secret {} already exists.",
            existing.row.name
        )))
    }

    pub(crate) fn get_secret_value(&self, ctx: &Ctx, r: sm::GetSecretValueRequest) -> Result<SecretValue, AwsError> {
        let state = self.resolve(ctx, r.secret_id.as_deref().unwrap_or_default())?;
        self.read_version(ctx, &state, r.version_id.as_deref(), r.version_stage.as_deref())
    }

    /// The value of one version of `state`, chosen by id and/or label.
    fn read_version(
        &self,
        ctx: &Ctx,
        state: &SecretState,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, AwsError> {
        if state.row.deleted_ms.is_some() {
            return Err(AwsError::invalid_request(MARKED_DELETED));
        }
        let (version, missing) = match version_id {
            Some(id) => {
                let v = state.versions.iter().find(|v| v.version_id == id);
                if let (Some(v), Some(stage)) = (v, stage)
                    && !v.stages.iter().any(|s| s == stage)
                {
                    return Err(AwsError::invalid_request(
                        "You provided a VersionStage that is not associated to the provided VersionId.",
                    ));
                }
                (v, ("VersionId", id))
            }
            None => {
                let stage = stage.unwrap_or(CURRENT);
                (
                    state.versions.iter().find(|v| v.stages.iter().any(|s| s == stage)),
                    ("staging label", stage),
                )
            }
        };
        let missing = || {
            AwsError::resource_not_found(format!(
                "Secrets Manager can't find the specified secret value for {}: {}",
                missing.0, missing.1
            ))
        };
        // A version without a value (the rotation placeholder) reads as missing.
        let version = version.filter(|v| v.kind.is_some()).ok_or_else(missing)?;
        let value = self
            .load_value_for(ctx, state, &version.version_id)?
            .ok_or_else(missing)?;
        let today = day_of(ctx.now_ms());
        if state.row.last_accessed_ms.is_none_or(|d| d < today) || version.last_accessed_ms.is_none_or(|d| d < today) {
            self.store.touch(tumbler_store::AccessTouch {
                secret_id: state.row.id,
                version_id: version.version_id.clone(),
                day_ms: today,
            });
        }
        let (secret_string, secret_binary) = match value {
            Value::String(s) => (Some(s), None),
            Value::Binary(b) => (None, Some(b)),
        };
        Ok(SecretValue {
            arn: state.row.arn.clone(),
            name: state.row.name.clone(),
            version_id: version.version_id.clone(),
            secret_string,
            secret_binary,
            version_stages: version.stages.clone(),
            created_date: secs(version.created_ms),
        })
    }

    pub(crate) fn batch_get_secret_value(
        &self,
        ctx: &Ctx,
        r: sm::BatchGetSecretValueRequest,
    ) -> Result<sm::BatchGetSecretValueResponse, AwsError> {
        match (&r.secret_id_list, &r.filters) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(AwsError::invalid_parameter(
                    "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
                ));
            }
            _ => {}
        }
        if r.max_results.is_some() && r.filters.is_none() {
            return Err(AwsError::invalid_parameter(
                "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.",
            ));
        }
        let mut out = sm::BatchGetSecretValueResponse::default();
        // Each secret also needs GetSecretValue, as on AWS; a denied one is
        // an entry in Errors, like a missing one.
        let get_ctx = |id: &str| {
            ctx.with_check(
                sm::GetSecretValueRequest {
                    secret_id: Some(id.to_owned()),
                    ..Default::default()
                }
                .check(),
            )
        };
        let fetch =
            |out: &mut sm::BatchGetSecretValueResponse, id: &str, state: Result<Option<Arc<SecretState>>, AwsError>| {
                let r = state
                    .and_then(|s| s.ok_or_else(|| AwsError::resource_not_found(NOT_FOUND)))
                    .and_then(|s| self.read_version(ctx, &s, None, None));
                match r {
                    Ok(v) => out.secret_values.push(v),
                    Err(e) => out.errors.push(ApiError {
                        secret_id: id.to_owned(),
                        error_code: e.code.to_owned(),
                        message: e.message,
                    }),
                }
            };
        if let Some(ids) = &r.secret_id_list {
            if r.next_token.is_some() {
                return Err(AwsError::invalid_next_token(
                    "NextToken is only valid with Filters: a SecretIdList is answered in one page.",
                ));
            }
            for id in ids {
                fetch(&mut out, id, self.find(&get_ctx(id), id));
            }
            return Ok(out);
        }
        let page = self.list_page(
            ctx,
            r.filters.as_deref().unwrap_or_default(),
            None,
            None,
            false,
            r.max_results.unwrap_or(20) as usize,
            r.next_token.as_deref(),
        )?;
        for listing in page.entries {
            let state = self
                .store
                .secret_by_id(listing.row.id)
                .map_err(store_err)
                .and_then(|s| {
                    if let Some(s) = &s {
                        get_ctx(&listing.row.name).authorize_resource(&s.row.arn, Some(&self.facts.get(s)))?;
                    }
                    Ok(s)
                });
            fetch(&mut out, &listing.row.name, state);
        }
        out.next_token = page.next_token;
        Ok(out)
    }

    pub(crate) fn put_secret_value(
        &self,
        ctx: &Ctx,
        r: sm::PutSecretValueRequest,
    ) -> Result<sm::PutSecretValueResponse, AwsError> {
        let value = one_value(r.secret_string, r.secret_binary)?
            .ok_or_else(|| AwsError::invalid_request("You must provide either SecretString or SecretBinary."))?;
        let token = r
            .client_request_token
            .clone()
            .ok_or_else(|| AwsError::invalid_request(NEED_TOKEN))?;
        let stages = r.version_stages.clone().unwrap_or_else(|| vec![CURRENT.to_owned()]);
        let id = r.secret_id.clone().unwrap_or_default();
        self.mutate(ctx, &id, |d| {
            Ok(match self.write_version(ctx, d, &token, &value, &stages)? {
                // Idempotent retry: report the version as it stands.
                VersionWrite::Retry(r) => (Vec::new(), r),
                VersionWrite::New(w, r) => (vec![*w], r),
            })
        })
    }

    /// Add (or, for a rotation placeholder, fill) version `token` with
    /// `value` and labels `stages`.
    fn write_version(
        &self,
        ctx: &Ctx,
        mut d: Draft,
        token: &str,
        value: &Value,
        stages: &[String],
    ) -> Result<VersionWrite, AwsError> {
        let existing = d.version(token).cloned();
        let filling = match &existing {
            Some(v) if v.kind.is_some() => {
                return match self.load_value(&d.state, token)? {
                    Some(old) if old.same_as(value) => Ok(VersionWrite::Retry(sm::PutSecretValueResponse {
                        arn: d.arn().to_owned(),
                        name: d.name().to_owned(),
                        version_id: token.to_owned(),
                        version_stages: labels::of(&d.labels, token),
                    })),
                    _ => Err(token_in_use(token, d.arn())),
                };
            }
            Some(_) => true,
            None => false,
        };
        let key = self.key_for(ctx, d.meta.kms_key_id.as_deref())?;
        self.check_key_use(ctx, "kms:GenerateDataKey", &key.key_id, d.arn(), token)?;
        let sealed = self.seal(&key, d.arn(), token, value)?;
        let mut stages = stages.to_vec();
        if !d.labels.contains_key(CURRENT) && !stages.iter().any(|s| s == CURRENT) {
            // The first value of a secret always becomes AWSCURRENT.
            stages.push(CURRENT.to_owned());
        }
        labels::attach(&mut d.labels, token, &stages, true);
        check_label_count(&d.labels)?;
        let now = ctx.now_ms();
        let delete = versions_to_clean(&d.state.versions, usize::from(!filling), &d.labels, now)?;
        let mut row = d.state.row.clone();
        row.last_changed_ms = now;
        let (new_versions, fill_versions) = if filling {
            (Vec::new(), vec![(token.to_owned(), sealed)])
        } else {
            (
                vec![NewVersion {
                    version_id: token.to_owned(),
                    created_ms: now,
                    value: Some(sealed),
                }],
                Vec::new(),
            )
        };
        let response = sm::PutSecretValueResponse {
            arn: d.arn().to_owned(),
            name: d.name().to_owned(),
            version_id: token.to_owned(),
            version_stages: labels::of(&d.labels, token),
        };
        let write = Write::UpdateSecret {
            row,
            new_versions,
            fill_versions,
            delete_versions: delete,
            stages: Some(label_pairs(&d.labels)),
            rewrap_versions: Vec::new(),
        };
        Ok(VersionWrite::New(Box::new(write), response))
    }

    pub(crate) fn update_secret(&self, ctx: &Ctx, r: sm::UpdateSecretRequest) -> Result<sm::ArnNameVersion, AwsError> {
        let value = one_value(r.secret_string, r.secret_binary)?;
        let token = match (&value, r.client_request_token.clone()) {
            (Some(_), None) => return Err(AwsError::invalid_request(NEED_TOKEN)),
            (Some(_), Some(t)) => Some(t),
            (None, _) => None,
        };
        let id = r.secret_id.clone().unwrap_or_default();
        let new_key = match r.kms_key_id.as_deref() {
            Some(k) => Some(self.key_for(ctx, Some(k))?),
            None => None,
        };
        self.mutate(ctx, &id, |mut d| {
            let mut resp = sm::ArnNameVersion { arn: d.arn().to_owned(), name: d.name().to_owned(), version_id: None };
            let mut changed = false;
            if let Some(desc) = &r.description {
                d.meta.description = Some(desc.clone()).filter(|s| !s.is_empty());
                changed = true;
            }
            if let Some(t) = &r.secret_type {
                d.meta.secret_type = Some(t.clone());
                changed = true;
            }
            let mut rewrap = Vec::new();
            if let (Some(k), Some(key)) = (r.kms_key_id.as_deref(), &new_key) {
                let new_ref = Some(k.to_owned()).filter(|k| !k.is_empty());
                if new_ref != d.meta.kms_key_id {
                    // AWS re-encrypts the versions labelled AWSCURRENT, AWSPENDING and AWSPREVIOUS.
                    for stage in [CURRENT, labels::PENDING, labels::PREVIOUS] {
                        if let Some(vid) = d.labels.get(stage).cloned() {
                            if rewrap.iter().any(|(v, _, _): &(String, String, Vec<u8>)| *v == vid) {
                                continue;
                            }
                            if let Some(sealed) = self.store.version_value(d.state.row.id, &vid).map_err(store_err)? {
                                let dek = self
                                    .kms
                                    .unwrap(&sealed.wrapped_key, &[("SecretARN", d.arn()), ("SecretVersionId", &vid)])
                                    .map_err(|_| AwsError::decryption_failure(format!(
                                        "Secrets Manager can't decrypt version {vid} to re-encrypt it under the new KMS key."
                                    )))?;
                                let wrapped = self
                                    .kms
                                    .wrap(key, &dek, &[("SecretARN", d.arn()), ("SecretVersionId", &vid)])
                                    .map_err(|e| AwsError::encryption_failure(format!("The KMS key can't be used: {e}")))?;
                                rewrap.push((vid, key.key_id.clone(), wrapped));
                            }
                        }
                    }
                    d.meta.kms_key_id = new_ref;
                    changed = true;
                }
            }
            let meta_json = d.meta.to_json();
            if let (Some(v), Some(t)) = (&value, &token) {
                let mut d2 = Draft { state: d.state.clone(), meta: d.meta.clone(), labels: d.labels.clone() };
                Arc::make_mut(&mut d2.state).row.meta = meta_json.clone();
                resp.version_id = Some(t.clone());
                match self.write_version(ctx, d2, t, v, &[CURRENT.to_owned()])? {
                    VersionWrite::New(mut w, _) => {
                        if let Write::UpdateSecret { rewrap_versions, .. } = w.as_mut() {
                            *rewrap_versions = rewrap;
                        }
                        return Ok((vec![*w], resp));
                    }
                    // The same value again: only the metadata may change.
                    VersionWrite::Retry(_) => {}
                }
            }
            if !changed {
                return Ok((Vec::new(), resp));
            }
            let mut row = d.state.row.clone();
            row.meta = meta_json;
            row.last_changed_ms = ctx.now_ms();
            Ok((vec![update_row(row, rewrap)], resp))
        })
    }
}
