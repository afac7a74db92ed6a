"""Kafka SASL/SCRAM: MSK's secret association API over a cluster registered
with Tumbler, kept in sync with a real Apache Kafka broker.

The broker (tests/python/kafkabroker.py) is Apache Kafka from Maven Central,
KRaft, SCRAM-SHA-512 on SASL_PLAINTEXT and SASL_SSL, StandardAuthorizer.
Clusters are registered with `tumbler kafka`; secrets are associated with
boto3's and the aws CLI's `kafka` client; the users are checked with
librdkafka (confluent-kafka), an independent Kafka client.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from conftest import (
    ACCOUNT,
    REGION,
    make_client,
    raw_request,
    run_aws,
    run_tumbler,
    scrape_metrics,
    start_server,
    wait_for,
)
from kafkabroker import ADMIN_PASSWORD, ADMIN_USER, REAUTH_MS

ROTATOR = "arn:aws:lambda:::function:tumbler-kafka-scram"


@pytest.fixture(scope="module")
def srv(tmp_path_factory, kafka):
    base = tmp_path_factory.mktemp("tumbler-kafka")
    server = start_server(base, tls=True, env={"TUMBLER_KAFKA_RECONCILE_INTERVAL_SECS": "2"})
    yield server
    server.kill()


def cli_env(srv) -> dict:
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(srv.credentials_path),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_CA_BUNDLE": str(srv.ca_path),
        "AWS_REGION": REGION,
        "TUMBLER_ENDPOINT_URL": srv.url,
    }


@pytest.fixture(scope="module")
def sm(srv):
    return make_client(srv)


@pytest.fixture(scope="module")
def msk(srv):
    return make_client(srv, "kafka")


@pytest.fixture(scope="module")
def key(srv) -> str:
    """A customer managed KMS key, as MSK requires for SCRAM secrets."""
    return make_client(srv, "kms").create_key(Description="kafka scram secrets")["KeyMetadata"]["Arn"]


def register(srv, sm, kafka, name: str, *extra: str, admin_password: str = ADMIN_PASSWORD, tls: bool = False):
    admin = sm.create_secret(
        Name=f"kafka-admin-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": ADMIN_USER, "password": admin_password}),
    )
    args = ["kafka", "register", "--name", name, "--admin-secret-id", admin["ARN"]]
    if tls:
        args += ["--bootstrap-servers", kafka.ssl_bootstrap, "--security-protocol", "SASL_SSL",
                 "--ca-file", str(kafka.ca)]
    else:
        args += ["--bootstrap-servers", kafka.bootstrap, "--security-protocol", "SASL_PLAINTEXT"]
    return run_tumbler(*args, *extra, env=cli_env(srv)), admin["ARN"]


@pytest.fixture(scope="module")
def cluster(srv, sm, kafka) -> str:
    out, _ = register(srv, sm, kafka, "main")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Cluster"]["ClusterArn"]


def new_user(sm, key: str, user: str | None = None, password: str | None = None, **kw) -> tuple[str, str, str]:
    """An AmazonMSK_ secret: (arn, username, password)."""
    user = user or f"u-{uuid.uuid4().hex[:10]}"
    password = password or f"pw-{uuid.uuid4().hex}"
    arn = sm.create_secret(
        Name=kw.pop("Name", f"AmazonMSK_{user}"),
        KmsKeyId=key,
        SecretString=json.dumps({"username": user, "password": password}),
        **kw,
    )["ARN"]
    return arn, user, password


def associate(msk, cluster: str, *arns: str) -> list:
    return msk.batch_associate_scram_secret(ClusterArn=cluster, SecretArnList=list(arns))["UnprocessedScramSecrets"]


def described(srv, cluster: str) -> dict:
    out = run_tumbler("kafka", "describe", "--cluster", cluster, env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Cluster"]


def association(srv, cluster: str, arn: str) -> dict:
    return next(s for s in described(srv, cluster)["ScramSecrets"] if s["SecretArn"] == arn)


def produce_and_consume(kafka, user: str, password: str, topic: str, tls: bool = False) -> None:
    """A real client as `user`: produce one record and read it back."""
    from confluent_kafka import Consumer, Producer

    failures: list = []
    producer = Producer(kafka.client_config(user, password, tls=tls))
    payload = uuid.uuid4().bytes
    producer.produce(topic, payload, on_delivery=lambda err, msg: err and failures.append(err))
    assert producer.flush(20) == 0 and not failures, failures
    consumer = Consumer(kafka.client_config(user, password, tls=tls, **{
        "group.id": f"g-{user}", "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None and msg.value() == payload:
                return
        raise AssertionError(f"{user} did not read back its record from {topic}")
    finally:
        consumer.close()


def test_associate_makes_a_user_that_produces_and_consumes(srv, sm, msk, key, cluster, kafka):
    arn, user, password = new_user(sm, key)
    assert not kafka.can_login(user, password)
    assert associate(msk, cluster, arn) == []
    # Synced before the call returned: no waiting, unlike MSK's minutes.
    assert association(srv, cluster, arn)["SyncStatus"] == "SYNCED"
    assert user in kafka.scram_users()
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    kafka.create_topic(topic)
    kafka.allow(user, topic, group=f"g-{user}")
    produce_and_consume(kafka, user, password, topic)
    produce_and_consume(kafka, user, password, topic, tls=True)
    assert not kafka.can_login(user, "not-the-password")

    listed = msk.list_scram_secrets(ClusterArn=cluster)["SecretArnList"]
    assert arn in listed
    brokers = msk.get_bootstrap_brokers(ClusterArn=cluster)
    assert brokers["BootstrapBrokerStringSaslScram"] == kafka.bootstrap


def test_the_walkthrough_with_tumbler_kafka_and_the_aws_cli(srv, sm, key, kafka, tmp_path):
    """The README's steps: register with `tumbler kafka`, associate with the
    aws CLI, write the client config, and connect with it."""
    out, admin_arn = register(srv, sm, kafka, "walkthrough", tls=True)
    assert out.returncode == 0, out.stderr
    registered = json.loads(out.stdout)["Cluster"]
    arn_prefix = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/walkthrough/"
    assert registered["ClusterArn"].startswith(arn_prefix)
    assert registered["SecurityProtocol"] == "SASL_SSL" and registered["AdminSecretArn"] == admin_arn
    cluster = registered["ClusterArn"]
    listed = json.loads(run_tumbler("kafka", "list", env=cli_env(srv)).stdout)["Clusters"]
    assert cluster in [c["ClusterArn"] for c in listed]

    arn, user, password = new_user(sm, key)
    res = run_aws(srv, "kafka", "batch-associate-scram-secret", "--cluster-arn", cluster,
                  "--secret-arn-list", arn, check=True)
    assert res.json["ClusterArn"] == cluster and res.json.get("UnprocessedScramSecrets", []) == []
    res = run_aws(srv, "kafka", "list-scram-secrets", "--cluster-arn", cluster, check=True)
    assert res.json["SecretArnList"] == [arn]
    res = run_aws(srv, "kafka", "get-bootstrap-brokers", "--cluster-arn", cluster, check=True)
    assert res.json["BootstrapBrokerStringSaslScram"] == kafka.ssl_bootstrap

    status = run_tumbler("kafka", "status", "--cluster", "walkthrough", env=cli_env(srv))
    assert status.returncode == 0 and "SYNCED" in status.stdout and user in status.stdout, status

    config = run_tumbler("kafka", "client-config", "--secret-id", arn, "--format", "librdkafka", env=cli_env(srv))
    assert config.returncode == 0, config.stderr
    props = dict(line.split("=", 1) for line in config.stdout.splitlines() if line and not line.startswith("#"))
    assert props["sasl.username"] == user and props["sasl.password"] == password
    assert props["sasl.mechanisms"] == "SCRAM-SHA-512" and props["security.protocol"] == "sasl_ssl"
    props["ssl.ca.location"] = str(kafka.ca)
    props["log_level"] = 0
    from confluent_kafka.admin import AdminClient

    AdminClient(props).list_topics(timeout=15)

    java = run_tumbler("kafka", "client-config", "--secret-id", arn, env=cli_env(srv))
    assert java.returncode == 0, java.stderr
    assert (f'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{user}" password="{password}";') in java.stdout
    assert f"bootstrap.servers={kafka.ssl_bootstrap}" in java.stdout
    assert "sasl.mechanism=SCRAM-SHA-512" in java.stdout and "security.protocol=SASL_SSL" in java.stdout

    res = run_aws(srv, "kafka", "batch-disassociate-scram-secret", "--cluster-arn", cluster,
                  "--secret-arn-list", arn, check=True)
    assert res.json.get("UnprocessedScramSecrets", []) == []
    assert not kafka.can_login(user, password, tls=True)
    out = run_tumbler("kafka", "deregister", "--cluster", cluster, env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    out = run_tumbler("kafka", "describe", "--cluster", cluster, env=cli_env(srv))
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr


def test_a_new_value_reaches_the_broker_and_the_old_password_is_refused(srv, sm, msk, key, cluster, kafka):
    arn, user, old = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    assert kafka.can_login(user, old)
    new = f"pw-{uuid.uuid4().hex}"
    version = sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": user, "password": new}))
    wait_for(lambda: kafka.can_login(user, new, timeout=3), timeout=15, what="the new password")
    assert not kafka.can_login(user, old)
    wait_for(lambda: association(srv, cluster, arn).get("SyncedVersionId") == version["VersionId"],
             timeout=10, what="the sync record")


def test_rotation_sets_a_new_password_that_works_and_refuses_the_old(srv, sm, msk, key, cluster, kafka):
    arn, user, old = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    sm.rotate_secret(SecretId=arn, RotationLambdaARN=ROTATOR, RotationRules={"AutomaticallyAfterDays": 30})

    def rotated():
        value = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
        return value if value["password"] != old else None

    value = wait_for(rotated, timeout=30)
    assert value["username"] == user and len(value["password"]) == 32
    assert kafka.can_login(user, value["password"])
    assert not kafka.can_login(user, old)
    assert not sm.describe_secret(SecretId=arn).get("TumblerRotationStatus")


def test_rotation_of_a_secret_no_cluster_knows_fails_and_says_why(srv, sm, key, kafka):
    arn, _, _ = new_user(sm, key)
    sm.rotate_secret(SecretId=arn, RotationLambdaARN=ROTATOR, RotationRules={"AutomaticallyAfterDays": 30})
    resp = raw_request(srv, "secretsmanager.DescribeSecret", {"SecretId": arn})

    def failed():
        status = raw_request(srv, "secretsmanager.DescribeSecret", {"SecretId": arn}).json.get(
            "TumblerRotationStatus") or {}
        return status if status.get("LastError") else None

    status = wait_for(failed, timeout=30)
    assert resp.status == 200
    assert status["LastError"]["Step"] == "setSecret"
    assert "not associated with any Kafka cluster" in status["LastError"]["Message"]


def test_open_connections_stay_until_they_reauthenticate(srv, sm, msk, key, cluster, kafka):
    """Kafka checks a credential only when a connection authenticates. On
    the plaintext listener (no re-authentication) a producer opened with the
    old password keeps producing after the change; on the TLS listener
    (connections.max.reauth.ms) its session must re-authenticate, fails with
    the old password, and the producer can no longer deliver."""
    from confluent_kafka import Producer

    arn, user, old = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    kafka.create_topic(topic)
    kafka.allow(user, topic)
    errors: list = []
    plain = Producer(kafka.client_config(user, old))
    tls = Producer(kafka.client_config(user, old, tls=True, error_cb=errors.append,
                                       **{"message.timeout.ms": 3000}))
    for p in (plain, tls):
        p.produce(topic, b"before")
        assert p.flush(20) == 0
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": user, "password": "pw-new-" + uuid.uuid4().hex}))
    wait_for(lambda: not kafka.can_login(user, old, timeout=3), timeout=15, what="the change")
    time.sleep(REAUTH_MS / 1000 * 1.5)

    delivered: list = []
    plain.produce(topic, b"after", on_delivery=lambda err, msg: delivered.append(err))
    assert plain.flush(20) == 0 and delivered == [None], "an open session survives the password change"

    outcome: list = []
    tls.produce(topic, b"after", on_delivery=lambda err, msg: outcome.append(err))
    tls.flush(15)
    tls.poll(0.5)
    assert outcome and outcome[0] is not None, "the re-authenticating session must fail with the old password"
    assert any("uthentication" in e.str() for e in errors), [e.str() for e in errors]


def test_disassociation_deletes_the_user(srv, sm, msk, key, cluster, kafka):
    arn, user, password = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    assert kafka.can_login(user, password)
    out = msk.batch_disassociate_scram_secret(ClusterArn=cluster, SecretArnList=[arn])
    assert out["UnprocessedScramSecrets"] == []
    assert user not in kafka.scram_users()
    assert not kafka.can_login(user, password)
    assert arn not in msk.list_scram_secrets(ClusterArn=cluster)["SecretArnList"]
    # Disassociating again names what is wrong, per secret.
    again = msk.batch_disassociate_scram_secret(ClusterArn=cluster, SecretArnList=[arn])["UnprocessedScramSecrets"]
    assert [(u["SecretArn"], u["ErrorCode"]) for u in again] == [(arn, "SecretNotAssociated")]


def test_the_reconciler_restores_a_user_deleted_by_hand(srv, sm, msk, key, cluster, kafka):
    arn, user, password = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    synced_at = association(srv, cluster, arn)["LastSyncDate"]
    kafka.delete_scram_user(user)
    # The reconciler (every 2 s here) notices the missing user and sets it again.
    wait_for(lambda: association(srv, cluster, arn)["LastSyncDate"] > synced_at, timeout=20, what="the reconciler")
    assert user in kafka.scram_users()
    assert kafka.can_login(user, password)


def test_the_reconciler_leaves_users_it_did_not_create(srv, sm, msk, key, cluster, kafka):
    kafka.set_scram_user("made-by-hand", "pw-by-hand-1")
    time.sleep(5)  # more than two reconciliations
    assert "made-by-hand" in kafka.scram_users()
    assert kafka.can_login("made-by-hand", "pw-by-hand-1")
    assert ADMIN_USER in kafka.scram_users()


def test_msk_rules_each_get_their_error(srv, sm, msk, key, cluster, kafka):
    good, _, _ = new_user(sm, key)
    no_prefix, _, _ = new_user(sm, key, Name=f"plain-{uuid.uuid4().hex[:8]}")
    default_key = sm.create_secret(Name=f"AmazonMSK_dk-{uuid.uuid4().hex[:8]}",
                                   SecretString=json.dumps({"username": "dk", "password": "x"}))["ARN"]
    bad_value = sm.create_secret(Name=f"AmazonMSK_bv-{uuid.uuid4().hex[:8]}", KmsKeyId=key,
                                 SecretString=json.dumps({"user": "x", "pass": "y"}))["ARN"]
    bad_user = sm.create_secret(Name=f"AmazonMSK_bu-{uuid.uuid4().hex[:8]}", KmsKeyId=key,
                                SecretString=json.dumps({"username": "a b,c", "password": "y"}))["ARN"]
    west = make_client(srv, region="us-west-2").create_secret(
        Name=f"AmazonMSK_w-{uuid.uuid4().hex[:8]}", SecretString=json.dumps({"username": "w", "password": "x"}))["ARN"]
    missing = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:AmazonMSK_missing-AbCdEf"
    unprocessed = associate(msk, cluster, good, no_prefix, default_key, bad_value, bad_user, west, missing)
    # MSK's code for all of them, as tools expect; the message names the rule.
    codes = {u["SecretArn"]: u["ErrorCode"] for u in unprocessed}
    assert codes == {arn: "InvalidSecretArn" for arn in (no_prefix, default_key, bad_value, bad_user, west, missing)}
    messages = {u["SecretArn"]: u["ErrorMessage"] for u in unprocessed}
    assert "Secret names must have the prefix 'AmazonMSK_'" in messages[no_prefix]
    assert "customer managed KMS key" in messages[default_key]
    assert '"username"' in messages[bad_value] and "letters, digits" in messages[bad_user]
    assert "same account and region" in messages[west]
    assert "wasn't able to access" in messages[missing] and "ResourceNotFoundException" in messages[missing]
    # The valid one went through; the failures changed nothing.
    listed = msk.list_scram_secrets(ClusterArn=cluster)["SecretArnList"]
    assert good in listed and not set(codes) & set(listed)

    # The same username twice on one cluster.
    _, user, _ = new_user(sm, key)
    twin = sm.create_secret(Name=f"AmazonMSK_twin-{uuid.uuid4().hex[:8]}", KmsKeyId=key,
                            SecretString=json.dumps({"username": user, "password": "other"}))["ARN"]
    first = sm.describe_secret(SecretId=f"AmazonMSK_{user}")["ARN"]
    assert associate(msk, cluster, first) == []
    dup = associate(msk, cluster, twin)
    assert [u["ErrorCode"] for u in dup] == ["DuplicateUsername"]
    # Associating again is a no-op, not an error.
    assert associate(msk, cluster, first) == []


def test_batch_limits_and_bad_requests(srv, sm, msk, key, cluster):
    from botocore.exceptions import ClientError

    eleven = [new_user(sm, key)[0] for _ in range(11)]
    with pytest.raises(ClientError) as e:
        associate(msk, cluster, *eleven)
    assert e.value.response["Error"]["Code"] == "BadRequestException"
    assert "at most 10" in e.value.response["Error"]["Message"]
    assert not set(eleven) & set(msk.list_scram_secrets(ClusterArn=cluster)["SecretArnList"])

    unknown = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/nope/{uuid.uuid4()}"
    with pytest.raises(ClientError) as e:
        msk.list_scram_secrets(ClusterArn=unknown)
    assert e.value.response["Error"]["Code"] == "NotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        msk.list_scram_secrets(ClusterArn="not-an-arn")
    assert e.value.response["Error"]["Code"] == "BadRequestException"

    # Pages: maxResults and nextToken walk every association once.
    arns = [new_user(sm, key)[0] for _ in range(3)]
    assert associate(msk, cluster, *arns) == []
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = msk.list_scram_secrets(ClusterArn=cluster, MaxResults=2, **kw)
        assert len(page["SecretArnList"]) <= 2
        seen += page["SecretArnList"]
        token = page.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) and set(arns) <= set(seen)


def rest(srv, method: str, path: str, body: bytes = b"", sign: bool = True):
    """A hand-made MSK REST call."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from conftest import ACCESS_KEY, SECRET_KEY, _pool

    req = AWSRequest(method=method, url=srv.url + path, data=body, headers={"Content-Type": "application/json"})
    if sign:
        botocore.auth.SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kafka", REGION).add_auth(req)
    prepared = req.prepare()
    return _pool(srv).request(method, srv.url + path, body=body, headers=dict(prepared.headers.items()),
                              retries=False, timeout=30)


