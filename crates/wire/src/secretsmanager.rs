//! Secrets Manager request and response shapes (awsJson1_1), named and
//! constrained as in `models/secretsmanager-2017-10-17.json`. Requests ignore
//! unknown members, as AWS does; responses omit empty members.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tumbler_types::{Sensitive, SensitiveString};

use crate::Validator;

fn de_blob<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Sensitive>, D::Error> {
    let s: Option<SensitiveString> = de_secret_string(d)?;
    match s {
        None => Ok(None),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s.expose().as_bytes())
            .map(|b| Some(Sensitive::new(b)))
            .map_err(|_| serde::de::Error::custom("SecretBinary must be base64-encoded")),
    }
}

fn ser_blob<S: Serializer>(v: &Option<Sensitive>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b.expose())),
        None => s.serialize_none(),
    }
}

fn ser_secret_string<S: Serializer>(v: &Option<SensitiveString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v.expose()),
        None => s.serialize_none(),
    }
}

fn de_secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SensitiveString>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.map(SensitiveString::new))
}

/// AWS `Tag`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaRegion {
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationStatus {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
}

// ---------------------------------------------------------------- requests

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretRequest {
    pub name: Option<String>,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "de_blob")]
    pub secret_binary: Option<Sensitive>,
    #[serde(default, deserialize_with = "de_secret_string")]
    pub secret_string: Option<SensitiveString>,
    pub tags: Option<Vec<Tag>>,
    pub add_replica_regions: Option<Vec<ReplicaRegion>>,
    pub force_overwrite_replica_secret: Option<bool>,
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueRequest {
    pub secret_id: Option<String>,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueRequest {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueRequest {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    #[serde(default, deserialize_with = "de_blob")]
    pub secret_binary: Option<Sensitive>,
    #[serde(default, deserialize_with = "de_secret_string")]
    pub secret_string: Option<SensitiveString>,
    pub version_stages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_secret_string")]
    pub rotation_token: Option<SensitiveString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretRequest {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "de_blob")]
    pub secret_binary: Option<Sensitive>,
    #[serde(default, deserialize_with = "de_secret_string")]
    pub secret_string: Option<SensitiveString>,
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateSecretRequest {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    pub rotate_immediately: Option<bool>,
}

/// The many operations whose input is just a SecretId.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretIdRequest {
    pub secret_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsRequest {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsRequest {
    pub secret_id: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretVersionStageRequest {
    pub secret_id: Option<String>,
    pub version_stage: Option<String>,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretRequest {
    pub secret_id: Option<String>,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    pub secret_id: Option<String>,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    pub secret_id: Option<String>,
    pub tag_keys: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordRequest {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyRequest {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
    pub block_public_policy: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyRequest {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateSecretToRegionsRequest {
    pub secret_id: Option<String>,
    pub add_replica_regions: Option<Vec<ReplicaRegion>>,
    pub force_overwrite_replica_secret: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveRegionsFromReplicationRequest {
    pub secret_id: Option<String>,
    pub remove_replica_regions: Option<Vec<String>>,
}

// --------------------------------------------------------------- responses

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArnNameVersion {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replication_status: Vec<ReplicationStatus>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretValue {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_blob")]
    pub secret_binary: Option<Sensitive>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret_string")]
    pub secret_string: Option<SensitiveString>,
    pub version_stages: Vec<String>,
    pub created_date: f64,
}

impl SecretValue {
    /// The response body: exactly what serde_json writes for it (a test holds
    /// it to that), written by hand because it is the answer to nearly every
    /// call, and serde_json checks each byte of its strings in turn.
    pub fn to_json(&self) -> Vec<u8> {
        use crate::json::write_str;
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"ARN\":");
        write_str(&mut out, &self.arn);
        out.extend_from_slice(b",\"Name\":");
        write_str(&mut out, &self.name);
        out.extend_from_slice(b",\"VersionId\":");
        write_str(&mut out, &self.version_id);
        if let Some(b) = &self.secret_binary {
            out.extend_from_slice(b",\"SecretBinary\":");
            write_str(&mut out, &base64::engine::general_purpose::STANDARD.encode(b.expose()));
        }
        if let Some(v) = &self.secret_string {
            out.extend_from_slice(b",\"SecretString\":");
            write_str(&mut out, v.expose());
        }
        out.extend_from_slice(b",\"VersionStages\":[");
        for (i, stage) in self.version_stages.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, stage);
        }
        out.extend_from_slice(b"],\"CreatedDate\":");
        // serde_json's own number formatting (NaN and infinities as null).
        let _ = serde_json::to_writer(&mut out, &self.created_date);
        out.push(b'}');
        out
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiError {
    pub secret_id: String,
    pub error_code: String,
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueResponse {
    pub secret_values: Vec<SecretValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub version_stages: Vec<String>,
}

/// DescribeSecret's answer; ListSecrets entries share it but name the
/// version map `SecretVersionsToStages`.
#[derive(Debug, Default, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct SecretDescription {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", rename = "Type")]
    pub secret_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<RotationRules>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_date: Option<f64>,
    pub last_changed_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "VersionIdsToStages")]
    pub version_ids_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "SecretVersionsToStages")]
    pub secret_versions_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owning_service: Option<String>,
    pub created_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<ReplicationStatus>>,
    /// Tumbler's extension: a rotation under way or given up. AWS reports
    /// those only through CloudWatch; SDKs ignore fields they don't know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tumbler_rotation_status: Option<RotationStatus>,
}

/// DescribeSecret's `TumblerRotationStatus`.
#[derive(Debug, Default, Serialize, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationStatus {
    /// `Rotating`, `Retrying` (an attempt failed; another is scheduled) or
    /// `Failed` (given up until the next rotation).
    pub state: &'static str,
    /// The AWSPENDING version the rotation makes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<RotationError>,
}

#[derive(Debug, Default, Serialize, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationError {
    /// createSecret, setSecret, testSecret or finishSecret.
    pub step: String,
    pub message: String,
    pub date: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsResponse {
    pub secret_list: Vec<SecretDescription>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretVersionsListEntry {
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
    pub created_date: f64,
    pub kms_key_ids: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsResponse {
    pub versions: Vec<SecretVersionsListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub deletion_date: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordResponse {
    #[serde(serialize_with = "ser_secret_string")]
    pub random_password: Option<SensitiveString>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationErrorsEntry {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyResponse {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationErrorsEntry>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub replication_status: Vec<ReplicationStatus>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArnOnly {
    #[serde(rename = "ARN")]
    pub arn: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Empty {}

// -------------------------------------------------------------- validation

/// Names: ASCII letters, digits and `/_+=.@-`.
pub fn is_secret_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

fn is_filter_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" :_@/+=.-!".contains(&b))
}

pub const FILTER_KEYS: &[&str] = &[
    "description",
    "name",
    "tag-key",
    "tag-value",
    "primary-region",
    "owning-service",
    "all",
];

fn show_list(l: &[String]) -> String {
    format!("[{}]", l.join(", "))
}

fn tags(v: &mut Validator, member: &str, tags: Option<&[Tag]>) {
    for (i, t) in tags.unwrap_or_default().iter().enumerate() {
        let k = format!("{member}.{}.member.key", i + 1);
        v.required(&k, &t.key);
        v.length(&k, t.key.as_deref(), 1, 128);
        v.length(&format!("{member}.{}.member.value", i + 1), t.value.as_deref(), 0, 256);
    }
}

fn filters(v: &mut Validator, filters: Option<&[Filter]>) {
    v.list_length("filters", filters, 0, 10, |l| format!("{} filters", l.len()));
    for (i, f) in filters.unwrap_or_default().iter().enumerate() {
        v.one_of(&format!("filters.{}.member.key", i + 1), f.key.as_deref(), FILTER_KEYS);
        let member = format!("filters.{}.member.values", i + 1);
        v.list_length(&member, f.values.as_deref(), 1, 10, show_list);
        for (j, val) in f.values.as_deref().unwrap_or_default().iter().enumerate() {
            let m = format!("{member}.{}.member", j + 1);
            v.length(&m, Some(val), 0, 512);
            v.pattern(
                &m,
                Some(val),
                is_filter_value,
                r"^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$",
                false,
            );
        }
    }
}

fn replica_regions(v: &mut Validator, regions: Option<&[ReplicaRegion]>) {
    for (i, r) in regions.unwrap_or_default().iter().enumerate() {
        let m = format!("addReplicaRegions.{}.member.region", i + 1);
        v.length(&m, r.region.as_deref(), 1, 128);
        v.pattern(
            &m,
            r.region.as_deref(),
            tumbler_types::is_region_name,
            r"^([a-z]+-)+\d+$",
            false,
        );
        v.length(
            &format!("addReplicaRegions.{}.member.kmsKeyId", i + 1),
            r.kms_key_id.as_deref(),
            0,
            2048,
        );
    }
}

fn secret_value(v: &mut Validator, s: &Option<SensitiveString>, b: &Option<Sensitive>) {
    v.sensitive_length("secretString", s.as_ref().map(|s| s.len()), 1, 65536);
    v.sensitive_length("secretBinary", b.as_ref().map(|b| b.len()), 1, 65536);
}

fn secret_id(v: &mut Validator, id: &Option<String>) {
    v.required("secretId", id);
    v.length("secretId", id.as_deref(), 1, 2048);
}

fn token(v: &mut Validator, t: &Option<String>) {
    v.length("clientRequestToken", t.as_deref(), 32, 64);
}

impl CreateSecretRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        v.required("name", &self.name);
        v.length("name", self.name.as_deref(), 1, 512);
        token(&mut v, &self.client_request_token);
        v.length("description", self.description.as_deref(), 0, 2048);
        v.length("kmsKeyId", self.kms_key_id.as_deref(), 0, 2048);
        secret_value(&mut v, &self.secret_string, &self.secret_binary);
        tags(&mut v, "tags", self.tags.as_deref());
        v.list_length(
            "addReplicaRegions",
            self.add_replica_regions.as_deref(),
            1,
            usize::MAX,
            |l| format!("{} regions", l.len()),
        );
        replica_regions(&mut v, self.add_replica_regions.as_deref());
        v.length("type", self.secret_type.as_deref(), 0, 256);
        v.finish()
    }
}

impl GetSecretValueRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.length("versionId", self.version_id.as_deref(), 32, 64);
        v.length("versionStage", self.version_stage.as_deref(), 1, 256);
        v.finish()
    }
}

impl BatchGetSecretValueRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        v.list_length("secretIdList", self.secret_id_list.as_deref(), 1, 20, show_list);
        for (i, id) in self.secret_id_list.as_deref().unwrap_or_default().iter().enumerate() {
            v.length(&format!("secretIdList.{}.member", i + 1), Some(id), 1, 2048);
        }
        filters(&mut v, self.filters.as_deref());
        v.range("maxResults", self.max_results, 1, 20);
        v.length("nextToken", self.next_token.as_deref(), 1, 4096);
        v.finish()
    }
}

impl RotateSecretRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        token(&mut v, &self.client_request_token);
        v.length("rotationLambdaARN", self.rotation_lambda_arn.as_deref(), 0, 2048);
        if let Some(rules) = &self.rotation_rules {
            v.range(
                "rotationRules.automaticallyAfterDays",
                rules.automatically_after_days,
                1,
                1000,
            );
            v.length("rotationRules.duration", rules.duration.as_deref(), 2, 3);
            v.pattern(
                "rotationRules.duration",
                rules.duration.as_deref(),
                |s| s.ends_with('h') && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit()),
                "[0-9h]+",
                false,
            );
            v.length(
                "rotationRules.scheduleExpression",
                rules.schedule_expression.as_deref(),
                1,
                256,
            );
            v.pattern(
                "rotationRules.scheduleExpression",
                rules.schedule_expression.as_deref(),
                |s| {
                    s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"()#?*-/, ".contains(&b))
                },
                r"[0-9A-Za-z\(\)#\?\*\-\/, ]+",
                false,
            );
        }
        v.finish()
    }
}

