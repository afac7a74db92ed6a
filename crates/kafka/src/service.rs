//! Kafka clusters registered with Tumbler, MSK's SCRAM association API over
//! them, and the sync that keeps each cluster's SCRAM-SHA-512 users equal
//! to the AWSCURRENT values of the secrets associated with it.
//!
//! Two APIs on the same endpoint:
//! - Tumbler's own, JSON with `X-Amz-Target: TumblerKafka.<Operation>`,
//!   signed for `tumbler`, IAM actions `tumbler:<Operation>`:
//!   RegisterCluster, DescribeCluster, ListClusters, DeregisterCluster;
//! - MSK's REST-JSON, signed for `kafka`, IAM actions `kafka:<Operation>`:
//!   BatchAssociateScramSecret, BatchDisassociateScramSecret,
//!   ListScramSecrets and GetBootstrapBrokers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tumbler_secrets::{Ctx, SecretsService};
use tumbler_store::{AuditRecord, ResourceRow, Store, StoreError, Write};
use tumbler_types::SensitiveString;
use tumbler_wire::AwsError;

use crate::client::{Connection, KafkaError, SCRAM_SHA_512, Target, codes};
use crate::cluster::{Association, Cluster, KIND, SyncStatus};
use crate::secret::ScramSecret;

/// The principal of the service's own Secrets Manager calls.
pub const SERVICE_PRINCIPAL: &str = "tumbler-kafka";
pub const DEFAULT_ITERATIONS: u32 = 8192;
/// MSK's limits.
pub const MAX_SECRETS_PER_CALL: usize = 10;
pub const MAX_USERS_PER_CLUSTER: usize = 1000;
/// MSK's errorCode for a secret it cannot associate.
const INVALID_SECRET: &str = "InvalidSecretArn";
/// How a sync's read of a secret that no longer exists begins.
const GONE: &str = "ResourceNotFoundException:";
/// Users per AlterUserScramCredentials request.
const ALTER_BATCH: usize = 100;
/// How long the ACL sync waits after an IAM change for the rest of its burst.
const POLICY_SETTLE: Duration = Duration::from_millis(20);
/// The longest one sync may talk to a cluster.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Who may do what: answered by the identity layer for the caller.
pub use tumbler_secrets::ActionAuthorizer as KafkaAuthorizer;

/// One call's caller.
pub struct KafkaCtx {
    pub account: String,
    pub region: String,
    pub now: jiff::Timestamp,
    pub authorizer: Arc<dyn KafkaAuthorizer>,
    /// The same caller, for the secrets a call names.
    pub secrets_authorizer: Arc<dyn tumbler_secrets::Authorizer>,
}

/// What one sync did, for the audit trail.
pub struct SyncReport<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub cluster_arn: &'a str,
    /// (secret ARN, username, None if synced or the error).
    pub secrets: Vec<(String, String, Option<String>)>,
    /// Users whose credential was deleted.
    pub deleted: Vec<String>,
    /// Set when the sync was of the cluster's ACLs (then `secrets` and
    /// `deleted` are empty).
    pub acls: Option<&'a AclReport>,
}

/// What one ACL sync changed on the brokers.
#[derive(Default)]
pub struct AclReport {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// (ACL, the broker's error).
    pub failed: Vec<(String, String)>,
    /// Why the sync failed, wholly or in part.
    pub error: Option<String>,
}

pub type SyncAudit = dyn Fn(&SyncReport<'_>) -> Option<AuditRecord> + Send + Sync;

pub struct KafkaService {
    secrets: Arc<SecretsService>,
    /// The policies the ACLs are compiled from.
    pub(crate) identity: Arc<tumbler_identity::Identity>,
    pub(crate) store: Arc<dyn Store>,
    runtime: tokio::runtime::Handle,
    audit: Arc<SyncAudit>,
    /// One sync at a time per cluster, so a later value always lands last.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Secrets whose AWSCURRENT moved, for the sync task.
    changed: tokio::sync::mpsc::UnboundedSender<String>,
    changed_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    /// Raised on every IAM change: the ACL sync recompiles.
    policies_changed: Arc<tokio::sync::Notify>,
    /// Registered cluster ARNs by account, and when they were read: the
    /// token endpoint asks on every token.
    cluster_index: Mutex<Option<ClusterIndex>>,
}

type ClusterIndex = (std::time::Instant, HashMap<String, Vec<String>>);

/// How long the cluster index is trusted (a cluster another node
/// registered counts after at most this long; this node's at once).
const CLUSTER_INDEX_TTL: Duration = Duration::from_secs(5);

pub const OPERATIONS: &[&str] = &[
    "RegisterCluster",
    "DescribeCluster",
    "ListClusters",
    "DeregisterCluster",
];

pub fn is_read_only(op: &str) -> bool {
    matches!(
        op,
        "DescribeCluster" | "ListClusters" | "ListScramSecrets" | "GetBootstrapBrokers"
    )
}

/// MSK's REST routes: (operation, cluster ARN) for a method and path, or
/// None if the path is not one of them.
pub fn route_rest(method: &http::Method, path: &str) -> Option<Result<(&'static str, String), AwsError>> {
    let rest = path.strip_prefix("/v1/clusters/")?;
    let (arn, tail) = rest.rsplit_once('/')?;
    let arn = percent_encoding::percent_decode_str(arn)
        .decode_utf8()
        .ok()?
        .into_owned();
    let op = match (method.as_str(), tail) {
        ("POST", "scram-secrets") => "BatchAssociateScramSecret",
        ("PATCH", "scram-secrets") => "BatchDisassociateScramSecret",
        ("GET", "scram-secrets") => "ListScramSecrets",
        ("GET", "bootstrap-brokers") => "GetBootstrapBrokers",
        (_, "scram-secrets" | "bootstrap-brokers") => {
            return Some(Err(AwsError::custom(
                "BadRequestException",
                405,
                format!("{method} is not an operation on {tail}."),
            )));
        }
        _ => return None,
    };
    Some(Ok((op, arn)))
}

fn bad_request(message: impl Into<String>) -> AwsError {
    AwsError::custom("BadRequestException", 400, message)
}

fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::custom("NotFoundException", 404, message)
}

fn store_err(e: StoreError) -> AwsError {
    tracing::error!(error = %e, "kafka registry store failure");
    AwsError::internal("An internal error occurred. Try the request again.")
}

/// The request's JSON (an empty body is `{}`); errors never echo a value.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    tumbler_wire::decode(body)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RegisterRequest {
    cluster_name: Option<String>,
    bootstrap_servers: Option<Vec<String>>,
    security_protocol: Option<String>,
    admin_secret_id: Option<String>,
    ca_certificate: Option<String>,
    scram_iterations: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ClusterRequest {
    cluster_arn: Option<String>,
    force: Option<bool>,
}

