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
//! The chain: event `n` (numbered from 1) chained on its own (an event of a
//! change) carries
//! `mac_n = HMAC-SHA256(k, mac_{n-1} || n as 8 bytes big-endian || event JSON)`;
//! a batch of events of reads `f..=l`, stored as one block, carries one MAC
//! on its last event,
//! `mac_l = HMAC-SHA256(k, "tumbler audit block" || mac_{f-1} || f || l || the block's stored bytes)`,
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

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string that is most often one of a few constants (`"AwsApiCall"`), so
/// that building an event does not allocate them.
pub type Text = Cow<'static, str>;

/// CloudTrail's event format version that these events follow.
pub const EVENT_VERSION: &str = "1.08";

/// One API call as CloudTrail records it (field names and shapes as in
/// CloudTrail's `CloudTrailEvent` JSON).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub event_version: Text,
    /// Shared by a caller's events (the server keeps one per access key).
    pub user_identity: Arc<UserIdentity>,
    /// RFC 3339, UTC, whole seconds (`2026-11-23T12:00:00Z`).
    pub event_time: String,
    /// `secretsmanager.amazonaws.com`, `sts.amazonaws.com`, ...
    pub event_source: Text,
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
    pub event_type: Text,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: Text,
    pub tls_details: Option<TlsDetails>,
}

/// Who made the call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `IAMUser`, `AssumedRole`, `Root`, or `Unknown` for unauthenticated calls.
    #[serde(rename = "type")]
    pub kind: Text,
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
    pub kind: Option<Text>,
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
        // An event runs to about a kilobyte: one allocation of that size.
        let mut out = Json(Vec::with_capacity(1536));
        out.event(self);
        // Only whole UTF-8 strings and ASCII go in.
        String::from_utf8(out.0).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// [`AuditEvent::to_json`]'s writer: exactly what serde_json writes for the
/// derived `Serialize` (a test holds it to that, byte for byte), written by
/// hand because serde_json escapes strings one byte at a time through a
/// table, and an event is a kilobyte of strings that almost never need
/// escaping: that loop was the largest part of building an event.
struct Json(Vec<u8>);

impl Json {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn string(&mut self, s: &str) {
        tumbler_wire::write_json_str(&mut self.0, s);
    }

