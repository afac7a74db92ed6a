//! A registered Kafka cluster as stored: the resource row's `meta`, which
//! only this crate reads. The associations live in the same document, so
//! a batch of them changes atomically (the row's revision guards it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::Acl;
use crate::client::Target;

pub const KIND: &str = "kafka-cluster";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub name: String,
    pub id: String,
    pub bootstrap_servers: Vec<String>,
    /// SASL_SSL or SASL_PLAINTEXT.
    pub security_protocol: String,
    /// The secret holding the admin user Tumbler logs in as.
    pub admin_secret_arn: String,
    /// The CA that signed the brokers' certificates (PEM); the system's
    /// roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub iterations: u32,
    /// Secret ARN → association.
    #[serde(default)]
    pub associations: BTreeMap<String, Association>,
    /// Users Tumbler has set a credential for and not deleted since: the
    /// only users it ever deletes.
    #[serde(default)]
    pub owned_users: BTreeSet<String>,
    /// ACLs Tumbler has created and not deleted since: the only ACLs it
    /// ever deletes.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub owned_acls: BTreeSet<Acl>,
    /// The outcome of the last ACL sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_sync: Option<AclSync>,
}

/// What the last sync of a cluster's ACLs did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AclSync {
    pub last_sync_ms: i64,
    /// How many ACLs the policies compile to on this cluster.
    pub wanted: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Policy statements that could not be compiled as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// Associated; the broker has not been told yet.
    Pending,
    /// The broker holds the credential of `synced_version`.
    Synced,
    /// The last attempt failed (`last_error`); the reconciler retries.
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "PENDING",
            SyncStatus::Synced => "SYNCED",
            SyncStatus::Failed => "FAILED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    pub username: String,
    pub associated_ms: i64,
    pub status: SyncStatus,
    /// The secret version whose password the broker holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Cluster {
    pub fn arn(region: &str, account: &str, name: &str, id: &str) -> String {
        format!("arn:aws:kafka:{region}:{account}:cluster/{name}/{id}")
    }

    pub fn uses_tls(&self) -> bool {
        self.security_protocol == "SASL_SSL"
    }

    /// How to reach it: TLS trusting its CA (or the system's roots).
    pub fn target(&self) -> Result<Target, String> {
        let tls = if self.uses_tls() {
            Some(Arc::new(tls_config(self.ca_pem.as_deref())?))
        } else {
            None
        };
        Ok(Target {
            bootstrap_servers: self.bootstrap_servers.clone(),
            tls,
        })
    }
}

/// A TLS client configuration trusting `ca_pem`, or the system's roots.
pub fn tls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    tumbler_rotation::client_tls_config(ca_pem.map(str::as_bytes), "the CA certificate")
}
