//! Arbitrary bytes as the audit log of reads (someone may edit the file, or
//! a crash may cut it short): reading it never panics nor allocates without
//! bound, and every record it yields holds consecutive numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("tumbler-fuzz-audit-log-{}", std::process::id()));
    std::fs::write(&path, data).expect("a temporary file");
    let events = tumbler_store::audit_log_events(&path).expect("a readable file");
    for pair in events.windows(2) {
        assert!(pair[1].seq > pair[0].seq, "numbers only grow");
    }
});
