"""Rotation with the aws CLI and boto3 against the real server: RotateSecret
with the built-in random-password rotator runs the four steps and moves the
labels as AWS does; RotateImmediately=false only tests a copy; schedules set
NextRotationDate; CancelRotateSecret; a failing rotation leaves AWSCURRENT
alone and resumes with its token; and AWS's errors for bad requests."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from conftest import audit_events, current_is, make_client, raises_aws, run_tumbler, stages, wait_for

RANDOM_PASSWORD = "arn:aws:lambda:::function:tumbler-random-password"
EXCLUDED = set(":/@\"'\\")








def test_rotate_with_the_builtin_rotator_via_cli(server, sm, aws_cli, uniq):
    name = uniq("rot-cli")
    first = sm.create_secret(Name=name, SecretString=json.dumps({"username": "app", "password": "old-password"}))
    res = aws_cli(
        server,
        "secretsmanager",
        "rotate-secret",
        "--secret-id",
        name,
        "--rotation-lambda-arn",
        RANDOM_PASSWORD,
        "--rotation-rules",
        "AutomaticallyAfterDays=7",
        check=True,
    ).json
    token = res["VersionId"]
    assert res["Name"] == name and res["ARN"] == first["ARN"]
    wait_for(lambda: current_is(sm, name, token))

    labels = stages(sm, name)
    assert "AWSCURRENT" in labels[token]
    assert labels[first["VersionId"]] == ["AWSPREVIOUS"]
    value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert value["username"] == "app" and value["password"] != "old-password"
    assert len(value["password"]) == 32 and not EXCLUDED & set(value["password"])
    previous = json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"])
    assert previous["password"] == "old-password"

    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and d["RotationLambdaARN"] == RANDOM_PASSWORD
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 7
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((d["LastRotatedDate"] - now).total_seconds()) < 60
    # Due "on or before" the end of the UTC day seven days on.
    due = (now + dt.timedelta(days=7)).date()
    assert d["NextRotationDate"] == dt.datetime(due.year, due.month, due.day, 23, 59, 59, tzinfo=dt.timezone.utc)

    # Again, with the stored configuration: no parameters but the token.
    again = sm.rotate_secret(SecretId=name)["VersionId"]
    wait_for(lambda: current_is(sm, name, again))
    assert stages(sm, name)[token] == ["AWSPREVIOUS"]
    # The outcome is in the audit trail as the service's own event.
    assert audit_events(server, "RotationSucceeded").count(first["ARN"]) >= 2


def test_rotate_immediately_false_only_tests_a_copy(server, sm, uniq):
    name = uniq("rot-later")
    first = sm.create_secret(Name=name, SecretString="keep-me")
    token = sm.rotate_secret(
        SecretId=name,
        RotationLambdaARN=RANDOM_PASSWORD,
        RotationRules={"ScheduleExpression": "cron(0 16 1,15 * ? *)", "Duration": "2h"},
        RotateImmediately=False,
    )["VersionId"]
    # The tested copy loses AWSPENDING; AWSCURRENT stays where it was.
    wait_for(lambda: token in stages(sm, name) and stages(sm, name).get(token) != ["AWSPENDING"] or token not in stages(sm, name))
    labels = stages(sm, name)
    assert labels[first["VersionId"]] == ["AWSCURRENT"]
    assert "AWSPENDING" not in json.dumps(labels)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "keep-me"
    assert sm.get_secret_value(SecretId=name, VersionId=token)["SecretString"] == "keep-me"
    d = sm.describe_secret(SecretId=name)
    assert "LastRotatedDate" not in d
    assert d["RotationRules"] == {"ScheduleExpression": "cron(0 16 1,15 * ? *)", "Duration": "2h"}
    nxt = d["NextRotationDate"]
    assert nxt.day in (1, 15) and (nxt.hour, nxt.minute, nxt.second) == (17, 59, 59)


def test_cancel_rotate_secret_keeps_the_configuration(server, sm, uniq):
    name = uniq("rot-cancel")
    sm.create_secret(Name=name, SecretString="v")
    token = sm.rotate_secret(
        SecretId=name, RotationLambdaARN=RANDOM_PASSWORD, RotationRules={"ScheduleExpression": "rate(10 days)"}
    )["VersionId"]
    wait_for(lambda: current_is(sm, name, token))
    out = sm.cancel_rotate_secret(SecretId=name)
    assert out["Name"] == name and "VersionId" not in out
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False and d["RotationLambdaARN"] == RANDOM_PASSWORD
    assert d["RotationRules"]["ScheduleExpression"] == "rate(10 days)"
    assert "NextRotationDate" not in d
    # RotateSecret turns it back on.
    again = sm.rotate_secret(SecretId=name)["VersionId"]
    wait_for(lambda: current_is(sm, name, again))
    assert sm.describe_secret(SecretId=name)["RotationEnabled"] is True


def test_a_failed_rotation_leaves_current_and_resumes_with_its_token(server, sm, uniq):
    kms = make_client(server, service="kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    name = uniq("rot-fail")
    first = sm.create_secret(Name=name, SecretString=json.dumps({"password": "p0"}), KmsKeyId=key)
    kms.disable_key(KeyId=key)
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=RANDOM_PASSWORD)["VersionId"]
    # createSecret cannot read or write under a disabled key: the attempt fails.
    wait_for(lambda: first["ARN"] in audit_events(server, "RotationFailed"), what="the RotationFailed event")
    labels = stages(sm, name)
    assert labels[first["VersionId"]] == ["AWSCURRENT"]
    # AWSPENDING stays on the empty version, as on AWS.
    assert labels[token] == ["AWSPENDING"]
    kms.enable_key(KeyId=key)
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"]) == {"password": "p0"}
    # Another token is refused while that rotation is unfinished...
    with raises_aws("InvalidRequestException", match="A previous rotation isn't complete"):
        sm.rotate_secret(SecretId=name, ClientRequestToken=str(uuid.uuid4()))
    # ...the same token resumes it at once.
    assert sm.rotate_secret(SecretId=name, ClientRequestToken=token)["VersionId"] == token
    wait_for(lambda: current_is(sm, name, token))
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"] != "p0"


def test_rotation_errors(server, sm, sm_novalidate, uniq):
    name = uniq("rot-err")
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    with raises_aws("InvalidRequestException", match="No Lambda rotation function ARN is associated with this secret."):
        sm.rotate_secret(SecretId=name)
    with raises_aws("AccessDeniedException", match="cannot invoke the specified Lambda function"):
        sm.rotate_secret(SecretId=name, RotationLambdaARN="arn:aws:lambda:us-east-1:000000000000:function:nope")
    bad_rules = [
        ({"AutomaticallyAfterDays": 3, "ScheduleExpression": "rate(3 days)"}, "both"),
        ({"ScheduleExpression": "rate(2 hours)"}, "at least 4 hours"),
        ({"ScheduleExpression": "cron(0 16 1 * MON *)"}, "exactly one of Day-of-month and Day-of-week"),
        ({"ScheduleExpression": "cron(30 16 1 * ? *)"}, "Minutes must be 0"),
        ({"ScheduleExpression": "cron(0 22 1 * ? *)", "Duration": "3h"}, "end of the UTC day"),
        ({"ScheduleExpression": "weekly"}, "rate"),
    ]
    for rules, why in bad_rules:
        with raises_aws("InvalidParameterException", match=why):
            sm.rotate_secret(SecretId=name, RotationLambdaARN=RANDOM_PASSWORD, RotationRules=rules)
    with raises_aws("ValidationException", match="automaticallyAfterDays"):
        sm_novalidate.rotate_secret(
            SecretId=name, RotationLambdaARN=RANDOM_PASSWORD, RotationRules={"AutomaticallyAfterDays": 0}
        )
    with raises_aws("ValidationException", match="scheduleExpression"):
        sm_novalidate.rotate_secret(
            SecretId=name, RotationLambdaARN=RANDOM_PASSWORD, RotationRules={"ScheduleExpression": "rate(1 day);"}
        )
    # Nothing was half-written by the refusals.
    d = sm.describe_secret(SecretId=name)
    assert "RotationEnabled" not in d and "RotationLambdaARN" not in d
    assert list(stages(sm, name).values()) == [["AWSCURRENT"]]
    # An AWSPENDING left by hand on another version blocks a new rotation.
    sm.put_secret_value(SecretId=name, SecretString="pending", VersionStages=["AWSPENDING"])
    with raises_aws("InvalidRequestException", match="A previous rotation isn't complete"):
        sm.rotate_secret(SecretId=name, RotationLambdaARN=RANDOM_PASSWORD)
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    with raises_aws("InvalidRequestException", match="marked for deletion"):
        sm.rotate_secret(SecretId=arn, RotationLambdaARN=RANDOM_PASSWORD)
    with raises_aws("ResourceNotFoundException"):
        sm.rotate_secret(SecretId=uniq("nope"), RotationLambdaARN=RANDOM_PASSWORD)


def test_rotators_list_names_the_builtin_rotator():
    res = run_tumbler("rotators", "list")
    assert res.returncode == 0, res.stderr
    assert RANDOM_PASSWORD in res.stdout


@pytest.mark.parametrize("who", ["reader"])
def test_rotate_secret_needs_its_permission(server, uniq, who):
    iam = make_client(server, service="iam")
    sm = make_client(server)
    name = uniq("rot-perm")
    sm.create_secret(Name=name, SecretString="v")
    user = uniq(who)
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="p",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
            }
        ),
    )
    k = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = make_client(server, access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"])
    with raises_aws("AccessDeniedException", match="secretsmanager:RotateSecret"):
        as_user.rotate_secret(SecretId=name, RotationLambdaARN=RANDOM_PASSWORD)
    assert "RotationEnabled" not in sm.describe_secret(SecretId=name)
