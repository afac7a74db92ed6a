//! The IAM and STS Query APIs: parameters in, XML out, with AWS's names,
//! limits, errors and messages. Every action is authorized with AWS's
//! action name before it runs (GetCallerIdentity and GetSessionToken need
//! no permission, as on AWS).

use std::collections::BTreeMap;

use tumbler_iam::{ContextKeys, ParseOptions, PolicyErrorKind, PolicyKind};
use tumbler_store::{AccessKeyRow, ManagedPolicyRow, PolicyVersionRow, PrincipalRow, StoreError, Write};
use tumbler_wire::AwsError;
use tumbler_wire::query::{IAM_XMLNS, Xml, response_xml};

use crate::authz::{
    AWS_MANAGED, ManagedPolicyMeta, PrincipalMeta, RequestInfo, ResourcePolicy, Tag, aws_managed, jiff_iso,
};
use crate::token::SessionClaims;
use crate::{Identity, IdentityError, Principal, new_access_key_id, new_secret_access_key, random_from};

mod groups;
mod mfa;
mod sts;

pub type Params = BTreeMap<String, String>;

/// One Query API call.
pub struct Call<'a> {
    pub caller: &'a Principal,
    pub request: RequestInfo,
    pub request_id: &'a str,
    pub params: &'a Params,
    /// Where the call's audit event goes with its change.
    pub journal: Option<&'a dyn tumbler_store::Journal>,
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const MAX_ACCESS_KEYS: usize = 2;
const MAX_POLICY_VERSIONS: usize = 5;
const MAX_TAGS: usize = 50;
/// IAM's default quotas on policy size (characters other than white space).
const USER_INLINE_POLICY_SIZE: usize = 2048;
const ROLE_INLINE_POLICY_SIZE: usize = 10240;
const GROUP_INLINE_POLICY_SIZE: usize = 5120;
const MANAGED_POLICY_SIZE: usize = 6144;
const TRUST_POLICY_SIZE: usize = 2048;
const SESSION_POLICY_SIZE: usize = 2048;

