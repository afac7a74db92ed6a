//! AWS Signature Version 4 verification for Tumbler.
//!
//! This crate owns reading and checking SigV4 request authentication, both
//! the `Authorization` header form and presigned (query-string) URLs, for the
//! AWS JSON and query services Tumbler serves (`secretsmanager`, `kms`, `sts`).
//! It is pure: no I/O, no clock, no credential store. The caller drives it:
//!
//! 1. [`parse`] the request into a [`ParsedAuth`] (access key, scope,
//!    signed headers, signature, time, session token);
//! 2. [`check_time`] against the server clock;
//! 3. look up the secret for `access_key_id` (and session token), check the
//!    scope's region and service, and get a [`SigningKey`] (cached per
//!    access key, date, region and service);
//! 4. [`verify`] the signature over the request parts and body.
//!
//! Failures are [`SigV4Error`]s that carry AWS's error code and wording.
//! Choices made where AWS's behaviour is not pinned down:
//! - a credential scope date that differs from the request date is an
//!   `InvalidSignatureException` ([`SigV4Error::Expired`] with AWS's text);
//! - `X-Amz-Content-Sha256`, when present, must equal the SHA-256 of the
//!   body; `UNSIGNED-PAYLOAD` and `STREAMING-*` are refused as
//!   `IncompleteSignatureException` since no S3-style service is served;
//! - a raw `+` in the query string is a space (as form decoding and aws-sigv4
//!   treat it);
//! - header values are trimmed and whitespace runs (spaces and tabs)
//!   collapsed to one space;
//! - `X-Amz-Security-Token` is accepted whether or not it is signed (AWS's
//!   test suite "post-sts-token" cases);
//! - `host` missing from `SignedHeaders`, a malformed scope (not five parts,
//!   or not ending in `aws4_request`), an `Authorization` header over 8 KiB
//!   and more than 64 signed headers are `IncompleteSignatureException`;
//! - a `Signature` that is not 64 hex digits parses, and fails in [`verify`]
//!   as a mismatch, so an unknown access key is still reported first;
//! - both an `Authorization` header and presign parameters is an
//!   `InvalidSignatureException`; a presign `X-Amz-Algorithm` other than
//!   `AWS4-HMAC-SHA256` counts as no authentication at all (AWS's order).

mod canonical;
mod error;
mod key;
mod parse;
mod time;

pub use error::SigV4Error;
pub use jiff::Timestamp;
pub use key::SigningKey;
pub use parse::parse;
pub use time::check_time;

use aws_lc_rs::digest::{SHA256, digest};
use canonical::{canonical_header, canonical_query, canonical_uri};
use http::HeaderName;
use http::request::Parts;
use std::fmt;

const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// Where the signature came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLocation {
    /// The `Authorization` header.
    Header,
    /// Presigned query parameters (`X-Amz-Algorithm`, `X-Amz-Signature`, …).
    Query,
}

/// The parsed, not yet verified, authentication of a request.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// `yyyymmdd` from the credential scope (equal to the request's day).
    pub scope_date: String,
    /// The region from the credential scope; the caller checks it is served.
    pub region: String,
    /// The service from the credential scope; the caller checks it matches the endpoint.
    pub service: String,
    /// The signed header names, lower-cased, in the order the client listed them.
    pub signed_headers: SignedHeaders,
    /// The signature, decoded from hex: 32 bytes, or empty when the client
    /// sent something that is not 64 hex digits (it then fails [`verify`]).
    pub signature: Vec<u8>,
    /// When the request was signed, from `X-Amz-Date` (or the `Date` header).
    pub request_time: Timestamp,
    /// The `yyyymmddTHHMMSSZ` date used in the string to sign: the raw
    /// `X-Amz-Date`, or the `Date` header reformatted.
    pub amz_date: String,
    /// `X-Amz-Security-Token` from the header (header auth) or the query (presigned).
    pub security_token: Option<String>,
    /// Header or presigned query authentication.
    pub location: AuthLocation,
    /// `X-Amz-Expires` for presigned requests; `None` for header auth.
    pub expires_secs: Option<u64>,
}

/// The signed header names, lower-cased, in the order the client listed
/// them, kept as the list's own text (`host;x-amz-date`): one string, not
/// one a name, since every request is parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedHeaders(String);

impl SignedHeaders {
    /// From a `;`-separated list, lower-cased in place.
    pub fn from_list(mut list: String) -> SignedHeaders {
        list.make_ascii_lowercase();
        SignedHeaders(list)
    }

    /// The list as it goes into the canonical request.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The names, as `str::split(';')` gives them.
    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        parse::split_ascii(&self.0, b';')
    }

    pub fn len(&self) -> usize {
        // Counted without splitting (the count is vectorised).
        self.0.bytes().filter(|&b| b == b';').count() + 1
    }

    /// Never: even an empty list names one (empty) header.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }
}

impl<'a> FromIterator<&'a str> for SignedHeaders {
    fn from_iter<I: IntoIterator<Item = &'a str>>(names: I) -> SignedHeaders {
        SignedHeaders::from_list(names.into_iter().collect::<Vec<_>>().join(";"))
    }
}

/// Hand-written so the session token, a credential, never reaches a log.
impl fmt::Debug for ParsedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedAuth")
            .field("access_key_id", &self.access_key_id)
            .field("scope_date", &self.scope_date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &hex::encode(&self.signature))
            .field("request_time", &self.request_time)
            .field("amz_date", &self.amz_date)
            .field("security_token", &self.security_token.as_ref().map(|_| "<redacted>"))
            .field("location", &self.location)
            .field("expires_secs", &self.expires_secs)
            .finish()
    }
}

