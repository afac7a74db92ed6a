//! Helpers shared by the integration tests: request building and the
//! aws-sigv4 oracle.
#![allow(dead_code)]

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::request::Parts;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tumbler_sigv4::{SigV4Error, SigningKey, Timestamp};

/// The AWS SigV4 test suite's example credentials.
pub const SUITE_AKID: &str = "AKIDEXAMPLE";
pub const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const SUITE_DATE: &str = "20150830T123600Z";

/// Builds request parts; header values are raw bytes so tests can send
/// anything HTTP allows (including obs-text).
pub fn parts(method: &str, uri: &str, headers: &[(&str, &[u8])]) -> Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, http::HeaderValue::from_bytes(v).expect("valid header value"));
    }
    b.body(()).expect("valid request").into_parts().0
}

pub fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// parse + verify, as the server does after key lookup.
pub fn parse_and_verify(parts: &Parts, body: &[u8], secret: &str) -> Result<(), SigV4Error> {
    let auth = tumbler_sigv4::parse(parts)?;
    let key = SigningKey::derive(secret.as_bytes(), &auth.scope_date, &auth.region, &auth.service);
    tumbler_sigv4::verify(&auth, parts, body, &key)
}

/// What to ask the aws-sigv4 oracle for.
#[derive(Clone, Debug)]
pub struct OracleRequest {
    pub method: String,
    /// Absolute URL, as an SDK signs it.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub token: Option<String>,
    /// Presign (query) instead of the Authorization header.
    pub presign: bool,
    /// Sign `X-Amz-Content-Sha256` (header auth only).
    pub content_sha256: bool,
    /// Leave the session token out of the signature and add it afterwards
    /// (the test suite's "header-after").
    pub token_after: bool,
    pub time_secs: u64,
    pub region: String,
    pub service: String,
}

impl OracleRequest {
    pub fn new(method: &str, url: &str) -> Self {
        OracleRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            token: None,
            presign: false,
            content_sha256: false,
            token_after: false,
            time_secs: 1_795_000_000,
            region: "us-east-1".to_owned(),
            service: "secretsmanager".to_owned(),
        }
    }
}

pub const ORACLE_AKID: &str = "AKIAORACLEEXAMPLE";
pub const ORACLE_SECRET: &str = "oracle/secret+KEY/example0123456789abcdef";

/// Signs with aws-sigv4 1.6 and returns the request as the client sends it
/// (absolute URI, no Host header: HTTP/2 style).
pub fn oracle_sign(r: &OracleRequest) -> http::Request<()> {
    let identity: Identity = Credentials::new(ORACLE_AKID, ORACLE_SECRET, r.token.clone(), None, "oracle").into();
    let mut settings = SigningSettings::default();
    if r.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(300));
    }
    if r.content_sha256 {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if r.token_after {
        settings.session_token_mode = SessionTokenMode::Exclude;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&r.region)
        .name(&r.service)
        .time(UNIX_EPOCH + Duration::from_secs(r.time_secs))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        &r.method,
        r.url.as_str(),
        r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&r.body),
    )
    .unwrap();
    let (instructions, _signature) = sign(signable, &params).unwrap().into_parts();

    let mut b = http::Request::builder().method(r.method.as_str()).uri(&r.url);
    for (k, v) in &r.headers {
        b = b.header(k, v);
    }
    let mut req = b.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    if r.token_after
        && !r.presign
        && let Some(token) = &r.token
    {
        req.headers_mut().insert("x-amz-security-token", token.parse().unwrap());
    }
    req
}

/// What an HTTP/1.1 server sees: origin-form URI plus a Host header (without
/// a default port, as hyper and the SDKs send it).
pub fn to_http1(req: http::Request<()>) -> http::Request<()> {
    let (mut parts, ()) = req.into_parts();
    let uri = parts.uri.clone();
    let authority = uri.authority().unwrap();
    let default_port = matches!(
        (uri.scheme_str(), authority.port_u16()),
        (Some("http"), Some(80)) | (Some("https"), Some(443))
    );
    let host = if default_port {
        authority.host()
    } else {
        authority.as_str()
    };
    if !parts.headers.contains_key(http::header::HOST) {
        parts.headers.insert(http::header::HOST, host.parse().unwrap());
    }
    parts.uri = uri.path_and_query().map_or("/", |pq| pq.as_str()).parse().unwrap();
    http::Request::from_parts(parts, ())
}

/// The oracle's signing time, as our `now`.
pub fn oracle_now(r: &OracleRequest) -> Timestamp {
    ts(i64::try_from(r.time_secs).unwrap())
}

pub fn system_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}
