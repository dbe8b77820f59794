"""Running rules on a prepared connection (see environment.py) and checking what they return.

Each rule's rows land in a temp table of its own, all seen through the temp view `rule_results`. A rule
that fails at run time, returns a status outside pass/fail/skip/info, judges one resource twice or runs
past its time limit becomes one `error` row; the other rules still run. A rule whose input listings are
incomplete in the snapshot has its rows turned into `skip` (only for the projects affected, when the
failure was limited to some projects), plus a rule-level `skip` row that says what was missing: missing
data never reads as `pass`.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb

from auditor.errors import EvaluationCancelled
from auditor.rules.catalog import STATUSES, Rule
from auditor.rules.environment import REMOTE_ADDRESS_GROUPS, inputs_of

RESULT_COLUMNS = "rule_id VARCHAR, resource_id VARCHAR, resource_name VARCHAR, project_id VARCHAR, " \
                 "status VARCHAR, reason VARCHAR, evidence JSON"
# A struct built in several CASE branches carries every branch's keys, NULL in the others: merged into {} as a
# JSON merge patch (RFC 7386), keys whose value is null are dropped, in nested objects too (not inside lists);
# what is left empty, or a JSON null, is no evidence (NULL).
_EVIDENCE = "nullif(nullif(json_merge_patch('{}', to_json(evidence)), 'null'::JSON), '{}'::JSON)"
_LINE = re.compile(r"LINE (\d+):")
_PARAM = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_INPUTS: dict[str, frozenset[str]] = {}


@dataclass
class RuleRun:
    rule: Rule
    params: dict[str, Any]
    outcome: str = "ran"  # ran | incomplete | error
    missing_inputs: list[str] = field(default_factory=list)
    message: str | None = None
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class InputState:
    """What the snapshot says about each listing: its status and the projects its errors were limited to."""

    status: dict[str, str]  # resource type -> complete | partial | failed
    error_projects: dict[str, set[str] | None]  # resource type -> projects with errors; None: cloud-wide
    error_messages: dict[str, str]

    @classmethod
    def read(cls, con) -> InputState:
        status = dict(con.execute("SELECT resource_type, status FROM snapshot_resources").fetchall())
        projects: dict[str, set[str] | None] = {}
        messages: dict[str, str] = {}
        for resource_type, project_id, message in con.execute(
            "SELECT resource_type, project_id, message FROM collection_errors ORDER BY ALL"
        ).fetchall():
            messages.setdefault(resource_type, message)
            if project_id is None:
                projects[resource_type] = None
            elif projects.get(resource_type, set()) is not None:
                projects.setdefault(resource_type, set()).add(project_id)
        _remote_address_groups(con, status, projects, messages)
        return cls(status, projects, messages)


def _remote_address_groups(con, status: dict, projects: dict, messages: dict) -> None:
    """The state of REMOTE_ADDRESS_GROUPS: the address groups ingress security group rules name as their
    remote (world_ingress_rules reads no other). With no rule naming one, nothing is missing, even in a
    snapshot that did not or could not list address groups; otherwise the listing's own state, and partial
    for the projects whose rules name a group that is not in the snapshot."""
    named, unknown = con.execute("""
        SELECT count(*), list(DISTINCT {'project': r.project_id, 'group': r.remote_address_group_id})
                             FILTER (WHERE a.id IS NULL)
        FROM security_group_rules r LEFT JOIN (SELECT DISTINCT id FROM address_groups) a
          ON a.id = r.remote_address_group_id
        WHERE r.remote_address_group_id IS NOT NULL AND r.direction = 'ingress'""").fetchall()[0]
    if not named:
        status[REMOTE_ADDRESS_GROUPS] = "complete"
        return
    status[REMOTE_ADDRESS_GROUPS] = state = status.get("address_groups", "not collected")
    if "address_groups" in messages:
        messages[REMOTE_ADDRESS_GROUPS] = messages["address_groups"]
    if state != "complete":
        projects[REMOTE_ADDRESS_GROUPS] = projects.get("address_groups")
        return
    if unknown:
        status[REMOTE_ADDRESS_GROUPS] = "partial"
        groups = sorted({entry["group"] for entry in unknown})
        messages[REMOTE_ADDRESS_GROUPS] = (f"security group rules name {len(groups)} address group(s) missing "
                                           f"from the snapshot, first {groups[0]}")
        owners = {entry["project"] for entry in unknown}
        projects[REMOTE_ADDRESS_GROUPS] = None if None in owners else owners


def rule_inputs(con, sql: str) -> frozenset[str]:
    """The resource listings a rule's query reads. The table-name parser refuses parameters, so they are
    replaced by NULL first; and it replaces the constants of the views it expands by NULL, which a view over
    Parquet files refuses, so it runs on an environment of empty tables of its own, not on `con`."""
    if sql not in _INPUTS:
        with _NAMES_LOCK:
            names = _names_connection().get_table_names(_PARAM.sub("NULL", sql))
        _INPUTS[sql] = frozenset(inputs_of(set(names)))
    return _INPUTS[sql]


_NAMES_LOCK = threading.Lock()


@functools.cache
def _names_connection():
    """An in-memory rule environment over empty tables: the same names as an evaluation's, no files."""
    from auditor.rules.environment import prepare
    from auditor.store.tables import SANDBOX_CONFIG, latest_views_sql, schema_sql

    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    con.execute(schema_sql())
    con.execute(latest_views_sql())
    prepare(con, 0, [])
    return con


