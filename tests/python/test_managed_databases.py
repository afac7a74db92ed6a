"""Managed master passwords: a database registered with Tumbler gets a
generated master password, kept in a secret Tumbler owns and rotates.

Driven over the API (TumblerDatabases.*, SigV4 for the service `tumbler`)
and with `tumbler db`, against a real PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import string
import uuid

import pytest

from conftest import (
    REGION,
    make_client,
    raises_aws,
    raw_request,
    run_aws,
    run_tumbler,
    start_server,
    wait_for,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory, pg, maria):
    base = tmp_path_factory.mktemp("tumbler-managed")
    server = start_server(base, tls=True)
    yield server
    server.kill()


def db_call(srv, op: str, body: dict, **kw):
    return raw_request(srv, f"TumblerDatabases.{op}", body, service="tumbler", **kw)


def pg_master(pg, name: str, password: str) -> None:
    with pg.admin() as c:
        c.execute(f'CREATE ROLE "{name}" LOGIN SUPERUSER PASSWORD %s', (password,))


def register_pg(srv, pg, user: str, password: str, **extra):
    body = {
        "Engine": "postgres", "Host": "127.0.0.1", "Port": pg.port, "MasterUsername": user,
        "MasterUserPassword": password, "ManageMasterUserPassword": True, "SslMode": "disable", **extra,
    }
    return db_call(srv, "RegisterDatabase", body)


def test_register_sets_a_generated_password_kept_in_an_owned_secret(srv, pg):
    user = f"master_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    r = register_pg(srv, pg, user, "typed-once", DbName="postgres")
    assert r.status == 200, r.body
    db = r.json["Database"]
    assert db["Engine"] == "postgres" and db["MasterUsername"] == user
    assert db["DatabaseArn"] == f"arn:aws:tumbler:{REGION}:000000000000:database/{db['DatabaseId']}"
    secret = db["MasterUserSecret"]
    assert secret["SecretStatus"] == "active" or secret["SecretStatus"] == "rotating"
    assert secret["KmsKeyId"] == "alias/aws/secretsmanager"
    assert f":secret:tumbler!db-{db['DatabaseId']}-" in secret["SecretArn"]
    assert secret["RotationRules"]["ScheduleExpression"] == "rate(7 days)"

    sm = make_client(srv)
    described = sm.describe_secret(SecretId=secret["SecretArn"])
    assert described["OwningService"] == "tumbler-db" and described["RotationEnabled"] is True
    value = json.loads(sm.get_secret_value(SecretId=secret["SecretArn"])["SecretString"])
    password = value["password"]
    # Aurora's rule: 28 characters, each kind present.
    assert len(password) == 28
    for kind in (string.ascii_uppercase, string.ascii_lowercase, string.digits, string.punctuation):
        assert any(c in kind for c in password), password
    assert value["username"] == user and value["host"] == "127.0.0.1" and value["port"] == pg.port
    assert pg.can_login(user, password)
    assert not pg.can_login(user, "typed-once")
    # The first (test-only) rotation settles to active, the password unchanged.
    wait_for(lambda: db_call(srv, "DescribeDatabase", {"DatabaseId": db["DatabaseId"]})
             .json["Database"]["MasterUserSecret"]["SecretStatus"] == "active", what="active")
    assert json.loads(sm.get_secret_value(SecretId=secret["SecretArn"])["SecretString"])["password"] == password

    # The bootstrap password never reached the audit trail.
    trail = run_tumbler("audit", "export", "--data-dir", str(srv.data_dir)).stdout
    assert "RegisterDatabase" in trail
    assert "typed-once" not in trail and password not in trail


def test_owned_secrets_refuse_direct_changes_naming_the_owner(srv, pg):
    user = f"owned_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    db = register_pg(srv, pg, user, "typed-once").json["Database"]
    arn = db["MasterUserSecret"]["SecretArn"]
    sm = make_client(srv)
    message = "This secret is managed by the service tumbler-db, and you must use that service to update it."
    with raises_aws("InvalidRequestException", message):
        sm.put_secret_value(SecretId=arn, SecretString="{}")
    with raises_aws("InvalidRequestException", message):
        sm.update_secret(SecretId=arn, SecretString="{}")
    with raises_aws("InvalidRequestException", message):
        sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    with raises_aws("InvalidRequestException", message):
        sm.rotate_secret(SecretId=arn, RotationLambdaARN="arn:aws:lambda:::function:tumbler-random-password")
    with raises_aws("InvalidRequestException", message):
        sm.cancel_rotate_secret(SecretId=arn)
    # Users may still tag it, and change its schedule.
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "team", "Value": "db"}])
    sm.rotate_secret(SecretId=arn, RotationRules={"ScheduleExpression": "rate(3 days)"}, RotateImmediately=False)
    assert sm.describe_secret(SecretId=arn)["RotationRules"]["ScheduleExpression"] == "rate(3 days)"
    # CreateSecret refuses a `!` name: those are service-owned.
    with raises_aws("ValidationException"):
        sm.create_secret(Name="tumbler!db-mine", SecretString="x")


def test_rotate_master_user_password_now(srv, pg):
    user = f"rot_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    db = register_pg(srv, pg, user, "typed-once").json["Database"]
    sm = make_client(srv)
    arn = db["MasterUserSecret"]["SecretArn"]
    wait_for(lambda: db_call(srv, "DescribeDatabase", {"DatabaseId": db["DatabaseId"]})
             .json["Database"]["MasterUserSecret"]["SecretStatus"] == "active", what="active")
    first = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["password"]
    r = db_call(srv, "ModifyDatabase", {"DatabaseId": db["DatabaseId"], "RotateMasterUserPassword": True})
    assert r.status == 200, r.body
    wait_for(lambda: json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["password"] != first)
    second = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["password"]
    assert pg.can_login(user, second) and not pg.can_login(user, first)
    assert len(second) == 32  # the single-user rotator's length


def test_a_database_tumbler_cannot_reach_is_impaired_then_recovers(srv, pg):
    user = f"imp_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    db = register_pg(srv, pg, user, "typed-once").json["Database"]
    dbid = db["DatabaseId"]
    status = lambda: db_call(srv, "DescribeDatabase", {"DatabaseId": dbid}).json["Database"]["MasterUserSecret"]  # noqa: E731
    wait_for(lambda: status()["SecretStatus"] == "active", what="active")
    pg.stop()
    try:
        db_call(srv, "ModifyDatabase", {"DatabaseId": dbid, "RotateMasterUserPassword": True})
        wait_for(lambda: status()["SecretStatus"] == "impaired", what="impaired")
        assert "cannot log in to PostgreSQL" in status()["TumblerRotationStatus"]["LastError"]["Message"]
    finally:
        pg.start()
    arn = db["MasterUserSecret"]["SecretArn"]
    token = status()["TumblerRotationStatus"]["VersionId"]
    make_client(srv).rotate_secret(SecretId=arn, ClientRequestToken=token)
    wait_for(lambda: status()["SecretStatus"] == "active", what="recovered")
    value = json.loads(make_client(srv).get_secret_value(SecretId=arn)["SecretString"])
    assert pg.can_login(user, value["password"])


def test_register_with_a_wrong_bootstrap_password_leaves_nothing(srv, pg):
    user = f"wrong_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "right-one")
    before = make_client(srv).list_secrets(Filters=[{"Key": "owning-service", "Values": ["tumbler-db"]}])
    r = register_pg(srv, pg, user, "wrong-one")
    assert r.status == 400 and r.code == "InvalidRequestException", r.body
    assert "could not set the managed master password" in r.message
    assert "password authentication failed" in r.message and "wrong-one" not in r.message
    after = make_client(srv).list_secrets(Filters=[{"Key": "owning-service", "Values": ["tumbler-db"]}])
    assert len(after["SecretList"]) == len(before["SecretList"])
    assert pg.can_login(user, "right-one")


@pytest.mark.parametrize(
    "change, code, message",
    [
        ({"Engine": "oracle"}, "InvalidParameterException", "Engine must be postgres, mysql or mariadb."),
        ({"Port": 70000}, "InvalidParameterException", "Port must be 1 to 65535."),
        ({"Host": ""}, "InvalidParameterException", "Host is required, a name or address of at most 253 characters."),
        ({"RotationSchedule": "rate(7 fortnights)"}, "InvalidParameterException", None),
        ({"RotationSchedule": "cron(every day)"}, "InvalidParameterException", None),
        ({"ManageMasterUserPassword": False}, "InvalidParameterException", None),
        ({"MasterUserPassword": None}, "InvalidParameterException", None),
        ({"SslMode": "sometimes"}, "InvalidParameterException", None),
        ({"Port": "5432"}, "SerializationException", None),
    ],
)
def test_register_refuses_bad_input(srv, pg, change, code, message):
    body = {"Engine": "postgres", "Host": "127.0.0.1", "Port": pg.port, "MasterUsername": "x",
            "MasterUserPassword": "y", "ManageMasterUserPassword": True, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = db_call(srv, "RegisterDatabase", body)
    assert r.status == 400 and r.code == code, r.body
    if message:
        assert r.message == message


def test_unknown_and_hidden_registrations(srv):
    r = db_call(srv, "DescribeDatabase", {"DatabaseId": "no-such-id"})
    assert r.status == 400 and r.code == "ResourceNotFoundException"
    r = db_call(srv, "FlyToTheMoon", {})
    assert r.code == "UnknownOperationException"
    r = db_call(srv, "DescribeDatabase", {"DatabaseId": "x"}, sign=False)
    assert r.code == "MissingAuthenticationTokenException"


def test_a_user_without_permission_sees_neither_registration_nor_password(srv, pg):
    user = f"priv_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    db = register_pg(srv, pg, user, "typed-once").json["Database"]
    iam = make_client(srv, "iam")
    name = f"reader-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="list-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:DescribeSecret", "tumbler:ListDatabases"],
                       "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    creds = dict(access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    r = db_call(srv, "DescribeDatabase", {"DatabaseId": db["DatabaseId"]}, **creds)
    assert r.code == "AccessDeniedException", r.body
    assert f"user/{name}" in r.message and "tumbler:DescribeDatabase" in r.message
    r = db_call(srv, "DescribeDatabase", {"DatabaseId": "never-registered"}, **creds)
    assert r.code == "AccessDeniedException", "a hidden registration must not be told apart from a missing one"
    sm = make_client(srv, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    with raises_aws("AccessDeniedException"):
        sm.get_secret_value(SecretId=db["MasterUserSecret"]["SecretArn"])
    assert db_call(srv, "ListDatabases", {}, **creds).status == 200


def test_deregister_deletes_the_secret_with_a_recovery_window(srv, pg):
    user = f"dereg_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    db = register_pg(srv, pg, user, "typed-once").json["Database"]
    arn = db["MasterUserSecret"]["SecretArn"]
    r = db_call(srv, "DeregisterDatabase", {"DatabaseId": db["DatabaseId"], "RecoveryWindowInDays": 7})
    assert r.status == 200, r.body
    assert db_call(srv, "DescribeDatabase", {"DatabaseId": db["DatabaseId"]}).code == "ResourceNotFoundException"
    described = make_client(srv).describe_secret(SecretId=arn)
    assert "DeletedDate" in described
    ids = [d["DatabaseId"] for d in db_call(srv, "ListDatabases", {}).json["Databases"]]
    assert db["DatabaseId"] not in ids


def test_mariadb_registration(srv, maria):
    user = f"mm_{uuid.uuid4().hex[:8]}"
    with maria.admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", ("typed-once",))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION")
    r = db_call(srv, "RegisterDatabase", {
        "Engine": "mariadb", "Host": "127.0.0.1", "Port": maria.port, "MasterUsername": user,
        "MasterUserPassword": "typed-once", "ManageMasterUserPassword": True, "SslMode": "require"})
    assert r.status == 200, r.body
    arn = r.json["Database"]["MasterUserSecret"]["SecretArn"]
    password = json.loads(make_client(srv).get_secret_value(SecretId=arn)["SecretString"])["password"]
    assert maria.can_login(user, password) and not maria.can_login(user, "typed-once")


def test_the_walkthrough_with_tumbler_db_the_aws_cli_and_psql(srv, pg, tmp_path):
    """README's walkthrough: register with `tumbler db`, read the password
    with the aws CLI, connect with psql, rotate now, connect again."""
    import subprocess

    user = f"walk_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(srv.credentials_path),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_CA_BUNDLE": str(srv.ca_path),
        "TUMBLER_ENDPOINT_URL": srv.url,
        "TUMBLER_DB_MASTER_PASSWORD": "typed-once",
    }
    out = run_tumbler("db", "register", "--engine", "postgres", "--host", "127.0.0.1", "--port", str(pg.port),
                      "--master-username", user, "--manage-master-user-password", "--ssl-mode", "verify-full",
                      env=env)
    # The server has no CA for this database: verify-full must fail, and say so.
    assert out.returncode != 0 and "InvalidRequestException" in out.stderr, out.stderr
    out = run_tumbler("db", "register", "--engine", "postgres", "--host", "127.0.0.1", "--port", str(pg.port),
                      "--master-username", user, "--manage-master-user-password", "--ssl-mode", "require",
                      env=env)
    assert out.returncode == 0, out.stderr
    db = json.loads(out.stdout)["Database"]
    arn = db["MasterUserSecret"]["SecretArn"]
    listed = json.loads(run_tumbler("db", "list", env=env).stdout)["Databases"]
    assert db["DatabaseId"] in [d["DatabaseId"] for d in listed]

    def password() -> str:
        got = run_aws(srv, "secretsmanager", "get-secret-value", "--secret-id", arn, check=True).json
        return json.loads(got["SecretString"])["password"]

    def psql(pw: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(pg.bin / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", user, "-d", "postgres",
             "-tAc", "SELECT current_user"],
            env={"PGPASSWORD": pw, "PGSSLMODE": "require", "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=30,
        )

    first = password()
    assert psql(first).stdout.strip() == user
    out = run_tumbler("db", "modify", "--id", db["DatabaseId"], "--rotate-master-user-password", env=env)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: password() != first)
    second = password()
    assert psql(second).stdout.strip() == user
    assert "password authentication failed" in psql(first).stderr
    described = json.loads(run_tumbler("db", "describe", "--id", db["DatabaseId"], env=env).stdout)["Database"]
    assert described["MasterUserSecret"]["SecretArn"] == arn
    out = run_tumbler("db", "deregister", "--id", db["DatabaseId"], "--recovery-window-days", "7", env=env)
    assert out.returncode == 0, out.stderr
    out = run_tumbler("db", "describe", "--id", db["DatabaseId"], env=env)
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr


def test_a_registration_stopped_half_way_is_finished_by_modify(srv, pg):
    """A crash after the password was set leaves the registration
    `creating` (made so here in the store file): ModifyDatabase finishes it
    when the secret's password logs in, and refuses when it does not."""
    import sqlite3

    user = f"half_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    db = register_pg(srv, pg, user, "typed-once").json["Database"]
    dbid = db["DatabaseId"]

    def set_creating():
        with sqlite3.connect(srv.data_dir / "tumbler.db") as c:
            (meta,) = c.execute("SELECT meta FROM resources WHERE arn = ?", (db["DatabaseArn"],)).fetchone()
            meta = json.loads(meta)
            meta["creating"] = True
            c.execute("UPDATE resources SET meta = ?, revision = revision + 1 WHERE arn = ?",
                      (json.dumps(meta), db["DatabaseArn"]))

    set_creating()
    status = lambda: db_call(srv, "DescribeDatabase", {"DatabaseId": dbid}).json["Database"]["MasterUserSecret"]  # noqa: E731
    assert status()["SecretStatus"] == "creating"
    r = db_call(srv, "ModifyDatabase", {"DatabaseId": dbid, "RotateMasterUserPassword": True})
    assert r.status == 200, r.body
    wait_for(lambda: status()["SecretStatus"] == "active", what="active")

    # The database no longer takes the secret's password: it cannot finish.
    set_creating()
    with pg.admin() as c:
        c.execute(f'ALTER ROLE "{user}" PASSWORD %s', ("changed-by-hand",))
    r = db_call(srv, "ModifyDatabase", {"DatabaseId": dbid, "RotateMasterUserPassword": True})
    assert r.code == "InvalidRequestException" and "did not complete" in r.message, r.body


