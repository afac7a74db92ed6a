//! Retention: dropping the oldest events while the rest stays verifiable.
//!
//! Pruning checks the events it removes against the chain (a broken chain
//! is evidence and is never pruned), then deletes them and stores an anchor
//! in the same transaction: the last removed event's number and MAC, with a
//! MAC over both under the chain key. `verify` starts from the anchor.

use tumbler_store::{AuditAnchor, AuditQuery, Store, StoreError, Write};

use crate::chain::Chain;

/// Events are read in pages so that a long trail is never all in memory.
const PAGE: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("the audit trail is broken at event {seq} ({reason}); nothing was pruned")]
    Broken { seq: u64, reason: String },
    #[error("the audit trail changed while it was being pruned; nothing was pruned")]
    Raced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a prune did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// Events removed now.
    pub events: u64,
    /// The chain now starts after this event (0: nothing was ever pruned).
    pub through_seq: u64,
}

/// Remove the events recorded before `before` (by eventTime), but never the
/// newest event, whose MAC the next one links to.
pub fn prune(store: &dyn Store, chain: &Chain, before: jiff::Timestamp, now_ms: i64) -> Result<Pruned, PruneError> {
    let anchor = store.audit_anchor()?;
    let start = anchor.as_ref().map_or(0, |a| a.seq);
    let newest = store
        .audit_events(&AuditQuery {
            descending: true,
            limit: 1,
            ..AuditQuery::default()
        })?
        .first()
        .map_or(0, |e| e.seq);
    let broken = |b: crate::ChainBreak| PruneError::Broken {
        seq: b.seq,
        reason: b.reason,
    };
    // The anchor is checked first: it is what the pruned chain hangs from.
    let mut walk = chain.walk_from(anchor.as_ref()).map_err(broken)?;
    // The last link checked: the anchor goes there (a prune never ends
    // inside a block, whose events share the MAC at its end).
    let mut last: Option<(u64, Vec<u8>)> = None;
    let mut after = start;
    'pages: loop {
        let page = store.audit_events(&AuditQuery {
            after_seq: after,
            limit: PAGE,
            ..AuditQuery::default()
        })?;
        let full = page.len() == PAGE;
        for e in page {
            if e.seq >= newest || !recorded_before(&e.json, before) {
                break 'pages;
            }
            after = e.seq;
            let e = crate::StoredEvent::from(e);
            if walk.step(&e).map_err(broken)? {
                last = Some((e.seq, e.mac));
            }
        }
        if !full {
            break;
        }
    }
    let Some((seq, mac)) = last else {
        return Ok(Pruned {
            events: 0,
            through_seq: start,
        });
    };
    let anchor = AuditAnchor {
        seq,
        anchor_mac: chain.anchor_mac(seq, &mac).to_vec(),
        mac,
        pruned_ms: now_ms,
    };
    match store.apply(vec![Write::PruneAudit { anchor }]) {
        Ok(_) => Ok(Pruned {
            events: seq - start,
            through_seq: seq,
        }),
        Err(StoreError::NotFound) => Err(PruneError::Raced),
        Err(e) => Err(e.into()),
    }
}

