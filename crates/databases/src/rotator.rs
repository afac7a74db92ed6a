//! The four steps for databases, as AWS's RDS rotation functions do them
//! (`SecretsManagerRDS{PostgreSQL,MySQL}Rotation{SingleUser,MultiUser}`):
//!
//! - single user: createSecret copies AWSCURRENT with a new password;
//!   setSecret logs in with the pending value (done already?), else with
//!   AWSCURRENT, else AWSPREVIOUS (a rotation that set the password but
//!   did not finish), and changes the user's own password;
//! - alternating users: createSecret names the other user of the pair
//!   (`app` ⇄ `app_clone`); setSecret proves AWSCURRENT still logs in, then
//!   logs in as the admin user `masterarn` names and sets the other user's
//!   password, creating it the first time as a user that acts as `app`;
//! - testSecret logs in with the pending value and runs a query;
//!   finishSecret moves AWSCURRENT.
//!
//! The database work runs on the server's runtime with a time limit, so
//! a dead database fails the step (to be retried) instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tumbler_rotation::{Rotator, Step, StepCall, StepError, template};

use crate::secret::{DbSecret, Engine, alternate_username, base_username};
use crate::tls::DatabaseTls;
use crate::{mysql, postgres};

pub const POSTGRES_SINGLE_USER: &str = "arn:aws:lambda:::function:tumbler-postgres-single-user";
pub const POSTGRES_ALTERNATING_USERS: &str = "arn:aws:lambda:::function:tumbler-postgres-alternating-users";
pub const MYSQL_SINGLE_USER: &str = "arn:aws:lambda:::function:tumbler-mysql-single-user";
pub const MYSQL_ALTERNATING_USERS: &str = "arn:aws:lambda:::function:tumbler-mysql-alternating-users";

/// The longest a step's database work may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct DatabaseRotator {
    engine: Engine,
    alternating: bool,
    tls: DatabaseTls,
    runtime: tokio::runtime::Handle,
}

/// The four database rotators.
pub fn rotators(tls: DatabaseTls, runtime: tokio::runtime::Handle) -> Vec<Arc<dyn Rotator>> {
    [
        (Engine::Postgres, false),
        (Engine::Postgres, true),
        (Engine::MySql, false),
        (Engine::MySql, true),
    ]
    .into_iter()
    .map(|(engine, alternating)| {
        Arc::new(DatabaseRotator {
            engine,
            alternating,
            tls: tls.clone(),
            runtime: runtime.clone(),
        }) as Arc<dyn Rotator>
    })
    .collect()
}

impl Rotator for DatabaseRotator {
    fn arn(&self) -> &str {
        match (self.engine, self.alternating) {
            (Engine::Postgres, false) => POSTGRES_SINGLE_USER,
            (Engine::Postgres, true) => POSTGRES_ALTERNATING_USERS,
            (Engine::MySql, false) => MYSQL_SINGLE_USER,
            (Engine::MySql, true) => MYSQL_ALTERNATING_USERS,
        }
    }

    fn description(&self) -> &str {
        match (self.engine, self.alternating) {
            (Engine::Postgres, false) => {
                "PostgreSQL, one user changes its own password (new logins fail until finishSecret; open sessions stay)"
            }
            (Engine::Postgres, true) => {
                "PostgreSQL, users app and app_clone take turns; the admin secret `masterarn` sets the idle one's password"
            }
            (Engine::MySql, false) => "MySQL/MariaDB, one user changes its own password (ALTER USER)",
            (Engine::MySql, true) => {
                "MySQL/MariaDB, users app and app_clone take turns with the same grants; the admin secret `masterarn` sets them"
            }
        }
    }

    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError> {
        if template::check_token(call)? {
            return Ok(());
        }
        match step {
            Step::CreateSecret => self.create(call),
            Step::SetSecret => self.set(call),
            Step::TestSecret => self.test(call),
            Step::FinishSecret => template::finish(call),
        }
    }
}

