//! Known-answer tests: AWS's published SigV4 test suite (aws-sig-v4-test-suite,
//! credentials AKIDEXAMPLE, us-east-1, service "service", 20150830T123600Z)
//! and the IAM example of AWS's signing documentation.
//!
//! Left out: get-space and get-header-value-multiline, which need a raw space
//! in the path or an obs-folded header, neither of which `http` can carry.

mod common;

use common::*;
use tumbler_sigv4::{AuthLocation, SigV4Error, SigningKey, check_time, parse, verify};

const SCOPE: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

struct Case {
    name: &'static str,
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    signed: &'static str,
    signature: &'static str,
}

const VANILLA: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
const POST_VANILLA: &str = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";
const HD: &str = "host;x-amz-date";

const fn case(name: &'static str, method: &'static str, target: &'static str, signature: &'static str) -> Case {
    Case {
        name,
        method,
        target,
        headers: &[],
        body: "",
        signed: HD,
        signature,
    }
}

const CASES: &[Case] = &[
    case("get-vanilla", "GET", "/", VANILLA),
    case(
        "get-vanilla-empty-query-key",
        "GET",
        "/?Param1=value1",
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    ),
    case(
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    case(
        "get-vanilla-query-order-key",
        "GET",
        "/?Param1=value2&Param1=Value1",
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    ),
    case(
        "get-vanilla-query-order-value",
        "GET",
        "/?Param1=value2&Param1=value1",
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    ),
    case(
        "get-vanilla-query-order-encoded",
        "GET",
        "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
        "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
    ),
    case(
        "get-vanilla-query-unreserved",
        "GET",
        "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    // The suite writes the key raw (ሴ); on the wire a client encodes it.
    case(
        "get-vanilla-utf8-query",
        "GET",
        "/?%E1%88%B4=bar",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    case(
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    // The suite's path is raw UTF-8, which `http` carries as is.
    case(
        "get-utf8",
        "GET",
        "/ሴ",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    Case {
        headers: &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        signed: "host;my-header1;x-amz-date",
        ..case(
            "get-header-key-duplicate",
            "GET",
            "/",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        )
    },
    Case {
        headers: &[
            ("My-Header1", "value4"),
            ("My-Header1", "value1"),
            ("My-Header1", "value3"),
            ("My-Header1", "value2"),
        ],
        signed: "host;my-header1;x-amz-date",
        ..case(
            "get-header-value-order",
            "GET",
            "/",
            "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        )
    },
    Case {
        headers: &[("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
        signed: "host;my-header1;my-header2;x-amz-date",
        ..case(
            "get-header-value-trim",
            "GET",
            "/",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        )
    },
    case("post-vanilla", "POST", "/", POST_VANILLA),
    case(
        "post-vanilla-query",
        "POST",
        "/?Param1=value1",
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    ),
    Case {
        headers: &[("My-Header1", "value1")],
        signed: "host;my-header1;x-amz-date",
        ..case(
            "post-header-key-sort",
            "POST",
            "/",
            "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        )
    },
    Case {
        headers: &[("My-Header1", "VALUE1")],
        signed: "host;my-header1;x-amz-date",
        ..case(
            "post-header-value-case",
            "POST",
            "/",
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        )
    },
    Case {
        headers: &[("Content-Type", "application/x-www-form-urlencoded")],
        body: "Param1=value1",
        signed: "content-type;host;x-amz-date",
        ..case(
            "post-x-www-form-urlencoded",
            "POST",
            "/",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        )
    },
    Case {
        headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
        body: "Param1=value1",
        signed: "content-type;host;x-amz-date",
        ..case(
            "post-x-www-form-urlencoded-parameters",
            "POST",
            "/",
            "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
        )
    },
    Case {
        headers: &[("X-Amz-Security-Token", STS_TOKEN)],
        signed: "host;x-amz-date;x-amz-security-token",
        ..case(
            "post-sts-header-before",
            "POST",
            "/",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        )
    },
    // The token is sent but was added after signing: post-vanilla's signature.
    Case {
        headers: &[("X-Amz-Security-Token", STS_TOKEN)],
        ..case("post-sts-header-after", "POST", "/", POST_VANILLA)
    },
    Case {
        headers: &[(
            "X-Amz-Security-Token",
            "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
        )],
        signed: "host;x-amz-date;x-amz-security-token",
        ..case(
            "get-vanilla-with-session-token",
            "GET",
            "/",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        )
    },
    // normalize-path/
    case("get-relative", "GET", "/example/..", VANILLA),
    case("get-relative-relative", "GET", "/example1/example2/../..", VANILLA),
    case("get-slash", "GET", "//", VANILLA),
    case("get-slash-dot-slash", "GET", "/./", VANILLA),
    case(
        "get-slash-pointless-dot",
        "GET",
        "/./example",
        "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    ),
    case(
        "get-slashes",
        "GET",
        "//example//",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ),
    case(
        "get-special-character",
        "GET",
        "/example/$delete",
        "a853c9b21b528b19643d00910d35b83a10c366a10833ceefb45edd6c80e40f27",
    ),
];

fn suite_request(c: &Case, signature: &str) -> http::request::Parts {
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={}, Signature={signature}",
        c.signed
    );
    let mut headers: Vec<(&str, &[u8])> = vec![
        ("Host", b"example.amazonaws.com"),
        ("X-Amz-Date", SUITE_DATE.as_bytes()),
    ];
    headers.extend(c.headers.iter().map(|(k, v)| (*k, v.as_bytes())));
    headers.push(("Authorization", authorization.as_bytes()));
    parts(c.method, c.target, &headers)
}

fn suite_key() -> SigningKey {
    SigningKey::derive(SUITE_SECRET.as_bytes(), "20150830", "us-east-1", "service")
}

#[test]
fn the_aws_test_suite_verifies() {
    let key = suite_key();
    let now = ts(1_440_938_160);
    for c in CASES {
        let req = suite_request(c, c.signature);
        let auth = parse(&req).unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE", "{}", c.name);
        assert_eq!(auth.scope_date, "20150830");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, "service");
        assert_eq!(auth.location, AuthLocation::Header);
        assert_eq!(auth.amz_date, SUITE_DATE);
        assert_eq!(auth.signed_headers.as_str(), c.signed);
        check_time(&auth, now).unwrap();
        verify(&auth, &req, c.body.as_bytes(), &key).unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
    }
}

#[test]
fn the_aws_test_suite_fails_with_another_signature_body_or_key() {
    let key = suite_key();
    for c in CASES {
        // Flip the last hex digit.
        let mut sig = c.signature.to_owned();
        let last = if sig.ends_with('0') { "1" } else { "0" };
        sig.replace_range(63.., last);
        let req = suite_request(c, &sig);
        let auth = parse(&req).unwrap();
        assert_eq!(
            verify(&auth, &req, c.body.as_bytes(), &key),
            Err(SigV4Error::SignatureMismatch),
            "{}",
            c.name
        );

        let req = suite_request(c, c.signature);
        let auth = parse(&req).unwrap();
        assert_eq!(
            verify(&auth, &req, b"x", &key),
            Err(SigV4Error::SignatureMismatch),
            "{}",
            c.name
        );
        let wrong = SigningKey::derive(b"not the secret", "20150830", "us-east-1", "service");
        assert_eq!(
            verify(&auth, &req, c.body.as_bytes(), &wrong),
            Err(SigV4Error::SignatureMismatch)
        );
    }
}

#[test]
fn the_session_token_is_read_signed_or_not() {
    for name in ["post-sts-header-before", "post-sts-header-after"] {
        let c = CASES.iter().find(|c| c.name == name).unwrap();
        let auth = parse(&suite_request(c, c.signature)).unwrap();
        assert_eq!(auth.security_token.as_deref(), Some(STS_TOKEN));
    }
}

/// "Signing AWS API requests": IAM ListUsers.
#[test]
fn the_documented_iam_example_verifies() {
    let req = parts(
        "GET",
        "/?Action=ListUsers&Version=2010-05-08",
        &[
            ("Host", b"iam.amazonaws.com"),
            ("Content-Type", b"application/x-www-form-urlencoded; charset=utf-8"),
            ("X-Amz-Date", SUITE_DATE.as_bytes()),
            (
                "Authorization",
                b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                  SignedHeaders=content-type;host;x-amz-date, \
                  Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        ],
    );
    parse_and_verify(&req, b"", SUITE_SECRET).unwrap();
}

/// Upper-case hex decodes to the same bytes, so it verifies too.
#[test]
fn upper_case_signature_hex_is_accepted() {
    let c = &CASES[0];
    let req = suite_request(c, &c.signature.to_ascii_uppercase());
    let auth = parse(&req).unwrap();
    verify(&auth, &req, b"", &suite_key()).unwrap();
}
