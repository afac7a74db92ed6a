//! Policy documents: JSON -> validated raw statements -> compiled [`Policy`].
//!
//! Validation happens inside the serde visitors so that serde_json can tell
//! the line and column at fault, and serde_path_to_error the JSON path.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::condition::{Condition, OperatorSpec};
use crate::error::PolicyError;
use crate::pattern::{Pattern, Syntax};
use crate::policy::{Effect, Policy, PolicyKind, PolicyVersion, Position, PrincipalEntry, Span, Statement};

/// How to read a policy document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    pub kind: PolicyKind,
    /// Largest document accepted, in characters other than white space (IAM
    /// does not count white space); `None` for no limit.
    pub max_size: Option<usize>,
}

impl ParseOptions {
    pub fn new(kind: PolicyKind) -> ParseOptions {
        ParseOptions { kind, max_size: None }
    }

    pub fn max_size(mut self, limit: usize) -> ParseOptions {
        self.max_size = Some(limit);
        self
    }

    pub fn parse(&self, document: &str) -> Result<Policy, PolicyError> {
        if let Some(limit) = self.max_size
            && document.chars().filter(|c| !c.is_whitespace()).count() > limit
        {
            return Err(PolicyError::too_large(limit));
        }
        let mut json = serde_json::Deserializer::from_str(document);
        let mut track = serde_path_to_error::Track::new();
        let raw = PolicySeed { kind: self.kind }
            .deserialize(serde_path_to_error::Deserializer::new(&mut json, &mut track))
            .map_err(|e| PolicyError::from_json(serde_path_to_error::Error::new(track.path(), e)))?;
        json.end().map_err(|e| {
            PolicyError::from_json(serde_path_to_error::Error::new(
                serde_path_to_error::Track::new().path(),
                e,
            ))
        })?;
        Ok(compile(raw, self.kind, document))
    }
}

/// Parses and compiles a policy document of the given kind, without a size limit.
pub fn parse_policy(document: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
    ParseOptions::new(kind).parse(document)
}

struct RawPolicy {
    version: PolicyVersion,
    id: Option<String>,
    statements: Vec<RawStatement>,
}

struct RawCondition {
    spec: OperatorSpec,
    key: String,
    values: Vec<String>,
}

struct RawStatement {
    sid: Option<String>,
    effect: Effect,
    actions: Vec<String>,
    not_action: bool,
    resources: Option<Vec<String>>,
    not_resource: bool,
    principals: Option<Vec<PrincipalEntry>>,
    not_principal: bool,
    conditions: Vec<RawCondition>,
}

fn compile(raw: RawPolicy, kind: PolicyKind, document: &str) -> Policy {
    let variables = raw.version == PolicyVersion::V2012_10_17;
    let spans = statement_spans(document).filter(|s| s.len() == raw.statements.len());
    let statements = raw
        .statements
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            Statement {
                sid: s.sid,
                effect: s.effect,
                // Action matching is case-insensitive: lower-cased once here.
                actions: s
                    .actions
                    .iter()
                    .map(|a| {
                        Pattern::compile(
                            a,
                            Syntax {
                                wildcards: true,
                                variables: false,
                            },
                            true,
                        )
                    })
                    .collect(),
                not_action: s.not_action,
                resources: s.resources.map(|list| {
                    list.iter()
                        .map(|r| {
                            Pattern::compile(
                                r,
                                Syntax {
                                    wildcards: true,
                                    variables,
                                },
                                false,
                            )
                        })
                        .collect()
                }),
                not_resource: s.not_resource,
                principals: s.principals,
                not_principal: s.not_principal,
                conditions: s
                    .conditions
                    .into_iter()
                    .map(|c| Condition::compile(c.spec, &c.key, c.values, variables))
                    .collect(),
                span: spans.as_ref().map(|spans| spans[index]),
                resources_cheap: false,
                condition_order: Box::default(),
            }
            .plan()
        })
        .collect();
    Policy::new(raw.version, raw.id, kind, statements)
}

fn fail<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(message)
}

