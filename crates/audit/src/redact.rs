//! What an audit record must never hold: secret values, passwords, keys and
//! tokens. Matching is by member name, case-insensitively, on every level of
//! the document, and errs on the side of removing.

use serde_json::Value;

/// What replaces a removed value, so the record still shows the member was sent.
pub const REDACTED: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// Member names (lower case, without `_`/`-`) whose values are never recorded.
const SENSITIVE: &[&str] = &[
    "secretstring",
    "secretbinary",
    "password",
    "newpassword",
    "oldpassword",
    "randompassword",
    "secretaccesskey",
    "sessiontoken",
    "rotationtoken",
    "plaintext",
    "privatekey",
    "clientsecret",
    "accesstoken",
    "refreshtoken",
    "credentials",
    "tokencode",
];

/// Whether a member of this name is never recorded.
pub fn is_sensitive_field(name: &str) -> bool {
    // Asked of every member of every audited request: compared as it is
    // folded, without building the folded name.
    let folded = name
        .bytes()
        .filter(|b| *b != b'_' && *b != b'-')
        .map(|b| b.to_ascii_lowercase());
    SENSITIVE.iter().any(|s| s.bytes().eq(folded.clone())) || folded.rev().take(8).eq(b"password".iter().rev().copied())
}

/// `v` with the values of sensitive members replaced by [`REDACTED`].
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_sensitive_field(k) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_names_are_matched_folded() {
        for name in [
            "SecretString",
            "secret_string",
            "SECRET-BINARY",
            "Password",
            "MasterUserPassword",
            "master_user_password",
            "credentials",
            "TokenCode",
            &("x".repeat(100) + "PASSWORD"),
        ] {
            assert!(is_sensitive_field(name), "{name}");
        }
        for name in [
            "SecretId",
            "secretStrings",
            "passwordLength",
            "passwor",
            "",
            "ñpasswordñ",
            "PasswordPolicy",
            "Credential",
        ] {
            assert!(!is_sensitive_field(name), "{name}");
        }
    }

    #[test]
    fn secret_members_are_removed_at_any_depth() {
        let v = redact(&json!({
            "secretId": "db",
            "secretString": "hunter2",
            "SecretBinary": "AAEC",
            "nested": [{"Password": "p", "userName": "u"}],
            "credentials": {"accessKeyId": "ASIA", "secretAccessKey": "s", "sessionToken": "t"},
            "clientRequestToken": "keep-me",
            "MasterUserPassword": "m",
        }));
        let text = v.to_string();
        for leaked in ["hunter2", "AAEC", "\"p\"", "\"s\"", "\"t\"", "\"m\""] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
        }
        assert_eq!(v["secretId"], "db");
        assert_eq!(v["clientRequestToken"], "keep-me");
        assert_eq!(v["nested"][0]["userName"], "u");
        assert_eq!(v["secretString"], REDACTED);
    }
}
