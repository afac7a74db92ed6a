//! "Would this principal be allowed, and by which statement?": IAM's
//! SimulatePrincipalPolicy and `tumbler policy simulate`, over the same
//! policies and evaluator that authorize real calls.

use tumbler_iam::{
    ContextKeys, Decision, NamedPolicy, PolicyKind, PolicySet, PolicyType, RequestContext, parse_policy,
};
use tumbler_wire::AwsError;

use crate::Identity;
use crate::authz::PrincipalMeta;

/// A condition key's value(s) for a simulation, as SimulatePrincipalPolicy's
/// `ContextEntries` give them.
#[derive(Clone, Debug)]
pub struct ContextEntry {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SimulationRequest {
    /// The user or role whose policies are simulated.
    pub principal_arn: String,
    pub actions: Vec<String>,
    /// `*` when empty.
    pub resources: Vec<String>,
    pub context: Vec<ContextEntry>,
    /// A resource policy to simulate with (a secret's, say).
    pub resource_policy: Option<String>,
}

/// One statement that applied to a simulated call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedStatement {
    /// The policy's name (or ARN for a managed policy, "resource" for the resource policy).
    pub source_policy_id: String,
    /// SimulatePrincipalPolicy's `SourcePolicyType`: user, group, role, user-managed, aws-managed, resource.
    pub source_policy_type: &'static str,
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// The statement's Sid, or `#n` (from 1) without one.
    pub statement: String,
}

#[derive(Clone, Debug)]
pub struct SimulationResult {
    pub action: String,
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: &'static str,
    pub matched: Vec<MatchedStatement>,
    /// Statements that would have applied but for a condition, e.g.
    /// `user policy p statement #2: StringEquals aws:PrincipalTag/team`.
    pub failed_conditions: Vec<String>,
    /// Condition keys the policies test that the simulation had no value for.
    pub missing_context_values: Vec<String>,
    /// Why, in AWS's access-denied wording for a denial; for an allow, which statement.
    pub explanation: String,
}

/// The most actions × resources one simulation evaluates.
const MAX_EVALUATIONS: usize = 1000;

impl Identity {
    /// Evaluate each action on each resource with the principal's identity
    /// policies (and `resource_policy`, if given), reporting which
    /// statements decided.
    pub fn simulate_principal(&self, req: &SimulationRequest) -> Result<Vec<SimulationResult>, AwsError> {
        let internal = |e: crate::IdentityError| {
            tracing::error!(error = %e, "simulation could not read the store");
            AwsError::internal("An internal error occurred. Try the request again.")
        };
        let row = self
            .store
            .principal(&req.principal_arn)
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| {
                AwsError::custom(
                    "NoSuchEntity",
                    404,
                    format!("The principal {} cannot be found.", req.principal_arn),
                )
            })?;
        if req.actions.is_empty() {
            return Err(AwsError::validation("ActionNames must name at least one action."));
        }
        let resources: Vec<String> = if req.resources.is_empty() {
            vec!["*".to_owned()]
        } else {
            req.resources.clone()
        };
        if req.actions.len() * resources.len() > MAX_EVALUATIONS {
            return Err(AwsError::validation(format!(
                "A simulation evaluates at most {MAX_EVALUATIONS} action and resource pairs."
            )));
        }
        let resource_policy = match &req.resource_policy {
            None => None,
            Some(doc) => Some(NamedPolicy::new(
                "resource",
                parse_policy(doc, PolicyKind::Resource)
                    .map_err(|e| AwsError::custom("MalformedPolicyDocument", 400, e.to_string()))?,
            )),
        };
        let policies = self.policies_of(&row.arn).map_err(internal)?;
        let tags: Vec<(String, String)> = PrincipalMeta::parse(&row.meta)
            .tags
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect();
        let principal = if row.kind == "role" {
            tumbler_iam::Principal::assumed_role(&row.arn, "SimulatePrincipalPolicy", &row.unique_id)
        } else {
            tumbler_iam::Principal::user(&row.arn, &row.unique_id)
        }
        .ok_or_else(|| AwsError::invalid_parameter(format!("{} is not a user or role ARN.", row.arn)))?
        .with_tags(tags);
        let set = PolicySet {
            identity: &policies.identity,
            resource: resource_policy.as_ref(),
            permissions_boundary: policies.boundary.as_ref(),
            session: &[],
            resource_policy_required: false,
        };
        let tested_keys = condition_keys(set);
        let mut out = Vec::new();
        for action in &req.actions {
            for resource in &resources {
                let mut keys = ContextKeys::new();
                for entry in &req.context {
                    keys.insert_multi(&entry.key, entry.values.iter().cloned());
                }
                let mut context =
                    RequestContext::with_keys(principal.clone(), action.as_str(), resource.as_str(), keys);
                if !context
                    .keys
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("aws:CurrentTime"))
                {
                    context.keys.insert_request_time(jiff::Timestamp::now());
                }
                let simulation = tumbler_iam::simulate(&context, set);
                let evaluation = &simulation.evaluation;
                let kind_of = |t: PolicyType, p: &NamedPolicy| match t {
                    PolicyType::Resource => "resource",
                    PolicyType::Identity => policies.source_of(p),
                    // A boundary is always a managed policy.
                    _ => match &p.arn {
                        Some(arn) if arn.starts_with("arn:aws:iam::aws:") => "aws-managed",
                        _ => "user-managed",
                    },
                };
                let matched = simulation
                    .matched_statements()
                    .map(|s| MatchedStatement {
                        source_policy_id: s.policy.arn.clone().unwrap_or_else(|| s.policy.name.clone()),
                        source_policy_type: kind_of(s.policy_type, s.policy),
                        effect: match s.statement().effect() {
                            tumbler_iam::Effect::Allow => "Allow",
                            tumbler_iam::Effect::Deny => "Deny",
                        },
                        statement: match s.sid() {
                            Some(sid) if !sid.is_empty() => sid.to_owned(),
                            _ => format!("#{}", s.index + 1),
                        },
                    })
                    .collect();
                let failed_conditions = simulation
                    .statements
                    .iter()
                    .filter_map(|t| t.failed_condition().map(|c| format!("{}: {c}", t.statement)))
                    .collect();
                let missing_context_values = tested_keys
                    .iter()
                    .filter(|k| context.keys.get(k).is_none())
                    .cloned()
                    .collect();
                let explanation = match evaluation.decision {
                    Decision::Allow => match evaluation.statements.first() {
                        Some(s) => format!("allowed by {s}"),
                        None => "allowed".to_owned(),
                    },
                    _ => evaluation.denial_message(&row.arn, action, resource),
                };
                out.push(SimulationResult {
                    action: action.clone(),
                    resource: resource.clone(),
                    decision: evaluation.decision.as_eval_decision(),
                    matched,
                    failed_conditions,
                    missing_context_values,
                    explanation,
                });
            }
        }
        Ok(out)
    }
}

/// Every condition key the policies test, in first-seen order, without the
/// ones every request carries.
fn condition_keys(set: PolicySet<'_>) -> Vec<String> {
    const ALWAYS: &[&str] = &[
        "aws:currenttime",
        "aws:epochtime",
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:userid",
        "aws:username",
    ];
    let mut keys: Vec<String> = Vec::new();
    for (_, policy) in set.all() {
        for statement in policy.policy.statements() {
            for condition in statement.conditions() {
                let key = condition.key().to_owned();
                let lower = key.to_ascii_lowercase();
                if ALWAYS.contains(&lower.as_str()) || lower.starts_with("aws:principaltag/") {
                    continue;
                }
                if !keys.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}
