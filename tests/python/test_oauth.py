"""The OAuth 2.0 token issuer for Kafka's OAUTHBEARER (KIP-768): clients of
IAM users get ES256 JWTs with the client_credentials grant; a real Apache
Kafka broker verifies them against Tumbler's JWKS, and librdkafka fetches
them from the token endpoint as it does from any identity provider.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path
import uuid

import pytest
import urllib3

from conftest import (
    audit_events,
    make_client,
    run_tumbler,
    start_server,
    tumbler_bin,
    wait_for,
)

AUDIENCE = "kafka-it"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    base = tmp_path_factory.mktemp("tumbler-oauth")
    server = start_server(base, tls=False, env={"TUMBLER_OAUTH_AUDIENCE": AUDIENCE,
                                                "TUMBLER_KAFKA_RECONCILE_INTERVAL_SECS": "2"})
    yield server
    server.kill()


@pytest.fixture(scope="module")
def http():
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


def cli_env(srv) -> dict:
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(srv.credentials_path),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_REGION": "us-east-1",
        "TUMBLER_ENDPOINT_URL": srv.url,
    }


CONNECT = {"Effect": "Allow", "Action": "kafka-cluster:Connect", "Resource": "*"}


def new_client(srv, name: str | None = None, *extra: str, connect: bool = True) -> dict:
    """An IAM user (allowed kafka-cluster:Connect unless `connect` is
    false) and an OAuth client for it (ClientId, ClientSecret, ...)."""
    name = name or f"svc-{uuid.uuid4().hex[:8]}"
    iam = make_client(srv, "iam")
    try:
        arn = iam.create_user(UserName=name)["User"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_user(UserName=name)["User"]["Arn"]
    if connect:
        iam.put_user_policy(UserName=name, PolicyName="connect",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [CONNECT]}))
    out = run_tumbler("oauth", "client", "create", "--principal", arn, *extra, env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    client = json.loads(out.stdout)
    client["Name"] = name
    return client


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(http, srv, body: str | bytes, authorization: str | None = None, method: str = "POST"):
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    r = http.request(method, srv.url + "/oauth2/token", body=body, headers=headers)
    return r.status, (json.loads(r.data) if r.data else {}), r.headers


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def verify(jwt: str, jwks: dict) -> tuple[dict, dict]:
    """Check an ES256 JWT against the JWKS; return (header, claims)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    head, body, sig = jwt.split(".")
    header, claims = json.loads(b64url(head)), json.loads(b64url(body))
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["use"] == "sig"
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url(key["x"]), "big"), int.from_bytes(b64url(key["y"]), "big"), ec.SECP256R1()
    ).public_key()
    raw = b64url(sig)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    return header, claims


@pytest.fixture(scope="module")
def short_lived(srv, http, oauth_kafka) -> dict:
    """A token of the shortest lifetime (60 s), taken by the module's first
    test, so that waiting for it to expire (the last test) overlaps the others."""
    client = new_client(srv, None, "--token-lifetime-seconds", "60")
    status, answer, _ = token_request(http, srv, "grant_type=client_credentials",
                                      basic(client["ClientId"], client["ClientSecret"]))
    assert status == 200 and answer["expires_in"] == 60, answer
    claims = json.loads(b64url(answer["access_token"].split(".")[1]))
    assert claims["exp"] - claims["iat"] == 60
    return {"token": answer["access_token"], "exp": claims["exp"], "client": client}


def test_a_client_gets_an_es256_token_that_verifies_with_the_jwks(srv, http, oauth_kafka, short_lived):
    assert broker_accepts(oauth_kafka, short_lived["token"])
    client = new_client(srv)
    assert client["ClientId"].startswith("tc-") and len(client["ClientSecret"]) == 40
    assert client["Scopes"] == ["kafka"] and client["TokenLifetimeSeconds"] == 900
    status, answer, headers = token_request(
        http, srv, "grant_type=client_credentials", basic(client["ClientId"], client["ClientSecret"]))
    assert status == 200, answer
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 900 and answer["scope"] == "kafka"
    assert headers["Cache-Control"] == "no-store"
    jwks = json.loads(http.request("GET", srv.url + "/.well-known/jwks.json").data)
    header, claims = verify(answer["access_token"], jwks)
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    assert claims["iss"] == srv.url and claims["sub"] == client["Name"] and claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == 900 and abs(claims["iat"] - time.time()) < 60
    assert claims["scope"] == "kafka" and claims["client_id"] == client["ClientId"] and claims["jti"]
    # The secret in a form body works too (client_secret_post).
    status, again, _ = token_request(
        http, srv, f"grant_type=client_credentials&client_id={client['ClientId']}"
                   f"&client_secret={client['ClientSecret']}&scope=kafka")
    assert status == 200 and json.loads(b64url(again["access_token"].split(".")[1]))["jti"] != claims["jti"]

    discovery = json.loads(http.request("GET", srv.url + "/.well-known/openid-configuration").data)
    assert discovery["issuer"] == srv.url
    assert discovery["token_endpoint"] == srv.url + "/oauth2/token"
    assert discovery["jwks_uri"] == srv.url + "/.well-known/jwks.json"
    assert discovery["grant_types_supported"] == ["client_credentials"]
    assert "ES256" in discovery["id_token_signing_alg_values_supported"]