def test_hostile_rest_input_gets_msk_errors_not_500s(srv, cluster):
    from urllib.parse import quote

    path = f"/v1/clusters/{quote(cluster, safe='')}/scram-secrets"
    for body in [b"{", b"[]", b'{"secretArnList": "x"}', b'{"secretArnList": [1,2]}', b"\xff\xfe",
                 json.dumps({"secretArnList": ["x" * 5000]}).encode(), json.dumps({"secretArnList": []}).encode()]:
        r = rest(srv, "POST", path, body)
        assert 400 <= r.status < 500, (body[:40], r.status, r.data)
        assert r.headers.get("x-amzn-ErrorType"), r.headers
        assert "message" in json.loads(r.data)
    r = rest(srv, "POST", path, json.dumps({"secretArnList": ["arn:x"]}).encode(), sign=False)
    assert r.status in (400, 403) and r.status != 500
    r = rest(srv, "DELETE", path)
    assert r.status == 405
    r = rest(srv, "GET", f"/v1/clusters/{quote(cluster, safe='')}/scram-secrets?maxResults=0")
    assert r.status == 400 and json.loads(r.data)["message"]
    r = rest(srv, "GET", f"/v1/clusters/{quote(cluster, safe='')}/scram-secrets?nextToken=%%%")
    assert r.status == 400
    r = rest(srv, "GET", "/v1/clusters/%ZZ/scram-secrets")
    assert 400 <= r.status < 500


