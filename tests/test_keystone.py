"""Keystone's hiccups are retried like every other request: the token, version discovery, scoped tokens;
after the last try the error is one line naming the service and what happened, and the failed snapshot is
on record."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import collect, query, run_cli, snapshot_into, write_clouds_yaml


@pytest.mark.parametrize("fault", [
    {"path": r"/v3/auth/tokens", "method": "POST", "status": 503},
    {"path": r"/v3/auth/tokens", "method": "POST", "status": 429, "retry_after": 0},
    {"path": r"/v3/auth/tokens", "method": "POST", "drop": True},
    {"path": r"/v3/auth/tokens", "method": "POST", "latency": 1.5},
    {"path": r"^/identity/?$", "status": 502},
    {"path": r"^/compute/v2\.1/?$", "status": 503},
], ids=["token-503", "token-429", "token-dropped", "token-timeout", "discovery-502", "compute-discovery-503"])
def test_one_hiccup_is_retried_and_the_snapshot_completes(clouds_yaml, fake_cloud, fault):
    fake_cloud.add_fault(times=1, **fault)
    snapshot = collect(retries=2, timeout=1)
    assert snapshot.status == "complete", snapshot.failures
    assert snapshot.compute_microversion == "2.96"


def _snapshot_cli(tmp_path, clouds, retries=2, extra=()):
    config = tmp_path / "auditor.toml"
    config.write_text(f"[collection]\nretries = {retries}\nbackoff = 0.01\ntimeout = 2\n")
    database = tmp_path / "audit.duckdb"
    done = run_cli("--config", str(config), "--database", str(database), *extra, "snapshot", "--cloud", "demo",
                   env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    return done, database


def test_a_lasting_503_on_the_token_is_one_line_and_a_failed_snapshot(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"/v3/auth/tokens", method="POST", status=503)
    done, database = _snapshot_cli(tmp_path, clouds_yaml, retries=2)
    assert done.returncode == 3, done.stderr
    expected = f"identity service at {fake_cloud.auth_url}/v3: 503 Service Unavailable after 3 tries"
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and "urllib3" not in done.stderr and "HTTPConnectionPool" not in done.stderr
    assert len(fake_cloud.requests_to(r"/v3/auth/tokens")) == 3
    [(status, started, finished)] = query(database, "SELECT status, started_at, finished_at FROM snapshots")
    assert status == "failed" and started <= finished
    assert query(database, "SELECT resource_type, message FROM collection_errors") == [
        ("snapshot", f"cloud 'demo' region 'RegionOne': {expected}")]
    assert query(database, "SELECT DISTINCT status FROM snapshot_resources") == [("failed",)]


def test_an_unreachable_identity_endpoint_is_one_line(tmp_path, fake_cloud):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    entry = fake_cloud.clouds_yaml_entry()
    entry["auth"]["auth_url"] = f"http://127.0.0.1:{port}/identity"
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": entry})
    done, database = _snapshot_cli(tmp_path, clouds, retries=1)
    assert done.returncode == 3
    [line] = [line for line in done.stderr.splitlines() if "identity service" in line]
    assert f"127.0.0.1:{port}" in line and "connection refused after 2 tries" in line
    assert query(database, "SELECT status FROM snapshots") == [("failed",)]


def test_a_huge_retry_after_on_the_token_is_capped(clouds_yaml, fake_cloud):
    fake_cloud.add_fault(r"/v3/auth/tokens", method="POST", status=503, retry_after=86400, times=1)
    started = time.monotonic()
    snapshot = collect(retries=1, timeout=1)
    assert snapshot.status == "complete"
    assert time.monotonic() - started < 8


def test_compute_discovery_that_never_answers_fails_compute_only(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"^/compute/v2\.1/?$", status=503)
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database, retries=1)
    assert result.status == "partial"
    status = dict(query(database, "SELECT resource_type, status FROM snapshot_resources"))
    assert status["servers"] == status["flavors"] == "failed"
    assert status["ports"] == status["images"] == "complete"
    messages = [m for (m,) in query(database, "SELECT message FROM collection_errors WHERE resource_type = 'servers'")]
    assert messages and "compute service at" in messages[0] and "microversion" in messages[0]


def test_a_scoped_token_is_retried_too(clouds_yaml, fake_cloud, demo_fixture):
    alice = next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")
    fake_cloud.add_fault(r"/v3/auth/tokens", method="POST", status=503, times=2)  # alice's first token, then a scoped one
    snapshot = collect("alice", retries=2)
    assert snapshot.status == "complete", snapshot.failures
    assert sorted(snapshot.scope_project_ids) == sorted(alice["roles"])


def test_missing_clouds_yaml_named_by_the_variable(tmp_path):
    missing = tmp_path / "nope" / "clouds.yaml"
    done = run_cli("--database", str(tmp_path / "a.duckdb"), "snapshot", "--cloud", "demo",
                   env={"OS_CLIENT_CONFIG_FILE": str(missing)})
    assert done.returncode == 3
    assert f"OS_CLIENT_CONFIG_FILE names {missing}, a file that does not exist" in done.stderr
    assert not (tmp_path / "a.duckdb").exists()


def test_an_unknown_cloud_lists_the_defined_ones_and_the_file(clouds_yaml, tmp_path):
    done = run_cli("--database", str(tmp_path / "a.duckdb"), "snapshot", "--cloud", "demoo",
                   env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)})
    assert done.returncode == 3
    assert f"cloud 'demoo' is not defined in {clouds_yaml}; the clouds defined there: alice, appcred, demo" \
        in done.stderr
    assert not (tmp_path / "a.duckdb").exists()
