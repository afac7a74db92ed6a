//! Who outside its account a resource policy lets in: the check behind
//! Secrets Manager's `BlockPublicPolicy`.

use crate::condition::{ConditionOperator, SetQualifier};
use crate::policy::{Effect, Policy, PrincipalEntry, Statement};

/// What a resource policy's Allow statements grant beyond `account`.
/// Deny statements are ignored, so this errs towards "exposed".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    /// Anyone (or an unbounded set of callers) can be allowed.
    pub public: bool,
    /// Other accounts named by principals or by the conditions that restrict a `*` principal.
    pub other_accounts: Vec<String>,
    /// Organizations that a `*` principal is restricted to with `aws:PrincipalOrgID`/`aws:PrincipalOrgPaths`.
    pub organizations: Vec<String>,
}

impl Exposure {
    /// Only principals of the account itself can be allowed.
    pub fn is_confined(&self) -> bool {
        !self.public && self.other_accounts.is_empty() && self.organizations.is_empty()
    }
}

/// Inspects a resource policy owned by `account`.
pub fn exposure(policy: &Policy, account: &str) -> Exposure {
    let mut found = Exposure::default();
    let add_account = |found: &mut Exposure, other: &str| {
        if other != account && !found.other_accounts.iter().any(|a| a == other) {
            found.other_accounts.push(other.to_string());
        }
    };
    for statement in policy.statements().iter().filter(|s| s.effect() == Effect::Allow) {
        let Some(entries) = statement.principals().filter(|_| !statement.is_not_principal()) else {
            // No Principal (or NotPrincipal): applies to every caller.
            found.public = true;
            continue;
        };
        for entry in entries {
            match entry {
                PrincipalEntry::Any => match restriction(statement) {
                    Some(Restriction::Accounts(accounts)) => {
                        for other in &accounts {
                            add_account(&mut found, other);
                        }
                    }
                    Some(Restriction::Organizations(orgs)) => {
                        for org in orgs {
                            if !found.organizations.contains(&org) {
                                found.organizations.push(org);
                            }
                        }
                    }
                    None => found.public = true,
                },
                PrincipalEntry::Account(other) => add_account(&mut found, other),
                PrincipalEntry::Arn(arn) => match arn.split(':').nth(4) {
                    Some(other) => add_account(&mut found, other),
                    None => found.public = true,
                },
                // Service principals act on the account's behalf.
                PrincipalEntry::Service(_) => {}
                PrincipalEntry::Federated(_) | PrincipalEntry::CanonicalUser(_) => found.public = true,
            }
        }
    }
    found
}

enum Restriction {
    Accounts(Vec<String>),
    Organizations(Vec<String>),
}

/// A condition that pins a `*` principal to fixed accounts or
/// organizations: a positive string or ARN equality (or a wildcard-free
/// like) without IfExists or a set qualifier, on a key that names the
/// caller's account. Conditions are ANDed, so any one such condition
/// bounds the statement.
fn restriction(statement: &Statement) -> Option<Restriction> {
    statement.conditions().iter().find_map(|condition| {
        let spec = condition.spec();
        let exact = matches!(
            spec.operator,
            ConditionOperator::StringEquals
                | ConditionOperator::StringEqualsIgnoreCase
                | ConditionOperator::StringLike
                | ConditionOperator::ArnEquals
                | ConditionOperator::ArnLike
        );
        if !exact || spec.if_exists || spec.qualifier == Some(SetQualifier::ForAllValues) {
            return None;
        }
        let values = condition.values();
        if values.iter().any(|v| v.contains(['*', '?', '$'])) {
            return None;
        }
        let is_account = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
        match condition.key().to_ascii_lowercase().as_str() {
            "aws:principalaccount" | "aws:sourceaccount" | "aws:sourceowner"
                if values.iter().all(|v| is_account(v)) =>
            {
                Some(Restriction::Accounts(values.to_vec()))
            }
            "aws:principalarn" | "aws:sourcearn" => {
                let accounts: Option<Vec<String>> = values
                    .iter()
                    .map(|v| v.split(':').nth(4).filter(|a| is_account(a)).map(str::to_string))
                    .collect();
                accounts.map(Restriction::Accounts)
            }
            "aws:principalorgid" | "aws:principalorgpaths" => Some(Restriction::Organizations(values.to_vec())),
            _ => None,
        }
    })
}
