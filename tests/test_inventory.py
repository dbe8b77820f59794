"""`auditor inventory`: one row per instance with its normalized instance type, image, zone, groups and
addresses, read back from real snapshots of the fake cloud over HTTP."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import datetime

import pytest
from conftest import query, run_cli, served_snapshot, snapshot_of, write_clouds_yaml, write_config

from auditor.fakecloud import FakeCloud
from auditor.store.inventory import COLUMNS, InventoryFilter, list_inventory


def _inventory(config, *args) -> list[dict]:
    done = run_cli("--config", str(config), "inventory", "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def judged(demo_fixture, tmp_path_factory):
    """The demo cloud with one image deleted, snapshotted and evaluated by `auditor run`."""
    folder = tmp_path_factory.mktemp("inventory")
    fixture = copy.deepcopy(demo_fixture)
    counts: dict[str, int] = {}
    for server in fixture["servers"]:
        if isinstance(server.get("image"), dict):
            counts[server["image"]["id"]] = counts.get(server["image"]["id"], 0) + 1
    gone = min(counts, key=lambda image_id: (counts[image_id], image_id))
    fixture["images"] = [i for i in fixture["images"] if i["id"] != gone]
    with FakeCloud(fixture) as cloud:
        clouds = write_clouds_yaml(folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        config = write_config(folder / "auditor.toml")
        done = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo", cwd=folder,
                       env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
        assert done.returncode == 0, done.stderr
    return {"config": config, "database": folder / "audit.duckdb", "fixture": fixture, "gone": gone}


def test_every_server_is_listed_with_its_type_image_groups_and_addresses(judged):
    rows = _inventory(judged["config"])
    database = judged["database"]
    assert [tuple(r) for r in rows] == [COLUMNS] * len(rows)
    assert sorted(r["id"] for r in rows) == sorted(s["id"] for s in judged["fixture"]["servers"])
    types = dict(query(database, "SELECT server_id, instance_type FROM server_instance_types WHERE snapshot_id = 1"))
    assert {r["id"]: r["instance_type"] for r in rows} == types
    by_name = {r["name"]: r for r in rows}
    bastion = by_name["bastion-01"]
    assert bastion["floating_addresses"] == ["203.0.113.25"] and "ssh-bastion" in bastion["security_groups"]
    assert bastion["fixed_addresses"] and "203.0.113.25" not in bastion["fixed_addresses"]
    assert bastion["project"] == "storefront" and bastion["cloud"] == "demo" and bastion["region"] == "RegionOne"
    started = query(database, "SELECT started_at FROM snapshots WHERE id = 1")[0][0]
    assert {datetime.fromisoformat(r["first_seen"]) for r in rows} == {started}

    states = {r["image_state"] for r in rows}
    assert states == {"listed", "gone", "volume"}
    for row in rows:
        if row["image_state"] == "gone":
            assert row["image_id"] == judged["gone"] and row["image"] is None
        elif row["image_state"] == "volume":
            assert row["image_id"] is None and row["image"] is None
        else:
            assert row["image"]


def test_filters_and_counts_agree_with_the_list(judged):
    config, rows = judged["config"], _inventory(judged["config"])
    unmapped = _inventory(config, "--unmapped")
    assert unmapped and [r["id"] for r in unmapped] == [r["id"] for r in rows if r["instance_type"] is None]
    some_type = next(r["instance_type"] for r in rows if r["instance_type"])
    assert {r["id"] for r in _inventory(config, "--instance-type", some_type)} == {
        r["id"] for r in rows if r["instance_type"] == some_type}
    project = rows[0]
    for value in (project["project"], project["project_id"]):
        assert {r["id"] for r in _inventory(config, "--project", value)} == {
            r["id"] for r in rows if r["project_id"] == project["project_id"]}
    assert {r["id"] for r in _inventory(config, "--zone", "az-2", "--project", project["project"])} == {
        r["id"] for r in rows if r["availability_zone"] == "az-2" and r["project"] == project["project"]}

    counts = {r["instance_type"]: r["servers"] for r in _inventory(config, "--by", "instance_type")}
    assert sum(counts.values()) == len(rows) and counts["(unmapped)"] == len(unmapped)
    images = {r["image"]: r["servers"] for r in _inventory(config, "--by", "image")}
    assert images["(gone)"] == sum(r["image_state"] == "gone" for r in rows) > 0
    zones = {r["zone"]: r["servers"] for r in _inventory(config, "--by", "zone", "--unmapped")}
    assert sum(zones.values()) == len(unmapped)


def test_table_says_why_a_type_or_image_is_missing_and_csv_keeps_every_column(judged):
    table = run_cli("--config", str(judged["config"]), "inventory")
    assert table.returncode == 0, table.stderr
    assert "(unmapped)" in table.stdout and "(gone)" in table.stdout and "(volume)" in table.stdout
    assert table.stdout.splitlines()[0].split()[:4] == ["cloud", "region", "project", "name"]
    done = run_cli("--config", str(judged["config"]), "inventory", "--format", "csv", "--limit", "3")
    reader = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(reader) == 3 and tuple(reader[0]) == COLUMNS


def test_hostile_names_stay_text_in_every_format(demo_fixture, tmp_path, monkeypatch):
    fixture = copy.deepcopy(demo_fixture)
    fixture["servers"][0]["name"] = "=HYPERLINK(\"http://evil\")\x1b[2J"
    database, result = snapshot_of(fixture, tmp_path, monkeypatch)
    assert result.status == "complete"
    columns, rows = list_inventory(database, InventoryFilter())
    assert fixture["servers"][0]["name"] in {r[columns.index("name")] for r in rows}
    config = write_config(tmp_path / "auditor.toml")
    as_csv = run_cli("--config", str(config), "inventory", "--format", "csv").stdout
    assert "'=HYPERLINK" in as_csv
    as_table = run_cli("--config", str(config), "inventory").stdout
    assert "\x1b" not in as_table and "\\x1b[2J" in as_table


def test_first_seen_is_the_oldest_snapshot_that_held_the_server(demo_fixture, tmp_path, monkeypatch):
    database, first = snapshot_of(demo_fixture, tmp_path, monkeypatch)
    later = copy.deepcopy(demo_fixture)
    newcomer = copy.deepcopy(later["servers"][0])
    newcomer["id"], newcomer["name"] = "0b9c9f0e-0000-4000-8000-00000000new1", "newcomer-01"
    later["servers"].append(newcomer)
    database, second = snapshot_of(later, tmp_path, monkeypatch)
    assert (first.status, second.status) == ("complete", "complete")
    started = dict(query(database, "SELECT id, started_at FROM snapshots"))
    columns, rows = list_inventory(database, InventoryFilter())
    seen = {row[columns.index("name")]: row[columns.index("first_seen")] for row in rows}
    assert seen.pop("newcomer-01") == started[second.snapshot_id]
    assert set(seen.values()) == {started[first.snapshot_id]}
    # the older snapshot's own inventory never says "first seen" later than itself
    columns, rows = list_inventory(database, InventoryFilter(snapshot=str(first.snapshot_id)))
    assert {row[columns.index("first_seen")] for row in rows} == {started[first.snapshot_id]}


def test_an_image_missing_from_a_failed_listing_is_unknown_not_gone(demo_fixture, tmp_path, monkeypatch):
    database, result, listed, _ = served_snapshot(
        demo_fixture, tmp_path, monkeypatch, asked="/image/",
        faults=[{"path": r"^/image/v2/images", "status": 500}])
    assert listed["images"].startswith("failed")
    columns, rows = list_inventory(database, InventoryFilter(snapshot=str(result.snapshot_id)))
    assert {row[columns.index("image_state")] for row in rows} == {"unknown", "volume"}


def test_filtering_on_types_needs_an_evaluation_and_bad_options_get_one_line(demo_fixture, tmp_path, monkeypatch):
    database, result = snapshot_of(demo_fixture, tmp_path, monkeypatch)
    config = write_config(tmp_path / "auditor.toml")
    listed = run_cli("--config", str(config), "inventory", "--format", "json")
    assert listed.returncode == 0 and all(r["instance_type"] is None for r in json.loads(listed.stdout))
    for args, expected in [
        (["--unmapped"], f"snapshot {result.snapshot_id} has not been evaluated"),
        (["--instance-type", "general.small"], f"auditor evaluate --snapshot {result.snapshot_id}"),
        (["--snapshot", "99"], "no snapshot with id 99"),
        (["--snapshot", "newest"], "--snapshot must be a snapshot id or 'latest'"),
        (["--unmapped", "--instance-type", "x"], "exclude each other"),
        (["--by", "colour"], "--by"),
    ]:
        done = run_cli("--config", str(config), "inventory", *args)
        assert done.returncode != 0 and expected in done.stderr, (args, done.stderr)
        assert not done.stdout


def test_a_snapshot_evaluated_without_a_mapping_says_so(demo_fixture, tmp_path, monkeypatch):
    database, result = snapshot_of(demo_fixture, tmp_path, monkeypatch)
    empty = tmp_path / "types.yaml"
    empty.write_text("instance_types: []\n", encoding="utf-8")
    config = write_config(tmp_path / "auditor.toml", f'[rules]\ninstance_types = "{empty}"\n')
    evaluated = run_cli("--config", str(config), "evaluate")
    assert evaluated.returncode == 0, evaluated.stderr
    done = run_cli("--config", str(config), "inventory", "--unmapped")
    assert done.returncode != 0 and "without an instance-type mapping" in done.stderr
    assert "(no mapping)" in run_cli("--config", str(config), "inventory").stdout
