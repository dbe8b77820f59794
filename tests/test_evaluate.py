"""Evaluations end to end: the demo cloud over HTTP, partial snapshots, waivers, the diff, the CLI."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
import yaml
from conftest import (
    REPO,
    query,
    run_cli,
    snapshot_into,
    wait_until,
    write_clouds_yaml,
    write_config,
)
from freezegun import freeze_time

from auditor.config import CloudTarget, Config, RulesSettings
from auditor.fakecloud import FakeCloud
from auditor.pipeline import snapshot_targets
from auditor.rules.evaluate import evaluate, load_ruleset

GOLDEN = REPO / "tests" / "golden" / "demo_findings.yaml"
RULESET = None


def ruleset(**settings):
    global RULESET
    if settings:
        return load_ruleset(RulesSettings(**settings))
    if RULESET is None:
        RULESET = load_ruleset(RulesSettings())
    return RULESET


def failing(database: Path, evaluation_id: int) -> list[str]:
    rows = query(database, """
        SELECT f.rule_id, coalesce(p.name, f.project_id, '-'), f.resource_name
        FROM findings f LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
        WHERE f.evaluation_id = ? AND f.status = 'fail' ORDER BY ALL""", [evaluation_id])
    return [" | ".join(row) for row in rows]


# -- the demo cloud ---------------------------------------------------------------------------------------
def test_auditor_run_finds_the_planted_problems_and_no_others(clouds_yaml, tmp_path, regenerate_golden):
    config = write_config(tmp_path / "auditor.toml")
    result = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo")
    assert result.returncode == 0, result.stderr
    assert "evaluation 1 of snapshot 1 (demo/RegionOne, complete)" in result.stdout
    database = tmp_path / "audit.duckdb"
    got = failing(database, 1)
    if regenerate_golden:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            "# Failing findings of the demo cloud (rule | project | resource), reviewed against\n"
            "# sample_data/demo-cloud/README.md. Regenerate with: pytest tests/test_evaluate.py --regenerate-golden\n"
            + yaml.safe_dump(got, allow_unicode=True, width=200), encoding="utf-8")
    assert got == yaml.safe_load(GOLDEN.read_text(encoding="utf-8"))
    # every enabled rule ran on complete data, and every server was judged by every server rule
    outcomes = query(database, "SELECT outcome, count(*) FROM evaluation_rules WHERE evaluation_id = 1 GROUP BY ALL")
    assert outcomes == [("ran", len(ruleset().enabled))]
    unjudged = query(database, """
        SELECT r.rule_id, s.name FROM evaluation_rules r, servers s
        WHERE r.resource_type = 'server' AND r.evaluation_id = 1
          AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.evaluation_id = 1 AND f.rule_id = r.rule_id
                          AND f.resource_id = s.id)""")
    assert unjudged == []
    # the summary printed agrees with the database
    counts = dict(query(database, "SELECT severity, count(*) FROM findings WHERE evaluation_id = 1 "
                                  "AND status = 'fail' GROUP BY ALL"))
    assert f"failing {counts.get('critical', 0)} critical, {counts.get('high', 0)} high" in result.stdout


def test_findings_cli_filters_and_formats(clouds_yaml, tmp_path):
    config = write_config(tmp_path / "auditor.toml")
    assert run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo").returncode == 0
    result = run_cli("--config", str(config), "findings", "--severity", "critical", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and {r["severity"] for r in rows} == {"critical"} and {r["status"] for r in rows} == {"fail"}
    assert {r["resource_name"] for r in rows} >= {"allow-all-temp", "bastion-01"}

    result = run_cli("--config", str(config), "findings", "--rule", "server_has_security_group",
                     "--project", "labs", "--format", "csv")
    assert result.stdout.splitlines()[1:] and all("lab-scratch-01" in line for line in result.stdout.splitlines()[1:])

    result = run_cli("--config", str(config), "findings", "--status", "pass,fail", "--rule",
                     "server_port_security_enabled", "--format", "json")
    statuses = {r["resource_name"]: r["status"] for r in json.loads(result.stdout)}
    assert statuses["nfv-router-01"] == "fail" and statuses["shop-frontend-1"] == "pass"

    result = run_cli("--config", str(config), "findings", "--framework", "cis_controls_v8", "--format", "json")
    controls = {r["control"]: r for r in json.loads(result.stdout)}
    assert controls["4.4"]["status"] == "fail" and controls["4.4"]["failing"] > 0
    shipped = yaml.safe_load((REPO / "rules" / "frameworks" / "cis_controls_v8.yaml").read_text(encoding="utf-8"))
    assert set(controls) == {str(control["id"]) for control in shipped["controls"]}

    result = run_cli("--config", str(config), "findings", "--severity", "severe")
    assert result.returncode == 2 and "unknown severity" in result.stderr


def test_fail_on_counts_new_findings_only(clouds_yaml, tmp_path):
    config = write_config(tmp_path / "auditor.toml")
    first = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo", "--fail-on", "critical")
    assert first.returncode == 8, first.stderr
    assert "new findings of severity critical or worse" in first.stderr
    second = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo", "--fail-on", "critical")
    assert second.returncode == 0, second.stderr
    assert "0 new, 0 resolved since the previous snapshot" in second.stdout


def test_evaluate_without_a_snapshot_is_a_clear_error(tmp_path):
    config = write_config(tmp_path / "auditor.toml")
    result = run_cli("--config", str(config), "evaluate")
    assert result.returncode == 4
    assert "no snapshot database yet" in result.stderr
    assert not (tmp_path / "audit.duckdb").exists() and not (tmp_path / "audit.lake").exists()


# -- partial snapshots ------------------------------------------------------------------------------------
def test_a_failed_ports_listing_gives_skip_never_pass(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"^/network/v2\.0/ports", status=503)
    database = tmp_path / "audit.duckdb"
    [snap] = snapshot_into(database, retries=0)
    assert snap.status == "partial"
    [result] = evaluate(database, ruleset(), [snap.snapshot_id])
    rows = query(database, "SELECT rule_id, status, resource_id IS NULL, reason FROM findings WHERE evaluation_id = ?",
                 [result.evaluation_id])
    by_rule: dict[str, set[str]] = {}
    for rule_id, status, _, _ in rows:
        by_rule.setdefault(rule_id, set()).add(status)
    for rule_id in ("server_has_security_group", "server_port_security_enabled", "server_not_exposed_to_world"):
        assert by_rule[rule_id] == {"skip"}, (rule_id, by_rule[rule_id])
        [reason] = [r[3] for r in rows if r[0] == rule_id and r[2]]
        assert "ports failed" in reason
    # rules that do not read ports are judged as usual
    assert by_rule["security_group_admin_ports_not_open_to_world"] == {"pass", "fail"}
    assert dict(result.incomplete).keys() >= {"server_has_security_group", "server_not_exposed_to_world"}
    outcome = query(database, "SELECT outcome, missing_inputs FROM evaluation_rules WHERE evaluation_id = ? "
                              "AND rule_id = 'server_has_security_group'", [result.evaluation_id])
    assert outcome == [("incomplete", ["ports"])]


def test_a_403_on_one_project_skips_only_that_project(clouds_yaml, fake_cloud, tmp_path, demo_fixture):
    alice = next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")
    denied, allowed = sorted(alice["roles"])
    fake_cloud.add_fault(r"^/network/v2\.0/ports", status=403, project=denied)
    database = tmp_path / "audit.duckdb"
    [snap] = snapshot_into(database, cloud="alice")
    assert snap.status == "partial"
    [result] = evaluate(database, ruleset(), [snap.snapshot_id])
    rows = query(database, "SELECT project_id, status, resource_id IS NULL FROM findings "
                           "WHERE evaluation_id = ? AND rule_id = 'server_has_security_group'", [result.evaluation_id])
    assert {s for p, s, _ in rows if p == denied} == {"skip"}
    assert {s for p, s, level in rows if p == allowed and not level} <= {"pass", "fail"}
    assert [p for p, _, level in rows if level] == [denied]


# -- rules that break -------------------------------------------------------------------------------------
def _custom_rule(folder: Path, rule_id: str, select: str) -> None:
    path = folder / "custom" / "compute" / f"{rule_id}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"/*---\ntitle: t\nseverity: low\nresource_type: server\ndescription: d\nrationale: r\n"
                    f"remediation: m\n---*/\n{select}\n", encoding="utf-8")


def test_a_rule_that_errors_at_run_time_does_not_stop_the_others(clouds_yaml, tmp_path):
    rules = tmp_path / "rules.d"
    _custom_rule(rules, "casts_names_to_numbers", "select id as resource_id, name as resource_name, project_id, "
                 "'pass' as status, cast(name as integer)::varchar as reason from servers")
    _custom_rule(rules, "reads_local_files", "select column0 as resource_id, '' as resource_name, '' as project_id, "
                 "'pass' as status, '' as reason from read_csv('/etc/hostname', header = false)")
    _custom_rule(rules, "runs_forever", "select cast(a.range as varchar) as resource_id, '' as resource_name, "
                 "'' as project_id, 'pass' as status, '' as reason from range(100000000) a, range(100000000) b "
                 "where a.range * b.range = -1")
    config = write_config(tmp_path / "auditor.toml", '[rules]\npaths = ["rules.d"]\ntimeout = 1\n')
    result = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo")
    assert result.returncode == 13, result.stderr  # stored, but not whole: the exit code says so
    assert "3 rules in error" in result.stdout
    assert "3 rules ended in error; their findings are missing" in result.stderr
    database = tmp_path / "audit.duckdb"
    errors = dict(query(database, "SELECT rule_id, reason FROM findings WHERE status = 'error'"))
    assert set(errors) == {"casts_names_to_numbers", "reads_local_files", "runs_forever"}
    assert "Conversion Error" in errors["casts_names_to_numbers"]
    assert "Permission Error" in errors["reads_local_files"]
    assert "time limit of 1 s" in errors["runs_forever"]
    assert "rule error: reads_local_files" in result.stderr
    judged = query(database, "SELECT count(DISTINCT rule_id) FROM findings WHERE status IN ('pass', 'fail')")[0][0]
    assert judged == len(ruleset().enabled)


def test_bad_rule_config_is_refused_before_collecting(clouds_yaml, fake_cloud, tmp_path):
    cases = [
        ('[rules.params.no_such_rule]\nx = 1\n', "key 'rules.params.no_such_rule': unknown rule"),
        ('[rules.params.security_group_admin_ports_not_open_to_world]\nports = [22]\n',
         "has no parameter 'ports' (its parameters: admin_ports)"),
        ('[rules.params.security_group_admin_ports_not_open_to_world]\nadmin_ports = "22"\n',
         "must have the type of its default"),
        ('[rules]\ndisabled = ["nope"]\n', "key 'rules.disabled' names unknown rule 'nope'"),
        ('[rules]\nwaivers = "missing.yaml"\n', "key 'rules.waivers': file"),
    ]
    for text, message in cases:
        config = write_config(tmp_path / "auditor.toml", text)
        result = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo")
        assert result.returncode == 2, (text, result.stderr)
        assert message in result.stderr and str(config) in result.stderr
    assert fake_cloud.requests_to("/servers") == []


def test_parameter_overrides_change_the_findings(clouds_yaml, tmp_path):
    config = write_config(tmp_path / "auditor.toml",
                          "[rules.params.security_group_admin_ports_not_open_to_world]\nadmin_ports = [3389]\n")
    assert run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo").returncode == 0
    names = {r[0] for r in query(tmp_path / "audit.duckdb", "SELECT resource_name FROM findings WHERE status = 'fail' "
                                 "AND rule_id = 'security_group_admin_ports_not_open_to_world'")}
    assert "windows-rdp" in names and "ssh-bastion" not in names
    params = query(tmp_path / "audit.duckdb", "SELECT params FROM evaluation_rules "
                   "WHERE rule_id = 'security_group_admin_ports_not_open_to_world'")[0][0]
    assert json.loads(params) == {"admin_ports": [3389]}


# -- waivers ----------------------------------------------------------------------------------------------
WAIVERS = """waivers:
  - id: bastion-ssh
    rule: security_group_admin_ports_not_open_to_world
    match: {resource_name: "ssh-*", project: storefront}
    reason: Bastion host, keys only
    owner: storefront-team@example.com
    expires: 2026-12-31
  - id: stale
    rule: server_has_security_group
    match: {resource_name: "no-such-server"}
    reason: Server was deleted long ago
    owner: ops@example.com
    expires: 2027-06-30
