//! Combining policies into a decision, as AWS documents its evaluation
//! logic for one account and across accounts.

use std::fmt;
use std::sync::Arc;

use crate::context::{PrincipalKind, RequestContext};
use crate::pattern::with_ascii_lowercase;
use crate::policy::{Effect, Grant, Outcome, Policy, Span, Statement};

/// A compiled policy with the name and ARN that explanations cite.
#[derive(Clone, Debug)]
pub struct NamedPolicy {
    /// Inline policy name, managed policy name, or e.g. the secret's ARN for a resource policy.
    pub name: String,
    /// Managed policies' ARN; AWS cites it in explicit-deny messages.
    pub arn: Option<String>,
    pub policy: Arc<Policy>,
}

impl NamedPolicy {
    pub fn new(name: impl Into<String>, policy: Policy) -> NamedPolicy {
        NamedPolicy {
            name: name.into(),
            arn: None,
            policy: Arc::new(policy),
        }
    }

    pub fn with_arn(mut self, arn: impl Into<String>) -> NamedPolicy {
        self.arn = Some(arn.into());
        self
    }
}

/// The policy types of AWS's evaluation logic, as its messages name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyType {
    Identity,
    Resource,
    PermissionsBoundary,
    Session,
}

impl PolicyType {
    /// The wording AWS uses in access-denied messages.
    pub fn description(self) -> &'static str {
        match self {
            PolicyType::Identity => "identity-based policy",
            PolicyType::Resource => "resource-based policy",
            PolicyType::PermissionsBoundary => "permissions boundary",
            PolicyType::Session => "session policy",
        }
    }

    fn article(self) -> &'static str {
        match self {
            PolicyType::Identity => "an",
            _ => "a",
        }
    }
}

/// Everything that applies to one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct PolicySet<'a> {
    /// The caller's identity-based policies (its own, its groups', its role's).
    pub identity: &'a [NamedPolicy],
    /// The resource's policy (a secret's, a key policy, a role's trust policy).
    pub resource: Option<&'a NamedPolicy>,
    pub permissions_boundary: Option<&'a NamedPolicy>,
    /// Session policies passed when the session was created; a request must
    /// be allowed by at least one of them when there are any.
    pub session: &'a [NamedPolicy],
    /// Services where the resource policy must allow even within the
    /// account: STS for trust policies, KMS for key policies. An account
    /// principal in it then delegates to the caller's identity policies.
    pub resource_policy_required: bool,
}

impl<'a> PolicySet<'a> {
    pub fn identity(identity: &'a [NamedPolicy]) -> PolicySet<'a> {
        PolicySet {
            identity,
            ..PolicySet::default()
        }
    }

    /// Whether any of the policies can read a condition key (see
    /// [`Policy::reads_context_keys`]).
    pub fn reads_context_keys(&self) -> bool {
        self.all().any(|(_, p)| p.policy.reads_context_keys())
    }

    /// Every policy with its type, in the order explicit denies are reported.
    pub fn all(&self) -> impl Iterator<Item = (PolicyType, &'a NamedPolicy)> + use<'a> {
        let identity = self.identity.iter().map(|p| (PolicyType::Identity, p));
        let resource = self.resource.map(|p| (PolicyType::Resource, p));
        let boundary = self.permissions_boundary.map(|p| (PolicyType::PermissionsBoundary, p));
        let session = self.session.iter().map(|p| (PolicyType::Session, p));
        identity.chain(resource).chain(boundary).chain(session)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

impl Decision {
    /// IAM SimulatePrincipalPolicy's `EvalDecision`.
    pub fn as_eval_decision(self) -> &'static str {
        match self {
            Decision::Allow => "allowed",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::ImplicitDeny => "implicitDeny",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_eval_decision())
    }
}

/// One statement of one of the request's policies.
#[derive(Clone, Copy, Debug)]
pub struct StatementRef<'a> {
    pub policy_type: PolicyType,
    pub policy: &'a NamedPolicy,
    /// Position in the policy's statement list, from 0.
    pub index: usize,
}

impl<'a> StatementRef<'a> {
    pub fn statement(&self) -> &'a Statement {
        &self.policy.policy.statements[self.index]
    }

    pub fn sid(&self) -> Option<&'a str> {
        self.statement().sid()
    }

