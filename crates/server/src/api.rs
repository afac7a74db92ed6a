//! The AWS API endpoint: `POST /` (and `GET /` for presigned Query calls),
//! routed as AWS routes: `X-Amz-Target` for JSON services, the form
//! `Action` for Query services; the service named by the target must be the
//! one the request was signed for.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tumbler_wire::AwsError;

use crate::audit::{self, AuditMode, Trail};
use crate::{AppState, ConnInfo};
use tumbler_audit::CallJournal;

pub type Response = http::Response<Full<Bytes>>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
use crate::gate::{Caller, authenticate};

/// The largest request body we read: a 64 KiB secret escaped as JSON
/// (`\u0000` is six bytes) fits with room to spare.
pub const MAX_BODY: usize = 1 << 20;

const JSON: &str = "application/x-amz-json-1.1";

/// CloudTrail's awsJson target prefix (its API version is in the name).
const CLOUDTRAIL_TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";

enum Protocol {
    /// `api`: the X-Amz-Target prefix of Tumbler's own APIs, which share
    /// the signing service `tumbler`.
    Json {
        service: &'static str,
        api: &'static str,
        op: String,
    },
    Query {
        service: &'static str,
    },
    /// MSK's REST-JSON operations on `/v1/clusters/{clusterArn}/...`.
    Rest {
        op: &'static str,
        cluster_arn: String,
    },
}

/// A UUID-shaped request id. It only has to be unique, not secret, so it
/// comes from a per-thread splitmix64 seeded once from the OS rather than
/// from a getrandom syscall per request.
fn request_id() -> String {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0u8; 8];
            let _ = tumbler_crypto::random_bytes(8).map(|b| seed.copy_from_slice(&b));
            u64::from_le_bytes(seed) | 1
        });
    }
    let next = || {
        STATE.with(|s| {
            let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    };
    let bytes = ((next() as u128) << 64 | next() as u128).to_le_bytes();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

/// The `Date` header, formatted once per second.
fn date_header() -> Option<HeaderValue> {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, Option<HeaderValue>)> = const { std::cell::RefCell::new((0, None)) };
    }
    let now = jiff::Timestamp::now();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != now.as_second() || c.1.is_none() {
            *c = (
                now.as_second(),
                HeaderValue::from_str(&now.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok(),
            );
        }
        c.1.clone()
    })
}

/// `GET /v1/secret-events`: the change notifications long poll (see events.rs).
pub async fn secret_events(state: &Arc<AppState>, info: ConnInfo, req: Request<Incoming>) -> Response {
    let rid = request_id();
    let (parts, _) = req.into_parts();
    let caller = match authenticate(
        &state.identity,
        &parts,
        b"",
        Some("secretsmanager"),
        jiff::Timestamp::now(),
    ) {
        Ok(c) => c,
        Err(e) => return json_error(&e, &rid),
    };
    match crate::events::poll(state, &caller, info, parts.uri.query()).await {
        Ok(body) => base(200, &rid, "application/json", body),
        Err(e) => json_error(&e, &rid),
    }
}

/// A public OAuth document (the JWKS, the discovery document): brokers and
/// clients fetch them without credentials, and may cache them briefly.
pub fn oauth_document(body: Vec<u8>) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

fn oauth_error(e: &tumbler_oauth::TokenError, request_id: &str) -> Response {
    let mut r = base(e.status, request_id, "application/json", e.body());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.status == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tumbler\""),
        );
    }
    r
}

/// The Kafka principal name of an AWS caller: a role session is its role
/// (ACLs name roles, not sessions), a user's session the user.
fn kafka_name(p: &tumbler_identity::Principal) -> String {
    let last = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
    match &p.session {
        Some(session) => match &session.role_arn {
            Some(role) => last(role),
            None => last(&p.arn),
        },
        None => p.name.clone(),
    }
}