struct PolicySeed {
    kind: PolicyKind,
}

impl<'de> DeserializeSeed<'de> for PolicySeed {
    type Value = RawPolicy;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawPolicy, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PolicySeed {
    type Value = RawPolicy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a policy document (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPolicy, A::Error> {
        let mut version = None;
        let mut id = None;
        let mut statements: Option<Vec<RawStatement>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "Version" => {
                    once(version.is_some(), &key)?;
                    let text: String = map.next_value()?;
                    version = Some(match text.as_str() {
                        "2012-10-17" => PolicyVersion::V2012_10_17,
                        "2008-10-17" => PolicyVersion::V2008_10_17,
                        _ => return Err(fail(format!("Invalid policy Version {text}: use 2012-10-17"))),
                    });
                }
                "Id" => {
                    once(id.is_some(), &key)?;
                    id = Some(map.next_value::<String>()?);
                }
                "Statement" => {
                    once(statements.is_some(), &key)?;
                    statements = Some(map.next_value_seed(StatementsSeed { kind: self.kind })?);
                }
                _ => return Err(fail(format!("Unknown field {key}"))),
            }
        }
        let statements = statements.ok_or_else(|| fail("Missing required field Statement"))?;
        let mut sids = HashSet::new();
        if statements
            .iter()
            .filter_map(|s| s.sid.as_deref())
            .any(|sid| !sid.is_empty() && !sids.insert(sid))
        {
            return Err(fail("Statement IDs (SID) in a single policy must be unique."));
        }
        Ok(RawPolicy {
            version: version.unwrap_or(PolicyVersion::V2008_10_17),
            id,
            statements,
        })
    }
}

fn once<E: de::Error>(seen: bool, field: &str) -> Result<(), E> {
    if seen {
        Err(fail(format!("Duplicate field {field}")))
    } else {
        Ok(())
    }
}

/// `Statement`: one statement object or a non-empty array of them.
struct StatementsSeed {
    kind: PolicyKind,
}

impl<'de> DeserializeSeed<'de> for StatementsSeed {
    type Value = Vec<RawStatement>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StatementsSeed {
    type Value = Vec<RawStatement>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a statement object or an array of statements")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(vec![StatementSeed { kind: self.kind }.visit_map(map)?])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut statements = Vec::new();
        while let Some(statement) = seq.next_element_seed(StatementSeed { kind: self.kind })? {
            statements.push(statement);
        }
        if statements.is_empty() {
            return Err(fail("Policy document must contain at least one statement."));
        }
        Ok(statements)
    }
}

struct StatementSeed {
    kind: PolicyKind,
}

