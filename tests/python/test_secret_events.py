"""Change notifications: a SigV4-signed long poll on GET /v1/secret-events
returns at once when a secret's AWSCURRENT moves (a put, a rotation), only
for secrets the caller may DescribeSecret, and refuses unsigned polls."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, SECRET_KEY, make_client

RANDOM_PASSWORD = "arn:aws:lambda:::function:tumbler-random-password"
http = urllib3.PoolManager()


def poll(srv, access_key=ACCESS_KEY, secret_key=SECRET_KEY, sign=True, **params):
    query = urllib.parse.urlencode(params, doseq=True)
    url = f"{srv.url}/v1/secret-events" + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=url)
    if sign:
        SigV4Auth(Credentials(access_key, secret_key), "secretsmanager", "us-east-1").add_auth(req)
    r = http.request("GET", url, headers=dict(req.headers), timeout=70)
    return r.status, json.loads(r.data)


def test_a_long_poll_returns_when_current_moves(server, sm, uniq):
    name = uniq("events")
    arn = sm.create_secret(Name=name, SecretString="v1")["ARN"]
    status, head = poll(server, wait=0)
    assert status == 200 and head["Events"] == []
    got = {}

    def waiter():
        got["answer"] = poll(server, since=head["NextSequence"], wait=30, SecretId=arn)
        got["at"] = time.monotonic()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    put_at = time.monotonic()
    v2 = sm.put_secret_value(SecretId=name, SecretString="v2")["VersionId"]
    t.join(timeout=35)
    status, answer = got["answer"]
    assert status == 200
    assert [(e["ARN"], e["VersionId"]) for e in answer["Events"]] == [(arn, v2)]
    assert got["at"] - put_at < 5, "the poll should answer at once, not at its timeout"

    # A rotation's finish is a change too; the next poll picks up from NextSequence.
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=RANDOM_PASSWORD)["VersionId"]
    status, answer = poll(server, since=answer["NextSequence"], wait=20, SecretId=arn)
    assert [(e["ARN"], e["VersionId"]) for e in answer["Events"]] == [(arn, token)]
    # A write that leaves AWSCURRENT alone is no event.
    sm.put_secret_value(SecretId=name, SecretString="staged", VersionStages=["STAGED"])
    status, quiet = poll(server, since=answer["NextSequence"], wait=1, SecretId=arn)
    assert quiet["Events"] == []


def test_events_only_for_secrets_the_caller_may_describe(server, sm, uniq):
    iam = make_client(server, service="iam")
    mine = sm.create_secret(Name=uniq("mine"), SecretString="a")["ARN"]
    other = sm.create_secret(Name=uniq("other"), SecretString="b")["ARN"]
    user = uniq("watcher")
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="p",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": mine}]}
        ),
    )
    k = iam.create_access_key(UserName=user)["AccessKey"]
    _, head = poll(server, wait=0)
    sm.put_secret_value(SecretId=other, SecretString="b2")
    v = sm.put_secret_value(SecretId=mine, SecretString="a2")["VersionId"]
    status, answer = poll(server, k["AccessKeyId"], k["SecretAccessKey"], since=head["NextSequence"], wait=5)
    assert status == 200 and [(e["ARN"], e["VersionId"]) for e in answer["Events"]] == [(mine, v)]


def test_unsigned_and_bad_polls_are_refused(server):
    status, body = poll(server, sign=False, wait=0)
    assert status in (400, 403) and body["__type"] in ("MissingAuthenticationTokenException", "IncompleteSignatureException")
    status, body = poll(server, secret_key="not-the-secret-key-at-all", wait=0)
    assert status in (400, 403) and body["__type"] in ("SignatureDoesNotMatch", "InvalidSignatureException")
    status, body = poll(server, wait=61)
    assert status == 400 and body["__type"] == "InvalidParameterException"
    status, body = poll(server, since="soon")
    assert status == 400 and "whole number" in (body.get("message") or body.get("Message"))