/// IAM decides who gets a Kafka token: `kafka-cluster:Connect` allowed on
/// a cluster registered in the principal's account, or, with none
/// registered, on `arn:aws:kafka:<region>:<account>:cluster/*`. The
/// refusal is IAM's own explanation.
fn may_connect_to_kafka(
    state: &AppState,
    principal: &tumbler_identity::Principal,
    request: &tumbler_identity::RequestInfo,
) -> Result<(), String> {
    let mut clusters = state.kafka.cluster_arns(&principal.account);
    if clusters.is_empty() {
        clusters.push(format!(
            "arn:aws:kafka:{}:{}:cluster/*",
            state.oauth_region, principal.account
        ));
    }
    let mut denial = String::new();
    for cluster in &clusters {
        match state.identity.authorize(
            principal,
            "kafka-cluster:Connect",
            cluster,
            request,
            tumbler_identity::ContextKeys::new(),
            None,
        ) {
            Ok(a) if a.is_allowed() => return Ok(()),
            Ok(a) => denial = a.message,
            Err(e) => {
                tracing::error!(error = %e, "IAM could not be read for a token request");
                return Err("The principal's permissions could not be read.".to_owned());
            }
        }
    }
    Err(denial)
}

/// A refused token request before the service saw it: audited, answered.
async fn oauth_refusal(
    state: &Arc<AppState>,
    parts: &http::request::Parts,
    info: ConnInfo,
    rid: &str,
    refusal: tumbler_oauth::TokenError,
    asker: tumbler_oauth::Asker,
) -> Response {
    if state.audit != AuditMode::Off {
        let event = audit::oauth_token_event(parts, info, rid, &state.oauth_region, Err((&refusal, &asker)));
        if let Err(e) = state.audit_sink.record(event).await {
            tracing::error!(request_id = %rid, error = %e, "audit event of a token request not written");
        }
    }
    tracing::info!(request_id = %rid, error = refusal.error, "token refused: {}", refusal.description);
    oauth_error(&refusal, rid)
}