impl PutSecretValueRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        token(&mut v, &self.client_request_token);
        secret_value(&mut v, &self.secret_string, &self.secret_binary);
        v.list_length("versionStages", self.version_stages.as_deref(), 1, 20, show_list);
        for (i, s) in self.version_stages.as_deref().unwrap_or_default().iter().enumerate() {
            v.length(&format!("versionStages.{}.member", i + 1), Some(s), 1, 256);
        }
        v.sensitive_length("rotationToken", self.rotation_token.as_ref().map(|t| t.len()), 36, 256);
        v.pattern(
            "rotationToken",
            self.rotation_token.as_ref().map(|t| t.expose()),
            |s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            r"^[a-zA-Z0-9\-]+$",
            true,
        );
        v.finish()
    }
}

impl UpdateSecretRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        token(&mut v, &self.client_request_token);
        v.length("description", self.description.as_deref(), 0, 2048);
        v.length("kmsKeyId", self.kms_key_id.as_deref(), 0, 2048);
        secret_value(&mut v, &self.secret_string, &self.secret_binary);
        v.length("type", self.secret_type.as_deref(), 0, 256);
        v.finish()
    }
}

impl SecretIdRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.finish()
    }
}

impl ListSecretsRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        v.range("maxResults", self.max_results, 1, 100);
        v.length("nextToken", self.next_token.as_deref(), 1, 4096);
        filters(&mut v, self.filters.as_deref());
        v.one_of("sortOrder", self.sort_order.as_deref(), &["asc", "desc"]);
        v.one_of(
            "sortBy",
            self.sort_by.as_deref(),
            &["created-date", "last-accessed-date", "last-changed-date", "name"],
        );
        v.finish()
    }
}

