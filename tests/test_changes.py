"""What changed between two snapshots: `auditor changes`, the `changes()` macro and `latest_changes`, on
real snapshots of the fake cloud over HTTP."""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest
from conftest import copy_store, query, rewrite_rows, run_cli, served_snapshot, snapshot_of, write_config

from auditor.store.changes import COLUMNS
from auditor.store.tables import RESOURCE_TABLES


def _changed(fixture: dict) -> tuple[dict, dict]:
    """The demo cloud a day later: one server renamed, one stopped, one deleted, one added, an ingress
    rule opened, a group's description changed, a container filled with objects (a usage counter only)."""
    later = copy.deepcopy(fixture)
    servers = later["servers"]
    facts = {"renamed": (servers[0]["id"], servers[0]["name"]), "stopped": servers[1]["id"],
             "deleted": servers[2]["id"]}
    servers[0]["name"] = "renamed-01"
    servers[1]["status"] = "SHUTOFF"
    del servers[2]
    added = copy.deepcopy(servers[3])
    added["id"], added["name"] = "6c1d3b0e-0000-4000-8000-0000000added", "added-01"
    servers.append(added)
    facts["added"] = added["id"]
    # the same resources listed in another order are not changes
    by_name = {s["name"]: s for s in servers}
    quiet = by_name["etl-worker-01"]  # three metadata keys
    assert len(quiet["metadata"]) > 1
    quiet["metadata"] = dict(reversed(list(quiet["metadata"].items())))
    routed = by_name["nfv-router-01"]  # two networks
    assert len(routed["addresses"]) > 1
    routed["addresses"] = {net: list(reversed(entries)) for net, entries in reversed(list(routed["addresses"].items()))}
    facts["routed"] = routed["id"]
    # a tenant's metadata key that reads like a JSON path is a key like any other
    tagged = by_name["analytics-db-1"]
    tagged["metadata"] = {**tagged["metadata"], "$role": "primary", "/x": "1"}
    facts["tagged"] = tagged["id"]
    for port in later["ports"]:
        port["security_groups"] = list(reversed(port.get("security_groups") or []))
        port["fixed_ips"] = list(reversed(port.get("fixed_ips") or []))
    for server_group in later.get("server_groups", []):
        server_group["members"] = list(reversed(server_group.get("members") or []))
    facts["quiet"] = quiet["id"]
    group = later["security_groups"][0]
    group["description"] = "now with a story"
    rule = copy.deepcopy(group["security_group_rules"][0])
    rule.update(id="6c1d3b0e-0000-4000-8000-00000000rule", direction="ingress", protocol="tcp",
                port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0", remote_group_id=None)
    group["security_group_rules"].append(rule)
    facts["rule"], facts["group"] = rule["id"], group["id"]
    if later.get("containers"):
        container = later["containers"][0]
        for key in ("count", "object_count"):
            if key in container:
                container[key] = container[key] + 1000
        for key in ("bytes", "bytes_used"):
            if key in container:
                container[key] = container[key] + 10**9
    return later, facts


@pytest.fixture(scope="module")
def two_snapshots(demo_fixture, tmp_path_factory):
    folder = tmp_path_factory.mktemp("changes")
    with pytest.MonkeyPatch.context() as monkeypatch:
        database, first = snapshot_of(demo_fixture, folder, monkeypatch)
        later, facts = _changed(demo_fixture)
        database, second = snapshot_of(later, folder, monkeypatch)
    assert (first.status, second.status) == ("complete", "complete")
    return {"database": database, "config": write_config(folder / "auditor.toml"), "facts": facts,
            "ids": (first.snapshot_id, second.snapshot_id)}


def _json(config, *args) -> list[dict]:
    done = run_cli("--config", str(config), "changes", "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_added_removed_and_modified_resources_with_old_and_new_values(two_snapshots):
    facts = two_snapshots["facts"]
    records = _json(two_snapshots["config"])
    assert all(tuple(r)[:6] == COLUMNS for r in records)
    assert {(r["cloud"], r["region"]) for r in records} == {("demo", "RegionOne")}
    servers = {r["resource_id"]: r for r in records if r["resource_type"] == "servers"}
    assert servers[facts["added"]]["change"] == "added" and servers[facts["added"]]["fields"] is None
    assert servers[facts["deleted"]]["change"] == "removed"
    renamed_id, old_name = facts["renamed"]
    assert servers[renamed_id]["fields"] == {"name": [old_name, "renamed-01"]}
    assert servers[renamed_id]["resource_name"] == "renamed-01"
    assert servers[facts["stopped"]]["fields"] == {"status": ["ACTIVE", "SHUTOFF"]}
    assert facts["quiet"] not in servers and facts["routed"] not in servers
    old_metadata, new_metadata = servers[facts["tagged"]]["fields"]["metadata"]
    assert new_metadata == {**old_metadata, "$role": "primary", "/x": "1"}
    assert len(servers) == 5
    assert not [r for r in records if r["resource_type"] in ("ports", "server_groups")]
    rules = {r["resource_id"]: r for r in records if r["resource_type"] == "security_group_rules"}
    assert rules[facts["rule"]]["change"] == "added"
    groups = {r["resource_id"]: r for r in records if r["resource_type"] == "security_groups"}
    assert groups[facts["group"]]["fields"]["description"][1] == "now with a story"
    # a container's usage counters are not changes; a server that only moved in the listing is not either
    assert not [r for r in records if r["resource_type"] == "containers"]
    assert {r["resource_type"] for r in records} <= set(RESOURCE_TABLES)


def test_the_sql_macro_and_the_latest_view_say_the_same(two_snapshots):
    database, (first, second) = two_snapshots["database"], two_snapshots["ids"]
    command = {(r["resource_type"], r["resource_id"], r["change"]) for r in _json(two_snapshots["config"])}
    macro = set(query(database, "SELECT resource_type, resource_id, change FROM changes(?, ?)", [first, second]))
    latest = set(query(database, "SELECT resource_type, resource_id, change FROM latest_changes"))
    assert command == macro == latest and command
    assert query(database, "SELECT DISTINCT from_snapshot_id, to_snapshot_id FROM latest_changes") == [(first, second)]
    # the other way round, what was added is removed
    backwards = dict(((t, i), c) for t, i, c in query(
        database, "SELECT resource_type, resource_id, change FROM changes(?, ?)", [second, first]))
    for resource_type, resource_id, change in command:
        assert backwards[(resource_type, resource_id)] == {"added": "removed", "removed": "added"}.get(change, change)
    assert query(database, "SELECT count(*) FROM changes(?, ?)", [first, first]) == [(0,)]


def test_the_documented_queries_answer(two_snapshots):
    from test_evaluate import _documented_queries

    database = two_snapshots["database"]
    examples = _documented_queries()
    week = {(r[2], r[3]): r[4] for r in query(database, examples["what changed this week"])}
    assert week[("servers", "added")] == 1 and week[("servers", "modified")] == 3
    opened = query(database, examples["ingress rules opened since the previous snapshot"])
    assert [(r[2], r[3], r[5]) for r in opened] == [("tcp", 22, "0.0.0.0/0")]


def test_type_filter_formats_and_bad_options(two_snapshots):
    config, (first, second) = two_snapshots["config"], two_snapshots["ids"]
    servers = _json(config, "--type", "servers", "--from", str(first), "--to", str(second))
    assert {r["resource_type"] for r in servers} == {"servers"} and len(servers) == 5
    table = run_cli("--config", str(config), "changes").stdout
    assert f"snapshot {first} -> {second}" in table and "servers: 1 added, 1 removed, 3 modified" in table
    assert "status: ACTIVE -> SHUTOFF" in table
    rows = list(csv.DictReader(io.StringIO(run_cli("--config", str(config), "changes", "--format", "csv").stdout)))
    assert tuple(rows[0])[:6] == COLUMNS and len(rows) == len(_json(config))
    assert {(r["from_snapshot_id"], r["to_snapshot_id"]) for r in rows} == {(str(first), str(second))}
    for args, expected in [
        (["--type", "serverz"], "--type: unknown resource table 'serverz'"),
        (["--to", "99"], "--to: no snapshot with id 99"),
        (["--from", str(first)], "--from needs --to"),
        (["--to", str(first)], f"snapshot {first} (demo/RegionOne) has no complete cloud-scope snapshot before it"),
    ]:
        done = run_cli("--config", str(config), "changes", *args)
        assert done.returncode != 0 and expected in done.stderr, (args, done.stderr)


def test_snapshots_of_different_clouds_are_not_compared(two_snapshots, tmp_path):
    database = tmp_path / "audit.duckdb"
    copy_store(two_snapshots["database"], database)
    first, second = two_snapshots["ids"]
    rewrite_rows(database, "snapshots", "cloud = 'other'", "id = ?", [second])
    config = write_config(tmp_path / "auditor.toml")
    done = run_cli("--config", str(config), "changes", "--from", str(first), "--to", str(second))
    assert done.returncode != 0 and "same cloud and region" in done.stderr
    # by default each cloud/region is compared with its own past; neither has one here
    done = run_cli("--config", str(config), "changes")
    assert done.returncode != 0 and f"snapshot {first} (demo/RegionOne) has no complete cloud-scope snapshot" in done.stderr
    assert f"snapshot {second} (other/RegionOne) has no complete cloud-scope snapshot" in done.stderr


def test_a_listing_missing_from_either_snapshot_is_not_compared(demo_fixture, tmp_path, monkeypatch):
    database, first = snapshot_of(demo_fixture, tmp_path, monkeypatch)
    later = copy.deepcopy(demo_fixture)
    later["servers"][0]["name"] = "renamed-01"
    database, second, _, _ = served_snapshot(later, tmp_path, monkeypatch, asked="/image/",
                                             faults=[{"path": r"^/image/v2/images", "status": 500}])
    # (served_snapshot's summary mixes both snapshots' rows: ask for the second's)
    assert query(database, "SELECT status FROM snapshot_resources WHERE snapshot_id = ? AND resource_type = 'images'",
                 [second.snapshot_id]) == [("failed",)] and second.status == "partial"
    config = write_config(tmp_path / "auditor.toml")
    done = run_cli("--config", str(config), "changes", "--to", str(second.snapshot_id), "--format", "json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert {r["resource_type"] for r in records} == {"servers"}  # not every image "removed"
    assert f"images not compared: the images listing of snapshot {second.snapshot_id} is failed" in done.stderr
    assert query(database, "SELECT count(*) FROM changes(?, ?) WHERE resource_type LIKE 'image%'",
                 [first.snapshot_id, second.snapshot_id]) == [(0,)]


def test_tenant_text_cannot_repaint_the_terminal(demo_fixture, tmp_path, monkeypatch):
    database, _first = snapshot_of(demo_fixture, tmp_path, monkeypatch)
    later = copy.deepcopy(demo_fixture)
    later["servers"][0]["name"] = "evil\x1b[2J\u202e"
    snapshot_of(later, tmp_path, monkeypatch)
    table = run_cli("--config", str(write_config(tmp_path / "auditor.toml")), "changes").stdout
    assert "\x1b" not in table and "\u202e" not in table and "\\x1b[2J" in table
