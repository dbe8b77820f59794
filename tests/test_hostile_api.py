"""An API that misbehaves (a bug, or a hostile proxy) can make a snapshot partial, never endless or wrong:
every paginator stops on a repeated marker or page, a page cap and a deadline; oversized answers, wrong JSON
types and duplicate records are collection errors."""

from __future__ import annotations

import copy
import time

import pytest
from conftest import collect, query, records, snapshot_into, snapshot_of, write_clouds_yaml

from auditor.fakecloud import FakeCloud


def _errors(database, snapshot_id, resource_type=None):
    return [m for (m,) in query(database, "SELECT message FROM collection_errors WHERE snapshot_id = ? "
                                          "AND (? IS NULL OR resource_type = ?) ORDER BY ALL",
                                [snapshot_id, resource_type, resource_type])]


def test_glance_next_link_repeating_its_marker_stops_the_listing(clouds_yaml, fake_cloud, demo_fixture):
    fake_cloud.add_fault(r"^/image/v2/images\?.*marker=", paging="repeat_marker")
    snapshot = collect(page_size=2)
    assert snapshot.resource_status("images") == "partial"
    [failure] = [f for f in snapshot.failures if f.resource_type == "images"]
    assert "pagination loops" in failure.message and "repeats marker" in failure.message
    # both pages were kept; the loop was seen in the second page's next link, before a third request
    assert len(fake_cloud.requests_to(r"^/image/v2/images")) == 2
    assert len(records(snapshot, "images")) == 4
    assert snapshot.resource_status("servers") == "complete"


def test_nova_next_link_repeating_its_marker_stops_the_listing(clouds_yaml, fake_cloud):
    fake_cloud.add_fault(r"/servers/detail\?.*marker=", paging="repeat_marker")
    snapshot = collect(page_size=3)
    assert snapshot.resource_status("servers") == "partial"
    assert any("pagination loops" in f.message for f in snapshot.failures)


def test_endless_pages_stop_at_the_page_cap(clouds_yaml, fake_cloud):
    fake_cloud.add_fault(r"/servers/detail", paging="endless")
    snapshot = collect(page_size=10, max_pages=5)
    assert snapshot.resource_status("servers") == "partial"
    [failure] = [f for f in snapshot.failures if f.resource_type == "servers"]
    assert "more than 5 pages ([collection] max_pages)" in failure.message
    assert len(fake_cloud.requests_to(r"/servers/detail")) == 5
    assert len(records(snapshot, "servers")) == 50


def test_endless_pages_stop_at_the_snapshot_deadline(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"/servers/detail", paging="endless", latency=0.2)
    database = tmp_path / "audit.duckdb"
    started = time.monotonic()
    [result] = snapshot_into(database, page_size=10, deadline=1.5)
    took = time.monotonic() - started
    assert result.status == "partial"
    [message] = _errors(database, result.snapshot_id, "servers")
    assert "deadline of 1.5 s ([collection] deadline) was reached; stopped after" in message
    assert took < 1.5 + 5.0 + 3  # the deadline, at most one request timeout, and the write
    # everything that was not endless finished and is complete
    status = dict(query(database, "SELECT resource_type, status FROM snapshot_resources"))
    assert status["ports"] == "complete" and status["servers"] == "partial"


def test_server_groups_ignoring_offset_stop_at_the_first_repeat(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    template = fixture["server_groups"][0]
    fixture["server_groups"] = [dict(template, id=f"{i:032x}", name=f"group-{i}") for i in range(6)]
    with FakeCloud(fixture) as cloud:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        cloud.add_fault(r"/os-server-groups", paging="ignore_offset")
        database = tmp_path / "audit.duckdb"
        [result] = snapshot_into(database, page_size=2)
        assert len(cloud.requests_to(r"/os-server-groups")) == 2
    assert result.status == "partial"
    [message] = _errors(database, result.snapshot_id, "server_groups")
    assert "page 2 repeats records already listed (2 of its 2" in message
    assert query(database, "SELECT count(*), count(DISTINCT id) FROM server_groups") == [(2, 2)]


def test_a_repeated_page_under_a_new_marker_is_dropped_and_rules_skip(clouds_yaml, fake_cloud, tmp_path,
                                                                        demo_fixture):
    from auditor.config import RulesSettings
    from auditor.rules.evaluate import evaluate, load_ruleset

    fake_cloud.add_fault(r"/servers/detail\?.*marker=", paging="repeat_page", times=1)
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database, page_size=4)
    assert result.status == "partial"
    [message] = _errors(database, result.snapshot_id, "servers")
    assert "page 2 repeats records already listed (4 of its 4" in message
    assert query(database, "SELECT count(*), count(DISTINCT id) FROM servers") == [(4, 4)]
    [evaluation] = evaluate(database, load_ruleset(RulesSettings()), [result.snapshot_id])
    assert evaluation.rule_errors == []  # no server judged twice
    skipped = query(database, "SELECT count(*) FROM findings WHERE rule_id = 'server_has_security_group' "
                              "AND status = 'skip'")[0][0]
    assert skipped >= 1  # missing servers are never a pass


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_over_the_size_limit_is_a_listing_error(clouds_yaml, fake_cloud, chunked):
    fake_cloud.add_fault(r"/flavors/detail", oversize=3 * 2**20, chunked=chunked)
    snapshot = collect(max_response_mb=1)
    assert snapshot.resource_status("flavors") == "failed"
    [failure] = [f for f in snapshot.failures if f.resource_type == "flavors"]
    assert "response larger than 1 MB ([collection] max_response_mb)" in failure.message
    assert snapshot.resource_status("servers") == "complete"


