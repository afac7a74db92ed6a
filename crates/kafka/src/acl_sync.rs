//! Keeping each registered cluster's ACLs equal to what the account's IAM
//! policies compile to (`acl.rs`): on every IAM change made through this
//! node, on registration, and from the reconciler. Only ACLs Tumbler
//! created (the cluster's `ownedAcls`) are ever deleted; an ACL someone
//! else made is left alone, even when Tumbler wants the same one.

use std::collections::BTreeSet;

use tumbler_store::ResourceRow;

use crate::acl::{Acl, ClusterRef, Compiled, Holder, compile};
use crate::client::{Connection, KafkaError, Target};
use crate::cluster::{AclSync, Cluster, KIND};
use crate::secret::ScramSecret;
use crate::service::{AclReport, Audit, KafkaService};

/// The session name standing for a role's sessions when its boundary is
/// evaluated (a role's boundary does not depend on the session).
const ROLE_SESSION: &str = "kafka";
/// ACLs per CreateAcls or DeleteAcls request.
const ACL_BATCH: usize = 100;

impl KafkaService {
    /// The ACLs the policies of every user and role of the cluster's
    /// account compile to on it.
    pub fn wanted_acls(&self, row: &ResourceRow, cluster: &Cluster) -> Result<Compiled, String> {
        let holders = self
            .identity
            .policy_holders(&row.account)
            .map_err(|e| format!("the IAM policies could not be read: {e}"))?;
        let target = ClusterRef {
            region: &row.region,
            account: &row.account,
            name: &cluster.name,
            id: &cluster.id,
        };
        let mut wanted = Compiled::default();
        for h in &holders {
            let is_user = h.kind == "user";
            let principal = if is_user {
                tumbler_iam::Principal::user(&h.arn, &h.unique_id)
            } else {
                tumbler_iam::Principal::assumed_role(&h.arn, ROLE_SESSION, &h.unique_id)
            };
            let Some(principal) = principal else { continue };
            let holder = Holder {
                kafka_name: &h.name,
                user_name: is_user.then_some(h.name.as_str()),
                principal,
                identity: &h.identity,
                boundary: h.boundary.as_ref(),
            };
            let compiled = compile(&target, &holder);
            wanted.acls.extend(compiled.acls);
            wanted.notes.extend(
                compiled
                    .notes
                    .into_iter()
                    .map(|n| format!("{} {}: {n}", h.kind, h.name)),
            );
        }
        Ok(wanted)
    }

    /// Recompile and push the ACLs of every registered cluster.
    pub fn sync_all_acls(&self) {
        for row in self.store.resources_of_kind(KIND).unwrap_or_default() {
            self.sync_acls(&row.arn);
        }
    }

    /// Bring one cluster's ACLs in line with the policies. The outcome is
    /// recorded on the cluster (and in the audit trail when it changed
    /// something or failed anew), not returned: the reconciler tries again.
    pub fn sync_acls(&self, cluster_arn: &str) {
        self.with_cluster(cluster_arn, |row, cluster| {
            let wanted = match self.wanted_acls(&row, &cluster) {
                Ok(w) => w,
                Err(e) => return self.record_acls(&row, None, Err(e)),
            };
            let outcome = self.admin_of(&row, &cluster).and_then(|(target, admin)| {
                self.block(push_acls(&cluster.owned_acls, &wanted.acls, &target, &admin))
                    .map_err(|e| e.to_string())
            });
            self.record_acls(&row, Some(&wanted), outcome);
        });
    }

    /// Delete every ACL Tumbler created on a cluster (its deregistration):
    /// how many, or why not.
    pub(crate) fn remove_acls(&self, row: &ResourceRow, cluster: &Cluster) -> Result<usize, String> {
        if cluster.owned_acls.is_empty() {
            return Ok(0);
        }
        let (target, admin) = self.admin_of(row, cluster)?;
        let push = self
            .block(push_acls(&cluster.owned_acls, &BTreeSet::new(), &target, &admin))
            .map_err(|e| e.to_string())?;
        match push.failed.first() {
            Some((acl, e)) => Err(format!("{acl}: {e}")),
            None => Ok(push.deleted.len()),
        }
    }

