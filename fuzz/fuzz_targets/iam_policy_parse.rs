//! Arbitrary bytes as a policy document of every kind: parsing must never
//! panic, errors must say what is wrong, and a policy that parses must
//! evaluate, simulate and explain itself against a fixed request without
//! panicking, with the same decision from `evaluate` and `simulate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_iam::{
    NamedPolicy, ParseOptions, Policy, PolicyKind, PolicySet, Principal, RequestContext, evaluate, exposure, simulate,
};

const ACCOUNT: &str = "123456789012";

fn requests() -> Vec<RequestContext> {
    let alice = Principal::user("arn:aws:iam::123456789012:user/alice", "AIDAALICE")
        .expect("user ARN")
        .with_tags([("team", "red")]);
    let session = Principal::assumed_role("arn:aws:iam::111122223333:role/app", "s", "AROAAPP").expect("role ARN");
    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf";
    let mut requests = vec![
        RequestContext::new(alice, "secretsmanager:GetSecretValue", secret),
        RequestContext::new(session, "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/k"),
        RequestContext::new(
            Principal::root(ACCOUNT),
            "sts:AssumeRole",
            "arn:aws:iam::123456789012:role/r",
        ),
        RequestContext::new(Principal::anonymous(), "s3:GetObject", "*"),
    ];
    for request in &mut requests {
        let keys = &mut request.keys;
        keys.insert("aws:SourceIp", "10.1.2.3");
        keys.insert_bool("aws:SecureTransport", true);
        keys.insert("aws:CurrentTime", "2025-01-01T00:00:00Z");
        keys.insert("aws:EpochTime", "1735689600");
        keys.insert_multi("aws:TagKeys", ["env", "team"]);
        keys.insert("aws:MultiFactorAuthAge", "30");
        keys.insert("secretsmanager:VersionStage", "AWSCURRENT");
        keys.insert("aws:SourceArn", "arn:aws:sns:us-east-1:123456789012:topic");
    }
    requests
}

fn exercise(policy: Policy, requests: &[RequestContext]) {
    let _ = exposure(&policy, ACCOUNT);
    let named = NamedPolicy::new("fuzzed", policy).with_arn("arn:aws:iam::123456789012:policy/fuzzed");
    let one = std::slice::from_ref(&named);
    let sets = [
        PolicySet::identity(one),
        PolicySet {
            resource: Some(&named),
            ..PolicySet::default()
        },
        PolicySet {
            resource: Some(&named),
            resource_policy_required: true,
            ..PolicySet::default()
        },
        PolicySet {
            identity: one,
            permissions_boundary: Some(&named),
            session: one,
            ..PolicySet::default()
        },
    ];
    for request in requests {
        for set in sets {
            let evaluation = evaluate(request, set);
            let simulation = simulate(request, set);
            assert_eq!(evaluation.decision, simulation.evaluation.decision);
            let _ = evaluation.denial_message(&request.principal.arn, &request.action, &request.resource);
            for traced in &simulation.statements {
                let _ = traced.failed_condition();
                let _ = traced.statement.to_string();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(document) = std::str::from_utf8(data) else {
        return;
    };
    let requests = requests();
    for kind in [
        PolicyKind::Identity,
        PolicyKind::Resource,
        PolicyKind::Trust,
        PolicyKind::Session,
    ] {
        match ParseOptions::new(kind).max_size(20_480).parse(document) {
            Ok(policy) => exercise(policy, &requests),
            Err(error) => {
                assert!(!error.message.is_empty());
                let _ = error.to_string();
            }
        }
    }
});
