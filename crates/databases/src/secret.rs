//! A database secret as AWS's rotation templates read it:
//! `{"engine", "host", "port", "username", "password", "dbname",
//! "masterarn"}`, plus how to use TLS (`ssl` as AWS has it, or a
//! libpq-style `sslmode`). Fields Tumbler does not know are kept as they
//! are when a rotation writes the next version.

use serde_json::{Map, Value};
use tumbler_rotation::StepError;
use tumbler_types::SensitiveString;

/// Which wire protocol the database speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::MySql => "MySQL/MariaDB",
        }
    }

    /// The protocol an `engine` field value names.
    pub fn of(engine: &str) -> Option<Engine> {
        [Engine::Postgres, Engine::MySql]
            .into_iter()
            .find(|e| e.accepts(engine))
    }

    fn accepts(self, engine: &str) -> bool {
        match self {
            Engine::Postgres => matches!(engine, "postgres" | "postgresql" | "aurora-postgresql"),
            Engine::MySql => matches!(engine, "mysql" | "mariadb" | "aurora-mysql" | "aurora"),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
        }
    }

    /// The longest user name the server takes (PostgreSQL's NAMEDATALEN - 1;
    /// MySQL 8's 32 characters, MariaDB's 80).
    pub fn max_username(self, engine_name: &str) -> usize {
        match (self, engine_name) {
            (Engine::Postgres, _) => 63,
            (Engine::MySql, "mariadb") => 80,
            (Engine::MySql, _) => 32,
        }
    }
}

/// How the rotator reaches the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS with the certificate verified and the host name matched; plain
    /// TCP if that fails (AWS's templates do this when `ssl` is absent).
    Prefer,
    /// TLS, the certificate not verified (libpq's `require`).
    Require,
    /// TLS, the certificate verified against the system roots and the
    /// server's `--database-ca-file`, the host name matched.
    VerifyFull,
}

impl SslMode {
    fn parse(fields: &Map<String, Value>) -> Result<SslMode, String> {
        if let Some(mode) = fields.get("sslmode") {
            return match mode.as_str() {
                Some("disable") => Ok(SslMode::Disable),
                Some("prefer") => Ok(SslMode::Prefer),
                Some("require") => Ok(SslMode::Require),
                Some("verify-full") => Ok(SslMode::VerifyFull),
                _ => Err("field `sslmode` must be one of disable, prefer, require, verify-full".into()),
            };
        }
        // AWS's templates: a boolean (or "true"/"false") is strict, anything
        // else means "try TLS, then plain".
        Ok(match fields.get("ssl") {
            Some(Value::Bool(true)) => SslMode::VerifyFull,
            Some(Value::Bool(false)) => SslMode::Disable,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => SslMode::VerifyFull,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => SslMode::Disable,
            _ => SslMode::Prefer,
        })
    }
}

/// One version of a database secret, validated.
pub struct DbSecret {
    pub engine: Engine,
    /// The `engine` field as written (`postgres`, `mariadb`, ...).
    pub engine_name: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: SensitiveString,
    pub dbname: Option<String>,
    pub masterarn: Option<String>,
    pub ssl: SslMode,
    /// Every field, for writing the next version.
    fields: Map<String, Value>,
}

impl std::fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine_name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn text_field(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(format!("field `{name}` is empty")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("field `{name}` must be a string")),
    }
}

impl DbSecret {
    /// Parse `text`, the value of the version `which` names (for errors),
    /// as a secret for a database speaking `engine`.
    pub fn parse(text: &str, which: &str, engine: Engine) -> Result<DbSecret, StepError> {
        Self::parse_fields(text, engine).map_err(|e| StepError(format!("the {which} secret value: {e}")))
    }

