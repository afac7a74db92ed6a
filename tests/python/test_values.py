"""Secret values: CreateSecret, GetSecretValue, PutSecretValue, UpdateSecret,
BatchGetSecretValue, idempotency by ClientRequestToken and value limits.

Expected behaviour and texts: shared/reference/aws-secrets-manager.md
(sections 1.2, 3.1, 3.3, 3.6, 3.9)."""

import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    ACCOUNT,
    ARN_RE,
    MSG_NAME_INVALID,
    MSG_NO_TOKEN,
    MSG_NOT_FOUND,
    REGION,
    b64,
    msg_no_stage,
    msg_no_version,
    msg_token_in_use,
    raises_aws,
    strip_meta,
    token,
)


def versions_to_stages(sm, secret_id):
    return sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})


# ---------------------------------------------------------------- CreateSecret


def test_create_string_secret_and_read_it_back(sm, name):
    tok = token()
    created = sm.create_secret(Name=name, SecretString='{"user":"alice"}', ClientRequestToken=tok)
    assert set(strip_meta(created)) == {"ARN", "Name", "VersionId"}
    assert created["Name"] == name
    assert created["VersionId"] == tok  # VersionId is the ClientRequestToken [aws-snap]
    m = ARN_RE.match(created["ARN"])
    assert m, created["ARN"]
    assert (m["region"], m["account"], m["name"]) == (REGION, ACCOUNT, name)

    got = sm.get_secret_value(SecretId=name)
    assert got["ARN"] == created["ARN"]
    assert got["Name"] == name
    assert got["VersionId"] == tok
    assert got["SecretString"] == '{"user":"alice"}'
    assert "SecretBinary" not in got
    assert got["VersionStages"] == ["AWSCURRENT"]
    assert isinstance(got["CreatedDate"], dt.datetime)


def test_binary_secret_round_trips_byte_exact(sm, raw, name):
    value = b"\x00\x01\x02\xff"
    sm.create_secret(Name=name, SecretBinary=value)
    got = sm.get_secret_value(SecretId=name)
    assert got["SecretBinary"] == value
    assert "SecretString" not in got
    # Over the wire the blob is base64 [aws-snap test_get_secret_value].
    r = raw("GetSecretValue", {"SecretId": name})
    assert r.status == 200, r.body
    assert r.json["SecretBinary"] == b64(value) == "AAEC/w=="
    assert "SecretString" not in r.json


def test_binary_put_all_256_byte_values(sm, name):
    value = bytes(range(256)) * 3
    sm.create_secret(Name=name, SecretBinary=b"\xff")
    sm.put_secret_value(SecretId=name, SecretBinary=value)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == value


def test_create_without_value_has_no_version(sm, name):
    created = sm.create_secret(Name=name, Description="no value yet")
    # [aws-snap create-empty-secret] = {ARN, Name}
    assert set(strip_meta(created)) == {"ARN", "Name"}
    desc = sm.describe_secret(SecretId=name)
    assert "VersionIdsToStages" not in desc
    assert desc["Description"] == "no value yet"
    assert sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"] == []
    with raises_aws("ResourceNotFoundException", msg_no_stage("AWSCURRENT")):
        sm.get_secret_value(SecretId=name)