    pub fn span(&self) -> Option<Span> {
        self.statement().span()
    }
}

impl fmt::Display for StatementRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.policy_type.description(), self.policy.name)?;
        match self.sid() {
            Some(sid) if !sid.is_empty() => write!(f, " statement {sid}"),
            _ => write!(f, " statement #{}", self.index + 1),
        }
    }
}

/// A decision and what made it.
#[derive(Clone, Debug)]
pub struct Evaluation<'a> {
    pub decision: Decision,
    /// For an explicit deny, the denying statement. For an allow, the
    /// statements that allowed: the granting one (identity or resource),
    /// then the boundary's and the session policy's when they had to allow
    /// too. Empty for an implicit deny, and for the root user's own account.
    pub statements: Vec<StatementRef<'a>>,
    /// For an implicit deny, the policy type that failed to allow.
    pub missing_allow: Option<PolicyType>,
}

impl Evaluation<'_> {
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }

    /// AWS's access-denied message (its newer wording), e.g. "User: ARN is
    /// not authorized to perform: ACTION on resource: RESOURCE because no
    /// identity-based policy allows the ACTION action". An explicit deny in
    /// a managed identity policy, boundary or session policy cites the
    /// policy's ARN, as AWS does.
    pub fn denial_message(&self, principal_arn: &str, action: &str, resource: &str) -> String {
        let head = format!("User: {principal_arn} is not authorized to perform: {action} on resource: {resource}");
        match self.decision {
            Decision::Allow => {
                format!("User: {principal_arn} is authorized to perform: {action} on resource: {resource}")
            }
            Decision::ExplicitDeny => {
                let Some(denying) = self.statements.first() else {
                    return format!("{head} with an explicit deny");
                };
                let kind = denying.policy_type;
                let mut message = format!(
                    "{head} with an explicit deny in {} {}",
                    kind.article(),
                    kind.description()
                );
                if let (Some(arn), false) = (&denying.policy.arn, kind == PolicyType::Resource) {
                    message.push_str(": ");
                    message.push_str(arn);
                }
                message
            }
            Decision::ImplicitDeny => {
                let kind = self.missing_allow.unwrap_or(PolicyType::Identity);
                format!("{head} because no {} allows the {action} action", kind.description())
            }
        }
    }
}

/// What one policy said about a request.
#[derive(Default)]
struct Scan {
    deny: Option<usize>,
    /// The first allowing statement, and the strongest principal grant among allows.
    allow: Option<(usize, Grant)>,
}

/// `allow_known`: an earlier policy of the same type already allowed, so
/// only Deny statements matter here.
fn scan(policy: &Policy, request: &RequestContext, action: &str, stop_at_deny: bool, allow_known: bool) -> Scan {
    let mut result = Scan::default();
    for (index, statement) in policy.statements.iter().enumerate() {
        // Once an allow is known only a deny can change the outcome; skip
        // allow statements that cannot raise the grant.
        if statement.effect == Effect::Allow && (allow_known || result.allow.is_some_and(|(_, g)| g == Grant::Exact)) {
            continue;
        }
        if let Some(grant) = statement.applies(request, action) {
            match statement.effect {
                Effect::Deny => {
                    result.deny.get_or_insert(index);
                    if stop_at_deny {
                        return result;
                    }
                }
                Effect::Allow => {
                    result.allow = match result.allow {
                        Some((first, best)) => Some((first, best.max(grant))),
                        None => Some((index, grant)),
                    }
                }
            }
        }
    }
    result
}

/// Decides a request: explicit deny anywhere wins; the root user is allowed
/// in its own account; otherwise within one account an identity-policy
/// allow or a resource-policy allow grants, subject to the permissions
/// boundary and session policies; across accounts both the identity policy
/// and the resource policy must allow. See the crate documentation for how
/// the resource policy's principal changes this.
pub fn evaluate<'a>(request: &RequestContext, policies: PolicySet<'a>) -> Evaluation<'a> {
    decide(request, policies, true)
}