def sql_error_text(exc: Exception, rule: Rule) -> str:
    """A DuckDB error as `file:line: message` (the rule's SQL is the whole file, so lines match)."""
    text = str(exc)
    match = _LINE.search(text)
    line = int(match.group(1)) if match else 1
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{rule.path}:{line}: {first}"


def _body(rule: Rule) -> str:
    return rule.sql.rstrip().rstrip(";")


def check_rule_sql(con, rule: Rule, params: dict[str, Any]) -> list[str]:
    """Problems with a rule's query on a prepared (typically empty) environment: not one SELECT, does not
    bind against the schema, unused or missing parameters, wrong output columns."""
    try:
        statements = con.extract_statements(rule.sql)
    except duckdb.Error as exc:
        return [sql_error_text(exc, rule)]
    if len(statements) != 1 or statements[0].type.name != "SELECT":
        kinds = ", ".join(s.type.name for s in statements) or "none"
        return [f"{rule.path}:1: a rule is exactly one SELECT statement (found: {kinds})"]
    query = rule.sql.split("---*/", 1)[-1]
    used = set(m.group(0)[1:] for m in _PARAM.finditer(query))
    problems = [f"{rule.path}:1: parameter {name!r} is declared but not used in the query (as ${name})"
                for name in sorted(set(params) - used)]
    problems += [f"{rule.path}:1: the query uses ${name}, which is not declared under 'params'"
                 for name in sorted(used - set(params))]
    if problems:
        return problems
    try:
        cursor = con.execute(f"SELECT * FROM ({_body(rule)}\n) AS rule_output LIMIT 0", params)
    except duckdb.Error as exc:
        return [sql_error_text(exc, rule)]
    columns = [d[0] for d in cursor.description]
    if sorted(columns) != sorted(rule.output_columns):
        hint = "" if rule.evidence or "evidence" not in columns else " (an evidence column needs an 'evidence' key " \
            "in the metadata saying what each of its keys holds)"
        problems.append(f"{rule.path}:1: the query must return exactly the columns {', '.join(rule.output_columns)}; "
                        f"it returns {', '.join(columns)}{hint}")
    return problems


def run_rules(con, runs: list[RuleRun], inputs: InputState, timeout: float = 300.0,
              stop: threading.Event | None = None) -> None:
    """Run every rule of `runs`; fill in each run's outcome and counts. Each rule's rows go into a temp table
    of its own (creating a table from a query is about twice as fast as appending to a shared one), which
    the temp view `rule_results` joins, numbering every row `n`.

    A watchdog interrupts the running query when it passes `timeout` (the rule becomes an `error`) or when
    `stop` is set (SIGTERM: EvaluationCancelled is raised and nothing is kept)."""
    stop = stop or threading.Event()
    tables = []
    with _Watchdog(con, stop) as watchdog:
        for index, run in enumerate(runs):
            if stop.is_set():
                raise EvaluationCancelled("evaluation stopped before it finished; nothing was written")
            table = f"rule_results_{index}"
            tables.append(table)
            started = time.perf_counter()
            watchdog.deadline = time.monotonic() + timeout
            try:
                _run_one(con, run, inputs, table)
            except duckdb.Error as exc:
                if stop.is_set():
                    raise EvaluationCancelled("evaluation stopped before it finished; nothing was written") from None
                run.outcome, run.message = "error", _runtime_message(exc, run.rule, timeout)
            finally:
                watchdog.deadline = None
            if run.outcome == "error":  # none of its rows, if it made any, is kept
                con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({RESULT_COLUMNS})")
                con.execute(f"INSERT INTO {table} VALUES (?, NULL, NULL, NULL, 'error', ?, NULL)",
                            [run.rule.id, f"Rule {run.rule.id} could not run: {run.message}"])
            if run.outcome != "ran":  # rows were changed or added after the checks counted them
                run.counts = dict(con.execute(f"SELECT status, count(*) FROM {table} GROUP BY ALL").fetchall())
            run.seconds = time.perf_counter() - started
    if not tables:  # no rule: the view still has its columns
        tables.append("rule_results_0")
        con.execute(f"CREATE OR REPLACE TEMP TABLE rule_results_0 ({RESULT_COLUMNS})")
    numbered = [f"SELECT {index << 32} + rowid AS n, * FROM {table}" for index, table in enumerate(tables)]
    con.execute(f"CREATE OR REPLACE TEMP VIEW rule_results AS {' UNION ALL '.join(numbered)}")


