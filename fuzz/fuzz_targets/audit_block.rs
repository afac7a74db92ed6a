//! Arbitrary bytes as a stored block of audit events (someone may edit the
//! database file): never a panic nor a huge allocation, and whatever decodes
//! encodes back to the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_store::{decode_audit_block, encode_audit_block};

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = decode_audit_block(1, data) {
        let again = decode_audit_block(1, &encode_audit_block(&events)).expect("a block we wrote decodes");
        assert_eq!(again, events);
    }
});
