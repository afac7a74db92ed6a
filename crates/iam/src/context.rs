//! What a request looks like to the evaluator: who asks, for what action on
//! which resource, and the condition keys.

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::condition::{parse_date, parse_ip};
use crate::pattern::bytes_eq;

/// What kind of caller a principal is; decides `aws:PrincipalType` and how
/// policy principals match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user: not restricted by identity policies.
    Root,
    User,
    /// A role session; `role_arn` is the role's IAM ARN (with its path).
    AssumedRole {
        role_arn: String,
        session_name: String,
    },
    FederatedUser,
    /// An AWS service principal such as `lambda.amazonaws.com`.
    Service,
    Anonymous,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// For a role session, the session ARN `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    pub account: String,
    pub kind: PrincipalKind,
    /// AWS's `aws:userid`: `AIDA...` for users, `AROA...:session` for role sessions, the account for root.
    pub user_id: String,
    /// IAM user name (`aws:username`); only IAM users have one.
    pub username: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Principal {
    pub fn root(account: &str) -> Principal {
        Principal {
            arn: format!("arn:aws:iam::{account}:root"),
            account: account.to_string(),
            kind: PrincipalKind::Root,
            user_id: account.to_string(),
            username: None,
            tags: Vec::new(),
        }
    }

    /// An IAM user from its ARN (`arn:aws:iam::ACCOUNT:user/PATH/NAME`); `None` if it is not one.
    pub fn user(arn: &str, user_id: &str) -> Option<Principal> {
        let (partition, account, resource) = split_iam_arn(arn, "iam")?;
        let _ = partition;
        let name = resource
            .strip_prefix("user/")?
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())?;
        Some(Principal {
            arn: arn.to_string(),
            account: account.to_string(),
            kind: PrincipalKind::User,
            user_id: user_id.to_string(),
            username: Some(name.to_string()),
            tags: Vec::new(),
        })
    }

    /// A session of the role `role_arn` (`arn:aws:iam::ACCOUNT:role/PATH/NAME`),
    /// whose unique id is `role_id` (`AROA...`); `None` if it is not a role ARN.
    pub fn assumed_role(role_arn: &str, session_name: &str, role_id: &str) -> Option<Principal> {
        let (partition, account, resource) = split_iam_arn(role_arn, "iam")?;
        let role_name = resource
            .strip_prefix("role/")?
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())?;
        Some(Principal {
            // Session ARNs carry the role's name without its path, as AWS's do.
            arn: format!("arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}"),
            account: account.to_string(),
            kind: PrincipalKind::AssumedRole {
                role_arn: role_arn.to_string(),
                session_name: session_name.to_string(),
            },
            user_id: format!("{role_id}:{session_name}"),
            username: None,
            tags: Vec::new(),
        })
    }

    pub fn service(name: &str) -> Principal {
        Principal {
            arn: name.to_string(),
            account: String::new(),
            kind: PrincipalKind::Service,
            user_id: name.to_string(),
            username: None,
            tags: Vec::new(),
        }
    }

    pub fn anonymous() -> Principal {
        Principal {
            arn: "*".to_string(),
            account: String::new(),
            kind: PrincipalKind::Anonymous,
            user_id: "anonymous".to_string(),
            username: None,
            tags: Vec::new(),
        }
    }

    pub fn with_tags(mut self, tags: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>) -> Self {
        self.tags = tags.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// `aws:PrincipalArn`: for a role session, the role's ARN, not the session's.
    pub fn principal_arn(&self) -> &str {
        match &self.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => role_arn,
            _ => &self.arn,
        }
    }

    /// `aws:PrincipalType`.
    pub fn principal_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User => "User",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
            PrincipalKind::FederatedUser => "FederatedUser",
            PrincipalKind::Service => "Service",
            PrincipalKind::Anonymous => "Anonymous",
        }
    }
}

/// `arn:PARTITION:SERVICE::ACCOUNT:RESOURCE` with an empty region.
fn split_iam_arn<'a>(arn: &'a str, service: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(svc), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (svc == service && !account.is_empty()).then_some((partition, account, resource))
}

/// One value of a context key, with its numeric, date and IP readings
/// parsed on first use and kept (a request is evaluated against many statements).
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub text: Box<str>,
    number: OnceLock<Option<f64>>,
    date: OnceLock<Option<i128>>,
    ip: OnceLock<Option<IpAddr>>,
}

