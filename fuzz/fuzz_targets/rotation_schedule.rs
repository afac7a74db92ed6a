//! Arbitrary text as RotationRules (ScheduleExpression and Duration, and
//! AutomaticallyAfterDays): parsing must never panic, a refusal must say
//! why, and a schedule that parses must give windows that open after the
//! time asked about and close after they open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_secrets::schedule::Schedule;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (expression, duration) = text.split_once('|').unwrap_or((&text, ""));
    let duration = (!duration.is_empty()).then_some(duration);
    let days = data.first().map(|b| i64::from(*b) * 5 - 10);
    for (days, expression) in [(None, Some(expression)), (days, None), (days, Some(expression))] {
        match Schedule::parse(days, expression, duration) {
            Ok(schedule) => {
                let after: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().expect("timestamp");
                if let Some(w) = schedule.next_window(after) {
                    assert!(w.start > after, "{expression:?}: window opens at {} before {after}", w.start);
                    assert!(w.end > w.start, "{expression:?}: window closes before it opens");
                }
            }
            Err(why) => assert!(!why.is_empty()),
        }
    }
});
