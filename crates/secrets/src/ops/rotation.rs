//! RotateSecret and CancelRotateSecret with AWS's semantics, and what the
//! rotation engine asks of a secret: claim the rotation that is due, and
//! record how it ended.
//!
//! A rotation's state lives in the secret's metadata (`rotationRun`), so it
//! survives a restart and resumes with the same token; the claim takes a
//! lease in the same document, so two engines never run one secret's
//! rotation at once. RotateSecret itself only records the rotation and
//! attaches AWSPENDING to an empty version, as AWS does before invoking the
//! rotation function; the engine runs the steps.

use std::sync::{Arc, Mutex};

use tumbler_store::{AuditRecord, Journal, NewVersion, SecretRow, Write};
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager as sm;

use crate::labels::{self, CURRENT, PENDING};
use crate::meta::{RotationFailure, RotationRun, SecretMeta, StoredRotationRules};
use crate::schedule::Schedule;
use crate::{Ctx, Draft, SecretsService, label_pairs, versions_to_clean};

/// A claimed run is the claimer's for this long unless renewed; a crash
/// frees it after. The engine renews it while the steps run.
pub const ROTATION_LEASE_MS: i64 = 30_000;
/// Failed attempts before a rotation is given up (RotationAbandoned).
pub const MAX_ROTATION_ATTEMPTS: u32 = 5;
/// The first retry waits this long, each next one twice as long.
const FIRST_BACKOFF_MS: i64 = 15_000;

const NEED_TOKEN: &str = "You must provide a ClientRequestToken value. We recommend a UUID-type value.";
const NO_ROTATOR: &str = "No Lambda rotation function ARN is associated with this secret.";
const PREVIOUS_NOT_DONE: &str = "A previous rotation isn't complete. That rotation will be reattempted.";

/// The rotation functions the server can run (RotationLambdaARN values).
pub trait RotatorNames: Send + Sync {
    fn knows(&self, arn: &str) -> bool;
}

/// A rotation the engine may run now; it holds the lease.
#[derive(Clone, Debug)]
pub struct ClaimedRotation {
    pub secret_id: i64,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub token: String,
    pub rotator: String,
    pub test_only: bool,
    /// Failed attempts before this one.
    pub attempts: u32,
}

/// Who rotation steps act as: the service, on the secret's account and
/// region, allowed everything (as Secrets Manager invoking a rotation
/// function that the account configured).
pub const SERVICE_PRINCIPAL: &str = "secretsmanager.amazonaws.com";

fn service_ctx(account: &str, region: &str, now: jiff::Timestamp) -> Ctx {
    Ctx::new(
        account,
        region,
        SERVICE_PRINCIPAL,
        now,
        Arc::new(crate::authz::AllowAll),
    )
}

impl ClaimedRotation {
    /// The context a built-in rotator's calls run in.
    pub fn service_ctx(&self, now: jiff::Timestamp) -> Ctx {
        service_ctx(&self.account, &self.region, now)
    }
}

/// How a rotation attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationEnd {
    Succeeded,
    /// Failed at `step`; retried later unless attempts are used up.
    Failed {
        step: String,
        message: String,
    },
}

/// What `finish_rotation` concluded, for the audit trail's event name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationOutcome {
    Succeeded,
    WillRetry,
    Abandoned,
}

impl RotationOutcome {
    /// CloudTrail's event name for it.
    pub fn event_name(self) -> &'static str {
        match self {
            RotationOutcome::Succeeded => "RotationSucceeded",
            RotationOutcome::WillRetry => "RotationFailed",
            RotationOutcome::Abandoned => "RotationAbandoned",
        }
    }
}

/// A journal that carries one given event (the service's own act).
struct OneEvent(Mutex<Option<AuditRecord>>);

impl Journal for OneEvent {
    fn event_for(&self, _: &[Write]) -> Option<AuditRecord> {
        self.0.lock().ok()?.take()
    }
    fn committed(&self) {}
}

fn schedule_of(rules: &StoredRotationRules) -> Option<Schedule> {
    Schedule::parse(
        rules.automatically_after_days,
        rules.schedule_expression.as_deref(),
        rules.duration.as_deref(),
    )
    .ok()
}

/// The next window of the secret's schedule after `now_ms`: (start, end).
fn next_window(meta: &SecretMeta, now_ms: i64) -> Option<(i64, i64)> {
    let schedule = schedule_of(meta.rotation_rules.as_ref()?)?;
    let w = schedule.next_window(jiff::Timestamp::from_millisecond(now_ms).ok()?)?;
    Some((w.start.as_millisecond(), w.end.as_millisecond()))
}

