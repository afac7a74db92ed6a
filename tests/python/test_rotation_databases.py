"""The built-in database rotators against real PostgreSQL and MariaDB.

Each rotation is started with RotateSecret (boto3 or the aws CLI) and
checked in the database itself: the new password logs in, the old one is
refused (single user), the idle user of an alternating pair is the one
changed, grants and ownership stay with the base user, and a database that
is down fails the rotation without touching AWSCURRENT.
"""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pymysql
import pytest

from conftest import (
    audit_events,
    current_is,
    make_client,
    raw_request,
    run_aws,
    run_tumbler,
    stages,
    start_server,
    wait_for,
)
from dbservers import ADMIN_PASSWORD

PG_SINGLE = "arn:aws:lambda:::function:tumbler-postgres-single-user"
PG_ALTERNATING = "arn:aws:lambda:::function:tumbler-postgres-alternating-users"
MYSQL_SINGLE = "arn:aws:lambda:::function:tumbler-mysql-single-user"
MYSQL_ALTERNATING = "arn:aws:lambda:::function:tumbler-mysql-alternating-users"


@pytest.fixture(scope="module")
def srv(tmp_path_factory, pg, maria):
    base = tmp_path_factory.mktemp("tumbler-db")
    bundle = base / "database-ca.pem"
    bundle.write_bytes(pg.ca.read_bytes() + maria.ca.read_bytes())
    server = start_server(base, tls=True, env={"TUMBLER_DATABASE_CA_FILE": str(bundle)})
    yield server
    server.kill()


@pytest.fixture(scope="module")
def sm(srv):
    return make_client(srv)


def new_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def pg_user(pg, name: str, password: str) -> None:
    with pg.admin() as c:
        c.execute(f'CREATE ROLE "{name}" LOGIN PASSWORD %s', (password,))


def secret_for(db, user: str, password: str, **extra) -> str:
    return json.dumps({
        "engine": db.engine, "host": "127.0.0.1", "port": db.port, "username": user, "password": password, **extra
    })


def admin_arn(sm, db, base: str) -> str:
    """A secret for the database's admin user, as `masterarn` names it."""
    admin_user = "postgres" if db.engine == "postgres" else "admin"
    return sm.create_secret(Name=f"{db.engine}/admin/{base}",
                            SecretString=json.dumps({"username": admin_user, "password": ADMIN_PASSWORD}))["ARN"]


def rotate_and_wait(sm, name: str, arn: str | None = None, timeout: float = 60) -> str:
    kwargs = {"RotationLambdaARN": arn} if arn else {}
    token = sm.rotate_secret(SecretId=name, **kwargs)["VersionId"]
    wait_for(lambda: current_is(sm, name, token), timeout=timeout, what=f"the rotation of {name}")
    return token


def value(sm, name: str, stage: str = "AWSCURRENT") -> dict:
    return json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def rotation_status(srv, name: str):
    return raw_request(srv, "secretsmanager.DescribeSecret", {"SecretId": name}).json.get("TumblerRotationStatus")

def pg_query(pg):
    def query(creds):
        with pg.connect(creds["username"], creds["password"]) as c:
            c.execute("SELECT 1")

    return query


def run_application_through_rotations(srv, sm, name, query, auth_error, tries, first_arn=None) -> dict:
    """An application as AWS recommends: it caches the secret and, on an
    authentication failure, re-reads it and tries again (up to `tries`
    times). Meanwhile the secret rotates 20 times. Returns the queries
    answered, the re-reads, and the queries lost (every try failed)."""
    reader = make_client(srv)
    stop = threading.Event()
    counts = {"queries": 0, "rereads": 0, "lost": 0}

    def application():
        creds = value(reader, name)
        while not stop.is_set():
            for _ in range(tries):
                try:
                    query(creds)
                    counts["queries"] += 1
                    break
                except auth_error:
                    counts["rereads"] += 1
                    creds = value(reader, name)
            else:
                counts["lost"] += 1

    app = threading.Thread(target=application)
    app.start()
    try:
        for i in range(20):
            rotate_and_wait(sm, name, first_arn if i == 0 else None)
    finally:
        stop.set()
        app.join(30)
    return counts



