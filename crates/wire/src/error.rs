//! The AWS error as it goes on the wire, for both protocols.

use std::fmt;

/// An error answer: AWS's code (`__type`), a message that says what was
/// wrong, and the HTTP status AWS uses for it.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
    /// Modeled service errors carry `Message`; front-end/auth errors `message`.
    pub modeled: bool,
}

impl fmt::Debug for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AwsError {}

macro_rules! ctor {
    ($fn:ident, $code:literal, $status:literal, $modeled:literal) => {
        pub fn $fn(message: impl Into<String>) -> Self {
            Self {
                code: $code,
                message: message.into(),
                status: $status,
                modeled: $modeled,
            }
        }
    };
}

impl AwsError {
    // Secrets Manager's modeled errors (all 400 but InternalServiceError).
    ctor!(resource_not_found, "ResourceNotFoundException", 400, true);
    ctor!(invalid_parameter, "InvalidParameterException", 400, true);
    ctor!(invalid_request, "InvalidRequestException", 400, true);
    ctor!(resource_exists, "ResourceExistsException", 400, true);
    ctor!(limit_exceeded, "LimitExceededException", 400, true);
    ctor!(malformed_policy, "MalformedPolicyDocumentException", 400, true);
    ctor!(public_policy, "PublicPolicyException", 400, true);
    ctor!(encryption_failure, "EncryptionFailure", 400, true);
    ctor!(decryption_failure, "DecryptionFailure", 400, true);
    ctor!(invalid_next_token, "InvalidNextTokenException", 400, true);
    // 500 so that SDKs retry; the message never carries internal detail.
    ctor!(internal, "InternalServiceError", 500, true);

    // Front-end (coral) errors shared by every JSON service.
    ctor!(validation, "ValidationException", 400, false);
    ctor!(serialization, "SerializationException", 400, false);
    ctor!(unknown_operation, "UnknownOperationException", 400, false);
    ctor!(
        missing_authentication_token,
        "MissingAuthenticationTokenException",
        400,
        false
    );
    ctor!(incomplete_signature, "IncompleteSignatureException", 400, false);
    ctor!(invalid_signature, "InvalidSignatureException", 400, false);
    ctor!(unrecognized_client, "UnrecognizedClientException", 400, false);
    ctor!(expired_token, "ExpiredTokenException", 400, false);
    ctor!(access_denied, "AccessDeniedException", 400, false);
    ctor!(request_too_large, "RequestEntityTooLargeException", 413, false);
    ctor!(throttling, "ThrottlingException", 400, false);

    /// Any error with an explicit code, for services with their own catalog.
    pub fn custom(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
            modeled: true,
        }
    }

    /// The awsJson body: `{"__type": ..., "message"|"Message": ...}`.
    pub fn json_body(&self) -> Vec<u8> {
        let key = if self.modeled { "Message" } else { "message" };
        let mut m = serde_json::Map::new();
        m.insert("__type".into(), self.code.into());
        m.insert(key.into(), self.message.clone().into());
        serde_json::to_vec(&m).unwrap_or_default()
    }
}