/// `POST /oauth2/token` (RFC 6749 §4.4): client credentials for a JWT.
/// Every issuance and refusal goes to the audit trail.
pub async fn oauth_token(state: &Arc<AppState>, info: ConnInfo, req: Request<Incoming>) -> Response {
    use tumbler_oauth::{Asker, TokenError};
    let rid = request_id();
    let (parts, body) = req.into_parts();
    if parts.method != http::Method::POST {
        let e = TokenError {
            status: 405,
            error: "invalid_request",
            description: "The token endpoint takes POST.".into(),
        };
        let mut r = oauth_error(&e, &rid);
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let limit = tumbler_oauth::MAX_TOKEN_REQUEST;
    let Ok(body) = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
    else {
        let e = TokenError {
            status: 400,
            error: "invalid_request",
            description: format!("The request is larger than {limit} bytes."),
        };
        return oauth_error(&e, &rid);
    };
    // A header that is not text is no credential.
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    // A SigV4-signed request exchanges the caller's own AWS credentials.
    let signed = authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256"))
        || parts.uri.query().is_some_and(|q| q.contains("X-Amz-Signature="));
    let caller = if signed {
        match authenticate(&state.identity, &parts, &body, Some("tumbler"), jiff::Timestamp::now()) {
            Ok(caller) => Some(caller),
            Err(e) => {
                let refusal = TokenError {
                    status: 401,
                    error: "invalid_client",
                    description: format!("The SigV4 signature was not accepted: {}: {}", e.code, e.message),
                };
                return oauth_refusal(state, &parts, info, &rid, refusal, Asker::default()).await;
            }
        }
    } else {
        None
    };
    let s = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let now = jiff::Timestamp::now();
        let request = tumbler_identity::RequestInfo {
            now,
            source_ip: Some(info.peer.ip()),
            secure_transport: info.tls,
        };
        match &caller {
            Some(c) => {
                let may_connect = || may_connect_to_kafka(&s, &c.principal, &request);
                s.oauth.token_for_signed_caller(
                    &kafka_name(&c.principal),
                    &c.principal.arn,
                    &c.signature,
                    &body,
                    now,
                    &may_connect,
                )
            }
            None => {
                let may_connect = |row: &tumbler_store::PrincipalRow| {
                    may_connect_to_kafka(&s, &tumbler_identity::Principal::from_row(row), &request)
                };
                s.oauth.token(authorization.as_deref(), &body, now, &may_connect)
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        let e = TokenError {
            status: 500,
            error: "server_error",
            description: "An internal error occurred.".into(),
        };
        Err((e, Asker::default()))
    });
    if state.audit != AuditMode::Off {
        let outcome = match &outcome {
            Ok((_, issued)) => Ok(issued),
            Err((e, asker)) => Err((e, asker)),
        };
        let event = audit::oauth_token_event(&parts, info, &rid, &state.oauth_region, outcome);
        if let Err(e) = state.audit_sink.record(event).await {
            tracing::error!(request_id = %rid, error = %e, "audit event of a token request not written");
            if state.audit == AuditMode::FailClosed {
                let e = TokenError {
                    status: 500,
                    error: "server_error",
                    description: "The request could not be recorded in the audit trail, so it was refused.".into(),
                };
                return oauth_error(&e, &rid);
            }
        }
    }
    match outcome {
        Ok((body, issued)) => {
            tracing::info!(request_id = %rid, client = %issued.client_id, subject = %issued.subject, "token issued");
            let mut r = base(200, &rid, "application/json", body);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err((e, asker)) => {
            tracing::info!(request_id = %rid, client = ?asker.client_id, error = e.error, "token refused: {}", e.description);
            oauth_error(&e, &rid)
        }
    }
}

pub fn health() -> Response {
    http::Response::new(Full::new(Bytes::from_static(b"ok\n")))
}

/// The metrics in the OpenMetrics text format (it reads the store).
pub async fn metrics(metrics: Arc<crate::metrics::Metrics>) -> Response {
    let text = tokio::task::spawn_blocking(move || metrics.render())
        .await
        .unwrap_or_default();
    let mut r = http::Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

fn base(status: u16, request_id: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID, v);
    }
    // SDKs correct their clock skew from this header.
    if let Some(v) = date_header() {
        h.insert(header::DATE, v);
    }
    r
}

fn json_error(e: &AwsError, request_id: &str) -> Response {
    let mut r = base(e.status, request_id, JSON, e.json_body());
    if let Ok(v) = HeaderValue::from_str(e.code) {
        r.headers_mut().insert(ERROR_TYPE, v);
    }
    r
}

/// REST-JSON errors: the code in `x-amzn-ErrorType`, `{"message"}` in the body.
fn rest_error(e: &AwsError, request_id: &str) -> Response {
    let body = serde_json::json!({"message": e.message}).to_string().into_bytes();
    let mut r = base(e.status, request_id, "application/json", body);
    if let Ok(v) = HeaderValue::from_str(e.code) {
        r.headers_mut().insert(ERROR_TYPE, v);
    }
    r
}

fn query_error(service: &str, e: &AwsError, request_id: &str) -> Response {
    let xmlns = if service == "iam" {
        tumbler_wire::query::IAM_XMLNS
    } else {
        tumbler_wire::query::STS_XMLNS
    };
    let (status, body) = tumbler_wire::query::error_body(e, xmlns, request_id);
    base(status, request_id, "text/xml", body)
}

fn route(parts: &http::request::Parts) -> Result<Protocol, AwsError> {
    if let Some(rest) = tumbler_kafka::service::route_rest(&parts.method, parts.uri.path()) {
        let (op, cluster_arn) = rest?;
        return Ok(Protocol::Rest { op, cluster_arn });
    }
    if let Some(target) = parts.headers.get("x-amz-target") {
        let target = target
            .to_str()
            .map_err(|_| AwsError::unknown_operation("The X-Amz-Target header is not valid text."))?;
        if let Some(op) = target.strip_prefix(CLOUDTRAIL_TARGET) {
            return Ok(Protocol::Json {
                service: "cloudtrail",
                api: "",
                op: op.to_owned(),
            });
        }
        let (prefix, op) = target.split_once('.').unwrap_or((target, ""));
        let (service, api) = match prefix {
            "secretsmanager" => ("secretsmanager", ""),
            "TrentService" => ("kms", ""),
            "TumblerDatabases" => ("tumbler", "TumblerDatabases"),
            "TumblerKafka" => ("tumbler", "TumblerKafka"),
            "TumblerOAuth" => ("tumbler", "TumblerOAuth"),
            _ => {
                return Err(AwsError::unknown_operation(format!(
                    "The target '{target}' names a service this server does not provide."
                )));
            }
        };
        return Ok(Protocol::Json {
            service,
            api,
            op: op.to_owned(),
        });
    }
    // Without a target, the service is the one the request was signed for:
    // Query services are answered as Query; a JSON service needs a target.
    match tumbler_sigv4::parse(parts).ok().map(|a| a.service) {
        Some(s) if s == "secretsmanager" || s == "kms" || s == "tumbler" => Err(AwsError::unknown_operation(format!(
            "The request has no X-Amz-Target header naming a {s} operation."
        ))),
        Some(s) if s == "kafka" => Err(AwsError::custom(
            "BadRequestException",
            404,
            format!(
                "{} {} is not an MSK operation this server provides.",
                parts.method,
                parts.uri.path()
            ),
        )),
        Some(s) if s == "iam" => Ok(Protocol::Query { service: "iam" }),
        _ => Ok(Protocol::Query { service: "sts" }),
    }
}

/// How the call's errors are written.
#[derive(Clone, Copy)]
enum Format {
    Json,
    Query(&'static str),
    Rest,
}

pub async fn handle(state: &Arc<AppState>, info: ConnInfo, req: Request<Incoming>) -> Response {
    // The request's time, read once for all its uses (each read costs);
    // the elapsed time only when a debug line could use it.
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let now = jiff::Timestamp::now();
    let rid = request_id();
    let (parts, body) = req.into_parts();
    let mut trail = match state.audit {
        AuditMode::Off => Trail::Off,
        _ => Trail::Draft(Box::new(audit::draft(&parts, info, &rid, request_id(), now))),
    };
    let (format, result) = call(state, info, &parts, body, &rid, &mut trail, now).await;
    let error = result.as_ref().err().map(|e| (e.code, e.message.as_str()));
    let result = match trail.finish(error) {
        Some(event) => match state.audit_sink.record(event).await {
            Ok(()) => result,
            Err(e) if state.audit == AuditMode::FailOpen => {
                tracing::error!(request_id = %rid, error = %e, "audit event not written; answering anyway (fail-open)");
                result
            }
            Err(e) => {
                tracing::error!(request_id = %rid, error = %e, "audit event not written; refusing the call (fail-closed)");
                Err(AwsError::internal(
                    "The call could not be recorded in the audit trail, so it was refused. Try the request again.",
                ))
            }
        },
        None => result,
    };
    if let Some(started) = started
        && started.elapsed().as_secs() >= 1
    {
        tracing::debug!(request_id = %rid, micros = started.elapsed().as_micros() as u64, "slow call");
    }
    match (format, result) {
        (Format::Json, Ok(b)) => base(200, &rid, JSON, b),
        (Format::Json, Err(e)) => json_error(&e, &rid),
        (Format::Query(_), Ok(b)) => base(200, &rid, "text/xml", b),
        (Format::Query(service), Err(e)) => query_error(service, &e, &rid),
        (Format::Rest, Ok(b)) => base(200, &rid, "application/json", b),
        (Format::Rest, Err(e)) => rest_error(&e, &rid),
    }
}

/// Authenticate, route and run one call, filling in its audit event as
/// what it is becomes known.
async fn call(
    state: &Arc<AppState>,
    info: ConnInfo,
    parts: &http::request::Parts,
    body: Incoming,
    rid: &str,
    trail: &mut Trail,
    now: jiff::Timestamp,
) -> (Format, Result<Vec<u8>, AwsError>) {
    let started = Instant::now();
    let protocol = route(parts);
    let format = match &protocol {
        Ok(Protocol::Query { service }) => Format::Query(service),
        Ok(Protocol::Rest { .. }) => Format::Rest,
        _ if parts.uri.path().starts_with("/v1/") => Format::Rest,
        _ => Format::Json,
    };
    if let Some(e) = trail.event() {
        let (service, name) = match &protocol {
            Ok(Protocol::Json { service, op, .. }) => (*service, op.as_str()),
            Ok(Protocol::Query { service }) => (*service, ""),
            Ok(Protocol::Rest { op, .. }) => ("kafka", *op),
            Err(_) => ("", ""),
        };
        if !service.is_empty() {
            e.event_source = audit::event_source(service);
        }
        e.event_name = name.to_owned();
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return (format, Err(e)),
    };
    let protocol = match protocol {
        Ok(p) => p,
        Err(e) => {
            // Authenticate before telling anyone which targets exist.
            if let Err(auth) = authenticate(&state.identity, parts, &body, None, now) {
                return (format, Err(auth));
            }
            return (format, Err(e));
        }
    };
    let service = match &protocol {
        Protocol::Json { service, .. } | Protocol::Query { service } => *service,
        Protocol::Rest { .. } => "kafka",
    };
    let query_params = match protocol {
        Protocol::Query { .. } => Some(tumbler_wire::query::parse_params(parts.uri.query(), &body)),
        Protocol::Json { .. } | Protocol::Rest { .. } => None,
    };
    if let Some(e) = trail.event() {
        match &query_params {
            Some(params) => {
                let action = params.get("Action").map(String::as_str).unwrap_or_default();
                e.event_name = action.to_owned();
                e.read_only = service == "sts" || ["Get", "List", "Simulate"].iter().any(|p| action.starts_with(p));
                e.request_parameters =
                    tumbler_audit::query_parameters(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            None if service == "cloudtrail" => e.read_only = true,
            None if service == "kms" => {
                e.read_only = tumbler_kms::is_read_only(&e.event_name);
                e.request_parameters = tumbler_audit::parameters_of_json(&body);
            }
            None if service == "tumbler" => {
                e.read_only = tumbler_databases::registry::is_read_only(&e.event_name)
                    || tumbler_kafka::service::is_read_only(&e.event_name)
                    || tumbler_oauth::is_read_only(&e.event_name);
                e.request_parameters = tumbler_audit::parameters_of_json(&body);
            }
            None if service == "kafka" => {
                e.read_only = tumbler_kafka::service::is_read_only(&e.event_name);
                let mut params = tumbler_audit::parameters_of_json(&body).unwrap_or_else(|| serde_json::json!({}));
                if let (Protocol::Rest { cluster_arn, .. }, Some(map)) = (&protocol, params.as_object_mut()) {
                    map.insert("clusterArn".into(), serde_json::json!(cluster_arn));
                }
                e.request_parameters = Some(params);
            }
            None => {
                e.read_only = tumbler_secrets::is_read_only(&e.event_name);
                e.request_parameters = tumbler_audit::parameters_of_json(&body);
            }
        }
    }
    let caller = match authenticate(&state.identity, parts, &body, Some(service), now) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(request_id = %rid, service, code = e.code, "request refused: {}", e.message);
            if let Some(event) = trail.event() {
                // The caller is unproven: record the key it claimed.
                Arc::make_mut(&mut event.user_identity).access_key_id =
                    tumbler_sigv4::parse(parts).ok().map(|a| a.access_key_id);
            }
            return (format, Err(e));
        }
    };
    if let Some(e) = trail.event() {
        e.user_identity = state.audit_identities.of(&caller.principal, &caller.access_key_id);
        e.aws_region = caller.region.clone();
        e.recipient_account_id = caller.principal.account.clone();
    }
    let journal = trail.journal();
    let r = match (protocol, query_params) {
        (
            Protocol::Json {
                service: "cloudtrail",
                op,
                ..
            },
            _,
        ) => cloudtrail_call(state, &caller, info, &op, body).await,
        (Protocol::Json { service: "kms", op, .. }, _) => kms_call(state, &caller, info, op, body, journal).await,
        (
            Protocol::Json {
                service: "tumbler",
                api: "TumblerKafka",
                op,
            },
            _,
        ) => kafka_call(state, &caller, info, KafkaCall::Own(op), body).await,
        (
            Protocol::Json {
                service: "tumbler",
                api: "TumblerOAuth",
                op,
            },
            _,
        ) => oauth_call(state, &caller, info, op, body).await,
        (
            Protocol::Json {
                service: "tumbler", op, ..
            },
            _,
        ) => databases_call(state, &caller, info, op, body).await,
        (Protocol::Rest { op, cluster_arn }, _) => {
            let query = parts.uri.query().map(str::to_owned);
            kafka_call(state, &caller, info, KafkaCall::Msk { op, cluster_arn, query }, body).await
        }
        (Protocol::Json { op, .. }, _) => secrets_call(state, &caller, info, op, body, journal, now).await,
        (Protocol::Query { service }, Some(params)) => {
            query_call(state, &caller, info, service, params, rid.to_owned(), journal).await
        }
        (Protocol::Query { .. }, None) => Err(AwsError::internal("An internal error occurred.")),
    };
    log_call(rid, &caller, service, &r, started);
    (format, r)
}

fn log_call(rid: &str, caller: &Caller, target: &str, r: &Result<Vec<u8>, AwsError>, started: Instant) {
    // The clock is read only for a line that is written.
    let micros = || started.elapsed().as_micros() as u64;
    match r {
        Ok(_) => {
            tracing::debug!(request_id = %rid, principal = %caller.principal.arn, region = %caller.region, target, micros = micros(), "ok")
        }
        Err(e) => tracing::info!(
            request_id = %rid, principal = %caller.principal.arn, access_key = %caller.access_key_id,
            service = %caller.service, region = %caller.region, target, micros = micros(),
            code = e.code, "failed: {}", e.message
        ),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, AwsError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(AwsError::request_too_large(
            format!("The request body is larger than the {MAX_BODY}-byte limit."),
        )),
        Err(_) => Err(AwsError::serialization("The request body could not be read.")),
    }
}

async fn secrets_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    op: String,
    body: Bytes,
    journal: Option<Arc<CallJournal>>,
    now: jiff::Timestamp,
) -> Result<Vec<u8>, AwsError> {
    let authorizer = crate::authz::CallerAuthorizer::new(state, caller, info, now);
    let mut ctx = tumbler_secrets::Ctx::new(
        caller.principal.account.clone(),
        caller.region.clone(),
        caller.principal.arn.clone(),
        now,
        Arc::new(authorizer),
    );
    if let Some(j) = journal {
        ctx = ctx.with_journal(j);
    }
    let internal = || AwsError::internal("An internal error occurred. Try the request again.");
    if tumbler_secrets::is_read_only(&op) {
        // Reads are short indexed lookups: run them here, but never let a
        // bug take the connection down with a panic.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state.secrets.call(&mut ctx, &op, &body)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(op = %op, "operation panicked");
            Err(internal())
        })
    } else {
        // Writes wait for a durable commit; keep that off the async workers.
        let s = state.clone();
        tokio::task::spawn_blocking(move || s.secrets.call(&mut ctx, &op, &body))
            .await
            .unwrap_or_else(|_| {
                tracing::error!("operation panicked");
                Err(internal())
            })
    }
}

