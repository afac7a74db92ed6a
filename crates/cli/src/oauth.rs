//! `tumbler oauth client`: OAuth clients of IAM users and roles, whose
//! client_credentials tokens Kafka brokers accept (KIP-768), through a
//! running server's TumblerOAuth API (signed as `tumbler db` signs).

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::db::{ConnArgs, call};

#[derive(Subcommand)]
pub enum OauthCommand {
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
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
}

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    client_id: String,
}

pub fn run(cmd: OauthCommand) -> Result<()> {
    let OauthCommand::Client(cmd) = cmd;
    let (conn, op, body) = match cmd {
        ClientCommand::Create(a) => {
            let mut body = json!({"PrincipalArn": a.principal});
            if !a.scopes.is_empty() {
                body["Scopes"] = json!(a.scopes);
            }
            if let Some(n) = a.token_lifetime_seconds {
                body["TokenLifetimeSeconds"] = json!(n);
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
