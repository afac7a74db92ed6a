//! Reading the SigV4 authentication out of a request, before any key lookup.
//!
//! The order of checks and the messages follow AWS's (as documented by
//! scratchstack's "AWS Auth Error Ordering" notes and seen in AWS responses).

use crate::canonical::{has_header, query_pairs};
use crate::time::{format_amz_date, parse_amz_date, parse_http_date};
use crate::{AuthLocation, ParsedAuth, SigV4Error, SignedHeaders};
use http::HeaderName;
use http::header::{AUTHORIZATION, DATE};
use http::request::Parts;
use std::borrow::Cow;

/// The only algorithm accepted (SigV4a and older versions are not).
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Bound on work and on what error messages may echo back.
pub(crate) const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;
/// Bound on the canonical headers we are made to build.
pub(crate) const MAX_SIGNED_HEADERS: usize = 64;

// Parsed once here, not on every lookup as a `&str` name would be.
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// The text of a header value; invalid UTF-8 becomes U+FFFD, which can
/// match no valid field. (The check alone is much cheaper than the lossy
/// conversion, and almost every value is ASCII.)
fn text(value: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(value),
    }
}

/// `s` split at commas and ASCII white space, without empty pieces. Works
/// on bytes (the separators are ASCII, so every piece is still valid text)
/// because splitting by a `char` predicate decodes every character.
fn auth_params(s: &str) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        while start < bytes.len() && (bytes[start] == b',' || bytes[start].is_ascii_whitespace()) {
            start += 1;
        }
        if start >= bytes.len() {
            return None;
        }
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b',' || b.is_ascii_whitespace())
            .map_or(bytes.len(), |n| start + n);
        let piece = &s[start..end];
        start = end;
        Some(piece)
    })
}

/// `s` split at an ASCII byte, as `str::split` would. By bytes because a
/// `char` pattern runs a searcher made for long text, which cost more than
/// scanning these few short fields (the largest part of `parse`'s time). The
/// separator is ASCII, so every piece starts and ends on a char boundary.
pub(crate) fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> + Clone {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == sep) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn incomplete(msg: impl Into<String>) -> SigV4Error {
    SigV4Error::Incomplete(msg.into())
}

/// Parses the `Authorization` header, or the presigned query parameters.
///
/// Returns [`SigV4Error::Missing`] when the request carries neither (or a
/// presign algorithm other than `AWS4-HMAC-SHA256`, as AWS does). Nothing is
/// verified here except the shape: the credential scope, that `host` is
/// signed, that every signed header exists, that the request has a parseable
/// date and that the scope date is that date's day.
///
/// A `Signature` that is not 64 hex digits is not rejected here: it is kept
/// as an empty signature, so [`crate::verify`] reports the mismatch after the
/// caller has looked up the access key (AWS's order: unknown key first).
pub fn parse(parts: &Parts) -> Result<ParsedAuth, SigV4Error> {
    let header = parts.headers.get(AUTHORIZATION);
    let query_algorithm = parts
        .uri
        .query()
        .and_then(|q| query_pairs(q).find(|(k, _)| k == b"X-Amz-Algorithm").map(|(_, v)| v));
    match (header, query_algorithm) {
        (None, None) => Err(SigV4Error::Missing),
        // AWS refuses a request that carries both forms as a bad signature.
        (Some(_), Some(_)) => Err(SigV4Error::SignatureMismatch),
        (Some(h), None) => parse_header(parts, h.as_bytes()),
        (None, Some(alg)) if alg == ALGORITHM.as_bytes() => parse_query(parts),
        (None, Some(_)) => Err(SigV4Error::Missing),
    }
}

/// The raw fields before the checks shared by both locations.
struct Raw {
    credential: String,
    signed_headers: String,
    signature: String,
    amz_date: String,
    request_time: jiff::Timestamp,
    security_token: Option<String>,
    location: AuthLocation,
    expires_secs: Option<u64>,
}

