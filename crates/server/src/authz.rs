//! The Secrets Manager and KMS services' authorization questions, answered
//! by the identity layer for one authenticated caller.

use std::sync::Arc;

use tumbler_identity::{ContextKeys, Decision, Identity, NamedPolicy, Principal, RequestInfo, ResourcePolicy};
use tumbler_wire::AwsError;

pub struct CallerAuthorizer {
    pub identity: Arc<Identity>,
    pub caller: Arc<Principal>,
    pub request: RequestInfo,
}

impl CallerAuthorizer {
    /// The authenticated caller of one request, as of `now`.
    pub fn new(
        state: &crate::AppState,
        caller: &crate::gate::Caller,
        info: crate::ConnInfo,
        now: jiff::Timestamp,
    ) -> Self {
        CallerAuthorizer {
            identity: state.identity.clone(),
            caller: caller.principal.clone(),
            request: RequestInfo {
                now,
                source_ip: Some(info.peer.ip()),
                secure_transport: info.tls,
            },
        }
    }

    /// The caller's ARN and, for a role session, its role's: what a KMS
    /// grant names as its grantee or retiring principal.
    fn grantee_arns(&self) -> Vec<String> {
        let mut arns = vec![self.caller.arn.clone()];
        if let Some(role) = self.caller.session.as_ref().and_then(|s| s.role_arn.clone()) {
            arns.push(role);
        }
        arns
    }

    /// `granted`: a KMS grant covers the call, which then needs only to
    /// escape an explicit deny.
    fn decide(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        resource_policy: Option<ResourcePolicy<'_>>,
        granted: bool,
    ) -> Result<(), AwsError> {
        let decided = self
            .identity
            .authorize(&self.caller, action, resource, &self.request, keys, resource_policy);
        match decided {
            Ok(a) if a.is_allowed() => Ok(()),
            Ok(a) if granted && a.decision == Decision::ImplicitDeny => {
                tracing::debug!(principal = %self.caller.arn, action, resource, "allowed by a KMS grant");
                Ok(())
            }
            Ok(a) => {
                tracing::info!(
                    principal = %self.caller.arn, action, resource, statements = ?a.statements,
                    "access denied: {}", a.message
                );
                Err(AwsError::access_denied(a.message))
            }
            Err(e) => {
                tracing::error!(error = %e, action, "authorization failed");
                Err(AwsError::internal("An internal error occurred. Try the request again."))
            }
        }
    }
}

impl tumbler_secrets::Authorizer for CallerAuthorizer {
    fn authorize(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        resource_policy: Option<&NamedPolicy>,
    ) -> Result<(), AwsError> {
        self.decide(action, resource, keys, resource_policy.map(ResourcePolicy::new), false)
    }

    fn authorize_key(
        &self,
        action: &str,
        key_arn: &str,
        keys: ContextKeys,
        key_policy: &NamedPolicy,
        granted: bool,
    ) -> Result<(), AwsError> {
        let policy = ResourcePolicy {
            policy: key_policy,
            required: true,
        };
        self.decide(action, key_arn, keys, Some(policy), granted)
    }

    fn grantee_arns(&self) -> Vec<String> {
        self.grantee_arns()
    }
}

/// KMS requires the key policy to allow, even within the account (the
/// default policy's account principal defers to the caller's IAM policies).
impl tumbler_kms::KeyAuthorizer for CallerAuthorizer {
    fn authorize(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        key_policy: Option<&NamedPolicy>,
    ) -> Result<(), AwsError> {
        let policy = key_policy.map(|policy| ResourcePolicy { policy, required: true });
        self.decide(action, resource, keys, policy, false)
    }

    fn authorize_granted(
        &self,
        action: &str,
        resource: &str,
        keys: ContextKeys,
        key_policy: &NamedPolicy,
    ) -> Result<(), AwsError> {
        let policy = ResourcePolicy {
            policy: key_policy,
            required: true,
        };
        self.decide(action, resource, keys, Some(policy), true)
    }

    fn grantee_arns(&self) -> Vec<String> {
        self.grantee_arns()
    }
}

/// Database registrations and Kafka clusters.
impl tumbler_secrets::ActionAuthorizer for CallerAuthorizer {
    fn authorize(&self, action: &str, resource: &str) -> Result<(), AwsError> {
        self.decide(action, resource, ContextKeys::new(), None, false)
    }
}
