"""Secrets Manager calls are authorized like AWS authorizes them: identity
policies, the secret's resource policy, explicit denies, condition keys of
the request and of the secret; denials name who, what, which resource and
why, and never reveal whether a secret the caller may not see exists."""

from __future__ import annotations

import json

import pytest

from conftest import ACCOUNT, make_client, raises_aws


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


@pytest.fixture
def user(server, iam, uniq):
    """Makes a user with an optional inline policy; returns (arn, secretsmanager client)."""

    def make(policy=None):
        name = uniq("smu")
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        if policy:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        client = make_client(server, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        return arn, client

    return make


def denied(principal, action, resource, why):
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {why}"


def test_no_policy_no_access_with_the_explaining_message(sm, user, uniq):
    arn = sm.create_secret(Name=uniq("s"), SecretString="v")["ARN"]
    me, client = user()
    action = "secretsmanager:GetSecretValue"
    with raises_aws(
        "AccessDeniedException",
        denied(me, action, arn, f"because no identity-based policy allows the {action} action"),
    ):
        client.get_secret_value(SecretId=arn)


def test_policy_grants_one_secret_and_not_another(sm, user, uniq):
    mine = uniq("team-a/db")
    other = uniq("team-b/db")
    mine_arn = sm.create_secret(Name=mine, SecretString="a")["ARN"]
    other_arn = sm.create_secret(Name=other, SecretString="b")["ARN"]
    me, client = user(
        doc(
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:team-a/*",
            }
        )
    )
    assert client.get_secret_value(SecretId=mine)["SecretString"] == "a"
    assert client.describe_secret(SecretId=mine_arn)["Name"] == mine
    with raises_aws("AccessDeniedException", match="is not authorized to perform: secretsmanager:GetSecretValue"):
        client.get_secret_value(SecretId=other)
    with raises_aws("AccessDeniedException"):
        client.put_secret_value(SecretId=mine, SecretString="changed")
    # Nothing was written by the refused call.
    assert sm.get_secret_value(SecretId=mine)["SecretString"] == "a"
    assert sm.get_secret_value(SecretId=other_arn)["SecretString"] == "b"


def test_missing_secret_is_only_reported_to_callers_who_may_see_it(user, uniq):
    ghost = uniq("ghost")
    _, nobody = user()
    with raises_aws("AccessDeniedException"):
        nobody.get_secret_value(SecretId=ghost)
    _, reader = user(doc({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}))
    with raises_aws("ResourceNotFoundException"):
        reader.get_secret_value(SecretId=ghost)


def test_resource_policy_grants_a_second_user(sm, user, uniq):
    name = uniq("shared")
    arn = sm.create_secret(Name=name, SecretString="shared-value")["ARN"]
    friend, client = user()
    with raises_aws("AccessDeniedException"):
        client.get_secret_value(SecretId=arn)
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=doc(
            {
                "Effect": "Allow",
                "Principal": {"AWS": friend},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
            }
        ),
    )
    assert client.get_secret_value(SecretId=arn)["SecretString"] == "shared-value"
    sm.delete_resource_policy(SecretId=name)
    with raises_aws("AccessDeniedException"):
        client.get_secret_value(SecretId=arn)


def test_explicit_deny_beats_every_allow(sm, user, uniq):
    name = uniq("locked")
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    me, client = user(
        doc(
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": arn},
        )
    )
    sm.put_resource_policy(
        SecretId=name,
        ResourcePolicy=doc(
            {"Effect": "Allow", "Principal": {"AWS": me}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
        ),
    )
    action = "secretsmanager:GetSecretValue"
    with raises_aws(
        "AccessDeniedException", denied(me, action, arn, "with an explicit deny in an identity-based policy")
    ):
        client.get_secret_value(SecretId=name)
    assert client.describe_secret(SecretId=name)["ARN"] == arn

    # A deny in the secret's own policy wins over the user's allow too.
    other = uniq("fenced")
    other_arn = sm.create_secret(Name=other, SecretString="v")["ARN"]
    sm.put_resource_policy(
        SecretId=other,
        ResourcePolicy=doc(
            {"Effect": "Deny", "Principal": {"AWS": me}, "Action": "secretsmanager:DescribeSecret", "Resource": "*"}
        ),
    )
    with raises_aws(
        "AccessDeniedException",
        denied(me, "secretsmanager:DescribeSecret", other_arn, "with an explicit deny in a resource-based policy"),
    ):
        client.describe_secret(SecretId=other)


def test_conditions_on_resource_tags_and_version_stage(sm, user, uniq):
    red = uniq("red")
    blue = uniq("blue")
    sm.create_secret(Name=red, SecretString="r", Tags=[{"Key": "team", "Value": "red"}])
    sm.create_secret(Name=blue, SecretString="b", Tags=[{"Key": "team", "Value": "blue"}])
    sm.put_secret_value(SecretId=red, SecretString="r2")
    _, client = user(
        doc(
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "secretsmanager:ResourceTag/team": "red",
                        "secretsmanager:VersionStage": "AWSCURRENT",
                    }
                },
            }
        )
    )
    assert client.get_secret_value(SecretId=red)["SecretString"] == "r2"
    with raises_aws("AccessDeniedException"):
        client.get_secret_value(SecretId=red, VersionStage="AWSPREVIOUS")
    with raises_aws("AccessDeniedException"):
        client.get_secret_value(SecretId=blue)


def test_unscoped_actions_and_batch_get(sm, user, uniq):
    ok = uniq("bg-ok")
    no = uniq("bg-no")
    sm.create_secret(Name=ok, SecretString="1")
    no_arn = sm.create_secret(Name=no, SecretString="2")["ARN"]
    _, client = user(
        doc(
            {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"},
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": no_arn},
        )
    )
    out = client.batch_get_secret_value(SecretIdList=[ok, no])
    assert [v["Name"] for v in out["SecretValues"]] == [ok]
    assert [(e["SecretId"], e["ErrorCode"]) for e in out["Errors"]] == [(no, "AccessDeniedException")]
    with raises_aws(
        "AccessDeniedException", match="secretsmanager:ListSecrets on resource: \\* because no identity-based"
    ):
        client.list_secrets()
    with raises_aws("AccessDeniedException"):
        client.get_random_password()


def test_create_needs_permission_on_the_new_name(user, uniq):
    allowed = uniq("mine")
    _, client = user(
        doc(
            {
                "Effect": "Allow",
                "Action": "secretsmanager:CreateSecret",
                "Resource": f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:{allowed}-*",
            }
        )
    )
    client.create_secret(Name=allowed, SecretString="v")
    with raises_aws("AccessDeniedException"):
        client.create_secret(Name=uniq("theirs"), SecretString="v")


def test_create_with_tags_also_needs_tag_resource(sm, user, uniq):
    prefix = uniq("tagged")
    create_only = {
        "Effect": "Allow",
        "Action": "secretsmanager:CreateSecret",
        "Resource": f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:{prefix}*",
    }
    me, client = user(doc(create_only))
    refused = f"{prefix}-refused"
    with raises_aws(
        "AccessDeniedException",
        match=f"{me} is not authorized to perform: secretsmanager:TagResource on resource: "
        f"arn:aws:secretsmanager:[^:]+:{ACCOUNT}:secret:{refused}-",
    ):
        client.create_secret(Name=refused, SecretString="v", Tags=[{"Key": "team", "Value": "a"}])
    # Nothing was created by the refused call.
    with raises_aws("ResourceNotFoundException"):
        sm.describe_secret(SecretId=refused)
    client.create_secret(Name=f"{prefix}-untagged", SecretString="v")

    # TagResource limited by aws:RequestTag: only team=a may be set at creation.
    _, tagger = user(
        doc(
            create_only,
            {
                "Effect": "Allow",
                "Action": "secretsmanager:TagResource",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:RequestTag/team": "a"}},
            },
        )
    )
    arn = tagger.create_secret(Name=f"{prefix}-a", SecretString="v", Tags=[{"Key": "team", "Value": "a"}])["ARN"]
    assert sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "team", "Value": "a"}]
    with raises_aws("AccessDeniedException", match="secretsmanager:TagResource"):
        tagger.create_secret(Name=f"{prefix}-b", SecretString="v", Tags=[{"Key": "team", "Value": "b"}])