def test_refusals_get_rfc_6749_errors_and_are_audited(srv, http):
    client = new_client(srv, None, "--scopes", "kafka,orders")
    good = basic(client["ClientId"], client["ClientSecret"])
    cases = [
        ("grant_type=client_credentials", basic(client["ClientId"], "wrong"), 401, "invalid_client"),
        ("grant_type=client_credentials", basic("tc-nobody", client["ClientSecret"]), 401, "invalid_client"),
        ("grant_type=client_credentials", None, 401, "invalid_client"),
        ("grant_type=client_credentials", "Bearer abc", 401, "invalid_client"),
        ("grant_type=client_credentials", "Basic !!!not-base64", 401, "invalid_client"),
        ("", good, 400, "invalid_request"),
        ("grant_type=password&username=a&password=b", good, 400, "unsupported_grant_type"),
        ("grant_type=client_credentials&scope=admin", good, 400, "invalid_scope"),
        ("grant_type=client_credentials&grant_type=client_credentials", good, 400, "invalid_request"),
        (f"grant_type=client_credentials&client_id={client['ClientId']}&client_secret=x", good, 400,
         "invalid_request"),
        ("grant_type=client_credentials&" + "x" * 10_000, good, 400, "invalid_request"),
        (b"grant_type=client_credentials&scope=\xff\xfe", good, 400, "invalid_scope"),
    ]
    for body, auth, status, error in cases:
        got, answer, headers = token_request(http, srv, body, auth)
        assert (got, answer.get("error")) == (status, error), (body[:60], auth, got, answer)
        assert answer["error_description"]
        if status == 401:
            assert headers["WWW-Authenticate"].startswith("Basic")
    # An unknown client and a wrong secret look the same.
    _, unknown, _ = token_request(http, srv, "grant_type=client_credentials", basic("tc-nobody", "x"))
    _, wrong, _ = token_request(http, srv, "grant_type=client_credentials", basic(client["ClientId"], "x"))
    assert unknown == wrong
    got, answer, _ = token_request(http, srv, "", good, method="GET")
    assert got == 405
    # Asking for a subset of its scopes, in either encoding, works.
    for scope in ["orders", "kafka%20orders", "kafka+orders", "orders kafka orders"]:
        got, answer, _ = token_request(http, srv, f"grant_type=client_credentials&scope={scope}", good)
        assert got == 200, (scope, answer)
    assert answer["scope"] == "orders kafka"
    token = answer["access_token"]
    # A client whose principal may not kafka-cluster:Connect gets no token.
    barred = new_client(srv, None, connect=False)
    got, answer, _ = token_request(http, srv, "grant_type=client_credentials",
                                   basic(barred["ClientId"], barred["ClientSecret"]))
    assert (got, answer["error"]) == (400, "unauthorized_client"), answer
    assert f"user/{barred['Name']} is not authorized to perform: kafka-cluster:Connect" in answer["error_description"]

    trail = audit_events(srv, "IssueOAuthToken")
    assert "invalid_client" in trail and "unsupported_grant_type" in trail and client["ClientId"] in trail
    assert "unauthorized_client" in trail
    assert client["ClientSecret"] not in trail and token not in trail


