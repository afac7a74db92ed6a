"""Shared fixtures for the Tumbler Python conformance suite.

Run with:  $(scripts/python-env.sh) -m pytest tests/python -q

The suite starts real `tumbler server` processes (one plain-HTTP and one HTTPS
server per session, plus private ones for tests that stop their server) and
talks to them with boto3, the `aws` CLI and hand-made SigV4 requests.

Environment:
  TUMBLER_BIN   path of the tumbler binary (default: <repo>/target/debug/tumbler,
                built with `cargo build -p tumbler`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from unittest import mock

import boto3
import botocore.auth
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
ACCESS_KEY = "AKIATUMBLERPYTEST001"
SECRET_KEY = "tumblerPyTestSecretKey0123456789abcdefGH"
ACCOUNT = "000000000000"
REGION = "us-east-1"
REPLICA_REGION = "us-west-2"
JSON_CT = "application/x-amz-json-1.1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# AWS error texts (see shared/reference/aws-secrets-manager.md, section 1.2).
MSG_NOT_FOUND = "Secrets Manager can't find the specified secret."
MSG_MARKED_DELETED = "You can't perform this operation on the secret because it was marked for deletion."
MSG_NAME_INVALID = (
    "Invalid name. Must be a valid name containing alphanumeric characters, "
    "or any of the following: -/_+=.@!"
)
MSG_NO_TOKEN = "You must provide a ClientRequestToken value. We recommend a UUID-type value."


def msg_no_stage(stage: str) -> str:
    return f"Secrets Manager can't find the specified secret value for staging label: {stage}"


def msg_no_version(version_id: str) -> str:
    return f"Secrets Manager can't find the specified secret value for VersionId: {version_id}"


def msg_token_in_use(token: str, arn: str) -> str:
    return (
        f"You can't use ClientRequestToken {token} because that value is already "
        f"in use for a version of secret {arn}."
    )


ARN_RE = re.compile(
    r"^arn:aws:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):secret:(?P<name>.+)-(?P<suffix>[A-Za-z0-9]{6})$"
)


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------


def tumbler_bin() -> Path:
    env = os.environ.get("TUMBLER_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "tumbler"
    if not path.is_file():
        pytest.exit(
            f"tumbler binary not found at {path}: run `cargo build -p tumbler` "
            "or set TUMBLER_BIN",
            returncode=2,
        )
    return path


@dataclass
class TumblerServer:
    """One running `tumbler server` process."""

    data_dir: Path
    log_dir: Path
    tls: bool
    extra_env: dict = field(default_factory=dict)
    proc: Optional[subprocess.Popen] = None
    url: str = ""
    stdout_lines: list = field(default_factory=list)
    _reader: Optional[threading.Thread] = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def ca_path(self) -> Optional[Path]:
        return self.data_dir / "ca.pem" if self.tls else None

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / "stderr.log"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def verify(self):
        return str(self.ca_path) if self.tls else None

    def start(self) -> "TumblerServer":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(tumbler_bin()),
            "server",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            "127.0.0.1:0",
            "--bootstrap-access-key-id",
            ACCESS_KEY,
            "--bootstrap-secret-access-key",
            SECRET_KEY,
        ]
        if not self.tls:
            cmd.append("--http")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TUMBLER_"))}
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        stderr.close()
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump(stream, sink):
            with open(self.stdout_path, "ab") as log:
                for raw in iter(stream.readline, b""):
                    log.write(raw)
                    log.flush()
                    text = raw.decode("utf-8", "replace").rstrip("\n")
                    self.stdout_lines.append(text)
                    sink.put(text)
            sink.put(None)

        self._reader = threading.Thread(target=pump, args=(self.proc.stdout, lines), daemon=True)
        self._reader.start()
        deadline = dt.datetime.now() + dt.timedelta(seconds=STARTUP_TIMEOUT)
        pattern = re.compile(r"tumbler: listening on (https?://\S+)")
        while True:
            remaining = (deadline - dt.datetime.now()).total_seconds()
            if remaining <= 0:
                self.kill()
                raise RuntimeError(
                    f"tumbler did not print 'listening on' within {STARTUP_TIMEOUT}s; "
                    f"stdout={self.stdout_lines!r} stderr={self.read_stderr()[-4000:]!r}"
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=5)
                raise RuntimeError(
                    f"tumbler exited with {code} before listening; "
                    f"stdout={self.stdout_lines!r} stderr={self.read_stderr()[-4000:]!r}"
                )
            m = pattern.search(line)
            if m:
                self.url = m.group(1).rstrip("/")
                break
        assert self.url.startswith(self.scheme + "://"), self.url
        return self

    def read_stderr(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM the server and wait; returns its exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"tumbler exited with {self.proc.returncode if self.proc else None}; "
            f"stderr tail: {self.read_stderr()[-4000:]}"
        )


def start_server(base: Path, tls: bool = False, env: Optional[dict] = None) -> TumblerServer:
    return TumblerServer(data_dir=base / "data", log_dir=base / "logs", tls=tls, extra_env=env or {}).start()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> TumblerServer:
    """A plain-HTTP server shared by the whole session."""
    srv = start_server(tmp_path_factory.mktemp("tumbler-http"), tls=False)
    yield srv
    code = srv.stop()
    assert code == 0, f"shared HTTP server exited with {code} on SIGTERM; stderr tail: {srv.read_stderr()[-2000:]}"


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory) -> TumblerServer:
    """An HTTPS server (generated certificate, CA in DATA/ca.pem) shared by the session."""
    srv = start_server(tmp_path_factory.mktemp("tumbler-https"), tls=True)
    yield srv
    code = srv.stop()
    assert code == 0, f"shared HTTPS server exited with {code} on SIGTERM; stderr tail: {srv.read_stderr()[-2000:]}"


@pytest.fixture
def private_server(tmp_path) -> TumblerServer:
    """A fresh HTTP server for one test (for tests that stop or inspect it)."""
    srv = start_server(tmp_path, tls=False)
    yield srv
    srv.kill()


# --------------------------------------------------------------------------
# boto3 clients
# --------------------------------------------------------------------------


def make_client(
    srv: TumblerServer,
    service: str = "secretsmanager",
    region: str = REGION,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    validate: bool = True,
    max_pool_connections: int = 10,
    session_token: Optional[str] = None,
):
    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=srv.url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        verify=srv.verify,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=10,
            read_timeout=30,
            max_pool_connections=max_pool_connections,
        ),
    )


@pytest.fixture(scope="session")
def client_factory(server):
    """client_factory(region=..., service=..., srv=..., validate=...) -> boto3 client."""

    def factory(region: str = REGION, service: str = "secretsmanager", srv=None, validate=True):
        return make_client(srv or server, service=service, region=region, validate=validate)

    return factory


@pytest.fixture(scope="session")
def sm(server):
    """Secrets Manager client in us-east-1 against the shared HTTP server."""
    return make_client(server)


@pytest.fixture(scope="session")
def sm_novalidate(server):
    """Like `sm`, but botocore does not validate parameters client-side."""
    return make_client(server, validate=False)


@pytest.fixture(scope="session")
def sm_pool(server):
    """A client for concurrent use from many threads (botocore clients are thread-safe)."""
    return make_client(server, max_pool_connections=32)


@pytest.fixture(scope="session")
def sm_west(server):
    return make_client(server, region=REPLICA_REGION)


@pytest.fixture
def name(request) -> str:
    """A secret name unique to this test run."""
    base = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[:40]
    return f"py-{base}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def uniq():
    """uniq(prefix) -> a unique alphanumeric-ish string."""
    return lambda prefix="x": f"{prefix}{uuid.uuid4().hex[:12]}"


def token() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------
# Error assertions
# --------------------------------------------------------------------------


class AwsError:
    """Filled in by `raises_aws` once the block has raised."""

    code: str = ""
    message: str = ""
    status: int = 0
    response: dict = {}


@contextlib.contextmanager
def raises_aws(code: str, message: Optional[str] = None, status: int = 400, match: Optional[str] = None):
    """Assert that the block raises botocore ClientError with this code, status and message."""
    err = AwsError()
    with pytest.raises(ClientError) as ei:
        yield err
    resp = ei.value.response
    err.response = resp
    err.code = resp.get("Error", {}).get("Code", "")
    err.message = resp.get("Error", {}).get("Message", "")
    err.status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    assert err.code == code, f"expected {code}, got {err.code}: {err.message!r} (HTTP {err.status})"
    assert err.status == status, f"{code}: expected HTTP {status}, got {err.status}"
    if message is not None:
        assert err.message == message, f"{code} message: {err.message!r} != {message!r}"
    if match is not None:
        assert re.search(match, err.message), f"{code} message {err.message!r} !~ {match!r}"


def strip_meta(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


# --------------------------------------------------------------------------
# The aws CLI
# --------------------------------------------------------------------------


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def error_code(self) -> Optional[str]:
        m = re.search(r"An error occurred \((\w+)\)", self.stderr)
        return m.group(1) if m else None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_tumbler(*args: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run a `tumbler` subcommand (audit, policy, admin) without the caller's AWS/TUMBLER env,
    plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TUMBLER_"))}
    base["RUST_BACKTRACE"] = "0"
    base.update(env or {})
    env = base
    return subprocess.run(
        [str(tumbler_bin()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def run_aws(srv: TumblerServer, *args: str, region: str = REGION, check: bool = False) -> CliResult:
    """Run the venv's `aws` CLI (v1, same botocore) against `srv`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(srv.credentials_path),
        AWS_CONFIG_FILE=os.devnull,
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    if srv.tls:
        env["AWS_CA_BUNDLE"] = str(srv.ca_path)
    cmd = [
        sys.executable,
        "-m",
        "awscli",
        "--endpoint-url",
        srv.url,
        "--region",
        region,
        "--output",
        "json",
        *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    res = CliResult(proc.returncode, proc.stdout, proc.stderr)
    if check:
        assert res.ok, f"aws {' '.join(args)} failed ({res.returncode}): {res.stderr}"
    return res


@pytest.fixture(scope="session")
def aws_cli():
    """aws_cli(srv, *args, region=...) -> CliResult."""
    return run_aws


# --------------------------------------------------------------------------
# Raw signed requests
# --------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return None

    @property
    def code(self) -> Optional[str]:
        data = self.json
        if not isinstance(data, dict):
            return None
        typ = data.get("__type") or data.get("code")
        if typ is None:
            return None
        # Same sanitising as botocore / the smithy SDKs.
        typ = typ.split("#")[-1].split(":")[0]
        return typ

    @property
    def message(self) -> Optional[str]:
        data = self.json
        if not isinstance(data, dict):
            return None
        return data.get("message", data.get("Message"))

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


_POOLS: dict = {}


def _pool(srv: TumblerServer) -> urllib3.PoolManager:
    key = (srv.url, srv.verify)
    if key not in _POOLS:
        if srv.tls:
            _POOLS[key] = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(srv.ca_path))
        else:
            _POOLS[key] = urllib3.PoolManager()
    return _POOLS[key]


