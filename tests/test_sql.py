"""`auditor sql` reads the published copy and refuses anything that writes."""

import json

import pytest
from conftest import run_cli


@pytest.fixture
def database(demo_database):
    return demo_database  # shared: every test here only reads, and checks that writes are refused


@pytest.mark.parametrize(
    "statement",
    [
        "insert into snapshots (id) values (99)",
        "drop table servers",
        "delete from servers",
        "update servers set name = 'x'",
        "create table t as select 1",
        "attach 'other.duckdb' as other",
        "copy servers to 'out.csv'",
        "install httpfs",
        "load httpfs",
        "select 1; drop table servers",
        "export database 'dump'",
        "set enable_external_access = true",
        "explain analyze create table t as select 1",
        "EXPLAIN (ANALYZE, FORMAT json) copy (select 1) to 'out.csv'",
        "explain analyze copy (select 1) to 'out.csv'",
        "explain load httpfs",
        "explain (analyze) insert into snapshots (id) values (99)",
    ],
)
def test_writes_are_refused(database, tmp_path, statement):
    done = run_cli("--database", str(database), "sql", statement, cwd=tmp_path)
    assert done.returncode == 5, done.stdout
    assert "read-only" in done.stderr or "refused" in done.stderr or "disabled" in done.stderr
    assert run_cli("--database", str(database), "sql", "select count(*) from servers").returncode == 0
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_file_reads_outside_the_database_are_refused(database):
    done = run_cli("--database", str(database), "sql", "select * from read_csv('/etc/passwd')")
    assert done.returncode == 5
    assert "root:" not in done.stdout


def test_select_in_every_format(database, demo_fixture):
    zones = {}
    for server in demo_fixture["servers"]:
        zone = server["OS-EXT-AZ:availability_zone"]
        zones[zone] = zones.get(zone, 0) + 1
    query = "select availability_zone as zone, count(*) as n from servers group by 1 order by 1"
    as_json = run_cli("--database", str(database), "sql", query, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert {r["zone"]: r["n"] for r in json.loads(as_json.stdout)} == zones
    as_csv = run_cli("--database", str(database), "sql", query, "--format", "csv")
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0] == "zone,n" and len(lines) == len(zones) + 1
    table = run_cli("--database", str(database), "sql", query)
    assert f"({len(zones)} rows)" in table.stdout and "zone" in table.stdout.splitlines()[0]


def test_html_and_unicode_names_come_back_verbatim(database):
    done = run_cli("--database", str(database), "sql", "select name from servers where name like '%<b>%' "
                   "or name like '数据库%' order by name", "--format", "json")
    names = [r["name"] for r in json.loads(done.stdout)]
    assert names == sorted(["web-<b>01</b> & co", "数据库-主"])


def test_no_database_yet_is_a_clear_error(tmp_path):
    done = run_cli("--database", str(tmp_path / "none.duckdb"), "sql", "select 1")
    assert done.returncode == 4
    assert "no snapshot database yet" in done.stderr


def test_terminal_control_characters_in_tenant_text_are_shown_escaped(database):
    query = "select 'evil' || chr(27) || ']0;pwned' || chr(7) || chr(8238) || 'gnp.exe' as name"
    table = run_cli("--database", str(database), "sql", query)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout and "\u202e" not in table.stdout
    assert "evil\\x1b]0;pwned\\x07\\u202egnp.exe" in table.stdout
    # machine formats keep the value as stored
    as_json = run_cli("--database", str(database), "sql", "--format", "json", query)
    assert json.loads(as_json.stdout) == [{"name": "evil\x1b]0;pwned\x07\u202egnp.exe"}]


def test_several_statements_are_refused_not_cut_short(database, tmp_path):
    done = run_cli("--database", str(database), "sql", "select 1; select 2", cwd=tmp_path)
    assert done.returncode == 5
    assert "one statement at a time; the query holds 2" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("statement", ["explain select count(*) from servers",
                                       "explain analyze select count(*) from servers"])
def test_explaining_a_select_is_allowed(database, tmp_path, statement):
    done = run_cli("--database", str(database), "sql", statement, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_nothing_is_written_into_the_lake_and_work_in_progress_is_not_read(database, tmp_path):
    """`auditor sql` may read the lake's tables and nothing else: IMPORT DATABASE (a PRAGMA to DuckDB, which
    runs the COPY statements of a folder's schema.sql), COPY into the lake, and reads of _staging and _ids."""
    from auditor.store.database import lake_path

    lake = lake_path(database)
    planted = lake / "servers" / "planted"
    planted.mkdir(exist_ok=True)
    try:
        (planted / "schema.sql").write_text(f"COPY (SELECT 42) TO '{lake / 'servers' / 'evil.csv'}';\n")
        (planted / "load.sql").write_text("")
        for query in (f"IMPORT DATABASE '{planted}'", f"PRAGMA import_database('{planted}')",
                      f"COPY (SELECT 1) TO '{lake / 'servers' / 'x.csv'}'",
                      f"SELECT * FROM read_blob('{lake}/_ids/**')", f"SELECT * FROM read_blob('{lake}/_staging/**')"):
            done = run_cli("--database", str(database), "sql", query)
            assert done.returncode == 5, (query, done.stdout, done.stderr)
        assert not (lake / "servers" / "evil.csv").exists() and not (lake / "servers" / "x.csv").exists()
        done = run_cli("--database", str(database), "sql", "PRAGMA table_info('servers')")
        assert done.returncode == 0 and "flavor_name" in done.stdout  # describing is still allowed
    finally:
        for path in planted.iterdir():
            path.unlink()
        planted.rmdir()
