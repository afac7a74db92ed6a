//! One call's audit event on its way to the store: committed with the
//! call's change if it makes one, recorded on its own otherwise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};
use tumbler_store::{AuditRecord, Journal, Write};

use crate::{AuditEvent, Resource};

/// The event of one API call. The server fills in who called and what they
/// asked; the domain's commit (through [`Journal`]) adds what the change
/// produced; the server adds the outcome of a call that changed nothing.
pub struct CallJournal {
    event: Mutex<Option<AuditEvent>>,
    committed: AtomicBool,
}

impl CallJournal {
    pub fn new(event: AuditEvent) -> CallJournal {
        CallJournal {
            event: Mutex::new(Some(event)),
            committed: AtomicBool::new(false),
        }
    }

    /// The event was committed with the call's change.
    pub fn is_committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }

    /// The event of a call that committed nothing, with its error if it
    /// failed. None if the event was already committed or taken.
    pub fn finish(&self, error: Option<(&str, &str)>) -> Option<AuditRecord> {
        if self.is_committed() {
            return None;
        }
        let mut event = self.event.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        if let Some((code, message)) = error {
            event.error_code = Some(code.to_owned());
            event.error_message = Some(message.to_owned());
        }
        Some(AuditRecord { json: event.to_json() })
    }
}

impl Journal for CallJournal {
    fn event_for(&self, writes: &[Write]) -> Option<AuditRecord> {
        if self.is_committed() {
            return None;
        }
        // A poisoned lock still holds the event: never let a change go without it.
        let guard = self.event.lock().unwrap_or_else(|e| e.into_inner());
        let mut event = guard.as_ref()?.clone();
        event.response_elements = response_elements(writes);
        for w in writes {
            if let Write::CreateSecret { row, .. } | Write::UpdateSecret { row, .. } = w {
                add_resource(&mut event, &row.arn, &row.account, "AWS::SecretsManager::Secret");
            }
        }
        Some(AuditRecord { json: event.to_json() })
    }

    fn committed(&self) {
        self.committed.store(true, Ordering::Release);
    }

    fn resource(&self, arn: &str, account: &str, kind: &'static str) {
        if let Some(event) = self.event.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            add_resource(event, arn, account, kind);
        }
    }
}

fn add_resource(event: &mut AuditEvent, arn: &str, account: &str, kind: &'static str) {
    if !event.resources.iter().any(|r| r.arn == arn) {
        event.resources.push(Resource {
            arn: arn.to_owned(),
            account_id: account.to_owned(),
            kind: Some(kind.into()),
        });
    }
}

/// What a change produced, as CloudTrail's `responseElements` shows it:
/// the identifiers of what was created or changed, never values or keys.
pub fn response_elements(writes: &[Write]) -> Option<Value> {
    writes.iter().find_map(|w| match w {
        Write::CreateSecret { row, versions, .. } => {
            let mut m = json!({"arn": row.arn, "name": row.name});
            if let Some(v) = versions.iter().find(|v| v.value.is_some()) {
                m["versionId"] = json!(v.version_id);
            }
            Some(m)
        }
        Write::UpdateSecret { row, new_versions, .. } => {
            let mut m = json!({"arn": row.arn, "name": row.name});
            if let Some(v) = new_versions.iter().find(|v| v.value.is_some()) {
                m["versionId"] = json!(v.version_id);
            }
            Some(m)
        }
        Write::CreateKmsKey { key, .. } => Some(json!({"keyMetadata": {"keyId": key.key_id, "arn": key.arn}})),
        Write::CreatePrincipal(p) if p.kind == "role" => {
            Some(json!({"role": {"arn": p.arn, "roleName": p.name, "roleId": p.unique_id}}))
        }
        Write::CreatePrincipal(p) if p.kind == "group" => {
            Some(json!({"group": {"arn": p.arn, "groupName": p.name, "groupId": p.unique_id}}))
        }
        Write::CreatePrincipal(p) => Some(json!({"user": {"arn": p.arn, "userName": p.name, "userId": p.unique_id}})),
        Write::CreateAccessKey(k) => Some(json!({"accessKey": {
            "accessKeyId": k.access_key_id,
            "status": k.status,
            "userName": k.principal_arn.rsplit('/').next().unwrap_or_default(),
        }})),
        Write::CreateManagedPolicy { row, version } => Some(json!({"policy": {
            "arn": row.arn, "policyName": row.name, "policyId": row.policy_id, "defaultVersionId": version.version_id,
        }})),
        Write::PutPolicyVersion { version, .. } => Some(json!({"policyVersion": {"versionId": version.version_id}})),
        _ => None,
    })
}

/// A Query-protocol request (IAM, STS) as CloudTrail shows it: its
/// parameters without `Action` and `Version`, names in lowerCamelCase,
/// sensitive values removed.
pub fn query_parameters<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Value> {
    let map: Map<String, Value> = params
        .into_iter()
        .filter(|(k, _)| *k != "Action" && *k != "Version")
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    if map.is_empty() {
        return None;
    }
    Some(crate::into_parameters(Value::Object(map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            event_name: "PutSecretValue".into(),
            read_only: false,
            ..crate::sample_event()
        }
    }

    #[test]
    fn a_committed_event_is_not_recorded_again() {
        let j = CallJournal::new(event());
        let first = j.event_for(&[Write::PurgeSecret { id: 1 }]).unwrap();
        assert!(first.json.contains("PutSecretValue"));
        j.committed();
        assert!(j.event_for(&[Write::PurgeSecret { id: 1 }]).is_none());
        assert!(j.finish(None).is_none());
    }

    #[test]
    fn an_uncommitted_event_carries_its_error() {
        let j = CallJournal::new(event());
        let r = j.finish(Some(("ResourceNotFoundException", "not found"))).unwrap();
        let v: Value = serde_json::from_str(&r.json).unwrap();
        assert_eq!(v["errorCode"], "ResourceNotFoundException");
        assert!(j.finish(None).is_none());
    }

    #[test]
    fn query_parameters_are_renamed_and_redacted() {
        let v = query_parameters([
            ("Action", "AssumeRole"),
            ("RoleArn", "arn:aws:iam::000000000000:role/r"),
            ("TokenCode", "123456"),
        ])
        .unwrap();
        assert_eq!(v["roleArn"], "arn:aws:iam::000000000000:role/r");
        assert_eq!(v["tokenCode"], crate::redact::REDACTED);
        assert!(v.get("action").is_none());
    }
}