impl<'de> DeserializeSeed<'de> for StatementSeed {
    type Value = RawStatement;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawStatement, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StatementSeed {
    type Value = RawStatement;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a statement object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStatement, A::Error> {
        let kind = self.kind;
        let mut sid = None;
        let mut effect = None;
        let mut actions: Option<(Vec<String>, bool)> = None;
        let mut resources: Option<(Vec<String>, bool)> = None;
        let mut principals: Option<(Vec<PrincipalEntry>, bool)> = None;
        let mut conditions: Option<Vec<RawCondition>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "Sid" => {
                    once(sid.is_some(), &key)?;
                    let text: String = map.next_value()?;
                    // IAM holds identity policies to this; resource policies (KMS key
                    // policies, for one) commonly use spaces in Sids.
                    if matches!(kind, PolicyKind::Identity | PolicyKind::Session)
                        && !text.bytes().all(|b| b.is_ascii_alphanumeric())
                    {
                        return Err(fail(
                            "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the \
                             regular expression [0-9A-Za-z]*",
                        ));
                    }
                    sid = Some(text);
                }
                "Effect" => {
                    once(effect.is_some(), &key)?;
                    let text: String = map.next_value()?;
                    effect = Some(match text.as_str() {
                        "Allow" => Effect::Allow,
                        "Deny" => Effect::Deny,
                        _ => return Err(fail(format!("Invalid effect: {text}"))),
                    });
                }
                "Action" | "NotAction" => {
                    pair(actions.as_ref().map(|a| a.1), &key, "Action")?;
                    let list = map.next_value::<StringList>()?.0;
                    if list.is_empty() {
                        return Err(fail("Policy statement must contain actions."));
                    }
                    for action in &list {
                        check_action(action)?;
                    }
                    actions = Some((list, key == "NotAction"));
                }
                "Resource" | "NotResource" => {
                    if kind == PolicyKind::Trust {
                        return Err(fail(format!("Has prohibited field {key}")));
                    }
                    pair(resources.as_ref().map(|r| r.1), &key, "Resource")?;
                    let list = map.next_value::<StringList>()?.0;
                    if list.is_empty() {
                        return Err(fail("Policy statement must contain resources."));
                    }
                    if let Some(bad) = list.iter().find(|r| !is_resource(r)) {
                        return Err(fail(format!("Resource {bad} must be in ARN format or \"*\".")));
                    }
                    resources = Some((list, key == "NotResource"));
                }
                "Principal" | "NotPrincipal" => {
                    if matches!(kind, PolicyKind::Identity | PolicyKind::Session) {
                        return Err(fail("Policy document should not specify a principal."));
                    }
                    pair(principals.as_ref().map(|p| p.1), &key, "Principal")?;
                    let entries = map.next_value_seed(PrincipalSeed)?;
                    principals = Some((entries, key == "NotPrincipal"));
                }
                "Condition" => {
                    once(conditions.is_some(), &key)?;
                    conditions = Some(map.next_value_seed(ConditionBlockSeed)?);
                }
                _ => return Err(fail(format!("Unknown field {key}"))),
            }
        }
        let effect = effect.ok_or_else(|| fail("Missing required field Effect"))?;
        let (actions, not_action) = actions.ok_or_else(|| fail("Policy statement must contain actions."))?;
        if resources.is_none() && kind != PolicyKind::Trust {
            return Err(fail("Policy statement must contain resources."));
        }
        if principals.is_none() && matches!(kind, PolicyKind::Resource | PolicyKind::Trust) {
            return Err(fail("Missing required field Principal"));
        }
        // NotPrincipal with Allow grants nearly everyone; AWS strongly advises
        // against it and it is refused here.
        if effect == Effect::Allow && principals.as_ref().is_some_and(|p| p.1) {
            return Err(fail("NotPrincipal can only be used with \"Effect\": \"Deny\""));
        }
        let (resources, not_resource) = match resources {
            Some((list, not)) => (Some(list), not),
            None => (None, false),
        };
        let (principals, not_principal) = match principals {
            Some((list, not)) => (Some(list), not),
            None => (None, false),
        };
        Ok(RawStatement {
            sid,
            effect,
            actions,
            not_action,
            resources,
            not_resource,
            principals,
            not_principal,
            conditions: conditions.unwrap_or_default(),
        })
    }
}

/// `Action`/`NotAction` (and the like): at most one of the pair, once.
fn pair<E: de::Error>(seen_negated: Option<bool>, key: &str, positive: &str) -> Result<(), E> {
    let negated = key != positive;
    match seen_negated {
        None => Ok(()),
        Some(was) if was == negated => Err(fail(format!("Duplicate field {key}"))),
        Some(_) => Err(fail(format!(
            "Statement cannot contain both {positive} and Not{positive}"
        ))),
    }
}

fn check_action<E: de::Error>(action: &str) -> Result<(), E> {
    if action == "*" {
        return Ok(());
    }
    match action.split_once(':') {
        Some((vendor, rest)) if !vendor.is_empty() => {
            if rest.contains(':') {
                Err(fail("Actions/Condition can contain only one colon."))
            } else {
                Ok(())
            }
        }
        _ => Err(fail(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        )),
    }
}

