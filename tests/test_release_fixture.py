"""The database that auditor 0.1.0 wrote (tests/fixtures/release-0.1.0) is what its README says and is read
by today's code: the starting point that the storage upgrade of issue 12 must convert without loss."""

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


def test_todays_code_reads_the_release_database(release_database):
    done = run_cli("--database", str(release_database), "findings", "--new", "--format", "json")
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout)
    # the SSH rule opened to the world: the group, and the server behind it now reachable
    assert sorted((f["rule_id"], f["resource_name"]) for f in new) == [
        ("security_group_admin_ports_not_open_to_world", "mgmt-ssh"),
        ("server_not_exposed_to_world", "shop-frontend-1")]
    assert all(f["snapshot_id"] == 2 and f["is_new"] for f in new)
    done = run_cli("--database", str(release_database), "findings", "--resolved", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert [(f["resource_name"], f["resolution"]) for f in json.loads(done.stdout)] == [("rdp-jump-01", "gone")]
