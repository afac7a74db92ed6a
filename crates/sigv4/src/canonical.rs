//! Building the SigV4 canonical request from what arrived on the wire.
//!
//! Everything works on bytes: header values may legally hold non-UTF-8
//! (obs-text) bytes, and the canonical request is hashed as bytes anyway.

use http::HeaderMap;
use http::uri::Uri;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

/// Everything except RFC 3986 unreserved characters gets encoded.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Like [`QUERY_SET`] but keeps `/`, for paths.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// The canonical URI for non-S3 services: dot segments and empty segments
/// removed as the SDKs do, then the (already percent-encoded) path encoded
/// once more, so `%` becomes `%25`.
pub(crate) fn canonical_uri(path: &str, out: &mut Vec<u8>) {
    // Every AWS JSON and Query call posts to `/`.
    if path == "/" {
        out.push(b'/');
        return;
    }
    let normalized = normalize_path(path);
    out.extend(percent_encode(normalized.as_bytes(), PATH_SET).flat_map(str::bytes));
}

/// RFC 3986 §5.2.4 dot-segment removal, also dropping empty segments (`//`),
/// matching aws-sigv4 and botocore. The result always starts with `/`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    // A trailing slash survives, as do the trailing "." and ".." forms that
    // RFC 3986 turns into one.
    let trailing = ["/", "/.", "/..", "/./", "/../"].iter().any(|end| path.ends_with(end));
    if out.is_empty() || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
    out
}

/// Decodes a query component: `+` is a space (as form decoding, aws-sigv4
/// and AWS's servers treat it), then `%XX` escapes; malformed escapes are kept
/// as they are.
pub(crate) fn decode_query_component(raw: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = raw.bytes().map(|b| if b == b'+' { b' ' } else { b }).collect();
    percent_decode(&plus_as_space).collect()
}

/// Splits a raw query string into decoded (key, value) pairs, in order.
/// Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` has an empty value.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|piece| {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        (decode_query_component(k), decode_query_component(v))
    })
}

/// The canonical query string: every pair decoded, re-encoded with the
/// unreserved set (upper-case hex), sorted by encoded key then value. For
/// presigned requests the `X-Amz-Signature` parameter is left out.
pub(crate) fn canonical_query(query: Option<&str>, skip_signature: bool, out: &mut Vec<u8>) {
    let Some(query) = query else { return };
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(k, _)| !(skip_signature && k == b"X-Amz-Signature"))
        .map(|(k, v)| {
            (
                percent_encode(&k, QUERY_SET).to_string(),
                percent_encode(&v, QUERY_SET).to_string(),
            )
        })
        .collect();
    pairs.sort_unstable();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
    }
}

/// The `host` value when the request carries no `Host` header (HTTP/2 sends
/// `:authority` instead): the URI authority, without a port that is the
/// default for the scheme, exactly as aws-sigv4 computes what it signs.
pub(crate) fn host_from_uri(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?;
    let default_port = matches!(
        (uri.scheme_str(), authority.port().as_ref().map(|p| p.as_str())),
        (Some("http"), Some("80")) | (Some("https"), Some("443"))
    );
    Some(if default_port {
        authority.host()
    } else {
        authority.as_str()
    })
}

/// Whether the request has a header by that (lower-case) name, counting the
/// URI authority as `host`.
pub(crate) fn has_header(headers: &HeaderMap, uri: &Uri, name: &str) -> bool {
    headers.keys().any(|k| k.as_str() == name) || (name == "host" && host_from_uri(uri).is_some())
}

