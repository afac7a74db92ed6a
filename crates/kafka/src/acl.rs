//! Kafka permissions as ACLs: IAM policy statements with MSK's
//! `kafka-cluster:*` actions, compiled for one registered cluster into the
//! Kafka ACLs that allow (or deny) the same things. Pure: the sync that
//! puts them on the brokers is in `service.rs`.
//!
//! Both sides deny by default and let a deny win, so an Allow statement
//! becomes ALLOW ACLs and a Deny statement DENY ACLs. What ACLs can't say
//! is left out on the safe side (and reported as a note): an Allow with
//! conditions or a resource glob Kafka can't express is not compiled; a
//! Deny with conditions is compiled as if they held, and a Deny's
//! inexpressible glob widens to the prefix before its first wildcard.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use tumbler_iam::{Effect, NamedPolicy, PolicySet, RequestContext, Statement, evaluate};

/// Kafka's resource types (the protocol's codes are in [`ResourceType::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Topic, Self::Group, Self::Cluster, Self::TransactionalId]
            .into_iter()
            .find(|t| t.code() == code)
    }

    /// The resource type's word in MSK's ARNs.
    fn arn_segment(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactional-id",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::Cluster => "CLUSTER",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Literal, Self::Prefixed].into_iter().find(|t| t.code() == code)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    const ALL: [Operation; 9] = [
        Self::Read,
        Self::Write,
        Self::Create,
        Self::Delete,
        Self::Alter,
        Self::Describe,
        Self::DescribeConfigs,
        Self::AlterConfigs,
        Self::IdempotentWrite,
    ];

    pub fn code(self) -> i8 {
        match self {
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }

    fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Delete => "DELETE",
            Operation::Alter => "ALTER",
            Operation::Describe => "DESCRIBE",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
            Operation::AlterConfigs => "ALTER_CONFIGS",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Deny, Self::Allow].into_iter().find(|p| p.code() == code)
    }
}

/// The cluster resource's one name in Kafka's ACLs.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// One Kafka ACL, on every host (`*`: Tumbler never sets host ACLs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acl {
    /// `User:<name>`.
    pub principal: String,
    pub permission: Permission,
    pub operation: Operation,
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub resource_name: String,
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {} {} on {} {} {:?}",
            self.permission,
            self.principal,
            self.operation.as_str(),
            self.resource_type.as_str(),
            match self.pattern_type {
                PatternType::Literal => "LITERAL",
                PatternType::Prefixed => "PREFIXED",
            },
            self.resource_name
        )
    }
}

/// MSK's `kafka-cluster:` actions and the Kafka operation each becomes:
/// the table README.md documents. `Connect` has no ACL: Kafka lets anyone
/// authenticated connect, and Tumbler checks it before issuing a token.
pub const ACTIONS: &[(&str, Option<(ResourceType, Operation)>)] = &[
    ("Connect", None),
    ("DescribeCluster", Some((ResourceType::Cluster, Operation::Describe))),
    ("AlterCluster", Some((ResourceType::Cluster, Operation::Alter))),
    (
        "DescribeClusterDynamicConfiguration",
        Some((ResourceType::Cluster, Operation::DescribeConfigs)),
    ),
    (
        "AlterClusterDynamicConfiguration",
        Some((ResourceType::Cluster, Operation::AlterConfigs)),
    ),
    (
        "WriteDataIdempotently",
        Some((ResourceType::Cluster, Operation::IdempotentWrite)),
    ),
    ("CreateTopic", Some((ResourceType::Topic, Operation::Create))),
    ("DescribeTopic", Some((ResourceType::Topic, Operation::Describe))),
    ("AlterTopic", Some((ResourceType::Topic, Operation::Alter))),
    ("DeleteTopic", Some((ResourceType::Topic, Operation::Delete))),
    (
        "DescribeTopicDynamicConfiguration",
        Some((ResourceType::Topic, Operation::DescribeConfigs)),
    ),
    (
        "AlterTopicDynamicConfiguration",
        Some((ResourceType::Topic, Operation::AlterConfigs)),
    ),
    ("ReadData", Some((ResourceType::Topic, Operation::Read))),
    ("WriteData", Some((ResourceType::Topic, Operation::Write))),
    ("DescribeGroup", Some((ResourceType::Group, Operation::Describe))),
    // Joining a group and committing its offsets need READ on the group.
    ("AlterGroup", Some((ResourceType::Group, Operation::Read))),
    ("DeleteGroup", Some((ResourceType::Group, Operation::Delete))),
    (
        "DescribeTransactionalId",
        Some((ResourceType::TransactionalId, Operation::Describe)),
    ),
    (
        "AlterTransactionalId",
        Some((ResourceType::TransactionalId, Operation::Write)),
    ),
];

