//! Schema migrations: numbered SQL files embedded in the binary, applied in
//! order, each in its own transaction, recorded in `schema_version`.
//! (refinery, the usual crate, pins an older rusqlite.)

use rusqlite::{Connection, TransactionBehavior};

use super::backend;
use crate::{Result, StoreError};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/001_initial.sql")),
    (2, include_str!("../../migrations/sqlite/002_iam.sql")),
    (3, include_str!("../../migrations/sqlite/003_audit.sql")),
    (4, include_str!("../../migrations/sqlite/004_groups.sql")),
    (5, include_str!("../../migrations/sqlite/005_mfa.sql")),
    (6, include_str!("../../migrations/sqlite/006_audit_anchor.sql")),
    (7, include_str!("../../migrations/sqlite/007_resources.sql")),
    (8, include_str!("../../migrations/sqlite/008_resources_by_name.sql")),
    (9, include_str!("../../migrations/sqlite/009_audit_log_start.sql")),
];

pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let current: i64 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))
        .map_err(backend)?;
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > newest {
        return Err(StoreError::Backend(format!(
            "the store has schema version {current}, newer than this binary knows ({newest}); upgrade tumbler"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}
