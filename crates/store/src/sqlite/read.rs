//! Read queries. Every statement goes through the prepared-statement cache.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::audit_rows::events_of;
use super::backend;
use super::read_log::ReadLog;
use crate::{
    AccessKeyRow, Cursor, KmsKeyRow, ListQuery, ManagedPolicyRow, PolicyVersionRow, PrincipalRow, ResourceRow, Result,
    SealedValue, SecretListing, SecretRow, SecretState, SortKey, StoreError, ValueKind, VersionMeta,
};

const SECRET_COLUMNS: &str = "id, account, region, name, arn, revision, created_ms, last_changed_ms, \
                              last_accessed_ms, deleted_ms, purge_at_ms, meta";

fn secret_row(r: &Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        id: r.get(0)?,
        account: r.get(1)?,
        region: r.get(2)?,
        name: r.get(3)?,
        arn: r.get(4)?,
        revision: r.get(5)?,
        created_ms: r.get(6)?,
        last_changed_ms: r.get(7)?,
        last_accessed_ms: r.get(8)?,
        deleted_ms: r.get(9)?,
        purge_at_ms: r.get(10)?,
        meta: r.get(11)?,
    })
}

fn kind(s: Option<String>) -> rusqlite::Result<Option<ValueKind>> {
    match s {
        None => Ok(None),
        Some(s) => ValueKind::parse(&s).map(Some).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, "bad value_kind".into())
        }),
    }
}

pub(crate) fn secret_where(conn: &Connection, clause: &str, args: &[&str]) -> Result<Option<SecretState>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE {clause}");
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let row = stmt
        .query_row(rusqlite::params_from_iter(args), secret_row)
        .optional()
        .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let versions = versions(conn, row.id)?;
    Ok(Some(SecretState { row, versions }))
}

fn versions(conn: &Connection, secret_id: i64) -> Result<Vec<VersionMeta>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version_id, created_ms, last_accessed_ms, value_kind, kms_key_id FROM secret_versions
             WHERE secret_id = ?1 ORDER BY created_ms, version_id",
        )
        .map_err(backend)?;
    let mut out: Vec<VersionMeta> = stmt
        .query_map([secret_id], |r| {
            Ok(VersionMeta {
                version_id: r.get(0)?,
                created_ms: r.get(1)?,
                last_accessed_ms: r.get(2)?,
                kind: kind(r.get(3)?)?,
                kms_key_id: r.get(4)?,
                stages: Vec::new(),
            })
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)?;
    let mut stmt = conn
        .prepare_cached("SELECT stage, version_id FROM version_stages WHERE secret_id = ?1 ORDER BY stage")
        .map_err(backend)?;
    let stages = stmt
        .query_map([secret_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(backend)?;
    for s in stages {
        let (stage, version_id) = s.map_err(backend)?;
        match out.iter_mut().find(|v| v.version_id == version_id) {
            Some(v) => v.stages.push(stage),
            None => {
                return Err(StoreError::Backend(format!(
                    "label {stage} points at a missing version"
                )));
            }
        }
    }
    Ok(out)
}

pub(crate) fn version_value(conn: &Connection, secret_id: i64, version_id: &str) -> Result<Option<SealedValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT value_kind, kms_key_id, wrapped_key, ciphertext FROM secret_versions
             WHERE secret_id = ?1 AND version_id = ?2 AND ciphertext IS NOT NULL",
        )
        .map_err(backend)?;
    stmt.query_row(params![secret_id, version_id], |r| {
        Ok(SealedValue {
            kind: kind(r.get(0)?)?.unwrap_or(ValueKind::String),
            kms_key_id: r.get(1)?,
            wrapped_key: r.get(2)?,
            ciphertext: r.get(3)?,
        })
    })
    .optional()
    .map_err(backend)
}

