//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use tumbler_iam::{
    ContextKeys, Decision, Evaluation, NamedPolicy, Policy, PolicyKind, PolicySet, Principal, RequestContext, evaluate,
    parse_policy,
};

pub const ACCOUNT: &str = "123456789012";
pub const OTHER: &str = "111122223333";
pub const GET: &str = "secretsmanager:GetSecretValue";

pub fn parse(kind: PolicyKind, document: &str) -> Policy {
    parse_policy(document, kind).unwrap_or_else(|e| panic!("{e}\n{document}"))
}

pub fn identity(document: &str) -> Policy {
    parse(PolicyKind::Identity, document)
}

pub fn named(name: &str, policy: Policy) -> NamedPolicy {
    NamedPolicy::new(name, policy)
}

/// A one-statement 2012-10-17 identity policy.
pub fn allow(action: &str, resource: &str) -> NamedPolicy {
    named(
        "allow",
        identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}}}"#
        )),
    )
}

pub fn deny(action: &str, resource: &str) -> NamedPolicy {
    named(
        "deny",
        identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Deny","Action":"{action}","Resource":"{resource}"}}}}"#
        )),
    )
}

/// A one-statement resource policy with the given principal JSON.
pub fn resource_policy(effect: &str, principal: &str, action: &str) -> NamedPolicy {
    named(
        "secret-policy",
        parse(
            PolicyKind::Resource,
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"{effect}","Principal":{principal},"Action":"{action}","Resource":"*"}}}}"#
            ),
        ),
    )
}

pub fn user(account: &str, name: &str) -> Principal {
    Principal::user(
        &format!("arn:aws:iam::{account}:user/{name}"),
        &format!("AIDA{}", name.to_uppercase()),
    )
    .unwrap()
}

pub fn alice() -> Principal {
    user(ACCOUNT, "alice")
}

pub fn session(account: &str, role: &str, session: &str) -> Principal {
    Principal::assumed_role(&format!("arn:aws:iam::{account}:role/{role}"), session, "AROAEXAMPLE").unwrap()
}

pub fn secret(account: &str, name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:{account}:secret:{name}-AbCdEf")
}

pub fn request(principal: Principal, action: &str, resource: &str) -> RequestContext {
    RequestContext::new(principal, action, resource)
}

pub fn decide<'a>(request: &RequestContext, set: PolicySet<'a>) -> Evaluation<'a> {
    evaluate(request, set)
}

pub fn decision(request: &RequestContext, set: PolicySet<'_>) -> Decision {
    evaluate(request, set).decision
}

/// Context values for condition tables.
#[derive(Clone, Copy, Debug)]
pub enum Val {
    One(&'static str),
    Many(&'static [&'static str]),
}

pub fn fill(keys: &mut ContextKeys, values: &[(&str, Val)]) {
    for (key, value) in values {
        match value {
            Val::One(v) => keys.insert(key, *v),
            Val::Many(vs) => keys.insert_multi(key, vs.iter().copied()),
        }
    }
}
