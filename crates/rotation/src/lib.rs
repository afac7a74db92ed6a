//! The rotation engine. RotateSecret (and the schedule) record a rotation
//! in the secret; the engine claims it, runs the four steps AWS defines
//! (createSecret, setSecret, testSecret, finishSecret) with the rotator the
//! secret names in RotationLambdaARN, and records how it ended: AWSCURRENT
//! moves only after testSecret passed, a failed attempt is retried with
//! backoff, and every outcome is audited as the service's own event.
//!
//! Built-in rotators make the same Secrets Manager calls a rotation Lambda
//! makes, through the same operations, so they keep the same guarantees
//! (idempotent steps, the AWSPENDING placeholder, label moves).

mod command;
mod random_password;
pub mod template;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tumbler_secrets::{ClaimedRotation, Ctx, RotationEnd, RotationOutcome, RotatorNames, SecretsService};
use tumbler_store::{AuditRecord, SecretRow};
use tumbler_wire::AwsError;

pub use command::CommandRotator;
pub use random_password::RandomPassword;
pub use webhook::{WebhookRotator, client_tls_config};

/// The four steps, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

/// One step's failure, in words for DescribeSecret, the log and the audit trail.
#[derive(Debug)]
pub struct StepError(pub String);

impl From<AwsError> for StepError {
    fn from(e: AwsError) -> Self {
        StepError(format!("{}: {}", e.code, e.message))
    }
}

/// What a rotator's step sees: the secret and token, and the Secrets
/// Manager API as the service.
pub struct StepCall<'a> {
    pub secrets: &'a SecretsService,
    pub ctx: Ctx,
    pub secret_arn: &'a str,
    pub token: &'a str,
}

impl StepCall<'_> {
    /// The event a rotation Lambda receives for `step`.
    pub fn event(&self, step: Step) -> serde_json::Value {
        serde_json::json!({
            "Step": step.as_str(),
            "SecretId": self.secret_arn,
            "ClientRequestToken": self.token,
        })
    }

    /// One Secrets Manager operation with a JSON request.
    pub fn call(&self, op: &str, body: serde_json::Value) -> Result<serde_json::Value, AwsError> {
        let out = self
            .secrets
            .call(&mut self.ctx.clone(), op, body.to_string().as_bytes())?;
        serde_json::from_slice(&out).map_err(|_| AwsError::internal("a Secrets Manager answer did not parse"))
    }
}

/// A rotation function.
pub trait Rotator: Send + Sync {
    /// The RotationLambdaARN that selects it.
    fn arn(&self) -> &str;
    /// One line for `tumbler rotators list`.
    fn description(&self) -> &str;
    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError>;
}

/// The rotators this server runs, by RotationLambdaARN.
#[derive(Default)]
pub struct Rotators(BTreeMap<String, Arc<dyn Rotator>>);

impl Rotators {
    /// The built-in rotators.
    pub fn builtin() -> Rotators {
        let mut r = Rotators::default();
        r.add(Arc::new(RandomPassword));
        r
    }

    pub fn add(&mut self, rotator: Arc<dyn Rotator>) {
        self.0.insert(rotator.arn().to_owned(), rotator);
    }

    pub fn get(&self, arn: &str) -> Option<&Arc<dyn Rotator>> {
        self.0.get(arn)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Rotator>> {
        self.0.values()
    }
}

impl RotatorNames for Rotators {
    fn knows(&self, arn: &str) -> bool {
        self.0.contains_key(arn)
    }
}

/// The audit event of an outcome (`RotationSucceeded`, ...), if audited.
pub type OutcomeEvent = dyn Fn(&SecretRow, &str) -> Option<AuditRecord> + Send + Sync;

/// At most this many rotations run at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

pub struct Engine {
    secrets: Arc<SecretsService>,
    /// How long a claim holds a run; renewed at a third of it while the steps run.
    lease: Duration,
    rotators: Arc<Rotators>,
    event: Arc<OutcomeEvent>,
    wake: Arc<tokio::sync::Notify>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Secrets whose rotation a task of ours is running or about to run.
    in_flight: std::sync::Mutex<std::collections::HashSet<i64>>,
    outcomes: OutcomeCounts,
}

/// How this node's rotation attempts ended since it started, for metrics.
#[derive(Debug, Default)]
pub struct OutcomeCounts {
    pub succeeded: AtomicU64,
    /// Failed, with another attempt scheduled.
    pub will_retry: AtomicU64,
    /// Failed for the last time: the secret is marked failing.
    pub abandoned: AtomicU64,
}

impl Engine {
    pub fn new(secrets: Arc<SecretsService>, rotators: Arc<Rotators>, event: Arc<OutcomeEvent>) -> Engine {
        secrets.set_rotators(rotators.clone());
        let wake = Arc::new(tokio::sync::Notify::new());
        let waker = wake.clone();
        secrets.set_rotation_waker(Box::new(move || waker.notify_one()));
        Engine {
            secrets,
            lease: Duration::from_millis(tumbler_secrets::ROTATION_LEASE_MS as u64),
            rotators,
            event,
            wake,
            slots: Arc::new(tokio::sync::Semaphore::new(DEFAULT_CONCURRENCY)),
            in_flight: std::sync::Mutex::new(std::collections::HashSet::new()),
            outcomes: OutcomeCounts::default(),
        }
    }

    /// How long a claim holds a run without renewal (tests shorten it, so
    /// that a killed server's runs are taken over sooner).
    pub fn with_lease(mut self, lease: Duration) -> Engine {
        self.lease = lease;
        self
    }

    /// How this node's rotation attempts ended.
    pub fn outcomes(&self) -> &OutcomeCounts {
        &self.outcomes
    }

