"""No secret value in plaintext in the store or the logs (PRODUCT.md, quality bars),
and a clean exit on SIGTERM.

Each test runs its own server, writes distinctive `canary-<uuid>` values through
every path that carries a value (including the error paths), stops the server
with SIGTERM and then greps the SQLite files and the captured stdout/stderr."""

import base64
import resource
import uuid

import pytest

from conftest import (
    SECRET_KEY,
    make_client,
    raw_request,
    run_tumbler,
    start_server,
    token,
)
from botocore.exceptions import ClientError


def canary(kind):
    return f"canary-{kind}-{uuid.uuid4()}"


def needles(value):
    """The forms in which a value could leak: raw bytes and base64 (JSON blobs)."""
    raw = value.encode() if isinstance(value, str) else value
    out = {raw, base64.b64encode(raw)}
    # Also a distinctive middle part, in case of truncation or re-encoding at the edges.
    if len(raw) > 24:
        out.add(raw[8:-8])
    return out


def exercise(srv):
    """Write and read values every way we can; return the plaintexts written."""
    sm = make_client(srv)
    secrets = []
    name = "hygiene-" + uuid.uuid4().hex[:12]

    s1 = canary("create-string")
    sm.create_secret(Name=name, SecretString=s1, Description="plain description is fine")
    secrets.append(s1)

    b1 = b"\x00\x01" + canary("create-binary").encode() + b"\xff"
    sm.create_secret(Name=name + "-bin", SecretBinary=b1)
    secrets.append(b1)

    s2 = canary("put")
    sm.put_secret_value(SecretId=name, SecretString=s2, VersionStages=["AWSCURRENT", "custom"])
    secrets.append(s2)

    s3 = canary("update")
    tok = token()
    sm.update_secret(SecretId=name, SecretString=s3, ClientRequestToken=tok)
    secrets.append(s3)

    json_value = '{"username":"alice","password":"%s"}' % canary("json-password")
    sm.put_secret_value(SecretId=name, SecretString=json_value)
    secrets.append(json_value)

    # Reads (GetSecretValue, BatchGetSecretValue, by stage and version).
    sm.get_secret_value(SecretId=name)
    sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    sm.get_secret_value(SecretId=name, VersionId=tok)
    sm.get_secret_value(SecretId=name + "-bin")
    sm.batch_get_secret_value(SecretIdList=[name, name + "-bin", "hygiene-missing"])

    # Error paths that carry a value.
    s4 = canary("token-conflict")
    try:
        sm.update_secret(SecretId=name, SecretString=s4, ClientRequestToken=tok)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceExistsException"
        assert s4 not in str(e.response)
    secrets.append(s4)

    s5 = canary("too-big")
    big = s5 + "q" * (65537 - len(s5))
    try:
        sm.put_secret_value(SecretId=name, SecretString=big)
    except ClientError as e:
        assert s5 not in str(e.response)
    secrets.append(s5)

    s6 = canary("both")
    try:
        sm.put_secret_value(SecretId=name, SecretString=s6, SecretBinary=s6.encode())
    except ClientError as e:
        assert s6 not in str(e.response)
    secrets.append(s6)

    s7 = canary("malformed-json")
    r = raw_request(srv, "secretsmanager.PutSecretValue", '{"SecretId": "%s", "SecretString": "%s"' % (name, s7))
    assert r.status == 400 and s7.encode() not in r.body
    secrets.append(s7)

    s8 = canary("wrong-type")
    r = raw_request(srv, "secretsmanager.PutSecretValue", {"SecretId": name, "SecretString": [s8]})
    assert r.status == 400 and s8.encode() not in r.body
    secrets.append(s8)

    s9 = canary("bad-signature")
    r = raw_request(
        srv,
        "secretsmanager.PutSecretValue",
        {"SecretId": name, "SecretString": s9, "ClientRequestToken": token()},
        secret_key="z" * 40,
    )
    assert r.status == 400 and s9.encode() not in r.body
    secrets.append(s9)

    s10 = canary("pending-delete")
    other = name + "-gone"
    sm.create_secret(Name=other, SecretString=canary("deleted-value"))
    sm.delete_secret(SecretId=other, RecoveryWindowInDays=7)
    try:
        sm.put_secret_value(SecretId=other, SecretString=s10)
    except ClientError:
        pass
    secrets.append(s10)

    # Generated passwords are secrets too.
    for _ in range(3):
        secrets.append(sm.get_random_password(PasswordLength=40)["RandomPassword"])
    return name, secrets


