"""The snapshot store: one transaction per snapshot, the published copy, the documented schema."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, query, rewrite_rows, run_cli, snapshot_into, write_clouds_yaml, write_config

from auditor.fakecloud import FakeCloud, generate_cloud
from auditor.store.database import lake_path


def _documented_tables() -> dict[str, dict[str, str]]:
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    tables, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"^### (\w+)\s*$", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        row = re.match(r"^\| (\w+) \| ([A-Z\[\]]+) \|", line)
        if row and current is not None:
            current[row.group(1)] = row.group(2)
    return tables


def test_schema_document_and_database_agree(clouds_yaml, tmp_path):
    database = tmp_path / "audit.duckdb"
    snapshot_into(database)
    documented = _documented_tables()
    actual: dict[str, dict[str, str]] = {}
    for table, column, kind in query(
        database,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_name IN (SELECT unnest(?)) ORDER BY table_name, ordinal_position", [list(documented)],
    ):
        actual.setdefault(table, {})[column] = kind
    assert documented == actual
    views = {r[0] for r in query(database, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert "latest_snapshots" in views and "`latest_<table>`" in text
    for view in {v for v in views if v.startswith("latest_")} - {"latest_snapshots"}:
        base = view.removeprefix("latest_")  # a table, or a documented view or macro of its own
        assert base in actual or (base in views and f"| `{base}` |" in text) or f"| `{base}(" in text, view


def test_every_text_column_is_free_of_demo_secrets(clouds_yaml, tmp_path, demo_fixture):
    database = tmp_path / "audit.duckdb"
    snapshot_into(database)
    secrets = ["hunter2", "ghp_", demo_fixture["cloud"]["users"][0]["password"]]
    secrets += [c["secret"] for c in demo_fixture["cloud"].get("application_credentials", [])]
    secrets += [value for c in demo_fixture["containers"] for key, value in c["_headers"].items()
                if key in ("X-Container-Sync-Key", "X-Container-Meta-Temp-Url-Key", "X-Container-Meta-Db-Password")]
    assert len(secrets) >= 7
    columns = query(database, "SELECT table_name, list(column_name) FROM information_schema.columns "
                              "WHERE data_type IN ('VARCHAR', 'JSON', 'VARCHAR[]') AND table_name NOT LIKE 'latest%' "
                              "GROUP BY table_name")  # a latest_ view shows rows of its table
    assert sum(len(names) for _, names in columns) > 50
    con = duckdb.connect(str(database), read_only=True)
    try:  # one query per table: a UNION of every column of every view took a minute to plan
        for table, names in columns:
            every_text = " UNION ALL ".join(f"SELECT '{table}.{name}' AS place, CAST(\"{name}\" AS VARCHAR) AS text "
                                            f"FROM t" for name in names)
            hits = con.execute(f"WITH t AS MATERIALIZED (SELECT * FROM \"{table}\") SELECT DISTINCT place, secret "
                               f"FROM ({every_text}), unnest(?::VARCHAR[]) AS s(secret) WHERE contains(text, secret)",
                               [secrets]).fetchall()
            assert hits == [], f"secrets found: {hits}"
    finally:
        con.close()
    assert query(database, "SELECT count(*) FROM servers WHERE metadata->>'db_password' = '[REDACTED]'")[0][0] == 1


def test_secret_keys_in_metadata_and_image_properties_are_masked_not_dropped(tmp_path, demo_fixture, monkeypatch):
    """A password in metadata is itself a finding: its key stays, its value never reaches the database."""
    import copy

    from auditor.redact import CANDIDATE_PATTERN, DROPPED_KEYS

    assert all(re.search(CANDIDATE_PATTERN.replace("(?i)", ""), key, re.IGNORECASE) for key in DROPPED_KEYS)
    fixture = copy.deepcopy(demo_fixture)
    server = next(s for s in fixture["servers"] if s["name"] == "shop-frontend-2")
    server["metadata"].update(password="plain-pw-1", user_data="I2Nsb3VkLWNvbmZpZyBwdzE=")
    image = next(i for i in fixture["images"] if i["name"] == "debian-12-genericcloud")
    image.update(password="img-pw-2", user_data="I2Nsb3VkLWNvbmZpZyBwdzI=")
    database = tmp_path / "audit.duckdb"
    with FakeCloud(fixture) as cloud:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        snapshot_into(database)
    for secret in ("plain-pw-1", "I2Nsb3VkLWNvbmZpZyBwdzE=", "img-pw-2", "I2Nsb3VkLWNvbmZpZyBwdzI="):
        assert query(database, "SELECT count(*) FROM servers WHERE contains(raw::VARCHAR || metadata::VARCHAR, ?)",
                     [secret]) == [(0,)]
        assert query(database, "SELECT count(*) FROM images WHERE contains(raw::VARCHAR || properties::VARCHAR, ?)",
                     [secret]) == [(0,)]
    assert query(database, "SELECT metadata->>'password', metadata->>'user_data' FROM servers "
                           "WHERE name = 'shop-frontend-2'") == [("[REDACTED]", "[REDACTED]")]
    assert query(database, "SELECT properties->>'password', raw->>'user_data' FROM images "
                           "WHERE name = 'debian-12-genericcloud'") == [("[REDACTED]", "[REDACTED]")]


def test_latest_views_show_the_newest_complete_snapshot(clouds_yaml, fake_cloud, tmp_path):
    database = tmp_path / "audit.duckdb"
    first = snapshot_into(database)[0].snapshot_id
    second = snapshot_into(database)[0].snapshot_id
    fake_cloud.add_fault(r"/servers/detail", status=503)
    third = snapshot_into(database, retries=0)[0]
    assert third.status == "partial"
    assert first < second < third.snapshot_id
    assert query(database, "SELECT id FROM latest_snapshots") == [(second,)]
    assert {r[0] for r in query(database, "SELECT DISTINCT snapshot_id FROM latest_servers")} == {second}
    assert query(database, "SELECT count(*) FROM snapshots")[0][0] == 3


def test_a_reader_holding_the_catalog_never_blocks_the_writer_and_sees_each_new_snapshot(clouds_yaml, tmp_path):
    database = tmp_path / "audit.duckdb"
    snapshot_into(database)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
         f"c = duckdb.connect({str(database)!r}, read_only=True)\n"
         "print(c.execute('select count(*) from snapshots').fetchone()[0], flush=True)\n"
         "sys.stdin.readline()\n"
         "print(c.execute('select count(*) from snapshots').fetchone()[0], flush=True)\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path.parent,
    )
    try:
        assert reader.stdout.readline().strip() == "1"
        [result] = snapshot_into(database)  # must not wait for the reader
        assert result.status == "complete"
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "2"  # the open connection sees the new snapshot
    finally:
        reader.kill()
        reader.wait()


def test_a_process_holding_the_catalog_for_writing_is_named_in_one_line(clouds_yaml, tmp_path):
    database = tmp_path / "audit.duckdb"
    snapshot_into(database)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, time\n"
         f"c = duckdb.connect({str(database)!r})\nprint('held', flush=True)\ntime.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = run_cli("--database", str(database), "snapshots")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 4
    assert "another process holds it open for writing" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="session")
def old_duckdb(tmp_path_factory) -> Path:
    """DuckDB 1.4 from PyPI, installed apart from the project's own DuckDB."""
    cache = REPO / ".venv" / "compat" / "duckdb-1.4"
    if not (cache / "duckdb").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(cache),
                        "duckdb==1.4.4"], check=True)
    return cache