impl DatabaseRotator {
    /// Run database work on the server's runtime, within the step's time.
    fn block<T>(&self, work: impl Future<Output = Result<T, String>>) -> Result<T, StepError> {
        match self.runtime.block_on(tokio::time::timeout(STEP_TIMEOUT, work)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StepError(e)),
            Err(_) => Err(StepError(format!(
                "the database did not finish within {} seconds",
                STEP_TIMEOUT.as_secs()
            ))),
        }
    }

    fn version(&self, call: &StepCall<'_>, stage: &str) -> Result<DbSecret, StepError> {
        let token = (stage == "AWSPENDING").then_some(call.token);
        let text = template::secret_string(call, token, stage)?
            .ok_or_else(|| StepError(format!("the secret has no {stage} value")))?;
        DbSecret::parse(&text, stage, self.engine)
    }

    fn create(&self, call: &StepCall<'_>) -> Result<(), StepError> {
        let current = self.version(call, "AWSCURRENT")?;
        if self.alternating && current.masterarn.is_none() {
            return Err(StepError(
                "the AWSCURRENT secret value: field `masterarn` is missing: alternating users are set up by the \
                 admin user whose secret it names"
                    .into(),
            ));
        }
        if template::secret_string(call, Some(call.token), "AWSPENDING")?.is_some() {
            return Ok(());
        }
        let username = if self.alternating {
            alternate_username(&current.username)
        } else {
            current.username.clone()
        };
        let longest = self.engine.max_username(&current.engine_name);
        if username.len() > longest {
            return Err(StepError(format!(
                "the alternate user name {username} is longer than {longest} characters"
            )));
        }
        let password = template::random_password(call)?;
        call.call(
            "PutSecretValue",
            json!({
                "SecretId": call.secret_arn,
                "ClientRequestToken": call.token,
                "SecretString": current.with_credentials(&username, &password),
                "VersionStages": ["AWSPENDING"],
            }),
        )?;
        Ok(())
    }

    fn set(&self, call: &StepCall<'_>) -> Result<(), StepError> {
        let pending = self.version(call, "AWSPENDING")?;
        let current = self.version(call, "AWSCURRENT")?;
        if !pending.same_server(&current) {
            return Err(StepError(
                "the pending and current values name different database servers".into(),
            ));
        }
        if self.alternating {
            self.set_alternating(call, &pending, &current)
        } else {
            self.set_single(call, &pending, &current)
        }
    }

    fn set_single(&self, call: &StepCall<'_>, pending: &DbSecret, current: &DbSecret) -> Result<(), StepError> {
        // Already set by an attempt that did not get to record it.
        if self.block(crate::login(pending, &self.tls)).is_ok() {
            return Ok(());
        }
        if pending.username != current.username {
            return Err(StepError("the pending and current values name different users".into()));
        }
        // A rotation that set the password and stopped before finishSecret
        // left it in AWSPREVIOUS' place if the labels were moved by hand.
        let previous = template::secret_string(call, None, "AWSPREVIOUS")?
            .and_then(|text| DbSecret::parse(&text, "AWSPREVIOUS", self.engine).ok())
            .filter(|p| p.username == pending.username && p.same_server(pending));
        let password = pending.password.expose();
        self.block(async {
            let mut logins = vec![current];
            logins.extend(previous.as_ref());
            let mut refused = Vec::new();
            for login in logins {
                match self.engine {
                    Engine::Postgres => match postgres::connect(login, &self.tls).await {
                        Ok(client) => return postgres::set_password(&client, &login.username, password).await,
                        Err(e) => refused.push(e),
                    },
                    Engine::MySql => match mysql::connect(login, &self.tls).await {
                        Ok(mut session) => {
                            let done = session.set_own_password(password).await;
                            session.close().await;
                            return done;
                        }
                        Err(e) => refused.push(e),
                    },
                }
            }
            Err(format!(
                "cannot log in to the database with the pending, current or previous value: {}",
                refused.join("; ")
            ))
        })
    }

    fn set_alternating(&self, call: &StepCall<'_>, pending: &DbSecret, current: &DbSecret) -> Result<(), StepError> {
        if pending.username != alternate_username(&current.username) {
            return Err(StepError(format!(
                "the pending user {} is not the other user of {}'s pair",
                pending.username, current.username
            )));
        }
        // The confused-deputy guard: the admin credential is used only for
        // a caller that proves the current one works.
        let current_account = match self.block(crate::login(current, &self.tls)) {
            Ok(login) => login.account_host,
            Err(e) if self.block(crate::login(pending, &self.tls)).is_ok() => {
                tracing::debug!(error = %e.0, "current login refused, pending already set");
                return Ok(());
            }
            Err(e) => {
                return Err(StepError(format!(
                    "{}; the admin secret is used only once the current value logs in",
                    e.0
                )));
            }
        };
        let masterarn = current.masterarn.as_deref().unwrap_or_default();
        let admin_text = call
            .call(
                "GetSecretValue",
                json!({"SecretId": masterarn, "VersionStage": "AWSCURRENT"}),
            )
            .map_err(|e| {
                StepError(format!(
                    "cannot read the admin secret {masterarn}: {}: {}",
                    e.code, e.message
                ))
            })?;
        let admin_text = admin_text
            .get("SecretString")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| StepError(format!("the admin secret {masterarn} has no SecretString")))?;
        let admin = DbSecret::parse_admin(admin_text, current)?;
        if !admin.same_server(current) {
            return Err(StepError(format!(
                "the admin secret {masterarn} is for {}:{}, not the database's {}:{}",
                admin.host, admin.port, current.host, current.port
            )));
        }
        let target = pending.username.as_str();
        let base = base_username(target);
        let password = pending.password.expose();
        self.block(async {
            match self.engine {
                Engine::Postgres => {
                    let client = postgres::connect(&admin, &self.tls).await?;
                    if target == base {
                        postgres::set_password(&client, target, password).await
                    } else {
                        postgres::ensure_clone(&client, target, base, password).await
                    }
                }
                Engine::MySql => {
                    let mut session = mysql::connect(&admin, &self.tls).await?;
                    // The pair shares the host part of the account AWSCURRENT matched.
                    let account = |user: &str| mysql::Account {
                        user: user.to_owned(),
                        host: current_account.clone().unwrap_or_else(|| "%".into()),
                    };
                    let done = if target == base {
                        session.set_password(&account(target), password).await
                    } else {
                        session.ensure_clone(&account(target), &account(base), password).await
                    };
                    session.close().await;
                    done
                }
            }
        })
    }

    fn test(&self, call: &StepCall<'_>) -> Result<(), StepError> {
        let pending = self.version(call, "AWSPENDING")?;
        let acting_as = self.block(crate::login(&pending, &self.tls))?.acting_as;
        // A clone that did not act as its base would own what it creates.
        if self.alternating && self.engine == Engine::Postgres && acting_as != base_username(&pending.username) {
            return Err(StepError(format!(
                "{} logs in but acts as {acting_as}, not {}",
                pending.username,
                base_username(&pending.username)
            )));
        }
        Ok(())
    }
}
