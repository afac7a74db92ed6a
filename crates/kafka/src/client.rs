//! A small Kafka admin client: one connection, one request in flight,
//! SASL/SCRAM-SHA-512 login, and the KIP-554 calls (Alter and Describe
//! UserScramCredentials). The messages are kafka-protocol's codecs; the
//! framing, version negotiation and SASL exchange are here because no
//! maintained Rust crate offers SCRAM administration over SASL (rdkafka's
//! safe API has none, rskafka lacks the KIP-554 calls).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiVersionsRequest, ApiVersionsResponse,
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestHeader,
    ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tumbler_types::SensitiveString;

use crate::acl::{Acl, Operation, PatternType, Permission, ResourceType};
use crate::scram::ScramClient;

/// Kafka's mechanism number for SCRAM-SHA-512 (1 is SCRAM-SHA-256).
pub const SCRAM_SHA_512: i8 = 2;
/// A frame larger than this is not an answer to anything we ask.
const MAX_FRAME: usize = 16 << 20;
const CLIENT_ID: &str = "tumbler";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Error codes the sync engine treats specially.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const RESOURCE_NOT_FOUND: i16 = 91;
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot connect to {0}")]
    Connect(String),
    /// The broker refused the credentials (error 58), or the exchange failed.
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the broker answered with error {code}: {message}")]
    Broker { code: i16, message: String },
    #[error("{0}")]
    Protocol(String),
}

impl KafkaError {
    pub fn is_auth(&self) -> bool {
        matches!(self, KafkaError::Auth(_))
    }
}

