//! Cross-check against iam-rs 0.8.0 on the subset where it agrees with AWS:
//! one account, identity policies only, an IAM user, and the operators and
//! keys below. Where we deliberately differ from it: it has no notion of
//! accounts (cross-account requests, account principals delegating to every
//! principal of the account), it does not match role sessions against
//! their role ARN, it combines identity and resource policies flatly, and
//! it wants typed context values (booleans, numbers) where AWS, and we,
//! have strings.

mod common;

use common::*;
use proptest::prelude::*;
use tumbler_iam::{Decision, NamedPolicy, PolicyKind, PolicySet, evaluate, parse_policy};

const ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:Get*",
    "secretsmanager:*",
    "*",
    "kms:Decrypt",
    "secretsmanager:Get?ecretValue",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
    "arn:aws:secretsmanager:*:123456789012:secret:prod/*",
    "arn:aws:secretsmanager:*:123456789012:secret:${aws:username}/*",
    "arn:aws:secretsmanager:*:111122223333:secret:*",
];
const CONDITIONS: &[&str] = &[
    r#"{"StringEquals": {"aws:username": "alice"}}"#,
    r#"{"StringEquals": {"aws:PrincipalTag/team": ["blue", "red"]}}"#,
    r#"{"StringNotEquals": {"aws:username": "bob"}}"#,
    r#"{"StringLike": {"aws:username": "al*"}}"#,
    r#"{"StringNotLike": {"aws:username": "a*"}}"#,
    r#"{"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}"#,
    r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
    r#"{"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}"#,
    r#"{"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}"#,
    r#"{"NumericGreaterThanEquals": {"aws:MultiFactorAuthAge": "100"}}"#,
    r#"{"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}"#,
    r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-06-01T00:00:00Z"}}"#,
    r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
    r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
    r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
    r#"{"StringEqualsIfExists": {"aws:RequestTag/env": "prod"}}"#,
    r#"{"Null": {"aws:RequestTag/env": "true"}}"#,
    r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/*"}}"#,
];

#[derive(Clone, Debug)]
struct Stmt {
    allow: bool,
    action: usize,
    resource: usize,
    condition: Option<usize>,
}

fn stmt() -> impl Strategy<Value = Stmt> {
    (
        prop::bool::weighted(0.7),
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        prop::option::of(0..CONDITIONS.len()),
    )
        .prop_map(|(allow, action, resource, condition)| Stmt {
            allow,
            action,
            resource,
            condition,
        })
}

fn document(statements: &[Stmt]) -> String {
    let body: Vec<String> = statements
        .iter()
        .map(|s| {
            let effect = if s.allow { "Allow" } else { "Deny" };
            let condition = s
                .condition
                .map(|c| format!(r#", "Condition": {}"#, CONDITIONS[c]))
                .unwrap_or_default();
            format!(
                r#"{{"Effect": "{effect}", "Action": "{}", "Resource": "{}"{condition}}}"#,
                ACTIONS[s.action], RESOURCES[s.resource]
            )
        })
        .collect();
    format!(r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#, body.join(", "))
}

#[derive(Clone, Debug)]
struct Keys {
    tagged: bool,
    ip: usize,
    mfa_age: Option<usize>,
    time: usize,
    tls: bool,
    tags: usize,
    env: Option<usize>,
}

fn keys() -> impl Strategy<Value = Keys> {
    (
        any::<bool>(),
        0..3usize,
        prop::option::of(0..3usize),
        0..3usize,
        any::<bool>(),
        0..4usize,
        prop::option::of(0..2usize),
    )
        .prop_map(|(tagged, ip, mfa_age, time, tls, tags, env)| Keys {
            tagged,
            ip,
            mfa_age,
            time,
            tls,
            tags,
            env,
        })
}

const IPS: [&str; 3] = ["10.1.2.3", "192.168.1.1", "203.0.113.9"];
const AGES: [&str; 3] = ["50", "100", "7200"];
const TIMES: [&str; 3] = ["2024-01-01T00:00:00Z", "2024-07-01T00:00:00Z", "2025-06-01T00:00:00Z"];
const TAGS: [&[&str]; 4] = [&["a"], &["a", "b"], &["a", "c"], &["c"]];
const ENVS: [&str; 2] = ["prod", "dev"];

fn ours(documents: &[String], action: &str, resource: &str, k: &Keys) -> Decision {
    let policies: Vec<NamedPolicy> = documents
        .iter()
        .map(|d| {
            NamedPolicy::new(
                "p",
                parse_policy(d, PolicyKind::Identity).expect("generated policy parses"),
            )
        })
        .collect();
    let principal = if k.tagged {
        alice().with_tags([("team", "red")])
    } else {
        alice()
    };
    let mut r = request(principal, action, resource);
    r.keys.insert("aws:SourceIp", IPS[k.ip]);
    if let Some(age) = k.mfa_age {
        r.keys.insert("aws:MultiFactorAuthAge", AGES[age]);
    }
    r.keys.insert("aws:CurrentTime", TIMES[k.time]);
    r.keys.insert_bool("aws:SecureTransport", k.tls);
    r.keys.insert_multi("aws:TagKeys", TAGS[k.tags].iter().copied());
    if let Some(env) = k.env {
        r.keys.insert("aws:RequestTag/env", ENVS[env]);
    }
    evaluate(&r, PolicySet::identity(&policies)).decision
}

fn oracle(documents: &[String], action: &str, resource: &str, k: &Keys) -> Option<Decision> {
    use iam_rs::{Arn, Context, ContextValue, IAMPolicy, IAMRequest, Principal, PrincipalId};
    let policies: Vec<IAMPolicy> = documents
        .iter()
        .map(|d| IAMPolicy::from_json(d).ok())
        .collect::<Option<_>>()?;
    let s = |v: &str| ContextValue::String(v.to_string());
    let mut context = Context::new();
    let user = "arn:aws:iam::123456789012:user/alice";
    context.insert("aws:username".into(), s("alice"));
    context.insert("aws:userid".into(), s("AIDAALICE"));
    context.insert("aws:PrincipalArn".into(), s(user));
    context.insert("aws:PrincipalAccount".into(), s(ACCOUNT));
    if k.tagged {
        context.insert("aws:PrincipalTag/team".into(), s("red"));
    }
    context.insert("aws:SourceIp".into(), s(IPS[k.ip]));
    if let Some(age) = k.mfa_age {
        context.insert(
            "aws:MultiFactorAuthAge".into(),
            ContextValue::Number(AGES[age].parse().ok()?),
        );
    }
    context.insert("aws:CurrentTime".into(), s(TIMES[k.time]));
    // iam-rs wants typed values where AWS has strings.
    context.insert("aws:SecureTransport".into(), ContextValue::Boolean(k.tls));
    context.insert(
        "aws:TagKeys".into(),
        ContextValue::StringList(TAGS[k.tags].iter().map(|t| t.to_string()).collect()),
    );
    if let Some(env) = k.env {
        context.insert("aws:RequestTag/env".into(), s(ENVS[env]));
    }
    let request = IAMRequest::new_with_context(
        Principal::Aws(PrincipalId::String(user.into())),
        action,
        Arn::parse(resource).ok()?,
        context,
    );
    Some(match iam_rs::evaluate_policies(&policies, &request).ok()? {
        iam_rs::Decision::Allow => Decision::Allow,
        iam_rs::Decision::Deny => Decision::ExplicitDeny,
        iam_rs::Decision::NotApplicable => Decision::ImplicitDeny,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn agrees_with_iam_rs(
        policies in prop::collection::vec(prop::collection::vec(stmt(), 1..4), 1..3),
        action in 0..3usize,
        resource in 0..2usize,
        k in keys(),
    ) {
        let documents: Vec<String> = policies.iter().map(|p| document(p)).collect();
        let action = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "kms:Decrypt"][action];
        let resource = [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/x-AbCdEf",
        ][resource];
        let ours = ours(&documents, action, resource, &k);
        let theirs = oracle(&documents, action, resource, &k);
        prop_assert!(theirs.is_some(), "iam-rs refused {:?}", documents);
        prop_assert_eq!(Some(ours), theirs, "{:?} {} {} {:?}", documents, action, resource, k);
    }
}