def test_a_customer_key_must_be_one_the_caller_may_use(srv, pg):
    key = make_client(srv, "kms").create_key(Description="db master secrets")["KeyMetadata"]["Arn"]
    iam = make_client(srv, "iam")
    name = f"registrar-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="register", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "tumbler:*", "Resource": "*"}]}))
    access = iam.create_access_key(UserName=name)["AccessKey"]
    creds = dict(access_key=access["AccessKeyId"], secret_key=access["SecretAccessKey"])

    user = f"kms_{uuid.uuid4().hex[:8]}"
    pg_master(pg, user, "typed-once")
    body = {"Engine": "postgres", "Host": "127.0.0.1", "Port": pg.port, "MasterUsername": user,
            "MasterUserPassword": "typed-once", "ManageMasterUserPassword": True, "SslMode": "disable",
            "MasterUserSecretKmsKeyId": key}
    r = db_call(srv, "RegisterDatabase", body, **creds)
    assert r.code == "AccessDeniedException", r.body
    assert "kms:GenerateDataKey" in r.message and f"user/{name}" in r.message
    assert pg.can_login(user, "typed-once")  # nothing was changed
    # The administrator may use the key: the secret is encrypted under it.
    r = db_call(srv, "RegisterDatabase", body)
    assert r.status == 200, r.body
    secret = r.json["Database"]["MasterUserSecret"]
    assert secret["KmsKeyId"] == key
    assert make_client(srv).describe_secret(SecretId=secret["SecretArn"])["KmsKeyId"] == key


