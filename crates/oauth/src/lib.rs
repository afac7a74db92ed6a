//! An OAuth 2.0 token issuer for Kafka's SASL/OAUTHBEARER (KIP-768):
//! clients of IAM principals get short-lived ES256 (or RS256) JWTs with the
//! client_credentials grant (RFC 6749 §4.4), and brokers verify them with
//! the JWKS. Served on the API's port:
//!
//! - `POST /oauth2/token`: client authentication by HTTP Basic (as the Kafka
//!   Java client and librdkafka send it) or form fields; `scope` honoured;
//!   RFC 6749 §5.2 errors;
//! - `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration`;
//! - clients are managed with `X-Amz-Target: TumblerOAuth.<Operation>`
//!   (CreateClient, ListClients, DeleteClient, RotateSigningKey), signed for `tumbler`, IAM
//!   actions `tumbler:<Operation>`.

pub mod clients;
pub mod keys;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use tumbler_store::{ResourceRow, Store, StoreError, Write};
use tumbler_wire::AwsError;

use crate::clients::{Client, DEFAULT_LIFETIME_S, DEFAULT_SCOPE, KIND};
use crate::keys::{Algorithm, KeyRing, MAX_LIFETIME_S};

pub use tumbler_secrets::ActionAuthorizer;

/// The largest token request read (a form with an id, a secret and scopes).
pub const MAX_TOKEN_REQUEST: usize = 8 * 1024;

pub struct OAuthService {
    store: Arc<dyn Store>,
    keys: KeyRing,
    /// `iss`, and the base of the endpoints' URLs.
    issuer: String,
    /// `aud`: brokers check it (`sasl.oauthbearer.expected.audience`).
    audience: String,
    /// Signatures of SigV4-signed token requests already answered, until
    /// they expire: a signed request is exchanged once.
    seen_signatures: std::sync::Mutex<std::collections::HashMap<Vec<u8>, i64>>,
}

/// One call's caller, for the client API.
pub struct OAuthCtx {
    pub account: String,
    pub region: String,
    pub now: jiff::Timestamp,
    pub authorizer: Arc<dyn ActionAuthorizer>,
}

/// An RFC 6749 §5.2 error: `{"error", "error_description"}` with its status.
#[derive(Debug)]
pub struct TokenError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

fn token_error(status: u16, error: &'static str, description: impl Into<String>) -> TokenError {
    TokenError {
        status,
        error,
        description: description.into(),
    }
}

impl TokenError {
    pub fn body(&self) -> Vec<u8> {
        json!({"error": self.error, "error_description": self.description})
            .to_string()
            .into_bytes()
    }
}

/// What an issued token says, for the audit trail (never the token).
pub struct Issued {
    pub client_id: String,
    pub principal_arn: String,
    pub subject: String,
    pub scope: String,
    pub jti: String,
    pub expires_in: u64,
}

