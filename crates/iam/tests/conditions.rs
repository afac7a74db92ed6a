//! Every condition operator and variant, table-driven: each row is a
//! Condition block, the request's keys (beyond alice's principal keys:
//! aws:username=alice, aws:PrincipalTag/team=red, ...) and whether the
//! condition holds.

mod common;

use common::Val::{Many, One};
use common::*;
use tumbler_iam::{ContextKeys, NamedPolicy, PolicyKind, PolicySet, RequestContext, evaluate, parse_policy};

type Row = (&'static str, &'static [(&'static str, Val)], bool);

fn holds(version: Option<&str>, condition: &str, values: &[(&str, Val)]) -> bool {
    let version = version.map(|v| format!(r#""Version": "{v}","#)).unwrap_or_default();
    let document = format!(
        r#"{{{version} "Statement": {{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {condition}}}}}"#
    );
    let policy = parse_policy(&document, PolicyKind::Identity).unwrap_or_else(|e| panic!("{e}: {document}"));
    let policies = [NamedPolicy::new("p", policy)];
    let mut request = RequestContext::new(alice().with_tags([("team", "red")]), GET, "*");
    request.keys.insert_principal_keys(&request.principal.clone());
    fill(&mut request.keys, values);
    evaluate(&request, PolicySet::identity(&policies)).is_allowed()
}

fn run(version: Option<&str>, rows: &[Row]) {
    let wrong: Vec<String> = rows
        .iter()
        .filter(|(condition, values, want)| holds(version, condition, values) != *want)
        .map(|(condition, values, want)| format!("{condition} with {values:?}: expected {want}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} rows wrong:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

const V2012: Option<&str> = Some("2012-10-17");

#[test]
fn string_operators() {
    run(
        V2012,
        &[
            (r#"{"StringEquals": {"aws:username": "alice"}}"#, &[], true),
            (r#"{"StringEquals": {"AWS:UserName": "alice"}}"#, &[], true), // key names are case-insensitive
            (r#"{"StringEquals": {"aws:username": "Alice"}}"#, &[], false), // values are not
            (r#"{"StringEquals": {"aws:username": ["bob", "alice"]}}"#, &[], true), // values ORed
            (
                r#"{"StringEquals": {"aws:username": "alice", "aws:PrincipalType": "User"}}"#,
                &[],
                true,
            ),
            (
                r#"{"StringEquals": {"aws:username": "alice", "aws:PrincipalType": "Role"}}"#,
                &[],
                false,
            ), // keys ANDed
            (
                r#"{"StringEquals": {"aws:username": "alice"}, "StringLike": {"aws:userid": "X*"}}"#,
                &[],
                false,
            ), // operators ANDed
            (r#"{"StringEquals": {"aws:username": "al*"}}"#, &[], false), // no wildcards in StringEquals
            (
                r#"{"StringEquals": {"s3:prefix": "a*"}}"#,
                &[("s3:prefix", One("a*"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:max-keys": 10}}"#,
                &[("s3:max-keys", One("10"))],
                true,
            ), // numbers as text
            (
                r#"{"StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}}"#,
                &[],
                false,
            ), // missing key
            (
                r#"{"StringEqualsIfExists": {"secretsmanager:VersionStage": "AWSCURRENT"}}"#,
                &[],
                true,
            ),
            (
                r#"{"StringEqualsIfExists": {"secretsmanager:VersionStage": "AWSCURRENT"}}"#,
                &[("secretsmanager:VersionStage", One("AWSPENDING"))],
                false,
            ),
            (r#"{"StringNotEquals": {"aws:username": "bob"}}"#, &[], true),
            (r#"{"StringNotEquals": {"aws:username": ["bob", "alice"]}}"#, &[], false), // NOR
            (
                r#"{"StringNotEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}}"#,
                &[],
                true,
            ), // missing: true
            (
                r#"{"StringNotEqualsIfExists": {"secretsmanager:VersionStage": "AWSCURRENT"}}"#,
                &[],
                true,
            ),
            (
                r#"{"StringNotEqualsIfExists": {"secretsmanager:VersionStage": "AWSCURRENT"}}"#,
                &[("secretsmanager:VersionStage", One("AWSCURRENT"))],
                false,
            ),
            (r#"{"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}"#, &[], true),
            (r#"{"StringEqualsIgnoreCase": {"aws:username": "ALİCE"}}"#, &[], false),
            (
                r#"{"StringEqualsIgnoreCase": {"s3:x": "ÉTÉ"}}"#,
                &[("s3:x", One("été"))],
                true,
            ), // Unicode folding
            (r#"{"StringEqualsIgnoreCase": {"s3:x": "a"}}"#, &[], false),
            (
                r#"{"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}}"#,
                &[],
                false,
            ),
            (r#"{"StringNotEqualsIgnoreCase": {"aws:username": "BOB"}}"#, &[], true),
            (r#"{"StringNotEqualsIgnoreCase": {"s3:x": "a"}}"#, &[], true),
            (r#"{"StringLike": {"aws:username": "al*"}}"#, &[], true),
            (r#"{"StringLike": {"aws:username": "a?ice"}}"#, &[], true),
            (r#"{"StringLike": {"aws:username": "A*"}}"#, &[], false), // case-sensitive
            (r#"{"StringLike": {"aws:username": ["b*", "*e"]}}"#, &[], true),
            (r#"{"StringLike": {"s3:x": "*"}}"#, &[], false),
            (r#"{"StringLikeIfExists": {"s3:x": "a*"}}"#, &[], true),
            (r#"{"StringNotLike": {"aws:username": "b*"}}"#, &[], true),
            (r#"{"StringNotLike": {"aws:username": ["b*", "a*"]}}"#, &[], false),
            (r#"{"StringNotLike": {"s3:x": "a*"}}"#, &[], true),
            (
                r#"{"StringNotLikeIfExists": {"s3:x": "a*"}}"#,
                &[("s3:x", One("abc"))],
                false,
            ),
        ],
    );
}

#[test]
fn numeric_operators() {
    let mfa = |v: &'static str| -> &'static [(&'static str, Val)] {
        match v {
            "9" => &[("aws:MultiFactorAuthAge", One("9"))],
            "10" => &[("aws:MultiFactorAuthAge", One("10"))],
            "10.0" => &[("aws:MultiFactorAuthAge", One("10.0"))],
            "11" => &[("aws:MultiFactorAuthAge", One("11"))],
            _ => &[("aws:MultiFactorAuthAge", One("ten"))],
        }
    };
    let rows: Vec<Row> = vec![
        (
            r#"{"NumericEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("10"),
            true,
        ),
        (
            r#"{"NumericEquals": {"aws:MultiFactorAuthAge": 10}}"#,
            mfa("10.0"),
            true,
        ),
        (
            r#"{"NumericEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("11"),
            false,
        ),
        (
            r#"{"NumericEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("x"),
            false,
        ), // unparseable
        (
            r#"{"NumericEquals": {"aws:MultiFactorAuthAge": ["9", "11"]}}"#,
            mfa("11"),
            true,
        ),
        (
            r#"{"NumericNotEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("11"),
            true,
        ),
        (
            r#"{"NumericNotEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("10"),
            false,
        ),
        (r#"{"NumericNotEquals": {"aws:MultiFactorAuthAge": "10"}}"#, &[], true),
        (
            r#"{"NumericLessThan": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("9"),
            true,
        ),
        (
            r#"{"NumericLessThan": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("10"),
            false,
        ),
        (r#"{"NumericLessThan": {"aws:MultiFactorAuthAge": "10"}}"#, &[], false),
        (
            r#"{"NumericLessThanIfExists": {"aws:MultiFactorAuthAge": "10"}}"#,
            &[],
            true,
        ),
        (
            r#"{"NumericLessThanIfExists": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("11"),
            false,
        ),
        (
            r#"{"NumericLessThanEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("10"),
            true,
        ),
        (
            r#"{"NumericLessThanEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("11"),
            false,
        ),
        (
            r#"{"NumericGreaterThan": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("11"),
            true,
        ),
        (
            r#"{"NumericGreaterThan": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("10"),
            false,
        ),
        (
            r#"{"NumericGreaterThanEquals": {"aws:MultiFactorAuthAge": "10"}}"#,
            mfa("10"),
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals": {"aws:MultiFactorAuthAge": "10.5"}}"#,
            mfa("10"),
            false,
        ),
        (
            r#"{"NumericGreaterThanEqualsIfExists": {"aws:MultiFactorAuthAge": "10"}}"#,
            &[],
            true,
        ),
    ];
    run(V2012, &rows);
}

#[test]
fn date_operators() {
    const NOW: &[(&str, Val)] = &[("aws:CurrentTime", One("2024-06-01T12:00:00Z"))];
    const EPOCH: &[(&str, Val)] = &[("aws:EpochTime", One("1700000000"))];
    run(
        V2012,
        &[
            (
                r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#,
                NOW,
                true,
            ),
            (
                r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
                NOW,
                false,
            ),
            (
                r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#,
                &[],
                false,
            ),
            (
                r#"{"DateLessThanIfExists": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#,
                &[],
                true,
            ),
            (
                r#"{"DateLessThanEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
                NOW,
                true,
            ),
            (
                r#"{"DateLessThanEquals": {"aws:CurrentTime": "2024-06-01T11:59:59Z"}}"#,
                NOW,
                false,
            ),
            (r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-01-01"}}"#, NOW, true), // bare date: midnight UTC
            (r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-06-02"}}"#, NOW, false),
            (
                r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"}}"#,
                NOW,
                true,
            ),
            (
                r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T12:00:01Z"}}"#,
                NOW,
                false,
            ),
            (
                r#"{"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
                NOW,
                true,
            ),
            (r#"{"DateEquals": {"aws:CurrentTime": "1717243200"}}"#, NOW, true), // epoch seconds in the policy
            (r#"{"DateNotEquals": {"aws:CurrentTime": "1717243200"}}"#, NOW, false),
            (
                r#"{"DateNotEquals": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}"#,
                NOW,
                true,
            ),
            (
                r#"{"DateNotEquals": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}"#,
                &[],
                true,
            ),
            (
                r#"{"DateGreaterThan": {"aws:EpochTime": "2023-01-01T00:00:00Z"}}"#,
                EPOCH,
                true,
            ), // epoch in the request
            (
                r#"{"DateEquals": {"aws:EpochTime": "2023-11-14T22:13:20Z"}}"#,
                EPOCH,
                true,
            ),
            (
                r#"{"DateLessThan": {"aws:TokenIssueTime": "2030-01-01T00:00:00Z"}}"#,
                &[("aws:TokenIssueTime", One("soon"))],
                false,
            ),
        ],
    );
}

#[test]
fn request_time_helper() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
            "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
            "DateLessThan": {"aws:EpochTime": "2100-01-01T00:00:00Z"}}}}"#,
    );
    let policies = [named("p", policy)];
    let mut request = request(alice(), GET, "*");
    assert!(!evaluate(&request, PolicySet::identity(&policies)).is_allowed());
    request
        .keys
        .insert_request_time("2024-06-01T12:00:00Z".parse().unwrap());
    assert_eq!(
        request.keys.get("aws:CurrentTime").unwrap().values().next(),
        Some("2024-06-01T12:00:00Z")
    );
    assert_eq!(
        request.keys.get("AWS:EPOCHTIME").unwrap().values().next(),
        Some("1717243200")
    );
    assert!(evaluate(&request, PolicySet::identity(&policies)).is_allowed());
}

#[test]
fn bool_binary_ip_operators() {
    const TLS: &[(&str, Val)] = &[("aws:SecureTransport", One("true"))];
    const PLAIN: &[(&str, Val)] = &[("aws:SecureTransport", One("false"))];
    const V4: &[(&str, Val)] = &[("aws:SourceIp", One("203.0.113.5"))];
    const V4_OUT: &[(&str, Val)] = &[("aws:SourceIp", One("198.51.100.1"))];
    const V6: &[(&str, Val)] = &[("aws:SourceIp", One("2001:db8::1"))];
    const BAD_IP: &[(&str, Val)] = &[("aws:SourceIp", One("not-an-ip"))];
    run(
        V2012,
        &[
            (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, TLS, true),
            (r#"{"Bool": {"aws:SecureTransport": true}}"#, TLS, true), // JSON boolean
            (r#"{"Bool": {"aws:SecureTransport": "True"}}"#, TLS, true),
            (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, PLAIN, false),
            (r#"{"Bool": {"aws:SecureTransport": "false"}}"#, PLAIN, true),
            (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[], false),
            (
                r#"{"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}"#,
                &[],
                true,
            ),
            (
                r#"{"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}"#,
                &[("aws:MultiFactorAuthPresent", One("true"))],
                false,
            ),
            (
                r#"{"BinaryEquals": {"s3:x": "QmluYXJ5VmFsdWU="}}"#,
                &[("s3:x", One("QmluYXJ5VmFsdWU="))],
                true,
            ),
            (
                r#"{"BinaryEquals": {"s3:x": "QmluYXJ5VmFsdWU="}}"#,
                &[("s3:x", One("QmluYXJ5VmFsdWF="))],
                false,
            ),
            (r#"{"BinaryEquals": {"s3:x": "QmluYXJ5VmFsdWU="}}"#, &[], false),
            (r#"{"BinaryEqualsIfExists": {"s3:x": "QmluYXJ5VmFsdWU="}}"#, &[], true),
            (r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, V4, true),
            (r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, V4_OUT, false),
            (r#"{"IpAddress": {"aws:SourceIp": "203.0.113.5"}}"#, V4, true), // bare address = /32
            (
                r#"{"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", "2001:db8::/32"]}}"#,
                V6,
                true,
            ),
            (r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#, V4, false),
            (
                r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
                &[("aws:SourceIp", One("::ffff:203.0.113.9"))],
                true,
            ),
            (r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#, BAD_IP, false),
            (r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[], false),
            (
                r#"{"IpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}}"#,
                &[],
                true,
            ),
            (r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, V4_OUT, true),
            (
                r#"{"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24", "198.51.100.0/24"]}}"#,
                V4_OUT,
                false,
            ),
            (r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[], true),
            (r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, BAD_IP, true),
        ],
    );
}

#[test]
fn arn_operators() {
    const TOPIC: &[(&str, Val)] = &[("aws:SourceArn", One("arn:aws:sns:us-east-1:123456789012:topic-a"))];
    const ROLE: &[(&str, Val)] = &[("aws:SourceArn", One("arn:aws:iam::123456789012:role/x"))];
    const NOT_ARN: &[(&str, Val)] = &[("aws:SourceArn", One("topic-a"))];
    run(
        V2012,
        &[
            (
                r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:topic-*"}}"#,
                TOPIC,
                true,
            ),
            (
                r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:111122223333:topic-*"}}"#,
                TOPIC,
                false,
            ),
            (
                r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:*:123456789012:topic-?"}}"#,
                TOPIC,
                true,
            ), // same as ArnLike
            (
                r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic-a"}}"#,
                TOPIC,
                true,
            ),
            (
                r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:TOPIC-A"}}"#,
                TOPIC,
                false,
            ),
            // Parts are matched separately: a * in one part does not reach into the next.
            (
                r#"{"ArnLike": {"aws:SourceArn": "arn:aws:*:123456789012:topic-a"}}"#,
                TOPIC,
                false,
            ),
            (r#"{"ArnLike": {"aws:SourceArn": "arn:aws:*:*:*:*"}}"#, TOPIC, true),
            (r#"{"ArnLike": {"aws:SourceArn": "arn:aws:iam::*:role/x"}}"#, ROLE, true),
            (
                r#"{"ArnLike": {"aws:SourceArn": "arn:aws:iam:*:*:role/*"}}"#,
                ROLE,
                true,
            ),
            (
                r#"{"ArnLike": {"aws:SourceArn": "arn:aws:iam:?:*:role/*"}}"#,
                ROLE,
                false,
            ), // ? needs one character
            (r#"{"ArnLike": {"aws:SourceArn": "*"}}"#, TOPIC, true),
            (r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}"#, NOT_ARN, false),
            (r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}"#, &[], false),
            (
                r#"{"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}"#,
                &[],
                true,
            ),
            (
                r#"{"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:*:111122223333:*"}}"#,
                TOPIC,
                true,
            ),
            (
                r#"{"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}"#,
                TOPIC,
                false,
            ),
            (
                r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}"#,
                TOPIC,
                false,
            ),
            (
                r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}"#,
                &[],
                true,
            ),
            (
                r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}"#,
                &[],
                true,
            ),
        ],
    );
}

#[test]
fn null_operator() {
    run(
        V2012,
        &[
            (r#"{"Null": {"aws:TokenIssueTime": "true"}}"#, &[], true),
            (
                r#"{"Null": {"aws:TokenIssueTime": true}}"#,
                &[("aws:TokenIssueTime", One("2024-01-01T00:00:00Z"))],
                false,
            ),
            (
                r#"{"Null": {"aws:TokenIssueTime": "false"}}"#,
                &[("aws:TokenIssueTime", One("2024-01-01T00:00:00Z"))],
                true,
            ),
            (r#"{"Null": {"aws:TokenIssueTime": "false"}}"#, &[], false),
            (
                r#"{"Null": {"aws:TagKeys": "true"}}"#,
                &[("aws:TagKeys", Many(&[]))],
                true,
            ), // empty set is absent
            (
                r#"{"Null": {"aws:TagKeys": "false"}}"#,
                &[("aws:TagKeys", Many(&["a"]))],
                true,
            ),
            (
                r#"{"Null": {"aws:RequestTag/env": "false", "aws:username": "false"}}"#,
                &[],
                false,
            ),
            (r#"{"Null": {"aws:x": ["true", "false"]}}"#, &[], true),
        ],
    );
}

#[test]
fn set_qualifiers() {
    const AB: &[(&str, Val)] = &[("aws:TagKeys", Many(&["a", "b"]))];
    const A: &[(&str, Val)] = &[("aws:TagKeys", Many(&["a"]))];
    const AC: &[(&str, Val)] = &[("aws:TagKeys", Many(&["a", "c"]))];
    const C: &[(&str, Val)] = &[("aws:TagKeys", Many(&["c"]))];
    const EMPTY: &[(&str, Val)] = &[("aws:TagKeys", Many(&[]))];
    run(
        V2012,
        &[
            (r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, A, true),
            (
                r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
                AB,
                true,
            ),
            (
                r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
                AC,
                false,
            ),
            (
                r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
                &[],
                true,
            ), // missing: true
            (
                r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
                EMPTY,
                true,
            ), // empty: true
            (
                r#"{"ForAllValues:StringLike": {"aws:TagKeys": "env*"}}"#,
                &[("aws:TagKeys", Many(&["env1", "env2"]))],
                true,
            ),
            (
                r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": "a"}}"#,
                &[("aws:TagKeys", Many(&["b", "c"]))],
                true,
            ),
            (r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": "a"}}"#, AB, false),
            (r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, AC, true),
            (r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, C, false),
            (
                r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
                &[],
                false,
            ), // missing: false
            (
                r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
                EMPTY,
                false,
            ),
            (
                r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["a"]}}"#,
                &[],
                true,
            ),
            (r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#, AB, true),
            (r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#, A, false),
            (r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#, &[], false),
            (r#"{"ForAnyValue:StringLike": {"aws:TagKeys": "c*"}}"#, AC, true),
            (
                r#"{"ForAnyValue:IpAddress": {"aws:x": "10.0.0.0/8"}}"#,
                &[("aws:x", Many(&["192.0.2.1", "10.1.2.3"]))],
                true,
            ),
            (
                r#"{"ForAllValues:NumericLessThan": {"aws:x": "10"}}"#,
                &[("aws:x", Many(&["1", "9"]))],
                true,
            ),
            (
                r#"{"ForAllValues:NumericLessThan": {"aws:x": "10"}}"#,
                &[("aws:x", Many(&["1", "19"]))],
                false,
            ),
            // A single-valued key under a set qualifier is a one-element set.
            (
                r#"{"ForAnyValue:StringEquals": {"aws:username": ["x", "alice"]}}"#,
                &[],
                true,
            ),
            // Without a qualifier a multi-valued key matches if any value does.
            (r#"{"StringEquals": {"aws:TagKeys": "a"}}"#, C, false),
            (r#"{"StringEquals": {"aws:TagKeys": "a"}}"#, AC, true),
            (r#"{"StringNotEquals": {"aws:TagKeys": "a"}}"#, AC, false),
            (r#"{"StringEquals": {"aws:TagKeys": "a"}}"#, EMPTY, false),
        ],
    );
}

#[test]
fn policy_variables() {
    run(
        V2012,
        &[
            (
                r#"{"StringEquals": {"s3:prefix": "home/${aws:username}/"}}"#,
                &[("s3:prefix", One("home/alice/"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:prefix": "home/${AWS:UserName}/"}}"#,
                &[("s3:prefix", One("home/alice/"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:prefix": "home/${aws:username}/"}}"#,
                &[("s3:prefix", One("home/bob/"))],
                false,
            ),
            (
                r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#,
                &[("s3:prefix", One("home/alice/x/y"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/team}"}}"#,
                &[("s3:x", One("red"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/Team}"}}"#,
                &[("s3:x", One("red"))],
                true,
            ),
            // Defaults apply when the key is missing, and only then.
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/dept, 'none'}"}}"#,
                &[("s3:x", One("none"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/team, 'none'}"}}"#,
                &[("s3:x", One("red"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/team, 'none'}"}}"#,
                &[("s3:x", One("none"))],
                false,
            ),
            (
                r#"{"StringEquals": {"s3:x": "a${aws:PrincipalTag/dept,''}b"}}"#,
                &[("s3:x", One("ab"))],
                true,
            ),
            // Unresolvable: the value matches nothing, not even its own text.
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/dept}"}}"#,
                &[("s3:x", One(""))],
                false,
            ),
            (
                r#"{"StringEquals": {"s3:x": "${aws:PrincipalTag/dept}"}}"#,
                &[("s3:x", One("${aws:PrincipalTag/dept}"))],
                false,
            ),
            (
                r#"{"StringEquals": {"s3:x": ["${aws:PrincipalTag/dept}", "y"]}}"#,
                &[("s3:x", One("y"))],
                true,
            ),
            (
                r#"{"StringNotEquals": {"s3:x": "${aws:PrincipalTag/dept}"}}"#,
                &[("s3:x", One("y"))],
                true,
            ),
            // Multi-valued keys are not variables.
            (
                r#"{"StringEquals": {"s3:x": "${aws:TagKeys}"}}"#,
                &[("s3:x", One("a")), ("aws:TagKeys", Many(&["a"]))],
                false,
            ),
            // Escapes.
            (r#"{"StringLike": {"s3:x": "a${*}"}}"#, &[("s3:x", One("a*"))], true),
            (r#"{"StringLike": {"s3:x": "a${*}"}}"#, &[("s3:x", One("ab"))], false),
            (r#"{"StringLike": {"s3:x": "a${?}"}}"#, &[("s3:x", One("a?"))], true),
            (
                r#"{"StringEquals": {"s3:x": "${$}{x}"}}"#,
                &[("s3:x", One("${x}"))],
                true,
            ),
            // Substituted text is literal: a * in the value is no wildcard.
            (
                r#"{"StringLike": {"s3:x": "${s3:y}"}}"#,
                &[("s3:x", One("abc")), ("s3:y", One("*"))],
                false,
            ),
            (
                r#"{"StringLike": {"s3:x": "${s3:y}"}}"#,
                &[("s3:x", One("*")), ("s3:y", One("*"))],
                true,
            ),
            (
                r#"{"StringEqualsIgnoreCase": {"s3:x": "${aws:username}"}}"#,
                &[("s3:x", One("ALICE"))],
                true,
            ),
            (
                r#"{"Bool": {"s3:x": "${s3:y}"}}"#,
                &[("s3:x", One("TRUE")), ("s3:y", One("true"))],
                true,
            ),
            (r#"{"StringEquals": {"aws:userid": "${aws:userid}"}}"#, &[], true),
        ],
    );
}

#[test]
fn version_2008_has_no_variables() {
    run(
        None,
        &[
            (
                r#"{"StringEquals": {"s3:x": "${aws:username}"}}"#,
                &[("s3:x", One("${aws:username}"))],
                true,
            ),
            (
                r#"{"StringEquals": {"s3:x": "${aws:username}"}}"#,
                &[("s3:x", One("alice"))],
                false,
            ),
            (
                r#"{"StringLike": {"s3:x": "${*}"}}"#,
                &[("s3:x", One("${anything}"))],
                true,
            ),
        ],
    );
    run(
        Some("2008-10-17"),
        &[(
            r#"{"StringEquals": {"s3:x": "${aws:username}"}}"#,
            &[("s3:x", One("alice"))],
            false,
        )],
    );
}

#[test]
fn context_keys_are_case_insensitive_and_typed() {
    let mut keys = ContextKeys::new();
    keys.insert("aws:RequestTag/Env", "prod");
    keys.insert_multi("aws:TagKeys", ["Env", "Owner"]);
    keys.insert_bool("aws:SecureTransport", true);
    assert_eq!(
        keys.get("AWS:REQUESTTAG/ENV").unwrap().values().collect::<Vec<_>>(),
        ["prod"]
    );
    assert!(keys.get("aws:tagkeys").unwrap().is_multi_valued());
    assert_eq!(keys.get("aws:TagKeys").unwrap().len(), 2);
    assert_eq!(keys.get("aws:securetransport").unwrap().values().next(), Some("true"));
    assert!(keys.remove("Aws:SecureTransport").is_some());
    assert_eq!(keys.len(), 2);
}
