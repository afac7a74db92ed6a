//! The scheduler with a driven clock: a rotation due while the server was
//! down runs once when it is back, not once per missed window; a claimed
//! run is held by its lease and taken over, with its token, once the lease
//! lapses (a crashed node).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tumbler_rotation::{Engine, Rotator, Rotators};
use tumbler_secrets::{Ctx, RotationOutcome, SecretsService};

fn service(dir: &std::path::Path) -> Arc<SecretsService> {
    let store: Arc<dyn tumbler_store::Store> = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
    let master = tumbler_crypto::MasterKey::from_bytes(&[7; 32]).unwrap();
    let kms = Arc::new(tumbler_kms::Kms::new(store.clone(), &master));
    Arc::new(SecretsService::new(store, kms))
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

fn call(s: &SecretsService, now: Timestamp, op: &str, body: &str) -> serde_json::Value {
    serde_json::from_slice(&s.call(&mut ctx(now), op, body.as_bytes()).unwrap()).unwrap()
}

fn current_version(s: &SecretsService, now: Timestamp) -> String {
    let d = call(s, now, "DescribeSecret", r#"{"SecretId":"db"}"#);
    d["VersionIdsToStages"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| v.as_array().unwrap().iter().any(|s| s == "AWSCURRENT"))
        .map(|(k, _)| k.clone())
        .unwrap()
}

const LEASE: std::time::Duration = std::time::Duration::from_millis(tumbler_secrets::ROTATION_LEASE_MS as u64);

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

#[test]
fn missed_windows_rotate_once_and_leases_hold() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let engine = Engine::new(s.clone(), Arc::new(Rotators::builtin()), Arc::new(|_, _| None));
    let t0: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    call(
        &s,
        t0,
        "CreateSecret",
        r#"{"Name":"db","SecretString":"{\"password\":\"p0\"}","ClientRequestToken":"00000000-0000-0000-0000-000000000001"}"#,
    );
    let rotate = r#"{"SecretId":"db","ClientRequestToken":"00000000-0000-0000-0000-000000000002",
        "RotationLambdaARN":"arn:aws:lambda:::function:tumbler-random-password",
        "RotationRules":{"ScheduleExpression":"rate(1 days)"}}"#;
    call(&s, t0, "RotateSecret", rotate);

    // The immediate rotation.
    let due = s.rotations_due(t0, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(engine.rotate_one_at(due[0], t0), Some(RotationOutcome::Succeeded));
    assert_eq!(current_version(&s, t0), "00000000-0000-0000-0000-000000000002");
    let d = call(&s, t0, "DescribeSecret", r#"{"SecretId":"db"}"#);
    let due_by: Timestamp = "2026-11-24T23:59:59Z".parse().unwrap();
    assert_eq!(d["NextRotationDate"].as_f64().unwrap() as i64, due_by.as_second());
    // Nothing until the next window opens at midnight.
    assert!(s.rotations_due(t0 + hours(13), 10).unwrap().is_empty());

    // Down for five days: back, the rotation runs once.
    let back = t0 + hours(24 * 5);
    let due = s.rotations_due(back, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(engine.rotate_one_at(due[0], back), Some(RotationOutcome::Succeeded));
    let after = current_version(&s, back);
    assert_ne!(after, "00000000-0000-0000-0000-000000000002");
    assert!(s.rotations_due(back, 10).unwrap().is_empty());
    assert!(s.rotations_due(back + hours(13), 10).unwrap().is_empty());
    assert_eq!(s.rotations_due(back + hours(15), 10).unwrap(), due);

    // A claim holds the run: a second claimer finds nothing, until the
    // lease lapses; then the same token is taken over.
    let later = back + hours(15);
    let first = s.claim_rotation(due[0], later, LEASE).unwrap().expect("claimed");
    assert!(
        s.claim_rotation(due[0], later + SignedDuration::from_secs(10), LEASE)
            .unwrap()
            .is_none()
    );
    let lapsed = later + SignedDuration::from_millis(tumbler_secrets::ROTATION_LEASE_MS + 1);
    let second = s.claim_rotation(due[0], lapsed, LEASE).unwrap().expect("taken over");
    assert_eq!(first.token, second.token);
    assert!(
        s.claim_rotation(due[0], lapsed + SignedDuration::from_secs(10), LEASE)
            .unwrap()
            .is_none()
    );
    // Its claimer crashed too; the next one runs the run to the end, with
    // the token the first claim began.
    let finally = lapsed + SignedDuration::from_millis(tumbler_secrets::ROTATION_LEASE_MS + 1);
    assert_eq!(engine.rotate_one_at(due[0], finally), Some(RotationOutcome::Succeeded));
    assert_eq!(current_version(&s, finally), first.token);
}

/// A rotator whose setSecret always fails, as a target that refuses the
/// new credential would.
struct RefusingTarget;

impl Rotator for RefusingTarget {
    fn arn(&self) -> &str {
        "arn:aws:lambda:::function:refusing"
    }
    fn description(&self) -> &str {
        "fails at setSecret"
    }
    fn step(
        &self,
        step: tumbler_rotation::Step,
        call: &tumbler_rotation::StepCall<'_>,
    ) -> Result<(), tumbler_rotation::StepError> {
        match step {
            tumbler_rotation::Step::SetSecret => Err(tumbler_rotation::StepError("the target refused it".into())),
            other => tumbler_rotation::RandomPassword.step(other, call),
        }
    }
}

#[test]
fn a_rotation_failing_every_attempt_is_given_up_and_marked_failing() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let mut rotators = Rotators::builtin();
    rotators.add(Arc::new(RefusingTarget));
    let engine = Engine::new(s.clone(), Arc::new(rotators), Arc::new(|_, _| None));
    let t0: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    call(
        &s,
        t0,
        "CreateSecret",
        r#"{"Name":"db","SecretString":"{\"password\":\"p0\"}","ClientRequestToken":"00000000-0000-0000-0000-000000000001"}"#,
    );
    call(
        &s,
        t0,
        "RotateSecret",
        r#"{"SecretId":"db","ClientRequestToken":"00000000-0000-0000-0000-000000000002",
            "RotationLambdaARN":"arn:aws:lambda:::function:refusing",
            "RotationRules":{"ScheduleExpression":"rate(1 days)"}}"#,
    );
    let status = |now| call(&s, now, "DescribeSecret", r#"{"SecretId":"db"}"#)["TumblerRotationStatus"].clone();
    assert_eq!(status(t0)["State"], "Rotating");
    let id = s.rotations_due(t0, 10).unwrap()[0];

    let mut now = t0;
    for attempt in 1..tumbler_secrets::MAX_ROTATION_ATTEMPTS {
        assert_eq!(engine.rotate_one_at(id, now), Some(RotationOutcome::WillRetry));
        let st = status(now);
        assert_eq!(st["State"], "Retrying");
        assert_eq!(st["Attempts"], attempt);
        assert_eq!(st["LastError"]["Step"], "setSecret");
        assert_eq!(st["LastError"]["Message"], "the target refused it");
        assert_eq!(st["VersionId"], "00000000-0000-0000-0000-000000000002");
        let retry_at = Timestamp::from_second(st["NextAttemptDate"].as_f64().unwrap() as i64).unwrap();
        // Backoff: not due again before the next attempt's time.
        assert!(
            s.rotations_due(retry_at - SignedDuration::from_secs(1), 10)
                .unwrap()
                .is_empty()
        );
        let counts = s.rotation_counts().unwrap();
        assert_eq!((counts.running, counts.retrying, counts.failed), (1, 1, 0));
        now = retry_at + SignedDuration::from_secs(1);
    }
    assert_eq!(engine.rotate_one_at(id, now), Some(RotationOutcome::Abandoned));

    // Given up: marked failing, AWSCURRENT untouched, nothing due until the
    // next scheduled window.
    let st = status(now);
    assert_eq!(st["State"], "Failed");
    assert_eq!(st["Attempts"], tumbler_secrets::MAX_ROTATION_ATTEMPTS);
    assert_eq!(st["LastError"]["Step"], "setSecret");
    assert_eq!(current_version(&s, now), "00000000-0000-0000-0000-000000000001");
    let value = call(&s, now, "GetSecretValue", r#"{"SecretId":"db"}"#);
    assert_eq!(value["SecretString"], r#"{"password":"p0"}"#);
    assert!(s.rotations_due(now, 10).unwrap().is_empty());
    let counts = s.rotation_counts().unwrap();
    assert_eq!(
        counts,
        tumbler_store::RotationCounts {
            enabled: 1,
            running: 0,
            retrying: 0,
            failed: 1
        }
    );
    let outcomes = engine.outcomes();
    assert_eq!(outcomes.will_retry.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(outcomes.abandoned.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(outcomes.succeeded.load(std::sync::atomic::Ordering::Relaxed), 0);
}
