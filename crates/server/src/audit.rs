//! What each API call records in the audit trail, and how the event reaches
//! the store: with the call's change (through the domain's commit), or on
//! its own, group-committed, before the response is sent.

use std::collections::HashMap;
use std::sync::Arc;

use http::request::Parts;
use serde_json::Value;
use tumbler_audit::{AuditEvent, CallJournal, SessionAttributes, SessionContext, SessionIssuer, UserIdentity};
use tumbler_identity::Principal;
use tumbler_store::{AuditRecord, Store, StoreError};

use crate::ConnInfo;

/// Whether calls are audited, and what happens when an event can't be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditMode {
    Off,
    /// A call whose event can't be written fails (as Vault's audit devices do).
    FailClosed,
    /// A call whose event can't be written goes ahead; the failure is logged.
    FailOpen,
}

/// The longest user agent kept in an event.
const MAX_USER_AGENT: usize = 1024;

/// `secretsmanager.amazonaws.com` for `secretsmanager`: the services served
/// here without building the string each call.
pub fn event_source(service: &str) -> tumbler_audit::Text {
    match service {
        "secretsmanager" => "secretsmanager.amazonaws.com".into(),
        "kms" => "kms.amazonaws.com".into(),
        "sts" => "sts.amazonaws.com".into(),
        "iam" => "iam.amazonaws.com".into(),
        "kafka" => "kafka.amazonaws.com".into(),
        "cloudtrail" => "cloudtrail.amazonaws.com".into(),
        "tumbler" => "tumbler.amazonaws.com".into(),
        other => format!("{other}.amazonaws.com").into(),
    }
}

/// `2026-11-23T12:00:00Z` for `now`, formatted once per second per thread.
fn event_time_of(now: jiff::Timestamp) -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != now.as_second() {
            *c = (now.as_second(), now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        c.1.clone()
    })
}

/// An event for a call as it arrives: who (as far as known), from where, when.
pub fn draft(parts: &Parts, info: ConnInfo, request_id: &str, event_id: String, now: jiff::Timestamp) -> AuditEvent {
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| truncate(ua, MAX_USER_AGENT))
        .unwrap_or_default();
    /// Until the caller is known; shared by the events of every call.
    static UNKNOWN: std::sync::LazyLock<Arc<UserIdentity>> = std::sync::LazyLock::new(|| {
        Arc::new(UserIdentity {
            kind: "Unknown".into(),
            ..Default::default()
        })
    });
    AuditEvent {
        event_version: tumbler_audit::EVENT_VERSION.into(),
        user_identity: UNKNOWN.clone(),
        event_time: event_time_of(now),
        event_source: "".into(),
        event_name: String::new(),
        aws_region: String::new(),
        source_ip_address: info.peer_ip.as_str().to_owned(),
        user_agent,
        request_parameters: None,
        response_elements: None,
        error_code: None,
        error_message: None,
        request_id: request_id.to_owned(),
        event_id,
        read_only: false,
        resources: Vec::new(),
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: String::new(),
        event_category: "Management".into(),
        tls_details: info.tls_version.map(|v| tumbler_audit::TlsDetails {
            tls_version: v.to_owned(),
            cipher_suite: info.tls_cipher.unwrap_or_default().to_owned(),
        }),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The caller as CloudTrail's `userIdentity` shows it.
pub fn user_identity(p: &Principal, access_key_id: &str) -> UserIdentity {
    let mut u = UserIdentity {
        kind: "IAMUser".into(),
        principal_id: Some(p.user_id.clone()),
        arn: Some(p.arn.clone()),
        account_id: Some(p.account.clone()),
        access_key_id: Some(access_key_id.to_owned()),
        user_name: Some(p.name.clone()),
        session_context: None,
        invoked_by: None,
    };
    if let Some(s) = &p.session {
        let issued = jiff::Timestamp::from_second(s.issued_s)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let issuer = s.role_arn.as_ref().map(|role_arn| {
            u.kind = "AssumedRole".into();
            u.user_name = None;
            SessionIssuer {
                kind: "Role".into(),
                principal_id: p.user_id.split(':').next().unwrap_or_default().to_owned(),
                arn: role_arn.clone(),
                account_id: p.account.clone(),
                user_name: role_arn.rsplit('/').next().unwrap_or_default().to_owned(),
            }
        });
        u.session_context = Some(SessionContext {
            session_issuer: issuer,
            attributes: SessionAttributes {
                creation_date: issued,
                mfa_authenticated: s.mfa_s.is_some().to_string(),
            },
            source_identity: s.source_identity.clone(),
        });
    }
    u
}

/// Each caller's `userIdentity`, built once per access key and shared by
/// its events (which then also share its JSON: `tumbler_audit`).
#[derive(Default)]
pub struct Identities(std::sync::Mutex<HashMap<String, KeptIdentity>>);

/// The principal an identity was built for, and the identity.
type KeptIdentity = (Arc<Principal>, Arc<UserIdentity>);

/// Callers kept before the map starts over (each is a few hundred bytes).
const MAX_IDENTITIES: usize = 4096;

impl Identities {
    pub fn of(&self, principal: &Arc<Principal>, access_key_id: &str) -> Arc<UserIdentity> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The same principal: the identity layer replaces it when it changes.
        if let Some((p, identity)) = kept.get(access_key_id)
            && Arc::ptr_eq(p, principal)
        {
            return identity.clone();
        }
        let identity = Arc::new(user_identity(principal, access_key_id));
        // A session's principal is made per request from its token.
        if principal.session.is_none() {
            if kept.len() >= MAX_IDENTITIES {
                kept.clear();
            }
            kept.insert(access_key_id.to_owned(), (principal.clone(), identity.clone()));
        }
        identity
    }
}