/// The cluster the ACLs are for.
pub struct ClusterRef<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
    pub id: &'a str,
}

impl ClusterRef<'_> {
    fn arn(&self) -> String {
        format!(
            "arn:aws:kafka:{}:{}:cluster/{}/{}",
            self.region, self.account, self.name, self.id
        )
    }

    /// The ARN of this cluster's resources of `kind`, up to their name.
    fn resource_prefix(&self, kind: ResourceType) -> String {
        format!(
            "arn:aws:kafka:{}:{}:{}/{}/{}/",
            self.region,
            self.account,
            kind.arn_segment(),
            self.name,
            self.id
        )
    }
}

/// A user or role whose policies are compiled.
pub struct Holder<'a> {
    /// Its name on the brokers (the token's `sub`, a SCRAM username).
    pub kafka_name: &'a str,
    /// For `${aws:username}`: users only.
    pub user_name: Option<&'a str>,
    /// For evaluating its permissions boundary.
    pub principal: tumbler_iam::Principal,
    pub identity: &'a [NamedPolicy],
    pub boundary: Option<&'a NamedPolicy>,
}

/// A holder's ACLs on one cluster, and what could not be compiled.
#[derive(Debug, Default)]
pub struct Compiled {
    pub acls: BTreeSet<Acl>,
    pub notes: Vec<String>,
}