impl Scalar {
    fn new(text: impl Into<String>) -> Scalar {
        Scalar {
            text: text.into().into_boxed_str(),
            number: OnceLock::new(),
            date: OnceLock::new(),
            ip: OnceLock::new(),
        }
    }

    pub fn number(&self) -> Option<f64> {
        *self
            .number
            .get_or_init(|| self.text.parse::<f64>().ok().filter(|n| n.is_finite()))
    }

    /// Nanoseconds since the epoch.
    pub fn date(&self) -> Option<i128> {
        *self.date.get_or_init(|| parse_date(&self.text))
    }

    pub fn ip(&self) -> Option<IpAddr> {
        *self.ip.get_or_init(|| parse_ip(&self.text))
    }
}

/// The value(s) of one condition key in a request.
#[derive(Clone, Debug)]
pub struct ContextValue {
    storage: Storage,
}

/// Most keys have one value: kept inline to save an allocation.
#[derive(Clone, Debug)]
enum Storage {
    One(Scalar),
    Many(Vec<Scalar>),
}

impl ContextValue {
    pub(crate) fn scalars(&self) -> &[Scalar] {
        match &self.storage {
            Storage::One(scalar) => std::slice::from_ref(scalar),
            Storage::Many(scalars) => scalars,
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.scalars().iter().map(|s| &*s.text)
    }

    /// Multi-valued keys (`aws:TagKeys`, ...) cannot be used as policy variables.
    pub fn is_multi_valued(&self) -> bool {
        matches!(self.storage, Storage::Many(_))
    }

    pub fn len(&self) -> usize {
        self.scalars().len()
    }

    pub fn is_empty(&self) -> bool {
        self.scalars().is_empty()
    }
}

/// A condition key name, lower-cased (ASCII: AWS key names are
/// case-insensitive) and hashed once, when a policy is compiled or a value
/// is inserted, so that lookups neither allocate nor hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyName {
    pub lower: Box<str>,
    pub hash: u64,
}

impl KeyName {
    pub fn new(key: &str) -> KeyName {
        let lower: Box<str> = key.to_ascii_lowercase().into();
        KeyName {
            hash: key_hash(lower.as_bytes()),
            lower,
        }
    }
}

/// FxHash: the keys are short, and a table holds one request's keys.
fn key_hash(bytes: &[u8]) -> u64 {
    let mut hash = bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    hash
}

#[derive(Clone, Debug)]
struct Entry {
    name: KeyName,
    value: ContextValue,
}

/// Condition keys of a request. Key names are case-insensitive, as in AWS.
/// Lookups use the hash a policy computed at parse time: an open-addressed
/// table of indexes into `entries`, usually one probe and one comparison.
#[derive(Clone, Debug, Default)]
pub struct ContextKeys {
    entries: Vec<Entry>,
    /// (hash, index + 1) into `entries`, index 0 for an empty slot; a power
    /// of two in size, at most half full. Keeping the hash here lets a probe
    /// skip the entry itself unless the hashes match.
    slots: Vec<(u64, u32)>,
}

impl ContextKeys {
    pub fn new() -> ContextKeys {
        ContextKeys::default()
    }

    /// Room for `keys` keys without regrowing.
    pub fn with_capacity(keys: usize) -> ContextKeys {
        let mut table = ContextKeys {
            entries: Vec::with_capacity(keys),
            slots: Vec::new(),
        };
        table.slots.resize((keys * 2).next_power_of_two().max(8), (0, 0));
        table
    }

    fn slot_of(&self, hash: u64) -> usize {
        // The multiply in the hash leaves its best bits at the top.
        (hash >> 32) as usize & (self.slots.len() - 1)
    }

