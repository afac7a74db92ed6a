//! Condition operators: parsed once, evaluated against the request's keys.

use std::fmt;
use std::net::IpAddr;

use crate::context::{ContextKeys, KeyName, Scalar};
use crate::pattern::{Pattern, Syntax};

/// A condition operator without its `ForAllValues:`/`ForAnyValue:` prefix
/// and `IfExists` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

use ConditionOperator as Op;

const ALL_OPERATORS: [Op; 27] = [
    Op::StringEquals,
    Op::StringNotEquals,
    Op::StringEqualsIgnoreCase,
    Op::StringNotEqualsIgnoreCase,
    Op::StringLike,
    Op::StringNotLike,
    Op::NumericEquals,
    Op::NumericNotEquals,
    Op::NumericLessThan,
    Op::NumericLessThanEquals,
    Op::NumericGreaterThan,
    Op::NumericGreaterThanEquals,
    Op::DateEquals,
    Op::DateNotEquals,
    Op::DateLessThan,
    Op::DateLessThanEquals,
    Op::DateGreaterThan,
    Op::DateGreaterThanEquals,
    Op::Bool,
    Op::BinaryEquals,
    Op::IpAddress,
    Op::NotIpAddress,
    Op::ArnEquals,
    Op::ArnLike,
    Op::ArnNotEquals,
    Op::ArnNotLike,
    Op::Null,
];

impl ConditionOperator {
    pub fn name(self) -> &'static str {
        match self {
            Op::StringEquals => "StringEquals",
            Op::StringNotEquals => "StringNotEquals",
            Op::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            Op::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            Op::StringLike => "StringLike",
            Op::StringNotLike => "StringNotLike",
            Op::NumericEquals => "NumericEquals",
            Op::NumericNotEquals => "NumericNotEquals",
            Op::NumericLessThan => "NumericLessThan",
            Op::NumericLessThanEquals => "NumericLessThanEquals",
            Op::NumericGreaterThan => "NumericGreaterThan",
            Op::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            Op::DateEquals => "DateEquals",
            Op::DateNotEquals => "DateNotEquals",
            Op::DateLessThan => "DateLessThan",
            Op::DateLessThanEquals => "DateLessThanEquals",
            Op::DateGreaterThan => "DateGreaterThan",
            Op::DateGreaterThanEquals => "DateGreaterThanEquals",
            Op::Bool => "Bool",
            Op::BinaryEquals => "BinaryEquals",
            Op::IpAddress => "IpAddress",
            Op::NotIpAddress => "NotIpAddress",
            Op::ArnEquals => "ArnEquals",
            Op::ArnLike => "ArnLike",
            Op::ArnNotEquals => "ArnNotEquals",
            Op::ArnNotLike => "ArnNotLike",
            Op::Null => "Null",
        }
    }

    /// The negated operators: true when no request value matches any policy value.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NumericNotEquals
                | Op::DateNotEquals
                | Op::NotIpAddress
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }

    /// Whether `${...}` in values is a policy variable (AWS: strings, Bool and ARNs).
    fn takes_variables(self) -> bool {
        matches!(
            self,
            Op::StringEquals
                | Op::StringNotEquals
                | Op::StringEqualsIgnoreCase
                | Op::StringNotEqualsIgnoreCase
                | Op::StringLike
                | Op::StringNotLike
                | Op::Bool
                | Op::ArnEquals
                | Op::ArnLike
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }
}

impl fmt::Display for ConditionOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `ForAllValues:` / `ForAnyValue:`, for multi-valued keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// A full operator as written: qualifier, base operator, `IfExists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OperatorSpec {
    pub qualifier: Option<SetQualifier>,
    pub operator: ConditionOperator,
    pub if_exists: bool,
}

impl OperatorSpec {
    /// Reads e.g. `ForAnyValue:StringLikeIfExists`. Names are matched
    /// case-insensitively; `NullIfExists` does not exist.
    pub fn parse(text: &str) -> Option<OperatorSpec> {
        let (qualifier, rest) = match text.split_once(':') {
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("ForAllValues") => {
                (Some(SetQualifier::ForAllValues), rest)
            }
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("ForAnyValue") => {
                (Some(SetQualifier::ForAnyValue), rest)
            }
            Some(_) => return None,
            None => (None, text),
        };
        let find = |name: &str| {
            ALL_OPERATORS
                .into_iter()
                .find(|op| op.name().eq_ignore_ascii_case(name))
        };
        if let Some(operator) = find(rest) {
            return Some(OperatorSpec {
                qualifier,
                operator,
                if_exists: false,
            });
        }
        let split = rest.len().checked_sub("IfExists".len())?;
        let (base, suffix) = (rest.get(..split)?, rest.get(split..)?);
        if !suffix.eq_ignore_ascii_case("IfExists") {
            return None;
        }
        let operator = find(base).filter(|op| *op != Op::Null)?;
        Some(OperatorSpec {
            qualifier,
            operator,
            if_exists: true,
        })
    }
}

