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
    /// A client configuration: SCRAM for the user of an associated secret,
    /// or OAUTHBEARER (--oauth) with tokens from this server.
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
    /// SCRAM: the associated secret (name or ARN).
    #[arg(long, required_unless_present = "oauth", conflicts_with = "oauth")]
    secret_id: Option<String>,
    /// The cluster: for SCRAM, when the secret is associated with more
    /// than one; for OAuth, where the brokers are (unless --bootstrap-servers).
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long, value_enum, default_value = "java")]
    format: ConfigFormat,
    /// OAUTHBEARER with tokens from this server instead of SCRAM: creates an
    /// OAuth client of --principal, whose secret goes into the configuration.
    #[arg(long)]
    oauth: bool,
    /// OAuth: the IAM user or role ARN the tokens name.
    #[arg(long, requires = "oauth")]
    principal: Option<String>,
    /// OAuth: the brokers' OAUTHBEARER listener (default: the cluster's
    /// bootstrap servers), comma-separated.
    #[arg(long, value_delimiter = ',', requires = "oauth")]
    bootstrap_servers: Vec<String>,
    /// OAuth: SASL_SSL or SASL_PLAINTEXT, of that listener (default: the cluster's).
    #[arg(long, requires = "oauth")]
    security_protocol: Option<String>,
    /// OAuth, Java: read the token from this file, kept fresh by
    /// `tumbler oauth token --out FILE --watch`, instead of a client secret.
    #[arg(long, requires = "oauth", conflicts_with = "principal")]
    token_file: Option<PathBuf>,
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

/// An OAUTHBEARER client configuration: tokens from this server's
/// `/oauth2/token` with a new client of `--principal`, or (Java) from a
/// token file.
async fn oauth_client_config(a: &ClientConfigArgs) -> Result<String> {
    let cluster = match &a.cluster {
        Some(c) => Some(described_clusters(&a.conn, Some(c)).await?.remove(0)),
        None => None,
    };
    let from_cluster = |key: &str| cluster.as_ref().and_then(|c| c.get(key)).cloned();
    let servers = if a.bootstrap_servers.is_empty() {
        from_cluster("BootstrapServers")
            .and_then(|v| v.as_array().cloned())
            .map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .context("name the brokers: --cluster or --bootstrap-servers")?
    } else {
        a.bootstrap_servers.join(",")
    };
    let protocol = a
        .security_protocol
        .clone()
        .or_else(|| from_cluster("SecurityProtocol").and_then(|v| v.as_str().map(str::to_owned)))
        .unwrap_or_else(|| "SASL_SSL".to_owned());
    let endpoint = format!("{}/oauth2/token", a.conn.endpoint_url.trim_end_matches('/'));
    let header = |who: &str| {
        let name = from_cluster("ClusterName")
            .and_then(|v| v.as_str().map(str::to_owned))
            .map_or_else(String::new, |n| format!("Kafka cluster {n}, "));
        format!("# {name}OAUTHBEARER with tokens from Tumbler ({who})\nbootstrap.servers={servers}\n")
    };
    if let Some(file) = &a.token_file {
        let ConfigFormat::Java = a.format else {
            bail!(
                "librdkafka does not read tokens from files: leave out --token-file for an OIDC client configuration"
            );
        };
        let path = std::path::absolute(file)?;
        let url = format!("file://{}", path.display());
        return Ok(format!(
            "{}security.protocol={protocol}\n\
             sasl.mechanism=OAUTHBEARER\n\
             sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
             sasl.oauthbearer.token.endpoint.url={url}\n\
             sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;\n\
             # Keep the file fresh: tumbler oauth token --out {} --watch\n\
             # and allow the URL on the JVM: -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}\n",
            header(&format!("the token in {}", path.display())),
            path.display()
        ));
    }
    let principal = a
        .principal
        .as_deref()
        .context("--oauth needs --principal (or --token-file)")?;
    let client = call(
        &a.conn,
        "tumbler",
        "TumblerOAuth",
        "CreateClient",
        json!({"PrincipalArn": principal}),
    )
    .await?;
    let field = |k: &str| client.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (id, secret) = (field("ClientId"), field("ClientSecret"));
    let who = format!("client {id} of {principal}");
    Ok(match a.format {
        ConfigFormat::Java => {
            let jaas = format!(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId={} clientSecret={} scope=\"kafka\";",
                jaas_quote(&id),
                jaas_quote(&secret)
            );
            let mut out = format!(
                "{}security.protocol={protocol}\n\
                 sasl.mechanism=OAUTHBEARER\n\
                 sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
                 sasl.oauthbearer.token.endpoint.url={endpoint}\n\
                 sasl.jaas.config={}\n\
                 # Allow the URL on the JVM: -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={endpoint}\n",
                header(&who),
                properties_value(&jaas)
            );
            if endpoint.starts_with("https:") {
                out.push_str(
                    "# If Tumbler's certificate comes from its own CA (DIR/ca.pem), the JVM must trust it\n\
                     # (-Djavax.net.ssl.trustStore=... with that CA imported).\n",
                );
            }
            out
        }
        ConfigFormat::Librdkafka => {
            let mut out = format!(
                "{}security.protocol={}\n\
                 sasl.mechanisms=OAUTHBEARER\n\
                 sasl.oauthbearer.method=oidc\n\
                 sasl.oauthbearer.client.id={id}\n\
                 sasl.oauthbearer.client.secret={secret}\n\
                 sasl.oauthbearer.token.endpoint.url={endpoint}\n\
                 sasl.oauthbearer.scope=kafka\n",
                header(&who),
                protocol.to_ascii_lowercase()
            );
            if let Some(ca) = &a.conn.ca_bundle {
                out.push_str(&format!("https.ca.location={}\n", std::path::absolute(ca)?.display()));
            }
            out
        }
    })
}

async fn client_config(a: ClientConfigArgs) -> Result<String> {
    if a.oauth {
        return oauth_client_config(&a).await;
    }
    let secret_id = a.secret_id.as_deref().context("--secret-id is required")?;
    let secret = call(
        &a.conn,
        "secretsmanager",
        "secretsmanager",
        "GetSecretValue",
        json!({"SecretId": secret_id}),
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
