//! Arbitrary bytes as a stored block of audit events (someone may edit the
//! database file): never a panic nor a huge allocation, and whatever decodes
//! encodes back to the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_store::{decode_audit_block, encode_audit_block, encode_sealed_audit_block};

fuzz_target!(|data: &[u8]| {
    let Ok(events) = decode_audit_block(1, data) else {
        return;
    };
    let last = events.last().expect("a block holds events");
    if last.block.is_none() {
        // Version 1: every event with its own MAC.
        let again = decode_audit_block(1, &encode_audit_block(&events)).expect("a block we wrote decodes");
        assert_eq!(again, events);
    } else {
        // Version 2: one MAC, on the last event with the bytes it covers.
        assert!(events[..events.len() - 1].iter().all(|e| e.mac.is_empty() && e.block.is_none()));
        let mac = last.mac.clone();
        let blob = encode_sealed_audit_block(events.iter().map(|e| e.json.as_str()), |_| mac.clone());
        let again = decode_audit_block(1, &blob).expect("a block we wrote decodes");
        let jsons = |es: &[tumbler_store::StoredAuditEvent]| es.iter().map(|e| (e.seq, e.json.clone(), e.mac.clone())).collect::<Vec<_>>();
        assert_eq!(jsons(&again), jsons(&events));
    }
});