def test_registration_refuses_bad_input_and_a_wrong_admin(srv, sm, kafka):
    env = cli_env(srv)

    def reg(*args):
        return run_tumbler("kafka", "register", *args, env=env)

    admin = sm.create_secret(Name=f"kafka-admin-{uuid.uuid4().hex[:8]}",
                             SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))["ARN"]
    base = ["--admin-secret-id", admin, "--security-protocol", "SASL_PLAINTEXT"]
    for args, words in [
        (["--name", "bad name", "--bootstrap-servers", kafka.bootstrap], "ClusterName"),
        (["--name", "ok", "--bootstrap-servers", "no-port"], "BootstrapServers"),
        (["--name", "ok", "--bootstrap-servers", "h:99999"], "BootstrapServers"),
        (["--name", "ok", "--bootstrap-servers", kafka.bootstrap, "--scram-iterations", "100"], "ScramIterations"),
    ]:
        out = reg(*args, *base)
        assert out.returncode != 0 and words in out.stderr, (args, out.stderr)
    out = reg("--name", "ok", "--bootstrap-servers", kafka.bootstrap, "--admin-secret-id", admin,
              "--security-protocol", "PLAINTEXT")
    assert out.returncode != 0 and "SecurityProtocol" in out.stderr
    # A wrong admin password is refused by the broker, and the answer says so.
    out, _ = register(srv, sm, kafka, "wrong-admin", admin_password="not-it")
    assert out.returncode != 0 and "InvalidRequestException" in out.stderr
    assert "authentication failed" in out.stderr
    assert "not-it" not in out.stderr
    # Nothing listening: refused, with the address.
    out = reg("--name", "nobody", "--bootstrap-servers", "127.0.0.1:1", *base)
    assert out.returncode != 0 and "127.0.0.1:1" in out.stderr
    # TLS without the right CA: the certificate is not trusted.
    out = reg("--name", "untrusted", "--bootstrap-servers", kafka.ssl_bootstrap, "--admin-secret-id", admin,
              "--security-protocol", "SASL_SSL")
    assert out.returncode != 0 and "certificate" in out.stderr.lower(), out.stderr
    listed = json.loads(run_tumbler("kafka", "list", env=env).stdout)["Clusters"]
    assert not {"ok", "wrong-admin", "nobody", "untrusted"} & {c["ClusterName"] for c in listed}
    # The same name twice.
    first, _ = register(srv, sm, kafka, "twice")
    assert first.returncode == 0, first.stderr
    second, _ = register(srv, sm, kafka, "twice")
    assert second.returncode != 0 and "ResourceExistsException" in second.stderr


