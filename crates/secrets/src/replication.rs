//! Replication between the regions this server holds: a replica is a
//! read-only copy of the primary (same name and suffix, its own region and
//! KMS key, values re-sealed under its own ARN), re-mirrored after every
//! committed change of the primary. Like AWS, mirroring follows the
//! primary's commit rather than joining it; a failed mirror shows as
//! `Failed` in ReplicationStatus and is retried on the next change, and by
//! the server's repair pass every minute.

use tumbler_store::{NewVersion, SecretRow, SecretState, StoreError, Write};
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager::{self as sm, ReplicationStatus};

use crate::meta::{Replica, SecretMeta};
use crate::{Ctx, SecretsService, label_pairs, parse_meta, store_err, update_row};

fn replica_arn(primary_arn: &str, region: &str) -> String {
    // arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>
    let mut parts: Vec<&str> = primary_arn.splitn(6, ':').collect();
    if parts.len() == 6 {
        parts[3] = region;
    }
    parts.join(":")
}

pub(crate) fn statuses(meta: &SecretMeta) -> Vec<ReplicationStatus> {
    meta.replicas
        .iter()
        .map(|r| ReplicationStatus {
            region: r.region.clone(),
            kms_key_id: Some(
                r.kms_key_id
                    .clone()
                    .unwrap_or_else(|| "alias/aws/secretsmanager".into()),
            ),
            status: r.status.clone(),
            status_message: r.status_message.clone(),
            last_accessed_date: None,
        })
        .collect()
}

impl SecretsService {
    pub(crate) fn replicate_secret_to_regions(
        &self,
        ctx: &Ctx,
        r: sm::ReplicateSecretToRegionsRequest,
    ) -> Result<sm::ReplicationResponse, AwsError> {
        let id = r.secret_id.clone().unwrap_or_default();
        let force = r.force_overwrite_replica_secret.unwrap_or(false);
        let regions = r.add_replica_regions.clone().unwrap_or_default();
        for rr in &regions {
            let region = rr.region.clone().unwrap_or_default();
            if region == ctx.region {
                return Err(AwsError::invalid_parameter(format!(
                    "Invalid replica region {region}: it is the secret's primary region."
                )));
            }
            // Check the replica's key now, so a bad key fails the call.
            self.key_in(&ctx.account, &region, rr.kms_key_id.as_deref())?;
        }
        let primary_id = self.mutate(ctx, &id, |mut d| {
            for rr in &regions {
                let region = rr.region.clone().unwrap_or_default();
                if d.meta.replicas.iter().any(|x| x.region == region) {
                    continue;
                }
                let existing = self
                    .store
                    .secret_by_name(&ctx.account, &region, d.name())
                    .map_err(store_err)?;
                let mut replica = Replica {
                    region: region.clone(),
                    kms_key_id: rr.kms_key_id.clone().filter(|k| !k.is_empty()),
                    status: "InProgress".into(),
                    status_message: None,
                };
                if let Some(existing) = existing {
                    if force {
                        self.store
                            .apply(vec![Write::PurgeSecret { id: existing.row.id }])
                            .map_err(store_err)?;
                    } else {
                        replica.status = "Failed".into();
                        replica.status_message = Some(
                            "Destination secret already exists in this region. Use ForceOverwriteReplicaSecret to overwrite it."
                                .into(),
                        );
                    }
                }
                d.meta.replicas.push(replica);
            }
            d.meta.primary_region = Some(ctx.region.clone());
            let mut row = d.state.row.clone();
            row.meta = d.meta.to_json();
            row.last_changed_ms = ctx.now_ms();
            Ok((vec![update_row(row, Vec::new())], d.state.row.id))
        })?;
        self.sync_replicas_of(primary_id);
        let state = self
            .store
            .secret_by_id(primary_id)
            .map_err(store_err)?
            .ok_or_else(|| AwsError::resource_not_found(crate::NOT_FOUND))?;
        Ok(sm::ReplicationResponse {
            arn: state.row.arn.clone(),
            replication_status: statuses(&parse_meta(&state.row)?),
        })
    }

