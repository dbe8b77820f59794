"""Full exports beside each report: findings.csv, findings.json and inventory.csv.

They hold every row (the PDF caps its detail rows; these never do). Spreadsheet programs run a cell that
starts with `=`, `+`, `-`, `@` (or their fullwidth forms, or any of them after spaces), tab or carriage
return as a formula, and tenant names can start with anything: such cells get a leading `'` in the CSV
files (OWASP's advice). findings.json keeps values as
stored.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from auditor.sqltext import sql_literal
from auditor.output import FORMULA_RE2
from auditor.rules.catalog import SEVERITY_ORDER_SQL
from auditor.store.database import open_for_export

FINDING_COLUMNS = ("severity", "status", "rule_id", "resource_type", "resource_id", "resource_name", "project_id",
                   "project_name", "reason", "waived", "waiver_id", "first_seen_at", "is_new", "snapshot_id",
                   "evaluation_id")
_FINDINGS_SQL = f"""
    SELECT f.severity, f.status, f.rule_id, f.resource_type, f.resource_id, f.resource_name, f.project_id,
           p.name AS project_name, f.reason, f.waived, f.waiver_id, f.first_seen_at, f.is_new, f.snapshot_id,
           f.evaluation_id
    FROM findings f LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
    WHERE f.evaluation_id = ?
    ORDER BY {SEVERITY_ORDER_SQL},
             list_position(['fail', 'error', 'skip', 'info', 'pass'], f.status), f.rule_id, project_name,
             f.resource_name, f.resource_id"""

INVENTORY_COLUMNS = ("server_id", "name", "project_id", "project_name", "status", "availability_zone", "host",
                     "flavor_name", "vcpus", "ram_mb", "disk_gb", "image_id", "image_name", "boot_from_volume",
                     "addresses", "floating_ips", "security_groups", "created_at")
_INVENTORY_SQL = """
    SELECT s.id AS server_id, s.name, s.project_id, p.name AS project_name, s.status, s.availability_zone,
           coalesce(s.host, s.host_id) AS host, s.flavor_name, s.flavor_vcpus AS vcpus, s.flavor_ram_mb AS ram_mb,
           s.flavor_disk_gb AS disk_gb, s.image_id, i.name AS image_name, s.boot_from_volume,
           array_to_string(list_sort(list_distinct(json_extract_string(s.addresses, '$.*[*].addr'))), ' ')
               AS addresses,
           (SELECT string_agg(f.floating_ip_address, ' ' ORDER BY f.floating_ip_address) FROM floating_ips f
            WHERE f.snapshot_id = s.snapshot_id AND f.server_id = s.id) AS floating_ips,
           (SELECT string_agg(DISTINCT coalesce(g.name, x.security_group_id), ' ')
            FROM server_security_groups x LEFT JOIN security_groups g
              ON g.snapshot_id = x.snapshot_id AND g.id = x.security_group_id
            WHERE x.snapshot_id = s.snapshot_id AND x.server_id = s.id) AS security_groups,
           s.created_at
    FROM servers s
    LEFT JOIN projects p ON p.snapshot_id = s.snapshot_id AND p.id = s.project_id
    LEFT JOIN images i ON i.snapshot_id = s.snapshot_id AND i.id = s.image_id
    WHERE s.snapshot_id = ?
    ORDER BY p.name, s.name, s.id"""

_BATCH = 10_000
# spreadsheet_safe, in SQL: text cells that a spreadsheet would run as a formula get a leading quote
_GUARD = ("CASE WHEN typeof({c}) = 'VARCHAR' AND regexp_matches(CAST({c} AS VARCHAR), "
          + sql_literal(FORMULA_RE2).replace("{", "{{").replace("}", "}}")
          + ") THEN '''' || CAST({c} AS VARCHAR) ELSE CAST({c} AS VARCHAR) END")


def _write_csv(database: Path, sql: str, key: int, columns: tuple[str, ...], target: Path) -> None:
    """One of our fixed queries to CSV with DuckDB's COPY (Python's csv module took 2 s for 176,000 rows).
    COPY needs file access, which readers of the catalog do not get: this connection runs only
    the queries of this module, never user SQL."""
    con = open_for_export(database)
    try:
        guarded = ", ".join(f"{_GUARD.format(c=c)} AS {c}" for c in columns)
        query = sql.replace("?", str(int(key)), 1)
        con.execute(f"COPY (SELECT {guarded} FROM ({query}) AS q) TO {sql_literal(str(target))} "
                    "(FORMAT csv, HEADER true)")
    finally:
        con.close()


def write_findings_csv(database: Path, evaluation_id: int, target: Path) -> None:
    _write_csv(database, _FINDINGS_SQL, evaluation_id, FINDING_COLUMNS, target)


def write_inventory_csv(database: Path, snapshot_id: int, target: Path) -> None:
    _write_csv(database, _INVENTORY_SQL, snapshot_id, INVENTORY_COLUMNS, target)


def write_findings_json(con, evaluation_id: int, snapshot: dict, evaluation: dict, target: Path) -> int:
    """{"snapshot": {...}, "evaluation": {...}, "findings": [{...}, ...]}, written a batch at a time."""
    count = 0
    with open(target, "wb") as handle:
        handle.write(b'{"snapshot": ' + orjson.dumps(snapshot, default=str)
                     + b', "evaluation": ' + orjson.dumps(evaluation, default=str) + b', "findings": [')
        cursor = con.execute(_FINDINGS_SQL, [evaluation_id])
        while rows := cursor.fetchmany(_BATCH):
            for row in rows:
                handle.write((b",\n" if count else b"\n") + orjson.dumps(dict(zip(FINDING_COLUMNS, row, strict=True)),
                                                                         default=str))
                count += 1
        handle.write(b"\n]}\n")
    return count