def test_a_failing_sync_is_visible_and_repaired(srv, sm, msk, key, kafka, tmp_path):
    """The admin secret goes bad: new associations fail, `tumbler kafka
    status` says why and exits 2, the audit trail records it; once the admin
    secret is fixed the reconciler finishes the job."""
    out, admin = register(srv, sm, kafka, f"fragile-{uuid.uuid4().hex[:6]}")
    assert out.returncode == 0, out.stderr
    cluster = json.loads(out.stdout)["Cluster"]["ClusterArn"]
    sm.put_secret_value(SecretId=admin, SecretString=json.dumps({"username": ADMIN_USER, "password": "wrong"}))
    arn, user, password = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    state = association(srv, cluster, arn)
    assert state["SyncStatus"] == "FAILED" and "authentication failed" in state["LastError"], state
    status = run_tumbler("kafka", "status", "--cluster", cluster, env=cli_env(srv))
    assert status.returncode == 2 and "FAILED" in status.stdout and "authentication failed" in status.stdout
    assert scrape_metrics(srv)['tumbler_kafka_scram_secrets{status="failed"}'] >= 1
    assert not kafka.can_login(user, password)

    sm.put_secret_value(SecretId=admin, SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
    wait_for(lambda: association(srv, cluster, arn)["SyncStatus"] == "SYNCED", timeout=20, what="the repair")
    assert kafka.can_login(user, password)
    status = run_tumbler("kafka", "status", "--cluster", cluster, "--json", env=cli_env(srv))
    assert status.returncode == 0, status

    from conftest import audit_events

    trail = audit_events(srv, "SyncScramSecrets")
    assert "ScramSyncFailed" in trail and user in trail and cluster in trail
    assert password not in trail and ADMIN_PASSWORD not in trail


def test_iam_denies_kafka_calls_without_permission(srv, sm, key, cluster):
    iam = make_client(srv, "iam")
    name = f"kafka-viewer-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="list-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kafka:ListScramSecrets", "Resource": cluster}],
    }))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    viewer = make_client(srv, "kafka", access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])

    def eventually(call):
        # IAM changes apply at once here, but keep the test honest about it.
        return wait_for(call, timeout=10, what="the new key")

    eventually(lambda: viewer.list_scram_secrets(ClusterArn=cluster) is not None)
    from botocore.exceptions import ClientError

    arn, _, _ = new_user(sm, key)
    with pytest.raises(ClientError) as e:
        viewer.batch_associate_scram_secret(ClusterArn=cluster, SecretArnList=[arn])
    err = e.value.response["Error"]
    assert err["Code"] == "ForbiddenException" and e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert name in err["Message"] and "kafka:BatchAssociateScramSecret" in err["Message"]


