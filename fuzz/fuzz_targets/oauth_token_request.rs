//! Arbitrary token requests (`POST /oauth2/token`: an Authorization header
//! and a form body, both from anyone): reading them never panics, and a
//! refusal never repeats the client secret it was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_oauth::parse_token_request;

const MARKER: &str = "QZXJ7-secret-marker-9VKW";

fuzz_target!(|data: &[u8]| {
    // The first line is the Authorization header (if any), the rest the body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(String::from_utf8_lossy(&data[..i]).into_owned()), &data[i + 1..]),
        None => (None, data),
    };
    if let Err((e, _)) = parse_token_request(header.as_deref(), body) {
        assert!(matches!(e.status, 400 | 401), "{}", e.status);
    }
    // The same request with a recognisable secret: no refusal repeats it.
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(body) {
        form.append_pair(&k, if k == "client_secret" { MARKER } else { &v });
    }
    let body = form.finish();
    if let Err((e, _)) = parse_token_request(header.as_deref(), body.as_bytes()) {
        assert!(!e.description.contains(MARKER), "a refusal repeats the secret: {}", e.description);
    }
});
