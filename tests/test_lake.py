"""The lake writer (issue 23, step 1): a snapshot's tables as zstd Parquet partitions, staged, then committed
with the manifest last; what a writer killed with SIGKILL leaves is invisible and removed by the next one.
Real parts: the demo cloud over HTTP, real Parquet files read back with DuckDB and pyarrow, real processes."""

from __future__ import annotations

import os
import signal
import socket
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
from auditor.store.catalog import ensure_catalog, open_catalog, prepare_lake
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
from auditor.store.database import lake_path
from auditor.store.snapshot_writer import write_snapshot, write_snapshot_to_lake


@pytest.fixture(scope="module")
def written(tmp_path_factory, demo_fixture):
    """The demo cloud snapshotted and evaluated into a catalog and its lake, the way every command writes."""
    from auditor.fakecloud import FakeCloud
    from conftest import write_clouds_yaml

    folder = tmp_path_factory.mktemp("lake")
    database = folder / "audit.duckdb"
    with FakeCloud(demo_fixture) as cloud, pytest.MonkeyPatch.context() as patch:
        patch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        snapshot_id, counts = write_snapshot(database, collect())
    [evaluated] = evaluate(database, load_ruleset(RulesSettings()), [snapshot_id])
    return {"folder": folder, "database": database, "lake": lake_path(database),
            "ids": (snapshot_id, snapshot_id), "counts": (counts, counts),
            "evaluations": (evaluated.evaluation_id, evaluated.evaluation_id)}


def _lake_rows(lake: Path, table: str, key: str, item_id: int) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM ({relation_sql(table, [str(lake / table / '*' / '*.parquet')])}) "
                           f"WHERE {key} = ? ORDER BY ALL", [item_id]).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("table", SNAPSHOT_TABLES + EVALUATION_TABLES)
def test_every_view_shows_what_its_files_hold(written, table):
    """The catalog's view of a table, for one snapshot or evaluation, is exactly its Parquet file."""
    snapshot_id, evaluation_id = written["ids"][0], written["evaluations"][0]
    item_id = snapshot_id if table in SNAPSHOT_TABLES else evaluation_id
    key = {"snapshots": "id", "evaluations": "id"}.get(table, "snapshot_id" if table in SNAPSHOT_TABLES
                                                        else "evaluation_id")
    con = duckdb.connect(str(written["database"]), read_only=True)
    try:
        viewed = con.execute(f"SELECT * FROM {table} WHERE {key} = ? ORDER BY ALL", [item_id]).fetchall()
    finally:
        con.close()
    assert viewed == _lake_rows(written["lake"], table, key, item_id)
    if table in ("servers", "ports", "security_group_rules", "findings", "evaluation_rules"):
        assert viewed, f"the demo cloud has {table}"


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


def test_a_reader_of_an_older_lake_adds_the_tables_this_auditor_added(tmp_path):
    # A lake an older auditor wrote lacks the folders of tables added since: the catalog a reader rebuilds
    # (its views changed) must not fail to bind them, or every read fails until something writes.
    import shutil

    from auditor.store.database import open_reader

    lake = tmp_path / "audit.lake"
    database = tmp_path / "audit.duckdb"
    prepare_lake(lake)
    ensure_catalog(database, lake)
    shutil.rmtree(lake / "evaluation_instance_types")
    con = duckdb.connect(str(database))
    con.execute("UPDATE schema_info SET value = 'an older auditor' WHERE key = 'definition'")
    con.close()
    reader = open_reader(database)
    try:
        assert reader.execute("SELECT count(*) FROM evaluation_instance_types").fetchall() == [(0,)]
    finally:
        reader.close()
    assert schema_file(lake, "evaluation_instance_types").is_file()


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

    lake, when, kind = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    staged = lake_files.stage(lake, kind)
    con = duckdb.connect()
    tables = ("servers", "ports", "snapshots") if kind == "snapshot" else ("findings", "evaluation_rules", "evaluations")
    for table in tables:
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


@pytest.mark.parametrize("kind, tables", [(SNAPSHOT, ("servers", "ports", "snapshots")),
                                          (EVALUATION, ("findings", "evaluation_rules", "evaluations"))])
@pytest.mark.parametrize("when, visible", [("staged", False), ("after 1 renames", False),
                                           ("after 2 renames", False), ("after 3 renames", True)])
