"""Virtual MFA devices and what STS does with them, plus AssumeRole's
PolicyArns and SourceIdentity, against the real server with boto3:
codes are computed here from the seed CreateVirtualMFADevice returned
(RFC 6238), a trust policy requiring MFA refuses a session without it,
aws:MultiFactorAuthPresent reaches later requests, codes can't be replayed,
managed session policies cap the session, and a source identity sticks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time

import pytest

from conftest import ACCOUNT, make_client, raises_aws


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def totp(seed_b32: bytes, step: int) -> str:
    key = base64.b32decode(seed_b32 + b"=" * (-len(seed_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def now_step() -> int:
    return int(time.time()) // 30


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


def user_with_key(server, iam, uniq, policy=None):
    name = uniq("mfa")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, arn, key


def as_key(server, service, key, token=None):
    return make_client(
        server,
        service=service,
        access_key=key["AccessKeyId"],
        secret_key=key["SecretAccessKey"],
        session_token=token or key.get("SessionToken"),
    )


def enable_device(iam, name, uniq):
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=uniq("dev"))["VirtualMFADevice"]
    seed = device["Base32StringSeed"]
    assert len(seed) == 64 and base64.b32decode(seed)  # 40 random bytes
    # The two previous codes, as a person would type them in, so that the
    # current and the next code are left for the tests.
    step = now_step() - 2
    with raises_aws("InvalidAuthenticationCode", status=403, message="Authentication code for device is not valid."):
        iam.enable_mfa_device(
            UserName=name,
            SerialNumber=device["SerialNumber"],
            AuthenticationCode1=totp(seed, step),
            AuthenticationCode2=totp(seed, step + 5),
        )
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp(seed, step),
        AuthenticationCode2=totp(seed, step + 1),
    )
    return device["SerialNumber"], seed, [step, step + 1]


def fresh_code(seed, used):
    """A code of a step not used yet, within a step of now."""
    step = max(now_step() - 1, max(used) + 1)
    assert step <= now_step() + 1, "no unused code left in the window"
    used.append(step)
    return totp(seed, step)


def recorded_session(server, access_key_id):
    """The sessionContext of the newest audit event signed with this key."""
    trail = make_client(server, service="cloudtrail")
    events = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": access_key_id}], MaxResults=1
    )["Events"]
    assert events, f"no audit event for {access_key_id}"
    return json.loads(events[0]["CloudTrailEvent"])["userIdentity"]["sessionContext"]


def test_virtual_mfa_device_lifecycle(server, iam, uniq):
    name = uniq("mfa")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    dev_name = uniq("dev")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=dev_name)["VirtualMFADevice"]
    serial = device["SerialNumber"]
    assert serial == f"arn:aws:iam::{ACCOUNT}:mfa/{dev_name}"
    with raises_aws("EntityAlreadyExists", status=409):
        iam.create_virtual_mfa_device(VirtualMFADeviceName=dev_name)
    unassigned = iam.list_virtual_mfa_devices(AssignmentStatus="Unassigned")["VirtualMFADevices"]
    assert serial in [d["SerialNumber"] for d in unassigned]
    # The seed is shown once, never listed.
    assert all("Base32StringSeed" not in d for d in unassigned)

    seed = device["Base32StringSeed"]
    step = now_step()
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=serial,
        AuthenticationCode1=totp(seed, step),
        AuthenticationCode2=totp(seed, step + 1),
    )
    listed = iam.list_mfa_devices(UserName=name)["MFADevices"]
    assert [(d["UserName"], d["SerialNumber"]) for d in listed] == [(name, serial)]
    assigned = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    mine = [d for d in assigned if d["SerialNumber"] == serial]
    assert mine and mine[0]["User"]["Arn"] == arn
    with raises_aws("EntityAlreadyExists", status=409):
        iam.enable_mfa_device(
            UserName=name,
            SerialNumber=serial,
            AuthenticationCode1=totp(seed, step),
            AuthenticationCode2=totp(seed, step + 1),
        )
    with raises_aws("DeleteConflict", status=409, message="MFA Device is still in use."):
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    with raises_aws("DeleteConflict", status=409, match="must delete MFA device first"):
        iam.delete_user(UserName=name)

    iam.deactivate_mfa_device(UserName=name, SerialNumber=serial)
    assert iam.list_mfa_devices(UserName=name)["MFADevices"] == []
    with raises_aws("NoSuchEntity", status=404):
        iam.deactivate_mfa_device(UserName=name, SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    with raises_aws("NoSuchEntity", status=404):
        iam.delete_virtual_mfa_device(SerialNumber=serial)

    # Bad input.
    with raises_aws("ValidationError", match="authenticationCode1"):
        iam.enable_mfa_device(
            UserName=name, SerialNumber=serial, AuthenticationCode1="12345a", AuthenticationCode2="123456"
        )
    with raises_aws("ValidationError", match="virtualMFADeviceName"):
        iam.create_virtual_mfa_device(VirtualMFADeviceName="bad/name")
    with raises_aws("ValidationError", match="assignmentStatus"):
        iam.list_virtual_mfa_devices(AssignmentStatus="Maybe")


def test_mfa_gates_a_role_and_reaches_the_session(server, iam, sm, uniq):
    secret = sm.create_secret(Name=uniq("mfa/db"), SecretString="behind-mfa")["ARN"]
    name, arn, key = user_with_key(server, iam, uniq, doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
    serial, seed, used = enable_device(iam, name, uniq)

    trust = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": arn},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    )
    role = iam.create_role(RoleName=uniq("needs-mfa"), AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(
        RoleName=role["RoleName"],
        PolicyName="read",
        PolicyDocument=doc(
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret,
                "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},
            }
        ),
    )
    sts = as_key(server, "sts", key)
    with raises_aws("AccessDenied", status=403, match="not authorized to perform: sts:AssumeRole"):
        sts.assume_role(RoleArn=role["Arn"], RoleSessionName="no-mfa")
    with raises_aws("AccessDenied", status=403, match="MultiFactorAuthentication failed"):
        sts.assume_role(RoleArn=role["Arn"], RoleSessionName="bad-code", SerialNumber=serial, TokenCode="000000")
    code = fresh_code(seed, used)
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="with-mfa", SerialNumber=serial, TokenCode=code)[
        "Credentials"
    ]
    session = as_key(server, "secretsmanager", creds)
    assert session.get_secret_value(SecretId=secret)["SecretString"] == "behind-mfa"
    assert recorded_session(server, creds["AccessKeyId"])["attributes"]["mfaAuthenticated"] == "true"
    # The same code is refused the second time.
    with raises_aws("AccessDenied", status=403, match="MultiFactorAuthentication failed"):
        sts.assume_role(RoleArn=role["Arn"], RoleSessionName="replay", SerialNumber=serial, TokenCode=code)
    # Someone else's device is no good either.
    other, _, other_key = user_with_key(server, iam, uniq, doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
    with raises_aws("AccessDenied", status=403, match="MultiFactorAuthentication failed"):
        as_key(server, "sts", other_key).assume_role(
            RoleArn=role["Arn"], RoleSessionName="thief", SerialNumber=serial, TokenCode=fresh_code(seed, used)
        )


def test_get_session_token_with_mfa(server, iam, sm, uniq):
    secret = sm.create_secret(Name=uniq("mfa/gst"), SecretString="v")["ARN"]
    policy = doc(
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret,
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    )
    name, _, key = user_with_key(server, iam, uniq, policy)
    serial, seed, used = enable_device(iam, name, uniq)
    # Long-term keys carry no MFA.
    with raises_aws("AccessDeniedException"):
        as_key(server, "secretsmanager", key).get_secret_value(SecretId=secret)
    sts = as_key(server, "sts", key)
    plain = sts.get_session_token()["Credentials"]
    with raises_aws("AccessDeniedException"):
        as_key(server, "secretsmanager", plain).get_secret_value(SecretId=secret)
    with raises_aws("AccessDenied", status=403, match="MultiFactorAuthentication failed"):
        sts.get_session_token(SerialNumber=serial)
    creds = sts.get_session_token(SerialNumber=serial, TokenCode=fresh_code(seed, used))["Credentials"]
    assert as_key(server, "secretsmanager", creds).get_secret_value(SecretId=secret)["SecretString"] == "v"
    with raises_aws("ValidationError", match="tokenCode"):
        sts.get_session_token(SerialNumber=serial, TokenCode="12345x")


def test_seed_is_not_stored_in_plaintext(server, iam, uniq):
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=uniq("plain"))["VirtualMFADevice"]
    raw = base64.b32decode(device["Base32StringSeed"])
    stored = b"".join(p.read_bytes() for p in server.data_dir.iterdir() if p.name.startswith("tumbler.db"))
    assert device["SerialNumber"].encode() in stored  # control: the row is there
    assert raw not in stored and device["Base32StringSeed"] not in stored
    iam.delete_virtual_mfa_device(SerialNumber=device["SerialNumber"])


@pytest.fixture
def role_for(server, iam, uniq):
    """A role any principal of the account may assume (also with a source identity), with AdministratorAccess."""

    def make(extra_actions=("sts:SetSourceIdentity",)):
        trust = doc(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["sts:AssumeRole", *extra_actions],
            }
        )
        role = iam.create_role(RoleName=uniq("r"), AssumeRolePolicyDocument=trust)["Role"]
        iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        return role["Arn"]

    return make


def test_policy_arns_cap_the_session(server, iam, sm, uniq, role_for):
    a = sm.create_secret(Name=uniq("pa/a"), SecretString="a")["ARN"]
    b = sm.create_secret(Name=uniq("pa/b"), SecretString="b")["ARN"]
    only_a = iam.create_policy(
        PolicyName=uniq("only-a"),
        PolicyDocument=doc({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": a}),
    )["Policy"]["Arn"]
    sts = make_client(server, service="sts")
    resp = sts.assume_role(RoleArn=role_for(), RoleSessionName="capped", PolicyArns=[{"arn": only_a}])
    assert resp["PackedPolicySize"] > 0
    session = as_key(server, "secretsmanager", resp["Credentials"])
    assert session.get_secret_value(SecretId=a)["SecretString"] == "a"
    with raises_aws("AccessDeniedException", match="because no session policy allows"):
        session.get_secret_value(SecretId=b)
    # Its current version applies: widen it, and the session may read b.
    iam.create_policy_version(
        PolicyArn=only_a,
        SetAsDefault=True,
        PolicyDocument=doc({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [a, b]}),
    )
    assert session.get_secret_value(SecretId=b)["SecretString"] == "b"
    with raises_aws("InvalidParameterValue", match="does not exist"):
        sts.assume_role(
            RoleArn=role_for(),
            RoleSessionName="ghost",
            PolicyArns=[{"arn": f"arn:aws:iam::{ACCOUNT}:policy/{uniq('ghost')}"}],
        )
    with raises_aws("ValidationError", match="policyArns"):
        sts.assume_role(RoleArn=role_for(), RoleSessionName="many", PolicyArns=[{"arn": only_a}] * 11)


def test_source_identity_is_set_kept_and_checked(server, iam, sm, uniq, role_for):
    sts = make_client(server, service="sts")
    first = sts.assume_role(RoleArn=role_for(), RoleSessionName="one", SourceIdentity="alice@example.com")
    assert first["SourceIdentity"] == "alice@example.com"
    chained_sts = as_key(server, "sts", first["Credentials"])
    second = chained_sts.assume_role(RoleArn=role_for(), RoleSessionName="two")
    assert second["SourceIdentity"] == "alice@example.com"
    with raises_aws("AccessDenied", status=403, match="can't be changed"):
        chained_sts.assume_role(RoleArn=role_for(), RoleSessionName="three", SourceIdentity="mallory")
    # Setting one needs sts:SetSourceIdentity in the trust policy.
    with raises_aws("AccessDenied", status=403, match="sts:SetSourceIdentity"):
        sts.assume_role(RoleArn=role_for(extra_actions=()), RoleSessionName="four", SourceIdentity="alice")
    with raises_aws("ValidationError", match="sourceIdentity"):
        sts.assume_role(RoleArn=role_for(), RoleSessionName="five", SourceIdentity="aws:alice")
    # aws:SourceIdentity reaches the session's requests.
    secret = sm.create_secret(Name=uniq("si"), SecretString="v")["ARN"]
    sm.put_resource_policy(
        SecretId=secret,
        ResourcePolicy=doc(
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:SourceIdentity": "alice@example.com"}},
            }
        ),
    )
    assert as_key(server, "secretsmanager", second["Credentials"]).get_secret_value(SecretId=secret)["SecretString"] == "v"
    assert recorded_session(server, second["Credentials"]["AccessKeyId"])["sourceIdentity"] == "alice@example.com"
    other = sts.assume_role(RoleArn=role_for(), RoleSessionName="bob", SourceIdentity="bob")["Credentials"]
    with raises_aws("AccessDeniedException", match="explicit deny in a resource-based policy"):
        as_key(server, "secretsmanager", other).get_secret_value(SecretId=secret)
