//! Every operation asks the authorizer, with AWS's action name, the secret's
//! ARN (or `*`), the request's and the secret's condition keys and the
//! secret's resource policy; a denial stops the operation, and a missing
//! secret is only reported to callers who may see it.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tumbler_iam::{ContextKeys, NamedPolicy};
use tumbler_secrets::{Authorizer, Ctx, SecretsService};
use tumbler_wire::AwsError;

/// Records every question; denies the actions/resources it is told to.
#[derive(Default)]
struct Recorder {
    asked: Mutex<Vec<(String, String, ContextKeys, bool)>>,
    deny: Mutex<Vec<(String, String)>>,
}

impl Authorizer for Recorder {
    fn authorize(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        resource_policy: Option<&NamedPolicy>,
    ) -> Result<(), AwsError> {
        self.asked
            .lock()
            .unwrap()
            .push((action.to_owned(), resource.to_owned(), keys, resource_policy.is_some()));
        let denied = self
            .deny
            .lock()
            .unwrap()
            .iter()
            .any(|(a, r)| a == action && (r == "*" || resource.starts_with(r.as_str())));
        if denied {
            Err(AwsError::access_denied(format!("denied {action} on {resource}")))
        } else {
            Ok(())
        }
    }
    fn authorize_key(
        &self,
        action: &str,
        key_arn: &str,
        keys: ContextKeys,
        key_policy: &NamedPolicy,
        _granted: bool,
    ) -> Result<(), AwsError> {
        self.authorize(action, key_arn, keys, Some(key_policy))
    }
    fn grantee_arns(&self) -> Vec<String> {
        vec!["arn:aws:iam::000000000000:user/recorder".into()]
    }
}

impl Recorder {
    fn last(&self) -> (String, String, ContextKeys, bool) {
        self.asked.lock().unwrap().last().cloned().unwrap()
    }
    /// The question asked `n` before the last one.
    fn before_last(&self, n: usize) -> (String, String, ContextKeys, bool) {
        let asked = self.asked.lock().unwrap();
        asked[asked.len() - 1 - n].clone()
    }
    fn deny(&self, action: &str, resource_prefix: &str) {
        self.deny
            .lock()
            .unwrap()
            .push((action.to_owned(), resource_prefix.to_owned()));
    }
}

fn setup(dir: &std::path::Path) -> (SecretsService, Arc<Recorder>, Ctx) {
    let store: Arc<dyn tumbler_store::Store> = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
    let root = tumbler_crypto::MasterKey::from_bytes(&[7; 32]).unwrap();
    let kms = Arc::new(tumbler_kms::Kms::new(store.clone(), &root));
    let recorder = Arc::new(Recorder::default());
    let ctx = Ctx::new(
        "000000000000",
        "us-east-1",
        "arn:aws:iam::000000000000:user/alice",
        Timestamp::now(),
        recorder.clone(),
    );
    (SecretsService::new(store, kms), recorder, ctx)
}

