//! The audit log of reads: events of reads appended to a file beside the
//! database (`tumbler.db-audit`), in the same chain as the events in
//! `audit_events`.
//!
//! Why a file: an event of a read costs one `write` here, shared by every
//! read of a batch, where a SQLite commit cost its B-tree insert, its WAL
//! frames, its locks and then the checkpoint's second copy, and had to be
//! handed to the writer thread and back (BENCHMARKS.md measures both).
//!
//! Format: records one after another, each a 20-byte header (magic `tAL1`,
//! body length u32 LE, first event's number u64 LE, event count u32 LE) and a
//! body that is an audit block (`audit_rows`; this version appends version
//! 2 blocks, one MAC a record, and reads version 1 too). One process appends
//! (the one holding the file's exclusive lock: the server); any process
//! reads, and sees a record once all its bytes are in the file.
//!
//! A record cut short by a crash in the middle of its `write` was never
//! acknowledged: the appender cuts it off when it takes the file over. Any
//! other damage is left for `verify` to report as an edited event.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::audit_rows::decode_block;
use crate::StoredAuditEvent;

const MAGIC: [u8; 4] = *b"tAL1";
const HEADER: usize = 20;
/// A body longer than this is damage, not a record (a batch is at most a few
/// hundred events of a few KB).
const MAX_BODY: u32 = 64 << 20;

/// Where one record sits and which events it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub first_seq: u64,
    pub count: u32,
    offset: u64,
    len: u32,
}

impl Entry {
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count) - 1
    }
}

/// The records known so far, and where reading stopped.
#[derive(Default)]
struct Index {
    entries: Vec<Entry>,
    /// The offset after the last complete record.
    end: u64,
    /// Unreadable bytes at `end` that are not a record being written: the
    /// events from the number after the last record's on cannot be read.
    damaged: bool,
}

pub(crate) struct ReadLog {
    path: PathBuf,
    file: File,
    index: Mutex<Index>,
    /// Set when this process holds the file's lock and may append.
    appender: Mutex<Option<File>>,
    /// Appended since the last sync.
    dirty: AtomicBool,
    /// Damaged before its end: never appended to by this process.
    refused: AtomicBool,
}

/// The log's file for the database at `db`.
pub(crate) fn path_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-audit");
    db.with_file_name(name)
}

