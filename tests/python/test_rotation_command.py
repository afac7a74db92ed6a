"""A command rotator: examples/rotation-function/rotate.py, AWS's rotation
template ported to a password-file target, run by the server once per step
with the event on stdin, calling back into the API with its own
credentials. Checked over HTTPS (the function trusts the server's CA from
AWS_CA_BUNDLE): the target really gets the new password, the labels move
only after testSecret, a failure at any step leaves AWSCURRENT alone, and a
step that hangs times out without blocking other rotations."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest

from conftest import (
    ACCESS_KEY,
    REPO,
    audit_events,
    make_client,
    raises_aws,
    raw_request,
    rotator_env,
    run_tumbler,
    scrape_metrics,
    stages,
    start_server,
    wait_for,
)

FUNCTION = REPO / "examples" / "rotation-function" / "rotate.py"
PASSPHRASE = "this passphrase must not leak"


def audit(srv, event_name):
    return audit_events(srv, event_name, env={"TUMBLER_ROOT_PASSPHRASE": PASSPHRASE})






def target(path):
    return dict(line.split(":", 1) for line in path.read_text().splitlines()) if path.exists() else {}


@pytest.fixture
def rotating_server(tmp_path):
    passwords = tmp_path / "passwords"
    fail_at = tmp_path / "fail-step"
    hang = tmp_path / "hang.sh"
    hang.write_text(f"#!/bin/sh\nenv > {tmp_path / 'hang.env'}\nsleep 30\n")
    hang.chmod(0o755)
    env = {
        "TUMBLER_ROTATORS": f"demo={sys.executable} {FUNCTION} {passwords} {fail_at};hang={hang}",
        "TUMBLER_ROTATOR_TIMEOUT_SECS": "2",
        # The function's own credentials and settings, from the server's AWS_* environment.
        **rotator_env(),
        # Never handed to the function.
        "TUMBLER_ROOT_PASSPHRASE": PASSPHRASE,
    }
    srv = start_server(tmp_path, tls=True, env=env)
    yield srv, passwords, fail_at
    srv.kill()


def test_command_rotator_rotates_the_target(rotating_server):
    srv, passwords, _ = rotating_server
    sm = make_client(srv)
    name = "svc/db"
    first = sm.create_secret(Name=name, SecretString=json.dumps({"username": "svc", "password": "p0"}))
    passwords.write_text("svc:p0\nother:untouched\n")
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN="arn:aws:lambda:::function:demo")["VersionId"]
    wait_for(lambda: "AWSCURRENT" in stages(sm, name).get(token, []))
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert new["username"] == "svc" and new["password"] != "p0"
    # The target logs in with the new password, and only that changed.
    assert target(passwords) == {"svc": new["password"], "other": "untouched"}
    assert stages(sm, name)[first["VersionId"]] == ["AWSPREVIOUS"]
    # The function's calls came over the API, signed with its own key.
    calls = audit(srv, "UpdateSecretVersionStage")
    assert ACCESS_KEY in calls and first["ARN"] in calls


@pytest.mark.parametrize("step", ["createSecret", "setSecret", "testSecret", "finishSecret"])
def test_a_failure_at_any_step_leaves_current_alone(rotating_server, step):
    srv, passwords, fail_at = rotating_server
    sm = make_client(srv)
    name = f"fail/{step}"
    first = sm.create_secret(Name=name, SecretString=json.dumps({"username": step, "password": "p0"}))
    fail_at.write_text(step)
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN="arn:aws:lambda:::function:demo")["VersionId"]

    wait_for(lambda: first["ARN"] in audit(srv, "RotationFailed"), what=f"the failure at {step}")
    labels = stages(sm, name)
    assert labels[first["VersionId"]] == ["AWSCURRENT"]
    assert labels[token] == ["AWSPENDING"]
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"] == "p0"
    # Visible to operators, with a non-zero exit to alert on.
    status = run_tumbler(
        "rotation", "status", "--data-dir", str(srv.data_dir), "--failing", "--json",
        env={"TUMBLER_ROOT_PASSPHRASE": PASSPHRASE},
    )
    assert status.returncode == 2, status.stderr
    (line,) = [json.loads(l) for l in status.stdout.splitlines() if first["ARN"] in l]
    rotation = line["TumblerRotationStatus"]
    assert line["Failing"] is True and rotation["VersionId"] == token and rotation["State"] == "Retrying"
    assert rotation["LastError"]["Step"] == step and "injected" in rotation["LastError"]["Message"]
    # And in DescribeSecret's answer, for callers that read the raw JSON.
    described = raw_request(srv, "secretsmanager.DescribeSecret", {"SecretId": name}).json
    assert described["TumblerRotationStatus"] == rotation
    assert rotation["Attempts"] == 1 and rotation["NextAttemptDate"] > time.time()
    # And in the metrics operators alert on (aggregates: no ARN in them).
    metrics = scrape_metrics(srv)
    assert metrics["tumbler_secrets_rotation_retrying"] >= 1
    assert metrics['tumbler_rotation_attempts_total{outcome="will_retry"}'] >= 1
    assert not any(first["ARN"] in key or name in key for key in metrics)
    if step == "createSecret":
        # Nothing was generated: the placeholder is still empty.
        with raises_aws("ResourceNotFoundException"):
            sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    # Fixed, and retried with the same token: it completes.
    fail_at.unlink()
    sm.rotate_secret(SecretId=name, ClientRequestToken=token)
    wait_for(lambda: "AWSCURRENT" in stages(sm, name).get(token, []))
    assert target(passwords)[step] == json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"]
    status = run_tumbler(
        "rotation", "status", "--data-dir", str(srv.data_dir), env={"TUMBLER_ROOT_PASSPHRASE": PASSPHRASE}
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{first['ARN']}\n  enabled: true  rotator: arn:aws:lambda:::function:demo" in status.stdout
    assert "state: ok" in status.stdout


def test_a_hanging_rotator_times_out_without_blocking_others(rotating_server):
    srv, passwords, _ = rotating_server
    sm = make_client(srv)
    sm.create_secret(Name="slow", SecretString=json.dumps({"username": "slow", "password": "p0"}))
    fast = sm.create_secret(Name="fast", SecretString=json.dumps({"username": "fast", "password": "p0"}))
    started = time.monotonic()
    sm.rotate_secret(SecretId="slow", RotationLambdaARN="arn:aws:lambda:::function:hang")
    token = sm.rotate_secret(SecretId="fast", RotationLambdaARN="arn:aws:lambda:::function:demo")["VersionId"]
    wait_for(lambda: "AWSCURRENT" in stages(sm, "fast").get(token, []))
    assert stages(sm, "fast")[fast["VersionId"]] == ["AWSPREVIOUS"]

    wait_for(lambda: "slow" in audit(srv, "RotationFailed"), what="the timeout")
    assert time.monotonic() - started < 25
    assert "did not finish createSecret within 2 s" in srv.read_stderr()
    # The rotator saw the endpoint, its credentials and the CA, and nothing
    # of the server's own secrets.
    seen = (srv.data_dir.parent / "hang.env").read_text()
    assert "SECRETS_MANAGER_ENDPOINT=https://127.0.0.1:" in seen and f"AWS_ACCESS_KEY_ID={ACCESS_KEY}" in seen
    assert f"AWS_CA_BUNDLE={srv.ca_path.resolve()}" in seen
    assert "TUMBLER_" not in seen and PASSPHRASE not in seen


def test_bad_rotator_flags_are_refused(tmp_path):
    for spec, why in [("nameonly", "NAME=PROGRAM"), ("tumbler-x=/bin/true", "not start with tumbler-"), ("x=", "no program")]:
        with pytest.raises(RuntimeError, match=why):
            srv = start_server(tmp_path / uuid.uuid4().hex, env={"TUMBLER_ROTATORS": spec, "RUST_BACKTRACE": "0"})
            srv.kill()
