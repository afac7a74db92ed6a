//! Arbitrary bytes as the JSON body of every Secrets Manager operation and
//! as a Query (STS) form body: decoding and validation must never panic,
//! and every failure must be one of AWS's client error codes. The audit
//! trail's `requestParameters` of the body keep no sensitive value and exist
//! exactly when the body is a JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_wire::secretsmanager as sm;
use tumbler_wire::{AwsError, decode};

fn check<T: serde::de::DeserializeOwned>(body: &[u8], validate: fn(&T) -> Result<(), AwsError>) {
    match decode::<T>(body) {
        Ok(req) => {
            if let Err(e) = validate(&req) {
                assert_eq!(e.code, "ValidationException");
            }
        }
        Err(e) => assert_eq!(e.code, "SerializationException"),
    }
}

/// Every member with a sensitive name, at any depth, holds only the mark.
fn nothing_sensitive(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(map) => map.iter().all(|(k, v)| {
            if tumbler_audit::is_sensitive_field(k) {
                v.as_str() == Some("HIDDEN_DUE_TO_SECURITY_REASONS")
            } else {
                nothing_sensitive(v)
            }
        }),
        serde_json::Value::Array(items) => items.iter().all(nothing_sensitive),
        _ => true,
    }
}

fuzz_target!(|body: &[u8]| {
    let parameters = tumbler_audit::parameters_of_json(body);
    let object = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object());
    assert_eq!(parameters.is_some(), object);
    assert!(parameters.as_ref().is_none_or(nothing_sensitive));
    check::<sm::CreateSecretRequest>(body, sm::CreateSecretRequest::validate);
    check::<sm::GetSecretValueRequest>(body, sm::GetSecretValueRequest::validate);
    check::<sm::BatchGetSecretValueRequest>(body, sm::BatchGetSecretValueRequest::validate);
    check::<sm::PutSecretValueRequest>(body, sm::PutSecretValueRequest::validate);
    check::<sm::UpdateSecretRequest>(body, sm::UpdateSecretRequest::validate);
    check::<sm::ListSecretsRequest>(body, sm::ListSecretsRequest::validate);
    check::<sm::ListSecretVersionIdsRequest>(body, sm::ListSecretVersionIdsRequest::validate);
    check::<sm::UpdateSecretVersionStageRequest>(body, sm::UpdateSecretVersionStageRequest::validate);
    check::<sm::DeleteSecretRequest>(body, sm::DeleteSecretRequest::validate);
    check::<sm::TagResourceRequest>(body, sm::TagResourceRequest::validate);
    check::<sm::UntagResourceRequest>(body, sm::UntagResourceRequest::validate);
    check::<sm::GetRandomPasswordRequest>(body, sm::GetRandomPasswordRequest::validate);
    check::<sm::PutResourcePolicyRequest>(body, sm::PutResourcePolicyRequest::validate);
    check::<sm::ReplicateSecretToRegionsRequest>(body, sm::ReplicateSecretToRegionsRequest::validate);
    check::<sm::RemoveRegionsFromReplicationRequest>(body, sm::RemoveRegionsFromReplicationRequest::validate);
    let _ = tumbler_wire::query::parse_params(std::str::from_utf8(body).ok(), body);
    // KMS shapes: decoding alone (their checks live in the service).
    let _ = decode::<tumbler_wire::kms::CreateKeyRequest>(body);
    let _ = decode::<tumbler_wire::kms::EncryptRequest>(body);
    let _ = decode::<tumbler_wire::kms::DecryptRequest>(body);
    let _ = decode::<tumbler_wire::kms::ReEncryptRequest>(body);
    let _ = decode::<tumbler_wire::kms::GenerateDataKeyRequest>(body);
    let _ = decode::<tumbler_wire::kms::AliasRequest>(body);
    let _ = decode::<tumbler_wire::kms::KeyPolicyRequest>(body);
    let _ = decode::<tumbler_wire::kms::CreateGrantRequest>(body);
    let _ = decode::<tumbler_wire::kms::ListGrantsRequest>(body);
    let _ = decode::<tumbler_wire::kms::RetireGrantRequest>(body);
});