/// Hands events of calls that changed nothing to the store, several at a
/// time, and wakes each call once its event is stored.
///
/// The store takes a batch on the calling thread (one append to its log of
/// reads) unless its writer is busy committing a change; then the batch
/// goes through the writer, whose thread wakes the calls.
pub struct AuditSink {
    store: Arc<dyn Store>,
    batch: Arc<Batch>,
}

/// Events waiting to be stored together, with their callers.
#[derive(Default)]
struct Batch {
    pending: std::sync::Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    events: Vec<AuditRecord>,
    waiters: Vec<tokio::sync::oneshot::Sender<Result<(), String>>>,
    /// A task to store them is on its way.
    scheduled: bool,
}

impl AuditSink {
    pub fn new(store: Arc<dyn Store>) -> AuditSink {
        AuditSink {
            store,
            batch: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Write the event of a call that changed nothing; Ok once it is stored.
    /// The events of the calls that reach this point in one turn of the
    /// runtime are stored together: the first schedules a task, which runs
    /// after the others have joined, and one write serves them all.
    pub async fn record(&self, record: AuditRecord) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let schedule = {
            let mut p = self.batch.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.events.push(record);
            p.waiters.push(tx);
            !std::mem::replace(&mut p.scheduled, true)
        };
        if schedule {
            let (store, batch) = (self.store.clone(), self.batch.clone());
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let (events, waiters) = {
                    let mut p = batch.pending.lock().unwrap_or_else(|p| p.into_inner());
                    p.scheduled = false;
                    (std::mem::take(&mut p.events), std::mem::take(&mut p.waiters))
                };
                store.record(
                    events,
                    Box::new(move |r| {
                        let r = r.map_err(|e| e.to_string());
                        for w in waiters {
                            let _ = w.send(r.clone());
                        }
                    }),
                );
            });
        }
        match rx.await {
            Ok(r) => r.map_err(StoreError::Backend),
            Err(_) => Err(StoreError::Backend("the audit event was dropped".into())),
        }
    }
}

/// The event of a call, through whichever path it took.
pub enum Trail {
    /// Not audited.
    Off,
    /// Not yet handed to an operation.
    Draft(Box<AuditEvent>),
    /// Handed to an operation, which may have committed it with a change.
    Journal(Arc<CallJournal>),
}

impl Trail {
    pub fn event(&mut self) -> Option<&mut AuditEvent> {
        match self {
            Trail::Draft(e) => Some(e),
            _ => None,
        }
    }

