"""SigV4 verification, protocol errors and HTTPS (reference sections 1.1-1.3).

These tests send raw requests signed with botocore's own SigV4Auth, then break
them in one way each. None of them may produce an HTTP 500."""

import datetime as dt
import hashlib
import json
import re

import pytest

from conftest import (
    ACCESS_KEY,
    JSON_CT,
    make_client,
    raw_request,
    raises_aws,
    token,
    utcnow,
)

BAD_SIGNATURE_PREFIX = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
AMZ_DATE = r"\d{8}T\d{6}Z"


def assert_client_error(r, code, status=400):
    assert r.status != 500, (r.status, r.body)
    assert r.status == status, (r.status, r.body)
    assert r.code == code, (r.status, r.body)
    assert r.message, f"{code} without a message: {r.body!r}"
    return r


@pytest.fixture(scope="module")
def secret_name(sm):
    n = "py-auth-" + token()
    sm.create_secret(Name=n, SecretString="auth-test-value")
    return n


def test_signed_request_works(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name})
    assert r.status == 200, r.body
    assert r.json["SecretString"] == "auth-test-value"


def test_no_authorization_header(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name}, sign=False)
    # CommonErrors lists 403 for MissingAuthenticationToken; unverified for this service.
    assert r.status in (400, 403), (r.status, r.body)
    assert r.code == "MissingAuthenticationTokenException", r.body
    assert "SecretString" not in r.body.decode()


def test_unknown_access_key(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name}, access_key="AKIAUNKNOWNKEY000000")
    assert_client_error(r, "UnrecognizedClientException")
    assert r.message == "The security token included in the request is invalid."


def test_wrong_secret_key(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name}, secret_key="x" * 40)
    assert_client_error(r, "InvalidSignatureException")
    assert r.message.startswith(BAD_SIGNATURE_PREFIX), r.message


def test_wrong_secret_key_via_boto3(server, secret_name):
    c = make_client(server, secret_key="y" * 40)
    with raises_aws("InvalidSignatureException"):
        c.get_secret_value(SecretId=secret_name)


def test_body_tampered_after_signing(raw, secret_name, name, sm):
    sm.create_secret(Name=name, SecretString="untouched")

    def tamper(headers, body):
        return headers, body.replace(b"untouched", b"tampered!")

    r = raw(
        "PutSecretValue",
        {"SecretId": name, "SecretString": "untouched", "ClientRequestToken": token()},
        after_sign=tamper,
    )
    assert_client_error(r, "InvalidSignatureException")
    assert r.message.startswith(BAD_SIGNATURE_PREFIX), r.message
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "untouched"
    assert len(sm.list_secret_version_ids(SecretId=name)["Versions"]) == 1


def test_target_tampered_after_signing(raw, secret_name):
    def retarget(headers, body):
        headers = dict(headers)
        headers["X-Amz-Target"] = "secretsmanager.DescribeSecret"
        return headers, body

    r = raw("GetSecretValue", {"SecretId": secret_name}, after_sign=retarget)
    assert_client_error(r, "InvalidSignatureException")


def test_signature_hex_tampered(raw, secret_name):
    def flip(headers, body):
        headers = dict(headers)
        auth = headers["Authorization"]
        sig = auth[-64:]
        headers["Authorization"] = auth[:-64] + ("0" if sig[0] != "0" else "1") + sig[1:]
        return headers, body

    r = raw("GetSecretValue", {"SecretId": secret_name}, after_sign=flip)
    assert_client_error(r, "InvalidSignatureException")


def test_signature_expired_16_minutes_old(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name}, when=utcnow() - dt.timedelta(minutes=16))
    assert_client_error(r, "InvalidSignatureException")
    # "Signature expired: 20140325T143453Z is now earlier than 20140325T143751Z (20140325T145251Z - 15 min.)"
    assert re.fullmatch(
        rf"Signature expired: {AMZ_DATE} is now earlier than {AMZ_DATE} \({AMZ_DATE} - 15 min\.\)", r.message
    ), r.message


def test_signature_from_the_future(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name}, when=utcnow() + dt.timedelta(minutes=16))
    assert_client_error(r, "InvalidSignatureException")
    assert re.fullmatch(
        rf"Signature not yet current: {AMZ_DATE} is still later than {AMZ_DATE} \({AMZ_DATE} \+ 15 min\.\)", r.message
    ), r.message


@pytest.mark.parametrize("minutes", [-14, 14])
def test_skew_within_15_minutes_is_accepted(raw, secret_name, minutes):
    r = raw("GetSecretValue", {"SecretId": secret_name}, when=utcnow() + dt.timedelta(minutes=minutes))
    assert r.status == 200, r.body
    assert r.json["SecretString"] == "auth-test-value"