def test_a_chunked_answer_under_the_limit_is_read(clouds_yaml, fake_cloud, demo_fixture):
    fake_cloud.add_fault(r"/servers/detail", chunked=True)
    snapshot = collect()
    assert snapshot.status == "complete", snapshot.failures
    assert len(records(snapshot, "servers")) == len(demo_fixture["servers"])


@pytest.mark.parametrize("path, patch, table, field, column", [
    (r"/network/v2\.0/ports", {"id": 123}, "ports", "'id'", None),
    (r"/servers/detail", {"name": ["a", "list"]}, "servers", "'name'", "name"),
    (r"/network/v2\.0/security-groups", {"stateful": "yes"}, "security_groups", "'stateful'", "stateful"),
    (r"/servers/detail", {"flavor": {"original_name": "m1", "vcpus": "eight"}}, "servers", "'flavor.vcpus'",
     "flavor_vcpus"),
    (r"/servers/detail", {"security_groups": ["default"]}, "servers", "'security_groups entries'",
     "security_group_names"),
    (r"/servers/detail", {"metadata": "a string"}, "servers", "'metadata'", "metadata"),
    (r"/servers/detail", {"OS-EXT-STS:power_state": 1.5}, "servers", "'OS-EXT-STS:power_state'", "power_state"),
], ids=["integer-id", "list-as-name", "string-as-boolean", "nested", "list-entries", "json-field",
        "fraction-as-integer"])
def test_wrong_json_types_are_collection_errors_and_stored_as_null(clouds_yaml, fake_cloud, tmp_path, path, patch,
                                                                     table, field, column):
    fake_cloud.add_fault(path, patch=patch)
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database)
    assert result.status == "partial"
    messages = _errors(database, result.snapshot_id, table)
    assert any(f"{field} of the wrong JSON type" in m and "stored as NULL" in m for m in messages), messages
    assert query(database, "SELECT status FROM snapshot_resources WHERE resource_type = ?", [table]) == [("partial",)]
    if column is None:  # an id of the wrong type: the records cannot be audited and are not stored
        assert query(database, f"SELECT count(*) FROM {table}") == [(0,)]
        assert any("records without an id were not stored" in m for m in messages)
    else:
        values = query(database, f"SELECT DISTINCT {column} FROM {table}")
        assert values == [(None,)]
        # what the API said is still there for auditors
        raw = query(database, f"SELECT raw FROM {table} LIMIT 1")[0][0]
        assert str(list(patch)[0]) in raw


def test_rules_given_as_a_string_are_listed_on_their_own(clouds_yaml, fake_cloud, tmp_path, demo_fixture):
    fake_cloud.add_fault(r"/network/v2\.0/security-groups", patch={"security_group_rules": "none"})
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database)
    expected = sum(len(g["security_group_rules"]) for g in demo_fixture["security_groups"])
    assert query(database, "SELECT count(*) FROM security_group_rules") == [(expected,)]
    assert any("'security_group_rules' of the wrong JSON type" in m
               for m in _errors(database, result.snapshot_id, "security_groups"))


def test_a_record_listed_twice_is_stored_once_and_recorded(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["ports"].append(copy.deepcopy(fixture["ports"][0]))
    database, result = snapshot_of(fixture, tmp_path, monkeypatch)
    assert result.status == "partial"
    assert _errors(database, result.snapshot_id, "ports") == [
        "1 records were listed twice (the same id); each is stored once"]
    assert query(database, "SELECT count(*), count(DISTINCT id) FROM ports") == [(len(fixture["ports"]) - 1,) * 2]


@pytest.mark.parametrize("retry_after", ["86400", "Wed, 21 Oct 2099 07:28:00 GMT"], ids=["seconds", "http-date"])
def test_retry_after_is_capped_at_the_request_timeout(clouds_yaml, fake_cloud, retry_after):
    fake_cloud.add_fault(r"/flavors/detail", status=503, retry_after=retry_after, times=1)
    started = time.monotonic()
    snapshot = collect(retries=2, timeout=1)
    assert snapshot.status == "complete", snapshot.failures
    assert time.monotonic() - started < 8
    assert len(fake_cloud.requests_to(r"/flavors/detail")) == 2


def test_a_wait_that_would_pass_the_deadline_ends_the_listing(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"/flavors/detail", status=503, retry_after=30)
    database = tmp_path / "audit.duckdb"
    started = time.monotonic()
    [result] = snapshot_into(database, retries=3, timeout=60, deadline=2)
    assert time.monotonic() - started < 10
    [message] = _errors(database, result.snapshot_id, "flavors")
    assert "deadline of 2 s" in message
