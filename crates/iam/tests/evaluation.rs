//! Statement elements, principal semantics, the combination of policy
//! types, denial messages, simulation and the public-access check.

mod common;

use common::*;
use tumbler_iam::{
    Decision, PolicyKind, PolicySet, PolicyType, Principal, StatementResult, evaluate, exposure, parse_policy, simulate,
};

use Decision::{Allow, ExplicitDeny, ImplicitDeny};

fn alice_get(resource: &str) -> tumbler_iam::RequestContext {
    request(alice(), GET, resource)
}

#[test]
fn action_wildcards_are_case_insensitive() {
    let resource = secret(ACCOUNT, "db");
    let rows = [
        ("secretsmanager:GetSecretValue", true),
        ("SECRETSMANAGER:getsecretvalue", true),
        ("secretsmanager:Get*", true),
        ("secretsmanager:get*value", true),
        ("secretsmanager:Get?ecretValue", true),
        ("secretsmanager:*", true),
        ("*", true),
        ("secretsmanager:GetSecretValu", false),
        ("secretsmanager:Put*", false),
        ("kms:*", false),
        ("secrets*:Get*", true),
    ];
    for (action, want) in rows {
        let policies = [allow(action, "*")];
        let got = decision(&alice_get(&resource), PolicySet::identity(&policies));
        assert_eq!(got == Allow, want, "{action}");
    }
}

#[test]
fn resource_wildcards_are_case_sensitive() {
    let resource = secret(ACCOUNT, "prod/db");
    let rows = [
        ("*", true),
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            true,
        ),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*", true),
        ("arn:aws:secretsmanager:*:123456789012:secret:prod/db-??????", true),
        ("arn:aws:secretsmanager:*:123456789012:secret:Prod/*", false),
        ("arn:aws:secretsmanager:*:111122223333:secret:*", false),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", false),
        // A * in Resource may cross colons: the whole ARN is one glob.
        ("arn:*:us-east-1:123456789012:secret:prod/db-AbCdEf", true),
    ];
    for (pattern, want) in rows {
        let policies = [allow(GET, pattern)];
        let got = decision(&alice_get(&resource), PolicySet::identity(&policies));
        assert_eq!(got == Allow, want, "{pattern}");
    }
}