class _Watchdog:
    """A thread that interrupts the connection's query at a deadline or when `stop` is set."""

    def __init__(self, con, stop: threading.Event):
        self.con, self.stop, self.deadline = con, stop, None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rule-watchdog", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _watch(self):
        while not self._done.wait(0.05):
            deadline = self.deadline
            if deadline is not None and (self.stop.is_set() or time.monotonic() > deadline):
                self.con.interrupt()
                self.deadline = None


def _runtime_message(exc: Exception, rule: Rule, timeout: float) -> str:
    if isinstance(exc, duckdb.InterruptException):
        return f"stopped after the time limit of {timeout:g} s"
    return sql_error_text(exc, rule)


def _run_one(con, run: RuleRun, inputs: InputState, table: str) -> None:
    """Put one rule's rows into temp table `table` (a failed statement makes none), then check and count
    them there in one pass."""
    rule = run.rule
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT '{rule.id}' AS rule_id, "  # ids: lower_snake_case
        "CAST(resource_id AS VARCHAR) AS resource_id, CAST(resource_name AS VARCHAR) AS resource_name, "
        "CAST(project_id AS VARCHAR) AS project_id, CAST(status AS VARCHAR) AS status, "
        f"CAST(reason AS VARCHAR) AS reason, {_EVIDENCE if rule.evidence else 'CAST(NULL AS JSON)'} "
        f"AS evidence FROM ({_body(rule)}\n) AS rule_output",
        run.params,
    )
    # evidence: an object whose keys the rule's metadata declares (or NULL)
    declared = "[" + ", ".join(f"'{key}'" for key in rule.evidence) + "]::VARCHAR[]"  # keys: lower_snake_case
    found = con.execute(
        f"SELECT count(*) FILTER (WHERE status IS NULL OR status NOT IN {STATUSES}), "
        "count(*) FILTER (WHERE resource_id IS NULL), count(resource_id) - count(DISTINCT resource_id), "
        "count(*) FILTER (WHERE evidence IS NOT NULL AND (json_type(evidence) <> 'OBJECT' "
        f"OR NOT list_has_all({declared}, json_keys(evidence)))), "
        + ", ".join(f"count(*) FILTER (WHERE status = '{status}')" for status in STATUSES)
        + f" FROM {table}").fetchall()[0]
    bad_status, no_id, duplicates, bad_evidence = found[:4]
    run.counts = {status: n for status, n in zip(STATUSES, found[4:], strict=True) if n}
    if bad_status or no_id or duplicates or bad_evidence:
        run.outcome = "error"
        run.message = "; ".join(m for m in (
            f"{bad_status} rows with a status other than {', '.join(STATUSES)}" if bad_status else "",
            f"{no_id} rows without a resource_id" if no_id else "",
            f"{duplicates} resources judged more than once" if duplicates else "",
            f"{bad_evidence} rows whose evidence is not an object of the keys the rule declares "
            f"({', '.join(rule.evidence) or 'none'})" if bad_evidence else "",
        ) if m)
        return
    _mark_incomplete(con, run, inputs, table)


def _mark_incomplete(con, run: RuleRun, inputs: InputState, table: str) -> None:
    needed = rule_inputs(con, run.rule.sql)
    missing = sorted(t for t in needed if inputs.status.get(t, "failed") != "complete")
    if not missing:
        return
    run.outcome, run.missing_inputs = "incomplete", missing
    described = "; ".join(
        f"{t} {inputs.status.get(t, 'not collected')}"
        + (f" ({inputs.error_messages[t]})" if t in inputs.error_messages else "")
        for t in missing
    )
    run.message = f"input data incomplete in this snapshot: {described}"
    prefix = f"Not judged, {run.message}. With the data collected: "
    affected = [inputs.error_projects.get(t) for t in missing]
    if any(p is None for p in affected):  # a cloud-wide failure: nothing this rule says can be trusted
        con.execute(f"UPDATE {table} SET status = 'skip', reason = ? || reason, evidence = NULL", [prefix])
        con.execute(f"INSERT INTO {table} VALUES (?, NULL, NULL, NULL, 'skip', ?, NULL)",
                    [run.rule.id, f"Rule {run.rule.id} could not judge every resource: {run.message}."])
        return
    projects = sorted(set().union(*affected))
    con.execute(f"UPDATE {table} SET status = 'skip', reason = ? || reason, evidence = NULL "
                "WHERE list_contains(?, project_id)",
                [prefix, projects])
    for project_id in projects:
        con.execute(f"INSERT INTO {table} VALUES (?, NULL, NULL, ?, 'skip', ?, NULL)",
                    [run.rule.id, project_id,
                     f"Rule {run.rule.id} could not judge the resources of project {project_id}: {run.message}."])
