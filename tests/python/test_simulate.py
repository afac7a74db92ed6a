"""Would a principal be allowed, and by which statement: IAM's
SimulatePrincipalPolicy (aws iam simulate-principal-policy) and
`tumbler policy simulate`, checked against what the server really does."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, make_client, run_tumbler, start_server

POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadApp",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:*:*:secret:app/*",
        },
        {
            "Sid": "OnlyFromTheOffice",
            "Effect": "Deny",
            "Action": "secretsmanager:*",
            "Resource": "*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        },
    ],
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("simulate"))
    iam = make_client(s, service="iam")
    iam.create_user(UserName="alice")
    iam.put_user_policy(UserName="alice", PolicyName="read-app", PolicyDocument=json.dumps(POLICY))
    iam.create_user(UserName="bob")
    iam.attach_user_policy(UserName="bob", PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite")
    yield s
    s.kill()


ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
APP_DB = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/db-AbCdEf"
OTHER = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:other-AbCdEf"


def simulate(srv, **kw):
    return make_client(srv, service="iam").simulate_principal_policy(**kw)["EvaluationResults"]


def ip(value):
    return [{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": [value], "ContextKeyType": "ip"}]


def test_allowed_names_the_statement(srv):
    [r] = simulate(
        srv,
        PolicySourceArn=ALICE,
        ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[APP_DB],
        ContextEntries=ip("10.1.2.3"),
    )
    assert r["EvalDecision"] == "allowed"
    assert r["EvalActionName"] == "secretsmanager:GetSecretValue"
    assert r["EvalResourceName"] == APP_DB
    assert r["MatchedStatements"] == [{"SourcePolicyId": "read-app", "SourcePolicyType": "user"}]


def test_explicit_and_implicit_denies(srv):
    results = simulate(
        srv,
        PolicySourceArn=ALICE,
        ActionNames=["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
        ResourceArns=[APP_DB, OTHER],
        ContextEntries=ip("192.168.0.1"),
    )
    assert [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results] == [
        ("secretsmanager:GetSecretValue", APP_DB, "explicitDeny"),
        ("secretsmanager:GetSecretValue", OTHER, "explicitDeny"),
        ("secretsmanager:DeleteSecret", APP_DB, "explicitDeny"),
        ("secretsmanager:DeleteSecret", OTHER, "explicitDeny"),
    ]
    [inside] = simulate(
        srv,
        PolicySourceArn=ALICE,
        ActionNames=["secretsmanager:DeleteSecret"],
        ResourceArns=[APP_DB],
        ContextEntries=ip("10.9.9.9"),
    )
    assert inside["EvalDecision"] == "implicitDeny" and inside["MatchedStatements"] == []


def test_missing_context_values_are_reported(srv):
    [r] = simulate(srv, PolicySourceArn=ALICE, ActionNames=["secretsmanager:GetSecretValue"], ResourceArns=[APP_DB])
    assert r["MissingContextValues"] == ["aws:SourceIp"]


def test_managed_policies_are_simulated(srv):
    [r] = simulate(
        srv,
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/bob",
        ActionNames=["secretsmanager:PutSecretValue"],
        ResourceArns=[OTHER],
    )
    assert r["EvalDecision"] == "allowed"
    assert r["MatchedStatements"][0]["SourcePolicyType"] == "aws-managed"
    assert r["MatchedStatements"][0]["SourcePolicyId"] == "arn:aws:iam::aws:policy/SecretsManagerReadWrite"


def test_the_simulation_agrees_with_real_calls(srv):
    """What the simulator says is what a real call by the user gets."""
    iam = make_client(srv, service="iam")
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    admin = make_client(srv)
    admin.create_secret(Name="agree", SecretString="x")
    arn = admin.describe_secret(SecretId="agree")["ARN"]
    iam.put_user_policy(
        UserName="bob",
        PolicyName="no-delete",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "secretsmanager:DeleteSecret", "Resource": arn}]}
        ),
    )
    results = simulate(
        srv,
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/bob",
        ActionNames=["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
        ResourceArns=[arn],
    )
    assert [r["EvalDecision"] for r in results] == ["allowed", "explicitDeny"]
    bob = make_client(srv, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    assert bob.get_secret_value(SecretId=arn)["SecretString"] == "x"
    with pytest.raises(ClientError) as e:
        bob.delete_secret(SecretId=arn)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "explicit deny in an identity-based policy" in e.value.response["Error"]["Message"]


def test_simulation_is_authorized_and_validated(srv):
    iam = make_client(srv, service="iam")
    with pytest.raises(ClientError) as e:
        iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/nobody", ActionNames=["secretsmanager:GetSecretValue"]
        )
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"
    # Alice may not simulate anyone.
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    alice = make_client(srv, service="iam", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        alice.simulate_principal_policy(PolicySourceArn=ALICE, ActionNames=["secretsmanager:GetSecretValue"])
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "iam:SimulatePrincipalPolicy" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        iam.simulate_principal_policy(
            PolicySourceArn=ALICE,
            ActionNames=["secretsmanager:GetSecretValue"],
            ResourcePolicy="{not json",
        )
    assert e.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def cli(srv, *args):
    return run_tumbler("policy", "simulate", "--data-dir", str(srv.data_dir), *args)


def test_tumbler_policy_simulate_explains(srv):
    r = cli(
        srv,
        "--principal",
        ALICE,
        "--action",
        "secretsmanager:GetSecretValue",
        "--resource",
        OTHER,
        "--context",
        "aws:SourceIp=10.1.1.1",
    )
    assert r.returncode == 0, r.stderr
    assert f"secretsmanager:GetSecretValue on {OTHER}: implicitDeny" in r.stdout
    assert "because no identity-based policy allows the secretsmanager:GetSecretValue action" in r.stdout
    assert "condition not met: identity-based policy read-app statement OnlyFromTheOffice: NotIpAddress aws:SourceIp" in r.stdout

    r = cli(srv, "--principal", ALICE, "--action", "secretsmanager:GetSecretValue", "--resource", APP_DB,
            "--context", "aws:SourceIp=10.1.1.1", "--json")
    assert r.returncode == 0, r.stderr
    [out] = json.loads(r.stdout)
    assert out["decision"] == "allowed"
    assert out["explanation"] == "allowed by identity-based policy read-app statement ReadApp"
    assert out["matchedStatements"] == [
        {"sourcePolicyId": "read-app", "sourcePolicyType": "user", "statement": "ReadApp", "effect": "Allow"}
    ]

    bad = cli(srv, "--principal", f"arn:aws:iam::{ACCOUNT}:user/nobody", "--action", "sts:GetCallerIdentity")
    assert bad.returncode != 0 and "cannot be found" in bad.stderr