@pytest.mark.parametrize("sslmode", ["disable", "require", "verify-full"])
def test_postgres_single_user_old_password_refused_new_accepted(srv, sm, pg, sslmode):
    user = new_name("app_")
    pg_user(pg, user, "first-pass")
    name = f"pg/{user}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, user, "first-pass", dbname="postgres",
                                                        sslmode=sslmode, note="kept"))
    # With the aws CLI, as a user would.
    out = run_aws(srv, "secretsmanager", "rotate-secret", "--secret-id", name,
                  "--rotation-lambda-arn", PG_SINGLE, "--rotation-rules", '{"AutomaticallyAfterDays": 30}',
                  check=True).json
    wait_for(lambda: current_is(sm, name, out["VersionId"]))
    new = value(sm, name)
    assert new["password"] != "first-pass" and len(new["password"]) == 32
    assert {k: new[k] for k in ("username", "sslmode", "note", "dbname")} == {
        "username": user, "sslmode": sslmode, "note": "kept", "dbname": "postgres"}
    assert pg.can_login(user, new["password"])
    assert not pg.can_login(user, "first-pass")
    assert value(sm, name, "AWSPREVIOUS")["password"] == "first-pass"
    # The server stored a SCRAM verifier: the plaintext never reached it.
    with pg.admin() as c:
        stored = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (user,)).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")
    # And again: each rotation changes it.
    rotate_and_wait(sm, name)
    newer = value(sm, name)["password"]
    assert pg.can_login(user, newer) and not pg.can_login(user, new["password"])


def test_verify_full_refuses_a_certificate_it_does_not_trust(tmp_path, pg):
    # A server without the database CA: verify-full cannot succeed, and
    # nothing falls back to plain TCP.
    lone = start_server(tmp_path, tls=False)
    try:
        sm = make_client(lone)
        user = new_name("strict_")
        pg_user(pg, user, "strict-pass")
        name = f"pg/{user}"
        sm.create_secret(Name=name, SecretString=secret_for(pg, user, "strict-pass", sslmode="verify-full"))
        sm.rotate_secret(SecretId=name, RotationLambdaARN=PG_SINGLE)
        status = wait_for(lambda: (rotation_status(lone, name) or {}).get("LastError"), what="the failure")
        assert status["Step"] == "setSecret"
        assert "cannot log in to PostgreSQL" in status["Message"], status
        assert "strict-pass" not in json.dumps(status)
        assert pg.can_login(user, "strict-pass")
        assert value(sm, name)["password"] == "strict-pass"
    finally:
        lone.kill()


def test_postgres_alternating_users_keep_one_role(srv, sm, pg):
    base = new_name("svc_")
    admin = admin_arn(sm, pg, base)
    pg_user(pg, base, "base-pass")
    with pg.admin() as c:
        c.execute(f'CREATE TABLE "{base}_orders" (id int)')
        c.execute(f'GRANT SELECT, INSERT ON "{base}_orders" TO "{base}"')
        c.execute(f'GRANT CREATE ON SCHEMA public TO "{base}"')
    name = f"pg/{base}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, base, "base-pass", masterarn=admin))

    rotate_and_wait(sm, name, PG_ALTERNATING)
    first = value(sm, name)
    assert first["username"] == f"{base}_clone" and first["masterarn"] == admin
    # The clone logs in, acts as the base role, and what it creates the base owns.
    with pg.connect(first["username"], first["password"]) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == base
        c.execute(f'INSERT INTO "{base}_orders" VALUES (1)')
        c.execute(f'CREATE TABLE "{base}_made_by_clone" (id int)')
    with pg.connect(base, "base-pass") as c:
        # The previous user still works (it is AWSPREVIOUS), and owns the clone's table.
        c.execute(f'INSERT INTO "{base}_made_by_clone" VALUES (2)')
        owner = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", (f"{base}_made_by_clone",))
        assert owner.fetchone()[0] == base
    # A grant added to the base after the clone exists reaches the clone.
    with pg.admin() as c:
        c.execute(f'CREATE TABLE "{base}_later" (id int)')
        c.execute(f'GRANT SELECT ON "{base}_later" TO "{base}"')
    with pg.connect(first["username"], first["password"]) as c:
        c.execute(f'SELECT * FROM "{base}_later"')

    # The next rotation changes the idle base user; the clone's password stays.
    rotate_and_wait(sm, name)
    second = value(sm, name)
    assert second["username"] == base and second["password"] != "base-pass"
    assert pg.can_login(base, second["password"]) and not pg.can_login(base, "base-pass")
    assert pg.can_login(first["username"], first["password"])
    assert value(sm, name, "AWSPREVIOUS")["username"] == first["username"]