def raw_request(
    srv: TumblerServer,
    target: Optional[str],
    body: Any = None,
    *,
    sign: bool = True,
    region: str = REGION,
    service: str = "secretsmanager",
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    session_token: Optional[str] = None,
    when: Optional[dt.datetime] = None,
    content_type: Optional[str] = JSON_CT,
    headers: Optional[dict] = None,
    after_sign: Optional[Callable[[dict, bytes], tuple]] = None,
    path: str = "/",
) -> RawResponse:
    """Send one POST to `srv`, optionally SigV4-signed with botocore's signer.

    target:      X-Amz-Target value (e.g. "secretsmanager.GetSecretValue"), or None to omit it.
    body:        dict/list (JSON-encoded), str or bytes (sent as is), or None (empty body).
    when:        sign as if the clock read this UTC time (for skew tests).
    after_sign:  f(headers, body) -> (headers, body), applied after signing (tampering).
    """
    if body is None:
        data = b""
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    hdrs = {}
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if target is not None:
        hdrs["X-Amz-Target"] = target
    if headers:
        hdrs.update(headers)
    req = AWSRequest(method="POST", url=srv.url + path, data=data, headers=hdrs)
    if sign:
        creds = Credentials(access_key, secret_key, session_token)
        signer = SigV4Auth(creds, service, region)
        if when is not None:
            fixed = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
            with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: fixed):
                signer.add_auth(req)
        else:
            signer.add_auth(req)
    prepared = req.prepare()
    out_headers = dict(prepared.headers.items())
    out_body = prepared.body if prepared.body is not None else b""
    if isinstance(out_body, str):
        out_body = out_body.encode("utf-8")
    if after_sign is not None:
        out_headers, out_body = after_sign(out_headers, out_body)
    resp = _pool(srv).request(
        "POST",
        srv.url + path,
        body=out_body,
        headers=out_headers,
        retries=False,
        redirect=False,
        timeout=urllib3.Timeout(connect=10, read=30),
    )
    return RawResponse(resp.status, dict(resp.headers.items()), resp.data)