/// Rebuilds the canonical request from `parts` and `body`, exactly over the
/// headers the client listed in `SignedHeaders`, and checks the signature in
/// constant time.
///
/// Errors: [`SigV4Error::SignatureMismatch`] for a wrong signature or a
/// `X-Amz-Content-Sha256` that is not the body's hash;
/// [`SigV4Error::Incomplete`] for an unsigned/streaming payload marker or a
/// signed header that is absent from `parts`.
pub fn verify(auth: &ParsedAuth, parts: &Parts, body: &[u8], key: &SigningKey) -> Result<(), SigV4Error> {
    let payload_hash = payload_hash(parts, body)?;
    let canonical = canonical_request(auth, parts, &payload_hash)?;

    let mut string_to_sign = Vec::with_capacity(192);
    string_to_sign.extend_from_slice(b"AWS4-HMAC-SHA256\n");
    string_to_sign.extend_from_slice(auth.amz_date.as_bytes());
    string_to_sign.push(b'\n');
    for part in [&auth.scope_date, &auth.region, &auth.service] {
        string_to_sign.extend_from_slice(part.as_bytes());
        string_to_sign.push(b'/');
    }
    string_to_sign.extend_from_slice(b"aws4_request\n");
    string_to_sign.extend_from_slice(&hex_sha256(&canonical));

    if key.verify(&string_to_sign, &auth.signature) {
        Ok(())
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

/// The canonical request, as bytes (header values need not be UTF-8).
fn canonical_request(auth: &ParsedAuth, parts: &Parts, payload_hash: &[u8]) -> Result<Vec<u8>, SigV4Error> {
    // `ParsedAuth` fields are public, so re-check the bound parse enforces.
    if auth.signed_headers.len() > parse::MAX_SIGNED_HEADERS {
        return Err(SigV4Error::Incomplete(format!(
            "Too many SignedHeaders: at most {} are accepted.",
            parse::MAX_SIGNED_HEADERS
        )));
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b'\n');
    canonical_uri(parts.uri.path(), &mut out);
    out.push(b'\n');
    canonical_query(parts.uri.query(), auth.location == AuthLocation::Query, &mut out);
    out.push(b'\n');
    for name in auth.signed_headers.iter() {
        if !canonical_header(&parts.headers, &parts.uri, name, &mut out) {
            return Err(SigV4Error::Incomplete(format!(
                "'{}' is named as a SignedHeader, but it does not exist in the HTTP request.",
                parse::clip(name)
            )));
        }
    }
    out.push(b'\n');
    out.extend_from_slice(auth.signed_headers.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash);
    Ok(out)
}

/// Lower-case hex of the SHA-256 of `data`, without a heap allocation.
fn hex_sha256(data: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    // 32 bytes always fit 64 hex digits, so this cannot fail.
    let _ = hex::encode_to_slice(digest(&SHA256, data), &mut out);
    out
}

/// The payload hash line: the body's SHA-256, which `X-Amz-Content-Sha256`
/// must repeat when the client sends it (we never trust the header alone).
fn payload_hash(parts: &Parts, body: &[u8]) -> Result<[u8; 64], SigV4Error> {
    let computed = hex_sha256(body);
    let mut claimed = parts.headers.get_all(X_AMZ_CONTENT_SHA256).iter();
    let Some(first) = claimed.next() else {
        return Ok(computed);
    };
    if claimed.next().is_some() {
        return Err(SigV4Error::SignatureMismatch);
    }
    let value = first.as_bytes().trim_ascii();
    if value.eq_ignore_ascii_case(&computed) {
        // The client's own spelling of the hash (either case of hex) is what it signed.
        let mut spelled = [0u8; 64];
        spelled.copy_from_slice(value);
        return Ok(spelled);
    }
    if value == b"UNSIGNED-PAYLOAD" || value.starts_with(b"STREAMING-") {
        return Err(SigV4Error::Incomplete(format!(
            "x-amz-content-sha256 '{}' is not supported by this service; the payload must be signed.",
            String::from_utf8_lossy(&value[..value.len().min(64)])
        )));
    }
    Err(SigV4Error::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite's post-x-www-form-urlencoded canonical request, byte for byte.
    #[test]
    fn builds_the_suite_canonical_request() {
        let (parts, ()) = http::Request::post("/")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Host", "example.amazonaws.com")
            .header("X-Amz-Date", "20150830T123600Z")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature=00",
            )
            .body(())
            .unwrap()
            .into_parts();
        let auth = parse(&parts).unwrap();
        let hash = payload_hash(&parts, b"Param1=value1").unwrap();
        let canonical = canonical_request(&auth, &parts, &hash).unwrap();
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n\
             host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
    }

    #[test]
    fn error_codes_and_messages() {
        assert_eq!(SigV4Error::Missing.code(), "MissingAuthenticationTokenException");
        assert_eq!(SigV4Error::Missing.message(), "Missing Authentication Token");
        assert_eq!(
            SigV4Error::Incomplete("x".into()).code(),
            "IncompleteSignatureException"
        );
        assert_eq!(SigV4Error::SignatureMismatch.code(), "InvalidSignatureException");
        assert_eq!(
            SigV4Error::SignatureMismatch.to_string(),
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        );
        assert_eq!(
            SigV4Error::Expired("Signature expired".into()).code(),
            "InvalidSignatureException"
        );
    }
}