def test_an_application_keeps_working_through_20_alternating_rotations(srv, sm, pg):
    base = new_name("loop_")
    admin = admin_arn(sm, pg, base)
    pg_user(pg, base, "loop-pass")
    name = f"pg/{base}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, base, "loop-pass", masterarn=admin))
    sm.rotate_secret(SecretId=name, RotationLambdaARN=PG_ALTERNATING, RotateImmediately=False)
    wait_for(lambda: rotation_status(srv, name) is None, what="the first test-only rotation")

    counts = run_application_through_rotations(srv, sm, name, pg_query(pg), psycopg.OperationalError, tries=2)
    assert counts["queries"] > 20 and counts["lost"] == 0, counts
    # A connection count that stays bounded: rotation does not leak sessions.
    assert pg.connections() < 10


def test_a_database_down_fails_set_secret_and_the_retry_completes(srv, sm, pg):
    user = new_name("down_")
    pg_user(pg, user, "down-pass")
    name = f"pg/{user}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, user, "down-pass"))
    pg.stop()
    try:
        token = sm.rotate_secret(SecretId=name, RotationLambdaARN=PG_SINGLE)["VersionId"]
        status = wait_for(lambda: (rotation_status(srv, name) or {}).get("LastError"), what="the failure")
        assert status["Step"] == "setSecret" and "cannot log in to PostgreSQL" in status["Message"]
        assert rotation_status(srv, name)["State"] == "Retrying"
        assert value(sm, name)["password"] == "down-pass"
        assert stages(sm, name)[token] == ["AWSPENDING"]
    finally:
        pg.start()
    # The database is back: the same rotation (same token) completes.
    sm.rotate_secret(SecretId=name, ClientRequestToken=token)
    wait_for(lambda: current_is(sm, name, token))
    new = value(sm, name)["password"]
    assert pg.can_login(user, new) and not pg.can_login(user, "down-pass")


def test_a_password_set_before_a_crash_is_recognised_and_finished(srv, sm, pg):
    # setSecret changed the password, then the rotation stopped before the
    # labels moved: AWSCURRENT's password no longer works, AWSPENDING's does.
    user = new_name("crash_")
    pg_user(pg, user, "old-pass")
    name = f"pg/{user}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, user, "old-pass"))
    token = str(uuid.uuid4())
    sm.put_secret_value(SecretId=name, ClientRequestToken=token,
                        SecretString=secret_for(pg, user, "set-before-crash"), VersionStages=["AWSPENDING"])
    with pg.admin() as c:
        c.execute(f'ALTER ROLE "{user}" PASSWORD %s', ("set-before-crash",))
    sm.rotate_secret(SecretId=name, RotationLambdaARN=PG_SINGLE, ClientRequestToken=token)
    wait_for(lambda: current_is(sm, name, token))
    assert value(sm, name)["password"] == "set-before-crash"
    assert pg.can_login(user, "set-before-crash")


