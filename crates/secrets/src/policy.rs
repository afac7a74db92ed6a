//! Resource policies of secrets, checked when put: the IAM policy language
//! (tumbler-iam) for the syntax, and whether the policy opens the secret to
//! the public (BlockPublicPolicy).

use tumbler_iam::{ParseOptions, Policy, PolicyKind};

/// AWS's limit on a secret's resource policy.
const MAX_POLICY_CHARS: usize = 20_480;

/// The compiled policy, or what is wrong with it and where.
pub fn parse(doc: &str) -> Result<Policy, String> {
    ParseOptions::new(PolicyKind::Resource)
        .max_size(MAX_POLICY_CHARS)
        .parse(doc)
        .map_err(|e| e.to_string())
}

/// Whether the policy can allow callers outside any named account
/// (`"*"` without a condition confining it). Grants to a named other
/// account are not public, as with AWS's BlockPublicPolicy.
pub fn is_public(policy: &Policy, account: &str) -> bool {
    tumbler_iam::exposure(policy, account).public
}