fn parse_header(parts: &Parts, value: &[u8]) -> Result<ParsedAuth, SigV4Error> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(incomplete(format!(
            "Authorization header is too long ({} bytes; at most {MAX_AUTHORIZATION_LEN} are accepted).",
            value.len()
        )));
    }
    let whole = text(value);
    let trimmed = whole.trim_ascii();
    if trimmed.is_empty() {
        return Err(SigV4Error::Missing);
    }
    let (algorithm, rest) = match trimmed.bytes().position(|b| b.is_ascii_whitespace()) {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (trimmed, ""),
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!("Unsupported AWS 'algorithm': '{algorithm}'.")));
    }

    // AWS separates the parameters by commas and white space alike, so
    // "Credential= AK/..." reports 'AK/...' as lacking an equal sign.
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for token in auth_params(rest) {
        let Some((key, val)) = token
            .bytes()
            .position(|b| b == b'=')
            .map(|i| (&token[..i], &token[i + 1..]))
        else {
            return Err(incomplete(format!(
                "'{token}' not a valid key=value pair (missing equal-sign) in Authorization header: '{trimmed}'."
            )));
        };
        // A repeated key: the last one wins, as with AWS. Unknown keys are ignored.
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed_headers = Some(val),
            "Signature" => signature = Some(val),
            _ => {}
        }
    }

    let amz_date_header = parts.headers.get(&X_AMZ_DATE);
    let date_header = parts.headers.get(DATE);
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if amz_date_header.is_none() && date_header.is_none() {
        missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
    }
    if !missing.is_empty() {
        return Err(incomplete(format!("{} Authorization={trimmed}", missing.join(" "))));
    }

    let (amz_date, request_time) = if let Some(v) = amz_date_header {
        let raw = text(v.as_bytes());
        let ts = parse_amz_date(&raw).ok_or_else(|| bad_date(&raw))?;
        (raw.into_owned(), ts)
    } else {
        let raw = text(date_header.map_or(&[][..], |v| v.as_bytes()));
        let ts = parse_http_date(&raw).ok_or_else(|| bad_date(&raw))?;
        // The string to sign always carries the basic form.
        (format_amz_date(ts), ts)
    };

    let security_token = match parts.headers.get(&X_AMZ_SECURITY_TOKEN) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| incomplete("X-Amz-Security-Token must be ASCII text."))?
                .to_owned(),
        ),
    };

    finish(
        parts,
        Raw {
            credential: credential.unwrap_or_default().to_owned(),
            signed_headers: signed_headers.unwrap_or_default().to_owned(),
            signature: signature.unwrap_or_default().to_owned(),
            amz_date,
            request_time,
            security_token,
            location: AuthLocation::Header,
            expires_secs: None,
        },
    )
}

fn bad_date(raw: &str) -> SigV4Error {
    incomplete(format!(
        "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
        clip(raw)
    ))
}

