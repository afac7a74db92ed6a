//! Authorization: the caller's policies, the global condition keys, and
//! tumbler-iam's evaluation.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tumbler_iam::{ContextKeys, Decision, NamedPolicy, PolicyKind, PolicySet, RequestContext, evaluate, parse_policy};

use crate::{Identity, IdentityError, Principal};

/// Stands in for a boundary or session policy that can't be read: one that
/// is dropped instead would lift the limit it sets.
const ALLOWS_NOTHING: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"tumbler:NoAction","Resource":"*"}]}"#;

/// [`ALLOWS_NOTHING`], named as the policy it stands in for.
fn allows_nothing(arn: &str) -> NamedPolicy {
    NamedPolicy::new(
        arn,
        parse_policy(ALLOWS_NOTHING, PolicyKind::Identity).expect("constant policy parses"),
    )
    .with_arn(arn)
}

pub(crate) const ADMINISTRATOR_ACCESS: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// AWS-managed policies Tumbler provides: (name, policy id, document).
pub(crate) const AWS_MANAGED: &[(&str, &str, &str)] = &[
    (
        "AdministratorAccess",
        "ANPAIWMBCKSKIEE64ZLYK",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "SecretsManagerReadWrite",
        "ANPAIVJH3RWT3F6EVG3SA",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:*","kms:DescribeKey","kms:ListAliases","kms:ListKeys","tag:GetResources"],"Resource":"*"}]}"#,
    ),
];

pub(crate) fn aws_managed(arn: &str) -> Option<(&'static str, &'static str, &'static str)> {
    let name = arn.strip_prefix("arn:aws:iam::aws:policy/")?;
    AWS_MANAGED.iter().find(|(n, _, _)| *n == name).copied()
}

/// Where a request came from, for aws:CurrentTime, aws:SourceIp and aws:SecureTransport.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo {
    pub now: jiff::Timestamp,
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
}

/// The resource's own policy for [`Identity::authorize`].
#[derive(Clone, Copy, Debug)]
pub struct ResourcePolicy<'a> {
    pub policy: &'a NamedPolicy,
    /// The resource policy must allow even within the account (STS trust
    /// policies, KMS key policies).
    pub required: bool,
}

impl<'a> ResourcePolicy<'a> {
    pub fn new(policy: &'a NamedPolicy) -> Self {
        Self {
            policy,
            required: false,
        }
    }
}

/// A decision, owned: what [`Identity::authorize`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub decision: Decision,
    /// AWS's access-denied message for a denial (its newer wording).
    pub message: String,
    /// For a denial, the statements that decided, e.g. "identity-based
    /// policy admin statement #1" (empty for an allow).
    pub statements: Vec<String>,
}

impl Authorization {
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

/// A principal's identity policies and tags, assembled from the store.
pub(crate) struct PrincipalPolicies {
    /// Its own inline and attached policies, then its groups'.
    pub(crate) identity: Vec<NamedPolicy>,
    /// SimulatePrincipalPolicy's SourcePolicyType of each `identity` policy.
    pub(crate) sources: Vec<&'static str>,
    pub(crate) boundary: Option<NamedPolicy>,
    pub(crate) tags: Vec<(String, String)>,
}

impl PrincipalPolicies {
    pub(crate) fn source_of(&self, policy: &NamedPolicy) -> &'static str {
        self.identity
            .iter()
            .position(|p| std::ptr::eq(p, policy))
            .map_or("none", |i| self.sources[i])
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// A user's or role's `meta` document in the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PrincipalMeta {
    #[serde(default = "root_path")]
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bootstrap: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) assume_role_policy_document: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_session_duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// The managed policy that caps a user's or role's permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) permissions_boundary: Option<String>,
}

fn root_path() -> String {
    "/".into()
}

impl PrincipalMeta {
    pub(crate) fn parse(meta: &str) -> PrincipalMeta {
        serde_json::from_str(meta).unwrap_or_else(|_| PrincipalMeta {
            path: root_path(),
            ..PrincipalMeta::default()
        })
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("meta serialises")
    }
}

/// A managed policy's `meta` document in the store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManagedPolicyMeta {
    pub(crate) path: String,
    pub(crate) default_version_id: String,
    pub(crate) next_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
}

