//! Parsing: what is accepted, and what is refused with which message and where.

mod common;

use tumbler_iam::{
    ConditionOperator, Effect, ParseOptions, PolicyErrorKind, PolicyKind, PolicyVersion, PrincipalEntry, SetQualifier,
    parse_policy,
};

use PolicyKind::{Identity, Resource, Session, Trust};

fn refused(kind: PolicyKind, document: &str) -> tumbler_iam::PolicyError {
    match parse_policy(document, kind) {
        Ok(_) => panic!("accepted: {document}"),
        Err(e) => e,
    }
}

/// (kind, document, expected message, expected path)
const REFUSED: &[(PolicyKind, &str, &str, &str)] = &[
    (Identity, r#"{"Statement": "#, "Syntax errors in policy.", "Statement"),
    (
        Identity,
        r#"[]"#,
        "invalid type: sequence, expected a policy document (a JSON object)",
        "",
    ),
    (Identity, r#"{"Foo": 1, "Statement": []}"#, "Unknown field Foo", ""),
    (
        Identity,
        r#"{"Version": "2012-10-17"}"#,
        "Missing required field Statement",
        "",
    ),
    (
        Identity,
        r#"{"Version": "2013-01-01", "Statement": []}"#,
        "Invalid policy Version 2013-01-01: use 2012-10-17",
        "",
    ),
    (
        Identity,
        r#"{"Statement": []}"#,
        "Policy document must contain at least one statement.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": "x"}"#,
        "invalid type: string \"x\", expected a statement object or an array of statements",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Foo": 1}]}"#,
        "Unknown field Foo",
        "Statement[0]",
    ),
    (
        Identity,
        r#"{"Statement": [{"Action": "s3:*", "Resource": "*"}]}"#,
        "Missing required field Effect",
        "Statement[0]",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "allow", "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid effect: allow",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*"}}"#,
        "Statement cannot contain both Action and NotAction",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Resource": "*", "NotResource": "*", "Action": "*"}}"#,
        "Statement cannot contain both Resource and NotResource",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Action": "s3:*", "Resource": "*"}}"#,
        "Duplicate field Action",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Resource": "*"}}"#,
        "Policy statement must contain actions.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": [], "Resource": "*"}}"#,
        "Policy statement must contain actions.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "GetSecretValue", "Resource": "*"}}"#,
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "a:b:c", "Resource": "*"}}"#,
        "Actions/Condition can contain only one colon.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": [1], "Resource": "*"}}"#,
        "invalid type: integer `1`, expected a string",
        "Statement.Action[0]",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*"}}"#,
        "Policy statement must contain resources.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": []}}"#,
        "Policy statement must contain resources.",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "bucket"}}"#,
        "Resource bucket must be in ARN format or \"*\".",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}}"#,
        "Policy document should not specify a principal.",
        "Statement",
    ),
    (
        Session,
        r#"{"Statement": {"Effect": "Allow", "NotPrincipal": "*", "Action": "s3:*", "Resource": "*"}}"#,
        "Policy document should not specify a principal.",
        "Statement",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#,
        "Missing required field Principal",
        "Statement",
    ),
    (
        Trust,
        r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Resource": "*"}}"#,
        "Has prohibited field Resource",
        "Statement",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "NotPrincipal": {"AWS": "123456789012"}, "Action": "s3:*", "Resource": "*"}}"#,
        "NotPrincipal can only be used with \"Effect\": \"Deny\"",
        "Statement",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Principal": "alice", "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid principal in policy: \"alice\"",
        "Statement.Principal",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid principal in policy: \"AWS\":\"alice\"",
        "Statement.Principal",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/*"}, "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid principal in policy: \"AWS\":\"arn:aws:iam::123456789012:user/*\"",
        "Statement.Principal",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Principal": {"Robot": "x"}, "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid principal in policy: unknown principal type \"Robot\"",
        "Statement.Principal",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": []}, "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid principal in policy: \"AWS\":[]",
        "Statement.Principal",
    ),
    (
        Resource,
        r#"{"Statement": {"Effect": "Allow", "Principal": {}, "Action": "s3:*", "Resource": "*"}}"#,
        "Invalid principal in policy: no principal named",
        "Statement.Principal",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEqualz": {"aws:username": "a"}}}}"#,
        "Invalid Condition operator StringEqualz",
        "Statement.Condition",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"NullIfExists": {"aws:username": "true"}}}}"#,
        "Invalid Condition operator NullIfExists",
        "Statement.Condition",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "soon"}}}}"#,
        "Invalid value \"soon\" for condition operator NumericLessThan on key aws:MultiFactorAuthAge",
        "Statement.Condition.NumericLessThan",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "tomorrow"}}}}"#,
        "Invalid value \"tomorrow\" for condition operator DateLessThan on key aws:CurrentTime",
        "Statement.Condition.DateLessThan",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "10.0.0.0/99"]}}}}"#,
        "Invalid value \"10.0.0.0/99\" for condition operator IpAddress on key aws:SourceIp",
        "Statement.Condition.IpAddress",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"Null": {"aws:TokenIssueTime": "maybe"}}}}"#,
        "Invalid value \"maybe\" for condition operator Null on key aws:TokenIssueTime",
        "Statement.Condition.Null",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"NumericEquals": {"s3:max-keys": "${aws:username}"}}}}"#,
        "Invalid value \"${aws:username}\" for condition operator NumericEquals on key s3:max-keys",
        "Statement.Condition.NumericEquals",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:username": []}}}}"#,
        "Condition key aws:username must have at least one value",
        "Statement.Condition.StringEquals",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:username": null}}}}"#,
        "invalid type: null, expected a string, number or boolean, or an array of them",
        "Statement.Condition.StringEquals.aws:username",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:username": [["a"]]}}}}"#,
        "invalid type: sequence, expected a string, number or boolean",
        "Statement.Condition.StringEquals.aws:username[0]",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {}}}}"#,
        "Condition operator StringEquals must name at least one key",
        "Statement.Condition",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {"a:b": "1"}, "StringEquals": {"a:c": "1"}}}}"#,
        "Duplicate Condition operator StringEquals",
        "Statement.Condition",
    ),
    (
        Identity,
        r#"{"Statement": [{"Sid": "One", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                          {"Sid": "One", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}"#,
        "Statement IDs (SID) in a single policy must be unique.",
        "",
    ),
    (
        Identity,
        r#"{"Statement": {"Sid": "not ok", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#,
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
        "Statement",
    ),
    (
        Identity,
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}} x"#,
        "Syntax errors in policy.",
        "",
    ),
];

#[test]
fn refused_documents_say_what_and_where() {
    let mut wrong = Vec::new();
    for (kind, document, message, path) in REFUSED {
        let error = refused(*kind, document);
        let ok = error.kind == PolicyErrorKind::Malformed
            && error.message == *message
            && error.path == *path
            && error.line >= 1;
        if !ok {
            wrong.push(format!("{document}\n  wanted {message:?} at {path:?}\n  got {error:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn positions_point_at_the_fault() {
    let document = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\",\n     \"Action\": \"s3:*\", \"Resource\": \"*\",\n     \"Condition\": {\"StringEqualz\": {\"a:b\": \"c\"}}}\n  ]\n}";
    let error = refused(Identity, document);
    assert_eq!(error.message, "Invalid Condition operator StringEqualz");
    assert_eq!(error.line, 6);
    assert_eq!(error.path, "Statement[0].Condition");
    assert_eq!(
        error.to_string(),
        format!(
            "Invalid Condition operator StringEqualz at Statement[0].Condition (line 6 column {})",
            error.column
        )
    );

    let syntax = refused(Identity, "{\n\"Statement\": [\n}");
    assert_eq!(syntax.message, "Syntax errors in policy.");
    assert_eq!(syntax.line, 3);
    assert!(syntax.detail.is_some());
    assert!(syntax.to_string().starts_with("Syntax errors in policy. ("), "{syntax}");
}

#[test]
fn size_limit_counts_characters_other_than_white_space() {
    let document = r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#;
    let size = document.chars().filter(|c| !c.is_whitespace()).count();
    let padded = document.replace(' ', "      ");
    assert!(ParseOptions::new(Identity).max_size(size).parse(&padded).is_ok());
    let error = ParseOptions::new(Identity)
        .max_size(size - 1)
        .parse(document)
        .unwrap_err();
    assert_eq!(error.kind, PolicyErrorKind::TooLarge);
    assert_eq!(
        error.message,
        format!("Cannot exceed quota for PolicySize: {}", size - 1)
    );
}

#[test]
fn accepted_shapes() {
    // Statement as an object, strings instead of arrays, no Version.
    let p = parse_policy(
        r#"{"Statement": {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}}"#,
        Identity,
    )
    .unwrap();
    assert_eq!(p.version(), PolicyVersion::V2008_10_17);
    assert_eq!(p.statements().len(), 1);
    assert_eq!(p.statements()[0].effect(), Effect::Deny);

    let p = parse_policy(
        r#"{"Version": "2012-10-17", "Id": "doc-1", "Statement": [
            {"Sid": "A1", "Effect": "Allow", "NotAction": ["iam:*", "kms:*"], "NotResource": ["arn:aws:s3:::x"]},
            {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
                "forallvalues:stringequalsifexists": {"aws:TagKeys": ["a", 1, true, 2.5]},
                "NumericLessThan": {"aws:MultiFactorAuthAge": 3600},
                "Bool": {"aws:SecureTransport": false}}}]}"#,
        Identity,
    )
    .unwrap();
    assert_eq!(p.version(), PolicyVersion::V2012_10_17);
    assert_eq!(p.id(), Some("doc-1"));
    let [first, second] = p.statements() else { panic!() };
    assert_eq!(first.sid(), Some("A1"));
    assert!(first.is_not_action() && first.is_not_resource());
    assert_eq!(first.actions().collect::<Vec<_>>(), ["iam:*", "kms:*"]);
    let conditions = second.conditions();
    assert_eq!(conditions.len(), 3);
    let tags = conditions.iter().find(|c| c.key() == "aws:TagKeys").unwrap();
    assert_eq!(tags.spec().qualifier, Some(SetQualifier::ForAllValues));
    assert_eq!(tags.operator(), ConditionOperator::StringEquals);
    assert!(tags.spec().if_exists);
    assert_eq!(tags.values(), ["a", "1", "true", "2.5"]);
    assert_eq!(tags.spec().to_string(), "ForAllValues:StringEqualsIfExists");

    // Sids with spaces are fine in resource policies (KMS key policies use them).
    let p = parse_policy(
        r#"{"Version": "2012-10-17", "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::123456789012:root", "111122223333",
                "arn:aws:iam::123456789012:role/admin", "*"], "Service": "lambda.amazonaws.com",
                "Federated": "cognito-identity.amazonaws.com", "CanonicalUser": "79a59df900b949e5"},
            "Action": "kms:*", "Resource": "*"}]}"#,
        Resource,
    )
    .unwrap();
    assert_eq!(
        p.statements()[0].principals().unwrap(),
        [
            PrincipalEntry::Account("123456789012".into()),
            PrincipalEntry::Account("111122223333".into()),
            PrincipalEntry::Arn("arn:aws:iam::123456789012:role/admin".into()),
            PrincipalEntry::Any,
            PrincipalEntry::Service("lambda.amazonaws.com".into()),
            PrincipalEntry::Federated("cognito-identity.amazonaws.com".into()),
            PrincipalEntry::CanonicalUser("79a59df900b949e5".into()),
        ]
    );

    // Trust policies name no resource.
    let p = parse_policy(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}}"#,
        Trust,
    )
    .unwrap();
    assert_eq!(p.statements()[0].resources().count(), 0);
    assert_eq!(p.kind(), Trust);
}

#[test]
fn statement_spans() {
    let document = "{\"Version\": \"2012-10-17\",\n \"Statement\": [\n  {\"Sid\": \"A\", \"Effect\": \"Allow\", \"Action\": \"s3:*\", \"Resource\": \"*\"},\n  {\"Sid\": \"B\", \"Effect\": \"Deny\",\n   \"Action\": \"s3:*\", \"Resource\": \"arn:aws:s3:::{}\"}\n ]}";
    let p = parse_policy(document, Identity).unwrap();
    let spans: Vec<_> = p.statements().iter().map(|s| s.span().unwrap()).collect();
    assert_eq!((spans[0].start.line, spans[0].start.column), (3, 3));
    assert_eq!((spans[0].end.line, spans[0].end.column), (3, 69));
    assert_eq!((spans[1].start.line, spans[1].start.column), (4, 3));
    assert_eq!(spans[1].end.line, 5);

    let single = parse_policy(
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#,
        Identity,
    )
    .unwrap();
    let span = single.statements()[0].span().unwrap();
    assert_eq!((span.start.line, span.start.column, span.end.column), (1, 15, 69));
}
