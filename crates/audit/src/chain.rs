//! The MAC chain over stored events, and its verification.

use tumbler_crypto::MacKey;

/// One stored event: its number (1, 2, ...), its JSON and its chain MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub json: String,
    pub mac: Vec<u8>,
}

/// The end of a verified chain: the last event's number (the count of
/// events ever recorded, pruned ones included), and its MAC (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub events: u64,
    pub last_mac: String,
}

/// Domain separation: an anchor's MAC can't pass for an event's.
const ANCHOR_LABEL: &[u8] = b"tumbler audit anchor";

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
        self.key.sign(&[prev, &seq.to_be_bytes(), json.as_bytes()])
    }

    /// The MAC that vouches for a prune anchor: events up to `seq` are
    /// gone, and event `seq` had MAC `mac`.
    pub fn anchor_mac(&self, seq: u64, mac: &[u8]) -> [u8; 32] {
        self.key.sign(&[ANCHOR_LABEL, &seq.to_be_bytes(), mac])
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
        let (mut prev, mut expected) = match anchor {
            None => (vec![0u8; 32], 1u64),
            Some(a) => {
                if !self
                    .key
                    .verify(&[ANCHOR_LABEL, &a.seq.to_be_bytes(), &a.mac], &a.anchor_mac)
                {
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
        for e in events {
            if e.seq != expected {
                return Err(ChainBreak {
                    seq: expected,
                    reason: format!("event {expected} is missing (the next stored event is {})", e.seq),
                });
            }
            if !self
                .key
                .verify(&[&prev, &e.seq.to_be_bytes(), e.json.as_bytes()], &e.mac)
            {
                return Err(ChainBreak {
                    seq: e.seq,
                    reason: format!(
                        "event {} does not match its chain MAC: it was altered, or an event before it was removed or reordered",
                        e.seq
                    ),
                });
            }
            prev = e.mac;
            expected += 1;
        }
        Ok(ChainHead {
            events: expected - 1,
            last_mac: hex::encode(&prev),
        })
    }
}

/// The store numbers events in commit order and asks the chain for each MAC.
impl tumbler_store::AuditLinker for Chain {
    fn link(&self, prev: &[u8], seq: u64, json: &str) -> Vec<u8> {
        Chain::link(self, prev, seq, json).to_vec()
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
                StoredEvent { seq, json, mac }
            })
            .collect()
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
