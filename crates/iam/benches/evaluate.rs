//! One GetSecretValue decision for a principal with 10 identity policies of
//! 10 statements each, with conditions (StringEquals, StringLike with
//! policy variables, IpAddress/NotIpAddress, DateLessThan/DateGreaterThan,
//! ForAnyValue). The only fully matching Allow is in the last policy, and
//! every Deny's condition is evaluated and found false, so nearly all of the
//! 100 statements are looked at. Target: under 5 µs per decision.
//!
//!     cargo bench -j1 -p tumbler-iam --bench evaluate -- --quick

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tumbler_iam::{NamedPolicy, PolicyKind, PolicySet, Principal, RequestContext, evaluate, parse_policy};

const ACTION: &str = "secretsmanager:GetSecretValue";
const RESOURCE: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf";

fn policy(index: usize) -> String {
    let last = index == 9;
    // The last policy's Allow matches; the others' fail on their conditions.
    let (team, ip) = if last {
        ("red", "10.0.0.0/8")
    } else {
        ("blue", "172.16.0.0/12")
    };
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [
  {{"Sid": "Kms{index}", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}},
  {{"Sid": "S3{index}", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket-{index}/*"}},
  {{"Sid": "Iam{index}", "Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}},
  {{"Sid": "Team{index}", "Effect": "Allow", "Action": "secretsmanager:Get*",
    "Resource": "arn:aws:secretsmanager:*:${{aws:PrincipalAccount}}:secret:${{aws:username}}/*",
    "Condition": {{"StringEquals": {{"aws:PrincipalTag/team": "{team}"}}}}}},
  {{"Sid": "Project{index}", "Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*",
    "Condition": {{"StringEquals": {{"aws:ResourceTag/project": "${{aws:PrincipalTag/project}}-{index}"}}}}}},
  {{"Sid": "NoOutside{index}", "Effect": "Deny", "Action": "*", "Resource": "*",
    "Condition": {{"NotIpAddress": {{"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]}}}}}},
  {{"Sid": "Expiry{index}", "Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
    "Condition": {{"DateGreaterThan": {{"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}}}},
  {{"Sid": "Tags{index}", "Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
    "Condition": {{"ForAnyValue:StringEquals": {{"aws:TagKeys": ["forbidden", "secret-{index}"]}}}}}},
  {{"Sid": "Own{index}", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
    "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
    "Condition": {{"StringLike": {{"secretsmanager:SecretId": "*:secret:${{aws:username}}/*"}},
                  "IpAddress": {{"aws:SourceIp": "{ip}"}},
                  "DateLessThan": {{"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}}}},
  {{"Sid": "NoDelete{index}", "Effect": "Deny", "Action": "secretsmanager:Delete*", "Resource": "*"}}
]}}"#
    )
}

fn policies() -> Vec<NamedPolicy> {
    (0..10)
        .map(|i| {
            let parsed = parse_policy(&policy(i), PolicyKind::Identity).expect("benchmark policy parses");
            NamedPolicy::new(format!("policy-{i}"), parsed).with_arn(format!("arn:aws:iam::123456789012:policy/p{i}"))
        })
        .collect()
}

fn request() -> RequestContext {
    let alice = Principal::user("arn:aws:iam::123456789012:user/alice", "AIDAEXAMPLEALICE")
        .expect("user ARN")
        .with_tags([("team", "red"), ("project", "phoenix")]);
    let mut request = RequestContext::new(alice, ACTION, RESOURCE);
    request.keys.insert("aws:SourceIp", "10.1.2.3");
    request.keys.insert_bool("aws:SecureTransport", true);
    request
        .keys
        .insert_request_time("2025-06-01T12:00:00Z".parse().expect("timestamp"));
    request.keys.insert("secretsmanager:SecretId", RESOURCE);
    request.keys.insert("aws:ResourceTag/project", "phoenix-9x");
    request.keys.insert_multi("aws:TagKeys", ["env", "owner"]);
    request
}

fn bench(c: &mut Criterion) {
    let policies = policies();
    let set = PolicySet::identity(&policies);
    let prepared = request();
    assert!(
        evaluate(&prepared, set).is_allowed(),
        "the benchmark request must be allowed"
    );

    c.bench_function("evaluate 10x10 statements (GetSecretValue)", |b| {
        b.iter(|| evaluate(black_box(&prepared), black_box(set)).is_allowed())
    });
    // What a service pays per request: building the context too.
    c.bench_function("build context + evaluate 10x10 statements", |b| {
        b.iter(|| {
            let request = request();
            evaluate(black_box(&request), black_box(set)).is_allowed()
        })
    });
    let document = policy(0);
    c.bench_function("parse + compile one 10-statement policy", |b| {
        b.iter(|| parse_policy(black_box(&document), PolicyKind::Identity).is_ok())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
