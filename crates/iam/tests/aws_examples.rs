//! Policy examples from the AWS IAM and Secrets Manager documentation,
//! with the outcomes the documentation describes.

mod common;

use common::*;
use tumbler_iam::{Decision, PolicyKind, PolicySet, Principal, RequestContext, evaluate, exposure};

use Decision::{Allow, ExplicitDeny, ImplicitDeny};

/// Secrets Manager ABAC: a principal reads secrets tagged with its own
/// AccessProject tag (the documentation writes the variable with spaces).
#[test]
fn abac_secrets_by_matching_tags() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/AccessProject": "${ aws:PrincipalTag/AccessProject }"}}}]}"#,
    );
    let policies = [named("abac", policy)];
    let caller = || alice().with_tags([("AccessProject", "phoenix")]);
    let read = |tag: Option<&str>, principal: Principal| {
        let mut r = request(principal, GET, &secret(ACCOUNT, "db"));
        if let Some(tag) = tag {
            r.keys.insert("aws:ResourceTag/AccessProject", tag);
        }
        evaluate(&r, PolicySet::identity(&policies)).decision
    };
    assert_eq!(read(Some("phoenix"), caller()), Allow);
    assert_eq!(read(Some("unicorn"), caller()), ImplicitDeny);
    assert_eq!(read(None, caller()), ImplicitDeny);
    assert_eq!(read(Some("phoenix"), alice()), ImplicitDeny); // untagged principal
}

/// IAM: "Allows MFA-authenticated IAM users to manage their own
/// credentials" — the deny-unless-MFA statement.
#[test]
fn deny_all_except_listed_if_no_mfa() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "AllowAll", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": "DenyAllExceptListedIfNoMFA", "Effect": "Deny",
             "NotAction": ["iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:GetUser",
                           "iam:ListMFADevices", "iam:ListVirtualMFADevices", "iam:ResyncMFADevice",
                           "sts:GetSessionToken"],
             "Resource": "*",
             "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}]}"#,
    );
    let policies = [named("mfa", policy)];
    let run = |action: &str, mfa: Option<bool>| {
        let mut r = request(alice(), action, "*");
        if let Some(mfa) = mfa {
            r.keys.insert_bool("aws:MultiFactorAuthPresent", mfa);
        }
        evaluate(&r, PolicySet::identity(&policies))
    };
    assert_eq!(run(GET, Some(true)).decision, Allow);
    assert_eq!(run(GET, Some(false)).decision, ExplicitDeny);
    // Long-term access keys carry no MFA key: IfExists makes the deny apply.
    let e = run(GET, None);
    assert_eq!(e.decision, ExplicitDeny);
    assert_eq!(e.statements[0].sid(), Some("DenyAllExceptListedIfNoMFA"));
    assert_eq!(run("sts:GetSessionToken", None).decision, Allow);
    assert_eq!(run("IAM:EnableMFADevice", Some(false)).decision, Allow);
}

/// IAM: "Denies access to AWS based on the source IP".
#[test]
fn deny_outside_source_ip_ranges() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
                "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
                "Bool": {"aws:ViaAWSService": "false"}}}]}"#,
    );
    let policies = [named("ip", policy)];
    let run = |ip: &str, via_service: bool| {
        let mut r = request(alice(), GET, &secret(ACCOUNT, "db"));
        r.keys.insert("aws:SourceIp", ip);
        r.keys.insert_bool("aws:ViaAWSService", via_service);
        evaluate(&r, PolicySet::identity(&policies)).decision
    };
    assert_eq!(run("203.0.113.10", false), Allow);
    assert_eq!(run("198.51.100.10", false), ExplicitDeny);
    assert_eq!(run("198.51.100.10", true), Allow);
}