fn is_resource(resource: &str) -> bool {
    resource == "*" || (resource.starts_with("arn:") && resource.splitn(6, ':').count() == 6)
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// A string or an array of strings.
struct StringList(Vec<String>);

impl<'de> de::Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StringList, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<StringList, E> {
                Ok(StringList(vec![value.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    list.push(item);
                }
                Ok(StringList(list))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// `"*"` or `{"AWS": ..., "Service": ..., "Federated": ..., "CanonicalUser": ...}`.
struct PrincipalSeed;

impl<'de> DeserializeSeed<'de> for PrincipalSeed {
    type Value = Vec<PrincipalEntry>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PrincipalSeed {
    type Value = Vec<PrincipalEntry>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"*\" or an object of principal types")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match value {
            "*" => Ok(vec![PrincipalEntry::Any]),
            _ => Err(fail(format!("Invalid principal in policy: \"{value}\""))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        let mut seen = Vec::new();
        while let Some(kind) = map.next_key::<String>()? {
            if seen.contains(&kind) {
                return Err(fail(format!("Duplicate field {kind}")));
            }
            let values = map.next_value::<StringList>()?.0;
            if values.is_empty() {
                return Err(fail(format!("Invalid principal in policy: \"{kind}\":[]")));
            }
            for value in values {
                let entry = match kind.as_str() {
                    "AWS" => aws_principal(&value),
                    "Service" | "Federated" | "CanonicalUser" if value.is_empty() => None,
                    "Service" => Some(PrincipalEntry::Service(value.clone())),
                    "Federated" => Some(PrincipalEntry::Federated(value.clone())),
                    "CanonicalUser" => Some(PrincipalEntry::CanonicalUser(value.clone())),
                    _ => {
                        return Err(fail(format!(
                            "Invalid principal in policy: unknown principal type \"{kind}\""
                        )));
                    }
                };
                match entry {
                    Some(entry) => entries.push(entry),
                    None => return Err(fail(format!("Invalid principal in policy: \"{kind}\":\"{value}\""))),
                }
            }
            seen.push(kind);
        }
        if entries.is_empty() {
            return Err(fail("Invalid principal in policy: no principal named"));
        }
        Ok(entries)
    }
}

/// `*`, an account id, or an IAM/STS ARN without wildcards.
fn aws_principal(value: &str) -> Option<PrincipalEntry> {
    if value == "*" {
        return Some(PrincipalEntry::Any);
    }
    if is_account_id(value) {
        return Some(PrincipalEntry::Account(value.to_string()));
    }
    if value.contains(['*', '?']) {
        return None;
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, service, _region, account, resource]
            if !partition.is_empty() && !service.is_empty() && is_account_id(account) && !resource.is_empty() =>
        {
            if *service == "iam" && *resource == "root" {
                Some(PrincipalEntry::Account(account.to_string()))
            } else {
                Some(PrincipalEntry::Arn(value.to_string()))
            }
        }
        _ => None,
    }
}

/// `Condition`: `{operator: {key: value-or-values}}`.
struct ConditionBlockSeed;

impl<'de> DeserializeSeed<'de> for ConditionBlockSeed {
    type Value = Vec<RawCondition>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ConditionBlockSeed {
    type Value = Vec<RawCondition>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of condition operators")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut conditions = Vec::new();
        let mut operators = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let spec = OperatorSpec::parse(&name).ok_or_else(|| fail(format!("Invalid Condition operator {name}")))?;
            if operators.contains(&spec) {
                return Err(fail(format!("Duplicate Condition operator {name}")));
            }
            operators.push(spec);
            let before = conditions.len();
            map.next_value_seed(OperatorBlockSeed {
                spec,
                out: &mut conditions,
            })?;
            if conditions.len() == before {
                return Err(fail(format!("Condition operator {name} must name at least one key")));
            }
        }
        Ok(conditions)
    }
}

struct OperatorBlockSeed<'a> {
    spec: OperatorSpec,
    out: &'a mut Vec<RawCondition>,
}

impl<'de> DeserializeSeed<'de> for OperatorBlockSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OperatorBlockSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of condition keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.out.len();
        while let Some(key) = map.next_key::<String>()? {
            if self.out[start..].iter().any(|c| c.key == key) {
                return Err(fail(format!("Duplicate condition key {key}")));
            }
            if key.is_empty() {
                return Err(fail("Condition key must not be empty"));
            }
            let values = map.next_value::<ConditionValues>()?.0;
            if values.is_empty() {
                return Err(fail(format!("Condition key {key} must have at least one value")));
            }
            Condition::validate(self.spec, &key, &values).map_err(fail)?;
            self.out.push(RawCondition {
                spec: self.spec,
                key,
                values,
            });
        }
        Ok(())
    }
}

