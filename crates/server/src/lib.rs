//! The HTTP edge: the TCP/TLS listener, HTTP/1.1 and HTTP/2, routing of AWS
//! API calls to the services, authentication of every call, graceful
//! shutdown, and the background sweeper. The only crate that knows hyper
//! and rustls.
//!
//! Requests are dispatched by a plain `match` on method and path rather
//! than a router framework: the API is one endpoint (`/`) plus a few fixed
//! paths, and the framework layer cost more per request than SigV4 itself.

mod api;
pub mod audit;
mod authz;
pub mod events;
mod gate;
pub mod metrics;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tumbler_identity::Identity;
use tumbler_secrets::SecretsService;

pub use api::MAX_BODY;

/// What the request handlers share.
pub struct AppState {
    pub identity: Arc<Identity>,
    pub secrets: Arc<SecretsService>,
    pub kms: Arc<tumbler_kms::Kms>,
    /// Where events of calls that changed nothing go.
    pub audit_sink: audit::AuditSink,
    /// Each caller's identity as its audit events show it.
    pub audit_identities: audit::Identities,
    pub audit: audit::AuditMode,
    /// Prune audit events older than this (None: keep them all).
    pub audit_retention: Option<AuditRetention>,
    /// How often the sweeper purges deleted secrets and repairs replicas
    /// (and the rotation engine looks for due rotations).
    pub sweep_every: Duration,
    pub rotation: Arc<tumbler_rotation::Engine>,
    /// AWSCURRENT changes, for `GET /v1/secret-events`.
    pub current_events: Arc<events::CurrentEvents>,
    pub metrics: Arc<metrics::Metrics>,
    /// Database registrations with managed master passwords.
    pub databases: Arc<tumbler_databases::DatabaseService>,
    /// Registered Kafka clusters and their SCRAM associations.
    pub kafka: Arc<tumbler_kafka::KafkaService>,
    /// The OAuth token issuer (and its JWKS) for Kafka's OAUTHBEARER.
    pub oauth: Arc<tumbler_oauth::OAuthService>,
    /// The region recorded on token events (the server's default region).
    pub oauth_region: String,
    /// How often every Kafka cluster's users are reconciled.
    pub kafka_reconcile_every: Duration,
}

/// How long audit events are kept, and the chain key that signs the
/// anchor pruning leaves behind.
pub struct AuditRetention {
    pub max_age: Duration,
    pub chain: tumbler_audit::Chain,
}

/// How often the sweeper prunes the audit trail, when retention is set.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How a connection reached us, for handlers and policy conditions such as
/// aws:SourceIp and aws:SecureTransport.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as text, formatted once per connection.
    pub peer_ip: IpText,
    pub tls: bool,
    /// The negotiated TLS version and cipher suite, for the audit trail.
    pub tls_version: Option<&'static str>,
    pub tls_cipher: Option<&'static str>,
}

/// An IP address as text, inline so that `ConnInfo` stays `Copy`.
#[derive(Clone, Copy, Debug)]
pub struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl IpText {
    pub fn new(ip: std::net::IpAddr) -> IpText {
        use std::io::Write as _;
        let mut buf = [0u8; 45];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        // The longest IPv6 text (an IPv4-mapped address) is 45 bytes.
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as u8;
        IpText { buf, len }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }
}

/// One request: `GET /health` for load balancers, `GET /metrics` for
/// Prometheus, everything else is an AWS API call (AWS answers any path of
/// its endpoints the same way).
async fn dispatch(state: Arc<AppState>, info: ConnInfo, req: http::Request<Incoming>) -> api::Response {
    let get = req.method() == http::Method::GET;
    let response = match req.uri().path() {
        "/health" if get => return api::health(),
        "/metrics" if get => return api::metrics(state.metrics.clone()).await,
        "/v1/secret-events" if get => api::secret_events(&state, info, req).await,
        "/oauth2/token" => api::oauth_token(&state, info, req).await,
        "/.well-known/jwks.json" if get => api::oauth_document(state.oauth.jwks()),
        "/.well-known/openid-configuration" if get => api::oauth_document(state.oauth.discovery()),
        _ => api::handle(&state, info, req).await,
    };
    state.metrics.response(response.status().as_u16());
    response
}