def test_response_has_date_header(raw, secret_name):
    # Some SDKs correct clock skew from the response Date header.
    r = raw("GetSecretValue", {"SecretId": secret_name}, when=utcnow() - dt.timedelta(minutes=16))
    assert r.header("Date")
    assert r.header("x-amzn-RequestId")


def test_unsigned_session_token_is_rejected(raw, secret_name):
    r = raw("GetSecretValue", {"SecretId": secret_name}, session_token="not-a-real-session-token")
    assert r.status != 500
    assert r.code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"), r.body


def test_malformed_authorization_header(raw, secret_name):
    def mangle(headers, body):
        headers = dict(headers)
        headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/secretsmanager/aws4_request"
        return headers, body

    r = raw("GetSecretValue", {"SecretId": secret_name}, after_sign=mangle)
    assert_client_error(r, "IncompleteSignatureException")


def test_signed_header_missing_from_request(raw, secret_name):
    def drop(headers, body):
        headers = dict(headers)
        headers["Authorization"] = headers["Authorization"].replace(
            "SignedHeaders=", "SignedHeaders=accept;"
        )
        return headers, body

    r = raw("GetSecretValue", {"SecretId": secret_name}, after_sign=drop)
    assert r.status == 400, (r.status, r.body)
    assert r.code in ("IncompleteSignatureException", "InvalidSignatureException"), r.body


def test_scope_for_another_service(raw, secret_name):
    # The exact wording for scope errors is unverified; it must be a signature error.
    r = raw("GetSecretValue", {"SecretId": secret_name}, service="kms")
    assert r.status == 400, (r.status, r.body)
    assert r.code in ("InvalidSignatureException", "IncompleteSignatureException"), r.body


def test_signed_content_sha256_is_checked(raw):
    # If present and signed, x-amz-content-sha256 is the payload hash and must match the body.
    body = json.dumps({"MaxResults": 1}).encode()
    good = hashlib.sha256(body).hexdigest()
    r = raw("ListSecrets", body, headers={"X-Amz-Content-Sha256": good})
    assert r.status == 200, r.body
    r = raw(
        "ListSecrets",
        body,
        headers={"X-Amz-Content-Sha256": good},
        after_sign=lambda h, b: (h, b.replace(b"1", b"2")),
    )
    assert_client_error(r, "InvalidSignatureException")
    r = raw("ListSecrets", body, headers={"X-Amz-Content-Sha256": hashlib.sha256(b"other").hexdigest()})
    assert_client_error(r, "InvalidSignatureException")


def test_unsigned_payload_is_not_500(raw):
    r = raw("ListSecrets", {"MaxResults": 1}, headers={"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"})
    assert r.status in (200, 400), (r.status, r.body)
    if r.status == 400:
        assert r.code in ("IncompleteSignatureException", "InvalidSignatureException"), r.body


def test_scope_date_must_match_x_amz_date(raw):
    def redate(headers, body):
        headers = dict(headers)
        headers["X-Amz-Date"] = (utcnow() - dt.timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
        return headers, body

    r = raw("ListSecrets", {"MaxResults": 1}, after_sign=redate)
    assert r.status == 400, (r.status, r.body)
    assert r.code in ("InvalidSignatureException", "IncompleteSignatureException"), r.body


def test_any_region_in_scope_is_served(raw):
    # "Regions come from the request's SigV4 scope" (PRODUCT.md).
    r = raw("ListSecrets", {"MaxResults": 1}, region="eu-central-1")
    assert r.status == 200, r.body


# ---------------------------------------------------------------- protocol errors


def test_unknown_operation(raw):
    r = raw("secretsmanager.Bogus", {})
    assert_client_error(r, "UnknownOperationException")


def test_unknown_target_prefix(raw):
    r = raw("nosuchservice.GetSecretValue", {"SecretId": "x"})
    assert r.status != 500 and 400 <= r.status < 500, (r.status, r.body)
    assert r.code


def test_missing_target_is_a_client_error(raw):
    r = raw(None, {"SecretId": "x"})
    assert r.status != 500 and 400 <= r.status < 500, (r.status, r.body)


def test_missing_target_is_answered_by_the_scoped_service(raw):
    r = raw(None, {"SecretId": "x"})
    assert r.status == 400, (r.status, r.body)
    assert r.header("Content-Type").startswith("application/x-amz-json-1.1"), r.headers
    assert r.code, r.body


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1,2]", b'{"SecretId": "x"', b"\xff\xfe"])
def test_malformed_json(raw, body):
    r = raw("DescribeSecret", body)
    if body == b"":
        # An empty body is treated as {} by many coral services: either way not a 500.
        assert r.status == 400, (r.status, r.body)
        assert r.code in ("SerializationException", "ValidationException", "InvalidParameterException"), r.body
        return
    assert_client_error(r, "SerializationException")