/// Where a cluster is and how to reach it.
#[derive(Clone)]
pub struct Target {
    pub bootstrap_servers: Vec<String>,
    /// SASL_SSL when set (the roots to trust), SASL_PLAINTEXT when not.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// One SCRAM-SHA-512 credential to set: Kafka is sent the salt and the
/// salted password, never the password.
pub struct Upsertion {
    pub user: String,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub salted_password: tumbler_types::Sensitive,
}

/// One user's outcome in an AlterUserScramCredentials answer.
#[derive(Debug, Clone)]
pub struct AlterResult {
    pub user: String,
    pub code: i16,
    pub message: Option<String>,
}

/// A user and the SCRAM mechanisms (with iterations) it has.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: String,
    pub code: i16,
    pub mechanisms: Vec<(i8, i32)>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A request this client sends: its API key and its answer's type (the
/// crate's own `Request` trait also needs the broker-side codecs).
trait Call: Encodable + HeaderVersion {
    const KEY: i16;
    type Response: Decodable + HeaderVersion;
}

macro_rules! call {
    ($req:ty, $resp:ty, $key:expr) => {
        impl Call for $req {
            const KEY: i16 = $key;
            type Response = $resp;
        }
    };
}
call!(ApiVersionsRequest, ApiVersionsResponse, 18);
call!(SaslHandshakeRequest, SaslHandshakeResponse, 17);
call!(SaslAuthenticateRequest, SaslAuthenticateResponse, 36);
call!(
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
    50
);
call!(AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, 51);
call!(DescribeAclsRequest, DescribeAclsResponse, 29);
call!(CreateAclsRequest, CreateAclsResponse, 30);
call!(DeleteAclsRequest, DeleteAclsResponse, 31);

/// The protocol's "any" in ACL filters (resource type, pattern type,
/// operation, permission).
const ACL_ANY: i8 = 1;
/// Tumbler's ACLs apply on every host.
const ACL_ANY_HOST: &str = "*";

/// An authenticated connection to one broker.
pub struct Connection {
    io: Box<dyn Io>,
    next_correlation: i32,
    /// Per API key, the versions the broker serves.
    versions: HashMap<i16, (i16, i16)>,
    /// What the broker answered to the login: the session ends after this
    /// many milliseconds (0: never).
    pub session_lifetime_ms: i64,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl Connection {
    /// Connect to the first bootstrap server that answers and log in.
    pub async fn open(target: &Target, user: &str, password: &SensitiveString) -> Result<Connection, KafkaError> {
        let mut last = KafkaError::Connect("no bootstrap servers".into());
        for server in &target.bootstrap_servers {
            match tokio::time::timeout(REQUEST_TIMEOUT, Self::open_one(server, target, user, password)).await {
                Ok(Ok(c)) => return Ok(c),
                // A refused login is the answer, whichever broker gives it.
                Ok(Err(e @ KafkaError::Auth(_))) => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => last = KafkaError::Connect(format!("{server}: no answer within {REQUEST_TIMEOUT:?}")),
            }
        }
        Err(last)
    }

    async fn open_one(
        server: &str,
        target: &Target,
        user: &str,
        password: &SensitiveString,
    ) -> Result<Connection, KafkaError> {
        let tcp = tokio::net::TcpStream::connect(server)
            .await
            .map_err(|e| KafkaError::Connect(format!("{server}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &target.tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|_| KafkaError::Connect(format!("{server}: not a host name for TLS")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| KafkaError::Connect(format!("{server}: TLS: {e}")))?;
                Box::new(tls)
            }
        };
        let mut conn = Connection {
            io,
            next_correlation: 1,
            versions: HashMap::new(),
            session_lifetime_ms: 0,
        };
        conn.negotiate_versions().await?;
        conn.login_scram(user, password).await?;
        Ok(conn)
    }

    /// ApiVersions v3 (v0 if the broker is older than KIP-511).
    async fn negotiate_versions(&mut self) -> Result<(), KafkaError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(text("tumbler"))
            .with_client_software_version(text(env!("CARGO_PKG_VERSION")));
        let mut answer = self.send(&request, 3).await?;
        if answer.error_code == 35 {
            answer = self.send(&ApiVersionsRequest::default(), 0).await?;
        }
        if answer.error_code != codes::NONE {
            return Err(broker_error(answer.error_code, None, "ApiVersions"));
        }
        self.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version of `key` both sides speak, within `ours`.
    fn version(&self, key: i16, ours: (i16, i16), name: &str) -> Result<i16, KafkaError> {
        let (min, max) = self
            .versions
            .get(&key)
            .copied()
            .ok_or_else(|| KafkaError::Protocol(format!("the broker does not offer {name}")))?;
        let v = max.min(ours.1);
        if v < min.max(ours.0) {
            return Err(KafkaError::Protocol(format!(
                "the broker speaks {name} v{min}-v{max}; this client speaks v{}-v{}",
                ours.0, ours.1
            )));
        }
        Ok(v)
    }

    async fn login_scram(&mut self, user: &str, password: &SensitiveString) -> Result<(), KafkaError> {
        let handshake = self.version(17, (1, 1), "SaslHandshake")?;
        let answer = self
            .send(
                &SaslHandshakeRequest::default().with_mechanism(text("SCRAM-SHA-512")),
                handshake,
            )
            .await?;
        if answer.error_code != codes::NONE {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(KafkaError::Auth(format!(
                "the listener does not offer SCRAM-SHA-512 (it offers {})",
                offered.join(", ")
            )));
        }
        let version = self.version(36, (0, 2), "SaslAuthenticate")?;
        let mut scram = ScramClient::new(user, password)?;
        let first = self.authenticate(scram.client_first().into_bytes(), version).await?;
        let server_first = String::from_utf8(first.auth_bytes.to_vec())
            .map_err(|_| KafkaError::Auth("the server's first SCRAM message is not text".into()))?;
        let client_final = scram.client_final(&server_first)?;
        let last = self.authenticate(client_final.into_bytes(), version).await?;
        let server_final = String::from_utf8(last.auth_bytes.to_vec())
            .map_err(|_| KafkaError::Auth("the server's final SCRAM message is not text".into()))?;
        scram.verify_server_final(&server_final)?;
        self.session_lifetime_ms = last.session_lifetime_ms;
        Ok(())
    }

    async fn authenticate(&mut self, bytes: Vec<u8>, version: i16) -> Result<SaslAuthenticateResponse, KafkaError> {
        let answer = self
            .send(
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
                version,
            )
            .await?;
        if answer.error_code != codes::NONE {
            let message = answer
                .error_message
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            return Err(KafkaError::Auth(format!("error {}: {message}", answer.error_code)));
        }
        Ok(answer)
    }

    /// Set and delete SCRAM-SHA-512 credentials in one request. At most one
    /// change per user (Kafka fails every change of a user named twice).
    pub async fn alter_scram(
        &mut self,
        upsertions: &[Upsertion],
        deletions: &[String],
    ) -> Result<Vec<AlterResult>, KafkaError> {
        let version = self.version(51, (0, 0), "AlterUserScramCredentials")?;
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(
                upsertions
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(text(&u.user))
                            .with_mechanism(SCRAM_SHA_512)
                            .with_iterations(u.iterations as i32)
                            .with_salt(Bytes::copy_from_slice(&u.salt))
                            .with_salted_password(Bytes::copy_from_slice(u.salted_password.expose()))
                    })
                    .collect(),
            )
            .with_deletions(
                deletions
                    .iter()
                    .map(|user| {
                        ScramCredentialDeletion::default()
                            .with_name(text(user))
                            .with_mechanism(SCRAM_SHA_512)
                    })
                    .collect(),
            );
        let answer = self.send(&request, version).await?;
        Ok(answer
            .results
            .into_iter()
            .map(|r| AlterResult {
                user: r.user.as_str().to_owned(),
                code: r.error_code,
                message: r.error_message.map(|m| m.as_str().to_owned()),
            })
            .collect())
    }

