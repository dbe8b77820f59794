"""Clear errors for the usual mistakes, and the smaller hardening found by attack: each names the file, key
or resource, exits with its documented code, and changes nothing."""

from __future__ import annotations

import copy
import csv
import os
import stat
from datetime import UTC, datetime

import pytest
from conftest import run_cli, write_clouds_yaml, write_config

from auditor.fakecloud import FakeCloud
from auditor.output import spreadsheet_safe
from auditor.service.triggers import ScheduleError, parse_schedule


@pytest.mark.parametrize("nickname, after, expected", [
    ("@hourly", datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2026, 5, 1, 11, 0, tzinfo=UTC)),
    ("@daily", datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2026, 5, 2, 0, 0, tzinfo=UTC)),
    ("@weekly", datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2026, 5, 3, 0, 0, tzinfo=UTC)),  # a Sunday
    ("@monthly", datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2026, 6, 1, 0, 0, tzinfo=UTC)),
    ("@yearly", datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("@Daily", datetime(2026, 5, 1, 10, 20, tzinfo=UTC), datetime(2026, 5, 2, 0, 0, tzinfo=UTC)),
])
def test_cron_nicknames_are_schedules(nickname, after, expected):
    trigger = parse_schedule(nickname, UTC)
    assert trigger.get_next_fire_time(None, after) == expected


def test_an_unknown_nickname_is_refused_with_the_known_ones():
    with pytest.raises(ScheduleError, match=r"'@reboot' is not a cron nickname \(one of @annually, @daily"):
        parse_schedule("@reboot", UTC)


