//! Compiled policies and how one statement applies to a request.

use crate::condition::Condition;
use crate::context::{ContextKeys, Principal, PrincipalKind, RequestContext};
use crate::pattern::Pattern;

/// `Version`. Without one a policy has 2008-10-17 semantics, where `${...}` is literal text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    V2008_10_17,
    V2012_10_17,
}

impl PolicyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVersion::V2008_10_17 => "2008-10-17",
            PolicyVersion::V2012_10_17 => "2012-10-17",
        }
    }
}

/// Where a policy document is used; decides which elements it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user, group or role, or used as a permissions boundary: no Principal.
    Identity,
    /// On a resource (secret, key): Principal required.
    Resource,
    /// A role's trust policy: Principal required, Resource not allowed.
    Trust,
    /// Passed to AssumeRole/GetFederationToken: no Principal.
    Session,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// 1-based line and column in the policy document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where a statement starts (its `{`) and ends (just after its `}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

/// One entry of `Principal`/`NotPrincipal`, normalised: a 12-digit account
/// and `arn:...:iam::ACCOUNT:root` both become `Account`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone, including anonymous callers.
    Any,
    Account(String),
    /// A user, role, assumed-role session or federated-user ARN.
    Arn(String),
    Service(String),
    Federated(String),
    CanonicalUser(String),
}

/// How a resource-policy statement names the caller; the combination logic
/// treats them differently, as AWS does. Ordered weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Grant {
    /// Through the caller's account: authority is delegated to the account,
    /// whose identity policies must also allow.
    Account,
    /// `*`, a role ARN matching one of its sessions, or NotPrincipal: grants
    /// without an identity policy, but boundaries and session policies still apply.
    Broad,
    /// The caller's own user / session / service identity: grants on its own,
    /// and is not limited by a permissions boundary or session policy.
    Exact,
}

impl PrincipalEntry {
    fn grant_for(&self, principal: &Principal) -> Option<Grant> {
        let in_account = !matches!(principal.kind, PrincipalKind::Anonymous | PrincipalKind::Service);
        match self {
            PrincipalEntry::Any => Some(Grant::Broad),
            PrincipalEntry::Account(account) => (in_account && *account == principal.account).then_some(Grant::Account),
            PrincipalEntry::Arn(arn) => {
                if in_account && *arn == principal.arn {
                    return Some(Grant::Exact);
                }
                match &principal.kind {
                    PrincipalKind::AssumedRole { role_arn, .. } if role_arn == arn => Some(Grant::Broad),
                    _ => None,
                }
            }
            PrincipalEntry::Service(name) => {
                (principal.kind == PrincipalKind::Service && *name == principal.arn).then_some(Grant::Exact)
            }
            PrincipalEntry::Federated(provider) => (*provider == principal.arn).then_some(Grant::Exact),
            // S3 canonical users do not exist here.
            PrincipalEntry::CanonicalUser(_) => None,
        }
    }