    /// The SCRAM credentials of `users`, or of every user when `None`.
    pub async fn describe_scram(&mut self, users: Option<&[String]>) -> Result<Vec<UserCredentials>, KafkaError> {
        let version = self.version(50, (0, 0), "DescribeUserScramCredentials")?;
        let request = DescribeUserScramCredentialsRequest::default()
            .with_users(users.map(|u| u.iter().map(|n| UserName::default().with_name(text(n))).collect()));
        let answer = self.send(&request, version).await?;
        if answer.error_code != codes::NONE {
            return Err(broker_error(
                answer.error_code,
                answer.error_message.as_ref().map(|m| m.as_str()),
                "DescribeUserScramCredentials",
            ));
        }
        Ok(answer
            .results
            .into_iter()
            .map(|r| UserCredentials {
                user: r.user.as_str().to_owned(),
                code: r.error_code,
                mechanisms: r.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect(),
            })
            .collect())
    }

    /// Every ACL on the cluster that applies on all hosts (the only kind
    /// Tumbler sets); others, and kinds this crate does not know, are
    /// left out.
    pub async fn describe_acls(&mut self) -> Result<Vec<Acl>, KafkaError> {
        let version = self.version(29, (1, 3), "DescribeAcls")?;
        // Null filters match anything; the codec's defaults are empty
        // strings, which match nothing.
        let request = DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(ACL_ANY)
            .with_pattern_type_filter(ACL_ANY)
            .with_operation(ACL_ANY)
            .with_permission_type(ACL_ANY);
        let answer = self.send(&request, version).await?;
        if answer.error_code != codes::NONE {
            return Err(broker_error(
                answer.error_code,
                answer.error_message.as_ref().map(|m| m.as_str()),
                "DescribeAcls",
            ));
        }
        let mut acls = Vec::new();
        for resource in answer.resources {
            let (Some(resource_type), Some(pattern_type)) = (
                ResourceType::from_code(resource.resource_type),
                PatternType::from_code(resource.pattern_type),
            ) else {
                continue;
            };
            for a in resource.acls {
                let (Some(operation), Some(permission)) = (
                    Operation::from_code(a.operation),
                    Permission::from_code(a.permission_type),
                ) else {
                    continue;
                };
                if a.host.as_str() != ACL_ANY_HOST {
                    continue;
                }
                acls.push(Acl {
                    principal: a.principal.as_str().to_owned(),
                    permission,
                    operation,
                    resource_type,
                    pattern_type,
                    resource_name: resource.resource_name.as_str().to_owned(),
                });
            }
        }
        Ok(acls)
    }

    /// Create ACLs; per ACL, None or the broker's error.
    pub async fn create_acls(&mut self, acls: &[Acl]) -> Result<Vec<Option<String>>, KafkaError> {
        let version = self.version(30, (1, 3), "CreateAcls")?;
        let request = CreateAclsRequest::default().with_creations(
            acls.iter()
                .map(|a| {
                    AclCreation::default()
                        .with_resource_type(a.resource_type.code())
                        .with_resource_name(text(&a.resource_name))
                        .with_resource_pattern_type(a.pattern_type.code())
                        .with_principal(text(&a.principal))
                        .with_host(text(ACL_ANY_HOST))
                        .with_operation(a.operation.code())
                        .with_permission_type(a.permission.code())
                })
                .collect(),
        );
        let answer = self.send(&request, version).await?;
        Ok(acl_outcomes(
            acls.len(),
            answer.results.iter().map(|r| (r.error_code, r.error_message.as_ref())),
        ))
    }