def test_a_writer_killed_at_any_point_leaves_nothing_visible_and_the_next_one_cleans_up(tmp_path, when, visible,
                                                                                       kind, tables):
    lake = tmp_path / "lake"
    manifest = tables[-1]
    first = stage(lake, kind)  # a committed write before the crash
    duckdb.connect().execute(f"COPY (SELECT 1 AS id) TO '{first.file(manifest)}' (FORMAT parquet)")
    first.commit()
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(lake), when, kind], capture_output=True,
                          text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    dead_id = first.item_id + 1
    assert committed_ids(lake, kind) == ({first.item_id, dead_id} if visible else {first.item_id})
    removed = clean_abandoned(lake)
    assert removed == ([] if visible else [f"{kind} {dead_id}"])
    assert committed_ids(lake, kind) == ({first.item_id, dead_id} if visible else {first.item_id})
    leftovers = {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}
    key = "snapshot_id" if kind == SNAPSHOT else "evaluation_id"
    expected = {f"{manifest}/{key}={first.item_id}/part-0.parquet",
                f"_ids/{kind}s/{first.item_id}.done", f"_ids/{kind}s/{dead_id}.{'done' if visible else 'void'}"}
    if visible:
        expected |= {f"{t}/{key}={dead_id}/part-0.parquet" for t in tables}
    assert leftovers == expected
    assert stage(lake, kind).item_id == dead_id + 1  # the dead writer's id is never reused


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
    """A second catalog over the same lake: any number of them may read it."""
    database = written["folder"] / "catalog.duckdb"
    ensure_catalog(database, written["lake"])
    return database


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
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(lake), "after 2 renames", SNAPSHOT],
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


_KILLED_PRUNE = textwrap.dedent("""
    import os, shutil, signal, sys
    from pathlib import Path
    from auditor.store import lake as lake_files

    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):  # the manifest's folder goes first; die right after it
        real_rmtree(path, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    shutil.rmtree = rmtree
    lake_files.remove_committed(Path(sys.argv[1]), "snapshot", int(sys.argv[2]))
""")


def test_a_prune_killed_half_way_is_invisible_at_once_and_finished_by_the_next_writer(tmp_path):
    lake = tmp_path / "lake"
    kept, pruned = (_commit_snapshot(lake, cloud) for cloud in ("kept", "pruned"))
    done = subprocess.run([sys.executable, "-c", _KILLED_PRUNE, str(lake), str(pruned)], capture_output=True,
                          text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert committed_ids(lake, SNAPSHOT) == {kept}  # its manifest went first: already invisible
    assert partition_file(lake, "servers", pruned).is_file()  # but its data is still on disk
    assert (lake / "_ids" / "snapshots" / f"{pruned}.pruning").is_file()
    assert clean_abandoned(lake) == [f"pruned snapshot {pruned}"]
    assert not (lake / "servers" / f"snapshot_id={pruned}").exists()
    assert (lake / "_ids" / "snapshots" / f"{pruned}.done").is_file()  # the id stays taken
    assert partition_file(lake, "servers", kept).is_file() and stage(lake, SNAPSHOT).item_id == pruned + 1


def test_ids_are_not_reused_when_the_claims_folder_is_lost(tmp_path):
    import shutil

    lake = tmp_path / "lake"
    first = _commit_snapshot(lake)
    shutil.rmtree(lake / "_ids")  # a copy of the lake that skipped folders starting with '_'
    second = _commit_snapshot(lake, "again")
    assert second == first + 1 and committed_ids(lake, SNAPSHOT) == {first, second}


def test_a_running_prune_is_left_alone_by_other_writers(tmp_path):
    from auditor.store.lake import remove_committed

    lake = tmp_path / "lake"
    kept, pruned = (_commit_snapshot(lake, cloud) for cloud in ("kept", "pruned"))
    claims = lake / "_ids" / "snapshots"
    (claims / f"{pruned}.done").rename(claims / f"{pruned}.pruning")
    (claims / f"{pruned}.pruning").write_text(
        '{"host": "%s", "pid": %d, "started": null}' % (socket.gethostname(), os.getpid()))  # this process: alive
    assert clean_abandoned(lake) == []
    assert partition_file(lake, "servers", pruned).is_file()  # not finished by another writer
    remove_committed(lake, SNAPSHOT, pruned)  # the prune itself goes on and ends well
    assert committed_ids(lake, SNAPSHOT) == {kept} and (claims / f"{pruned}.done").is_file()


def test_a_lake_that_cannot_be_made_is_one_line(tmp_path, clouds_yaml):
    from conftest import run_cli

    (tmp_path / "audit.lake").write_text("a file where the lake should be")
    done = run_cli("--database", str(tmp_path / "audit.duckdb"), "snapshot", "--cloud", "demo")
    assert done.returncode == 4, done.stderr
    assert "audit.lake: cannot make the lake" in done.stderr and "Traceback" not in done.stderr
    odd = tmp_path / "g[1]"
    odd.mkdir()
    done = run_cli("--database", str(odd / "audit.duckdb"), "snapshot", "--cloud", "demo")
    assert done.returncode == 4 and "glob character" in done.stderr and "Traceback" not in done.stderr
