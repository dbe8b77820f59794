"""Reading findings back through the catalog: the lists behind `auditor findings` and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from auditor.errors import EvaluationError
from auditor.rules.catalog import SEVERITY_ORDER_SQL, Catalog
from auditor.store.database import open_reader


@dataclass(frozen=True)
class FindingFilter:
    snapshot: str = "latest"  # 'latest' or a snapshot id
    evaluation: int | None = None
    cloud: str | None = None
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("fail",)  # empty: every status
    rule: str | None = None
    project: str | None = None  # id or name
    new_only: bool = False
    include_waived: bool = True
    limit: int | None = None


# The filter's condition over findings `f` and their projects `p`, with filter_params' bound values.
FILTER_SQL = """(len($severities) = 0 OR list_contains($severities, f.severity))
              AND (len($statuses) = 0 OR list_contains($statuses, f.status))
              AND ($rule IS NULL OR f.rule_id = $rule)
              AND ($project IS NULL OR f.project_id = $project OR p.name = $project)
              AND (NOT $new_only OR f.is_new)
              AND ($include_waived OR NOT f.waived)"""


def filter_params(flt: FindingFilter) -> dict:
    return {"severities": list(flt.severities), "statuses": list(flt.statuses), "rule": flt.rule,
            "project": flt.project, "new_only": flt.new_only, "include_waived": flt.include_waived,
            "limit": flt.limit if flt.limit else 2**62}


def evaluation_ids(con, flt: FindingFilter) -> list[int]:
    if flt.evaluation is not None:
        rows = con.execute("SELECT id FROM evaluations WHERE id = ?", [flt.evaluation]).fetchall()
        if not rows:
            raise EvaluationError(f"no evaluation with id {flt.evaluation}")
        return [flt.evaluation]
    if str(flt.snapshot) == "latest":
        rows = con.execute("SELECT id FROM latest_evaluations WHERE ? IS NULL OR cloud = ? ORDER BY cloud, region",
                           [flt.cloud, flt.cloud]).fetchall()
        if not rows:
            raise EvaluationError("no evaluation yet" + (f" of cloud {flt.cloud!r}" if flt.cloud else "")
                                  + " (run `auditor evaluate` or `auditor run`)")
        return [r[0] for r in rows]
    try:
        snapshot_id = int(flt.snapshot)
    except ValueError:
        raise EvaluationError(f"--snapshot must be a snapshot id or 'latest', got {flt.snapshot!r}") from None
    rows = con.execute("SELECT max(id) FROM evaluations WHERE snapshot_id = ?", [snapshot_id]).fetchall()
    if rows[0][0] is None:
        raise EvaluationError(f"snapshot {snapshot_id} has not been evaluated (run `auditor evaluate --snapshot "
                              f"{snapshot_id}`)")
    return [rows[0][0]]


def list_findings(database: Path, flt: FindingFilter) -> tuple[list[str], list[tuple]]:
    con = open_reader(database)
    try:
        ids = evaluation_ids(con, flt)
        cursor = con.execute(f"""
            SELECT f.severity, f.status, f.rule_id, f.resource_type, f.resource_name, f.resource_id,
                   coalesce(p.name, f.project_id) AS project, f.reason, f.waived, f.waiver_id,
                   f.first_seen_at, f.is_new, f.snapshot_id
            FROM findings f
            LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
            WHERE list_contains($ids, f.evaluation_id) AND {FILTER_SQL}
            ORDER BY {SEVERITY_ORDER_SQL}, f.status, f.rule_id, project NULLS FIRST, f.resource_name, f.resource_id
            LIMIT $limit""", {"ids": ids, **filter_params(flt)})
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


def list_resolved(database: Path, flt: FindingFilter) -> tuple[list[str], list[tuple]]:
    con = open_reader(database)
    try:
        ids = evaluation_ids(con, flt)
        cursor = con.execute(f"""
            SELECT f.severity, f.rule_id, f.resource_type, f.resource_name, f.resource_id,
                   coalesce(p.name, f.project_id) AS project, f.resolution, f.first_seen_at,
                   f.previous_evaluation_id, f.snapshot_id
            FROM resolved_findings f
            LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
            WHERE list_contains($ids, f.evaluation_id)
              AND (len($severities) = 0 OR list_contains($severities, f.severity))
              AND ($rule IS NULL OR f.rule_id = $rule)
              AND ($project IS NULL OR f.project_id = $project OR p.name = $project)
            ORDER BY {SEVERITY_ORDER_SQL}, f.rule_id, f.resource_name, f.resource_id""", {
            "ids": ids, "severities": list(flt.severities), "rule": flt.rule, "project": flt.project,
        })
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


def framework_summary(database: Path, flt: FindingFilter, catalog: Catalog, framework_id: str):
    """Pass/fail per control: a control fails when one of its rules has a failing, unwaived resource.
    The control-to-rule mapping is the one recorded with the evaluation (evaluation_rules.frameworks)."""
    if framework_id not in catalog.frameworks:
        known = ", ".join(sorted(catalog.frameworks)) or "none"
        raise EvaluationError(f"unknown framework {framework_id!r} (known: {known})")
    framework = catalog.frameworks[framework_id]
    controls = pa.table({
        "position": list(range(len(framework.controls))),
        "control_id": [c.id for c in framework.controls],
        "title": [c.title for c in framework.controls],
    })
    con = open_reader(database)
    try:
        ids = evaluation_ids(con, flt)
        con.register("framework_controls", controls)
        cursor = con.execute("""
            WITH mapped AS (
                SELECT r.evaluation_id, r.rule_id,
                       unnest(json_extract_string(r.frameworks, '$.' || $framework || '[*]')) AS control_id
                FROM evaluation_rules r WHERE list_contains($ids, r.evaluation_id)
            ), judged AS (
                SELECT m.control_id, m.rule_id, f.status, f.waived
                FROM mapped m JOIN findings f ON f.evaluation_id = m.evaluation_id AND f.rule_id = m.rule_id
            )
            SELECT c.control_id AS control, c.title,
                   CASE WHEN count(*) FILTER (WHERE j.status = 'fail' AND NOT j.waived) > 0 THEN 'fail'
                        WHEN count(*) FILTER (WHERE j.status = 'error') > 0 THEN 'error'
                        WHEN count(*) FILTER (WHERE j.status = 'pass') > 0 THEN 'pass'
                        ELSE 'no data' END AS status,
                   count(*) FILTER (WHERE j.status = 'fail' AND NOT j.waived) AS failing,
                   count(*) FILTER (WHERE j.status = 'pass') AS passing,
                   count(*) FILTER (WHERE j.waived) AS waived,
                   count(*) FILTER (WHERE j.status = 'skip') AS skipped,
                   string_agg(DISTINCT j.rule_id, ', ' ORDER BY j.rule_id) AS rules
            FROM framework_controls c LEFT JOIN judged j ON j.control_id = c.control_id
            GROUP BY c.position, c.control_id, c.title
            ORDER BY c.position""", {"framework": framework_id, "ids": ids})
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


def top_findings(database: Path, evaluation_id: int, limit: int = 15) -> tuple[list[str], list[tuple]]:
    columns, rows = list_findings(database, FindingFilter(evaluation=evaluation_id, limit=limit,
                                                                include_waived=False))
    keep = ["severity", "rule_id", "resource_name", "project", "reason"]
    index = [columns.index(k) for k in keep]
    return keep, [tuple(row[i] for i in index) for row in rows]