@pytest.mark.parametrize(
    "op,body",
    [
        ("DescribeSecret", {"SecretId": 123}),
        ("DescribeSecret", {"SecretId": ["x"]}),
        ("ListSecrets", {"MaxResults": "ten"}),
        ("ListSecrets", {"Filters": {"Key": "name"}}),
        ("GetRandomPassword", {"ExcludeNumbers": "yes"}),
        ("CreateSecret", {"Name": "x", "SecretBinary": 5, "ClientRequestToken": "a" * 36}),
        ("CreateSecret", {"Name": "x", "SecretBinary": "!!!not base64!!!", "ClientRequestToken": "b" * 36}),
    ],
)
def test_wrong_member_type(raw, op, body):
    r = raw(op, body)
    assert_client_error(r, "SerializationException")


def test_unknown_members_are_ignored(raw, secret_name):
    # awsJson services ignore members they do not know (forward compatibility).
    r = raw("DescribeSecret", {"SecretId": secret_name, "SomethingNew": 1})
    assert r.status == 200, r.body


def test_missing_required_member(raw):
    r = raw("DescribeSecret", {})
    assert r.status == 400, (r.status, r.body)
    assert r.code in ("ValidationException", "InvalidParameterException"), r.body


def test_body_over_1_mib(raw):
    big = {"Name": "big", "SecretString": "x" * (1024 * 1024 + 10), "ClientRequestToken": token()}
    try:
        r = raw("CreateSecret", big)
    except Exception as e:  # the server may close the connection after answering
        pytest.fail(f"no HTTP answer to an oversize body: {e!r}")
    assert 400 <= r.status < 500, (r.status, r.body[:200])


def test_wrong_content_type_is_not_500(raw, secret_name):
    r = raw("DescribeSecret", {"SecretId": secret_name}, content_type="text/plain")
    assert r.status != 500, r.body
    assert r.status in (200, 400, 415), r.body


def test_get_method_is_not_500(server):
    import urllib3

    r = urllib3.PoolManager().request("GET", server.url + "/", retries=False)
    assert r.status != 500
    assert 200 <= r.status < 500


def test_error_response_format(raw):
    r = raw("DescribeSecret", {"SecretId": "py-auth-missing-" + token()})
    assert r.status == 400
    assert r.header("Content-Type").startswith(JSON_CT)
    assert r.header("x-amzn-RequestId")
    # Modeled errors use a capital "Message" [aws-snap].
    assert r.json == {"__type": "ResourceNotFoundException", "Message": "Secrets Manager can't find the specified secret."}
    # The reference recommends the x-amzn-ErrorType header too (smithy SDKs read it first).
    et = r.header("x-amzn-ErrorType")
    assert et is None or et.split(":")[0].split("#")[-1] == "ResourceNotFoundException"


def test_server_still_healthy(server, sm):
    server.assert_alive()
    assert sm.get_random_password()["RandomPassword"]


# ---------------------------------------------------------------- HTTPS


def test_https_with_boto3_and_ca(tls_server, name):
    assert tls_server.url.startswith("https://")
    assert tls_server.ca_path.is_file()
    c = make_client(tls_server)
    c.create_secret(Name=name, SecretString="over-tls")
    assert c.get_secret_value(SecretId=name)["SecretString"] == "over-tls"


def test_https_with_aws_cli_and_ca_bundle(tls_server, aws_cli, name):
    created = aws_cli(tls_server, "secretsmanager", "create-secret", "--name", name, "--secret-string", "cli-tls", check=True).json
    assert created["Name"] == name
    got = aws_cli(tls_server, "secretsmanager", "get-secret-value", "--secret-id", name, check=True).json
    assert got["SecretString"] == "cli-tls"
    ident = aws_cli(tls_server, "sts", "get-caller-identity", check=True).json
    assert ident["Account"] == "000000000000"


def test_https_rejects_untrusted_client_verification(tls_server):
    # Without the CA the generated certificate must not verify (it is not a public CA's).
    import urllib3

    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=None)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as ei:
        pool.request("POST", tls_server.url + "/", body=b"{}", retries=0)
    assert isinstance(ei.value.reason, urllib3.exceptions.SSLError)


def test_https_raw_signed_request(tls_server):
    r = raw_request(tls_server, "secretsmanager.ListSecrets", {"MaxResults": 1})
    assert r.status == 200, r.body
    assert "SecretList" in r.json
