//! How audit events sit in `audit_events`.
//!
//! The event of a change is one row, its JSON as TEXT, committed in the
//! change's own savepoint. Events of reads (nearly all events) arrive one per
//! request and are committed in batches; the consecutive read events of a
//! batch share one row, a *block*: `seq` is the first event's number, `mac`
//! the last event's MAC, and `json` a BLOB holding every event's MAC and JSON,
//! LZ4-compressed together. Events in a batch differ mostly in their ids and
//! times, so a block costs ~100 bytes an event instead of ~900, and one row
//! instead of one per event: the bytes each read pushed through SQLite's WAL
//! and checkpoints were the audit trail's main cost (see BENCHMARKS.md).
//!
//! Block format version 1 (each event chained on its own): byte 0 is `1`,
//! then an LZ4 block (lz4_flex, uncompressed size prepended as u32 LE)
//! compressed against `DICT_V1`; the uncompressed bytes are, per event: MAC
//! length (u8), MAC, JSON length (u32 LE), JSON. Events are numbered from the
//! row's `seq` on.
//!
//! Version 2 (the block chained as one, `AuditLinker::link_block`): byte 0 is
//! `2`, then the block's MAC length (u8) and MAC, then the *sealed part*, which
//! the MAC is computed over: an LZ4 block as in version 1 whose uncompressed
//! bytes are, per event, JSON length (u32 LE) and JSON. One MAC over the
//! compressed events costs a tenth of a MAC over each event's JSON (about
//! 100 bytes hashed an event instead of 1,000: BENCHMARKS.md).

use crate::StoredAuditEvent;

const BLOCK_V1: u8 = 1;
const BLOCK_V2: u8 = 2;

/// Sample events that the first event of a block is compressed against.
/// Stored blocks can only be read with the exact bytes they were written
/// with: never edit this file; a new dictionary needs a new block version.
const DICT_V1: &[u8] = include_bytes!("audit_dict_v1.txt");

/// A block never holds more than `MAX_BATCH` events; this bounds what a
/// damaged block may make a reader allocate.
const MAX_BLOCK_BYTES: usize = 64 << 20;

/// Encode the events of a block (consecutive numbers, oldest first).
pub fn encode_block(events: &[StoredAuditEvent]) -> Vec<u8> {
    let size = events.iter().map(|e| 5 + e.mac.len() + e.json.len()).sum();
    let mut raw = Vec::with_capacity(size);
    for e in events {
        // MACs come from the linker (32 bytes); a longer one cannot be stored.
        let mac = &e.mac[..e.mac.len().min(u8::MAX as usize)];
        raw.push(mac.len() as u8);
        raw.extend_from_slice(mac);
        raw.extend_from_slice(&(e.json.len() as u32).to_le_bytes());
        raw.extend_from_slice(e.json.as_bytes());
    }
    // Version, uncompressed size, then the LZ4 block, compressed in place.
    let mut out = vec![0; 5 + lz4_flex::block::get_maximum_output_size(raw.len())];
    out[0] = BLOCK_V1;
    out[1..5].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    let n = lz4_flex::block::compress_into_with_dict(&raw, &mut out[5..], DICT_V1)
        .expect("the buffer has LZ4's maximum output size");
    out.truncate(5 + n);
    out
}

/// Encode a version 2 block of `jsons` (events numbered consecutively);
/// `seal` computes the block's MAC over its sealed part.
pub fn encode_sealed_block<'a>(
    jsons: impl Iterator<Item = &'a str> + Clone,
    seal: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let size = jsons.clone().map(|j| 4 + j.len()).sum();
    let mut raw = Vec::with_capacity(size);
    for json in jsons {
        raw.extend_from_slice(&(json.len() as u32).to_le_bytes());
        raw.extend_from_slice(json.as_bytes());
    }
    let mut sealed = vec![0; 4 + lz4_flex::block::get_maximum_output_size(raw.len())];
    sealed[..4].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    let n = lz4_flex::block::compress_into_with_dict(&raw, &mut sealed[4..], DICT_V1)
        .expect("the buffer has LZ4's maximum output size");
    sealed.truncate(4 + n);
    let mac = seal(&sealed);
    let mac = &mac[..mac.len().min(u8::MAX as usize)];
    let mut out = Vec::with_capacity(2 + mac.len() + sealed.len());
    out.push(BLOCK_V2);
    out.push(mac.len() as u8);
    out.extend_from_slice(mac);
    out.extend_from_slice(&sealed);
    out
}

/// Decode a block stored at `first_seq`. An error means the row was damaged
/// or edited.
pub fn decode_block(first_seq: u64, blob: &[u8]) -> Result<Vec<StoredAuditEvent>, String> {
    let (&version, rest) = blob.split_first().ok_or("an empty block")?;
    match version {
        BLOCK_V1 => decode_v1(first_seq, rest),
        BLOCK_V2 => decode_v2(first_seq, rest),
        _ => Err(format!("unknown block version {version}")),
    }
}

