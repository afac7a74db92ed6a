"""Kafka SCRAM sync, end to end against a real Apache Kafka broker.

1. Associating N users (default 1,000: MSK's per-cluster limit) with a
   registered cluster in batches of 10 (MSK's per-call limit): the total
   time, every user checked on the broker, and the 1,001st refused.
2. Propagation: M times (default 100), PutSecretValue with a new password,
   then the time from its answer until a new librdkafka connection logs in
   with that password (p50, p99, max), by a bare SCRAM-SHA-512 login.
usage: kafka_scram.py TUMBLER_URL ACCESS_KEY SECRET_KEY TUMBLER_BIN [N=1000] [M=100]
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
from kafkabroker import ADMIN_PASSWORD, ADMIN_USER, KafkaBroker  # noqa: E402


def _frame(sock, api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after its
    v0 header: enough for SaslHandshake v1 and SaslAuthenticate v1."""
    client = b"bench"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    size = struct.unpack(">i", _read(sock, 4))[0]
    answer = _read(sock, size)
    assert struct.unpack(">i", answer[:4])[0] == correlation
    return answer[4:]


def _read(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def scram_login(address: str, user: str, password: str) -> bool:
    """One SCRAM-SHA-512 login on a new connection, without a Kafka client
    library (a librdkafka attempt costs ~70 ms and retries on its own, too
    coarse to time propagation)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        mech = b"SCRAM-SHA-512"
        body = _frame(sock, 17, 1, 1, struct.pack(">h", len(mech)) + mech)
        assert struct.unpack(">h", body[:2])[0] == 0

        def authenticate(correlation: int, payload: bytes) -> tuple[int, bytes]:
            body = _frame(sock, 36, 1, correlation, struct.pack(">i", len(payload)) + payload)
            code, msg_len = struct.unpack(">hh", body[:4])
            rest = body[4 + max(msg_len, 0):]
            n = struct.unpack(">i", rest[:4])[0]
            return code, rest[4:4 + max(n, 0)]

        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n={user},r={nonce}"
        code, server_first = authenticate(2, f"n,,{first_bare}".encode())
        if code:
            return False
        fields = dict(p.split("=", 1) for p in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{first_bare},{server_first.decode()},{without_proof}".encode()
        client_key = hmac.new(salted, b"Client Key", "sha512").digest()
        signature = hmac.new(hashlib.sha512(client_key).digest(), auth_message, "sha512").digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
        code, _ = authenticate(3, f"{without_proof},p={proof}".encode())
        return code == 0


def main() -> None:
    url, access_key, secret_key, tumbler = sys.argv[1:5]
    users = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    changes = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    # A refused login is answered after 100 ms by default, which would
    # hide when the new password arrived.
    kafka = KafkaBroker({"connection.failed.authentication.delay.ms": "0"})
    try:
        def client(service: str):
            return boto3.client(
                service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=Config(max_pool_connections=32, retries={"max_attempts": 1}, read_timeout=120),
            )

        sm, kms, msk = client("secretsmanager"), client("kms"), client("kafka")
        key = kms.create_key()["KeyMetadata"]["Arn"]
        admin = sm.create_secret(Name="bench-kafka-admin",
                                 SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_REGION": "us-east-1",
               "TUMBLER_ENDPOINT_URL": url, "PATH": os.environ.get("PATH", "")}
        out = subprocess.run([tumbler, "kafka", "register", "--name", "bench", "--bootstrap-servers",
                              kafka.bootstrap, "--security-protocol", "SASL_PLAINTEXT", "--admin-secret-id",
                              admin["ARN"]], env=env, capture_output=True, text=True, check=True)
        cluster = json.loads(out.stdout)["Cluster"]["ClusterArn"]

        def create(i: int) -> str:
            return sm.create_secret(Name=f"AmazonMSK_bench-{i:04}", KmsKeyId=key, SecretString=json.dumps(
                {"username": f"bench-{i:04}", "password": f"start-{i}-pw"}))["ARN"]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            arns = list(pool.map(create, range(users + 1)))
        started = time.perf_counter()
        for i in range(0, users, 10):
            failed = msk.batch_associate_scram_secret(ClusterArn=cluster, SecretArnList=arns[i:i + 10])
            assert not failed["UnprocessedScramSecrets"], failed
        took = time.perf_counter() - started
        on_broker = kafka.scram_users()
        missing = [i for i in range(users) if f"bench-{i:04}" not in on_broker]
        assert not missing, f"{len(missing)} users missing on the broker"
        extra = msk.batch_associate_scram_secret(ClusterArn=cluster, SecretArnList=[arns[users]])
        refused = [u["ErrorCode"] for u in extra["UnprocessedScramSecrets"]]
        print(f"associate {users} users in batches of 10: {took:.2f} s total, "
              f"{took / (users / 10) * 1000:.0f} ms per call; all {users} on the broker; "
              f"user {users + 1}: {refused}")

        latencies = []
        for n in range(changes):
            i = n % users
            password = f"changed-{n}-pw"
            sm.put_secret_value(SecretId=arns[i], SecretString=json.dumps(
                {"username": f"bench-{i:04}", "password": password}))
            t0 = time.perf_counter()
            while not scram_login(kafka.bootstrap, f"bench-{i:04}", password):
                if time.perf_counter() - t0 > 30:
                    raise AssertionError(f"bench-{i:04}: the new password was not accepted within 30 s")
            latencies.append(time.perf_counter() - t0)
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        print(f"propagation over {changes} changes (PutSecretValue answered -> new login accepted): "
              f"p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms, "
              f"mean {statistics.mean(latencies) * 1000:.0f} ms")
    finally:
        kafka.cleanup()


if __name__ == "__main__":
    main()
