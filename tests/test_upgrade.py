"""`auditor upgrade` on the database auditor 0.1.0 wrote (tests/fixtures/release-0.1.0): every row of every
snapshot and evaluation moves into the lake, `auditor findings` prints what 0.1.0 printed for the same file,
first-seen dates carry on into the next evaluation, and an upgrade stopped anywhere (kill -9, a full disk, a
corrupt file) leaves the old file byte for byte as it was and completes when run again."""

from __future__ import annotations

import gzip
import hashlib
import json
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, run_cli, write_clouds_yaml

from auditor.fakecloud import FakeCloud
from auditor.sqltext import sql_ident
from auditor.store.database import open_reader
from auditor.store.tables import EVALUATION_TABLES, SNAPSHOT_TABLES, table_columns
from auditor.store.upgrade import kept_path

RELEASE = REPO / "tests" / "fixtures" / "release-0.1.0"
TABLES = SNAPSHOT_TABLES + EVALUATION_TABLES
TABLES_SINCE_0_1_0 = ("networks", "subnets", "routers", "address_groups", "users", "roles", "role_assignments",
                      "application_credentials", "volumes", "volume_snapshots", "volume_backups", "volume_types",
                      "volume_type_encryption", "volume_type_access", "containers",
                      "image_members", "evaluation_instance_types")  # empty after an upgrade


@pytest.fixture
def release_database(tmp_path) -> Path:
    database = tmp_path / "audit.duckdb"
    with gzip.open(RELEASE / "audit.duckdb.gz") as packed, database.open("wb") as out:
        shutil.copyfileobj(packed, out)
    return database


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(con, table: str, present: set[str] | None = None) -> list[tuple]:
    """Every row of `table` in this auditor's columns; with `present` (an older file's columns), the others
    read as NULL, as the upgrade must store them."""
    columns = ", ".join(sql_ident(name) if present is None or name in present else "NULL"
                        for name, _ in table_columns()[table])
    return con.execute(f"SELECT {columns} FROM {sql_ident(table)} ORDER BY ALL").fetchall()


def _release_rows(database: Path) -> dict[str, list[tuple]]:
    """What the 0.1.0 file holds; tables it did not have yet (networks, ...) are empty after the upgrade."""
    with duckdb.connect(str(database), read_only=True) as con:
        present: dict[str, set[str]] = {}
        for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                         "WHERE table_schema = 'main'").fetchall():
            present.setdefault(table, set()).add(column)
        return {table: _rows(con, table, present[table]) if table in present else [] for table in TABLES}


def _upgraded_rows(database: Path) -> dict[str, list[tuple]]:
    con = open_reader(database)
    try:
        return {table: _rows(con, table) for table in TABLES}
    finally:
        con.close()