pub(crate) fn list(conn: &Connection, q: &ListQuery) -> Result<Vec<SecretListing>> {
    let key = match q.sort {
        SortKey::CreatedDate => "created_ms",
        SortKey::LastChangedDate => "last_changed_ms",
        SortKey::LastAccessedDate => "COALESCE(last_accessed_ms, 0)",
        SortKey::Name => "name",
    };
    let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
    let deleted = if q.include_deleted {
        ""
    } else {
        "AND deleted_ms IS NULL"
    };
    let after = if q.after.is_some() {
        format!("AND ({key}, id) {cmp} (?3, ?4)")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets WHERE account = ?1 AND region = ?2 {deleted} {after}
         ORDER BY {key} {dir}, id {dir} LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let limit = q.limit as i64;
    let rows: Vec<SecretRow> = match &q.after {
        None => stmt.query_map(params![q.account, q.region, 0, 0, limit], secret_row),
        Some(Cursor::Int(v, id)) => stmt.query_map(params![q.account, q.region, v, id, limit], secret_row),
        Some(Cursor::Text(v, id)) => stmt.query_map(params![q.account, q.region, v, id, limit], secret_row),
    }
    .map_err(backend)?
    .collect::<rusqlite::Result<_>>()
    .map_err(backend)?;

    let mut stmt = conn
        .prepare_cached("SELECT version_id, stage FROM version_stages WHERE secret_id = ?1 ORDER BY version_id, stage")
        .map_err(backend)?;
    rows.into_iter()
        .map(|row| {
            let mut stages: Vec<(String, Vec<String>)> = Vec::new();
            let pairs = stmt
                .query_map([row.id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend)?;
            for p in pairs {
                let (vid, stage) = p.map_err(backend)?;
                match stages.last_mut() {
                    Some((last, list)) if *last == vid => list.push(stage),
                    _ => stages.push((vid, vec![stage])),
                }
            }
            Ok(SecretListing { row, stages })
        })
        .collect()
}

pub(crate) fn due_for_purge(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<i64>> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM secrets WHERE purge_at_ms IS NOT NULL AND purge_at_ms <= ?1 LIMIT ?2")
        .map_err(backend)?;
    stmt.query_map(params![now_ms, limit as i64], |r| r.get(0))
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)
}

pub(crate) fn secret_regions(conn: &Connection, account: &str, name: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT region FROM secrets WHERE account = ?1 AND name = ?2 ORDER BY region")
        .map_err(backend)?;
    stmt.query_map(params![account, name], |r| r.get(0))
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)
}

const KMS_KEY_COLUMNS: &str = "key_id, account, region, arn, key_manager, state, created_ms, current_material, meta";

fn kms_key_row(r: &Row<'_>) -> rusqlite::Result<KmsKeyRow> {
    Ok(KmsKeyRow {
        key_id: r.get(0)?,
        account: r.get(1)?,
        region: r.get(2)?,
        arn: r.get(3)?,
        key_manager: r.get(4)?,
        state: r.get(5)?,
        created_ms: r.get(6)?,
        current_material: r.get(7)?,
        meta: r.get(8)?,
    })
}

pub(crate) fn kms_key(conn: &Connection, key_id: &str) -> Result<Option<KmsKeyRow>> {
    conn.prepare_cached(&format!("SELECT {KMS_KEY_COLUMNS} FROM kms_keys WHERE key_id = ?1"))
        .map_err(backend)?
        .query_row([key_id], kms_key_row)
        .optional()
        .map_err(backend)
}

pub(crate) fn kms_keys(conn: &Connection, account: &str, region: &str) -> Result<Vec<KmsKeyRow>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {KMS_KEY_COLUMNS} FROM kms_keys WHERE account = ?1 AND region = ?2 ORDER BY key_id"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map(params![account, region], kms_key_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

/// Keys in `state` whose `meta` time at `path` is at or before `now_ms`.
pub(crate) fn kms_keys_due(conn: &Connection, state: &str, path: &str, now_ms: i64) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT key_id FROM kms_keys WHERE state = ?1 AND json_extract(meta, ?2) <= ?3 ORDER BY key_id")
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![state, path, now_ms], |r| r.get(0))
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<String>>>().map_err(backend)
}

pub(crate) fn kms_aliases(conn: &Connection, account: &str, region: &str) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT alias_name, key_id, created_ms FROM kms_aliases WHERE account = ?1 AND region = ?2
             ORDER BY alias_name",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![account, region], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn kms_alias(conn: &Connection, account: &str, region: &str, alias: &str) -> Result<Option<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT key_id FROM kms_aliases WHERE account = ?1 AND region = ?2 AND alias_name = ?3")
        .map_err(backend)?;
    stmt.query_row(params![account, region, alias], |r| r.get(0))
        .optional()
        .map_err(backend)
}

pub(crate) fn kms_material(conn: &Connection, key_id: &str, version: i64) -> Result<Option<Vec<u8>>> {
    let mut stmt = conn
        .prepare_cached("SELECT wrapped FROM kms_key_material WHERE key_id = ?1 AND version = ?2")
        .map_err(backend)?;
    stmt.query_row(params![key_id, version], |r| r.get(0))
        .optional()
        .map_err(backend)
}