fn no_such_entity(message: impl Into<String>) -> AwsError {
    AwsError::custom("NoSuchEntity", 404, message)
}
fn already_exists(message: impl Into<String>) -> AwsError {
    AwsError::custom("EntityAlreadyExists", 409, message)
}
fn delete_conflict(message: impl Into<String>) -> AwsError {
    AwsError::custom("DeleteConflict", 409, message)
}
fn limit_exceeded(message: impl Into<String>) -> AwsError {
    AwsError::custom("LimitExceeded", 409, message)
}
fn invalid_input(message: impl Into<String>) -> AwsError {
    AwsError::custom("InvalidInput", 400, message)
}
fn access_denied(message: impl Into<String>) -> AwsError {
    AwsError::custom("AccessDenied", 403, message)
}
fn internal(e: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %e, "identity operation failed");
    AwsError::internal("An internal error occurred. Try the request again.")
}
fn validation(member: &str, value: &str, constraint: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// Store failures are internal errors.
fn db<T>(r: Result<T, StoreError>) -> Result<T, AwsError> {
    r.map_err(internal)
}

impl From<IdentityError> for AwsError {
    fn from(e: IdentityError) -> Self {
        internal(e)
    }
}

fn iso(ms: i64) -> String {
    jiff_iso(ms.div_euclid(1000))
}

/// Percent-encoding as AWS returns policy documents (RFC 3986 unreserved kept).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A member AWS names in camelCase in validation messages.
fn member_name(param: &str) -> String {
    let mut c = param.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn required<'p>(params: &'p Params, name: &str) -> Result<&'p str, AwsError> {
    params.get(name).map(String::as_str).ok_or_else(|| {
        AwsError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            member_name(name)
        ))
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// `[\w+=,.@-]+` of `min..=max` characters.
fn check_name(param: &str, value: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let member = member_name(param);
    let len = value.chars().count();
    if len < min {
        return Err(validation(
            &member,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(validation(
            &member,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !value.chars().all(is_name_char) {
        return Err(validation(
            &member,
            value,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(())
}

fn required_name<'p>(params: &'p Params, param: &str, max: usize) -> Result<&'p str, AwsError> {
    let v = required(params, param)?;
    check_name(param, v, 1, max)?;
    Ok(v)
}

fn check_path(params: &Params) -> Result<(), AwsError> {
    match params.get("Path").map(String::as_str) {
        None | Some("/") => Ok(()),
        Some(_) => Err(invalid_input("Tumbler supports only the path /.")),
    }
}

/// Parse a policy document as IAM does: model constraints (ValidationError),
/// then the policy language (MalformedPolicyDocument) and size quota (LimitExceeded).
fn check_policy(param: &str, document: &str, kind: PolicyKind, max_size: usize) -> Result<(), AwsError> {
    let len = document.chars().count();
    if len > 131_072 {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length less than or equal to 131072",
            member_name(param)
        )));
    }
    if document.trim().is_empty() {
        return Err(AwsError::custom(
            "MalformedPolicyDocument",
            400,
            "Syntax errors in policy.",
        ));
    }
    match ParseOptions::new(kind).max_size(max_size).parse(document) {
        Ok(_) => Ok(()),
        Err(e) if e.kind == PolicyErrorKind::TooLarge => Err(limit_exceeded(e.message)),
        Err(e) => Err(AwsError::custom("MalformedPolicyDocument", 400, e.to_string())),
    }
}

fn indexed(params: &Params, prefix: &str, field: Option<&str>) -> Vec<String> {
    (1..)
        .map_while(|i| {
            let key = match field {
                Some(f) => format!("{prefix}.member.{i}.{f}"),
                None => format!("{prefix}.member.{i}"),
            };
            params.get(&key).cloned()
        })
        .collect()
}

fn tags_param(params: &Params) -> Result<Vec<Tag>, AwsError> {
    let mut tags = Vec::new();
    for i in 1.. {
        let Some(key) = params.get(&format!("Tags.member.{i}.Key")) else {
            break;
        };
        let value = params
            .get(&format!("Tags.member.{i}.Value"))
            .cloned()
            .unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 {
            return Err(validation(
                "tags.member.key",
                key,
                "Member must have length less than or equal to 128",
            ));
        }
        if value.chars().count() > 256 {
            return Err(validation(
                "tags.member.value",
                &value,
                "Member must have length less than or equal to 256",
            ));
        }
        tags.push(Tag {
            key: key.clone(),
            value,
        });
    }
    if tags.len() > MAX_TAGS {
        return Err(limit_exceeded("The number of tags has reached the maximum limit."));
    }
    Ok(tags)
}

fn merge_tags(existing: &mut Vec<Tag>, new: Vec<Tag>) {
    for t in new {
        existing.retain(|o| o.key != t.key);
        existing.push(t);
    }
}

/// The `PermissionsBoundary` parameter: a policy ARN, if given.
fn boundary_param(params: &Params) -> Result<Option<&str>, AwsError> {
    match params.get("PermissionsBoundary") {
        None => Ok(None),
        Some(arn) if arn.len() < 20 || arn.len() > 2048 || !arn.starts_with("arn:") => {
            Err(invalid_input(format!("ARN {arn} is not valid.")))
        }
        Some(arn) => Ok(Some(arn)),
    }
}

/// Condition keys of CreateUser and CreateRole.
fn create_keys(tags: &[Tag], boundary: Option<&str>) -> ContextKeys {
    let mut keys = request_tag_keys(tags);
    if let Some(b) = boundary {
        keys.insert("iam:PermissionsBoundary", b);
    }
    keys
}

fn request_tag_keys(tags: &[Tag]) -> ContextKeys {
    let mut keys = ContextKeys::new();
    for t in tags {
        keys.insert(&format!("aws:RequestTag/{}", t.key), t.value.clone());
    }
    if !tags.is_empty() {
        keys.insert_multi("aws:TagKeys", tags.iter().map(|t| t.key.clone()));
    }
    keys
}

fn int_param(params: &Params, name: &str, min: i64, max: i64) -> Result<Option<i64>, AwsError> {
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    let member = member_name(name);
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| AwsError::validation(format!("Value '{v}' at '{member}' is not a valid integer.")))?;
    if n < min {
        return Err(validation(
            &member,
            v,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(validation(
            &member,
            v,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(Some(n))
}

fn bool_param(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// One page of `items` by IAM's `Marker`/`MaxItems`, and the marker of the
/// next page. The marker is the key (a name or ARN) of the next item.
fn page<T>(params: &Params, mut items: Vec<(String, T)>) -> Result<(Vec<T>, Option<String>), AwsError> {
    let max = int_param(params, "MaxItems", 1, 1000)?.unwrap_or(100) as usize;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(marker) = params.get("Marker") {
        items.retain(|(k, _)| k >= marker);
    }
    let next = items.get(max).map(|(k, _)| k.clone());
    items.truncate(max);
    Ok((items.into_iter().map(|(_, v)| v).collect(), next))
}

fn page_end(x: &mut Xml, next: Option<String>) {
    match next {
        Some(marker) => x.field("IsTruncated", "true").field("Marker", &marker),
        None => x.field("IsTruncated", "false"),
    };
}

fn tags_xml(x: &mut Xml, tags: &[Tag]) {
    x.open("Tags");
    for t in tags {
        x.open("member")
            .field("Key", &t.key)
            .field("Value", &t.value)
            .close("member");
    }
    x.close("Tags");
}

fn user_xml(x: &mut Xml, row: &PrincipalRow, meta: &PrincipalMeta) {
    x.field("Path", &meta.path)
        .field("UserName", &row.name)
        .field("UserId", &row.unique_id)
        .field("Arn", &row.arn)
        .field("CreateDate", &iso(row.created_ms));
    boundary_xml(x, meta);
    if !meta.tags.is_empty() {
        tags_xml(x, &meta.tags);
    }
}

fn boundary_xml(x: &mut Xml, meta: &PrincipalMeta) {
    if let Some(arn) = &meta.permissions_boundary {
        x.open("PermissionsBoundary")
            .field("PermissionsBoundaryType", "PermissionsBoundaryPolicy")
            .field("PermissionsBoundaryArn", arn)
            .close("PermissionsBoundary");
    }
}

fn group_xml(x: &mut Xml, row: &PrincipalRow, meta: &PrincipalMeta) {
    x.field("Path", &meta.path)
        .field("GroupName", &row.name)
        .field("GroupId", &row.unique_id)
        .field("Arn", &row.arn)
        .field("CreateDate", &iso(row.created_ms));
}

fn role_xml(x: &mut Xml, row: &PrincipalRow, meta: &PrincipalMeta) {
    x.field("Path", &meta.path)
        .field("RoleName", &row.name)
        .field("RoleId", &row.unique_id)
        .field("Arn", &row.arn)
        .field("CreateDate", &iso(row.created_ms))
        .field(
            "AssumeRolePolicyDocument",
            &url_encode(meta.assume_role_policy_document.as_deref().unwrap_or_default()),
        )
        .opt_field("Description", meta.description.as_deref())
        .field(
            "MaxSessionDuration",
            &meta.max_session_duration.unwrap_or(3600).to_string(),
        );
    boundary_xml(x, meta);
    if !meta.tags.is_empty() {
        tags_xml(x, &meta.tags);
    }
}

/// A managed policy as the API shows it, customer or AWS.
struct PolicyView {
    name: String,
    id: String,
    arn: String,
    path: String,
    default_version: String,
    description: Option<String>,
    created_ms: i64,
    updated_ms: i64,
    /// None for AWS-managed policies.
    row: Option<(ManagedPolicyRow, ManagedPolicyMeta)>,
}

/// How often a managed policy is attached, and how often it is a boundary.
#[derive(Clone, Copy, Default)]
struct PolicyUse {
    attachments: i64,
    boundaries: i64,
}

fn policy_xml(x: &mut Xml, p: &PolicyView, uses: PolicyUse) {
    x.field("PolicyName", &p.name)
        .field("PolicyId", &p.id)
        .field("Arn", &p.arn)
        .field("Path", &p.path)
        .field("DefaultVersionId", &p.default_version)
        .field("AttachmentCount", &uses.attachments.to_string())
        .field("PermissionsBoundaryUsageCount", &uses.boundaries.to_string())
        .field("IsAttachable", "true")
        .opt_field("Description", p.description.as_deref())
        .field("CreateDate", &iso(p.created_ms))
        .field("UpdateDate", &iso(p.updated_ms));
}

/// Built-in policies date from the epoch of this feature.
const AWS_POLICY_CREATED_MS: i64 = 1_423_000_000_000;

impl Identity {
    fn allow(&self, call: &Call<'_>, action: &str, resource: &str) -> Result<(), AwsError> {
        self.allow_with(call, action, resource, ContextKeys::new())
    }

    fn allow_with(&self, call: &Call<'_>, action: &str, resource: &str, keys: ContextKeys) -> Result<(), AwsError> {
        let auth = self.authorize(call.caller, action, resource, &call.request, keys, None)?;
        if auth.is_allowed() {
            Ok(())
        } else {
            Err(access_denied(auth.message))
        }
    }

    /// Commit a call's writes with the call's audit event.
    fn apply(&self, call: &Call<'_>, writes: Vec<Write>) -> Result<(), StoreError> {
        let r = tumbler_store::apply_journaled(self.store.as_ref(), call.journal, writes);
        // Even a failed batch may have raced another change: forget derived state.
        self.invalidate();
        r.map(|_| ())
    }

    /// Commit a new user, role or group with a fresh unique id (AWS's
    /// prefix for its kind); EntityAlreadyExists if its name is taken.
    fn insert_principal(
        &self,
        call: &Call<'_>,
        arn: String,
        kind: &str,
        name: &str,
        meta: &PrincipalMeta,
    ) -> Result<PrincipalRow, AwsError> {
        let prefix = match kind {
            "user" => "AIDA",
            "group" => "AGPA",
            _ => "AROA",
        };
        let row = PrincipalRow {
            arn,
            account: call.caller.account.clone(),
            kind: kind.into(),
            name: name.into(),
            unique_id: format!("{prefix}{}", random_from(ID_ALPHABET, 17)?),
            created_ms: call.request.now.as_millisecond(),
            meta: meta.to_json(),
        };
        match self.apply(call, vec![Write::CreatePrincipal(row.clone())]) {
            Ok(()) => Ok(row),
            Err(StoreError::Duplicate(_)) => Err(already_exists(format!(
                "{} with name {} already exists.",
                noun(&row.kind),
                row.name
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    /// The users, roles or groups these ARNs name (the ones still there), keyed by name for paging.
    fn principals_named(&self, arns: Vec<String>) -> Result<Vec<(String, PrincipalRow)>, AwsError> {
        let mut rows = Vec::with_capacity(arns.len());
        for arn in arns {
            if let Some(row) = db(self.store.principal(&arn))? {
                rows.push((row.name.clone(), row));
            }
        }
        Ok(rows)
    }

    fn user(&self, account: &str, name: &str) -> Result<(PrincipalRow, PrincipalMeta), AwsError> {
        match db(self.store.principal(&user_arn(account, name)))? {
            Some(row) if row.kind == "user" => {
                let meta = PrincipalMeta::parse(&row.meta);
                Ok((row, meta))
            }
            _ => Err(no_such_entity(format!("The user with name {name} cannot be found."))),
        }
    }

    fn group(&self, account: &str, name: &str) -> Result<(PrincipalRow, PrincipalMeta), AwsError> {
        match db(self.store.principal(&group_arn(account, name)))? {
            Some(row) if row.kind == "group" => {
                let meta = PrincipalMeta::parse(&row.meta);
                Ok((row, meta))
            }
            _ => Err(no_such_entity(format!("The group with name {name} cannot be found."))),
        }
    }

    fn role(&self, account: &str, name: &str) -> Result<(PrincipalRow, PrincipalMeta), AwsError> {
        match db(self.store.principal(&role_arn(account, name)))? {
            Some(row) if row.kind == "role" => {
                let meta = PrincipalMeta::parse(&row.meta);
                Ok((row, meta))
            }
            _ => Err(no_such_entity(format!("The role with name {name} cannot be found."))),
        }
    }

    fn policy(&self, arn: &str) -> Result<PolicyView, AwsError> {
        if let Some((name, id, _)) = aws_managed(arn) {
            return Ok(PolicyView {
                name: name.into(),
                id: id.into(),
                arn: arn.into(),
                path: "/".into(),
                default_version: "v1".into(),
                description: None,
                created_ms: AWS_POLICY_CREATED_MS,
                updated_ms: AWS_POLICY_CREATED_MS,
                row: None,
            });
        }
        let not_found = || no_such_entity(format!("Policy {arn} does not exist or is not attachable."));
        let row = db(self.store.managed_policy(arn))?.ok_or_else(not_found)?;
        let meta: ManagedPolicyMeta = serde_json::from_str(&row.meta).map_err(internal)?;
        Ok(PolicyView {
            name: row.name.clone(),
            id: row.policy_id.clone(),
            arn: row.arn.clone(),
            path: meta.path.clone(),
            default_version: meta.default_version_id.clone(),
            description: meta.description.clone(),
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
            row: Some((row, meta)),
        })
    }

    /// The user an action names, or the calling user when it names none.
    fn user_or_caller(&self, call: &Call<'_>) -> Result<String, AwsError> {
        if let Some(name) = call.params.get("UserName") {
            check_name("UserName", name, 1, 128)?;
            return Ok(name.clone());
        }
        let is_user = call.caller.kind == "user" && call.caller.arn.contains(":user/");
        if !is_user {
            return Err(AwsError::validation(
                "Must specify userName when calling with non-User credentials",
            ));
        }
        Ok(call.caller.arn.rsplit('/').next().unwrap_or_default().to_owned())
    }

    /// An IAM Query call (Version 2010-05-08).
    pub fn iam_call(&self, call: &Call<'_>) -> Result<Vec<u8>, AwsError> {
        let action = call.params.get("Action").map(String::as_str).unwrap_or_default();
        // Changes check their quotas and conflicts (two keys per user, five
        // policy versions, no delete while attached) and then write; one at
        // a time on this node so that two calls cannot both pass a check.
        let _serial = (!action.starts_with("Get") && !action.starts_with("List"))
            .then(|| self.iam_writes.lock().unwrap_or_else(|e| e.into_inner()));
        let result = match action {
            "CreateUser" => self.create_user(call)?,
            "GetUser" => self.get_user(call)?,
            "ListUsers" => self.list_users(call)?,
            "DeleteUser" => self.delete_user(call)?,
            "TagUser" => self.tag_principal(call, "user")?,
            "UntagUser" => self.untag_principal(call, "user")?,
            "ListUserTags" => self.list_principal_tags(call, "user")?,
            "TagRole" => self.tag_principal(call, "role")?,
            "UntagRole" => self.untag_principal(call, "role")?,
            "ListRoleTags" => self.list_principal_tags(call, "role")?,
            "CreateAccessKey" => self.create_access_key(call)?,
            "ListAccessKeys" => self.list_access_keys(call)?,
            "UpdateAccessKey" => self.update_access_key(call)?,
            "DeleteAccessKey" => self.delete_access_key(call)?,
            "PutUserPolicy" => self.put_inline_policy(call, "user")?,
            "GetUserPolicy" => self.get_inline_policy(call, "user")?,
            "ListUserPolicies" => self.list_inline_policies(call, "user")?,
            "DeleteUserPolicy" => self.delete_inline_policy(call, "user")?,
            "PutRolePolicy" => self.put_inline_policy(call, "role")?,
            "GetRolePolicy" => self.get_inline_policy(call, "role")?,
            "ListRolePolicies" => self.list_inline_policies(call, "role")?,
            "DeleteRolePolicy" => self.delete_inline_policy(call, "role")?,
            "CreatePolicy" => self.create_policy(call)?,
            "GetPolicy" => self.get_policy(call)?,
            "ListPolicies" => self.list_policies(call)?,
            "DeletePolicy" => self.delete_policy(call)?,
            "CreatePolicyVersion" => self.create_policy_version(call)?,
            "GetPolicyVersion" => self.get_policy_version(call)?,
            "ListPolicyVersions" => self.list_policy_versions(call)?,
            "DeletePolicyVersion" => self.delete_policy_version(call)?,
            "SetDefaultPolicyVersion" => self.set_default_policy_version(call)?,
            "AttachUserPolicy" => self.attach(call, "user", true)?,
            "DetachUserPolicy" => self.attach(call, "user", false)?,
            "ListAttachedUserPolicies" => self.list_attached(call, "user")?,
            "AttachRolePolicy" => self.attach(call, "role", true)?,
            "DetachRolePolicy" => self.attach(call, "role", false)?,
            "ListAttachedRolePolicies" => self.list_attached(call, "role")?,
            "CreateRole" => self.create_role(call)?,
            "GetRole" => self.get_role(call)?,
            "ListRoles" => self.list_roles(call)?,
            "DeleteRole" => self.delete_role(call)?,
            "UpdateAssumeRolePolicy" => self.update_assume_role_policy(call)?,
            "UpdateRole" => self.update_role(call)?,
            "SimulatePrincipalPolicy" => self.simulate_principal_policy(call)?,
            "PutUserPermissionsBoundary" => self.put_boundary(call, "user")?,
            "DeleteUserPermissionsBoundary" => self.delete_boundary(call, "user")?,
            "PutRolePermissionsBoundary" => self.put_boundary(call, "role")?,
            "DeleteRolePermissionsBoundary" => self.delete_boundary(call, "role")?,
            "CreateGroup" => self.create_group(call)?,
            "GetGroup" => self.get_group(call)?,
            "ListGroups" => self.list_groups(call)?,
            "DeleteGroup" => self.delete_group(call)?,
            "AddUserToGroup" => self.add_user_to_group(call)?,
            "RemoveUserFromGroup" => self.remove_user_from_group(call)?,
            "ListGroupsForUser" => self.list_groups_for_user(call)?,
            "PutGroupPolicy" => self.put_inline_policy(call, "group")?,
            "GetGroupPolicy" => self.get_inline_policy(call, "group")?,
            "ListGroupPolicies" => self.list_inline_policies(call, "group")?,
            "DeleteGroupPolicy" => self.delete_inline_policy(call, "group")?,
            "AttachGroupPolicy" => self.attach(call, "group", true)?,
            "DetachGroupPolicy" => self.attach(call, "group", false)?,
            "ListAttachedGroupPolicies" => self.list_attached(call, "group")?,
            "CreateVirtualMFADevice" => self.create_virtual_mfa_device(call)?,
            "EnableMFADevice" => self.enable_mfa_device(call)?,
            "DeactivateMFADevice" => self.deactivate_mfa_device(call)?,
            "DeleteVirtualMFADevice" => self.delete_virtual_mfa_device(call)?,
            "ListMFADevices" => self.list_mfa_devices(call)?,
            "ListVirtualMFADevices" => self.list_virtual_mfa_devices(call)?,
            "" => return Err(AwsError::unknown_operation("The request names no Action.")),
            other => {
                return Err(AwsError::unknown_operation(format!(
                    "Could not find operation {other} for version 2010-05-08"
                )));
            }
        };
        Ok(response_xml(action, IAM_XMLNS, result.as_deref(), call.request_id))
    }

    // ---- users ----

    fn create_user(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let name = required_name(call.params, "UserName", 64)?;
        check_path(call.params)?;
        let tags = tags_param(call.params)?;
        let arn = user_arn(account, name);
        let boundary = boundary_param(call.params)?;
        self.allow_with(call, "iam:CreateUser", &arn, create_keys(&tags, boundary))?;
        self.check_boundary_policy(boundary)?;
        let meta = PrincipalMeta {
            path: "/".into(),
            tags,
            permissions_boundary: boundary.map(str::to_owned),
            ..PrincipalMeta::default()
        };
        let row = self.insert_principal(call, arn, "user", name, &meta)?;
        let mut x = Xml::new();
        x.open("User");
        user_xml(&mut x, &row, &meta);
        x.close("User");
        Ok(Some(x.into_string()))
    }

    fn get_user(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let name = self.user_or_caller(call)?;
        let arn = user_arn(&call.caller.account, &name);
        self.allow(call, "iam:GetUser", &arn)?;
        let (row, meta) = self.user(&call.caller.account, &name)?;
        let mut x = Xml::new();
        x.open("User");
        user_xml(&mut x, &row, &meta);
        x.close("User");
        Ok(Some(x.into_string()))
    }

    fn list_users(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        self.allow(call, "iam:ListUsers", &format!("arn:aws:iam::{account}:user/"))?;
        let rows = db(self.store.principals(account, "user"))?;
        let (rows, next) = page(call.params, rows.into_iter().map(|r| (r.name.clone(), r)).collect())?;
        let mut x = Xml::new();
        x.open("Users");
        for row in rows {
            let meta = PrincipalMeta::parse(&row.meta);
            x.open("member");
            user_xml(&mut x, &row, &meta);
            x.close("member");
        }
        x.close("Users");
        page_end(&mut x, next);
        Ok(Some(x.into_string()))
    }

    fn delete_user(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let name = required_name(call.params, "UserName", 128)?;
        let arn = user_arn(account, name);
        self.allow(call, "iam:DeleteUser", &arn)?;
        self.user(account, name)?;
        if !db(self.store.access_keys_of(&arn))?.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must delete access keys first."));
        }
        if db(self.store.mfa_devices(account))?
            .iter()
            .any(|d| d.user_arn.as_deref() == Some(arn.as_str()))
        {
            return Err(delete_conflict("Cannot delete entity, must delete MFA device first."));
        }
        if !db(self.store.groups_of(&arn))?.is_empty() {
            return Err(delete_conflict(
                "Cannot delete entity, must remove user from all groups first.",
            ));
        }
        if !db(self.store.inline_policies(&arn))?.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must delete policies first."));
        }
        if !db(self.store.attached_policies(&arn))?.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must detach all policies first."));
        }
        match self.apply(call, vec![Write::DeletePrincipal { arn }]) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(no_such_entity(format!("The user with name {name} cannot be found."))),
            Err(e) => Err(internal(e)),
        }
    }

    fn principal_of_kind(&self, call: &Call<'_>, kind: &str) -> Result<(PrincipalRow, PrincipalMeta), AwsError> {
        match kind {
            "user" => {
                let name = required_name(call.params, "UserName", 128)?;
                self.user(&call.caller.account, name)
            }
            "group" => {
                let name = required_name(call.params, "GroupName", 128)?;
                self.group(&call.caller.account, name)
            }
            _ => {
                let name = required_name(call.params, "RoleName", 64)?;
                self.role(&call.caller.account, name)
            }
        }
    }

    fn kind_arn(&self, call: &Call<'_>, kind: &str) -> Result<String, AwsError> {
        Ok(match kind {
            "user" => user_arn(&call.caller.account, required_name(call.params, "UserName", 128)?),
            "group" => group_arn(&call.caller.account, required_name(call.params, "GroupName", 128)?),
            _ => role_arn(&call.caller.account, required_name(call.params, "RoleName", 64)?),
        })
    }

    /// `iam:PermissionsBoundary` for an action on an existing user or role:
    /// its current boundary, so that delegated administrators can be held
    /// to principals under a given boundary.
    fn boundary_keys(&self, call: &Call<'_>, kind: &str) -> ContextKeys {
        let mut keys = ContextKeys::new();
        if kind != "group"
            && let Ok((_, meta)) = self.principal_of_kind(call, kind)
            && let Some(boundary) = meta.permissions_boundary
        {
            keys.insert("iam:PermissionsBoundary", boundary);
        }
        keys
    }

    fn tag_principal(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let tags = tags_param(call.params)?;
        if tags.is_empty() {
            required(call.params, "Tags")?;
        }
        let action = if kind == "user" { "iam:TagUser" } else { "iam:TagRole" };
        self.allow_with(call, action, &arn, request_tag_keys(&tags))?;
        let (row, mut meta) = self.principal_of_kind(call, kind)?;
        merge_tags(&mut meta.tags, tags);
        if meta.tags.len() > MAX_TAGS {
            return Err(limit_exceeded("The number of tags has reached the maximum limit."));
        }
        self.apply(
            call,
            vec![Write::UpdatePrincipal {
                arn: row.arn,
                meta: meta.to_json(),
            }],
        )
        .map_err(internal)?;
        Ok(None)
    }

    fn untag_principal(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let keys = indexed(call.params, "TagKeys", None);
        if keys.is_empty() {
            required(call.params, "TagKeys")?;
        }
        let action = if kind == "user" {
            "iam:UntagUser"
        } else {
            "iam:UntagRole"
        };
        let mut context = ContextKeys::new();
        context.insert_multi("aws:TagKeys", keys.iter().cloned());
        self.allow_with(call, action, &arn, context)?;
        let (row, mut meta) = self.principal_of_kind(call, kind)?;
        meta.tags.retain(|t| !keys.contains(&t.key));
        self.apply(
            call,
            vec![Write::UpdatePrincipal {
                arn: row.arn,
                meta: meta.to_json(),
            }],
        )
        .map_err(internal)?;
        Ok(None)
    }

    fn list_principal_tags(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let action = if kind == "user" {
            "iam:ListUserTags"
        } else {
            "iam:ListRoleTags"
        };
        self.allow(call, action, &arn)?;
        let (_, meta) = self.principal_of_kind(call, kind)?;
        let mut x = Xml::new();
        tags_xml(&mut x, &meta.tags);
        x.field("IsTruncated", "false");
        Ok(Some(x.into_string()))
    }

    // ---- access keys ----

    fn create_access_key(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let name = self.user_or_caller(call)?;
        let arn = user_arn(&call.caller.account, &name);
        self.allow(call, "iam:CreateAccessKey", &arn)?;
        self.user(&call.caller.account, &name)?;
        if db(self.store.access_keys_of(&arn))?.len() >= MAX_ACCESS_KEYS {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}"
            )));
        }
        let access_key_id = new_access_key_id()?;
        let secret = new_secret_access_key()?;
        let now = call.request.now.as_millisecond();
        let sealed = self
            .kek
            .seal(secret.expose().as_bytes(), access_key_id.as_bytes())
            .map_err(internal)?;
        self.apply(
            call,
            vec![Write::CreateAccessKey(AccessKeyRow {
                access_key_id: access_key_id.clone(),
                principal_arn: arn,
                status: "Active".into(),
                sealed_secret: sealed,
                created_ms: now,
            })],
        )
        .map_err(internal)?;
        let mut x = Xml::new();
        x.open("AccessKey")
            .field("UserName", &name)
            .field("AccessKeyId", &access_key_id)
            .field("Status", "Active")
            .field("SecretAccessKey", secret.expose())
            .field("CreateDate", &iso(now))
            .close("AccessKey");
        Ok(Some(x.into_string()))
    }

    fn list_access_keys(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let name = self.user_or_caller(call)?;
        let arn = user_arn(&call.caller.account, &name);
        self.allow(call, "iam:ListAccessKeys", &arn)?;
        self.user(&call.caller.account, &name)?;
        let mut x = Xml::new();
        x.open("AccessKeyMetadata");
        for k in db(self.store.access_keys_of(&arn))? {
            x.open("member")
                .field("UserName", &name)
                .field("AccessKeyId", &k.access_key_id)
                .field("Status", &k.status)
                .field("CreateDate", &iso(k.created_ms))
                .close("member");
        }
        x.close("AccessKeyMetadata").field("IsTruncated", "false");
        Ok(Some(x.into_string()))
    }

    /// The user's key named by `AccessKeyId`.
    fn users_key(&self, call: &Call<'_>, action: &str) -> Result<AccessKeyRow, AwsError> {
        let name = self.user_or_caller(call)?;
        let key_id = required(call.params, "AccessKeyId")?;
        let arn = user_arn(&call.caller.account, &name);
        self.allow(call, action, &arn)?;
        self.user(&call.caller.account, &name)?;
        match db(self.store.access_key(key_id))? {
            Some(k) if k.principal_arn == arn => Ok(k),
            _ => Err(no_such_entity(format!(
                "The Access Key with id {key_id} cannot be found."
            ))),
        }
    }

    fn update_access_key(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let status = required(call.params, "Status")?;
        if status != "Active" && status != "Inactive" {
            return Err(validation(
                "status",
                status,
                "Member must satisfy enum value set: [Active, Inactive]",
            ));
        }
        let key = self.users_key(call, "iam:UpdateAccessKey")?;
        self.apply(
            call,
            vec![Write::SetAccessKeyStatus {
                access_key_id: key.access_key_id,
                status: status.into(),
            }],
        )
        .map_err(internal)?;
        Ok(None)
    }

    fn delete_access_key(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let key = self.users_key(call, "iam:DeleteAccessKey")?;
        self.apply(
            call,
            vec![Write::DeleteAccessKey {
                access_key_id: key.access_key_id,
            }],
        )
        .map_err(internal)?;
        Ok(None)
    }

    // ---- inline policies ----

    fn inline_action(kind: &str, verb: &str) -> String {
        let noun = noun(kind);
        match verb {
            "List" => format!("iam:List{noun}Policies"),
            _ => format!("iam:{verb}{noun}Policy"),
        }
    }

    fn put_inline_policy(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let policy_name = required_name(call.params, "PolicyName", 128)?;
        let document = required(call.params, "PolicyDocument")?;
        self.allow_with(
            call,
            &Self::inline_action(kind, "Put"),
            &arn,
            self.boundary_keys(call, kind),
        )?;
        let limit = match kind {
            "user" => USER_INLINE_POLICY_SIZE,
            "group" => GROUP_INLINE_POLICY_SIZE,
            _ => ROLE_INLINE_POLICY_SIZE,
        };
        check_policy("PolicyDocument", document, PolicyKind::Identity, limit)?;
        let (row, _) = self.principal_of_kind(call, kind)?;
        // IAM's quota is on all of a principal's inline policies together.
        let packed = |d: &str| d.chars().filter(|c| !c.is_whitespace()).count();
        let others: usize = db(self.store.inline_policies(&row.arn))?
            .iter()
            .filter(|(n, _)| n != policy_name)
            .map(|(_, d)| packed(d))
            .sum();
        if others + packed(document) > limit {
            return Err(limit_exceeded(format!(
                "Maximum policy size of {limit} bytes exceeded for {kind} {}",
                row.name
            )));
        }
        self.apply(
            call,
            vec![Write::PutInlinePolicy {
                principal_arn: row.arn,
                name: policy_name.into(),
                document: document.into(),
            }],
        )
        .map_err(internal)?;
        Ok(None)
    }

    fn inline_not_found(kind: &str, policy: &str) -> AwsError {
        no_such_entity(format!("The {kind} policy with name {policy} cannot be found."))
    }

    fn get_inline_policy(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let policy_name = required_name(call.params, "PolicyName", 128)?;
        self.allow(call, &Self::inline_action(kind, "Get"), &arn)?;
        let (row, _) = self.principal_of_kind(call, kind)?;
        let document = db(self.store.inline_policies(&row.arn))?
            .into_iter()
            .find(|(n, _)| n == policy_name)
            .map(|(_, d)| d)
            .ok_or_else(|| Self::inline_not_found(kind, policy_name))?;
        let mut x = Xml::new();
        x.field(&format!("{}Name", noun(kind)), &row.name)
            .field("PolicyName", policy_name)
            .field("PolicyDocument", &url_encode(&document));
        Ok(Some(x.into_string()))
    }

    fn list_inline_policies(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        self.allow(call, &Self::inline_action(kind, "List"), &arn)?;
        let (row, _) = self.principal_of_kind(call, kind)?;
        let mut x = Xml::new();
        x.open("PolicyNames");
        for (name, _) in db(self.store.inline_policies(&row.arn))? {
            x.field("member", &name);
        }
        x.close("PolicyNames").field("IsTruncated", "false");
        Ok(Some(x.into_string()))
    }

    fn delete_inline_policy(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let policy_name = required_name(call.params, "PolicyName", 128)?;
        self.allow_with(
            call,
            &Self::inline_action(kind, "Delete"),
            &arn,
            self.boundary_keys(call, kind),
        )?;
        let (row, _) = self.principal_of_kind(call, kind)?;
        match self.apply(
            call,
            vec![Write::DeleteInlinePolicy {
                principal_arn: row.arn.clone(),
                name: policy_name.into(),
            }],
        ) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(Self::inline_not_found(kind, policy_name)),
            Err(e) => Err(internal(e)),
        }
    }

    // ---- managed policies ----

    fn policy_arn_param<'p>(call: &'p Call<'_>) -> Result<&'p str, AwsError> {
        let arn = required(call.params, "PolicyArn")?;
        if arn.len() < 20 || !arn.starts_with("arn:") {
            return Err(invalid_input(format!("ARN {arn} is not valid.")));
        }
        Ok(arn)
    }

    fn create_policy(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let name = required_name(call.params, "PolicyName", 128)?;
        let document = required(call.params, "PolicyDocument")?;
        check_path(call.params)?;
        let description = call.params.get("Description").cloned();
        if description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
            return Err(validation(
                "description",
                "...",
                "Member must have length less than or equal to 1000",
            ));
        }
        let arn = format!("arn:aws:iam::{account}:policy/{name}");
        self.allow(call, "iam:CreatePolicy", &arn)?;
        check_policy("PolicyDocument", document, PolicyKind::Identity, MANAGED_POLICY_SIZE)?;
        let now = call.request.now.as_millisecond();
        let meta = ManagedPolicyMeta {
            path: "/".into(),
            default_version_id: "v1".into(),
            next_version: 2,
            description,
        };
        let row = ManagedPolicyRow {
            arn: arn.clone(),
            account: account.clone(),
            name: name.into(),
            policy_id: format!("ANPA{}", random_from(ID_ALPHABET, 17)?),
            created_ms: now,
            updated_ms: now,
            meta: serde_json::to_string(&meta).map_err(internal)?,
        };
        let version = PolicyVersionRow {
            version_id: "v1".into(),
            document: document.into(),
            created_ms: now,
        };
        match self.apply(
            call,
            vec![Write::CreateManagedPolicy {
                row: row.clone(),
                version,
            }],
        ) {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                return Err(already_exists(format!(
                    "A policy called {name} already exists. Duplicate names are not allowed."
                )));
            }
            Err(e) => return Err(internal(e)),
        }
        let view = self.policy(&arn)?;
        let mut x = Xml::new();
        x.open("Policy");
        policy_xml(&mut x, &view, PolicyUse::default());
        x.close("Policy");
        Ok(Some(x.into_string()))
    }

    fn get_policy(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        self.allow(call, "iam:GetPolicy", arn)?;
        let view = self.policy(arn)?;
        let mut x = Xml::new();
        x.open("Policy");
        let uses = PolicyUse {
            attachments: db(self.store.attachment_count(arn))?,
            boundaries: self.boundary_uses(&call.caller.account)?.remove(arn).unwrap_or(0),
        };
        policy_xml(&mut x, &view, uses);
        x.close("Policy");
        Ok(Some(x.into_string()))
    }

    fn list_policies(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let scope = call.params.get("Scope").map(String::as_str).unwrap_or("All");
        if !["All", "AWS", "Local"].contains(&scope) {
            return Err(validation(
                "scope",
                scope,
                "Member must satisfy enum value set: [All, AWS, Local]",
            ));
        }
        let only_attached = bool_param(call.params, "OnlyAttached");
        self.allow(call, "iam:ListPolicies", &format!("arn:aws:iam::{account}:policy/"))?;
        let mut views = Vec::new();
        if scope != "Local" {
            for (name, _, _) in AWS_MANAGED {
                views.push(self.policy(&format!("arn:aws:iam::aws:policy/{name}"))?);
            }
        }
        if scope != "AWS" {
            for row in db(self.store.managed_policies(account))? {
                views.push(self.policy(&row.arn)?);
            }
        }
        let boundaries = self.boundary_uses(account)?;
        let mut listed = Vec::new();
        for v in views {
            let uses = PolicyUse {
                attachments: db(self.store.attachment_count(&v.arn))?,
                boundaries: boundaries.get(&v.arn).copied().unwrap_or(0),
            };
            if !only_attached || uses.attachments > 0 {
                listed.push((v.arn.clone(), (v, uses)));
            }
        }
        let (listed, next) = page(call.params, listed)?;
        let mut x = Xml::new();
        x.open("Policies");
        for (v, uses) in &listed {
            x.open("member");
            policy_xml(&mut x, v, *uses);
            x.close("member");
        }
        x.close("Policies");
        page_end(&mut x, next);
        Ok(Some(x.into_string()))
    }

    /// A customer-managed policy, for the actions that change one.
    fn customer_policy(&self, arn: &str) -> Result<(ManagedPolicyRow, ManagedPolicyMeta), AwsError> {
        let view = self.policy(arn)?;
        view.row
            .ok_or_else(|| invalid_input(format!("Policy {arn} is an AWS managed policy and cannot be changed.")))
    }

    fn delete_policy(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        self.allow(call, "iam:DeletePolicy", arn)?;
        let _ = self.customer_policy(arn)?;
        if db(self.store.attachment_count(arn))? > 0 || self.boundary_uses(&call.caller.account)?.contains_key(arn) {
            return Err(delete_conflict("Cannot delete a policy attached to entities."));
        }
        if db(self.store.policy_versions(arn))?.len() > 1 {
            return Err(delete_conflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
            ));
        }
        self.apply(call, vec![Write::DeleteManagedPolicy { arn: arn.into() }])
            .map_err(internal)?;
        Ok(None)
    }

    fn create_policy_version(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        let document = required(call.params, "PolicyDocument")?;
        let set_default = bool_param(call.params, "SetAsDefault");
        self.allow(call, "iam:CreatePolicyVersion", arn)?;
        let (mut row, mut meta) = self.customer_policy(arn)?;
        check_policy("PolicyDocument", document, PolicyKind::Identity, MANAGED_POLICY_SIZE)?;
        if db(self.store.policy_versions(arn))?.len() >= MAX_POLICY_VERSIONS {
            return Err(limit_exceeded(format!(
                "A managed policy can have up to {MAX_POLICY_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            )));
        }
        let now = call.request.now.as_millisecond();
        let version_id = format!("v{}", meta.next_version);
        meta.next_version += 1;
        if set_default {
            meta.default_version_id = version_id.clone();
        }
        row.updated_ms = now;
        row.meta = serde_json::to_string(&meta).map_err(internal)?;
        self.apply(
            call,
            vec![
                Write::PutPolicyVersion {
                    policy_arn: arn.into(),
                    version: PolicyVersionRow {
                        version_id: version_id.clone(),
                        document: document.into(),
                        created_ms: now,
                    },
                },
                Write::UpdateManagedPolicy(row),
            ],
        )
        .map_err(internal)?;
        let mut x = Xml::new();
        x.open("PolicyVersion")
            .field("VersionId", &version_id)
            .field("IsDefaultVersion", if set_default { "true" } else { "false" })
            .field("CreateDate", &iso(now))
            .close("PolicyVersion");
        Ok(Some(x.into_string()))
    }

    fn versions(&self, view: &PolicyView) -> Result<Vec<PolicyVersionRow>, AwsError> {
        if view.row.is_none() {
            let (_, _, document) = aws_managed(&view.arn).unwrap_or_default();
            return Ok(vec![PolicyVersionRow {
                version_id: "v1".into(),
                document: document.into(),
                created_ms: AWS_POLICY_CREATED_MS,
            }]);
        }
        db(self.store.policy_versions(&view.arn))
    }

    fn version_id_param<'p>(call: &'p Call<'_>) -> Result<&'p str, AwsError> {
        let v = required(call.params, "VersionId")?;
        let digits = v.strip_prefix('v').unwrap_or_default();
        if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(validation(
                "versionId",
                v,
                "Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?",
            ));
        }
        Ok(v)
    }

    fn version_not_found(arn: &str, version: &str) -> AwsError {
        no_such_entity(format!(
            "Policy {arn} version {version} does not exist or is not attachable."
        ))
    }

    fn get_policy_version(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        let version_id = Self::version_id_param(call)?;
        self.allow(call, "iam:GetPolicyVersion", arn)?;
        let view = self.policy(arn)?;
        let v = self
            .versions(&view)?
            .into_iter()
            .find(|v| v.version_id == version_id)
            .ok_or_else(|| Self::version_not_found(arn, version_id))?;
        let mut x = Xml::new();
        x.open("PolicyVersion")
            .field("Document", &url_encode(&v.document))
            .field("VersionId", &v.version_id)
            .field(
                "IsDefaultVersion",
                if v.version_id == view.default_version {
                    "true"
                } else {
                    "false"
                },
            )
            .field("CreateDate", &iso(v.created_ms))
            .close("PolicyVersion");
        Ok(Some(x.into_string()))
    }

    fn list_policy_versions(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        self.allow(call, "iam:ListPolicyVersions", arn)?;
        let view = self.policy(arn)?;
        let mut versions = self.versions(&view)?;
        // Newest first, as IAM lists them.
        versions.reverse();
        let mut x = Xml::new();
        x.open("Versions");
        for v in versions {
            x.open("member")
                .field("VersionId", &v.version_id)
                .field(
                    "IsDefaultVersion",
                    if v.version_id == view.default_version {
                        "true"
                    } else {
                        "false"
                    },
                )
                .field("CreateDate", &iso(v.created_ms))
                .close("member");
        }
        x.close("Versions").field("IsTruncated", "false");
        Ok(Some(x.into_string()))
    }

    fn delete_policy_version(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        let version_id = Self::version_id_param(call)?;
        self.allow(call, "iam:DeletePolicyVersion", arn)?;
        let (_, meta) = self.customer_policy(arn)?;
        if meta.default_version_id == version_id {
            return Err(delete_conflict("Cannot delete the default version of a policy."));
        }
        match self.apply(
            call,
            vec![Write::DeletePolicyVersion {
                policy_arn: arn.into(),
                version_id: version_id.into(),
            }],
        ) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(Self::version_not_found(arn, version_id)),
            Err(e) => Err(internal(e)),
        }
    }

    fn set_default_policy_version(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = Self::policy_arn_param(call)?;
        let version_id = Self::version_id_param(call)?;
        self.allow(call, "iam:SetDefaultPolicyVersion", arn)?;
        let (mut row, mut meta) = self.customer_policy(arn)?;
        if !db(self.store.policy_versions(arn))?
            .iter()
            .any(|v| v.version_id == version_id)
        {
            return Err(Self::version_not_found(arn, version_id));
        }
        meta.default_version_id = version_id.into();
        row.updated_ms = call.request.now.as_millisecond();
        row.meta = serde_json::to_string(&meta).map_err(internal)?;
        self.apply(call, vec![Write::UpdateManagedPolicy(row)])
            .map_err(internal)?;
        Ok(None)
    }

    fn attach(&self, call: &Call<'_>, kind: &str, attach: bool) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let policy_arn = Self::policy_arn_param(call)?;
        let noun = noun(kind);
        let action = if attach {
            format!("iam:Attach{noun}Policy")
        } else {
            format!("iam:Detach{noun}Policy")
        };
        let mut keys = self.boundary_keys(call, kind);
        keys.insert("iam:PolicyARN", policy_arn);
        self.allow_with(call, &action, &arn, keys)?;
        let (row, _) = self.principal_of_kind(call, kind)?;
        self.policy(policy_arn)?;
        let write = if attach {
            Write::AttachPolicy {
                principal_arn: row.arn,
                policy_arn: policy_arn.into(),
            }
        } else {
            Write::DetachPolicy {
                principal_arn: row.arn,
                policy_arn: policy_arn.into(),
            }
        };
        match self.apply(call, vec![write]) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(no_such_entity(format!("Policy {policy_arn} was not found."))),
            Err(e) => Err(internal(e)),
        }
    }

    fn list_attached(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        self.allow(call, &format!("iam:ListAttached{}Policies", noun(kind)), &arn)?;
        let (row, _) = self.principal_of_kind(call, kind)?;
        let mut x = Xml::new();
        x.open("AttachedPolicies");
        for policy_arn in db(self.store.attached_policies(&row.arn))? {
            let name = policy_arn.rsplit('/').next().unwrap_or_default().to_owned();
            x.open("member")
                .field("PolicyName", &name)
                .field("PolicyArn", &policy_arn)
                .close("member");
        }
        x.close("AttachedPolicies").field("IsTruncated", "false");
        Ok(Some(x.into_string()))
    }

    // ---- simulation ----

    fn simulate_principal_policy(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let source = required(call.params, "PolicySourceArn")?;
        self.allow(call, "iam:SimulatePrincipalPolicy", source)?;
        let actions = indexed(call.params, "ActionNames", None);
        if actions.is_empty() {
            return Err(validation("actionNames", "null", "Member must not be null"));
        }
        let mut context = Vec::new();
        for i in 1.. {
            let Some(key) = call.params.get(&format!("ContextEntries.member.{i}.ContextKeyName")) else {
                break;
            };
            context.push(crate::ContextEntry {
                key: key.clone(),
                values: indexed(
                    call.params,
                    &format!("ContextEntries.member.{i}.ContextKeyValues"),
                    None,
                ),
            });
        }
        let results = self.simulate_principal(&crate::SimulationRequest {
            principal_arn: source.to_owned(),
            actions,
            resources: indexed(call.params, "ResourceArns", None),
            context,
            resource_policy: call.params.get("ResourcePolicy").cloned(),
        })?;
        let mut x = Xml::new();
        x.open("EvaluationResults");
        for r in &results {
            x.open("member")
                .field("EvalActionName", &r.action)
                .field("EvalResourceName", &r.resource)
                .field("EvalDecision", r.decision)
                .open("MatchedStatements");
            for m in &r.matched {
                x.open("member")
                    .field("SourcePolicyId", &m.source_policy_id)
                    .field("SourcePolicyType", m.source_policy_type)
                    .close("member");
            }
            x.close("MatchedStatements").open("MissingContextValues");
            for k in &r.missing_context_values {
                x.field("member", k);
            }
            x.close("MissingContextValues").close("member");
        }
        x.close("EvaluationResults").field("IsTruncated", "false");
        Ok(Some(x.into_string()))
    }

    // ---- roles ----

    fn create_role(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let name = required_name(call.params, "RoleName", 64)?;
        let trust = required(call.params, "AssumeRolePolicyDocument")?;
        check_path(call.params)?;
        let max_session = int_param(call.params, "MaxSessionDuration", 3600, 43200)?.unwrap_or(3600);
        let description = call.params.get("Description").cloned();
        if description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
            return Err(validation(
                "description",
                "...",
                "Member must have length less than or equal to 1000",
            ));
        }
        let tags = tags_param(call.params)?;
        let arn = role_arn(account, name);
        let boundary = boundary_param(call.params)?;
        self.allow_with(call, "iam:CreateRole", &arn, create_keys(&tags, boundary))?;
        check_policy("AssumeRolePolicyDocument", trust, PolicyKind::Trust, TRUST_POLICY_SIZE)?;
        self.check_boundary_policy(boundary)?;
        let meta = PrincipalMeta {
            path: "/".into(),
            tags,
            assume_role_policy_document: Some(trust.into()),
            max_session_duration: Some(max_session),
            description,
            bootstrap: None,
            permissions_boundary: boundary.map(str::to_owned),
        };
        let row = self.insert_principal(call, arn, "role", name, &meta)?;
        let mut x = Xml::new();
        x.open("Role");
        role_xml(&mut x, &row, &meta);
        x.close("Role");
        Ok(Some(x.into_string()))
    }

    fn get_role(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "role")?;
        self.allow(call, "iam:GetRole", &arn)?;
        let (row, meta) = self.principal_of_kind(call, "role")?;
        let mut x = Xml::new();
        x.open("Role");
        role_xml(&mut x, &row, &meta);
        x.close("Role");
        Ok(Some(x.into_string()))
    }

    fn list_roles(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        self.allow(call, "iam:ListRoles", &format!("arn:aws:iam::{account}:role/"))?;
        let rows = db(self.store.principals(account, "role"))?;
        let (rows, next) = page(call.params, rows.into_iter().map(|r| (r.name.clone(), r)).collect())?;
        let mut x = Xml::new();
        x.open("Roles");
        for row in rows {
            let meta = PrincipalMeta::parse(&row.meta);
            x.open("member");
            role_xml(&mut x, &row, &meta);
            x.close("member");
        }
        x.close("Roles");
        page_end(&mut x, next);
        Ok(Some(x.into_string()))
    }

    fn delete_role(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "role")?;
        self.allow(call, "iam:DeleteRole", &arn)?;
        let (row, _) = self.principal_of_kind(call, "role")?;
        if !db(self.store.inline_policies(&arn))?.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must delete policies first."));
        }
        if !db(self.store.attached_policies(&arn))?.is_empty() {
            return Err(delete_conflict("Cannot delete entity, must detach all policies first."));
        }
        match self.apply(call, vec![Write::DeletePrincipal { arn }]) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(no_such_entity(format!(
                "The role with name {} cannot be found.",
                row.name
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    fn update_assume_role_policy(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "role")?;
        let trust = required(call.params, "PolicyDocument")?;
        self.allow(call, "iam:UpdateAssumeRolePolicy", &arn)?;
        let (row, mut meta) = self.principal_of_kind(call, "role")?;
        check_policy("PolicyDocument", trust, PolicyKind::Trust, TRUST_POLICY_SIZE)?;
        meta.assume_role_policy_document = Some(trust.into());
        self.apply(
            call,
            vec![Write::UpdatePrincipal {
                arn: row.arn,
                meta: meta.to_json(),
            }],
        )
        .map_err(internal)?;
        Ok(None)
    }

    fn update_role(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "role")?;
        let max_session = int_param(call.params, "MaxSessionDuration", 3600, 43200)?;
        let description = call.params.get("Description").cloned();
        self.allow(call, "iam:UpdateRole", &arn)?;
        let (row, mut meta) = self.principal_of_kind(call, "role")?;
        if let Some(m) = max_session {
            meta.max_session_duration = Some(m);
        }
        if let Some(d) = description {
            meta.description = Some(d);
        }
        self.apply(
            call,
            vec![Write::UpdatePrincipal {
                arn: row.arn,
                meta: meta.to_json(),
            }],
        )
        .map_err(internal)?;
        Ok(Some(String::new()))
    }
}

fn group_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:group/{name}")
}

/// A principal kind as IAM's action and parameter names spell it.
fn noun(kind: &str) -> &'static str {
    match kind {
        "user" => "User",
        "group" => "Group",
        _ => "Role",
    }
}

fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}
