//! SQLite backend: WAL, `synchronous=FULL`, foreign keys on, one writer
//! thread with group commit, a small pool of reader connections, and a
//! read-through cache for the hot reads.
//!
//! Why our own pool and writer instead of a crate: the pool crates for
//! rusqlite pin older rusqlite versions (two libsqlite3-sys cannot link), and
//! group commit needs a writer that owns its connection anyway.

mod audit_rows;
mod cache;
mod migrate;
mod read;
mod read_log;
mod write;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};

use crate::{
    AccessKeyRow, AccessTouch, Applied, AuditAnchor, AuditLinker, AuditQuery, AuditRecord, KmsKeyRow, ListQuery,
    ManagedPolicyRow, MfaDeviceRow, PolicyVersionRow, PrincipalRow, RecordDone, ResourceRow, Result, RotationCounts,
    SealedValue, SecretListing, SecretState, Store, StoreError, StoredAuditEvent, Write,
};

/// How a row of events of reads is stored; public for the fuzz targets.
pub use audit_rows::{
    decode_block as decode_audit_block, encode_block as encode_audit_block,
    encode_sealed_block as encode_sealed_audit_block,
};

/// Every event that can be read from an audit log of reads (the file
/// `<db>-audit`), damaged records as events with empty JSON; for the fuzz
/// target.
pub fn audit_log_events(path: &Path) -> std::io::Result<Vec<StoredAuditEvent>> {
    let log = read_log::ReadLog::open(path, 0)?;
    let (entries, _) = log.entries_after(0);
    Ok(entries.iter().flat_map(|e| log.events(e)).collect())
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub struct SqliteStore {
    cache: Arc<cache::Cache>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    writer: mpsc::Sender<write::Job>,
    _writer_thread: Arc<write::WriterHandle>,
    _checkpointer: write::Checkpointer,
    linker: Option<Arc<dyn AuditLinker>>,
    head: write::SharedHead,
    /// Events of reads go here (see read_log.rs); without it, into the table.
    log: Option<Arc<read_log::ReadLog>>,
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the store at `path`, without
    /// an audit trail: calls that carry an audit event fail.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, None)
    }

    /// Open the store with its audit trail chained by `linker`.
    pub fn open_audited(path: &Path, linker: Arc<dyn AuditLinker>) -> Result<Self> {
        Self::open_with(path, Some(linker))
    }

    fn open_with(path: &Path, linker: Option<Arc<dyn AuditLinker>>) -> Result<Self> {
        Self::open_tuned(path, linker, write::CheckpointTiming::default(), true)
    }

    pub(crate) fn open_tuned(
        path: &Path,
        linker: Option<Arc<dyn AuditLinker>>,
        timing: write::CheckpointTiming,
        read_log: bool,
    ) -> Result<Self> {
        let mut conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        // The writer checkpoints itself each time the WAL passes 8 MB (see
        // write::WRITER_CHECKPOINT_PAGES); the checkpointer thread does the
        // rest, off the writer's path.
        conn.pragma_update(None, "wal_autocheckpoint", timing.writer_pages)
            .map_err(backend)?;
        // A WAL that grew under a burst is cut back after it restarts.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(backend)?;
        configure(&conn)?;
        migrate::run(&mut conn)?;
        restrict_permissions(path);

        let readers = (0..4)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(backend)?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        let cache = Arc::new(cache::Cache::default());
        let checkpoint_conn = Connection::open(path).map_err(backend)?;
        configure(&checkpoint_conn)?;
        let clock = write::CheckpointClock::new();
        let log = match (&linker, read_log) {
            (Some(_), true) => {
                let start = read::audit_log_start(&conn)?;
                let log = read_log::ReadLog::open(&read_log::path_for(path), start)
                    .map_err(|e| StoreError::Backend(format!("cannot open the audit log of reads: {e}")))?;
                Some(Arc::new(log))
            }
            _ => None,
        };
        let head = write::chain_head(&conn, log.as_deref())?;
        let checkpointer = write::spawn_checkpointer(checkpoint_conn, log.clone(), timing, clock.clone())?;
        let setup = write::WriterSetup {
            linker: linker.clone(),
            head: head.clone(),
            log: log.clone(),
            timing,
            clock,
        };
        let (writer, handle) = write::spawn(conn, cache.clone(), setup)?;
        Ok(Self {
            cache,
            readers,
            next_reader: AtomicUsize::new(0),
            writer,
            _writer_thread: Arc::new(handle),
            _checkpointer: checkpointer,
            linker,
            head,
            log,
        })
    }

    /// Run `f` on a reader connection, inside one read transaction so that
    /// its several statements see one snapshot (a secret's versions and its
    /// labels from the same commit). Reads are short (indexed lookups on
    /// cached pages), so they run on the caller's thread.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        // BEGIN/COMMIT go through the statement cache; execute_batch would
        // parse them on every read.
        let in_snapshot = |conn: &Connection| {
            conn.prepare_cached("BEGIN")
                .and_then(|mut s| s.execute([]))
                .map_err(backend)?;
            let out = f(conn);
            let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
            conn.prepare_cached(end)
                .and_then(|mut s| s.execute([]))
                .map_err(backend)?;
            out
        };
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = self.readers[(start + i) % n].try_lock() {
                return in_snapshot(&conn);
            }
        }
        let conn = self.readers[start % n]
            .lock()
            .map_err(|_| StoreError::Backend("reader connection poisoned".into()))?;
        in_snapshot(&conn)
    }

    /// Read a secret through the cache.
    fn load_secret(
        &self,
        f: impl FnOnce(&Connection) -> Result<Option<SecretState>>,
    ) -> Result<Option<Arc<SecretState>>> {
        let generation = self.cache.generation();
        let state = self.read(f)?.map(Arc::new);
        if let Some(s) = &state {
            self.cache.put_secret(generation, s.clone());
        }
        Ok(state)
    }

    /// `PRAGMA integrity_check`, for tests and `tumbler` diagnostics.
    pub fn integrity_check(&self) -> Result<String> {
        self.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(backend))
    }
}

