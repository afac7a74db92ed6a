//! Webhook rotators: an HTTPS endpoint that receives, for each step, the
//! event AWS sends a rotation Lambda, and calls back into Tumbler's API
//! with its own credentials, as a Lambda does. 2xx means the step is done.
//!
//! Each request is signed so the endpoint can refuse anything else:
//! `X-Tumbler-Timestamp` (Unix seconds), `X-Tumbler-Delivery` (a UUID, new
//! for every request, for replay detection) and
//! `X-Tumbler-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<delivery>.<body>")>`.
//! The endpoint should accept a timestamp within five minutes and each
//! delivery once (examples/rotation-function/webhook.py does).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tumbler_crypto::MacKey;

use crate::command::ARN_PREFIX;
use crate::{Rotator, Step, StepCall, StepError};

/// Bytes of the endpoint's answer kept for a failure message.
const KEEP_BODY: usize = 300;

pub struct WebhookRotator {
    arn: String,
    description: String,
    url: http::Uri,
    key: MacKey,
    timeout: Duration,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
}

impl WebhookRotator {
    /// `spec` is `NAME=URL secret-file=FILE [ca=FILE] [timeout=SECS]`.
    /// Plain http is accepted for loopback addresses only.
    pub fn parse(spec: &str, runtime: tokio::runtime::Handle) -> Result<Self, String> {
        let bad = |why: &str| format!("--webhook-rotator {spec}: {why}");
        let mut words = spec.split_whitespace();
        let (name, url) = words
            .next()
            .and_then(|w| w.split_once('='))
            .ok_or_else(|| bad("give NAME=URL secret-file=FILE [ca=FILE] [timeout=SECS]"))?;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok || name.starts_with("tumbler-") {
            return Err(bad(
                "the name must be 1-64 letters, digits, - or _, and not start with tumbler-",
            ));
        }
        let url: http::Uri = url.parse().map_err(|_| bad("the URL does not parse"))?;
        let loopback = matches!(url.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match url.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err(bad("the URL must be https (http only on a loopback address)")),
        }
        let (mut secret_file, mut ca, mut timeout) = (None, None, Duration::from_secs(30));
        for option in words {
            match option.split_once('=') {
                Some(("secret-file", f)) => secret_file = Some(f.to_owned()),
                Some(("ca", f)) => ca = Some(f.to_owned()),
                Some(("timeout", s)) => {
                    let secs: u64 = s
                        .parse()
                        .ok()
                        .filter(|s| (1..=900).contains(s))
                        .ok_or_else(|| bad("timeout is 1 to 900 seconds"))?;
                    timeout = Duration::from_secs(secs);
                }
                _ => return Err(bad(&format!("unknown option {option}"))),
            }
        }
        let secret_file = secret_file.ok_or_else(|| bad("secret-file=FILE is required (the signing secret)"))?;
        // Wiped when dropped; only the HMAC key schedule is kept.
        let secret = tumbler_types::SensitiveString::new(
            std::fs::read_to_string(&secret_file).map_err(|e| bad(&format!("cannot read {secret_file}: {e}")))?,
        );
        let secret = secret.expose().trim_end_matches(['\r', '\n']);
        if secret.len() < 16 {
            return Err(bad("the signing secret must have at least 16 characters"));
        }
        let tls = tls_config(ca.as_deref().map(Path::new)).map_err(|e| bad(&e))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(WebhookRotator {
            arn: format!("{ARN_PREFIX}{name}"),
            description: format!("POSTs each step to {url}"),
            url,
            key: MacKey::from_secret(secret.as_bytes()),
            timeout,
            client: Client::builder(TokioExecutor::new()).build(https),
            runtime,
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), StepError> {
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let delivery = uuid::Uuid::new_v4().to_string();
        let mac = self
            .key
            .sign(&[timestamp.as_bytes(), b".", delivery.as_bytes(), b".", &body]);
        let request = http::Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("user-agent", concat!("tumbler/", env!("CARGO_PKG_VERSION")))
            .header("x-tumbler-timestamp", &timestamp)
            .header("x-tumbler-delivery", &delivery)
            .header("x-tumbler-signature", format!("v1={}", hex::encode(mac)))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| StepError(format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| StepError(format!("{} did not answer: {}", self.url, chain(&e))))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let start = body.len().min(KEEP_BODY);
        Err(StepError(format!(
            "{} answered {status}: {}",
            self.url,
            String::from_utf8_lossy(&body[..start]).trim()
        )))
    }
}

/// An error and its sources ("client error (Connect): invalid peer certificate: UnknownIssuer").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let pem = match ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?),
        None => None,
    };
    let source = ca.map(|p| p.display().to_string()).unwrap_or_default();
    client_tls_config(pem.as_deref(), &source)
}

/// A TLS client configuration trusting the CA certificates in `ca_pem`
/// (named `source` in errors), or the system's roots when there is none.
/// Shared by the outbound clients of built-in integrations.
pub fn client_tls_config(ca_pem: Option<&[u8]>, source: &str) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{source} holds a bad certificate: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{source} holds no PEM certificate"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{source} holds a bad certificate: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Rotator for WebhookRotator {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError> {
        let event = call.event(step);
        // Steps run on blocking threads; the request runs on the server's runtime.
        let attempt = tokio::time::timeout(self.timeout, self.post(event.to_string().into_bytes()));
        match self.runtime.block_on(attempt) {
            Ok(result) => result,
            Err(_) => Err(StepError(format!(
                "{} did not finish {} within {} s",
                self.url,
                step.as_str(),
                self.timeout.as_secs()
            ))),
        }
    }
}
