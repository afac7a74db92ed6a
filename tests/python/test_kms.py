"""The KMS API against the real server with boto3 (and the aws CLI): the life
of a customer key and its aliases, encryption with and without encryption
context, data keys, key states, key policies and who they let in, secrets
under a customer key, and bad input with KMS's error codes."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import ACCOUNT, make_client, raises_aws, raw_request


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def kms(server):
    return make_client(server, service="kms")


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, service="iam")


@pytest.fixture
def key(kms, uniq):
    meta = kms.create_key(Description=uniq("test key"))["KeyMetadata"]
    return meta


def test_key_lifecycle_and_metadata(kms, key):
    assert key["KeyState"] == "Enabled" and key["Enabled"]
    assert key["Arn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key['KeyId']}"
    assert key["KeyManager"] == "CUSTOMER" and key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert key["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    for reference in (key["KeyId"], key["Arn"]):
        assert kms.describe_key(KeyId=reference)["KeyMetadata"]["KeyId"] == key["KeyId"]
    assert key["KeyId"] in [k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]]

    kms.disable_key(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key["KeyId"])
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion" and "DeletionDate" in described
    with raises_aws("KMSInvalidStateException", match="pending deletion"):
        kms.enable_key(KeyId=key["KeyId"])
    with raises_aws("KMSInvalidStateException", match="pending deletion"):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert kms.cancel_key_deletion(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    # As on AWS, a key whose deletion was cancelled is disabled.
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    with raises_aws("KMSInvalidStateException", match="not pending deletion"):
        kms.cancel_key_deletion(KeyId=key["KeyId"])


def test_aliases(kms, key, uniq):
    alias = f"alias/{uniq('app')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:{alias}"
    for reference in (alias, alias_arn):
        assert kms.describe_key(KeyId=reference)["KeyMetadata"]["KeyId"] == key["KeyId"]
    listed = kms.list_aliases(KeyId=key["KeyId"])["Aliases"]
    assert [(a["AliasName"], a["AliasArn"], a["TargetKeyId"]) for a in listed] == [(alias, alias_arn, key["KeyId"])]
    with raises_aws("AlreadyExistsException", match="already exists"):
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    other = kms.create_key()["KeyMetadata"]
    kms.update_alias(AliasName=alias, TargetKeyId=other["KeyId"])
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == other["KeyId"]
    kms.delete_alias(AliasName=alias)
    with raises_aws("NotFoundException", match="does not exist"):
        kms.describe_key(KeyId=alias)
    with raises_aws("NotFoundException", match="is not found"):
        kms.delete_alias(AliasName=alias)
    with raises_aws("NotAuthorizedException", match="reserved"):
        kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=key["KeyId"])
    with raises_aws("ValidationException", match="aliasName"):
        kms.create_alias(AliasName="no-prefix", TargetKeyId=key["KeyId"])
    with raises_aws("ValidationException", match="aliasName"):
        kms.create_alias(AliasName="alias/bad name!", TargetKeyId=key["KeyId"])
    # Aliases page.
    names = [f"alias/{uniq('page')}" for _ in range(3)]
    for n in names:
        kms.create_alias(AliasName=n, TargetKeyId=other["KeyId"])
    first = kms.list_aliases(KeyId=other["KeyId"], Limit=2)
    assert first["Truncated"] and len(first["Aliases"]) == 2
    rest = kms.list_aliases(KeyId=other["KeyId"], Limit=2, Marker=first["NextMarker"])
    assert not rest["Truncated"]
    assert sorted(a["AliasName"] for a in first["Aliases"] + rest["Aliases"]) == sorted(names)


def test_encrypt_decrypt_with_context(kms, key):
    ct = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"attack at dawn", EncryptionContext={"app": "x", "env": "prod"})
    assert ct["KeyId"] == key["Arn"] and ct["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = ct["CiphertextBlob"]
    # The key is found from the blob itself; the context's order does not matter.
    out = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"env": "prod", "app": "x"})
    assert out["Plaintext"] == b"attack at dawn" and out["KeyId"] == key["Arn"]
    for wrong in ({"app": "y", "env": "prod"}, {"app": "x"}, {}):
        with raises_aws("InvalidCiphertextException"):
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)
    # One flipped byte anywhere after the header: refused, never wrong plaintext.
    for i in (41, len(blob) // 2, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[i] ^= 1
        with raises_aws("InvalidCiphertextException"):
            kms.decrypt(CiphertextBlob=bytes(tampered), EncryptionContext={"app": "x", "env": "prod"})
    other = kms.create_key()["KeyMetadata"]
    with raises_aws("IncorrectKeyException"):
        kms.decrypt(CiphertextBlob=blob, KeyId=other["KeyId"], EncryptionContext={"app": "x", "env": "prod"})
    # Without context at all.
    plain = kms.encrypt(KeyId=key["Arn"], Plaintext=b"\x00\x01binary")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=plain)["Plaintext"] == b"\x00\x01binary"
    # ReEncrypt moves it under another key and context.
    moved = kms.re_encrypt(
        CiphertextBlob=plain, DestinationKeyId=other["KeyId"], DestinationEncryptionContext={"to": "other"}
    )
    assert moved["SourceKeyId"] == key["Arn"] and moved["KeyId"] == other["Arn"]
    back = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"to": "other"})
    assert back["Plaintext"] == b"\x00\x01binary" and back["KeyId"] == other["Arn"]
    # A disabled key neither encrypts nor decrypts, and works again when enabled.
    kms.disable_key(KeyId=key["KeyId"])
    with raises_aws("DisabledException", match="is disabled"):
        kms.decrypt(CiphertextBlob=plain)
    with raises_aws("DisabledException"):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=plain)["Plaintext"] == b"\x00\x01binary"


def test_data_keys_and_random(kms, key):
    dk = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"purpose": "files"})
    assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"purpose": "files"})["Plaintext"] == dk["Plaintext"]
    short = kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=7)
    assert len(short["Plaintext"]) == 7
    blind = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_128")
    assert "Plaintext" not in blind
    assert len(kms.decrypt(CiphertextBlob=blind["CiphertextBlob"])["Plaintext"]) == 16
    with raises_aws("ValidationException", match="either number of bytes or key spec"):
        kms.generate_data_key(KeyId=key["KeyId"])
    with raises_aws("ValidationException", match="numberOfBytes"):
        kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1025)
    rnd = kms.generate_random(NumberOfBytes=64)["Plaintext"]
    assert len(rnd) == 64 and rnd != kms.generate_random(NumberOfBytes=64)["Plaintext"]


def test_bad_input(server, kms, key):
    raw = make_client(server, service="kms", validate=False)
    with raises_aws("ValidationException", match="plaintext"):
        raw.encrypt(KeyId=key["KeyId"], Plaintext=b"x" * 4097)
    with raises_aws("ValidationException", match="plaintext"):
        raw.encrypt(KeyId=key["KeyId"], Plaintext=b"")
    with raises_aws("ValidationException", match="keyId"):
        raw.describe_key(KeyId="")
    with raises_aws("NotFoundException", match="does not exist"):
        kms.describe_key(KeyId="00000000-0000-0000-0000-000000000000")
    with raises_aws("NotFoundException"):
        kms.describe_key(KeyId=f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{key['KeyId']}")
    with raises_aws("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=b"not a ciphertext blob at all, far too short")
    with raises_aws("ValidationException", match="pendingWindowInDays"):
        raw.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=3)
    with raises_aws("UnsupportedOperationException"):
        kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    with raises_aws("MalformedPolicyDocumentException"):
        kms.create_key(Policy='{"Statement": [')
    with raises_aws("InvalidMarkerException"):
        kms.list_keys(Marker="nonsense")
    with raises_aws("ValidationException", match="limit"):
        raw.list_keys(Limit=0)
    # Malformed JSON and base64.
    r = raw_request(server, "TrentService.Encrypt", b'{"KeyId": "x", "Plaintext": "%%%"}', service="kms")
    assert r.status == 400 and b"SerializationException" in r.body, r.body
    r = raw_request(server, "TrentService.NoSuchThing", b"{}", service="kms")
    assert r.status == 400 and b"UnknownOperationException" in r.body, r.body


def test_key_policy_get_put_and_lockout(kms, key):
    got = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    policy = json.loads(got["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert kms.list_key_policies(KeyId=key["KeyId"])["PolicyNames"] == ["default"]
    with raises_aws("NotFoundException"):
        kms.get_key_policy(KeyId=key["KeyId"], PolicyName="other")
    # A policy that would lock the caller out is refused unless bypassed.
    locked = doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:Decrypt", "Resource": "*"}
    )
    with raises_aws("MalformedPolicyDocumentException", match="will not allow you to update the key policy"):
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=locked)
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]) == policy


def test_key_policies_decide_who_may_use_a_key(server, kms, iam, uniq):
    def user(policy=None):
        name = uniq("kmsu")
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        if policy:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return arn, make_client(server, service="kms", access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])

    key = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"s")["CiphertextBlob"]
    # The default key policy defers to IAM: no IAM policy, no access.
    nobody_arn, nobody = user()
    with raises_aws(
        "AccessDeniedException",
        match=f"User: {nobody_arn} is not authorized to perform: kms:Decrypt on resource: {key['Arn']}",
    ):
        nobody.decrypt(CiphertextBlob=blob)
    _, allowed = user(doc({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key["Arn"]}))
    assert allowed.decrypt(CiphertextBlob=blob)["Plaintext"] == b"s"

    # A key policy that names a user grants without any IAM policy; one
    # that does not name the account leaves IAM policies powerless.
    named_arn, named = user()
    _, iam_only = user(doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}))
    admin_arn = f"arn:aws:iam::{ACCOUNT}:user/admin"
    strict = doc(
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": named_arn}, "Action": "kms:Decrypt", "Resource": "*"},
    )
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=strict)
    assert named.decrypt(CiphertextBlob=blob)["Plaintext"] == b"s"
    with raises_aws("AccessDeniedException", match="kms:Decrypt"):
        iam_only.decrypt(CiphertextBlob=blob)
    # An explicit deny in the key policy beats the admin's allow.
    deny = doc(
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": admin_arn}, "Action": "kms:Decrypt", "Resource": "*"},
    )
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=deny)
    with raises_aws("AccessDeniedException", match="explicit deny in a resource-based policy"):
        kms.decrypt(CiphertextBlob=blob)
    # Encryption-context conditions.
    ctx_key = kms.create_key(
        Policy=doc(
            {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"},
            {
                "Effect": "Allow",
                "Principal": {"AWS": named_arn},
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:EncryptionContext:team": "blue"}},
            },
        )
    )["KeyMetadata"]
    named.encrypt(KeyId=ctx_key["KeyId"], Plaintext=b"x", EncryptionContext={"team": "blue"})
    with raises_aws("AccessDeniedException"):
        named.encrypt(KeyId=ctx_key["KeyId"], Plaintext=b"x", EncryptionContext={"team": "red"})


def test_aws_managed_key_is_for_secrets_manager(kms, sm, uniq):
    sm.create_secret(Name=uniq("default-key"), SecretString="v")
    meta = kms.describe_key(KeyId="alias/aws/secretsmanager")["KeyMetadata"]
    assert meta["KeyManager"] == "AWS"
    assert "alias/aws/secretsmanager" in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    # Direct use is for Secrets Manager only (kms:ViaService), as on AWS.
    with raises_aws("AccessDeniedException", match="kms:Encrypt"):
        kms.encrypt(KeyId="alias/aws/secretsmanager", Plaintext=b"x")
    with raises_aws("AccessDeniedException"):
        kms.disable_key(KeyId=meta["KeyId"])


def test_secrets_under_a_customer_key(kms, sm, uniq):
    key = kms.create_key()["KeyMetadata"]
    alias = f"alias/{uniq('secrets')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    name = uniq("cmk-secret")
    sm.create_secret(Name=name, SecretString="under-cmk", KmsKeyId=alias)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "under-cmk"
    kms.disable_key(KeyId=key["KeyId"])
    with raises_aws("DecryptionFailure", match="is disabled"):
        sm.get_secret_value(SecretId=name)
    kms.enable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "under-cmk"
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with raises_aws("DecryptionFailure"):
        sm.get_secret_value(SecretId=name)
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "under-cmk"


def test_cli_round_trip(server, aws_cli, tmp_path, uniq):
    created = aws_cli(server, "kms", "create-key", "--description", "cli key", check=True)
    key_id = json.loads(created.stdout)["KeyMetadata"]["KeyId"]
    alias = f"alias/{uniq('cli')}"
    aws_cli(server, "kms", "create-alias", "--alias-name", alias, "--target-key-id", key_id, check=True)
    (tmp_path / "p.txt").write_bytes(b"from the cli")
    enc = aws_cli(
        server, "kms", "encrypt", "--key-id", alias, "--plaintext", f"fileb://{tmp_path / 'p.txt'}",
        "--encryption-context", "app=cli", "--query", "CiphertextBlob", "--output", "text", check=True,
    )
    (tmp_path / "c.bin").write_bytes(base64.b64decode(enc.stdout.strip()))
    dec = aws_cli(
        server, "kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'c.bin'}",
        "--encryption-context", "app=cli", "--query", "Plaintext", "--output", "text", check=True,
    )
    assert base64.b64decode(dec.stdout.strip()) == b"from the cli"


def test_secrets_manager_needs_the_callers_kms_permission_for_a_customer_key(server, kms, sm, iam, uniq):
    key = kms.create_key()["KeyMetadata"]
    name = uniq("needs-kms")
    arn = sm.create_secret(Name=name, SecretString="guarded", KmsKeyId=key["KeyId"])["ARN"]
    plain_arn = sm.create_secret(Name=uniq("default-kms"), SecretString="open")["ARN"]

    def reader(*extra):
        user = uniq("smkms")
        iam.create_user(UserName=user)
        statements = [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}, *extra]
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=doc(*statements))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        return make_client(server, access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"]), make_client(
            server, service="kms", access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"]
        )

    # Secrets Manager permission alone: the default key is enough, a customer key is not.
    sm_only, _ = reader()
    assert sm_only.get_secret_value(SecretId=plain_arn)["SecretString"] == "open"
    with raises_aws("AccessDeniedException", match=f"Access to KMS is not allowed.*kms:Decrypt on resource: {key['Arn']}"):
        sm_only.get_secret_value(SecretId=arn)
    # kms:Decrypt only through Secrets Manager (kms:ViaService), with this secret's context.
    via = {
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key["Arn"],
        "Condition": {
            "StringEquals": {
                "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com",
                "kms:EncryptionContext:SecretARN": arn,
            }
        },
    }
    both, direct = reader(via)
    assert both.get_secret_value(SecretId=arn)["SecretString"] == "guarded"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"SecretARN": arn})["CiphertextBlob"]
    with raises_aws("AccessDeniedException", match="kms:Decrypt"):
        direct.decrypt(CiphertextBlob=blob, EncryptionContext={"SecretARN": arn})
    # Writing a new version needs kms:GenerateDataKey.
    writer_user = uniq("smw")
    iam.create_user(UserName=writer_user)
    iam.put_user_policy(
        UserName=writer_user,
        PolicyName="p",
        PolicyDocument=doc({"Effect": "Allow", "Action": "secretsmanager:PutSecretValue", "Resource": "*"}),
    )
    k = iam.create_access_key(UserName=writer_user)["AccessKey"]
    writer = make_client(server, access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])
    with raises_aws("AccessDeniedException", match="kms:GenerateDataKey"):
        writer.put_secret_value(SecretId=arn, SecretString="new")
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "guarded"


def test_key_tags(kms, uniq):
    key = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "blue"}]
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "red"}])
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [
        {"TagKey": "env", "TagValue": "prod"},
        {"TagKey": "team", "TagValue": "red"},
    ]
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["team"])
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "env", "TagValue": "prod"}]
    with raises_aws("TagException", match="aws:"):
        kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "aws:x", "TagValue": "y"}])


def test_rotation_keeps_old_ciphertext_readable(server, kms):
    key = kms.create_key()["KeyMetadata"]
    before = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert not status["KeyRotationEnabled"]
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=180)
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 180 and "NextRotationDate" in status
    assert kms.rotate_key_on_demand(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    after = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after"
    kms.disable_key_rotation(KeyId=key["KeyId"])
    assert not kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
    raw = make_client(server, service="kms", validate=False)
    with raises_aws("ValidationException", match="rotationPeriodInDays"):
        raw.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=30)
    # AWS rotates its managed keys itself; its key policy does not let you.
    with raises_aws("AccessDeniedException", match="kms:RotateKeyOnDemand"):
        kms.rotate_key_on_demand(KeyId="alias/aws/secretsmanager")
