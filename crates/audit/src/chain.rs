//! The MAC chain over stored events, and its verification.

use tumbler_crypto::MacKey;

/// One stored event: its number (1, 2, ...), its JSON and its chain MAC.
///
/// Events chained as a block (a batch of events of reads) share one MAC:
/// the events before the block's last have an empty `mac`, and the last
/// carries the MAC and, in `block`, the bytes it was computed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub json: String,
    pub mac: Vec<u8>,
    pub block: Option<Vec<u8>>,
}

impl From<tumbler_store::StoredAuditEvent> for StoredEvent {
    fn from(e: tumbler_store::StoredAuditEvent) -> StoredEvent {
        StoredEvent {
            seq: e.seq,
            json: e.json,
            mac: e.mac,
            block: e.block,
        }
    }
}

/// The end of a verified chain: the last event's number (the count of
/// events ever recorded, pruned ones included), and its MAC (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub events: u64,
    pub last_mac: String,
}

/// Domain separation: an anchor's or a block's MAC can't pass for an
/// event's, nor for each other's.
const ANCHOR_LABEL: &[u8] = b"tumbler audit anchor";
const BLOCK_LABEL: &[u8] = b"tumbler audit block";

// What each kind of MAC is computed over, written once for making and
// checking it.

fn event_input<R>(prev: &[u8], seq: u64, json: &str, f: impl FnOnce(&[&[u8]]) -> R) -> R {
    f(&[prev, &seq.to_be_bytes(), json.as_bytes()])
}

fn block_input<R>(prev: &[u8], first: u64, last: u64, block: &[u8], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    f(&[BLOCK_LABEL, prev, &first.to_be_bytes(), &last.to_be_bytes(), block])
}

fn anchor_input<R>(seq: u64, mac: &[u8], f: impl FnOnce(&[&[u8]]) -> R) -> R {
    f(&[ANCHOR_LABEL, &seq.to_be_bytes(), mac])
}

/// Where and why verification failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ChainBreak {
    /// The first event that does not verify.
    pub seq: u64,
    pub reason: String,
}

/// Computes and checks the chain with a root-derived key.
pub struct Chain {
    key: MacKey,
}

impl Chain {
    pub fn new(key: MacKey) -> Chain {
        Chain { key }
    }

    /// The MAC of event `seq` after the event whose MAC is `prev`
    /// (all zeros before the first).
    pub fn link(&self, prev: &[u8], seq: u64, json: &str) -> [u8; 32] {
        event_input(prev, seq, json, |input| self.key.sign(input))
    }

    /// The MAC of a block holding events `first..=last` after the link
    /// `prev`, over the block's stored bytes (its compressed events).
    pub fn link_block(&self, prev: &[u8], first: u64, last: u64, block: &[u8]) -> [u8; 32] {
        block_input(prev, first, last, block, |input| self.key.sign(input))
    }

    /// The MAC that vouches for a prune anchor: events up to `seq` are
    /// gone, and event `seq` had MAC `mac`.
    pub fn anchor_mac(&self, seq: u64, mac: &[u8]) -> [u8; 32] {
        anchor_input(seq, mac, |input| self.key.sign(input))
    }

    /// Checks events in stored order: numbered 1, 2, ... without a gap, and
    /// each MAC made over its predecessor's. Reports the first break.
    pub fn verify(&self, events: impl IntoIterator<Item = StoredEvent>) -> Result<ChainHead, ChainBreak> {
        self.verify_from(None, events)
    }

    /// `verify` for a chain whose first events were pruned: it starts after
    /// `anchor`, whose own MAC must be authentic.
    pub fn verify_from(
        &self,
        anchor: Option<&tumbler_store::AuditAnchor>,
        events: impl IntoIterator<Item = StoredEvent>,
    ) -> Result<ChainHead, ChainBreak> {
        let mut walk = self.walk_from(anchor)?;
        for e in events {
            walk.step(&e)?;
        }
        walk.finish()
    }

    /// A walk along the chain from `anchor` (or its start), event by event.
    pub fn walk_from(&self, anchor: Option<&tumbler_store::AuditAnchor>) -> Result<ChainWalk<'_>, ChainBreak> {
        let (prev, next) = match anchor {
            None => (vec![0u8; 32], 1u64),
            Some(a) => {
                if !anchor_input(a.seq, &a.mac, |input| self.key.verify(input, &a.anchor_mac)) {
                    return Err(ChainBreak {
                        seq: a.seq,
                        reason: format!(
                            "the record that events 1 to {} were pruned is not authentic: events were cut off the start",
                            a.seq
                        ),
                    });
                }
                (a.mac.clone(), a.seq + 1)
            }
        };
        Ok(ChainWalk {
            chain: self,
            prev,
            next,
            block_from: None,
        })
    }
}

/// Checks events in stored order: numbered without a gap, each event's MAC
/// made over its predecessor link's, each block's MAC over its bytes and
/// its predecessor link's.
pub struct ChainWalk<'a> {
    chain: &'a Chain,
    /// The MAC of the last link checked.
    prev: Vec<u8>,
    /// The number the next event must have.
    next: u64,
    /// The first number of the block being walked through, until its end.
    block_from: Option<u64>,
}

