"""The lake writer (issue 23, step 1): a snapshot's tables as zstd Parquet partitions, staged, then committed
with the manifest last; what a writer killed with SIGKILL leaves is invisible and removed by the next one.
Real parts: the demo cloud over HTTP, real Parquet files read back with DuckDB and pyarrow, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from conftest import collect

from auditor.store import lake as lake_files
from auditor.store.catalog import ensure_catalog, open_catalog
from auditor.store.lake import claim_id, clean_abandoned, committed_ids, partition_file, schema_file, stage
from auditor.store.tables import (
    EVALUATION,
    EVALUATION_TABLES,
    RESOURCE_TABLES,
    SNAPSHOT,
    SNAPSHOT_TABLES,
    file_columns,
    relation_sql,
    schema_sql,
    table_columns,
)
from auditor.config import RulesSettings
from auditor.rules.evaluate import evaluate, load_ruleset
from auditor.store.writer import prepare_lake, write_evaluation_to_lake, write_snapshot, write_snapshot_to_lake


@pytest.fixture(scope="module")
def written(tmp_path_factory, demo_fixture):
    """The demo cloud collected twice: once into today's DuckDB store, once into a lake."""
    from auditor.fakecloud import FakeCloud
    from conftest import write_clouds_yaml

    folder = tmp_path_factory.mktemp("lake")
    with FakeCloud(demo_fixture) as cloud, pytest.MonkeyPatch.context() as patch:
        patch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        database_id, database_counts = write_snapshot(folder / "audit.duckdb", collect())
        lake_id, lake_counts = write_snapshot_to_lake(folder / "audit.lake", collect())
    [evaluated] = evaluate(folder / "audit.duckdb", load_ruleset(RulesSettings()), [database_id])

    def copy_of_the_evaluation(con, evaluation_id: int) -> None:
        """The store's evaluation, rows as they are, under the lake's ids."""
        con.execute("ATTACH ? AS store (READ_ONLY)", [str(folder / "audit.duckdb")])
        for table in EVALUATION_TABLES:
            key = "id" if table == "evaluations" else "evaluation_id"
            replace = f"? AS {key}" + (", ? AS snapshot_id" if table in ("evaluations", "findings",
                                                                           "resolved_findings") else "")
            params = [evaluation_id] + ([lake_id] if "snapshot_id" in replace else [])
            con.execute(f"INSERT INTO {table} SELECT * REPLACE ({replace}) FROM store.{table} WHERE {key} = ?",
                        [*params, evaluated.evaluation_id])
        con.execute("DETACH store")

    lake_evaluation = write_evaluation_to_lake(folder / "audit.lake", copy_of_the_evaluation)
    return {"folder": folder, "database": folder / "audit.duckdb", "lake": folder / "audit.lake",
            "ids": (database_id, lake_id), "counts": (database_counts, lake_counts),
            "evaluations": (evaluated.evaluation_id, lake_evaluation)}


def _lake_rows(lake: Path, table: str, snapshot_id: int) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM ({relation_sql(table, [str(lake / table / '*' / '*.parquet')])}) "
                           f"WHERE {'id' if table == 'snapshots' else 'snapshot_id'} = ? ORDER BY ALL",
                           [snapshot_id]).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("table", SNAPSHOT_TABLES)
def test_every_table_in_the_lake_equals_the_store(written, table):
    database_id, lake_id = written["ids"]
    con = duckdb.connect(str(written["database"]), read_only=True)
    key = "id" if table == "snapshots" else "snapshot_id"
    try:
        stored = con.execute(f"SELECT * FROM {table} WHERE {key} = ? ORDER BY ALL", [database_id]).fetchall()
    finally:
        con.close()
    in_lake = _lake_rows(written["lake"], table, lake_id)
    if table == "snapshots":  # the same cloud, collected twice: only times and ids differ
        columns = [name for name, _ in table_columns()["snapshots"]]
        differ = {"id", "started_at", "finished_at"}
        stored = [tuple(v for c, v in zip(columns, row) if c not in differ) for row in stored]
        in_lake = [tuple(v for c, v in zip(columns, row) if c not in differ) for row in in_lake]
    elif table == "snapshot_resources":
        stored = [row[:4] for row in stored]  # seconds differ between two collections
        in_lake = [row[:4] for row in in_lake]
    assert in_lake == stored
    if table in ("servers", "ports", "security_group_rules"):
        assert in_lake, f"the demo cloud has {table}"
    assert written["counts"][0] == written["counts"][1]


