#!/usr/bin/env python3
"""A rotation function for Tumbler, ported from AWS's rotation template
(aws-samples/aws-secrets-manager-rotation-lambdas,
SecretsManagerRotationTemplate/lambda_function.py), whose flow it keeps
step for step: the same checks, the same idempotent steps, the same calls.

Its target is a password file (`username:password` lines), standing in for
a database: setSecret writes the pending password there, testSecret logs in
(compares) with it. The file is the first argument, or ROTATION_TARGET_FILE
(a Lambda's configuration; a command rotator gets only PATH, HOME and the
AWS_* variables, so it takes arguments).

Run it three ways:
- as a Tumbler command rotator: `tumbler server --rotator 'demo=python3 rotate.py /srv/passwords'`,
  the event on stdin;
- as an AWS Lambda: `lambda_handler(event, context)`;
- by hand: `echo '{"Step": ..., "SecretId": ..., "ClientRequestToken": ...}' | python3 rotate.py`.

It reaches Secrets Manager at SECRETS_MANAGER_ENDPOINT (Tumbler sets it)
with the standard AWS credential chain.

The second argument, or ROTATION_FAIL_STEP_FILE, is for the test suite: if
that file exists and names a step, that step fails.
"""

import json
import logging
import os
import sys

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    arn = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]

    service_client = boto3.client("secretsmanager", endpoint_url=os.environ.get("SECRETS_MANAGER_ENDPOINT"))

    # Make sure the version is staged correctly
    metadata = service_client.describe_secret(SecretId=arn)
    if "RotationEnabled" in metadata and not metadata["RotationEnabled"]:
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        raise ValueError("Secret version %s has no stage for rotation of secret %s." % (token, arn))
    if "AWSCURRENT" in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s.", token, arn)
        return
    elif "AWSPENDING" not in versions[token]:
        raise ValueError("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))

    fail_injected(step)
    if step == "createSecret":
        create_secret(service_client, arn, token)
    elif step == "setSecret":
        set_secret(service_client, arn, token)
    elif step == "testSecret":
        test_secret(service_client, arn, token)
    elif step == "finishSecret":
        finish_secret(service_client, arn, token)
    else:
        raise ValueError("Invalid step parameter")


def create_secret(service_client, arn, token):
    """Generate a new secret as AWSPENDING, unless a retry finds it there."""
    current = json.loads(service_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    try:
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        logger.info("createSecret: Successfully retrieved secret for %s.", arn)
    except service_client.exceptions.ResourceNotFoundException:
        exclude_characters = os.environ.get("EXCLUDE_CHARACTERS", "/@\"'\\:")
        passwd = service_client.get_random_password(ExcludeCharacters=exclude_characters)
        current["password"] = passwd["RandomPassword"]
        service_client.put_secret_value(
            SecretId=arn,
            ClientRequestToken=token,
            SecretString=json.dumps(current),
            VersionStages=["AWSPENDING"],
        )
        logger.info("createSecret: Successfully put secret for ARN %s and version %s.", arn, token)


def target_file():
    return os.environ["ROTATION_TARGET_FILE"]


def read_target():
    try:
        with open(target_file()) as f:
            return dict(line.rstrip("\n").split(":", 1) for line in f if ":" in line)
    except FileNotFoundError:
        return {}


def pending_value(service_client, arn, token):
    return json.loads(
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
    )


def set_secret(service_client, arn, token):
    """Set the pending password in the target (idempotent)."""
    pending = pending_value(service_client, arn, token)
    users = read_target()
    users[pending["username"]] = pending["password"]
    path = target_file()
    with open(path + ".tmp", "w") as f:
        f.writelines("%s:%s\n" % (u, p) for u, p in sorted(users.items()))
    os.replace(path + ".tmp", path)
    logger.info("setSecret: set the pending password of %s in the target.", pending["username"])


def test_secret(service_client, arn, token):
    """Log in to the target with the pending secret."""
    pending = pending_value(service_client, arn, token)
    if read_target().get(pending["username"]) != pending["password"]:
        raise ValueError("testSecret: the pending password of %s does not log in." % pending["username"])
    logger.info("testSecret: the pending password of %s logs in.", pending["username"])


def finish_secret(service_client, arn, token):
    """Move AWSCURRENT to the pending version."""
    metadata = service_client.describe_secret(SecretId=arn)
    current_version = None
    for version in metadata["VersionIdsToStages"]:
        if "AWSCURRENT" in metadata["VersionIdsToStages"][version]:
            if version == token:
                logger.info("finishSecret: Version %s already marked as AWSCURRENT for %s", version, arn)
                return
            current_version = version
            break
    service_client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current_version
    )
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s.", token, arn)


def fail_injected(step):
    path = os.environ.get("ROTATION_FAIL_STEP_FILE")
    if path and os.path.exists(path):
        with open(path) as f:
            if f.read().strip() == step:
                raise RuntimeError("%s failed: injected by ROTATION_FAIL_STEP_FILE" % step)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    # As a command rotator: configuration comes as arguments.
    for var, arg in zip(("ROTATION_TARGET_FILE", "ROTATION_FAIL_STEP_FILE"), sys.argv[1:]):
        os.environ[var] = arg
    try:
        lambda_handler(json.load(sys.stdin), None)
    except Exception as e:  # The exit status and the last line tell Tumbler why.
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
