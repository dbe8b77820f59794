"""Full exports beside each report: findings.csv, findings.jsonl, findings.ocsf.jsonl (auditor/report/ocsf.py)
and inventory.csv (the query of `auditor inventory`, auditor/store/inventory.py).

They hold every row (the PDF caps its detail rows; these never do). Spreadsheet programs run a cell that
starts with `=`, `+`, `-`, `@` (or their fullwidth forms, or any of them after spaces), tab or carriage
return as a formula, and tenant names can start with anything: such cells get a leading `'` in the CSV
files (OWASP's advice). The JSON Lines files keep values as stored.
"""

from __future__ import annotations

from pathlib import Path

from auditor.sqltext import sql_literal
from auditor.output import FORMULA_RE2, write_lines
from auditor.report.ocsf import REPORT_STATUSES, write_ocsf
from auditor.store.database import open_for_export
from auditor.store.inventory import COLUMNS as INVENTORY_COLUMNS
from auditor.store.inventory import export_query

FINDING_COLUMNS = ("cloud", "region", "severity", "status", "rule_id", "rule_title", "resource_type", "resource_id",
                   "resource_name", "project_id", "project_name", "reason", "remediation", "waived", "waiver_id",
                   "first_seen_at", "is_new", "snapshot_id", "evaluation_id", "evidence")
_FINDINGS_SQL = """
    SELECT e.cloud, e.region, f.severity, f.status, f.rule_id, r.title AS rule_title, f.resource_type,
           f.resource_id, f.resource_name, f.project_id, p.name AS project_name, f.reason, r.remediation, f.waived,
           f.waiver_id, f.first_seen_at, f.is_new, f.snapshot_id, f.evaluation_id, f.evidence
    FROM findings f
    JOIN evaluations e ON e.id = f.evaluation_id
    LEFT JOIN evaluation_rules r ON r.evaluation_id = f.evaluation_id AND r.rule_id = f.rule_id
    LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
    WHERE f.evaluation_id = ?"""
# No ORDER BY: sorting a million wide rows (the findings of 50,000 servers) cost three times the time and
# ten times the memory (2.2 GB) of streaming them; rows come grouped by resource, as the evaluation stored them.

# spreadsheet_safe, in SQL: text cells that a spreadsheet would run as a formula get a leading quote
_GUARD = ("CASE WHEN typeof({c}) = 'VARCHAR' AND regexp_matches(CAST({c} AS VARCHAR), "
          + sql_literal(FORMULA_RE2).replace("{", "{{").replace("}", "}}")
          + ") THEN '''' || CAST({c} AS VARCHAR) ELSE CAST({c} AS VARCHAR) END")


def _write_csv(database: Path, sql: str, params: list | dict, columns: tuple[str, ...], target: Path) -> None:
    """One of our fixed queries to CSV with DuckDB's COPY (Python's csv module took 2 s for 176,000 rows).
    COPY needs file access, which readers of the catalog do not get: this connection runs only
    the queries of this module, never user SQL."""
    con = _streaming(database)
    try:
        guarded = ", ".join(f"{_GUARD.format(c=c)} AS {c}" for c in columns)
        con.execute(f"COPY (SELECT {guarded} FROM ({sql}) AS q) TO {sql_literal(str(target))} "
                    "(FORMAT csv, HEADER true)", params)
    finally:
        con.close()


def write_findings_csv(database: Path, evaluation_id: int, target: Path) -> None:
    _write_csv(database, _FINDINGS_SQL, [int(evaluation_id)], FINDING_COLUMNS, target)


def write_inventory_csv(database: Path, snapshot_id: int, target: Path) -> None:
    """The rows of `auditor inventory --snapshot ID --format csv` (docs/cli.md)."""
    sql, params = export_query(snapshot_id)
    _write_csv(database, sql, params, INVENTORY_COLUMNS, target)


def _streaming(database: Path):
    """A connection for our own export statements, whose rows stream in whatever order they come."""
    con = open_for_export(database)
    con.execute("SET preserve_insertion_order = false")
    return con


def write_findings_jsonl(database: Path, evaluation_id: int, target: Path) -> int:
    """One JSON object per finding and line (FINDING_COLUMNS), each built by DuckDB and written a batch at
    a time, so memory does not grow with the findings."""
    fields = ", ".join(f"{sql_literal(c)}: {c}" for c in FINDING_COLUMNS)
    con = _streaming(database)
    try:
        cursor = con.execute(f"SELECT to_json({{{fields}}}) FROM ({_FINDINGS_SQL}) AS q", [int(evaluation_id)])
        with open(target, "wb") as handle:
            return write_lines(cursor, handle)
    finally:
        con.close()


def write_findings_ocsf(database: Path, evaluation_id: int, frameworks: dict[str, str], target: Path) -> int:
    con = _streaming(database)
    try:
        with open(target, "wb") as handle:
            return write_ocsf(con, [int(evaluation_id)], handle, frameworks, statuses=REPORT_STATUSES,
                              resolved=True, ordered=False)
    finally:
        con.close()