fn set_next_rotation(meta: &mut SecretMeta, now_ms: i64) {
    let (start, end) = next_window(meta, now_ms).unzip();
    meta.next_rotation_start_ms = start;
    meta.next_rotation_ms = end;
}

impl SecretsService {
    /// Name the rotation functions RotateSecret accepts; until then any.
    pub fn set_rotators(&self, names: Arc<dyn RotatorNames>) {
        let _ = self.rotators.set(names);
    }

    fn rotator_known(&self, arn: &str) -> bool {
        self.rotators.get().is_none_or(|r| r.knows(arn))
    }

    pub(crate) fn rotate_secret(&self, ctx: &Ctx, r: sm::RotateSecretRequest) -> Result<sm::ArnNameVersion, AwsError> {
        let token = r
            .client_request_token
            .clone()
            .ok_or_else(|| AwsError::invalid_request(NEED_TOKEN))?;
        let rules = r.rotation_rules.as_ref().map(|rules| StoredRotationRules {
            automatically_after_days: rules.automatically_after_days,
            duration: rules.duration.clone(),
            schedule_expression: rules.schedule_expression.clone(),
        });
        if let Some(rules) = &rules {
            Schedule::parse(
                rules.automatically_after_days,
                rules.schedule_expression.as_deref(),
                rules.duration.as_deref(),
            )
            .map_err(AwsError::invalid_parameter)?;
        }
        if let Some(arn) = r.rotation_lambda_arn.as_deref().filter(|a| !a.is_empty())
            && !self.rotator_known(arn)
        {
            return Err(AwsError::access_denied(format!(
                "Secrets Manager cannot invoke the specified Lambda function {arn}. Name a built-in rotator \
                 (`tumbler rotators list`) or a registered one."
            )));
        }
        let id = r.secret_id.clone().unwrap_or_default();
        self.mutate(ctx, &id, |mut d| {
            // An owned secret's rotator is its owner's; its schedule is the user's.
            if let Some(owner) = &d.meta.owning_service
                && r.rotation_lambda_arn
                    .as_deref()
                    .is_some_and(|a| Some(a) != d.meta.rotation_lambda_arn.as_deref())
            {
                ctx.check_owner(owner)?;
            }
            let rotator = r
                .rotation_lambda_arn
                .clone()
                .filter(|a| !a.is_empty())
                .or_else(|| d.meta.rotation_lambda_arn.clone())
                .ok_or_else(|| AwsError::invalid_request(NO_ROTATOR))?;
            let resume = match unfinished(&d) {
                Some(pending) if pending == token => true,
                Some(_) => return Err(AwsError::invalid_request(PREVIOUS_NOT_DONE)),
                None => false,
            };
            if !resume && d.version(&token).is_some() {
                return Err(super::values::token_in_use(&token, d.arn()));
            }
            let now = ctx.now_ms();
            d.meta.rotation_enabled = Some(true);
            d.meta.rotation_lambda_arn = Some(rotator);
            if let Some(rules) = &rules {
                d.meta.rotation_rules = Some(rules.clone());
            }
            set_next_rotation(&mut d.meta, now);
            // A node running this very rotation keeps its lease.
            let lease_until_ms = d
                .meta
                .rotation_run
                .as_ref()
                .filter(|run| run.token == token)
                .map_or(0, |run| run.lease_until_ms);
            d.meta.rotation_run = Some(RotationRun {
                token: token.clone(),
                started_ms: now,
                next_attempt_ms: now,
                lease_until_ms,
                test_only: !r.rotate_immediately.unwrap_or(true),
                ..Default::default()
            });
            let resp = sm::ArnNameVersion {
                arn: d.arn().to_owned(),
                name: d.name().to_owned(),
                version_id: Some(token.clone()),
            };
            Ok((vec![pending_placeholder(ctx.now_ms(), d, &token, !resume)?], resp))
        })
    }

    pub(crate) fn cancel_rotate_secret(
        &self,
        ctx: &Ctx,
        r: sm::SecretIdRequest,
    ) -> Result<sm::ArnNameVersion, AwsError> {
        let id = r.secret_id.clone().unwrap_or_default();
        self.mutate(ctx, &id, |mut d| {
            let resp = sm::ArnNameVersion {
                arn: d.arn().to_owned(),
                name: d.name().to_owned(),
                // The version the caller should take AWSPENDING off.
                version_id: unfinished(&d),
            };
            d.meta.rotation_enabled = Some(false);
            d.meta.rotation_run = None;
            let mut row = d.state.row.clone();
            row.meta = d.meta.to_json();
            row.last_changed_ms = ctx.now_ms();
            Ok((vec![crate::update_row(row, Vec::new())], resp))
        })
    }