#[test]
fn not_action_and_not_resource() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": ["iam:*", "kms:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:secretsmanager:*:123456789012:secret:app/*"}]}"#,
    );
    let policies = [named("p", policy)];
    let set = PolicySet::identity(&policies);
    assert_eq!(decision(&alice_get(&secret(ACCOUNT, "app/db")), set), Allow);
    assert_eq!(decision(&alice_get(&secret(ACCOUNT, "other")), set), ExplicitDeny);
    assert_eq!(decision(&request(alice(), "iam:CreateUser", "*"), set), ExplicitDeny); // "*" is outside app/*
    let mut kms = request(alice(), "kms:Decrypt", &secret(ACCOUNT, "app/x"));
    assert_eq!(decision(&kms, set), ImplicitDeny);
    kms.action = "KMS:Decrypt".into();
    assert_eq!(decision(&kms, set), ImplicitDeny);
}

#[test]
fn resource_variables() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:*",
             "Resource": "arn:aws:secretsmanager:*:${aws:PrincipalAccount}:secret:${aws:username}/*"},
            {"Effect": "Allow", "Action": "secretsmanager:*",
             "Resource": "arn:aws:secretsmanager:*:*:secret:team/${aws:PrincipalTag/team}/*"}]}"#,
    );
    let policies = [named("p", policy)];
    let set = PolicySet::identity(&policies);
    assert_eq!(decision(&alice_get(&secret(ACCOUNT, "alice/db")), set), Allow);
    assert_eq!(decision(&alice_get(&secret(ACCOUNT, "bob/db")), set), ImplicitDeny);
    // No team tag: that Resource entry cannot match anything.
    assert_eq!(decision(&alice_get(&secret(ACCOUNT, "team//db")), set), ImplicitDeny);
    assert_eq!(
        decision(&alice_get(&secret(ACCOUNT, "team/${aws:PrincipalTag/team}/db")), set),
        ImplicitDeny
    );
    let tagged = request(
        alice().with_tags([("team", "red")]),
        GET,
        &secret(ACCOUNT, "team/red/db"),
    );
    assert_eq!(decision(&tagged, set), Allow);
    // A role session has no aws:username.
    let s = request(session(ACCOUNT, "app", "s1"), GET, &secret(ACCOUNT, "alice/db"));
    assert_eq!(decision(&s, set), ImplicitDeny);

    // NotResource with an unresolvable variable: the entry does not match, so the statement applies.
    let deny = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*"}]}"#,
    );
    let policies = [named("p", deny)];
    let set = PolicySet::identity(&policies);
    assert_eq!(decision(&alice_get(&secret(ACCOUNT, "red/x")), set), ExplicitDeny);
    let tagged = request(alice().with_tags([("team", "red")]), GET, &secret(ACCOUNT, "red/x"));
    assert_eq!(decision(&tagged, set), Allow);

    // 2008-10-17: the variable is literal text.
    let old = identity(
        r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#,
    );
    let policies = [named("p", old)];
    let set = PolicySet::identity(&policies);
    assert_eq!(
        decision(&request(alice(), "s3:GetObject", "arn:aws:s3:::home/alice/x"), set),
        ImplicitDeny
    );
    assert_eq!(
        decision(
            &request(alice(), "s3:GetObject", "arn:aws:s3:::home/${aws:username}/x"),
            set
        ),
        Allow
    );
}

#[test]
fn principal_keys_are_filled_from_the_caller() {
    let r = request(alice().with_tags([("Team", "red")]), GET, "*");
    let get = |k: &str| r.keys.get(k).map(|v| v.values().next().unwrap().to_string());
    assert_eq!(
        get("aws:PrincipalArn").as_deref(),
        Some("arn:aws:iam::123456789012:user/alice")
    );
    assert_eq!(get("aws:PrincipalAccount").as_deref(), Some(ACCOUNT));
    assert_eq!(get("aws:PrincipalType").as_deref(), Some("User"));
    assert_eq!(get("aws:username").as_deref(), Some("alice"));
    assert_eq!(get("aws:userid").as_deref(), Some("AIDAALICE"));
    assert_eq!(get("aws:PrincipalTag/team").as_deref(), Some("red"));
    assert_eq!(get("aws:PrincipalIsAWSService").as_deref(), Some("false"));

    let s = request(session(ACCOUNT, "app", "build-7"), GET, "*");
    assert_eq!(s.principal.arn, "arn:aws:sts::123456789012:assumed-role/app/build-7");
    let get = |k: &str| s.keys.get(k).map(|v| v.values().next().unwrap().to_string());
    assert_eq!(
        get("aws:PrincipalArn").as_deref(),
        Some("arn:aws:iam::123456789012:role/app")
    );
    assert_eq!(get("aws:PrincipalType").as_deref(), Some("AssumedRole"));
    assert_eq!(get("aws:userid").as_deref(), Some("AROAEXAMPLE:build-7"));
    assert_eq!(get("aws:username"), None);

    let root = request(Principal::root(ACCOUNT), GET, "*");
    assert_eq!(
        root.keys.get("aws:PrincipalType").unwrap().values().next(),
        Some("Account")
    );
    assert_eq!(root.keys.get("aws:userid").unwrap().values().next(), Some(ACCOUNT));

    // Paths: the session ARN has the role's name only.
    let pathed = Principal::assumed_role("arn:aws:iam::123456789012:role/ops/app", "s", "AROA1").unwrap();
    assert_eq!(pathed.arn, "arn:aws:sts::123456789012:assumed-role/app/s");
    assert_eq!(
        Principal::user("arn:aws:iam::123456789012:user/div/bob", "AIDA1")
            .unwrap()
            .username
            .as_deref(),
        Some("bob")
    );
    assert!(Principal::user("arn:aws:iam::123456789012:role/x", "AIDA1").is_none());
}

#[test]
fn account_principal_delegates_to_identity_policies() {
    let resource = secret(ACCOUNT, "db");
    for principal in [
        r#"{"AWS": "arn:aws:iam::123456789012:root"}"#,
        r#"{"AWS": "123456789012"}"#,
    ] {
        let rp = resource_policy("Allow", principal, GET);
        let set = PolicySet {
            resource: Some(&rp),
            ..PolicySet::default()
        };
        // Same account: the account principal matches alice but only delegates.
        let e = evaluate(&alice_get(&resource), set);
        assert_eq!(e.decision, ImplicitDeny, "{principal}");
        assert_eq!(e.missing_allow, Some(PolicyType::Identity));
        let id = [allow(GET, "*")];
        assert_eq!(
            decision(&alice_get(&resource), PolicySet { identity: &id, ..set }),
            Allow
        );
        // And it matches every principal of the account for a Deny.
        let deny = resource_policy("Deny", principal, "secretsmanager:*");
        let s = request(session(ACCOUNT, "app", "s"), GET, &resource);
        assert_eq!(
            decision(
                &s,
                PolicySet {
                    identity: &id,
                    resource: Some(&deny),
                    ..PolicySet::default()
                }
            ),
            ExplicitDeny
        );
    }
}

#[test]
fn exact_and_role_principals_grant_within_the_account() {
    let resource = secret(ACCOUNT, "db");
    // The user's own ARN: allowed with no identity policy, even past a boundary.
    let rp = resource_policy("Allow", r#"{"AWS": "arn:aws:iam::123456789012:user/alice"}"#, GET);
    let boundary = allow("s3:*", "*");
    let set = PolicySet {
        resource: Some(&rp),
        permissions_boundary: Some(&boundary),
        ..PolicySet::default()
    };
    assert_eq!(decision(&alice_get(&resource), set), Allow);
    let bob = request(user(ACCOUNT, "bob"), GET, &resource);
    assert_eq!(decision(&bob, set), ImplicitDeny);

    // A role ARN matches its sessions: grants without an identity policy, but
    // a session policy still has to allow.
    let rp = resource_policy("Allow", r#"{"AWS": "arn:aws:iam::123456789012:role/app"}"#, GET);
    let s = request(session(ACCOUNT, "app", "s1"), GET, &resource);
    assert_eq!(
        decision(
            &s,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        Allow
    );
    let other_role = request(session(ACCOUNT, "web", "s1"), GET, &resource);
    assert_eq!(
        decision(
            &other_role,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        ImplicitDeny
    );
    let session_policy = [allow("s3:*", "*")];
    let e = evaluate(
        &s,
        PolicySet {
            resource: Some(&rp),
            session: &session_policy,
            ..PolicySet::default()
        },
    );
    assert_eq!((e.decision, e.missing_allow), (ImplicitDeny, Some(PolicyType::Session)));

    // The session's own ARN: not limited by the session policy.
    let rp = resource_policy(
        "Allow",
        r#"{"AWS": "arn:aws:sts::123456789012:assumed-role/app/s1"}"#,
        GET,
    );
    assert_eq!(
        decision(
            &s,
            PolicySet {
                resource: Some(&rp),
                session: &session_policy,
                ..PolicySet::default()
            }
        ),
        Allow
    );
    let s2 = request(session(ACCOUNT, "app", "s2"), GET, &resource);
    assert_eq!(
        decision(
            &s2,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        ImplicitDeny
    );

    // "*": anyone, anonymous callers included.
    let public = resource_policy("Allow", r#""*""#, GET);
    let set = PolicySet {
        resource: Some(&public),
        ..PolicySet::default()
    };
    assert_eq!(decision(&alice_get(&resource), set), Allow);
    assert_eq!(decision(&request(Principal::anonymous(), GET, &resource), set), Allow);
    let aws_any = resource_policy("Allow", r#"{"AWS": "*"}"#, GET);
    assert_eq!(
        decision(
            &alice_get(&resource),
            PolicySet {
                resource: Some(&aws_any),
                ..PolicySet::default()
            }
        ),
        Allow
    );
    // Anonymous callers get nothing from identity policies or an account principal.
    let rp = resource_policy("Allow", r#"{"AWS": "123456789012"}"#, GET);
    let anon = request(Principal::anonymous(), GET, &resource);
    assert_eq!(
        decision(
            &anon,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        ImplicitDeny
    );

    // Service principals.
    let rp = resource_policy("Allow", r#"{"Service": "lambda.amazonaws.com"}"#, GET);
    let svc = request(Principal::service("lambda.amazonaws.com"), GET, &resource);
    assert_eq!(
        decision(
            &svc,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        Allow
    );
    let other = request(Principal::service("ec2.amazonaws.com"), GET, &resource);
    assert_eq!(
        decision(
            &other,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        ImplicitDeny
    );
}

#[test]
fn not_principal_needs_every_identity_named() {
    let resource = secret(ACCOUNT, "db");
    let id = [allow("*", "*")];
    let cases = [
        // (NotPrincipal AWS list, caller, denied?)
        (r#"["arn:aws:iam::123456789012:user/alice"]"#, alice(), true),
        (
            r#"["arn:aws:iam::123456789012:user/alice", "123456789012"]"#,
            alice(),
            false,
        ),
        (
            r#"["arn:aws:iam::123456789012:user/alice", "123456789012"]"#,
            user(ACCOUNT, "bob"),
            true,
        ),
        (
            r#"["arn:aws:iam::123456789012:role/app", "123456789012"]"#,
            session(ACCOUNT, "app", "s"),
            true,
        ),
        (
            r#"["arn:aws:iam::123456789012:role/app", "arn:aws:sts::123456789012:assumed-role/app/s", "123456789012"]"#,
            session(ACCOUNT, "app", "s"),
            false,
        ),
        (r#"["123456789012"]"#, Principal::root(ACCOUNT), false),
        (r#""*""#, alice(), false),
    ];
    for (list, caller, denied) in cases {
        let doc = format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Deny", "NotPrincipal": {{"AWS": {list}}},
                "Action": "*", "Resource": "*"}}}}"#
        );
        let rp = named(
            "rp",
            parse(PolicyKind::Resource, &doc.replace(r#"{"AWS": "*"}"#, r#""*""#)),
        );
        let arn = caller.arn.clone();
        let r = request(caller, GET, &resource);
        let got = decision(
            &r,
            PolicySet {
                identity: &id,
                resource: Some(&rp),
                ..PolicySet::default()
            },
        );
        assert_eq!(got == ExplicitDeny, denied, "{list} for {arn}");
    }
}

#[test]
fn cross_account_needs_both_sides() {
    let resource = secret(ACCOUNT, "shared");
    let bob = || request(user(OTHER, "bob"), GET, &resource);
    let id = [allow(GET, "*")];
    let rp = resource_policy("Allow", &format!(r#"{{"AWS": "arn:aws:iam::{OTHER}:root"}}"#), GET);
    let wrong = resource_policy("Allow", r#"{"AWS": "444455556666"}"#, GET);

    assert_eq!(
        decision(
            &bob(),
            PolicySet {
                identity: &id,
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        Allow
    );
    let e = evaluate(
        &bob(),
        PolicySet {
            identity: &id,
            ..PolicySet::default()
        },
    );
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Resource))
    );
    let e = evaluate(
        &bob(),
        PolicySet {
            identity: &id,
            resource: Some(&wrong),
            ..PolicySet::default()
        },
    );
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Resource))
    );
    let e = evaluate(
        &bob(),
        PolicySet {
            resource: Some(&rp),
            ..PolicySet::default()
        },
    );
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Identity))
    );
    // Even naming bob exactly does not spare him an identity policy across accounts.
    let exact = resource_policy("Allow", &format!(r#"{{"AWS": "arn:aws:iam::{OTHER}:user/bob"}}"#), GET);
    assert_eq!(
        decision(
            &bob(),
            PolicySet {
                resource: Some(&exact),
                ..PolicySet::default()
            }
        ),
        ImplicitDeny
    );
    assert_eq!(
        decision(
            &bob(),
            PolicySet {
                identity: &id,
                resource: Some(&exact),
                ..PolicySet::default()
            }
        ),
        Allow
    );
    // The allowing statements: identity first, then the resource policy's.
    let e = evaluate(
        &bob(),
        PolicySet {
            identity: &id,
            resource: Some(&rp),
            ..PolicySet::default()
        },
    );
    let types: Vec<_> = e.statements.iter().map(|s| s.policy_type).collect();
    assert_eq!(types, [PolicyType::Identity, PolicyType::Resource]);

    // An explicit resource_account overrides the ARN.
    let mut r = request(user(OTHER, "bob"), GET, "*");
    assert!(!r.is_cross_account());
    r.resource_account = Some(ACCOUNT.into());
    assert!(r.is_cross_account());
}

#[test]
fn root_user() {
    let resource = secret(ACCOUNT, "db");
    let root = || request(Principal::root(ACCOUNT), GET, &resource);
    assert_eq!(decision(&root(), PolicySet::default()), Allow);
    // Identity policies do not apply to root (none can be attached).
    let denying = [deny("*", "*")];
    assert_eq!(decision(&root(), PolicySet::identity(&denying)), Allow);
    let rp = resource_policy("Deny", r#""*""#, GET);
    assert_eq!(
        decision(
            &root(),
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        ExplicitDeny
    );
    // Another account's root needs that account's resource policy.
    let foreign = request(Principal::root(OTHER), GET, &resource);
    assert_eq!(decision(&foreign, PolicySet::default()), ImplicitDeny);
    let rp = resource_policy("Allow", &format!(r#"{{"AWS": "{OTHER}"}}"#), GET);
    assert_eq!(
        decision(
            &foreign,
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            }
        ),
        Allow
    );
}

#[test]
fn boundaries_and_session_policies_limit_identity_allows() {
    let resource = secret(ACCOUNT, "db");
    let id = [allow("secretsmanager:*", "*")];
    let r = alice_get(&resource);
    let b_ok = allow("secretsmanager:Get*", "*");
    let b_no = allow("s3:*", "*");
    let b_deny = deny(GET, "*").with_arn("arn:aws:iam::123456789012:policy/boundary");

    let set = |boundary, session| PolicySet {
        identity: &id,
        permissions_boundary: boundary,
        session,
        ..PolicySet::default()
    };

    assert_eq!(decision(&r, set(Some(&b_ok), &[])), Allow);
    let e = evaluate(&r, set(Some(&b_no), &[]));
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::PermissionsBoundary))
    );
    let e = evaluate(&r, set(Some(&b_deny), &[]));
    assert_eq!(e.decision, ExplicitDeny);
    assert_eq!(e.statements[0].policy_type, PolicyType::PermissionsBoundary);

    // Several session policies: one allowing is enough.
    let either = [b_no.clone(), b_ok.clone()];
    assert_eq!(decision(&r, set(None, &either)), Allow);
    let neither = [b_no.clone()];
    let e = evaluate(&r, set(None, &neither));
    assert_eq!((e.decision, e.missing_allow), (ImplicitDeny, Some(PolicyType::Session)));
    let ok = [b_ok.clone()];
    let e = evaluate(&r, set(Some(&b_ok), &ok));
    let types: Vec<_> = e.statements.iter().map(|s| s.policy_type).collect();
    assert_eq!(
        types,
        [
            PolicyType::Identity,
            PolicyType::PermissionsBoundary,
            PolicyType::Session
        ]
    );
    // A boundary grants nothing by itself.
    let e = evaluate(
        &r,
        PolicySet {
            permissions_boundary: Some(&b_ok),
            ..PolicySet::default()
        },
    );
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Identity))
    );
}

#[test]
fn resource_policy_required_like_kms_and_sts() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let r = request(alice(), "kms:Decrypt", key);
    let id = [allow("kms:*", "*")];
    let enable_iam = resource_policy("Allow", r#"{"AWS": "arn:aws:iam::123456789012:root"}"#, "kms:*");
    let other = resource_policy("Allow", r#"{"AWS": "arn:aws:iam::123456789012:user/bob"}"#, "kms:*");
    let kms = |identity, resource| PolicySet {
        identity,
        resource,
        resource_policy_required: true,
        ..PolicySet::default()
    };
    assert_eq!(decision(&r, kms(&id, Some(&enable_iam))), Allow);
    let e = evaluate(&r, kms(&[], Some(&enable_iam)));
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Identity))
    );
    let e = evaluate(&r, kms(&id, Some(&other)));
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Resource))
    );
    let e = evaluate(&r, kms(&id, None));
    assert_eq!(
        (e.decision, e.missing_allow),
        (ImplicitDeny, Some(PolicyType::Resource))
    );

    // A trust policy naming the user lets it assume the role without an identity policy.
    let trust = named(
        "trust",
        parse(
            PolicyKind::Trust,
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"}, "Action": "sts:AssumeRole"}}"#,
        ),
    );
    let assume = request(alice(), "sts:AssumeRole", "arn:aws:iam::123456789012:role/app");
    assert_eq!(decision(&assume, kms(&[], Some(&trust))), Allow);
    let bob = request(
        user(ACCOUNT, "bob"),
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/app",
    );
    let may_assume = [allow("sts:AssumeRole", "*")];
    assert_eq!(decision(&bob, kms(&may_assume, Some(&trust))), ImplicitDeny);
    let tag = request(alice(), "sts:TagSession", "arn:aws:iam::123456789012:role/app");
    assert_eq!(decision(&tag, kms(&[], Some(&trust))), ImplicitDeny);
}

#[test]
fn explicit_deny_wins_everywhere() {
    let resource = secret(ACCOUNT, "db");
    let r = alice_get(&resource);
    let allows = [allow("*", "*"), allow(GET, &resource)];
    let rp_allow = resource_policy("Allow", r#""*""#, "*");
    let rp_deny = resource_policy("Deny", r#"{"AWS": "arn:aws:iam::123456789012:user/alice"}"#, GET);
    let with_deny = [allow("*", "*"), deny("secretsmanager:Get*", "*")];
    assert_eq!(
        decision(
            &r,
            PolicySet {
                identity: &allows,
                resource: Some(&rp_allow),
                ..PolicySet::default()
            }
        ),
        Allow
    );
    assert_eq!(
        decision(
            &r,
            PolicySet {
                identity: &allows,
                resource: Some(&rp_deny),
                ..PolicySet::default()
            }
        ),
        ExplicitDeny
    );
    assert_eq!(
        decision(
            &r,
            PolicySet {
                identity: &with_deny,
                resource: Some(&rp_allow),
                ..PolicySet::default()
            }
        ),
        ExplicitDeny
    );
    let session = [deny("*", "*")];
    assert_eq!(
        decision(
            &r,
            PolicySet {
                identity: &allows,
                session: &session,
                ..PolicySet::default()
            }
        ),
        ExplicitDeny
    );
}

const USER: &str = "arn:aws:iam::123456789012:user/alice";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf";

fn message(set: PolicySet<'_>, principal: Principal) -> String {
    let arn = principal.arn.clone();
    let r = request(principal, GET, SECRET);
    evaluate(&r, set).denial_message(&arn, GET, SECRET)
}

#[test]
fn denial_messages_use_aws_wording() {
    let head = format!("User: {USER} is not authorized to perform: {GET} on resource: {SECRET}");
    assert_eq!(
        message(PolicySet::default(), alice()),
        format!("{head} because no identity-based policy allows the {GET} action")
    );

    let managed = [deny("*", "*").with_arn("arn:aws:iam::123456789012:policy/name")];
    assert_eq!(
        message(PolicySet::identity(&managed), alice()),
        format!("{head} with an explicit deny in an identity-based policy: arn:aws:iam::123456789012:policy/name")
    );
    let inline = [deny("*", "*")];
    assert_eq!(
        message(PolicySet::identity(&inline), alice()),
        format!("{head} with an explicit deny in an identity-based policy")
    );

    let id = [allow("*", "*")];
    let rp = resource_policy("Deny", r#""*""#, "*").with_arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:x");
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                resource: Some(&rp),
                ..PolicySet::default()
            },
            alice()
        ),
        format!("{head} with an explicit deny in a resource-based policy")
    );

    let rp = resource_policy("Allow", r#"{"AWS": "111122223333"}"#, "*");
    let bob = user(OTHER, "bob");
    let bob_head =
        format!("User: arn:aws:iam::111122223333:user/bob is not authorized to perform: {GET} on resource: {SECRET}");
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                ..PolicySet::default()
            },
            bob.clone()
        ),
        format!("{bob_head} because no resource-based policy allows the {GET} action")
    );
    assert_eq!(
        message(
            PolicySet {
                resource: Some(&rp),
                ..PolicySet::default()
            },
            bob
        ),
        format!("{bob_head} because no identity-based policy allows the {GET} action")
    );

    let b_no = allow("s3:*", "*");
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                permissions_boundary: Some(&b_no),
                ..PolicySet::default()
            },
            alice()
        ),
        format!("{head} because no permissions boundary allows the {GET} action")
    );
    let b_deny = deny("*", "*");
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                permissions_boundary: Some(&b_deny),
                ..PolicySet::default()
            },
            alice()
        ),
        format!("{head} with an explicit deny in a permissions boundary")
    );
    let b_deny = deny("*", "*").with_arn("arn:aws:iam::123456789012:policy/b");
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                permissions_boundary: Some(&b_deny),
                ..PolicySet::default()
            },
            alice()
        ),
        format!("{head} with an explicit deny in a permissions boundary: arn:aws:iam::123456789012:policy/b")
    );
    let s_no = [allow("s3:*", "*")];
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                session: &s_no,
                ..PolicySet::default()
            },
            alice()
        ),
        format!("{head} because no session policy allows the {GET} action")
    );
    let s_deny = [deny("*", "*")];
    assert_eq!(
        message(
            PolicySet {
                identity: &id,
                session: &s_deny,
                ..PolicySet::default()
            },
            alice()
        ),
        format!("{head} with an explicit deny in a session policy")
    );

    // A role session is named by its session ARN, and AWS still says "User:".
    let s = session(ACCOUNT, "app", "s1");
    assert_eq!(
        message(PolicySet::default(), s),
        format!(
            "User: arn:aws:sts::123456789012:assumed-role/app/s1 is not authorized to perform: {GET} on resource: \
             {SECRET} because no identity-based policy allows the {GET} action"
        )
    );
}

#[test]
fn simulation_traces_matching_statements() {
    let document = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadTeam", "Effect": "Allow", "Action": "secretsmanager:Get*", "Resource": "*",
     "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}}},
    {"Sid": "ReadAll", "Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
    {"Sid": "NoKms", "Effect": "Deny", "Action": "kms:*", "Resource": "*"}
  ]
}"#;
    let policies = [named("team-read", identity(document)).with_arn("arn:aws:iam::123456789012:policy/team-read")];
    let r = alice_get(SECRET);
    let sim = simulate(&r, PolicySet::identity(&policies));
    assert_eq!(sim.eval_decision(), "allowed");
    assert_eq!(sim.statements.len(), 2);
    assert_eq!(sim.statements[0].result, StatementResult::ConditionNotMet(0));
    assert_eq!(
        sim.statements[0].failed_condition().as_deref(),
        Some("StringEquals aws:PrincipalTag/team")
    );
    let matched: Vec<_> = sim.matched_statements().collect();
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].sid(), Some("ReadAll"));
    assert_eq!(matched[0].index, 1);
    assert_eq!(matched[0].policy.name, "team-read");
    let span = matched[0].span().unwrap();
    assert_eq!((span.start.line, span.start.column, span.end.line), (6, 5, 6));
    assert_eq!(
        matched[0].to_string(),
        "identity-based policy team-read statement ReadAll"
    );
    assert_eq!(sim.evaluation.statements[0].sid(), Some("ReadAll"));

    let kms = request(alice(), "kms:Decrypt", "*");
    let sim = simulate(&kms, PolicySet::identity(&policies));
    assert_eq!(sim.eval_decision(), "explicitDeny");
    assert_eq!(sim.matched_statements().next().unwrap().sid(), Some("NoKms"));
    let sim = simulate(&request(alice(), "s3:GetObject", "*"), PolicySet::identity(&policies));
    assert_eq!(sim.eval_decision(), "implicitDeny");
    assert!(sim.statements.is_empty());
}

#[test]
fn public_access_check() {
    let check = |statements: &str| {
        let doc = format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#);
        exposure(&parse_policy(&doc, PolicyKind::Resource).unwrap(), ACCOUNT)
    };
    let own = check(
        r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/app"}, "Action": "*", "Resource": "*"}"#,
    );
    assert!(own.is_confined());
    let public =
        check(r#"{"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}"#);
    assert!(public.public);
    let pinned = check(
        r#"{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}}"#,
    );
    assert!(pinned.is_confined(), "{pinned:?}");
    let pinned_other = check(
        r#"{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*",
            "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/reader"}}}"#,
    );
    assert_eq!(
        (pinned_other.public, pinned_other.other_accounts.clone()),
        (false, vec![OTHER.to_string()])
    );
    let org = check(
        r#"{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}}"#,
    );
    assert_eq!(
        (org.public, org.organizations.clone()),
        (false, vec!["o-abc123".to_string()])
    );
    // Conditions that do not pin the caller's account leave it public.
    for condition in [
        r#"{"StringLike": {"aws:PrincipalAccount": "1234*"}}"#,
        r#"{"StringEqualsIfExists": {"aws:PrincipalAccount": "123456789012"}}"#,
        r#"{"StringNotEquals": {"aws:PrincipalAccount": "111122223333"}}"#,
        r#"{"ForAllValues:StringEquals": {"aws:PrincipalAccount": "123456789012"}}"#,
        r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
    ] {
        let e = check(&format!(
            r#"{{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {condition}}}"#
        ));
        assert!(e.public, "{condition}");
    }
    let cross = check(
        r#"{"Effect": "Allow", "Principal": {"AWS": ["111122223333", "arn:aws:iam::444455556666:user/x"]}, "Action": "*", "Resource": "*"}"#,
    );
    assert_eq!(
        (cross.public, cross.other_accounts.clone()),
        (false, vec![OTHER.to_string(), "444455556666".to_string()])
    );
    let denied = check(r#"{"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}"#);
    assert!(denied.is_confined());
    let federated = check(
        r#"{"Effect": "Allow", "Principal": {"Federated": "accounts.google.com"}, "Action": "*", "Resource": "*"}"#,
    );
    assert!(federated.public);
}

#[test]
fn a_policy_reads_context_keys_only_through_conditions_and_variables() {
    let rows = [
        (r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#, false),
        (
            r#"{"Effect":"Allow","Action":"secretsmanager:Get*","NotResource":"arn:aws:secretsmanager:*:*:secret:a*"}"#,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}"#,
            true,
        ),
        (
            r#"{"Effect":"Deny","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}*"}"#,
            true,
        ),
    ];
    for (statement, want) in rows {
        let plain = r#"{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}"#;
        let policy = identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{plain},{statement}]}}"#
        ));
        assert_eq!(policy.reads_context_keys(), want, "{statement}");
        let named = [named("p", policy)];
        assert_eq!(PolicySet::identity(&named).reads_context_keys(), want, "{statement}");
    }
    // One policy of the set that reads keys is enough.
    let unconditional = resource_policy("Allow", r#""*""#, "secretsmanager:GetSecretValue");
    let with_condition = named(
        "r",
        parse(
            PolicyKind::Resource,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}}]}"#,
        ),
    );
    let plain = [allow("*", "*")];
    let set = |resource| PolicySet {
        resource: Some(resource),
        ..PolicySet::identity(&plain)
    };
    assert!(!set(&unconditional).reads_context_keys());
    assert!(set(&with_condition).reads_context_keys());
}
