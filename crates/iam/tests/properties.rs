//! Properties of the evaluation logic over generated policies and requests:
//! a Deny never grants, an Allow never denies, order never matters.

mod common;

use common::*;
use proptest::prelude::*;
use tumbler_iam::{Decision, NamedPolicy, PolicyKind, PolicySet, Principal, RequestContext, evaluate, parse_policy};

const ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:Get*",
    "secretsmanager:*",
    "*",
    "kms:Decrypt",
    "secretsmanager:PutSecretValue",
    "SecretsManager:getsecret?alue",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
    "arn:aws:secretsmanager:*:123456789012:secret:${aws:username}/*",
    "arn:aws:secretsmanager:*:*:secret:prod/*",
    "arn:aws:kms:*:111122223333:key/*",
];
const CONDITIONS: &[&str] = &[
    r#"{"StringEquals": {"aws:PrincipalTag/team": "red"}}"#,
    r#"{"StringNotEquals": {"aws:username": "alice"}}"#,
    r#"{"StringLike": {"aws:userid": "AIDA*"}}"#,
    r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
    r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
    r#"{"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}"#,
    r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#,
    r#"{"ForAllValues:StringLike": {"aws:TagKeys": "a*"}}"#,
    r#"{"Null": {"aws:TokenIssueTime": "true"}}"#,
    r#"{"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}"#,
    r#"{"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}"#,
    r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:*"}}"#,
    r#"{"StringEquals": {"aws:username": "${aws:username}"}}"#,
];
const PRINCIPALS: &[&str] = &[
    r#""*""#,
    r#"{"AWS": "123456789012"}"#,
    r#"{"AWS": "arn:aws:iam::111122223333:root"}"#,
    r#"{"AWS": "arn:aws:iam::123456789012:user/alice"}"#,
    r#"{"AWS": "arn:aws:iam::123456789012:role/app"}"#,
    r#"{"AWS": "arn:aws:sts::123456789012:assumed-role/app/s"}"#,
    r#"{"AWS": ["arn:aws:iam::111122223333:user/bob", "arn:aws:iam::123456789012:role/app"]}"#,
];

#[derive(Clone, Debug)]
struct Stmt {
    allow: bool,
    action: usize,
    not_action: bool,
    resource: usize,
    not_resource: bool,
    condition: Option<usize>,
    principal: usize,
    not_principal: bool,
}

