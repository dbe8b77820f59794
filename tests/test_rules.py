"""The rule catalog: every rule's cases, the meta-checks on the catalog, and rule-file validation."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import REPO, run_cli

from auditor.config import RulesSettings
from auditor.errors import RuleError
from auditor.rules.cases import case_statuses, load_cases, run_case
from auditor.rules.catalog import load_catalog, parse_framework_file
from auditor.rules.environment import HELPER_INPUTS, HELPERS_SQL, prepare
from auditor.rules.evaluate import check_catalog_sql, load_ruleset
from auditor.store.tables import schema_sql

RULES = REPO / "rules"
SHIPPED = load_catalog([RULES])


def _all_cases():
    for rule in sorted(SHIPPED.rules.values(), key=lambda r: r.id):
        for case in load_cases(rule):
            yield pytest.param(rule, case, id=f"{rule.id}: {case['name']}")


@pytest.mark.parametrize("rule, case", list(_all_cases()))
def test_rule_case(rule, case):
    result = run_case(rule, case)
    assert result.passed, "\n".join(result.problems)


# -- meta-tests on the shipped catalog --------------------------------------------------------------------
def test_every_shipped_rule_parses_against_the_schema():
    ruleset = load_ruleset(RulesSettings())
    assert len(ruleset.enabled) >= 20
    assert check_catalog_sql(ruleset) == []


@pytest.mark.parametrize("rule_id", sorted(SHIPPED.rules))
def test_every_rule_has_a_pass_and_a_fail_case(rule_id):
    statuses = case_statuses(SHIPPED.rules[rule_id])
    assert {"pass", "fail"} <= statuses, f"{rule_id} cases cover only {sorted(statuses)}"


@pytest.mark.parametrize("rule_id", sorted(SHIPPED.rules))
def test_every_rule_is_mapped_to_both_frameworks(rule_id):
    controls = SHIPPED.controls_of(rule_id)
    assert set(controls) == {"cis_controls_v8", "nist_800_53_r5"}, controls


def test_every_framework_reference_points_at_an_existing_rule():
    for framework in SHIPPED.frameworks.values():
        for control in framework.controls:
            assert control.rules, f"{framework.id} {control.id} maps no rule"
            for rule_id in control.rules:
                assert rule_id in SHIPPED.rules, f"{framework.path}: {control.id} names unknown {rule_id}"


def test_a_framework_naming_an_unknown_rule_is_rejected_with_its_line(tmp_path):
    folder = tmp_path / "rules"
    (folder / "frameworks").mkdir(parents=True)
    _write_rule(folder / "custom" / "x" / "always_passes.sql", _GOOD)
    (folder / "frameworks" / "mine.yaml").write_text(
        "framework: mine\ntitle: Mine\ncontrols:\n  - id: A-1\n    title: a\n    rules:\n"
        "      - always_passes\n      - no_such_rule\n", encoding="utf-8")
    with pytest.raises(RuleError) as error:
        load_catalog([folder])
    assert error.value.problems == [f"{folder / 'frameworks' / 'mine.yaml'}:8: control A-1 names unknown rule "
                                    "'no_such_rule'"]
    assert parse_framework_file(folder / "frameworks" / "mine.yaml").controls[0].rules == ("always_passes",
                                                                                           "no_such_rule")


def test_rule_ids_are_file_names_and_files_sit_under_pack_and_service():
    for rule in SHIPPED.rules.values():
        relative = rule.path.relative_to(RULES)
        assert len(relative.parts) == 3 and relative.parts[0] == "openstack", relative
        assert rule.cases_path.is_file(), f"{rule.id} has no {rule.cases_path.name}"


def test_the_rule_environment_is_documented():
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    names = set(re.findall(r"CREATE OR REPLACE TEMP (?:MACRO|TABLE|VIEW) (\w+)", HELPERS_SQL))
    assert names >= set(HELPER_INPUTS) - {"server_security_groups"}
    for name in names | {"instance_types", "instance_type_flavors", "snapshot"}:
        assert f"`{name}" in text, f"docs/rules.md does not document {name}"
    for rule_id in SHIPPED.rules:
        assert f"`{rule_id}`" in text, f"docs/rules.md does not list {rule_id}"


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("203.0.113.25", True), ("172.32.0.1", True), ("100.128.0.1", True),
    ("10.1.2.3", False), ("172.16.0.1", False), ("172.31.255.255", False), ("192.168.1.1", False),
    ("100.64.0.1", False), ("127.0.0.1", False), ("169.254.1.1", False), ("0.1.2.3", False), ("224.0.0.1", False),
    ("255.255.255.255", False), ("256.1.1.1", False), ("1.2.3", False), ("", False), (None, False),
    ("2001:db8:30::15", True), ("2a00:1450::1", True), ("fd00::1", False), ("fe80::1", False), ("::1", False),
    ("::ffff:8.8.8.8", False),
])
def test_is_public_ip(address, public):
    import duckdb

    from auditor.rules.environment import prepare
    from auditor.store.tables import schema_sql

    con = duckdb.connect()
    con.execute(schema_sql())
    prepare(con, 1, [])
    assert con.execute("SELECT is_public_ip(?)", [address]).fetchall() == [(public,)]


# -- validation of rule files -----------------------------------------------------------------------------
_GOOD = """/*---
title: Always passes
severity: low
resource_type: server
description: d
rationale: r
remediation: m
---*/
select id as resource_id, name as resource_name, project_id, 'pass' as status, 'ok' as reason from servers
"""


def _write_rule(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, line, message", [
    (_GOOD.replace("severity: low", "severity: [low"), 4, "invalid YAML: expected ',' or ']', but got ':' "
                                                         "(while parsing a flow sequence on line 3)"),
    (_GOOD.replace("description: d", "descripton: d"), 5, "unknown key 'descripton'"),
    (_GOOD.replace("rationale: r\n", ""), 7, "missing required key 'rationale'"),
    (_GOOD.replace("severity: low", "severity: severe"), 3, "unknown severity 'severe'"),
    (_GOOD.replace("resource_type: server", "resource_type: vm"), 4, "unknown resource_type 'vm'"),
    (_GOOD.replace("from servers", "from servers\nwhere nonexistent_column = 1"), 10,
     'Referenced column "nonexistent_column" not found'),
    (_GOOD.replace("from servers", "from servres"), 9, "Table with name servres does not exist"),
    (_GOOD.replace("select id", "select\nid frm"), 10, "syntax error"),
    (_GOOD.replace("'ok' as reason", "'ok' as why"), 1, "must return exactly the columns"),
    (_GOOD.replace("remediation: m", "remediation: m\nparams: {limit: 3}"), 1,
     "parameter 'limit' is declared but not used"),
    (_GOOD.replace("from servers", "from servers; delete from servers"), 1, "exactly one SELECT"),
    (_GOOD.replace("'ok' as reason", "'ok' as reason, {'a': 1} as evidence"), 1,
     "an evidence column needs an 'evidence' key in the metadata"),
    (_GOOD.replace("remediation: m", "remediation: m\nevidence: {a: the a}"), 1,
     "must return exactly the columns resource_id, resource_name, project_id, status, reason, evidence"),
    (_GOOD.replace("remediation: m", "remediation: m\nevidence: [a]"), 8, "'evidence' must map each"),
], ids=["yaml", "unknown-key", "missing-key", "severity", "resource-type", "column", "table", "syntax",
        "output-columns", "unused-param", "two-statements", "evidence-undeclared", "evidence-missing",
        "evidence-not-mapping"])
def test_rules_validate_names_file_and_line(tmp_path, text, line, message):
    rule = _write_rule(tmp_path / "mine" / "compute" / "my_rule.sql", text)
    result = run_cli("rules", "validate", str(tmp_path / "mine"), env={"AUDITOR_CONFIG": ""}, cwd=tmp_path)
    assert result.returncode == 6, result.stderr
    assert f"{rule}:{line}: " in result.stderr, result.stderr
    assert message in result.stderr


def test_rules_validate_and_test_accept_a_good_custom_folder(tmp_path):
    _write_rule(tmp_path / "mine" / "compute" / "always_passes.sql", _GOOD)
    (tmp_path / "mine" / "compute" / "always_passes.test.yaml").write_text(
        "cases:\n  - name: one server\n    inventory:\n      servers: [{id: s1, name: a, project_id: p}]\n"
        "    expect: {s1: pass}\n", encoding="utf-8")
    result = run_cli("rules", "validate", str(tmp_path / "mine"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 rules valid")
    result = run_cli("rules", "test", str(tmp_path / "mine"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS always_passes: one server" in result.stdout


def test_evidence_is_an_object_of_the_declared_keys_or_the_rule_errors(tmp_path):
    rule = _GOOD.replace("remediation: m", "remediation: m\nevidence: {port: the port}").replace(
        "'ok' as reason", "'ok' as reason, CASE WHEN name = 'a' THEN {'port': 22} ELSE {'other': 1} END as evidence")
    _write_rule(tmp_path / "mine" / "compute" / "always_passes.sql", rule)
    (tmp_path / "mine" / "compute" / "always_passes.test.yaml").write_text(
        "cases:\n  - name: declared\n    inventory:\n      servers: [{id: s1, name: a}]\n"
        "    expect: {s1: {status: pass, evidence: {port: 22}}}\n"
        "  - name: undeclared\n    inventory:\n      servers: [{id: s2, name: b}]\n"
        "    expect: {s2: pass}\n", encoding="utf-8")
    result = run_cli("rules", "test", str(tmp_path / "mine"), cwd=tmp_path)
    assert "PASS always_passes: declared" in result.stdout
    assert result.returncode != 0 and "1 rows whose evidence is not an object of the keys the rule declares (port)" \
        in result.stdout + result.stderr


@pytest.mark.parametrize("expression, expected", [
    ("MAP {'port': 22}", {"port": 22}),
    ("""'{"port": 22}'::JSON""", {"port": 22}),
    ("{'port': NULL}", None),  # nothing left: no evidence
    ("NULL", None),
    ("{'port': [1, NULL]}", {"port": [1, None]}),  # inside a list a null stays
])
def test_evidence_may_be_a_struct_map_or_json_and_an_empty_one_is_none(tmp_path, expression, expected):
    rule = _GOOD.replace("remediation: m", "remediation: m\nevidence: {port: the port}").replace(
        "'ok' as reason", f"'ok' as reason, {expression} as evidence")
    _write_rule(tmp_path / "mine" / "compute" / "always_passes.sql", rule)
    (tmp_path / "mine" / "compute" / "always_passes.test.yaml").write_text(yaml.safe_dump({"cases": [
        {"name": "right", "inventory": {"servers": [{"id": "s1", "name": "a"}]},
         "expect": {"s1": {"status": "pass", "evidence": expected}}},
        {"name": "wrong", "inventory": {"servers": [{"id": "s1", "name": "a"}]},
         "expect": {"s1": {"status": "pass", "evidence": {"port": 23}}}}]}), encoding="utf-8")
    result = run_cli("rules", "test", str(tmp_path / "mine"), cwd=tmp_path)
    assert "PASS always_passes: right" in result.stdout, result.stdout
    assert "FAIL always_passes: wrong" in result.stdout and "expected {'port': 23}" in result.stdout


def test_rules_test_reports_a_failing_case(tmp_path):
    _write_rule(tmp_path / "mine" / "compute" / "always_passes.sql", _GOOD)
    (tmp_path / "mine" / "compute" / "always_passes.test.yaml").write_text(
        "cases:\n  - name: wrongly expects a fail\n    inventory:\n      servers: [{id: s1, name: a}]\n"
        "    expect: {s1: fail}\n", encoding="utf-8")
    result = run_cli("rules", "test", str(tmp_path / "mine"), cwd=tmp_path)
    assert result.returncode == 6
    assert "FAIL always_passes: wrongly expects a fail" in result.stdout
    assert "s1: expected fail, got pass" in result.stdout


@pytest.mark.parametrize(("snapshot", "message"), [
    # a typo would leave the case judged at the default microversion, passing for the wrong reason
    ("{compute_version: '2.1'}", "cases[0] (old nova): 'snapshot' takes only cloud, compute_microversion, region"),
    ("{compute_microversion: 2.60}", "cases[0] (old nova): snapshot compute_microversion must be quoted"),  # 2.6
])
def test_a_case_snapshot_that_would_be_misread_is_refused(tmp_path, snapshot, message):
    _write_rule(tmp_path / "mine" / "compute" / "always_passes.sql", _GOOD)
    (tmp_path / "mine" / "compute" / "always_passes.test.yaml").write_text(
        f"cases:\n  - name: old nova\n    snapshot: {snapshot}\n"
        "    inventory:\n      servers: [{id: s1, name: a}]\n    expect: {s1: pass}\n", encoding="utf-8")
    result = run_cli("rules", "test", str(tmp_path / "mine"), cwd=tmp_path)
    assert result.returncode == 6
    assert message in result.stderr + result.stdout


@pytest.mark.parametrize(("version", "expected"), [
    ("2.25", [False, False]), ("2.26", [True, False]), ("2.62", [True, False]), ("2.63", [True, True]),
    ("2.100", [True, True]), ("3.0", [True, True]), ("2.9", [False, False]),
    ("", [None, None]), (None, [None, None]), ("2", [None, None]), ("x.y", [None, None]), ("2.96.1", [None, None]),
])
def test_compute_api_at_least_compares_microversions_as_numbers(version, expected):
    con = duckdb.connect()
    con.execute(schema_sql())
    con.execute("INSERT INTO snapshots (id, cloud, region, scope, started_at, finished_at, status, tool_version, "
                "compute_microversion) VALUES (7, 'c', 'r', 'cloud', now(), now(), 'complete', 't', ?)", [version])
    prepare(con, 7, [])
    assert list(con.execute("SELECT compute_api_at_least(2, 26), compute_api_at_least(2, 63)").fetchone()) == expected


def test_a_duplicate_rule_id_names_both_files(tmp_path):
    first = _write_rule(tmp_path / "a" / "x" / "always_passes.sql", _GOOD)
    second = _write_rule(tmp_path / "b" / "x" / "always_passes.sql", _GOOD)
    with pytest.raises(RuleError) as error:
        load_catalog([tmp_path / "a", tmp_path / "b"])
    assert error.value.problems == [f"{second}:1: rule id 'always_passes' is also defined in {first}"]


def test_shipped_catalog_validates_from_the_cli():
    result = run_cli("rules", "validate", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert f"{len(SHIPPED.rules)} rules valid; 2 frameworks" in result.stdout


def test_shipped_cases_pass_from_the_cli():
    # every case of every rule runs in-process above; the command is shown working on one pack's folder
    folder = REPO / "rules" / "openstack" / "image"
    result = run_cli("rules", "test", "-q", str(folder), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [rule for rule in SHIPPED.rules.values() if folder in rule.path.parents]
    cases = sum(len(load_cases(rule)) for rule in rules)
    assert re.search(rf"{cases} of {cases} cases passed in {len(rules)} rules", result.stdout), result.stdout