def test_a_deleted_client_or_principal_gets_no_token(srv, http):
    client = new_client(srv)
    auth = basic(client["ClientId"], client["ClientSecret"])
    assert token_request(http, srv, "grant_type=client_credentials", auth)[0] == 200
    make_client(srv, "iam").delete_user_policy(UserName=client["Name"], PolicyName="connect")
    make_client(srv, "iam").delete_user(UserName=client["Name"])
    status, answer, _ = token_request(http, srv, "grant_type=client_credentials", auth)
    assert (status, answer["error"]) == (400, "invalid_grant")

    client = new_client(srv)
    listed = json.loads(run_tumbler("oauth", "client", "list", env=cli_env(srv)).stdout)["Clients"]
    assert client["ClientId"] in [c["ClientId"] for c in listed]
    assert "ClientSecret" not in json.dumps(listed)
    out = run_tumbler("oauth", "client", "delete", "--client-id", client["ClientId"], env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    status, answer, _ = token_request(
        http, srv, "grant_type=client_credentials", basic(client["ClientId"], client["ClientSecret"]))
    assert (status, answer["error"]) == (401, "invalid_client")


def test_client_api_checks_its_input_and_permissions(srv):
    from conftest import raw_request

    def api(op, body, **kw):
        r = raw_request(srv, f"TumblerOAuth.{op}", body, service="tumbler", **kw)
        answer = r.json or {}
        if r.status >= 400:
            # Modeled errors say "Message", the others "message", as AWS's JSON does.
            answer["message"] = answer.get("message") or answer.get("Message") or ""
        return r.status, answer

    status, answer = api("CreateClient", {})
    assert status == 400 and "PrincipalArn is required" in answer["message"]
    status, answer = api("CreateClient", {"PrincipalArn": "arn:aws:iam::000000000000:user/nobody"})
    assert status == 400 and answer["__type"] == "ResourceNotFoundException"
    iam = make_client(srv, "iam")
    name = f"svc-{uuid.uuid4().hex[:6]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    for bad in [{"TokenLifetimeSeconds": 5}, {"TokenLifetimeSeconds": 7200}, {"Scopes": []},
                {"Scopes": ["a b"]}, {"Scopes": "kafka"}]:
        status, answer = api("CreateClient", {"PrincipalArn": arn, **bad})
        assert status == 400, (bad, answer)
    for body in ["{", "[]", b"\xff"]:
        assert api("CreateClient", body)[0] == 400
    assert api("NoSuch", {})[1]["__type"] == "UnknownOperationException"
    status, answer = api("DeleteClient", {"ClientId": "tc-none"})
    assert status == 400 and answer["__type"] == "ResourceNotFoundException"

    iam.put_user_policy(UserName=name, PolicyName="nothing", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "tumbler:ListClients", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    status, answer = api("CreateClient", {"PrincipalArn": arn}, access_key=key["AccessKeyId"],
                         secret_key=key["SecretAccessKey"])
    assert status == 400 and answer["__type"] == "AccessDeniedException"
    assert name in answer["message"] and "tumbler:CreateClient" in answer["message"]
    status, _ = api("ListClients", {}, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    assert status == 200
    # Rotating signing keys: the algorithm is checked, and only who may do it does it.
    for bad in [{"Algorithm": "HS256"}, {"Algorithm": 5}, {"RetireReplaced": "yes"}]:
        status, answer = api("RotateSigningKey", bad)
        assert status == 400, (bad, answer)
    status, answer = api("RotateSigningKey", {"RetireReplaced": True}, access_key=key["AccessKeyId"],
                         secret_key=key["SecretAccessKey"])
    assert status == 400 and answer["__type"] == "AccessDeniedException"
    assert "tumbler:RotateSigningKey" in answer["message"]


@pytest.fixture(scope="module")
def oauth_kafka(srv):
    """A real Kafka broker whose OAUTHBEARER listener trusts Tumbler's JWKS."""
    from kafkabroker import KafkaBroker

    broker = KafkaBroker(oauth={"jwks": srv.url + "/.well-known/jwks.json", "issuer": srv.url,
                                "audience": AUDIENCE})
    yield broker
    broker.cleanup()


def oauth_config(broker, srv, client: dict, **extra) -> dict:
    return {
        "bootstrap.servers": broker.oauth_bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": client["ClientId"],
        "sasl.oauthbearer.client.secret": client["ClientSecret"],
        "sasl.oauthbearer.token.endpoint.url": srv.url + "/oauth2/token",
        "sasl.oauthbearer.scope": "kafka",
        "socket.timeout.ms": 10000,
        "log_level": 0,
        **extra,
    }


def test_a_broker_accepts_tumbler_tokens_and_acls_decide(srv, oauth_kafka):
    """librdkafka's OIDC fetches a token from Tumbler; the broker verifies it
    with the JWKS and authorizes User:<sub> with its ACLs."""
    from confluent_kafka import Producer

    writer = new_client(srv)
    other = new_client(srv)
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    oauth_kafka.create_topic(topic)
    oauth_kafka.allow(writer["Name"], topic)

    def produce(client) -> object:
        outcome: list = []
        p = Producer(oauth_config(oauth_kafka, srv, client, **{"message.timeout.ms": 10000}))
        p.produce(topic, b"hello", on_delivery=lambda err, msg: outcome.append(err))
        p.flush(20)
        return outcome[0] if outcome else "no delivery report"

    assert produce(writer) is None
    denied = produce(other)
    assert denied is not None and "AUTHORIZATION" in denied.name(), denied


def broker_accepts(broker, token: str, timeout: float = 15) -> bool:
    """Whether the OAUTHBEARER listener lets `token` log in (a metadata
    request succeeds) or refuses it (an authentication error)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list = []
    admin = AdminClient({
        "bootstrap.servers": broker.oauth_bootstrap, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "OAUTHBEARER", "log_level": 0, "error_cb": errors.append,
        "oauth_cb": lambda _config: (token, time.time() + 300, "someone"),
    })
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=1)
            return True
        except KafkaException:
            admin.poll(0.1)
            if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
                return False
            if time.monotonic() > deadline:
                raise


def test_a_broker_refuses_a_token_that_does_not_verify(srv, http, oauth_kafka):
    """A token whose signature was tampered with (or that another key signed)
    is refused at login."""
    client = new_client(srv)
    _, answer, _ = token_request(http, srv, "grant_type=client_credentials",
                                 basic(client["ClientId"], client["ClientSecret"]))
    head, body, sig = answer["access_token"].split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps(
        {**json.loads(b64url(body)), "sub": "someone-else"}).encode()).decode().rstrip("=")
    for token in [f"{head}.{body}.{sig[:-4]}AAAA", f"{head}.{forged_body}.{sig}"]:
        assert not broker_accepts(oauth_kafka, token)
    # The genuine token logs in.
    assert broker_accepts(oauth_kafka, answer["access_token"])


def test_rs256_tokens_verify_and_a_broker_accepts_them(srv, http, oauth_kafka):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    client = new_client(srv, None, "--signing-algorithm", "RS256")
    assert client["SigningAlgorithm"] == "RS256"
    _, answer, _ = token_request(http, srv, "grant_type=client_credentials",
                                 basic(client["ClientId"], client["ClientSecret"]))
    head, body, sig = answer["access_token"].split(".")
    header = json.loads(b64url(head))
    assert header["alg"] == "RS256"
    jwks = json.loads(http.request("GET", srv.url + "/.well-known/jwks.json").data)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and len(b64url(key["n"])) == 256
    public = rsa.RSAPublicNumbers(int.from_bytes(b64url(key["e"]), "big"),
                                  int.from_bytes(b64url(key["n"]), "big")).public_key()
    public.verify(b64url(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert json.loads(b64url(body))["sub"] == client["Name"]
    assert broker_accepts(oauth_kafka, answer["access_token"])
    discovery = json.loads(http.request("GET", srv.url + "/.well-known/openid-configuration").data)
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    out = run_tumbler("oauth", "client", "create", "--principal", "arn:aws:iam::000000000000:user/x",
                      "--signing-algorithm", "HS256", env=cli_env(srv))
    assert out.returncode != 0 and "SigningAlgorithm must be ES256 or RS256" in out.stderr


def test_rotated_keys_stay_until_retired_and_a_retired_key_is_refused(srv, http, oauth_kafka):
    """An operator's rotation keeps the replaced key in the JWKS (its tokens
    still log in); retiring it (a key that may have leaked) removes it, and
    the broker refuses its tokens once it has re-read the JWKS."""
    client = new_client(srv)
    auth = basic(client["ClientId"], client["ClientSecret"])

    def token() -> str:
        status, answer, _ = token_request(http, srv, "grant_type=client_credentials", auth)
        assert status == 200, answer
        return answer["access_token"]

    def kid(jwt: str) -> str:
        return json.loads(b64url(jwt.split(".")[0]))["kid"]

    def kids() -> set:
        return {k["kid"] for k in json.loads(http.request("GET", srv.url + "/.well-known/jwks.json").data)["keys"]}

    old = token()
    out = run_tumbler("oauth", "rotate-key", env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    rotated = json.loads(out.stdout)
    assert rotated["Algorithm"] == "ES256" and rotated["RetiredKeyIds"] == []
    new = token()
    assert kid(new) == rotated["KeyId"] != kid(old)
    assert {kid(old), kid(new)} <= kids()
    # A broker that has not re-read the JWKS yet fetches it for an unknown kid.
    wait_for(lambda: broker_accepts(oauth_kafka, new), timeout=30, what="the new key's token logging in")
    assert broker_accepts(oauth_kafka, old)

    out = run_tumbler("oauth", "rotate-key", "--retire-replaced", env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    retired = json.loads(out.stdout)
    assert kid(old) in retired["RetiredKeyIds"] and kid(new) in retired["RetiredKeyIds"]
    assert not {kid(old), kid(new)} & kids()
    # The broker re-reads the JWKS every 2 s here (an hour by default).
    wait_for(lambda: not broker_accepts(oauth_kafka, old), timeout=30, what="the refusal of a retired key's token")
    assert not broker_accepts(oauth_kafka, new)
    assert broker_accepts(oauth_kafka, token())
    trail = [json.loads(line) for line in audit_events(srv, "RotateSigningKey").splitlines() if line.strip()]
    done = [e for e in trail if not e.get("errorCode")]
    assert [e["requestParameters"]["retireReplaced"] for e in done][-2:] == [False, True]


@pytest.fixture(scope="module")
def oauth_cluster(srv, oauth_kafka) -> str:
    """The OAuth broker registered with Tumbler (through its SCRAM listener),
    so that kafka-cluster:* policies become its ACLs."""
    from kafkabroker import ADMIN_PASSWORD, ADMIN_USER

    admin = make_client(srv).create_secret(
        Name=f"kafka-admin-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
    out = run_tumbler("kafka", "register", "--name", "oauth", "--admin-secret-id", admin["ARN"],
                      "--bootstrap-servers", oauth_kafka.bootstrap, "--security-protocol", "SASL_PLAINTEXT",
                      env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["Cluster"]["ClusterArn"]


def msk_arn(cluster: str, kind: str, name: str) -> str:
    """MSK's ARN of a topic, group or transactional id of `cluster`."""
    return cluster.replace(":cluster/", f":{kind}/", 1) + "/" + name


def grant(srv, user: str, *statements: dict) -> None:
    make_client(srv, "iam").put_user_policy(
        UserName=user, PolicyName="kafka",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def produce_as(broker, srv, client: dict, topic: str):
    """Produce one message with a token from Tumbler: None, or the delivery error."""
    from confluent_kafka import Producer

    outcome: list = []
    p = Producer(oauth_config(broker, srv, client, **{"message.timeout.ms": 10000}))
    p.produce(topic, b"hello", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(20)
    return outcome[0] if outcome else "no delivery report"


def test_write_data_on_orders_becomes_an_acl_and_payments_stays_closed(srv, oauth_kafka, oauth_cluster):
    """A kafka-cluster:WriteData policy on `orders` is a WRITE ACL for the
    principal's token: it produces to orders, not to payments. The
    reconciler puts back an ACL deleted by hand; removing the policy
    removes Tumbler's ACLs and leaves one made by hand."""
    client = new_client(srv)
    user = client["Name"]
    orders, payments = f"orders-{uuid.uuid4().hex[:6]}", f"payments-{uuid.uuid4().hex[:6]}"
    oauth_kafka.create_topic(orders)
    oauth_kafka.create_topic(payments)
    assert produce_as(oauth_kafka, srv, client, orders) is not None  # no ACL yet

    grant(srv, user, {"Effect": "Allow",
                      "Action": ["kafka-cluster:Connect", "kafka-cluster:WriteData", "kafka-cluster:DescribeTopic"],
                      "Resource": [oauth_cluster, msk_arn(oauth_cluster, "topic", orders)]})
    want = {("ALLOW", "WRITE", "TOPIC", "LITERAL", orders), ("ALLOW", "DESCRIBE", "TOPIC", "LITERAL", orders)}
    wait_for(lambda: oauth_kafka.acls(user) == want, timeout=20, what="the policy's ACLs")
    assert produce_as(oauth_kafka, srv, client, orders) is None
    denied = produce_as(oauth_kafka, srv, client, payments)
    assert denied is not None and denied.name() == "TOPIC_AUTHORIZATION_FAILED", denied

    described = json.loads(run_tumbler("kafka", "describe", "--cluster", oauth_cluster, env=cli_env(srv)).stdout)
    assert f'Allow User:{user} WRITE on TOPIC LITERAL "{orders}"' in described["Cluster"]["Acls"]["OwnedAcls"]
    assert "LastError" not in described["Cluster"]["Acls"]
    created = [acl for line in audit_events(srv, "SyncKafkaAcls").splitlines() if line.strip()
               for acl in json.loads(line)["requestParameters"]["createdAcls"]]
    assert f'Allow User:{user} WRITE on TOPIC LITERAL "{orders}"' in created, created

    # Drift: deleted by hand, put back by the reconciler.
    oauth_kafka.delete_acls(user)
    wait_for(lambda: oauth_kafka.acls(user) == want, timeout=20, what="the repair of a deleted ACL")

    # An ACL someone made by hand is not Tumbler's to delete.
    oauth_kafka.allow(user, payments)
    hand_made = {a for a in oauth_kafka.acls(user) if a[4] == payments}
    assert len(hand_made) == 3
    make_client(srv, "iam").delete_user_policy(UserName=user, PolicyName="kafka")
    wait_for(lambda: oauth_kafka.acls(user) == hand_made, timeout=20, what="the removal of the policy's ACLs")
    deleted = [acl for line in audit_events(srv, "SyncKafkaAcls").splitlines() if line.strip()
               for acl in json.loads(line)["requestParameters"]["deletedAcls"]]
    assert f'Allow User:{user} WRITE on TOPIC LITERAL "{orders}"' in deleted, deleted
    denied = produce_as(oauth_kafka, srv, client, orders)
    assert denied is not None and denied.name() == "TOPIC_AUTHORIZATION_FAILED", denied
    oauth_kafka.delete_acls(user)


def test_committing_offsets_needs_alter_group(srv, oauth_kafka, oauth_cluster):
    """The seed's 2am bug as a test: ReadData alone lets a consumer fetch
    but not commit its group's offsets; with AlterGroup it commits."""
    from confluent_kafka import (
        Consumer,
        ConsumerGroupTopicPartitions,
        KafkaError,
        KafkaException,
        Producer,
        TopicPartition,
    )
    from confluent_kafka.admin import AdminClient
    from kafkabroker import ADMIN_PASSWORD, ADMIN_USER

    topic, group = f"events-{uuid.uuid4().hex[:6]}", f"billing-{uuid.uuid4().hex[:6]}"
    oauth_kafka.create_topic(topic)
    p = Producer(oauth_kafka.client_config(ADMIN_USER, ADMIN_PASSWORD))
    p.produce(topic, b"invoice")
    assert p.flush(20) == 0

    read = {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:ReadData",
                                          "kafka-cluster:DescribeTopic"],
            "Resource": [oauth_cluster, msk_arn(oauth_cluster, "topic", topic)]}
    alter_group = {"Effect": "Allow", "Action": ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                   "Resource": msk_arn(oauth_cluster, "group", "billing-*")}
    with_group, without = new_client(srv), new_client(srv)
    grant(srv, with_group["Name"], read, alter_group)
    grant(srv, without["Name"], read)
    wait_for(lambda: ("ALLOW", "READ", "GROUP", "PREFIXED", "billing-") in oauth_kafka.acls(with_group["Name"])
             and ("ALLOW", "READ", "TOPIC", "LITERAL", topic) in oauth_kafka.acls(without["Name"]),
             timeout=20, what="the policies' ACLs")

    def consume(client, group: str, commit: bool):
        """Fetch the message (and commit its offset in `group`): None, or the
        commit's error."""
        outcome: list = []
        c = Consumer(oauth_config(oauth_kafka, srv, client, **{
            "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "on_commit": lambda err, partitions: outcome.append(err)}))
        try:
            c.assign([TopicPartition(topic, 0, 0)])
            deadline = time.monotonic() + 20
            msg = None
            # Without the group's ACL, librdkafka also reports the refused
            # FindCoordinator as an error event; the fetch goes on.
            while (msg is None or msg.error() is not None) and time.monotonic() < deadline:
                msg = c.poll(0.5)
            assert msg is not None and msg.error() is None and msg.value() == b"invoice", msg
            if not commit:
                return None
            c.commit(message=msg, asynchronous=True)
            deadline = time.monotonic() + 10
            while not outcome and time.monotonic() < deadline:
                c.poll(0.2)
            return outcome[0] if outcome else "no commit outcome within 10 s"
        finally:
            c.close()

    def committed(group: str) -> int:
        """The group's committed offset, as the broker's super user sees it."""
        futures = oauth_kafka.admin().list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])])
        return futures[group].result(timeout=30).topic_partitions[0].offset

    assert consume(with_group, group, commit=True) is None
    assert committed(group) == 1
    # ReadData alone: the fetch works...
    assert consume(without, group, commit=False) is None
    # ...but committing the offset (the same OffsetCommit a consumer sends)
    # is refused for the group.
    admin = AdminClient(oauth_config(oauth_kafka, srv, without))
    future = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 0)])])[group]
    with pytest.raises(KafkaException) as refused:
        future.result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused.value
    assert committed(group) == 1


