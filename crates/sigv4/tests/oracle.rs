//! Requests signed by the SDK's own signer (aws-sigv4 1.6) must verify, in
//! every shape a client sends them, and must stop verifying after any
//! one-byte change to what was signed.

mod common;

use common::*;
use http::request::Parts;
use proptest::prelude::*;
use tumbler_sigv4::{AuthLocation, SigV4Error, SigningKey, check_time, parse, verify};

fn key_for(auth: &tumbler_sigv4::ParsedAuth) -> SigningKey {
    SigningKey::derive(ORACLE_SECRET.as_bytes(), &auth.scope_date, &auth.region, &auth.service)
}

/// Verifies a signed request as HTTP/1.1 (Host header) and HTTP/2 (authority
/// only) and returns the HTTP/1.1 parts and their parsed auth.
fn verify_both_shapes(r: &OracleRequest) -> (Parts, tumbler_sigv4::ParsedAuth) {
    let signed = oracle_sign(r);
    let now = oracle_now(r);

    let (h2, ()) = signed.clone().into_parts();
    assert!(h2.headers.get("host").is_none());
    let auth = parse(&h2).unwrap();
    check_time(&auth, now).unwrap();
    verify(&auth, &h2, &r.body, &key_for(&auth)).unwrap();

    let (h1, ()) = to_http1(signed).into_parts();
    let auth = parse(&h1).unwrap();
    check_time(&auth, now).unwrap();
    verify(&auth, &h1, &r.body, &key_for(&auth)).unwrap();
    (h1, auth)
}

#[test]
fn a_secrets_manager_call_verifies() {
    let mut r = OracleRequest::new("POST", "https://secretsmanager.us-east-1.amazonaws.com/");
    r.headers = vec![
        ("content-type".into(), "application/x-amz-json-1.1".into()),
        ("x-amz-target".into(), "secretsmanager.GetSecretValue".into()),
    ];
    r.body = br#"{"SecretId":"prod/db"}"#.to_vec();
    let (_, auth) = verify_both_shapes(&r);
    assert_eq!(auth.access_key_id, ORACLE_AKID);
    assert_eq!(auth.service, "secretsmanager");
    assert_eq!(auth.location, AuthLocation::Header);
    assert_eq!(auth.security_token, None);
    assert_eq!(
        auth.signed_headers.iter().collect::<Vec<_>>(),
        ["content-type", "host", "x-amz-date", "x-amz-target"]
    );
}

#[test]
fn a_session_token_verifies_signed_and_unsigned() {
    let mut r = OracleRequest::new("POST", "http://127.0.0.1:42261/");
    r.body = b"{}".to_vec();
    r.token = Some("FQoGZXIvYXdzEXAMPLE//token+with/slashes==".into());
    let (_, auth) = verify_both_shapes(&r);
    assert!(auth.signed_headers.contains("x-amz-security-token"));
    assert_eq!(auth.security_token, r.token);

    r.token_after = true;
    let (_, auth) = verify_both_shapes(&r);
    assert!(!auth.signed_headers.contains("x-amz-security-token"));
    assert_eq!(auth.security_token, r.token);
}

#[test]
fn a_presigned_sts_url_verifies() {
    let mut r = OracleRequest::new(
        "GET",
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
    );
    r.service = "sts".into();
    r.presign = true;
    let (h1, auth) = verify_both_shapes(&r);
    assert_eq!(auth.location, AuthLocation::Query);
    assert_eq!(auth.expires_secs, Some(300));
    assert_eq!(auth.service, "sts");
    // The credential arrives percent-encoded (%2F) and is decoded.
    assert!(h1.uri.query().unwrap().contains("%2F"));
    assert_eq!(auth.access_key_id, ORACLE_AKID);

    r.token = Some("IQoJb3JpZ2luX2VjEXAMPLE/+=".into());
    let (_, auth) = verify_both_shapes(&r);
    assert_eq!(auth.security_token, r.token);
}

#[test]
fn a_presigned_url_expires() {
    let mut r = OracleRequest::new("GET", "https://sts.amazonaws.com/?Action=GetCallerIdentity");
    r.presign = true;
    let (h1, ()) = to_http1(oracle_sign(&r)).into_parts();
    let auth = parse(&h1).unwrap();
    let signed_at = oracle_now(&r).as_second();
    check_time(&auth, ts(signed_at + 300)).unwrap();
    let err = check_time(&auth, ts(signed_at + 301)).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
    assert!(err.message().starts_with("Signature expired: "), "{err}");
    // Signed for a moment up to 15 minutes ahead of our clock: fine; beyond: not.
    check_time(&auth, ts(signed_at - 15 * 60)).unwrap();
    let err = check_time(&auth, ts(signed_at - 15 * 60 - 1)).unwrap_err();
    assert!(err.message().starts_with("Signature not yet current: "), "{err}");
}