/// The uncompressed bytes of an LZ4 block with its size prepended.
fn decompress(sized: &[u8]) -> Result<Vec<u8>, String> {
    let size = sized
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("a truncated block")?;
    if size > MAX_BLOCK_BYTES {
        return Err(format!("a block claiming {size} bytes"));
    }
    let mut raw = vec![0; size];
    let n = lz4_flex::block::decompress_into_with_dict(&sized[4..], &mut raw, DICT_V1)
        .map_err(|e| format!("a block that does not decompress: {e}"))?;
    if n != size {
        return Err("a block shorter than it claims".into());
    }
    Ok(raw)
}

fn take<'a>(at: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if at.len() < n {
        return Err("a truncated event in a block".into());
    }
    let (head, tail) = at.split_at(n);
    *at = tail;
    Ok(head)
}

/// A length (u32 LE) and that many bytes of UTF-8.
fn take_json(at: &mut &[u8]) -> Result<String, String> {
    let len = take(at, 4)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let json = std::str::from_utf8(take(at, len)?).map_err(|_| "an event that is not UTF-8")?;
    Ok(json.to_owned())
}

fn number(first_seq: u64, index: usize) -> Result<u64, String> {
    first_seq
        .checked_add(index as u64)
        .ok_or_else(|| "a block numbered past the last number".into())
}

fn decode_v1(first_seq: u64, rest: &[u8]) -> Result<Vec<StoredAuditEvent>, String> {
    let raw = decompress(rest)?;
    let mut events = Vec::new();
    let mut at = &raw[..];
    while !at.is_empty() {
        let mac_len = take(&mut at, 1)?[0] as usize;
        let mac = take(&mut at, mac_len)?.to_vec();
        let json = take_json(&mut at)?;
        events.push(StoredAuditEvent {
            seq: number(first_seq, events.len())?,
            json,
            mac,
            block: None,
        });
    }
    if events.is_empty() {
        return Err("a block without events".into());
    }
    Ok(events)
}

fn decode_v2(first_seq: u64, rest: &[u8]) -> Result<Vec<StoredAuditEvent>, String> {
    let mut at = rest;
    let mac_len = take(&mut at, 1)?[0] as usize;
    let mac = take(&mut at, mac_len)?.to_vec();
    let sealed = at;
    let raw = decompress(sealed)?;
    let mut events = Vec::new();
    let mut at = &raw[..];
    while !at.is_empty() {
        events.push(StoredAuditEvent {
            seq: number(first_seq, events.len())?,
            json: take_json(&mut at)?,
            ..Default::default()
        });
    }
    let last = events.last_mut().ok_or("a block without events")?;
    last.mac = mac;
    last.block = Some(sealed.to_vec());
    Ok(events)
}

/// The events of one stored row: an event of a change (TEXT) or a block of
/// events of reads (BLOB). A row that cannot be decoded comes back as one
/// event with empty JSON, so that the chain check fails on it instead of
/// every reader failing.
pub(crate) fn row_events(seq: u64, json: rusqlite::types::ValueRef<'_>, mac: Vec<u8>) -> Vec<StoredAuditEvent> {
    use rusqlite::types::ValueRef;
    let damaged = |mac| {
        vec![StoredAuditEvent {
            seq,
            mac,
            ..Default::default()
        }]
    };
    match json {
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(json) => vec![StoredAuditEvent {
                seq,
                json: json.to_owned(),
                mac,
                block: None,
            }],
            Err(_) => damaged(mac),
        },
        ValueRef::Blob(b) => match decode_block(seq, b) {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(seq, error = %e, "an audit block cannot be read");
                damaged(mac)
            }
        },
        _ => damaged(mac),
    }
}

/// The events of a `SELECT seq, json, mac FROM audit_events` row.
pub(crate) fn events_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<StoredAuditEvent>> {
    Ok(row_events(r.get::<_, i64>(0)? as u64, r.get_ref(1)?, r.get(2)?))
}

