//! PostgreSQL: log in with a secret, change a role's password, keep the
//! alternating pair's clone acting as its base role.
//!
//! Passwords are sent as SCRAM-SHA-256 verifiers computed here, so the
//! server (and its statement log) never sees the new password itself.

use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::secret::{DbSecret, SslMode};
use crate::tls::DatabaseTls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Log in as the secret's user. The connection's task runs on the
/// current runtime until the client is dropped.
pub async fn connect(secret: &DbSecret, tls: &DatabaseTls) -> Result<Client, String> {
    let mut config = Config::new();
    config
        .host(&secret.host)
        .port(secret.port)
        .user(&secret.username)
        .password(secret.password.expose())
        .dbname(secret.dbname.as_deref().unwrap_or("postgres"))
        .application_name("tumbler-rotation")
        .connect_timeout(CONNECT_TIMEOUT);
    let connected = match secret.ssl {
        SslMode::Disable => plain(&config).await,
        SslMode::Require => encrypted(&config, tls.unverified()).await,
        SslMode::VerifyFull => encrypted(&config, tls.verifying()).await,
        SslMode::Prefer => match encrypted(&config, tls.verifying()).await {
            Ok(c) => Ok(c),
            // AWS's templates: a failed TLS attempt falls back to plain.
            Err(_) => plain(&config).await,
        },
    };
    connected.map_err(|e| {
        format!(
            "cannot log in to PostgreSQL at {}:{} as {}: {}",
            secret.host,
            secret.port,
            secret.username,
            describe(&e)
        )
    })
}

async fn plain(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let mut config = config.clone();
    config.ssl_mode(PgSslMode::Disable);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn encrypted(config: &Config, tls: rustls::ClientConfig) -> Result<Client, tokio_postgres::Error> {
    let mut config = config.clone();
    config.ssl_mode(PgSslMode::Require);
    let (client, connection) = config.connect(MakeRustlsConnect::new(tls)).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The server's own words (SQLSTATE message) when there are some.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            if let Some(source) = std::error::Error::source(e) {
                text = format!("{text}: {source}");
            }
            text
        }
    }
}

/// Log in and prove the session works (the templates' `SELECT NOW()`);
/// returns the role the session acts as.
pub async fn probe(secret: &DbSecret, tls: &DatabaseTls) -> Result<String, String> {
    let client = connect(secret, tls).await?;
    let row = client
        .query_one("SELECT current_user::text, now()::text", &[])
        .await
        .map_err(|e| format!("PostgreSQL refused a query as {}: {}", secret.username, describe(&e)))?;
    Ok(row.get(0))
}

/// `ALTER ROLE ... PASSWORD` with a SCRAM verifier of `password`.
pub async fn set_password(client: &Client, role: &str, password: &str) -> Result<(), String> {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let sql = format!(
        "ALTER ROLE {} PASSWORD {}",
        escape_identifier(role),
        escape_literal(&verifier)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| format!("cannot change the password of role {role}: {}", describe(&e)))
}

/// Make `clone` a login role with `password` that acts as `base`: a
/// member of it whose sessions start with `SET ROLE base`, so it has
/// base's privileges, present and future, and what it creates is owned by
/// base. AWS's template only grants membership once, so objects the clone
/// creates stay its own and grants drift (aws-samples rotation lambdas
/// #38, #175); here both users of the pair always act as one role.
pub async fn ensure_clone(admin: &Client, clone: &str, base: &str, password: &str) -> Result<(), String> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&clone])
        .await
        .map_err(|e| format!("cannot look up role {clone}: {}", describe(&e)))?
        .is_some();
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let (clone_id, base_id) = (escape_identifier(clone), escape_identifier(base));
    let create_or_alter = if exists {
        format!(
            "ALTER ROLE {clone_id} WITH LOGIN PASSWORD {}",
            escape_literal(&verifier)
        )
    } else {
        format!(
            "CREATE ROLE {clone_id} WITH LOGIN PASSWORD {}",
            escape_literal(&verifier)
        )
    };
    let sql = format!(
        "BEGIN; {create_or_alter}; GRANT {base_id} TO {clone_id}; \
         ALTER ROLE {clone_id} SET role TO {}; COMMIT;",
        escape_literal(base)
    );
    if let Err(e) = admin.batch_execute(&sql).await {
        let _ = admin.batch_execute("ROLLBACK").await;
        return Err(format!("cannot set up role {clone} as {base}: {}", describe(&e)));
    }
    Ok(())
}