/// The store holds only ciphertext, but its metadata is nobody else's
/// business either: owner-only, like the rest of the data directory.
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

impl Store for SqliteStore {
    fn secret_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<Arc<SecretState>>> {
        if let Some(s) = self.cache.secret_by_name(account, region, name) {
            return Ok(Some(s));
        }
        self.load_secret(|c| {
            read::secret_where(
                c,
                "account = ?1 AND region = ?2 AND name = ?3",
                &[account, region, name],
            )
        })
    }

    fn secret_by_arn(&self, arn: &str) -> Result<Option<Arc<SecretState>>> {
        if let Some(s) = self.cache.secret_by_arn(arn) {
            return Ok(Some(s));
        }
        self.load_secret(|c| read::secret_where(c, "arn = ?1", &[arn]))
    }

    fn secret_by_id(&self, id: i64) -> Result<Option<Arc<SecretState>>> {
        if let Some(s) = self.cache.secret_by_id(id) {
            return Ok(Some(s));
        }
        let id = id.to_string();
        self.load_secret(|c| read::secret_where(c, "id = CAST(?1 AS INTEGER)", &[id.as_str()]))
    }

    fn version_value(&self, secret_id: i64, version_id: &str) -> Result<Option<Arc<SealedValue>>> {
        if let Some(v) = self.cache.value(secret_id, version_id) {
            return Ok(Some(v));
        }
        let generation = self.cache.generation();
        let v = self
            .read(|c| read::version_value(c, secret_id, version_id))?
            .map(Arc::new);
        if let Some(v) = &v {
            self.cache.put_value(generation, secret_id, version_id, v.clone());
        }
        Ok(v)
    }

    fn list_secrets(&self, query: &ListQuery) -> Result<Vec<SecretListing>> {
        self.read(|c| read::list(c, query))
    }

    fn secrets_due_for_purge(&self, now_ms: i64, limit: usize) -> Result<Vec<i64>> {
        self.read(|c| read::due_for_purge(c, now_ms, limit))
    }

    fn secrets_with_unsynced_replicas(&self, limit: usize) -> Result<Vec<i64>> {
        self.read(|c| {
            // LIKE skips the JSON parse for the many secrets without replicas.
            let mut stmt = c
                .prepare_cached(
                    "SELECT id FROM secrets WHERE deleted_ms IS NULL AND meta LIKE '%\"replicas\"%'
                     AND EXISTS (SELECT 1 FROM json_each(secrets.meta, '$.replicas') r
                                 WHERE json_extract(r.value, '$.status') IS NOT 'InSync')
                     ORDER BY id LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([limit as i64], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<i64>>>().map_err(backend)
        })
    }

    fn secrets_with_rotation(&self, limit: usize) -> Result<Vec<i64>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id FROM secrets WHERE deleted_ms IS NULL AND meta LIKE '%\"rotationEnabled\"%'
                     ORDER BY id LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([limit as i64], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<i64>>>().map_err(backend)
        })
    }

    fn resource(&self, arn: &str) -> Result<Option<ResourceRow>> {
        self.read(|c| read::resource(c, arn))
    }