impl fmt::Display for OperatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.qualifier {
            Some(SetQualifier::ForAllValues) => f.write_str("ForAllValues:")?,
            Some(SetQualifier::ForAnyValue) => f.write_str("ForAnyValue:")?,
            None => {}
        }
        f.write_str(self.operator.name())?;
        if self.if_exists {
            f.write_str("IfExists")?;
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 network; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cidr {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => {
                let prefix = u32::from(prefix.unwrap_or(32));
                let mask = u32::MAX.checked_shl(32u32.checked_sub(prefix)?).unwrap_or(0);
                Some(Cidr::V4 {
                    network: u32::from(v4) & mask,
                    mask,
                })
            }
            IpAddr::V6(v6) => {
                let prefix = u32::from(prefix.unwrap_or(128));
                let mask = u128::MAX.checked_shl(128u32.checked_sub(prefix)?).unwrap_or(0);
                Some(Cidr::V6 {
                    network: u128::from(v6) & mask,
                    mask,
                })
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4 { network, mask }, IpAddr::V4(v4)) => u32::from(v4) & mask == *network,
            (Cidr::V6 { network, mask }, IpAddr::V6(v6)) => u128::from(v6) & mask == *network,
            _ => false,
        }
    }
}

/// A request IP; IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    match text.trim().parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// Dates as AWS accepts them: epoch seconds (optionally fractional) or ISO
/// 8601 (`2024-01-01T00:00:00Z`, with an offset, without one meaning UTC, or
/// a bare date meaning midnight UTC). Nanoseconds since the epoch.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    let text = text.trim();
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'-') && !text.contains([':', 'T', 't']) {
        if let Ok(seconds) = text.parse::<i64>() {
            return Some(i128::from(seconds) * 1_000_000_000);
        }
        if let Ok(seconds) = text.parse::<f64>()
            && seconds.is_finite()
            && seconds.abs() < 1e15
        {
            return Some((seconds * 1e9) as i128);
        }
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_nanosecond());
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_nanosecond());
    }
    None
}

/// The six parts of an ARN pattern. A pattern without any colon (such as
/// `*`) is matched as a whole; one with two to five parts matches nothing.
#[derive(Clone, Debug)]
enum ArnPattern {
    Parts(Box<[Pattern]>),
    Whole(Pattern),
    Never,
}

impl ArnPattern {
    fn compile(text: &str, syntax: Syntax) -> ArnPattern {
        match Pattern::compile_arn_parts(text, syntax) {
            Some(parts) => ArnPattern::Parts(parts.into_boxed_slice()),
            None if !text.contains(':') => ArnPattern::Whole(Pattern::compile(text, syntax, false)),
            None => ArnPattern::Never,
        }
    }