def test_a_scram_user_gets_the_acls_of_its_namesake(srv, oauth_kafka, oauth_cluster):
    """A SCRAM user (a secret associated through MSK's API) named like an
    IAM user gets that user's kafka-cluster:* permissions as ACLs."""
    from confluent_kafka import Producer

    name = f"svc-{uuid.uuid4().hex[:8]}"
    make_client(srv, "iam").create_user(UserName=name)
    topic, other = f"orders-{uuid.uuid4().hex[:6]}", f"payments-{uuid.uuid4().hex[:6]}"
    oauth_kafka.create_topic(topic)
    oauth_kafka.create_topic(other)
    grant(srv, name, {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:WriteData"],
                      "Resource": [oauth_cluster, msk_arn(oauth_cluster, "topic", topic)]})
    key = make_client(srv, "kms").create_key()["KeyMetadata"]["Arn"]
    password = f"pw-{uuid.uuid4().hex}"
    secret = make_client(srv).create_secret(Name=f"AmazonMSK_{name}", KmsKeyId=key,
                                            SecretString=json.dumps({"username": name, "password": password}))
    failed = make_client(srv, "kafka").batch_associate_scram_secret(
        ClusterArn=oauth_cluster, SecretArnList=[secret["ARN"]])["UnprocessedScramSecrets"]
    assert failed == []
    wait_for(lambda: ("ALLOW", "WRITE", "TOPIC", "LITERAL", topic) in oauth_kafka.acls(name), timeout=20,
             what="the policy's ACL")

    def produce(to: str):
        outcome: list = []
        p = Producer(oauth_kafka.client_config(name, password, **{"message.timeout.ms": 10000}))
        p.produce(to, b"hello", on_delivery=lambda err, msg: outcome.append(err))
        p.flush(20)
        return outcome[0] if outcome else "no delivery report"

    assert produce(topic) is None
    denied = produce(other)
    assert denied is not None and denied.name() == "TOPIC_AUTHORIZATION_FAILED", denied


