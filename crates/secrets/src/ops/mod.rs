//! One function per Secrets Manager operation, and the dispatch from the
//! `X-Amz-Target` operation name.

mod manage;
pub(crate) mod rotation;
mod values;

use tumbler_wire::secretsmanager as sm;
use tumbler_wire::{AwsError, decode, encode};

use crate::authz::{RequestCheck, secret_id_check, unscoped};
use crate::{Ctx, SecretsService};

/// Every operation this service answers, for routing and tests.
pub const OPERATIONS: &[&str] = &[
    "BatchGetSecretValue",
    "CancelRotateSecret",
    "CreateSecret",
    "DeleteResourcePolicy",
    "DeleteSecret",
    "DescribeSecret",
    "GetRandomPassword",
    "GetResourcePolicy",
    "GetSecretValue",
    "ListSecretVersionIds",
    "ListSecrets",
    "PutResourcePolicy",
    "PutSecretValue",
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "RestoreSecret",
    "RotateSecret",
    "StopReplicationToReplica",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "ValidateResourcePolicy",
];

/// Operations that only read; the server runs them inline on its workers.
/// (Reads do record LastAccessedDate, but without waiting for the disk.)
pub fn is_read_only(op: &str) -> bool {
    matches!(
        op,
        "GetSecretValue"
            | "BatchGetSecretValue"
            | "DescribeSecret"
            | "ListSecrets"
            | "ListSecretVersionIds"
            | "GetRandomPassword"
            | "GetResourcePolicy"
            | "ValidateResourcePolicy"
    )
}

/// Decode and validate the request, then run the operation with its
/// authorization check (action and request condition keys) in the context.
macro_rules! run {
    ($self:ident, $ctx:ident, $body:ident, $req:ty, $method:ident) => {{
        let req: $req = decode($body)?;
        req.validate()?;
        $ctx.check = req.check();
        let ctx = &*$ctx;
        Ok(encode(&$self.$method(ctx, req)?))
    }};
    // A bare SecretId request: the action is the operation's.
    ($self:ident, $ctx:ident, $body:ident, $req:ty, $method:ident, id $action:literal) => {{
        let req: $req = decode($body)?;
        req.validate()?;
        $ctx.check = secret_id_check($action, &req);
        let ctx = &*$ctx;
        Ok(encode(&$self.$method(ctx, req)?))
    }};
    // An operation on no particular secret: checked on `*` before it runs.
    ($self:ident, $ctx:ident, $body:ident, $req:ty, $method:ident, any $action:literal) => {{
        let req: $req = decode($body)?;
        req.validate()?;
        $ctx.check = unscoped($action);
        let ctx = &*$ctx;
        ctx.authorize_resource("*", None)?;
        Ok(encode(&$self.$method(ctx, req)?))
    }};
}

impl SecretsService {
    /// Run operation `op` with a JSON `body`; the answer is the JSON response.
    /// The operation's check is set in `ctx` (one context a call: copying
    /// its strings for each call was measurable).
    pub fn call(&self, ctx: &mut Ctx, op: &str, body: &[u8]) -> Result<Vec<u8>, AwsError> {
        match op {
            "CreateSecret" => run!(self, ctx, body, sm::CreateSecretRequest, create_secret),
            "GetSecretValue" => {
                let req: sm::GetSecretValueRequest = decode(body)?;
                req.validate()?;
                ctx.check = req.check();
                Ok(self.get_secret_value(ctx, req)?.to_json())
            }
            "BatchGetSecretValue" => {
                run!(self, ctx, body, sm::BatchGetSecretValueRequest, batch_get_secret_value, any "secretsmanager:BatchGetSecretValue")
            }
            "PutSecretValue" => run!(self, ctx, body, sm::PutSecretValueRequest, put_secret_value),
            "UpdateSecret" => run!(self, ctx, body, sm::UpdateSecretRequest, update_secret),
            "DescribeSecret" => {
                run!(self, ctx, body, sm::SecretIdRequest, describe_secret, id "secretsmanager:DescribeSecret")
            }
            "ListSecrets" => {
                run!(self, ctx, body, sm::ListSecretsRequest, list_secrets, any "secretsmanager:ListSecrets")
            }
            "ListSecretVersionIds" => run!(
                self,
                ctx,
                body,
                sm::ListSecretVersionIdsRequest,
                list_secret_version_ids
            ),
            "UpdateSecretVersionStage" => {
                run!(
                    self,
                    ctx,
                    body,
                    sm::UpdateSecretVersionStageRequest,
                    update_secret_version_stage
                )
            }
            "DeleteSecret" => run!(self, ctx, body, sm::DeleteSecretRequest, delete_secret),
            "RestoreSecret" => {
                run!(self, ctx, body, sm::SecretIdRequest, restore_secret, id "secretsmanager:RestoreSecret")
            }
            "TagResource" => run!(self, ctx, body, sm::TagResourceRequest, tag_resource),
            "UntagResource" => run!(self, ctx, body, sm::UntagResourceRequest, untag_resource),
            "GetRandomPassword" => {
                run!(self, ctx, body, sm::GetRandomPasswordRequest, get_random_password, any "secretsmanager:GetRandomPassword")
            }
            "PutResourcePolicy" => run!(self, ctx, body, sm::PutResourcePolicyRequest, put_resource_policy),
            "GetResourcePolicy" => {
                run!(self, ctx, body, sm::SecretIdRequest, get_resource_policy, id "secretsmanager:GetResourcePolicy")
            }
            "DeleteResourcePolicy" => {
                run!(self, ctx, body, sm::SecretIdRequest, delete_resource_policy, id "secretsmanager:DeleteResourcePolicy")
            }
            "ValidateResourcePolicy" => {
                run!(
                    self,
                    ctx,
                    body,
                    sm::ValidateResourcePolicyRequest,
                    validate_resource_policy
                )
            }
            "ReplicateSecretToRegions" => {
                run!(
                    self,
                    ctx,
                    body,
                    sm::ReplicateSecretToRegionsRequest,
                    replicate_secret_to_regions
                )
            }
            "RemoveRegionsFromReplication" => {
                run!(
                    self,
                    ctx,
                    body,
                    sm::RemoveRegionsFromReplicationRequest,
                    remove_regions_from_replication
                )
            }
            "RotateSecret" => {
                let out = run!(self, ctx, body, sm::RotateSecretRequest, rotate_secret)?;
                // Recorded: the engine runs it now.
                self.wake_rotation();
                Ok(out)
            }
            "CancelRotateSecret" => {
                run!(self, ctx, body, sm::SecretIdRequest, cancel_rotate_secret, id "secretsmanager:CancelRotateSecret")
            }
            "StopReplicationToReplica" => {
                run!(self, ctx, body, sm::SecretIdRequest, stop_replication_to_replica, id "secretsmanager:StopReplicationToReplica")
            }
            _ => Err(AwsError::unknown_operation(format!(
                "The operation secretsmanager.{op} is not supported by this server."
            ))),
        }
    }
}
