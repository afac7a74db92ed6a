//! `tumbler db`: register databases whose master password Tumbler
//! manages, and look after them, through a running server's
//! TumblerDatabases API. Requests are SigV4-signed for the service
//! `tumbler` with the caller's ordinary AWS credentials (environment,
//! shared credentials file, profile), as the aws CLI finds them.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use aws_credential_types::provider::ProvideCredentials;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Register a database: Tumbler sets a generated master password, keeps
    /// it in the secret `tumbler!db-<id>` and rotates it (every 7 days by default).
    Register(RegisterArgs),
    /// One registration, with its MasterUserSecret and that secret's status.
    Describe(IdArgs),
    /// Every registration in the region.
    List(ConnArgs),
    /// Rotate the master password now, or change the rotation schedule.
    Modify(ModifyArgs),
    /// Forget a database; its secret is deleted with a recovery window.
    Deregister(DeregisterArgs),
}

#[derive(Args)]
pub struct ConnArgs {
    /// The Tumbler server.
    #[arg(long, env = "TUMBLER_ENDPOINT_URL", default_value = "https://127.0.0.1:8443")]
    pub endpoint_url: String,
    /// CA certificates (PEM) to trust besides the system's (the server's DIR/ca.pem).
    #[arg(long, env = "AWS_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

#[derive(Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// postgres, mysql or mariadb.
    #[arg(long)]
    engine: String,
    #[arg(long)]
    host: String,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    master_username: String,
    /// A file holding the master user's current password, used once to set
    /// the managed one (or TUMBLER_DB_MASTER_PASSWORD).
    #[arg(long)]
    master_user_password_file: Option<PathBuf>,
    /// Required: Tumbler registers databases to manage their master password.
    #[arg(long)]
    manage_master_user_password: bool,
    /// The database to connect to (PostgreSQL default: postgres).
    #[arg(long)]
    db_name: Option<String>,
    /// disable, prefer, require or verify-full.
    #[arg(long)]
    ssl_mode: Option<String>,
    /// The KMS key that encrypts the master user secret.
    #[arg(long)]
    kms_key_id: Option<String>,
    /// The rotation schedule, `rate(...)` or `cron(...)` (default rate(7 days)).
    #[arg(long)]
    rotation: Option<String>,
}

#[derive(Args)]
pub struct IdArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The registration's id (or ARN).
    #[arg(long)]
    id: String,
}

#[derive(Args)]
pub struct ModifyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    id: String,
    /// Rotate the master password now.
    #[arg(long)]
    rotate_master_user_password: bool,
    /// A new rotation schedule.
    #[arg(long)]
    rotation: Option<String>,
}

#[derive(Args)]
pub struct DeregisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    id: String,
    /// Days before the secret is purged (7-30, default 30).
    #[arg(long, conflicts_with = "force_delete_without_recovery")]
    recovery_window_days: Option<i64>,
    /// Delete the secret at once.
    #[arg(long)]
    force_delete_without_recovery: bool,
}