/// A request's context with every global condition key: the caller's
/// (principal, tags, session) and the request's (time, transport, source).
fn global_context(
    caller: &Principal,
    principal_tags: &[(String, String)],
    action: &str,
    resource: &str,
    request: &RequestInfo,
    keys: ContextKeys,
) -> RequestContext {
    let session = caller.session.as_deref();
    let mut tags = principal_tags.to_vec();
    if let Some(s) = session {
        // Session tags override the role's tags with the same key.
        for (k, v) in &s.tags {
            tags.retain(|(old, _)| !old.eq_ignore_ascii_case(k));
            tags.push((k.clone(), v.clone()));
        }
    }
    let principal = iam_principal(caller).with_tags(tags);
    let mut context = RequestContext::with_keys(principal, action, resource, keys);
    let keys = &mut context.keys;
    keys.insert_request_time(request.now);
    keys.insert_bool("aws:SecureTransport", request.secure_transport);
    if let Some(ip) = request.source_ip {
        keys.insert("aws:SourceIp", ip.to_string());
    }
    if let Some(s) = session {
        keys.insert("aws:TokenIssueTime", jiff_iso(s.issued_s));
        // Present for temporary credentials only, as on AWS; a service
        // that checked an MFA code for this very request set it already.
        if keys.get("aws:MultiFactorAuthPresent").is_none() {
            keys.insert_bool("aws:MultiFactorAuthPresent", s.mfa_s.is_some());
            if let Some(at) = s.mfa_s {
                keys.insert(
                    "aws:MultiFactorAuthAge",
                    (request.now.as_second() - at).max(0).to_string(),
                );
            }
        }
        if let Some(id) = &s.source_identity {
            keys.insert("aws:SourceIdentity", id.clone());
        }
    }
    context
}