/// KMS calls; they may write to the store, so they run on the blocking pool.
async fn kms_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    op: String,
    body: Bytes,
    journal: Option<Arc<CallJournal>>,
) -> Result<Vec<u8>, AwsError> {
    let now = jiff::Timestamp::now();
    let ctx = tumbler_kms::KmsCtx {
        account: caller.principal.account.clone(),
        region: caller.region.clone(),
        now,
        authorizer: Arc::new(crate::authz::CallerAuthorizer::new(state, caller, info, now)),
        journal: journal.map(|j| j as Arc<dyn tumbler_store::Journal>),
    };
    let s = state.clone();
    tokio::task::spawn_blocking(move || s.kms.call(&ctx, &op, &body))
        .await
        .unwrap_or_else(|_| {
            tracing::error!("operation panicked");
            Err(tumbler_wire::kms::internal())
        })
}

/// Tumbler's database registrations; they talk to databases, so they run
/// on the blocking pool.
async fn databases_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    op: String,
    body: Bytes,
) -> Result<Vec<u8>, AwsError> {
    let now = jiff::Timestamp::now();
    let authorizer = Arc::new(crate::authz::CallerAuthorizer::new(state, caller, info, now));
    let ctx = tumbler_databases::DbCtx {
        account: caller.principal.account.clone(),
        region: caller.region.clone(),
        now,
        authorizer: authorizer.clone(),
        key_authorizer: authorizer,
    };
    let s = state.clone();
    on_blocking_pool(move || s.databases.call(&ctx, &op, &body)).await
}

