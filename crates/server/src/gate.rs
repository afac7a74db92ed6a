//! Authentication of every AWS API request: SigV4 parse, clock, scope,
//! credential lookup, signature. Only `authenticate` makes a `Caller`, and
//! no operation runs without one.

use std::sync::Arc;

use http::request::Parts;
use tumbler_identity::{Identity, Principal, SessionLookup};
use tumbler_sigv4::{SigV4Error, Timestamp};
use tumbler_wire::AwsError;

/// A verified caller and the scope its request was signed for.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub access_key_id: String,
    pub region: String,
    pub service: String,
    /// The request's signature (the token endpoint refuses its replay).
    pub signature: Vec<u8>,
}

fn sigv4_error(e: SigV4Error) -> AwsError {
    match e {
        SigV4Error::Missing => AwsError::missing_authentication_token("Missing Authentication Token"),
        SigV4Error::Incomplete(m) => AwsError::incomplete_signature(m),
        SigV4Error::Expired(m) => AwsError::invalid_signature(m),
        SigV4Error::SignatureMismatch => AwsError::invalid_signature(SigV4Error::SignatureMismatch.message()),
        #[allow(unreachable_patterns)]
        other => AwsError::invalid_signature(other.message()),
    }
}

/// Verify the request; `service` is the service the request is routed to,
/// which the credential scope must name (None: any, for requests that name
/// no service we know and will be refused after authentication).
pub fn authenticate(
    identity: &Identity,
    parts: &Parts,
    body: &[u8],
    service: Option<&str>,
    now: Timestamp,
) -> Result<Caller, AwsError> {
    let auth = tumbler_sigv4::parse(parts).map_err(sigv4_error)?;
    tumbler_sigv4::check_time(&auth, now).map_err(sigv4_error)?;
    if let Some(service) = service.filter(|s| *s != auth.service) {
        return Err(AwsError::invalid_signature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    if !tumbler_types::is_region_name(&auth.region) {
        return Err(AwsError::invalid_signature(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    let invalid = || AwsError::unrecognized_client("The security token included in the request is invalid.");
    if !tumbler_identity::is_access_key_id(&auth.access_key_id) {
        return Err(invalid());
    }
    let (principal, key) = match &auth.security_token {
        // Temporary credentials: the token carries the session and must name
        // this access key; an ASIA key never works without its token.
        Some(token) => match identity.session_signing_key(
            token,
            &auth.access_key_id,
            &auth.scope_date,
            &auth.region,
            &auth.service,
            now,
        ) {
            SessionLookup::Found(found) => found,
            SessionLookup::Invalid => return Err(invalid()),
            SessionLookup::Expired => {
                return Err(AwsError::expired_token(
                    "The security token included in the request is expired",
                ));
            }
        },
        None if auth.access_key_id.starts_with("ASIA") => return Err(invalid()),
        None => identity
            .signing_key(&auth.access_key_id, &auth.scope_date, &auth.region, &auth.service)
            .map_err(|e| {
                tracing::error!(error = %e, "credential lookup failed");
                AwsError::internal("An internal error occurred. Try the request again.")
            })?
            .ok_or_else(invalid)?,
    };
    tumbler_sigv4::verify(&auth, parts, body, &key).map_err(sigv4_error)?;
    Ok(Caller {
        principal,
        access_key_id: auth.access_key_id,
        region: auth.region,
        service: auth.service,
        signature: auth.signature,
    })
}