ALL_OPS = ("RegisterDatabase", "DescribeDatabase", "ListDatabases", "ModifyDatabase", "DeregisterDatabase")


@pytest.mark.parametrize(
    "ops, body",
    [
        (ALL_OPS, b"{"),
        (ALL_OPS, b"[1, 2]"),
        (ALL_OPS, "\udcff".encode("utf-8", "surrogatepass")),
        (("RegisterDatabase",), b'{"Engine": 5}'),
        (("RegisterDatabase",), b'{"Port": -1}'),
        (("DescribeDatabase", "ModifyDatabase", "DeregisterDatabase"), b'{"DatabaseId": {"x": 1}}'),
        (("DeregisterDatabase",), b'{"DatabaseId": "x", "RecoveryWindowInDays": "seven"}'),
    ],
)
def test_malformed_bodies_get_a_serialization_error(srv, ops, body):
    for op in ops:
        r = db_call(srv, op, body)
        assert r.status == 400 and r.code == "SerializationException", (op, r.body)
        assert r.message


def test_oversized_and_hostile_input(srv, pg):
    # Over the 1 MiB body limit: refused before it is parsed.
    r = db_call(srv, "RegisterDatabase", b'{"Host": "' + b"h" * (1 << 20) + b'"}')
    assert r.status == 413 and r.code == "RequestEntityTooLargeException", r.body[:200]
    # A host name longer than DNS allows, and identifiers built to break SQL quoting.
    body = {"Engine": "postgres", "Host": "h" * 300, "Port": pg.port, "MasterUsername": "x",
            "MasterUserPassword": "y", "ManageMasterUserPassword": True}
    assert db_call(srv, "RegisterDatabase", body).code == "InvalidParameterException"
    hostile = 'evil"; DROP ROLE postgres; --'
    body.update(Host="127.0.0.1", MasterUsername=hostile, MasterUserPassword="x'; DROP TABLE t; --", SslMode="disable")
    r = db_call(srv, "RegisterDatabase", body)
    assert r.code == "InvalidRequestException" and "password authentication failed" in r.message, r.body
    assert pg.can_login("postgres", __import__("dbservers").ADMIN_PASSWORD)
    # A DatabaseId that is a path, an ARN of another account, or empty.
    for bad_id in ("../../etc/passwd", "arn:aws:tumbler:us-east-1:999999999999:database/x", ""):
        r = db_call(srv, "DescribeDatabase", {"DatabaseId": bad_id})
        assert r.code in ("ResourceNotFoundException", "InvalidParameterException"), (bad_id, r.body)