impl ChainWalk<'_> {
    /// Check the next event. `Ok(true)`: the chain is verified through it
    /// (it was chained on its own, or ends a block).
    pub fn step(&mut self, e: &StoredEvent) -> Result<bool, ChainBreak> {
        let seq = e.seq;
        if seq != self.next {
            return Err(ChainBreak {
                seq: self.next,
                reason: format!("event {} is missing (the next stored event is {seq})", self.next),
            });
        }
        if e.json.is_empty() {
            return Err(ChainBreak {
                seq,
                reason: format!("event {seq} cannot be read: the record holding it is damaged"),
            });
        }
        let key = &self.chain.key;
        match &e.block {
            // Inside a block: vouched for by the block's MAC at its end.
            None if e.mac.is_empty() => {
                self.block_from.get_or_insert(seq);
                self.next += 1;
                return Ok(false);
            }
            None => {
                if let Some(from) = self.block_from {
                    return Err(self.unfinished(from));
                }
                if !event_input(&self.prev, seq, &e.json, |input| key.verify(input, &e.mac)) {
                    return Err(ChainBreak {
                        seq,
                        reason: format!(
                            "event {seq} does not match its chain MAC: it was altered, or an event before it was removed or reordered"
                        ),
                    });
                }
            }
            Some(block) => {
                let first = self.block_from.take().unwrap_or(seq);
                if !block_input(&self.prev, first, seq, block, |input| key.verify(input, &e.mac)) {
                    return Err(ChainBreak {
                        seq: first,
                        reason: format!(
                            "events {first} to {seq} do not match their block's chain MAC: one was altered, or an event before them was removed or reordered"
                        ),
                    });
                }
            }
        }
        self.prev.clone_from(&e.mac);
        self.next += 1;
        Ok(true)
    }

    /// The end of the walk: the chain's head, unless it stops inside a block.
    pub fn finish(self) -> Result<ChainHead, ChainBreak> {
        if let Some(from) = self.block_from {
            return Err(self.unfinished(from));
        }
        Ok(ChainHead {
            events: self.next - 1,
            last_mac: hex::encode(&self.prev),
        })
    }

    fn unfinished(&self, from: u64) -> ChainBreak {
        ChainBreak {
            seq: from,
            reason: format!(
                "events {from} to {} are in a block whose end, which carries its MAC, is missing",
                self.next - 1
            ),
        }
    }
}

/// The store numbers events in commit order and asks the chain for each MAC.
impl tumbler_store::AuditLinker for Chain {
    fn link(&self, prev: &[u8], seq: u64, json: &str) -> Vec<u8> {
        Chain::link(self, prev, seq, json).to_vec()
    }