def test_previous_password_recovers_a_rotation_whose_labels_were_moved_back(srv, sm, pg):
    # AWS's template: when AWSCURRENT no longer logs in (its password was
    # changed by an unfinished rotation that someone rolled back by hand),
    # setSecret logs in with AWSPREVIOUS.
    user = new_name("prev_")
    pg_user(pg, user, "p1")
    name = f"pg/{user}"
    v1 = sm.create_secret(Name=name, SecretString=secret_for(pg, user, "p1"))["VersionId"]
    v2 = str(uuid.uuid4())
    sm.put_secret_value(SecretId=name, ClientRequestToken=v2, SecretString=secret_for(pg, user, "p2"))
    # The database still has p1, which is now AWSPREVIOUS.
    assert stages(sm, name)[v1] == ["AWSPREVIOUS"]
    rotate_and_wait(sm, name, PG_SINGLE)
    new = value(sm, name)["password"]
    assert pg.can_login(user, new) and not pg.can_login(user, "p1")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"engine": "postgres", "host": "127.0.0.1", "password": "x"}, "field `username` is missing"),
        ({"engine": "oracle", "host": "127.0.0.1", "username": "u", "password": "x"}, "engine `oracle` is not PostgreSQL"),
        ({"engine": "postgres", "host": "127.0.0.1", "port": "many", "username": "u", "password": "x"},
         "field `port` must be a port number"),
    ],
)
def test_a_malformed_database_secret_fails_create_secret_clearly(srv, sm, bad, message):
    name = new_name("pg/bad/")
    sm.create_secret(Name=name, SecretString=json.dumps(bad))
    sm.rotate_secret(SecretId=name, RotationLambdaARN=PG_SINGLE)
    status = wait_for(lambda: (rotation_status(srv, name) or {}).get("LastError"), what="the failure")
    assert status["Step"] == "createSecret"
    assert message in status["Message"], status
    assert "x" != status["Message"] and '"password"' not in status["Message"]


def test_alternating_needs_masterarn(srv, sm, pg):
    name = new_name("pg/nomaster/")
    sm.create_secret(Name=name, SecretString=secret_for(pg, "someone", "pw"))
    sm.rotate_secret(SecretId=name, RotationLambdaARN=PG_ALTERNATING)
    status = wait_for(lambda: (rotation_status(srv, name) or {}).get("LastError"), what="the failure")
    assert status["Step"] == "createSecret" and "`masterarn` is missing" in status["Message"]


def maria_user(maria, name: str, password: str) -> None:
    with maria.admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT ON app.* TO '{name}'@'%'")


@pytest.mark.parametrize("sslmode", ["disable", "require", "verify-full"])
def test_mariadb_single_user_old_password_refused_new_accepted(srv, sm, maria, sslmode):
    user = new_name("m_")
    maria_user(maria, user, "m-first")
    name = f"mariadb/{user}"
    sm.create_secret(Name=name, SecretString=secret_for(maria, user, "m-first", dbname="app", sslmode=sslmode))
    rotate_and_wait(sm, name, MYSQL_SINGLE)
    new = value(sm, name)
    assert new["username"] == user and new["password"] != "m-first"
    assert maria.can_login(user, new["password"])
    assert not maria.can_login(user, "m-first")
    rotate_and_wait(sm, name)
    assert maria.can_login(user, value(sm, name)["password"]) and not maria.can_login(user, new["password"])


def test_mariadb_alternating_users_share_grants(srv, sm, maria):
    base = new_name("ma_")
    admin = admin_arn(sm, maria, base)
    maria_user(maria, base, "ma-first")
    name = f"mariadb/{base}"
    sm.create_secret(Name=name, SecretString=secret_for(maria, base, "ma-first", masterarn=admin))
    rotate_and_wait(sm, name, MYSQL_ALTERNATING)
    first = value(sm, name)
    assert first["username"] == f"{base}_clone"
    with maria.connect(first["username"], first["password"]) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = 'app'")
        assert cur.fetchone()[0] >= 1
    assert maria.can_login(base, "ma-first")
    # A grant the base gets later reaches the clone at its next rotation.
    with maria.admin() as c, c.cursor() as cur:
        cur.execute(f"GRANT INSERT ON app.* TO '{base}'@'%'")
    rotate_and_wait(sm, name)  # the base's turn
    second = value(sm, name)
    assert second["username"] == base
    assert maria.can_login(base, second["password"]) and not maria.can_login(base, "ma-first")
    assert maria.can_login(first["username"], first["password"])
    rotate_and_wait(sm, name)  # the clone's turn again
    third = value(sm, name)
    assert third["username"] == first["username"]
    with maria.admin() as c, c.cursor() as cur:
        cur.execute(f"SHOW GRANTS FOR '{first['username']}'@'%'")
        grants = " ".join(row[0] for row in cur.fetchall())
    assert "INSERT" in grants and "SELECT" in grants, grants
    assert not maria.can_login(first["username"], first["password"])


