"""Staging labels and version deprecation (reference sections 3.4 and 3.5)."""

import pytest

from conftest import raises_aws, token


def stages(sm, name):
    return sm.describe_secret(SecretId=name).get("VersionIdsToStages", {})


def list_versions(sm, name, **kw):
    return {v["VersionId"]: v for v in sm.list_secret_version_ids(SecretId=name, **kw)["Versions"]}


@pytest.fixture
def secret(sm, name):
    """A secret with one version v1 = AWSCURRENT; returns (name, v1)."""
    v1 = token()
    sm.create_secret(Name=name, SecretString="value-1", ClientRequestToken=v1)
    return name, v1


def test_put_moves_current_and_previous(sm, secret):
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2)
    assert stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
    v3 = token()
    r = sm.put_secret_value(SecretId=name, SecretString="value-3", ClientRequestToken=v3)
    assert r["VersionStages"] == ["AWSCURRENT"]
    # v1 lost AWSPREVIOUS and has no label left: deprecated, hidden from DescribeSecret.
    assert stages(sm, name) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "value-2"


def test_deprecated_version_listing(sm, secret):
    name, v1 = secret
    v2, v3 = token(), token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2)
    sm.put_secret_value(SecretId=name, SecretString="value-3", ClientRequestToken=v3)

    default = list_versions(sm, name)
    assert set(default) == {v2, v3}
    assert default[v2]["VersionStages"] == ["AWSPREVIOUS"]
    assert default[v3]["VersionStages"] == ["AWSCURRENT"]

    everything = list_versions(sm, name, IncludeDeprecated=True)
    assert set(everything) == {v1, v2, v3}
    # [aws-snap test_deprecated_secret_version_stage]: the key is omitted, not [].
    assert "VersionStages" not in everything[v1]
    assert "CreatedDate" in everything[v1]

    listed = [s for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"] if s["Name"] == name]
    assert listed[0]["SecretVersionsToStages"] == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}

    # A recent deprecated version can still be read by VersionId (caching clients rely on it).
    got = sm.get_secret_value(SecretId=name, VersionId=v1)
    assert got["SecretString"] == "value-1"
    assert "VersionStages" not in got or got["VersionStages"] == []


def test_move_current_without_remove_from_is_invalid_parameter(sm, secret):
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2)
    with raises_aws(
        "InvalidParameterException",
        "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently "
        f"attached to version {v2}, so you must explicitly reference that version in RemoveFromVersionId.",
    ):
        sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v1)
    assert stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}


def test_move_current_with_both_ids_moves_previous_too(sm, secret):
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2)
    r = sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v1, RemoveFromVersionId=v2
    )
    assert set(k for k in r if k != "ResponseMetadata") == {"ARN", "Name"}
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPREVIOUS"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "value-1"


def test_move_current_onto_pending_keeps_pending(sm, secret):
    # [aws-verified, aws-snap]: the target keeps its other labels.
    name, v1 = secret
    v2 = token()
    r = sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=["AWSPENDING"])
    assert r["VersionStages"] == ["AWSPENDING"]
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1)
    assert stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}
    got = sm.get_secret_value(SecretId=name)
    assert got["VersionStages"] == ["AWSCURRENT", "AWSPENDING"]


def test_custom_labels_on_source_are_kept_when_current_moves(sm, secret):
    # [aws-snap custom_stages_2]: ["AWSPREVIOUS", "PUT0"]
    name, v1 = secret
    sm.update_secret_version_stage(SecretId=name, VersionStage="PUT0", MoveToVersionId=v1)
    assert stages(sm, name) == {v1: ["AWSCURRENT", "PUT0"]}
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=["PUT1"])
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1)
    assert stages(sm, name) == {v1: ["AWSPREVIOUS", "PUT0"], v2: ["AWSCURRENT", "PUT1"]}


def test_add_and_remove_custom_label(sm, secret):
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=["staging"])
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["staging"]}
    sm.update_secret_version_stage(SecretId=name, VersionStage="blue", MoveToVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["blue", "staging"]}
    assert sm.get_secret_value(SecretId=name, VersionStage="blue")["VersionId"] == v2
    sm.update_secret_version_stage(SecretId=name, VersionStage="blue", RemoveFromVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["staging"]}
    # Removing the last label deprecates the version.
    sm.update_secret_version_stage(SecretId=name, VersionStage="staging", RemoveFromVersionId=v2)
    assert stages(sm, name) == {v1: ["AWSCURRENT"]}
    assert set(list_versions(sm, name)) == {v1}
    assert "VersionStages" not in list_versions(sm, name, IncludeDeprecated=True)[v2]


def test_move_custom_label_between_versions(sm, secret):
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=["green"])
    sm.update_secret_version_stage(SecretId=name, VersionStage="green", MoveToVersionId=v1, RemoveFromVersionId=v2)
    # Moving a label other than AWSCURRENT does not touch AWSPREVIOUS.
    assert stages(sm, name) == {v1: ["AWSCURRENT", "green"]}


def test_move_custom_label_already_attached_needs_remove_from(sm, secret):
    # The model doc says the RemoveFromVersionId rule applies to any label (AWS-verified for AWSCURRENT only).
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=["green"])
    with raises_aws("InvalidParameterException"):
        sm.update_secret_version_stage(SecretId=name, VersionStage="green", MoveToVersionId=v1)
    assert stages(sm, name) == {v1: ["AWSCURRENT"], v2: ["green"]}


def test_wrong_remove_from_version_fails(sm, secret):
    # The exact code/message is unverified (moto: "Version stage <x> not found in version <id>").
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2)
    with pytest.raises(Exception) as ei:
        sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v1, RemoveFromVersionId=v1)
    err = ei.value.response["Error"]["Code"]
    assert err in ("InvalidParameterException", "InvalidRequestException"), err
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}


def test_plain_put_drops_pending_from_old_current(sm, secret):
    # [aws-snap test_update_secret_version_stages_current_pending]
    name, v1 = secret
    v2 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=["AWSPENDING"])
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1)
    assert stages(sm, name)[v2] == ["AWSCURRENT", "AWSPENDING"]
    v3 = token()
    sm.put_secret_value(SecretId=name, SecretString="value-3", ClientRequestToken=v3)
    assert stages(sm, name) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}


def test_labels_are_sorted_in_every_response(sm, secret):
    name, v1 = secret
    v2 = token()
    labels = ["zeta", "AWSCURRENT", "alpha", "PUT1", "Mid"]
    expect = sorted(labels)
    r = sm.put_secret_value(SecretId=name, SecretString="value-2", ClientRequestToken=v2, VersionStages=labels)
    assert r["VersionStages"] == expect
    assert stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: expect}
    assert sm.get_secret_value(SecretId=name)["VersionStages"] == expect
    assert list_versions(sm, name)[v2]["VersionStages"] == expect
    entry = [s for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"] if s["Name"] == name][0]
    assert entry["SecretVersionsToStages"][v2] == expect
    batch = sm.batch_get_secret_value(SecretIdList=[name])["SecretValues"][0]
    assert batch["VersionStages"] == expect


def test_update_secret_version_stage_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", "Secrets Manager can't find the specified secret."):
        sm.update_secret_version_stage(SecretId=name, VersionStage="x", MoveToVersionId=token())