impl Stmt {
    fn json(&self, kind: PolicyKind) -> String {
        let effect = if self.allow { "Allow" } else { "Deny" };
        let action = format!(
            r#""{}": "{}""#,
            if self.not_action { "NotAction" } else { "Action" },
            ACTIONS[self.action]
        );
        let resource = format!(
            r#""{}": "{}""#,
            if self.not_resource { "NotResource" } else { "Resource" },
            RESOURCES[self.resource]
        );
        let principal = match kind {
            PolicyKind::Resource => {
                // NotPrincipal only with Deny.
                let element = if self.not_principal && !self.allow {
                    "NotPrincipal"
                } else {
                    "Principal"
                };
                format!(r#""{element}": {}, "#, PRINCIPALS[self.principal])
            }
            _ => String::new(),
        };
        let condition = self
            .condition
            .map(|c| format!(r#", "Condition": {}"#, CONDITIONS[c]))
            .unwrap_or_default();
        format!(r#"{{"Effect": "{effect}", {principal}{action}, {resource}{condition}}}"#)
    }
}

fn stmt(allow: impl Strategy<Value = bool>) -> impl Strategy<Value = Stmt> {
    (
        allow,
        0..ACTIONS.len(),
        prop::bool::weighted(0.15),
        0..RESOURCES.len(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.5, 0..CONDITIONS.len()),
        0..PRINCIPALS.len(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(allow, action, not_action, resource, not_resource, condition, principal, not_principal)| Stmt {
                allow,
                action,
                not_action,
                resource,
                not_resource,
                condition,
                principal,
                not_principal,
            },
        )
}

fn stmts() -> impl Strategy<Value = Vec<Stmt>> {
    prop::collection::vec(stmt(prop::bool::weighted(0.7)), 1..5)
}

#[derive(Clone, Debug)]
struct Scenario {
    identity: Vec<Vec<Stmt>>,
    resource: Option<Vec<Stmt>>,
    boundary: Option<Vec<Stmt>>,
    session: Vec<Vec<Stmt>>,
    required: bool,
    caller: usize,
    action: usize,
    resource_arn: usize,
    keys: (bool, usize, usize, usize, bool, bool),
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(stmts(), 0..4),
        prop::option::weighted(0.6, stmts()),
        prop::option::weighted(0.25, stmts()),
        prop::collection::vec(stmts(), 0..2),
        prop::bool::weighted(0.2),
        0..5usize,
        0..4usize,
        0..4usize,
        (
            any::<bool>(),
            0..3usize,
            0..3usize,
            0..4usize,
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(identity, resource, boundary, session, required, caller, action, resource_arn, keys)| Scenario {
                identity,
                resource,
                boundary,
                session,
                required,
                caller,
                action,
                resource_arn,
                keys,
            },
        )
}

fn policy(kind: PolicyKind, statements: &[Stmt]) -> NamedPolicy {
    let body: Vec<String> = statements.iter().map(|s| s.json(kind)).collect();
    let document = format!(r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#, body.join(", "));
    let parsed = parse_policy(&document, kind).unwrap_or_else(|e| panic!("{e}\n{document}"));
    NamedPolicy::new("generated", parsed)
}

fn build_request(s: &Scenario) -> RequestContext {
    let caller = match s.caller {
        0 => alice().with_tags([("team", "red")]),
        1 => user(OTHER, "bob"),
        2 => session(ACCOUNT, "app", "s"),
        3 => Principal::root(ACCOUNT),
        _ => Principal::anonymous(),
    };
    let action = [
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "kms:Decrypt",
        "iam:GetUser",
    ][s.action];
    let resource = [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/x-AbCdEf",
        "arn:aws:kms:us-east-1:111122223333:key/k",
        "*",
    ][s.resource_arn];
    let mut r = RequestContext::new(caller, action, resource);
    let (tls, ip, time, tags, mfa, token) = s.keys;
    r.keys.insert_bool("aws:SecureTransport", tls);
    r.keys
        .insert("aws:SourceIp", ["10.1.2.3", "192.0.2.1", "2001:db8::1"][ip]);
    r.keys.insert(
        "aws:CurrentTime",
        ["2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "garbage"][time],
    );
    let tag_sets: [&[&str]; 4] = [&[], &["a"], &["a", "c"], &["b"]];
    r.keys.insert_multi("aws:TagKeys", tag_sets[tags].iter().copied());
    if mfa {
        r.keys.insert_bool("aws:MultiFactorAuthPresent", true);
        r.keys.insert("aws:MultiFactorAuthAge", "100");
    }
    if token {
        r.keys.insert("aws:TokenIssueTime", "2024-01-01T00:00:00Z");
    }
    r
}

struct Built {
    identity: Vec<NamedPolicy>,
    resource: Option<NamedPolicy>,
    boundary: Option<NamedPolicy>,
    session: Vec<NamedPolicy>,
    required: bool,
}

impl Built {
    fn new(s: &Scenario) -> Built {
        Built {
            identity: s.identity.iter().map(|p| policy(PolicyKind::Identity, p)).collect(),
            resource: s.resource.as_ref().map(|p| policy(PolicyKind::Resource, p)),
            boundary: s.boundary.as_ref().map(|p| policy(PolicyKind::Identity, p)),
            session: s.session.iter().map(|p| policy(PolicyKind::Session, p)).collect(),
            required: s.required,
        }
    }

    fn decide(&self, request: &RequestContext) -> Decision {
        let set = PolicySet {
            identity: &self.identity,
            resource: self.resource.as_ref(),
            permissions_boundary: self.boundary.as_ref(),
            session: &self.session,
            resource_policy_required: self.required,
        };
        evaluate(request, set).decision
    }
}

/// Inserts `extra` into one of the scenario's existing policies (chosen by
/// `slot`), or as a new identity policy when `slot` points past them.
fn with_statement(s: &Scenario, extra: &Stmt, slot: usize) -> Scenario {
    let mut s = s.clone();
    let mut targets: Vec<&mut Vec<Stmt>> = s.identity.iter_mut().collect();
    targets.extend(s.resource.as_mut());
    targets.extend(s.boundary.as_mut());
    targets.extend(s.session.iter_mut());
    let count = targets.len();
    if slot % (count + 1) == count {
        s.identity.push(vec![extra.clone()]);
    } else {
        let target = &mut targets[slot % (count + 1)];
        let at = slot % (target.len() + 1);
        target.insert(at, extra.clone());
    }
    s
}

fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut items = items.to_vec();
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn adding_a_deny_never_grants(s in scenario(), extra in stmt(Just(false)), slot in 0..16usize) {
        let request = build_request(&s);
        let before = Built::new(&s).decide(&request);
        let after = Built::new(&with_statement(&s, &extra, slot)).decide(&request);
        if before != Decision::Allow {
            prop_assert_ne!(after, Decision::Allow);
        }
        if before == Decision::ExplicitDeny {
            prop_assert_eq!(after, Decision::ExplicitDeny);
        }
    }

    #[test]
    fn adding_an_allow_never_denies(s in scenario(), extra in stmt(Just(true)), slot in 0..16usize) {
        let request = build_request(&s);
        let before = Built::new(&s).decide(&request);
        let after = Built::new(&with_statement(&s, &extra, slot)).decide(&request);
        if before == Decision::Allow {
            prop_assert_eq!(after, Decision::Allow);
        }
        if before == Decision::ExplicitDeny {
            prop_assert_eq!(after, Decision::ExplicitDeny);
        }
    }

    #[test]
    fn order_never_matters(s in scenario(), seed in any::<u64>()) {
        let request = build_request(&s);
        let before = Built::new(&s).decide(&request);
        let mut reordered = s.clone();
        reordered.identity = shuffled(&s.identity, seed).iter().enumerate()
            .map(|(i, p)| shuffled(p, seed.rotate_left(i as u32 + 1))).collect();
        reordered.session = shuffled(&s.session, seed ^ 0x5555).iter()
            .map(|p| shuffled(p, seed ^ 0xaaaa)).collect();
        reordered.resource = s.resource.as_ref().map(|p| shuffled(p, seed ^ 1));
        reordered.boundary = s.boundary.as_ref().map(|p| shuffled(p, seed ^ 2));
        prop_assert_eq!(Built::new(&reordered).decide(&request), before);
    }

    #[test]
    fn simulate_agrees_with_evaluate(s in scenario()) {
        let request = build_request(&s);
        let built = Built::new(&s);
        let set = PolicySet {
            identity: &built.identity,
            resource: built.resource.as_ref(),
            permissions_boundary: built.boundary.as_ref(),
            session: &built.session,
            resource_policy_required: built.required,
        };
        let simulation = tumbler_iam::simulate(&request, set);
        let evaluation = evaluate(&request, set);
        prop_assert_eq!(simulation.evaluation.decision, evaluation.decision);
        prop_assert_eq!(simulation.evaluation.missing_allow, evaluation.missing_allow);
        // Every deciding statement is one the trace saw match.
        for deciding in &evaluation.statements {
            let seen = simulation.matched_statements().any(|m| {
                m.policy_type == deciding.policy_type && std::ptr::eq(m.policy, deciding.policy) && m.index == deciding.index
            });
            prop_assert!(seen, "deciding statement {} not in the trace", deciding);
        }
    }
}
