//! The value of a Kafka SCRAM secret, as MSK defines it:
//! `{"username": "alice", "password": "alice-secret"}` (other fields kept).

use serde_json::Value;
use tumbler_types::SensitiveString;

pub struct ScramSecret {
    pub username: String,
    pub password: SensitiveString,
}

/// Kafka principals and ACLs use the name as is; these characters need no
/// escaping anywhere (SCRAM wire, `super.users`, JAAS lines, ACL tools).
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

impl ScramSecret {
    /// Parse a SecretString; the error says what is wrong without quoting it.
    pub fn parse(text: &str) -> Result<ScramSecret, String> {
        let value: Value = serde_json::from_str(text).map_err(|_| {
            "the secret value is not JSON; it must be {\"username\": ..., \"password\": ...}".to_owned()
        })?;
        let field = |name: &str| value.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let username = field("username").ok_or("the secret value has no \"username\" string")?;
        let password = field("password").ok_or("the secret value has no \"password\" string")?;
        if !valid_username(username) {
            return Err(
                "the username must be 1-128 characters of letters, digits and . _ @ - (Kafka principals are used \
                 unescaped)"
                    .into(),
            );
        }
        if password.len() > 1024 {
            return Err("the password is longer than 1024 bytes".into());
        }
        Ok(ScramSecret {
            username: username.to_owned(),
            password: SensitiveString::new(password.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msk_shape_is_required() {
        let ok = ScramSecret::parse(r#"{"username":"alice","password":"s3cret","note":1}"#).unwrap();
        assert_eq!(ok.username, "alice");
        assert_eq!(ok.password.expose(), "s3cret");
        for bad in [
            "",
            "[]",
            "not json",
            r#"{"username":"alice"}"#,
            r#"{"password":"x"}"#,
            r#"{"username":"","password":"x"}"#,
            r#"{"username":"al ice","password":"x"}"#,
            r#"{"username":"a,b","password":"x"}"#,
            r#"{"username":"a=b","password":"x"}"#,
            r#"{"username":7,"password":"x"}"#,
        ] {
            let e = ScramSecret::parse(bad).err().expect(bad);
            assert!(!e.contains("x\""), "{e}");
        }
    }
}
