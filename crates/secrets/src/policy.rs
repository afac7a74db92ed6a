//! Resource policy checks done at PutResourcePolicy time: the document's
//! syntax, and whether it grants public access (BlockPublicPolicy).
//! Evaluation belongs to the identity issue's policy engine.

use serde_json::Value;

/// None if the policy document is well-formed; otherwise what is wrong.
pub fn check_syntax(doc: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(doc).map_err(|e| format!("This resource policy is not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("A policy document must be a JSON object.")?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
            return Err(format!("Policy document has an unknown element '{k}'."));
        }
    }
    if let Some(ver) = obj.get("Version")
        && !matches!(ver.as_str(), Some("2012-10-17") | Some("2008-10-17"))
    {
        return Err("The policy Version must be \"2012-10-17\" or \"2008-10-17\".".into());
    }
    let statements = match obj.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => {
            return Err("A policy document must contain a Statement element (an object or a list).".into());
        }
    };
    if statements.is_empty() {
        return Err("The policy's Statement list is empty.".into());
    }
    for (i, s) in statements.iter().enumerate() {
        let n = i + 1;
        let s = s.as_object().ok_or(format!("Statement {n} must be a JSON object."))?;
        for k in s.keys() {
            if !matches!(
                k.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(format!("Statement {n} has an unknown element '{k}'."));
            }
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") | Some("Deny") => {}
            _ => {
                return Err(format!("Statement {n} must have Effect \"Allow\" or \"Deny\"."));
            }
        }
        if s.contains_key("Action") == s.contains_key("NotAction") {
            return Err(format!("Statement {n} must have exactly one of Action or NotAction."));
        }
        if s.contains_key("Resource") && s.contains_key("NotResource") {
            return Err(format!("Statement {n} can't have both Resource and NotResource."));
        }
        if s.contains_key("Principal") == s.contains_key("NotPrincipal") {
            return Err(format!(
                "Statement {n} of a resource policy must have exactly one of Principal or NotPrincipal."
            ));
        }
        for key in ["Action", "NotAction", "Resource", "NotResource"] {
            if let Some(v) = s.get(key)
                && !string_or_strings(v)
            {
                return Err(format!("Statement {n}: {key} must be a string or a list of strings."));
            }
        }
        if let Some(c) = s.get("Condition") {
            let c = c
                .as_object()
                .ok_or(format!("Statement {n}: Condition must be an object."))?;
            if c.values().any(|op| !op.is_object()) {
                return Err(format!(
                    "Statement {n}: each Condition operator must map to an object of keys."
                ));
            }
        }
    }
    Ok(())
}

fn string_or_strings(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(a) => !a.is_empty() && a.iter().all(Value::is_string),
        _ => false,
    }
}

/// True if an Allow statement names everyone (`"*"` or `{"AWS": "*"}`) as
/// principal without a Condition to narrow it.
pub fn grants_public_access(doc: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(doc) else {
        return false;
    };
    let statements = match v.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s) => vec![s.clone()],
        None => return false,
    };
    statements.iter().any(|s| {
        let everyone = |p: &Value| match p {
            Value::String(s) => s == "*",
            Value::Array(a) => a.iter().any(|x| x == "*"),
            Value::Object(o) => o
                .get("AWS")
                .is_some_and(|a| a == "*" || a.as_array().is_some_and(|l| l.iter().any(|x| x == "*"))),
            _ => false,
        };
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("Principal").is_some_and(everyone)
            && s.get("Condition").is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;

    #[test]
    fn syntax() {
        assert!(check_syntax(OK).is_ok());
        assert!(check_syntax("{").is_err());
        assert!(check_syntax(r#"{"Statement":[]}"#).is_err());
        assert!(check_syntax(r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"x"}}"#).is_err());
        assert!(check_syntax(r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#).is_err());
        assert!(check_syntax(r#"{"Bogus":1,"Statement":{"Effect":"Allow","Principal":"*","Action":"x"}}"#).is_err());
    }

    #[test]
    fn public() {
        assert!(!grants_public_access(OK));
        assert!(grants_public_access(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"x"}}"#
        ));
        assert!(grants_public_access(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"x"}}"#
        ));
        assert!(!grants_public_access(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"x","Condition":{"StringEquals":{"aws:PrincipalAccount":"1"}}}}"#
        ));
    }
}