    fn record_acls(&self, row: &ResourceRow, wanted: Option<&Compiled>, outcome: Result<AclPush, String>) {
        let now = jiff::Timestamp::now().as_millisecond();
        let mut report = AclReport::default();
        let owned = match outcome {
            Ok(push) => {
                report.created = push.created.iter().map(Acl::to_string).collect();
                report.deleted = push.deleted.iter().map(Acl::to_string).collect();
                report.failed = push.failed;
                Some(push.owned)
            }
            Err(e) => {
                tracing::warn!(cluster = %row.arn, "Kafka ACL sync failed: {e}");
                report.error = Some(e);
                None
            }
        };
        for failure in &report.failed {
            tracing::warn!(cluster = %row.arn, acl = %failure.0, "a Kafka ACL could not be changed: {}", failure.1);
        }
        let changed = !report.created.is_empty() || !report.deleted.is_empty() || !report.failed.is_empty();
        if report.error.is_none()
            && let Some((acl, e)) = report.failed.first()
        {
            report.error = Some(format!(
                "{} ACL changes failed, the first ({acl}): {e}",
                report.failed.len()
            ));
        }
        let error = report.error.clone();
        // The same failure again is not audited every reconciliation (the
        // row was read under this cluster's sync lock, so it is current).
        let last_error = serde_json::from_str::<Cluster>(&row.meta)
            .ok()
            .and_then(|c| c.acl_sync)
            .and_then(|s| s.error);
        let audited = changed || (error.is_some() && error != last_error);
        let applied = self.update_doc(
            &row.arn,
            if audited { Audit::Acls(&report) } else { Audit::None },
            |c| {
                if let Some(owned) = &owned {
                    c.owned_acls = owned.clone();
                }
                let unchanged = c.acl_sync.as_ref().is_some_and(|s| {
                    s.error == error
                        && Some(s.wanted) == wanted.map(|w| w.acls.len())
                        && wanted.is_none_or(|w| w.notes == s.notes)
                });
                // A repeat of the same state is not written every reconciliation.
                if unchanged && !changed {
                    return;
                }
                c.acl_sync = Some(AclSync {
                    last_sync_ms: now,
                    wanted: wanted.map_or(0, |w| w.acls.len()),
                    error: error.clone(),
                    notes: wanted.map(|w| w.notes.clone()).unwrap_or_default(),
                });
            },
        );
        if let Err(e) = applied {
            tracing::error!(cluster = %row.arn, error = %e.message, "a Kafka ACL sync's outcome was not recorded");
        }
        for acl in &report.created {
            tracing::info!(cluster = %row.arn, %acl, "Kafka ACL created");
        }
        for acl in &report.deleted {
            tracing::info!(cluster = %row.arn, %acl, "Kafka ACL deleted");
        }
    }
}

/// What one push did, and the ACLs Tumbler owns after it.
struct AclPush {
    created: Vec<Acl>,
    deleted: Vec<Acl>,
    failed: Vec<(String, String)>,
    owned: BTreeSet<Acl>,
}

/// Create what is wanted and missing; delete what Tumbler created and no
/// longer wants.
async fn push_acls(
    owned: &BTreeSet<Acl>,
    wanted: &BTreeSet<Acl>,
    target: &Target,
    admin: &ScramSecret,
) -> Result<AclPush, KafkaError> {
    let mut conn = Connection::open(target, &admin.username, &admin.password).await?;
    let present: BTreeSet<Acl> = conn.describe_acls().await?.into_iter().collect();
    let to_create: Vec<Acl> = wanted.difference(&present).cloned().collect();
    // Deleted whether or not DescribeAcls shows it: the broker's view may
    // lag the controller, where a CreateAcls just answered is already true.
    let to_delete: Vec<Acl> = owned.iter().filter(|a| !wanted.contains(*a)).cloned().collect();
    // Still owned: what is wanted and there (an ACL deleted by hand is
    // created again below and owned anew).
    let mut push = AclPush {
        created: Vec::new(),
        deleted: Vec::new(),
        failed: Vec::new(),
        owned: owned
            .iter()
            .filter(|a| wanted.contains(*a) && present.contains(*a))
            .cloned()
            .collect(),
    };
    for chunk in to_create.chunks(ACL_BATCH) {
        for (acl, outcome) in chunk.iter().zip(conn.create_acls(chunk).await?) {
            match outcome {
                None => {
                    push.owned.insert(acl.clone());
                    push.created.push(acl.clone());
                }
                Some(e) => push.failed.push((acl.to_string(), e)),
            }
        }
    }
    for chunk in to_delete.chunks(ACL_BATCH) {
        for (acl, outcome) in chunk.iter().zip(conn.delete_acls(chunk).await?) {
            match outcome {
                Ok(0) => {}
                Ok(_) => push.deleted.push(acl.clone()),
                Err(e) => {
                    // Still there, still ours: deleted on a later try.
                    push.owned.insert(acl.clone());
                    push.failed.push((acl.to_string(), e));
                }
            }
        }
    }
    Ok(push)
}
