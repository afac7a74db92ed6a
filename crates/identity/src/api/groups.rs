//! IAM groups (their users; their policies go through the same inline and
//! attached-policy handlers as users' and roles') and permissions
//! boundaries of users and roles.

use std::collections::HashMap;

use tumbler_iam::ContextKeys;
use tumbler_store::{PrincipalRow, StoreError, Write};
use tumbler_wire::AwsError;
use tumbler_wire::query::Xml;

use super::{
    Call, check_path, db, delete_conflict, group_arn, group_xml, internal, no_such_entity, noun, page, page_end,
    required, required_name, user_arn, user_xml,
};
use crate::Identity;
use crate::authz::PrincipalMeta;

impl Identity {
    pub(super) fn create_group(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        let name = required_name(call.params, "GroupName", 128)?;
        check_path(call.params)?;
        let arn = group_arn(account, name);
        self.allow(call, "iam:CreateGroup", &arn)?;
        let meta = PrincipalMeta {
            path: "/".into(),
            ..PrincipalMeta::default()
        };
        let row = self.insert_principal(call, arn, "group", name, &meta)?;
        let mut x = Xml::new();
        x.open("Group");
        group_xml(&mut x, &row, &meta);
        x.close("Group");
        Ok(Some(x.into_string()))
    }

    pub(super) fn get_group(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "group")?;
        self.allow(call, "iam:GetGroup", &arn)?;
        let (row, meta) = self.principal_of_kind(call, "group")?;
        let users = self.principals_named(db(self.store.group_members(&row.arn))?)?;
        let (users, next) = page(call.params, users)?;
        let mut x = Xml::new();
        x.open("Group");
        group_xml(&mut x, &row, &meta);
        x.close("Group").open("Users");
        for u in &users {
            x.open("member");
            user_xml(&mut x, u, &PrincipalMeta::parse(&u.meta));
            x.close("member");
        }
        x.close("Users");
        page_end(&mut x, next);
        Ok(Some(x.into_string()))
    }

    pub(super) fn list_groups(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let account = &call.caller.account;
        self.allow(call, "iam:ListGroups", &format!("arn:aws:iam::{account}:group/"))?;
        let rows = db(self.store.principals(account, "group"))?;
        groups_page(call, rows.into_iter().map(|r| (r.name.clone(), r)).collect())
    }

    pub(super) fn list_groups_for_user(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "user")?;
        self.allow(call, "iam:ListGroupsForUser", &arn)?;
        let (user, _) = self.principal_of_kind(call, "user")?;
        groups_page(call, self.principals_named(db(self.store.groups_of(&user.arn))?)?)
    }

    pub(super) fn delete_group(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, "group")?;
        self.allow(call, "iam:DeleteGroup", &arn)?;
        let (row, _) = self.principal_of_kind(call, "group")?;
        if !db(self.store.group_members(&arn))?.is_empty() {
            return Err(delete_conflict(
                "Cannot delete entity, must remove users from group first.",
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
            Err(StoreError::NotFound) => Err(no_such_entity(format!(
                "The group with name {} cannot be found.",
                row.name
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    /// AddUserToGroup and RemoveUserFromGroup: both are authorized on the group.
    fn membership(&self, call: &Call<'_>, add: bool) -> Result<Option<String>, AwsError> {
        let group = self.kind_arn(call, "group")?;
        let user_name = required_name(call.params, "UserName", 128)?;
        let action = if add {
            "iam:AddUserToGroup"
        } else {
            "iam:RemoveUserFromGroup"
        };
        self.allow(call, action, &group)?;
        let (group_row, _) = self.principal_of_kind(call, "group")?;
        let (user, _) = self.user(&call.caller.account, user_name)?;
        debug_assert_eq!(user.arn, user_arn(&call.caller.account, user_name));
        let write = if add {
            Write::AddGroupMember {
                group_arn: group_row.arn,
                user_arn: user.arn,
            }
        } else {
            Write::RemoveGroupMember {
                group_arn: group_row.arn,
                user_arn: user.arn,
            }
        };
        match self.apply(call, vec![write]) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) if add => Err(no_such_entity(format!(
                "The user with name {user_name} cannot be found."
            ))),
            Err(StoreError::NotFound) => Err(no_such_entity(format!(
                "User {user_name} is not in group {}.",
                group_row.name
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    pub(super) fn add_user_to_group(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        self.membership(call, true)
    }

    pub(super) fn remove_user_from_group(&self, call: &Call<'_>) -> Result<Option<String>, AwsError> {
        self.membership(call, false)
    }

    // ---- permissions boundaries ----

    /// A boundary must name a managed policy that exists.
    pub(super) fn check_boundary_policy(&self, boundary: Option<&str>) -> Result<(), AwsError> {
        if let Some(arn) = boundary {
            self.policy(arn)?;
        }
        Ok(())
    }

    /// How many users and roles of the account use each policy as their boundary.
    pub(super) fn boundary_uses(&self, account: &str) -> Result<HashMap<String, i64>, AwsError> {
        let mut uses = HashMap::new();
        for kind in ["user", "role"] {
            for row in db(self.store.principals(account, kind))? {
                if let Some(b) = PrincipalMeta::parse(&row.meta).permissions_boundary {
                    *uses.entry(b).or_insert(0) += 1;
                }
            }
        }
        Ok(uses)
    }

    pub(super) fn put_boundary(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        let boundary = match super::boundary_param(call.params)? {
            Some(b) => b,
            None => required(call.params, "PermissionsBoundary")?,
        };
        let mut keys = ContextKeys::new();
        keys.insert("iam:PermissionsBoundary", boundary);
        self.allow_with(call, &format!("iam:Put{}PermissionsBoundary", noun(kind)), &arn, keys)?;
        let (row, mut meta) = self.principal_of_kind(call, kind)?;
        self.check_boundary_policy(Some(boundary))?;
        meta.permissions_boundary = Some(boundary.to_owned());
        self.update_meta(call, row, &meta)
    }

    pub(super) fn delete_boundary(&self, call: &Call<'_>, kind: &str) -> Result<Option<String>, AwsError> {
        let arn = self.kind_arn(call, kind)?;
        self.allow_with(
            call,
            &format!("iam:Delete{}PermissionsBoundary", noun(kind)),
            &arn,
            self.boundary_keys(call, kind),
        )?;
        let (row, mut meta) = self.principal_of_kind(call, kind)?;
        if meta.permissions_boundary.take().is_none() {
            return Ok(None);
        }
        self.update_meta(call, row, &meta)
    }

    fn update_meta(
        &self,
        call: &Call<'_>,
        row: PrincipalRow,
        meta: &PrincipalMeta,
    ) -> Result<Option<String>, AwsError> {
        match self.apply(
            call,
            vec![Write::UpdatePrincipal {
                arn: row.arn,
                meta: meta.to_json(),
            }],
        ) {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound) => Err(no_such_entity(format!("The entity {} cannot be found.", row.name))),
            Err(e) => Err(internal(e)),
        }
    }
}

fn groups_page(call: &Call<'_>, groups: Vec<(String, PrincipalRow)>) -> Result<Option<String>, AwsError> {
    let (groups, next) = page(call.params, groups)?;
    let mut x = Xml::new();
    x.open("Groups");
    for g in &groups {
        x.open("member");
        group_xml(&mut x, g, &PrincipalMeta::parse(&g.meta));
        x.close("member");
    }
    x.close("Groups");
    page_end(&mut x, next);
    Ok(Some(x.into_string()))
}