fn parse_query(parts: &Parts) -> Result<ParsedAuth, SigV4Error> {
    let query = parts.uri.query().unwrap_or_default();
    // The first value of each parameter counts, as with AWS.
    let (mut credential, mut signed_headers, mut signature, mut date, mut expires, mut token) =
        (None, None, None, None, None, None);
    for (k, v) in query_pairs(query) {
        let slot = match k.as_slice() {
            b"X-Amz-Credential" => &mut credential,
            b"X-Amz-SignedHeaders" => &mut signed_headers,
            b"X-Amz-Signature" => &mut signature,
            b"X-Amz-Date" => &mut date,
            b"X-Amz-Expires" => &mut expires,
            b"X-Amz-Security-Token" => &mut token,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }

    let mut missing = Vec::new();
    for (value, name) in [
        (&credential, "X-Amz-Credential"),
        (&signature, "X-Amz-Signature"),
        (&signed_headers, "X-Amz-SignedHeaders"),
        (&date, "X-Amz-Date"),
        (&expires, "X-Amz-Expires"),
    ] {
        if value.is_none() {
            missing.push(format!("AWS query-string parameters must include '{name}'."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(format!(
            "{} Re-examine the query-string parameters.",
            missing.join(" ")
        )));
    }

    let text = |v: Option<Vec<u8>>| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned();
    let amz_date = text(date);
    let request_time = parse_amz_date(&amz_date).ok_or_else(|| bad_date(&amz_date))?;
    let expires = text(expires);
    let expires_secs = if !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit()) {
        expires.parse::<u64>().ok()
    } else {
        None
    }
    .ok_or_else(|| incomplete("X-Amz-Expires should be a number"))?;
    let security_token = match token {
        None => None,
        Some(t) => Some(String::from_utf8(t).map_err(|_| incomplete("X-Amz-Security-Token must be UTF-8 text."))?),
    };

    finish(
        parts,
        Raw {
            credential: text(credential),
            signed_headers: text(signed_headers),
            signature: text(signature),
            amz_date,
            request_time,
            security_token,
            location: AuthLocation::Query,
            expires_secs: Some(expires_secs),
        },
    )
}

/// The checks both locations share: credential scope, signed headers, scope date.
fn finish(parts: &Parts, raw: Raw) -> Result<ParsedAuth, SigV4Error> {
    let mut scope = split_ascii(&raw.credential, b'/');
    let (Some(access_key_id), Some(scope_date), Some(region), Some(service), Some(terminator), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            clip(&raw.credential)
        )));
    };
    if terminator != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            clip(terminator)
        )));
    }

    if split_ascii(&raw.signed_headers, b';').count() > MAX_SIGNED_HEADERS {
        return Err(incomplete(format!(
            "Too many SignedHeaders: at most {MAX_SIGNED_HEADERS} are accepted."
        )));
    }
    let signed_headers = SignedHeaders::from_list(raw.signed_headers);
    if !signed_headers.contains("host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if let Some(absent) = signed_headers
        .iter()
        .find(|h| !has_header(&parts.headers, &parts.uri, h))
    {
        return Err(incomplete(format!(
            "'{}' is named as a SignedHeader, but it does not exist in the HTTP request.",
            clip(absent)
        )));
    }

    // The scope must be for the request's own day. AWS reports this as an
    // InvalidSignatureException with this text, hence `Expired`.
    let request_day = raw.amz_date.get(..8).unwrap_or_default();
    if scope_date != request_day {
        return Err(SigV4Error::Expired(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{request_day}', from '{}'.",
            clip(scope_date),
            raw.amz_date
        )));
    }

    // Either case of hex is accepted (same bytes); anything else can only
    // mismatch, which verify reports.
    let mut decoded = [0u8; 32];
    let signature = match hex::decode_to_slice(&raw.signature, &mut decoded) {
        Ok(()) => decoded.to_vec(),
        Err(_) => Vec::new(),
    };

    Ok(ParsedAuth {
        access_key_id: access_key_id.to_owned(),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature,
        request_time: raw.request_time,
        amz_date: raw.amz_date,
        security_token: raw.security_token,
        location: raw.location,
        expires_secs: raw.expires_secs,
    })
}

/// Bounds what an error message echoes back from the query string, which
/// (unlike the Authorization header) has no length cap of ours.
pub(crate) fn clip(s: &str) -> Cow<'_, str> {
    const MAX_ECHO: usize = 256;
    match s.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => Cow::Owned(format!("{}...", &s[..cut])),
        None => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::split_ascii;

    #[test]
    fn split_ascii_is_str_split() {
        for s in [
            "",
            "a",
            "/",
            "a/b",
            "/a/",
            "//",
            "AK/20261124/us-east-1/sm/aws4_request",
            "é/秘密//🔑/",
        ] {
            assert_eq!(
                split_ascii(s, b'/').collect::<Vec<_>>(),
                s.split('/').collect::<Vec<_>>(),
                "{s:?}"
            );
        }
    }
}
