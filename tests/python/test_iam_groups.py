"""IAM groups and permissions boundaries against the real server with boto3:
a group's policies reach its users and stop when they leave; a boundary caps
what identity policies grant, shows in GetUser/GetRole and GetPolicy, blocks
deleting its policy, and lets a delegated administrator create only users
under it."""

from __future__ import annotations

import json

import pytest

from conftest import ACCOUNT, make_client, raises_aws

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


def user_with_key(server, iam, uniq, service="secretsmanager", **create):
    name = uniq("gu")
    arn = iam.create_user(UserName=name, **create)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    client = make_client(server, service=service, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    return name, arn, client


def test_group_lifecycle_and_membership(iam, uniq):
    group = uniq("g")
    created = iam.create_group(GroupName=group)["Group"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/{group}"
    assert created["GroupId"].startswith("AGPA") and created["Path"] == "/"
    with raises_aws("EntityAlreadyExists", status=409, match=f"Group with name {group} already exists"):
        iam.create_group(GroupName=group)
    assert group in [g["GroupName"] for g in iam.list_groups()["Groups"]]

    alice, bob = uniq("alice"), uniq("bob")
    for u in (alice, bob):
        iam.create_user(UserName=u)
        iam.add_user_to_group(GroupName=group, UserName=u)
    iam.add_user_to_group(GroupName=group, UserName=alice)  # again: no change
    got = iam.get_group(GroupName=group)
    assert got["Group"]["GroupName"] == group
    assert sorted(u["UserName"] for u in got["Users"]) == sorted([alice, bob])
    first = iam.get_group(GroupName=group, MaxItems=1)
    assert len(first["Users"]) == 1 and first["IsTruncated"]
    rest = iam.get_group(GroupName=group, Marker=first["Marker"])
    assert len(rest["Users"]) == 1 and not rest["IsTruncated"]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=alice)["Groups"]] == [group]

    with raises_aws("DeleteConflict", status=409, message="Cannot delete entity, must remove users from group first."):
        iam.delete_group(GroupName=group)
    with raises_aws("DeleteConflict", status=409, match="must remove user from all groups first"):
        iam.delete_user(UserName=alice)
    with raises_aws("NoSuchEntity", status=404, match="cannot be found"):
        iam.add_user_to_group(GroupName=group, UserName=uniq("nobody"))
    with raises_aws("NoSuchEntity", status=404, match="The group with name .* cannot be found"):
        iam.add_user_to_group(GroupName=uniq("nogroup"), UserName=alice)

    iam.remove_user_from_group(GroupName=group, UserName=alice)
    with raises_aws("NoSuchEntity", status=404, match=f"User {alice} is not in group {group}"):
        iam.remove_user_from_group(GroupName=group, UserName=alice)
    iam.delete_user(UserName=alice)
    assert [u["UserName"] for u in iam.get_group(GroupName=group)["Users"]] == [bob]
    iam.remove_user_from_group(GroupName=group, UserName=bob)
    assert iam.get_group(GroupName=group)["Users"] == []

    iam.put_group_policy(GroupName=group, PolicyName="p", PolicyDocument=doc(allow("secretsmanager:ListSecrets")))
    with raises_aws("DeleteConflict", status=409, message="Cannot delete entity, must delete policies first."):
        iam.delete_group(GroupName=group)
    iam.delete_group_policy(GroupName=group, PolicyName="p")
    iam.delete_group(GroupName=group)
    with raises_aws("NoSuchEntity", status=404, message=f"The group with name {group} cannot be found."):
        iam.get_group(GroupName=group)