fn decide<'a>(request: &RequestContext, policies: PolicySet<'a>, stop_at_deny: bool) -> Evaluation<'a> {
    with_ascii_lowercase(&request.action, |action| {
        decide_for(request, action, policies, stop_at_deny)
    })
}

fn decide_for<'a>(
    request: &RequestContext,
    action: &str,
    policies: PolicySet<'a>,
    stop_at_deny: bool,
) -> Evaluation<'a> {
    let deny = |policy_type, policy, index| Evaluation {
        decision: Decision::ExplicitDeny,
        statements: vec![StatementRef {
            policy_type,
            policy,
            index,
        }],
        missing_allow: None,
    };
    let implicit = |missing| Evaluation {
        decision: Decision::ImplicitDeny,
        statements: Vec::new(),
        missing_allow: Some(missing),
    };

    let is_root = request.principal.kind == PrincipalKind::Root;
    // The root user has no identity policies, boundary or session: skipping
    // them matches AWS, where none can be attached to it.
    let mut identity_allow = None;
    for policy in policies.identity.iter().filter(|_| !is_root) {
        let found = scan(&policy.policy, request, action, stop_at_deny, identity_allow.is_some());
        if let Some(index) = found.deny {
            return deny(PolicyType::Identity, policy, index);
        }
        if identity_allow.is_none()
            && let Some((index, _)) = found.allow
        {
            identity_allow = Some(StatementRef {
                policy_type: PolicyType::Identity,
                policy,
                index,
            });
        }
    }
    let mut resource_allow = None;
    if let Some(policy) = policies.resource {
        let found = scan(&policy.policy, request, action, stop_at_deny, false);
        if let Some(index) = found.deny {
            return deny(PolicyType::Resource, policy, index);
        }
        resource_allow = found.allow.map(|(index, grant)| {
            (
                StatementRef {
                    policy_type: PolicyType::Resource,
                    policy,
                    index,
                },
                grant,
            )
        });
    }
    let mut boundary_allow = None;
    if let Some(policy) = policies.permissions_boundary.filter(|_| !is_root) {
        let found = scan(&policy.policy, request, action, stop_at_deny, false);
        if let Some(index) = found.deny {
            return deny(PolicyType::PermissionsBoundary, policy, index);
        }
        boundary_allow = found.allow.map(|(index, _)| StatementRef {
            policy_type: PolicyType::PermissionsBoundary,
            policy,
            index,
        });
    }
    let mut session_allow = None;
    for policy in policies.session.iter().filter(|_| !is_root) {
        let found = scan(&policy.policy, request, action, stop_at_deny, session_allow.is_some());
        if let Some(index) = found.deny {
            return deny(PolicyType::Session, policy, index);
        }
        if session_allow.is_none()
            && let Some((index, _)) = found.allow
        {
            session_allow = Some(StatementRef {
                policy_type: PolicyType::Session,
                policy,
                index,
            });
        }
    }

    let allow = |statements| Evaluation {
        decision: Decision::Allow,
        statements,
        missing_allow: None,
    };
    let resource_grant = resource_allow.map(|(_, grant)| grant);
    let resource_statement = resource_allow.map(|(statement, _)| statement);
    // Callers with no account (anonymous, AWS services) have no identity
    // policies: only the resource policy can let them in.
    let accountless = matches!(
        request.principal.kind,
        PrincipalKind::Anonymous | PrincipalKind::Service
    );
    if accountless {
        return match resource_statement {
            Some(statement) if resource_grant >= Some(Grant::Broad) => allow(vec![statement]),
            _ => implicit(PolicyType::Resource),
        };
    }

    let cross_account = request.is_cross_account();
    if is_root && !cross_account {
        return allow(resource_statement.into_iter().collect());
    }
    if (cross_account || policies.resource_policy_required) && resource_statement.is_none() {
        // Across accounts the identity side is reported first, as AWS does
        // when both are missing.
        if cross_account && identity_allow.is_none() && !is_root {
            return implicit(PolicyType::Identity);
        }
        return implicit(PolicyType::Resource);
    }
    if !cross_account && resource_grant == Some(Grant::Exact) {
        // A resource policy naming this very user or session grants on its
        // own: AWS does not limit it by a boundary or session policy.
        return allow(resource_statement.into_iter().collect());
    }

    let mut statements = Vec::with_capacity(3);
    if is_root {
        // Cross-account root: its own account allows implicitly.
    } else if cross_account || resource_grant != Some(Grant::Broad) {
        match identity_allow {
            Some(statement) => statements.push(statement),
            None => return implicit(PolicyType::Identity),
        }
    } else {
        statements.extend(identity_allow.or(resource_statement));
    }
    if policies.permissions_boundary.is_some() && !is_root {
        match boundary_allow {
            Some(statement) => statements.push(statement),
            None => return implicit(PolicyType::PermissionsBoundary),
        }
    }
    if !policies.session.is_empty() && !is_root {
        match session_allow {
            Some(statement) => statements.push(statement),
            None => return implicit(PolicyType::Session),
        }
    }
    if cross_account {
        statements.extend(resource_statement);
    }
    allow(statements)
}

