"""Rotating N PostgreSQL users (single-user strategy) end to end.

A real PostgreSQL (tests/python/dbservers.py) and a release `tumbler
server` (pinned to core 0 by scripts/bench-db-rotation) on loopback: N
roles and N secrets, RotateSecret on every one, then the time until each
AWSCURRENT is its new version, and the most client connections PostgreSQL
saw meanwhile (sampled every 50 ms from pg_stat_activity). Every new
password is then checked against the database.
usage: db_rotation.py TUMBLER_URL ACCESS_KEY SECRET_KEY [N=500]
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
from dbservers import Postgres  # noqa: E402

ARN = "arn:aws:lambda:::function:tumbler-postgres-single-user"


def main() -> None:
    url, access_key, secret_key = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 500
    pg = Postgres()
    try:
        sm = boto3.client(
            "secretsmanager", endpoint_url=url, region_name="us-east-1", aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, config=Config(max_pool_connections=32, retries={"max_attempts": 1}),
        )
        with pg.admin() as c:
            for i in range(count):
                c.execute(f'CREATE ROLE "bench_{i:04}" LOGIN PASSWORD %s', (f"start-{i}",))
        names = [f"bench/pg/{i:04}" for i in range(count)]

        def create(i: int) -> None:
            sm.create_secret(Name=names[i], SecretString=json.dumps({
                "engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": f"bench_{i:04}",
                "password": f"start-{i}", "sslmode": "disable"}))

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, range(count)))
        max_connections = pg.admin().execute("SHOW max_connections").fetchone()[0]
        peak = {"connections": 0}
        stop = threading.Event()

        def sample() -> None:
            with pg.admin() as c:
                while not stop.is_set():
                    n = c.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
                    # Less this sampler's own session.
                    peak["connections"] = max(peak["connections"], n - 1)
                    time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()

        def rotate(name: str) -> tuple[str, str]:
            return name, sm.rotate_secret(SecretId=name, RotationLambdaARN=ARN)["VersionId"]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            tokens = dict(pool.map(rotate, names))
        requested = time.monotonic() - started
        pending = dict(tokens)
        while pending:
            for name, token in list(pending.items()):
                stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"].get(token, [])
                if "AWSCURRENT" in stages:
                    del pending[name]
            if pending:
                if time.monotonic() - started > 1800:
                    raise SystemExit(f"{len(pending)} rotations did not finish")
                time.sleep(0.2)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        for i, name in enumerate(names):
            value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
            assert pg.can_login(value["username"], value["password"]), name
            if i % 50 == 0:
                assert not pg.can_login(value["username"], f"start-{i}"), name
        print(f"rotated {count} PostgreSQL users (single user): RotateSecret calls done in {requested:.2f} s, "
              f"all rotated in {elapsed:.2f} s, {count / elapsed:.1f} rotations/s; "
              f"peak client connections {peak['connections']} of max_connections {max_connections}; "
              f"every new password logs in")
    finally:
        pg.cleanup()


if __name__ == "__main__":
    main()
