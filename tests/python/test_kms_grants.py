"""KMS grants with boto3 against the real server: a grant lets a principal with
no policy of its own use a key, within the grant's operations and
encryption-context constraints; revoking or retiring it takes the access
away; an explicit deny still wins; Secrets Manager honours a grant on a
secret's customer key; and bad input gets KMS's error codes."""

from __future__ import annotations

import json

import pytest

from conftest import ACCOUNT, make_client, raises_aws


@pytest.fixture(scope="module")
def kms(server):
    return make_client(server, service="kms")


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


def new_user(server, iam, uniq, *statements):
    """A user with only `statements` as its IAM policy: (arn, kms client, sm client)."""
    name = uniq("grantee")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(
            UserName=name,
            PolicyName="p",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
        )
    k = iam.create_access_key(UserName=name)["AccessKey"]
    creds = {"access_key": k["AccessKeyId"], "secret_key": k["SecretAccessKey"]}
    return arn, make_client(server, service="kms", **creds), make_client(server, **creds)


def test_grant_allows_its_operations_under_its_constraints(server, kms, iam, uniq):
    key = kms.create_key(Description="granted")["KeyMetadata"]
    arn, user, _ = new_user(server, iam, uniq)
    with raises_aws("AccessDeniedException", match=f"User: {arn} is not authorized to perform: kms:Encrypt"):
        user.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"app": "billing"})

    grant = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=arn,
        Operations=["Encrypt", "Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextSubset": {"app": "billing"}},
        Name="billing-app",
    )
    assert len(grant["GrantId"]) == 64 and grant["GrantToken"]
    # Within the grant: any context containing app=billing.
    blob = user.encrypt(KeyId=key["Arn"], Plaintext=b"pay", EncryptionContext={"app": "billing", "run": "7"})[
        "CiphertextBlob"
    ]
    assert (
        user.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "billing", "run": "7"})["Plaintext"] == b"pay"
    )
    assert user.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    # Outside it: another context, no context, an operation not granted.
    with raises_aws("AccessDeniedException", match="kms:Encrypt"):
        user.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"app": "payroll"})
    with raises_aws("AccessDeniedException", match="kms:Encrypt"):
        user.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    with raises_aws("AccessDeniedException", match="kms:GenerateDataKey"):
        user.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"app": "billing"})
    # The same named grant asked for again is the same grant.
    again = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=arn,
        Operations=["DescribeKey", "Encrypt", "Decrypt"],
        Constraints={"EncryptionContextSubset": {"app": "billing"}},
        Name="billing-app",
    )
    assert again["GrantId"] == grant["GrantId"]

    listed = kms.list_grants(KeyId=key["KeyId"])["Grants"]
    assert [g["GrantId"] for g in listed] == [grant["GrantId"]]
    entry = listed[0]
    assert entry["GranteePrincipal"] == arn and entry["KeyId"] == key["KeyId"] and entry["Name"] == "billing-app"
    assert sorted(entry["Operations"]) == ["Decrypt", "DescribeKey", "Encrypt"]
    assert entry["Constraints"] == {"EncryptionContextSubset": {"app": "billing"}}
    assert entry["IssuingAccount"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert kms.list_grants(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:user/nobody")["Grants"] == []

    kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with raises_aws("AccessDeniedException", match="kms:Decrypt"):
        user.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "billing", "run": "7"})
    with raises_aws("NotFoundException", match=grant["GrantId"]):
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])


def test_encryption_context_equals_and_explicit_deny(server, kms, iam, uniq):
    key = kms.create_key()["KeyMetadata"]
    arn, user, _ = new_user(
        server,
        iam,
        uniq,
        {"Effect": "Deny", "Action": "kms:GenerateDataKey", "Resource": "*"},
    )
    kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=arn,
        Operations=["Encrypt", "GenerateDataKey"],
        Constraints={"EncryptionContextEquals": {"tenant": "a"}},
    )
    user.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"tenant": "a"})
    with raises_aws("AccessDeniedException"):
        user.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"tenant": "a", "more": "b"})
    # A grant never overrides an explicit deny.
    with raises_aws("AccessDeniedException", match="explicit deny"):
        user.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"tenant": "a"})