/// Compile `holder`'s policies into ACLs on `cluster`.
pub fn compile(cluster: &ClusterRef<'_>, holder: &Holder<'_>) -> Compiled {
    let mut out = Compiled::default();
    let mut allowed: Vec<(Acl, &'static str)> = Vec::new();
    let principal = format!("User:{}", holder.kafka_name);
    let policies = holder
        .identity
        .iter()
        .map(|p| (p, false))
        .chain(holder.boundary.map(|b| (b, true)));
    for (policy, is_boundary) in policies {
        for (index, statement) in policy.policy.statements().iter().enumerate() {
            // A boundary only limits: its Deny statements deny, its Allow
            // statements filter the identity's allows (below).
            if is_boundary && statement.effect() == Effect::Allow {
                continue;
            }
            let name = match statement.sid() {
                Some(sid) => format!("statement {sid:?} of policy {}", policy.name),
                None => format!("statement {} of policy {}", index + 1, policy.name),
            };
            compile_statement(cluster, holder, &principal, statement, &name, &mut allowed, &mut out);
        }
    }
    for (acl, action) in allowed {
        let within_boundary = holder.boundary.is_none_or(|boundary| {
            let request = RequestContext::new(
                holder.principal.clone(),
                format!("kafka-cluster:{action}"),
                representative_arn(cluster, &acl),
            );
            evaluate(&request, PolicySet::identity(std::slice::from_ref(boundary))).is_allowed()
        });
        if within_boundary {
            out.acls.insert(acl);
        }
    }
    out
}

/// One statement's ACLs: DENY ones into `out`, ALLOW ones (with their
/// action, for the boundary) into `allowed`.
fn compile_statement(
    cluster: &ClusterRef<'_>,
    holder: &Holder<'_>,
    principal: &str,
    statement: &Statement,
    name: &str,
    allowed: &mut Vec<(Acl, &'static str)>,
    out: &mut Compiled,
) {
    let actions: Vec<(&'static str, ResourceType, Operation)> = ACTIONS
        .iter()
        .filter_map(|(action, mapping)| {
            let (kind, operation) = (*mapping)?;
            let full = format!("kafka-cluster:{action}").to_ascii_lowercase();
            let named = statement
                .actions()
                .any(|p| glob_matches(&p.to_ascii_lowercase(), &full));
            (named != statement.is_not_action()).then_some((*action, kind, operation))
        })
        .collect();
    if actions.is_empty() {
        return;
    }
    let deny = statement.effect() == Effect::Deny;
    if statement.is_not_resource() {
        out.notes.push(format!(
            "{name}: NotResource can't be expressed as Kafka ACLs; not compiled"
        ));
        return;
    }
    if !statement.conditions().is_empty() {
        if !deny {
            out.notes.push(format!(
                "{name}: an Allow with conditions can't be expressed as Kafka ACLs; not compiled"
            ));
            return;
        }
        out.notes.push(format!(
            "{name}: a Deny with conditions is compiled as if its conditions held"
        ));
    }
    let permission = if deny { Permission::Deny } else { Permission::Allow };
    for resource in statement.resources() {
        let resource = match holder.user_name {
            Some(user) => resource.replace("${aws:username}", user),
            None => resource.to_owned(),
        };
        if resource.contains("${") {
            out.notes.push(format!(
                "{name}: the policy variable in {resource:?} has no value on Kafka; not compiled"
            ));
            continue;
        }
        for &(action, kind, operation) in &actions {
            for (pattern_type, resource_name) in resource_patterns(cluster, kind, &resource, deny, name, out) {
                let acl = Acl {
                    principal: principal.to_owned(),
                    permission,
                    operation,
                    resource_type: kind,
                    pattern_type,
                    resource_name,
                };
                if deny {
                    out.acls.insert(acl);
                } else {
                    allowed.push((acl, action));
                }
            }
        }
    }
}

/// The Kafka resource patterns of `kind` on this cluster that the IAM
/// resource glob `resource` covers.
fn resource_patterns(
    cluster: &ClusterRef<'_>,
    kind: ResourceType,
    resource: &str,
    deny: bool,
    name: &str,
    out: &mut Compiled,
) -> Vec<(PatternType, String)> {
    if kind == ResourceType::Cluster {
        return if glob_matches_within(resource, &cluster.arn(), ARN_SEPARATORS) {
            vec![(PatternType::Literal, CLUSTER_RESOURCE_NAME.to_owned())]
        } else {
            Vec::new()
        };
    }
    let mut patterns = BTreeSet::new();
    for rest in glob_remainders(resource, &cluster.resource_prefix(kind), ARN_SEPARATORS) {
        let first_wildcard = rest.find(['*', '?']);
        let pattern = match first_wildcard {
            None if rest.is_empty() => continue,
            None => (PatternType::Literal, rest.to_owned()),
            Some(0) if rest.bytes().all(|b| b == b'*') => (PatternType::Literal, "*".to_owned()),
            Some(at) if rest[at..].bytes().all(|b| b == b'*') => (PatternType::Prefixed, rest[..at].to_owned()),
            Some(at) if deny => {
                out.notes.push(format!(
                    "{name}: {resource:?} is denied as the prefix {:?}, Kafka ACLs have no inner wildcards",
                    &rest[..at]
                ));
                if at == 0 {
                    (PatternType::Literal, "*".to_owned())
                } else {
                    (PatternType::Prefixed, rest[..at].to_owned())
                }
            }
            Some(_) => {
                out.notes.push(format!(
                    "{name}: {resource:?} can't be expressed as a Kafka ACL (only a trailing * is); not compiled"
                ));
                continue;
            }
        };
        patterns.insert(pattern);
    }
    patterns.into_iter().collect()
}

/// An ARN standing for an ACL's resources, to evaluate a boundary on.
fn representative_arn(cluster: &ClusterRef<'_>, acl: &Acl) -> String {
    match (acl.resource_type, acl.pattern_type) {
        (ResourceType::Cluster, _) => cluster.arn(),
        (kind, PatternType::Literal) => format!("{}{}", cluster.resource_prefix(kind), acl.resource_name),
        (kind, PatternType::Prefixed) => format!("{}{}*", cluster.resource_prefix(kind), acl.resource_name),
    }
}

/// ARN separators an inner `*` of a Resource does not cross when it is
/// compiled: `arn:aws:kafka:*:*:topic/main/*/orders` names the topic
/// `orders` of every cluster named `main`, not a topic named
/// `x/orders`. A trailing `*` still covers the rest of the ARN.
const ARN_SEPARATORS: &[char] = &[':', '/'];

/// Whether the IAM glob `pattern` (`*` any run, `?` one character)
/// matches all of `text`; an inner `*` does not cross `separators`.
fn glob_matches_within(pattern: &str, text: &str, separators: &[char]) -> bool {
    glob_remainders(pattern, text, separators)
        .iter()
        .any(|rest| rest.bytes().all(|b| b == b'*'))
}

/// [`glob_matches_within`] with no separators (actions).
fn glob_matches(pattern: &str, text: &str) -> bool {
    glob_matches_within(pattern, text, &[])
}

/// What is left of the glob `pattern` after it has matched `prefix`: each
/// way of matching leaves a suffix of the pattern, which the rest of the
/// text must match. Written here because the glob crates answer whether a
/// whole string matches, not what a prefix leaves.
fn glob_remainders<'p>(pattern: &'p str, prefix: &str, separators: &[char]) -> Vec<&'p str> {
    let p = pattern.as_bytes();
    // Positions in the pattern reachable after the text read so far.
    let close = |states: &mut BTreeSet<usize>| {
        let mut stack: Vec<usize> = states.iter().copied().collect();
        while let Some(at) = stack.pop() {
            if p.get(at) == Some(&b'*') && states.insert(at + 1) {
                stack.push(at + 1);
            }
        }
    };
    let mut states = BTreeSet::from([0]);
    close(&mut states);
    for c in prefix.chars() {
        let mut next = BTreeSet::new();
        for &at in &states {
            match pattern[at..].chars().next() {
                Some('*') if !separators.contains(&c) || pattern[at..].bytes().all(|b| b == b'*') => {
                    next.insert(at);
                }
                Some('*') => {}
                Some('?') => {
                    next.insert(at + 1);
                }
                Some(x) if x == c => {
                    next.insert(at + x.len_utf8());
                }
                _ => {}
            }
        }
        close(&mut next);
        states = next;
        if states.is_empty() {
            break;
        }
    }
    states.into_iter().map(|at| &pattern[at..]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tumbler_iam::{PolicyKind, parse_policy};

    const CLUSTER: ClusterRef<'static> = ClusterRef {
        region: "us-east-1",
        account: "123456789012",
        name: "main",
        id: "0f1e",
    };

    fn compile_doc(doc: &str, boundary: Option<&str>) -> Compiled {
        let policies = [NamedPolicy::new("p", parse_policy(doc, PolicyKind::Identity).unwrap())];
        let boundary = boundary.map(|b| NamedPolicy::new("b", parse_policy(b, PolicyKind::Identity).unwrap()));
        let holder = Holder {
            kafka_name: "alice",
            user_name: Some("alice"),
            principal: tumbler_iam::Principal::user("arn:aws:iam::123456789012:user/alice", "AIDAALICE").unwrap(),
            identity: &policies,
            boundary: boundary.as_ref(),
        };
        compile(&CLUSTER, &holder)
    }

    fn acls(c: &Compiled) -> Vec<String> {
        c.acls.iter().map(|a| a.to_string()).collect()
    }

    fn statement(effect: &str, action: &str, resource: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":{action},"Resource":{resource}}}]}}"#
        )
    }

    #[test]
    fn glob_remainders_follow_stars_and_question_marks() {
        assert_eq!(glob_remainders("ab*", "ab", &[]), vec!["*", ""]);
        assert_eq!(glob_remainders("a*c", "abbb", &[]), vec!["*c", "c"]);
        assert_eq!(glob_remainders("a?c", "ab", &[]), vec!["c"]);
        assert!(glob_remainders("abc", "x", &[]).is_empty());
        // Inner stars stop at separators; a trailing one does not.
        assert_eq!(glob_remainders("a*/x", "ab/", &['/']), vec!["x"]);
        assert!(glob_remainders("a*x", "ab/", &['/']).is_empty());
        assert_eq!(glob_remainders("a*/x", "ab", &['/']), vec!["*/x", "/x"]);
        assert_eq!(glob_remainders("a*", "ab/c", &['/']), vec!["*", ""]);
        assert!(glob_matches("kafka-cluster:*data", "kafka-cluster:writedata"));
        assert!(!glob_matches(
            "kafka-cluster:*data",
            "kafka-cluster:writedataidempotently"
        ));
        assert!(glob_matches("*", ""));
    }

    #[test]
    fn write_data_on_one_topic_is_one_literal_write_acl() {
        let c = compile_doc(
            &statement(
                "Allow",
                r#"["kafka-cluster:Connect","kafka-cluster:WriteData"]"#,
                r#""arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/orders""#,
            ),
            None,
        );
        assert_eq!(acls(&c), vec![r#"Allow User:alice WRITE on TOPIC LITERAL "orders""#]);
        assert!(c.notes.is_empty());
    }

    #[test]
    fn trailing_star_is_prefixed_and_a_lone_star_is_kafkas_wildcard() {
        let c = compile_doc(
            &statement(
                "Allow",
                r#""kafka-cluster:ReadData""#,
                r#"["arn:aws:kafka:*:123456789012:topic/main/*/orders-*","arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/*"]"#,
            ),
            None,
        );
        assert_eq!(
            acls(&c),
            vec![
                r#"Allow User:alice READ on TOPIC LITERAL "*""#,
                r#"Allow User:alice READ on TOPIC PREFIXED "orders-""#,
            ]
        );
    }

    #[test]
    fn other_clusters_accounts_and_regions_get_nothing() {
        for resource in [
            "arn:aws:kafka:us-east-1:123456789012:topic/other/0f1e/orders",
            "arn:aws:kafka:us-east-1:999999999999:topic/main/0f1e/orders",
            "arn:aws:kafka:eu-west-1:123456789012:topic/main/0f1e/orders",
            "arn:aws:kafka:us-east-1:123456789012:group/main/0f1e/orders",
        ] {
            let c = compile_doc(
                &statement("Allow", r#""kafka-cluster:WriteData""#, &format!("{resource:?}")),
                None,
            );
            assert!(c.acls.is_empty(), "{resource}: {:?}", acls(&c));
        }
    }

    #[test]
    fn wildcard_actions_cover_every_resource_type() {
        let c = compile_doc(&statement("Allow", r#""kafka-cluster:*""#, r#""*""#), None);
        assert_eq!(c.acls.len(), ACTIONS.len() - 1);
        let c = compile_doc(
            &statement("Allow", r#""*""#, r#""arn:aws:kafka:*:*:cluster/main/*""#),
            None,
        );
        assert_eq!(
            acls(&c),
            vec![
                r#"Allow User:alice ALTER on CLUSTER LITERAL "kafka-cluster""#,
                r#"Allow User:alice DESCRIBE on CLUSTER LITERAL "kafka-cluster""#,
                r#"Allow User:alice DESCRIBE_CONFIGS on CLUSTER LITERAL "kafka-cluster""#,
                r#"Allow User:alice ALTER_CONFIGS on CLUSTER LITERAL "kafka-cluster""#,
                r#"Allow User:alice IDEMPOTENT_WRITE on CLUSTER LITERAL "kafka-cluster""#,
            ]
        );
    }

    #[test]
    fn alter_group_is_read_on_the_group() {
        let c = compile_doc(
            &statement(
                "Allow",
                r#"["kafka-cluster:AlterGroup","kafka-cluster:DescribeGroup"]"#,
                r#""arn:aws:kafka:us-east-1:123456789012:group/main/0f1e/billing""#,
            ),
            None,
        );
        assert_eq!(
            acls(&c),
            vec![
                r#"Allow User:alice READ on GROUP LITERAL "billing""#,
                r#"Allow User:alice DESCRIBE on GROUP LITERAL "billing""#,
            ]
        );
    }

    #[test]
    fn deny_becomes_deny_and_not_action_is_the_complement() {
        let c = compile_doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":"kafka-cluster:*Topic*",
                "Resource":"arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/payments"}]}"#,
            None,
        );
        assert_eq!(
            acls(&c),
            vec![
                r#"Deny User:alice READ on TOPIC LITERAL "payments""#,
                r#"Deny User:alice WRITE on TOPIC LITERAL "payments""#,
            ]
        );
    }

    #[test]
    fn what_acls_cannot_say_is_left_out_on_the_safe_side() {
        // An Allow with a condition, or an inner wildcard: not compiled.
        let c = compile_doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kafka-cluster:WriteData",
                "Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
                {"Effect":"Allow","Action":"kafka-cluster:WriteData",
                "Resource":"arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/a*b"}]}"#,
            None,
        );
        assert!(c.acls.is_empty());
        assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
        // A Deny widens instead.
        let c = compile_doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kafka-cluster:WriteData",
                "Resource":"arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/a*b",
                "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            None,
        );
        assert_eq!(acls(&c), vec![r#"Deny User:alice WRITE on TOPIC PREFIXED "a""#]);
    }

    #[test]
    fn policy_variables_resolve_to_the_user_name() {
        let c = compile_doc(
            &statement(
                "Allow",
                r#""kafka-cluster:WriteData""#,
                r#"["arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/${aws:username}-*","arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/${aws:PrincipalTag/team}"]"#,
            ),
            None,
        );
        assert_eq!(acls(&c), vec![r#"Allow User:alice WRITE on TOPIC PREFIXED "alice-""#]);
        assert_eq!(c.notes.len(), 1);
    }

    #[test]
    fn a_boundary_keeps_only_the_allows_it_covers_and_adds_its_denies() {
        let boundary = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"kafka-cluster:*","Resource":"arn:aws:kafka:*:*:topic/main/*/orders*"},
            {"Effect":"Deny","Action":"kafka-cluster:ReadData","Resource":"arn:aws:kafka:*:*:topic/main/*/orders-eu"}]}"#;
        let c = compile_doc(
            &statement(
                "Allow",
                r#"["kafka-cluster:WriteData","kafka-cluster:DeleteTopic"]"#,
                r#"["arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/orders","arn:aws:kafka:us-east-1:123456789012:topic/main/0f1e/*"]"#,
            ),
            Some(boundary),
        );
        assert_eq!(
            acls(&c),
            vec![
                r#"Deny User:alice READ on TOPIC LITERAL "orders-eu""#,
                r#"Allow User:alice WRITE on TOPIC LITERAL "orders""#,
                r#"Allow User:alice DELETE on TOPIC LITERAL "orders""#,
            ]
        );
    }
}
