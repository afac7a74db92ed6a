"""Crash safety: the server is killed with SIGKILL at random moments while
many rotations run (a command rotator that takes its time), and restarted.
Every rotation either completed or resumes and completes with its own
token; no secret ever has two AWSCURRENT versions or none; and the target
ends holding exactly the password that is AWSCURRENT."""

from __future__ import annotations

import json
import random
import sys
import time

from conftest import REPO, make_client, rotator_env, start_server

FUNCTION = REPO / "examples" / "rotation-function" / "rotate.py"
SECRETS = 12


def current_versions(sm, name):
    labels = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    return [v for v, s in labels.items() if "AWSCURRENT" in s]


def test_kill_9_during_rotations_then_every_rotation_completes(tmp_path):
    passwords = tmp_path / "passwords"
    slow = tmp_path / "slow.sh"
    # Slow enough that a kill lands inside steps.
    slow.write_text(f"#!/bin/sh\nsleep 0.2\nexec {sys.executable} {FUNCTION} {passwords}\n")
    slow.chmod(0o755)
    env = {
        "TUMBLER_ROTATORS": f"slow={slow}",
        "TUMBLER_ROTATION_LEASE_SECS": "2",
        "TUMBLER_SWEEP_INTERVAL_SECS": "1",
        **rotator_env(),
    }
    srv = start_server(tmp_path, env=env)
    sm = make_client(srv)
    tokens = {}
    for i in range(SECRETS):
        name = f"crash/{i}"
        sm.create_secret(Name=name, SecretString=json.dumps({"username": f"u{i}", "password": "p0"}))
        tokens[name] = sm.rotate_secret(SecretId=name, RotationLambdaARN="arn:aws:lambda:::function:slow")[
            "VersionId"
        ]
    rng = random.Random(7)
    unfinished_at_kills = []
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 1.5))
            unfinished_at_kills.append(sum(current_versions(sm, n) != [t] for n, t in tokens.items()))
            srv.kill()  # SIGKILL
            srv = start_server(tmp_path, env=env)
            sm = make_client(srv)
            for name in tokens:
                assert len(current_versions(sm, name)) == 1, name
        deadline = time.monotonic() + 90
        while True:
            done = [n for n, t in tokens.items() if current_versions(sm, n) == [t]]
            if len(done) == SECRETS:
                break
            assert time.monotonic() < deadline, f"unfinished after the crashes: {sorted(set(tokens) - set(done))}"
            time.sleep(0.2)
        target = dict(line.split(":", 1) for line in passwords.read_text().splitlines())
        for i, name in enumerate(sorted(tokens, key=lambda n: int(n.split("/")[1]))):
            value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
            assert value["password"] != "p0"
            assert target[f"u{i}"] == value["password"], name
            # One pending version was made, whatever the crashes: no strays.
            versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
            assert len(versions) == 2, (name, versions)
        # The kills did land while rotations were under way.
        assert max(unfinished_at_kills) > 0, unfinished_at_kills
        assert srv.stop(timeout=10) == 0
    finally:
        srv.kill()