#[derive(Deserialize, Default)]
struct ListRequest {}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SecretListRequest {
    secret_arn_list: Option<Vec<String>>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn unprocessed(arn: &str, code: &str, message: impl Into<String>) -> Value {
    json!({"secretArn": arn, "errorCode": code, "errorMessage": message.into()})
}

impl KafkaService {
    pub fn new(
        secrets: Arc<SecretsService>,
        identity: Arc<tumbler_identity::Identity>,
        store: Arc<dyn Store>,
        runtime: tokio::runtime::Handle,
        audit: Arc<SyncAudit>,
    ) -> Self {
        let (changed, changed_rx) = tokio::sync::mpsc::unbounded_channel();
        let policies_changed = Arc::new(tokio::sync::Notify::new());
        let notify = policies_changed.clone();
        identity.on_change(move || notify.notify_one());
        KafkaService {
            secrets,
            identity,
            policies_changed,
            cluster_index: Mutex::new(None),
            store,
            runtime,
            audit,
            locks: Mutex::new(HashMap::new()),
            changed,
            changed_rx: Mutex::new(Some(changed_rx)),
        }
    }

    /// A secret's AWSCURRENT moved: if it is associated with a cluster, the
    /// sync task pushes the new credential. Called inside the secrets
    /// service, so it only queues.
    pub fn current_changed(&self, secret_arn: &str) {
        let _ = self.changed.send(secret_arn.to_owned());
    }

    /// Tumbler's own API (`TumblerKafka.<op>`). Runs on a blocking thread.
    pub fn call(&self, ctx: &KafkaCtx, op: &str, body: &[u8]) -> Result<Vec<u8>, AwsError> {
        let out = match op {
            "RegisterCluster" => self.register(ctx, parse(body)?)?,
            "DescribeCluster" => {
                let r: ClusterRequest = parse(body)?;
                let (row, cluster) = self.find(ctx, r.cluster_arn.as_deref(), "tumbler:DescribeCluster")?;
                json!({"Cluster": describe(&row, &cluster, true)})
            }
            "ListClusters" => {
                let _: ListRequest = parse(body)?;
                ctx.authorizer.authorize("tumbler:ListClusters", "*")?;
                let rows = self
                    .store
                    .resources(KIND, &ctx.account, &ctx.region)
                    .map_err(store_err)?;
                let list: Vec<Value> = rows
                    .iter()
                    .filter_map(|row| Some(describe(row, &serde_json::from_str(&row.meta).ok()?, false)))
                    .collect();
                json!({"Clusters": list})
            }
            "DeregisterCluster" => self.deregister(ctx, parse(body)?)?,
            _ => {
                return Err(AwsError::unknown_operation(format!(
                    "TumblerKafka has no operation {op}."
                )));
            }
        };
        Ok(out.to_string().into_bytes())
    }

    /// MSK's REST API. Runs on a blocking thread.
    pub fn rest_call(
        &self,
        ctx: &KafkaCtx,
        op: &str,
        cluster_arn: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, AwsError> {
        let action = format!("kafka:{op}");
        let (row, cluster) = self.find_rest(ctx, cluster_arn, &action)?;
        let out = match op {
            "BatchAssociateScramSecret" => self.associate(ctx, row, parse(body)?)?,
            "BatchDisassociateScramSecret" => self.disassociate(row, parse(body)?)?,
            "ListScramSecrets" => list_scram_secrets(&cluster, query)?,
            "GetBootstrapBrokers" => {
                let servers = cluster.bootstrap_servers.join(",");
                json!({"bootstrapBrokerStringSaslScram": servers})
            }
            _ => return Err(bad_request(format!("Unknown operation {op}."))),
        };
        Ok(out.to_string().into_bytes())
    }

    pub(crate) fn service_ctx(&self, account: &str, region: &str) -> Ctx {
        Ctx::new(
            account.to_owned(),
            region.to_owned(),
            SERVICE_PRINCIPAL,
            jiff::Timestamp::now(),
            Arc::new(tumbler_secrets::AllowAll),
        )
    }

    fn secrets_call(&self, ctx: &Ctx, op: &str, body: Value) -> Result<Value, AwsError> {
        let out = self.secrets.call(&mut ctx.clone(), op, body.to_string().as_bytes())?;
        serde_json::from_slice(&out).map_err(|_| AwsError::internal("a Secrets Manager answer did not parse"))
    }

    /// The caller's own view of a secret: authorized as the caller.
    fn caller_secrets_ctx(&self, ctx: &KafkaCtx) -> Ctx {
        Ctx::new(
            ctx.account.clone(),
            ctx.region.clone(),
            SERVICE_PRINCIPAL,
            ctx.now,
            ctx.secrets_authorizer.clone(),
        )
    }

    /// A cluster by ARN or name, authorized before it is looked up.
    fn find(&self, ctx: &KafkaCtx, id: Option<&str>, action: &str) -> Result<(ResourceRow, Cluster), AwsError> {
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| AwsError::invalid_parameter("ClusterArn is required (an ARN or a cluster name)."))?;
        let missing = || AwsError::resource_not_found(format!("Tumbler has no registered Kafka cluster {id}."));
        if id.starts_with("arn:") {
            ctx.authorizer.authorize(action, id)?;
            let row = self.store.resource(id).map_err(store_err)?.filter(|r| r.kind == KIND);
            let row = row.ok_or_else(missing)?;
            let cluster = serde_json::from_str(&row.meta).map_err(|_| AwsError::internal("a cluster did not parse"))?;
            return Ok((row, cluster));
        }
        // By name: authorized on every cluster of that name, whatever its id.
        ctx.authorizer
            .authorize(action, &Cluster::arn(&ctx.region, &ctx.account, id, "*"))?;
        let row = self
            .store
            .resources(KIND, &ctx.account, &ctx.region)
            .map_err(store_err)?
            .into_iter()
            .find(|r| r.name == id)
            .ok_or_else(missing)?;
        let cluster = serde_json::from_str(&row.meta).map_err(|_| AwsError::internal("a cluster did not parse"))?;
        Ok((row, cluster))
    }

    /// MSK's lookups answer NotFoundException.
    fn find_rest(&self, ctx: &KafkaCtx, arn: &str, action: &str) -> Result<(ResourceRow, Cluster), AwsError> {
        if !arn.starts_with("arn:aws:kafka:") {
            return Err(bad_request(format!("{arn} is not a Kafka cluster ARN.")));
        }
        self.find(ctx, Some(arn), action).map_err(|e| {
            if e.code == "ResourceNotFoundException" {
                not_found(e.message)
            } else if e.code == "AccessDeniedException" {
                AwsError::custom("ForbiddenException", 403, e.message)
            } else {
                e
            }
        })
    }