@pytest.fixture(scope="session")
def raw(server):
    """raw(target_op, body, **kw) against the shared HTTP server; target_op like 'GetSecretValue'."""

    def call(op: Optional[str], body: Any = None, srv=None, **kw) -> RawResponse:
        target = None if op is None else (op if "." in op else f"secretsmanager.{op}")
        return raw_request(srv or server, target, body, **kw)

    return call


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------
# rotation helpers
# --------------------------------------------------------------------------


def wait_for(check, timeout: float = 30.0, what: str = "the rotation"):
    """Poll `check()` until it returns something true; fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.1)


def stages(sm, secret_id: str) -> dict:
    """DescribeSecret's VersionIdsToStages."""
    return sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})


def current_is(sm, secret_id: str, version: str) -> bool:
    return "AWSCURRENT" in stages(sm, secret_id).get(version, [])


def audit_events(srv: TumblerServer, event_name: str, env: Optional[dict] = None) -> str:
    """The audit events named `event_name` in `srv`'s store, as text."""
    r = run_tumbler("audit", "search", "--data-dir", str(srv.data_dir), "--event-name", event_name, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def rotator_env() -> dict:
    """What a rotation function (command or webhook) needs to call back:
    the bootstrap administrator's key, and no stray AWS configuration."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
    }


def scrape_metrics(srv: TumblerServer) -> dict:
    """GET /metrics (no credentials) as {'name{labels}': value}."""
    resp = _pool(srv).request("GET", srv.url + "/metrics", retries=False, timeout=10)
    assert resp.status == 200, resp.data
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    samples = {}
    for line in resp.data.decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


@pytest.fixture(scope="session")
def pg():
    """A real PostgreSQL on 127.0.0.1 for the session (tests/python/dbservers.py)."""
    from dbservers import Postgres

    server = Postgres()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def maria():
    """A real MariaDB on 127.0.0.1 for the session."""
    from dbservers import MariaDB

    server = MariaDB()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def kafka():
    """A real Apache Kafka broker on 127.0.0.1 for the session (tests/python/kafkabroker.py)."""
    from kafkabroker import KafkaBroker

    broker = KafkaBroker()
    yield broker
    broker.cleanup()