    /// NotPrincipal compares each identity a caller has (account, user or
    /// role, session) exactly, without delegation.
    fn names_identity(&self, identity: Identity<'_>) -> bool {
        match (self, identity) {
            (PrincipalEntry::Any, _) => true,
            (PrincipalEntry::Account(a), Identity::Account(b)) => a == b,
            (PrincipalEntry::Arn(a), Identity::Arn(b)) => a == b,
            (PrincipalEntry::Service(a), Identity::Service(b)) => a == b,
            (PrincipalEntry::Federated(a), Identity::Arn(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Clone, Copy)]
enum Identity<'a> {
    Account(&'a str),
    Arn(&'a str),
    Service(&'a str),
    Anonymous,
}

/// A caller's identities for NotPrincipal: AWS excludes a caller only when
/// NotPrincipal names all of them (e.g. a session needs its account, its
/// role and its session ARN listed).
fn identities(principal: &Principal) -> ([Option<Identity<'_>>; 3], usize) {
    let account = Some(Identity::Account(&principal.account));
    let arn = Some(Identity::Arn(&principal.arn));
    match &principal.kind {
        PrincipalKind::Root => ([account, None, None], 1),
        PrincipalKind::User | PrincipalKind::FederatedUser => ([account, arn, None], 2),
        PrincipalKind::AssumedRole { role_arn, .. } => ([account, Some(Identity::Arn(role_arn)), arn], 3),
        PrincipalKind::Service => ([Some(Identity::Service(&principal.arn)), None, None], 1),
        PrincipalKind::Anonymous => ([Some(Identity::Anonymous), None, None], 1),
    }
}

/// What a statement does for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Action, resource or principal do not match.
    NotApplicable,
    /// Everything matched but the condition at this index was false.
    ConditionFailed(usize),
    Applies(Grant),
}

/// A compiled statement.
#[derive(Clone, Debug)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) actions: Vec<Pattern>,
    pub(crate) not_action: bool,
    /// `None` only in trust policies, which name no resource.
    pub(crate) resources: Option<Vec<Pattern>>,
    pub(crate) not_resource: bool,
    /// `None` in identity and session policies: they apply to their holder.
    pub(crate) principals: Option<Vec<PrincipalEntry>>,
    pub(crate) not_principal: bool,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) span: Option<Span>,
    /// Evaluation plan, see [`Statement::applies`]: whether every Resource
    /// entry matches without variables or inner wildcards, and the
    /// conditions' indexes cheapest first.
    pub(crate) resources_cheap: bool,
    pub(crate) condition_order: Box<[u16]>,
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The Action (or NotAction, see [`Statement::is_not_action`]) entries as written.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(Pattern::source)
    }

    pub fn is_not_action(&self) -> bool {
        self.not_action
    }

    /// The Resource or NotResource entries as written; none in trust policies.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().flatten().map(Pattern::source)
    }

    pub fn is_not_resource(&self) -> bool {
        self.not_resource
    }

    pub fn principals(&self) -> Option<&[PrincipalEntry]> {
        self.principals.as_deref()
    }

    pub fn is_not_principal(&self) -> bool {
        self.not_principal
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Where the statement is in its document.
    pub fn span(&self) -> Option<Span> {
        self.span
    }

    /// `action_lower` is the request's action, ASCII lower-cased like the
    /// compiled patterns: actions are case-insensitive.
    pub(crate) fn matches_action(&self, action_lower: &str, keys: &ContextKeys) -> bool {
        self.actions.iter().any(|p| p.matches(action_lower, false, keys)) != self.not_action
    }

    /// Resource matching is a case-sensitive glob over the whole ARN; an
    /// entry whose variable cannot be resolved does not match.
    pub(crate) fn matches_resource(&self, resource: &str, keys: &ContextKeys) -> bool {
        match &self.resources {
            None => true,
            Some(patterns) => patterns.iter().any(|p| p.matches(resource, false, keys)) != self.not_resource,
        }
    }

    pub(crate) fn principal_grant(&self, principal: &Principal) -> Option<Grant> {
        let Some(entries) = &self.principals else {
            return Some(Grant::Exact);
        };
        if self.not_principal {
            let (ids, count) = identities(principal);
            let excluded = ids[..count]
                .iter()
                .flatten()
                .all(|id| entries.iter().any(|e| e.names_identity(*id)));
            return (!excluded).then_some(Grant::Broad);
        }
        entries.iter().filter_map(|e| e.grant_for(principal)).max()
    }

    /// Fills in the evaluation plan once the statement is built.
    pub(crate) fn plan(mut self) -> Statement {
        self.resources_cheap = self.resources.iter().flatten().all(Pattern::is_cheap);
        let mut order: Vec<u16> = (0..self.conditions.len()).map(|i| i as u16).collect();
        order.sort_by_key(|i| self.conditions[*i as usize].cost());
        self.condition_order = order.into_boxed_slice();
        self
    }

    /// Whether the statement applies, and how it names the caller. The parts
    /// are ANDed, so they are checked cheapest first: action, plain
    /// resources, principal, conditions (by cost), then resources with
    /// variables or inner wildcards.
    pub(crate) fn applies(&self, request: &RequestContext, action_lower: &str) -> Option<Grant> {
        let keys = &request.keys;
        if !self.matches_action(action_lower, keys)
            || (self.resources_cheap && !self.matches_resource(&request.resource, keys))
        {
            return None;
        }
        let grant = self.principal_grant(&request.principal)?;
        if !self
            .condition_order
            .iter()
            .all(|i| self.conditions[*i as usize].evaluate(keys))
        {
            return None;
        }
        if !self.resources_cheap && !self.matches_resource(&request.resource, keys) {
            return None;
        }
        Some(grant)
    }

    /// Like [`Statement::applies`] in document order, telling a failed
    /// condition from a statement that does not concern the request.
    pub(crate) fn check(&self, request: &RequestContext, action_lower: &str) -> Outcome {
        let keys = &request.keys;
        if !self.matches_action(action_lower, keys) || !self.matches_resource(&request.resource, keys) {
            return Outcome::NotApplicable;
        }
        let Some(grant) = self.principal_grant(&request.principal) else {
            return Outcome::NotApplicable;
        };
        match self.conditions.iter().position(|c| !c.evaluate(keys)) {
            Some(index) => Outcome::ConditionFailed(index),
            None => Outcome::Applies(grant),
        }
    }
}

/// A parsed and compiled policy document.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) version: PolicyVersion,
    pub(crate) id: Option<String>,
    pub(crate) kind: PolicyKind,
    pub(crate) statements: Vec<Statement>,
    /// See [`Policy::reads_context_keys`]; worked out once, when compiled.
    pub(crate) reads_context_keys: bool,
}

impl Policy {
    pub(crate) fn new(
        version: PolicyVersion,
        id: Option<String>,
        kind: PolicyKind,
        statements: Vec<Statement>,
    ) -> Policy {
        let reads_context_keys = statements.iter().any(|s| {
            !s.conditions.is_empty()
                || s.actions.iter().any(Pattern::has_variables)
                || s.resources.iter().flatten().any(Pattern::has_variables)
        });
        Policy {
            version,
            id,
            kind,
            statements,
            reads_context_keys,
        }
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The kind it was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Whether evaluating it can read a condition key: a condition, or a
    /// policy variable in an Action or Resource. A request checked only
    /// against policies that read none needs no keys built.
    pub fn reads_context_keys(&self) -> bool {
        self.reads_context_keys
    }
}
