"""Kafka ACLs compiled from IAM policies, against a real Apache Kafka broker.

N users (default 100) each hold a kafka-cluster:WriteData policy on their own
topic. Then M times (default 50) one user gets a new policy (PutUserPolicy),
and the time is taken from its answer until the broker describes the new
ACL (DescribeAcls: what its authorizer enforces), and again from
DeleteUserPolicy's answer until the ACL is gone (p50, p99, max).
usage: kafka_acls.py TUMBLER_URL ACCESS_KEY SECRET_KEY TUMBLER_BIN [N=100] [M=50]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
from kafkabroker import ADMIN_PASSWORD, ADMIN_USER, KafkaBroker  # noqa: E402


def policy(cluster: str, topic: str) -> str:
    topic_arn = cluster.replace(":cluster/", ":topic/", 1) + "/" + topic
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:WriteData"],
        "Resource": [cluster, topic_arn]}]})


def main() -> None:
    url, access_key, secret_key, tumbler = sys.argv[1:5]
    users = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    changes = int(sys.argv[6]) if len(sys.argv) > 6 else 50
    kafka = KafkaBroker()
    try:
        def client(service: str):
            return boto3.client(
                service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=access_key,
                aws_secret_access_key=secret_key, config=Config(retries={"max_attempts": 1}, read_timeout=120),
            )

        sm, iam = client("secretsmanager"), client("iam")
        admin = sm.create_secret(Name="bench-kafka-admin",
                                 SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
        env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_REGION": "us-east-1",
               "TUMBLER_ENDPOINT_URL": url, "PATH": os.environ.get("PATH", "")}
        out = subprocess.run([tumbler, "kafka", "register", "--name", "bench", "--bootstrap-servers",
                              kafka.bootstrap, "--security-protocol", "SASL_PLAINTEXT", "--admin-secret-id",
                              admin["ARN"]], env=env, capture_output=True, text=True, check=True)
        cluster = json.loads(out.stdout)["Cluster"]["ClusterArn"]

        started = time.perf_counter()
        for i in range(users):
            iam.create_user(UserName=f"acl-{i:03}")
            iam.put_user_policy(UserName=f"acl-{i:03}", PolicyName="own", PolicyDocument=policy(cluster, f"t-{i}"))
        deadline = time.monotonic() + 120
        while any(("ALLOW", "WRITE", "TOPIC", "LITERAL", f"t-{i}") not in kafka.acls(f"acl-{i:03}")
                  for i in (0, users - 1)):
            assert time.monotonic() < deadline, "the users' ACLs did not arrive"
            time.sleep(0.05)
        print(f"{users} users with a WriteData policy each: {time.perf_counter() - started:.1f} s "
              "to create them and see their ACLs on the broker")

        def until(check) -> float:
            t0 = time.perf_counter()
            while not check():
                if time.perf_counter() - t0 > 30:
                    raise AssertionError("the ACL change did not arrive within 30 s")
            return time.perf_counter() - t0

        added, removed = [], []
        for n in range(changes):
            user = f"acl-{n % users:03}"
            acl = ("ALLOW", "WRITE", "TOPIC", "LITERAL", f"extra-{n}")
            iam.put_user_policy(UserName=user, PolicyName="extra", PolicyDocument=policy(cluster, f"extra-{n}"))
            added.append(until(lambda: acl in kafka.acls(user)))
            iam.delete_user_policy(UserName=user, PolicyName="extra")
            removed.append(until(lambda: acl not in kafka.acls(user)))

        def summary(latencies: list) -> str:
            latencies = sorted(latencies)
            p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
            return f"p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms"

        print(f"policy added -> ACL on the broker, over {changes} changes: {summary(added)}")
        print(f"policy removed -> ACL gone from the broker, over {changes} changes: {summary(removed)}")
    finally:
        kafka.cleanup()


if __name__ == "__main__":
    main()
