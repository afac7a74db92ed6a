"""STS against the real server: GetSessionToken, AssumeRole (trust policy,
identity policy, session policy, session tags, ExternalId, durations), and
temporary credentials through boto3 and an aws CLI profile with role_arn +
source_profile. Expiry itself is unit-tested in tumbler-identity with an
injected clock; here a tampered token must be refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config

from conftest import ACCOUNT, REGION, make_client, raises_aws

INVALID_TOKEN = "The security token included in the request is invalid."


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*"):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


@pytest.fixture(scope="module")
def sts(server):
    return make_client(server, service="sts")


def session_client(server, service, creds, validate=True):
    return boto3.session.Session().client(
        service,
        region_name=REGION,
        endpoint_url=server.url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, parameter_validation=validate),
    )


@pytest.fixture
def user_and_role(server, iam, uniq):
    """A user allowed to assume a role whose trust policy names the user."""
    user = uniq("caller")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    role = uniq("role")
    trust = doc({"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": ["sts:AssumeRole", "sts:TagSession"]})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=role,
        PolicyName="read",
        PolicyDocument=doc(allow(["iam:GetRole", "iam:ListRoles", "secretsmanager:ListSecrets"])),
    )
    user_sts = make_client(server, service="sts", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    return {
        "user": user,
        "user_arn": user_arn,
        "key": key,
        "role": role,
        "role_arn": role_arn,
        "sts": user_sts,
    }


def test_assume_role_and_use_the_session(server, iam, user_and_role):
    r = user_and_role
    out = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="alice@example.com")
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert creds["SessionToken"] and len(creds["SecretAccessKey"]) == 40
    remaining = creds["Expiration"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=58) < remaining <= dt.timedelta(hours=1)
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{r['role']}/alice@example.com"
    assert out["AssumedRoleUser"]["Arn"] == session_arn
    role_id = iam.get_role(RoleName=r["role"])["Role"]["RoleId"]
    assert out["AssumedRoleUser"]["AssumedRoleId"] == f"{role_id}:alice@example.com"

    ident = session_client(server, "sts", creds).get_caller_identity()
    assert ident["Arn"] == session_arn
    assert ident["UserId"] == f"{role_id}:alice@example.com"
    assert ident["Account"] == ACCOUNT

    # The session has the role's permissions, not the user's.
    session_iam = session_client(server, "iam", creds)
    assert session_iam.get_role(RoleName=r["role"])["Role"]["Arn"] == r["role_arn"]
    with raises_aws(
        "AccessDenied",
        f"User: {session_arn} is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ "
        "because no identity-based policy allows the iam:ListUsers action",
        status=403,
    ):
        session_iam.list_users()
    # The session's credentials also authenticate to Secrets Manager, with
    # the role's permissions: ListSecrets yes, GetRandomPassword no.
    session_sm = session_client(server, "secretsmanager", creds)
    session_sm.list_secrets()
    with raises_aws("AccessDeniedException", match=f"User: {session_arn} is not authorized"):
        session_sm.get_random_password()


def test_assume_role_denied_without_trust(server, iam, uniq, user_and_role):
    r = user_and_role
    other = uniq("other")
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/somebody-else"}, "Action": "sts:AssumeRole"})
    other_arn = iam.create_role(RoleName=other, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    message = f"User: {r['user_arn']} is not authorized to perform: sts:AssumeRole on resource: {other_arn}"
    with raises_aws("AccessDenied", message, status=403):
        r["sts"].assume_role(RoleArn=other_arn, RoleSessionName="s1")
    missing = f"arn:aws:iam::{ACCOUNT}:role/does-not-exist"
    with raises_aws("AccessDenied", f"User: {r['user_arn']} is not authorized to perform: sts:AssumeRole on resource: {missing}", status=403):
        r["sts"].assume_role(RoleArn=missing, RoleSessionName="s1")


def test_account_trust_needs_an_identity_policy(server, iam, uniq, user_and_role):
    r = user_and_role
    role = uniq("acct")
    trust = doc({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    with raises_aws("AccessDenied", status=403):
        r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="s1")
    iam.put_user_policy(UserName=r["user"], PolicyName="assume", PolicyDocument=doc(allow("sts:AssumeRole", role_arn)))
    assert r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="s1")["Credentials"]["AccessKeyId"].startswith("ASIA")


def test_external_id_condition(server, iam, uniq, user_and_role):
    r = user_and_role
    role = uniq("ext")
    trust = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": r["user_arn"]},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "open-sesame"}},
        }
    )
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    with raises_aws("AccessDenied", status=403):
        r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="s1")
    with raises_aws("AccessDenied", status=403):
        r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="s1", ExternalId="wrong")
    r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="s1", ExternalId="open-sesame")


def test_session_policy_intersects(server, iam, user_and_role):
    r = user_and_role
    out = r["sts"].assume_role(
        RoleArn=r["role_arn"], RoleSessionName="narrow", Policy=doc(allow("iam:ListRoles"))
    )
    assert out["PackedPolicySize"] >= 1
    session_iam = session_client(server, "iam", out["Credentials"])
    session_iam.list_roles()
    with raises_aws("AccessDenied", match="because no session policy allows the iam:GetRole action", status=403):
        session_iam.get_role(RoleName=r["role"])


def test_session_tags_become_principal_tags(server, iam, user_and_role):
    r = user_and_role
    iam.put_role_policy(
        RoleName=r["role"],
        PolicyName="tagged",
        PolicyDocument=doc(
            {
                "Effect": "Allow",
                "Action": "iam:ListRoleTags",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}},
            }
        ),
    )
    plain = session_client(server, "iam", r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="plain")["Credentials"])
    with raises_aws("AccessDenied", status=403):
        plain.list_role_tags(RoleName=r["role"])
    tagged = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="tagged", Tags=[{"Key": "team", "Value": "blue"}])
    session_client(server, "iam", tagged["Credentials"]).list_role_tags(RoleName=r["role"])


def test_durations(server, iam, user_and_role):
    r = user_and_role
    out = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="short", DurationSeconds=900)
    remaining = out["Credentials"]["Expiration"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=14) < remaining <= dt.timedelta(minutes=15)
    with raises_aws(
        "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    ):
        r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="long", DurationSeconds=7200)
    iam.update_role(RoleName=r["role"], MaxSessionDuration=7200)
    r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="long", DurationSeconds=7200)
    with raises_aws("ValidationError", match="durationSeconds"):
        make_client(server, service="sts", access_key=r["key"]["AccessKeyId"], secret_key=r["key"]["SecretAccessKey"], validate=False).assume_role(
            RoleArn=r["role_arn"], RoleSessionName="s2", DurationSeconds=899
        )


def test_bad_session_inputs(server, user_and_role):
    r = user_and_role
    bad = make_client(server, service="sts", access_key=r["key"]["AccessKeyId"], secret_key=r["key"]["SecretAccessKey"], validate=False)
    with raises_aws("ValidationError", match="roleSessionName"):
        bad.assume_role(RoleArn=r["role_arn"], RoleSessionName="has space")
    with raises_aws("ValidationError", match="roleSessionName"):
        bad.assume_role(RoleArn=r["role_arn"], RoleSessionName="x")
    with raises_aws("ValidationError", match="Member must not be null"):
        bad.assume_role(RoleArn=r["role_arn"])
    with raises_aws("MalformedPolicyDocument"):
        bad.assume_role(RoleArn=r["role_arn"], RoleSessionName="ok", Policy="{nope")
    with raises_aws("ValidationError", match="2048"):
        bad.assume_role(RoleArn=r["role_arn"], RoleSessionName="ok", Policy=doc(allow(["iam:Get" + "x" * 2100])))


def test_get_session_token(server, user_and_role):
    r = user_and_role
    creds = r["sts"].get_session_token(DurationSeconds=900)["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    remaining = creds["Expiration"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=14) < remaining <= dt.timedelta(minutes=15)
    session_sts = session_client(server, "sts", creds)
    assert session_sts.get_caller_identity()["Arn"] == r["user_arn"]
    with raises_aws("AccessDenied", "Cannot call GetSessionToken with session credentials", status=403):
        session_sts.get_session_token()
    default = r["sts"].get_session_token()["Credentials"]
    remaining = default["Expiration"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(hours=11, minutes=59) < remaining <= dt.timedelta(hours=12)


def test_tampered_or_mismatched_tokens_are_refused(server, user_and_role):
    r = user_and_role
    a = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="sa")["Credentials"]
    b = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="sb")["Credentials"]
    raw = bytearray(base64.b64decode(a["SessionToken"]))
    raw[len(raw) // 2] ^= 0x01
    tampered = dict(a, SessionToken=base64.b64encode(bytes(raw)).decode())
    with raises_aws("InvalidClientTokenId", INVALID_TOKEN, status=403):
        session_client(server, "sts", tampered).get_caller_identity()
    with raises_aws("UnrecognizedClientException", INVALID_TOKEN):
        session_client(server, "secretsmanager", tampered).list_secrets()
    # B's token with A's key id (and A's secret).
    swapped = dict(a, SessionToken=b["SessionToken"])
    with raises_aws("InvalidClientTokenId", INVALID_TOKEN, status=403):
        session_client(server, "sts", swapped).get_caller_identity()
    # An ASIA key without its token.
    no_token = make_client(server, service="sts", access_key=a["AccessKeyId"], secret_key=a["SecretAccessKey"])
    with raises_aws("InvalidClientTokenId", INVALID_TOKEN, status=403):
        no_token.get_caller_identity()


def write_cli_files(tmp_path, server, r):
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[base]\naws_access_key_id = {r['key']['AccessKeyId']}\naws_secret_access_key = {r['key']['SecretAccessKey']}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile base]\nregion = {REGION}\nendpoint_url = {server.url}\n\n"
        f"[profile assumed]\nrole_arn = {r['role_arn']}\nsource_profile = base\nrole_session_name = cli-session\n"
        f"region = {REGION}\nendpoint_url = {server.url}\n"
    )
    return creds, config


def run_cli(creds, config, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_CONFIG_FILE=str(config),
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    return subprocess.run(
        [sys.executable, "-m", "awscli", "--output", "json", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_profile_with_role_arn_and_source_profile(tmp_path, server, user_and_role):
    r = user_and_role
    creds, config = write_cli_files(tmp_path, server, r)
    proc = run_cli(creds, config, "--profile", "assumed", "sts", "get-caller-identity")
    if proc.returncode != 0 and "endpoint_url" in proc.stderr:
        pytest.skip("this aws CLI ignores endpoint_url for the source profile")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{r['role']}/cli-session"
    proc = run_cli(creds, config, "--profile", "assumed", "iam", "get-role", "--role-name", r["role"])
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(creds, config, "--profile", "assumed", "iam", "list-users")
    assert proc.returncode != 0 and "(AccessDenied)" in proc.stderr


def test_boto3_profile_with_role_arn_and_source_profile(tmp_path, server, user_and_role):
    r = user_and_role
    creds, config = write_cli_files(tmp_path, server, r)
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        session = boto3.session.Session(profile_name="assumed")
        ident = session.client("sts", endpoint_url=server.url).get_caller_identity()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert ident["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{r['role']}/cli-session"


def test_session_tags_need_tag_session(server, iam, uniq, user_and_role):
    r = user_and_role
    role = uniq("notag")
    trust = doc({"Effect": "Allow", "Principal": {"AWS": r["user_arn"]}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="plain")
    with raises_aws(
        "AccessDenied",
        f"User: {r['user_arn']} is not authorized to perform: sts:TagSession on resource: {role_arn}",
        status=403,
    ):
        r["sts"].assume_role(RoleArn=role_arn, RoleSessionName="tagged", Tags=[{"Key": "k", "Value": "v"}])


def test_role_chaining_is_limited_to_one_hour(server, iam, user_and_role):
    r = user_and_role
    iam.update_role(RoleName=r["role"], MaxSessionDuration=7200)
    # Let the role's sessions assume the role itself.
    session_arn_prefix = f"arn:aws:sts::{ACCOUNT}:assumed-role/{r['role']}/*"
    iam.update_assume_role_policy(
        RoleName=r["role"],
        PolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": r["user_arn"]}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": r["role_arn"]}, "Action": "sts:AssumeRole"},
        ),
    )
    assert session_arn_prefix
    first = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="first")["Credentials"]
    chained = session_client(server, "sts", first)
    with raises_aws("ValidationError", match="1 hour session limit for roles assumed by role chaining"):
        chained.assume_role(RoleArn=r["role_arn"], RoleSessionName="second", DurationSeconds=7200)
    out = chained.assume_role(RoleArn=r["role_arn"], RoleSessionName="second")
    assert out["AssumedRoleUser"]["Arn"].endswith(f"assumed-role/{r['role']}/second")


def test_secrets_of_new_credentials_never_reach_the_logs(server, iam, uniq, user_and_role):
    r = user_and_role
    creds = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="quiet")["Credentials"]
    session_iam = session_client(server, "iam", creds)
    with raises_aws("AccessDenied", status=403):
        session_iam.list_users()
    logs = server.read_stderr() + "\n".join(server.stdout_lines)
    assert creds["SecretAccessKey"] not in logs
    assert creds["SessionToken"] not in logs
    assert r["key"]["SecretAccessKey"] not in logs


def test_presigned_get_with_session_token(server, user_and_role):
    import urllib3

    r = user_and_role
    creds = r["sts"].assume_role(RoleArn=r["role_arn"], RoleSessionName="presigned")["Credentials"]
    url = session_client(server, "sts", creds).generate_presigned_url("get_caller_identity", ExpiresIn=60)
    assert "X-Amz-Security-Token=" in url
    # botocore presigns Query operations for POST (with an empty body).
    resp = urllib3.PoolManager().request("POST", url)
    assert resp.status == 200, resp.data
    assert f"assumed-role/{r['role']}/presigned</Arn>" in resp.data.decode()