/// Insert one row: an event of a change (JSON text) or a block (BLOB).
pub(crate) fn insert_row(
    conn: &rusqlite::Connection,
    seq: u64,
    json: &dyn rusqlite::ToSql,
    mac: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO audit_events (seq, json, mac) VALUES (?1, ?2, ?3)")?
        .execute(rusqlite::params![seq as i64, json, mac])
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, n: u8) -> StoredAuditEvent {
        StoredAuditEvent {
            seq,
            json: format!(r#"{{"eventName":"GetSecretValue","requestID":"{n}"}}"#),
            mac: vec![n; 32],
            block: None,
        }
    }

    #[test]
    fn blocks_round_trip_and_are_small() {
        let events: Vec<_> = (0..16).map(|i| event(40 + i as u64, i)).collect();
        let blob = encode_block(&events);
        assert_eq!(decode_block(40, &blob).unwrap(), events);
        let raw: usize = events.iter().map(|e| e.json.len() + 32).sum();
        assert!(blob.len() < raw / 2, "{} of {raw}", blob.len());
    }

    /// A block written by this version, stored in a test: if the format or
    /// the dictionary ever changes, existing stores would become unreadable.
    #[test]
    fn a_version_1_block_still_decodes() {
        let blob = encode_block(&[event(7, 1), event(8, 2)]);
        assert_eq!(
            hex(&blob),
            PINNED_V1,
            "the block format changed: keep version 1 readable and add a version"
        );
        assert_eq!(decode_block(7, &blob).unwrap(), [event(7, 1), event(8, 2)]);
    }

    const PINNED_V1: &str =
        "01a60000002f200101000c432e000000cf0e0383070a3b05017701018c0601db015f31227d200201000c0f53001960223a2232227d";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn a_sealed_block_carries_one_mac_over_what_it_stores() {
        let jsons: Vec<String> = (0..16).map(|i| event(0, i).json).collect();
        let mut sealed_seen = Vec::new();
        let blob = encode_sealed_block(jsons.iter().map(String::as_str), |sealed| {
            sealed_seen = sealed.to_vec();
            vec![7; 32]
        });
        let events = decode_block(40, &blob).unwrap();
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (40..56).collect::<Vec<_>>()
        );
        assert_eq!(
            events.iter().map(|e| &e.json).collect::<Vec<_>>(),
            jsons.iter().collect::<Vec<_>>()
        );
        // Only the last event carries the MAC, and the bytes it was made over.
        assert!(events[..15].iter().all(|e| e.mac.is_empty() && e.block.is_none()));
        assert_eq!(events[15].mac, [7; 32]);
        assert_eq!(events[15].block.as_deref(), Some(&sealed_seen[..]));
        assert!(blob.ends_with(&sealed_seen));
        let raw: usize = jsons.iter().map(|j| j.len() + 32).sum();
        assert!(blob.len() < raw / 2, "{} of {raw}", blob.len());
    }

    /// As `a_version_1_block_still_decodes`, for version 2.
    #[test]
    fn a_version_2_block_still_decodes() {
        let jsons = [event(7, 1).json, event(8, 2).json];
        let blob = encode_sealed_block(jsons.iter().map(String::as_str), |_| vec![9; 32]);
        assert_eq!(
            hex(&blob),
            PINNED_V2,
            "the block format changed: keep version 2 readable and add a version"
        );
        let events = decode_block(7, &blob).unwrap();
        assert_eq!((events[0].seq, &events[0].json), (7, &jsons[0]));
        assert_eq!((events[1].seq, &events[1].json), (8, &jsons[1]));
    }

    const PINNED_V2: &str = "0220090909090909090909090909090909090909090909090909090909090909090964000000432e000000ae0e0362070a1a05015601016b0601ba013f31227d32001960223a2232227d";

    #[test]
    fn damaged_sealed_blocks_are_refused_without_panicking() {
        let jsons = [event(1, 1).json, event(2, 2).json];
        let blob = encode_sealed_block(jsons.iter().map(String::as_str), |_| vec![9; 32]);
        assert!(decode_block(1, &blob[..1]).is_err());
        assert!(decode_block(1, &blob[..40]).is_err());
        assert!(decode_block(1, &blob[..blob.len() - 3]).is_err());
        for i in 0..blob.len() {
            let mut flipped = blob.clone();
            flipped[i] ^= 0x5a;
            if let Ok(events) = decode_block(1, &flipped) {
                assert!(events.len() < 10_000);
                // Whatever decodes, the last event holds the bytes a MAC
                // check would be made over: a flip outside the MAC shows.
                let last = events.last().unwrap();
                assert!(last.mac != [9; 32] || last.block.as_deref() != Some(&blob[34..]));
            }
        }
    }

    #[test]
    fn damaged_blocks_are_refused_without_panicking() {
        let blob = encode_block(&[event(1, 1), event(2, 2)]);
        assert!(decode_block(1, &[]).is_err());
        assert!(decode_block(1, &[2]).is_err());
        assert!(decode_block(1, &blob[..blob.len() - 3]).is_err());
        let mut huge = blob.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_block(1, &huge).is_err());
        for i in 0..blob.len() {
            let mut flipped = blob.clone();
            flipped[i] ^= 0x5a;
            // Either refused or decoded into something else: never a panic.
            if let Ok(events) = decode_block(1, &flipped) {
                assert!(events.len() < 10_000);
            }
        }
        let damaged = row_events(1, rusqlite::types::ValueRef::Blob(&blob[..4]), vec![9]);
        assert_eq!(damaged.len(), 1);
        assert!(damaged[0].json.is_empty());
    }
}
