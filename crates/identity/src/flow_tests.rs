//! IAM and STS end to end inside the crate: the Query API, authorization,
//! and session tokens checked at an injected time.

use std::sync::Arc;

use tumbler_crypto::MasterKey;

use crate::*;

struct Fixture {
    identity: Identity,
    admin: Arc<Principal>,
    _dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("tumbler-identity-flow-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
    let identity = Identity::new(store, &MasterKey::from_bytes(&[5; 32]).unwrap());
    let akid = new_access_key_id().unwrap();
    identity
        .ensure_bootstrap("000000000000", &akid, &new_secret_access_key().unwrap())
        .unwrap();
    let (admin, _) = identity
        .signing_key(&akid, "20261123", "us-east-1", "iam")
        .unwrap()
        .unwrap();
    Fixture {
        identity,
        admin,
        _dir: dir,
    }
}

fn request(now: jiff::Timestamp) -> RequestInfo {
    RequestInfo {
        now,
        source_ip: Some("127.0.0.1".parse().unwrap()),
        secure_transport: false,
    }
}

fn call(
    f: &Fixture,
    caller: &Principal,
    service: &str,
    params: &[(&str, &str)],
) -> Result<String, tumbler_wire::AwsError> {
    let params: Params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let c = Call {
        caller,
        request: request(jiff::Timestamp::now()),
        request_id: "rid",
        params: &params,
        journal: None,
    };
    let out = if service == "iam" {
        f.identity.iam_call(&c)
    } else {
        f.identity.sts_call(&c)
    };
    out.map(|b| String::from_utf8(b).unwrap())
}

fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

fn user_principal(f: &Fixture, name: &str) -> Arc<Principal> {
    call(f, &f.admin, "iam", &[("Action", "CreateUser"), ("UserName", name)]).unwrap();
    let key = call(f, &f.admin, "iam", &[("Action", "CreateAccessKey"), ("UserName", name)]).unwrap();
    let akid = element(&key, "AccessKeyId").to_owned();
    f.identity
        .signing_key(&akid, "20261123", "us-east-1", "sts")
        .unwrap()
        .unwrap()
        .0
}

#[test]
fn admin_is_allowed_and_a_new_user_is_not() {
    let f = fixture("authz");
    let now = request(jiff::Timestamp::now());
    let any = f
        .identity
        .authorize(
            &f.admin,
            "secretsmanager:GetSecretValue",
            "arn:x",
            &now,
            ContextKeys::new(),
            None,
        )
        .unwrap();
    assert!(any.is_allowed());
    let bob = user_principal(&f, "bob");
    let denied = f
        .identity
        .authorize(&bob, "iam:ListUsers", "*", &now, ContextKeys::new(), None)
        .unwrap();
    assert_eq!(denied.decision, Decision::ImplicitDeny);
    assert_eq!(
        denied.message,
        "User: arn:aws:iam::000000000000:user/bob is not authorized to perform: iam:ListUsers on resource: * \
         because no identity-based policy allows the iam:ListUsers action"
    );
    // A policy change through the API is seen at once (the cache is dropped).
    call(
        &f,
        &f.admin,
        "iam",
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "bob"),
            ("PolicyName", "p"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"},"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}"#,
            ),
        ],
    )
    .unwrap();
    let allowed = f
        .identity
        .authorize(&bob, "iam:ListUsers", "*", &now, ContextKeys::new(), None)
        .unwrap();
    assert!(allowed.is_allowed(), "{}", allowed.message);
    // Explanations are only built for denials (they cost more than the decision).
    assert!(allowed.statements.is_empty() && allowed.message.is_empty());
    // Over TLS the condition fails.
    let tls = RequestInfo {
        secure_transport: true,
        ..now
    };
    assert!(
        !f.identity
            .authorize(&bob, "iam:ListUsers", "*", &tls, ContextKeys::new(), None)
            .unwrap()
            .is_allowed()
    );
}

#[test]
fn assumed_role_sessions_expire() {
    let f = fixture("sts");
    let alice = user_principal(&f, "alice");
    call(
        &f,
        &f.admin,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("RoleName", "reader"),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/alice"},"Action":"sts:AssumeRole"}]}"#,
            ),
        ],
    )
    .unwrap();
    let out = call(
        &f,
        &alice,
        "sts",
        &[
            ("Action", "AssumeRole"),
            ("RoleArn", "arn:aws:iam::000000000000:role/reader"),
            ("RoleSessionName", "s1"),
            ("DurationSeconds", "900"),
        ],
    )
    .unwrap();
    let akid = element(&out, "AccessKeyId");
    let token = element(&out, "SessionToken");
    assert!(akid.starts_with("ASIA"));
    let now = jiff::Timestamp::now();
    let lookup = |at: jiff::Timestamp, key: &str| {
        f.identity
            .session_signing_key(token, key, "20261123", "us-east-1", "sts", at)
    };
    match lookup(now, akid) {
        SessionLookup::Found((p, _)) => {
            assert_eq!(p.arn, "arn:aws:sts::000000000000:assumed-role/reader/s1");
            assert!(p.user_id.starts_with("AROA") && p.user_id.ends_with(":s1"));
        }
        _ => panic!("a fresh session must be found"),
    }
    let later = now + jiff::SignedDuration::from_secs(901);
    assert!(matches!(lookup(later, akid), SessionLookup::Expired));
    assert!(matches!(lookup(now, "ASIAAAAAAAAAAAAAAAAA"), SessionLookup::Invalid));
    // Bob is not trusted.
    let bob = user_principal(&f, "bob");
    let denied = call(
        &f,
        &bob,
        "sts",
        &[
            ("Action", "AssumeRole"),
            ("RoleArn", "arn:aws:iam::000000000000:role/reader"),
            ("RoleSessionName", "s1"),
        ],
    )
    .unwrap_err();
    assert_eq!(denied.code, "AccessDenied");
    assert_eq!(
        denied.message,
        "User: arn:aws:iam::000000000000:user/bob is not authorized to perform: sts:AssumeRole on resource: \
         arn:aws:iam::000000000000:role/reader"
    );
}

#[test]
fn inactive_and_deleted_keys_stop_working() {
    let f = fixture("keys");
    call(&f, &f.admin, "iam", &[("Action", "CreateUser"), ("UserName", "carol")]).unwrap();
    let key = call(
        &f,
        &f.admin,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", "carol")],
    )
    .unwrap();
    let akid = element(&key, "AccessKeyId").to_owned();
    assert!(
        f.identity
            .signing_key(&akid, "20261123", "us-east-1", "sts")
            .unwrap()
            .is_some()
    );
    let update = [
        ("Action", "UpdateAccessKey"),
        ("UserName", "carol"),
        ("AccessKeyId", akid.as_str()),
        ("Status", "Inactive"),
    ];
    call(&f, &f.admin, "iam", &update).unwrap();
    assert!(
        f.identity
            .signing_key(&akid, "20261123", "us-east-1", "sts")
            .unwrap()
            .is_none()
    );
    call(
        &f,
        &f.admin,
        "iam",
        &[
            ("Action", "DeleteAccessKey"),
            ("UserName", "carol"),
            ("AccessKeyId", akid.as_str()),
        ],
    )
    .unwrap();
    assert!(
        f.identity
            .signing_key(&akid, "20261123", "us-east-1", "sts")
            .unwrap()
            .is_none()
    );
    let err = call(&f, &f.admin, "iam", &[("Action", "Nope")]).unwrap_err();
    assert_eq!(err.code, "UnknownOperationException");
}