    fn register(&self, ctx: &KafkaCtx, r: RegisterRequest) -> Result<Value, AwsError> {
        let bad = |m: String| AwsError::invalid_parameter(m);
        let name = r
            .cluster_name
            .clone()
            .filter(|n| {
                (1..=64).contains(&n.len())
                    && n.starts_with(|c: char| c.is_ascii_alphabetic())
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .ok_or_else(|| {
                bad("ClusterName is required: 1-64 letters, digits and hyphens, starting with a letter.".into())
            })?;
        let id = uuid::Uuid::new_v4().to_string();
        let arn = Cluster::arn(&ctx.region, &ctx.account, &name, &id);
        ctx.authorizer.authorize(
            "tumbler:RegisterCluster",
            &Cluster::arn(&ctx.region, &ctx.account, &name, "*"),
        )?;
        let servers = r.bootstrap_servers.clone().unwrap_or_default();
        if servers.is_empty() || servers.len() > 32 {
            return Err(bad("BootstrapServers is required: 1 to 32 host:port addresses.".into()));
        }
        for s in &servers {
            let ok = s.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && host.len() <= 253
                    && !host.contains(|c: char| c.is_whitespace() || c == ',' || c == '/')
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                return Err(bad(format!(
                    "BootstrapServers: {s:?} is not host:port (a name or address, and a port 1-65535)."
                )));
            }
        }
        let protocol = r.security_protocol.clone().unwrap_or_else(|| "SASL_SSL".into());
        if protocol != "SASL_SSL" && protocol != "SASL_PLAINTEXT" {
            return Err(bad("SecurityProtocol must be SASL_SSL or SASL_PLAINTEXT.".into()));
        }
        let iterations = r.scram_iterations.unwrap_or(DEFAULT_ITERATIONS);
        if !(tumbler_crypto::scram::MIN_ITERATIONS..=tumbler_crypto::scram::MAX_ITERATIONS).contains(&iterations) {
            return Err(bad("ScramIterations must be 4096 to 16384 (Kafka's limits).".into()));
        }
        if r.ca_certificate.is_some() && protocol != "SASL_SSL" {
            return Err(bad("CaCertificate is for SASL_SSL clusters.".into()));
        }
        if let Some(pem) = &r.ca_certificate {
            crate::cluster::tls_config(Some(pem)).map_err(|e| bad(format!("CaCertificate: {e}")))?;
        }
        let admin_id = r.admin_secret_id.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            bad("AdminSecretId is required: the secret of the user Tumbler administers Kafka as.".into())
        })?;
        // Read as the caller: registering names a secret the caller may read.
        let admin = self.secrets_call(
            &self.caller_secrets_ctx(ctx),
            "GetSecretValue",
            json!({"SecretId": admin_id}),
        )?;
        let admin_arn = admin.get("ARN").and_then(Value::as_str).unwrap_or_default().to_owned();
        let admin_value = ScramSecret::parse(admin.get("SecretString").and_then(Value::as_str).unwrap_or_default())
            .map_err(|e| bad(format!("AdminSecretId: {e}")))?;
        let cluster = Cluster {
            name: name.clone(),
            id: id.clone(),
            bootstrap_servers: servers,
            security_protocol: protocol,
            admin_secret_arn: admin_arn,
            ca_pem: r.ca_certificate.clone(),
            iterations,
            associations: BTreeMap::new(),
            owned_users: BTreeSet::new(),
            owned_acls: BTreeSet::new(),
            acl_sync: None,
        };
        // Proven before it is stored: the admin logs in and may describe
        // SCRAM users (DESCRIBE on CLUSTER).
        let target = cluster.target().map_err(bad)?;
        let admin_user = admin_value.username.clone();
        self.block(async {
            let mut conn = Connection::open(&target, &admin_value.username, &admin_value.password).await?;
            conn.describe_scram(Some(std::slice::from_ref(&admin_user))).await?;
            Ok(())
        })
        .map_err(|e| {
            AwsError::invalid_request(format!(
                "Tumbler cannot administer the cluster as {}: {e}",
                admin_value.username
            ))
        })?;
        if self
            .store
            .resources(KIND, &ctx.account, &ctx.region)
            .map_err(store_err)?
            .iter()
            .any(|row| row.name == name)
        {
            return Err(AwsError::custom(
                "ResourceExistsException",
                400,
                format!("A Kafka cluster named {name} is already registered."),
            ));
        }
        let row = ResourceRow {
            arn: arn.clone(),
            kind: KIND.into(),
            account: ctx.account.clone(),
            region: ctx.region.clone(),
            name,
            created_ms: ctx.now.as_millisecond(),
            revision: 0,
            meta: serde_json::to_string(&cluster).unwrap_or_default(),
        };
        match self.store.apply(vec![Write::CreateResource(row.clone())]) {
            Ok(_) => {}
            Err(StoreError::Duplicate(_) | StoreError::NameExists | StoreError::Conflict) => {
                return Err(AwsError::custom(
                    "ResourceExistsException",
                    400,
                    format!("A Kafka cluster named {} is already registered.", cluster.name),
                ));
            }
            Err(e) => return Err(store_err(e)),
        }
        self.forget_cluster_index();
        self.sync_acls(&row.arn);
        let (row, cluster) = match self.store.resource(&row.arn).map_err(store_err)? {
            Some(now) => {
                let cluster = serde_json::from_str(&now.meta).unwrap_or(cluster);
                (now, cluster)
            }
            None => (row, cluster),
        };
        Ok(json!({"Cluster": describe(&row, &cluster, true)}))
    }