/// Run a call that talks to the store or the network on the blocking pool;
/// a panic becomes InternalFailure, not a dropped connection.
async fn on_blocking_pool(
    call: impl FnOnce() -> Result<Vec<u8>, AwsError> + Send + 'static,
) -> Result<Vec<u8>, AwsError> {
    tokio::task::spawn_blocking(call).await.unwrap_or_else(|_| {
        tracing::error!("operation panicked");
        Err(AwsError::internal("An internal error occurred. Try the request again."))
    })
}

enum KafkaCall {
    /// `TumblerKafka.<op>`.
    Own(String),
    /// MSK's REST operations.
    Msk {
        op: &'static str,
        cluster_arn: String,
        query: Option<String>,
    },
}

/// Kafka clusters and SCRAM associations; they talk to brokers, so they
/// run on the blocking pool.
async fn kafka_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    call: KafkaCall,
    body: Bytes,
) -> Result<Vec<u8>, AwsError> {
    let now = jiff::Timestamp::now();
    let authorizer = Arc::new(crate::authz::CallerAuthorizer::new(state, caller, info, now));
    let ctx = tumbler_kafka::KafkaCtx {
        account: caller.principal.account.clone(),
        region: caller.region.clone(),
        now,
        authorizer: authorizer.clone(),
        secrets_authorizer: authorizer,
    };
    let s = state.clone();
    on_blocking_pool(move || match call {
        KafkaCall::Own(op) => s.kafka.call(&ctx, &op, &body),
        KafkaCall::Msk { op, cluster_arn, query } => s.kafka.rest_call(&ctx, op, &cluster_arn, query.as_deref(), &body),
    })
    .await
}

