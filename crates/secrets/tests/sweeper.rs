//! The sweeper purges a secret only once its recovery window has ended, and
//! its name is free again afterwards.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tumbler_secrets::{Ctx, SecretsService};

fn service(dir: &std::path::Path) -> SecretsService {
    let store: Arc<dyn tumbler_store::Store> = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
    let root = tumbler_crypto::MasterKey::from_bytes(&[7; 32]).unwrap();
    let kms = Arc::new(tumbler_kms::Kms::new(store.clone(), &root));
    SecretsService::new(store, kms)
}

fn ctx(now: Timestamp) -> Ctx {
    Ctx::new(
        "000000000000",
        "us-east-1",
        "arn:aws:iam::000000000000:user/admin",
        now,
        Arc::new(tumbler_secrets::AllowAll),
    )
}

#[test]
fn purge_after_the_window_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let now = Timestamp::now();
    let token = "11111111-2222-3333-4444-555555555555";
    s.call(
        &mut ctx(now),
        "CreateSecret",
        format!(r#"{{"Name":"old","SecretString":"v","ClientRequestToken":"{token}"}}"#).as_bytes(),
    )
    .unwrap();
    let deleted = s
        .call(
            &mut ctx(now),
            "DeleteSecret",
            br#"{"SecretId":"old","RecoveryWindowInDays":7}"#,
        )
        .unwrap();
    let deleted: serde_json::Value = serde_json::from_slice(&deleted).unwrap();
    let deletion = deleted["DeletionDate"].as_f64().unwrap();
    assert!((deletion - (now.as_second() as f64 + 7.0 * 86400.0)).abs() < 5.0);

    assert_eq!(
        s.purge_due(now + SignedDuration::from_hours(6 * 24), &|_| None)
            .unwrap(),
        0
    );
    let e = s.call(&mut ctx(now), "CreateSecret", br#"{"Name":"old"}"#).unwrap_err();
    assert_eq!(e.code, "InvalidRequestException");
    assert!(
        s.call(&mut ctx(now), "DescribeSecret", br#"{"SecretId":"old"}"#)
            .is_ok()
    );

    assert_eq!(
        s.purge_due(now + SignedDuration::from_hours(8 * 24), &|_| None)
            .unwrap(),
        1
    );
    let e = s
        .call(&mut ctx(now), "DescribeSecret", br#"{"SecretId":"old"}"#)
        .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException");
    s.call(&mut ctx(now), "CreateSecret", br#"{"Name":"old"}"#).unwrap();
}

/// PutSecretValue version `i` of the secret `busy`, at time `at`.
fn put_version(s: &SecretsService, at: Timestamp, i: u32) {
    let body = format!(
        r#"{{"SecretId":"busy","SecretString":"v{i}","ClientRequestToken":"00000000-0000-0000-0000-{i:012}"}}"#
    );
    s.call(&mut ctx(at), "PutSecretValue", body.as_bytes()).unwrap();
}

#[test]
fn the_version_quota_keeps_a_days_versions_and_cleans_older_unlabelled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let start = Timestamp::now() - SignedDuration::from_hours(48);
    s.call(
        &mut ctx(start),
        "CreateSecret",
        br#"{"Name":"busy","SecretString":"v0","ClientRequestToken":"00000000-0000-0000-0000-000000000000"}"#,
    )
    .unwrap();
    // 99 more versions two days ago: the secret holds 100 versions.
    for i in 1..100 {
        put_version(&s, start, i);
    }
    // Now: writing more removes the oldest unlabelled versions.
    let now = Timestamp::now();
    for i in 100..150 {
        put_version(&s, now, i);
    }
    let all = s
        .call(
            &mut ctx(now),
            "ListSecretVersionIds",
            br#"{"SecretId":"busy","IncludeDeprecated":true}"#,
        )
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&all).unwrap();
    assert_eq!(all["Versions"].as_array().unwrap().len(), 100);
    let first = s
        .call(
            &mut ctx(now),
            "GetSecretValue",
            br#"{"SecretId":"busy","VersionId":"00000000-0000-0000-0000-000000000000"}"#,
        )
        .unwrap_err();
    assert_eq!(first.code, "ResourceNotFoundException");
    // 100 versions all younger than a day: AWS's quota refuses the 101st.
    for i in 150..200 {
        put_version(&s, now, i);
    }
    let body = r#"{"SecretId":"busy","SecretString":"x","ClientRequestToken":"00000000-0000-0000-0000-999999999999"}"#;
    let e = s.call(&mut ctx(now), "PutSecretValue", body.as_bytes()).unwrap_err();
    assert_eq!(e.code, "LimitExceededException");
}
