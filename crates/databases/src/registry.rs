//! Managed master passwords, as Aurora's "Manage master credentials": a
//! database registered with Tumbler gets a master password nobody types.
//! Tumbler generates it, sets it in the database, keeps it in a secret it
//! owns (`tumbler!db-<id>`, OwningService `tumbler-db`) and rotates it
//! every seven days by default with the single-user rotator of its engine.
//!
//! The API is JSON over the same endpoint, `X-Amz-Target:
//! TumblerDatabases.<Operation>`, signed for the service `tumbler`, with
//! IAM actions `tumbler:<Operation>` on the registration's ARN
//! (`arn:aws:tumbler:<region>:<account>:database/<id>`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tumbler_secrets::{Ctx, SecretsService};
use tumbler_store::{ResourceRow, Store, StoreError, Write};
use tumbler_types::SensitiveString;
use tumbler_wire::AwsError;

use crate::secret::{DbSecret, Engine};
use crate::tls::DatabaseTls;
use crate::{MYSQL_SINGLE_USER, POSTGRES_SINGLE_USER, mysql, postgres};

/// The owning service of the master-password secrets, and the principal
/// its own calls run as.
pub const OWNER: &str = "tumbler-db";
const KIND: &str = "database";
const DEFAULT_SCHEDULE: &str = "rate(7 days)";
/// Aurora's managed master passwords: 28 characters with each kind.
const PASSWORD_LENGTH: u32 = 28;
/// Characters that break connection strings, URLs and shells.
const EXCLUDE: &str = ":/@\"'\\`";

/// Who may do what: answered by the identity layer for the caller.
pub use tumbler_secrets::ActionAuthorizer as DatabaseAuthorizer;

/// One call's caller.
pub struct DbCtx {
    pub account: String,
    pub region: String,
    pub now: jiff::Timestamp,
    pub authorizer: Arc<dyn DatabaseAuthorizer>,
    /// The same caller, for the KMS key a registration names.
    pub key_authorizer: Arc<dyn tumbler_secrets::Authorizer>,
}

/// A registration, as stored (the resource row's `meta`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registration {
    id: String,
    engine: String,
    host: String,
    port: u16,
    master_username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dbname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sslmode: Option<String>,
    secret_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kms_key_id: Option<String>,
    /// Until the first password is set and its rotation scheduled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    creating: bool,
    /// The rotation schedule asked for at registration.
    #[serde(default)]
    schedule: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RegisterRequest {
    engine: Option<String>,
    host: Option<String>,
    port: Option<u32>,
    master_username: Option<String>,
    /// The one-time credential Tumbler logs in with to set the first
    /// managed password; never stored.
    master_user_password: Option<String>,
    db_name: Option<String>,
    ssl_mode: Option<String>,
    manage_master_user_password: Option<bool>,
    master_user_secret_kms_key_id: Option<String>,
    rotation_schedule: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IdRequest {
    database_id: Option<String>,
    rotate_master_user_password: Option<bool>,
    rotation_schedule: Option<String>,
    recovery_window_in_days: Option<i64>,
    force_delete_without_recovery: Option<bool>,
}

/// ListDatabases takes no parameters (and no malformed body).
#[derive(Deserialize, Default)]
struct ListRequest {}

/// The database registrations and their master-password secrets.
pub struct DatabaseService {
    secrets: Arc<SecretsService>,
    store: Arc<dyn Store>,
    tls: DatabaseTls,
    runtime: tokio::runtime::Handle,
}

pub const OPERATIONS: &[&str] = &[
    "RegisterDatabase",
    "DescribeDatabase",
    "ListDatabases",
    "ModifyDatabase",
    "DeregisterDatabase",
];

pub fn is_read_only(op: &str) -> bool {
    matches!(op, "DescribeDatabase" | "ListDatabases")
}

fn bad(message: impl Into<String>) -> AwsError {
    AwsError::invalid_parameter(message)
}

fn store_err(e: StoreError) -> AwsError {
    tracing::error!(error = %e, "database registry store failure");
    AwsError::internal("An internal error occurred. Try the request again.")
}

/// The request's JSON (an empty body is `{}`); errors never echo a value.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    tumbler_wire::decode(body)
}