/// Whether an event's eventTime is before `before`; an event whose time
/// can't be read is kept.
fn recorded_before(json: &str, before: jiff::Timestamp) -> bool {
    #[derive(serde::Deserialize)]
    struct Time {
        #[serde(rename = "eventTime")]
        event_time: String,
    }
    serde_json::from_str::<Time>(json)
        .ok()
        .and_then(|t| t.event_time.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t < before)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tumbler_crypto::{MacPurpose, MasterKey};
    use tumbler_store::{AuditRecord, SqliteStore};

    use super::*;

    fn chain() -> Arc<Chain> {
        Arc::new(Chain::new(
            MasterKey::from_bytes(&[4; 32])
                .unwrap()
                .derive_mac(MacPurpose::AuditChain),
        ))
    }

    fn record(store: &SqliteStore, day: u32) {
        let json = format!(r#"{{"eventTime":"2026-01-{day:02}T00:00:00Z","eventName":"Op{day}"}}"#);
        store.apply_with_event(Vec::new(), Some(AuditRecord { json })).unwrap();
    }

    fn all(store: &dyn Store) -> Vec<crate::StoredEvent> {
        store
            .audit_events(&AuditQuery::default())
            .unwrap()
            .into_iter()
            .map(crate::StoredEvent::from)
            .collect()
    }

    fn day(d: u32) -> jiff::Timestamp {
        format!("2026-01-{d:02}T00:00:00Z").parse().unwrap()
    }

    #[test]
    fn pruning_keeps_the_rest_verifiable_and_the_newest_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = chain();
        {
            let store = SqliteStore::open_audited(&path, c.clone()).unwrap();
            for d in 1..=6 {
                record(&store, d);
            }
            let pruned = prune(&store, &c, day(4), 1).unwrap();
            assert_eq!(
                pruned,
                Pruned {
                    events: 3,
                    through_seq: 3
                }
            );
            let anchor = store.audit_anchor().unwrap().unwrap();
            assert_eq!(c.verify_from(Some(&anchor), all(&store)).unwrap().events, 6);
            // Nothing older left: a second prune at the same cut does nothing.
            assert_eq!(prune(&store, &c, day(4), 2).unwrap().events, 0);
            // Everything is older than 2030, but the newest event stays.
            assert_eq!(
                prune(&store, &c, day(28), 3).unwrap(),
                Pruned {
                    events: 2,
                    through_seq: 5
                }
            );
            assert_eq!(all(&store).len(), 1);
        }
        // The chain goes on from the newest event after a restart.
        let store = SqliteStore::open_audited(&path, c.clone()).unwrap();
        record(&store, 7);
        let anchor = store.audit_anchor().unwrap().unwrap();
        assert_eq!(c.verify_from(Some(&anchor), all(&store)).unwrap().events, 7);
        drop(store);
    }

    /// Events of reads on `days`, recorded as one batch (one block).
    fn record_reads(store: &SqliteStore, days: &[u32]) {
        let events = days
            .iter()
            .map(|d| AuditRecord {
                json: format!(r#"{{"eventTime":"2026-01-{d:02}T00:00:00Z","eventName":"Get{d}"}}"#),
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        store.record(
            events,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap().unwrap();
    }

    #[test]
    fn a_prune_ends_at_the_end_of_a_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = chain();
        let store = SqliteStore::open_audited(&path, c.clone()).unwrap();
        record_reads(&store, &[1, 2, 3]);
        record_reads(&store, &[4, 5, 6]);
        record(&store, 7);
        let blocks = all(&store);
        assert!(
            blocks[..2].iter().all(|e| e.mac.is_empty()),
            "events 1 to 3 are one block"
        );
        // Events 1 to 4 are older than day 5, but 4 shares its block's MAC
        // with 5 and 6: the prune stops after the block before.
        assert_eq!(
            prune(&store, &c, day(5), 1).unwrap(),
            Pruned {
                events: 3,
                through_seq: 3
            }
        );
        let anchor = store.audit_anchor().unwrap().unwrap();
        let left = all(&store);
        assert_eq!(left.first().map(|e| e.seq), Some(4));
        assert_eq!(c.verify_from(Some(&anchor), left).unwrap().events, 7);
        assert_eq!(
            prune(&store, &c, day(7), 2).unwrap(),
            Pruned {
                events: 3,
                through_seq: 6
            }
        );
        let anchor = store.audit_anchor().unwrap().unwrap();
        assert_eq!(c.verify_from(Some(&anchor), all(&store)).unwrap().events, 7);
    }

    #[test]
    fn a_broken_chain_is_not_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = chain();
        let store = SqliteStore::open_audited(&path, c.clone()).unwrap();
        for d in 1..=4 {
            record(&store, d);
        }
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute(
            "UPDATE audit_events SET json = replace(json, 'Op2', 'Op9') WHERE seq = 2",
            [],
        )
        .unwrap();
        drop(raw);
        match prune(&store, &c, day(4), 1) {
            Err(PruneError::Broken { seq: 2, .. }) => {}
            other => panic!("expected a break at event 2, got {other:?}"),
        }
        assert_eq!(all(&store).len(), 4);
        assert!(store.audit_anchor().unwrap().is_none());
        drop(store);
    }
}
