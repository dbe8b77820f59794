"""Faults from the cloud: every failure is recorded, the rest is kept, and the snapshot says `partial`."""

from __future__ import annotations

import pytest
from conftest import collect, query, records, run_cli, snapshot_into


def _errors(database, snapshot_id):
    return query(database, "SELECT resource_type, project_id, http_status, message FROM collection_errors "
                           "WHERE snapshot_id = ? ORDER BY ALL", [snapshot_id])


def test_neutron_503_gives_a_partial_snapshot_that_keeps_the_rest(clouds_yaml, fake_cloud, tmp_path, demo_fixture):
    fake_cloud.add_fault(r"^/network/v2\.0/ports", status=503)
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database, retries=1)
    assert result.status == "partial"
    errors = _errors(database, result.snapshot_id)
    assert [(e[0], e[2]) for e in errors] == [("ports", 503)]
    assert query(database, "SELECT status FROM snapshots") == [("partial",)]
    assert query(database, "SELECT count(*) FROM servers")[0][0] == len(demo_fixture["servers"])
    assert query(database, "SELECT count(*) FROM ports")[0][0] == 0
    status = dict(query(database, "SELECT resource_type, status FROM snapshot_resources"))
    assert status["ports"] == "failed" and status["servers"] == "complete"
    # retried once (retries=1) before giving up: the 503 is not a one-shot guess
    assert len(fake_cloud.requests_to(r"^/network/v2\.0/ports")) == 2
    # the latest_* views only show complete snapshots
    assert query(database, "SELECT count(*) FROM latest_servers")[0][0] == 0


def test_403_on_one_projects_listing(clouds_yaml, fake_cloud, demo_fixture):
    alice = next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")
    denied, allowed = sorted(alice["roles"])
    fake_cloud.add_fault(r"/servers/detail", status=403, project=denied)
    snapshot = collect("alice")
    assert snapshot.status == "partial"
    [failure] = snapshot.failures
    assert (failure.resource_type, failure.project_id, failure.http_status) == ("servers", denied, 403)
    got = {s["id"] for s in records(snapshot, "servers")}
    assert got == {s["id"] for s in demo_fixture["servers"] if s["tenant_id"] == allowed}
    assert snapshot.resource_status("servers") == "partial"


@pytest.mark.parametrize("retry_after", [1, "0.5", "soon", "Fri, 31 Dec 99999 23:59:59 GMT"],
                         ids=["seconds", "fraction", "unreadable", "year-99999"])
def test_429_with_retry_after_is_retried_and_completes(clouds_yaml, fake_cloud, retry_after):
    """A Retry-After urllib3 cannot read (a fraction, a word) is no reason to give up: the backoff applies."""
    fake_cloud.add_fault(r"/servers/detail", status=429, retry_after=retry_after, times=1)
    snapshot = collect(retries=2)
    assert snapshot.status == "complete", snapshot.failures
    assert len(fake_cloud.requests_to(r"/servers/detail")) == 2


@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}], ids=["500", "dropped"])
def test_a_passing_fault_is_retried(clouds_yaml, fake_cloud, fault):
    fake_cloud.add_fault(r"/flavors/detail", times=1, **fault)
    snapshot = collect(retries=2)
    assert snapshot.status == "complete", snapshot.failures


@pytest.mark.parametrize(
    "fault, expect",
    [
        ({"status": 500}, "HTTP 500"),
        ({"status": 401}, "HTTP 401"),
        ({"status": 404}, "HTTP 404"),
        ({"drop": True}, "request failed"),
        ({"malformed": True}, "malformed JSON"),
        ({"latency": 2.5}, "timed out"),
    ],
    ids=["500", "401", "404", "dropped", "malformed", "timeout"],
)
def test_a_lasting_fault_is_recorded(clouds_yaml, fake_cloud, fault, expect):
    fake_cloud.add_fault(r"/os-server-groups", **fault)
    snapshot = collect(retries=1, timeout=1)
    assert snapshot.status == "partial"
    [failure] = snapshot.failures
    assert failure.resource_type == "server_groups"
    assert expect in failure.message
    assert "truncated" not in failure.message  # no part of the body is quoted back
    assert len(records(snapshot, "servers")) > 0


