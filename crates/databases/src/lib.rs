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
