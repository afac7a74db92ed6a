//! The single writer. Jobs queue on a channel; the thread drains what is
//! waiting, runs each job inside its own SAVEPOINT (so one failing job does
//! not undo the others), commits once, and only then answers every job.
//! One fsync then covers a whole batch of concurrent writers (group commit),
//! and no caller hears "done" before its write is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::audit_rows::{encode_block, encode_sealed_block, events_of, insert_row};
use super::backend;
use super::cache::{Cache, Changed};
use super::read_log::ReadLog;
use crate::{
    AccessTouch, Applied, AuditLinker, AuditRecord, NewVersion, PolicyVersionRow, RecordDone, Result, SealedValue,
    SecretRow, StoreError, StoredAuditEvent, Write,
};

const MAX_BATCH: usize = 256;

/// How often the checkpointer runs: the longest time an audit event of a
/// read sits committed but not yet fsynced.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// While commits keep coming, the checkpointer runs this often: it copies
/// and syncs most of the WAL in the background, so that the writer's own
/// checkpoint (below) has only the last few milliseconds' frames left.
const CHECKPOINT_BUSY_EVERY: Duration = Duration::from_millis(10);
/// How many pages (of 4 KB) the WAL may hold before the writer checkpoints.
/// SQLite starts the WAL over only after a checkpoint has copied all of it,
/// which the checkpointer alone never achieves under a steady stream of
/// commits (it copies while the writer appends), so without this the WAL
/// would grow as long as the load lasts. With the checkpointer ahead, the
/// writer's checkpoint stalls one commit briefly, once per 8 MB of WAL.
const WRITER_CHECKPOINT_PAGES: u32 = 2048;
/// The checkpointer's niceness (0 normal, 19 lowest).
const CHECKPOINT_NICE: i32 = 10;

type Reply = mpsc::SyncSender<Result<Vec<Applied>>>;

pub(crate) enum Job {
    Apply {
        writes: Vec<Write>,
        event: Option<AuditRecord>,
        reply: Reply,
    },
    Record {
        events: Vec<AuditRecord>,
        done: RecordDone,
    },
    Touch(AccessTouch),
}

pub(crate) struct WriterHandle {
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // The thread ends when every sender is gone; the store owns the last
        // sender and drops it before this handle, so joining cannot hang.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The end of the audit chain: the last event's number and MAC.
#[derive(Clone)]
pub(crate) struct ChainHead {
    seq: u64,
    mac: Vec<u8>,
}

/// The chain's head, shared by the writer (which holds it for a whole batch,
/// so that no event of a read links to an event of a change that may still
/// be rolled back) and the store's way for events of reads into the log.
pub(crate) type SharedHead = Arc<Mutex<ChainHead>>;

pub(crate) fn lock_head(head: &SharedHead) -> MutexGuard<'_, ChainHead> {
    head.lock().unwrap_or_else(|p| p.into_inner())
}

/// The most JSON one block of the log of reads holds before a batch goes on
/// in another: readers refuse blocks of more than 64 MB as damage, and a
/// batch is every call that finished in one turn of the runtime.
const MAX_BLOCK_JSON: usize = 16 << 20;

/// Append events of reads to the log, a block for each `MAX_BLOCK_JSON` of
/// them (nearly always one), each chained as one after `head`, which moves
/// on with each block stored. On an error the blocks before stay stored.
pub(crate) fn log_reads(
    log: &ReadLog,
    linker: &dyn AuditLinker,
    head: &mut ChainHead,
    events: Vec<AuditRecord>,
) -> Result<()> {
    log_reads_in_blocks_of(log, linker, head, &events, MAX_BLOCK_JSON)
}

fn log_reads_in_blocks_of(
    log: &ReadLog,
    linker: &dyn AuditLinker,
    head: &mut ChainHead,
    mut events: &[AuditRecord],
    max_json: usize,
) -> Result<()> {
    while !events.is_empty() {
        // At least one event a block, however large.
        let mut size = 0;
        let n = events
            .iter()
            .position(|e| {
                size += e.json.len() + 4;
                size > max_json
            })
            .unwrap_or(events.len())
            .max(1);
        let (block, rest) = events.split_at(n);
        events = rest;
        let count = u32::try_from(n).map_err(|_| StoreError::Backend("an audit block of too many events".into()))?;
        let (first, last) = (head.seq + 1, head.seq + u64::from(count));
        let mut mac = Vec::new();
        let body = encode_sealed_block(block.iter().map(|e| e.json.as_str()), |sealed| {
            mac = linker.link_block(&head.mac, first, last, sealed);
            mac.clone()
        });
        log.append(first, count, &body)
            .map_err(|e| StoreError::Backend(format!("cannot append to the audit log of reads: {e}")))?;
        *head = ChainHead { seq: last, mac };
    }
    Ok(())
}

struct Writer {
    conn: Connection,
    linker: Option<Arc<dyn AuditLinker>>,
    shared_head: SharedHead,
    /// The head during a batch (the shared one is locked meanwhile).
    head: ChainHead,
    log: Option<Arc<ReadLog>>,
    /// Log space to give back once a prune is committed.
    prune_log_upto: Option<(u64, u64)>,
    clock: Arc<CheckpointClock>,
    overdue: Duration,
    /// The connection's current `synchronous` setting is FULL.
    full_sync: bool,
    /// This batch's events of reads not yet stored: they go in as one block.
    block: Vec<StoredAuditEvent>,
}

