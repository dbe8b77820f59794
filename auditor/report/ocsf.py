"""Findings as OCSF 1.5 events, one JSON object per line (JSON Lines), for SIEMs: `auditor findings
--format ocsf` and `findings.ocsf.jsonl` beside each report (docs/ocsf.md).

A finding of a rule mapped to framework controls is a Compliance Finding (class 2003) carrying them; any
other is a Detection Finding (2004). Each object is built by DuckDB (`to_json` of one struct per row) and
written as it comes, a batch at a time: no Python object per field, memory bounded by the batch. The
tests validate every object with py-ocsf-models.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import IO

from auditor import __version__
from auditor.output import write_lines
from auditor.rules.catalog import SEVERITY_ORDER_SQL, Catalog
from auditor.rules.findings import FILTER_SQL, FindingFilter, evaluation_ids, filter_params
from auditor.store.database import open_reader

OCSF_VERSION = "1.5.0"
STATUSES = ("fail", "skip", "info", "error", "pass")
# What a report folder's findings.ocsf.jsonl holds: what needs attention, and what was resolved (so that a
# SIEM closes it); the passes of every run would make it most of the file (auditor findings --format ocsf
# --status all writes them).
REPORT_STATUSES = ("fail", "skip", "info", "error")

# $ids: the evaluations; $where_sql is appended by callers that filter (bound parameters only);
# $framework_ids, $framework_titles: each framework's title, from the rule catalog (an id not in it is shown as itself).
_SELECT = """
WITH source AS (  -- the findings, and with $resolved what was resolved since the previous snapshot
    SELECT evaluation_id, snapshot_id, rule_id, severity, resource_type, resource_id, resource_name, project_id,
           status, reason, waived, waiver_id, first_seen_at, is_new, evidence, NULL::VARCHAR AS resolution
    FROM findings WHERE list_contains($ids, evaluation_id) AND list_contains($kept_statuses, status)
    UNION ALL
    SELECT evaluation_id, snapshot_id, rule_id, severity, resource_type, resource_id, resource_name, project_id,
           'pass', 'Resolved since the previous snapshot: ' ||
           CASE resolution WHEN 'gone' THEN 'the resource is gone.' ELSE 'the rule passes now.' END,
           false, NULL, first_seen_at, false, NULL::JSON, resolution
    FROM resolved_findings WHERE $resolved AND list_contains($ids, evaluation_id)
),
rows AS (
    SELECT f.*, e.cloud, e.region, e.finished_at, s.started_at AS seen_at, r.title, r.description, r.remediation,
           r.pack, p.name AS project_name,
           CAST(r.frameworks AS MAP(VARCHAR, VARCHAR[])) AS controls,
           -- a rule-level row (no resource) is one per project, or one for the whole rule
           'auditor-' || md5(concat_ws(chr(31), e.cloud, e.region, f.rule_id, f.resource_type,
                                       coalesce(f.resource_id, 'project:' || f.project_id, 'rule'))) AS finding_uid
    FROM source f
    JOIN evaluations e ON e.id = f.evaluation_id
    JOIN snapshots s ON s.id = f.snapshot_id
    LEFT JOIN evaluation_rules r ON r.evaluation_id = f.evaluation_id AND r.rule_id = f.rule_id
    LEFT JOIN projects p ON p.snapshot_id = f.snapshot_id AND p.id = f.project_id
    WHERE true {where}
),
classed AS (
    SELECT *, CASE WHEN cardinality(coalesce(controls, MAP {{}})) > 0 THEN 2003 ELSE 2004 END AS class_uid,
           CASE WHEN resolution IS NOT NULL THEN 3 WHEN status = 'fail' AND NOT is_new THEN 2 ELSE 1 END
               AS activity_id  -- 1 Create, 2 Update (a failure seen before), 3 Close (resolved)
    FROM rows
)
SELECT to_json({{
    'metadata': {{
        'version': $ocsf_version,
        'product': {{'name': 'auditor', 'vendor_name': 'auditor', 'version': $version, 'uid': 'auditor'}},
        'profiles': ['cloud'],
        'event_code': rule_id,
        'uid': finding_uid || '-' || evaluation_id,
        'correlation_uid': finding_uid
    }},
    'category_uid': 2,
    'category_name': 'Findings',
    'class_uid': class_uid,
    'class_name': CASE class_uid WHEN 2003 THEN 'Compliance Finding' ELSE 'Detection Finding' END,
    'activity_id': activity_id,
    'activity_name': ['Create', 'Update', 'Close'][activity_id],
    'type_uid': class_uid * 100 + activity_id,
    'type_name': CASE class_uid WHEN 2003 THEN 'Compliance Finding: ' ELSE 'Detection Finding: ' END
                 || ['Create', 'Update', 'Close'][activity_id],
    'time': epoch_ms(finished_at),
    'severity_id': CASE severity WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3 WHEN 'low' THEN 2
                                 WHEN 'info' THEN 1 ELSE 0 END,
    'severity': CASE severity WHEN 'info' THEN 'Informational' ELSE upper(severity[1]) || severity[2:] END,
    -- OCSF's status is the finding's triage state: a failure is New until a SIEM says otherwise, a waived one
    -- was accepted here (Suppressed); a pass, skip, info or error is no open finding (Other, and what it is)
    'status_id': CASE WHEN resolution IS NOT NULL THEN 4 WHEN waived THEN 3 WHEN status = 'fail' THEN 1 ELSE 99 END,
    'status': CASE WHEN resolution IS NOT NULL THEN 'Resolved' WHEN waived THEN 'Suppressed' WHEN status = 'fail' THEN 'New'
                   ELSE MAP {{'pass': 'Passed', 'skip': 'Skipped', 'info': 'Info', 'error': 'Error'}}[status] END,
    'status_code': CASE WHEN resolution IS NOT NULL THEN 'RESOLVED' ELSE upper(status) END,
    'status_detail': reason,
    'message': reason,
    'finding_info': {{
        'uid': finding_uid,
        'title': coalesce(title, rule_id),
        'desc': description,
        'types': [coalesce(pack, 'auditor')],
        'first_seen_time': epoch_ms(first_seen_at),
        'last_seen_time': epoch_ms(seen_at)
    }},
    'cloud': {{
        'provider': 'OpenStack',
        'region': region,
        'account': CASE WHEN project_id IS NOT NULL THEN {{
            'uid': project_id, 'name': coalesce(project_name, project_id), 'type': 'OpenStack project',
            'type_id': 99}} END
    }},
    'resources': CASE WHEN resource_id IS NOT NULL THEN [{{
        'uid': resource_id,
        'name': resource_name,
        'type': resource_type,
        'region': region,
        'group': CASE WHEN project_id IS NOT NULL THEN {{'uid': project_id, 'name': project_name}} END,
        'data': {{'cloud': cloud, 'project_id': project_id, 'project_name': project_name}}
    }}] END,
    'remediation': CASE WHEN remediation IS NOT NULL THEN {{'desc': remediation}} END,
    'evidences': CASE WHEN evidence IS NOT NULL THEN [{{'name': rule_id, 'data': evidence, 'verdict_id': 0}}] END,
    'compliance': CASE WHEN class_uid = 2003 THEN {{
        'control': rule_id,
        'standards': list_sort(list_transform(map_keys(controls), lambda k: coalesce(MAP($framework_ids, $framework_titles)[k], k))),
        'requirements': list_sort(flatten(list_transform(map_entries(controls),
            lambda e: list_transform(e.value, lambda c: coalesce(MAP($framework_ids, $framework_titles)[e.key], e.key) || ' ' || c)))),
        'status_id': CASE status WHEN 'pass' THEN 1 WHEN 'skip' THEN 2 WHEN 'fail' THEN 3 ELSE 99 END
    }} END,
    'unmapped': {{
        'auditor_status': status, 'resolution': resolution, 'waived': waived, 'waiver_id': waiver_id, 'is_new': is_new,
        'cloud': cloud, 'snapshot_id': snapshot_id, 'evaluation_id': evaluation_id
    }}
}}) AS event
FROM classed
{order}
LIMIT $limit
"""


def standards(catalog: Catalog | None) -> dict[str, str]:
    """Each framework's title by its id, for `compliance.standards`."""
    return {f.id: f.title for f in catalog.frameworks.values()} if catalog else {}