/// IAM: "Allows access within specific dates".
#[test]
fn access_within_specific_dates() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": "*", "Condition": {
                "DateGreaterThan": {"aws:CurrentTime": "2024-04-01T00:00:00Z"},
                "DateLessThan": {"aws:CurrentTime": "2024-06-30T23:59:59Z"}}}]}"#,
    );
    let policies = [named("dates", policy)];
    let at = |time: &str| {
        let mut r = request(alice(), GET, &secret(ACCOUNT, "db"));
        r.keys.insert_request_time(time.parse().unwrap());
        evaluate(&r, PolicySet::identity(&policies)).decision
    };
    assert_eq!(at("2024-05-15T10:00:00Z"), Allow);
    assert_eq!(at("2024-03-31T23:59:59Z"), ImplicitDeny);
    assert_eq!(at("2024-07-01T00:00:00Z"), ImplicitDeny);
}

/// Secrets Manager: "Access AWS Secrets Manager secrets from a different
/// account" — the secret's policy names RoleB in account B, and RoleB's
/// identity policy allows the secret.
#[test]
fn cross_account_secret_access() {
    let arn = secret(ACCOUNT, "shared");
    let resource_policy = named(
        "secret-policy",
        parse(
            PolicyKind::Resource,
            &format!(
                r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow",
                    "Principal": {{"AWS": "arn:aws:iam::{OTHER}:role/RoleB"}},
                    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}}]}}"#
            ),
        ),
    );
    let role_policy = [named(
        "RoleB-policy",
        identity(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue", "Resource": "{arn}"}},
                {{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}}]}}"#
        )),
    )];
    let role_b = || session(OTHER, "RoleB", "app");
    let set = PolicySet {
        identity: &role_policy,
        resource: Some(&resource_policy),
        ..PolicySet::default()
    };
    assert_eq!(evaluate(&request(role_b(), GET, &arn), set).decision, Allow);
    assert_eq!(
        evaluate(&request(session(OTHER, "RoleC", "app"), GET, &arn), set).decision,
        ImplicitDeny
    );
    let no_identity = PolicySet {
        resource: Some(&resource_policy),
        ..PolicySet::default()
    };
    assert_eq!(
        evaluate(&request(role_b(), GET, &arn), no_identity).decision,
        ImplicitDeny
    );
    let no_resource = PolicySet {
        identity: &role_policy,
        ..PolicySet::default()
    };
    assert_eq!(
        evaluate(&request(role_b(), GET, &arn), no_resource).decision,
        ImplicitDeny
    );
}

/// Secrets Manager: keep BlockPublicPolicy on, and refuse public policies.
#[test]
fn block_public_policy() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:PutResourcePolicy", "Resource": "*",
             "Condition": {"Bool": {"secretsmanager:BlockPublicPolicy": "false"}}}]}"#,
    );
    let policies = [named("bpp", policy)];
    let put = |block: bool| {
        let mut r = request(alice(), "secretsmanager:PutResourcePolicy", &secret(ACCOUNT, "db"));
        r.keys.insert_bool("secretsmanager:BlockPublicPolicy", block);
        evaluate(&r, PolicySet::identity(&policies)).decision
    };
    assert_eq!(put(true), Allow);
    assert_eq!(put(false), ExplicitDeny);

    let public = parse(
        PolicyKind::Resource,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
            "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}"#,
    );
    assert!(exposure(&public, ACCOUNT).public);
}

/// Tagging: only the listed tag keys, with allowed values for one of them.
#[test]
fn restrict_tag_keys_and_values() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource"], "Resource": "*",
            "Condition": {
                "ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]},
                "StringEqualsIfExists": {"aws:RequestTag/environment": ["preprod", "production"]}}}]}"#,
    );
    let policies = [named("tags", policy)];
    let tag = |tags: &[(&str, &str)]| {
        let mut r = request(alice(), "secretsmanager:TagResource", &secret(ACCOUNT, "db"));
        r.keys.insert_multi("aws:TagKeys", tags.iter().map(|(k, _)| *k));
        for (k, v) in tags {
            r.keys.insert(&format!("aws:RequestTag/{k}"), *v);
        }
        evaluate(&r, PolicySet::identity(&policies)).decision
    };
    assert_eq!(tag(&[("environment", "preprod"), ("cost-center", "42")]), Allow);
    assert_eq!(tag(&[("cost-center", "42")]), Allow);
    assert_eq!(tag(&[("environment", "dev")]), ImplicitDeny);
    assert_eq!(tag(&[("environment", "preprod"), ("owner", "x")]), ImplicitDeny);
    assert_eq!(tag(&[]), Allow); // ForAllValues on an empty set
}