/// Tumbler's OAuth clients; they write to the store, so they run on the
/// blocking pool.
async fn oauth_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    op: String,
    body: Bytes,
) -> Result<Vec<u8>, AwsError> {
    let now = jiff::Timestamp::now();
    let ctx = tumbler_oauth::OAuthCtx {
        account: caller.principal.account.clone(),
        region: caller.region.clone(),
        now,
        authorizer: Arc::new(crate::authz::CallerAuthorizer::new(state, caller, info, now)),
    };
    let s = state.clone();
    on_blocking_pool(move || s.oauth.call(&ctx, &op, &body)).await
}

/// CloudTrail's LookupEvents over the audit trail.
async fn cloudtrail_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    op: &str,
    body: Bytes,
) -> Result<Vec<u8>, AwsError> {
    if op != "LookupEvents" {
        return Err(AwsError::unknown_operation(format!(
            "CloudTrail's {op} is not served here; LookupEvents is."
        )));
    }
    let internal = || AwsError::internal("An internal error occurred. Try the request again.");
    let auth = state
        .identity
        .authorize(
            &caller.principal,
            "cloudtrail:LookupEvents",
            "*",
            &tumbler_identity::RequestInfo {
                now: jiff::Timestamp::now(),
                source_ip: Some(info.peer.ip()),
                secure_transport: info.tls,
            },
            tumbler_identity::ContextKeys::new(),
            None,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "authorization could not read the store");
            internal()
        })?;
    if !auth.is_allowed() {
        return Err(AwsError::access_denied(auth.message));
    }
    let store = state.audit_sink.store().clone();
    let (account, region) = (caller.principal.account.clone(), caller.region.clone());
    tokio::task::spawn_blocking(move || tumbler_audit::lookup_events(store.as_ref(), &account, &region, &body))
        .await
        .unwrap_or_else(|_| Err(internal()))
}

/// IAM and STS calls; they may write to the store, so they run on the blocking pool.
async fn query_call(
    state: &Arc<AppState>,
    caller: &Caller,
    info: ConnInfo,
    service: &'static str,
    params: tumbler_identity::Params,
    rid: String,
    journal: Option<Arc<CallJournal>>,
) -> Result<Vec<u8>, AwsError> {
    let s = state.clone();
    let principal = caller.principal.clone();
    tokio::task::spawn_blocking(move || {
        let call = tumbler_identity::Call {
            caller: &principal,
            request: tumbler_identity::RequestInfo {
                now: jiff::Timestamp::now(),
                source_ip: Some(info.peer.ip()),
                secure_transport: info.tls,
            },
            request_id: &rid,
            params: &params,
            journal: journal.as_deref().map(|j| j as &dyn tumbler_store::Journal),
        };
        if service == "iam" {
            s.identity.iam_call(&call)
        } else {
            s.identity.sts_call(&call)
        }
    })
    .await
    .unwrap_or_else(|_| {
        tracing::error!("operation panicked");
        Err(AwsError::internal("An internal error occurred. Try the request again."))
    })
}
