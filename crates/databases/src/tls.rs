//! TLS to the databases: the roots a `verify-full` connection trusts (the
//! system's and the operator's `--database-ca-file`), and the
//! no-verification config of `require`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What the database rotators trust.
#[derive(Clone)]
pub struct DatabaseTls {
    /// The operator's CA bundle (PEM), if given.
    ca_pem: Option<Arc<Vec<u8>>>,
    verifying: Arc<ClientConfig>,
    unverified: Arc<ClientConfig>,
}

impl DatabaseTls {
    /// The system roots, plus the certificates in `ca_pem` if given.
    pub fn new(ca_pem: Option<Vec<u8>>) -> Result<DatabaseTls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        // An unreadable system store leaves only the operator's CA.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(pem) = &ca_pem {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the database CA file is not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("the database CA file holds no certificate".into());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("the database CA file holds a bad certificate: {e}"))?;
            }
        }
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())
        };
        let verifying = builder()?.with_root_certificates(roots).with_no_client_auth();
        let unverified = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
            .with_no_client_auth();
        Ok(DatabaseTls {
            ca_pem: ca_pem.map(Arc::new),
            verifying: Arc::new(verifying),
            unverified: Arc::new(unverified),
        })
    }

    pub fn verifying(&self) -> ClientConfig {
        (*self.verifying).clone()
    }

    pub fn unverified(&self) -> ClientConfig {
        (*self.unverified).clone()
    }

    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref().map(Vec::as_slice)
    }
}

/// libpq's `sslmode=require`: encrypted, but any certificate is taken.
/// The handshake's signatures are still checked, so the session key is
/// bound to the certificate presented.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