def write_ocsf(con, evaluation_ids: list[int], handle: IO[bytes], frameworks: dict[str, str],
               where: str = "", params: dict | None = None, statuses: tuple[str, ...] = STATUSES,
               resolved: bool = False, ordered: bool = True) -> int:
    """Write the findings of `evaluation_ids` of `statuses` (narrowed by `where`, a condition over findings
    `f` and projects `p` with its own bound `params`, which may set `limit`), and with `resolved` a Close
    event for each finding resolved since the previous snapshot, to `handle` as OCSF JSON Lines; return
    how many."""
    order = (f"ORDER BY evaluation_id, {SEVERITY_ORDER_SQL.replace('f.', '')}, "
             "list_position(['fail', 'error', 'skip', 'info', 'pass'], status), rule_id, resource_type, resource_id"
             if ordered else "")  # a report's whole file streams unsorted: see exports.py
    sql = _SELECT.format(where=f"AND ({where})" if where else "", order=order)
    bound = {"ids": list(evaluation_ids), "ocsf_version": OCSF_VERSION, "version": __version__,
             "framework_ids": list(frameworks), "framework_titles": list(frameworks.values()), "limit": 2**62,
             "kept_statuses": list(statuses), "resolved": resolved, **(params or {})}
    return write_lines(con.execute(sql, bound), handle)


def write_filtered(database: Path, flt: FindingFilter, frameworks: dict[str, str], handle: IO[bytes],
                   resolved: bool = False) -> int:
    """`auditor findings --format ocsf`: the findings `flt` selects, or with `resolved` the Close events of
    what was resolved since the previous snapshot, as OCSF JSON Lines."""
    con = open_reader(database)
    try:
        if resolved:
            flt = dataclasses.replace(flt, statuses=(), new_only=False)
        return write_ocsf(con, evaluation_ids(con, flt), handle, frameworks, FILTER_SQL, filter_params(flt),
                          statuses=() if resolved else STATUSES, resolved=resolved)
    finally:
        con.close()
