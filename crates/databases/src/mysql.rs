//! MySQL and MariaDB: log in with a secret, change an account's password
//! (`ALTER USER 'name'@'host'`, the host part taken from the account the
//! login matched), and keep the alternating pair's grants the same.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts, Value};

use crate::secret::{DbSecret, SslMode};
use crate::tls::DatabaseTls;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A session, and how string literals are written in it.
pub struct Session {
    conn: Conn,
    no_backslash_escapes: bool,
    mariadb: bool,
}

fn ssl_opts(tls: &DatabaseTls, verify: bool) -> SslOpts {
    let opts = SslOpts::default();
    if !verify {
        return opts.with_danger_accept_invalid_certs(true);
    }
    match tls.ca_pem() {
        Some(pem) => opts.with_root_certs(vec![pem.to_vec().into()]),
        None => opts,
    }
}

async fn open(secret: &DbSecret, ssl: Option<SslOpts>) -> Result<Conn, String> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(secret.host.clone())
        .tcp_port(secret.port)
        .user(Some(secret.username.clone()))
        .pass(Some(secret.password.expose().to_owned()))
        .db_name(secret.dbname.clone())
        // Over TCP as the secret says, never switched to a local socket.
        .prefer_socket(false)
        .ssl_opts(ssl);
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} seconds", CONNECT_TIMEOUT.as_secs())),
    }
}

/// Log in as the secret's user.
pub async fn connect(secret: &DbSecret, tls: &DatabaseTls) -> Result<Session, String> {
    let connected = match secret.ssl {
        SslMode::Disable => open(secret, None).await,
        SslMode::Require => open(secret, Some(ssl_opts(tls, false))).await,
        SslMode::VerifyFull => open(secret, Some(ssl_opts(tls, true))).await,
        SslMode::Prefer => match open(secret, Some(ssl_opts(tls, true))).await {
            Ok(c) => Ok(c),
            // AWS's templates: a failed TLS attempt falls back to plain.
            Err(_) => open(secret, None).await,
        },
    };
    let mut conn = connected.map_err(|e| {
        format!(
            "cannot log in to {} at {}:{} as {}: {e}",
            secret.engine_name, secret.host, secret.port, secret.username
        )
    })?;
    let about: Option<(String, String)> = conn
        .query_first("SELECT @@SESSION.sql_mode, VERSION()")
        .await
        .map_err(|e| format!("{} refused a query as {}: {e}", secret.engine_name, secret.username))?;
    let (mode, version) = about.unwrap_or_default();
    Ok(Session {
        conn,
        no_backslash_escapes: mode.contains("NO_BACKSLASH_ESCAPES"),
        mariadb: version.contains("MariaDB"),
    })
}

impl Session {
    fn literal(&self, s: &str) -> String {
        Value::from(s).as_sql(self.no_backslash_escapes)
    }

    fn account(&self, account: &Account) -> String {
        format!("{}@{}", self.literal(&account.user), self.literal(&account.host))
    }

    /// The account this session logged in as (`CURRENT_USER()`), and that
    /// a query runs (the templates' `SELECT NOW()`).
    pub async fn current_account(&mut self) -> Result<Account, String> {
        let who: Option<String> = self
            .conn
            .query_first("SELECT CURRENT_USER()")
            .await
            .map_err(|e| e.to_string())?;
        let who = who.ok_or("CURRENT_USER() returned nothing")?;
        let (user, host) = who.rsplit_once('@').unwrap_or((who.as_str(), "%"));
        Ok(Account {
            user: user.to_owned(),
            host: host.to_owned(),
        })
    }

    /// Change the session's own password, which needs no privilege: MySQL
    /// takes `ALTER USER CURRENT_USER()`, MariaDB only `SET PASSWORD`.
    pub async fn set_own_password(&mut self, password: &str) -> Result<(), String> {
        let sql = if self.mariadb {
            format!("SET PASSWORD = PASSWORD({})", self.literal(password))
        } else {
            format!("ALTER USER CURRENT_USER() IDENTIFIED BY {}", self.literal(password))
        };
        let account = self.current_account().await?;
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| format!("cannot change the password of {account}: {e}"))
    }

    /// Change an account's password (as an admin).
    pub async fn set_password(&mut self, account: &Account, password: &str) -> Result<(), String> {
        let sql = format!(
            "ALTER USER {} IDENTIFIED BY {}",
            self.account(account),
            self.literal(password)
        );
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| format!("cannot change the password of {}: {e}", account))
    }

    /// Make `clone` an account with `password` and exactly `base`'s
    /// grants. Done at every rotation of the clone, so grants given to
    /// the base account since are not lost (AWS's multi-user template
    /// copies them once, and they drift).
    pub async fn ensure_clone(&mut self, clone: &Account, base: &Account, password: &str) -> Result<(), String> {
        let exists: Option<i64> = self
            .conn
            .exec_first(
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                (&clone.user, &clone.host),
            )
            .await
            .map_err(|e| format!("cannot look up {clone}: {e}"))?;
        let identified = format!("{} IDENTIFIED BY {}", self.account(clone), self.literal(password));
        let sql = if exists.is_some() {
            format!("ALTER USER {identified}")
        } else {
            format!("CREATE USER {identified}")
        };
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| format!("cannot set up {clone}: {e}"))?;
        let grants: Vec<String> = self
            .conn
            .query(format!("SHOW GRANTS FOR {}", self.account(base)))
            .await
            .map_err(|e| format!("cannot read the grants of {base}: {e}"))?;
        self.conn
            .query_drop(format!(
                "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {}",
                self.account(clone)
            ))
            .await
            .map_err(|e| format!("cannot reset the grants of {clone}: {e}"))?;
        let (from, to) = (format!(" TO {}", quoted(base)), format!(" TO {}", quoted(clone)));
        for grant in grants {
            // The USAGE line carries the base's password hash on MariaDB.
            if grant.starts_with("GRANT USAGE ON *.*") || !grant.contains(&from) {
                continue;
            }
            let grant = grant.replacen(&from, &to, 1);
            self.conn
                .query_drop(&grant)
                .await
                .map_err(|e| format!("cannot copy a grant of {base} to {clone}: {e}"))?;
        }
        Ok(())
    }
}

/// `'user'@'host'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub host: String,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}'@'{}'", self.user, self.host)
    }
}

/// An account as SHOW GRANTS writes it: `` `user`@`host` ``.
fn quoted(account: &Account) -> String {
    format!(
        "`{}`@`{}`",
        account.user.replace('`', "``"),
        account.host.replace('`', "``")
    )
}

/// Log in and prove the session works; returns the account it matched.
pub async fn probe(secret: &DbSecret, tls: &DatabaseTls) -> Result<Account, String> {
    let mut session = connect(secret, tls).await?;
    let account = session
        .current_account()
        .await
        .map_err(|e| format!("{} refused a query as {}: {e}", secret.engine_name, secret.username))?;
    let _ = session.conn.disconnect().await;
    Ok(account)
}

impl Session {
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}
