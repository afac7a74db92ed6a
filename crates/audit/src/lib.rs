//! The audit trail: one CloudTrail-shaped event per API call, allowed or
//! denied, with secret values and credentials removed, chained so that an
//! edited, removed or reordered event is detected.
//!
//! This crate is pure: it builds events ([`AuditEvent`]), strips what must
//! never be recorded ([`redact`]), and computes and checks the chain
//! ([`Chain`]). Storing events (in the same transaction as the change they
//! record) is the store's job; deciding what each call records is the
//! server's.
//!
//! The chain: event `n` (numbered from 1) carries
//! `mac_n = HMAC-SHA256(k, mac_{n-1} || n as 8 bytes big-endian || event JSON)`,
//! with `mac_0` all zeros and `k` derived from the root key. Anyone with the
//! store but not the root key can neither forge an event nor re-chain the
//! events after one they removed. Cutting events off the end is the one
//! change the chain alone cannot show; `tumbler audit verify` prints the
//! number and last MAC so they can be noted elsewhere and compared.

mod chain;
mod journal;
mod lookup;
mod prune;
mod redact;

pub use chain::{Chain, ChainBreak, ChainHead, StoredEvent};
pub use journal::{CallJournal, query_parameters, response_elements};
pub use lookup::lookup_events;
pub use prune::{PruneError, Pruned, prune};
pub use redact::{is_sensitive_field, redact};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// CloudTrail's event format version that these events follow.
pub const EVENT_VERSION: &str = "1.08";

/// One API call as CloudTrail records it (field names and shapes as in
/// CloudTrail's `CloudTrailEvent` JSON).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub event_version: String,
    pub user_identity: UserIdentity,
    /// RFC 3339, UTC, whole seconds (`2026-11-23T12:00:00Z`).
    pub event_time: String,
    /// `secretsmanager.amazonaws.com`, `sts.amazonaws.com`, ...
    pub event_source: String,
    /// The operation, e.g. `GetSecretValue`.
    pub event_name: String,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    /// The request with secret values and credentials removed.
    pub request_parameters: Option<Value>,
    /// For changes, what the call answered (redacted likewise); `null` for reads.
    pub response_elements: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    /// ARNs of the resources the call named or touched.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub resources: Vec<Resource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: String,
    pub tls_details: Option<TlsDetails>,
}

/// Who made the call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `IAMUser`, `AssumedRole`, `Root`, or `Unknown` for unauthenticated calls.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_context: Option<SessionContext>,
    /// For events the service itself caused (`AWSService`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub invoked_by: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    /// The role, for role sessions; absent for GetSessionToken sessions.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_issuer: Option<SessionIssuer>,
    pub attributes: SessionAttributes,
    /// AssumeRole's SourceIdentity, kept through role chaining.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_identity: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    /// `Role`.
    #[serde(rename = "type")]
    pub kind: String,
    pub principal_id: String,
    pub arn: String,
    pub account_id: String,
    pub user_name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes {
    /// RFC 3339.
    pub creation_date: String,
    /// `"true"` / `"false"`, a string as in CloudTrail.
    pub mfa_authenticated: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "accountId")]
    pub account_id: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsDetails {
    pub tls_version: String,
    pub cipher_suite: String,
}

impl AuditEvent {
    /// The event as stored and chained: compact JSON. Serialising these
    /// plain fields cannot fail.
    pub fn to_json(&self) -> String {
        // An event runs to about a kilobyte: one allocation of that size
        // instead of serde_json's growing from 128 bytes (four copies).
        let mut out = Vec::with_capacity(1536);
        if serde_json::to_writer(&mut out, self).is_err() {
            return "{}".to_owned();
        }
        // serde_json writes UTF-8 only.
        String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// A request or response body as CloudTrail shows it: member names in
/// lowerCamelCase (`SecretId` → `secretId`), secret values and credentials
/// removed.
pub fn parameters(body: &Value) -> Value {
    into_parameters(body.clone())
}

/// [`parameters`], consuming the body: one pass that renames members and
/// removes sensitive values, moving everything else.
pub fn into_parameters(body: Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_sensitive_field(&k) {
                        Value::String(redact::REDACTED.to_owned())
                    } else {
                        into_parameters(v)
                    };
                    let k = if k.starts_with(|c: char| c.is_ascii_uppercase()) {
                        lower_first(&k)
                    } else {
                        k
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(into_parameters).collect()),
        other => other,
    }
}

/// `SecretId` → `secretId`; a leading run of capitals is lowered as a word
/// (`ARN` → `arn`, not the `aRN` CloudTrail printed before 2024).
fn lower_first(k: &str) -> String {
    let upper_run = k.chars().take_while(char::is_ascii_uppercase).count();
    let lower = match upper_run {
        0 => return k.to_owned(),
        n if n == k.chars().count() => k.len(),
        1 => 1,
        // "KMSKeyId" → "kmsKeyId": the last capital starts the next word.
        n => n - 1,
    };
    let mut out = k[..lower].to_ascii_lowercase();
    out.push_str(&k[lower..]);
    out
}

/// A GetSecretValue event for tests.
#[cfg(test)]
pub(crate) fn sample_event() -> AuditEvent {
    use serde_json::json;
    AuditEvent {
        event_version: EVENT_VERSION.into(),
        user_identity: UserIdentity {
            kind: "IAMUser".into(),
            arn: Some("arn:aws:iam::000000000000:user/admin".into()),
            ..Default::default()
        },
        event_time: "2026-11-23T12:00:00Z".into(),
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: "GetSecretValue".into(),
        aws_region: "us-east-1".into(),
        source_ip_address: "127.0.0.1".into(),
        user_agent: "aws-cli/1".into(),
        request_parameters: Some(json!({"secretId": "db"})),
        response_elements: None,
        error_code: None,
        error_message: None,
        request_id: "r".into(),
        event_id: "e".into(),
        read_only: true,
        resources: vec![],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: "000000000000".into(),
        event_category: "Management".into(),
        tls_details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_names_become_lower_camel_case() {
        for (from, to) in [
            ("SecretId", "secretId"),
            ("ARN", "arn"),
            ("KMSKeyId", "kmsKeyId"),
            ("VersionStages", "versionStages"),
            ("already", "already"),
        ] {
            assert_eq!(lower_first(from), to);
        }
        let v = parameters(&json!({"SecretId": "db", "Tags": [{"Key": "k", "Value": "v"}]}));
        assert_eq!(v, json!({"secretId": "db", "tags": [{"key": "k", "value": "v"}]}));
    }

    #[test]
    fn events_serialise_with_cloudtrail_names() {
        let e = sample_event();
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["sourceIPAddress"], "127.0.0.1");
        assert_eq!(v["requestID"], "r");
        assert_eq!(v["eventID"], "e");
        assert_eq!(v["userIdentity"]["type"], "IAMUser");
        assert!(v["responseElements"].is_null());
        assert!(v.get("errorCode").is_none());
        assert_eq!(serde_json::from_str::<AuditEvent>(&e.to_json()).unwrap(), e);
    }
}