    /// How many secrets are in each rotation state, for metrics.
    pub fn rotation_counts(&self) -> Result<tumbler_store::RotationCounts, AwsError> {
        self.store.rotation_counts().map_err(crate::store_err)
    }

    /// Secrets whose rotation may be worked on now.
    pub fn rotations_due(&self, now: jiff::Timestamp, limit: usize) -> Result<Vec<i64>, AwsError> {
        self.store
            .secrets_due_for_rotation(now.as_millisecond(), limit)
            .map_err(crate::store_err)
    }

    /// Take the lease on secret `secret_id`'s due rotation, first starting
    /// a scheduled one (a new AWSPENDING placeholder) if its window opened.
    /// None if there is nothing to do or another node holds it.
    pub fn claim_rotation(
        &self,
        secret_id: i64,
        now: jiff::Timestamp,
        lease: std::time::Duration,
    ) -> Result<Option<ClaimedRotation>, AwsError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(ROTATION_LEASE_MS);
        let Some(state) = self.store.secret_by_id(secret_id).map_err(crate::store_err)? else {
            return Ok(None);
        };
        if state.row.deleted_ms.is_some() {
            return Ok(None);
        }
        let arn = state.row.arn.clone();
        let ctx = &service_ctx(&state.row.account, &state.row.region, now)
            .with_check(crate::authz::unscoped("secretsmanager:RotateSecret"));
        let now = ctx.now_ms();
        self.mutate(ctx, &arn, |mut d| {
            if d.meta.rotation_enabled != Some(true) {
                return Ok((Vec::new(), None));
            }
            let Some(rotator) = d.meta.rotation_lambda_arn.clone() else {
                return Ok((Vec::new(), None));
            };
            let mut writes_placeholder = None;
            let run = match d.meta.rotation_run.clone() {
                Some(run) if run.next_attempt_ms > now || run.lease_until_ms > now => return Ok((Vec::new(), None)),
                Some(run) => run,
                None if d.meta.next_rotation_start_ms.is_some_and(|s| s <= now) => {
                    // A scheduled rotation; an unfinished one is reattempted
                    // with its token, as AWS does.
                    let (token, fresh) = match unfinished(&d) {
                        Some(pending) => (pending, false),
                        None => (uuid::Uuid::new_v4().to_string(), true),
                    };
                    writes_placeholder = Some((token.clone(), fresh));
                    RotationRun {
                        token,
                        started_ms: now,
                        next_attempt_ms: now,
                        ..Default::default()
                    }
                }
                None => return Ok((Vec::new(), None)),
            };
            let run = RotationRun {
                lease_until_ms: now + lease_ms,
                ..run
            };
            let claimed = ClaimedRotation {
                secret_id,
                arn: d.arn().to_owned(),
                account: d.state.row.account.clone(),
                region: d.state.row.region.clone(),
                token: run.token.clone(),
                rotator,
                test_only: run.test_only,
                attempts: run.attempts,
            };
            d.meta.rotation_run = Some(run);
            let write = match writes_placeholder {
                Some((token, fresh)) => pending_placeholder(now, d, &token, fresh)?,
                None => {
                    let mut row = d.state.row.clone();
                    row.meta = d.meta.to_json();
                    crate::update_row(row, Vec::new())
                }
            };
            Ok((vec![write], Some(claimed)))
        })
    }

    /// Extend the lease of a claimed run that is still ours; false if it
    /// is not (cancelled, finished or taken over).
    pub fn renew_rotation_lease(
        &self,
        claimed: &ClaimedRotation,
        now: jiff::Timestamp,
        lease: std::time::Duration,
    ) -> Result<bool, AwsError> {
        let ctx = claimed
            .service_ctx(now)
            .with_check(crate::authz::unscoped("secretsmanager:RotateSecret"));
        let until = now.as_millisecond() + i64::try_from(lease.as_millis()).unwrap_or(ROTATION_LEASE_MS);
        self.mutate(&ctx, &claimed.arn, |mut d| {
            let Some(run) = d.meta.rotation_run.as_mut().filter(|r| r.token == claimed.token) else {
                return Ok((Vec::new(), false));
            };
            run.lease_until_ms = until;
            let mut row = d.state.row.clone();
            row.meta = d.meta.to_json();
            Ok((vec![crate::update_row(row, Vec::new())], true))
        })
    }

    /// Record how a claimed rotation ended, with the service's audit event
    /// `event(row, name)`. A success sets LastRotatedDate and the next
    /// window; a failure backs off and retries, up to
    /// [`MAX_ROTATION_ATTEMPTS`], AWSCURRENT untouched throughout.
    pub fn finish_rotation(
        &self,
        claimed: &ClaimedRotation,
        end: &RotationEnd,
        now: jiff::Timestamp,
        event: &dyn Fn(&SecretRow, &str) -> Option<AuditRecord>,
    ) -> Result<RotationOutcome, AwsError> {
        let mut outcome = RotationOutcome::Succeeded;
        // The outcome's event commits with the change it describes.
        let journal = Arc::new(OneEvent(Mutex::new(None)));
        let ctx = claimed
            .service_ctx(now)
            .with_journal(journal.clone())
            .with_check(crate::authz::unscoped("secretsmanager:RotateSecret"));
        let now = ctx.now_ms();
        let result = self.mutate(&ctx, &claimed.arn, |mut d| {
            match d.meta.rotation_run.as_ref() {
                Some(run) if run.token == claimed.token => {}
                // Cancelled or replaced meanwhile: nothing of ours to record.
                _ => return Ok((Vec::new(), ())),
            }
            let run = d.meta.rotation_run.take().unwrap_or_default();
            outcome = match end {
                RotationEnd::Succeeded => {
                    if !run.test_only {
                        d.meta.last_rotated_ms = Some(now);
                    }
                    d.meta.rotation_failure = None;
                    set_next_rotation(&mut d.meta, now);
                    RotationOutcome::Succeeded
                }
                RotationEnd::Failed { step, message } => {
                    let failure = RotationFailure {
                        step: step.clone(),
                        message: message.clone(),
                        at_ms: now,
                        attempts: run.attempts + 1,
                    };
                    if run.attempts + 1 >= MAX_ROTATION_ATTEMPTS || run.test_only {
                        d.meta.rotation_failure = Some(failure);
                        set_next_rotation(&mut d.meta, now);
                        RotationOutcome::Abandoned
                    } else {
                        let backoff = FIRST_BACKOFF_MS << run.attempts.min(10);
                        d.meta.rotation_run = Some(RotationRun {
                            attempts: run.attempts + 1,
                            next_attempt_ms: now + backoff,
                            lease_until_ms: 0,
                            last_error: Some(failure),
                            ..run.clone()
                        });
                        RotationOutcome::WillRetry
                    }
                }
            };
            // RotateImmediately=false tested a copy of AWSCURRENT: its
            // AWSPENDING goes, as on AWS, whatever the test said.
            if run.test_only && d.labels.get(PENDING) == Some(&run.token) && d.labels.get(CURRENT) != Some(&run.token) {
                d.labels.remove(PENDING);
            }
            let mut row = d.state.row.clone();
            row.meta = d.meta.to_json();
            if let Ok(mut slot) = journal.0.lock() {
                *slot = event(&row, outcome.event_name());
            }
            Ok((
                vec![Write::UpdateSecret {
                    row,
                    new_versions: Vec::new(),
                    fill_versions: Vec::new(),
                    delete_versions: Vec::new(),
                    stages: Some(label_pairs(&d.labels)),
                    rewrap_versions: Vec::new(),
                }],
                (),
            ))
        });
        result.map(|()| outcome)
    }
}

