//! What every rotation function shares with AWS's rotation template
//! (`SecretsManagerRotationTemplate/lambda_function.py`): the token check
//! each step starts with, the password createSecret generates, and
//! finishSecret's label move. Built-in rotators of other crates use them.

use serde_json::{Value, json};

use crate::{StepCall, StepError};

/// AWS's templates leave these out: they break connection strings and shells.
pub const EXCLUDE_CHARACTERS: &str = ":/@\"'\\";
pub const PASSWORD_LENGTH: u32 = 32;

pub fn not_found(e: &tumbler_wire::AwsError) -> bool {
    e.code == "ResourceNotFoundException"
}

/// A new password from GetRandomPassword, as the templates ask for it.
pub fn random_password(call: &StepCall<'_>) -> Result<String, StepError> {
    let password = call.call(
        "GetRandomPassword",
        json!({"PasswordLength": PASSWORD_LENGTH, "ExcludeCharacters": EXCLUDE_CHARACTERS, "RequireEachIncludedType": true}),
    )?;
    password
        .get("RandomPassword")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StepError("GetRandomPassword returned no password".into()))
}

/// The SecretString of a version (`VersionId` and/or `VersionStage`), or
/// None if there is no such version or it has no value yet.
pub fn secret_string(call: &StepCall<'_>, version_id: Option<&str>, stage: &str) -> Result<Option<String>, StepError> {
    let mut request = json!({"SecretId": call.secret_arn, "VersionStage": stage});
    if let Some(id) = version_id {
        request["VersionId"] = Value::String(id.to_owned());
    }
    match call.call("GetSecretValue", request) {
        Ok(v) => Ok(v.get("SecretString").and_then(Value::as_str).map(str::to_owned)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The template's prologue: the token must be a version with
/// AWSPENDING; a version already AWSCURRENT means the work is done.
pub fn check_token(call: &StepCall<'_>) -> Result<bool, StepError> {
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

/// finishSecret: AWSCURRENT moves to the token (AWSPREVIOUS follows).
pub fn finish(call: &StepCall<'_>) -> Result<(), StepError> {
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
