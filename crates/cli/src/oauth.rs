//! `tumbler oauth client`: OAuth clients of IAM users and roles, whose
//! client_credentials tokens Kafka brokers accept (KIP-768), through a
//! running server's TumblerOAuth API (signed as `tumbler db` signs).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::db::{ConnArgs, call, post};

#[derive(Subcommand)]
pub enum OauthCommand {
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Replace a signing key now. The replaced key stays in the JWKS until
    /// the tokens it signed have expired, unless --retire-replaced.
    RotateKey(RotateKeyArgs),
    /// Get a token: with a client's id and secret, or by exchanging this
    /// shell's own AWS credentials (SigV4). Prints the answer, or keeps a
    /// fresh token in a file for Kafka clients that read
    /// `sasl.oauthbearer.token.endpoint.url=file://...`.
    Token(TokenArgs),
}

#[derive(Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// ES256 (default) or RS256.
    #[arg(long)]
    algorithm: Option<String>,
    /// Drop every older key of the algorithm from the JWKS at once (a key
    /// that may have leaked): tokens it signed stop verifying as soon as the
    /// brokers refresh their JWKS.
    #[arg(long)]
    retire_replaced: bool,
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The OAuth client; its secret comes from TUMBLER_OAUTH_CLIENT_SECRET.
    /// Without it, the AWS credentials of the environment are exchanged.
    #[arg(long)]
    client_id: Option<String>,
    /// The client's secret (kept out of the command line, where `ps` shows it).
    #[arg(long, env = "TUMBLER_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Scopes to ask for (space-separated, as RFC 6749 writes them).
    #[arg(long)]
    scope: Option<String>,
    /// Write the token (the bare JWT) to this file, mode 0600, replaced
    /// atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --out: keep running, and replace the token when 80% of its
    /// lifetime has passed (retrying every few seconds while it is still valid).
    #[arg(long, requires = "out")]
    watch: bool,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// A new client for an IAM user or role; prints its id and secret (shown once).
    Create(CreateArgs),
    /// The clients of the account (no secrets).
    List(ConnArgs),
    /// Delete a client: its secret stops working at once.
    Delete(DeleteArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The IAM user or role ARN the tokens name (`sub`, the Kafka principal User:<name>).
    #[arg(long)]
    principal: String,
    /// Scopes the client may ask for (default: kafka).
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// Token lifetime in seconds (60-3600, default 900).
    #[arg(long)]
    token_lifetime_seconds: Option<u64>,
    /// ES256 (default) or RS256.
    #[arg(long)]
    signing_algorithm: Option<String>,
}

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    client_id: String,
}

pub fn run(cmd: OauthCommand) -> Result<()> {
    let cmd = match cmd {
        OauthCommand::Client(c) => c,
        OauthCommand::RotateKey(a) => {
            let mut body = json!({"RetireReplaced": a.retire_replaced});
            if let Some(alg) = a.algorithm {
                body["Algorithm"] = json!(alg);
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let out = runtime.block_on(call(&a.conn, "tumbler", "TumblerOAuth", "RotateSigningKey", body))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        OauthCommand::Token(a) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            return runtime.block_on(token(a));
        }
    };
    let (conn, op, body) = match cmd {
        ClientCommand::Create(a) => {
            let mut body = json!({"PrincipalArn": a.principal});
            if !a.scopes.is_empty() {
                body["Scopes"] = json!(a.scopes);
            }
            if let Some(n) = a.token_lifetime_seconds {
                body["TokenLifetimeSeconds"] = json!(n);
            }
            if let Some(alg) = a.signing_algorithm {
                body["SigningAlgorithm"] = json!(alg);
            }
            (a.conn, "CreateClient", body)
        }
        ClientCommand::List(conn) => (conn, "ListClients", json!({})),
        ClientCommand::Delete(a) => (a.conn, "DeleteClient", json!({"ClientId": a.client_id})),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let out = runtime.block_on(call(&conn, "tumbler", "TumblerOAuth", op, body))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// One token from the server's `/oauth2/token`: the answer, or the RFC
/// 6749 error as an error.
async fn fetch_token(a: &TokenArgs) -> Result<Value> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &a.scope {
        form.append_pair("scope", scope);
    }
    let body = form.finish().into_bytes();
    let content_type = ("content-type", "application/x-www-form-urlencoded");
    let (status, answer) = match &a.client_id {
        Some(id) => {
            let secret = a
                .client_secret
                .as_deref()
                .context("set the client's secret in TUMBLER_OAUTH_CLIENT_SECRET")?;
            let basic = format!(
                "Basic {}",
                STANDARD.encode(format!(
                    "{}:{}",
                    form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>(),
                    form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
                ))
            );
            post(
                &a.conn,
                "/oauth2/token",
                &[content_type, ("authorization", &basic)],
                body,
                None,
            )
            .await?
        }
        None => post(&a.conn, "/oauth2/token", &[content_type], body, Some("tumbler")).await?,
    };
    let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    if !status.is_success() {
        let error = answer.get("error").and_then(Value::as_str).unwrap_or("server_error");
        let description = answer
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        bail!("the token request was refused ({error}): {description}");
    }
    Ok(answer)
}

/// Replace `path` with `token`: written to a new file (mode 0600) beside
/// it, then renamed over it, so a reader never sees half a token.
fn write_token(path: &Path, token: &str) -> Result<()> {
    let mut name = path.file_name().context("--out names no file")?.to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

async fn token(a: TokenArgs) -> Result<()> {
    let Some(out) = &a.out else {
        println!("{}", serde_json::to_string_pretty(&fetch_token(&a).await?)?);
        return Ok(());
    };
    let mut valid_until: Option<tokio::time::Instant> = None;
    loop {
        let next = match fetch_token(&a).await {
            Ok(answer) => {
                let token = answer
                    .get("access_token")
                    .and_then(Value::as_str)
                    .context("the answer has no access_token")?;
                let lifetime = answer.get("expires_in").and_then(Value::as_u64).unwrap_or(900);
                write_token(out, token)?;
                tracing::info!(file = %out.display(), expires_in = lifetime, "token written");
                let now = tokio::time::Instant::now();
                valid_until = Some(now + Duration::from_secs(lifetime));
                now + Duration::from_secs(lifetime * 4 / 5)
            }
            // The first token must come; later ones are retried while the
            // one in the file is still good.
            Err(e) if a.watch && valid_until.is_some_and(|v| v > tokio::time::Instant::now()) => {
                tracing::warn!("a token could not be fetched (retrying): {e:#}");
                tokio::time::Instant::now() + RETRY
            }
            Err(e) => return Err(e),
        };
        if !a.watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// How soon a failed refresh is tried again.
const RETRY: Duration = Duration::from_secs(5);