def test_group_policies_reach_members_until_they_leave(server, iam, sm, uniq):
    secret = uniq("grp/db")
    arn = sm.create_secret(Name=secret, SecretString="s3cr3t")["ARN"]
    name, me, client = user_with_key(server, iam, uniq)
    action = "secretsmanager:GetSecretValue"
    with raises_aws("AccessDeniedException", match="because no identity-based policy allows"):
        client.get_secret_value(SecretId=arn)

    group = uniq("readers")
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="read", PolicyDocument=doc(allow(action, arn)))
    assert iam.get_group_policy(GroupName=group, PolicyName="read")["GroupName"] == group
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == ["read"]
    iam.add_user_to_group(GroupName=group, UserName=name)
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "s3cr3t"

    # A second group's explicit deny wins over the first group's allow.
    deniers = uniq("deniers")
    iam.create_group(GroupName=deniers)
    iam.put_group_policy(
        GroupName=deniers, PolicyName="no", PolicyDocument=doc({"Effect": "Deny", "Action": action, "Resource": "*"})
    )
    iam.add_user_to_group(GroupName=deniers, UserName=name)
    with raises_aws("AccessDeniedException", match="with an explicit deny in an identity-based policy"):
        client.get_secret_value(SecretId=arn)
    iam.remove_user_from_group(GroupName=deniers, UserName=name)
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "s3cr3t"

    # Managed policies attached to the group count too.
    iam.delete_group_policy(GroupName=group, PolicyName="read")
    with raises_aws("AccessDeniedException"):
        client.get_secret_value(SecretId=arn)
    policy = iam.create_policy(PolicyName=uniq("grp-read"), PolicyDocument=doc(allow(action, arn)))["Policy"]["Arn"]
    iam.attach_group_policy(GroupName=group, PolicyArn=policy)
    assert iam.list_attached_group_policies(GroupName=group)["AttachedPolicies"][0]["PolicyArn"] == policy
    assert iam.get_policy(PolicyArn=policy)["Policy"]["AttachmentCount"] == 1
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "s3cr3t"
    simulated = iam.simulate_principal_policy(PolicySourceArn=me, ActionNames=[action], ResourceArns=[arn])
    result = simulated["EvaluationResults"][0]
    assert result["EvalDecision"] == "allowed"
    assert [(m["SourcePolicyId"], m["SourcePolicyType"]) for m in result["MatchedStatements"]] == [
        (policy, "user-managed")
    ]

    # Leaving the group ends it.
    iam.remove_user_from_group(GroupName=group, UserName=name)
    with raises_aws("AccessDeniedException", match="because no identity-based policy allows"):
        client.get_secret_value(SecretId=arn)
    iam.detach_group_policy(GroupName=group, PolicyArn=policy)


def test_simulation_names_group_inline_policies(iam, uniq):
    name = uniq("simg")
    me = iam.create_user(UserName=name)["User"]["Arn"]
    group = uniq("simgroup")
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="list", PolicyDocument=doc(allow("secretsmanager:ListSecrets")))
    iam.add_user_to_group(GroupName=group, UserName=name)
    result = iam.simulate_principal_policy(PolicySourceArn=me, ActionNames=["secretsmanager:ListSecrets"])[
        "EvaluationResults"
    ][0]
    assert result["EvalDecision"] == "allowed"
    assert [(m["SourcePolicyId"], m["SourcePolicyType"]) for m in result["MatchedStatements"]] == [("list", "group")]


def test_permissions_boundary_caps_a_user(server, iam, sm, uniq):
    a = sm.create_secret(Name=uniq("pb/a"), SecretString="a")["ARN"]
    b = sm.create_secret(Name=uniq("pb/b"), SecretString="b")["ARN"]
    action = "secretsmanager:GetSecretValue"
    boundary = iam.create_policy(PolicyName=uniq("only-a"), PolicyDocument=doc(allow(action, a)))["Policy"]["Arn"]
    with raises_aws("NoSuchEntity", status=404, match="does not exist or is not attachable"):
        iam.create_user(UserName=uniq("x"), PermissionsBoundary=f"arn:aws:iam::{ACCOUNT}:policy/{uniq('missing')}")

    name, me, client = user_with_key(server, iam, uniq, PermissionsBoundary=boundary)
    user = iam.get_user(UserName=name)["User"]
    assert user["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": boundary,
    }
    # The boundary alone grants nothing.
    with raises_aws("AccessDeniedException", match="because no identity-based policy allows"):
        client.get_secret_value(SecretId=a)
    # AdministratorAccess is capped by it.
    iam.attach_user_policy(UserName=name, PolicyArn=ADMIN_POLICY)
    assert client.get_secret_value(SecretId=a)["SecretString"] == "a"
    with raises_aws(
        "AccessDeniedException",
        message=f"User: {me} is not authorized to perform: {action} on resource: {b} "
        f"because no permissions boundary allows the {action} action",
    ):
        client.get_secret_value(SecretId=b)

    assert iam.get_policy(PolicyArn=boundary)["Policy"]["PermissionsBoundaryUsageCount"] == 1
    with raises_aws("DeleteConflict", status=409, match="attached to entities"):
        iam.delete_policy(PolicyArn=boundary)

    iam.delete_user_permissions_boundary(UserName=name)
    assert "PermissionsBoundary" not in iam.get_user(UserName=name)["User"]
    assert client.get_secret_value(SecretId=b)["SecretString"] == "b"
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=boundary)
    with raises_aws("AccessDeniedException", match="no permissions boundary allows"):
        client.get_secret_value(SecretId=b)
    iam.delete_user_permissions_boundary(UserName=name)
    assert iam.get_policy(PolicyArn=boundary)["Policy"]["PermissionsBoundaryUsageCount"] == 0
    iam.delete_policy(PolicyArn=boundary)