/// The version AWSPENDING is on, if it is not AWSCURRENT's: a rotation
/// that has not finished.
fn unfinished(d: &Draft) -> Option<String> {
    let pending = d.labels.get(PENDING)?;
    (d.labels.get(CURRENT) != Some(pending)).then(|| pending.clone())
}

/// The write that records `d.meta` and, if `fresh`, adds the empty version
/// `token` with AWSPENDING (AWS's placeholder before createSecret).
fn pending_placeholder(now: i64, mut d: Draft, token: &str, fresh: bool) -> Result<Write, AwsError> {
    let mut new_versions = Vec::new();
    let mut delete = Vec::new();
    if fresh {
        labels::attach(&mut d.labels, token, &[PENDING.to_owned()], false);
        delete = versions_to_clean(&d.state.versions, 1, &d.labels, now)?;
        new_versions.push(NewVersion {
            version_id: token.to_owned(),
            created_ms: now,
            value: None,
        });
    }
    let mut row = d.state.row.clone();
    row.meta = d.meta.to_json();
    row.last_changed_ms = now;
    Ok(Write::UpdateSecret {
        row,
        new_versions,
        fill_versions: Vec::new(),
        delete_versions: delete,
        stages: Some(label_pairs(&d.labels)),
        rewrap_versions: Vec::new(),
    })
}
