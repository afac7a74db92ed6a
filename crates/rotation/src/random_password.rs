//! The built-in random-password rotator: AWS's rotation template
//! (`SecretsManagerRotationTemplate`) with nothing to set: createSecret
//! writes AWSPENDING with a new password (the `password` field of a JSON
//! secret, or the whole string), testSecret checks it reads back whole,
//! finishSecret moves AWSCURRENT. For testing rotation, and for secrets
//! that no other system consumes.

use serde_json::{Value, json};

use crate::{Rotator, Step, StepCall, StepError, template};

pub const ARN: &str = "arn:aws:lambda:::function:tumbler-random-password";

pub struct RandomPassword;

impl RandomPassword {
    fn create(call: &StepCall<'_>) -> Result<(), StepError> {
        let current = match call.call(
            "GetSecretValue",
            json!({"SecretId": call.secret_arn, "VersionStage": "AWSCURRENT"}),
        ) {
            Ok(v) => v.get("SecretString").and_then(Value::as_str).map(str::to_owned),
            Err(e) if template::not_found(&e) => None,
            Err(e) => return Err(e.into()),
        };
        match call.call(
            "GetSecretValue",
            json!({"SecretId": call.secret_arn, "VersionId": call.token, "VersionStage": "AWSPENDING"}),
        ) {
            // A retry: the pending value exists already.
            Ok(_) => return Ok(()),
            Err(e) if template::not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let password = template::random_password(call)?;
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
}

impl Rotator for RandomPassword {
    fn arn(&self) -> &str {
        ARN
    }

    fn description(&self) -> &str {
        "a new random password (32 characters) in the secret's `password` field, or as the whole string"
    }

    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError> {
        if template::check_token(call)? {
            return Ok(());
        }
        match step {
            Step::CreateSecret => Self::create(call),
            // Nothing outside Tumbler holds this password.
            Step::SetSecret => Ok(()),
            Step::TestSecret => Self::test(call),
            Step::FinishSecret => template::finish(call),
        }
    }
}