def test_retire_by_token_and_list_retirable(server, kms, iam, uniq):
    key = kms.create_key()["KeyMetadata"]
    grantee_arn, grantee, _ = new_user(server, iam, uniq)
    retirer_arn, retirer, _ = new_user(
        server, iam, uniq, {"Effect": "Allow", "Action": "kms:ListRetirableGrants", "Resource": "*"}
    )
    g = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=grantee_arn, RetiringPrincipal=retirer_arn, Operations=["Encrypt"]
    )
    mine = retirer.list_retirable_grants(RetiringPrincipal=retirer_arn)["Grants"]
    assert [x["GrantId"] for x in mine] == [g["GrantId"]]
    # The grantee may not retire it (RetireGrant is not among its operations).
    with raises_aws("AccessDeniedException", match="kms:RetireGrant"):
        grantee.retire_grant(GrantToken=g["GrantToken"])
    grantee.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    retirer.retire_grant(GrantToken=g["GrantToken"])
    with raises_aws("AccessDeniedException", match="kms:Encrypt"):
        grantee.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    with raises_aws("InvalidGrantTokenException"):
        retirer.retire_grant(GrantToken=g["GrantToken"])

    # A grantee granted RetireGrant retires its own grant by key and id.
    own = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee_arn, Operations=["Encrypt", "RetireGrant"])
    grantee.retire_grant(KeyId=key["Arn"], GrantId=own["GrantId"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_grantee_with_create_grant_passes_on_no_more_than_it_holds(server, kms, iam, uniq):
    key = kms.create_key()["KeyMetadata"]
    middle_arn, middle, _ = new_user(server, iam, uniq)
    last_arn, last, _ = new_user(server, iam, uniq)
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=middle_arn, Operations=["Encrypt", "CreateGrant"])
    with raises_aws("AccessDeniedException", match="does not cover"):
        middle.create_grant(KeyId=key["KeyId"], GranteePrincipal=last_arn, Operations=["Decrypt"])
    middle.create_grant(KeyId=key["KeyId"], GranteePrincipal=last_arn, Operations=["Encrypt"])
    last.encrypt(KeyId=key["KeyId"], Plaintext=b"x")


def test_secrets_manager_honours_a_grant_on_the_secrets_key(server, kms, sm, iam, uniq):
    key = kms.create_key()["KeyMetadata"]
    arn = sm.create_secret(Name=uniq("granted-secret"), SecretString="via-grant", KmsKeyId=key["KeyId"])["ARN"]
    user_arn, _, user_sm = new_user(
        server, iam, uniq, {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    )
    with raises_aws("AccessDeniedException", match="Access to KMS is not allowed"):
        user_sm.get_secret_value(SecretId=arn)
    kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=user_arn,
        Operations=["Decrypt"],
        Constraints={"EncryptionContextSubset": {"SecretARN": arn}},
    )
    assert user_sm.get_secret_value(SecretId=arn)["SecretString"] == "via-grant"
    # The constraint binds the grant to that one secret.
    other = sm.create_secret(Name=uniq("other-secret"), SecretString="not-granted", KmsKeyId=key["KeyId"])["ARN"]
    with raises_aws("AccessDeniedException", match="Access to KMS is not allowed"):
        user_sm.get_secret_value(SecretId=other)


def test_grant_bad_input(server, kms, uniq):
    key = kms.create_key()["KeyMetadata"]
    user = f"arn:aws:iam::{ACCOUNT}:user/someone"
    kms_raw = make_client(server, service="kms", validate=False)
    with raises_aws("ValidationException", match="operations"):
        kms_raw.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=["Explode"])
    with raises_aws("ValidationException", match="not valid for a symmetric encryption KMS key"):
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=["Sign"])
    with raises_aws("ValidationException", match="operations"):
        kms_raw.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=[])
    with raises_aws("ValidationException", match="granteePrincipal"):
        kms_raw.create_grant(KeyId=key["KeyId"], GranteePrincipal="not a principal!", Operations=["Encrypt"])
    with raises_aws("ValidationException", match="not a valid principal"):
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal="someone", Operations=["Encrypt"])
    with raises_aws("ValidationException", match="name"):
        kms_raw.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=["Encrypt"], Name="bad name")
    with raises_aws("NotFoundException"):
        kms.create_grant(
            KeyId="11111111-2222-3333-4444-555555555555", GranteePrincipal=user, Operations=["Encrypt"]
        )
    with raises_aws("DryRunOperationException", status=412):
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=["Encrypt"], DryRun=True)
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with raises_aws("ValidationException", match="GrantToken"):
        kms.retire_grant()
    with raises_aws("InvalidGrantTokenException"):
        kms.retire_grant(GrantToken="bm90LWEtdG9rZW4")
    with raises_aws("InvalidMarkerException"):
        kms.list_grants(KeyId=key["KeyId"], Marker="nope")
    kms.disable_key(KeyId=key["KeyId"])
    with raises_aws("DisabledException"):
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=["Encrypt"])
    # Paging.
    kms.enable_key(KeyId=key["KeyId"])
    ids = {kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=user, Operations=["Encrypt"])["GrantId"] for _ in range(3)}
    first = kms.list_grants(KeyId=key["KeyId"], Limit=2)
    assert first["Truncated"] and len(first["Grants"]) == 2
    rest = kms.list_grants(KeyId=key["KeyId"], Limit=2, Marker=first["NextMarker"])
    assert not rest["Truncated"]
    assert {g["GrantId"] for g in first["Grants"] + rest["Grants"]} == ids
