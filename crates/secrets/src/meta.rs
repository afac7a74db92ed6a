//! The secret's metadata document (`SecretRow::meta`), owned by this crate.

use serde::{Deserialize, Serialize};
use tumbler_wire::secretsmanager::{RotationError, RotationRules, RotationStatus, Tag};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The key reference as the user gave it; None means the default key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// None until first tagged; `[]` after all tags were removed (as AWS shows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<StoredTag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owning_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<StoredRotationRules>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_ms: Option<i64>,
    /// When the rotation is due (the window's end: DescribeSecret's NextRotationDate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_ms: Option<i64>,
    /// When the next scheduled rotation starts (the window opens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_start_ms: Option<i64>,
    /// The rotation under way, if any: the rotation engine's work item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_run: Option<RotationRun>,
    /// The last rotation that gave up, until one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_failure: Option<RotationFailure>,
    /// Set on a primary that has replicas, and on every replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// True on a read-only replica.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    /// On a primary: its replicas.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
}

/// A rotation in progress. Its steps are idempotent, so after a crash or a
/// failure the same run resumes with the same token.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct RotationRun {
    /// The ClientRequestToken: the AWSPENDING version being made.
    pub token: String,
    pub started_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time (backoff after a failure).
    pub next_attempt_ms: i64,
    /// A node working on it holds it until then (a lease in the store).
    pub lease_until_ms: i64,
    /// RotateImmediately=false: only testSecret, on a copy of AWSCURRENT.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<RotationFailure>,
}

impl SecretMeta {
    /// The rotation under way or given up, as DescribeSecret and
    /// `tumbler rotation status` show it; None when rotation is idle.
    pub fn rotation_status(&self) -> Option<RotationStatus> {
        let error = |f: &RotationFailure| RotationError {
            step: f.step.clone(),
            message: f.message.clone(),
            date: crate::secs(f.at_ms),
        };
        match (&self.rotation_run, &self.rotation_failure) {
            (Some(run), _) => Some(RotationStatus {
                state: if run.attempts > 0 { "Retrying" } else { "Rotating" },
                version_id: Some(run.token.clone()),
                attempts: run.attempts,
                next_attempt_date: (run.attempts > 0).then(|| crate::secs(run.next_attempt_ms)),
                last_error: run.last_error.as_ref().map(error),
            }),
            (None, Some(f)) => Some(RotationStatus {
                state: "Failed",
                version_id: None,
                attempts: f.attempts,
                next_attempt_date: None,
                last_error: Some(error(f)),
            }),
            (None, None) => None,
        }
    }
}

/// Which step failed, how, and when.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct RotationFailure {
    pub step: String,
    pub message: String,
    pub at_ms: i64,
    pub attempts: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredTag {
    pub key: String,
    pub value: String,
}

impl From<&StoredTag> for Tag {
    fn from(t: &StoredTag) -> Self {
        Tag {
            key: Some(t.key.clone()),
            value: Some(t.value.clone()),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct StoredRotationRules {
    pub automatically_after_days: Option<i64>,
    pub duration: Option<String>,
    pub schedule_expression: Option<String>,
}

impl From<&StoredRotationRules> for RotationRules {
    fn from(r: &StoredRotationRules) -> Self {
        RotationRules {
            automatically_after_days: r.automatically_after_days,
            duration: r.duration.clone(),
            schedule_expression: r.schedule_expression.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Replica {
    pub region: String,
    pub kms_key_id: Option<String>,
    /// InSync | InProgress | Failed
    pub status: String,
    pub status_message: Option<String>,
}

impl SecretMeta {
    pub fn parse(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}