impl DatabaseService {
    pub fn new(
        secrets: Arc<SecretsService>,
        store: Arc<dyn Store>,
        tls: DatabaseTls,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        DatabaseService {
            secrets,
            store,
            tls,
            runtime,
        }
    }

    /// One API call. Runs on a blocking thread (it talks to databases).
    pub fn call(&self, ctx: &DbCtx, op: &str, body: &[u8]) -> Result<Vec<u8>, AwsError> {
        let out = match op {
            "RegisterDatabase" => self.register(ctx, parse(body)?)?,
            "DescribeDatabase" => {
                let r: IdRequest = parse(body)?;
                let (row, reg) = self.find(ctx, r.database_id.as_deref(), "tumbler:DescribeDatabase")?;
                json!({"Database": self.describe(&row, &reg)})
            }
            "ListDatabases" => {
                let _: ListRequest = parse(body)?;
                ctx.authorizer.authorize("tumbler:ListDatabases", "*")?;
                let rows = self
                    .store
                    .resources(KIND, &ctx.account, &ctx.region)
                    .map_err(store_err)?;
                let list: Vec<Value> = rows
                    .iter()
                    .filter_map(|row| Some(self.describe(row, &serde_json::from_str(&row.meta).ok()?)))
                    .collect();
                json!({"Databases": list})
            }
            "ModifyDatabase" => self.modify(ctx, parse(body)?)?,
            "DeregisterDatabase" => self.deregister(ctx, parse(body)?)?,
            _ => {
                return Err(AwsError::unknown_operation(format!(
                    "TumblerDatabases has no operation {op}."
                )));
            }
        };
        Ok(out.to_string().into_bytes())
    }

    /// The context of this service's own Secrets Manager calls.
    fn owner_ctx(&self, ctx: &DbCtx) -> Ctx {
        Ctx::new(
            ctx.account.clone(),
            ctx.region.clone(),
            OWNER,
            ctx.now,
            Arc::new(tumbler_secrets::AllowAll),
        )
    }

    fn secrets_call(&self, ctx: &DbCtx, op: &str, body: Value) -> Result<Value, AwsError> {
        let out = self
            .secrets
            .call(&mut self.owner_ctx(ctx), op, body.to_string().as_bytes())?;
        serde_json::from_slice(&out).map_err(|_| AwsError::internal("a Secrets Manager answer did not parse"))
    }

    fn arn(ctx: &DbCtx, id: &str) -> String {
        format!("arn:aws:tumbler:{}:{}:database/{id}", ctx.region, ctx.account)
    }

