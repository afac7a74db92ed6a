//! `tumbler kafka`: register Kafka clusters, see the sync state of their
//! SCRAM users, and print client configurations, through a running
//! server's TumblerKafka API (signed as `tumbler db` signs). Secrets are
//! associated with a cluster through MSK's API:
//! `aws kafka batch-associate-scram-secret --cluster-arn ... --secret-arn-list ...`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::db::{ConnArgs, call};

#[derive(Subcommand)]
pub enum KafkaCommand {
    /// Register a cluster: Tumbler logs in with the admin secret's user and
    /// keeps associated secrets' users in sync with it.
    Register(RegisterArgs),
    /// One cluster, with every associated secret's sync state.
    Describe(ClusterArgs),
    /// Every registered cluster in the region.
    List(ConnArgs),
    /// Forget a cluster (refused while secrets are associated, unless --force).
    Deregister(DeregisterArgs),
    /// The sync state of associated secrets; exits 2 if any failed.
    Status(StatusArgs),
    /// A client configuration for the user of an associated secret.
    ClientConfig(ClientConfigArgs),
}

#[derive(Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The cluster's name (letters, digits, hyphens).
    #[arg(long)]
    name: String,
    /// host:port of one or more brokers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    bootstrap_servers: Vec<String>,
    /// SASL_SSL (default) or SASL_PLAINTEXT.
    #[arg(long, default_value = "SASL_SSL")]
    security_protocol: String,
    /// The secret ({"username","password"}) of the SCRAM-SHA-512 user Tumbler
    /// administers the cluster as (needs ALTER and DESCRIBE on CLUSTER).
    #[arg(long)]
    admin_secret_id: String,
    /// The CA (PEM) that signed the brokers' certificates (SASL_SSL).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// PBKDF2 iterations of the credentials Tumbler sets (4096-16384, default 8192).
    #[arg(long)]
    scram_iterations: Option<u32>,
}

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The cluster's name or ARN.
    #[arg(long)]
    cluster: String,
}

#[derive(Args)]
pub struct DeregisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    cluster: String,
    /// Forget it even with secrets associated (their users stay on the brokers).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// One cluster (name or ARN); every cluster when absent.
    #[arg(long)]
    cluster: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ConfigFormat {
    /// Java client properties (sasl.jaas.config).
    Java,
    /// librdkafka (confluent-kafka, kcat) properties.
    Librdkafka,
}

#[derive(Args)]
pub struct ClientConfigArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The associated secret (name or ARN).
    #[arg(long)]
    secret_id: String,
    /// The cluster, when the secret is associated with more than one.
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long, value_enum, default_value = "java")]
    format: ConfigFormat,
}

pub fn run(cmd: KafkaCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(cmd))
}

async fn kafka(conn: &ConnArgs, op: &str, body: Value) -> Result<Value> {
    call(conn, "tumbler", "TumblerKafka", op, body).await
}