    /// Hand the event to an operation.
    pub fn journal(&mut self) -> Option<Arc<CallJournal>> {
        match std::mem::replace(self, Trail::Off) {
            Trail::Draft(e) => {
                let j = Arc::new(CallJournal::new(*e));
                *self = Trail::Journal(j.clone());
                Some(j)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// The event still to be recorded, with the call's error if it failed.
    pub fn finish(self, error: Option<(&str, &str)>) -> Option<AuditRecord> {
        match self {
            Trail::Off => None,
            Trail::Draft(mut e) => {
                if let Some((code, message)) = error {
                    e.error_code = Some(code.to_owned());
                    e.error_message = Some(message.to_owned());
                }
                Some(AuditRecord { json: e.to_json() })
            }
            Trail::Journal(j) => j.finish(error),
        }
    }
}

/// The event of a secret purged at the end of its recovery window, which
/// the service does on its own (CloudTrail's `EndSecretDeletion`).
pub fn end_secret_deletion(row: &tumbler_store::SecretRow, event_id: String) -> AuditRecord {
    service_event(
        "secretsmanager.amazonaws.com",
        "EndSecretDeletion",
        (&row.region, &row.account),
        (&row.arn, "AWS::SecretsManager::Secret"),
        event_id,
    )
}

/// The event of a rotation's outcome, which the service reaches on its own
/// (CloudTrail's `RotationSucceeded`, `RotationFailed`, `RotationAbandoned`).
pub fn rotation_event(row: &tumbler_store::SecretRow, name: &str) -> AuditRecord {
    service_event(
        "secretsmanager.amazonaws.com",
        name,
        (&row.region, &row.account),
        (&row.arn, "AWS::SecretsManager::Secret"),
        uuid::Uuid::new_v4().to_string(),
    )
}

/// The event of what the key service does on its own: `RotateKey` (an
/// automatic rotation) or `DeleteKey` (the end of a deletion window).
pub fn kms_service_event(row: &tumbler_store::KmsKeyRow, name: &str, event_id: String) -> AuditRecord {
    service_event(
        "kms.amazonaws.com",
        name,
        (&row.region, &row.account),
        (&row.arn, "AWS::KMS::Key"),
        event_id,
    )
}

/// The event of one Kafka sync: which secrets' users were set on the
/// cluster (or why not) and which users were deleted. No passwords.
pub fn kafka_sync_event(report: &tumbler_kafka::SyncReport<'_>) -> AuditRecord {
    if let Some(acls) = &report.acls {
        return kafka_acl_event(report, acls);
    }
    let failed: Vec<&(String, String, Option<String>)> = report.secrets.iter().filter(|s| s.2.is_some()).collect();
    let mut e = service_event_unsealed(
        "kafka.amazonaws.com",
        "SyncScramSecrets",
        (report.region, report.account),
        (report.cluster_arn, "AWS::MSK::Cluster"),
        uuid::Uuid::new_v4().to_string(),
    );
    let secrets: Vec<Value> = report
        .secrets
        .iter()
        .map(|(arn, user, error)| {
            let mut v = serde_json::json!({"secretArn": arn, "username": user,
                "status": if error.is_some() { "FAILED" } else { "SYNCED" }});
            if let Some(error) = error {
                v["error"] = Value::String(error.clone());
            }
            v
        })
        .collect();
    e.request_parameters = Some(serde_json::json!({
        "clusterArn": report.cluster_arn,
        "scramSecrets": secrets,
        "deletedUsers": report.deleted,
    }));
    for (arn, _, _) in &report.secrets {
        e.resources.push(tumbler_audit::Resource {
            arn: arn.clone(),
            account_id: report.account.into(),
            kind: Some("AWS::SecretsManager::Secret".into()),
        });
    }
    if let Some((_, _, Some(first))) = failed.first() {
        e.error_code = Some("ScramSyncFailed".into());
        e.error_message = Some(format!(
            "{} of {} users not synced: {first}",
            failed.len(),
            report.secrets.len()
        ));
    }
    AuditRecord { json: e.to_json() }
}

/// The event of one sync of a cluster's ACLs: what it created and deleted
/// (ACLs name principals, operations and resources; nothing secret).
fn kafka_acl_event(report: &tumbler_kafka::SyncReport<'_>, acls: &tumbler_kafka::AclReport) -> AuditRecord {
    let mut e = service_event_unsealed(
        "kafka.amazonaws.com",
        "SyncKafkaAcls",
        (report.region, report.account),
        (report.cluster_arn, "AWS::MSK::Cluster"),
        uuid::Uuid::new_v4().to_string(),
    );
    let failed: Vec<Value> = acls
        .failed
        .iter()
        .map(|(acl, error)| serde_json::json!({"acl": acl, "error": error}))
        .collect();
    e.request_parameters = Some(serde_json::json!({
        "clusterArn": report.cluster_arn,
        "createdAcls": acls.created,
        "deletedAcls": acls.deleted,
        "failedAcls": failed,
    }));
    if let Some(error) = &acls.error {
        e.error_code = Some("AclSyncFailed".into());
        e.error_message = Some(error.clone());
    }
    AuditRecord { json: e.to_json() }
}

/// The event of one token request at `/oauth2/token`: who asked (the
/// client, and its principal once known), what was issued (subject, scope,
/// `jti`, lifetime; never the token), or the RFC 6749 error.
pub fn oauth_token_event(
    parts: &Parts,
    info: ConnInfo,
    request_id: &str,
    region: &str,
    outcome: Result<&tumbler_oauth::Issued, (&tumbler_oauth::TokenError, &tumbler_oauth::Asker)>,
) -> AuditRecord {
    let mut e = draft(
        parts,
        info,
        request_id,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    );
    e.event_source = "tumbler.amazonaws.com".into();
    e.event_name = "IssueOAuthToken".into();
    e.aws_region = region.into();
    let (client, principal) = match &outcome {
        Ok(i) => (Some(i.client_id.clone()), Some(i.principal_arn.clone())),
        Err((_, asker)) => (asker.client_id.clone(), asker.principal_arn.clone()),
    };
    if let Some(arn) = &principal {
        let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
        e.user_identity = Arc::new(UserIdentity {
            kind: if arn.contains(":role/") {
                "AssumedRole"
            } else {
                "IAMUser"
            }
            .into(),
            arn: Some(arn.clone()),
            account_id: Some(account.clone()),
            ..Default::default()
        });
        e.recipient_account_id = account;
    }
    e.request_parameters = Some(serde_json::json!({"grantType": "client_credentials", "clientId": client}));
    match outcome {
        Ok(i) => {
            e.response_elements = Some(serde_json::json!({
                "subject": i.subject, "scope": i.scope, "jti": i.jti, "expiresIn": i.expires_in,
            }));
        }
        Err((err, _)) => {
            e.error_code = Some(err.error.into());
            e.error_message = Some(err.description.clone());
        }
    }
    AuditRecord { json: e.to_json() }
}

/// A CloudTrail `AwsServiceEvent`: the service acting on one resource.
fn service_event(
    service: &str,
    name: &str,
    region_account: (&str, &str),
    arn_kind: (&str, &'static str),
    event_id: String,
) -> AuditRecord {
    AuditRecord {
        json: service_event_unsealed(service, name, region_account, arn_kind, event_id).to_json(),
    }
}

fn service_event_unsealed(
    service: &str,
    name: &str,
    (region, account): (&str, &str),
    (arn, kind): (&str, &'static str),
    event_id: String,
) -> AuditEvent {
    AuditEvent {
        event_version: tumbler_audit::EVENT_VERSION.into(),
        user_identity: Arc::new(UserIdentity {
            kind: "AWSService".into(),
            invoked_by: Some(service.into()),
            ..Default::default()
        }),
        event_time: event_time_of(jiff::Timestamp::now()),
        event_source: service.to_owned().into(),
        event_name: name.into(),
        aws_region: region.into(),
        source_ip_address: service.into(),
        user_agent: service.into(),
        request_parameters: None,
        response_elements: None,
        error_code: None,
        error_message: None,
        request_id: event_id.clone(),
        event_id,
        read_only: false,
        resources: vec![tumbler_audit::Resource {
            arn: arn.into(),
            account_id: account.into(),
            kind: Some(kind.into()),
        }],
        event_type: "AwsServiceEvent".into(),
        management_event: true,
        recipient_account_id: account.into(),
        event_category: "Management".into(),
        tls_details: None,
    }
}