def test_malformed_second_page_keeps_the_first(clouds_yaml, fake_cloud, demo_fixture):
    fake_cloud.add_fault(r"/servers/detail\?.*marker=", malformed=True)
    snapshot = collect(page_size=5)
    assert snapshot.resource_status("servers") == "partial"
    assert len(records(snapshot, "servers")) == 5


def test_truncated_project_list_is_not_taken_as_complete(clouds_yaml, fake_cloud):
    fake_cloud.cloud["keystone_list_limit"] = 2
    snapshot = collect()
    assert snapshot.resource_status("projects") == "partial"
    assert "truncated" in snapshot.failures[0].message


def test_partial_snapshot_exits_non_zero_with_a_summary(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"^/network/", status=503)
    database = tmp_path / "audit.duckdb"
    config = tmp_path / "auditor.toml"
    config.write_text("[collection]\nretries = 0\n")
    done = run_cli("--config", str(config), "--database", str(database), "snapshot", "--cloud", "demo",
                   env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)})
    assert done.returncode == 1, done.stderr
    assert "partial" in done.stdout
    assert "ports" in done.stderr and "503" in done.stderr
    assert query(database, "SELECT status FROM snapshots") == [("partial",)]


def test_wrong_password_is_a_clear_error_recorded_as_a_failed_snapshot(fake_cloud, tmp_path):
    from conftest import write_clouds_yaml

    entry = fake_cloud.clouds_yaml_entry()
    entry["auth"]["password"] = "Wr0ng-pa55word-canary"
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": entry})
    database = tmp_path / "audit.duckdb"
    done = run_cli("--database", str(database), "-vv", "snapshot", "--cloud", "demo",
                   env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 3
    assert "authentication failed" in done.stderr and "'demo'" in done.stderr
    assert "Wr0ng-pa55word-canary" not in done.stderr + done.stdout
    [(status, errors)] = query(database, "SELECT status, error_count FROM snapshots")
    assert (status, errors) == ("failed", 1)
    [(kind, message)] = query(database, "SELECT resource_type, message FROM collection_errors")
    assert kind == "snapshot" and "authentication failed" in message
    assert b"Wr0ng-pa55word-canary" not in database.read_bytes()


def test_unknown_cloud_is_a_clear_error_and_writes_nothing(clouds_yaml, tmp_path):
    database = tmp_path / "audit.duckdb"
    done = run_cli("--database", str(database), "snapshot", "--cloud", "nosuchcloud",
                   env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)})
    assert done.returncode == 3
    assert "'nosuchcloud' is not defined" in done.stderr
    assert not database.exists()


def test_records_without_an_id_are_reported_not_dropped_silently(tmp_path, monkeypatch, demo_fixture):
    import copy

    from conftest import snapshot_of

    fixture = copy.deepcopy(demo_fixture)
    del fixture["ports"][0]["id"]
    database, result = snapshot_of(fixture, tmp_path, monkeypatch)
    assert result.status == "partial"
    assert query(database, "SELECT resource_type, message FROM collection_errors") == [
        ("ports", "1 records without an id were not stored")]
    assert query(database, "SELECT status, row_count FROM snapshot_resources WHERE resource_type = 'ports'") == [
        ("partial", len(fixture["ports"]) - 1)]


@pytest.mark.parametrize("body", [b'{"servers": {}}', b'{"servers": "none"}', b'{"other": []}', b'[1, 2]'])
def test_a_page_without_a_list_of_records_is_refused(body):
    from auditor.collect.pages import inspect_page

    with pytest.raises(ValueError, match="no list under 'servers'"):
        inspect_page(body, "servers", "servers_links")


def test_an_empty_page_and_a_next_link_are_read():
    from auditor.collect.pages import inspect_page

    assert inspect_page(b'{"servers": []}', "servers", "servers_links").count == 0
    info = inspect_page(b'{"servers": [{"id": "a"}], "servers_links": [{"rel": "next", "href": "h?marker=a"}]}',
                        "servers", "servers_links")
    assert (info.count, info.links) == (1, [{"rel": "next", "href": "h?marker=a"}])