def test_permissions_boundary_caps_role_sessions(server, iam, sm, uniq):
    a = sm.create_secret(Name=uniq("pbr/a"), SecretString="a")["ARN"]
    b = sm.create_secret(Name=uniq("pbr/b"), SecretString="b")["ARN"]
    boundary = iam.create_policy(
        PolicyName=uniq("role-only-a"), PolicyDocument=doc(allow("secretsmanager:GetSecretValue", a))
    )["Policy"]["Arn"]
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"})
    role = uniq("capped")
    created = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust, PermissionsBoundary=boundary)["Role"]
    assert created["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    iam.attach_role_policy(RoleName=role, PolicyArn=ADMIN_POLICY)
    sts = make_client(server, service="sts")
    creds = sts.assume_role(RoleArn=created["Arn"], RoleSessionName="capped-session")["Credentials"]
    session = make_client(
        server,
        access_key=creds["AccessKeyId"],
        secret_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    assert session.get_secret_value(SecretId=a)["SecretString"] == "a"
    with raises_aws("AccessDeniedException", match="no permissions boundary allows"):
        session.get_secret_value(SecretId=b)
    iam.delete_role_permissions_boundary(RoleName=role)
    assert "PermissionsBoundary" not in iam.get_role(RoleName=role)["Role"]
    assert session.get_secret_value(SecretId=b)["SecretString"] == "b"
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=boundary)
    assert iam.get_role(RoleName=role)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary


def test_delegated_admin_may_only_create_users_under_the_boundary(server, iam, uniq):
    boundary = iam.create_policy(PolicyName=uniq("dev-boundary"), PolicyDocument=doc(allow("secretsmanager:List*")))[
        "Policy"
    ]["Arn"]
    condition = {"StringEquals": {"iam:PermissionsBoundary": boundary}}
    delegate = doc(
        allow(["iam:CreateUser", "iam:PutUserPolicy", "iam:DeleteUserPermissionsBoundary"], "*", Condition=condition),
        allow(["iam:GetUser", "iam:CreatePolicy"]),
    )
    name, _, admin = user_with_key(server, iam, uniq, service="iam")
    iam.put_user_policy(UserName=name, PolicyName="delegate", PolicyDocument=delegate)

    with raises_aws("AccessDenied", status=403, match="iam:CreateUser"):
        admin.create_user(UserName=uniq("free"))
    other = iam.create_policy(PolicyName=uniq("other"), PolicyDocument=doc(allow("*")))["Policy"]["Arn"]
    with raises_aws("AccessDenied", status=403, match="iam:CreateUser"):
        admin.create_user(UserName=uniq("free"), PermissionsBoundary=other)
    capped = uniq("capped")
    admin.create_user(UserName=capped, PermissionsBoundary=boundary)
    # Policies may be put on users under the boundary only...
    admin.put_user_policy(UserName=capped, PolicyName="all", PolicyDocument=doc(allow("*")))
    with raises_aws("AccessDenied", status=403, match="iam:PutUserPolicy"):
        admin.put_user_policy(UserName=name, PolicyName="escalate", PolicyDocument=doc(allow("*")))
    # ...and the boundary can't be lifted through the key it is checked by.
    with raises_aws("AccessDenied", status=403, match="iam:DeleteUserPermissionsBoundary"):
        admin.delete_user_permissions_boundary(UserName=name)
    admin.delete_user_permissions_boundary(UserName=capped)
    with raises_aws("AccessDenied", status=403, match="iam:PutUserPolicy"):
        admin.put_user_policy(UserName=capped, PolicyName="again", PolicyDocument=doc(allow("*")))


def test_group_and_boundary_bad_input(iam, uniq):
    with raises_aws("ValidationError", match="groupName"):
        iam.create_group(GroupName="bad/name")
    with raises_aws("ValidationError", match="groupName"):
        iam.create_group(GroupName="g" * 129)
    with raises_aws("InvalidInput", match="is not valid"):
        iam.put_user_permissions_boundary(UserName="admin", PermissionsBoundary="not-an-arn-at-all-really")
    with raises_aws("NoSuchEntity", status=404):
        iam.put_user_permissions_boundary(
            UserName=uniq("nobody"), PermissionsBoundary="arn:aws:iam::aws:policy/AdministratorAccess"
        )
    with raises_aws("NoSuchEntity", status=404):
        iam.list_groups_for_user(UserName=uniq("nobody"))