def properties(text: str) -> dict:
    """A properties file's keys and values (no escapes in what we read)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def java_produce(broker, tmp_path, config: str, allowed_url: str, topic: str) -> None:
    """The Kafka Java client, configured by `config`, sends a record to `topic`."""
    (tmp_path / "client.properties").write_text(config)
    java = subprocess.run(
        ["java", f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={allowed_url}",
         "-cp", broker.classpath, str(Path(__file__).parent / "java" / "Produce.java"),
         str(tmp_path / "client.properties"), topic],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert java.stdout.strip() == "OK", java.stderr[-3000:]


def test_client_config_and_a_token_file_work_with_real_clients(srv, oauth_kafka, oauth_cluster, tmp_path):
    """`tumbler kafka client-config --oauth` prints configurations that
    librdkafka and the Kafka Java client (its OAuthBearerLoginCallbackHandler)
    produce with as they are; `tumbler oauth token --out F --watch` keeps a
    token (exchanged for the user's own AWS keys) in a file that the Java
    client reads through sasl.oauthbearer.token.endpoint.url=file://."""
    from confluent_kafka import Producer

    iam = make_client(srv, "iam")
    name = f"svc-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    oauth_kafka.create_topic(topic)
    grant(srv, name, {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:WriteData"],
                      "Resource": [oauth_cluster, msk_arn(oauth_cluster, "topic", topic)]})
    wait_for(lambda: ("ALLOW", "WRITE", "TOPIC", "LITERAL", topic) in oauth_kafka.acls(name), timeout=20,
             what="the policy's ACL")
    listener = ["--cluster", oauth_cluster, "--bootstrap-servers", oauth_kafka.oauth_bootstrap,
                "--security-protocol", "SASL_PLAINTEXT"]

    out = run_tumbler("kafka", "client-config", "--oauth", "--principal", arn, *listener, "--format", "librdkafka",
                      env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    config = properties(out.stdout)
    assert config["sasl.oauthbearer.method"] == "oidc" and config["sasl.oauthbearer.client.id"].startswith("tc-")
    outcome: list = []
    p = Producer({**config, "log_level": 0, "message.timeout.ms": 10000})
    p.produce(topic, b"hello", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(20)
    assert outcome == [None], outcome
    # The same client's secret, from the environment, gets a token on the command line.
    out = run_tumbler("oauth", "token", "--client-id", config["sasl.oauthbearer.client.id"],
                      env={**cli_env(srv), "TUMBLER_OAUTH_CLIENT_SECRET": config["sasl.oauthbearer.client.secret"]})
    assert out.returncode == 0 and json.loads(out.stdout)["token_type"] == "Bearer", out.stderr
    out = run_tumbler("oauth", "token", "--client-id", config["sasl.oauthbearer.client.id"],
                      env={**cli_env(srv), "TUMBLER_OAUTH_CLIENT_SECRET": "wrong"})
    assert out.returncode != 0 and "refused (invalid_client)" in out.stderr, out.stderr

    key = iam.create_access_key(UserName=name)["AccessKey"]
    token_file = tmp_path / "kafka.token"
    agent_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TUMBLER_"))}
    agent_env.update(cli_env(srv), AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                     AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    agent = subprocess.Popen([str(tumbler_bin()), "oauth", "token", "--out", str(token_file), "--watch"],
                             env=agent_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        wait_for(token_file.exists, timeout=20, what="the token file")
        assert token_file.stat().st_mode & 0o777 == 0o600
        _, claims = verify(token_file.read_text(),
                           json.loads(urllib3.request("GET", srv.url + "/.well-known/jwks.json").data))
        assert claims["sub"] == name
        out = run_tumbler("kafka", "client-config", "--oauth", "--token-file", str(token_file), *listener,
                          env=cli_env(srv))
        assert out.returncode == 0, out.stderr
        assert properties(out.stdout)["sasl.oauthbearer.token.endpoint.url"] == f"file://{token_file}"
        java_produce(oauth_kafka, tmp_path, out.stdout, f"file://{token_file}", topic)
    finally:
        agent.terminate()
        agent.wait(timeout=10)

    # The Java client's own login handler, with a client id and secret.
    out = run_tumbler("kafka", "client-config", "--oauth", "--principal", arn, *listener, "--format", "java",
                      env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    config = properties(out.stdout)
    assert config["sasl.login.callback.handler.class"].endswith("OAuthBearerLoginCallbackHandler")
    java_produce(oauth_kafka, tmp_path, out.stdout, f"{srv.url}/oauth2/token", topic)


def signed_token_request(srv, access_key: str, secret_key: str, session_token: str | None = None,
                         body: str = "grant_type=client_credentials", when=None):
    """A token request SigV4-signed for `tumbler`: (headers, body) to send."""
    from unittest import mock

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=srv.url + "/oauth2/token", data=body.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    signer = botocore.auth.SigV4Auth(Credentials(access_key, secret_key, session_token), "tumbler", "us-east-1")
    if when is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    prepared = req.prepare()
    return dict(prepared.headers.items()), prepared.body


def send(http, srv, headers, body):
    r = http.request("POST", srv.url + "/oauth2/token", body=body, headers=headers)
    return r.status, json.loads(r.data)


def test_aws_credentials_exchange_for_a_token_once(srv, http):
    """A SigV4-signed request (no client secret to distribute) gets a token
    naming the caller; the same signed request again, or a stale one, does not."""
    import datetime as dt

    iam = make_client(srv, "iam")
    name = f"svc-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    # IAM decides who gets a token: kafka-cluster:Connect.
    status, answer = send(http, srv, *signed_token_request(srv, key["AccessKeyId"], key["SecretAccessKey"],
                                                           body="grant_type=client_credentials&scope=kafka"))
    assert (status, answer["error"]) == (400, "unauthorized_client"), answer
    # (on a cluster registered in the account, or, with none, on cluster/*)
    assert re.fullmatch(
        f"User: arn:aws:iam::000000000000:user/{name} is not authorized to perform: kafka-cluster:Connect "
        r"on resource: arn:aws:kafka:us-east-1:000000000000:cluster/\S+ because no identity-based policy allows "
        "the kafka-cluster:Connect action", answer["error_description"]), answer
    iam.put_user_policy(UserName=name, PolicyName="connect",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [CONNECT]}))
    headers, body = signed_token_request(srv, key["AccessKeyId"], key["SecretAccessKey"])
    status, answer = send(http, srv, headers, body)
    assert status == 200, answer
    jwks = json.loads(http.request("GET", srv.url + "/.well-known/jwks.json").data)
    _, claims = verify(answer["access_token"], jwks)
    assert claims["sub"] == name and claims["scope"] == "kafka" and "client_id" not in claims
    status, again = send(http, srv, headers, body)
    assert (status, again["error"]) == (401, "invalid_client") and "already exchanged" in again["error_description"]

    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)
    status, answer = send(http, srv, *signed_token_request(srv, key["AccessKeyId"], key["SecretAccessKey"], when=stale))
    assert (status, answer["error"]) == (401, "invalid_client"), answer
    bad_headers, body = signed_token_request(srv, key["AccessKeyId"], "not-the-secret-key-000000000000000000000")
    assert send(http, srv, bad_headers, body)[1]["error"] == "invalid_client"
    status, answer = send(http, srv, *signed_token_request(srv, key["AccessKeyId"], key["SecretAccessKey"],
                                                           body="grant_type=client_credentials&scope=admin"))
    assert (status, answer["error"]) == (400, "invalid_scope")

    # A role session's token names the role: ACLs are written for roles.
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": "arn:aws:iam::000000000000:root"}}]})
    role = f"orders-writer-{uuid.uuid4().hex[:6]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName=role, PolicyName="connect",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [CONNECT]}))
    sts = make_client(srv, "sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::000000000000:role/{role}", RoleSessionName="pod-7")["Credentials"]
    status, answer = send(http, srv, *signed_token_request(srv, creds["AccessKeyId"], creds["SecretAccessKey"],
                                                           creds["SessionToken"]))
    assert status == 200, answer
    assert json.loads(b64url(answer["access_token"].split(".")[1]))["sub"] == role
    trail = audit_events(srv, "IssueOAuthToken")
    assert f"assumed-role/{role}/pod-7" in trail and "already exchanged" in trail


def test_an_expired_token_is_refused(srv, http, oauth_kafka, short_lived):
    """The broker refuses a token once its `exp` has passed (this broker
    allows no clock skew); a fresh one from the same client logs in."""
    time.sleep(max(0.0, short_lived["exp"] + 1 - time.time()))
    assert not broker_accepts(oauth_kafka, short_lived["token"])
    client = short_lived["client"]
    _, answer, _ = token_request(http, srv, "grant_type=client_credentials",
                                 basic(client["ClientId"], client["ClientSecret"]))
    assert broker_accepts(oauth_kafka, answer["access_token"])


def test_deregistering_the_cluster_removes_tumblers_acls(srv, oauth_kafka, oauth_cluster):
    """Deregistering a cluster deletes every ACL Tumbler created there, and
    no other (the module's last test: the cluster is gone after it)."""
    oauth_kafka.allow("hand-made", "orders-hand")
    # The bootstrap administrator's AdministratorAccess is every kafka-cluster action.
    wait_for(lambda: ("ALLOW", "WRITE", "TOPIC", "LITERAL", "*") in oauth_kafka.acls("admin"), timeout=20,
             what="the administrator's ACLs")
    # --force: a SCRAM secret is still associated (its user stays).
    out = run_tumbler("kafka", "deregister", "--cluster", oauth_cluster, "--force", env=cli_env(srv))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Cluster"]["Acls"]["Removed"] >= 18
    wait_for(lambda: not oauth_kafka.acls("admin"), timeout=20, what="the removal of Tumbler's ACLs")
    assert len(oauth_kafka.acls("hand-made")) == 3
