"""The root of trust: where the root key comes from (a key file, TUMBLER_ROOT_KEY,
a passphrase via Argon2id, a remote KMS), and `tumbler admin rotate-root-key`,
which re-seals the keyring under a new root key while servers run.

Each test checks what a user relies on: after a rotation and a restart every
secret still reads, an IAM user's access key still signs, the audit trail still
verifies, and the old root key no longer opens the data directory."""

import base64
import json
import sqlite3
import uuid

import pytest

from conftest import ACCESS_KEY, SECRET_KEY, make_client, run_tumbler, start_server


def keyring(srv):
    return json.loads((srv.data_dir / "keyring.json").read_text())


def fill(srv, kms_key=True):
    """Secrets under the default and a customer key, and an IAM user with an
    access key: one of each kind of thing sealed under the master key."""
    sm = make_client(srv)
    values = {}
    key_id = None
    if kms_key:
        key_id = make_client(srv, service="kms").create_key(Description="root-of-trust")["KeyMetadata"]["KeyId"]
    for i in range(3):
        name = f"rot-{i}-{uuid.uuid4().hex[:8]}"
        value = f"value-{uuid.uuid4().hex}"
        kwargs = {"KmsKeyId": key_id} if key_id and i == 0 else {}
        sm.create_secret(Name=name, SecretString=value, **kwargs)
        values[name] = value
    iam = make_client(srv, service="iam")
    user = f"rot-user-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="read",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:*", "kms:Decrypt"], "Resource": "*"}]}
        ),
    )
    ak = iam.create_access_key(UserName=user)["AccessKey"]
    return values, (ak["AccessKeyId"], ak["SecretAccessKey"])


def check_all(srv, values, user_key):
    sm = make_client(srv)
    for name, value in values.items():
        assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    as_user = make_client(srv, access_key=user_key[0], secret_key=user_key[1])
    name = next(iter(values))
    assert as_user.get_secret_value(SecretId=name)["SecretString"] == values[name]


def verify_audit(srv, env=None):
    res = run_tumbler("audit", "verify", "--data-dir", str(srv.data_dir), env=env)
    assert res.returncode == 0, res.stderr


def refused_start(tmp_path, env, match):
    with pytest.raises(RuntimeError, match=match):
        srv = start_server(tmp_path, env={**(env or {}), "RUST_BACKTRACE": "0"})
        srv.kill()


def test_rotate_file_root_key_while_running_then_restart(tmp_path):
    srv = start_server(tmp_path)
    try:
        values, user_key = fill(srv)
        old_key = (srv.data_dir / "root.key").read_text()
        assert keyring(srv)["root"] == {"source": "file"}

        res = run_tumbler("admin", "rotate-root-key", "--data-dir", str(srv.data_dir))
        assert res.returncode == 0, res.stderr
        assert "Running servers go on unaffected" in res.stdout
        new_key = (srv.data_dir / "root.key").read_text()
        assert new_key != old_key and len(bytes.fromhex(new_key.strip())) == 32
        assert (srv.data_dir / "root.key").stat().st_mode & 0o777 == 0o600
        assert not (srv.data_dir / "root.key.new").exists()

        # No downtime: the running server reads and writes as before.
        check_all(srv, values, user_key)
        make_client(srv).create_secret(Name="after-rotation", SecretString="written-after")
        values["after-rotation"] = "written-after"
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()

    again = start_server(tmp_path)
    try:
        check_all(again, values, user_key)
        assert again.stop(timeout=10) == 0
    finally:
        again.kill()
    verify_audit(again)

    # The old root key no longer opens the data directory.
    (tmp_path / "data" / "root.key").write_text(old_key)
    refused_start(tmp_path, None, "root.key does not open .*keyring.json")