async fn run_async(cmd: KafkaCommand) -> Result<()> {
    let out = match cmd {
        KafkaCommand::Register(a) => {
            let mut body = json!({
                "ClusterName": a.name,
                "BootstrapServers": a.bootstrap_servers,
                "SecurityProtocol": a.security_protocol,
                "AdminSecretId": a.admin_secret_id,
            });
            if let Some(path) = &a.ca_file {
                body["CaCertificate"] =
                    json!(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?);
            }
            if let Some(n) = a.scram_iterations {
                body["ScramIterations"] = json!(n);
            }
            kafka(&a.conn, "RegisterCluster", body).await?
        }
        KafkaCommand::Describe(a) => kafka(&a.conn, "DescribeCluster", json!({"ClusterArn": a.cluster})).await?,
        KafkaCommand::List(conn) => kafka(&conn, "ListClusters", json!({})).await?,
        KafkaCommand::Deregister(a) => {
            kafka(
                &a.conn,
                "DeregisterCluster",
                json!({"ClusterArn": a.cluster, "Force": a.force}),
            )
            .await?
        }
        KafkaCommand::Status(a) => return status(a).await,
        KafkaCommand::ClientConfig(a) => {
            print!("{}", client_config(a).await?);
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn described_clusters(conn: &ConnArgs, only: Option<&str>) -> Result<Vec<Value>> {
    let names: Vec<String> = match only {
        Some(c) => vec![c.to_owned()],
        None => kafka(conn, "ListClusters", json!({}))
            .await?
            .get("Clusters")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|c| c.get("ClusterArn").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for name in names {
        let d = kafka(conn, "DescribeCluster", json!({"ClusterArn": name})).await?;
        out.push(d.get("Cluster").cloned().unwrap_or(Value::Null));
    }
    Ok(out)
}

async fn status(a: StatusArgs) -> Result<()> {
    let clusters = described_clusters(&a.conn, a.cluster.as_deref()).await?;
    let failed = clusters
        .iter()
        .flat_map(|c| {
            c.get("ScramSecrets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|s| s.get("SyncStatus").and_then(Value::as_str) == Some("FAILED"))
        .count();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json!({"Clusters": clusters}))?);
    } else {
        let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        for c in &clusters {
            println!("{}  {}", field(c, "ClusterName"), field(c, "ClusterArn"));
            for s in c.get("ScramSecrets").and_then(Value::as_array).into_iter().flatten() {
                let mut line = format!(
                    "  {:<8} {:<24} {}",
                    field(s, "SyncStatus"),
                    field(s, "Username"),
                    field(s, "SecretArn")
                );
                if let Some(e) = s.get("LastError").and_then(Value::as_str) {
                    line.push_str(&format!("\n           last error: {e}"));
                }
                println!("{line}");
            }
        }
    }
    if failed > 0 {
        eprintln!("tumbler: {failed} associated secret(s) failed to sync");
        std::process::exit(2);
    }
    Ok(())
}

/// A JAAS option value: quoted, with `\` and `"` escaped.
fn jaas_quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A Java properties value: `\` is the escape character there too.
fn properties_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r")
}

async fn client_config(a: ClientConfigArgs) -> Result<String> {
    let secret = call(
        &a.conn,
        "secretsmanager",
        "secretsmanager",
        "GetSecretValue",
        json!({"SecretId": a.secret_id}),
    )
    .await?;
    let arn = secret.get("ARN").and_then(Value::as_str).unwrap_or_default().to_owned();
    let value: Value = serde_json::from_str(secret.get("SecretString").and_then(Value::as_str).unwrap_or_default())
        .context("the secret's value is not JSON")?;
    let (Some(username), Some(password)) = (
        value.get("username").and_then(Value::as_str),
        value.get("password").and_then(Value::as_str),
    ) else {
        bail!("the secret's value is not {{\"username\", \"password\"}}");
    };
    let clusters: Vec<Value> = described_clusters(&a.conn, a.cluster.as_deref())
        .await?
        .into_iter()
        .filter(|c| {
            c.get("ScramSecrets").and_then(Value::as_array).is_some_and(|l| {
                l.iter()
                    .any(|s| s.get("SecretArn").and_then(Value::as_str) == Some(&arn))
            })
        })
        .collect();
    let cluster = match clusters.as_slice() {
        [one] => one,
        [] => bail!("{arn} is not associated with a registered cluster"),
        _ => bail!("{arn} is associated with several clusters: name one with --cluster"),
    };
    let servers = cluster
        .get("BootstrapServers")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let protocol = cluster
        .get("SecurityProtocol")
        .and_then(Value::as_str)
        .unwrap_or("SASL_SSL");
    let name = cluster.get("ClusterName").and_then(Value::as_str).unwrap_or_default();
    let tls = protocol == "SASL_SSL";
    Ok(match a.format {
        ConfigFormat::Java => {
            let jaas = format!(
                "org.apache.kafka.common.security.scram.ScramLoginModule required username={} password={};",
                jaas_quote(username),
                jaas_quote(password)
            );
            let mut out = format!(
                "# Kafka cluster {name}, user {username} (secret {arn})\n\
                 bootstrap.servers={servers}\n\
                 security.protocol={protocol}\n\
                 sasl.mechanism=SCRAM-SHA-512\n\
                 sasl.jaas.config={}\n",
                properties_value(&jaas)
            );
            if tls {
                out.push_str(
                    "# The CA that signed the brokers' certificates, if the JVM's truststore lacks it:\n\
                     # ssl.truststore.type=PEM\n# ssl.truststore.location=/path/to/ca.pem\n",
                );
            }
            out
        }
        ConfigFormat::Librdkafka => {
            let mut out = format!(
                "# Kafka cluster {name}, user {username} (secret {arn})\n\
                 bootstrap.servers={servers}\n\
                 security.protocol={}\n\
                 sasl.mechanisms=SCRAM-SHA-512\n\
                 sasl.username={username}\n\
                 sasl.password={password}\n",
                protocol.to_ascii_lowercase()
            );
            if tls {
                out.push_str(
                    "# The CA that signed the brokers' certificates, if the system's roots lack it:\n\
                     # ssl.ca.location=/path/to/ca.pem\n",
                );
            }
            out
        }
    })
}