    /// `,"key":` (no comma before an object's first member).
    fn key(&mut self, first: &mut bool, key: &str) {
        if !std::mem::take(first) {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.raw(key);
        self.raw("\":");
    }

    fn member(&mut self, first: &mut bool, key: &str, value: &str) {
        self.key(first, key);
        self.string(value);
    }

    fn optional<S: AsRef<str>>(&mut self, first: &mut bool, key: &str, value: &Option<S>) {
        if let Some(v) = value {
            self.member(first, key, v.as_ref());
        }
    }

    fn value(&mut self, first: &mut bool, key: &str, value: &Option<Value>) {
        self.key(first, key);
        match value {
            Some(v) => {
                let _ = serde_json::to_writer(&mut self.0, v);
            }
            None => self.raw("null"),
        }
    }

    fn boolean(&mut self, first: &mut bool, key: &str, value: bool) {
        self.key(first, key);
        self.raw(if value { "true" } else { "false" });
    }

    fn event(&mut self, e: &AuditEvent) {
        let first = &mut true;
        self.0.push(b'{');
        self.member(first, "eventVersion", &e.event_version);
        self.key(first, "userIdentity");
        self.shared_user_identity(&e.user_identity);
        self.member(first, "eventTime", &e.event_time);
        self.member(first, "eventSource", &e.event_source);
        self.member(first, "eventName", &e.event_name);
        self.member(first, "awsRegion", &e.aws_region);
        self.member(first, "sourceIPAddress", &e.source_ip_address);
        self.member(first, "userAgent", &e.user_agent);
        self.value(first, "requestParameters", &e.request_parameters);
        self.value(first, "responseElements", &e.response_elements);
        self.optional(first, "errorCode", &e.error_code);
        self.optional(first, "errorMessage", &e.error_message);
        self.member(first, "requestID", &e.request_id);
        self.member(first, "eventID", &e.event_id);
        self.boolean(first, "readOnly", e.read_only);
        if !e.resources.is_empty() {
            self.key(first, "resources");
            self.0.push(b'[');
            for (i, r) in e.resources.iter().enumerate() {
                if i > 0 {
                    self.0.push(b',');
                }
                let first = &mut true;
                self.0.push(b'{');
                self.member(first, "ARN", &r.arn);
                self.member(first, "accountId", &r.account_id);
                self.optional(first, "type", &r.kind);
                self.0.push(b'}');
            }
            self.0.push(b']');
        }
        self.member(first, "eventType", &e.event_type);
        self.boolean(first, "managementEvent", e.management_event);
        self.member(first, "recipientAccountId", &e.recipient_account_id);
        self.member(first, "eventCategory", &e.event_category);
        self.key(first, "tlsDetails");
        match &e.tls_details {
            Some(t) => {
                let first = &mut true;
                self.0.push(b'{');
                self.member(first, "tlsVersion", &t.tls_version);
                self.member(first, "cipherSuite", &t.cipher_suite);
                self.0.push(b'}');
            }
            None => self.raw("null"),
        }
        self.0.push(b'}');
    }

    /// A caller's identity is the same in each of its events (one `Arc`),
    /// and its JSON is about a fifth of an event's: the last few written on
    /// this thread are kept. Holding the `Arc` keeps the identity from being
    /// changed (only an `Arc` held once can be) or freed and its address
    /// reused, so a kept JSON is always exactly this identity's.
    fn shared_user_identity(&mut self, u: &Arc<UserIdentity>) {
        type Kept = [Option<(Arc<UserIdentity>, Box<str>)>; 4];
        thread_local! {
            static KEPT: std::cell::RefCell<(Kept, usize)> = const { std::cell::RefCell::new(([None, None, None, None], 0)) };
        }
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            let (slots, next) = &mut *kept;
            if let Some((_, json)) = slots.iter().flatten().find(|(k, _)| Arc::ptr_eq(k, u)) {
                self.raw(json);
                return;
            }
            let start = self.0.len();
            self.user_identity(u);
            // Only what is written here as UTF-8 whole strings and ASCII.
            let json = String::from_utf8_lossy(&self.0[start..]).into();
            slots[*next] = Some((u.clone(), json));
            *next = (*next + 1) % slots.len();
        })
    }

    fn user_identity(&mut self, u: &UserIdentity) {
        let first = &mut true;
        self.0.push(b'{');
        self.member(first, "type", &u.kind);
        self.optional(first, "principalId", &u.principal_id);
        self.optional(first, "arn", &u.arn);
        self.optional(first, "accountId", &u.account_id);
        self.optional(first, "accessKeyId", &u.access_key_id);
        self.optional(first, "userName", &u.user_name);
        if let Some(s) = &u.session_context {
            self.key(first, "sessionContext");
            let first = &mut true;
            self.0.push(b'{');
            if let Some(i) = &s.session_issuer {
                self.key(first, "sessionIssuer");
                let first = &mut true;
                self.0.push(b'{');
                self.member(first, "type", &i.kind);
                self.member(first, "principalId", &i.principal_id);
                self.member(first, "arn", &i.arn);
                self.member(first, "accountId", &i.account_id);
                self.member(first, "userName", &i.user_name);
                self.0.push(b'}');
            }
            self.key(first, "attributes");
            let inner = &mut true;
            self.0.push(b'{');
            self.member(inner, "creationDate", &s.attributes.creation_date);
            self.member(inner, "mfaAuthenticated", &s.attributes.mfa_authenticated);
            self.0.push(b'}');
            self.optional(first, "sourceIdentity", &s.source_identity);
            self.0.push(b'}');
        }
        self.optional(first, "invokedBy", &u.invoked_by);
        self.0.push(b'}');
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
                    let k = lower_first(k);
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(into_parameters).collect()),
        other => other,
    }
}

/// [`into_parameters`] of a JSON request body, built while it is parsed
/// (one pass, no document in between: this runs for every audited call).
/// None if the body is not one JSON object.
pub fn parameters_of_json(body: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde::de::DeserializeSeed::deserialize(Parameters, &mut de).ok()?;
    de.end().ok()?;
    v.is_object().then_some(v)
}

/// Parses one JSON value the way [`into_parameters`] would leave it.
struct Parameters;

impl<'de> serde::de::DeserializeSeed<'de> for Parameters {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Parameters {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own Value does with a float it can't hold.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Parameters)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if is_sensitive_field(&key) {
                map.next_value_seed(Discard)?;
                Value::String(redact::REDACTED.to_owned())
            } else {
                map.next_value_seed(Parameters)?
            };
            let key = lower_first(key);
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parses one JSON value in full and keeps nothing of it: a sensitive
/// member's value is never copied, yet a body is read as valid exactly when
/// serde_json's own `Value` would read it (serde's `IgnoredAny` skips strings
/// without checking their UTF-8 and numbers without their range).
struct Discard;

impl<'de> serde::de::DeserializeSeed<'de> for Discard {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Discard {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Discard)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Discard)?.is_some() {
            map.next_value_seed(Discard)?;
        }
        Ok(())
    }
}

