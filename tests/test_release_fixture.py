"""The database that auditor 0.1.0 wrote (tests/fixtures/release-0.1.0) is what its README says, and this
release never changes it: every command but `auditor upgrade` (tests/test_upgrade.py) stops with one line
saying so."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "release-0.1.0" / "audit.duckdb.gz"


@pytest.fixture
def release_database(tmp_path) -> Path:
    database = tmp_path / "audit.duckdb"
    with gzip.open(FIXTURE) as packed, database.open("wb") as out:
        shutil.copyfileobj(packed, out)
    shutil.copyfile(database, tmp_path / "audit.readonly.duckdb")  # what the release published beside it
    return database


def test_the_release_fixture_holds_two_snapshots_and_their_history(release_database):
    with duckdb.connect(str(release_database), read_only=True) as con:
        assert con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall() == [("2",)]
        assert con.execute("SELECT id, status, tool_version, server_count FROM snapshots ORDER BY id").fetchall() == [
            (1, "complete", "0.1.0", 19), (2, "complete", "0.1.0", 18)]
        assert con.execute("SELECT id, snapshot_id, fail_count, new_count, resolved_count FROM evaluations "
                           "ORDER BY id").fetchall() == [(1, 1, 29, 29, 0), (2, 2, 30, 2, 1)]
        # findings that persisted keep the first-seen time of the evaluation that first saw them
        kept = con.execute("""
            SELECT count(*), count(*) FILTER (WHERE f2.first_seen_at = f1.first_seen_at)
            FROM findings f2 JOIN findings f1 USING (rule_id, resource_id)
            WHERE f2.evaluation_id = 2 AND f1.evaluation_id = 1 AND f1.status = 'fail' AND f2.status = 'fail'
            """).fetchall()
        assert kept == [(28, 28)]


@pytest.mark.parametrize("command", [
    ["findings", "--new"], ["findings", "--resolved"], ["snapshots"], ["sql", "select count(*) from servers"],
    ["evaluate"], ["report"], ["snapshot", "--cloud", "demo"], ["run", "--cloud", "demo"],
])
def test_every_command_refuses_the_release_database_in_one_line_and_changes_nothing(release_database, command,
                                                                                     tmp_path, clouds_yaml):
    files = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    done = run_cli("--database", str(release_database), *command, cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"{release_database}: written by auditor 0.1.0 (schema version 2" in line
    assert "`auditor upgrade`" in line and "Traceback" not in line
    assert {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == files
    assert not (tmp_path / "audit.lake").exists()