def test_interrupted_rotation_finishes_or_rolls_back(tmp_path):
    srv = start_server(tmp_path)
    try:
        values, user_key = fill(srv, kms_key=False)
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
    data = tmp_path / "data"
    old_key = (data / "root.key").read_text()

    # Stopped before the commit point: a stray new key file is dropped.
    (data / "root.key.new").write_text("00" * 32 + "\n")
    (data / "root.key.new").chmod(0o600)
    srv = start_server(tmp_path)
    try:
        check_all(srv, values, user_key)
    finally:
        srv.kill()
    assert not (data / "root.key.new").exists()

    # Stopped after the keyring was written but before the rename: finished.
    res = run_tumbler("admin", "rotate-root-key", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    new_key = (data / "root.key").read_text()
    (data / "root.key").rename(data / "root.key.new")
    (data / "root.key").write_text(old_key)
    (data / "root.key").chmod(0o600)
    srv = start_server(tmp_path)
    try:
        check_all(srv, values, user_key)
    finally:
        srv.kill()
    assert (data / "root.key").read_text() == new_key
    assert not (data / "root.key.new").exists()


def test_passphrase_root_key(tmp_path):
    phrase = "correct horse battery staple " + uuid.uuid4().hex[:6]
    refused_start(tmp_path, {"TUMBLER_ROOT_PASSPHRASE": "too short"}, "at least 12 characters")

    srv = start_server(tmp_path, env={"TUMBLER_ROOT_PASSPHRASE": phrase})
    try:
        ring = keyring(srv)
        assert ring["root"]["source"] == "passphrase"
        assert ring["root"]["memory_kib"] >= 65536 and ring["root"]["iterations"] >= 3
        assert not (srv.data_dir / "root.key").exists()
        values, user_key = fill(srv, kms_key=False)
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()

    refused_start(tmp_path, None, "set TUMBLER_ROOT_PASSPHRASE or TUMBLER_ROOT_PASSPHRASE_FILE")
    refused_start(tmp_path, {"TUMBLER_ROOT_PASSPHRASE": phrase + "x"}, "wrong passphrase")
    # From a file, whose final newline is not part of the passphrase.
    phrase_file = tmp_path / "phrase"
    phrase_file.write_text(phrase + "\n")
    srv = start_server(tmp_path, env={"TUMBLER_ROOT_PASSPHRASE_FILE": str(phrase_file)})
    try:
        check_all(srv, values, user_key)
        new_phrase = "a new and longer passphrase " + uuid.uuid4().hex[:6]
        res = run_tumbler(
            "admin",
            "rotate-root-key",
            "--data-dir",
            str(srv.data_dir),
            env={"TUMBLER_ROOT_PASSPHRASE": phrase, "TUMBLER_NEW_ROOT_PASSPHRASE": new_phrase},
        )
        assert res.returncode == 0, res.stderr
        check_all(srv, values, user_key)
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
    refused_start(tmp_path, {"TUMBLER_ROOT_PASSPHRASE": phrase}, "wrong passphrase")
    srv = start_server(tmp_path, env={"TUMBLER_ROOT_PASSPHRASE": new_phrase})
    try:
        check_all(srv, values, user_key)
    finally:
        srv.kill()
    verify_audit(srv, env={"TUMBLER_ROOT_PASSPHRASE": new_phrase})


def test_env_root_key_rotated_to_a_key_file(tmp_path):
    root = uuid.uuid4().hex + uuid.uuid4().hex
    srv = start_server(tmp_path, env={"TUMBLER_ROOT_KEY": root})
    try:
        assert keyring(srv)["root"] == {"source": "env"}
        assert not (srv.data_dir / "root.key").exists()
        values, user_key = fill(srv, kms_key=False)
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
    refused_start(tmp_path, None, "TUMBLER_ROOT_KEY is not set")
    refused_start(tmp_path, {"TUMBLER_ROOT_KEY": "ab" * 32}, "wrong TUMBLER_ROOT_KEY")

    res = run_tumbler(
        "admin", "rotate-root-key", "--data-dir", str(tmp_path / "data"), "--to", "file", env={"TUMBLER_ROOT_KEY": root}
    )
    assert res.returncode == 0, res.stderr
    assert keyring(srv)["root"] == {"source": "file"}
    srv = start_server(tmp_path)
    try:
        check_all(srv, values, user_key)
    finally:
        srv.kill()
    # Rotating to the same key is refused, and leaves the keyring alone.
    before = (tmp_path / "data" / "keyring.json").read_text()
    same = (tmp_path / "data" / "root.key").read_text().strip()
    res = run_tumbler(
        "admin", "rotate-root-key", "--data-dir", str(tmp_path / "data"), "--to", "env", env={"TUMBLER_NEW_ROOT_KEY": same}
    )
    assert res.returncode != 0 and "the new root key is the current one" in res.stderr
    assert (tmp_path / "data" / "keyring.json").read_text() == before


def remote_env(kms_srv):
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_remote_kms_auto_unseal(tmp_path):
    """Another Tumbler, over HTTPS with its own CA, is the remote KMS."""
    kms_srv = start_server(tmp_path / "kms", tls=True)
    try:
        kms = make_client(kms_srv, service="kms")
        key_arn = kms.create_key(Description="unseal")["KeyMetadata"]["Arn"]
        flags_env = {
            **remote_env(kms_srv),
            "TUMBLER_ROOT_KMS_KEY_ID": key_arn,
            "TUMBLER_ROOT_KMS_ENDPOINT": kms_srv.url,
            "TUMBLER_ROOT_KMS_CA_FILE": str(kms_srv.ca_path),
        }
        node = tmp_path / "node"
        srv = start_server(node, env=flags_env)
        try:
            ring = keyring(srv)
            assert ring["root"]["source"] == "kms" and ring["root"]["key_id"] == key_arn
            assert ring["root"]["region"] == "us-east-1" and ring["root"]["ciphertext"]
            assert not (srv.data_dir / "root.key").exists()
            values, user_key = fill(srv, kms_key=False)
            assert srv.stop(timeout=10) == 0
        finally:
            srv.kill()

        # Later starts need only credentials for the remote key.
        srv = start_server(node, env=remote_env(kms_srv))
        try:
            check_all(srv, values, user_key)
        finally:
            srv.kill()

        # The remote key disabled: the node cannot unseal, and says why.
        kms.disable_key(KeyId=key_arn)
        refused_start(node, remote_env(kms_srv), "remote KMS Decrypt of the root key failed .*: DisabledException: .* is disabled")
        kms.enable_key(KeyId=key_arn)
        # Credentials the remote KMS refuses.
        bad = {**remote_env(kms_srv), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        refused_start(node, bad, "remote KMS Decrypt of the root key failed .*: (UnrecognizedClient|InvalidSignature|IncompleteSignature)")

        # Re-sealed under a key file: the remote KMS is no longer needed.
        res = run_tumbler(
            "admin", "rotate-root-key", "--data-dir", str(node / "data"), "--to", "file", env=remote_env(kms_srv)
        )
        assert res.returncode == 0, res.stderr
    finally:
        kms_srv.kill()
    srv = start_server(node)
    try:
        check_all(srv, values, user_key)
    finally:
        srv.kill()


def flip_byte(db, sql, where_args, column_index=0):
    """Flip one byte in the middle of the BLOB that sql[0] selects, writing it with sql[1];
    returns the original."""
    con = sqlite3.connect(db)
    try:
        row = con.execute(sql[0], where_args).fetchone()
        assert row is not None, sql[0]
        blob = bytearray(row[column_index])
        blob[len(blob) // 2] ^= 0x01
        con.execute(sql[1], (bytes(blob), *where_args))
        con.commit()
        return bytes(row[column_index])
    finally:
        con.close()


def put_back(db, update_sql, original, where_args):
    con = sqlite3.connect(db)
    try:
        con.execute(update_sql, (original, *where_args))
        con.commit()
    finally:
        con.close()


def test_tampered_store_and_keyring_fail_closed(tmp_path):
    """One flipped byte of a stored ciphertext, a wrapped data key, KMS key
    material or the sealed master key: the read (or the start) fails with an
    integrity error, never with wrong plaintext."""
    srv = start_server(tmp_path)
    try:
        sm = make_client(srv)
        key_id = make_client(srv, service="kms").create_key()["KeyMetadata"]["KeyId"]
        arn = sm.create_secret(Name="tamper-me", SecretString="the-true-value", KmsKeyId=key_id)["ARN"]
        version = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        (version_id,) = version.keys()
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
    db = str(tmp_path / "data" / "tumbler.db")
    cases = [
        (
            "SELECT ciphertext FROM secret_versions WHERE version_id = ?",
            "UPDATE secret_versions SET ciphertext = ? WHERE version_id = ?",
            (version_id,),
        ),
        (
            "SELECT wrapped_key FROM secret_versions WHERE version_id = ?",
            "UPDATE secret_versions SET wrapped_key = ? WHERE version_id = ?",
            (version_id,),
        ),
        (
            "SELECT wrapped FROM kms_key_material WHERE key_id = ?",
            "UPDATE kms_key_material SET wrapped = ? WHERE key_id = ?",
            (key_id,),
        ),
    ]
    for select, update, args in cases:
        original = flip_byte(db, (select, update), args)
        srv = start_server(tmp_path)
        try:
            with pytest.raises(Exception) as caught:
                make_client(srv).get_secret_value(SecretId=arn)
            err = caught.value.response["Error"]
            assert err["Code"] == "DecryptionFailure", (select, err)
            assert "can't decrypt" in err["Message"], err
            assert "the-true-value" not in srv.read_stderr()
        finally:
            srv.kill()
        put_back(db, update, original, args)
    # Restored: the value reads again.
    srv = start_server(tmp_path)
    try:
        assert make_client(srv).get_secret_value(SecretId=arn)["SecretString"] == "the-true-value"
    finally:
        srv.kill()
    # The sealed master key itself.
    ring_path = tmp_path / "data" / "keyring.json"
    ring = json.loads(ring_path.read_text())
    sealed = bytearray(base64.b64decode(ring["sealed_master"]))
    sealed[len(sealed) // 2] ^= 0x01
    ring["sealed_master"] = base64.b64encode(bytes(sealed)).decode()
    ring_path.write_text(json.dumps(ring))
    refused_start(tmp_path, None, "root.key does not open .*keyring.json")
