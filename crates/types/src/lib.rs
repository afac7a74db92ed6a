//! Leaf types shared by every Tumbler crate: account and region names, ARNs,
//! and `Sensitive`, the wrapper that keeps secret material out of logs.
//!
//! This crate does no I/O and depends on nothing of ours.

mod sensitive;

pub use sensitive::{Sensitive, SensitiveString};

use std::fmt;

/// A 12-digit AWS account id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("account id must be 12 digits, got '{s}'"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.0)
    }
}

/// An AWS region name such as `us-east-1`; shape `^([a-z]+-)+\d+$` as in the
/// Secrets Manager model's `RegionType`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, String> {
        if is_region_name(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("'{s}' is not a valid region name"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `^([a-z]+-)+\d+$`, at most 128 characters.
pub fn is_region_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 128 {
        return false;
    }
    let mut parts: Vec<&str> = s.split('-').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    !parts.is_empty()
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.0)
    }
}

/// Where a call runs: the account of the caller and the region of its SigV4
/// credential scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub account: AccountId,
    pub region: Region,
}

/// The parts of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut it = s.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: it.next()?,
            service: it.next()?,
            region: it.next()?,
            account: it.next()?,
            resource: it.next()?,
        })
    }
}

/// Seconds since the epoch with millisecond precision, as AWS's JSON
/// protocols send timestamps.
pub fn epoch_seconds(ts: jiff::Timestamp) -> f64 {
    ts.as_millisecond() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        assert!(is_region_name("us-east-1"));
        assert!(is_region_name("eu-central-2"));
        assert!(!is_region_name("us-east"));
        assert!(!is_region_name("US-east-1"));
        assert!(!is_region_name("-1"));
        assert!(!is_region_name(""));
    }

    #[test]
    fn arn_parse() {
        let a = Arn::parse("arn:aws:secretsmanager:us-east-1:000000000000:secret:a:b").unwrap();
        assert_eq!(a.service, "secretsmanager");
        assert_eq!(a.resource, "secret:a:b");
        assert!(Arn::parse("arn:aws:x").is_none());
    }
}