def test_mariadb_application_loop_through_alternating_rotations(srv, sm, maria):
    base = new_name("ml_")
    admin = admin_arn(sm, maria, base)
    maria_user(maria, base, "ml-first")
    name = f"mariadb/{base}"
    sm.create_secret(Name=name, SecretString=secret_for(maria, base, "ml-first", masterarn=admin))
    sm.rotate_secret(SecretId=name, RotationLambdaARN=MYSQL_ALTERNATING, RotateImmediately=False)
    wait_for(lambda: rotation_status(srv, name) is None, what="the first test-only rotation")

    def query(creds):
        with maria.connect(creds["username"], creds["password"]) as c, c.cursor() as cur:
            cur.execute("SELECT 1")

    counts = run_application_through_rotations(srv, sm, name, query, pymysql.err.OperationalError, tries=2)
    assert counts["queries"] > 20 and counts["lost"] == 0, counts


def test_rotators_list_names_the_database_rotators():
    out = run_tumbler("rotators", "list")
    assert out.returncode == 0, out.stderr
    for arn in (PG_SINGLE, PG_ALTERNATING, MYSQL_SINGLE, MYSQL_ALTERNATING):
        assert arn in out.stdout


def test_rotation_outcomes_are_audited_without_passwords(srv, sm, pg):
    user = new_name("audited_")
    pg_user(pg, user, "audited-pass")
    name = f"pg/{user}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, user, "audited-pass"))
    rotate_and_wait(sm, name, PG_SINGLE)
    new = value(sm, name)["password"]
    trail = audit_events(srv, "RotationSucceeded")
    assert f":secret:{name}-" in trail
    # The service's own calls are audited too, and no password is in any event.
    everything = run_tumbler("audit", "export", "--data-dir", str(srv.data_dir)).stdout
    assert name in everything
    for password in ("audited-pass", new, ADMIN_PASSWORD):
        assert password not in everything


def test_kill_9_during_database_rotations_then_every_password_works(tmp_path, pg):
    """SIGKILL the server while PostgreSQL rotations run, restart it: every
    rotation completes with its own token, and the database accepts exactly
    the password that is AWSCURRENT (never one Tumbler does not have)."""
    import random
    import time

    env = {"TUMBLER_ROTATION_LEASE_SECS": "2", "TUMBLER_SWEEP_INTERVAL_SECS": "1"}
    server = start_server(tmp_path, env=env)
    try:
        sm = make_client(server)
        admin = sm.create_secret(
            Name="admin", SecretString=json.dumps({"username": "postgres", "password": ADMIN_PASSWORD}))["ARN"]
        users, rotators = {}, {}
        for i in range(24):
            user = new_name(f"k{i}_")
            pg_user(pg, user, "before-crash")
            alternating = i % 2 == 1
            name = f"crash/{user}"
            extra = {"masterarn": admin} if alternating else {}
            sm.create_secret(Name=name, SecretString=secret_for(pg, user, "before-crash", **extra))
            users[name] = user
            rotators[name] = PG_ALTERNATING if alternating else PG_SINGLE
        tokens = {n: sm.rotate_secret(SecretId=n, RotationLambdaARN=r)["VersionId"] for n, r in rotators.items()}
        rng = random.Random(11)
        unfinished_at_kills = []
        for _ in range(3):
            time.sleep(rng.uniform(0.0, 0.2))
            unfinished_at_kills.append(sum(not current_is(sm, n, t) for n, t in tokens.items()))
            server.kill()
            server = start_server(tmp_path, env=env)
            sm = make_client(server)
        wait_for(lambda: all(current_is(sm, n, t) for n, t in tokens.items()), timeout=90,
                 what="every rotation after the crashes")
        for name, user in users.items():
            current = value(sm, name)
            assert pg.can_login(current["username"], current["password"]), name
            labels = stages(sm, name)
            assert sum("AWSCURRENT" in s for s in labels.values()) == 1
            if current["username"] == user:
                # Single user (or the base's turn): the old password is gone.
                assert not pg.can_login(user, "before-crash"), name
        # The kills did land while rotations were under way.
        assert max(unfinished_at_kills) > 0, unfinished_at_kills
    finally:
        server.kill()