"""


@pytest.mark.parametrize("today, bastion_waived, states", [
    ("2026-12-31", True, {"bastion-ssh": "active", "stale": "unmatched"}),
    ("2027-01-01", False, {"bastion-ssh": "expired", "stale": "unmatched"}),
    ("2027-07-01", False, {"bastion-ssh": "expired", "stale": "expired"}),
])
def test_waivers_apply_until_they_expire(clouds_yaml, tmp_path, today, bastion_waived, states):
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    database = tmp_path / "audit.duckdb"
    [snap] = snapshot_into(database)
    with freeze_time(today):
        [result] = evaluate(database, ruleset(waivers=waivers), [snap.snapshot_id])
    rows = query(database, "SELECT resource_name, status, waived, waiver_id FROM findings WHERE rule_id = "
                           "'security_group_admin_ports_not_open_to_world' AND status = 'fail'")
    by_name = {r[0]: r for r in rows}
    assert by_name["ssh-bastion"][1:] == ("fail", bastion_waived, "bastion-ssh" if bastion_waived else None)
    assert not any(r[2] for name, r in by_name.items() if name != "ssh-bastion")  # the glob matched one group
    assert dict(query(database, "SELECT waiver_id, state FROM evaluation_waivers")) == states
    notes = " / ".join(result.waiver_notes)
    assert "waiver stale (server_has_security_group, owner ops@example.com)" in notes
    assert ("expired on 2026-12-31" in notes) == (not bastion_waived)
    assert result.waived == (1 if bastion_waived else 0)


@pytest.mark.parametrize("text, line, message", [
    ("waivers:\n  - id: a\n    rule: nope\n    match: {resource_id: x}\n    reason: r\n    owner: o\n"
     "    expires: 2027-01-01\n", 3, "unknown rule 'nope'"),
    ("waivers:\n  - id: a\n    rule: server_has_security_group\n    match: {resource_id: x}\n    reason: r\n"
     "    owner: o\n    expires: soon\n", 7, "'expires' must be a date"),
    ("waivers:\n  - id: a\n    rule: server_has_security_group\n    match: {server: x}\n    reason: r\n"
     "    owner: o\n    expires: 2027-01-01\n", 4, "unknown match key 'server'"),
    ("waivers:\n  - id: a\n    rule: server_has_security_group\n    match: {resource_id: x}\n    owner: o\n"
     "    expires: 2027-01-01\n", 2, "missing required key 'reason'"),
    ("waivers:\n  - id: a\n    rule: [unclosed\n", 4, "invalid YAML"),
    ("waivers:\n  - id: a\n    rule: server_has_security_group\n    match: {resource_id: x}\n    reason: r\n"
     "    owner: o\n    expires: 2027-02-30\n", 7, "invalid date '2027-02-30'"),
])
@pytest.mark.parametrize("command", [("rules", "validate"), ("evaluate",)])
def test_a_bad_waiver_file_is_refused_with_its_line(tmp_path, text, line, message, command):
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(text, encoding="utf-8")
    config = write_config(tmp_path / "auditor.toml", '[rules]\nwaivers = "waivers.yaml"\n')
    result = run_cli("--config", str(config), *command)
    assert result.returncode == 6
    assert f"{waivers}:{line}: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- the diff between snapshots ---------------------------------------------------------------------------
def _fixed_and_broken(demo_fixture: dict) -> dict:
    """The demo cloud a day later: SSH to the bastion closed, Redis opened on the `web` group."""
    fixture = copy.deepcopy(demo_fixture)
    for group in fixture["security_groups"]:
        if group["name"] == "ssh-bastion":
            group["security_group_rules"] = [r for r in group["security_group_rules"]
                                             if not (r["direction"] == "ingress" and r["port_range_min"] == 22)]
        if group["name"] == "web":
            rule = copy.deepcopy(next(r for r in group["security_group_rules"] if r["port_range_min"] == 443))
            rule.update(id="0f1e2d3c-0000-4000-8000-000000006379", port_range_min=6379, port_range_max=6379,
                        description="Redis for the new cache (oops)")
            group["security_group_rules"].append(rule)
    return fixture


def _snapshot_of(fixture: dict, tmp_path: Path, database: Path, monkeypatch) -> int:
    with FakeCloud(fixture) as cloud:
        path = write_clouds_yaml(tmp_path / "clouds-diff.yaml", {"demo": cloud.clouds_yaml_entry()})
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
        [result] = snapshot_targets(Config(source=None, database=database), [CloudTarget("demo")], threading.Event())
    return result.snapshot_id


def test_the_diff_shows_new_resolved_and_persisting(tmp_path, demo_fixture, monkeypatch):
    database = tmp_path / "audit.duckdb"
    first = _snapshot_of(demo_fixture, tmp_path, database, monkeypatch)
    [one] = evaluate(database, ruleset(), [first])
    second = _snapshot_of(_fixed_and_broken(demo_fixture), tmp_path, database, monkeypatch)
    [two] = evaluate(database, ruleset(), [second])
    assert two.previous_evaluation_id == one.evaluation_id

    new = query(database, "SELECT rule_id, resource_name FROM findings WHERE evaluation_id = ? AND is_new ORDER BY ALL",
                [two.evaluation_id])
    assert new == [("security_group_sensitive_ports_not_open_to_world", "web"),
                   ("server_not_exposed_to_world", "shop-frontend-1")]
    resolved = query(database, "SELECT rule_id, resource_name, resolution FROM resolved_findings "
                               "WHERE evaluation_id = ? ORDER BY ALL", [two.evaluation_id])
    assert resolved == [("security_group_admin_ports_not_open_to_world", "ssh-bastion", "passed"),
                        ("server_not_exposed_to_world", "bastion-01", "passed")]
    assert two.resolved == 2 and sum(two.new.values()) == 2
    # a finding that persists keeps the time it was first seen
    first_started = query(database, "SELECT started_at FROM snapshots WHERE id = ?", [first])[0][0]
    persisting = query(database, "SELECT is_new, first_seen_at FROM findings WHERE evaluation_id = ? AND "
                                 "rule_id = 'security_group_no_all_traffic_from_world' AND status = 'fail'",
                       [two.evaluation_id])
    assert persisting == [(False, first_started)]

    # the documented auditor queries answer the same (docs/schema.md)
    published = database  # the catalog, opened like any DuckDB file
    examples = _documented_queries()
    assert {r[1] for r in _run(published, examples["what was resolved between two snapshots"],
                               {"old": first, "new": second})} == {"ssh-bastion", "bastion-01"}
    assert _run(published, examples["when did this finding first appear"],
                {"rule": "security_group_no_all_traffic_from_world", "resource": "allow-all-temp"}) \
        == [(first_started, first)]
    failed = _run(published, examples["what failed in snapshot X"], {"snapshot": second})
    assert ("critical", "security_group_no_all_traffic_from_world", "allow-all-temp") in \
        {(r[0], r[1], r[2]) for r in failed}


def _documented_queries() -> dict[str, str]:
    """The SQL examples of docs/schema.md, by the heading-ish line above each (`-- <title>`)."""
    text = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    found = {}
    for block in text.split("```sql")[1:]:
        sql = block.split("```")[0].strip()
        first = sql.splitlines()[0]
        if first.startswith("-- "):
            found[first[3:].strip()] = sql
    return found


def _run(published: Path, sql: str, params: dict):
    import duckdb

    con = duckdb.connect(str(published), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_a_partial_snapshot_is_not_the_base_of_the_next_diff(clouds_yaml, fake_cloud, tmp_path):
    database = tmp_path / "audit.duckdb"
    [complete] = snapshot_into(database)
    [one] = evaluate(database, ruleset(), [complete.snapshot_id])
    fault = fake_cloud.add_fault(r"^/network/v2\.0/ports", status=503)
    [partial] = snapshot_into(database, retries=0)
    [two] = evaluate(database, ruleset(), [partial.snapshot_id])
    assert two.previous_evaluation_id == one.evaluation_id
    assert two.resolved == 0  # what the partial snapshot could not see is not "resolved"
    skipped = query(database, "SELECT first_seen_at IS NOT NULL FROM findings WHERE evaluation_id = ? "
                              "AND rule_id = 'server_has_security_group' AND resource_name = 'lab-scratch-01'",
                    [two.evaluation_id])
    assert skipped == [(True,)]  # a skipped finding keeps its age
    fake_cloud.faults.remove(fault)
    [again] = snapshot_into(database)
    [three] = evaluate(database, ruleset(), [again.snapshot_id])
    assert three.previous_evaluation_id == one.evaluation_id
    assert sum(three.new.values()) == 0 and three.resolved == 0


# -- secrets in metadata ----------------------------------------------------------------------------------
def test_credentials_in_metadata_and_image_properties_are_findings(tmp_path, demo_fixture, monkeypatch):
    fixture = copy.deepcopy(demo_fixture)
    server = next(s for s in fixture["servers"] if s["name"] == "shop-frontend-2")
    server["metadata"].update(password="plain-pw-1", user_data="I2Nsb3VkLWNvbmZpZyBwdzE=")
    image = next(i for i in fixture["images"] if i["name"] == "debian-12-genericcloud")
    image.update(password="img-pw-2")
    database = tmp_path / "audit.duckdb"
    snapshot_id = _snapshot_of(fixture, tmp_path, database, monkeypatch)
    [result] = evaluate(database, ruleset(), [snapshot_id])
    found = query(database, "SELECT resource_name, reason FROM findings WHERE evaluation_id = ? AND "
                            "status = 'fail' AND rule_id LIKE '%credentials'", [result.evaluation_id])
    by_name = dict(found)
    assert set(by_name) == {"shop-frontend-2", "etl-worker-01", "debian-12-genericcloud",
                            "storefront-web-golden-2025.05", "storefront-orphan-data",
                            "storefront-orphan-before-cleanup", "etl-staging"}  # a volume, its snapshot, a container
    assert "password" in by_name["shop-frontend-2"] and "user_data" in by_name["shop-frontend-2"]
    assert "backup_password" in by_name["storefront-orphan-data"]
    assert "db-password" in by_name["etl-staging"]
    assert "restore_token" in by_name["storefront-orphan-before-cleanup"]
    assert "password" in by_name["debian-12-genericcloud"]
    assert not any(secret in reason for reason in by_name.values()
                   for secret in ("plain-pw-1", "img-pw-2", "hunter2-cinder", "tok-9f8e7d6c5b4a39281706",
                                  "demo-etl-db-password-55ab"))


def _snapshot_with_a_rule_that_runs_forever(config_path: Path) -> Path:
    """A snapshot of the demo cloud beside `config_path`, whose rules include one that never ends."""
    _custom_rule(config_path.parent / "rules.d", "runs_forever",
                 "select cast(a.range as varchar) as resource_id, '' as resource_name, '' as project_id, "
                 "'pass' as status, '' as reason from range(100000000) a, range(100000000) b "
                 "where a.range * b.range = -1")
    config = write_config(config_path, '[rules]\npaths = ["rules.d"]\n')
    assert run_cli("--config", str(config), "snapshot", "--cloud", "demo").returncode == 0
    return config


def test_sigterm_stops_a_running_rule_and_writes_no_evaluation(clouds_yaml, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    config = _snapshot_with_a_rule_that_runs_forever(tmp_path / "auditor.toml")
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "--config", str(config), "-v", "evaluate"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # the fast rules are done by now; the slow one is running
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert time.monotonic() - started < 5
    assert "evaluation stopped before it finished; nothing was written" in stderr
    assert query(tmp_path / "audit.duckdb", "SELECT count(*) FROM evaluations") == [(0,)]
    assert list((tmp_path / "audit.lake" / "_staging").iterdir()) == []  # its spill folder went with it


def test_an_evaluation_killed_mid_run_leaves_nothing_once_the_next_one_starts(clouds_yaml, tmp_path):
    # DuckDB spills into the evaluation's staging folder in the lake (not /tmp, which may be memory), so a
    # kill -9 leaves it there; the next writer removes it with the dead process's claim.
    import subprocess
    import sys

    slow = _snapshot_with_a_rule_that_runs_forever(tmp_path / "slow.toml")
    staging = tmp_path / "audit.lake" / "_staging"
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "--config", str(slow), "evaluate"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spills = wait_until(lambda: list(staging.glob("evaluation-*/.spill")), timeout=30)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert len(spills) == 1 and spills[0].parent.is_dir()
    result = run_cli("--config", str(write_config(tmp_path / "auditor.toml")), "evaluate")
    assert result.returncode == 0, result.stderr
    assert list(staging.iterdir()) == []
    assert query(tmp_path / "audit.duckdb", "SELECT count(*) FROM evaluations") == [(1,)]


# -- instance types as data -------------------------------------------------------------------------------
def test_each_server_gets_the_instance_type_its_evaluation_mapped_and_keeps_it_after_the_mapping_changes(
        clouds_yaml, tmp_path):
    config = write_config(tmp_path / "auditor.toml")
    assert run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo").returncode == 0
    database = tmp_path / "audit.duckdb"
    shipped = yaml.safe_load((REPO / "sample_data" / "instance_types.yaml").read_text())["instance_types"]
    assert query(database, "SELECT count(*) FROM evaluation_instance_types WHERE evaluation_id = 1") == [(len(shipped),)]
    # the view says what the rule judged, server by server
    judged = query(database, "SELECT resource_id, status, reason FROM findings "
                             "WHERE evaluation_id = 1 AND rule_id = 'server_flavor_mapped_to_instance_type'")
    typed = dict(query(database, "SELECT server_id, instance_type FROM server_instance_types WHERE snapshot_id = 1"))
    assert query(database, "SELECT count(*) FROM server_instance_types WHERE snapshot_id = 1") == [(len(judged),)]
    assert len(typed) == len(judged) > 0
    for server_id, status, reason in judged:
        if status == "pass":
            assert f"mapped to instance type {typed[server_id]} by" in reason
        else:
            assert typed[server_id] is None, reason
    unmapped = {server_id for server_id, instance_type in typed.items() if instance_type is None}
    assert unmapped and query(database, "SELECT DISTINCT flavor_name FROM server_instance_types "
                                        "WHERE snapshot_id = 1 AND instance_type IS NULL AND flavor_name IS NOT NULL"
                              ) == [("legacy.custom-7",)]

    # The mapping changes: the next evaluation maps the legacy flavor; the first keeps what it judged with.
    mapping = tmp_path / "instance_types.yaml"
    mapping.write_text(yaml.safe_dump({"instance_types": shipped + [
        {"name": "legacy.approved", "description": "kept until 2027", "vcpus": 3, "ram_mb": 7168, "disk_gb": 30,
         "flavors": ["legacy.custom-7"]}]}), encoding="utf-8")
    changed = write_config(tmp_path / "changed.toml", f'[rules]\ninstance_types = "{mapping}"\n')
    assert run_cli("--config", str(changed), "run", "--no-report", "--cloud", "demo").returncode == 0
    assert query(database, "SELECT DISTINCT instance_type, mapped_by FROM server_instance_types "
                           "WHERE snapshot_id = 2 AND flavor_name = 'legacy.custom-7'") == [("legacy.approved", "name")]
    assert query(database, "SELECT DISTINCT instance_type FROM server_instance_types "
                           "WHERE snapshot_id = 1 AND flavor_name = 'legacy.custom-7'") == [(None,)]
    assert query(database, "SELECT DISTINCT snapshot_id, evaluation_id FROM latest_server_instance_types") == [(2, 2)]


def test_an_evaluation_written_before_findings_had_evidence_is_still_a_diff_base(clouds_yaml, tmp_path):
    """A lake from before the evidence column: the next evaluation reads its diff base's file with the
    table's schema, and the catalog reads the old findings with evidence NULL."""
    import duckdb

    from auditor.store.database import lake_path

    config = write_config(tmp_path / "auditor.toml")
    assert run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo").returncode == 0
    database = tmp_path / "audit.duckdb"
    part = lake_path(database) / "findings" / "evaluation_id=1" / "part-0.parquet"
    older = part.with_name("older.parquet")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * EXCLUDE (evidence) FROM read_parquet('{part}')) TO '{older}' (FORMAT parquet)")
    con.close()
    older.replace(part)
    done = run_cli("--config", str(config), "run", "--no-report", "--cloud", "demo")
    assert done.returncode == 0, done.stderr
    assert query(database, "SELECT evaluation_id, count(evidence) > 0 FROM findings GROUP BY ALL ORDER BY ALL") \
        == [(1, False), (2, True)]
    # nothing is new: the old evaluation was read as the diff base
    assert query(database, "SELECT count(*) FROM findings WHERE evaluation_id = 2 AND is_new") == [(0,)]