#[test]
fn a_signed_content_sha256_verifies_and_must_match_the_body() {
    let mut r = OracleRequest::new("POST", "https://kms.eu-west-1.amazonaws.com/");
    r.region = "eu-west-1".into();
    r.service = "kms".into();
    r.headers = vec![("x-amz-target".into(), "TrentService.Decrypt".into())];
    r.body = b"{\"CiphertextBlob\":\"AAAA\"}".to_vec();
    r.content_sha256 = true;
    let (h1, auth) = verify_both_shapes(&r);
    assert!(auth.signed_headers.contains("x-amz-content-sha256"));
    assert_eq!(
        verify(&auth, &h1, b"{}", &key_for(&auth)),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn http2_authorities_with_ports_verify() {
    for url in [
        "https://example.com:443/",
        "http://example.com:80/x",
        "http://localhost:4566/",
        "https://[::1]:8443/a/b",
    ] {
        let r = OracleRequest::new("POST", url);
        verify_both_shapes(&r);
    }
}

#[test]
fn headers_the_sdk_excludes_may_change() {
    let mut r = OracleRequest::new("POST", "https://secretsmanager.us-east-1.amazonaws.com/");
    r.headers = vec![("user-agent".into(), "aws-sdk-rust/1.0".into())];
    let (mut h1, auth) = verify_both_shapes(&r);
    assert!(!auth.signed_headers.contains("user-agent"));
    h1.headers.insert("user-agent", "proxy/2".parse().unwrap());
    h1.headers.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
    verify(&auth, &h1, &r.body, &key_for(&auth)).unwrap();
}

// ---------------------------------------------------------------- proptest

/// A path in already-encoded form, with dot segments and repeated slashes.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => "[A-Za-z0-9._~!$'()*+,;=:@-]{1,6}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(String::new()),
        1 => "(%[0-9A-F]{2}){1,3}",
        1 => Just("%E1%88%B4".to_owned()),
    ];
    (prop::collection::vec(segment, 0..5), any::<bool>()).prop_map(|(segs, trailing)| {
        let mut p = format!("/{}", segs.join("/"));
        if trailing && !p.ends_with('/') {
            p.push('/');
        }
        p
    })
}

/// Encodes a query component; `plus` spells spaces as `+`, as forms do.
fn encode_component(s: &str, plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn query() -> impl Strategy<Value = Option<String>> {
    let text = "[a-zA-Z0-9 ._~+=&/%-]{0,6}|[\\u{80}-\\u{2000}]{1,2}";
    let pair = (text, text, any::<bool>(), any::<bool>()).prop_map(|(k, v, plus, bare)| {
        let k = encode_component(&k, plus);
        if bare && v.is_empty() {
            k
        } else {
            format!("{k}={}", encode_component(&v, plus))
        }
    });
    prop::option::of(prop::collection::vec(pair, 0..5).prop_map(|p| p.join("&")))
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("x-t-[a-z0-9]{1,4}", "[ -~]{0,16}"), 0..5)
}

prop_compose! {
    fn oracle_request()(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        port in prop::option::of(prop::sample::select(vec![443u16, 8443, 4566])),
        path in path(),
        query in query(),
        headers in headers(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        token in prop::option::of("[A-Za-z0-9/+=]{8,40}"),
        presign in any::<bool>(),
        content_sha256 in any::<bool>(),
        token_after in any::<bool>(),
    ) -> OracleRequest {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let mut r = OracleRequest::new(method, &format!("https://example.amazonaws.com{port}{path}{query}"));
        r.headers = headers;
        r.body = body;
        r.token = token;
        r.presign = presign;
        r.content_sha256 = content_sha256 && !presign;
        r.token_after = token_after && !presign;
        r
    }
}

/// Changes one byte of a header value so that its canonical form changes
/// (or appends one to an empty value).
fn mutate_value(value: &[u8], at: usize) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.is_empty() {
        v.push(b'a');
    } else {
        let i = at % v.len();
        v[i] = if v[i] == b'a' { b'b' } else { b'a' };
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn oracle_signed_requests_verify_and_mutations_fail(
        r in oracle_request(),
        at in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let (h1, auth) = verify_both_shapes(&r);
        let key = key_for(&auth);

        // One byte of the body.
        if !r.body.is_empty() {
            let mut body = r.body.clone();
            let i = at % body.len();
            body[i] ^= flip;
            prop_assert_eq!(verify(&auth, &h1, &body, &key), Err(SigV4Error::SignatureMismatch));
        }

        // One byte of the signature.
        let mut bad = auth.clone();
        let i = at % bad.signature.len();
        bad.signature[i] ^= flip;
        prop_assert_eq!(verify(&bad, &h1, &r.body, &key), Err(SigV4Error::SignatureMismatch));

        // One byte of each signed header's value (the first one, if repeated).
        for name in auth.signed_headers.iter() {
            let mut changed = h1.clone();
            let value = changed.headers.get(name).unwrap().as_bytes().to_vec();
            let new = http::HeaderValue::from_bytes(&mutate_value(&value, at)).unwrap();
            let first = changed.headers.get_mut(name).unwrap();
            *first = new;
            let result = parse(&changed).and_then(|a| verify(&a, &changed, &r.body, &key));
            prop_assert!(result.is_err(), "changing {} verified", name);
        }
    }
}