/// Who asked, for the audit trail of a refusal.
#[derive(Default)]
pub struct Asker {
    pub client_id: Option<String>,
    pub principal_arn: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateRequest {
    principal_arn: Option<String>,
    scopes: Option<Vec<String>>,
    token_lifetime_seconds: Option<u64>,
    signing_algorithm: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RotateRequest {
    algorithm: Option<String>,
    retire_replaced: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ClientIdRequest {
    client_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct ListRequest {}

pub const OPERATIONS: &[&str] = &["CreateClient", "ListClients", "DeleteClient", "RotateSigningKey"];

pub fn is_read_only(op: &str) -> bool {
    op == "ListClients"
}

/// The request's JSON (an empty body is `{}`); errors never echo a value.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    tumbler_wire::decode(body)
}

fn store_err(e: StoreError) -> AwsError {
    tracing::error!(error = %e, "oauth store failure");
    AwsError::internal("An internal error occurred. Try the request again.")
}

/// A scope token (RFC 6749 §3.3): printable ASCII but space, `"` and `\`.
fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

impl OAuthService {
    pub fn new(store: Arc<dyn Store>, kek: tumbler_crypto::Kek, issuer: String, audience: String) -> Self {
        OAuthService {
            keys: KeyRing::new(store.clone(), kek),
            store,
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience,
            seen_signatures: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn jwks(&self) -> Vec<u8> {
        self.keys
            .jwks(jiff::Timestamp::now().as_millisecond())
            .to_string()
            .into_bytes()
    }

    pub fn discovery(&self) -> Vec<u8> {
        json!({
            "issuer": self.issuer,
            "token_endpoint": format!("{}/oauth2/token", self.issuer),
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "subject_types_supported": ["public"],
        })
        .to_string()
        .into_bytes()
    }

    /// The client API (`TumblerOAuth.<op>`).
    pub fn call(&self, ctx: &OAuthCtx, op: &str, body: &[u8]) -> Result<Vec<u8>, AwsError> {
        let out = match op {
            "CreateClient" => self.create_client(ctx, parse(body)?)?,
            "ListClients" => {
                let _: ListRequest = parse(body)?;
                ctx.authorizer.authorize("tumbler:ListClients", "*")?;
                let rows = self
                    .store
                    .resources(KIND, &ctx.account, &ctx.region)
                    .map_err(store_err)?;
                let list: Vec<Value> = rows
                    .iter()
                    .filter_map(|row| Some(describe(row, &serde_json::from_str(&row.meta).ok()?)))
                    .collect();
                json!({"Clients": list})
            }
            "RotateSigningKey" => {
                let r: RotateRequest = parse(body)?;
                let algorithm = match r.algorithm.as_deref() {
                    None => Algorithm::default(),
                    Some(a) => Algorithm::parse(a)
                        .ok_or_else(|| AwsError::invalid_parameter("Algorithm must be ES256 or RS256."))?,
                };
                ctx.authorizer.authorize("tumbler:RotateSigningKey", "*")?;
                let (kid, retired) = self
                    .keys
                    .rotate_now(algorithm, ctx.now.as_millisecond(), r.retire_replaced == Some(true))
                    .map_err(|e| {
                        tracing::error!(error = %e, "a signing key rotation failed");
                        AwsError::internal(format!("The signing key was not rotated: {e}"))
                    })?;
                json!({"KeyId": kid, "Algorithm": algorithm.as_str(), "RetiredKeyIds": retired})
            }
            "DeleteClient" => {
                let r: ClientIdRequest = parse(body)?;
                let id = r
                    .client_id
                    .filter(|i| !i.is_empty() && i.len() <= 64)
                    .ok_or_else(|| AwsError::invalid_parameter("ClientId is required."))?;
                let arn = Client::arn(&ctx.region, &ctx.account, &id);
                ctx.authorizer.authorize("tumbler:DeleteClient", &arn)?;
                match self.store.apply(vec![Write::DeleteResource { arn: arn.clone() }]) {
                    Ok(_) => json!({"ClientId": id, "ClientArn": arn}),
                    Err(StoreError::NotFound) => {
                        return Err(AwsError::resource_not_found(format!("There is no OAuth client {id}.")));
                    }
                    Err(e) => return Err(store_err(e)),
                }
            }
            _ => {
                return Err(AwsError::unknown_operation(format!(
                    "TumblerOAuth has no operation {op}."
                )));
            }
        };
        Ok(out.to_string().into_bytes())
    }

    fn create_client(&self, ctx: &OAuthCtx, r: CreateRequest) -> Result<Value, AwsError> {
        let bad = |m: &str| AwsError::invalid_parameter(m.to_owned());
        let id = format!(
            "tc-{}",
            clients::random_text(20).map_err(|_| AwsError::internal("no randomness"))?
        );
        let arn = Client::arn(&ctx.region, &ctx.account, &id);
        ctx.authorizer.authorize("tumbler:CreateClient", &arn)?;
        let algorithm = match r.signing_algorithm.as_deref() {
            None => Algorithm::default(),
            Some(a) => Algorithm::parse(a).ok_or_else(|| bad("SigningAlgorithm must be ES256 or RS256."))?,
        };
        let principal_arn = r
            .principal_arn
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("PrincipalArn is required: the IAM user or role the tokens name."))?;
        let principal = self
            .store
            .principal(&principal_arn)
            .map_err(store_err)?
            .filter(|p| p.account == ctx.account && (p.kind == "user" || p.kind == "role"))
            .ok_or_else(|| {
                AwsError::resource_not_found(format!("{principal_arn} is not an IAM user or role of this account."))
            })?;
        if !principal
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-' | b'+' | b'=' | b','))
        {
            return Err(bad("The principal's name cannot be a Kafka principal."));
        }
        let scopes = r.scopes.unwrap_or_else(|| vec![DEFAULT_SCOPE.to_owned()]);
        if scopes.is_empty() || scopes.len() > 20 || !scopes.iter().all(|s| valid_scope(s)) {
            return Err(bad(
                "Scopes: 1 to 20 scope tokens of printable characters without spaces or quotes.",
            ));
        }
        let lifetime = r.token_lifetime_seconds.unwrap_or(DEFAULT_LIFETIME_S);
        if !(60..=MAX_LIFETIME_S).contains(&lifetime) {
            return Err(bad("TokenLifetimeSeconds must be 60 to 3600."));
        }
        let secret = clients::random_text(40).map_err(|_| AwsError::internal("no randomness"))?;
        let client = Client {
            algorithm,
            client_id: id.clone(),
            principal_arn,
            secret_sha256: hex::encode(tumbler_crypto::sha256(secret.as_bytes())),
            scopes,
            lifetime_s: lifetime,
        };
        let row = ResourceRow {
            arn,
            kind: KIND.into(),
            account: ctx.account.clone(),
            region: ctx.region.clone(),
            name: id,
            created_ms: ctx.now.as_millisecond(),
            revision: 0,
            meta: serde_json::to_string(&client).unwrap_or_default(),
        };
        self.store
            .apply(vec![Write::CreateResource(row.clone())])
            .map_err(store_err)?;
        let mut out = describe(&row, &client);
        out["ClientSecret"] = json!(secret);
        Ok(out)
    }

    fn client(&self, id: &str) -> Option<Client> {
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        // Client ids are random and unique across accounts and regions.
        self.store
            .resources_named(KIND, id)
            .ok()?
            .into_iter()
            .next()
            .and_then(|row| serde_json::from_str(&row.meta).ok())
    }

    /// `POST /oauth2/token`. On success the JSON answer and what it issued;
    /// otherwise the RFC 6749 error and who asked.
    /// `may_connect` answers whether the client's principal may have a
    /// token: Ok, or the denial that explains why not.
    pub fn token(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: jiff::Timestamp,
        may_connect: &dyn Fn(&tumbler_store::PrincipalRow) -> Result<(), String>,
    ) -> Result<(Vec<u8>, Issued), (TokenError, Asker)> {
        let mut asker = Asker::default();
        let request = match parse_token_request(authorization, body) {
            Ok(r) => r,
            Err((e, client_id)) => {
                asker.client_id = client_id;
                return Err((e, asker));
            }
        };
        let TokenRequest { id, secret, scope } = request;
        asker.client_id = Some(id.clone());
        // One answer for an unknown client and a wrong secret: no probing.
        let refused = || token_error(401, "invalid_client", "Client authentication failed.");
        let client = match self.client(&id) {
            Some(c) if c.secret_matches(&secret) => c,
            _ => return Err((refused(), asker)),
        };
        asker.principal_arn = Some(client.principal_arn.clone());
        let principal = match self.store.principal(&client.principal_arn) {
            Ok(Some(p)) => p,
            _ => {
                return Err((
                    token_error(400, "invalid_grant", "The client's principal no longer exists."),
                    asker,
                ));
            }
        };
        if let Err(denial) = may_connect(&principal) {
            return Err((token_error(400, "unauthorized_client", denial), asker));
        }
        let scopes = granted_scopes(scope.as_deref(), &client.scopes).map_err(|e| (e, asker))?;
        let asker = Asker {
            client_id: Some(client.client_id.clone()),
            principal_arn: Some(client.principal_arn.clone()),
        };
        self.issue(
            Grantee {
                client_id: Some(client.client_id),
                algorithm: client.algorithm,
                principal_arn: client.principal_arn,
                subject: principal.name,
            },
            scopes,
            client.lifetime_s,
            now,
        )
        .map_err(|e| (e, asker))
    }

    /// A token for a caller who signed the request with SigV4 (its own AWS
    /// credentials, STS session credentials included): `subject` is its
    /// Kafka name, the scope at most `kafka`, the lifetime the default.
    /// `signature` refuses a replay of the same signed request.
    pub fn token_for_signed_caller(
        &self,
        subject: &str,
        principal_arn: &str,
        signature: &[u8],
        body: &[u8],
        now: jiff::Timestamp,
        may_connect: &dyn Fn() -> Result<(), String>,
    ) -> Result<(Vec<u8>, Issued), (TokenError, Asker)> {
        let asker = Asker {
            client_id: None,
            principal_arn: Some(principal_arn.to_owned()),
        };
        let mut grant = None;
        let mut scope = None;
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "grant_type" if grant.is_none() => grant = Some(v.into_owned()),
                "scope" if scope.is_none() => scope = Some(v.into_owned()),
                "grant_type" | "scope" => {
                    return Err((token_error(400, "invalid_request", "A parameter is repeated."), asker));
                }
                "client_id" | "client_secret" => {
                    return Err((
                        token_error(
                            400,
                            "invalid_request",
                            "Use one client authentication method: SigV4 or a client secret.",
                        ),
                        asker,
                    ));
                }
                _ => {}
            }
        }
        if grant.as_deref() != Some("client_credentials") {
            return Err((
                token_error(
                    400,
                    "unsupported_grant_type",
                    "Only the client_credentials grant is supported.",
                ),
                asker,
            ));
        }
        if !self.first_use(signature, now) {
            return Err((
                token_error(
                    401,
                    "invalid_client",
                    "This signed request was already exchanged for a token; sign a new one.",
                ),
                asker,
            ));
        }
        if let Err(denial) = may_connect() {
            return Err((token_error(400, "unauthorized_client", denial), asker));
        }
        let scopes = granted_scopes(scope.as_deref(), &[DEFAULT_SCOPE.to_owned()]).map_err(|e| (e, asker))?;
        let asker = Asker {
            client_id: None,
            principal_arn: Some(principal_arn.to_owned()),
        };
        self.issue(
            Grantee {
                client_id: None,
                algorithm: Algorithm::default(),
                principal_arn: principal_arn.to_owned(),
                subject: subject.to_owned(),
            },
            scopes,
            DEFAULT_LIFETIME_S,
            now,
        )
        .map_err(|e| (e, asker))
    }

    /// Whether this signature is new. Signatures are kept as long as SigV4
    /// accepts a signed request (15 minutes, both sides of the clock).
    fn first_use(&self, signature: &[u8], now: jiff::Timestamp) -> bool {
        let now_ms = now.as_millisecond();
        let mut seen = self.seen_signatures.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 4096 {
            seen.retain(|_, until| *until > now_ms);
        }
        match seen.get(signature) {
            Some(until) if *until > now_ms => false,
            _ => {
                seen.insert(signature.to_vec(), now_ms + 15 * 60_000);
                true
            }
        }
    }

    fn issue(
        &self,
        grantee: Grantee,
        scopes: Vec<String>,
        lifetime_s: u64,
        now: jiff::Timestamp,
    ) -> Result<(Vec<u8>, Issued), TokenError> {
        let signing_failed = || token_error(500, "server_error", "The token could not be signed.");
        let key = self
            .keys
            .current(now.as_millisecond(), grantee.algorithm)
            .map_err(|e| {
                tracing::error!(error = %e, "no OAuth signing key");
                signing_failed()
            })?;
        let iat = now.as_second();
        let jti = uuid::Uuid::new_v4().to_string();
        let scope_text = scopes.join(" ");
        let header = json!({"alg": key.alg.as_str(), "typ": "JWT", "kid": key.kid});
        let mut claims = json!({
            "iss": self.issuer,
            "sub": grantee.subject,
            "aud": self.audience,
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime_s as i64,
            "jti": jti,
            "scope": scope_text,
        });
        if let Some(id) = &grantee.client_id {
            claims["client_id"] = json!(id);
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes()).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            signing_failed()
        })?;
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        let answer = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime_s,
            "scope": scope_text,
        });
        Ok((
            answer.to_string().into_bytes(),
            Issued {
                client_id: grantee.client_id.unwrap_or_default(),
                principal_arn: grantee.principal_arn,
                subject: grantee.subject,
                scope: scope_text,
                jti,
                expires_in: lifetime_s,
            },
        ))
    }
}

