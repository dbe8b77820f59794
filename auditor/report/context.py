"""The report context: everything a report shows, read through the catalog in one place.

Templates see only this (documented key by key in docs/report-context.md; a test checks that every key is
documented). Values are plain Python: str, int, float, bool, None, datetime, lists and dicts. Tenant text
(names, reasons, descriptions) is left as it is: the templates autoescape it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor import __version__
from auditor.errors import EvaluationError
from auditor.rules.catalog import SEVERITIES, Catalog
from auditor.store.database import open_reader

# Weights of the posture score: how much a resource judged by a rule of each severity counts.
SCORE_WEIGHTS = {"critical": 10, "high": 5, "medium": 3, "low": 1, "info": 0}
EXPOSURE_RULE = "server_not_exposed_to_world"
TREND_POINTS = 12
TOP_RISKS = 20  # the first page's list; the rest follow under their rules


def build_context(database: Path, snapshot_id: int, catalog: Catalog, detail_rows: int = 1000) -> dict[str, Any]:
    """The context of the report of `snapshot_id`, judged by its newest evaluation.

    `detail_rows` caps the failing resources listed under the rules (most severe first); `findings.csv`
    always has them all. The HTML passes a cap large enough for every row."""
    con = open_reader(database)
    try:
        return _Builder(con, snapshot_id, catalog, detail_rows).build()
    finally:
        con.close()


class _Builder:
    def __init__(self, con, snapshot_id: int, catalog: Catalog, detail_rows: int):
        self.con, self.snapshot_id, self.catalog, self.detail_rows = con, snapshot_id, catalog, detail_rows

    def rows(self, sql: str, params=()) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def build(self) -> dict[str, Any]:
        snapshots = self.rows("SELECT * FROM snapshots WHERE id = ?", [self.snapshot_id])
        if not snapshots:
            raise EvaluationError(f"no snapshot with id {self.snapshot_id}")
        snapshot = snapshots[0]
        evaluations = self.rows("SELECT * FROM evaluations WHERE snapshot_id = ? ORDER BY id DESC LIMIT 1",
                                [self.snapshot_id])
        if not evaluations:
            raise EvaluationError(f"snapshot {self.snapshot_id} has not been evaluated (run `auditor evaluate "
                                  f"--snapshot {self.snapshot_id}` first)")
        evaluation = evaluations[0]
        self.evaluation_id = evaluation["id"]
        previous = self.rows("SELECT id, started_at FROM snapshots WHERE id = ?",
                             [evaluation["previous_snapshot_id"]]) if evaluation["previous_snapshot_id"] else []
        evaluation["previous_snapshot_started_at"] = previous[0]["started_at"] if previous else None
        rules = self.rules()
        failing = [f for rule in rules for f in rule["findings"]]
        return {
            "generated_at": datetime.now(UTC).replace(tzinfo=None),
            "tool_version": __version__,
            "snapshot": snapshot,
            "evaluation": evaluation,
            "completeness": self.completeness(snapshot),
            "summary": self.summary(evaluation, rules),
            "trend": self.trend(snapshot),
            "top_risks": self.top_risks(),
            "top_risks_total": sum(rule["fail_count"] for rule in rules if rule["severity"] in ("critical", "high")),
            "compliance": self.compliance(rules),
            "rules": rules,
            "waived": self.waived(),
            "waiver_notes": self.waiver_notes(),
            "inventory": self.inventory(),
            "collection": {
                "errors": self.rows("SELECT resource_type, project_id, http_status, url, message "
                                    "FROM collection_errors WHERE snapshot_id = ? ORDER BY ALL", [self.snapshot_id]),
                "resources": self.rows("SELECT resource_type, status, row_count, request_count, seconds "
                                       "FROM snapshot_resources WHERE snapshot_id = ? ORDER BY resource_type",
                                       [self.snapshot_id]),
            },
            "limits": {
                "detail_rows": self.detail_rows,
                "detail_rows_shown": len(failing),
                "detail_rows_total": sum(rule["fail_count"] for rule in rules),
            },
        }

    # -- first page -------------------------------------------------------------------------------------
    def completeness(self, snapshot: dict) -> dict[str, Any]:
        missing = self.rows("""
            SELECT r.resource_type, r.status, r.row_count,
                   (SELECT string_agg(DISTINCT e.message, '; ') FROM collection_errors e
                    WHERE e.snapshot_id = r.snapshot_id AND e.resource_type = r.resource_type) AS message
            FROM snapshot_resources r WHERE r.snapshot_id = ? AND r.status <> 'complete'
            ORDER BY r.resource_type""", [self.snapshot_id])
        return {"status": snapshot["status"], "missing": missing}

    def summary(self, evaluation: dict, rules: list[dict]) -> dict[str, Any]:
        by_severity = {s: {"fail": 0, "new": 0, "waived": 0, "pass": 0} for s in SEVERITIES}
        for row in self.rows("""
                SELECT severity, count(*) FILTER (WHERE status = 'fail' AND NOT waived) AS fail,
                       count(*) FILTER (WHERE is_new AND NOT waived) AS new,
                       count(*) FILTER (WHERE waived) AS waived, count(*) FILTER (WHERE status = 'pass') AS pass
                FROM findings WHERE evaluation_id = ? GROUP BY severity""", [self.evaluation_id]):
            by_severity[row["severity"]] = {k: row[k] for k in ("fail", "new", "waived", "pass")}
        weight_fail = sum(SCORE_WEIGHTS[s] * c["fail"] for s, c in by_severity.items())
        weight_pass = sum(SCORE_WEIGHTS[s] * c["pass"] for s, c in by_severity.items())
        judged = weight_fail + weight_pass
        return {
            "score": round(100 * weight_pass / judged) if judged else None,
            "fails": {s: c["fail"] for s, c in by_severity.items()},
            "new": {s: c["new"] for s, c in by_severity.items()},
            "fail_total": evaluation["fail_count"],
            "new_total": evaluation["new_count"],
            "resolved_total": evaluation["resolved_count"],
            "waived_total": evaluation["waived_count"],
            "pass_total": evaluation["pass_count"],
            "skip_total": evaluation["skip_count"],
            "rule_count": evaluation["rule_count"],
            "rule_errors": [{"rule_id": r["id"], "message": r["message"]} for r in rules if r["outcome"] == "error"],
            "rules_incomplete": [{"rule_id": r["id"], "message": r["message"]}
                                 for r in rules if r["outcome"] == "incomplete"],
            "resolved": self.rows("""
                SELECT f.severity, f.rule_id, f.resource_type, f.resource_id, f.resource_name, f.project_id,
                       p.name AS project_name, f.first_seen_at, f.resolution
                FROM resolved_findings f
                LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
                WHERE f.evaluation_id = ?
                ORDER BY list_position(?, f.severity), f.rule_id, f.resource_name""",
                [self.evaluation_id, list(SEVERITIES)]),
        }

    def trend(self, snapshot: dict) -> list[dict[str, Any]]:
        """Failing findings by severity over the last evaluated snapshots of this cloud/region, oldest first."""
        points = self.rows("""
            WITH newest AS (
                SELECT e.id, e.snapshot_id, s.started_at, s.status
                FROM evaluations e JOIN snapshots s ON s.id = e.snapshot_id
                WHERE e.cloud = ? AND e.region = ? AND s.started_at <= ?
                QUALIFY row_number() OVER (PARTITION BY e.snapshot_id ORDER BY e.id DESC) = 1
                ORDER BY s.started_at DESC LIMIT ?
            )
            SELECT n.snapshot_id, n.started_at, n.status, f.severity, count(f.rule_id) AS fails
            FROM newest n LEFT JOIN findings f ON f.evaluation_id = n.id AND f.status = 'fail' AND NOT f.waived
            GROUP BY ALL ORDER BY n.started_at""",
            [snapshot["cloud"], snapshot["region"], snapshot["started_at"], TREND_POINTS])
        trend: dict[int, dict] = {}
        for row in points:
            point = trend.setdefault(row["snapshot_id"], {
                "snapshot_id": row["snapshot_id"], "started_at": row["started_at"], "status": row["status"],
                "fails": dict.fromkeys(SEVERITIES, 0)})
            if row["severity"]:
                point["fails"][row["severity"]] = row["fails"]
        return list(trend.values())

    # -- findings ---------------------------------------------------------------------------------------
    _FINDING = """
        SELECT f.rule_id, f.severity, f.resource_type, f.resource_id, f.resource_name, f.project_id,
               p.name AS project_name, f.status, f.reason, f.first_seen_at, f.is_new, f.waived, f.waiver_id
        FROM findings f LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id"""

    def top_risks(self) -> list[dict[str, Any]]:
        return self.rows(self._FINDING + """
            WHERE f.evaluation_id = ? AND f.status = 'fail' AND NOT f.waived AND f.severity IN ('critical', 'high')
            ORDER BY f.rule_id <> ?, list_position(?, f.severity), f.rule_id, project_name, f.resource_name
            LIMIT ?""", [self.evaluation_id, EXPOSURE_RULE, list(SEVERITIES), min(TOP_RISKS, self.detail_rows)])

    def rules(self) -> list[dict[str, Any]]:
        rules = self.rows("""
            SELECT rule_id AS id, title, severity, resource_type, description, rationale, remediation, params,
                   frameworks, outcome, missing_inputs, message, pass_count, fail_count, skip_count, info_count
            FROM evaluation_rules WHERE evaluation_id = ?
            ORDER BY list_position(?, severity), fail_count DESC, rule_id""", [self.evaluation_id, list(SEVERITIES)])
        # Failing, unwaived rows under their rule, most severe rules first, up to the cap in all.
        details = self.rows(self._FINDING + """
            WHERE f.evaluation_id = ? AND f.status = 'fail' AND NOT f.waived
            ORDER BY list_position(?, f.severity), f.rule_id, f.is_new DESC, project_name, f.resource_name
            LIMIT ?""", [self.evaluation_id, list(SEVERITIES), self.detail_rows])
        by_rule: dict[str, list] = {}
        for row in details:
            by_rule.setdefault(row["rule_id"], []).append(row)
        for rule in rules:
            rule["params"] = json.loads(rule["params"]) if rule["params"] else {}
            rule["frameworks"] = json.loads(rule["frameworks"]) if rule["frameworks"] else {}
            rule["findings"] = by_rule.get(rule["id"], [])
        waived = dict(self.con.execute(
            "SELECT rule_id, count(*) FROM findings WHERE evaluation_id = ? AND waived GROUP BY ALL",
            [self.evaluation_id]).fetchall())
        for rule in rules:
            rule["waived_count"] = waived.get(rule["id"], 0)
            rule["fail_count"] -= rule["waived_count"]  # failing and not waived, as everywhere in the report
        return rules

    def compliance(self, rules: list[dict]) -> list[dict[str, Any]]:
        by_rule = {rule["id"]: rule for rule in rules}
        frameworks = []
        for framework in self.catalog.frameworks.values():
            controls = []
            for control in framework.controls:
                mapped = [by_rule[r] for r in by_rule if control.id in by_rule[r]["frameworks"].get(framework.id, [])]
                failing = sum(r["fail_count"] for r in mapped)
                passing = sum(r["pass_count"] for r in mapped)
                errors = [r["id"] for r in mapped if r["outcome"] == "error"]
                status = "fail" if failing else "error" if errors else "pass" if passing else "no data"
                controls.append({"id": control.id, "title": control.title, "status": status, "failing": failing,
                                 "passing": passing, "rules": [r["id"] for r in mapped]})
            frameworks.append({
                "id": framework.id, "title": framework.title, "url": framework.url, "controls": controls,
                "passed": sum(c["status"] == "pass" for c in controls),
                "failed": sum(c["status"] == "fail" for c in controls),
            })
        return frameworks

    def waived(self) -> list[dict[str, Any]]:
        return self.rows("""
            SELECT f.rule_id, f.severity, f.resource_type, f.resource_id, f.resource_name, f.project_id,
                   p.name AS project_name, f.reason, f.first_seen_at, f.waiver_id,
                   w.owner AS waiver_owner, w.reason AS waiver_reason, w.expires AS waiver_expires
            FROM findings f
            LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
            LEFT JOIN evaluation_waivers w ON w.evaluation_id = f.evaluation_id AND w.waiver_id = f.waiver_id
            WHERE f.evaluation_id = ? AND f.waived
            ORDER BY list_position(?, f.severity), f.rule_id, f.resource_name""",
            [self.evaluation_id, list(SEVERITIES)])

    def waiver_notes(self) -> list[dict[str, Any]]:
        return self.rows("""
            SELECT waiver_id, rule_id, owner, reason, expires, state FROM evaluation_waivers
            WHERE evaluation_id = ? AND state <> 'active' ORDER BY state, waiver_id""", [self.evaluation_id])

    # -- inventory --------------------------------------------------------------------------------------
    def inventory(self) -> dict[str, Any]:
        sid = [self.snapshot_id]
        return {
            "servers_by_zone": self.rows("""
                SELECT coalesce(availability_zone, '') AS zone, count(*) AS servers,
                       count(*) FILTER (WHERE status = 'ACTIVE') AS active
                FROM servers WHERE snapshot_id = ? GROUP BY ALL ORDER BY zone""", sid),
            "servers_by_flavor": self.rows("""
                SELECT coalesce(s.flavor_name, '') AS flavor, s.flavor_vcpus AS vcpus, s.flavor_ram_mb AS ram_mb,
                       s.flavor_disk_gb AS disk_gb, count(*) AS servers
                FROM servers s WHERE s.snapshot_id = ? GROUP BY ALL ORDER BY servers DESC, flavor""", sid),
            "servers_by_image": self.rows("""
                SELECT CASE WHEN s.boot_from_volume THEN '(boot from volume)'
                            ELSE coalesce(i.name, s.image_id, '') END AS image,
                       i.status AS image_status, count(*) AS servers
                FROM servers s LEFT JOIN images i ON i.snapshot_id = s.snapshot_id AND i.id = s.image_id
                WHERE s.snapshot_id = ? GROUP BY ALL ORDER BY servers DESC, image""", sid),
            "servers_by_project": self.rows("""
                SELECT coalesce(p.name, s.project_id, '') AS project, s.project_id, count(*) AS servers,
                       count(*) FILTER (WHERE s.status = 'ACTIVE') AS active
                FROM servers s LEFT JOIN projects p ON p.snapshot_id = s.snapshot_id AND p.id = s.project_id
                WHERE s.snapshot_id = ? GROUP BY ALL ORDER BY servers DESC, project""", sid),
            "zones": self.rows("""
                SELECT name, available, len(compute_hosts) AS hosts, compute_hosts_down AS hosts_down
                FROM availability_zones WHERE snapshot_id = ? ORDER BY name""", sid),
            "instance_type_coverage": self.rows("""
                SELECT status, count(*) AS servers FROM findings
                WHERE evaluation_id = ? AND rule_id = 'server_flavor_mapped_to_instance_type'
                GROUP BY ALL ORDER BY status""", [self.evaluation_id]),
            "security_groups": self.rows("""
                SELECT coalesce(p.name, g.project_id, '') AS project, count(*) AS groups,
                       sum(g.rule_count) AS rules
                FROM security_groups g LEFT JOIN projects p ON p.snapshot_id = g.snapshot_id AND p.id = g.project_id
                WHERE g.snapshot_id = ? GROUP BY ALL ORDER BY groups DESC, project""", sid),
            "images_by_visibility": self.rows("""
                SELECT coalesce(visibility, '') AS visibility, coalesce(status, '') AS status, count(*) AS images
                FROM images WHERE snapshot_id = ? GROUP BY ALL ORDER BY ALL""", sid),
        }
