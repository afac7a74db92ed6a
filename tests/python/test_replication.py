"""Multi-Region replication between the regions named by the SigV4 scope
(reference section 3.15): us-east-1 is the primary, us-west-2 the replica."""

import time

import pytest

from conftest import ARN_RE, MSG_NOT_FOUND, make_client, raises_aws, start_server, strip_meta


def wait_for(fn, timeout=5.0, interval=0.05):
    """Poll fn() until it returns a truthy value; return it (or the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def replica_status(sm, name, region="us-west-2"):
    for st in sm.describe_secret(SecretId=name).get("ReplicationStatus", []):
        if st["Region"] == region:
            return st
    return None


@pytest.fixture
def replicated(sm, sm_west, name):
    created = sm.create_secret(Name=name, SecretString="primary-value", Description="replicated")
    r = sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "us-west-2"}])
    assert r["ARN"] == created["ARN"]
    assert [s["Region"] for s in r["ReplicationStatus"]] == ["us-west-2"]
    assert r["ReplicationStatus"][0]["Status"] in ("InSync", "InProgress")
    st = wait_for(lambda: (s := replica_status(sm, name)) and s["Status"] == "InSync" and s)
    assert st and st["Status"] == "InSync", replica_status(sm, name)
    return name, created


def test_replica_reads_same_value(sm, sm_west, replicated):
    name, created = replicated
    desc = sm.describe_secret(SecretId=name)
    assert desc["PrimaryRegion"] == "us-east-1"
    got = sm_west.get_secret_value(SecretId=name)
    assert got["SecretString"] == "primary-value"
    assert got["VersionId"] == created["VersionId"]
    # Same name and ARN except the region.
    assert got["ARN"] == created["ARN"].replace(":us-east-1:", ":us-west-2:")
    m = ARN_RE.match(got["ARN"])
    assert m["region"] == "us-west-2" and m["name"] == name
    west = sm_west.describe_secret(SecretId=name)
    assert west["PrimaryRegion"] == "us-east-1"
    assert west["Description"] == "replicated"
    assert "ReplicationStatus" not in west or west["ReplicationStatus"] == []


def test_put_on_primary_reaches_replica(sm, sm_west, replicated):
    name, _ = replicated
    put = sm.put_secret_value(SecretId=name, SecretString="second-value")
    got = wait_for(
        lambda: (g := sm_west.get_secret_value(SecretId=name))["SecretString"] == "second-value" and g
    )
    assert got, sm_west.get_secret_value(SecretId=name)
    assert got["VersionId"] == put["VersionId"]
    prev = sm_west.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert prev["SecretString"] == "primary-value"


def test_writes_on_replica_are_rejected(sm, sm_west, replicated):
    name, _ = replicated
    # moto/localstack: "Operation not permitted on a replica secret. Call must be made in
    # primary secret's region." (code InvalidRequestException; text unverified)
    with raises_aws("InvalidRequestException"):
        sm_west.put_secret_value(SecretId=name, SecretString="from-replica")
    with raises_aws("InvalidRequestException"):
        sm_west.update_secret(SecretId=name, SecretString="from-replica")
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "primary-value"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "primary-value"


def test_delete_primary_with_replicas_fails(sm, sm_west, replicated):
    name, _ = replicated
    with raises_aws("InvalidRequestException"):
        sm.delete_secret(SecretId=name)
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "primary-value"


def test_remove_regions_from_replication(sm, sm_west, replicated):
    name, created = replicated
    r = sm.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["us-west-2"])
    assert r["ARN"] == created["ARN"]
    assert replica_status(sm, name) is None
    gone = wait_for(lambda: _not_found(sm_west, name))
    assert gone
    # Now the primary can be deleted.
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def _not_found(client, name):
    try:
        client.describe_secret(SecretId=name)
    except client.exceptions.ResourceNotFoundException:
        return True
    return False


def test_stop_replication_promotes_replica(sm, sm_west, replicated):
    name, created = replicated
    r = sm_west.stop_replication_to_replica(SecretId=name)
    west_arn = created["ARN"].replace(":us-east-1:", ":us-west-2:")
    assert strip_meta(r) == {"ARN": west_arn}
    west = sm_west.describe_secret(SecretId=name)
    assert west.get("PrimaryRegion") in (None, "us-west-2")
    # The promoted secret is writable on its own.
    sm_west.put_secret_value(SecretId=name, SecretString="standalone")
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "standalone"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "primary-value"
    assert replica_status(sm, name) is None
    # The old primary has no replicas any more: it can be deleted.
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "standalone"


def test_replicate_on_create(sm, sm_west, name):
    created = sm.create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": "us-west-2"}])
    assert [s["Region"] for s in created["ReplicationStatus"]] == ["us-west-2"]
    got = wait_for(lambda: not _not_found(sm_west, name))
    assert got
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_replicate_unknown_secret(sm, name):
    with raises_aws("ResourceNotFoundException", MSG_NOT_FOUND):
        sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "us-west-2"}])


def test_replica_name_taken_in_target_region(sm, sm_west, name):
    # Without ForceOverwriteReplicaSecret the replica fails with a StatusMessage.
    sm_west.create_secret(Name=name, SecretString="west-own")
    sm.create_secret(Name=name, SecretString="east")
    r = sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "us-west-2"}])
    st = wait_for(lambda: (s := replica_status(sm, name)) and s["Status"] != "InProgress" and s)
    assert st["Status"] == "Failed", r
    assert st.get("StatusMessage")
    assert sm_west.get_secret_value(SecretId=name)["SecretString"] == "west-own"


def test_repair_pass_retries_a_failed_replica(tmp_path):
    # Its own server, sweeping every second instead of every minute.
    srv = start_server(tmp_path, env={"TUMBLER_SWEEP_INTERVAL_SECS": "1"})
    try:
        east = make_client(srv)
        west = make_client(srv, region="us-west-2")
        west.create_secret(Name="repair-me", SecretString="west-own")
        east.create_secret(Name="repair-me", SecretString="east")
        east.replicate_secret_to_regions(SecretId="repair-me", AddReplicaRegions=[{"Region": "us-west-2"}])
        st = wait_for(lambda: (s := replica_status(east, "repair-me")) and s["Status"] == "Failed" and s)
        assert st and st["Status"] == "Failed"
        # Nothing changes on the primary; once the name is free in us-west-2,
        # the repair pass mirrors it.
        west.delete_secret(SecretId="repair-me", ForceDeleteWithoutRecovery=True)
        st = wait_for(lambda: (s := replica_status(east, "repair-me")) and s["Status"] == "InSync" and s, timeout=10)
        assert st and st["Status"] == "InSync", replica_status(east, "repair-me")
        assert west.get_secret_value(SecretId="repair-me")["SecretString"] == "east"
    finally:
        srv.kill()