/// IAM: "Allows IAM users to access their own home directory in Amazon S3".
#[test]
fn s3_home_directory() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "AllowListingOfUserFolder", "Action": ["s3:ListBucket"], "Effect": "Allow",
             "Resource": ["arn:aws:s3:::amzn-s3-demo-bucket"],
             "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}}},
            {"Sid": "AllowAllS3ActionsInUserFolder", "Effect": "Allow", "Action": ["s3:*"],
             "Resource": ["arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/*"]}]}"#,
    );
    let policies = [named("home", policy)];
    let set = PolicySet::identity(&policies);
    let list = |prefix: &str| {
        let mut r = request(alice(), "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket");
        r.keys.insert("s3:prefix", prefix);
        evaluate(&r, set).decision
    };
    assert_eq!(list(""), Allow);
    assert_eq!(list("home/"), Allow);
    assert_eq!(list("home/alice/photos/"), Allow);
    assert_eq!(list("home/bob/"), ImplicitDeny);
    let get = |key: &str| {
        evaluate(
            &request(
                alice(),
                "s3:GetObject",
                &format!("arn:aws:s3:::amzn-s3-demo-bucket/{key}"),
            ),
            set,
        )
        .decision
    };
    assert_eq!(get("home/alice/notes.txt"), Allow);
    assert_eq!(get("home/bob/notes.txt"), ImplicitDeny);
}

/// A resource policy open to one AWS Organization.
#[test]
fn organization_restricted_resource_policy() {
    let policy = parse(
        PolicyKind::Resource,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
            "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}}]}"#,
    );
    let rp = named("org", policy);
    let id = [allow(GET, "*")];
    let arn = secret(ACCOUNT, "db");
    let run = |org: Option<&str>| {
        let mut r = request(user(OTHER, "bob"), GET, &arn);
        if let Some(org) = org {
            r.keys.insert("aws:PrincipalOrgID", org);
        }
        evaluate(
            &r,
            PolicySet {
                identity: &id,
                resource: Some(&rp),
                ..PolicySet::default()
            },
        )
        .decision
    };
    assert_eq!(run(Some("o-a1b2c3d4e5")), Allow);
    assert_eq!(run(Some("o-other")), ImplicitDeny);
    assert_eq!(run(None), ImplicitDeny);
    let e = exposure(&rp.policy, ACCOUNT);
    assert!(!e.public && e.organizations == ["o-a1b2c3d4e5"]);
}

/// IAM: a trust policy for a third party, with an external id.
#[test]
fn trust_policy_with_external_id() {
    let trust = named(
        "trust",
        parse(
            PolicyKind::Trust,
            &format!(
                r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow",
                    "Principal": {{"AWS": "{OTHER}"}}, "Action": "sts:AssumeRole",
                    "Condition": {{"StringEquals": {{"sts:ExternalId": "Unique ID Assigned by Example Corp"}}}}}}}}"#
            ),
        ),
    );
    let may_assume = [allow("sts:AssumeRole", "*")];
    let set = PolicySet {
        identity: &may_assume,
        resource: Some(&trust),
        resource_policy_required: true,
        ..PolicySet::default()
    };
    let assume = |external_id: Option<&str>| {
        let mut r: RequestContext = request(
            user(OTHER, "partner"),
            "sts:AssumeRole",
            "arn:aws:iam::123456789012:role/ThirdParty",
        );
        if let Some(id) = external_id {
            r.keys.insert("sts:ExternalId", id);
        }
        evaluate(&r, set).decision
    };
    assert_eq!(assume(Some("Unique ID Assigned by Example Corp")), Allow);
    assert_eq!(assume(Some("guess")), ImplicitDeny);
    assert_eq!(assume(None), ImplicitDeny);
}