    fn parse_fields(text: &str, engine: Engine) -> Result<DbSecret, String> {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
            return Err("not a JSON object".into());
        };
        let required = |name: &str| text_field(&fields, name)?.ok_or_else(|| format!("field `{name}` is missing"));
        let engine_name = required("engine")?;
        if !engine.accepts(&engine_name) {
            return Err(format!(
                "engine `{engine_name}` is not {}: this rotator needs {}",
                engine.name(),
                match engine {
                    Engine::Postgres => "postgres or aurora-postgresql",
                    Engine::MySql => "mysql, mariadb or aurora-mysql",
                }
            ));
        }
        let port = match fields.get("port") {
            None | Some(Value::Null) => engine.default_port(),
            // The RDS console writes numbers; hand-written secrets often strings.
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            Some(_) => 0,
        };
        if port == 0 {
            return Err("field `port` must be a port number, 1 to 65535".into());
        }
        let username = required("username")?;
        if username.len() > engine.max_username(&engine_name) {
            return Err(format!(
                "field `username` is longer than {} characters",
                engine.max_username(&engine_name)
            ));
        }
        let password = match fields.get("password") {
            Some(Value::String(s)) => SensitiveString::new(s.clone()),
            Some(_) => return Err("field `password` must be a string".into()),
            None => return Err("field `password` is missing".into()),
        };
        Ok(DbSecret {
            engine,
            host: required("host")?,
            port,
            username,
            password,
            dbname: text_field(&fields, "dbname")?,
            masterarn: text_field(&fields, "masterarn")?,
            ssl: SslMode::parse(&fields)?,
            engine_name,
            fields,
        })
    }

    /// The admin secret `masterarn` names, for logging in to the same
    /// server as `like`: RDS-managed master secrets hold only username and
    /// password, so what it lacks of engine, host, port and TLS comes from
    /// `like`; the database is `like`'s, as in AWS's template.
    pub fn parse_admin(text: &str, like: &DbSecret) -> Result<DbSecret, StepError> {
        let parsed = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut fields)) => {
                for name in ["engine", "host", "port", "ssl", "sslmode"] {
                    if !fields.contains_key(name)
                        && let Some(v) = like.fields.get(name)
                    {
                        fields.insert(name.into(), v.clone());
                    }
                }
                match &like.dbname {
                    Some(db) => fields.insert("dbname".into(), Value::String(db.clone())),
                    None => fields.remove("dbname"),
                };
                Self::parse_fields(&Value::Object(fields).to_string(), like.engine)
            }
            _ => Err("not a JSON object".into()),
        };
        parsed.map_err(|e| StepError(format!("the admin secret value (masterarn): {e}")))
    }

    /// The next version's value: this one with `username` and `password`.
    pub fn with_credentials(&self, username: &str, password: &str) -> String {
        let mut fields = self.fields.clone();
        fields.insert("username".into(), Value::String(username.to_owned()));
        fields.insert("password".into(), Value::String(password.to_owned()));
        Value::Object(fields).to_string()
    }

    /// Whether `other` names the same database server.
    pub fn same_server(&self, other: &DbSecret) -> bool {
        self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
    }
}

/// The other user of an alternating pair: `app` ⇄ `app_clone`, as AWS's
/// multi-user templates name them.
pub fn alternate_username(username: &str) -> String {
    match username.strip_suffix("_clone") {
        Some(base) => base.to_owned(),
        None => format!("{username}_clone"),
    }
}

/// The user of the pair that owns what both create (`app` for `app_clone`).
pub fn base_username(username: &str) -> &str {
    username.strip_suffix("_clone").unwrap_or(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_aws_templates_read() {
        let s = DbSecret::parse(
            r#"{"engine":"postgres","host":"db.internal","port":"6432","username":"app","password":"pw","dbname":"orders","x":1}"#,
            "AWSCURRENT",
            Engine::Postgres,
        )
        .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.dbname.as_deref()),
            ("db.internal", 6432, Some("orders"))
        );
        assert_eq!(s.ssl, SslMode::Prefer);
        let next: Value = serde_json::from_str(&s.with_credentials("app_clone", "new")).unwrap();
        assert_eq!(next["username"], "app_clone");
        assert_eq!(next["x"], 1);
        assert_eq!(next["port"], "6432");
        let s = DbSecret::parse(
            r#"{"engine":"mariadb","host":"h","username":"u","password":"p","ssl":true}"#,
            "AWSCURRENT",
            Engine::MySql,
        )
        .unwrap();
        assert_eq!((s.port, s.ssl), (3306, SslMode::VerifyFull));
        assert!(!format!("{s:?}").contains("\"p\""));
    }

    #[test]
    fn refuses_what_would_fail_later_with_a_clear_reason() {
        let cases = [
            (r#"[1]"#, "not a JSON object"),
            (
                r#"{"host":"h","username":"u","password":"p"}"#,
                "field `engine` is missing",
            ),
            (
                r#"{"engine":"oracle","host":"h","username":"u","password":"p"}"#,
                "engine `oracle` is not PostgreSQL",
            ),
            (
                r#"{"engine":"postgres","host":"h","port":70000,"username":"u","password":"p"}"#,
                "field `port` must be a port number",
            ),
            (
                r#"{"engine":"postgres","host":"h","username":"u"}"#,
                "field `password` is missing",
            ),
            (
                r#"{"engine":"postgres","host":"h","username":"u","password":5}"#,
                "field `password` must be a string",
            ),
            (
                r#"{"engine":"postgres","username":"u","password":"p"}"#,
                "field `host` is missing",
            ),
            (
                r#"{"engine":"postgres","host":"h","username":"u","password":"p","sslmode":"maybe"}"#,
                "field `sslmode` must be one of",
            ),
        ];
        for (text, expected) in cases {
            let e = DbSecret::parse(text, "AWSCURRENT", Engine::Postgres).unwrap_err();
            assert!(e.0.starts_with("the AWSCURRENT secret value: "), "{}", e.0);
            assert!(e.0.contains(expected), "{text}: {}", e.0);
        }
        let long = format!(
            r#"{{"engine":"postgres","host":"h","username":"{}","password":"p"}}"#,
            "u".repeat(64)
        );
        assert!(DbSecret::parse(&long, "AWSCURRENT", Engine::Postgres).is_err());
    }

    #[test]
    fn alternates_like_aws() {
        assert_eq!(alternate_username("app"), "app_clone");
        assert_eq!(alternate_username("app_clone"), "app");
        assert_eq!(base_username("app_clone"), "app");
        assert_eq!(base_username("app"), "app");
    }
}
