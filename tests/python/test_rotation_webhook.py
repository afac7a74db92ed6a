"""A webhook rotator: examples/rotation-function/webhook.py (AWS's rotation
template behind an HTTPS endpoint that checks Tumbler's signature) receives
each step, signed, over TLS verified against its own CA, and calls back into
Tumbler over TLS with its own credentials. The endpoint refuses unsigned,
forged, stale and replayed requests; an endpoint that is down, or whose
certificate the configured CA did not sign, fails the step and leaves
AWSCURRENT alone."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from cryptography import x509

from conftest import REPO, audit_events, make_client, rotator_env, stages, start_server, wait_for
from netutil import free_port, make_tls

WEBHOOK = REPO / "examples" / "rotation-function" / "webhook.py"
SIGNING_SECRET = "webhook-signing-secret-" + "x" * 16


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("webhook")
    ca, cert, key = make_tls(d)
    secret_file = d / "signing-secret"
    secret_file.write_text(SIGNING_SECRET + "\n")
    port, dead_port = free_port(), free_port()
    url = f"https://127.0.0.1:{port}/"
    specs = [
        f"demo={url} secret-file={secret_file} ca={ca} timeout=20",
        f"dead=https://127.0.0.1:{dead_port}/ secret-file={secret_file} ca={ca} timeout=5",
    ]
    srv = start_server(d / "tumbler", tls=True, env={"TUMBLER_WEBHOOK_ROTATORS": ";".join(specs)})
    # The other CA: Tumbler's own does not sign the webhook's certificate.
    srv.stop()
    specs.append(f"badca={url} secret-file={secret_file} ca={srv.ca_path} timeout=5")
    srv = start_server(d / "tumbler", tls=True, env={"TUMBLER_WEBHOOK_ROTATORS": ";".join(specs)})
    passwords, fail_at = d / "passwords", d / "fail-step"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(rotator_env(), SECRETS_MANAGER_ENDPOINT=srv.url, AWS_CA_BUNDLE=str(srv.ca_path))
    hook = subprocess.Popen(
        [sys.executable, str(WEBHOOK), "--port", str(port), "--cert", str(cert), "--key", str(key),
         "--secret-file", str(secret_file), "--target", str(passwords), "--fail-step-file", str(fail_at)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(d / "webhook.err", "wb"),
    )
    assert "listening" in hook.stdout.readline().decode()
    yield {"srv": srv, "url": url, "ca": ca, "passwords": passwords, "fail_at": fail_at}
    hook.kill()
    hook.wait()
    srv.kill()


def test_webhook_rotates_over_tls_both_ways(setup):
    srv, passwords = setup["srv"], setup["passwords"]
    sm = make_client(srv)
    first = sm.create_secret(Name="hook/db", SecretString=json.dumps({"username": "hooked", "password": "p0"}))
    token = sm.rotate_secret(SecretId="hook/db", RotationLambdaARN="arn:aws:lambda:::function:demo")["VersionId"]
    wait_for(lambda: "AWSCURRENT" in stages(sm, "hook/db").get(token, []), what="the rotation")
    new = json.loads(sm.get_secret_value(SecretId="hook/db")["SecretString"])["password"]
    assert new != "p0" and f"hooked:{new}" in passwords.read_text()
    assert stages(sm, "hook/db")[first["VersionId"]] == ["AWSPREVIOUS"]


def test_a_failing_step_at_the_webhook_leaves_current_alone(setup):
    srv, fail_at = setup["srv"], setup["fail_at"]
    sm = make_client(srv)
    first = sm.create_secret(Name="hook/fail", SecretString=json.dumps({"username": "f", "password": "p0"}))
    fail_at.write_text("testSecret")
    try:
        token = sm.rotate_secret(SecretId="hook/fail", RotationLambdaARN="arn:aws:lambda:::function:demo")[
            "VersionId"
        ]
        wait_for(lambda: first["ARN"] in audit_events(srv, "RotationFailed"), what="the failure")
    finally:
        fail_at.unlink()
    labels = stages(sm, "hook/fail")
    assert labels[first["VersionId"]] == ["AWSCURRENT"] and labels[token] == ["AWSPENDING"]
    assert "answered 500" in srv.read_stderr() and "injected by ROTATION_FAIL_STEP_FILE" in srv.read_stderr()


@pytest.mark.parametrize("rotator", ["dead", "badca"])
def test_an_unreachable_or_untrusted_webhook_fails_the_step(setup, rotator):
    srv = setup["srv"]
    sm = make_client(srv)
    name = f"hook/{rotator}"
    first = sm.create_secret(Name=name, SecretString=json.dumps({"username": rotator, "password": "p0"}))
    sm.rotate_secret(SecretId=name, RotationLambdaARN=f"arn:aws:lambda:::function:{rotator}")
    wait_for(lambda: first["ARN"] in audit_events(srv, "RotationFailed"), what="the failure")
    assert stages(sm, name)[first["VersionId"]] == ["AWSCURRENT"]
    if rotator == "badca":
        assert "UnknownIssuer" in srv.read_stderr() or "certificate" in srv.read_stderr().lower()


def post(setup, body, headers):
    ctx = ssl.create_default_context(cafile=str(setup["ca"]))
    req = urllib.request.Request(setup["url"], data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def signed(body, timestamp=None, delivery=None, secret=SIGNING_SECRET):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    delivery = delivery or str(uuid.uuid4())
    mac = hmac.new(secret.encode(), f"{timestamp}.{delivery}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Tumbler-Timestamp": timestamp,
        "X-Tumbler-Delivery": delivery,
        "X-Tumbler-Signature": f"v1={mac}",
    }


def test_the_webhook_refuses_unsigned_forged_stale_and_replayed_requests(setup):
    body = json.dumps({"Step": "createSecret", "SecretId": "no-such-secret", "ClientRequestToken": str(uuid.uuid4())}).encode()
    assert post(setup, body, {"Content-Type": "application/json"}) == (401, "bad or missing signature")
    assert post(setup, body, signed(body, secret="not-the-secret-at-all"))[0] == 401
    forged = signed(body)
    assert post(setup, body.replace(b"createSecret", b"finishSecret"), forged) == (401, "bad or missing signature")
    assert post(setup, body, signed(body, timestamp=int(time.time()) - 3600)) == (401, "stale timestamp")
    # A genuine request gets through to the function (which then fails on
    # the unknown secret), and once only.
    good = signed(body)
    status, text = post(setup, body, good)
    assert status == 500 and "ResourceNotFoundException" in text
    assert post(setup, body, good) == (401, "replayed delivery")