fn value(keys: &ContextKeys, key: &str) -> Vec<String> {
    keys.get(key)
        .map(|v| v.values().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[test]
fn reads_are_checked_on_the_secret_with_its_keys_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec, ctx) = setup(dir.path());
    let created = s
        .call(
            &mut ctx.clone(),
            "CreateSecret",
            br#"{"Name":"app/db","SecretString":"v","ClientRequestToken":"11111111-2222-3333-4444-555555555555","Tags":[{"Key":"team","Value":"red"}]}"#,
        )
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&created).unwrap();
    let arn = created["ARN"].as_str().unwrap().to_owned();
    let (action, resource, keys, _) = rec.before_last(1);
    assert_eq!(action, "secretsmanager:CreateSecret");
    assert_eq!(resource, arn);
    assert_eq!(value(&keys, "secretsmanager:Name"), ["app/db"]);
    assert_eq!(value(&keys, "aws:RequestTag/team"), ["red"]);
    assert_eq!(value(&keys, "aws:TagKeys"), ["team"]);
    // Tags at creation also need TagResource, with the same request tags.
    let (action, resource, keys, _) = rec.last();
    assert_eq!(action, "secretsmanager:TagResource");
    assert_eq!(resource, arn);
    assert_eq!(value(&keys, "aws:RequestTag/team"), ["red"]);

    s.call(&mut ctx.clone(), "GetSecretValue", br#"{"SecretId":"app/db"}"#)
        .unwrap();
    let (action, resource, keys, has_policy) = rec.last();
    assert_eq!(action, "secretsmanager:GetSecretValue");
    assert_eq!(resource, arn);
    assert_eq!(value(&keys, "secretsmanager:SecretId"), ["app/db"]);
    assert_eq!(value(&keys, "secretsmanager:VersionStage"), ["AWSCURRENT"]);
    assert_eq!(value(&keys, "secretsmanager:ResourceTag/team"), ["red"]);
    assert_eq!(value(&keys, "aws:ResourceTag/team"), ["red"]);
    assert!(!has_policy);

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let body = serde_json::json!({"SecretId": "app/db", "ResourcePolicy": policy}).to_string();
    s.call(&mut ctx.clone(), "PutResourcePolicy", body.as_bytes()).unwrap();
    assert_eq!(rec.last().0, "secretsmanager:PutResourcePolicy");
    s.call(&mut ctx.clone(), "GetSecretValue", br#"{"SecretId":"app/db"}"#)
        .unwrap();
    assert!(rec.last().3, "the secret's resource policy is passed to the authorizer");

    s.call(&mut ctx.clone(), "ListSecrets", b"{}").unwrap();
    let (action, resource, _, _) = rec.last();
    assert_eq!(
        (action.as_str(), resource.as_str()),
        ("secretsmanager:ListSecrets", "*")
    );
}

#[test]
fn denials_stop_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec, ctx) = setup(dir.path());
    s.call(
        &mut ctx.clone(),
        "CreateSecret",
        br#"{"Name":"keep","SecretString":"v1","ClientRequestToken":"11111111-2222-3333-4444-555555555555"}"#,
    )
    .unwrap();
    rec.deny("secretsmanager:PutSecretValue", "*");
    let e = s
        .call(
            &mut ctx.clone(),
            "PutSecretValue",
            br#"{"SecretId":"keep","SecretString":"v2","ClientRequestToken":"21111111-2222-3333-4444-555555555555"}"#,
        )
        .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    let v = s
        .call(&mut ctx.clone(), "GetSecretValue", br#"{"SecretId":"keep"}"#)
        .unwrap();
    assert!(String::from_utf8(v).unwrap().contains(r#""SecretString":"v1""#));

    rec.deny("secretsmanager:DeleteSecret", "*");
    let e = s
        .call(
            &mut ctx.clone(),
            "DeleteSecret",
            br#"{"SecretId":"keep","ForceDeleteWithoutRecovery":true}"#,
        )
        .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    assert_eq!(
        value(&rec.last().2, "secretsmanager:ForceDeleteWithoutRecovery"),
        ["true"]
    );
    assert!(
        s.call(&mut ctx.clone(), "DescribeSecret", br#"{"SecretId":"keep"}"#)
            .is_ok()
    );
}

#[test]
fn missing_secrets_are_only_reported_to_callers_who_may_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec, ctx) = setup(dir.path());
    let e = s
        .call(&mut ctx.clone(), "GetSecretValue", br#"{"SecretId":"nope"}"#)
        .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(
        rec.last().1,
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:nope"
    );

    rec.deny("secretsmanager:GetSecretValue", "*");
    let e = s
        .call(&mut ctx.clone(), "GetSecretValue", br#"{"SecretId":"nope"}"#)
        .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
}

#[test]
fn batch_get_needs_get_secret_value_on_each_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec, ctx) = setup(dir.path());
    for (name, token) in [
        ("open", "11111111-2222-3333-4444-555555555555"),
        ("closed", "21111111-2222-3333-4444-555555555555"),
    ] {
        let body = serde_json::json!({"Name": name, "SecretString": "v", "ClientRequestToken": token}).to_string();
        s.call(&mut ctx.clone(), "CreateSecret", body.as_bytes()).unwrap();
    }
    rec.deny(
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:closed",
    );
    let out = s
        .call(
            &mut ctx.clone(),
            "BatchGetSecretValue",
            br#"{"SecretIdList":["open","closed"]}"#,
        )
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["SecretValues"].as_array().unwrap().len(), 1);
    assert_eq!(out["SecretValues"][0]["Name"], "open");
    assert_eq!(out["Errors"][0]["SecretId"], "closed");
    assert_eq!(out["Errors"][0]["ErrorCode"], "AccessDeniedException");

    rec.deny("secretsmanager:BatchGetSecretValue", "*");
    let e = s
        .call(&mut ctx.clone(), "BatchGetSecretValue", br#"{"SecretIdList":["open"]}"#)
        .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
}
