"""Rule test cases as data: `<rule_id>.test.yaml` beside each rule (docs/rules.md#test-cases).

Each case is a tiny inventory, loaded into an in-memory database with the real schema and the same
derivations as a real snapshot, judged by the same engine as `auditor evaluate`, and compared with the
expected status of every resource: a row the case does not expect is a failure too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import yaml

from auditor.collect.collector import CLOUD_SCOPE_TYPES, RESOURCE_TYPES
from auditor.errors import RuleError
from auditor.rules.catalog import (
    STATUSES,
    InstanceType,
    Rule,
    load_yaml,
    same_param_type,
    yaml_error_text,
)
from auditor.rules.engine import InputState, RuleRun, run_rules
from auditor.rules.environment import prepare
from auditor.store.database import sandbox
from auditor.store.tables import RESOURCE_TABLES, SANDBOX_CONFIG, latest_views_sql, schema_sql
from auditor.store.load import derive

RULE_LEVEL = "(rule)"  # the expect key of a rule-level row (resource_id NULL)
CASE_KEYS = {"name", "inventory", "params", "instance_types", "incomplete", "snapshot", "expect"}
SNAPSHOT_KEYS = {"cloud", "region", "scope", "scope_project_ids", "compute_microversion"}
SNAPSHOT_ID = 1


@dataclass
class CaseResult:
    rule_id: str
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)


def load_cases(rule: Rule) -> list[dict]:
    path = rule.cases_path
    if not path.is_file():
        return []
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        raise RuleError(yaml_error_text(exc, path)) from None
    if not isinstance(data, dict) or set(data) != {"cases"} or not isinstance(data["cases"], list) or not data["cases"]:
        raise RuleError(f"{path}:1: must hold one key, 'cases', a non-empty list")
    problems = []
    for index, case in enumerate(data["cases"]):
        where = f"{path}: cases[{index}]"
        if not isinstance(case, dict):
            problems.append(f"{where} must be a mapping")
            continue
        unknown = set(case) - CASE_KEYS
        if unknown:
            problems.append(f"{where}: unknown key {sorted(unknown)[0]!r} (expected: {', '.join(sorted(CASE_KEYS))})")
        if not isinstance(case.get("name"), str) or not isinstance(case.get("expect"), dict):
            problems.append(f"{where}: needs a 'name' and an 'expect' mapping of resource id to status")
            continue
        for resource_id, expected in case["expect"].items():
            status = expected.get("status") if isinstance(expected, dict) else expected
            if status not in STATUSES:
                problems.append(f"{where} ({case['name']}): expected status of {resource_id} must be one of "
                                f"{', '.join(STATUSES)}, got {status!r}")
        snapshot = case.get("snapshot") or {}
        if not isinstance(snapshot, dict) or set(snapshot) - SNAPSHOT_KEYS:
            problems.append(f"{where} ({case['name']}): 'snapshot' takes only {', '.join(sorted(SNAPSHOT_KEYS))}")
        elif not isinstance(snapshot.get("compute_microversion", ""), str | None):  # YAML reads 2.60 as 2.6
            problems.append(f"{where} ({case['name']}): snapshot compute_microversion must be quoted, as \"2.60\"")
        for table in (case.get("inventory") or {}):
            if table not in RESOURCE_TABLES:
                problems.append(f"{where} ({case['name']}): unknown inventory table {table!r}")
        for name, value in (case.get("params") or {}).items():
            if name not in rule.params or not same_param_type(rule.params[name], value):
                problems.append(f"{where} ({case['name']}): parameter {name!r} is not one of the rule's, "
                                "or not of its type")
    if problems:
        raise RuleError(problems)
    return data["cases"]


_local = threading.local()


def _case_database():
    """This thread's case database: the real schema, created once, emptied before each case (a fresh
    in-memory database per case cost 80 ms, most of a case's time). It is sandboxed like an evaluation."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
        con.execute("SET TimeZone = 'UTC'")
        con.execute(schema_sql())
        con.execute(latest_views_sql())
        sandbox(con)  # the rule runs as in an evaluation
        catalog = con.execute("SELECT current_database()").fetchall()[0][0]
        # qualified: the temp views of the previous case shadow the tables' plain names
        tables = [f'"{catalog}".main."{t}"' for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE'").fetchall()]
        columns = {}
        for table, column, kind in con.execute("SELECT table_name, column_name, data_type "
                                               "FROM information_schema.columns WHERE table_schema = 'main'"
                                               ).fetchall():
            columns.setdefault(table, {})[column] = kind
        _local.con, _local.tables, _local.columns = con, tables, columns
    for table in _local.tables:
        con.execute(f"DELETE FROM {table}")
    return con, _local.columns


def run_case(rule: Rule, case: dict) -> CaseResult:
    con, columns = _case_database()
    try:
        try:
            _load_inventory(con, case, columns)
        except (duckdb.Error, TypeError, ValueError) as exc:
            return CaseResult(rule.id, case["name"], False, [f"{rule.cases_path}: case {case['name']!r}: "
                                                             f"inventory does not load: {exc}"])
        types = [InstanceType(t["name"], t.get("description", ""), t["vcpus"], t["ram_mb"], t["disk_gb"],
                              tuple(t.get("flavors", []))) for t in case.get("instance_types") or []]
        prepare(con, SNAPSHOT_ID, types)
        run = RuleRun(rule, {**rule.params, **(case.get("params") or {})})
        run_rules(con, [run], InputState.read(con), timeout=60)
        rows = con.execute("SELECT resource_id, status, reason, evidence FROM rule_results").fetchall()
    finally:  # what prepare() made: the next case starts from the plain schema again
        for kind, name in con.execute(
                "SELECT 'VIEW', view_name FROM duckdb_views() WHERE temporary UNION ALL "
                "SELECT 'TABLE', table_name FROM duckdb_tables() WHERE temporary").fetchall():
            con.execute(f'DROP {kind} IF EXISTS temp."{name}"')
    got = {(rid if rid is not None else RULE_LEVEL): (status, reason) for rid, status, reason, _ in rows}
    evidence = {(rid if rid is not None else RULE_LEVEL): json.loads(found) if found is not None else None
                for rid, _, _, found in rows}
    problems = []
    if run.outcome == "error":
        problems.append(f"the rule errored: {run.message}")
    for resource_id, expected in case["expect"].items():
        want = expected.get("status") if isinstance(expected, dict) else expected
        want_reason = expected.get("reason") if isinstance(expected, dict) else None
        if str(resource_id) not in got:
            problems.append(f"{resource_id}: expected {want}, but the rule returned no row for it")
            continue
        status, reason = got[str(resource_id)]
        if status != want:
            problems.append(f"{resource_id}: expected {want}, got {status} ({reason})")
        elif want_reason and want_reason not in (reason or ""):
            problems.append(f"{resource_id}: reason {reason!r} does not contain {want_reason!r}")
        elif isinstance(expected, dict) and "evidence" in expected \
                and evidence.get(str(resource_id)) != expected["evidence"]:
            problems.append(f"{resource_id}: evidence {evidence.get(str(resource_id))!r}, "
                            f"expected {expected['evidence']!r}")
    for resource_id, (status, reason) in got.items():
        if resource_id not in {str(k) for k in case["expect"]}:
            problems.append(f"{resource_id}: not expected, but the rule returned {status} ({reason})")
    return CaseResult(rule.id, case["name"], not problems, problems, {k: v[0] for k, v in got.items()})


def _load_inventory(con, case: dict, columns: dict[str, dict[str, str]]) -> None:
    # A snapshot's compute microversion is the one the servers were listed at (no servers without one):
    # by default as today's Nova, the fake cloud's, answers.
    snapshot = {"cloud": "test", "region": "RegionOne", "scope": "cloud", "status": "complete",
                "compute_microversion": "2.96", **(case.get("snapshot") or {})}
    incomplete = case.get("incomplete") or {}
    if incomplete:
        snapshot["status"] = "partial"
    now = datetime(2026, 1, 1)
    con.execute("INSERT INTO snapshots (id, cloud, region, scope, scope_project_ids, started_at, finished_at, "
                "status, tool_version, compute_microversion) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'test', ?)",
                [SNAPSHOT_ID, snapshot["cloud"], snapshot["region"], snapshot["scope"],
                 snapshot.get("scope_project_ids"), now, now, snapshot["status"],
                 snapshot.get("compute_microversion")])
    for resource_type in RESOURCE_TYPES:
        # As in a real snapshot, one of scope `projects` does not list what only admins may (CLOUD_SCOPE_TYPES).
        uncollected = snapshot["scope"] == "projects" and resource_type in CLOUD_SCOPE_TYPES
        state = incomplete.get(resource_type, "not collected" if uncollected else "complete")
        status, project = (state.get("status"), state.get("project")) if isinstance(state, dict) else (state, None)
        if status == "not collected":
            continue
        con.execute("INSERT INTO snapshot_resources VALUES (?, ?, ?, 0, 0, 0)", [SNAPSHOT_ID, resource_type, status])
        if status != "complete":
            con.execute("INSERT INTO collection_errors VALUES (?, ?, ?, 503, NULL, ?)",
                        [SNAPSHOT_ID, resource_type, project, f"{resource_type} listing failed (test case)"])
    types = {table: columns.get(table, {}) for table in (case.get("inventory") or {})}
    for table, rows in (case.get("inventory") or {}).items():
        for row in rows or []:
            unknown = set(row) - set(types[table])
            if unknown:
                raise ValueError(f"table {table} has no column {sorted(unknown)[0]!r}")
            values = [json.dumps(v) if types[table][c] == "JSON" and not isinstance(v, str) else v
                      for c, v in row.items()]
            columns = ", ".join(["snapshot_id", *row])
            marks = ", ".join("?" for _ in range(len(row) + 1))
            con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", [SNAPSHOT_ID, *values])
    derive(con, SNAPSHOT_ID)


def run_rule_cases(rule: Rule) -> list[CaseResult]:
    return [run_case(rule, case) for case in load_cases(rule)]


def case_statuses(rule: Rule) -> set[str]:
    """The statuses a rule's cases expect, over all resources (to check both pass and fail are covered)."""
    found = set()
    for case in load_cases(rule):
        for expected in case["expect"].values():
            found.add(expected.get("status") if isinstance(expected, dict) else expected)
    return found
