"""IAM API subset against the real server with boto3 and the aws CLI:
users, access keys, inline and managed policies, roles, authorization of
IAM calls with AWS's AccessDenied wording, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, make_client, raises_aws

ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*"):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


def new_user(iam, uniq, policy=None):
    """A user with an access key (and an inline policy); returns (name, key id, secret)."""
    name = uniq("u")
    iam.create_user(UserName=name)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def client_as(server, service, key_id, secret):
    return make_client(server, service=service, access_key=key_id, secret_key=secret)


def test_bootstrap_admin_has_administrator_access(iam):
    me = iam.get_user()["User"]
    assert me["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert me["UserId"].startswith("AIDA")
    attached = iam.list_attached_user_policies(UserName="admin")["AttachedPolicies"]
    assert {"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN_POLICY} in attached


def test_user_lifecycle_and_tags(iam, uniq):
    name = uniq("life")
    created = iam.create_user(UserName=name, Tags=[{"Key": "team", "Value": "blue"}])["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    assert created["UserId"].startswith("AIDA") and len(created["UserId"]) == 21
    assert created["Path"] == "/"
    got = iam.get_user(UserName=name)["User"]
    assert got["UserId"] == created["UserId"]
    assert got["Tags"] == [{"Key": "team", "Value": "blue"}]
    assert name in [u["UserName"] for u in iam.list_users()["Users"]]
    with raises_aws("EntityAlreadyExists", f"User with name {name} already exists.", status=409):
        iam.create_user(UserName=name)
    iam.tag_user(UserName=name, Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "red"}])
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]}
    assert tags == {"team": "red", "env": "prod"}
    iam.untag_user(UserName=name, TagKeys=["team"])
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "env", "Value": "prod"}]
    iam.delete_user(UserName=name)
    with raises_aws("NoSuchEntity", f"The user with name {name} cannot be found.", status=404):
        iam.get_user(UserName=name)
    with raises_aws("NoSuchEntity", f"The user with name {name} cannot be found.", status=404):
        iam.delete_user(UserName=name)


def test_delete_user_conflicts(iam, uniq):
    name, key_id, _ = new_user(iam, uniq, policy=doc(allow("iam:GetUser")))
    iam.attach_user_policy(UserName=name, PolicyArn=ADMIN_POLICY)
    with raises_aws("DeleteConflict", "Cannot delete entity, must delete access keys first.", status=409):
        iam.delete_user(UserName=name)
    iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    with raises_aws("DeleteConflict", "Cannot delete entity, must delete policies first.", status=409):
        iam.delete_user(UserName=name)
    iam.delete_user_policy(UserName=name, PolicyName="p")
    with raises_aws("DeleteConflict", "Cannot delete entity, must detach all policies first.", status=409):
        iam.delete_user(UserName=name)
    iam.detach_user_policy(UserName=name, PolicyArn=ADMIN_POLICY)
    iam.delete_user(UserName=name)


def test_access_keys_quota_status_and_delete(server, iam, uniq):
    name, key_id, secret = new_user(iam, uniq, policy=doc(allow("sts:GetCallerIdentity")))
    second = iam.create_access_key(UserName=name)["AccessKey"]
    assert second["AccessKeyId"].startswith("AKIA") and len(second["AccessKeyId"]) == 20
    assert len(second["SecretAccessKey"]) == 40 and second["Status"] == "Active"
    with raises_aws("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2", status=409):
        iam.create_access_key(UserName=name)
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert sorted(k["AccessKeyId"] for k in listed) == sorted([key_id, second["AccessKeyId"]])
    assert all("SecretAccessKey" not in k for k in listed)

    sts = client_as(server, "sts", key_id, secret)
    ident = sts.get_caller_identity()
    assert ident["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    iam.update_access_key(UserName=name, AccessKeyId=key_id, Status="Inactive")
    assert {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}[
        key_id
    ] == "Inactive"
    with raises_aws("InvalidClientTokenId", "The security token included in the request is invalid.", status=403):
        client_as(server, "sts", key_id, secret).get_caller_identity()
    sm = client_as(server, "secretsmanager", key_id, secret)
    with raises_aws("UnrecognizedClientException", "The security token included in the request is invalid."):
        sm.list_secrets()
    iam.update_access_key(UserName=name, AccessKeyId=key_id, Status="Active")
    assert client_as(server, "sts", key_id, secret).get_caller_identity()["Arn"].endswith(f"user/{name}")
    iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    with raises_aws("InvalidClientTokenId", status=403):
        client_as(server, "sts", key_id, secret).get_caller_identity()
    with raises_aws("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", status=404):
        iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    with raises_aws("ValidationError", status=400):
        iam.update_access_key(UserName=name, AccessKeyId=second["AccessKeyId"], Status="Sleeping")


def test_user_is_refused_then_allowed_by_attached_policy(server, iam, uniq):
    name, key_id, secret = new_user(iam, uniq)
    own = client_as(server, "iam", key_id, secret)
    # GetCallerIdentity needs no permission.
    assert client_as(server, "sts", key_id, secret).get_caller_identity()["Account"] == ACCOUNT
    arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    with raises_aws(
        "AccessDenied",
        f"User: {arn} is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ "
        "because no identity-based policy allows the iam:ListUsers action",
        status=403,
    ):
        own.list_users()
    policy_name = uniq("list-users")
    policy = iam.create_policy(PolicyName=policy_name, PolicyDocument=doc(allow("iam:ListUsers")))["Policy"]
    iam.attach_user_policy(UserName=name, PolicyArn=policy["Arn"])
    assert name in [u["UserName"] for u in own.list_users()["Users"]]
    # Still no other action.
    with raises_aws("AccessDenied", match=r"iam:CreateUser .* because no identity-based policy allows", status=403):
        own.create_user(UserName=uniq("nope"))
    # An explicit deny wins over AdministratorAccess, and the message names the policy.
    deny = iam.create_policy(
        PolicyName=uniq("deny"), PolicyDocument=doc({"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"})
    )["Policy"]
    iam.attach_user_policy(UserName=name, PolicyArn=ADMIN_POLICY)
    iam.attach_user_policy(UserName=name, PolicyArn=deny["Arn"])
    with raises_aws(
        "AccessDenied",
        f"User: {arn} is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ "
        f"with an explicit deny in an identity-based policy: {deny['Arn']}",
        status=403,
    ):
        own.list_users()
    iam.detach_user_policy(UserName=name, PolicyArn=deny["Arn"])
    own.list_users()


def test_policy_variables_and_principal_tags(server, iam, uniq):
    name, key_id, secret = new_user(
        iam,
        uniq,
        policy=doc(
            {
                "Effect": "Allow",
                "Action": "iam:ListUserTags",
                "Resource": "arn:aws:iam::*:user/${aws:username}",
            },
            {
                "Effect": "Allow",
                "Action": "iam:GetUser",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}},
            },
        ),
    )
    own = client_as(server, "iam", key_id, secret)
    own.list_user_tags(UserName=name)
    with raises_aws("AccessDenied", status=403):
        own.list_user_tags(UserName="admin")
    with raises_aws("AccessDenied", status=403):
        own.get_user()
    iam.tag_user(UserName=name, Tags=[{"Key": "team", "Value": "blue"}])
    assert own.get_user()["User"]["UserName"] == name


def test_inline_policies(iam, uniq):
    name = uniq("inl")
    iam.create_user(UserName=name)
    document = doc(allow("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:*:*:secret:x-*"))
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=document)
    got = iam.get_user_policy(UserName=name, PolicyName="read")
    # botocore decodes IAM's URL-encoded document into a dict.
    assert got["PolicyDocument"] == json.loads(document)
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["read"]
    with raises_aws("NoSuchEntity", "The user policy with name nope cannot be found.", status=404):
        iam.get_user_policy(UserName=name, PolicyName="nope")
    iam.delete_user_policy(UserName=name, PolicyName="read")
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    with raises_aws("NoSuchEntity", status=404):
        iam.delete_user_policy(UserName=name, PolicyName="read")


def test_policy_document_is_url_encoded_on_the_wire(server, iam, uniq):
    name = uniq("raw")
    iam.create_user(UserName=name)
    document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}'
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document)
    captured = {}

    def grab(http_response, **_):
        captured["body"] = http_response.text

    iam.meta.events.register("after-call.iam.GetUserPolicy", lambda **kw: grab(kw["http_response"]))
    try:
        iam.get_user_policy(UserName=name, PolicyName="p")
    finally:
        iam.meta.events.unregister("after-call.iam.GetUserPolicy")
    assert f"<PolicyDocument>{urllib.parse.quote(document, safe='')}</PolicyDocument>" in captured["body"]


def test_managed_policy_versions(iam, uniq):
    name = uniq("mp")
    p = iam.create_policy(PolicyName=name, PolicyDocument=doc(allow("iam:GetUser")), Description="d")["Policy"]
    assert p["Arn"] == f"arn:aws:iam::{ACCOUNT}:policy/{name}"
    assert p["PolicyId"].startswith("ANPA") and p["DefaultVersionId"] == "v1" and p["AttachmentCount"] == 0
    with raises_aws("EntityAlreadyExists", status=409):
        iam.create_policy(PolicyName=name, PolicyDocument=doc(allow("iam:GetUser")))
    arn = p["Arn"]
    for i in range(2, 6):
        v = iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow(f"iam:Get{i}")), SetAsDefault=i == 3)
        assert v["PolicyVersion"]["VersionId"] == f"v{i}"
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v3"
    with raises_aws("LimitExceeded", status=409, match="up to 5 versions"):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("iam:GetUser")))
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [v["VersionId"] for v in versions] == ["v5", "v4", "v3", "v2", "v1"]
    assert [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == ["v3"]
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v3")["PolicyVersion"]
    assert got["Document"] == json.loads(doc(allow("iam:Get3")))
    with raises_aws("DeleteConflict", "Cannot delete the default version of a policy.", status=409):
        iam.delete_policy_version(PolicyArn=arn, VersionId="v3")
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v5")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v3")
    with raises_aws("NoSuchEntity", status=404):
        iam.get_policy_version(PolicyArn=arn, VersionId="v3")
    user = uniq("att")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    attached = [p["Arn"] for p in iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]]
    assert arn in attached
    with raises_aws("DeleteConflict", "Cannot delete a policy attached to entities.", status=409):
        iam.delete_policy(PolicyArn=arn)
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    with raises_aws("DeleteConflict", status=409, match="more than one version"):
        iam.delete_policy(PolicyArn=arn)
    for v in ["v1", "v2", "v4"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    iam.delete_policy(PolicyArn=arn)
    with raises_aws("NoSuchEntity", f"Policy {arn} does not exist or is not attachable.", status=404):
        iam.get_policy(PolicyArn=arn)


def test_aws_managed_policies_are_listed(iam):
    aws = {p["PolicyName"]: p for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert aws["AdministratorAccess"]["Arn"] == ADMIN_POLICY
    assert aws["AdministratorAccess"]["AttachmentCount"] >= 1
    assert "SecretsManagerReadWrite" in aws
    v = iam.get_policy_version(PolicyArn=ADMIN_POLICY, VersionId="v1")["PolicyVersion"]
    assert v["Document"]["Statement"][0]["Action"] == "*"
    local = iam.list_policies(Scope="Local")["Policies"]
    assert all(not p["Arn"].startswith("arn:aws:iam::aws:") for p in local)


@pytest.mark.parametrize(
    "document, fragment",
    [
        ("{not json", "Syntax errors in policy."),
        ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}', "must contain resources"),
        ('{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}', "Statement"),
        ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Bogus":1}]}', "Bogus"),
    ],
)
def test_malformed_policy_documents(iam, uniq, document, fragment):
    with raises_aws("MalformedPolicyDocument") as err:
        iam.create_policy(PolicyName=uniq("bad"), PolicyDocument=document)
    assert fragment in err.message


def test_oversized_policy_documents(iam, uniq):
    name = uniq("big")
    iam.create_user(UserName=name)
    actions = [f"iam:Get{i:05d}" for i in range(200)]
    with raises_aws("LimitExceeded", "Cannot exceed quota for PolicySize: 2048", status=409):
        iam.put_user_policy(UserName=name, PolicyName="big", PolicyDocument=doc(allow(actions)))
    with raises_aws("LimitExceeded", "Cannot exceed quota for PolicySize: 6144", status=409):
        iam.create_policy(PolicyName=uniq("big"), PolicyDocument=doc(allow(actions * 3)))


def test_bad_names_and_missing_parameters(server, iam, uniq):
    bad = make_client(server, service="iam", validate=False)
    with raises_aws("ValidationError", match=r"at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern"):
        bad.create_user(UserName="no spaces!")
    with raises_aws("ValidationError", match="Member must have length less than or equal to 64"):
        bad.create_user(UserName="u" * 65)
    with raises_aws("ValidationError", match="Member must have length less than or equal to 128"):
        bad.create_policy(PolicyName="p" * 129, PolicyDocument=doc(allow("*")))
    with raises_aws("ValidationError", match=r"Value null at 'userName' failed to satisfy constraint: Member must not be null"):
        bad.create_user()
    with raises_aws("ValidationError", match="roleName"):
        bad.create_role(RoleName="r" * 65, AssumeRolePolicyDocument="{}")
    with raises_aws("ValidationError", match="maxSessionDuration"):
        bad.create_role(RoleName=uniq("r"), AssumeRolePolicyDocument="{}", MaxSessionDuration=100)


def test_unknown_action_is_invalid_action(raw_query):
    status, body = raw_query("iam", {"Action": "FlyToTheMoon", "Version": "2010-05-08"})
    assert status == 400
    assert "<Code>InvalidAction</Code>" in body
    assert "https://iam.amazonaws.com/doc/2010-05-08/" in body


@pytest.fixture
def raw_query(server):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib3

    from conftest import ACCESS_KEY, SECRET_KEY

    http = urllib3.PoolManager()

    def send(service, params):
        body = urllib.parse.urlencode(params)
        req = AWSRequest(
            method="POST",
            url=server.url + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, "us-east-1").add_auth(req)
        r = http.request("POST", server.url + "/", body=body, headers=dict(req.headers))
        return r.status, r.data.decode()

    return send


def test_roles(iam, uniq):
    name = uniq("role")
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"})
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=trust, Description="test role", MaxSessionDuration=7200,
        Tags=[{"Key": "k", "Value": "v"}],
    )["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/{name}"
    assert role["RoleId"].startswith("AROA")
    assert role["AssumeRolePolicyDocument"] == json.loads(trust)
    assert role["MaxSessionDuration"] == 7200
    got = iam.get_role(RoleName=name)["Role"]
    assert got["Description"] == "test role" and got["Tags"] == [{"Key": "k", "Value": "v"}]
    assert name in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    with raises_aws("EntityAlreadyExists", status=409):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    iam.update_role(RoleName=name, MaxSessionDuration=43200)
    assert iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"] == 43200
    with raises_aws("MalformedPolicyDocument"):
        # Trust policies need a Principal.
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=doc(allow("sts:AssumeRole")))
    iam.put_role_policy(RoleName=name, PolicyName="inl", PolicyDocument=doc(allow("iam:GetRole")))
    assert iam.get_role_policy(RoleName=name, PolicyName="inl")["PolicyName"] == "inl"
    iam.attach_role_policy(RoleName=name, PolicyArn=ADMIN_POLICY)
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"][0]["PolicyArn"] == ADMIN_POLICY
    with raises_aws("DeleteConflict", status=409):
        iam.delete_role(RoleName=name)
    iam.delete_role_policy(RoleName=name, PolicyName="inl")
    iam.detach_role_policy(RoleName=name, PolicyArn=ADMIN_POLICY)
    iam.delete_role(RoleName=name)
    with raises_aws("NoSuchEntity", f"The role with name {name} cannot be found.", status=404):
        iam.get_role(RoleName=name)


def test_cli_creates_user_key_and_policy(server, aws_cli, uniq):
    name = uniq("cli")
    created = aws_cli(server, "iam", "create-user", "--user-name", name, check=True).json
    assert created["User"]["UserName"] == name
    key = aws_cli(server, "iam", "create-access-key", "--user-name", name, check=True).json["AccessKey"]
    policy = aws_cli(
        server, "iam", "create-policy", "--policy-name", uniq("clip"),
        "--policy-document", doc(allow("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/{name}")), check=True,
    ).json["Policy"]
    aws_cli(server, "iam", "attach-user-policy", "--user-name", name, "--policy-arn", policy["Arn"], check=True)
    bad = aws_cli(server, "iam", "create-user", "--user-name", "has space")
    assert not bad.ok and bad.error_code == "ValidationError"
    malformed = aws_cli(server, "iam", "create-policy", "--policy-name", uniq("m"), "--policy-document", "{nope")
    assert malformed.error_code == "MalformedPolicyDocument"
    assert key["AccessKeyId"].startswith("AKIA")


def test_list_users_pages_with_marker(iam, uniq):
    prefix = uniq("pg")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        iam.create_user(UserName=n)
    first = iam.list_users(MaxItems=2)
    assert first["IsTruncated"] is True and len(first["Users"]) == 2 and first["Marker"]
    seen = []
    for page in iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 2}):
        assert len(page["Users"]) <= 2
        seen += [u["UserName"] for u in page["Users"]]
    assert set(names) <= set(seen)
    assert len(seen) == len(set(seen))


def test_inline_policy_quota_is_aggregate(iam, uniq):
    name = uniq("agg")
    iam.create_user(UserName=name)
    actions = [f"iam:Get{i:05d}" for i in range(70)]
    iam.put_user_policy(UserName=name, PolicyName="a", PolicyDocument=doc(allow(actions)))
    with raises_aws("LimitExceeded", f"Maximum policy size of 2048 bytes exceeded for user {name}", status=409):
        iam.put_user_policy(UserName=name, PolicyName="b", PolicyDocument=doc(allow(actions)))
    # Replacing the same policy counts only once.
    iam.put_user_policy(UserName=name, PolicyName="a", PolicyDocument=doc(allow(actions)))


def test_concurrent_create_access_key_respects_the_quota(server, iam, uniq):
    from concurrent.futures import ThreadPoolExecutor

    name = uniq("race")
    iam.create_user(UserName=name)
    pool_client = make_client(server, service="iam", max_pool_connections=8)

    def create(_):
        try:
            pool_client.create_access_key(UserName=name)
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(create, range(8)))
    assert results.count("ok") == 2 and results.count("LimitExceeded") == 6, results
    assert len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 2
