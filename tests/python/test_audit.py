"""The audit trail: one CloudTrail-shaped event per call, no secret in the
store, a chain that `tumbler audit verify` checks, search, and fail-closed."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
import subprocess
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, make_client, run_tumbler, start_server


def tumbler(srv, *args: str) -> subprocess.CompletedProcess:
    return run_tumbler("audit", *args, "--data-dir", str(srv.data_dir))


def events(srv, *filters: str) -> list[dict]:
    r = tumbler(srv, "search", *filters)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def request_id(call) -> tuple[str, str | None]:
    """Run a boto3 call; its request id and error code (None on success)."""
    try:
        resp = call()
        return resp["ResponseMetadata"]["RequestId"], None
    except ClientError as e:
        return e.response["ResponseMetadata"]["RequestId"], e.response["Error"]["Code"]


def db(srv) -> sqlite3.Connection:
    return sqlite3.connect(srv.data_dir / "tumbler.db", timeout=10)


@pytest.fixture
def audited(tmp_path):
    srv = start_server(tmp_path)
    yield srv
    srv.kill()


def test_every_call_writes_exactly_one_event(audited):
    sm = make_client(audited)
    iam = make_client(audited, service="iam")
    sts = make_client(audited, service="sts")
    name = "audit-" + uuid.uuid4().hex[:8]
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                }
            ],
        }
    )
    calls = [
        ("CreateSecret", lambda: sm.create_secret(Name=name, SecretString="v1")),
        ("GetSecretValue", lambda: sm.get_secret_value(SecretId=name)),
        ("PutSecretValue", lambda: sm.put_secret_value(SecretId=name, SecretString="v2")),
        ("DescribeSecret", lambda: sm.describe_secret(SecretId=name)),
        ("ListSecrets", lambda: sm.list_secrets()),
        ("ListSecretVersionIds", lambda: sm.list_secret_version_ids(SecretId=name)),
        ("UpdateSecret", lambda: sm.update_secret(SecretId=name, Description="d")),
        ("TagResource", lambda: sm.tag_resource(SecretId=name, Tags=[{"Key": "k", "Value": "v"}])),
        ("UntagResource", lambda: sm.untag_resource(SecretId=name, TagKeys=["k"])),
        ("PutResourcePolicy", lambda: sm.put_resource_policy(SecretId=name, ResourcePolicy=policy)),
        ("GetResourcePolicy", lambda: sm.get_resource_policy(SecretId=name)),
        ("ValidateResourcePolicy", lambda: sm.validate_resource_policy(ResourcePolicy=policy)),
        ("DeleteResourcePolicy", lambda: sm.delete_resource_policy(SecretId=name)),
        ("GetRandomPassword", lambda: sm.get_random_password()),
        ("BatchGetSecretValue", lambda: sm.batch_get_secret_value(SecretIdList=[name])),
        ("DeleteSecret", lambda: sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)),
        ("RestoreSecret", lambda: sm.restore_secret(SecretId=name)),
        # Failures and refusals are calls too.
        ("GetSecretValue", lambda: sm.get_secret_value(SecretId="no-such-" + name)),
        ("CreateSecret", lambda: sm.create_secret(Name=name, SecretString="dup")),
        ("CreateUser", lambda: iam.create_user(UserName="u-" + name)),
        ("GetUser", lambda: iam.get_user(UserName="u-" + name)),
        ("GetCallerIdentity", lambda: sts.get_caller_identity()),
    ]
    expected = {}
    for op, call in calls:
        rid, code = request_id(call)
        expected[rid] = (op, code)
    assert expected[next(iter(expected))][1] is None

    # A call with a forged signature is refused, and recorded.
    bad = make_client(audited, secret_key="not-the-right-secret-key-0123456789")
    rid, code = request_id(lambda: bad.get_secret_value(SecretId=name))
    assert code == "InvalidSignatureException"
    expected[rid] = ("GetSecretValue", code)

    got = events(audited)
    by_rid: dict[str, list[dict]] = {}
    for e in got:
        by_rid.setdefault(e["requestID"], []).append(e)
    assert set(by_rid) == set(expected), "events and calls differ"
    for rid, (op, code) in expected.items():
        [e] = by_rid[rid]
        assert e["eventName"] == op
        assert e.get("errorCode") == code, (op, e)
        assert e["eventVersion"] and e["eventID"] and e["eventTime"].endswith("Z")
        assert e["sourceIPAddress"] == "127.0.0.1"
        assert "Boto3" in e["userAgent"] or "botocore" in e["userAgent"]
    assert len({e["eventID"] for e in got}) == len(got)

    create = by_rid[next(r for r, (op, c) in expected.items() if op == "CreateSecret" and c is None)][0]
    assert create["eventSource"] == "secretsmanager.amazonaws.com"
    assert create["userIdentity"]["type"] == "IAMUser"
    assert create["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert create["userIdentity"]["accessKeyId"] == "AKIATUMBLERPYTEST001"
    assert create["requestParameters"]["name"] == name
    assert create["requestParameters"]["secretString"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert create["responseElements"]["arn"].startswith(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-")
    assert create["readOnly"] is False
    get = by_rid[next(iter(r for r, (op, c) in expected.items() if op == "GetSecretValue" and c is None))][0]
    assert get["readOnly"] is True and get["responseElements"] is None
    forged = by_rid[rid][0]
    assert forged["userIdentity"]["type"] == "Unknown"
    assert forged["userIdentity"]["accessKeyId"] == "AKIATUMBLERPYTEST001"

    r = tumbler(audited, "verify")
    assert r.returncode == 0, r.stderr
    assert f"intact: {len(got)} events" in r.stdout


def test_role_sessions_are_recorded_as_assumed_roles(audited):
    iam = make_client(audited, service="iam")
    sts = make_client(audited, service="sts")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    role = iam.create_role(RoleName="auditor", AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(
        RoleName="auditor",
        PolicyName="p",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s1")["Credentials"]
    sm = boto3.session.Session().client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=audited.url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    rid, code = request_id(lambda: sm.list_secrets())
    assert code is None
    [e] = [e for e in events(audited, "--event-name", "ListSecrets") if e["requestID"] == rid]
    u = e["userIdentity"]
    assert u["type"] == "AssumedRole"
    assert u["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/auditor/s1"
    assert u["accessKeyId"] == creds["AccessKeyId"]
    assert u["sessionContext"]["sessionIssuer"]["arn"] == role["Arn"]
    assert u["sessionContext"]["sessionIssuer"]["userName"] == "auditor"
    # The AssumeRole call itself never records the credentials it handed out.
    assume = events(audited, "--event-name", "AssumeRole")
    assert len(assume) == 1 and creds["SecretAccessKey"] not in json.dumps(assume)
    # Search by the role finds the session's calls.
    assert rid in {e["requestID"] for e in events(audited, "--principal", role["Arn"])}


def test_no_secret_values_in_the_audit_store(audited):
    sm = make_client(audited)
    iam = make_client(audited, service="iam")
    marker = "S3cr3t-" + uuid.uuid4().hex
    binary = os.urandom(24) + b"BINARYMARKER" + uuid.uuid4().bytes
    sm.create_secret(Name="hush", SecretString=marker)
    sm.put_secret_value(SecretId="hush", SecretString=marker + "-v2")
    sm.create_secret(Name="hush-bin", SecretBinary=binary)
    sm.get_secret_value(SecretId="hush")
    sm.batch_get_secret_value(SecretIdList=["hush", "hush-bin"])
    password = sm.get_random_password(PasswordLength=40)["RandomPassword"]
    iam.create_user(UserName="keyholder")
    key = iam.create_access_key(UserName="keyholder")["AccessKey"]
    # Values sent where they do not belong are still not recorded.
    with pytest.raises(ClientError):
        sm.put_secret_value(SecretId="no-such-secret", SecretString=marker + "-lost")
    # Let the writer checkpoint and sync.
    assert len(events(audited)) >= 9
    needles = [
        marker.encode(),
        binary,
        base64.b64encode(binary),
        password.encode(),
        key["SecretAccessKey"].encode(),
    ]
    for path in audited.data_dir.glob("tumbler.db*"):
        blob = path.read_bytes()
        for n in needles:
            assert n not in blob, f"a secret value is in {path.name}"
    trail = tumbler(audited, "export")
    assert trail.returncode == 0
    for n in [marker, password, key["SecretAccessKey"], base64.b64encode(binary).decode()]:
        assert n not in trail.stdout


def test_verify_detects_edited_removed_and_truncated_events(audited):
    sm = make_client(audited)
    for i in range(5):
        sm.create_secret(Name=f"chain-{i}", SecretString="x")
    ok = tumbler(audited, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact: 5 events" in ok.stdout
    last_mac = ok.stdout.split("last MAC ")[1].strip()
    assert tumbler(audited, "verify", "--expect-events", "5", "--expect-mac", last_mac).returncode == 0

    audited.kill()
    with db(audited) as c:
        (original,) = c.execute("SELECT json FROM audit_events WHERE seq = 3").fetchone()
        c.execute("UPDATE audit_events SET json = ? WHERE seq = 3", (original.replace("chain-2", "chain-X"),))
    edited = tumbler(audited, "verify")
    assert edited.returncode != 0
    assert "event 3" in edited.stderr

    with db(audited) as c:
        c.execute("UPDATE audit_events SET json = ? WHERE seq = 3", (original,))
    assert tumbler(audited, "verify").returncode == 0

    with db(audited) as c:
        c.execute("DELETE FROM audit_events WHERE seq = 2")
    removed = tumbler(audited, "verify")
    assert removed.returncode != 0
    assert "event 2 is missing" in removed.stderr

    # Renumbering after a removal does not help: the MACs no longer link.
    with db(audited) as c:
        c.execute("UPDATE audit_events SET seq = seq - 1 WHERE seq > 2")
    assert tumbler(audited, "verify").returncode != 0

    # Cutting off the end shows against a noted head.
    with db(audited) as c:
        c.execute("DELETE FROM audit_events")
    assert tumbler(audited, "verify").returncode == 0
    cut = tumbler(audited, "verify", "--expect-events", "5", "--expect-mac", last_mac)
    assert cut.returncode != 0
    assert "removed from its end" in cut.stderr


def test_search_filters(audited):
    sm = make_client(audited)
    sm.create_secret(Name="findme", SecretString="x")
    arn = sm.describe_secret(SecretId="findme")["ARN"]
    sm.get_secret_value(SecretId=arn)
    with pytest.raises(ClientError):
        sm.get_secret_value(SecretId="missing")
    names = lambda evs: [e["eventName"] for e in evs]  # noqa: E731
    assert names(events(audited, "--event-name", "GetSecretValue")) == ["GetSecretValue"] * 2
    errors = events(audited, "--errors-only")
    assert names(errors) == ["GetSecretValue"] and errors[0]["errorCode"] == "ResourceNotFoundException"
    assert names(events(audited, "--resource", "findme")) == ["CreateSecret", "DescribeSecret"]
    assert names(events(audited, "--resource", arn)) == ["CreateSecret", "DescribeSecret", "GetSecretValue"]
    assert names(events(audited, "--limit", "1")) == ["CreateSecret"]
    assert events(audited, "--start-time", "2999-01-01T00:00:00Z") == []
    assert len(events(audited, "--principal", f"arn:aws:iam::{ACCOUNT}:user/admin")) == 4
    lines = tumbler(audited, "export").stdout.splitlines()
    first = json.loads(lines[0])
    assert first["seq"] == 1 and len(first["mac"]) == 64 and first["event"]["eventName"] == "CreateSecret"


def log_records(srv) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """The audit log of reads, and its records: (offset, length, first event, count)."""
    data = (srv.data_dir / "tumbler.db-audit").read_bytes()
    records, at = [], 0
    while at + 20 <= len(data):
        assert data[at:at + 4] == b"tAL1", f"a record header at {at}"
        length = int.from_bytes(data[at + 4:at + 8], "little")
        first = int.from_bytes(data[at + 8:at + 16], "little")
        count = int.from_bytes(data[at + 16:at + 20], "little")
        records.append((at, 20 + length, first, count))
        at += 20 + length
    assert at == len(data), "the log ends with a whole record"
    return data, records


def test_verify_detects_edited_and_removed_events_of_reads(audited):
    """Events of reads are appended, compressed, to the audit log of reads
    beside the database: an edit or a removal there is found as well."""
    sm = make_client(audited)
    sm.create_secret(Name="read-chain", SecretString="x")
    for _ in range(4):
        sm.get_secret_value(SecretId="read-chain")
    sm.create_secret(Name="read-chain-2", SecretString="x")
    assert tumbler(audited, "verify").returncode == 0
    assert [e["eventName"] for e in events(audited)] == ["CreateSecret"] + ["GetSecretValue"] * 4 + ["CreateSecret"]
    assert len(events(audited, "--event-name", "GetSecretValue", "--resource", "read-chain")) == 4
    audited.kill()
    with db(audited) as c:
        in_table = [seq for (seq,) in c.execute("SELECT seq FROM audit_events ORDER BY seq")]
    assert in_table == [1, 6], "events of changes are in the table, events of reads are not"
    log = audited.data_dir / "tumbler.db-audit"
    original, records = log_records(audited)
    assert [r[2] for r in records][0] == 2 and sum(r[3] for r in records) == 4
    at, length, seq, _ = records[0]
    # Flip one byte of the compressed events (past the header).
    edited = bytearray(original)
    edited[at + 20 + (length - 20) // 2] ^= 0x20
    log.write_bytes(bytes(edited))
    broken = tumbler(audited, "verify")
    assert broken.returncode != 0
    assert f"event {seq}" in broken.stderr or f"event {seq + 1}" in broken.stderr, broken.stderr
    log.write_bytes(original)
    assert tumbler(audited, "verify").returncode == 0
    log.write_bytes(original[:at] + original[at + length:])
    removed = tumbler(audited, "verify")
    assert removed.returncode != 0 and f"event {seq} is missing" in removed.stderr, removed.stderr
    # A damaged header hides what follows from readers: reported, not skipped.
    edited = bytearray(original)
    edited[at] ^= 0xFF
    log.write_bytes(bytes(edited))
    hidden = tumbler(audited, "verify")
    assert hidden.returncode != 0 and f"event {seq}" in hidden.stderr, hidden.stderr


def test_concurrent_reads_are_chained_a_batch_at_a_time(audited):
    """Reads that finish together share one block of the log and one MAC;
    the export shows which line carries it, with the bytes it covers."""
    from concurrent.futures import ThreadPoolExecutor

    sm = make_client(audited)
    sm.create_secret(Name="busy", SecretString="x")
    clients = [make_client(audited) for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda c: [c.get_secret_value(SecretId="busy") for _ in range(10)], clients))
    ok = tumbler(audited, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact: 161 events" in ok.stdout
    lines = [json.loads(line) for line in tumbler(audited, "export").stdout.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 162))
    reads = lines[1:]
    assert all(e["event"]["eventName"] == "GetSecretValue" for e in reads)
    # A line with a MAC ends a block (and carries its bytes) or is an event
    # chained alone; a line without one is followed, in its block, by one.
    for e in reads:
        if e["mac"]:
            assert len(e["mac"]) == 64 and base64.b64decode(e["block"])
        else:
            assert "block" not in e
    assert reads[-1]["mac"]
    _, records = log_records(audited)
    assert sum(r[3] for r in records) == 160
    assert len(records) == sum(1 for e in reads if e["mac"])


BLOCK = "CREATE TRIGGER block_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'blocked'); END"


def start_with_a_full_log(tmp_path, env: dict | None = None):
    """A server whose audit log of reads is /dev/full: every append to it
    fails (ENOSPC), as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "data" / "tumbler.db-audit").symlink_to("/dev/full")
    return start_server(tmp_path, env=env)


