//! Arbitrary form bodies as IAM and STS Query calls by the administrator,
//! run against a real store: the handlers must never panic, and a client's
//! input must never get a 5xx (every failure is one of AWS's client errors).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tumbler_crypto::MasterKey;
use tumbler_identity::{Call, Identity, Principal, RequestInfo};
use tumbler_store::SqliteStore;

const STS_ACTIONS: &[&str] = &["GetCallerIdentity", "GetSessionToken", "AssumeRole"];
const IAM_ACTIONS: &[&str] = &[
    "CreateUser",
    "GetUser",
    "ListUsers",
    "DeleteUser",
    "TagUser",
    "UntagUser",
    "ListUserTags",
    "TagRole",
    "UntagRole",
    "ListRoleTags",
    "CreateAccessKey",
    "ListAccessKeys",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "PutUserPolicy",
    "GetUserPolicy",
    "ListUserPolicies",
    "DeleteUserPolicy",
    "PutRolePolicy",
    "GetRolePolicy",
    "ListRolePolicies",
    "DeleteRolePolicy",
    "CreatePolicy",
    "GetPolicy",
    "ListPolicies",
    "DeletePolicy",
    "CreatePolicyVersion",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "ListAttachedUserPolicies",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "ListAttachedRolePolicies",
    "CreateRole",
    "GetRole",
    "ListRoles",
    "DeleteRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "SimulatePrincipalPolicy",
    "PutUserPermissionsBoundary",
    "DeleteUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "CreateGroup",
    "GetGroup",
    "ListGroups",
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "ListGroupsForUser",
    "PutGroupPolicy",
    "GetGroupPolicy",
    "ListGroupPolicies",
    "DeleteGroupPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "ListAttachedGroupPolicies",
    "CreateVirtualMFADevice",
    "EnableMFADevice",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "ListMFADevices",
    "ListVirtualMFADevices",
];

struct Fixture {
    identity: Identity,
    admin: Arc<Principal>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join("tumbler-fuzz-iam-sts");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = Arc::new(SqliteStore::open(&dir.join("fuzz.db")).expect("store"));
        let identity = Identity::new(store, &MasterKey::from_bytes(&[7; 32]).expect("root key"));
        let akid = "AKIAFUZZFUZZFUZZFUZZ";
        let secret = tumbler_identity::new_secret_access_key().expect("secret");
        identity.ensure_bootstrap("000000000000", akid, &secret).expect("bootstrap");
        let (admin, _) = identity
            .signing_key(akid, "20260101", "us-east-1", "iam")
            .expect("lookup")
            .expect("admin key");
        Fixture { identity, admin }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let all = IAM_ACTIONS.len() + STS_ACTIONS.len();
    let index = selector as usize % all;
    let (action, sts) = match index.checked_sub(IAM_ACTIONS.len()) {
        Some(i) => (STS_ACTIONS[i], true),
        None => (IAM_ACTIONS[index], false),
    };
    let mut params = tumbler_wire::query::parse_params(None, body);
    params.insert("Action".into(), action.into());
    let f = fixture();
    let call = Call {
        caller: &f.admin,
        request: RequestInfo {
            now: jiff::Timestamp::now(),
            source_ip: None,
            secure_transport: true,
        },
        request_id: "fuzz",
        params: &params,
        journal: None,
    };
    let result = if sts {
        f.identity.sts_call(&call)
    } else {
        f.identity.iam_call(&call)
    };
    if let Err(e) = result {
        assert!(e.status < 500, "{action}: {} {}", e.code, e.message);
    }
});