    fn position(&self, name: &KeyName) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.slot_of(name.hash);
        loop {
            let (hash, index) = self.slots[slot];
            let index = index.checked_sub(1)? as usize;
            if hash == name.hash && bytes_eq(self.entries[index].name.lower.as_bytes(), name.lower.as_bytes()) {
                return Some(index);
            }
            slot = (slot + 1) & mask;
        }
    }

    fn place(&mut self, index: usize) {
        let hash = self.entries[index].name.hash;
        let mask = self.slots.len() - 1;
        let mut slot = self.slot_of(hash);
        while self.slots[slot].1 != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = (hash, index as u32 + 1);
    }

    /// Room for `additional` more keys without regrowing.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        let wanted = ((self.entries.len() + additional) * 2).next_power_of_two().max(8);
        if self.slots.len() < wanted {
            self.rebuild_to(wanted);
        }
    }

    fn rebuild(&mut self) {
        self.rebuild_to((self.entries.len() * 2).next_power_of_two().max(8));
    }

    fn rebuild_to(&mut self, size: usize) {
        self.slots.clear();
        self.slots.resize(size, (0, 0));
        for index in 0..self.entries.len() {
            self.place(index);
        }
    }

    fn set(&mut self, key: &str, value: ContextValue) {
        let name = KeyName::new(key);
        match self.position(&name) {
            Some(index) => self.entries[index].value = value,
            None => {
                self.entries.push(Entry { name, value });
                if self.entries.len() * 2 > self.slots.len() {
                    self.rebuild();
                } else {
                    self.place(self.entries.len() - 1);
                }
            }
        }
    }

    /// Sets a single-valued key, replacing any value it had.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.set(
            key,
            ContextValue {
                storage: Storage::One(Scalar::new(value)),
            },
        );
    }

    /// Sets a multi-valued key such as `aws:TagKeys` (may be empty).
    pub fn insert_multi(&mut self, key: &str, values: impl IntoIterator<Item = impl Into<String>>) {
        let values = values.into_iter().map(Scalar::new).collect();
        self.set(
            key,
            ContextValue {
                storage: Storage::Many(values),
            },
        );
    }

    pub fn insert_bool(&mut self, key: &str, value: bool) {
        self.insert(key, if value { "true" } else { "false" });
    }

    pub fn remove(&mut self, key: &str) -> Option<ContextValue> {
        let index = self.position(&KeyName::new(key))?;
        let removed = self.entries.swap_remove(index).value;
        self.rebuild();
        Some(removed)
    }

    /// Looks a key up in any case.
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.lookup(&KeyName::new(key))
    }

    /// Keys (lower-cased) and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.entries.iter().map(|e| (&*e.name.lower, &e.value))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn lookup(&self, name: &KeyName) -> Option<&ContextValue> {
        self.position(name).map(|index| &self.entries[index].value)
    }

    /// The text a `${key}` policy variable stands for: only single-valued keys resolve.
    pub(crate) fn variable(&self, name: &KeyName) -> Option<&str> {
        match &self.lookup(name)?.storage {
            Storage::One(scalar) => Some(&scalar.text),
            Storage::Many(_) => None,
        }
    }

    /// The global keys AWS derives from the caller: `aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:userid`,
    /// `aws:username` (IAM users only), `aws:PrincipalTag/*` and
    /// `aws:PrincipalIsAWSService`. Anonymous callers get none but the last.
    pub fn insert_principal_keys(&mut self, principal: &Principal) {
        let is_service = principal.kind == PrincipalKind::Service;
        self.insert_bool("aws:PrincipalIsAWSService", is_service);
        if matches!(principal.kind, PrincipalKind::Anonymous | PrincipalKind::Service) {
            if is_service {
                self.insert("aws:PrincipalServiceName", principal.arn.clone());
            }
            return;
        }
        self.insert("aws:PrincipalArn", principal.principal_arn());
        self.insert("aws:PrincipalAccount", principal.account.clone());
        self.insert("aws:PrincipalType", principal.principal_type());
        self.insert("aws:userid", principal.user_id.clone());
        if let Some(name) = &principal.username {
            self.insert("aws:username", name.clone());
        }
        for (key, value) in &principal.tags {
            self.insert(&format!("aws:PrincipalTag/{key}"), value.clone());
        }
    }

    /// `aws:CurrentTime` (ISO 8601) and `aws:EpochTime` (seconds), with
    /// their date readings filled in.
    pub fn insert_request_time(&mut self, now: jiff::Timestamp) {
        // Formatted once a second per thread: every authorized call needs them.
        thread_local! {
            static CACHE: std::cell::RefCell<Option<(i64, Scalar, Scalar)>> = const { std::cell::RefCell::new(None) };
        }
        let seconds = now.as_second();
        let (iso, epoch) = CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((s, iso, epoch)) = cache.as_ref()
                && *s == seconds
            {
                return (iso.clone(), epoch.clone());
            }
            let whole = jiff::Timestamp::from_second(seconds).unwrap_or(now);
            let iso = Scalar::new(whole.to_string());
            let _ = iso.date.set(Some(whole.as_nanosecond()));
            let epoch = Scalar::new(seconds.to_string());
            let _ = epoch.date.set(Some(i128::from(seconds) * 1_000_000_000));
            *cache = Some((seconds, iso.clone(), epoch.clone()));
            (iso, epoch)
        });
        self.set(
            "aws:CurrentTime",
            ContextValue {
                storage: Storage::One(iso),
            },
        );
        self.set(
            "aws:EpochTime",
            ContextValue {
                storage: Storage::One(epoch),
            },
        );
    }
}