    /// Delete exactly these ACLs (each filter names one ACL in full); per
    /// ACL, how many the broker deleted (0: it was not there), or its error.
    pub async fn delete_acls(&mut self, acls: &[Acl]) -> Result<Vec<Result<usize, String>>, KafkaError> {
        let version = self.version(31, (1, 3), "DeleteAcls")?;
        let request = DeleteAclsRequest::default().with_filters(
            acls.iter()
                .map(|a| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(a.resource_type.code())
                        .with_resource_name_filter(Some(text(&a.resource_name)))
                        .with_pattern_type_filter(a.pattern_type.code())
                        .with_principal_filter(Some(text(&a.principal)))
                        .with_host_filter(Some(text(ACL_ANY_HOST)))
                        .with_operation(a.operation.code())
                        .with_permission_type(a.permission.code())
                })
                .collect(),
        );
        let answer = self.send(&request, version).await?;
        let outcomes = acl_outcomes(
            acls.len(),
            answer
                .filter_results
                .iter()
                .map(|r| (r.error_code, r.error_message.as_ref())),
        );
        Ok(outcomes
            .into_iter()
            .enumerate()
            .map(|(i, error)| match error {
                Some(e) => Err(e),
                None => Ok(answer.filter_results.get(i).map_or(0, |r| r.matching_acls.len())),
            })
            .collect())
    }

    async fn send<R: Call>(&mut self, request: &R, version: i16) -> Result<R::Response, KafkaError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request, version))
            .await
            .map_err(|_| KafkaError::Connect(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }

    async fn exchange<R: Call>(&mut self, request: &R, version: i16) -> Result<R::Response, KafkaError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(text(CLIENT_ID)));
        let encode_err = |e: anyhow::Error| KafkaError::Protocol(format!("cannot encode a request: {e}"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(encode_err)?;
        request.encode(&mut body, version).map_err(encode_err)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        let io_err = |e: std::io::Error| KafkaError::Connect(format!("the connection failed: {e}"));
        self.io.write_all(&frame).await.map_err(io_err)?;
        self.io.flush().await.map_err(io_err)?;

        let mut len = [0u8; 4];
        self.io.read_exact(&mut len).await.map_err(io_err)?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| KafkaError::Protocol(format!("the broker sent a frame of {len} bytes")))?;
        let mut answer = vec![0u8; len];
        self.io.read_exact(&mut answer).await.map_err(io_err)?;
        let mut answer = Bytes::from(answer);
        let decode_err = |e: anyhow::Error| KafkaError::Protocol(format!("cannot decode the broker's answer: {e}"));
        let header = ResponseHeader::decode(&mut answer, R::Response::header_version(version)).map_err(decode_err)?;
        if header.correlation_id != correlation {
            return Err(KafkaError::Protocol(format!(
                "the broker answered request {} to request {correlation}",
                header.correlation_id
            )));
        }
        let decoded = R::Response::decode(&mut answer, version).map_err(decode_err)?;
        if answer.has_remaining() {
            tracing::debug!(remaining = answer.remaining(), "trailing bytes in a Kafka answer");
        }
        Ok(decoded)
    }
}

/// Per-item outcomes of an ACL call, `expected` of them whatever the
/// broker sent.
fn acl_outcomes<'a>(
    expected: usize,
    results: impl Iterator<Item = (i16, Option<&'a StrBytes>)>,
) -> Vec<Option<String>> {
    let mut outcomes: Vec<Option<String>> = results
        .map(|(code, message)| {
            (code != codes::NONE).then(|| format!("Kafka error {code}: {}", message.map_or("", |m| m.as_str())))
        })
        .collect();
    outcomes.resize(expected, Some("Kafka did not answer for this ACL".to_owned()));
    outcomes
}

fn broker_error(code: i16, message: Option<&str>, call: &str) -> KafkaError {
    let message = match (message, code) {
        (Some(m), _) if !m.is_empty() => m.to_owned(),
        (_, codes::CLUSTER_AUTHORIZATION_FAILED) => {
            format!("{call}: the admin user may not alter or describe the cluster")
        }
        _ => format!("{call} failed"),
    };
    KafkaError::Broker { code, message }
}