/// Who a token names.
struct Grantee {
    client_id: Option<String>,
    algorithm: Algorithm,
    principal_arn: String,
    subject: String,
}

/// The scopes a token gets: those asked for (space-separated, each one
/// allowed, duplicates dropped), or every allowed one.
fn granted_scopes(asked: Option<&str>, allowed: &[String]) -> Result<Vec<String>, TokenError> {
    let Some(asked) = asked else {
        return Ok(allowed.to_vec());
    };
    let mut unique: Vec<String> = Vec::new();
    for t in asked.split(' ').filter(|t| !t.is_empty()) {
        if !allowed.iter().any(|a| a == t) {
            return Err(token_error(
                400,
                "invalid_scope",
                format!("The client may not ask for the scope {t:?}."),
            ));
        }
        if !unique.iter().any(|u| u == t) {
            unique.push(t.to_owned());
        }
    }
    Ok(unique)
}

/// A token request, read (not yet checked against any client).
pub struct TokenRequest {
    pub id: String,
    pub secret: String,
    pub scope: Option<String>,
}

/// Read `POST /oauth2/token`: the form and the client authentication, or
/// the RFC 6749 error (with the client id, once known, for the audit trail).
pub fn parse_token_request(
    authorization: Option<&str>,
    body: &[u8],
) -> Result<TokenRequest, (TokenError, Option<String>)> {
    let invalid = |m: &str| token_error(400, "invalid_request", m);
    let mut grant = None;
    let mut scope = None;
    let mut form_id = None;
    let mut form_secret = None;
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(body) {
        if !seen.insert(k.to_string()) {
            // Named only if it is one of ours: the request is not echoed.
            let name = ["grant_type", "scope", "client_id", "client_secret"]
                .into_iter()
                .find(|n| *n == k)
                .unwrap_or("a parameter");
            return Err((invalid(&format!("The parameter {name} is repeated.")), None));
        }
        match k.as_ref() {
            "grant_type" => grant = Some(v.into_owned()),
            "scope" => scope = Some(v.into_owned()),
            "client_id" => form_id = Some(v.into_owned()),
            "client_secret" => form_secret = Some(v.into_owned()),
            _ => {}
        }
    }
    let basic = match authorization {
        None => None,
        Some(h) => Some(basic_credentials(h).ok_or_else(|| {
            (
                token_error(
                    401,
                    "invalid_client",
                    "The Authorization header is not HTTP Basic client credentials.",
                ),
                None,
            )
        })?),
    };
    let (id, secret) = match (basic, form_id, form_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err((
                invalid("Use one client authentication method, not the header and the form together."),
                None,
            ));
        }
        (Some(c), None, None) => c,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => {
            return Err((
                token_error(401, "invalid_client", "Client authentication is required (HTTP Basic)."),
                None,
            ));
        }
    };
    match grant.as_deref() {
        Some("client_credentials") => Ok(TokenRequest { id, secret, scope }),
        None => Err((invalid("grant_type is required."), Some(id))),
        Some(_) => Err((
            token_error(
                400,
                "unsupported_grant_type",
                "Only the client_credentials grant is supported.",
            ),
            Some(id),
        )),
    }
}