def test_a_user_left_behind_by_a_failed_disassociation_is_deleted_later(srv, sm, msk, key, kafka):
    """The broker cannot be told at disassociation (here: a wrong admin
    password); the user Tumbler set stays owned, and the reconciler deletes
    it once it can. A user Tumbler never set is left alone all along."""
    out, admin = register(srv, sm, kafka, f"leftover-{uuid.uuid4().hex[:6]}")
    assert out.returncode == 0, out.stderr
    cluster = json.loads(out.stdout)["Cluster"]["ClusterArn"]
    arn, user, password = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    kafka.set_scram_user("bystander", "pw-bystander-1")
    sm.put_secret_value(SecretId=admin, SecretString=json.dumps({"username": ADMIN_USER, "password": "wrong"}))
    assert msk.batch_disassociate_scram_secret(ClusterArn=cluster, SecretArnList=[arn])["UnprocessedScramSecrets"] == []
    assert kafka.can_login(user, password), "the broker could not be told yet"
    sm.put_secret_value(SecretId=admin, SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
    wait_for(lambda: user not in kafka.scram_users(), timeout=20, what="the reconciler's deletion")
    assert not kafka.can_login(user, password)
    assert "bystander" in kafka.scram_users()


class ApiAnswer:
    def __init__(self, status: int, body: bytes):
        self.status, self.body = status, body
        self.json = json.loads(body) if body else {}
        # Modeled errors say "Message", the others "message", as AWS's JSON does.
        if status >= 400:
            self.json["message"] = self.json.get("message") or self.json.get("Message") or ""


def kafka_api(srv, op: str, body, **kw) -> ApiAnswer:
    r = raw_request(srv, f"TumblerKafka.{op}", body, service="tumbler", **kw)
    return ApiAnswer(r.status, r.body)


def test_tumbler_kafka_api_refuses_hostile_input(srv, sm, msk, key, cluster):
    for body in ["{", "[]", '{"ClusterName": 7}', '{"BootstrapServers": "a:1"}', b"\xff\xfe"]:
        r = kafka_api(srv, "RegisterCluster", body)
        assert r.status == 400, (body, r.status, r.body)
        assert r.json["__type"] in ("SerializationException", "InvalidParameterException"), r.body
    r = kafka_api(srv, "RegisterCluster", {"ClusterName": "big", "BootstrapServers": ["h:1"] * 33,
                                           "AdminSecretId": "x"})
    assert r.status == 400 and "1 to 32" in r.json["message"]
    r = kafka_api(srv, "RegisterCluster", {"ClusterName": "x" * 65, "BootstrapServers": ["h:1"], "AdminSecretId": "x"})
    assert r.status == 400 and "ClusterName" in r.json["message"]
    r = kafka_api(srv, "RegisterCluster", {"ClusterName": "pem", "BootstrapServers": ["h:1"], "AdminSecretId": "x",
                                           "SecurityProtocol": "SASL_SSL", "CaCertificate": "not a pem"})
    assert r.status == 400 and "CaCertificate" in r.json["message"]
    r = kafka_api(srv, "NoSuchOperation", {})
    assert r.status == 400 and r.json["__type"] == "UnknownOperationException"
    r = kafka_api(srv, "DescribeCluster", {"ClusterArn": f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/x/y"})
    assert r.status == 400 and r.json["__type"] == "ResourceNotFoundException"
    r = kafka_api(srv, "DescribeCluster", {})
    assert r.status == 400 and "ClusterArn is required" in r.json["message"]
    # A cluster with associations is not forgotten by accident.
    assert associate(msk, cluster, new_user(sm, key)[0]) == []
    r = kafka_api(srv, "DeregisterCluster", {"ClusterArn": cluster})
    assert r.status == 400 and r.json["__type"] == "InvalidRequestException" and "disassociate" in r.json["message"]
    r = kafka_api(srv, "ListClusters", {}, sign=False)
    assert r.status in (400, 403) and r.status != 500


def test_registering_needs_permission_and_a_readable_admin_secret(srv, sm, kafka):
    iam = make_client(srv, "iam")
    name = f"kafka-nobody-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="register-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "tumbler:RegisterCluster", "Resource": "*"}],
    }))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    admin = sm.create_secret(Name=f"kafka-admin-{uuid.uuid4().hex[:8]}",
                             SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))["ARN"]
    body = {"ClusterName": "sneaky", "BootstrapServers": [kafka.bootstrap], "SecurityProtocol": "SASL_PLAINTEXT",
            "AdminSecretId": admin}
    r = kafka_api(srv, "RegisterCluster", body, access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])
    # Allowed to register, but not to read the admin secret it names.
    assert r.status == 400 and r.json["__type"] == "AccessDeniedException", r.body
    assert "secretsmanager:GetSecretValue" in r.json["message"]
    r = kafka_api(srv, "ListClusters", {}, access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])
    assert r.status == 400 and r.json["__type"] == "AccessDeniedException"
    assert name in r.json["message"] and "tumbler:ListClusters" in r.json["message"]


