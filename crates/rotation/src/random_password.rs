//! The built-in random-password rotator: AWS's rotation template
//! (`SecretsManagerRotationTemplate`) with nothing to set: createSecret
//! writes AWSPENDING with a new password (the `password` field of a JSON
//! secret, or the whole string), testSecret checks it reads back whole,
//! finishSecret moves AWSCURRENT. For testing rotation, and for secrets
//! that no other system consumes.

use serde_json::{Value, json};

use crate::{Rotator, Step, StepCall, StepError};

pub const ARN: &str = "arn:aws:lambda:::function:tumbler-random-password";
/// AWS's templates leave these out: they break connection strings and shells.
const EXCLUDE: &str = ":/@\"'\\";
const LENGTH: u32 = 32;

pub struct RandomPassword;

fn not_found(e: &tumbler_wire::AwsError) -> bool {
    e.code == "ResourceNotFoundException"
}

impl RandomPassword {
    /// The template's prologue: the token must be a version with
    /// AWSPENDING; a version already AWSCURRENT means the work is done.
    fn check_token(call: &StepCall<'_>) -> Result<bool, StepError> {
        let described = call.call("DescribeSecret", json!({"SecretId": call.secret_arn}))?;
        if described.get("RotationEnabled") == Some(&Value::Bool(false)) {
            return Err(StepError(format!(
                "Secret {} is not enabled for rotation",
                call.secret_arn
            )));
        }
        let stages = described
            .get("VersionIdsToStages")
            .and_then(|v| v.get(call.token))
            .and_then(Value::as_array)
            .ok_or_else(|| StepError(format!("Secret version {} has no stage for rotation", call.token)))?;
        let has = |s: &str| stages.iter().any(|v| v == s);
        if has("AWSCURRENT") {
            return Ok(true);
        }
        if !has("AWSPENDING") {
            return Err(StepError(format!(
                "Secret version {} not set as AWSPENDING for rotation",
                call.token
            )));
        }
        Ok(false)
    }

    fn create(call: &StepCall<'_>) -> Result<(), StepError> {
        let current = match call.call(
            "GetSecretValue",
            json!({"SecretId": call.secret_arn, "VersionStage": "AWSCURRENT"}),
        ) {
            Ok(v) => v.get("SecretString").and_then(Value::as_str).map(str::to_owned),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(e.into()),
        };
        match call.call(
            "GetSecretValue",
            json!({"SecretId": call.secret_arn, "VersionId": call.token, "VersionStage": "AWSPENDING"}),
        ) {
            // A retry: the pending value exists already.
            Ok(_) => return Ok(()),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let password = call.call(
            "GetRandomPassword",
            json!({"PasswordLength": LENGTH, "ExcludeCharacters": EXCLUDE, "RequireEachIncludedType": true}),
        )?;
        let password = password
            .get("RandomPassword")
            .and_then(Value::as_str)
            .ok_or_else(|| StepError("GetRandomPassword returned no password".into()))?
            .to_owned();
        // A JSON object keeps its other fields; anything else is replaced.
        let value = match current.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(mut fields))) => {
                fields.insert("password".into(), Value::String(password));
                Value::Object(fields).to_string()
            }
            _ => password,
        };
        call.call(
            "PutSecretValue",
            json!({
                "SecretId": call.secret_arn,
                "ClientRequestToken": call.token,
                "SecretString": value,
                "VersionStages": ["AWSPENDING"],
            }),
        )?;
        Ok(())
    }

    fn test(call: &StepCall<'_>) -> Result<(), StepError> {
        let pending = call.call(
            "GetSecretValue",
            json!({"SecretId": call.secret_arn, "VersionId": call.token, "VersionStage": "AWSPENDING"}),
        )?;
        let Some(text) = pending.get("SecretString").and_then(Value::as_str) else {
            return Ok(());
        };
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text)
            && let Some(password) = fields.get("password")
            && password.as_str().is_none_or(str::is_empty)
        {
            return Err(StepError(
                "the pending value's password is empty or not a string".into(),
            ));
        }
        Ok(())
    }

    fn finish(call: &StepCall<'_>) -> Result<(), StepError> {
        let described = call.call("DescribeSecret", json!({"SecretId": call.secret_arn}))?;
        let current = described
            .get("VersionIdsToStages")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter()
                    .find(|(_, stages)| stages.as_array().is_some_and(|s| s.iter().any(|v| v == "AWSCURRENT")))
                    .map(|(id, _)| id.clone())
            });
        if current.as_deref() == Some(call.token) {
            return Ok(());
        }
        let mut move_label = json!({
            "SecretId": call.secret_arn,
            "VersionStage": "AWSCURRENT",
            "MoveToVersionId": call.token,
        });
        if let Some(current) = current {
            move_label["RemoveFromVersionId"] = Value::String(current);
        }
        call.call("UpdateSecretVersionStage", move_label)?;
        Ok(())
    }
}

impl Rotator for RandomPassword {
    fn arn(&self) -> &str {
        ARN
    }

    fn description(&self) -> &str {
        "a new random password (32 characters) in the secret's `password` field, or as the whole string"
    }

    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError> {
        if Self::check_token(call)? {
            return Ok(());
        }
        match step {
            Step::CreateSecret => Self::create(call),
            // Nothing outside Tumbler holds this password.
            Step::SetSecret => Ok(()),
            Step::TestSecret => Self::test(call),
            Step::FinishSecret => Self::finish(call),
        }
    }
}