def test_calls_fail_closed_when_events_cannot_be_written(tmp_path):
    srv = start_with_a_full_log(tmp_path)
    try:
        sm = make_client(srv)
        sm.create_secret(Name="guarded", SecretString="before")
        # An event of a read that cannot be appended: the read is refused.
        with pytest.raises(ClientError) as read:
            sm.get_secret_value(SecretId="guarded")
        assert read.value.response["Error"]["Code"] == "InternalServiceError"
        assert "audit trail" in read.value.response["Error"]["Message"]
        # An event of a change that cannot be inserted: the change is refused.
        with db(srv) as c:
            c.execute(BLOCK)
        try:
            with pytest.raises(ClientError) as write:
                sm.put_secret_value(SecretId="guarded", SecretString="after")
            assert write.value.response["Error"]["Code"] == "InternalServiceError"
        finally:
            with db(srv) as c:
                c.execute("DROP TRIGGER block_audit")
        # No change without its event: the refused write left nothing behind
        # (read from the file: every read through the API is refused here).
        with db(srv) as c:
            assert c.execute("SELECT COUNT(*) FROM secret_versions").fetchone() == (1,)
        assert tumbler(srv, "verify").returncode == 0
        srv.assert_alive()
    finally:
        srv.kill()


def test_fail_open_answers_without_an_event(tmp_path):
    srv = start_with_a_full_log(tmp_path, env={"TUMBLER_AUDIT": "fail-open"})
    try:
        sm = make_client(srv)
        sm.create_secret(Name="open", SecretString="v")
        assert sm.get_secret_value(SecretId="open")["SecretString"] == "v"
        assert "audit event not written" in srv.read_stderr()
    finally:
        srv.kill()