    pub(crate) fn remove_regions_from_replication(
        &self,
        ctx: &Ctx,
        r: sm::RemoveRegionsFromReplicationRequest,
    ) -> Result<sm::ReplicationResponse, AwsError> {
        let id = r.secret_id.clone().unwrap_or_default();
        let remove = r.remove_replica_regions.clone().unwrap_or_default();
        self.mutate(ctx, &id, |mut d| {
            let mut writes = Vec::new();
            for region in &remove {
                if !d.meta.replicas.iter().any(|x| &x.region == region) {
                    return Err(AwsError::invalid_parameter(format!(
                        "The secret {} is not replicated to region {region}.",
                        d.name()
                    )));
                }
                if let Some(rep) = self
                    .store
                    .secret_by_name(&ctx.account, region, d.name())
                    .map_err(store_err)?
                    && parse_meta(&rep.row)?.replica
                {
                    writes.push(Write::PurgeSecret { id: rep.row.id });
                }
            }
            d.meta.replicas.retain(|x| !remove.contains(&x.region));
            if d.meta.replicas.is_empty() {
                d.meta.primary_region = None;
            }
            let mut row = d.state.row.clone();
            row.meta = d.meta.to_json();
            row.last_changed_ms = ctx.now_ms();
            let resp = sm::ReplicationResponse {
                arn: d.arn().to_owned(),
                replication_status: statuses(&d.meta),
            };
            writes.push(update_row(row, Vec::new()));
            Ok((writes, resp))
        })
    }