/// One request to authorize.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub principal: Principal,
    /// `service:Action`, e.g. `secretsmanager:GetSecretValue` (any case).
    pub action: String,
    /// The resource ARN, or `*` for actions without one.
    pub resource: String,
    /// The account that owns the resource; `None` takes it from the
    /// resource ARN, and a resource without an account is the caller's own.
    pub resource_account: Option<String>,
    pub keys: ContextKeys,
}

impl RequestContext {
    /// A request whose principal keys are already filled in (see
    /// [`ContextKeys::insert_principal_keys`]); add the request's own keys to `keys`.
    pub fn new(principal: Principal, action: impl Into<String>, resource: impl Into<String>) -> RequestContext {
        // Principal keys plus a typical request's own.
        RequestContext::with_keys(principal, action, resource, ContextKeys::with_capacity(24))
    }

    /// Like [`RequestContext::new`], adding the principal keys to the
    /// request's own `keys` instead of starting from none.
    pub fn with_keys(
        principal: Principal,
        action: impl Into<String>,
        resource: impl Into<String>,
        mut keys: ContextKeys,
    ) -> RequestContext {
        keys.reserve(16);
        keys.insert_principal_keys(&principal);
        RequestContext {
            principal,
            action: action.into(),
            resource: resource.into(),
            resource_account: None,
            keys,
        }
    }

    /// The resource owner's account, if known.
    pub fn resource_account(&self) -> Option<&str> {
        if let Some(account) = &self.resource_account {
            return Some(account).filter(|a| !a.is_empty()).map(|a| a.as_str());
        }
        self.resource.split(':').nth(4).filter(|a| !a.is_empty())
    }

    /// Whether the caller and the resource live in different accounts.
    pub fn is_cross_account(&self) -> bool {
        match self.resource_account() {
            Some(account) => account != self.principal.account,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_table_grows_replaces_and_removes() {
        let mut keys = ContextKeys::new();
        for i in 0..100 {
            keys.insert(&format!("svc:Key{i}"), i.to_string());
        }
        keys.insert("SVC:KEY7", "seven");
        assert_eq!(keys.len(), 100);
        for i in (0..100).filter(|i| i % 3 == 0) {
            assert!(keys.remove(&format!("svc:key{i}")).is_some());
        }
        assert!(keys.remove("svc:key0").is_none());
        for i in 0..100 {
            let found = keys
                .get(&format!("Svc:Key{i}"))
                .map(|v| v.values().next().unwrap().to_string());
            let want = match i {
                _ if i % 3 == 0 => None,
                7 => Some("seven".to_string()),
                _ => Some(i.to_string()),
            };
            assert_eq!(found, want, "key {i}");
        }
        assert_eq!(keys.iter().count(), keys.len());
        assert!(ContextKeys::new().get("a:b").is_none());
    }

    #[test]
    fn variables_resolve_single_values_only() {
        let mut keys = ContextKeys::new();
        keys.insert("aws:username", "alice");
        keys.insert_multi("aws:TagKeys", ["a"]);
        assert_eq!(keys.variable(&KeyName::new("AWS:USERNAME")), Some("alice"));
        assert_eq!(keys.variable(&KeyName::new("aws:TagKeys")), None);
        assert_eq!(keys.variable(&KeyName::new("aws:userid")), None);
    }
}