    fn deregister(&self, ctx: &KafkaCtx, r: ClusterRequest) -> Result<Value, AwsError> {
        let (row, cluster) = self.find(ctx, r.cluster_arn.as_deref(), "tumbler:DeregisterCluster")?;
        if !cluster.associations.is_empty() && r.force != Some(true) {
            return Err(AwsError::invalid_request(format!(
                "The cluster has {} associated SCRAM secrets: disassociate them first (their users are then deleted), \
                 or pass Force to forget the cluster and leave its users as they are.",
                cluster.associations.len()
            )));
        }
        let mut described = describe(&row, &cluster, false);
        // Its ACLs go with it, unless it is forced out of a cluster that
        // can't be reached.
        let lock = self.lock_for(&row.arn);
        let _no_sync_meanwhile = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (row, cluster) = self.find(ctx, Some(&row.arn), "tumbler:DeregisterCluster")?;
        match self.remove_acls(&row, &cluster) {
            Ok(removed) => described["Acls"]["Removed"] = json!(removed),
            Err(e) if r.force == Some(true) => described["Acls"]["LeftBehind"] = json!(e),
            Err(e) => {
                return Err(AwsError::invalid_request(format!(
                    "The ACLs Tumbler created on the cluster could not be removed ({e}); \
                     try again, or pass Force to forget the cluster and leave them."
                )));
            }
        }
        match self.store.apply(vec![Write::DeleteResource { arn: row.arn.clone() }]) {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(store_err(e)),
        }
        self.forget_cluster_index();
        Ok(json!({"Cluster": described}))
    }

    fn associate(&self, ctx: &KafkaCtx, row: ResourceRow, r: SecretListRequest) -> Result<Value, AwsError> {
        let arns = check_secret_list(r.secret_arn_list)?;
        let caller = self.caller_secrets_ctx(ctx);
        let mut failed = Vec::new();
        let mut accepted: Vec<(String, String)> = Vec::new();
        for given in &arns {
            match self.check_associable(ctx, &caller, &row, given) {
                Ok((arn, username)) => accepted.push((arn, username)),
                Err((code, message)) => failed.push(unprocessed(given, code, message)),
            }
        }
        // Added in one write, checked against the stored document: users
        // per cluster, one secret per username.
        let mut added = Vec::new();
        self.update(&row.arn, |c| {
            added.clear();
            let mut refused = Vec::new();
            for (arn, username) in &accepted {
                if let Some(a) = c.associations.get(arn) {
                    if a.username != *username {
                        refused.push(unprocessed(
                            arn,
                            "SecretAlreadyAssociated",
                            "The secret is already associated with this cluster.",
                        ));
                    }
                    continue;
                }
                if let Some((other, _)) = c.associations.iter().find(|(_, a)| a.username == *username) {
                    refused.push(unprocessed(
                        arn,
                        "DuplicateUsername",
                        format!("User {username} is already associated with this cluster through {other}."),
                    ));
                    continue;
                }
                if c.associations.len() >= MAX_USERS_PER_CLUSTER {
                    refused.push(unprocessed(
                        arn,
                        "TooManyUsers",
                        format!("A cluster has at most {MAX_USERS_PER_CLUSTER} associated SCRAM secrets."),
                    ));
                    continue;
                }
                c.associations.insert(
                    arn.clone(),
                    Association {
                        username: username.clone(),
                        associated_ms: now_ms(),
                        status: SyncStatus::Pending,
                        synced_version: None,
                        last_sync_ms: None,
                        last_error: None,
                    },
                );
                added.push(arn.clone());
            }
            refused
        })
        .map(|refused| failed.extend(refused))?;
        if !added.is_empty() {
            // The broker learns at once; a failure is kept on the
            // association (the reconciler retries), as MSK's sync is.
            let only: BTreeSet<String> = added.into_iter().collect();
            self.sync(&row.arn, Scope::Only(&only));
        }
        Ok(json!({"clusterArn": row.arn, "unprocessedScramSecrets": failed}))
    }

    /// MSK's rules for one secret: (its ARN, its username) or
    /// (errorCode, errorMessage). MSK answers every such refusal with the
    /// code `InvalidSecretArn` (tools match on it); the message says which
    /// rule, in MSK's words where they are known.
    fn check_associable(
        &self,
        ctx: &KafkaCtx,
        caller: &Ctx,
        cluster: &ResourceRow,
        given: &str,
    ) -> Result<(String, String), (&'static str, String)> {
        let refuse = |message: String| (INVALID_SECRET, message);
        let parts: Vec<&str> = given.splitn(7, ':').collect();
        if parts.len() != 7 || parts[2] != "secretsmanager" || parts[5] != "secret" {
            return Err(refuse(format!("{given} is not a secret ARN.")));
        }
        if parts[3] != cluster.region || parts[4] != cluster.account {
            return Err(refuse(
                "The secret must be in the same account and region as the cluster.".into(),
            ));
        }
        // Read as the caller: associating exposes the credential to the
        // cluster, so the caller must be able to read it.
        let value = self
            .secrets_call(caller, "GetSecretValue", json!({"SecretId": given}))
            .map_err(|e| {
                refuse(format!(
                    "Amazon MSK wasn't able to access the provided secret: {}: {}",
                    e.code, e.message
                ))
            })?;
        let arn = value.get("ARN").and_then(Value::as_str).unwrap_or(given).to_owned();
        let name = value.get("Name").and_then(Value::as_str).unwrap_or_default();
        if !name.starts_with("AmazonMSK_") {
            return Err(refuse(
                "The provided secret arn cannot be used with Amazon MSK. Secret names must have the prefix \
                 'AmazonMSK_'."
                    .into(),
            ));
        }
        let described = self
            .secrets_call(
                &self.service_ctx(&ctx.account, &ctx.region),
                "DescribeSecret",
                json!({"SecretId": arn}),
            )
            .map_err(|e| refuse(format!("{}: {}", e.code, e.message)))?;
        let key = described.get("KmsKeyId").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() || key == "alias/aws/secretsmanager" || key.ends_with(":alias/aws/secretsmanager") {
            return Err(refuse(
                "The secret is encrypted with the default key aws/secretsmanager; associate only secrets \
                 encrypted with a customer managed KMS key."
                    .into(),
            ));
        }
        let secret = ScramSecret::parse(value.get("SecretString").and_then(Value::as_str).unwrap_or_default())
            .map_err(|e| refuse(format!("The secret's value is not usable: {e}.")))?;
        Ok((arn, secret.username))
    }

    fn disassociate(&self, row: ResourceRow, r: SecretListRequest) -> Result<Value, AwsError> {
        let arns = check_secret_list(r.secret_arn_list)?;
        let failed = self.update(&row.arn, |c| {
            let mut failed = Vec::new();
            for arn in &arns {
                // Named by full ARN, as MSK requires.
                match c.associations.remove(arn) {
                    Some(_) => {}
                    None => failed.push(unprocessed(
                        arn,
                        "SecretNotAssociated",
                        "The secret is not associated with this cluster.",
                    )),
                }
            }
            failed
        })?;
        // Deletes the users no association holds any more.
        self.sync(&row.arn, Scope::Only(&BTreeSet::new()));
        Ok(json!({"clusterArn": row.arn, "unprocessedScramSecrets": failed}))
    }