def test_audit_off_records_nothing(tmp_path):
    srv = start_server(tmp_path, env={"TUMBLER_AUDIT": "off"})
    try:
        make_client(srv).create_secret(Name="quiet", SecretString="v")
        assert events(srv) == []
    finally:
        srv.kill()


def test_cloudtrail_lookup_events(audited):
    sm = make_client(audited)
    sm.create_secret(Name="looked-up", SecretString="x")
    arn = sm.describe_secret(SecretId="looked-up")["ARN"]
    for _ in range(3):
        sm.get_secret_value(SecretId="looked-up")
    make_client(audited, region="us-west-2").list_secrets()
    ct = make_client(audited, service="cloudtrail")

    got = ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"}])
    found = got["Events"]
    assert [e["EventName"] for e in found] == ["GetSecretValue"] * 3
    assert "NextToken" not in got
    first = found[0]
    assert first["Username"] == "admin"
    assert first["AccessKeyId"] == "AKIATUMBLERPYTEST001"
    assert first["ReadOnly"] == "true"
    assert first["EventSource"] == "secretsmanager.amazonaws.com"
    assert first["Resources"] == [{"ResourceType": "AWS::SecretsManager::Secret", "ResourceName": arn}]
    detail = json.loads(first["CloudTrailEvent"])
    assert detail["eventID"] == first["EventId"] and detail["requestParameters"] == {"secretId": "looked-up"}
    # Newest first.
    times = [e["EventTime"] for e in found]
    assert times == sorted(times, reverse=True)

    # Paging.
    sm_only = [{"AttributeKey": "EventSource", "AttributeValue": "secretsmanager.amazonaws.com"}]
    seen = []
    token = None
    while True:
        kw = {"MaxResults": 2, "LookupAttributes": sm_only, **({"NextToken": token} if token else {})}
        page = ct.lookup_events(**kw)
        assert len(page["Events"]) <= 2
        seen += [e["EventId"] for e in page["Events"]]
        token = page.get("NextToken")
        if not token:
            break
    names = [e["EventName"] for e in ct.lookup_events(LookupAttributes=sm_only)["Events"]]
    assert len(seen) == len(set(seen)) == len(names) == 5
    # This region's events only: the us-west-2 ListSecrets is not here.
    assert "ListSecrets" not in names

    by_resource = ct.lookup_events(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": arn}])
    assert {e["EventName"] for e in by_resource["Events"]} == {"CreateSecret", "DescribeSecret", "GetSecretValue"}

    with pytest.raises(ClientError) as e:
        ct.lookup_events(LookupAttributes=[{"AttributeKey": "Color", "AttributeValue": "blue"}])
    assert e.value.response["Error"]["Code"] == "InvalidLookupAttributesException"
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    with pytest.raises(ClientError) as e:
        ct.lookup_events(StartTime=now, EndTime=now - dt.timedelta(hours=1))
    assert e.value.response["Error"]["Code"] == "InvalidTimeRangeException"
    with pytest.raises(ClientError) as e:
        ct.lookup_events(NextToken="garbage")
    assert e.value.response["Error"]["Code"] == "InvalidNextTokenException"
    assert ct.lookup_events(StartTime=now + dt.timedelta(hours=1))["Events"] == []

    # Looking up is itself a recorded, authorized call.
    iam = make_client(audited, service="iam")
    iam.create_user(UserName="nosy")
    key = iam.create_access_key(UserName="nosy")["AccessKey"]
    nosy = make_client(audited, service="cloudtrail", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        nosy.lookup_events()
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "cloudtrail:LookupEvents" in e.value.response["Error"]["Message"]
    assert len(events(audited, "--event-name", "LookupEvents")) >= 8


def test_prune_keeps_the_rest_verifiable(audited):
    sm = make_client(audited)
    for i in range(6):
        sm.create_secret(Name=f"prune-{i}", SecretString="x")
    with db(audited) as c:
        (mac5,) = c.execute("SELECT hex(mac) FROM audit_events WHERE seq = 5").fetchone()
    # While the server runs, as an operator would.
    pruned = tumbler(audited, "prune", "--before", "2999-01-01T00:00:00Z")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 5 events" in pruned.stdout  # the newest event stays
    assert tumbler(audited, "prune", "--older-than-days", "1").stdout.startswith("nothing to prune")
    sm.create_secret(Name="prune-after", SecretString="x")
    ok = tumbler(audited, "verify", "--expect-events", "5", "--expect-mac", mac5)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 7 events (events 1 to 5 pruned at" in ok.stdout
    assert [e["requestParameters"]["name"] for e in events(audited)] == ["prune-5", "prune-after"]

    audited.kill()
    # Removing the first event left after the anchor shows.
    with db(audited) as c:
        (json6, m6) = c.execute("SELECT json, mac FROM audit_events WHERE seq = 6").fetchone()
        c.execute("DELETE FROM audit_events WHERE seq = 6")
    gap = tumbler(audited, "verify")
    assert gap.returncode != 0 and "event 6 is missing" in gap.stderr
    # Moving the anchor over it without the root key does not pass either.
    with db(audited) as c:
        c.execute("UPDATE audit_anchor SET seq = 6, mac = ?", (m6,))
    forged = tumbler(audited, "verify")
    assert forged.returncode != 0 and "not authentic" in forged.stderr
    # A broken chain is never pruned.
    with db(audited) as c:
        c.execute("INSERT INTO audit_events (seq, json, mac) VALUES (6, ?, ?)", (json6.replace("prune-5", "prune-X"), m6))
        c.execute("UPDATE audit_anchor SET seq = 5, mac = X'" + mac5 + "'")
    refused = tumbler(audited, "prune", "--before", "2999-01-01T00:00:00Z")
    assert refused.returncode != 0 and "broken at event 6" in refused.stderr
    with db(audited) as c:
        assert c.execute("SELECT COUNT(*) FROM audit_events").fetchone() == (2,)


def test_server_retention_keeps_recent_events(tmp_path):
    srv = start_server(tmp_path, env={"TUMBLER_AUDIT_RETENTION_DAYS": "1"})
    try:
        sm = make_client(srv)
        for i in range(3):
            sm.create_secret(Name=f"kept-{i}", SecretString="x")
        time.sleep(0.5)
        ok = tumbler(srv, "verify")
        assert ok.returncode == 0 and "intact: 3 events;" in ok.stdout, ok.stdout + ok.stderr
    finally:
        srv.kill()
    # A retention of 0 days is refused at start.
    r = run_tumbler("server", "--data-dir", str(tmp_path / "x"), "--audit-retention-days", "0")
    assert r.returncode != 0 and "audit-retention-days" in r.stderr