    pub(crate) fn stop_replication_to_replica(
        &self,
        ctx: &Ctx,
        r: sm::SecretIdRequest,
    ) -> Result<sm::ArnOnly, AwsError> {
        let id = r.secret_id.clone().unwrap_or_default();
        for _ in 0..16 {
            let state = self.resolve(ctx, &id)?;
            let mut meta = parse_meta(&state.row)?;
            if !meta.replica {
                return Err(AwsError::invalid_request(format!(
                    "The secret {} is not a replica, so there is no replication to stop.",
                    state.row.name
                )));
            }
            let primary_region = meta.primary_region.clone().unwrap_or_default();
            meta.replica = false;
            meta.primary_region = None;
            let mut row = state.row.clone();
            row.meta = meta.to_json();
            row.last_changed_ms = ctx.now_ms();
            let mut writes = vec![update_row(row, Vec::new())];
            if let Some(primary) = self
                .store
                .secret_by_name(&ctx.account, &primary_region, &state.row.name)
                .map_err(store_err)?
            {
                let mut pm = parse_meta(&primary.row)?;
                pm.replicas.retain(|x| x.region != ctx.region);
                if pm.replicas.is_empty() {
                    pm.primary_region = None;
                }
                let mut prow = primary.row.clone();
                prow.meta = pm.to_json();
                prow.last_changed_ms = ctx.now_ms();
                writes.push(update_row(prow, Vec::new()));
            }
            match self.commit(ctx, writes) {
                Ok(_) => {
                    return Ok(sm::ArnOnly {
                        arn: state.row.arn.clone(),
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(AwsError::throttling(
            "Rate exceeded: the secret is changing too fast; retry the request.",
        ))
    }

    /// The repair pass: retry the replicas whose last mirror failed (or was
    /// cut short by a restart). Returns how many primaries it looked at.
    pub fn repair_replicas(&self) -> Result<usize, AwsError> {
        let ids = self.store.secrets_with_unsynced_replicas(100).map_err(store_err)?;
        for &id in &ids {
            self.sync_replicas_of(id);
        }
        Ok(ids.len())
    }

    /// Re-mirror every replica of a primary; record each outcome in the
    /// primary's ReplicationStatus.
    pub fn sync_replicas_of(&self, primary_id: i64) {
        for _ in 0..8 {
            let Ok(Some(primary)) = self.store.secret_by_id(primary_id) else {
                return;
            };
            let Ok(mut meta) = parse_meta(&primary.row) else {
                return;
            };
            if meta.replica || meta.replicas.is_empty() {
                return;
            }
            let mut changed = false;
            for i in 0..meta.replicas.len() {
                let outcome = self.sync_replica(&primary, &meta, &meta.replicas[i].clone());
                let (status, message) = match outcome {
                    Ok(()) => ("InSync".to_owned(), None),
                    Err(m) => {
                        tracing::warn!(secret = %primary.row.arn, region = %meta.replicas[i].region, error = %m, "replica sync failed");
                        ("Failed".to_owned(), Some(m))
                    }
                };
                let rep = &mut meta.replicas[i];
                if rep.status != status || rep.status_message != message {
                    rep.status = status;
                    rep.status_message = message;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
            let mut row = primary.row.clone();
            row.meta = meta.to_json();
            match self.store.apply(vec![update_row(row, Vec::new())]) {
                Err(StoreError::Conflict) => continue,
                _ => return,
            }
        }
    }

    fn sync_replica(&self, primary: &SecretState, meta: &SecretMeta, rep: &Replica) -> Result<(), String> {
        let p = &primary.row;
        let existing = self
            .store
            .secret_by_name(&p.account, &rep.region, &p.name)
            .map_err(|e| e.to_string())?;
        if let Some(e) = &existing {
            let em = parse_meta(&e.row).map_err(|e| e.message)?;
            if !em.replica || em.primary_region.as_deref() != Some(&p.region) {
                return Err("Destination secret already exists in this region. Use ForceOverwriteReplicaSecret to overwrite it.".into());
            }
        }
        let key = self
            .key_in(&p.account, &rep.region, rep.kms_key_id.as_deref())
            .map_err(|e| e.message)?;
        let arn = replica_arn(&p.arn, &rep.region);
        let replica_meta = SecretMeta {
            replica: true,
            primary_region: Some(p.region.clone()),
            replicas: Vec::new(),
            kms_key_id: rep.kms_key_id.clone(),
            ..meta.clone()
        };
        let have: Vec<String> = existing
            .as_ref()
            .map(|e| {
                e.versions
                    .iter()
                    .filter(|v| v.kind.is_some())
                    .map(|v| v.version_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut new_versions = Vec::new();
        let mut fill_versions = Vec::new();
        for v in &primary.versions {
            if have.contains(&v.version_id) {
                continue;
            }
            let value = match v.kind {
                Some(_) => {
                    let plain = self.load_value(primary, &v.version_id).map_err(|e| e.message)?;
                    match plain {
                        Some(val) => Some(self.seal(&key, &arn, &v.version_id, &val).map_err(|e| e.message)?),
                        None => None,
                    }
                }
                None => None,
            };
            let placeholder_exists = existing
                .as_ref()
                .is_some_and(|e| e.versions.iter().any(|x| x.version_id == v.version_id));
            match (placeholder_exists, value) {
                (true, Some(val)) => fill_versions.push((v.version_id.clone(), val)),
                (true, None) => {}
                (false, value) => new_versions.push(NewVersion {
                    version_id: v.version_id.clone(),
                    created_ms: v.created_ms,
                    value,
                }),
            }
        }
        let stages: Vec<(String, String)> = label_pairs(
            &primary
                .versions
                .iter()
                .flat_map(|v| v.stages.iter().map(move |s| (s.clone(), v.version_id.clone())))
                .collect(),
        );
        let write = match existing {
            None => Write::CreateSecret {
                row: SecretRow {
                    id: 0,
                    account: p.account.clone(),
                    region: rep.region.clone(),
                    name: p.name.clone(),
                    arn,
                    revision: 0,
                    created_ms: p.created_ms,
                    last_changed_ms: p.last_changed_ms,
                    last_accessed_ms: None,
                    deleted_ms: None,
                    purge_at_ms: None,
                    meta: replica_meta.to_json(),
                },
                versions: new_versions,
                stages,
            },
            Some(e) => {
                let delete_versions = e
                    .versions
                    .iter()
                    .filter(|v| !primary.versions.iter().any(|pv| pv.version_id == v.version_id))
                    .map(|v| v.version_id.clone())
                    .collect();
                let mut row = e.row.clone();
                row.meta = replica_meta.to_json();
                row.last_changed_ms = p.last_changed_ms;
                Write::UpdateSecret {
                    row,
                    new_versions,
                    fill_versions,
                    delete_versions,
                    stages: Some(stages),
                    rewrap_versions: Vec::new(),
                }
            }
        };
        self.store.apply(vec![write]).map(|_| ()).map_err(|e| e.to_string())
    }
}