def test_single_user_application_loop_sees_only_the_documented_gap(srv, sm, pg):
    """Single user: between setSecret and finishSecret new logins with the
    old password fail; an application that re-reads the secret on an
    authentication failure retries and goes on. No query is lost once it
    re-reads (the gap lasts until finishSecret, milliseconds here)."""
    user = new_name("single_loop_")
    pg_user(pg, user, "loop-start")
    name = f"pg/{user}"
    sm.create_secret(Name=name, SecretString=secret_for(pg, user, "loop-start"))
    counts = run_application_through_rotations(
        srv, sm, name, pg_query(pg), psycopg.OperationalError, tries=20, first_arn=PG_SINGLE)
    assert counts["queries"] > 20 and counts["lost"] == 0, counts


def test_kill_9_of_the_database_during_rotations_then_resume(srv, sm, pg):
    """PostgreSQL dies (SIGKILL) while rotations run and comes back: the
    rotations it broke are retried (RotateSecret with their token resumes
    them at once) and complete, and the database never holds a password
    Tumbler does not have."""
    import time

    import concurrent.futures

    users = {}
    for i in range(40):
        user = new_name(f"dbkill{i}_")
        pg_user(pg, user, "before")
        name = f"dbkill/{user}"
        sm.create_secret(Name=name, SecretString=secret_for(pg, user, "before"))
        users[name] = user
    tokens = {}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        started = [pool.submit(lambda n: (n, sm.rotate_secret(SecretId=n, RotationLambdaARN=PG_SINGLE)["VersionId"]), n)
                   for n in users]
        for i, f in enumerate(concurrent.futures.as_completed(started)):
            name, token = f.result()
            tokens[name] = token
            if i == 10:
                pg.kill()
    try:
        # While it is down, every secret's AWSCURRENT is either the old
        # password or a new one the database already took.
        time.sleep(0.5)
        done_before = {n for n, t in tokens.items() if current_is(sm, n, t)}
    finally:
        pg.start()
    # The database holds a password Tumbler has: AWSCURRENT's, or (single
    # user, between setSecret and finishSecret) the pending one's.
    for name, user in users.items():
        held = [value(sm, name)["password"]]
        if not current_is(sm, name, tokens[name]):
            try:
                pending = sm.get_secret_value(SecretId=name, VersionId=tokens[name], VersionStage="AWSPENDING")
                held.append(json.loads(pending["SecretString"])["password"])
            except sm.exceptions.ResourceNotFoundException:
                pass  # createSecret had not run: nothing new was made
        assert any(pg.can_login(user, p) for p in held), name
    for name, token in tokens.items():
        if not current_is(sm, name, token):
            sm.rotate_secret(SecretId=name, ClientRequestToken=token)
    wait_for(lambda: all(current_is(sm, n, t) for n, t in tokens.items()), timeout=60,
             what="every rotation after the database restart")
    for name, user in users.items():
        assert pg.can_login(user, value(sm, name)["password"]) and not pg.can_login(user, "before")
    assert len(done_before) < len(tokens), "the kill landed after every rotation"


def test_hostile_user_names_are_quoted_not_executed(srv, sm, pg, maria):
    """User names and passwords built to break SQL quoting are rotated as
    names: PostgreSQL identifiers and MariaDB account literals are escaped."""
    from psycopg import sql

    pg_name = f'o"brien; DROP ROLE postgres; --{uuid.uuid4().hex[:4]}'
    with pg.admin() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(pg_name), sql.Literal("it's")))
    name = new_name("pg/hostile/")
    sm.create_secret(Name=name, SecretString=secret_for(pg, pg_name, "it's"))
    rotate_and_wait(sm, name, PG_SINGLE)
    assert pg.can_login(pg_name, value(sm, name)["password"]) and not pg.can_login(pg_name, "it's")
    assert pg.can_login("postgres", ADMIN_PASSWORD)

    m_name = f"o'brien\\\\x{uuid.uuid4().hex[:4]}"
    with maria.admin() as c, c.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (m_name, "it's \\ tricky"))
    name = new_name("mariadb/hostile/")
    sm.create_secret(Name=name, SecretString=secret_for(maria, m_name, "it's \\ tricky"))
    rotate_and_wait(sm, name, MYSQL_SINGLE)
    assert maria.can_login(m_name, value(sm, name)["password"]) and not maria.can_login(m_name, "it's \\ tricky")