/// Appends `name:value\n` for one signed header. Repeated headers are joined
/// with `,` in arrival order; each value is trimmed and inner runs of
/// whitespace collapse to one space. Returns false when the header is absent.
pub(crate) fn canonical_header(headers: &HeaderMap, uri: &Uri, name: &str, out: &mut Vec<u8>) -> bool {
    // A scan compares names that are already parsed and lower-case; a
    // lookup by `&str` would parse `name` into a header name first, which
    // costs more than the handful of comparisons. Values of one name come
    // out together, in arrival order.
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.as_str() == name)
        .map(|(_, v)| v)
        .peekable();
    if values.peek().is_none() {
        if name == "host"
            && let Some(host) = host_from_uri(uri)
        {
            out.extend_from_slice(b"host:");
            push_normalized(host.as_bytes(), out);
            out.push(b'\n');
            return true;
        }
        return false;
    }
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_normalized(value.as_bytes(), out);
    }
    out.push(b'\n');
    true
}

/// Trims spaces and tabs and collapses inner runs of them to one space.
/// (Tabs are treated as whitespace as botocore and the Java SDK do.)
fn push_normalized(value: &[u8], out: &mut Vec<u8>) {
    // Almost every value is already normal: copy it whole.
    let untrimmed = value.first().is_some_and(|b| *b == b' ' || *b == b'\t')
        || value.last().is_some_and(|b| *b == b' ' || *b == b'\t');
    if !untrimmed && !value.contains(&b'\t') && !value.windows(2).any(|w| w == b"  ") {
        out.extend_from_slice(value);
        return;
    }
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' || b == b'\t' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri_of(path: &str) -> String {
        let mut out = Vec::new();
        canonical_uri(path, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn query_of(q: &str) -> String {
        let mut out = Vec::new();
        canonical_query(Some(q), true, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn normalizes_paths() {
        for (path, want) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/foo/bar/.", "/foo/bar/"),
            ("/foo/bar/..", "/foo/"),
            ("/../foo", "/foo"),
            ("foo", "/foo"),
            ("*", "/%2A"),
        ] {
            assert_eq!(uri_of(path), want, "{path:?}");
        }
    }

    #[test]
    fn encodes_the_encoded_path_once_more() {
        assert_eq!(uri_of("/example%20space/"), "/example%2520space/");
        assert_eq!(uri_of("/example/$delete"), "/example/%24delete");
        assert_eq!(uri_of("/a:b@c=d"), "/a%3Ab%40c%3Dd");
        assert_eq!(
            uri_of("/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
            "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn canonicalizes_queries() {
        assert_eq!(query_of(""), "");
        assert_eq!(query_of("Param2=value2&Param1=value1"), "Param1=value1&Param2=value2");
        assert_eq!(query_of("Param1=value2&Param1=Value1"), "Param1=Value1&Param1=value2");
        assert_eq!(
            query_of("Param-3=Value3&Param=Value2&%E1%88%B4=Value1"),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
        assert_eq!(query_of("a&&b=&c"), "a=&b=&c=");
        assert_eq!(query_of("a=b+c&d=e%2Bf"), "a=b%20c&d=e%2Bf");
        assert_eq!(query_of("a=%zz&b=%4"), "a=%25zz&b=%254");
        assert_eq!(query_of("k=%2f%7e"), "k=%2F~");
        assert_eq!(query_of("X-Amz-Signature=abc&x=1"), "x=1");
        assert_eq!(query_of("k=%FF"), "k=%FF");
    }

    #[test]
    fn normalizes_header_values() {
        let mut out = Vec::new();
        push_normalized(b"  a   b \t c  ", &mut out);
        assert_eq!(out, b"a b c");
        out.clear();
        push_normalized(b"   ", &mut out);
        assert_eq!(out, b"");
    }

    #[test]
    fn host_from_authority_drops_default_ports() {
        let host = |u: &str| host_from_uri(&u.parse::<Uri>().unwrap()).map(str::to_owned);
        assert_eq!(host("https://example.com:443/"), Some("example.com".into()));
        assert_eq!(host("http://example.com:80/"), Some("example.com".into()));
        assert_eq!(host("http://example.com:8080/"), Some("example.com:8080".into()));
        assert_eq!(host("https://example.com:80/"), Some("example.com:80".into()));
        assert_eq!(host("https://example.com/"), Some("example.com".into()));
        assert_eq!(host("/"), None);
    }
}