pub(crate) fn principal(conn: &Connection, arn: &str) -> Result<Option<PrincipalRow>> {
    let mut stmt = conn
        .prepare_cached("SELECT arn, account, kind, name, unique_id, created_ms, meta FROM principals WHERE arn = ?1")
        .map_err(backend)?;
    stmt.query_row([arn], |r| {
        Ok(PrincipalRow {
            arn: r.get(0)?,
            account: r.get(1)?,
            kind: r.get(2)?,
            name: r.get(3)?,
            unique_id: r.get(4)?,
            created_ms: r.get(5)?,
            meta: r.get(6)?,
        })
    })
    .optional()
    .map_err(backend)
}

pub(crate) fn access_key(conn: &Connection, access_key_id: &str) -> Result<Option<AccessKeyRow>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT access_key_id, principal_arn, status, sealed_secret, created_ms FROM access_keys
             WHERE access_key_id = ?1",
        )
        .map_err(backend)?;
    stmt.query_row([access_key_id], |r| {
        Ok(AccessKeyRow {
            access_key_id: r.get(0)?,
            principal_arn: r.get(1)?,
            status: r.get(2)?,
            sealed_secret: r.get(3)?,
            created_ms: r.get(4)?,
        })
    })
    .optional()
    .map_err(backend)
}

fn principal_row(r: &Row<'_>) -> rusqlite::Result<PrincipalRow> {
    Ok(PrincipalRow {
        arn: r.get(0)?,
        account: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        unique_id: r.get(4)?,
        created_ms: r.get(5)?,
        meta: r.get(6)?,
    })
}