/// `SecretId` → `secretId`; a leading run of capitals is lowered as a word
/// (`ARN` → `arn`, not the `aRN` CloudTrail printed before 2024). In place:
/// this runs for every member of every audited request.
fn lower_first(mut k: String) -> String {
    let upper_run = k.bytes().take_while(u8::is_ascii_uppercase).count();
    let lower = match upper_run {
        0 => return k,
        n if n == k.len() => n,
        1 => 1,
        // "KMSKeyId" → "kmsKeyId": the last capital starts the next word.
        n => n - 1,
    };
    // ASCII capitals are one byte each: `lower` ends on a char boundary.
    k[..lower].make_ascii_lowercase();
    k
}

/// A GetSecretValue event for tests.
#[cfg(test)]
pub(crate) fn sample_event() -> AuditEvent {
    use serde_json::json;
    AuditEvent {
        event_version: EVENT_VERSION.into(),
        user_identity: Arc::new(UserIdentity {
            kind: "IAMUser".into(),
            arn: Some("arn:aws:iam::000000000000:user/admin".into()),
            ..Default::default()
        }),
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
    fn the_hand_written_json_is_serde_jsons_byte_for_byte() {
        let awkward = [
            "",
            "plain",
            "quote \" and backslash \\",
            "control \u{1}\n\t\u{1f} and DEL \u{7f}",
            "unicode é 秘密 🔑 and \u{2028}",
            "</script>",
            // Each byte that needs escaping alone, near the start and far in
            // (past the vectorised check's first lanes).
            "only a quote \" here",
            "only a backslash \\ here",
            &format!("{}\u{1}{}", "a".repeat(70), "b".repeat(60)),
            &format!("{}\"{}", "a".repeat(130), "b".repeat(9)),
            &format!("{}\\{}", "a".repeat(100), "b".repeat(3)),
        ];
        let mut events = vec![sample_event()];
        for (i, text) in awkward.iter().enumerate() {
            let t = |s: &str| format!("{s}{text}");
            let with_all = i % 2 == 0;
            let some = |s: &str| with_all.then(|| t(s));
            events.push(AuditEvent {
                event_version: t("1.08").into(),
                user_identity: Arc::new(UserIdentity {
                    kind: t("AssumedRole").into(),
                    principal_id: some("AROA:s"),
                    arn: some("arn"),
                    account_id: Some(t("0")),
                    access_key_id: some("ASIA"),
                    user_name: None,
                    session_context: Some(SessionContext {
                        session_issuer: with_all.then(|| SessionIssuer {
                            kind: t("Role"),
                            principal_id: t("AROA"),
                            arn: t("arn:aws:iam::0:role/r"),
                            account_id: t("0"),
                            user_name: t("r"),
                        }),
                        attributes: SessionAttributes {
                            creation_date: t("2026-11-24T00:00:00Z"),
                            mfa_authenticated: t("false"),
                        },
                        source_identity: some("src"),
                    }),
                    invoked_by: some("svc"),
                }),
                event_time: t("2026"),
                event_source: t("kms.amazonaws.com").into(),
                event_name: t("Decrypt"),
                aws_region: t("eu-west-1"),
                source_ip_address: t("::1"),
                user_agent: t("ua"),
                request_parameters: with_all
                    .then(|| json!({"secretId": t("x"), "n": 1.5, "list": [true, null, t("y")]})),
                response_elements: Some(json!({"arn": t("a")})),
                error_code: some("AccessDenied"),
                error_message: Some(t("denied")),
                request_id: t("r"),
                event_id: t("e"),
                read_only: with_all,
                resources: if with_all {
                    vec![
                        Resource {
                            arn: t("arn:1"),
                            account_id: t("0"),
                            kind: Some(t("AWS::KMS::Key").into()),
                        },
                        Resource {
                            arn: t("arn:2"),
                            account_id: t("0"),
                            kind: None,
                        },
                    ]
                } else {
                    Vec::new()
                },
                event_type: t("AwsApiCall").into(),
                management_event: !with_all,
                recipient_account_id: t("0"),
                event_category: t("Management").into(),
                tls_details: with_all.then(|| TlsDetails {
                    tls_version: t("TLSv1.3"),
                    cipher_suite: t("TLS_AES_128_GCM_SHA256"),
                }),
            });
        }
        for e in &events {
            assert_eq!(e.to_json(), serde_json::to_string(e).unwrap());
            assert_eq!(&serde_json::from_str::<AuditEvent>(&e.to_json()).unwrap(), e);
        }
    }

    #[test]
    fn a_shared_identity_is_written_as_it_is_now() {
        let mut e = sample_event();
        assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
        assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
        // Changed in place (the kept JSON holds the identity, so this copies
        // it), more times than identities are kept: each written as it is.
        for n in 0..10 {
            Arc::make_mut(&mut e.user_identity).user_name = Some(format!("u{n}"));
            let json = e.to_json();
            assert_eq!(json, serde_json::to_string(&e).unwrap());
            assert!(json.contains(&format!(r#""userName":"u{n}""#)));
        }
        // Identities that differ only in where they are: each its own.
        let twins: Vec<AuditEvent> = (0..6)
            .map(|n| AuditEvent {
                user_identity: Arc::new(UserIdentity {
                    access_key_id: Some(format!("AKIA{}", n % 2)),
                    ..(*e.user_identity).clone()
                }),
                ..sample_event()
            })
            .collect();
        for _ in 0..2 {
            for t in &twins {
                assert_eq!(t.to_json(), serde_json::to_string(t).unwrap());
            }
        }
    }

    #[test]
    fn member_names_become_lower_camel_case() {
        for (from, to) in [
            ("SecretId", "secretId"),
            ("ARN", "arn"),
            ("KMSKeyId", "kmsKeyId"),
            ("VersionStages", "versionStages"),
            ("already", "already"),
            ("A", "a"),
            ("ABÉ", "aBÉ"),
            ("ÉA", "ÉA"),
            ("", ""),
        ] {
            assert_eq!(lower_first(from.to_owned()), to);
        }
        let v = parameters(&json!({"SecretId": "db", "Tags": [{"Key": "k", "Value": "v"}]}));
        assert_eq!(v, json!({"secretId": "db", "tags": [{"key": "k", "value": "v"}]}));
    }

    #[test]
    fn parameters_parsed_in_one_pass_are_those_of_the_document() {
        // The two-pass way: a document, then renamed and redacted.
        let document = |body: &[u8]| {
            serde_json::from_slice::<Value>(body)
                .ok()
                .filter(Value::is_object)
                .map(into_parameters)
        };
        let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        let bodies = [
            r#"{"SecretId":"db","VersionStage":"AWSCURRENT"}"#,
            r#"{"SecretString":"hunter2","Tags":[{"Key":"k","Value":"v"}],"KMSKeyId":"alias/x","ARN":"a"}"#,
            r#"{"n":-1,"big":18446744073709551615,"bigger":1e300,"f":1.5,"t":true,"z":null,"e":[],"o":{}}"#,
            r#"{"nested":{"Credentials":{"SecretAccessKey":"s"},"list":[1,[2,{"Password":"p"}]]}}"#,
            r#"{"dup":1,"dup":2,"esc\u0041pe":"\u00e9\n"}"#,
            r#"  {"spaced" : [ 1 , 2 ] }  "#,
            r#"{"out of range":1e400}"#,
            "",
            "[]",
            "\"s\"",
            "1",
            "{",
            "{}x",
            r#"{"a":}"#,
            "{\"a\":\"\u{0}\"}",
            &deep,
            // A sensitive member's value is dropped unread, yet read in full:
            // what is not JSON there is not JSON anywhere.
            r#"{"Password":1e400}"#,
            r#"{"SecretString":[{"Key":"k","Values":[1e999]}]}"#,
            &deep.replacen("\"a\"", "\"Password\"", 1),
        ];
        let mut bodies: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
        // Found by the fuzzer: bytes that are not UTF-8 inside a sensitive value.
        bodies.push(b"{\"Name\":\"a\",\"SecretString\":[{\"Key\":\"nam\x84\",\"Values\":[\"a\"]}]}");
        bodies.push(b"{\"SecretString\":\"\xff\"}");
        bodies.push(b"{\"Password\":{\"\xc3\":1}}");
        for body in &bodies {
            assert_eq!(
                parameters_of_json(body),
                document(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(document(bodies[0]).is_some() && document(deep.as_bytes()).is_none());
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