def scan(srv, values):
    """Return [(file, form)] for every leaked value."""
    files = [p for p in srv.data_dir.iterdir() if p.name.startswith("tumbler.db")]
    assert any(p.name == "tumbler.db" for p in files), sorted(p.name for p in srv.data_dir.iterdir())
    files += [srv.stderr_path, srv.stdout_path]
    hits = []
    for path in files:
        if not path.exists():
            continue
        data = path.read_bytes()
        for v in values:
            for form in needles(v):
                if form in data:
                    hits.append((path.name, form[:60]))
    return hits


@pytest.mark.parametrize("log_level", [None, "trace"], ids=["default-logging", "RUST_LOG=trace"])
def test_no_plaintext_in_store_or_logs(tmp_path, log_level):
    srv = start_server(tmp_path, env={"RUST_LOG": log_level} if log_level else None)
    try:
        name, values = exercise(srv)
        code = srv.stop(timeout=10)
        # SIGTERM: a clean exit within ~10 s.
        assert code == 0, f"tumbler exited with {code} after SIGTERM; stderr tail: {srv.read_stderr()[-2000:]}"
    finally:
        srv.kill()
    # Control: the grep does see what is stored in clear (names are metadata, not secrets).
    store = b"".join(p.read_bytes() for p in srv.data_dir.iterdir() if p.name.startswith("tumbler.db"))
    assert name.encode() in store
    hits = scan(srv, values)
    assert hits == [], f"plaintext secret values found: {hits}"
    # Events of reads are stored compressed, where a grep of the file cannot
    # see them: the decoded trail must hold no value either.
    trail = run_tumbler("audit", "export", "--data-dir", str(srv.data_dir))
    assert trail.returncode == 0, trail.stderr
    assert '"eventName":"GetSecretValue"' in trail.stdout  # control: reads are in it
    leaked = [form[:60] for v in values for form in needles(v) if form in trail.stdout.encode()]
    assert leaked == [], f"secret values in the audit trail: {leaked}"


def test_bootstrap_secret_key_not_in_plaintext(tmp_path):
    srv = start_server(tmp_path, env={"RUST_LOG": "trace"})
    try:
        make_client(srv).list_secrets()
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
    # It is in DATA/credentials by design; nowhere else.
    assert SECRET_KEY in srv.credentials_path.read_text()
    assert (srv.credentials_path.stat().st_mode & 0o777) == 0o600
    hits = scan(srv, [SECRET_KEY])
    assert hits == [], f"bootstrap secret access key found in plaintext: {hits}"


def test_restart_keeps_values(tmp_path):
    srv = start_server(tmp_path)
    name = "restart-" + uuid.uuid4().hex[:12]
    value = canary("restart")
    try:
        arn = make_client(srv).create_secret(Name=name, SecretString=value)["ARN"]
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
    again = start_server(tmp_path)
    try:
        got = make_client(again).get_secret_value(SecretId=name)
        assert got["SecretString"] == value and got["ARN"] == arn
        assert again.stop(timeout=10) == 0
    finally:
        again.kill()


def core_limit(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max core file size"):
            return line.split()[4:6]
    raise AssertionError("no core limit in /proc/<pid>/limits")


def test_no_core_dumps_unless_allowed(server, tmp_path):
    # A core file would hold the root key and unsealed values.
    assert core_limit(server.proc.pid) == ["0", "0"]
    srv = start_server(tmp_path, env={"TUMBLER_ALLOW_CORE_DUMPS": "true"})
    try:
        # Inherited unchanged from this process.
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        expected = ["unlimited" if v == resource.RLIM_INFINITY else str(v) for v in (soft, hard)]
        assert core_limit(srv.proc.pid) == expected
    finally:
        srv.kill()