def test_files_are_zstd_parquet_without_the_partition_column(written):
    lake, (_, lake_id) = written["lake"], written["ids"]
    path = partition_file(lake, "servers", lake_id)
    assert path == lake / "servers" / f"snapshot_id={lake_id}" / "part-0.parquet"
    con = duckdb.connect()
    codecs = {c for (c,) in con.execute("SELECT DISTINCT compression FROM parquet_metadata(?)", [str(path)]).fetchall()}
    names = [n for (n,) in con.execute("SELECT name FROM parquet_schema(?) WHERE name <> 'duckdb_schema'",
                                       [str(path)]).fetchall()]
    assert codecs == {"ZSTD"}
    assert "snapshot_id" not in names and names[:2] == ["id", "name"]
    manifest = partition_file(lake, "snapshots", lake_id)
    assert [row[:2] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{manifest}', hive_partitioning = false)").fetchall()] \
        == file_columns("snapshots")


def test_pyarrow_reads_a_table_with_its_partition_column(written):
    lake, (_, lake_id) = written["lake"], written["ids"]
    dataset = ds.dataset(lake / "servers", format="parquet", partitioning="hive", exclude_invalid_files=False)
    table = dataset.to_table(filter=ds.field("snapshot_id") == lake_id)
    assert table.num_rows == written["counts"][1]["servers"]
    assert set(table.column("snapshot_id").to_pylist()) == {lake_id}


def test_every_table_has_a_schema_file_and_nothing_is_left_in_staging(written):
    lake = written["lake"]
    for table in SNAPSHOT_TABLES + EVALUATION_TABLES:
        assert (lake / table / f"{'snapshot_id' if table in SNAPSHOT_TABLES else 'evaluation_id'}=0"
                / "_schema.parquet").is_file(), table
    assert list((lake / "_staging").iterdir()) == []
    assert committed_ids(lake, SNAPSHOT) == {written["ids"][1]}
    assert sorted(p.name for p in (lake / "_ids" / "snapshots").iterdir()) == [f"{written['ids'][1]}.done"]


def test_schema_files_are_written_once_and_replaced_when_their_columns_differ(tmp_path):
    lake = tmp_path / "lake"
    prepare_lake(lake)
    servers, ports = schema_file(lake, "servers"), schema_file(lake, "ports")
    before = {path: path.stat().st_ino for path in (servers, ports)}
    duckdb.connect().execute(f"COPY (SELECT 1 AS id) TO '{servers}' (FORMAT parquet)")  # an older auditor's
    older = servers.stat().st_ino
    prepare_lake(lake)
    assert ports.stat().st_ino == before[ports]  # unchanged: not rewritten
    assert servers.stat().st_ino != older
    con = duckdb.connect()
    assert [row[:2] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{servers}', "
                                           "hive_partitioning = false)").fetchall()] == file_columns("servers")
    assert con.execute(f"SELECT count(*) FROM read_parquet('{servers}')").fetchall() == [(0,)]


def test_nothing_is_visible_before_the_manifest_and_all_is_after(tmp_path):
    lake = tmp_path / "lake"
    staged = stage(lake, SNAPSHOT)
    con = duckdb.connect()
    for table in ("servers", "snapshots"):
        con.execute(f"COPY (SELECT 1 AS x) TO '{staged.file(table)}' (FORMAT parquet)")
    assert committed_ids(lake, SNAPSHOT) == set()
    assert not (lake / "servers").exists()  # staged files are not under any table's folder
    staged.commit()
    assert committed_ids(lake, SNAPSHOT) == {staged.item_id}
    assert partition_file(lake, "servers", staged.item_id).is_file()


def test_a_write_without_its_manifest_cannot_commit(tmp_path):
    staged = stage(tmp_path / "lake", EVALUATION)
    duckdb.connect().execute(f"COPY (SELECT 1 AS x) TO '{staged.file('findings')}' (FORMAT parquet)")
    with pytest.raises(Exception, match="has no evaluations file to commit"):
        staged.commit()


def test_ids_claimed_at_once_are_distinct(tmp_path):
    lake, claimed, lock = tmp_path / "lake", [], threading.Lock()

    def claim():
        for _ in range(25):
            got = claim_id(lake, SNAPSHOT)
            with lock:
                claimed.append(got)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(1, 201))