    /// Rotations this node is running now.
    pub fn running(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Look for due rotations now (after a RotateSecret).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Run due rotations at once (those a stopped server left are due),
    /// then every `every` and whenever woken, until the task is dropped.
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            self.clone().run_due().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Start every rotation that is due, within the concurrency bound,
    /// until none is left that is not already running.
    pub async fn run_due(self: Arc<Self>) {
        loop {
            let secrets = self.secrets.clone();
            let due = tokio::task::spawn_blocking(move || secrets.rotations_due(jiff::Timestamp::now(), 256)).await;
            let due = match due {
                Ok(Ok(ids)) => ids,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e.message, "cannot list due rotations");
                    return;
                }
                Err(_) => return,
            };
            let fresh: Vec<i64> = {
                let mut running = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                due.into_iter().filter(|id| running.insert(*id)).collect()
            };
            if fresh.is_empty() {
                return;
            }
            for id in fresh {
                let Ok(permit) = self.slots.clone().acquire_owned().await else {
                    return;
                };
                let engine = self.clone();
                tokio::task::spawn_blocking(move || {
                    // Released even if the rotation panics.
                    let _running = InFlight { engine: &engine, id };
                    engine.rotate_one(id);
                    drop(permit);
                });
            }
        }
    }

    /// Claim secret `id`'s rotation and run it to an outcome.
    pub fn rotate_one(&self, id: i64) -> Option<RotationOutcome> {
        self.rotate_one_at(id, jiff::Timestamp::now())
    }

    /// As [`Self::rotate_one`], as of `now` (tests drive the clock).
    pub fn rotate_one_at(&self, id: i64, now: jiff::Timestamp) -> Option<RotationOutcome> {
        let claimed = match self.secrets.claim_rotation(id, now, self.lease) {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(secret_id = id, error = %e.message, "cannot claim a rotation");
                return None;
            }
        };
        let end = self.run_steps_renewing(&claimed, now);
        match self.secrets.finish_rotation(&claimed, &end, now, self.event.as_ref()) {
            Ok(outcome) => {
                let counter = match outcome {
                    RotationOutcome::Succeeded => &self.outcomes.succeeded,
                    RotationOutcome::WillRetry => &self.outcomes.will_retry,
                    RotationOutcome::Abandoned => &self.outcomes.abandoned,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                match (&end, outcome) {
                    (RotationEnd::Succeeded, _) => {
                        tracing::info!(secret = %claimed.arn, token = %claimed.token, "rotation succeeded")
                    }
                    (RotationEnd::Failed { step, message }, o) => tracing::warn!(
                        secret = %claimed.arn, token = %claimed.token, step, error = %message,
                        attempt = claimed.attempts + 1, abandoned = o == RotationOutcome::Abandoned,
                        "rotation failed"
                    ),
                }
                Some(outcome)
            }
            Err(e) => {
                tracing::warn!(secret = %claimed.arn, error = %e.message, "cannot record a rotation's outcome");
                None
            }
        }
    }

    /// Run the steps while a second thread renews the lease, so a slow
    /// rotator keeps its run and a crashed node's run is free soon.
    fn run_steps_renewing(&self, claimed: &ClaimedRotation, now: jiff::Timestamp) -> RotationEnd {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(self.lease / 3) {
                    match self
                        .secrets
                        .renew_rotation_lease(claimed, jiff::Timestamp::now(), self.lease)
                    {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => {
                            tracing::warn!(secret = %claimed.arn, error = %e.message, "cannot renew a rotation lease")
                        }
                    }
                }
            });
            let end = self.run_steps(claimed, now);
            drop(stop);
            end
        })
    }

    fn run_steps(&self, claimed: &ClaimedRotation, now: jiff::Timestamp) -> RotationEnd {
        let Some(rotator) = self.rotators.get(&claimed.rotator) else {
            return RotationEnd::Failed {
                step: Step::CreateSecret.as_str().into(),
                message: format!("no rotator {} on this server", claimed.rotator),
            };
        };
        let call = StepCall {
            secrets: &self.secrets,
            ctx: claimed.service_ctx(now),
            secret_arn: &claimed.arn,
            token: &claimed.token,
        };
        let steps: &[Step] = if claimed.test_only {
            // RotateImmediately=false: AWSPENDING gets a copy of AWSCURRENT
            // for testSecret alone.
            if let Err(e) = copy_current_to_pending(&call) {
                return RotationEnd::Failed {
                    step: Step::TestSecret.as_str().into(),
                    message: e.0,
                };
            }
            &[Step::TestSecret]
        } else {
            &Step::ALL
        };
        for step in steps {
            if let Err(e) = rotator.step(*step, &call) {
                return RotationEnd::Failed {
                    step: step.as_str().into(),
                    message: e.0,
                };
            }
        }
        RotationEnd::Succeeded
    }
}

/// A secret's place in [`Engine::in_flight`], given up when dropped.
struct InFlight<'a> {
    engine: &'a Engine,
    id: i64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.engine
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn copy_current_to_pending(call: &StepCall<'_>) -> Result<(), StepError> {
    let current = call.call(
        "GetSecretValue",
        serde_json::json!({"SecretId": call.secret_arn, "VersionStage": "AWSCURRENT"}),
    )?;
    let mut put = serde_json::json!({
        "SecretId": call.secret_arn,
        "ClientRequestToken": call.token,
        "VersionStages": ["AWSPENDING"],
    });
    for field in ["SecretString", "SecretBinary"] {
        if let Some(v) = current.get(field) {
            put[field] = v.clone();
        }
    }
    call.call("PutSecretValue", put)?;
    Ok(())
}
