//! Arbitrary bytes as an identity policy compiled into Kafka ACLs: never a
//! panic (nor a blow-up on hostile globs), every ACL names a resource, the
//! same policy compiles to the same ACLs, and a permissions boundary only
//! ever removes ALLOW ACLs (it may add DENY ones, never an ALLOW).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_iam::{NamedPolicy, ParseOptions, PolicyKind, Principal};
use tumbler_kafka::acl::{ClusterRef, Holder, Permission, compile};

const CLUSTER: ClusterRef<'static> = ClusterRef {
    region: "us-east-1",
    account: "123456789012",
    name: "main",
    id: "0f1e2d3c-aaaa-bbbb-cccc-000000000000",
};

fuzz_target!(|data: &[u8]| {
    let Ok(document) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = ParseOptions::new(PolicyKind::Identity).max_size(20_480).parse(document) else {
        return;
    };
    let policies = [NamedPolicy::new("fuzzed", policy)];
    let principal = Principal::user("arn:aws:iam::123456789012:user/alice", "AIDAALICE").expect("user ARN");
    let holder = |boundary| Holder {
        kafka_name: "alice",
        user_name: Some("alice"),
        principal: principal.clone(),
        identity: &policies,
        boundary,
    };
    let alone = compile(&CLUSTER, &holder(None));
    assert!(alone.acls.iter().all(|a| !a.resource_name.is_empty() && a.principal == "User:alice"));
    assert_eq!(compile(&CLUSTER, &holder(None)).acls, alone.acls);
    let bounded = compile(&CLUSTER, &holder(Some(&policies[0])));
    for acl in bounded.acls.iter().filter(|a| a.permission == Permission::Allow) {
        assert!(alone.acls.contains(acl), "a boundary added {acl}");
    }
});