impl Identity {
    /// Decide whether `caller` may perform `action` (`service:Action`) on
    /// `resource` (an ARN, or `*`). `keys` carries the service's own
    /// condition keys; the global ones are added here. Returns an error only
    /// when the store cannot be read.
    pub fn authorize(
        &self,
        caller: &Principal,
        action: &str,
        resource: &str,
        request: &RequestInfo,
        keys: ContextKeys,
        resource_policy: Option<ResourcePolicy<'_>>,
    ) -> Result<Authorization, IdentityError> {
        let session = caller.session.as_deref();
        let owner = session
            .and_then(|s| s.role_arn.as_deref())
            .unwrap_or(caller.arn.as_str());
        let policies = self.policies_of(owner)?;
        let session_policies = match session {
            Some(s) => self.session_policies_of(s)?,
            None => Vec::new(),
        };
        let set = PolicySet {
            identity: &policies.identity,
            resource: resource_policy.map(|r| r.policy),
            permissions_boundary: policies.boundary.as_ref(),
            session: &session_policies,
            resource_policy_required: resource_policy.is_some_and(|r| r.required),
        };
        let mut context = if set.reads_context_keys() {
            global_context(caller, &policies.tags, action, resource, request, keys)
        } else {
            // Nothing would read the keys: building them costs more than
            // the evaluation (most callers hold only unconditional policies).
            RequestContext {
                principal: iam_principal(caller),
                action: action.to_owned(),
                resource: resource.to_owned(),
                resource_account: None,
                keys,
            }
        };
        if resource.starts_with("arn:aws:iam::aws:") {
            // AWS-managed policies belong to every account, as on AWS: no
            // cross-account resource policy is needed to read or attach them.
            context.resource_account = Some(caller.account.clone());
        }
        let evaluation = evaluate(&context, set);
        // The explanation is only worth its formatting for a denial.
        if evaluation.decision == Decision::Allow {
            return Ok(Authorization {
                decision: Decision::Allow,
                message: String::new(),
                statements: Vec::new(),
            });
        }
        Ok(Authorization {
            decision: evaluation.decision,
            message: evaluation.denial_message(&caller.arn, action, resource),
            statements: evaluation.statements.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// A session's inline policy and managed session policies (PolicyArns).
    fn session_policies_of(&self, s: &crate::token::SessionClaims) -> Result<Vec<NamedPolicy>, IdentityError> {
        let mut policies: Vec<NamedPolicy> = s
            .session_policy
            .as_deref()
            .map(|doc| self.session_policy(doc).unwrap_or_else(|| allows_nothing("session")))
            .into_iter()
            .collect();
        for arn in &s.policy_arns {
            policies.push(self.managed_session_policy(arn)?);
        }
        Ok(policies)
    }

    /// A managed session policy's current default version, cached until
    /// the next IAM change. One that is gone allows nothing: dropping it
    /// would lift the session's limits instead.
    fn managed_session_policy(&self, arn: &str) -> Result<NamedPolicy, IdentityError> {
        let key = format!("arn\0{arn}");
        if let Some(p) = self.session_policies.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let seen = self.generation();
        let policy = match self.managed_policy_named(arn)? {
            Some(p) => p,
            None => allows_nothing(arn),
        };
        self.cache(&self.session_policies, seen, 1024, key, policy.clone());
        Ok(policy)
    }

    /// A session's inline policy, compiled once: it comes with every request
    /// the session signs, and compiling costs far more than evaluating.
    fn session_policy(&self, doc: &str) -> Option<NamedPolicy> {
        if let Some(p) = self.session_policies.read().ok().and_then(|m| m.get(doc).cloned()) {
            return Some(p);
        }
        let p = NamedPolicy::new("session", parse_policy(doc, PolicyKind::Session).ok()?);
        if let Ok(mut m) = self.session_policies.write() {
            if m.len() >= 1024 {
                m.clear();
            }
            m.insert(doc.to_owned(), p.clone());
        }
        Some(p)
    }

    /// The identity policies, boundary and tags of a user or role, cached.
    pub(crate) fn policies_of(&self, arn: &str) -> Result<Arc<PrincipalPolicies>, IdentityError> {
        if let Some(p) = self.policies.read().ok().and_then(|m| m.get(arn).cloned()) {
            return Ok(p);
        }
        let seen = self.generation();
        let mut assembled = PrincipalPolicies {
            identity: Vec::new(),
            sources: Vec::new(),
            boundary: None,
            tags: Vec::new(),
        };
        if let Some(row) = self.store.principal(arn)? {
            let meta = PrincipalMeta::parse(&row.meta);
            assembled.tags = meta.tags.into_iter().map(|t| (t.key, t.value)).collect();
            let own = if row.kind == "role" { "role" } else { "user" };
            self.add_policies_of(arn, own, &mut assembled)?;
            if row.kind == "user" {
                for group in self.store.groups_of(arn)? {
                    self.add_policies_of(&group, "group", &mut assembled)?;
                }
            }
            if let Some(boundary) = &meta.permissions_boundary {
                assembled.boundary = Some(match self.managed_policy_named(boundary)? {
                    Some(p) => p,
                    None => {
                        // A boundary that can't be read must not lift the cap.
                        tracing::warn!(principal = arn, policy = %boundary, "permissions boundary unreadable; it allows nothing");
                        allows_nothing(boundary)
                    }
                });
            }
        }
        let assembled = Arc::new(assembled);
        self.cache(&self.policies, seen, usize::MAX, arn.to_owned(), assembled.clone());
        Ok(assembled)
    }

    /// A user's, role's or group's inline and attached policies; `inline`
    /// names the source type of its inline ones.
    fn add_policies_of(
        &self,
        arn: &str,
        inline: &'static str,
        into: &mut PrincipalPolicies,
    ) -> Result<(), IdentityError> {
        for (name, document) in self.store.inline_policies(arn)? {
            match parse_policy(&document, PolicyKind::Identity) {
                Ok(p) => {
                    into.identity.push(NamedPolicy::new(name, p));
                    into.sources.push(inline);
                }
                Err(e) => {
                    tracing::warn!(principal = arn, policy = %name, error = %e, "stored policy does not parse")
                }
            }
        }
        for policy_arn in self.store.attached_policies(arn)? {
            if let Some(p) = self.managed_policy_named(&policy_arn)? {
                into.sources.push(if policy_arn.starts_with("arn:aws:iam::aws:") {
                    "aws-managed"
                } else {
                    "user-managed"
                });
                into.identity.push(p);
            }
        }
        Ok(())
    }

    /// A managed policy's default version, compiled; None if it is gone or
    /// does not parse.
    fn managed_policy_named(&self, policy_arn: &str) -> Result<Option<NamedPolicy>, IdentityError> {
        let Some((name, document)) = self.managed_document(policy_arn)? else {
            return Ok(None);
        };
        match parse_policy(&document, PolicyKind::Identity) {
            Ok(p) => Ok(Some(NamedPolicy::new(name, p).with_arn(policy_arn))),
            Err(e) => {
                tracing::warn!(policy = %policy_arn, error = %e, "stored policy does not parse");
                Ok(None)
            }
        }
    }

    /// The name and default version's document of a managed policy.
    fn managed_document(&self, policy_arn: &str) -> Result<Option<(String, String)>, IdentityError> {
        if let Some((name, _, document)) = aws_managed(policy_arn) {
            return Ok(Some((name.to_owned(), document.to_owned())));
        }
        let Some(row) = self.store.managed_policy(policy_arn)? else {
            return Ok(None);
        };
        let Ok(meta) = serde_json::from_str::<ManagedPolicyMeta>(&row.meta) else {
            return Ok(None);
        };
        Ok(self
            .store
            .policy_versions(policy_arn)?
            .into_iter()
            .find(|v| v.version_id == meta.default_version_id)
            .map(|v| (row.name, v.document)))
    }
}

/// The evaluator's view of a caller.
pub(crate) fn iam_principal(caller: &Principal) -> tumbler_iam::Principal {
    if let Some(s) = &caller.session
        && let (Some(role_arn), Some(session_name)) = (&s.role_arn, &s.session_name)
    {
        let role_id = s.user_id.split(':').next().unwrap_or_default();
        if let Some(p) = tumbler_iam::Principal::assumed_role(role_arn, session_name, role_id) {
            return p;
        }
    }
    tumbler_iam::Principal::user(&caller.arn, &caller.user_id).unwrap_or_else(tumbler_iam::Principal::anonymous)
}

pub(crate) fn jiff_iso(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