impl ReadLog {
    /// Open (creating if missing) the log, reading its records from `start`
    /// (where pruning left it).
    pub fn open(path: &Path, start: u64) -> io::Result<ReadLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let log = ReadLog {
            path: path.to_owned(),
            file,
            index: Mutex::new(Index {
                entries: Vec::new(),
                end: start,
                damaged: false,
            }),
            appender: Mutex::new(None),
            dirty: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        };
        log.scan()?;
        Ok(log)
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take the log over for appending, unless another process holds it.
    /// A last record cut short by a crash is cut off. Refused (false) if the
    /// log is damaged before its end: appending after damage would hide it.
    pub fn take_over(&self) -> io::Result<bool> {
        let mut appender = self.lock_appender();
        if appender.is_some() {
            return Ok(true);
        }
        if self.refused.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        self.scan()?;
        let index = self.lock_index();
        if index.damaged {
            tracing::error!(
                "the audit log of reads is damaged before its end (tumbler audit verify tells where); \
                 events of reads go to the database instead"
            );
            self.refused.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        let size = file.metadata()?.len();
        if size > index.end {
            tracing::warn!(
                bytes = size - index.end,
                "the audit log of reads ends in a record cut short by a crash; cutting it off"
            );
            file.set_len(index.end)?;
            file.sync_all()?;
        }
        drop(index);
        let mut file = file;
        io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
        *appender = Some(file);
        Ok(true)
    }

    pub fn owned(&self) -> bool {
        self.lock_appender().is_some()
    }

    /// Append one record: a block (`body`) of `count` events numbered from
    /// `first_seq`. On an error nothing is left behind: the record is cut
    /// off again.
    pub fn append(&self, first_seq: u64, count: u32, body: &[u8]) -> io::Result<()> {
        if count == 0 {
            return Ok(());
        }
        let mut record = Vec::with_capacity(HEADER + body.len());
        record.extend_from_slice(&MAGIC);
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        record.extend_from_slice(&first_seq.to_le_bytes());
        record.extend_from_slice(&count.to_le_bytes());
        record.extend_from_slice(body);
        let mut appender = self.lock_appender();
        let Some(file) = appender.as_mut() else {
            return Err(io::Error::other("this process does not own the audit log of reads"));
        };
        let mut index = self.lock_index();
        let offset = index.end;
        if let Err(e) = file.write_all(&record) {
            // A partial record would make every later one unreadable.
            let _ = file.set_len(offset);
            let _ = io::Seek::seek(file, io::SeekFrom::Start(offset));
            return Err(e);
        }
        self.dirty.store(true, Ordering::Release);
        index.entries.push(Entry {
            first_seq,
            count,
            offset,
            len: body.len() as u32,
        });
        index.end = offset + record.len() as u64;
        Ok(())
    }

    /// A reader whose index stopped at what a prune has since freed (zeros,
    /// read as damage) reads the log again from `start`, where the prune
    /// left readers. Damage at or after `start` stays.
    pub fn skip_to(&self, start: u64) -> io::Result<()> {
        if self.owned() {
            return Ok(());
        }
        {
            let mut index = self.lock_index();
            if !index.damaged || index.end > start {
                return Ok(());
            }
            *index = Index {
                entries: Vec::new(),
                end: start,
                damaged: false,
            };
        }
        self.scan()
    }

    /// Put what was appended on disk.
    pub fn sync(&self) -> io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = self.file.sync_data()
        {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// Index the records another process appended since the last look.
    pub fn refresh(&self) -> io::Result<()> {
        if self.owned() {
            return Ok(());
        }
        self.scan()
    }

    fn scan(&self) -> io::Result<()> {
        let mut index = self.lock_index();
        if index.damaged {
            return Ok(());
        }
        let size = self.file.metadata()?.len();
        let mut header = [0u8; HEADER];
        while index.end + HEADER as u64 <= size {
            self.file.read_exact_at(&mut header, index.end)?;
            let Some(entry) = parse_header(&header, index.end) else {
                // After a power cut a file may end in zeros where the last
                // appends were never written: as good as cut short.
                index.damaged = !self.zeros_from(index.end, size)?;
                break;
            };
            if entry.offset + HEADER as u64 + u64::from(entry.len) > size {
                break; // still being written, or cut short by a crash
            }
            // Numbers only grow (events of changes, in the table, fill the gaps).
            if let Some(prev) = index.entries.last()
                && entry.first_seq <= prev.last_seq()
            {
                index.damaged = true;
                break;
            }
            index.end = entry.offset + HEADER as u64 + u64::from(entry.len);
            index.entries.push(entry);
        }
        Ok(())
    }

    /// The bytes from `from` to `size` are all zeros.
    fn zeros_from(&self, mut from: u64, size: u64) -> io::Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        while from < size {
            let n = buf.len().min((size - from) as usize);
            self.file.read_exact_at(&mut buf[..n], from)?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            from += n as u64;
        }
        Ok(true)
    }

    /// The records known, and whether the log is damaged after the last.
    #[cfg(test)]
    pub fn entries(&self) -> (Vec<Entry>, bool) {
        let index = self.lock_index();
        (index.entries.clone(), index.damaged)
    }

    /// The records holding events numbered above `after`, oldest first.
    /// After damage that stops reading, one more record that cannot be read
    /// stands for the events lost there, so that `verify` reports them.
    pub fn entries_after(&self, after: u64) -> (Vec<Entry>, bool) {
        let index = self.lock_index();
        let from = index.entries.partition_point(|e| e.last_seq() <= after);
        let mut entries = index.entries[from..].to_vec();
        if index.damaged {
            entries.push(Entry {
                first_seq: index.entries.last().map_or(after, Entry::last_seq) + 1,
                count: 1,
                offset: index.end,
                len: 0,
            });
        }
        (entries, index.damaged)
    }

    /// The events of one record. A record that cannot be read comes back as
    /// one event with empty JSON and no MAC, so that the chain check fails
    /// on it instead of every reader failing.
    pub fn events(&self, entry: &Entry) -> Vec<StoredAuditEvent> {
        let mut body = vec![0u8; entry.len as usize];
        let read = self
            .file
            .read_exact_at(&mut body, entry.offset + HEADER as u64)
            .map_err(|e| e.to_string());
        match read.and_then(|()| decode_block(entry.first_seq, &body)) {
            Ok(events) if events.len() == entry.count as usize => events,
            Ok(_) => damaged(
                entry.first_seq,
                "a record holding another number of events than it claims",
            ),
            Err(e) => damaged(entry.first_seq, &e),
        }
    }

    /// The last event in the log.
    pub fn last_event(&self) -> Option<StoredAuditEvent> {
        let last = *self.lock_index().entries.last()?;
        self.events(&last).pop()
    }

    /// Where readers start once the events numbered `upto` and below are
    /// pruned: the offset of the first record holding a later event.
    pub fn start_after(&self, upto: u64) -> u64 {
        let index = self.lock_index();
        let keep = index.entries.partition_point(|e| e.last_seq() <= upto);
        index.entries.get(keep).map_or(index.end, |e| e.offset)
    }

    /// Forget the records whose events are all numbered `upto` or below
    /// (once the prune's anchor, with `start_after`, is stored).
    pub fn forget_upto(&self, upto: u64) {
        let mut index = self.lock_index();
        let keep = index.entries.partition_point(|e| e.last_seq() <= upto);
        index.entries.drain(..keep);
    }

    /// Free the bytes before `start` (a hole reads as zeros; nobody reads
    /// there any more). File systems without hole punching keep the bytes.
    pub fn release(&self, start: u64) {
        use rustix::fs::{FallocateFlags, fallocate};
        if start == 0 {
            return;
        }
        if let Err(e) = fallocate(
            &self.file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            0,
            start,
        ) {
            tracing::info!(error = %e, "the pruned part of the audit log of reads keeps its space");
        }
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_appender(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        self.appender.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn parse_header(h: &[u8; HEADER], offset: u64) -> Option<Entry> {
    if h[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(h[4..8].try_into().ok()?);
    let first_seq = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let count = u32::from_le_bytes(h[16..20].try_into().ok()?);
    if len == 0 || len > MAX_BODY || count == 0 || first_seq == 0 || first_seq.checked_add(u64::from(count)).is_none() {
        return None;
    }
    Some(Entry {
        first_seq,
        count,
        offset,
        len,
    })
}

fn damaged(seq: u64, why: &str) -> Vec<StoredAuditEvent> {
    tracing::warn!(seq, error = why, "a record of the audit log of reads cannot be read");
    vec![StoredAuditEvent {
        seq,
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a reader should see of event `seq`: its number and JSON.
    fn event(seq: u64) -> (u64, String) {
        (seq, format!(r#"{{"eventName":"GetSecretValue","requestID":"{seq}"}}"#))
    }

    fn events(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
        range.map(event).collect()
    }

    /// Append the events of `range` as one record, "sealed" with the last
    /// number as its MAC.
    fn append(log: &ReadLog, range: std::ops::RangeInclusive<u64>) -> io::Result<()> {
        let jsons: Vec<String> = range.clone().map(|s| event(s).1).collect();
        let last = *range.end();
        let body =
            super::super::audit_rows::encode_sealed_block(jsons.iter().map(String::as_str), |_| vec![last as u8; 32]);
        log.append(*range.start(), jsons.len() as u32, &body)
    }

    fn read(events: Vec<StoredAuditEvent>) -> Vec<(u64, String)> {
        events.into_iter().map(|e| (e.seq, e.json)).collect()
    }

    fn all(log: &ReadLog) -> Vec<(u64, String)> {
        read(log.entries().0.iter().flat_map(|e| log.events(e)).collect())
    }

    fn last_event(log: &ReadLog) -> Option<(u64, Vec<u8>)> {
        log.last_event().map(|e| (e.seq, e.mac))
    }

    fn owned_log(dir: &Path) -> ReadLog {
        let log = ReadLog::open(&dir.join("t.db-audit"), 0).unwrap();
        assert!(log.take_over().unwrap());
        log
    }

    /// A log in `dir` holding one record per batch, closed again.
    fn written(dir: &Path, batches: &[std::ops::RangeInclusive<u64>]) -> PathBuf {
        let log = owned_log(dir);
        for b in batches {
            append(&log, b.clone()).unwrap();
        }
        log.path().to_owned()
    }

    #[test]
    fn appended_records_read_back_here_and_in_another_reader() {
        let dir = tempfile::tempdir().unwrap();
        let log = owned_log(dir.path());
        append(&log, 1..=3).unwrap();
        append(&log, 4..=4).unwrap();
        assert_eq!(all(&log), events(1..=4));
        assert_eq!(last_event(&log), Some((4, vec![4; 32])));
        assert_eq!(log.entries_after(3).0.len(), 1);
        assert_eq!(log.entries_after(2).0.len(), 2);

        // Another process's view, which catches up on refresh.
        let reader = ReadLog::open(log.path(), 0).unwrap();
        assert_eq!(all(&reader), events(1..=4));
        assert!(!reader.take_over().unwrap(), "only one appender at a time");
        append(&log, 5..=6).unwrap();
        reader.refresh().unwrap();
        assert_eq!(all(&reader), events(1..=6));
        log.sync().unwrap();
    }

    #[test]
    fn a_record_cut_short_is_cut_off_by_the_next_appender() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), &[1..=2, 3..=5]);
        let full = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 7).unwrap();
        // Readers see the complete records and wait for the rest.
        let reader = ReadLog::open(&path, 0).unwrap();
        assert_eq!(all(&reader), events(1..=2));
        assert!(!reader.entries().1);
        drop(reader);
        let log = owned_log(dir.path());
        assert_eq!(all(&log), events(1..=2));
        append(&log, 3..=3).unwrap();
        assert_eq!(all(&ReadLog::open(&path, 0).unwrap()), events(1..=3));
    }

    #[test]
    fn zeros_where_the_last_appends_were_lost_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), &[1..=2]);
        let whole = std::fs::read(&path).unwrap();
        let mut lost = whole.clone();
        lost.extend_from_slice(&[0; 5000]);
        std::fs::write(&path, &lost).unwrap();
        let reader = ReadLog::open(&path, 0).unwrap();
        assert_eq!((all(&reader), reader.entries().1), (events(1..=2), false));
        let log = owned_log(dir.path());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole.len() as u64);
        append(&log, 3..=3).unwrap();
        assert_eq!(all(&ReadLog::open(&path, 0).unwrap()), events(1..=3));
        // Zeros followed by anything else are damage.
        lost.push(1);
        std::fs::write(&path, &lost).unwrap();
        assert!(ReadLog::open(&path, 0).unwrap().entries().1);
    }

    #[test]
    fn damage_is_reported_not_hidden_or_appended_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), &[1..=2, 3..=4, 5..=6, 7..=8]);
        let bytes = std::fs::read(&path).unwrap();
        let second = HEADER + u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        let stored = |log: &ReadLog| log.entries().0.iter().flat_map(|e| log.events(e)).collect::<Vec<_>>();
        let intact = stored(&ReadLog::open(&path, 0).unwrap());
        // Every byte flipped: never a panic, and never the same events (a
        // flipped MAC is an event with another MAC, which verify refuses).
        for i in 0..bytes.len() {
            let mut edited = bytes.clone();
            edited[i] ^= 0x24;
            std::fs::write(&path, &edited).unwrap();
            let reader = ReadLog::open(&path, 0).unwrap();
            let (_, damaged) = reader.entries();
            assert!(damaged || stored(&reader) != intact, "byte {i}");
        }
        // A damaged header stops readers, and the appender refuses to go on.
        let mut edited = bytes.clone();
        edited[second] ^= 0xff;
        std::fs::write(&path, &edited).unwrap();
        let log = ReadLog::open(&path, 0).unwrap();
        assert_eq!(all(&log), events(1..=2));
        assert!(log.entries().1);
        assert!(!log.take_over().unwrap());
        // A damaged body reads as one empty event where its events were.
        let mut edited = bytes.clone();
        // (Past the block's version, MAC and size: in its compressed events.)
        edited[second + HEADER + 2 + 32 + 4 + 2] ^= 0xff;
        std::fs::write(&path, &edited).unwrap();
        let read = all(&ReadLog::open(&path, 0).unwrap());
        assert_eq!(read[2].0, 3);
        assert!(read[2].1.is_empty() || read[2] != event(3));
    }

    #[test]
    fn forgotten_records_free_their_space_and_readers_start_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = owned_log(dir.path());
        for i in 0..100u64 {
            append(&log, i * 10 + 1..=i * 10 + 10).unwrap();
        }
        let start = log.start_after(505);
        log.forget_upto(505);
        assert_eq!(log.entries().0[0].first_seq, 501);
        log.release(start);
        assert_eq!(all(&log), events(501..=1000));
        let reader = ReadLog::open(log.path(), start).unwrap();
        assert_eq!(all(&reader), events(501..=1000));
        assert!(!reader.entries().1);
        append(&log, 1001..=1001).unwrap();
        assert_eq!(last_event(&log), Some((1001, vec![1001u64 as u8; 32])));
    }

    #[test]
    fn a_reader_behind_a_prune_goes_on_from_where_it_left_readers() {
        let dir = tempfile::tempdir().unwrap();
        let log = owned_log(dir.path());
        append(&log, 1..=10).unwrap();
        let reader = ReadLog::open(log.path(), 0).unwrap();
        for i in 1..100u64 {
            append(&log, i * 10 + 1..=i * 10 + 10).unwrap();
        }
        // Pruned before the reader looked at the records after its first:
        // where the file system frees them, it reads zeros there.
        let start = log.start_after(505);
        log.forget_upto(505);
        log.release(start);
        reader.refresh().unwrap();
        reader.skip_to(start).unwrap();
        assert!(!reader.entries().1);
        assert_eq!(
            read(
                reader
                    .entries_after(505)
                    .0
                    .iter()
                    .flat_map(|e| reader.events(e))
                    .collect()
            ),
            events(501..=1000)
        );
        // Damage after where readers start is not skipped.
        let owner_end = std::fs::metadata(log.path()).unwrap().len();
        let f = OpenOptions::new().write(true).open(log.path()).unwrap();
        f.write_all_at(&[0xab; 32], owner_end).unwrap();
        reader.refresh().unwrap();
        reader.skip_to(start).unwrap();
        assert!(reader.entries().1, "damage after the start stays damage");
    }
}