pub(crate) fn principals(conn: &Connection, account: &str, kind: &str) -> Result<Vec<PrincipalRow>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT arn, account, kind, name, unique_id, created_ms, meta FROM principals
             WHERE account = ?1 AND kind = ?2 ORDER BY name",
        )
        .map_err(backend)?;
    let rows = stmt.query_map(params![account, kind], principal_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn access_keys_of(conn: &Connection, principal_arn: &str) -> Result<Vec<AccessKeyRow>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT access_key_id, principal_arn, status, sealed_secret, created_ms FROM access_keys
             WHERE principal_arn = ?1 ORDER BY created_ms, access_key_id",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([principal_arn], |r| {
            Ok(AccessKeyRow {
                access_key_id: r.get(0)?,
                principal_arn: r.get(1)?,
                status: r.get(2)?,
                sealed_secret: r.get(3)?,
                created_ms: r.get(4)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn inline_policies(conn: &Connection, principal_arn: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, document FROM inline_policies WHERE principal_arn = ?1 ORDER BY name")
        .map_err(backend)?;
    let rows = stmt
        .query_map([principal_arn], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

const POLICY_COLUMNS: &str = "arn, account, name, policy_id, created_ms, updated_ms, meta";

fn managed_policy_row(r: &Row<'_>) -> rusqlite::Result<ManagedPolicyRow> {
    Ok(ManagedPolicyRow {
        arn: r.get(0)?,
        account: r.get(1)?,
        name: r.get(2)?,
        policy_id: r.get(3)?,
        created_ms: r.get(4)?,
        updated_ms: r.get(5)?,
        meta: r.get(6)?,
    })
}

pub(crate) fn managed_policy(conn: &Connection, arn: &str) -> Result<Option<ManagedPolicyRow>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {POLICY_COLUMNS} FROM managed_policies WHERE arn = ?1"))
        .map_err(backend)?;
    stmt.query_row([arn], managed_policy_row).optional().map_err(backend)
}

pub(crate) fn managed_policies(conn: &Connection, account: &str) -> Result<Vec<ManagedPolicyRow>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {POLICY_COLUMNS} FROM managed_policies WHERE account = ?1 ORDER BY name"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map([account], managed_policy_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn policy_versions(conn: &Connection, policy_arn: &str) -> Result<Vec<PolicyVersionRow>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version_id, document, created_ms FROM policy_versions WHERE policy_arn = ?1
             ORDER BY created_ms, CAST(SUBSTR(version_id, 2) AS INTEGER)",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([policy_arn], |r| {
            Ok(PolicyVersionRow {
                version_id: r.get(0)?,
                document: r.get(1)?,
                created_ms: r.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn attached_policies(conn: &Connection, principal_arn: &str) -> Result<Vec<String>> {
    strings(
        conn,
        "SELECT policy_arn FROM policy_attachments WHERE principal_arn = ?1 ORDER BY policy_arn",
        principal_arn,
    )
}

pub(crate) fn audit_anchor(conn: &Connection) -> Result<Option<crate::AuditAnchor>> {
    conn.prepare_cached("SELECT seq, mac, anchor_mac, pruned_ms FROM audit_anchor WHERE id = 1")
        .map_err(backend)?
        .query_row([], |r| {
            Ok(crate::AuditAnchor {
                seq: r.get::<_, i64>(0)? as u64,
                mac: r.get(1)?,
                anchor_mac: r.get(2)?,
                pruned_ms: r.get(3)?,
            })
        })
        .optional()
        .map_err(backend)
}

/// Where readers of the log of reads start (after pruned records).
pub(crate) fn audit_log_start(conn: &Connection) -> Result<u64> {
    conn.prepare_cached("SELECT log_start FROM audit_anchor WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)).optional())
        .map(|v| v.unwrap_or(0) as u64)
        .map_err(backend)
}

/// MFA devices whose `column` (`serial` or `account`) is `value`.
pub(crate) fn mfa_devices(conn: &Connection, column: &str, value: &str) -> Result<Vec<crate::MfaDeviceRow>> {
    let sql = match column {
        "serial" => {
            "SELECT serial, account, sealed_seed, created_ms, user_arn, enabled_ms, last_step
                     FROM mfa_devices WHERE serial = ?1"
        }
        _ => {
            "SELECT serial, account, sealed_seed, created_ms, user_arn, enabled_ms, last_step
              FROM mfa_devices WHERE account = ?1 ORDER BY serial"
        }
    };
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map([value], |r| {
            Ok(crate::MfaDeviceRow {
                serial: r.get(0)?,
                account: r.get(1)?,
                sealed_seed: r.get(2)?,
                created_ms: r.get(3)?,
                user_arn: r.get(4)?,
                enabled_ms: r.get(5)?,
                last_step: r.get(6)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

/// The single text column of a query with one text parameter.
pub(crate) fn strings(conn: &Connection, sql: &str, arg: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map([arg], |r| r.get(0)).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn attachment_count(conn: &Connection, policy_arn: &str) -> Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM policy_attachments WHERE policy_arn = ?1")
        .map_err(backend)?
        .query_row([policy_arn], |r| r.get(0))
        .map_err(backend)
}

/// What a read of the audit trail may have raced.
pub(crate) struct AuditRead {
    pub events: Vec<crate::StoredAuditEvent>,
    /// Numbers `(after, before)` between which an event of the table
    /// committed after the snapshot began would be missing.
    pub race: Option<(u64, u64)>,
    /// The prune anchor of the snapshot: a later one, committed while the
    /// log was read, may have freed records it read.
    pub pruned: u64,
}

/// Audit events matching a query, in `seq` order (newest first when
/// descending), from the table and the log of reads together. Rows and
/// records are read in order and their events filtered here: a scan, which
/// is fine for an operator's search, and the write path keeps no index.
///
/// Also returns, when the log reaches past the table, the numbers between
/// which an event of the table committed after this snapshot would be
/// missing here (see `SqliteStore::audit_events`).
pub(crate) fn audit_events(c: &Connection, q: &crate::AuditQuery, log: Option<&ReadLog>) -> Result<AuditRead> {
    // This first read fixes the transaction's snapshot. The log is looked at
    // after it: an event in the table was stored after every earlier one
    // in the log, so no event before the table's last one here is missed.
    let pruned = audit_anchor(c)?.map_or(0, |a| a.seq);
    let table_last: u64 = c
        .prepare_cached("SELECT IFNULL(MAX(seq), 0) FROM audit_events")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map_err(backend)? as u64;
    let mut race = None;
    let mut records = match log {
        Some(log) => {
            let cannot = |e: std::io::Error| StoreError::Backend(format!("cannot read the audit log of reads: {e}"));
            log.refresh().map_err(cannot)?;
            // A reader that was behind a prune committed since found zeros
            // where it had got to: it goes on from where the prune left readers.
            log.skip_to(audit_log_start(c)?).map_err(cannot)?;
            let (entries, _) = log.entries_after(pruned);
            if let Some(last) = entries.last()
                && last.last_seq() > table_last
            {
                race = Some((table_last, last.last_seq()));
            }
            let mut entries: Vec<_> = if q.descending {
                entries
                    .into_iter()
                    .rev()
                    .filter(|e| q.before_seq == 0 || e.first_seq < q.before_seq)
                    .collect()
            } else {
                entries.into_iter().filter(|e| e.last_seq() > q.after_seq).collect()
            };
            entries.reverse(); // popped from the end
            entries
        }
        None => Vec::new(),
    };
    // A block row is numbered by its first event, so the row holding
    // `after_seq + 1` may start at or before `after_seq`.
    let (sql, bound) = if q.descending {
        if q.before_seq > 0 {
            (
                "SELECT seq, json, mac FROM audit_events WHERE seq < ?1 ORDER BY seq DESC",
                q.before_seq,
            )
        } else {
            (
                "SELECT seq, json, mac FROM audit_events WHERE seq >= ?1 ORDER BY seq DESC",
                0,
            )
        }
    } else {
        (
            "SELECT seq, json, mac FROM audit_events
             WHERE seq >= IFNULL((SELECT MAX(seq) FROM audit_events WHERE seq <= ?1), 0) ORDER BY seq",
            q.after_seq,
        )
    };
    let in_bounds = |seq: u64| {
        seq > pruned
            && if q.descending {
                q.before_seq == 0 || seq < q.before_seq
            } else {
                seq > q.after_seq
            }
    };
    let mut stmt = c.prepare_cached(sql).map_err(backend)?;
    let mut rows = stmt.query([bound as i64]).map_err(backend)?;
    let mut row = rows
        .next()
        .map_err(backend)?
        .map(events_of)
        .transpose()
        .map_err(backend)?;
    let mut out = Vec::new();
    loop {
        // The next row or record in order, whichever comes first.
        let from_log = match (&row, records.last()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(r), Some(e)) => {
                let first = r.first().map_or(0, |x| x.seq);
                if q.descending {
                    e.first_seq > first
                } else {
                    e.first_seq < first
                }
            }
        };
        let mut events = match (from_log, log) {
            (true, Some(log)) => log.events(&records.pop().expect("checked above")),
            _ => {
                let next = rows
                    .next()
                    .map_err(backend)?
                    .map(events_of)
                    .transpose()
                    .map_err(backend)?;
                std::mem::replace(&mut row, next).unwrap_or_default()
            }
        };
        if q.descending {
            events.reverse();
        }
        for e in events {
            if in_bounds(e.seq) && q.matches(&e.json) {
                out.push(e);
                if q.limit > 0 && out.len() >= q.limit {
                    return Ok(AuditRead {
                        events: out,
                        race,
                        pruned,
                    });
                }
            }
        }
    }
    Ok(AuditRead {
        events: out,
        race,
        pruned,
    })
}

/// Whether an event between `after` and `before` (exclusive) is in the table.
pub(crate) fn audit_rows_between(c: &Connection, after: u64, before: u64) -> Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM audit_events WHERE seq > ?1 AND seq < ?2)")
        .and_then(|mut s| s.query_row([after as i64, before as i64], |r| r.get::<_, bool>(0)))
        .map_err(backend)
}

const RESOURCE_COLUMNS: &str = "arn, kind, account, region, name, created_ms, revision, meta";

fn resource_row(r: &Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok(ResourceRow {
        arn: r.get(0)?,
        kind: r.get(1)?,
        account: r.get(2)?,
        region: r.get(3)?,
        name: r.get(4)?,
        created_ms: r.get(5)?,
        revision: r.get(6)?,
        meta: r.get(7)?,
    })
}

pub(crate) fn resource(conn: &Connection, arn: &str) -> Result<Option<ResourceRow>> {
    conn.prepare_cached(&format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE arn = ?1"))
        .map_err(backend)?
        .query_row([arn], resource_row)
        .optional()
        .map_err(backend)
}

pub(crate) fn resources(conn: &Connection, kind: &str, account: &str, region: &str) -> Result<Vec<ResourceRow>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = ?1 AND account = ?2 AND region = ?3 ORDER BY name"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map([kind, account, region], resource_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn resources_named(conn: &Connection, kind: &str, name: &str) -> Result<Vec<ResourceRow>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = ?1 AND name = ?2 ORDER BY account, region"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map([kind, name], resource_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

pub(crate) fn resources_of_kind(conn: &Connection, kind: &str) -> Result<Vec<ResourceRow>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = ?1 ORDER BY account, region, name"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map([kind], resource_row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}