/// Where the chain ends: after the last event in the table or in the log of
/// reads, whichever is later, or at the prune anchor, or at the start.
pub(crate) fn chain_head(conn: &Connection, log: Option<&ReadLog>) -> Result<SharedHead> {
    // The last row may be a block: its last event is the chain's head.
    let head = conn
        .query_row(
            "SELECT seq, json, mac FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok(events_of(r)?.pop()),
        )
        .optional()
        .map_err(backend)?
        .flatten()
        .map(|e| ChainHead { seq: e.seq, mac: e.mac });
    let logged = log
        .and_then(ReadLog::last_event)
        .map(|e| ChainHead { seq: e.seq, mac: e.mac });
    let head = match (head, logged) {
        (Some(t), Some(l)) => Some(if l.seq > t.seq { l } else { t }),
        (t, l) => t.or(l),
    };
    // With every event pruned but the anchor's, the chain goes on from it.
    let head = match head {
        Some(h) => h,
        None => match crate::sqlite::read::audit_anchor(conn)? {
            Some(a) => ChainHead { seq: a.seq, mac: a.mac },
            None => ChainHead {
                seq: 0,
                mac: vec![0; 32],
            },
        },
    };
    Ok(Arc::new(Mutex::new(head)))
}

pub(crate) struct WriterSetup {
    pub linker: Option<Arc<dyn AuditLinker>>,
    pub head: SharedHead,
    pub log: Option<Arc<ReadLog>>,
    pub timing: CheckpointTiming,
    pub clock: Arc<CheckpointClock>,
}

pub(crate) fn spawn(
    conn: Connection,
    cache: Arc<Cache>,
    setup: WriterSetup,
) -> Result<(mpsc::Sender<Job>, WriterHandle)> {
    let WriterSetup {
        linker,
        head: shared_head,
        log,
        timing,
        clock,
    } = setup;
    let head = lock_head(&shared_head).clone();
    let (tx, rx) = mpsc::channel::<Job>();
    let mut writer = Writer {
        conn,
        linker,
        shared_head,
        head,
        log,
        prune_log_upto: None,
        clock,
        overdue: timing.overdue,
        full_sync: true,
        block: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name("tumbler-store-writer".into())
        .spawn(move || writer.run(rx, &cache))
        .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
    Ok((tx, WriterHandle { thread: Some(thread) }))
}

/// Copy the WAL into the database. SQLite syncs the WAL first, which makes
/// every commit in it durable, including those committed without an fsync.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    checkpoint_progress(conn).map(|_| ())
}

/// [`checkpoint`], telling the frames in the WAL and how many are copied.
fn checkpoint_progress(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
}

/// How often the checkpointer runs, and when the writer steps in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckpointTiming {
    /// The longest the checkpointer waits (when there is nothing to copy).
    pub every: Duration,
    /// How soon it runs again after a checkpoint that found new frames.
    pub busy_every: Duration,
    /// With no checkpoint for this long (the niced checkpointer gets no CPU
    /// on a saturated machine), the writer checkpoints itself after its
    /// next commit: the WAL stays bounded and events of reads reach the
    /// disk, at the cost of that one commit's latency.
    pub overdue: Duration,
    /// The writer checkpoints after a commit that leaves at least this many
    /// pages in the WAL (SQLite's `wal_autocheckpoint`; 0 never).
    pub writer_pages: u32,
}

impl Default for CheckpointTiming {
    fn default() -> Self {
        CheckpointTiming {
            every: CHECKPOINT_EVERY,
            busy_every: CHECKPOINT_BUSY_EVERY,
            overdue: CHECKPOINT_EVERY * 10,
            writer_pages: WRITER_CHECKPOINT_PAGES,
        }
    }
}

/// When a checkpoint last finished, shared by the checkpointer and the writer.
pub(crate) struct CheckpointClock {
    base: Instant,
    last_ms: AtomicU64,
}