def test_the_service_accepts_a_nickname_in_the_config(clouds_yaml, tmp_path):
    config = write_config(tmp_path / "auditor.toml", '[[clouds]]\nname = "demo"\n[service]\nrun = "@daily"\n')
    done = run_cli("--config", str(config), "jobs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "@daily" in done.stdout or "0 0 * * *" in done.stdout


@pytest.mark.parametrize("text, hint", [
    ("[collection]\nretires = 3\n", "unknown key 'collection.retries'"[:0] + "did you mean 'retries'?"),
    ("databse = 'x.duckdb'\n", "did you mean 'database'?"),
    ("[rules]\nwaiver = 'w.yaml'\n", "did you mean 'waivers'?"),
])
def test_an_unknown_config_key_names_the_closest_one_first(tmp_path, text, hint):
    config = tmp_path / "auditor.toml"
    config.write_text(text, encoding="utf-8")
    done = run_cli("--config", str(config), "snapshots", cwd=tmp_path)
    assert done.returncode == 2
    assert hint in done.stderr and "expected one of:" in done.stderr
    key = hint.split("'")[1]
    assert done.stderr.index(f"expected one of: {key}") > 0  # the closest one is listed first


def test_rules_validate_refuses_a_rule_that_reads_files(tmp_path):
    folder = tmp_path / "rules.d" / "custom" / "compute"
    folder.mkdir(parents=True)
    rule = folder / "reads_a_file.sql"
    rule.write_text("/*---\ntitle: t\nseverity: low\nresource_type: server\ndescription: d\nrationale: r\n"
                    "remediation: m\n---*/\nselect id as resource_id, name as resource_name, project_id, "
                    "'pass' as status, (select content from read_text('/etc/hostname')) as reason from servers\n")
    (folder / "reads_a_file.test.yaml").write_text(
        "cases:\n  - name: one\n    inventory: {servers: [{id: s1, name: a, project_id: p}]}\n"
        "    expect: {s1: pass}\n")
    config = write_config(tmp_path / "auditor.toml", '[rules]\npaths = ["rules.d"]\n')
    done = run_cli("--config", str(config), "rules", "validate", str(rule), cwd=tmp_path)
    assert done.returncode == 6, done.stdout
    assert f"{rule}" in done.stderr and "disabled by configuration" in done.stderr
    tested = run_cli("--config", str(config), "rules", "test", str(rule), cwd=tmp_path)
    assert tested.returncode == 6 and "FAIL reads_a_file" in tested.stdout


HOSTILE_NAMES = ["=HYPERLINK(\"http://x\")", " =1+1", "\u3000+cmd", "\uff1d1+1", "\uff0bsum", "\uff0d2", "\uff20x",
                 "\t=1", "-2+3"]


def test_csv_cells_a_spreadsheet_would_run_get_a_quote(tmp_path, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    for server, name in zip(fixture["servers"], HOSTILE_NAMES, strict=False):
        server["name"] = name
    with FakeCloud(fixture) as cloud:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        config = write_config(tmp_path / "auditor.toml", '[report]\nformats = ["csv"]\nout_dir = "out"\n')
        done = run_cli("--config", str(config), "run", "--cloud", "demo", cwd=tmp_path,
                       env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
        assert done.returncode in (0, 1), done.stderr
    [inventory] = (tmp_path / "out").rglob("inventory.csv")
    names = {row["name"] for row in csv.DictReader(inventory.open(encoding="utf-8"))}
    for name in HOSTILE_NAMES:
        assert "'" + name in names, name
    cli = run_cli("--config", str(config), "sql", "--format", "csv", "select name from servers", cwd=tmp_path)
    rows = [r[0] for r in csv.reader(cli.stdout.splitlines()[1:])]
    assert len(rows) == len(fixture["servers"])
    for row in rows:  # quoted, or (a tab shown as \t) no longer a formula
        assert row.startswith("'") or spreadsheet_safe(row) == row, row


def _modes(folder):
    for path in folder.rglob("*"):
        yield path, stat.S_IMODE(path.lstat().st_mode), path.is_dir()


@pytest.mark.parametrize("group_readable", [False, True])
def test_everything_written_is_owner_only_unless_the_group_may_read(clouds_yaml, tmp_path, group_readable):
    work = tmp_path / "work"
    work.mkdir()
    extra = "group_readable = true\n" if group_readable else ""
    config = work / "auditor.toml"
    config.write_text(f'{extra}database = "data/audit.duckdb"\n[report]\nformats = ["html", "csv", "json"]\n'
                      '[email]\nhost = "127.0.0.1"\nsender = "a@example.org"\n'
                      '[[email.groups]]\nname = "ops"\nrecipients = ["ops@example.org"]\n', encoding="utf-8")
    os.chmod(config, 0o644)
    old = os.umask(0o022)  # the usual umask: without our own, all of this would be world-readable
    try:
        for args in (["run", "--cloud", "demo"], ["email", "--dry-run", "--out", "outbox"]):
            done = run_cli("--config", str(config), *args, cwd=work, env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)})
            assert done.returncode in (0, 1), done.stderr
    finally:
        os.umask(old)
    written = [(p, m, d) for p, m, d in _modes(work) if p != config]
    assert any(p.suffix == ".eml" for p, _, _ in written) and any(p.name == "report.html" for p, _, _ in written)
    assert any(p.name == "audit.duckdb" for p, _, _ in written)
    assert any(p.suffix == ".parquet" and "audit.lake" in p.parts for p, _, _ in written)
    for path, mode, is_dir in written:
        allowed = (0o750 if is_dir else 0o640) if group_readable else (0o700 if is_dir else 0o600)
        assert mode & ~allowed == 0, f"{path.relative_to(work)} is {oct(mode)}"
        assert mode & 0o007 == 0


def test_control_characters_in_a_region_name_are_escaped(tmp_path, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["region"] = "Region\r\nINJECTED line"
    with FakeCloud(fixture) as cloud:
        entry = cloud.clouds_yaml_entry()
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": entry})
        done = run_cli("--database", str(tmp_path / "a.duckdb"), "-v", "snapshot", "--cloud", "demo",
                       env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 0, done.stderr
    for line in (done.stdout + done.stderr).splitlines():
        assert not line.startswith("INJECTED")
    assert "Region\\r\\nINJECTED line" in done.stdout