    /// Read-modify-write of a cluster's document, retried on a concurrent
    /// change. `change` returns what the caller needs from the last try.
    fn update<T>(&self, arn: &str, change: impl FnMut(&mut Cluster) -> T) -> Result<T, AwsError> {
        self.update_doc(arn, Audit::None, change)
    }

    /// `update`, with the SCRAM sync's audit event in the same write.
    fn update_with_audit(&self, arn: &str, change: impl FnMut(&mut Cluster)) -> Result<(), AwsError> {
        self.update_doc(arn, Audit::Scram, change)
    }

    pub(crate) fn update_doc<T>(
        &self,
        arn: &str,
        audit: Audit<'_>,
        mut change: impl FnMut(&mut Cluster) -> T,
    ) -> Result<T, AwsError> {
        for _ in 0..20 {
            let row = self
                .store
                .resource(arn)
                .map_err(store_err)?
                .ok_or_else(|| not_found("The cluster was deregistered."))?;
            let mut cluster: Cluster =
                serde_json::from_str(&row.meta).map_err(|_| AwsError::internal("a cluster did not parse"))?;
            let before = cluster.clone();
            let out = change(&mut cluster);
            if cluster == before {
                return Ok(out);
            }
            let mut report = SyncReport {
                account: &row.account,
                region: &row.region,
                cluster_arn: &row.arn,
                secrets: Vec::new(),
                deleted: Vec::new(),
                acls: None,
            };
            let event = match audit {
                Audit::None => None,
                Audit::Scram => {
                    report.secrets = sync_changes(&before.associations, &cluster.associations);
                    report.deleted = before.owned_users.difference(&cluster.owned_users).cloned().collect();
                    (self.audit)(&report)
                }
                Audit::Acls(acls) => {
                    report.acls = Some(acls);
                    (self.audit)(&report)
                }
            };
            let next = ResourceRow {
                meta: serde_json::to_string(&cluster).unwrap_or_default(),
                ..row
            };
            match self.store.apply_with_event(vec![Write::UpdateResource(next)], event) {
                Ok(_) => return Ok(out),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(AwsError::custom(
            "TooManyRequestsException",
            429,
            "The cluster is changing too fast; try again.",
        ))
    }

    pub(crate) fn block<T>(&self, work: impl Future<Output = Result<T, KafkaError>>) -> Result<T, KafkaError> {
        match self.runtime.block_on(tokio::time::timeout(SYNC_TIMEOUT, work)) {
            Ok(r) => r,
            Err(_) => Err(KafkaError::Connect(format!(
                "the cluster did not answer within {} seconds",
                SYNC_TIMEOUT.as_secs()
            ))),
        }
    }

    pub(crate) fn lock_for(&self, cluster_arn: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(cluster_arn.to_owned()).or_default().clone()
    }
}

/// 1 to 10 secret ARNs.
fn check_secret_list(list: Option<Vec<String>>) -> Result<Vec<String>, AwsError> {
    let list = list.unwrap_or_default();
    if list.is_empty() {
        return Err(bad_request("secretArnList is required: 1 to 10 secret ARNs."));
    }
    if list.len() > MAX_SECRETS_PER_CALL {
        return Err(bad_request(format!(
            "secretArnList has {} entries; at most {MAX_SECRETS_PER_CALL} secrets per call.",
            list.len()
        )));
    }
    if let Some(bad) = list.iter().find(|a| a.is_empty() || a.len() > 2048) {
        return Err(bad_request(format!(
            "secretArnList holds an invalid ARN ({} characters).",
            bad.len()
        )));
    }
    Ok(list)
}

fn list_scram_secrets(cluster: &Cluster, query: Option<&str>) -> Result<Value, AwsError> {
    let mut max = 100usize;
    let mut after: Option<String> = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "maxResults" => {
                max = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| bad_request("maxResults must be 1 to 100."))?
            }
            "nextToken" => {
                let decoded = data_encoding::BASE64URL_NOPAD
                    .decode(v.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| bad_request("nextToken is not a token this API gave."))?;
                after = Some(decoded);
            }
            _ => {}
        }
    }
    let mut arns = cluster
        .associations
        .keys()
        .filter(|k| after.as_ref().is_none_or(|a| *k > a));
    let page: Vec<&String> = arns.by_ref().take(max).collect();
    let mut out = json!({"secretArnList": page});
    if arns.next().is_some()
        && let Some(last) = page.last()
    {
        out["nextToken"] = json!(data_encoding::BASE64URL_NOPAD.encode(last.as_bytes()));
    }
    Ok(out)
}