# -- kill -9 at each point of a write -----------------------------------------------------------------------
_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import duckdb
    from auditor.store import lake as lake_files

    lake, when = Path(sys.argv[1]), sys.argv[2]
    staged = lake_files.stage(lake, "snapshot")
    con = duckdb.connect()
    for table in ("servers", "ports", "snapshots"):
        con.execute(f"COPY (SELECT 1 AS id) TO '{staged.file(table)}' (FORMAT parquet)")
    renames = 0
    real_rename = os.rename

    def rename(source, target):
        global renames
        real_rename(source, target)
        renames += 1
        if when == f"after {renames} renames":
            os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename
    if when == "staged":
        os.kill(os.getpid(), signal.SIGKILL)
    staged.commit()
""")


@pytest.mark.parametrize("when, visible", [("staged", False), ("after 1 renames", False),
                                           ("after 2 renames", False), ("after 3 renames", True)])
def test_a_writer_killed_at_any_point_leaves_nothing_visible_and_the_next_one_cleans_up(tmp_path, when, visible):
    lake = tmp_path / "lake"
    first = stage(lake, SNAPSHOT)  # a committed snapshot before the crash
    duckdb.connect().execute(f"COPY (SELECT 1 AS id) TO '{first.file('snapshots')}' (FORMAT parquet)")
    first.commit()
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(lake), when], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    dead_id = first.item_id + 1
    assert committed_ids(lake, SNAPSHOT) == ({first.item_id, dead_id} if visible else {first.item_id})
    removed = clean_abandoned(lake)
    assert removed == ([] if visible else [f"snapshot {dead_id}"])
    assert committed_ids(lake, SNAPSHOT) == ({first.item_id, dead_id} if visible else {first.item_id})
    leftovers = {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}
    expected = {f"snapshots/snapshot_id={first.item_id}/part-0.parquet",
                f"_ids/snapshots/{first.item_id}.done", f"_ids/snapshots/{dead_id}.{'done' if visible else 'void'}"}
    if visible:
        expected |= {f"{t}/snapshot_id={dead_id}/part-0.parquet" for t in ("servers", "ports", "snapshots")}
    assert leftovers == expected
    assert stage(lake, SNAPSHOT).item_id == dead_id + 1  # the dead writer's id is never reused


def test_the_next_writer_leaves_a_live_writers_staging_alone(tmp_path):
    lake = tmp_path / "lake"
    live = stage(lake, SNAPSHOT)  # this process: alive
    duckdb.connect().execute(f"COPY (SELECT 1 AS id) TO '{live.file('servers')}' (FORMAT parquet)")
    assert clean_abandoned(lake) == []
    assert live.file("servers").is_file()
    claim = lake / "_ids" / "snapshots" / str(live.item_id)
    claim.write_text('{"host": "%s", "pid": %d, "started": "0"}' % (os.uname().nodename, os.getpid()))
    assert clean_abandoned(lake) == [f"snapshot {live.item_id}"]  # same pid, another start time: a dead one
    assert not live.folder.exists()


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch, demo_fixture):
    from auditor.fakecloud import FakeCloud
    from conftest import write_clouds_yaml

    with FakeCloud(demo_fixture) as cloud:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        snapshot = collect()

    def broken(con, staged, table):
        if table == "ports":
            raise duckdb.IOException("disk full")
        return real(con, staged, table)

    from auditor.store import writer
    real = writer.write_partition
    monkeypatch.setattr(writer, "write_partition", broken)
    with pytest.raises(Exception, match="snapshot not written: .*disk full"):
        write_snapshot_to_lake(tmp_path / "lake", snapshot)
    lake = tmp_path / "lake"
    assert committed_ids(lake, SNAPSHOT) == set()
    data = [p for p in lake.rglob("*.parquet") if p.name != lake_files.SCHEMA_FILE]
    assert data == [] and list((lake / "_staging").iterdir()) == []


# -- the catalog (step 2): views over the committed partitions ------------------------------------------------
@pytest.fixture(scope="module")
def catalog(written):
    database = written["folder"] / "catalog.duckdb"
    ensure_catalog(database, written["lake"])
    return database


def _comparable(con, view: str) -> list[tuple]:
    """The rows of `view`, without what differs between two collections of the same cloud: ids of the
    snapshot, its times and the seconds each listing took."""
    names = [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]
    differ = {"snapshot_id", "evaluation_id", "started_at", "finished_at", "seconds"} \
        | ({"id"} if view.endswith(("snapshots", "evaluations")) else set())
    dropped = [name for name in names if name in differ]
    exclude = f" EXCLUDE ({', '.join(dropped)})" if dropped else ""
    return con.execute(f"SELECT *{exclude} FROM {view} ORDER BY ALL").fetchall()


@pytest.mark.parametrize("view", list(SNAPSHOT_TABLES) + ["latest_snapshots"]
                         + [f"latest_{t}" for t in ("snapshot_resources",) + RESOURCE_TABLES]
                         + list(EVALUATION_TABLES) + ["latest_evaluations", "latest_findings"])
def test_every_catalog_view_equals_the_store(written, catalog, view):
    store = duckdb.connect(str(written["database"]), read_only=True)
    reader = open_catalog(catalog, written["lake"])
    try:
        expected = _comparable(store, view)
        assert _comparable(reader, view) == expected
        assert [d[:2] for d in reader.execute(f"DESCRIBE {view}").fetchall()] \
            == [d[:2] for d in store.execute(f"DESCRIBE {view}").fetchall()]
    finally:
        store.close()
        reader.close()
    if view in ("servers", "latest_servers", "snapshots", "findings", "latest_findings", "evaluation_rules"):
        assert expected


def test_an_evaluation_is_committed_by_its_manifest(written):
    lake, (_, lake_evaluation) = written["lake"], written["evaluations"]
    assert committed_ids(lake, EVALUATION) == {lake_evaluation}
    for table in ("evaluations", "evaluation_rules", "findings"):
        assert partition_file(lake, table, lake_evaluation).is_file(), table
    for table in ("resolved_findings", "evaluation_waivers"):  # none in a first evaluation without waivers:
        assert not (lake / table / f"evaluation_id={lake_evaluation}").exists()  # no file, the schema's glob


def _commit_snapshot(lake: Path, cloud: str = "later") -> int:
    """A minimal committed snapshot (a manifest and one server), written as the lake writer would."""
    staged = stage(lake, SNAPSHOT)
    con = duckdb.connect()
    con.execute(schema_sql())
    con.execute("INSERT INTO snapshots (id, cloud, region, scope, started_at, finished_at, status, tool_version) "
                "VALUES (?, ?, 'r', 'cloud', now()::TIMESTAMP, now()::TIMESTAMP, 'complete', 'test')",
                [staged.item_id, cloud])
    con.execute("INSERT INTO servers (snapshot_id, id, name) VALUES (?, 'srv-later', 'later')", [staged.item_id])
    for table in ("snapshots", "servers"):
        columns = ", ".join(f'"{name}"' for name, _ in file_columns(table))
        con.execute(f"COPY (SELECT {columns} FROM {table}) TO '{staged.file(table)}' (FORMAT parquet)")
    staged.commit()
    return staged.item_id


def test_an_open_reader_sees_a_snapshot_written_later_and_the_catalog_file_never_changes(tmp_path):
    lake, database = tmp_path / "audit.lake", tmp_path / "audit.duckdb"
    prepare_lake(lake)
    ensure_catalog(database, lake)
    before = (database.stat().st_ino, database.stat().st_mtime_ns, database.read_bytes())
    reader = open_catalog(database, lake)
    try:
        assert reader.execute("SELECT count(*) FROM snapshots").fetchall() == [(0,)]
        first = _commit_snapshot(lake)
        assert reader.execute("SELECT id FROM latest_snapshots").fetchall() == [(first,)]
        assert reader.execute("SELECT name FROM latest_servers").fetchall() == [("later",)]
        ensure_catalog(database, lake)  # what every writer calls: a no-op while schema and lake stay
        second = _commit_snapshot(lake)
        assert reader.execute("SELECT id FROM latest_snapshots").fetchall() == [(second,)]
    finally:
        reader.close()
    assert (database.stat().st_ino, database.stat().st_mtime_ns, database.read_bytes()) == before


def test_partitions_without_their_manifest_are_invisible_to_the_views(tmp_path):
    lake, database = tmp_path / "audit.lake", tmp_path / "audit.duckdb"
    prepare_lake(lake)
    ensure_catalog(database, lake)
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(lake), "after 2 renames"],
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    reader = open_catalog(database, lake)
    try:
        glob = str(lake / "servers" / "*" / "*.parquet")
        assert reader.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(1,)]  # on disk
        assert reader.execute("SELECT count(*) FROM servers").fetchall() == [(0,)]  # but not visible
        assert reader.execute("SELECT count(*) FROM ports").fetchall() == [(0,)]
    finally:
        reader.close()


def test_a_catalog_reader_reads_the_lake_and_no_other_file(written, catalog):
    reader = open_catalog(catalog, written["lake"])
    try:
        for sql in ("SELECT * FROM read_text('/etc/hostname')", f"SELECT * FROM read_text('{catalog}')",
                    "SET enable_external_access = true", f"ATTACH '{written['database']}' AS other",
                    f"COPY (SELECT 1) TO '{written['folder'] / 'x.csv'}'"):
            with pytest.raises(duckdb.Error):
                reader.execute(sql)
    finally:
        reader.close()


def test_the_catalog_is_rebuilt_when_the_lake_moves(tmp_path, written):
    database = tmp_path / "audit.duckdb"
    old_lake, new_lake = tmp_path / "old.lake", tmp_path / "new.lake"
    prepare_lake(old_lake)
    ensure_catalog(database, old_lake)
    _commit_snapshot(old_lake, "old")
    old_lake.rename(new_lake)
    ensure_catalog(database, new_lake)
    reader = open_catalog(database, new_lake)
    try:
        assert reader.execute("SELECT cloud FROM snapshots").fetchall() == [("old",)]
    finally:
        reader.close()


def test_every_documented_table_and_column_is_in_the_catalog_with_its_type(written, catalog):
    from test_store import _documented_tables

    documented = {table: columns for table, columns in _documented_tables().items() if table != "schema_info"}
    reader = open_catalog(catalog, written["lake"])
    try:
        actual = {}
        for table in documented:
            actual[table] = {name: kind for name, kind, *_ in reader.execute(f"DESCRIBE {table}").fetchall()}
        views = {name for (name,) in reader.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = 'catalog'").fetchall()}
    finally:
        reader.close()
    assert actual == documented
    assert set(documented) <= views  # views, not tables: the catalog holds no rows
    assert {f"latest_{t}" for t in RESOURCE_TABLES} | {"latest_snapshots", "latest_findings"} <= views


@pytest.mark.parametrize("helper", ["world_ingress_rules", "server_public_addresses"])
def test_the_catalog_holds_the_rule_helpers_over_every_snapshot(written, catalog, helper):
    """An auditor's SQL sees what a rule sees: the catalog's helper, for one snapshot, equals the one an
    evaluation creates for that snapshot."""
    from auditor.rules.environment import prepare

    database_id, lake_id = written["ids"]
    store = duckdb.connect(str(written["database"]), read_only=True)
    reader = open_catalog(catalog, written["lake"])
    try:
        prepare(store, database_id, [])
        seen_by_rules = store.execute(f"SELECT * FROM {helper} ORDER BY ALL").fetchall()
        in_catalog = reader.execute(f"SELECT * EXCLUDE (snapshot_id) FROM {helper} WHERE snapshot_id = ? "
                                    "ORDER BY ALL", [lake_id]).fetchall()
        assert reader.execute(f"SELECT count(DISTINCT snapshot_id) FROM {helper}").fetchall() == [(1,)]
        for macro in ("sg_protocol('6')", "port_text('tcp', 22, 22)", "is_public_ip('8.8.8.8')",
                      "port_label('p1', 'eth0', 'n1')"):
            assert reader.execute(f"SELECT {macro}").fetchall() == store.execute(f"SELECT {macro}").fetchall()
    finally:
        store.close()
        reader.close()
    assert in_catalog == seen_by_rules and seen_by_rules


def test_a_catalog_written_by_another_auditor_version_is_rebuilt(tmp_path):
    from auditor.store.catalog import build_catalog, catalog_state

    lake, database = tmp_path / "audit.lake", tmp_path / "audit.duckdb"
    prepare_lake(lake)
    build_catalog(database, lake.resolve(), "an older definition")
    older = database.stat().st_ino
    ensure_catalog(database, lake)
    assert database.stat().st_ino != older
    assert catalog_state(database)["definition"] != "an older definition"
    assert catalog_state(database)["lake"] == str(lake.resolve())