def test_first_put_on_empty_secret_gets_awscurrent_even_with_other_stages(sm, name):
    # "If the secret has no versions yet, AWSCURRENT is attached even when VersionStages omits it" [model]
    sm.create_secret(Name=name)
    tok = token()
    sm.put_secret_value(SecretId=name, SecretString="first", ClientRequestToken=tok, VersionStages=["custom"])
    assert versions_to_stages(sm, name) == {tok: ["AWSCURRENT", "custom"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first"


@pytest.mark.parametrize(
    "bad",
    ["has space", "hash#tag", "star*", "percent%", "quote'", "caf\u00e9", "semi;colon", "brace{"],
)
def test_create_invalid_name_is_validation_exception(sm, bad):
    with raises_aws("ValidationException", MSG_NAME_INVALID):
        sm.create_secret(Name=bad, SecretString="v")


@pytest.mark.parametrize("op", ["describe_secret", "get_secret_value", "list_secret_version_ids", "delete_secret"])
def test_invalid_secret_id_is_validation_exception(sm, op):
    # The same charset check applies to SecretId when it is not an ARN [aws-snap].
    with raises_aws("ValidationException", MSG_NAME_INVALID):
        getattr(sm, op)(SecretId="no such/secret name")


def test_valid_name_with_all_allowed_punctuation(sm, uniq):
    n = f"Valid/_+=.@-Name-{uniq('')}"
    created = sm.create_secret(Name=n, SecretString="v")
    assert created["Name"] == n
    assert created["ARN"].split(":secret:")[1].startswith(n + "-")
    assert sm.get_secret_value(SecretId=n)["SecretString"] == "v"


def test_create_name_taken_is_resource_exists(sm, name):
    sm.create_secret(Name=name, SecretString="one")
    with raises_aws("ResourceExistsException", f"The operation failed because the secret {name} already exists."):
        sm.create_secret(Name=name, SecretString="two")


def test_create_same_token_same_value_is_idempotent(sm, name):
    tok = token()
    first = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
    again = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
    assert strip_meta(again) == strip_meta(first)
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_create_same_token_different_value_is_resource_exists(sm, name):
    tok = token()
    first = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
    with raises_aws("ResourceExistsException", msg_token_in_use(tok, first["ARN"])):
        sm.create_secret(Name=name, SecretString="different", ClientRequestToken=tok)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "same"


# ---------------------------------------------------------------- GetSecretValue


@pytest.fixture
def two_versions(sm, name):
    """A secret with v1 (AWSPREVIOUS) and v2 (AWSCURRENT)."""
    v1, v2 = token(), token()
    sm.create_secret(Name=name, SecretString="value-1", ClientRequestToken=v1)
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2)
    return name, v1, v2


def test_get_by_stage_version_and_both(sm, two_versions):
    name, v1, v2 = two_versions
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "value-2"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"] == v2
    prev = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert (prev["VersionId"], prev["SecretString"], prev["VersionStages"]) == (v1, "value-1", ["AWSPREVIOUS"])
    assert sm.get_secret_value(SecretId=name, VersionId=v1)["SecretString"] == "value-1"
    both = sm.get_secret_value(SecretId=name, VersionId=v2, VersionStage="AWSCURRENT")
    assert both["SecretString"] == "value-2"


def test_get_version_stage_mismatch_is_invalid_request(sm, two_versions):
    name, v1, _ = two_versions
    with raises_aws(
        "InvalidRequestException",
        "You provided a VersionStage that is not associated to the provided VersionId.",
    ):
        sm.get_secret_value(SecretId=name, VersionId=v1, VersionStage="AWSCURRENT")


def test_get_unknown_version_id(sm, two_versions):
    name, _, _ = two_versions
    missing = token()
    with raises_aws("ResourceNotFoundException", msg_no_version(missing)):
        sm.get_secret_value(SecretId=name, VersionId=missing)


def test_get_unknown_stage(sm, two_versions):
    name, _, _ = two_versions
    with raises_aws("ResourceNotFoundException", msg_no_stage("AWSPENDING")):
        sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")


def test_get_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.get_secret_value(SecretId=name)


def test_awsprevious_on_new_secret_is_not_found(sm, name):
    sm.create_secret(Name=name, SecretString="only")
    with raises_aws("ResourceNotFoundException", msg_no_stage("AWSPREVIOUS")):
        sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")


def test_get_sets_last_accessed_date_truncated_to_day(sm, name):
    sm.create_secret(Name=name, SecretString="v")
    assert "LastAccessedDate" not in sm.describe_secret(SecretId=name)
    sm.get_secret_value(SecretId=name)
    # Tumbler records the access without waiting for the disk; allow it a moment.
    deadline = time.monotonic() + 3
    while "LastAccessedDate" not in (desc := sm.describe_secret(SecretId=name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    lad = desc["LastAccessedDate"]
    ts = lad.timestamp()
    assert ts % 86400 == 0, f"LastAccessedDate {lad} is not midnight UTC"
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    assert now - 86400 - 60 <= ts <= now + 60


# ---------------------------------------------------------------- PutSecretValue idempotency matrix


def test_put_same_token_same_value_is_noop(sm, name):
    sm.create_secret(Name=name, SecretString="v1")
    tok = token()
    first = sm.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    assert first["VersionId"] == tok
    assert first["VersionStages"] == ["AWSCURRENT"]
    before = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    again = sm.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    assert again["VersionId"] == tok
    assert again["ARN"] == first["ARN"] and again["Name"] == name
    assert again["VersionStages"] == ["AWSCURRENT"]
    after = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert sorted(v["VersionId"] for v in after) == sorted(v["VersionId"] for v in before)
    assert {v["VersionId"]: v.get("VersionStages") for v in after} == {
        v["VersionId"]: v.get("VersionStages") for v in before
    }


def test_put_same_token_different_value_is_resource_exists(sm, name):
    created = sm.create_secret(Name=name, SecretString="v1")
    tok = token()
    sm.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    with raises_aws("ResourceExistsException", msg_token_in_use(tok, created["ARN"])):
        sm.put_secret_value(SecretId=name, SecretString="v3", ClientRequestToken=tok)
    # A string value and a binary value with the same bytes are different values.
    with raises_aws("ResourceExistsException", msg_token_in_use(tok, created["ARN"])):
        sm.put_secret_value(SecretId=name, SecretBinary=b"v2", ClientRequestToken=tok)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v2"


def test_put_new_token_creates_new_version(sm, name):
    created = sm.create_secret(Name=name, SecretString="v1", ClientRequestToken=token())
    tok = token()
    put = sm.put_secret_value(SecretId=name, SecretString="v1", ClientRequestToken=tok)
    assert put["VersionId"] == tok != created["VersionId"]
    assert versions_to_stages(sm, name) == {
        created["VersionId"]: ["AWSPREVIOUS"],
        tok: ["AWSCURRENT"],
    }


def test_put_reusing_create_token_with_same_value_is_noop(sm, name):
    tok = token()
    sm.create_secret(Name=name, SecretString="v1", ClientRequestToken=tok)
    again = sm.put_secret_value(SecretId=name, SecretString="v1", ClientRequestToken=tok)
    assert again["VersionId"] == tok
    assert versions_to_stages(sm, name) == {tok: ["AWSCURRENT"]}


def test_put_custom_stages_steal_labels(sm, name):
    # [aws-snap test_non_versioning_version_stages_no_replacement]
    v1, v2, v3 = token(), token(), token()
    sm.create_secret(Name=name, SecretString="s1", ClientRequestToken=v1)
    r2 = sm.put_secret_value(
        SecretId=name, SecretString="s2", ClientRequestToken=v2, VersionStages=["one", "two", "three"]
    )
    assert r2["VersionStages"] == ["one", "three", "two"]
    assert versions_to_stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["one", "three", "two"]}
    r3 = sm.put_secret_value(
        SecretId=name, SecretString="s3", ClientRequestToken=v3, VersionStages=["one", "two", "four"]
    )
    assert r3["VersionStages"] == ["four", "one", "two"]
    assert versions_to_stages(sm, name) == {
        v1: ["AWSCURRENT"],
        v2: ["three"],
        v3: ["four", "one", "two"],
    }
    # AWSCURRENT did not move.
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "s1"
    assert sm.get_secret_value(SecretId=name, VersionStage="one")["SecretString"] == "s3"


def test_put_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.put_secret_value(SecretId=name, SecretString="v")


# ---------------------------------------------------------------- size limits and shape rules


def test_value_of_65536_bytes_is_accepted(sm, name):
    value = "a" * 65536
    sm.create_secret(Name=name, SecretString=value)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    blob = bytes([7]) * 65536
    sm.put_secret_value(SecretId=name, SecretBinary=blob)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == blob


@pytest.mark.parametrize("member", ["SecretString", "SecretBinary"])
def test_value_of_65537_bytes_is_validation_exception(sm, name, member):
    marker = "canaryvalue" + token().replace("-", "")
    filler = marker + "z" * (65537 - len(marker))
    value = filler if member == "SecretString" else filler.encode()
    assert len(value) == 65537
    wire = member[0].lower() + member[1:]
    with raises_aws("ValidationException") as err:
        sm.create_secret(Name=name, **{member: value})
    # The value of a sensitive member is never echoed [issue kubernetes-sigs/cluster-api-provider-aws#1531].
    assert marker not in err.message
    assert err.message == (
        f"1 validation error detected: Value at '{wire}' failed to satisfy constraint: "
        "Member must have length less than or equal to 65536"
    )
    with raises_aws("ResourceNotFoundException"):
        sm.describe_secret(SecretId=name)  # nothing half-written

    sm.create_secret(Name=name, SecretString="small")
    with raises_aws("ValidationException") as err:
        sm.put_secret_value(SecretId=name, **{member: value})
    assert marker not in err.message
    with raises_aws("ValidationException") as err:
        sm.update_secret(SecretId=name, **{member: value})
    assert marker not in err.message
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "small"


def test_both_string_and_binary_rejected(sm, name):
    # The code is "most likely InvalidParameterException" (unverified): code only.
    with raises_aws("InvalidParameterException"):
        sm.create_secret(Name=name, SecretString="s", SecretBinary=b"b")
    with raises_aws("ResourceNotFoundException"):
        sm.describe_secret(SecretId=name)
    sm.create_secret(Name=name, SecretString="s")
    with raises_aws("InvalidParameterException"):
        sm.put_secret_value(SecretId=name, SecretString="s2", SecretBinary=b"b")
    with raises_aws("InvalidParameterException"):
        sm.update_secret(SecretId=name, SecretString="s2", SecretBinary=b"b")
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_put_without_any_value_is_rejected(sm, name):
    # moto: InvalidRequestException "You must provide either SecretString or SecretBinary." (unverified)
    sm.create_secret(Name=name, SecretString="s")
    with raises_aws("InvalidRequestException"):
        sm.put_secret_value(SecretId=name)


# ---------------------------------------------------------------- raw HTTP without a token


@pytest.mark.parametrize(
    "op,body",
    [
        ("CreateSecret", {"SecretString": "v"}),
        ("PutSecretValue", {"SecretString": "v"}),
        ("UpdateSecret", {"SecretString": "v"}),
    ],
)
def test_raw_request_without_client_request_token(sm, raw, name, op, body):
    if op != "CreateSecret":
        sm.create_secret(Name=name, SecretString="original")
        body = {"SecretId": name, **body}
    else:
        body = {"Name": name, **body}
    r = raw(op, body)
    assert r.status == 400, (r.status, r.body)
    # Exact raw AWS body [aws-snap test_no_client_request_token].
    assert r.json == {"__type": "InvalidRequestException", "Message": MSG_NO_TOKEN}
    assert r.header("x-amzn-RequestId")
    if op == "CreateSecret":
        with raises_aws("ResourceNotFoundException"):
            sm.describe_secret(SecretId=name)
    else:
        assert sm.get_secret_value(SecretId=name)["SecretString"] == "original"


def test_raw_success_response_shape(raw, sm, name):
    r = raw("CreateSecret", {"Name": name, "SecretString": "v", "ClientRequestToken": token()})
    assert r.status == 200, r.body
    assert r.header("Content-Type").startswith("application/x-amz-json-1.1")
    assert r.header("x-amzn-RequestId")
    assert set(r.json) == {"ARN", "Name", "VersionId"}
    r = raw("DescribeSecret", {"SecretId": name})
    assert r.status == 200
    # Timestamps are epoch seconds as JSON numbers; absent members are omitted, never null.
    assert isinstance(r.json["CreatedDate"], (int, float))
    assert None not in r.json.values()


# ---------------------------------------------------------------- UpdateSecret


def test_update_description_only_creates_no_version(sm, name):
    created = sm.create_secret(Name=name, SecretString="v1")
    upd = sm.update_secret(SecretId=name, Description="new description", ClientRequestToken=token())
    # [aws-snap update_secret_res_0] = {ARN, Name}
    assert set(strip_meta(upd)) == {"ARN", "Name"}
    assert upd["ARN"] == created["ARN"]
    desc = sm.describe_secret(SecretId=name)
    assert desc["Description"] == "new description"
    assert desc["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}


def test_update_with_value_makes_new_current(sm, name):
    created = sm.create_secret(Name=name, SecretString="v1")
    tok = token()
    upd = sm.update_secret(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    assert set(strip_meta(upd)) == {"ARN", "Name", "VersionId"}
    assert upd["VersionId"] == tok
    assert versions_to_stages(sm, name) == {created["VersionId"]: ["AWSPREVIOUS"], tok: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v2"


def test_update_same_token_same_value_succeeds(sm, name):
    # [aws-verified] success with VersionId == token (the model doc says error; the test wins).
    created = sm.create_secret(Name=name, SecretString="v1")
    tok = token()
    sm.update_secret(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    again = sm.update_secret(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    assert again["VersionId"] == tok
    assert versions_to_stages(sm, name) == {created["VersionId"]: ["AWSPREVIOUS"], tok: ["AWSCURRENT"]}


def test_update_same_token_different_value_is_resource_exists(sm, name):
    created = sm.create_secret(Name=name, SecretString="v1")
    tok = token()
    sm.update_secret(SecretId=name, SecretString="v2", ClientRequestToken=tok)
    with raises_aws("ResourceExistsException", msg_token_in_use(tok, created["ARN"])):
        sm.update_secret(SecretId=name, SecretString="v3", ClientRequestToken=tok)


def test_update_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.update_secret(SecretId=name, Description="x")


def test_update_value_on_empty_secret_attaches_awscurrent(sm, name):
    sm.create_secret(Name=name)
    tok = token()
    sm.update_secret(SecretId=name, SecretString="first", ClientRequestToken=tok)
    assert versions_to_stages(sm, name) == {tok: ["AWSCURRENT"]}


# ---------------------------------------------------------------- BatchGetSecretValue


def test_batch_get_by_ids_with_one_missing(sm, uniq):
    a, b, missing = uniq("py-batch-a-"), uniq("py-batch-b-"), uniq("py-batch-missing-")
    ra = sm.create_secret(Name=a, SecretString="value-a")
    rb = sm.create_secret(Name=b, SecretBinary=b"\x00value-b")
    out = sm.batch_get_secret_value(SecretIdList=[a, rb["ARN"], missing])
    vals = {v["Name"]: v for v in out["SecretValues"]}
    assert set(vals) == {a, b}
    assert vals[a]["SecretString"] == "value-a"
    assert vals[a]["ARN"] == ra["ARN"]
    assert vals[a]["VersionId"] == ra["VersionId"]
    assert vals[a]["VersionStages"] == ["AWSCURRENT"]
    assert isinstance(vals[a]["CreatedDate"], dt.datetime)
    assert vals[b]["SecretBinary"] == b"\x00value-b"
    assert out["Errors"] == [
        {"SecretId": missing, "ErrorCode": "ResourceNotFoundException", "Message": MSG_NOT_FOUND}
    ]


def test_batch_get_with_filters(sm, uniq):
    prefix = uniq("py-batchf-")
    names = [f"{prefix}-{i}" for i in range(3)]
    for i, n in enumerate(names):
        sm.create_secret(Name=n, SecretString=f"value-{i}")
    sm.create_secret(Name=uniq("py-batchf-other-"), SecretString="other")
    seen = {}
    kwargs = {"Filters": [{"Key": "name", "Values": [prefix]}], "MaxResults": 2}
    for _ in range(10):
        out = sm.batch_get_secret_value(**kwargs)
        assert len(out["SecretValues"]) <= 2
        for v in out["SecretValues"]:
            assert v["Name"] not in seen
            seen[v["Name"]] = v["SecretString"]
        if not out.get("NextToken"):
            break
        kwargs["NextToken"] = out["NextToken"]
    assert seen == {n: f"value-{i}" for i, n in enumerate(names)}


def test_batch_get_both_ids_and_filters_is_invalid_parameter(sm, name):
    sm.create_secret(Name=name, SecretString="v")
    with raises_aws("InvalidParameterException"):
        sm.batch_get_secret_value(SecretIdList=[name], Filters=[{"Key": "name", "Values": [name]}])


def test_batch_get_neither_ids_nor_filters_is_invalid_parameter(sm):
    with raises_aws("InvalidParameterException"):
        sm.batch_get_secret_value()


def test_batch_get_max_results_without_filters_is_invalid_parameter(sm, name):
    sm.create_secret(Name=name, SecretString="v")
    with raises_aws("InvalidParameterException"):
        sm.batch_get_secret_value(SecretIdList=[name], MaxResults=5)


# ---------------------------------------------------------------- DescribeSecret / ListSecretVersionIds shapes


def test_describe_fresh_secret_fields(sm, name):
    created = sm.create_secret(Name=name, SecretString="v", Description="d")
    desc = strip_meta(sm.describe_secret(SecretId=name))
    # [aws-snap]: exactly these members for a fresh secret with a value and a description.
    assert set(desc) == {"ARN", "CreatedDate", "Description", "LastChangedDate", "Name", "VersionIdsToStages"}
    assert desc["ARN"] == created["ARN"]
    assert desc["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert desc["LastChangedDate"] >= desc["CreatedDate"]


def test_last_changed_date_moves_on_modification(sm, name):
    sm.create_secret(Name=name, SecretString="v")
    first = sm.describe_secret(SecretId=name)["LastChangedDate"]
    time.sleep(1.1)
    sm.update_secret(SecretId=name, Description="changed")
    second = sm.describe_secret(SecretId=name)["LastChangedDate"]
    assert second > first
    time.sleep(1.1)
    sm.tag_resource(SecretId=name, Tags=[{"Key": "k", "Value": "v"}])
    assert sm.describe_secret(SecretId=name)["LastChangedDate"] > second


def test_list_secret_version_ids_shape(sm, name):
    created = sm.create_secret(Name=name, SecretString="v")
    out = sm.list_secret_version_ids(SecretId=name)
    assert out["ARN"] == created["ARN"] and out["Name"] == name
    [v] = out["Versions"]
    assert v["VersionId"] == created["VersionId"]
    assert v["VersionStages"] == ["AWSCURRENT"]
    assert isinstance(v["CreatedDate"], dt.datetime)
    # [aws-snap]: the default key shows as "DefaultEncryptionKey".
    assert v["KmsKeyIds"] == ["DefaultEncryptionKey"]


def test_list_secret_version_ids_pagination(sm, name):
    sm.create_secret(Name=name, SecretString="v0")
    for i in range(1, 5):
        sm.put_secret_value(SecretId=name, SecretString=f"v{i}")
    seen, kwargs = [], {"SecretId": name, "IncludeDeprecated": True, "MaxResults": 2}
    for _ in range(10):
        page = sm.list_secret_version_ids(**kwargs)
        assert len(page["Versions"]) <= 2
        seen += [v["VersionId"] for v in page["Versions"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    assert len(seen) == len(set(seen)) == 5


def test_list_secret_version_ids_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.list_secret_version_ids(SecretId=name)


def test_name_of_512_characters(sm, uniq):
    n = uniq("py-long-") + "x" * 512
    n = n[:512]
    created = sm.create_secret(Name=n, SecretString="v")
    assert created["Name"] == n
    assert sm.get_secret_value(SecretId=n)["SecretString"] == "v"
    assert sm.get_secret_value(SecretId=created["ARN"])["Name"] == n


def test_client_request_token_too_short(sm_novalidate, name):
    # 32-64 characters [model]. moto: InvalidParameterException "ClientRequestToken must be
    # 32-64 characters long."; coral would say ValidationException. Unverified: either code.
    with pytest.raises(ClientError) as ei:
        sm_novalidate.create_secret(Name=name, SecretString="v", ClientRequestToken="short-token")
    assert ei.value.response["Error"]["Code"] in ("InvalidParameterException", "ValidationException")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unicode_string_value_round_trips(sm, name):
    value = "pässwörd ✓ 秘密 🔑 \u0000 end"
    sm.create_secret(Name=name, SecretString=value)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


# ---------------------------------------------------------------- concurrency


def _parallel(fn, n):
    from concurrent.futures import ThreadPoolExecutor

    def run(i):
        try:
            return ("ok", fn(i))
        except ClientError as e:
            return ("err", e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_creates_of_one_name(sm_pool, name):
    clients = [sm_pool] * 8
    results = _parallel(lambda i: clients[i].create_secret(Name=name, SecretString=f"v{i}"), 8)
    oks = [r for r in results if r[0] == "ok"]
    errs = [r for r in results if r[0] == "err"]
    assert len(oks) == 1, results
    assert all(e[1:] == ("ResourceExistsException", 400) for e in errs), results
    assert len(clients[0].list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_concurrent_puts_with_one_token(sm_pool, name):
    clients = [sm_pool] * 8
    clients[0].create_secret(Name=name, SecretString="v0")
    tok = token()
    results = _parallel(
        lambda i: clients[i].put_secret_value(SecretId=name, SecretString="same", ClientRequestToken=tok), 8
    )
    assert all(r[0] == "ok" and r[1]["VersionId"] == tok for r in results), results
    vs = clients[0].list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(vs) == 2
    assert versions_to_stages(clients[0], name)[tok] == ["AWSCURRENT"]


# Regression: reads of versions and labels once saw a label pointing at a version
# they had not read yet and answered 500 ("label AWSCURRENT points at a missing version").
def test_concurrent_puts_and_reads_never_fail(sm_pool, name):
    threads = 16
    clients = [sm_pool] * threads
    for rnd in range(40):
        n = f"{name}-{rnd}"
        clients[0].create_secret(Name=n, SecretString="v0")

        def work(i):
            c = clients[i]
            if i % 4 == 1:
                return c.get_secret_value(SecretId=n)
            if i % 4 == 3:
                return c.describe_secret(SecretId=n)
            return c.put_secret_value(SecretId=n, SecretString=f"v{i}")

        results = _parallel(work, threads)
        assert [r for r in results if r[0] != "ok"] == [], f"round {rnd}"
        stages = versions_to_stages(clients[0], n)
        flat = sorted(s for labels in stages.values() for s in labels)
        assert flat == ["AWSCURRENT", "AWSPREVIOUS"], stages
        versions = clients[0].list_secret_version_ids(SecretId=n, IncludeDeprecated=True)["Versions"]
        assert len(versions) == 1 + threads // 2


# ---------------------------------------------------------------- model constraints (coral ValidationException)


@pytest.mark.parametrize(
    "op,kwargs,member",
    [
        ("create_secret", {"Name": "a" * 513, "SecretString": "v"}, "name"),
        ("create_secret", {"Name": "py-desc-long", "SecretString": "v", "Description": "d" * 2049}, "description"),
        ("list_secrets", {"MaxResults": 0}, "maxResults"),
        ("list_secrets", {"MaxResults": 101}, "maxResults"),
        ("list_secrets", {"SortOrder": "sideways"}, "sortOrder"),
        ("get_random_password", {"PasswordLength": 0}, "passwordLength"),
        ("get_secret_value", {"SecretId": "py-any", "VersionId": "abc"}, "versionId"),
        ("batch_get_secret_value", {"SecretIdList": [f"x{i}" for i in range(21)]}, "secretIdList"),
    ],
)
def test_model_constraints_are_validation_exceptions(sm_novalidate, op, kwargs, member):
    # Generic coral form: "1 validation error detected: Value ... at '<member>' failed to satisfy constraint: ..."
    with raises_aws("ValidationException") as err:
        getattr(sm_novalidate, op)(**kwargs)
    assert err.message.startswith("1 validation error detected: Value"), err.message
    assert f"at '{member}' failed to satisfy constraint" in err.message, err.message


@pytest.mark.parametrize("member,value", [("SecretString", ""), ("SecretBinary", b"")])
def test_empty_value_is_rejected(sm_novalidate, name, member, value):
    sm_novalidate.create_secret(Name=name, SecretString="v")
    with raises_aws("ValidationException"):
        sm_novalidate.put_secret_value(SecretId=name, **{member: value})
    assert sm_novalidate.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_too_many_version_stages(sm_novalidate, name):
    sm_novalidate.create_secret(Name=name, SecretString="v")
    with raises_aws("ValidationException"):
        sm_novalidate.put_secret_value(SecretId=name, SecretString="v2", VersionStages=[f"s{i}" for i in range(21)])