def _upgrade(database: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("--database", str(database), "upgrade", cwd=database.parent, **kwargs)


def _assert_upgraded(database: Path, release_sha: str, expected: dict[str, list[tuple]]) -> None:
    assert _sha(kept_path(database)) == release_sha
    assert _upgraded_rows(database) == expected
    assert not (database.parent / ".audit.lake.upgrading").exists()


def test_upgrade_moves_every_row_and_findings_print_what_0_1_0_printed(release_database):
    release_sha = _sha(release_database)
    expected = _release_rows(release_database)

    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    counted = dict(line.split() for line in done.stdout.splitlines() if line.startswith("  "))
    assert {table: int(count.replace(",", "")) for table, count in counted.items()} == {
        table: len(rows) for table, rows in expected.items() if table not in TABLES_SINCE_0_1_0}
    assert f"kept as {kept_path(release_database)}" in done.stdout
    _assert_upgraded(release_database, release_sha, expected)
    with duckdb.connect(str(kept_path(release_database)), read_only=True) as con:  # still 0.1.0's file
        assert con.execute("SELECT value FROM schema_info").fetchall() == [("2",)]

    for recorded, command in [
        ("findings-evaluation-1.json", ["findings", "--evaluation", "1", "--status", "all"]),
        ("findings-evaluation-2.json", ["findings", "--evaluation", "2", "--status", "all"]),
        ("findings-latest.json", ["findings"]),
        ("findings-resolved.json", ["findings", "--resolved"]),
    ]:
        done = run_cli("--database", str(release_database), *command, "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == json.loads((RELEASE / recorded).read_text()), recorded

    catalog = release_database.read_bytes()
    again = _upgrade(release_database)
    assert again.returncode == 0, again.stderr
    assert "nothing to upgrade" in again.stdout
    assert release_database.read_bytes() == catalog



def _run_demo_cloud(database, fixture):
    """One `auditor run` of the demo cloud against the upgraded database."""
    with FakeCloud(fixture) as cloud:
        env = {"OS_CLIENT_CONFIG_FILE": str(write_clouds_yaml(database.parent / "clouds.yaml",
                                                              {"demo": cloud.clouds_yaml_entry()}))}
        done = run_cli("--database", str(database), "run", "--cloud", "demo", "--no-report", env=env)
        assert done.returncode in (0, 8), done.stderr


def test_the_next_evaluation_after_an_upgrade_keeps_the_first_seen_dates_of_0_1_0(release_database, demo_fixture):
    assert _upgrade(release_database).returncode == 0
    _run_demo_cloud(release_database, demo_fixture)
    con = open_reader(release_database)
    try:
        carried = con.execute("""
            SELECT count(*), count(*) FILTER (WHERE new.first_seen_at = old.first_seen_at AND NOT new.is_new)
            FROM findings new JOIN findings old USING (rule_id, resource_type, resource_id)
            WHERE new.evaluation_id = 3 AND old.evaluation_id = 2 AND new.status = 'fail' AND old.status = 'fail'
            """).fetchall()
    finally:
        con.close()
    assert carried[0][0] >= 20 and carried[0][0] == carried[0][1], carried


_KILLED_UPGRADE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from auditor.store.upgrade import upgrade_database

    database, when = Path(sys.argv[1]), sys.argv[2]

    def watched(real):
        def call(source, target, *args, **kwargs):
            if when == f"before {Path(target).name}":
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(source, target, *args, **kwargs)
            if when == f"after {Path(target).name}":
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return call

    if when == "no hard links":
        def link(source, target, *args, **kwargs):
            raise PermissionError(1, "Operation not permitted")
        os.link = link
    os.rename, os.replace, os.link = watched(os.rename), watched(os.replace), watched(os.link)
    upgrade_database(database)
""")


@pytest.mark.parametrize("when", [
    "after security_groups",  # a table half-way through the list, in the folder being built
    "after findings",
    "after _schema.parquet",  # every table moved, the schema files being written
    "after audit.0.1.0-before-upgrade.duckdb",  # the old file kept under its new name too
    "after audit.lake",  # the lake in place, the catalog not yet
    "before audit.duckdb",
])
def test_an_upgrade_killed_anywhere_leaves_the_old_file_byte_for_byte_and_the_next_run_completes(
        release_database, when):
    release_sha = _sha(release_database)
    expected = _release_rows(release_database)
    killed = subprocess.run([sys.executable, "-c", _KILLED_UPGRADE, str(release_database), when],
                            capture_output=True, text=True, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _sha(release_database) == release_sha  # untouched, under its own name: 0.1.0 goes on using it
    assert _release_rows(release_database) == expected

    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    _assert_upgraded(release_database, release_sha, expected)


def test_without_hard_links_the_old_file_is_kept_as_a_copy(release_database):
    release_sha = _sha(release_database)
    expected = _release_rows(release_database)
    done = subprocess.run([sys.executable, "-c", _KILLED_UPGRADE, str(release_database), "no hard links"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert kept_path(release_database).stat().st_nlink == 1
    _assert_upgraded(release_database, release_sha, expected)


def _small_disk(limit: int):
    def apply():  # writes past `limit` bytes fail (EFBIG) the way a full disk fails them (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("limit", [16 * 1024, 256 * 1024])  # the lake's first files; the catalog
def test_a_full_disk_stops_the_upgrade_in_one_line_and_the_next_run_completes(release_database, limit):
    release_sha = _sha(release_database)
    expected = _release_rows(release_database)
    failed = _upgrade(release_database, preexec_fn=_small_disk(limit))
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert "not upgraded" in line and "unchanged" in line and "File too large" in line, line
    assert _sha(release_database) == release_sha
    assert not (release_database.parent / ".audit.lake.upgrading").exists()

    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    _assert_upgraded(release_database, release_sha, expected)


def test_a_corrupt_file_is_refused_in_one_line_unchanged_and_upgrades_once_restored(release_database):
    good = release_database.read_bytes()
    release_sha = _sha(release_database)
    expected = _release_rows(release_database)
    release_database.write_bytes(good[: len(good) // 2])  # cut short, as a failed copy leaves it
    failed = _upgrade(release_database)
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert str(release_database.name) in line and "Traceback" not in line, line
    assert release_database.read_bytes() == good[: len(good) // 2]
    assert sorted(p.name for p in release_database.parent.iterdir()) == ["audit.duckdb"]

    release_database.write_bytes(good)
    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    _assert_upgraded(release_database, release_sha, expected)


def test_a_lake_already_beside_the_file_is_never_overwritten(release_database):
    stranger = release_database.parent / "audit.lake" / "servers"
    stranger.mkdir(parents=True)
    (stranger / "notes.txt").write_text("someone else's")
    release_sha = _sha(release_database)
    failed = _upgrade(release_database)
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert "audit.lake: already there" in line, line
    assert _sha(release_database) == release_sha and (stranger / "notes.txt").read_text() == "someone else's"
    assert not kept_path(release_database).exists()


def _write_to_release_file(database: Path, *statements: str) -> None:
    """What a 0.1.0 writer (or a damaged history) can leave in the file, written with DuckDB directly."""
    with duckdb.connect(str(database)) as con:
        for statement in statements:
            con.execute(statement)


def test_rows_of_every_kind_move_and_rows_of_no_snapshot_are_counted_not_moved_nor_their_ids_reused(
        release_database, demo_fixture):
    _write_to_release_file(
        release_database,
        "INSERT INTO collection_errors VALUES (1, 'images', 'p1', 503, 'http://glance/v2/images', 'unavailable')",
        "INSERT INTO evaluation_waivers VALUES (2, 'w1', 'server_not_exposed_to_world', '{\"project\": \"labs\"}', "
        "'accepted', 'secops', DATE '2027-01-31', 'active', 3)",
        "INSERT INTO servers (snapshot_id, id, name) VALUES (99, 'orphan', 'of no snapshot')",
        "INSERT INTO findings SELECT * REPLACE (77 AS evaluation_id) FROM findings WHERE evaluation_id = 1 LIMIT 3",
    )
    release_sha = _sha(release_database)
    expected = _release_rows(release_database)
    expected["servers"] = [row for row in expected["servers"] if row[0] != 99]
    expected["findings"] = [row for row in expected["findings"] if row[0] != 77]
    assert len(expected["collection_errors"]) == 1 and len(expected["evaluation_waivers"]) == 1

    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    assert "not moved: 1 row of servers" in done.stdout and "not moved: 3 rows of findings" in done.stdout
    _assert_upgraded(release_database, release_sha, expected)

    _run_demo_cloud(release_database, demo_fixture)
    con = open_reader(release_database)
    try:
        assert con.execute("SELECT max(id) FROM snapshots").fetchall() == [(100,)]
        assert con.execute("SELECT max(id) FROM evaluations").fetchall() == [(78,)]
    finally:
        con.close()


def test_a_file_0_1_0_did_not_close_is_refused_until_checkpointed(release_database):
    writer = textwrap.dedent("""
        import os, sys, duckdb
        con = duckdb.connect(sys.argv[1])
        con.execute("INSERT INTO servers (snapshot_id, id, name) VALUES (2, 'late', 'written last')")
        os._exit(0)  # no checkpoint: the row is in the .wal only
    """)
    subprocess.run([sys.executable, "-c", writer, str(release_database)], check=True)
    wal = release_database.with_name("audit.duckdb.wal")
    assert wal.is_file()
    before = {path.name: _sha(path) for path in release_database.parent.iterdir()}
    failed = _upgrade(release_database)
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert "audit.duckdb.wal: auditor 0.1.0 did not close audit.duckdb cleanly" in line, line
    assert {path.name: _sha(path) for path in release_database.parent.iterdir()} == before

    _write_to_release_file(release_database, "CHECKPOINT")
    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    assert ("late",) in open_reader(release_database).execute("SELECT id FROM servers").fetchall()


@pytest.mark.parametrize("link_to", ["the file itself", "nowhere"])
def test_a_link_at_the_kept_name_is_never_taken_for_the_kept_file(release_database, link_to):
    kept = kept_path(release_database)
    kept.symlink_to(release_database if link_to == "the file itself" else release_database.parent / "gone")
    release_sha = _sha(release_database)
    failed = _upgrade(release_database)
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert f"{kept.name}: already there, and not a copy of audit.duckdb" in line, line
    assert _sha(release_database) == release_sha and kept.is_symlink()
    assert not (release_database.parent / "audit.lake").exists()


def test_a_stopped_upgrade_whose_file_0_1_0_changed_since_is_not_taken_up(release_database):
    killed = subprocess.run([sys.executable, "-c", _KILLED_UPGRADE, str(release_database), "after audit.lake"],
                            capture_output=True, text=True, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _write_to_release_file(release_database, "UPDATE servers SET name = 'renamed by 0.1.0' WHERE snapshot_id = 2")
    expected = _release_rows(release_database)
    failed = _upgrade(release_database)
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert "0.1.0 has written to the file since; remove" in line, line

    shutil.rmtree(release_database.parent / "audit.lake")
    done = _upgrade(release_database)
    assert done.returncode == 0, done.stderr
    assert _upgraded_rows(release_database) == expected


def test_two_upgrades_never_run_at_once_in_one_folder(release_database):
    import fcntl
    import os

    fd = os.open(release_database.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        failed = _upgrade(release_database)
    finally:
        os.close(fd)
    assert failed.returncode == 4, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert "another `auditor upgrade` is running there" in line, line
    assert sorted(p.name for p in release_database.parent.iterdir()) == ["audit.duckdb"]


def test_an_id_split_over_several_files_is_merged_into_one(tmp_path):
    from auditor.store.upgrade import one_file_per_partition

    partition = tmp_path / "servers" / "snapshot_id=7"
    partition.mkdir(parents=True)
    con = duckdb.connect()
    for part, names in enumerate([("a", "b"), ("c",), ("d", "e")]):
        values = ", ".join(f"('{name}')" for name in names)
        con.execute(f"COPY (SELECT * FROM (VALUES {values}) AS t(name)) TO '{partition}/part-{part}.parquet' "
                    "(FORMAT parquet)")
    one_file_per_partition(con, tmp_path / "servers")
    assert sorted(p.name for p in partition.iterdir()) == ["part-0.parquet"]
    assert con.execute(f"SELECT name FROM read_parquet('{partition}/part-0.parquet') ORDER BY 1").fetchall() == [
        ("a",), ("b",), ("c",), ("d",), ("e",)]


def test_progress_shows_on_a_terminal_and_is_wiped_when_done(release_database):
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "auditor", "--database", str(release_database), "upgrade"],
                              stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert f"moving findings ({TABLES.index('findings') + 1}/{len(TABLES)})".encode() in shown
    assert shown.endswith(b"\r\x1b[K")
    assert "rows per table" in done.stdout