    fn resources(&self, kind: &str, account: &str, region: &str) -> Result<Vec<ResourceRow>> {
        self.read(|c| read::resources(c, kind, account, region))
    }

    fn resources_of_kind(&self, kind: &str) -> Result<Vec<ResourceRow>> {
        self.read(|c| read::resources_of_kind(c, kind))
    }

    fn resources_named(&self, kind: &str, name: &str) -> Result<Vec<ResourceRow>> {
        self.read(|c| read::resources_named(c, kind, name))
    }

    fn rotation_counts(&self) -> Result<RotationCounts> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT
                       coalesce(sum(json_extract(meta, '$.rotationEnabled') = 1), 0),
                       coalesce(sum(json_type(meta, '$.rotationRun') IS NOT NULL), 0),
                       coalesce(sum(json_extract(meta, '$.rotationRun.attempts') > 0), 0),
                       coalesce(sum(json_type(meta, '$.rotationRun') IS NULL
                                    AND json_type(meta, '$.rotationFailure') IS NOT NULL), 0)
                     FROM secrets WHERE deleted_ms IS NULL AND meta LIKE '%\"rotationEnabled\"%'",
                )
                .map_err(backend)?;
            stmt.query_row([], |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(RotationCounts {
                    enabled: n(0)?,
                    running: n(1)?,
                    retrying: n(2)?,
                    failed: n(3)?,
                })
            })
            .map_err(backend)
        })
    }

    fn secrets_due_for_rotation(&self, now_ms: i64, limit: usize) -> Result<Vec<i64>> {
        self.read(|c| {
            // LIKE skips the JSON parse for the many secrets never rotated.
            let mut stmt = c
                .prepare_cached(
                    "SELECT id FROM secrets WHERE deleted_ms IS NULL AND meta LIKE '%\"rotationEnabled\":true%'
                     AND (json_extract(meta, '$.rotationRun.nextAttemptMs') <= ?1
                              AND json_extract(meta, '$.rotationRun.leaseUntilMs') <= ?1
                          OR json_extract(meta, '$.rotationRun') IS NULL
                              AND json_extract(meta, '$.nextRotationStartMs') <= ?1)
                     ORDER BY id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([now_ms, limit as i64], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<i64>>>().map_err(backend)
        })
    }

    fn secret_regions(&self, account: &str, name: &str) -> Result<Vec<String>> {
        self.read(|c| read::secret_regions(c, account, name))
    }

    fn kms_key(&self, key_id: &str) -> Result<Option<Arc<KmsKeyRow>>> {
        if let Some(k) = self.cache.kms_key(key_id) {
            return Ok(Some(k));
        }
        let generation = self.cache.generation();
        let k = self.read(|c| read::kms_key(c, key_id))?.map(Arc::new);
        if let Some(k) = &k {
            self.cache.put_kms_key(generation, k.clone());
        }
        Ok(k)
    }

    fn kms_alias(&self, account: &str, region: &str, alias_name: &str) -> Result<Option<String>> {
        if let Some(k) = self.cache.kms_alias(account, region, alias_name) {
            return Ok(Some(k));
        }
        let generation = self.cache.generation();
        let k = self.read(|c| read::kms_alias(c, account, region, alias_name))?;
        if let Some(k) = &k {
            self.cache
                .put_kms_alias(generation, account, region, alias_name, k.clone());
        }
        Ok(k)
    }

    fn kms_material(&self, key_id: &str, version: i64) -> Result<Option<Vec<u8>>> {
        self.read(|c| read::kms_material(c, key_id, version))
    }

    fn kms_keys_due_for_deletion(&self, now_ms: i64) -> Result<Vec<String>> {
        self.read(|c| read::kms_keys_due(c, "PendingDeletion", "$.DeletionMs", now_ms))
    }

    fn kms_keys_due_for_rotation(&self, now_ms: i64) -> Result<Vec<String>> {
        self.read(|c| read::kms_keys_due(c, "Enabled", "$.NextRotationMs", now_ms))
    }

    fn kms_keys(&self, account: &str, region: &str) -> Result<Vec<Arc<KmsKeyRow>>> {
        self.read(|c| read::kms_keys(c, account, region))
            .map(|rows| rows.into_iter().map(Arc::new).collect())
    }

    fn kms_aliases(&self, account: &str, region: &str) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| read::kms_aliases(c, account, region))
    }

    fn principal(&self, arn: &str) -> Result<Option<PrincipalRow>> {
        self.read(|c| read::principal(c, arn))
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>> {
        self.read(|c| read::access_key(c, access_key_id))
    }

    fn principals(&self, account: &str, kind: &str) -> Result<Vec<PrincipalRow>> {
        self.read(|c| read::principals(c, account, kind))
    }

    fn access_keys_of(&self, principal_arn: &str) -> Result<Vec<AccessKeyRow>> {
        self.read(|c| read::access_keys_of(c, principal_arn))
    }

    fn inline_policies(&self, principal_arn: &str) -> Result<Vec<(String, String)>> {
        self.read(|c| read::inline_policies(c, principal_arn))
    }

    fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicyRow>> {
        self.read(|c| read::managed_policy(c, arn))
    }

    fn managed_policies(&self, account: &str) -> Result<Vec<ManagedPolicyRow>> {
        self.read(|c| read::managed_policies(c, account))
    }

    fn policy_versions(&self, policy_arn: &str) -> Result<Vec<PolicyVersionRow>> {
        self.read(|c| read::policy_versions(c, policy_arn))
    }

    fn attached_policies(&self, principal_arn: &str) -> Result<Vec<String>> {
        self.read(|c| read::attached_policies(c, principal_arn))
    }

    fn attachment_count(&self, policy_arn: &str) -> Result<i64> {
        self.read(|c| read::attachment_count(c, policy_arn))
    }

    fn group_members(&self, group_arn: &str) -> Result<Vec<String>> {
        self.read(|c| {
            read::strings(
                c,
                "SELECT user_arn FROM group_members WHERE group_arn = ?1 ORDER BY user_arn",
                group_arn,
            )
        })
    }

    fn mfa_device(&self, serial: &str) -> Result<Option<MfaDeviceRow>> {
        self.read(|c| Ok(read::mfa_devices(c, "serial", serial)?.pop()))
    }

    fn mfa_devices(&self, account: &str) -> Result<Vec<MfaDeviceRow>> {
        self.read(|c| read::mfa_devices(c, "account", account))
    }

    fn groups_of(&self, user_arn: &str) -> Result<Vec<String>> {
        self.read(|c| {
            read::strings(
                c,
                "SELECT group_arn FROM group_members WHERE user_arn = ?1 ORDER BY group_arn",
                user_arn,
            )
        })
    }

    fn apply_with_event(&self, writes: Vec<Write>, event: Option<AuditRecord>) -> Result<Vec<Applied>> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.writer
            .send(write::Job::Apply { writes, event, reply })
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?
    }

    fn record(&self, events: Vec<AuditRecord>, done: RecordDone) {
        // Straight into the log of reads on the caller's thread, unless the
        // writer holds the chain (it is committing a change) or has not
        // taken the log over yet: then through the writer.
        if let (Some(log), Some(linker)) = (&self.log, &self.linker)
            && log.owned()
            && let Ok(mut head) = self.head.try_lock()
        {
            let r = write::log_reads(log, linker.as_ref(), &mut head, events);
            drop(head);
            done(r);
            return;
        }
        if let Err(mpsc::SendError(write::Job::Record { done, .. })) =
            self.writer.send(write::Job::Record { events, done })
        {
            done(Err(StoreError::Backend("the writer thread has stopped".into())));
        }
    }

    fn audit_events(&self, query: &AuditQuery) -> Result<Vec<StoredAuditEvent>> {
        // Two changes committed while a read runs can make it see what is
        // not there; it reads again from a new snapshot, which holds them:
        // - an event of a change committed after the snapshot began, between
        //   the table's last event and the log's, would look removed;
        // - a prune (by any process) frees the log's records before its
        //   anchor, which then read as zeros, as if damaged. Prunes are
        //   rare, so this one is given more tries.
        let (mut raced_changes, mut raced_prunes) = (0, 0);
        loop {
            let read = self.read(|c| read::audit_events(c, query, self.log.as_deref()))?;
            if self.log.is_some()
                && raced_prunes < 20
                && self.read(read::audit_anchor)?.map_or(0, |a| a.seq) != read.pruned
            {
                raced_prunes += 1;
                continue;
            }
            match read.race {
                Some((after, before))
                    if raced_changes < 4 && self.read(|c| read::audit_rows_between(c, after, before))? =>
                {
                    raced_changes += 1;
                }
                _ => return Ok(read.events),
            }
        }
    }

    fn audit_anchor(&self) -> Result<Option<AuditAnchor>> {
        self.read(read::audit_anchor)
    }

    fn touch(&self, touch: AccessTouch) {
        // Dropping a touch when the writer is gone is fine: it is bookkeeping.
        let _ = self.writer.send(write::Job::Touch(touch));
    }
}

#[cfg(test)]
mod tests;