    fn find(&self, ctx: &DbCtx, id: Option<&str>, action: &str) -> Result<(ResourceRow, Registration), AwsError> {
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| bad("DatabaseId is required."))?;
        let id = id.rsplit('/').next().unwrap_or(id);
        let arn = Self::arn(ctx, id);
        // Authorized before it is looked up: a caller who may not see it
        // learns nothing of whether it exists.
        ctx.authorizer.authorize(action, &arn)?;
        let row = self
            .store
            .resource(&arn)
            .map_err(store_err)?
            .ok_or_else(|| AwsError::resource_not_found(format!("Tumbler has no registered database {id}.")))?;
        let reg = serde_json::from_str(&row.meta).map_err(|_| AwsError::internal("a registration did not parse"))?;
        Ok((row, reg))
    }

    /// The registration as the API shows it, with MasterUserSecret's status
    /// derived from the secret's rotation.
    fn describe(&self, row: &ResourceRow, reg: &Registration) -> Value {
        let rotation = self
            .secrets
            .call(
                &mut Ctx::new(
                    row.account.clone(),
                    row.region.clone(),
                    OWNER,
                    jiff::Timestamp::now(),
                    Arc::new(tumbler_secrets::AllowAll),
                ),
                "DescribeSecret",
                json!({"SecretId": reg.secret_arn}).to_string().as_bytes(),
            )
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let status = match (&rotation, reg.creating) {
            (_, true) => "creating",
            (None, false) => "impaired",
            (Some(d), false) => match d.pointer("/TumblerRotationStatus/State").and_then(Value::as_str) {
                Some("Rotating") => "rotating",
                Some(_) => "impaired",
                None => "active",
            },
        };
        let mut out = json!({
            "DatabaseId": reg.id,
            "DatabaseArn": row.arn,
            "Engine": reg.engine,
            "Host": reg.host,
            "Port": reg.port,
            "MasterUsername": reg.master_username,
            "CreatedDate": row.created_ms as f64 / 1000.0,
            "MasterUserSecret": {
                "SecretArn": reg.secret_arn,
                "SecretStatus": status,
                "KmsKeyId": reg.kms_key_id.clone().unwrap_or_else(|| "alias/aws/secretsmanager".into()),
            },
        });
        if let Some(db) = &reg.dbname {
            out["DbName"] = Value::String(db.clone());
        }
        if let Some(d) = &rotation {
            for field in [
                "RotationRules",
                "LastRotatedDate",
                "NextRotationDate",
                "TumblerRotationStatus",
            ] {
                if let Some(v) = d.get(field) {
                    out["MasterUserSecret"][field] = v.clone();
                }
            }
        }
        out
    }

    fn register(&self, ctx: &DbCtx, r: RegisterRequest) -> Result<Value, AwsError> {
        ctx.authorizer
            .authorize("tumbler:RegisterDatabase", &Self::arn(ctx, "*"))?;
        if r.manage_master_user_password != Some(true) {
            return Err(bad(
                "ManageMasterUserPassword must be true: Tumbler registers databases to manage their master password.",
            ));
        }
        let engine_name = r.engine.clone().unwrap_or_default();
        let engine = Engine::of(&engine_name).ok_or_else(|| bad("Engine must be postgres, mysql or mariadb."))?;
        let host = r
            .host
            .clone()
            .filter(|h| !h.is_empty() && h.len() <= 253)
            .ok_or_else(|| bad("Host is required, a name or address of at most 253 characters."))?;
        let port = match r.port {
            None => None,
            Some(p) => Some(
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("Port must be 1 to 65535."))?,
            ),
        };
        let username = r
            .master_username
            .clone()
            .filter(|u| !u.is_empty() && u.len() <= engine.max_username(&engine_name))
            .ok_or_else(|| bad("MasterUsername is required, and no longer than the engine allows."))?;
        let bootstrap = SensitiveString::new(r.master_user_password.clone().filter(|p| !p.is_empty()).ok_or_else(
            || bad("MasterUserPassword is required: the current password, used once to set the managed one."),
        )?);
        if let Some(mode) = &r.ssl_mode
            && !matches!(mode.as_str(), "disable" | "prefer" | "require" | "verify-full")
        {
            return Err(bad("SslMode must be disable, prefer, require or verify-full."));
        }
        let schedule = r.rotation_schedule.clone().unwrap_or_else(|| DEFAULT_SCHEDULE.into());
        // Checked before anything changes: the schedule is applied only
        // after the database has taken the new password.
        tumbler_secrets::schedule::Schedule::parse(None, Some(&schedule), None)
            .map_err(|e| bad(format!("RotationSchedule: {e}")))?;
        let id = uuid::Uuid::new_v4().to_string();
        let arn = Self::arn(ctx, &id);

        // The connection fields ride in the secret, so the engine's
        // single-user rotator rotates it, and applications find the
        // database there (Aurora's hold only username and password).
        let mut fields = json!({
            "engine": engine_name,
            "host": host,
            "username": username,
        });
        if let Some(p) = port {
            fields["port"] = json!(p);
        }
        if let Some(db) = &r.db_name {
            fields["dbname"] = json!(db);
        }
        if let Some(mode) = &r.ssl_mode {
            fields["sslmode"] = json!(mode);
        }
        let with_password = |password: &str| {
            let mut f = fields.clone();
            f["password"] = json!(password);
            f
        };
        let login = DbSecret::parse(&with_password(bootstrap.expose()).to_string(), "registration", engine)
            .map_err(|e| bad(e.0.replace("the registration secret value: ", "")))?;
        let password = self.secrets_call(
            ctx,
            "GetRandomPassword",
            json!({"PasswordLength": PASSWORD_LENGTH, "ExcludeCharacters": EXCLUDE, "RequireEachIncludedType": true}),
        )?;
        let password = SensitiveString::new(
            password
                .get("RandomPassword")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
        let secret_name = format!("tumbler!db-{id}");
        let mut reg = Registration {
            id: id.clone(),
            engine: engine_name.clone(),
            host: host.clone(),
            port: login.port,
            master_username: username.clone(),
            dbname: r.db_name.clone(),
            sslmode: r.ssl_mode.clone(),
            secret_arn: String::new(),
            kms_key_id: r.master_user_secret_kms_key_id.clone(),
            creating: true,
            schedule: schedule.clone(),
        };

        // The secret first: the database never holds a password Tumbler
        // does not have.
        let mut create = json!({
            "Name": secret_name,
            "Description": format!("Master user password of the database registered as {arn}"),
            "SecretString": with_password(password.expose()).to_string(),
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(key) = &r.master_user_secret_kms_key_id {
            create["KmsKeyId"] = json!(key);
        }
        let request = serde_json::from_value(create).map_err(|_| AwsError::internal("a request did not build"))?;
        // Created by the service, under a key the caller may use.
        let for_caller = Ctx::new(
            ctx.account.clone(),
            ctx.region.clone(),
            OWNER,
            ctx.now,
            Arc::new(tumbler_secrets::ServiceForCaller(ctx.key_authorizer.clone())),
        );
        let created = self.secrets.create_owned_secret(&for_caller, OWNER, request)?;
        reg.secret_arn = created.arn.clone();
        let row = ResourceRow {
            arn: arn.clone(),
            kind: KIND.into(),
            account: ctx.account.clone(),
            region: ctx.region.clone(),
            name: id.clone(),
            created_ms: ctx.now.as_millisecond(),
            revision: 0,
            meta: serde_json::to_string(&reg).unwrap_or_default(),
        };
        let undo = |why: AwsError| -> AwsError {
            let _ = self.secrets_call(
                ctx,
                "DeleteSecret",
                json!({"SecretId": reg.secret_arn, "ForceDeleteWithoutRecovery": true}),
            );
            let _ = self.store.apply(vec![Write::DeleteResource { arn: arn.clone() }]);
            why
        };
        if let Err(e) = self.store.apply(vec![Write::CreateResource(row.clone())]) {
            return Err(undo(store_err(e)));
        }
        if let Err(e) = self.block(self.set_master_password(&login, password.expose())) {
            return Err(undo(AwsError::invalid_request(format!(
                "Tumbler could not set the managed master password: {e}"
            ))));
        }
        // The database now holds the secret's password: from here on the
        // secret is never removed behind a failure (a retried
        // ModifyDatabase finishes the registration).
        let (row, reg) = self.finish_registration(ctx, row, reg).map_err(|e| {
            AwsError::invalid_request(format!(
                "The master password is set and kept in {}, but its rotation could not be scheduled ({}: {}); \
                 call ModifyDatabase to finish the registration.",
                created.arn, e.code, e.message
            ))
        })?;
        Ok(json!({"Database": self.describe(&row, &reg)}))
    }

    /// Schedule the master password's rotation (the engine's single-user
    /// rotator; this first run only tests the password just set) and mark
    /// the registration active.
    fn finish_registration(
        &self,
        ctx: &DbCtx,
        row: ResourceRow,
        mut reg: Registration,
    ) -> Result<(ResourceRow, Registration), AwsError> {
        let rotator = match Engine::of(&reg.engine) {
            Some(Engine::Postgres) => POSTGRES_SINGLE_USER,
            _ => MYSQL_SINGLE_USER,
        };
        let schedule = if reg.schedule.is_empty() {
            DEFAULT_SCHEDULE
        } else {
            reg.schedule.as_str()
        };
        // Scheduled already by an earlier attempt that stopped before the
        // registration was marked active: nothing more to ask.
        let described = self.secrets_call(ctx, "DescribeSecret", json!({"SecretId": reg.secret_arn}))?;
        let scheduled = described.get("RotationEnabled") == Some(&Value::Bool(true))
            && described.get("RotationLambdaARN").and_then(Value::as_str) == Some(rotator);
        if !scheduled {
            self.secrets_call(
                ctx,
                "RotateSecret",
                json!({
                    "SecretId": reg.secret_arn,
                    "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
                    "RotationLambdaARN": rotator,
                    "RotationRules": {"ScheduleExpression": schedule},
                    "RotateImmediately": false,
                }),
            )?;
        }
        reg.creating = false;
        let mut done = ResourceRow {
            meta: serde_json::to_string(&reg).unwrap_or_default(),
            ..row
        };
        self.store
            .apply(vec![Write::UpdateResource(done.clone())])
            .map_err(store_err)?;
        done.revision += 1;
        Ok((done, reg))
    }

    fn modify(&self, ctx: &DbCtx, r: IdRequest) -> Result<Value, AwsError> {
        let (row, reg) = self.find(ctx, r.database_id.as_deref(), "tumbler:ModifyDatabase")?;
        if r.rotate_master_user_password != Some(true) && r.rotation_schedule.is_none() {
            return Err(bad(
                "Nothing to modify: give RotateMasterUserPassword or RotationSchedule.",
            ));
        }
        if reg.creating {
            return self.resume_registration(ctx, row, reg);
        }
        let mut rotate = json!({
            "SecretId": reg.secret_arn,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "RotateImmediately": r.rotate_master_user_password == Some(true),
        });
        if let Some(schedule) = &r.rotation_schedule {
            rotate["RotationRules"] = json!({"ScheduleExpression": schedule});
        }
        self.secrets_call(ctx, "RotateSecret", rotate)?;
        Ok(json!({"Database": self.describe(&row, &reg)}))
    }

    /// A registration that stopped half way (a crash, or a failure after
    /// the password was set): finished if the secret's password logs in.
    fn resume_registration(&self, ctx: &DbCtx, row: ResourceRow, reg: Registration) -> Result<Value, AwsError> {
        let engine = Engine::of(&reg.engine).unwrap_or(Engine::MySql);
        let value = self
            .secrets_call(ctx, "GetSecretValue", json!({"SecretId": reg.secret_arn}))
            .ok()
            .and_then(|v| v.get("SecretString").and_then(Value::as_str).map(str::to_owned))
            .and_then(|text| DbSecret::parse(&text, "AWSCURRENT", engine).ok());
        let logs_in = match &value {
            Some(secret) => self.block(crate::login(secret, &self.tls)).is_ok(),
            None => false,
        };
        if !logs_in {
            return Err(AwsError::invalid_request(
                "The registration did not complete: the database does not take the managed password. \
                 Deregister it and register again.",
            ));
        }
        let (row, reg) = self.finish_registration(ctx, row, reg)?;
        Ok(json!({"Database": self.describe(&row, &reg)}))
    }

    fn deregister(&self, ctx: &DbCtx, r: IdRequest) -> Result<Value, AwsError> {
        let (row, reg) = self.find(ctx, r.database_id.as_deref(), "tumbler:DeregisterDatabase")?;
        let described = self.describe(&row, &reg);
        let mut delete = json!({"SecretId": reg.secret_arn});
        if r.force_delete_without_recovery == Some(true) {
            delete["ForceDeleteWithoutRecovery"] = json!(true);
        } else if let Some(days) = r.recovery_window_in_days {
            delete["RecoveryWindowInDays"] = json!(days);
        }
        match self.secrets_call(ctx, "DeleteSecret", delete) {
            Ok(_) => {}
            // Already gone, or already scheduled: the registration still goes.
            Err(e) if e.code == "ResourceNotFoundException" || e.code == "InvalidRequestException" => {}
            Err(e) => return Err(e),
        }
        match self.store.apply(vec![Write::DeleteResource { arn: row.arn.clone() }]) {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(store_err(e)),
        }
        Ok(json!({"Database": described}))
    }

    fn block<T>(&self, work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
        match self
            .runtime
            .block_on(tokio::time::timeout(std::time::Duration::from_secs(30), work))
        {
            Ok(r) => r,
            Err(_) => Err("the database did not answer within 30 seconds".into()),
        }
    }

    async fn set_master_password(&self, login: &DbSecret, password: &str) -> Result<(), String> {
        match login.engine {
            Engine::Postgres => {
                let client = postgres::connect(login, &self.tls).await?;
                postgres::set_password(&client, &login.username, password).await
            }
            Engine::MySql => {
                let mut session = mysql::connect(login, &self.tls).await?;
                let done = session.set_own_password(password).await;
                session.close().await;
                done
            }
        }
    }
}