pub fn run(cmd: DbCommand) -> Result<()> {
    let (conn, op, body) = match cmd {
        DbCommand::Register(a) => {
            let password = match (
                &a.master_user_password_file,
                std::env::var("TUMBLER_DB_MASTER_PASSWORD"),
            ) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                (None, Ok(p)) => p,
                (None, Err(_)) => {
                    bail!(
                        "give the master user's current password: --master-user-password-file or TUMBLER_DB_MASTER_PASSWORD"
                    )
                }
            };
            let password = zeroize::Zeroizing::new(password);
            let mut body = json!({
                "Engine": a.engine,
                "Host": a.host,
                "MasterUsername": a.master_username,
                "MasterUserPassword": *password,
                "ManageMasterUserPassword": a.manage_master_user_password,
            });
            let optional = [
                ("DbName", a.db_name.map(Value::from)),
                ("SslMode", a.ssl_mode.map(Value::from)),
                ("MasterUserSecretKmsKeyId", a.kms_key_id.map(Value::from)),
                ("RotationSchedule", a.rotation.map(Value::from)),
                ("Port", a.port.map(Value::from)),
            ];
            for (name, value) in optional {
                if let Some(v) = value {
                    body[name] = v;
                }
            }
            (a.conn, "RegisterDatabase", body)
        }
        DbCommand::Describe(a) => (a.conn, "DescribeDatabase", json!({"DatabaseId": a.id})),
        DbCommand::List(conn) => (conn, "ListDatabases", json!({})),
        DbCommand::Modify(a) => {
            let mut body = json!({"DatabaseId": a.id, "RotateMasterUserPassword": a.rotate_master_user_password});
            if let Some(r) = a.rotation {
                body["RotationSchedule"] = json!(r);
            }
            (a.conn, "ModifyDatabase", body)
        }
        DbCommand::Deregister(a) => {
            let mut body = json!({"DatabaseId": a.id});
            if a.force_delete_without_recovery {
                body["ForceDeleteWithoutRecovery"] = json!(true);
            }
            if let Some(days) = a.recovery_window_days {
                body["RecoveryWindowInDays"] = json!(days);
            }
            (a.conn, "DeregisterDatabase", body)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let out = runtime.block_on(call(&conn, "tumbler", "TumblerDatabases", op, body))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// One signed JSON call (`X-Amz-Target: <api>.<op>`, signed for
/// `service`); an error answer becomes an error naming its code, as the
/// aws CLI prints it.
pub async fn call(conn: &ConnArgs, service: &str, api: &str, op: &str, body: Value) -> Result<Value> {
    let target = format!("{api}.{op}");
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let (status, bytes) = post(conn, "/", &headers, body.to_string().into_bytes(), Some(service)).await?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let code = answer.get("__type").and_then(Value::as_str).unwrap_or("UnknownError");
        let message = answer
            .get("message")
            .or_else(|| answer.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        bail!("An error occurred ({code}) when calling the {op} operation: {message}");
    }
    Ok(answer)
}

/// POST `body` to `path` on the server, SigV4-signed for `signed_for` with
/// the caller's AWS credentials when set: the status and the answer.
pub async fn post(
    conn: &ConnArgs,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    signed_for: Option<&str>,
) -> Result<(http::StatusCode, bytes::Bytes)> {
    let url = format!("{}{path}", conn.endpoint_url.trim_end_matches('/'));
    let mut request = http::Request::post(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let signing = match signed_for {
        Some(service) => Some(sign(conn, &url, headers, &body, service).await?),
        None => None,
    };
    let mut request = request.body(Full::new(bytes::Bytes::from(body)))?;
    if let Some(instructions) = signing {
        instructions.apply_to_request_http1x(&mut request);
    }
    send(conn, &url, request).await
}

/// SigV4 for a POST, with the AWS credentials and region of the environment.
async fn sign(
    conn: &ConnArgs,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    service: &str,
) -> Result<aws_sigv4::http_request::SigningInstructions> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &conn.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let config = loader.load().await;
    let region = config
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let credentials = config
        .credentials_provider()
        .context("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE")?
        .provide_credentials()
        .await
        .context("cannot load AWS credentials")?;
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name(service)
        .time(SystemTime::now())
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .context("cannot sign the request")?
        .into();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        aws_sigv4::http_request::SignableBody::Bytes(body),
    )
    .context("cannot sign the request")?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .context("cannot sign the request")?
        .into_parts();
    Ok(instructions)
}

async fn send(
    conn: &ConnArgs,
    url: &str,
    request: http::Request<Full<bytes::Bytes>>,
) -> Result<(http::StatusCode, bytes::Bytes)> {
    let ca = match &conn.ca_bundle {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?),
        None => None,
    };
    let tls = tumbler_databases::DatabaseTls::new(ca).map_err(anyhow::Error::msg)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.verifying())
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let response = tokio::time::timeout(Duration::from_secs(120), client.request(request))
        .await
        .context("the server did not answer within 120 seconds")?
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