def test_duckdb_1_4_reads_the_catalog_and_its_lake(clouds_yaml, tmp_path, old_duckdb, demo_fixture):
    database = tmp_path / "audit.duckdb"
    snapshot_into(database)
    snapshot_into(database)
    script = ("import duckdb; c = duckdb.connect(__import__('sys').argv[1], read_only=True); "
              "print(duckdb.__version__, c.execute('select count(*) from latest_servers').fetchone()[0])")
    done = subprocess.run([sys.executable, "-S", "-c", script, str(database)], cwd=REPO,  # another folder
                          env={**os.environ, "PYTHONPATH": str(old_duckdb)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    version, servers = done.stdout.split()
    assert version.startswith("1.4.")
    assert int(servers) == len(demo_fixture["servers"])


def test_kill_9_while_writing_leaves_the_database_as_it_was(tmp_path, demo_fixture):
    with FakeCloud(demo_fixture) as demo, FakeCloud(generate_cloud(20000, seed=3)) as big:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": demo.clouds_yaml_entry(),
                                                               "big": big.clouds_yaml_entry()})
        env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
        database = tmp_path / "audit.duckdb"
        assert run_cli("--database", str(database), "snapshot", "--cloud", "demo", env=env).returncode == 0
        before = query(database, "SELECT id, status, server_count FROM snapshots")
        catalog_before = database.read_bytes()

        writer = subprocess.Popen([sys.executable, "-m", "auditor", "--database", str(database), "snapshot",
                                   "--cloud", "big"], env={**os.environ, **env},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        staging = lake_path(database) / "_staging"
        deadline = time.monotonic() + 120
        while not list(staging.glob("snapshot-*/*/part-0.parquet")):  # killed while writing its Parquet files
            assert writer.poll() is None, "the snapshot ended before it wrote a file"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        assert writer.wait() == -signal.SIGKILL, "the writer finished before it could be killed"

    assert query(database, "SELECT id, status, server_count FROM snapshots") == before
    for table in ("servers", "ports", "security_group_rules", "snapshot_resources", "collection_errors"):
        ids = {r[0] for r in query(database, f"SELECT DISTINCT snapshot_id FROM {table}")}
        assert ids <= {before[0][0]}, table
    assert database.read_bytes() == catalog_before
    # what the killed writer left (its staging folder, its spooled pages) is removed by the next run
    assert list(staging.iterdir()) and list(tmp_path.glob(".auditor-spool-*"))
    with FakeCloud(demo_fixture) as demo:
        write_clouds_yaml(clouds, {"demo": demo.clouds_yaml_entry()})
        assert run_cli("--database", str(database), "snapshot", "--cloud", "demo", env=env).returncode == 0
    assert not list(tmp_path.glob(".auditor-spool-*")) and list(staging.iterdir()) == []
    assert [r[1] for r in query(database, "SELECT id, status FROM snapshots ORDER BY id")] == ["complete"] * 2


_HELD_OPEN_READER = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for _ in sys.stdin:
    snapshots = [r[0] for r in con.execute("select id from snapshots order by id").fetchall()]
    evaluations = [r[0] for r in con.execute("select id from evaluations order by id").fetchall()]
    servers = con.execute("select count(*) from servers").fetchall()[0][0]
    print(json.dumps([duckdb.__version__, snapshots, evaluations, servers]), flush=True)
"""


def test_a_duckdb_1_4_reader_held_open_sees_runs_appear_and_a_pruned_snapshot_go(clouds_yaml, tmp_path, old_duckdb,
                                                                                  demo_fixture):
    """The issue's promise to auditors: a DuckDB 1.4 process, started from another folder, keeps the catalog
    open while snapshots, evaluations and a prune run; none of them waits on it, and it sees each change."""
    config = write_config(tmp_path / "auditor.toml", "[retention]\nkeep_all_days = 1\ndaily_days = 0\n")

    def auditor(*args):
        done = run_cli("--config", str(config), *args, cwd=tmp_path, timeout=120)  # never waits on the reader
        assert done.returncode == 0, (args, done.stderr)

    auditor("snapshot", "--cloud", "demo")
    reader = subprocess.Popen([sys.executable, "-S", "-c", _HELD_OPEN_READER, str(tmp_path / "audit.duckdb")],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(old_duckdb)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def seen():
        reader.stdin.write("\n")
        reader.stdin.flush()
        return json.loads(reader.stdout.readline())

    servers = len(demo_fixture["servers"])
    try:
        version, *state = seen()
        assert version.startswith("1.4.") and state == [[1], [], servers]
        auditor("snapshot", "--cloud", "demo")
        auditor("snapshot", "--cloud", "demo")
        assert seen()[1:] == [[1, 2, 3], [], 3 * servers]
        auditor("evaluate", "--snapshot", "2")
        auditor("evaluate")  # the newest: snapshot 3
        assert seen()[1:] == [[1, 2, 3], [1, 2], 3 * servers]
        rewrite_rows(tmp_path / "audit.duckdb", "snapshots", "started_at = started_at - INTERVAL 30 DAY",
                     "id IN (1, 2)")  # a month old: the weekly tier keeps one of them, snapshot 2 (evaluated)
        auditor("prune")
        assert seen()[1:] == [[2, 3], [1, 2], 2 * servers]
    finally:
        reader.kill()
        reader.wait()
