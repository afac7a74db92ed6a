//! The IAM policy language: parse, compile, evaluate, explain.
//!
//! ```
//! use tumbler_iam::{NamedPolicy, PolicyKind, PolicySet, Principal, RequestContext, evaluate, parse_policy};
//!
//! let policy = parse_policy(
//!     r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
//!         "Action": "secretsmanager:GetSecretValue",
//!         "Resource": "arn:aws:secretsmanager:*:123456789012:secret:${aws:username}/*"}}"#,
//!     PolicyKind::Identity,
//! )
//! .unwrap();
//! let policies = [NamedPolicy::new("read-own", policy)];
//! let alice = Principal::user("arn:aws:iam::123456789012:user/alice", "AIDAEXAMPLE").unwrap();
//! let request = RequestContext::new(
//!     alice,
//!     "secretsmanager:GetSecretValue",
//!     "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf",
//! );
//! assert!(evaluate(&request, PolicySet::identity(&policies)).is_allowed());
//! ```
//!
//! Policies are compiled when parsed (lower-cased action globs, resource
//! globs split around `${...}` variables, numbers, dates and networks
//! parsed), so evaluation does no parsing and, on the usual path, allocates
//! only the few statement references it returns.
//!
//! # Semantics, and the choices made where AWS's documentation is silent
//! - Action matching is case-insensitive (ASCII); Resource matching is a
//!   case-sensitive glob over the whole ARN (`*` may cross `:`);
//!   `ArnEquals`/`ArnLike` compare the six ARN parts separately, and are the
//!   same operator, as AWS documents. An ARN pattern without a colon (such
//!   as `*`) is matched as a whole; one with two to five parts matches nothing.
//! - Condition keys are case-insensitive (ASCII folding), values are not
//!   (except the `IgnoreCase` operators and `Bool`). Operator names are
//!   accepted in any case.
//! - A missing key makes a condition false, except: `...IfExists` (true),
//!   negated operators such as `StringNotEquals` (true, as AWS documents for
//!   `StringNotLike`/`ArnNotLike`), `ForAllValues:` (true), and `Null`. A
//!   multi-valued key with no values counts as missing.
//! - A single-valued operator on a multi-valued key matches when any
//!   request value matches (negated: when none does).
//! - Policy variables (`${key}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}`)
//!   work in Version 2012-10-17 only, in Resource and in the values of the
//!   String, Bool and Arn operators. Their substituted text is literal (a
//!   `*` in a tag value is not a wildcard). A variable that cannot be
//!   resolved (missing or multi-valued key, no default) makes that value or
//!   Resource entry not match; under a negated operator or NotResource that
//!   "no match" counts as such.
//! - Dates: epoch seconds or ISO 8601; a time without an offset, or a bare
//!   date, is UTC. `BinaryEquals` compares the base64 text exactly.
//! - Invalid Numeric, Date, IpAddress and Null values are refused at parse
//!   time; an unparseable request value simply does not match.
//! - Principals: an account (`123456789012` or `arn:aws:iam::123456789012:root`)
//!   matches every principal of that account but only *delegates*: within the
//!   account an allow through it still needs an identity-policy allow. A role
//!   ARN matches that role's sessions. `NotPrincipal` (Deny only) excludes a
//!   caller only if it names all of the caller's identities (account, user or
//!   role, session), as AWS documents. `Federated` matches a principal whose
//!   `arn` is the provider; `CanonicalUser` matches nothing.
//! - Combination: an explicit deny anywhere wins (reported in the order
//!   identity, resource, boundary, session). Within one account an allow
//!   from an identity policy, or from the resource policy through `*` or a
//!   role ARN, grants, and the boundary and session policies (when present)
//!   must also allow; a resource policy naming the caller's own user or
//!   session ARN grants on its own. Across accounts both the identity policy
//!   and the resource policy must allow. The root user is allowed in its own
//!   account unless the resource policy denies. [`PolicySet::resource_policy_required`]
//!   makes the resource policy mandatory within the account too (STS trust
//!   policies, KMS key policies).
//! - Parsing refuses: unknown or duplicate fields, duplicate condition
//!   operators or keys, Action with NotAction (and the like), missing Effect /
//!   Action / Resource (Resource is refused in trust policies), empty
//!   Action/Resource/Principal/condition-value arrays, an empty operator
//!   block, NotPrincipal with Allow, Principal in identity and session
//!   policies, no Principal in resource and trust policies, duplicate Sids,
//!   non-alphanumeric Sids in identity and session policies, and policies
//!   over the caller's size limit (counted without white space, as IAM does).

mod condition;
mod context;
mod error;
mod evaluate;
mod exposure;
mod parse;
mod pattern;
mod policy;

pub use condition::{Condition, ConditionOperator, OperatorSpec, SetQualifier};
pub use context::{ContextKeys, ContextValue, Principal, PrincipalKind, RequestContext};
pub use error::{PolicyError, PolicyErrorKind};
pub use evaluate::{
    Decision, Evaluation, NamedPolicy, PolicySet, PolicyType, Simulation, StatementRef, StatementResult,
    TracedStatement, evaluate, simulate,
};
pub use exposure::{Exposure, exposure};
pub use parse::{ParseOptions, parse_policy};
pub use policy::{Effect, Policy, PolicyKind, PolicyVersion, Position, PrincipalEntry, Span, Statement};