impl CheckpointClock {
    pub(crate) fn new() -> Arc<CheckpointClock> {
        Arc::new(CheckpointClock {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn overdue(&self, after: Duration) -> bool {
        let since = self.now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed));
        u128::from(since) > after.as_millis()
    }
}

/// Checkpoints on its own connection, so that the writer never stalls on
/// the copy and its fsyncs (the writer's automatic checkpoints are off).
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn spawn_checkpointer(
    conn: Connection,
    log: Option<Arc<ReadLog>>,
    timing: CheckpointTiming,
    clock: Arc<CheckpointClock>,
) -> Result<Checkpointer> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("tumbler-store-checkpointer".into())
        .spawn(move || {
            // Copying pages is background work: let request threads preempt
            // it, or a checkpoint's time slice shows as a latency spike.
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), CHECKPOINT_NICE);
            let mut wait = timing.every;
            let mut last = (0, 0);
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                // The log of reads gets to disk as often as the WAL's commits.
                if let Some(log) = &log
                    && let Err(e) = log.sync()
                {
                    tracing::warn!(error = %e, "cannot sync the audit log of reads");
                }
                match checkpoint_progress(&conn) {
                    Ok(progress) => {
                        clock.mark();
                        // Frames came since last time: more are likely coming.
                        wait = if progress != last {
                            timing.busy_every
                        } else {
                            timing.every
                        };
                        last = progress;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot checkpoint the store"),
                }
            }
        })
        .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer thread: {e}")))?;
    Ok(Checkpointer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// What a write changes, for cache invalidation.
fn note(changed: &mut Changed, w: &Write) {
    match w {
        Write::UpdateSecret { row, .. } => changed.secrets.push(row.id),
        Write::PurgeSecret { id } => changed.secrets.push(*id),
        Write::CreateKmsKey { .. }
        | Write::UpdateKmsKey { .. }
        | Write::PutKmsAlias { .. }
        | Write::DeleteKmsAlias { .. }
        | Write::DeleteKmsKey { .. }
        | Write::AddKmsMaterial { .. } => changed.kms = true,
        // Nothing else is cached by the store.
        _ => {}
    }
}

/// A job's way of answering once the batch's fate is known.
enum Answer {
    Apply(Reply, Result<Vec<Applied>>),
    Record(RecordDone, Result<()>),
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Job>, cache: &Cache) {
        while let Ok(first) = rx.recv() {
            // Audit events of reads arrive one per request. Giving the
            // request threads a moment before draining the queue lets a batch
            // gather, so one commit serves many (on one core, the writer
            // would otherwise run as soon as each event arrives).
            if matches!(first, Job::Record { .. }) {
                std::thread::yield_now();
            }
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.commit_batch(jobs, cache);
            if self.clock.overdue(self.overdue) {
                match checkpoint(&self.conn) {
                    Ok(()) => self.clock.mark(),
                    Err(e) => tracing::warn!(error = %e, "cannot checkpoint the store"),
                }
            }
        }
        // Put the last unsynced commits on disk before the store closes.
        if let Some(log) = &self.log
            && let Err(e) = log.sync()
        {
            tracing::warn!(error = %e, "cannot sync the audit log of reads on close");
        }
        if let Err(e) = checkpoint(&self.conn) {
            tracing::warn!(error = %e, "cannot checkpoint the store on close");
        }
    }

    /// Changes are fsynced before anyone hears "done"; a batch of only audit
    /// events of reads (and access bookkeeping) is committed without an
    /// fsync, which the checkpointer makes up for shortly after. Waiting for a disk
    /// flush per read would cap reads at the disk's flush rate.
    fn set_sync(&mut self, full: bool) -> Result<()> {
        if self.full_sync != full {
            let mode = if full { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", mode).map_err(backend)?;
            self.full_sync = full;
        }
        Ok(())
    }

    /// Number and chain one event: an event of a change is inserted as its
    /// own row now, an event of a read joins the batch's block.
    fn insert_event(&mut self, event: AuditRecord, of_read: bool) -> Result<()> {
        let Some(linker) = &self.linker else {
            return Err(StoreError::Backend("the audit trail is not configured".into()));
        };
        let seq = self.head.seq + 1;
        let mac = linker.link(&self.head.mac, seq, &event.json);
        if of_read {
            self.block.push(StoredAuditEvent {
                seq,
                json: event.json,
                mac: mac.clone(),
                block: None,
            });
        } else {
            // Numbers run in row order: the reads before this event are stored first.
            debug_assert!(self.block.is_empty());
            insert_row(&self.conn, seq, &event.json, &mac).map_err(backend)?;
        }
        self.head = ChainHead { seq, mac };
        Ok(())
    }

    /// Store the batch's pending events of reads as one block row.
    fn flush_block(&mut self) -> Result<()> {
        let (Some(first), Some(last)) = (self.block.first(), self.block.last()) else {
            return Ok(());
        };
        insert_row(&self.conn, first.seq, &encode_block(&self.block), &last.mac).map_err(backend)?;
        self.block.clear();
        Ok(())
    }

    /// Drop the events up to the anchor's, from the table and the log of
    /// reads, and store the anchor. The log's space is given back once this
    /// is committed (readers start after the kept part from then on).
    fn prune_audit(&mut self, anchor: crate::AuditAnchor) -> Result<Applied> {
        let conn = &self.conn;
        let seq = anchor.seq as i64;
        // The row holding the anchor's event; a block may go on past it.
        let mut row = conn
            .prepare_cached("SELECT seq, json, mac FROM audit_events WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1")
            .map_err(backend)?
            .query_row([seq], events_of)
            .optional()
            .map_err(backend)?
            .unwrap_or_default();
        let rest = row.split_off(row.partition_point(|e| e.seq <= anchor.seq));
        let mut stored = row.last().filter(|e| e.seq == anchor.seq).map(|e| e.mac.clone());
        let mut newer = !rest.is_empty()
            || conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM audit_events WHERE seq > ?1)")
                .and_then(|mut s| s.query_row([seq], |r| r.get::<_, bool>(0)))
                .map_err(backend)?;
        let mut log_start = crate::sqlite::read::audit_log_start(conn)?;
        if let Some(log) = &self.log {
            // Another process (the server) may have appended since this one looked.
            log.refresh()
                .map_err(|e| StoreError::Backend(format!("cannot read the audit log of reads: {e}")))?;
            let (entries, _) = log.entries_after(anchor.seq.saturating_sub(1));
            if let Some(first) = entries.first() {
                if first.first_seq <= anchor.seq {
                    let events = log.events(first);
                    stored = events.iter().find(|e| e.seq == anchor.seq).map(|e| e.mac.clone());
                }
                newer |= entries.last().is_some_and(|e| e.last_seq() > anchor.seq);
            }
            log_start = log.start_after(anchor.seq);
        }
        // The anchor must be a link of the chain: an event chained on its own
        // or a block's last (events inside a block carry no MAC).
        if !newer || anchor.mac.is_empty() || stored.as_deref() != Some(anchor.mac.as_slice()) {
            return Err(StoreError::NotFound);
        }
        conn.prepare_cached("DELETE FROM audit_events WHERE seq <= ?1")
            .map_err(backend)?
            .execute([seq])
            .map_err(backend)?;
        // What followed the anchor in its block stays, as a block of its own.
        if let (Some(first), Some(last)) = (rest.first(), rest.last()) {
            insert_row(conn, first.seq, &encode_block(&rest), &last.mac).map_err(backend)?;
        }
        conn.prepare_cached(
            "INSERT OR REPLACE INTO audit_anchor (id, seq, mac, anchor_mac, pruned_ms, log_start)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend)?
        .execute(params![
            seq,
            anchor.mac,
            anchor.anchor_mac,
            anchor.pruned_ms,
            log_start as i64
        ])
        .map_err(backend)?;
        if self.log.is_some() {
            self.prune_log_upto = Some((anchor.seq, log_start));
        }
        Ok(Applied::Done)
    }

    fn exec(&self, sql: &str) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(backend)
    }

    /// Run one job in its own savepoint, so that a failing job undoes only
    /// itself (its writes and its event together).
    fn run_job(&mut self, job: Job, changed: &mut Changed) -> Result<Option<Answer>> {
        match job {
            Job::Touch(t) => {
                // Bookkeeping only; a failure here must not fail the batch.
                let _ = touch(&self.conn, &t);
                changed.secrets.push(t.secret_id);
                Ok(None)
            }
            Job::Apply { writes, event, reply } => {
                // Outside the savepoint: undoing this job must not undo them.
                self.flush_block()?;
                self.exec("SAVEPOINT job")?;
                let head = self.head.clone();
                let prune_log_upto = self.prune_log_upto;
                for w in &writes {
                    note(changed, w);
                }
                let mut r = writes
                    .into_iter()
                    .map(|w| match w {
                        Write::PruneAudit { anchor } => self.prune_audit(anchor),
                        w => apply(&self.conn, w),
                    })
                    .collect::<Result<Vec<_>>>();
                if r.is_ok()
                    && let Some(e) = event
                    && let Err(err) = self.insert_event(e, false)
                {
                    r = Err(err);
                }
                if r.is_err() {
                    self.head = head;
                    self.prune_log_upto = prune_log_upto;
                    self.exec("ROLLBACK TO job")?;
                }
                self.exec("RELEASE job")?;
                Ok(Some(Answer::Apply(reply, r)))
            }
            Job::Record { events, done } => {
                let r = events.into_iter().try_for_each(|e| self.insert_event(e, true));
                Ok(Some(Answer::Record(done, r)))
            }
        }
    }

    /// The log of reads, if this process may append to it.
    fn owned_log(&self) -> Option<Arc<ReadLog>> {
        let log = self.log.as_ref()?;
        match log.take_over() {
            Ok(true) => Some(log.clone()),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take over the audit log of reads; events of reads go to the database");
                None
            }
        }
    }

    /// Append the batch's events of reads to the log (before any event of a
    /// change is chained, so that none links to one that may be rolled back).
    fn log_batch_reads(&mut self, jobs: &mut Vec<Job>) {
        if !jobs.iter().any(|j| matches!(j, Job::Record { .. })) {
            return;
        }
        let (Some(log), Some(linker)) = (self.owned_log(), self.linker.clone()) else {
            return;
        };
        let (reads, rest): (Vec<Job>, Vec<Job>) = std::mem::take(jobs)
            .into_iter()
            .partition(|j| matches!(j, Job::Record { .. }));
        *jobs = rest;
        let mut events = Vec::new();
        let mut dones = Vec::new();
        for job in reads {
            if let Job::Record { events: e, done } = job {
                events.extend(e);
                dones.push(done);
            }
        }
        let r = log_reads(&log, linker.as_ref(), &mut self.head, events);
        for done in dones {
            done(match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            });
        }
    }

    fn commit_batch(&mut self, mut jobs: Vec<Job>, cache: &Cache) {
        let shared_head = self.shared_head.clone();
        let mut shared = lock_head(&shared_head);
        self.head = shared.clone();
        self.log_batch_reads(&mut jobs);
        if !jobs.is_empty() {
            self.commit_jobs(jobs, cache);
        }
        *shared = self.head.clone();
    }

    fn commit_jobs(&mut self, jobs: Vec<Job>, cache: &Cache) {
        let mut answers: Vec<Answer> = Vec::with_capacity(jobs.len());
        let mut changed = Changed::default();
        let start = self.head.clone();
        let changes = jobs.iter().any(|j| matches!(j, Job::Apply { .. }));
        let outcome = (|| -> Result<()> {
            self.set_sync(changes)?;
            self.exec("BEGIN IMMEDIATE")?;
            for job in jobs {
                if let Some(a) = self.run_job(job, &mut changed)? {
                    answers.push(a);
                }
            }
            self.flush_block()?;
            // Events of reads in the log come before this batch's in the
            // chain: they reach the disk first, so that a power cut never
            // keeps an event whose predecessors are lost.
            if changes && let Some(log) = &self.log {
                log.sync()
                    .map_err(|e| StoreError::Backend(format!("cannot sync the audit log of reads: {e}")))?;
            }
            self.exec("COMMIT")
        })();
        // Invalidate after a failed commit too: a miss only costs a read.
        if !changed.is_empty() {
            cache.invalidate(&changed);
        }
        match outcome {
            Ok(()) => {
                if let (Some((upto, start)), Some(log)) = (self.prune_log_upto.take(), &self.log) {
                    log.forget_upto(upto);
                    log.release(start);
                }
                answer(answers, |r| r);
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.block.clear();
                self.prune_log_upto = None;
                self.head = start;
                tracing::error!(error = %e, "store commit failed; batch rolled back");
                let message = e.to_string();
                answer(answers, |_| Err(StoreError::Backend(message.clone())));
            }
        }
    }
}