impl ListSecretVersionIdsRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.range("maxResults", self.max_results, 1, 100);
        v.length("nextToken", self.next_token.as_deref(), 1, 4096);
        v.finish()
    }
}

impl UpdateSecretVersionStageRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.required("versionStage", &self.version_stage);
        v.length("versionStage", self.version_stage.as_deref(), 1, 256);
        v.length("removeFromVersionId", self.remove_from_version_id.as_deref(), 32, 64);
        v.length("moveToVersionId", self.move_to_version_id.as_deref(), 32, 64);
        v.finish()
    }
}

impl DeleteSecretRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.finish()
    }
}

impl TagResourceRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.required("tags", &self.tags);
        tags(&mut v, "tags", self.tags.as_deref());
        v.finish()
    }
}

impl UntagResourceRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.required("tagKeys", &self.tag_keys);
        for (i, k) in self.tag_keys.as_deref().unwrap_or_default().iter().enumerate() {
            v.length(&format!("tagKeys.{}.member", i + 1), Some(k), 1, 128);
        }
        v.finish()
    }
}

impl GetRandomPasswordRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        v.range("passwordLength", self.password_length, 1, 4096);
        v.length("excludeCharacters", self.exclude_characters.as_deref(), 0, 4096);
        v.finish()
    }
}