/// `Basic base64(id:secret)`: the id and secret as sent, or percent-decoded
/// (RFC 6749 §2.3.1 clients, and Kafka's with `header.urlencode=true`);
/// client ids and secrets never hold `%`, so the two readings agree.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| percent_decode(s);
    Some((unescape(id.trim()), unescape(secret.trim())))
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn describe(row: &ResourceRow, c: &Client) -> Value {
    json!({
        "ClientId": c.client_id,
        "ClientArn": row.arn,
        "PrincipalArn": c.principal_arn,
        "Scopes": c.scopes,
        "TokenLifetimeSeconds": c.lifetime_s,
        "SigningAlgorithm": c.algorithm.as_str(),
        "CreationDate": row.created_ms as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_read_raw_and_encoded() {
        let h = format!("Basic {}", STANDARD.encode("tc-abc:s3cret"));
        assert_eq!(basic_credentials(&h), Some(("tc-abc".into(), "s3cret".into())));
        let h = format!("basic {}", STANDARD.encode("tc%2Dabc:s3%2Bcret"));
        assert_eq!(basic_credentials(&h), Some(("tc-abc".into(), "s3+cret".into())));
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(
            basic_credentials(&format!("Basic {}", STANDARD.encode("no-colon"))),
            None
        );
    }

    #[test]
    fn scopes_are_rfc_6749_tokens() {
        assert!(valid_scope("kafka") && valid_scope("topic:orders/write"));
        assert!(!valid_scope("") && !valid_scope("a b") && !valid_scope("a\"b") && !valid_scope("é"));
    }
}