    fn matches(&self, text: &str, keys: &ContextKeys) -> bool {
        match self {
            ArnPattern::Never => false,
            ArnPattern::Whole(pattern) => pattern.matches(text, false, keys),
            ArnPattern::Parts(parts) => {
                let mut values = text.splitn(6, ':');
                for part in parts.iter() {
                    match values.next() {
                        Some(value) if part.matches(value, false, keys) => {}
                        _ => return false,
                    }
                }
                true
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Values {
    /// Exact or wildcard strings (also BinaryEquals, compared as the base64 text).
    Strings(Vec<Pattern>),
    /// StringEqualsIgnoreCase and Bool.
    StringsIgnoringCase(Vec<Pattern>),
    Numbers(Vec<f64>),
    Dates(Vec<i128>),
    Networks(Vec<Cidr>),
    Arns(Vec<ArnPattern>),
    /// Null: `true` means "the key must be absent".
    Absent(Vec<bool>),
}

/// One key under one operator, e.g. `"StringEquals": {"aws:username": ["a", "b"]}`.
#[derive(Clone, Debug)]
pub struct Condition {
    spec: OperatorSpec,
    key: Box<str>,
    key_name: KeyName,
    raw_values: Vec<String>,
    values: Values,
}

/// Why a condition value was refused at parse time.
pub(crate) fn invalid_value(spec: OperatorSpec, key: &str, value: &str) -> String {
    format!("Invalid value \"{value}\" for condition operator {spec} on key {key}")
}

impl Condition {
    /// Checks the values of one operator/key pair, as the parser must refuse
    /// numbers, dates, networks and Null flags that do not parse.
    pub(crate) fn validate(spec: OperatorSpec, key: &str, values: &[String]) -> Result<(), String> {
        let bad = values.iter().find(|v| match spec.operator {
            Op::NumericEquals
            | Op::NumericNotEquals
            | Op::NumericLessThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThan
            | Op::NumericGreaterThanEquals => v.trim().parse::<f64>().ok().filter(|n| n.is_finite()).is_none(),
            Op::DateEquals
            | Op::DateNotEquals
            | Op::DateLessThan
            | Op::DateLessThanEquals
            | Op::DateGreaterThan
            | Op::DateGreaterThanEquals => parse_date(v).is_none(),
            Op::IpAddress | Op::NotIpAddress => Cidr::parse(v).is_none(),
            Op::Null => parse_flag(v).is_none(),
            _ => false,
        });
        match bad {
            Some(value) => Err(invalid_value(spec, key, value)),
            None => Ok(()),
        }
    }

    /// Compiles values already checked by [`Condition::validate`].
    pub(crate) fn compile(spec: OperatorSpec, key: &str, raw_values: Vec<String>, variables: bool) -> Condition {
        let syntax = |wildcards| Syntax {
            wildcards,
            variables: variables && spec.operator.takes_variables(),
        };
        let values = match spec.operator {
            Op::StringEquals | Op::StringNotEquals | Op::BinaryEquals => Values::Strings(
                raw_values
                    .iter()
                    .map(|v| Pattern::compile(v, syntax(false), false))
                    .collect(),
            ),
            Op::StringLike | Op::StringNotLike => Values::Strings(
                raw_values
                    .iter()
                    .map(|v| Pattern::compile(v, syntax(true), false))
                    .collect(),
            ),
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase | Op::Bool => Values::StringsIgnoringCase(
                raw_values
                    .iter()
                    .map(|v| Pattern::compile(v, syntax(false), false))
                    .collect(),
            ),
            Op::NumericEquals
            | Op::NumericNotEquals
            | Op::NumericLessThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThan
            | Op::NumericGreaterThanEquals => {
                Values::Numbers(raw_values.iter().filter_map(|v| v.trim().parse::<f64>().ok()).collect())
            }
            Op::DateEquals
            | Op::DateNotEquals
            | Op::DateLessThan
            | Op::DateLessThanEquals
            | Op::DateGreaterThan
            | Op::DateGreaterThanEquals => Values::Dates(raw_values.iter().filter_map(|v| parse_date(v)).collect()),
            Op::IpAddress | Op::NotIpAddress => {
                Values::Networks(raw_values.iter().filter_map(|v| Cidr::parse(v)).collect())
            }
            Op::ArnEquals | Op::ArnLike | Op::ArnNotEquals | Op::ArnNotLike => Values::Arns(
                raw_values
                    .iter()
                    .map(|v| ArnPattern::compile(v, syntax(true)))
                    .collect(),
            ),
            Op::Null => Values::Absent(raw_values.iter().filter_map(|v| parse_flag(v)).collect()),
        };
        Condition {
            spec,
            key: key.into(),
            key_name: KeyName::new(key),
            raw_values,
            values,
        }
    }

    /// A rough rank of how much evaluating costs, to try cheap conditions first.
    pub(crate) fn cost(&self) -> u8 {
        let patterns = |patterns: &[Pattern]| {
            if patterns.iter().any(Pattern::has_variables) {
                4
            } else if patterns.iter().all(Pattern::is_cheap) {
                1
            } else {
                3
            }
        };
        match &self.values {
            Values::Absent(_) | Values::Numbers(_) | Values::Dates(_) | Values::Networks(_) => 0,
            Values::Strings(p) | Values::StringsIgnoringCase(p) => patterns(p),
            Values::Arns(_) => 5,
        }
    }

    pub fn spec(&self) -> OperatorSpec {
        self.spec
    }

    pub fn operator(&self) -> ConditionOperator {
        self.spec.operator
    }

    /// The condition key as written in the policy.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The values as written (numbers and booleans as their JSON text).
    pub fn values(&self) -> &[String] {
        &self.raw_values
    }

    /// Evaluates against the request's keys, as AWS documents:
    /// - a key missing from the request makes the condition false, except
    ///   for negated operators (true), `...IfExists` (true) and Null;
    /// - several policy values are ORed; negated operators are NOR;
    /// - `ForAnyValue:` needs one request value to match (false when the key
    ///   is missing or empty), `ForAllValues:` needs every request value to
    ///   match (true when the key is missing or empty); with a negated
    ///   operator "match" means "matches none of the policy values".
    /// - Without a set qualifier a multi-valued key matches when any of its
    ///   values does.
    pub fn evaluate(&self, keys: &ContextKeys) -> bool {
        let present = keys.lookup(&self.key_name).filter(|v| !v.is_empty());
        if let Values::Absent(flags) = &self.values {
            return flags.iter().any(|must_be_absent| *must_be_absent != present.is_some());
        }
        let negated = self.spec.operator.is_negated();
        match (self.spec.qualifier, present) {
            (None, None) => self.spec.if_exists || negated,
            (None, Some(value)) => value.scalars().iter().any(|v| self.matches_any(v, keys)) != negated,
            (Some(SetQualifier::ForAnyValue), None) => self.spec.if_exists,
            (Some(SetQualifier::ForAnyValue), Some(value)) => {
                value.scalars().iter().any(|v| self.matches_any(v, keys) != negated)
            }
            (Some(SetQualifier::ForAllValues), None) => true,
            (Some(SetQualifier::ForAllValues), Some(value)) => {
                value.scalars().iter().all(|v| self.matches_any(v, keys) != negated)
            }
        }
    }

    /// Whether one request value matches at least one policy value under the
    /// operator's positive form (StringNotLike -> StringLike, ...).
    fn matches_any(&self, value: &Scalar, keys: &ContextKeys) -> bool {
        let op = self.spec.operator;
        match &self.values {
            Values::Strings(patterns) => patterns.iter().any(|p| p.matches(&value.text, false, keys)),
            Values::StringsIgnoringCase(patterns) => patterns.iter().any(|p| p.equals_ignoring_case(&value.text, keys)),
            Values::Numbers(numbers) => value
                .number()
                .is_some_and(|n| numbers.iter().any(|p| compare(op, n, *p))),
            Values::Dates(dates) => value.date().is_some_and(|d| dates.iter().any(|p| compare(op, d, *p))),
            Values::Networks(networks) => value.ip().is_some_and(|ip| networks.iter().any(|n| n.contains(ip))),
            Values::Arns(patterns) => patterns.iter().any(|p| p.matches(&value.text, keys)),
            Values::Absent(_) => false,
        }
    }
}

fn compare<T: PartialOrd>(op: Op, request: T, policy: T) -> bool {
    match op {
        Op::NumericLessThan | Op::DateLessThan => request < policy,
        Op::NumericLessThanEquals | Op::DateLessThanEquals => request <= policy,
        Op::NumericGreaterThan | Op::DateGreaterThan => request > policy,
        Op::NumericGreaterThanEquals | Op::DateGreaterThanEquals => request >= policy,
        // Equals, and NotEquals in its positive form.
        _ => request == policy,
    }
}

fn parse_flag(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let spec = OperatorSpec::parse("ForAnyValue:StringLikeIfExists").unwrap();
        assert_eq!(spec.qualifier, Some(SetQualifier::ForAnyValue));
        assert_eq!(spec.operator, Op::StringLike);
        assert!(spec.if_exists);
        assert_eq!(spec.to_string(), "ForAnyValue:StringLikeIfExists");
        assert_eq!(OperatorSpec::parse("stringequals").unwrap().operator, Op::StringEquals);
        assert!(OperatorSpec::parse("StringEqualz").is_none());
        assert!(OperatorSpec::parse("NullIfExists").is_none());
        assert!(OperatorSpec::parse("ForSomeValues:StringEquals").is_none());
        assert!(OperatorSpec::parse("IfExists").is_none());
        for op in ALL_OPERATORS {
            assert_eq!(OperatorSpec::parse(op.name()).unwrap().operator, op);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("0"), Some(0));
        assert_eq!(parse_date("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_date("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_date("1970-01-01T00:01:00"), Some(60_000_000_000));
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn networks() {
        let net = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(net.contains(parse_ip("203.0.113.7").unwrap()));
        assert!(!net.contains(parse_ip("203.0.114.7").unwrap()));
        assert!(net.contains(parse_ip("::ffff:203.0.113.9").unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(parse_ip("1.2.3.4").unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(parse_ip("2001:db8:1::1").unwrap()));
        assert!(!v6.contains(parse_ip("2001:db9::1").unwrap()));
        assert!(Cidr::parse("1.2.3.4/33").is_none());
        assert!(Cidr::parse("nope").is_none());
        assert!(Cidr::parse("1.2.3.4").unwrap().contains(parse_ip("1.2.3.4").unwrap()));
    }
}