/// Serve until `shutdown` resolves, then stop accepting, let in-flight
/// requests finish (up to 10 seconds), and return.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let sweeper = tokio::spawn(sweep(state.clone()));
    let rotations = tokio::spawn(state.rotation.clone().run(state.sweep_every));
    let kafka_sync = tokio::spawn(state.kafka.clone().run(state.kafka_reconcile_every));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let plain = ConnInfo {
            peer,
            peer_ip: IpText::new(peer.ip()),
            tls: false,
            tls_version: None,
            tls_cipher: None,
        };
        let service = move |state: Arc<AppState>, info: ConnInfo| {
            hyper::service::service_fn(move |req| {
                // Boxed once: a call's future is about 2.5 KB, which would
                // otherwise be copied each time hyper moves it.
                let fut = Box::pin(dispatch(state.clone(), info, req));
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            })
        };
        let builder = auto::Builder::new(TokioExecutor::new());
        match &acceptor {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service(state.clone(), plain))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let state = state.clone();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let session = stream.get_ref().1;
                    let info = ConnInfo {
                        tls: true,
                        tls_version: session.protocol_version().and_then(|v| v.as_str()),
                        tls_cipher: session.negotiated_cipher_suite().and_then(|c| c.suite().as_str()),
                        ..plain
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service(state, info))
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    sweeper.abort();
    rotations.abort();
    kafka_sync.abort();
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within 10 seconds");
    }
    Ok(())
}

async fn sweep(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.sweep_every);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        if state.audit_retention.is_some() && last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            prune_audit(state.clone()).await;
        }
        let s = state.clone();
        let r = tokio::task::spawn_blocking(move || {
            let event = |row: &tumbler_store::SecretRow| {
                (s.audit != audit::AuditMode::Off)
                    .then(|| audit::end_secret_deletion(row, uuid::Uuid::new_v4().to_string()))
            };
            s.secrets.purge_due(jiff::Timestamp::now(), &event)
        })
        .await;
        match r {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(purged = n, "purged secrets past their recovery window")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "purge failed"),
            _ => {}
        }
        let s = state.clone();
        match tokio::task::spawn_blocking(move || s.secrets.repair_replicas()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(primaries = n, "retried replicas that were not in sync"),
            Ok(Err(e)) => tracing::warn!(error = %e, "replica repair failed"),
            _ => {}
        }
        let s = state.clone();
        let kms_event = |s: &Arc<AppState>| {
            let on = s.audit != audit::AuditMode::Off;
            move |row: &tumbler_store::KmsKeyRow, name: &str| {
                on.then(|| audit::kms_service_event(row, name, uuid::Uuid::new_v4().to_string()))
            }
        };
        let event = kms_event(&s);
        match tokio::task::spawn_blocking(move || s.kms.rotate_due_keys(jiff::Timestamp::now(), &event)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(keys = n, "rotated KMS keys whose rotation was due"),
            Ok(Err(e)) => tracing::warn!(error = %e, "KMS key rotation failed"),
            _ => {}
        }
        let s = state.clone();
        let event = kms_event(&s);
        match tokio::task::spawn_blocking(move || s.kms.delete_due_keys(jiff::Timestamp::now(), &event)).await {
            Ok(Ok(n)) if n > 0 => tracing::warn!(keys = n, "deleted KMS keys at the end of their deletion window"),
            Ok(Err(e)) => tracing::warn!(error = %e, "KMS key deletion failed"),
            _ => {}
        }
    }
}

async fn prune_audit(state: Arc<AppState>) {
    let r = tokio::task::spawn_blocking(move || {
        let retention = state.audit_retention.as_ref()?;
        let now = jiff::Timestamp::now();
        let cut = now - jiff::SignedDuration::try_from(retention.max_age).unwrap_or(jiff::SignedDuration::MAX);
        Some(tumbler_audit::prune(
            state.audit_sink.store().as_ref(),
            &retention.chain,
            cut,
            now.as_millisecond(),
        ))
    })
    .await;
    match r {
        Ok(Some(Ok(p))) if p.events > 0 => {
            tracing::info!(pruned = p.events, through = p.through_seq, "pruned old audit events")
        }
        // A broken chain is evidence: it is reported, never pruned.
        Ok(Some(Err(e))) => tracing::error!(error = %e, "audit retention: pruning refused"),
        _ => {}
    }
}