/// How one statement related to the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementResult {
    /// Action, resource, principal and every condition matched.
    Matched,
    /// Action, resource and principal matched; this condition (an index
    /// into [`Statement::conditions`]) was false.
    ConditionNotMet(usize),
}

#[derive(Clone, Copy, Debug)]
pub struct TracedStatement<'a> {
    pub statement: StatementRef<'a>,
    pub result: StatementResult,
}

impl TracedStatement<'_> {
    /// e.g. `StringEquals aws:PrincipalTag/team` for a failed condition.
    pub fn failed_condition(&self) -> Option<String> {
        match self.result {
            StatementResult::Matched => None,
            StatementResult::ConditionNotMet(index) => {
                let condition = &self.statement.statement().conditions()[index];
                Some(format!("{} {}", condition.spec(), condition.key()))
            }
        }
    }
}

/// A decision with every statement that bore on it, for
/// `tumbler policy simulate` and IAM's SimulatePrincipalPolicy.
#[derive(Clone, Debug)]
pub struct Simulation<'a> {
    pub evaluation: Evaluation<'a>,
    /// Every statement whose action, resource and principal matched, in
    /// policy order, with whether its conditions held.
    pub statements: Vec<TracedStatement<'a>>,
}

impl<'a> Simulation<'a> {
    /// SimulatePrincipalPolicy's `EvalDecision`.
    pub fn eval_decision(&self) -> &'static str {
        self.evaluation.decision.as_eval_decision()
    }

    /// SimulatePrincipalPolicy's `MatchedStatements`: statements that applied.
    pub fn matched_statements(&self) -> impl Iterator<Item = &StatementRef<'a>> {
        self.statements
            .iter()
            .filter(|t| t.result == StatementResult::Matched)
            .map(|t| &t.statement)
    }
}

/// Evaluates like [`evaluate`] and also reports every statement that
/// matched the request, and those that failed only on a condition.
pub fn simulate<'a>(request: &RequestContext, policies: PolicySet<'a>) -> Simulation<'a> {
    let mut statements = Vec::new();
    let is_root = request.principal.kind == PrincipalKind::Root;
    let action = request.action.to_ascii_lowercase();
    for (policy_type, policy) in policies.all() {
        if is_root && policy_type != PolicyType::Resource {
            continue;
        }
        for (index, statement) in policy.policy.statements.iter().enumerate() {
            let result = match statement.check(request, &action) {
                Outcome::NotApplicable => continue,
                Outcome::ConditionFailed(condition) => StatementResult::ConditionNotMet(condition),
                Outcome::Applies(_) => StatementResult::Matched,
            };
            statements.push(TracedStatement {
                statement: StatementRef {
                    policy_type,
                    policy,
                    index,
                },
                result,
            });
        }
    }
    Simulation {
        evaluation: decide(request, policies, false),
        statements,
    }
}
