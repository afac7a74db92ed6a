//! Built-in database rotators: PostgreSQL and MySQL/MariaDB, each with
//! AWS's two strategies (single user, alternating users), driven by the
//! rotation engine like any rotation function.

mod mysql;
mod postgres;
pub mod registry;
mod rotator;
pub mod secret;
mod tls;

pub use registry::{DatabaseAuthorizer, DatabaseService, DbCtx};
pub use rotator::{
    DatabaseRotator, MYSQL_ALTERNATING_USERS, MYSQL_SINGLE_USER, POSTGRES_ALTERNATING_USERS, POSTGRES_SINGLE_USER,
    rotators,
};
pub use tls::DatabaseTls;

/// A login that worked: who the session acts as (PostgreSQL: the current
/// role; MySQL: the account's user) and, on MySQL, the host part of the
/// account it matched.
pub(crate) struct Login {
    pub acting_as: String,
    pub account_host: Option<String>,
}

/// Log in with `secret` and run a query (AWS's templates' `SELECT NOW()`).
pub(crate) async fn login(secret: &secret::DbSecret, tls: &DatabaseTls) -> Result<Login, String> {
    match secret.engine {
        secret::Engine::Postgres => postgres::probe(secret, tls).await.map(|role| Login {
            acting_as: role,
            account_host: None,
        }),
        secret::Engine::MySql => mysql::probe(secret, tls).await.map(|account| Login {
            acting_as: account.user,
            account_host: Some(account.host),
        }),
    }
}