/// Answer every job of a batch, each with `outcome` of its own result.
fn answer(answers: Vec<Answer>, outcome: impl Fn(Result<()>) -> Result<()>) {
    for a in answers {
        match a {
            Answer::Apply(reply, r) => {
                let r = match r {
                    Ok(v) => outcome(Ok(())).map(|()| v),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Answer::Record(done, r) => done(outcome(r)),
        }
    }
}

fn touch(conn: &Connection, t: &AccessTouch) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE secrets SET last_accessed_ms = ?2 WHERE id = ?1 AND (last_accessed_ms IS NULL OR last_accessed_ms < ?2)",
    )?
    .execute(params![t.secret_id, t.day_ms])?;
    conn.prepare_cached(
        "UPDATE secret_versions SET last_accessed_ms = ?3 WHERE secret_id = ?1 AND version_id = ?2
         AND (last_accessed_ms IS NULL OR last_accessed_ms < ?3)",
    )?
    .execute(params![t.secret_id, t.version_id, t.day_ms])?;
    Ok(())
}

fn constraint(e: rusqlite::Error, what: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            StoreError::Duplicate(what.to_owned())
        }
        _ => backend(e),
    }
}

fn apply(conn: &Connection, w: Write) -> Result<Applied> {
    match w {
        Write::CreateSecret { row, versions, stages } => {
            let id = insert_secret(conn, &row)?;
            for v in &versions {
                insert_version(conn, id, v)?;
            }
            replace_stages(conn, id, &stages)?;
            Ok(Applied::SecretId(id))
        }
        Write::UpdateSecret {
            row,
            new_versions,
            fill_versions,
            delete_versions,
            stages,
            rewrap_versions,
        } => {
            update_secret(conn, &row)?;
            for v in &new_versions {
                insert_version(conn, row.id, v)?;
            }
            for (vid, value) in &fill_versions {
                fill_version(conn, row.id, vid, value)?;
            }
            for (vid, kms_key_id, wrapped) in &rewrap_versions {
                conn.prepare_cached(
                    "UPDATE secret_versions SET kms_key_id = ?3, wrapped_key = ?4
                     WHERE secret_id = ?1 AND version_id = ?2 AND ciphertext IS NOT NULL",
                )
                .map_err(backend)?
                .execute(params![row.id, vid, kms_key_id, wrapped])
                .map_err(backend)?;
            }
            if let Some(stages) = &stages {
                replace_stages(conn, row.id, stages)?;
            }
            for vid in &delete_versions {
                conn.prepare_cached("DELETE FROM secret_versions WHERE secret_id = ?1 AND version_id = ?2")
                    .map_err(backend)?
                    .execute(params![row.id, vid])
                    .map_err(backend)?;
            }
            Ok(Applied::Done)
        }
        Write::CreateResource(r) => {
            conn.prepare_cached(
                "INSERT INTO resources (arn, kind, account, region, name, created_ms, revision, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
            )
            .map_err(backend)?
            .execute(params![
                r.arn,
                r.kind,
                r.account,
                r.region,
                r.name,
                r.created_ms,
                r.meta
            ])
            .map_err(|e| constraint(e, &r.arn))?;
            Ok(Applied::Done)
        }
        Write::UpdateResource(r) => {
            let n = conn
                .prepare_cached(
                    "UPDATE resources SET revision = revision + 1, meta = ?3 WHERE arn = ?1 AND revision = ?2",
                )
                .map_err(backend)?
                .execute(params![r.arn, r.revision, r.meta])
                .map_err(backend)?;
            if n == 1 {
                Ok(Applied::Done)
            } else {
                Err(StoreError::Conflict)
            }
        }
        Write::DeleteResource { arn } => {
            let n = conn
                .prepare_cached("DELETE FROM resources WHERE arn = ?1")
                .map_err(backend)?
                .execute([&arn])
                .map_err(backend)?;
            if n == 1 {
                Ok(Applied::Done)
            } else {
                Err(StoreError::NotFound)
            }
        }
        Write::PurgeSecret { id } => {
            conn.prepare_cached("DELETE FROM secrets WHERE id = ?1")
                .map_err(backend)?
                .execute([id])
                .map_err(backend)?;
            Ok(Applied::Done)
        }
        Write::CreateKmsKey {
            key,
            wrapped_material,
            aliases,
        } => {
            conn.prepare_cached(
                "INSERT INTO kms_keys (key_id, account, region, arn, key_manager, state, created_ms, current_material, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(backend)?
            .execute(params![
                key.key_id,
                key.account,
                key.region,
                key.arn,
                key.key_manager,
                key.state,
                key.created_ms,
                key.current_material,
                key.meta
            ])
            .map_err(|e| constraint(e, "kms key"))?;
            conn.prepare_cached(
                "INSERT INTO kms_key_material (key_id, version, wrapped, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![
                key.key_id,
                key.current_material,
                wrapped_material,
                key.created_ms
            ])
            .map_err(backend)?;
            for alias in &aliases {
                conn.prepare_cached(
                    "INSERT INTO kms_aliases (account, region, alias_name, key_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(backend)?
                .execute(params![key.account, key.region, alias, key.key_id, key.created_ms])
                .map_err(|e| constraint(e, alias))?;
            }
            Ok(Applied::Done)
        }
        Write::CreatePrincipal(p) => {
            conn.prepare_cached(
                "INSERT INTO principals (arn, account, kind, name, unique_id, created_ms, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(backend)?
            .execute(params![
                p.arn,
                p.account,
                p.kind,
                p.name,
                p.unique_id,
                p.created_ms,
                p.meta
            ])
            .map_err(|e| constraint(e, "principal"))?;
            Ok(Applied::Done)
        }
        Write::CreateAccessKey(k) => {
            conn.prepare_cached(
                "INSERT INTO access_keys (access_key_id, principal_arn, status, sealed_secret, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(backend)?
            .execute(params![
                k.access_key_id,
                k.principal_arn,
                k.status,
                k.sealed_secret,
                k.created_ms
            ])
            .map_err(|e| constraint(e, "access key"))?;
            Ok(Applied::Done)
        }
        Write::UpdatePrincipal { arn, meta } => exactly_one(
            conn,
            "UPDATE principals SET meta = ?2 WHERE arn = ?1",
            params![arn, meta],
        ),
        Write::DeletePrincipal { arn } => exactly_one(conn, "DELETE FROM principals WHERE arn = ?1", params![arn]),
        Write::SetAccessKeyStatus { access_key_id, status } => exactly_one(
            conn,
            "UPDATE access_keys SET status = ?2 WHERE access_key_id = ?1",
            params![access_key_id, status],
        ),
        Write::DeleteAccessKey { access_key_id } => exactly_one(
            conn,
            "DELETE FROM access_keys WHERE access_key_id = ?1",
            params![access_key_id],
        ),
        Write::PutInlinePolicy {
            principal_arn,
            name,
            document,
        } => {
            conn.prepare_cached(
                "INSERT INTO inline_policies (principal_arn, name, document) VALUES (?1, ?2, ?3)
                 ON CONFLICT (principal_arn, name) DO UPDATE SET document = excluded.document",
            )
            .map_err(backend)?
            .execute(params![principal_arn, name, document])
            .map_err(|e| constraint(e, "inline policy"))?;
            Ok(Applied::Done)
        }
        Write::DeleteInlinePolicy { principal_arn, name } => exactly_one(
            conn,
            "DELETE FROM inline_policies WHERE principal_arn = ?1 AND name = ?2",
            params![principal_arn, name],
        ),
        Write::CreateManagedPolicy { row, version } => {
            conn.prepare_cached(
                "INSERT INTO managed_policies (arn, account, name, policy_id, created_ms, updated_ms, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(backend)?
            .execute(params![
                row.arn,
                row.account,
                row.name,
                row.policy_id,
                row.created_ms,
                row.updated_ms,
                row.meta
            ])
            .map_err(|e| constraint(e, "managed policy"))?;
            insert_policy_version(conn, &row.arn, &version)?;
            Ok(Applied::Done)
        }
        Write::UpdateManagedPolicy(row) => exactly_one(
            conn,
            "UPDATE managed_policies SET updated_ms = ?2, meta = ?3 WHERE arn = ?1",
            params![row.arn, row.updated_ms, row.meta],
        ),
        Write::DeleteManagedPolicy { arn } => {
            exactly_one(conn, "DELETE FROM managed_policies WHERE arn = ?1", params![arn])
        }
        Write::PutPolicyVersion { policy_arn, version } => {
            insert_policy_version(conn, &policy_arn, &version)?;
            Ok(Applied::Done)
        }
        Write::DeletePolicyVersion { policy_arn, version_id } => exactly_one(
            conn,
            "DELETE FROM policy_versions WHERE policy_arn = ?1 AND version_id = ?2",
            params![policy_arn, version_id],
        ),
        Write::AttachPolicy {
            principal_arn,
            policy_arn,
        } => {
            conn.prepare_cached(
                "INSERT INTO policy_attachments (principal_arn, policy_arn) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![principal_arn, policy_arn])
            .map_err(|e| constraint(e, "attachment"))?;
            Ok(Applied::Done)
        }
        Write::DetachPolicy {
            principal_arn,
            policy_arn,
        } => exactly_one(
            conn,
            "DELETE FROM policy_attachments WHERE principal_arn = ?1 AND policy_arn = ?2",
            params![principal_arn, policy_arn],
        ),
        Write::UpdateKmsKey { key_id, state, meta } => exactly_one(
            conn,
            "UPDATE kms_keys SET state = ?2, meta = ?3 WHERE key_id = ?1",
            params![key_id, state, meta],
        ),
        Write::PutKmsAlias {
            account,
            region,
            alias_name,
            key_id,
            created_ms,
            replace: false,
        } => {
            conn.prepare_cached(
                "INSERT INTO kms_aliases (account, region, alias_name, key_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(backend)?
            .execute(params![account, region, alias_name, key_id, created_ms])
            .map_err(|e| constraint(e, "kms alias"))?;
            Ok(Applied::Done)
        }
        Write::PutKmsAlias {
            account,
            region,
            alias_name,
            key_id,
            replace: true,
            ..
        } => exactly_one(
            conn,
            "UPDATE kms_aliases SET key_id = ?4 WHERE account = ?1 AND region = ?2 AND alias_name = ?3",
            params![account, region, alias_name, key_id],
        ),
        Write::AddKmsMaterial {
            key_id,
            version,
            wrapped,
            created_ms,
            meta,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE kms_keys SET current_material = ?2, meta = ?3 WHERE key_id = ?1 AND current_material = ?2 - 1",
                )
                .map_err(backend)?
                .execute(params![key_id, version, meta])
                .map_err(backend)?;
            if n == 0 {
                let exists = conn
                    .prepare_cached("SELECT 1 FROM kms_keys WHERE key_id = ?1")
                    .map_err(backend)?
                    .exists([&key_id])
                    .map_err(backend)?;
                return Err(if exists {
                    StoreError::Conflict
                } else {
                    StoreError::NotFound
                });
            }
            conn.prepare_cached(
                "INSERT INTO kms_key_material (key_id, version, wrapped, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![key_id, version, wrapped, created_ms])
            .map_err(backend)?;
            Ok(Applied::Done)
        }
        Write::DeleteKmsKey { key_id } => exactly_one(conn, "DELETE FROM kms_keys WHERE key_id = ?1", params![key_id]),
        Write::DeleteKmsAlias {
            account,
            region,
            alias_name,
        } => exactly_one(
            conn,
            "DELETE FROM kms_aliases WHERE account = ?1 AND region = ?2 AND alias_name = ?3",
            params![account, region, alias_name],
        ),
        Write::AddGroupMember { group_arn, user_arn } => {
            conn.prepare_cached(
                "INSERT INTO group_members (group_arn, user_arn) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![group_arn, user_arn])
            .map_err(|e| match constraint(e, "group member") {
                // The foreign keys: the group or the user is gone.
                StoreError::Duplicate(_) => StoreError::NotFound,
                other => other,
            })?;
            Ok(Applied::Done)
        }
        Write::RemoveGroupMember { group_arn, user_arn } => exactly_one(
            conn,
            "DELETE FROM group_members WHERE group_arn = ?1 AND user_arn = ?2",
            params![group_arn, user_arn],
        ),
        Write::CreateMfaDevice(d) => {
            conn.prepare_cached(
                "INSERT INTO mfa_devices (serial, account, sealed_seed, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![d.serial, d.account, d.sealed_seed, d.created_ms])
            .map_err(|e| constraint(e, "mfa device"))?;
            Ok(Applied::Done)
        }
        Write::EnableMfaDevice {
            serial,
            user_arn,
            enabled_ms,
            last_step,
        } => exactly_one(
            conn,
            "UPDATE mfa_devices SET user_arn = ?2, enabled_ms = ?3, last_step = ?4
             WHERE serial = ?1 AND user_arn IS NULL",
            params![serial, user_arn, enabled_ms, last_step],
        ),
        Write::DeactivateMfaDevice { serial, user_arn } => exactly_one(
            conn,
            "UPDATE mfa_devices SET user_arn = NULL, enabled_ms = NULL WHERE serial = ?1 AND user_arn = ?2",
            params![serial, user_arn],
        ),
        Write::DeleteMfaDevice { serial } => exactly_one(
            conn,
            "DELETE FROM mfa_devices WHERE serial = ?1 AND user_arn IS NULL",
            params![serial],
        ),
        // Needs the log of reads: see Writer::prune_audit.
        Write::PruneAudit { .. } => Err(StoreError::Backend("a prune outside the writer".into())),
        Write::UseMfaCode { serial, user_arn, step } => exactly_one(
            conn,
            "UPDATE mfa_devices SET last_step = ?3
             WHERE serial = ?1 AND user_arn = ?2 AND (last_step IS NULL OR last_step < ?3)",
            params![serial, user_arn, step],
        ),
    }
}

/// Run a statement that must change exactly one row; `NotFound` otherwise.
fn exactly_one(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Applied> {
    let n = conn
        .prepare_cached(sql)
        .map_err(backend)?
        .execute(args)
        .map_err(|e| constraint(e, "row"))?;
    if n == 1 {
        Ok(Applied::Done)
    } else {
        Err(StoreError::NotFound)
    }
}

fn insert_policy_version(conn: &Connection, policy_arn: &str, v: &PolicyVersionRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO policy_versions (policy_arn, version_id, document, created_ms) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(backend)?
    .execute(params![policy_arn, v.version_id, v.document, v.created_ms])
    .map_err(|e| constraint(e, "policy version"))?;
    Ok(())
}

fn insert_secret(conn: &Connection, r: &SecretRow) -> Result<i64> {
    let res = conn
        .prepare_cached(
            "INSERT INTO secrets (account, region, name, arn, revision, created_ms, last_changed_ms,
                                  last_accessed_ms, deleted_ms, purge_at_ms, meta)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(backend)?
        .execute(params![
            r.account,
            r.region,
            r.name,
            r.arn,
            r.created_ms,
            r.last_changed_ms,
            r.last_accessed_ms,
            r.deleted_ms,
            r.purge_at_ms,
            r.meta
        ]);
    match res {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::ConstraintViolation => {
            Err(StoreError::NameExists)
        }
        Err(e) => Err(backend(e)),
    }
}

fn update_secret(conn: &Connection, r: &SecretRow) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE secrets SET revision = revision + 1, last_changed_ms = ?3, deleted_ms = ?4, purge_at_ms = ?5,
                                meta = ?6
             WHERE id = ?1 AND revision = ?2",
        )
        .map_err(backend)?
        .execute(params![
            r.id,
            r.revision,
            r.last_changed_ms,
            r.deleted_ms,
            r.purge_at_ms,
            r.meta
        ])
        .map_err(backend)?;
    if n == 1 { Ok(()) } else { Err(StoreError::Conflict) }
}

fn insert_version(conn: &Connection, secret_id: i64, v: &NewVersion) -> Result<()> {
    let (kind, key, wrapped, ct) = match &v.value {
        Some(s) => (
            Some(s.kind.as_str()),
            Some(s.kms_key_id.as_str()),
            Some(s.wrapped_key.as_slice()),
            Some(s.ciphertext.as_slice()),
        ),
        None => (None, None, None, None),
    };
    conn.prepare_cached(
        "INSERT INTO secret_versions (secret_id, version_id, created_ms, value_kind, kms_key_id, wrapped_key, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .map_err(backend)?
    .execute(params![secret_id, v.version_id, v.created_ms, kind, key, wrapped, ct])
    .map_err(|e| constraint(e, &v.version_id))?;
    Ok(())
}

fn fill_version(conn: &Connection, secret_id: i64, version_id: &str, s: &SealedValue) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE secret_versions SET value_kind = ?3, kms_key_id = ?4, wrapped_key = ?5, ciphertext = ?6
             WHERE secret_id = ?1 AND version_id = ?2 AND ciphertext IS NULL",
        )
        .map_err(backend)?
        .execute(params![
            secret_id,
            version_id,
            s.kind.as_str(),
            s.kms_key_id,
            s.wrapped_key,
            s.ciphertext
        ])
        .map_err(backend)?;
    if n == 1 { Ok(()) } else { Err(StoreError::Conflict) }
}

fn replace_stages(conn: &Connection, secret_id: i64, stages: &[(String, String)]) -> Result<()> {
    conn.prepare_cached("DELETE FROM version_stages WHERE secret_id = ?1")
        .map_err(backend)?
        .execute([secret_id])
        .map_err(backend)?;
    let mut stmt = conn
        .prepare_cached("INSERT INTO version_stages (secret_id, stage, version_id) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    for (stage, vid) in stages {
        stmt.execute(params![secret_id, stage, vid])
            .map_err(|e| StoreError::Backend(format!("label {stage} -> {vid}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Linker;
    impl AuditLinker for Linker {
        fn link(&self, _: &[u8], _: u64, _: &str) -> Vec<u8> {
            unreachable!("events of reads are chained as blocks")
        }
        fn link_block(&self, prev: &[u8], first: u64, last: u64, _: &[u8]) -> Vec<u8> {
            vec![prev[0] + 1, first as u8, last as u8]
        }
    }

    #[test]
    fn a_large_batch_of_reads_goes_in_several_blocks_each_linked_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let log = ReadLog::open(&dir.path().join("t.db-audit"), 0).unwrap();
        assert!(log.take_over().unwrap());
        let mut head = ChainHead {
            seq: 10,
            mac: vec![7; 32],
        };
        // Ten events of 96 bytes of JSON (100 with their length) in blocks
        // of at most 250 bytes: two events a block; a larger one alone.
        let mut events: Vec<AuditRecord> = (0..10)
            .map(|i| AuditRecord {
                json: format!("{{\"n\":{i:03},\"pad\":\"{}\"}}", "x".repeat(80)),
            })
            .collect();
        events.insert(4, AuditRecord { json: "y".repeat(1000) });
        log_reads_in_blocks_of(&log, &Linker, &mut head, &events, 250).unwrap();
        let (entries, damaged) = log.entries();
        assert!(!damaged);
        let ranges: Vec<(u64, u64)> = entries.iter().map(|e| (e.first_seq, e.last_seq())).collect();
        assert_eq!(ranges, [(11, 12), (13, 14), (15, 15), (16, 17), (18, 19), (20, 21)]);
        // Each block's MAC links to the one before; the head is the last.
        for (i, e) in entries.iter().enumerate() {
            let last = log.events(e).pop().unwrap();
            assert_eq!(last.mac, [8 + i as u8, e.first_seq as u8, e.last_seq() as u8]);
        }
        assert_eq!((head.seq, head.mac.clone()), (21, vec![13, 20, 21]));
        // Nothing to store, nothing stored.
        log_reads(&log, &Linker, &mut head, Vec::new()).unwrap();
        assert_eq!(log.entries().0.len(), 6);
    }
}