def test_deleting_an_associated_secret_removes_its_user(srv, sm, msk, key, cluster, kafka):
    """Scheduled for deletion, the secret can come back, so its user stays
    (its sync fails and says why); deleted for good, the reconciler deletes
    the user and the association."""
    arn, user, password = new_user(sm, key)
    assert associate(msk, cluster, arn) == []
    synced_at = association(srv, cluster, arn)["LastSyncDate"]
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    def failed_again():
        a = association(srv, cluster, arn)
        return a if a.get("LastSyncDate", 0) > synced_at else None

    state = wait_for(failed_again, timeout=20, what="the reconciler")
    assert state["SyncStatus"] == "FAILED" and "marked for deletion" in state["LastError"], state
    assert kafka.can_login(user, password)
    sm.restore_secret(SecretId=arn)
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    wait_for(lambda: arn not in msk.list_scram_secrets(ClusterArn=cluster)["SecretArnList"], timeout=20,
             what="the association's removal")
    assert user not in kafka.scram_users()
    assert not kafka.can_login(user, password)


def test_a_cluster_takes_at_most_1000_users(srv, sm, msk, key, kafka):
    """MSK's limit, enforced per secret: the 1,001st is refused, and the
    first 1,000 are all on the broker."""
    import concurrent.futures

    out, _ = register(srv, sm, kafka, f"full-{uuid.uuid4().hex[:6]}")
    assert out.returncode == 0, out.stderr
    cluster = json.loads(out.stdout)["Cluster"]["ClusterArn"]
    tag = uuid.uuid4().hex[:6]
    pool_sm = make_client(srv, max_pool_connections=16)

    def create(i: int) -> str:
        return pool_sm.create_secret(Name=f"AmazonMSK_full-{tag}-{i:04}", KmsKeyId=key, SecretString=json.dumps(
            {"username": f"full-{tag}-{i:04}", "password": f"pw-{i}-{tag}"}))["ARN"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        arns = list(pool.map(create, range(1001)))
    for i in range(0, 1000, 10):
        assert associate(msk, cluster, *arns[i:i + 10]) == []
    refused = associate(msk, cluster, arns[1000])
    assert [(u["SecretArn"], u["ErrorCode"]) for u in refused] == [(arns[1000], "TooManyUsers")]
    assert "at most 1000" in refused[0]["ErrorMessage"]
    on_broker = kafka.scram_users()
    assert all(f"full-{tag}-{i:04}" in on_broker for i in range(1000))
    assert f"full-{tag}-1000" not in on_broker
    out = run_tumbler("kafka", "deregister", "--cluster", cluster, "--force", env=cli_env(srv))
    assert out.returncode == 0, out.stderr
