//! Fuzzes SigV4 parsing and verification with arbitrary requests.
//!
//! Input layout (lines end in `\n`): `METHOD URI`, then `name: value` header
//! lines (raw bytes, so obs-text and odd encodings get through), then an
//! empty line and the body. Anything `http` refuses is skipped. parse,
//! check_time and verify must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_sigv4::{SigningKey, Timestamp, check_time, parse, verify};

const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 20150830T123600Z, the AWS test suite's date, so seeds can pass the clock check.
const NOW: i64 = 1_440_938_160;

fn build(data: &[u8]) -> Option<(http::request::Parts, &[u8])> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let (method, uri) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (&b"POST"[..], first),
    };
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method).ok()?)
        .uri(http::Uri::try_from(uri).ok()?);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = http::HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii_start()).ok()?;
        builder = builder.header(name, value);
    }
    Some((builder.body(()).ok()?.into_parts().0, body))
}

fuzz_target!(|data: &[u8]| {
    let Some((parts, body)) = build(data) else {
        return;
    };
    match parse(&parts) {
        Ok(auth) => {
            for now in [NOW, NOW + 3600, 0] {
                if let Ok(now) = Timestamp::from_second(now) {
                    let _ = check_time(&auth, now);
                }
            }
            let key = SigningKey::derive(SECRET, &auth.scope_date, &auth.region, &auth.service);
            if let Err(e) = verify(&auth, &parts, body, &key) {
                let _ = (e.code(), e.message());
            }
            let _ = format!("{auth:?}");
        }
        Err(e) => {
            let _ = (e.code(), e.message());
        }
    }
});