    fn link_block(&self, prev: &[u8], first: u64, last: u64, block: &[u8]) -> Vec<u8> {
        Chain::link_block(self, prev, first, last, block).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tumbler_crypto::{MacPurpose, MasterKey};

    fn chain(seed: u8) -> Chain {
        Chain::new(
            MasterKey::from_bytes(&[seed; 32])
                .unwrap()
                .derive_mac(MacPurpose::AuditChain),
        )
    }

    fn events(c: &Chain, n: u64) -> Vec<StoredEvent> {
        let mut prev = vec![0u8; 32];
        (1..=n)
            .map(|seq| {
                let json = format!(r#"{{"eventName":"Op{seq}"}}"#);
                let mac = c.link(&prev, seq, &json).to_vec();
                prev = mac.clone();
                StoredEvent {
                    seq,
                    json,
                    mac,
                    block: None,
                }
            })
            .collect()
    }

    /// Events `1..=n` in blocks of the given sizes (a block's "stored
    /// bytes" here are its events' JSON, joined), after `prev`.
    fn blocks(c: &Chain, sizes: &[u64]) -> Vec<StoredEvent> {
        let mut prev = vec![0u8; 32];
        let mut out = Vec::new();
        let mut next = 1;
        for &size in sizes {
            let first = next;
            let jsons: Vec<String> = (first..first + size)
                .map(|seq| format!(r#"{{"eventName":"Get{seq}"}}"#))
                .collect();
            let bytes = jsons.concat().into_bytes();
            let mac = c.link_block(&prev, first, first + size - 1, &bytes).to_vec();
            for (i, json) in jsons.into_iter().enumerate() {
                let last = i as u64 == size - 1;
                out.push(StoredEvent {
                    seq: first + i as u64,
                    json,
                    mac: if last { mac.clone() } else { Vec::new() },
                    block: last.then(|| bytes.clone()),
                });
            }
            prev = mac;
            next += size;
        }
        out
    }

    #[test]
    fn blocks_verify_as_one_link_each() {
        let c = chain(1);
        let all = blocks(&c, &[3, 1, 4]);
        let head = c.verify(all.clone()).unwrap();
        assert_eq!(head.events, 8);
        assert_eq!(head.last_mac, hex::encode(&all[7].mac));
        // The walk says where the chain is verified through.
        let mut walk = c.walk_from(None).unwrap();
        let links: Vec<bool> = all.iter().map(|e| walk.step(e).unwrap()).collect();
        assert_eq!(links, [false, false, true, true, false, false, false, true]);

        // A block's bytes altered: the break is at the block's first event.
        let mut altered = all.clone();
        altered[7].block.as_mut().unwrap()[3] ^= 1;
        assert_eq!(c.verify(altered).unwrap_err().seq, 5);
        // Its MAC passed off as an event's own, or an event's as a block's.
        let mut relabelled = all.clone();
        relabelled[3].block = None;
        assert_eq!(c.verify(relabelled).unwrap_err().seq, 4);
        let mut singles = events(&c, 3);
        singles[2].block = Some(b"x".to_vec());
        assert_eq!(c.verify(singles).unwrap_err().seq, 3);
        // A block's end cut off, alone or before more events.
        assert_eq!(c.verify(all[..6].to_vec()).unwrap_err().seq, 5);
        let mut cut = all.clone();
        cut.remove(2);
        assert_eq!(c.verify(cut).unwrap_err().seq, 3);
        // An event inside a block "chained on its own" by an editor without
        // the key: its made-up MAC does not verify.
        let mut own = all.clone();
        own[4].mac = vec![7; 32];
        assert_eq!(c.verify(own).unwrap_err().seq, 5);
        // A damaged record reads as an event without JSON.
        let mut damaged = all.clone();
        damaged[5].json.clear();
        assert_eq!(c.verify(damaged).unwrap_err().seq, 6);
        // Another key's blocks.
        assert_eq!(c.verify(blocks(&chain(2), &[2])).unwrap_err().seq, 1);
    }

    #[test]
    fn block_and_event_and_anchor_macs_cannot_pass_for_each_other() {
        let c = chain(1);
        let prev = [0u8; 32];
        let block = c.link_block(&prev, 1, 1, b"{}");
        assert_ne!(block, c.link(&prev, 1, "{}"));
        assert_ne!(block, c.anchor_mac(1, &prev));
        // The numbers are MACed: the same bytes as events 2 to 3 differ.
        assert_ne!(c.link_block(&prev, 1, 2, b"{}"), c.link_block(&prev, 2, 3, b"{}"));
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(1);
        let head = c.verify(events(&c, 5)).unwrap();
        assert_eq!(head.events, 5);
        assert_eq!(head.last_mac.len(), 64);
        assert_eq!(c.verify(Vec::new()).unwrap().events, 0);
    }

    #[test]
    fn edits_removals_and_reorders_are_found() {
        let c = chain(1);
        let mut edited = events(&c, 5);
        edited[2].json = edited[2].json.replace("Op3", "Op9");
        assert_eq!(c.verify(edited).unwrap_err().seq, 3);

        let mut removed = events(&c, 5);
        removed.remove(1);
        assert_eq!(c.verify(removed).unwrap_err().seq, 2);

        // Removed and renumbered: the MACs no longer link.
        let mut renumbered = events(&c, 5);
        renumbered.remove(1);
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert_eq!(c.verify(renumbered).unwrap_err().seq, 2);

        let mut swapped = events(&c, 5);
        swapped.swap(1, 2);
        let (a, b) = (swapped[1].seq, swapped[2].seq);
        swapped[1].seq = b;
        swapped[2].seq = a;
        assert_eq!(c.verify(swapped).unwrap_err().seq, 2);
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_anchor_only() {
        let c = chain(1);
        let all = events(&c, 5);
        let anchor = tumbler_store::AuditAnchor {
            seq: 2,
            mac: all[1].mac.clone(),
            anchor_mac: c.anchor_mac(2, &all[1].mac).to_vec(),
            pruned_ms: 0,
        };
        let rest = all[2..].to_vec();
        assert_eq!(c.verify_from(Some(&anchor), rest.clone()).unwrap().events, 5);
        // Without the anchor, the pruned chain is missing its start.
        assert_eq!(c.verify(rest.clone()).unwrap_err().seq, 1);
        // An anchor made without the key (copying event 3's MAC) is refused.
        let forged = tumbler_store::AuditAnchor {
            seq: 3,
            mac: all[2].mac.clone(),
            anchor_mac: chain(2).anchor_mac(3, &all[2].mac).to_vec(),
            pruned_ms: 0,
        };
        assert_eq!(c.verify_from(Some(&forged), all[3..].to_vec()).unwrap_err().seq, 3);
        // An authentic anchor with events removed after it: the gap shows.
        assert_eq!(c.verify_from(Some(&anchor), all[3..].to_vec()).unwrap_err().seq, 3);
    }

    #[test]
    fn another_key_cannot_forge_the_chain() {
        let forged = events(&chain(2), 3);
        assert_eq!(chain(1).verify(forged).unwrap_err().seq, 1);
    }
}