impl PutResourcePolicyRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.required("resourcePolicy", &self.resource_policy);
        v.length("resourcePolicy", self.resource_policy.as_deref(), 1, 20480);
        v.finish()
    }
}

impl ValidateResourcePolicyRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        v.length("secretId", self.secret_id.as_deref(), 1, 2048);
        v.required("resourcePolicy", &self.resource_policy);
        v.length("resourcePolicy", self.resource_policy.as_deref(), 1, 20480);
        v.finish()
    }
}

impl ReplicateSecretToRegionsRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.required("addReplicaRegions", &self.add_replica_regions);
        v.list_length(
            "addReplicaRegions",
            self.add_replica_regions.as_deref(),
            1,
            usize::MAX,
            |l| format!("{} regions", l.len()),
        );
        replica_regions(&mut v, self.add_replica_regions.as_deref());
        v.finish()
    }
}

impl RemoveRegionsFromReplicationRequest {
    pub fn validate(&self) -> Result<(), crate::AwsError> {
        let mut v = Validator::new();
        secret_id(&mut v, &self.secret_id);
        v.required("removeReplicaRegions", &self.remove_replica_regions);
        v.list_length(
            "removeReplicaRegions",
            self.remove_replica_regions.as_deref(),
            1,
            usize::MAX,
            show_list,
        );
        for (i, r) in self
            .remove_replica_regions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let m = format!("removeReplicaRegions.{}.member", i + 1);
            v.pattern(&m, Some(r), tumbler_types::is_region_name, r"^([a-z]+-)+\d+$", false);
        }
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn binary_is_base64_and_never_echoed() {
        let r: PutSecretValueRequest = decode(br#"{"SecretId":"a","SecretBinary":"AAEC/w=="}"#).unwrap();
        assert_eq!(r.secret_binary.unwrap().expose(), &[0, 1, 2, 255]);
        let e = decode::<PutSecretValueRequest>(br#"{"SecretId":"a","SecretBinary":"not base64!"}"#).unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(!e.message.contains("not base64!"));
    }

    #[test]
    fn oversize_value_is_a_validation_error_without_the_value() {
        let big = "x".repeat(65537);
        let body = format!(r#"{{"SecretId":"a","SecretString":"{big}"}}"#);
        let r: PutSecretValueRequest = decode(body.as_bytes()).unwrap();
        let e = r.validate().unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("'secretString'"));
        assert!(!e.message.contains("xxx"));
    }

    #[test]
    fn responses_omit_empty_members() {
        let v = SecretValue {
            arn: "a".into(),
            name: "n".into(),
            version_id: "v".into(),
            secret_string: Some(SensitiveString::new("s".into())),
            version_stages: vec!["AWSCURRENT".into()],
            created_date: 1.5,
            ..Default::default()
        };
        let j = String::from_utf8(crate::encode(&v)).unwrap();
        assert_eq!(
            j,
            r#"{"ARN":"a","Name":"n","VersionId":"v","SecretString":"s","VersionStages":["AWSCURRENT"],"CreatedDate":1.5}"#
        );
    }
}

#[cfg(test)]
mod secret_value_json_tests {
    use super::*;

    #[test]
    fn a_secret_value_is_written_as_serde_json_writes_it() {
        let awkward = [
            "",
            "plain",
            "{\"username\":\"u\",\"password\":\"p\\\\q\"}",
            "control \u{1}\n\t\u{1f} and DEL \u{7f}",
            "unicode é 秘密 🔑 \u{2028}",
        ];
        for (i, text) in awkward.iter().enumerate() {
            let long = format!("{}{text}{}", "a".repeat(70), "b".repeat(9));
            for text in [text.to_string(), long] {
                let value = SecretValue {
                    arn: format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{text}-AbCdEf"),
                    name: text.clone(),
                    version_id: "11111111-2222-3333-4444-555555555555".into(),
                    secret_binary: (i % 2 == 1).then(|| Sensitive::new(text.as_bytes().to_vec())),
                    secret_string: (i % 3 != 1).then(|| SensitiveString::new(text.clone())),
                    version_stages: match i % 3 {
                        0 => vec![],
                        1 => vec!["AWSCURRENT".into()],
                        _ => vec!["AWSCURRENT".into(), text.clone()],
                    },
                    created_date: [1764000000.0, 1764000000.123, 0.5, -1.0, f64::NAN][i],
                };
                assert_eq!(
                    String::from_utf8(value.to_json()).unwrap(),
                    serde_json::to_string(&value).unwrap()
                );
            }
        }
    }
}