/// The cluster as Tumbler's API shows it; `associations` adds each
/// secret's sync state (`tumbler kafka status`).
fn describe(row: &ResourceRow, c: &Cluster, associations: bool) -> Value {
    let counts = |s: SyncStatus| c.associations.values().filter(|a| a.status == s).count();
    let mut out = json!({
        "ClusterName": c.name,
        "ClusterArn": row.arn,
        "BootstrapServers": c.bootstrap_servers,
        "SecurityProtocol": c.security_protocol,
        "AdminSecretArn": c.admin_secret_arn,
        "ScramIterations": c.iterations,
        "CreationTime": row.created_ms as f64 / 1000.0,
        "ScramSecretCount": c.associations.len(),
        "SyncSummary": {
            "Synced": counts(SyncStatus::Synced),
            "Pending": counts(SyncStatus::Pending),
            "Failed": counts(SyncStatus::Failed),
        },
    });
    if c.ca_pem.is_some() {
        out["CaCertificate"] = json!("(set)");
    }
    let mut acls = json!({"Owned": c.owned_acls.len()});
    if let Some(sync) = &c.acl_sync {
        acls["Wanted"] = json!(sync.wanted);
        acls["LastSyncDate"] = json!(sync.last_sync_ms as f64 / 1000.0);
        if let Some(e) = &sync.error {
            acls["LastError"] = json!(e);
        }
        if !sync.notes.is_empty() {
            acls["Notes"] = json!(sync.notes);
        }
    }
    if associations {
        acls["OwnedAcls"] = json!(c.owned_acls.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    }
    out["Acls"] = acls;
    if associations {
        let list: Vec<Value> = c
            .associations
            .iter()
            .map(|(arn, a)| {
                let mut v = json!({
                    "SecretArn": arn,
                    "Username": a.username,
                    "SyncStatus": a.status.as_str(),
                    "AssociatedDate": a.associated_ms as f64 / 1000.0,
                });
                if let Some(version) = &a.synced_version {
                    v["SyncedVersionId"] = json!(version);
                }
                if let Some(ms) = a.last_sync_ms {
                    v["LastSyncDate"] = json!(ms as f64 / 1000.0);
                }
                if let Some(e) = &a.last_error {
                    v["LastError"] = json!(e);
                }
                v
            })
            .collect();
        out["ScramSecrets"] = json!(list);
    }
    out
}

/// What a sync changed, for its audit event: (secret ARN, username, error)
/// for each association it touched, and each it removed.
fn sync_changes(
    before: &BTreeMap<String, Association>,
    after: &BTreeMap<String, Association>,
) -> Vec<(String, String, Option<String>)> {
    let touched = after
        .iter()
        .filter(|(k, a)| before.get(*k).map(|b| b.last_sync_ms) != Some(a.last_sync_ms))
        .map(|(k, a)| {
            let error = (a.status == SyncStatus::Failed).then(|| a.last_error.clone().unwrap_or_default());
            (k.clone(), a.username.clone(), error)
        });
    let removed = before.iter().filter(|(k, _)| !after.contains_key(*k)).map(|(k, a)| {
        (
            k.clone(),
            a.username.clone(),
            Some("the secret was deleted; the association is removed".to_owned()),
        )
    });
    touched.chain(removed).collect()
}

/// Which associations a sync pushes.
/// Which audit event a cluster document's change is written with.
pub(crate) enum Audit<'a> {
    None,
    /// `SyncScramSecrets`, from the associations' change.
    Scram,
    /// `SyncKafkaAcls`.
    Acls(&'a AclReport),
}

pub enum Scope<'a> {
    /// These secrets (and every pending deletion).
    Only(&'a BTreeSet<String>),
    /// Everything that differs from the broker: the reconciler.
    Reconcile,
}

/// A credential to push: the association's secret, its user, the version.
struct Wanted {
    secret_arn: String,
    username: String,
    version: String,
    password: SensitiveString,
}

impl KafkaService {
    /// Bring one cluster's users in line with its associations. Failures
    /// are recorded on the associations (and in the audit trail), not
    /// returned: the reconciler tries again.
    pub fn sync(&self, cluster_arn: &str, scope: Scope<'_>) {
        self.with_cluster(cluster_arn, |row, cluster| {
            let (target, admin) = match self.admin_of(&row, &cluster) {
                Ok(a) => a,
                Err(e) => return self.record_failure(&row, &cluster, &scope, &e),
            };
            let ctx = self.service_ctx(&row.account, &row.region);
            match self.block(self.push(&ctx, &cluster, &target, &admin, &scope)) {
                Ok((pushed, read_failures, deleted)) => self.record(&row, pushed, read_failures, deleted),
                Err(e) => self.record_failure(&row, &cluster, &scope, &e.to_string()),
            }
        });
    }

    /// Run `work` on a cluster as stored, one sync at a time per cluster
    /// (so a later value always lands last); nothing if it is gone.
    pub(crate) fn with_cluster(&self, cluster_arn: &str, work: impl FnOnce(ResourceRow, Cluster)) {
        let lock = self.lock_for(cluster_arn);
        let _one_at_a_time = lock.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(Some(row)) = self.store.resource(cluster_arn) else {
            return;
        };
        let Ok(cluster) = serde_json::from_str::<Cluster>(&row.meta) else {
            return;
        };
        work(row, cluster);
    }

    /// Where a cluster's brokers are, and the admin user Tumbler logs in as.
    pub(crate) fn admin_of(&self, row: &ResourceRow, cluster: &Cluster) -> Result<(Target, ScramSecret), String> {
        let target = cluster.target()?;
        let ctx = self.service_ctx(&row.account, &row.region);
        let (_, admin) = self
            .current_value(&ctx, &cluster.admin_secret_arn)
            .map_err(|e| format!("the admin secret: {e}"))?;
        Ok((target, admin))
    }

    /// Talk to the cluster: what was pushed (secret, user, version, outcome),
    /// secrets that could not be read, and users deleted.
    #[allow(clippy::type_complexity)]
    async fn push(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        target: &Target,
        admin: &ScramSecret,
        scope: &Scope<'_>,
    ) -> Result<(Vec<(Wanted, Option<String>)>, Vec<(String, String)>, Vec<String>), KafkaError> {
        let mut conn = Connection::open(target, &admin.username, &admin.password).await?;
        let present: Option<BTreeSet<String>> = match scope {
            Scope::Reconcile => Some(
                conn.describe_scram(None)
                    .await?
                    .into_iter()
                    .filter(|u| u.code == codes::NONE && u.mechanisms.iter().any(|(m, _)| *m == SCRAM_SHA_512))
                    .map(|u| u.user)
                    .collect(),
            ),
            Scope::Only(_) => None,
        };
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut read_failures = Vec::new();
        let mut users_taken: BTreeMap<String, String> = BTreeMap::new();
        for (arn, a) in &cluster.associations {
            let in_scope = match scope {
                Scope::Only(only) => only.contains(arn),
                Scope::Reconcile => true,
            };
            if !in_scope {
                users_taken.insert(a.username.clone(), arn.clone());
                continue;
            }
            let (version, secret) = match self.current_value(ctx, arn) {
                Ok(v) => v,
                // Deleted for good: its user goes (below) and so does the
                // association (in `record`). A secret only scheduled for
                // deletion keeps both, as it can be restored.
                Err(e) if e.starts_with(GONE) => {
                    read_failures.push((arn.clone(), e));
                    continue;
                }
                Err(e) => {
                    read_failures.push((arn.clone(), e));
                    users_taken.insert(a.username.clone(), arn.clone());
                    continue;
                }
            };
            if let Some(other) = users_taken.get(&secret.username).filter(|o| *o != arn) {
                read_failures.push((
                    arn.clone(),
                    format!("user {} is already associated through {other}", secret.username),
                ));
                continue;
            }
            users_taken.insert(secret.username.clone(), arn.clone());
            let same = a.status == SyncStatus::Synced && a.username == secret.username;
            if matches!(scope, Scope::Only(_)) && same && a.synced_version.as_deref() == Some(&version) {
                // A rotation's setSecret already put this version there.
                continue;
            }
            if let Some(present) = &present {
                let up_to_date = a.status == SyncStatus::Synced
                    && a.username == secret.username
                    && present.contains(&secret.username)
                    && (a.synced_version.as_deref() == Some(&version)
                        || self.is_pending(ctx, arn, a.synced_version.as_deref()));
                if up_to_date {
                    continue;
                }
            }
            wanted.push(Wanted {
                secret_arn: arn.clone(),
                username: secret.username,
                version,
                password: secret.password,
            });
        }
        // Users Tumbler set and no association holds any more.
        let deletions: Vec<String> = cluster
            .owned_users
            .iter()
            .filter(|u| !users_taken.contains_key(*u) && !wanted.iter().any(|w| &w.username == *u))
            .cloned()
            .collect();
        let mut pushed = Vec::new();
        let mut deleted = Vec::new();
        let mut upserts = Vec::new();
        for w in &wanted {
            upserts.push(
                crate::scram::credential(&w.username, w.password.expose(), cluster.iterations)
                    .map_err(|e| KafkaError::Protocol(e.to_string()))?,
            );
        }
        let mut results: HashMap<String, (i16, Option<String>)> = HashMap::new();
        for chunk in upserts.chunks(ALTER_BATCH) {
            for r in conn.alter_scram(chunk, &[]).await? {
                results.insert(r.user, (r.code, r.message));
            }
        }
        for chunk in deletions.chunks(ALTER_BATCH) {
            for r in conn.alter_scram(&[], chunk).await? {
                // Already gone is as good as deleted.
                if r.code == codes::NONE || r.code == codes::RESOURCE_NOT_FOUND {
                    deleted.push(r.user);
                } else {
                    tracing::warn!(user = %r.user, code = r.code, "a Kafka user could not be deleted");
                }
            }
        }
        for w in wanted {
            let outcome = match results.get(&w.username) {
                Some((0, _)) => None,
                Some((code, message)) => Some(format!("Kafka error {code}: {}", message.clone().unwrap_or_default())),
                None => Some("Kafka did not answer for this user".to_owned()),
            };
            pushed.push((w, outcome));
        }
        Ok((pushed, read_failures, deleted))
    }

    /// Whether `version` is the AWSPENDING of a rotation still under way:
    /// its setSecret put that password on the broker, and finishSecret
    /// will make it current, so the reconciler leaves it alone. Once the
    /// rotation has given up, AWSCURRENT is put back.
    fn is_pending(&self, ctx: &Ctx, arn: &str, version: Option<&str>) -> bool {
        let Some(version) = version else { return false };
        let Ok(described) = self.secrets_call(ctx, "DescribeSecret", json!({"SecretId": arn})) else {
            return false;
        };
        let pending = described
            .pointer(&format!("/VersionIdsToStages/{version}"))
            .and_then(Value::as_array)
            .is_some_and(|stages| stages.iter().any(|s| s == "AWSPENDING"));
        let running = matches!(
            described
                .pointer("/TumblerRotationStatus/State")
                .and_then(Value::as_str),
            Some("Rotating" | "Retrying")
        );
        pending && running
    }

    /// A secret's AWSCURRENT version id and value.
    pub(crate) fn current_value(&self, ctx: &Ctx, arn: &str) -> Result<(String, ScramSecret), String> {
        let value = self
            .secrets_call(ctx, "GetSecretValue", json!({"SecretId": arn}))
            .map_err(|e| format!("{}: {}", e.code, e.message))?;
        let version = value
            .get("VersionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let secret = ScramSecret::parse(value.get("SecretString").and_then(Value::as_str).unwrap_or_default())?;
        Ok((version, secret))
    }

    fn record(
        &self,
        row: &ResourceRow,
        pushed: Vec<(Wanted, Option<String>)>,
        read_failures: Vec<(String, String)>,
        deleted: Vec<String>,
    ) {
        if pushed.is_empty() && read_failures.is_empty() && deleted.is_empty() {
            return;
        }
        let now = now_ms();
        let mut report: Vec<(String, String, Option<String>)> = Vec::new();
        let applied = self.update_with_audit(&row.arn, |c| {
            report.clear();
            for (w, outcome) in &pushed {
                let Some(a) = c.associations.get_mut(&w.secret_arn) else {
                    continue;
                };
                if outcome.is_some() && a.status == SyncStatus::Failed && &a.last_error == outcome {
                    continue;
                }
                a.last_sync_ms = Some(now);
                match outcome {
                    None => {
                        a.username = w.username.clone();
                        a.status = SyncStatus::Synced;
                        a.synced_version = Some(w.version.clone());
                        a.last_error = None;
                    }
                    Some(e) => {
                        a.status = SyncStatus::Failed;
                        a.last_error = Some(e.clone());
                    }
                }
                report.push((w.secret_arn.clone(), w.username.clone(), outcome.clone()));
            }
            for (w, outcome) in &pushed {
                if outcome.is_none() {
                    c.owned_users.insert(w.username.clone());
                }
            }
            for (arn, e) in &read_failures {
                if e.starts_with(GONE) {
                    if let Some(a) = c.associations.remove(arn) {
                        report.push((
                            arn.clone(),
                            a.username,
                            Some(format!("the association is removed: {e}")),
                        ));
                    }
                    continue;
                }
                if let Some(a) = c.associations.get_mut(arn) {
                    // The same failure again changes nothing (and is not
                    // audited again every reconciliation).
                    if a.status == SyncStatus::Failed && a.last_error.as_ref() == Some(e) {
                        continue;
                    }
                    a.status = SyncStatus::Failed;
                    a.last_error = Some(e.clone());
                    a.last_sync_ms = Some(now);
                    report.push((arn.clone(), a.username.clone(), Some(e.clone())));
                }
            }
            for user in &deleted {
                // Unless an association took the name again meanwhile.
                if !c.associations.values().any(|a| &a.username == user) {
                    c.owned_users.remove(user);
                }
            }
        });
        if let Err(e) = applied {
            tracing::error!(cluster = %row.arn, error = %e.message, "a Kafka sync's outcome was not recorded");
        }
        for (arn, user, outcome) in &report {
            match outcome {
                None => tracing::info!(cluster = %row.arn, secret = %arn, %user, "Kafka SCRAM user synced"),
                Some(e) => tracing::warn!(cluster = %row.arn, secret = %arn, %user, "Kafka SCRAM sync failed: {e}"),
            }
        }
    }

    fn record_failure(&self, row: &ResourceRow, cluster: &Cluster, scope: &Scope<'_>, error: &str) {
        tracing::warn!(cluster = %row.arn, "Kafka sync failed: {error}");
        let failures: Vec<(String, String)> = cluster
            .associations
            .iter()
            .filter(|(arn, a)| match scope {
                Scope::Only(only) => only.contains(*arn),
                // Already-synced users are not marked failed because the
                // cluster is down: their credential is still there.
                Scope::Reconcile => a.status != SyncStatus::Synced,
            })
            .map(|(arn, _)| (arn.clone(), error.to_owned()))
            .collect();
        self.record(row, Vec::new(), failures, Vec::new());
    }

    /// The background work: push AWSCURRENT changes of associated secrets
    /// as they happen, and reconcile every cluster every `every`.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let Some(mut changed) = self.changed_rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A reconciliation waiting on a dead cluster must not hold up the
        // changes of the others: it runs on its own, one at a time.
        let reconciling = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            tokio::select! {
                first = changed.recv() => {
                    let Some(first) = first else { return };
                    let mut arns = BTreeSet::from([first]);
                    while let Ok(more) = changed.try_recv() {
                        arns.insert(more);
                    }
                    let s = self.clone();
                    let _ = tokio::task::spawn_blocking(move || s.sync_changed(&arns)).await;
                }
                _ = self.policies_changed.notified() => {
                    // IAM changes come in bursts (a policy, then its
                    // attachment): one recompile after they settle.
                    tokio::time::sleep(POLICY_SETTLE).await;
                    let s = self.clone();
                    let _ = tokio::task::spawn_blocking(move || s.sync_all_acls()).await;
                }
                _ = tick.tick() => {
                    if reconciling.swap(true, std::sync::atomic::Ordering::AcqRel) {
                        continue;
                    }
                    let (s, done) = (self.clone(), reconciling.clone());
                    tokio::task::spawn_blocking(move || {
                        s.reconcile_all();
                        done.store(false, std::sync::atomic::Ordering::Release);
                    });
                }
            }
        }
    }

    /// Push the new AWSCURRENT of these secrets to every cluster they are
    /// associated with.
    fn sync_changed(&self, arns: &BTreeSet<String>) {
        let Ok(rows) = self.store.resources_of_kind(KIND) else {
            return;
        };
        for row in rows {
            let Ok(cluster) = serde_json::from_str::<Cluster>(&row.meta) else {
                continue;
            };
            let mine: BTreeSet<String> = arns
                .iter()
                .filter(|a| cluster.associations.contains_key(*a))
                .cloned()
                .collect();
            if !mine.is_empty() {
                self.sync(&row.arn, Scope::Only(&mine));
            }
        }
    }

    /// Associations in each sync state, over every cluster (for /metrics):
    /// (synced, pending, failed).
    pub fn sync_counts(&self) -> (u64, u64, u64) {
        let mut counts = (0, 0, 0);
        for row in self.store.resources_of_kind(KIND).unwrap_or_default() {
            let Ok(cluster) = serde_json::from_str::<Cluster>(&row.meta) else {
                continue;
            };
            for a in cluster.associations.values() {
                match a.status {
                    SyncStatus::Synced => counts.0 += 1,
                    SyncStatus::Pending => counts.1 += 1,
                    SyncStatus::Failed => counts.2 += 1,
                }
            }
        }
        counts
    }

    /// The ARNs of the clusters registered in `account`.
    pub fn cluster_arns(&self, account: &str) -> Vec<String> {
        let mut index = self.cluster_index.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = index
            .as_ref()
            .is_some_and(|(read, _)| read.elapsed() < CLUSTER_INDEX_TTL);
        if !fresh {
            let mut by_account: HashMap<String, Vec<String>> = HashMap::new();
            for row in self.store.resources_of_kind(KIND).unwrap_or_default() {
                by_account.entry(row.account).or_default().push(row.arn);
            }
            *index = Some((std::time::Instant::now(), by_account));
        }
        index
            .as_ref()
            .and_then(|(_, m)| m.get(account).cloned())
            .unwrap_or_default()
    }

    fn forget_cluster_index(&self) {
        *self.cluster_index.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Compare every cluster with its associations and repair the drift.
    pub fn reconcile_all(&self) {
        let Ok(rows) = self.store.resources_of_kind(KIND) else {
            return;
        };
        for row in rows {
            self.sync(&row.arn, Scope::Reconcile);
            self.sync_acls(&row.arn);
        }
    }

    /// The clusters `secret_arn` is associated with, and its username there
    /// (for the rotator).
    pub fn clusters_of(&self, secret_arn: &str) -> Vec<(String, Cluster)> {
        let Ok(rows) = self.store.resources_of_kind(KIND) else {
            return Vec::new();
        };
        rows.into_iter()
            .filter_map(|row| {
                let cluster: Cluster = serde_json::from_str(&row.meta).ok()?;
                cluster
                    .associations
                    .contains_key(secret_arn)
                    .then_some((row.arn, cluster))
            })
            .collect()
    }

    /// Set one user's password on a cluster (the rotator's setSecret) and
    /// note the version the broker now holds.
    pub fn set_password(
        &self,
        cluster_arn: &str,
        secret_arn: &str,
        secret: &ScramSecret,
        version: &str,
    ) -> Result<(), String> {
        let lock = self.lock_for(cluster_arn);
        let _one_at_a_time = lock.lock().unwrap_or_else(|e| e.into_inner());
        let row = self
            .store
            .resource(cluster_arn)
            .map_err(|e| e.to_string())?
            .ok_or("the cluster was deregistered")?;
        let cluster: Cluster = serde_json::from_str(&row.meta).map_err(|_| "a cluster did not parse")?;
        let ctx = self.service_ctx(&row.account, &row.region);
        let target = cluster.target()?;
        let (_, admin) = self.current_value(&ctx, &cluster.admin_secret_arn)?;
        let upsert = crate::scram::credential(&secret.username, secret.password.expose(), cluster.iterations)
            .map_err(|e| e.to_string())?;
        let results = self
            .block(async {
                let mut conn = Connection::open(&target, &admin.username, &admin.password).await?;
                conn.alter_scram(std::slice::from_ref(&upsert), &[]).await
            })
            .map_err(|e| format!("{}: {e}", cluster.name))?;
        if let Some(r) = results.iter().find(|r| r.code != codes::NONE) {
            return Err(format!(
                "{}: Kafka error {} for user {}: {}",
                cluster.name,
                r.code,
                r.user,
                r.message.clone().unwrap_or_default()
            ));
        }
        let now = now_ms();
        self.update_with_audit(cluster_arn, |c| {
            if let Some(a) = c.associations.get_mut(secret_arn) {
                a.username = secret.username.clone();
                a.status = SyncStatus::Synced;
                a.synced_version = Some(version.to_owned());
                a.last_error = None;
                a.last_sync_ms = Some(now);
            }
            c.owned_users.insert(secret.username.clone());
        })
        .map_err(|e| e.message)
    }

    /// Log in to a cluster as `secret`'s user (the rotator's testSecret).
    pub fn test_login(&self, cluster: &Cluster, secret: &ScramSecret) -> Result<(), String> {
        let target = cluster.target()?;
        self.block(async {
            Connection::open(&target, &secret.username, &secret.password).await?;
            Ok(())
        })
        .map_err(|e| format!("{}: {e}", cluster.name))
    }
}
