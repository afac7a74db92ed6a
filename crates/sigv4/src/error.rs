//! The errors a SigV4 check can end in, with the `__type` and text AWS uses.

/// Why a request's SigV4 authentication was refused.
///
/// Every variant maps to one AWS error code ([`SigV4Error::code`]) and an
/// AWS-worded message ([`SigV4Error::message`]); the server sends both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum SigV4Error {
    /// No `Authorization` header and no presigned query parameters
    /// (`MissingAuthenticationTokenException`, "Missing Authentication Token").
    Missing,
    /// The authentication is malformed or incomplete
    /// (`IncompleteSignatureException`, with an AWS-style explanation).
    Incomplete(String),
    /// The signature does not match the request (`InvalidSignatureException`,
    /// AWS's fixed "does not match" text).
    SignatureMismatch,
    /// `InvalidSignatureException` with a specific text instead of the fixed
    /// one: the clock checks ("Signature expired: …", "Signature not yet
    /// current: …") and a credential scope date that differs from the request
    /// date ("Date in Credential scope does not match …"), which AWS reports
    /// under the same code.
    Expired(String),
}

/// AWS's text for a signature that does not match.
const MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature \
     you provided. Check your AWS Secret Access Key and signing method. Consult the service \
     documentation for details.";

impl SigV4Error {
    /// The AWS error code, sent as `__type` and `x-amzn-ErrorType`.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::SignatureMismatch | SigV4Error::Expired(_) => "InvalidSignatureException",
        }
    }

    /// The message, worded as AWS words it.
    pub fn message(&self) -> String {
        match self {
            SigV4Error::Missing => "Missing Authentication Token".to_owned(),
            SigV4Error::Incomplete(m) | SigV4Error::Expired(m) => m.clone(),
            SigV4Error::SignatureMismatch => MISMATCH_MESSAGE.to_owned(),
        }
    }
}