/// Condition values: strings, numbers or booleans (AWS accepts all three and
/// compares their text), alone or in an array.
struct ConditionValues(Vec<String>);

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> de::Deserialize<'de> for ConditionValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ConditionValues, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = ConditionValues;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean, or an array of them")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ConditionValues, E> {
                ScalarVisitor.visit_str(value).map(|v| ConditionValues(vec![v]))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<ConditionValues, E> {
                ScalarVisitor.visit_bool(value).map(|v| ConditionValues(vec![v]))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ConditionValues, E> {
                ScalarVisitor.visit_i64(value).map(|v| ConditionValues(vec![v]))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ConditionValues, E> {
                ScalarVisitor.visit_u64(value).map(|v| ConditionValues(vec![v]))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<ConditionValues, E> {
                ScalarVisitor.visit_f64(value).map(|v| ConditionValues(vec![v]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConditionValues, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element_seed(ScalarSeed)? {
                    values.push(value);
                }
                Ok(ConditionValues(values))
            }
        }
        deserializer.deserialize_any(ValuesVisitor)
    }
}

/// Positions of the statement objects in an already-parsed document, for
/// explanations (IAM's SimulatePrincipalPolicy reports them). `None` if the
/// document hides `Statement` behind escapes.
fn statement_spans(document: &str) -> Option<Vec<Span>> {
    let bytes = document.as_bytes();
    let mut walker = Walker { bytes, at: 0 };
    let mut offsets = Vec::new();
    walker.skip_space();
    walker.expect(b'{')?;
    loop {
        walker.skip_space();
        match walker.peek()? {
            b'}' => break,
            b',' => {
                walker.at += 1;
                continue;
            }
            _ => {}
        }
        let key = walker.string()?;
        walker.skip_space();
        walker.expect(b':')?;
        walker.skip_space();
        if key == "\"Statement\"" {
            if walker.peek()? == b'[' {
                walker.at += 1;
                loop {
                    walker.skip_space();
                    match walker.peek()? {
                        b']' => {
                            walker.at += 1;
                            break;
                        }
                        b',' => walker.at += 1,
                        _ => {
                            let start = walker.at;
                            walker.value()?;
                            offsets.push((start, walker.at));
                        }
                    }
                }
            } else {
                let start = walker.at;
                walker.value()?;
                offsets.push((start, walker.at));
            }
        } else {
            walker.value()?;
        }
    }
    let mut wanted: Vec<usize> = offsets.iter().flat_map(|(s, e)| [*s, *e]).collect();
    wanted.sort_unstable();
    let mut positions = std::collections::HashMap::new();
    let (mut line, mut column) = (1, 1);
    let mut next = wanted.iter().peekable();
    for (offset, c) in document.char_indices().chain(std::iter::once((document.len(), '\n'))) {
        while next.peek().is_some_and(|w| **w == offset) {
            positions.insert(offset, Position { line, column });
            next.next();
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    offsets
        .into_iter()
        .map(|(s, e)| {
            Some(Span {
                start: *positions.get(&s)?,
                end: *positions.get(&e)?,
            })
        })
        .collect()
}

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Walker<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A string token including its quotes, escapes left as written.
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return std::str::from_utf8(self.bytes.get(start..self.at)?).ok();
                }
                _ => self.at += 1,
            }
        }
    }

    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.skip_space();
                    match self.peek()? {
                        b if b == close => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' | b':' => self.at += 1,
                        _ => self.value()?,
                    }
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}
