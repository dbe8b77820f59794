"""An evaluation: every enabled rule on one snapshot, then waivers and the diff with the previous
evaluated snapshot of the same cloud/region, stored as `evaluations`, `findings` and friends.

Rules read the snapshot's own Parquet files through the catalog, sandboxed; the results are written into the
lake as one evaluation, visible only once every file is in place (auditor/store/lake.py), so a crash leaves
no half-written evaluation.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from auditor import __version__
from auditor.config import DEFAULT_MEMORY_LIMIT, RulesSettings
from auditor.errors import ConfigError, EvaluationError, StoreError
from auditor.resources import data_dir
from auditor.rules.catalog import (
    SEVERITIES,
    SEVERITY_RANK,
    Catalog,
    InstanceType,
    Rule,
    load_catalog,
    load_instance_types,
    rules_version,
    same_param_type,
)
from auditor.rules.engine import InputState, RuleRun, run_rules
from auditor.rules.environment import own_partition, prepare
from auditor.rules.waivers import Waiver, load_waivers
from auditor.store.database import lake_path, open_reader
from auditor.store.lake import SCHEMA_ID, Staged, partition_file
from auditor.store.writer import start_evaluation, write_evaluation

log = logging.getLogger(__name__)


@dataclass
class RuleSet:
    """Everything an evaluation needs, loaded and checked before any snapshot is touched."""

    catalog: Catalog
    enabled: list[Rule]
    params: dict[str, dict[str, Any]]  # effective parameters of each enabled rule
    instance_types: list[InstanceType]
    instance_types_path: Path
    waivers: list[Waiver]
    waivers_path: Path | None
    timeout: float
    version: str


def rule_roots(settings: RulesSettings) -> list[Path]:
    return ([data_dir("rules")] if settings.builtin else []) + list(settings.paths)


def load_ruleset(settings: RulesSettings, config_source: Path | None = None) -> RuleSet:
    catalog = load_catalog(rule_roots(settings))
    where = str(config_source) if config_source else "auditor.toml"
    for rule_id in settings.disabled:
        if rule_id not in catalog.rules:
            raise ConfigError(f"{where}: key 'rules.disabled' names unknown rule {rule_id!r}")
    params = {}
    for rule_id, overrides in settings.params.items():
        if rule_id not in catalog.rules:
            raise ConfigError(f"{where}: key 'rules.params.{rule_id}': unknown rule {rule_id!r}")
        defaults = catalog.rules[rule_id].params
        for name, value in overrides.items():
            if name not in defaults:
                known = ", ".join(sorted(defaults)) or "none"
                raise ConfigError(f"{where}: key 'rules.params.{rule_id}.{name}': rule {rule_id} has no parameter "
                                  f"{name!r} (its parameters: {known})")
            if not same_param_type(defaults[name], value):
                raise ConfigError(f"{where}: key 'rules.params.{rule_id}.{name}' must have the type of its default "
                                  f"{defaults[name]!r}, got {value!r}")
    enabled = [r for r in sorted(catalog.rules.values(), key=lambda r: (SEVERITY_RANK[r.severity], r.id))
               if r.id not in settings.disabled]
    for rule in enabled:
        params[rule.id] = {**rule.params, **settings.params.get(rule.id, {})}
    mapping_path = settings.instance_types or data_dir("sample_data") / "instance_types.yaml"
    instance_types = load_instance_types(mapping_path)
    waivers = load_waivers(settings.waivers, set(catalog.rules)) if settings.waivers else []
    version = rules_version(enabled, params, [mapping_path, settings.waivers])
    return RuleSet(catalog, enabled, params, instance_types, mapping_path, waivers, settings.waivers,
                   settings.timeout, version)


@dataclass
class EvaluationResult:
    evaluation_id: int
    snapshot_id: int
    cloud: str
    region: str
    snapshot_status: str
    previous_evaluation_id: int | None
    fails: dict[str, int]  # severity -> failing rows, not waived
    new: dict[str, int]  # severity -> new failing rows, not waived
    waived: int
    resolved: int
    passes: int
    skips: int
    rule_errors: list[tuple[str, str]] = field(default_factory=list)
    incomplete: list[tuple[str, str]] = field(default_factory=list)
    waiver_notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def new_at_or_above(self, severity: str) -> int:
        return sum(n for s, n in self.new.items() if SEVERITY_RANK[s] <= SEVERITY_RANK[severity])

    def summary(self) -> str:
        where = f"{self.cloud}/{self.region}" if self.region else self.cloud
        fails = ", ".join(f"{self.fails.get(s, 0)} {s}" for s in SEVERITIES)
        since = "first evaluation" if self.previous_evaluation_id is None else \
            f"{sum(self.new.values())} new, {self.resolved} resolved since the previous snapshot"
        errors = f"; {len(self.rule_errors)} rule{'s' if len(self.rule_errors) != 1 else ''} in error" \
            if self.rule_errors else ""
        return (f"evaluation {self.evaluation_id} of snapshot {self.snapshot_id} ({where}, {self.snapshot_status}): "
                f"failing {fails}; {since}; {self.waived} waived, {self.passes} passed, {self.skips} skipped{errors}")


# -- choosing snapshots -----------------------------------------------------------------------------------
def select_snapshots(database: Path, spec: str | int, cloud: str | None = None) -> list[int]:
    """`latest`: the newest snapshot of each cloud/region that holds data (complete or partial); else one id."""
    con = open_reader(database)
    try:
        if str(spec) == "latest":
            rows = con.execute(
                "SELECT id FROM snapshots WHERE status <> 'failed' AND (? IS NULL OR cloud = ?) "
                "QUALIFY row_number() OVER (PARTITION BY cloud, region ORDER BY started_at DESC, id DESC) = 1 "
                "ORDER BY cloud, region", [cloud, cloud]).fetchall()
            if not rows:
                raise EvaluationError("no snapshot to evaluate" + (f" of cloud {cloud!r}" if cloud else "")
                                      + " (run `auditor snapshot` first)")
            return [r[0] for r in rows]
        try:
            snapshot_id = int(spec)
        except ValueError:
            raise EvaluationError(f"--snapshot must be a snapshot id or 'latest', got {spec!r}") from None
        rows = con.execute("SELECT status FROM snapshots WHERE id = ?", [snapshot_id]).fetchall()
        if not rows:
            raise EvaluationError(f"no snapshot with id {snapshot_id} (see `auditor snapshots`)")
        if rows[0][0] == "failed":
            raise EvaluationError(f"snapshot {snapshot_id} failed (nothing could be listed): nothing to evaluate")
        return [snapshot_id]
    finally:
        con.close()


# -- evaluating -------------------------------------------------------------------------------------------
def evaluate(database: Path, ruleset: RuleSet, snapshot_ids: list[int], today: date | None = None,
             stop: threading.Event | None = None,
             memory_limit: str = DEFAULT_MEMORY_LIMIT) -> list[EvaluationResult]:
    """Evaluate each snapshot in turn. `stop` (SIGTERM) interrupts the running rule; the evaluation in
    progress is then not written, and EvaluationCancelled is raised."""
    results = []
    # The work runs in a thread so that the main thread stays in Python, where signal handlers run: a
    # handler cannot run while the main thread waits inside a DuckDB query.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluate") as pool:
        for snapshot_id in snapshot_ids:
            future = pool.submit(evaluate_one, database, ruleset, snapshot_id, today, stop, memory_limit)
            while True:
                try:
                    results.append(future.result(timeout=0.2))
                    break
                except FutureTimeout:
                    continue
    return results


def evaluate_one(database: Path, ruleset: RuleSet, snapshot_id: int, today: date | None = None,
                 stop: threading.Event | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT
                 ) -> EvaluationResult:
    started_at = _utcnow()
    clock = time.perf_counter()
    today = today or started_at.date()
    # DuckDB keeps to `memory_limit` (its default is 80% of the machine), spilling into the evaluation's
    # staging folder: the results of every rule (2 million rows at 100,000 servers) are sorted at the end.
    claim = start_evaluation(database)
    try:
        con = open_reader(database, spill=(memory_limit, claim.spill))
        lake = lake_path(database)
        try:
            snap = con.execute("SELECT cloud, region, status, started_at FROM snapshots WHERE id = ?",
                               [snapshot_id]).fetchall()
            if not snap:
                raise EvaluationError(f"no snapshot with id {snapshot_id}")
            cloud, region, snapshot_status, snapshot_started = snap[0]
            previous = _previous_evaluation(con, cloud, region, snapshot_id, snapshot_started)
            prepare(con, snapshot_id, ruleset.instance_types, lake)
            runs = [RuleRun(rule, ruleset.params[rule.id]) for rule in ruleset.enabled]
            run_rules(con, runs, InputState.read(con), ruleset.timeout, stop)
            # the diff base's own file; for a first evaluation the empty schema file (no rows, every column)
            if previous and not partition_file(lake, "evaluations", previous[0]).is_file():
                raise EvaluationError(f"the diff base of snapshot {snapshot_id}, evaluation {previous[0]}, was "
                                      "pruned while this evaluation ran; evaluate again")
            previous_findings = own_partition(lake, "findings", previous[0] if previous else SCHEMA_ID)
            staged = _finalize(con, runs, ruleset.waivers, today, previous_findings, snapshot_started)
        except duckdb.Error as exc:
            raise StoreError(f"{database}: evaluation of snapshot {snapshot_id} failed: {exc}") from None
        finally:
            con.close()
    except BaseException:
        claim.abandon()
        raise
    finished_at = _utcnow()
    evaluation_id = _write(database, snapshot_id, cloud, region, previous, started_at, finished_at, ruleset,
                           runs, staged, claim, memory_limit)
    totals = staged["totals"]
    result = EvaluationResult(
        evaluation_id=evaluation_id, snapshot_id=snapshot_id, cloud=cloud, region=region,
        snapshot_status=snapshot_status, previous_evaluation_id=previous[0] if previous else None,
        fails=totals["fails"], new=totals["new"], waived=totals["waived"], resolved=staged["resolved"].num_rows,
        passes=totals["pass"], skips=totals["skip"],
        rule_errors=[(r.rule.id, r.message) for r in runs if r.outcome == "error"],
        incomplete=[(r.rule.id, r.message) for r in runs if r.outcome == "incomplete"],
        waiver_notes=staged["waiver_notes"], seconds=time.perf_counter() - clock,
    )
    log.info("%s", result.summary())
    return result


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _previous_evaluation(con, cloud, region, snapshot_id, snapshot_started):
    """The diff base: the newest evaluation of the newest earlier *complete* snapshot of this cloud/region.
    A partial snapshot is compared like any other, but never becomes a base: what it could not see would
    read as resolved in it and as new again in the next one."""
    rows = con.execute(
        "SELECT e.id, e.snapshot_id FROM evaluations e JOIN snapshots s ON s.id = e.snapshot_id "
        "WHERE e.cloud = ? AND e.region = ? AND s.status = 'complete' "
        "AND (s.started_at < ? OR (s.started_at = ? AND s.id < ?)) "
        "ORDER BY s.started_at DESC, s.id DESC, e.id DESC LIMIT 1",
        [cloud, region, snapshot_started, snapshot_started, snapshot_id]).fetchall()
    return rows[0] if rows else None


def _finalize(con, runs: list[RuleRun], waivers: list[Waiver], today: date, previous_findings: str,
              snapshot_started) -> dict:
    """Waivers, first-seen dates and the resolved list, in SQL on the evaluation connection.
    `previous_findings`: a SELECT of the diff base's findings."""
    meta = pa.table({
        "rule_id": [r.rule.id for r in runs],
        "severity": [r.rule.severity for r in runs],
        "resource_type": [r.rule.resource_type for r in runs],
        "outcome": [r.outcome for r in runs],
    })
    active = [w for w in waivers if w.state_on(today) == "active"]
    waiver_table = pa.table({
        "waiver_id": pa.array([w.id for w in active], pa.string()),
        "ord": pa.array(list(range(len(active))), pa.int64()),
        "rule_id": pa.array([w.rule for w in active], pa.string()),
        "match_id": pa.array([w.match.get("resource_id") for w in active], pa.string()),
        "match_name": pa.array([w.match.get("resource_name") for w in active], pa.string()),
        "match_project": pa.array([w.match.get("project") for w in active], pa.string()),
    })
    con.register("rule_meta_arrow", meta)
    con.register("waivers_arrow", waiver_table)
    con.execute("CREATE OR REPLACE TEMP TABLE rule_meta AS SELECT * FROM rule_meta_arrow")
    con.execute("CREATE OR REPLACE TEMP TABLE active_waivers AS SELECT * FROM waivers_arrow")
    con.unregister("rule_meta_arrow")
    con.unregister("waivers_arrow")
    con.execute("CREATE OR REPLACE TEMP VIEW results AS SELECT * FROM rule_results")  # n: each row's number
    con.execute("""
        CREATE OR REPLACE TEMP TABLE waiver_hits AS
        SELECT r.n, arg_min(w.waiver_id, w.ord) AS waiver_id
        FROM results r JOIN active_waivers w
          ON r.status = 'fail' AND r.rule_id = w.rule_id
         AND (w.match_id IS NULL OR r.resource_id = w.match_id)
         AND (w.match_name IS NULL OR r.resource_name GLOB w.match_name)
         AND (w.match_project IS NULL OR r.project_id = w.match_project
              OR r.project_id IN (SELECT id FROM projects WHERE name = w.match_project))
        GROUP BY r.n""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE previous_findings AS
        SELECT rule_id, severity, resource_type, resource_id, resource_name, project_id, status, first_seen_at
        FROM ({previous_findings}) WHERE resource_id IS NOT NULL""")
    # Each resource's rows side by side: a reason quotes its resource's name and id, which zstd then stores
    # as back-references (the findings of 20,000 servers: 7.1 MB a run in rule order, 3.1 MB so).
    findings = con.sql("""
        SELECT r.rule_id, m.severity, m.resource_type, r.resource_id, r.resource_name, r.project_id, r.status,
               r.reason, h.waiver_id IS NOT NULL AS waived, h.waiver_id,
               CASE WHEN r.status = 'fail' THEN coalesce(p.first_seen_at, CAST(? AS TIMESTAMP))
                    WHEN r.status = 'skip' THEN p.first_seen_at END AS first_seen_at,
               r.status = 'fail' AND p.first_seen_at IS NULL AS is_new, r.evidence
        FROM results r JOIN rule_meta m USING (rule_id)
        LEFT JOIN waiver_hits h USING (n)
        LEFT JOIN previous_findings p
          ON p.rule_id = r.rule_id AND p.resource_id = r.resource_id AND p.first_seen_at IS NOT NULL
        ORDER BY m.resource_type, r.resource_id, r.rule_id""", params=[snapshot_started]).to_arrow_table()
    # Resolved: failing before, and now passing, or gone while the rule ran on complete data.
    resolved = con.sql("""
        SELECT p.rule_id, p.severity, p.resource_type, p.resource_id, p.resource_name, p.project_id,
               p.first_seen_at, CASE WHEN r.status IS NULL THEN 'gone' ELSE 'passed' END AS resolution
        FROM previous_findings p JOIN rule_meta m USING (rule_id)
        LEFT JOIN results r ON r.rule_id = p.rule_id AND r.resource_id = p.resource_id
        WHERE p.status = 'fail'
          AND (r.status IN ('pass', 'info') OR (r.status IS NULL AND m.outcome = 'ran'))
        ORDER BY p.resource_type, p.resource_id, p.rule_id""").to_arrow_table()
    con.register("final_findings", findings)
    counts = con.execute("""
        SELECT severity, count(*) FILTER (WHERE status = 'fail' AND NOT waived),
               count(*) FILTER (WHERE is_new AND NOT waived), count(*) FILTER (WHERE waived),
               count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'skip')
        FROM final_findings GROUP BY ALL""").fetchall()
    hits = dict(con.execute("SELECT waiver_id, count(*) FROM waiver_hits GROUP BY ALL").fetchall())
    waiver_rows, notes = [], []
    for waiver in waivers:
        state = waiver.state_on(today)
        matched = hits.get(waiver.id, 0)
        if state == "active" and not matched:
            state = "unmatched"
        if state == "expired":
            notes.append(f"waiver {waiver.id} ({waiver.rule}, owner {waiver.owner}) expired on "
                         f"{waiver.expires.isoformat()} and no longer applies")
        elif state == "unmatched":
            notes.append(f"waiver {waiver.id} ({waiver.rule}, owner {waiver.owner}) matches no failing resource")
        waiver_rows.append((waiver, state, matched))
    return {
        "findings": findings,
        "resolved": resolved,
        "waivers": waiver_rows,
        "waiver_notes": notes,
        "totals": {
            "fails": {s: sum(c[1] for c in counts if c[0] == s) for s in SEVERITIES},
            "new": {s: sum(c[2] for c in counts if c[0] == s) for s in SEVERITIES},
            "waived": sum(c[3] for c in counts),
            "pass": sum(c[4] for c in counts),
            "skip": sum(c[5] for c in counts),
        },
    }


def _write(database: Path, snapshot_id, cloud, region, previous, started_at, finished_at, ruleset: RuleSet,
           runs: list[RuleRun], staged: dict, claim: Staged, memory_limit: str) -> int:
    totals = staged["totals"]

    def insert(con, evaluation_id: int) -> None:
        con.execute(
            "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [evaluation_id, snapshot_id, cloud, region, previous[0] if previous else None,
             previous[1] if previous else None, started_at, finished_at, ruleset.version, __version__,
             len(runs), sum(r.outcome == "error" for r in runs), sum(r.outcome == "incomplete" for r in runs),
             sum(totals["fails"].values()), totals["waived"], sum(totals["new"].values()),
             staged["resolved"].num_rows, totals["pass"], totals["skip"]])
        con.executemany(
            "INSERT INTO evaluation_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[evaluation_id, r.rule.id, r.rule.title, r.rule.severity, r.rule.resource_type, r.rule.pack,
              r.rule.description, r.rule.rationale, r.rule.remediation, json.dumps(r.params),
              json.dumps(ruleset.catalog.controls_of(r.rule.id)), r.outcome, r.missing_inputs or None,
              r.message, round(r.seconds, 4), r.counts.get("pass", 0), r.counts.get("fail", 0),
              r.counts.get("skip", 0), r.counts.get("info", 0)] for r in runs])
        # ~1M rows at 100,000 servers: written straight from Arrow, not copied into the table first
        con.register("staged_findings", staged["findings"])
        con.execute("DROP TABLE findings")
        con.execute(f"CREATE VIEW findings AS SELECT {int(evaluation_id)} AS evaluation_id, "
                    f"{int(snapshot_id)} AS snapshot_id, * FROM staged_findings")
        if staged["resolved"].num_rows:
            con.register("staged_resolved", staged["resolved"])
            con.execute("INSERT INTO resolved_findings BY NAME SELECT ? AS evaluation_id, ? AS snapshot_id, "
                        "? AS previous_evaluation_id, * FROM staged_resolved",
                        [evaluation_id, snapshot_id, previous[0]])
            con.unregister("staged_resolved")
        if ruleset.instance_types:  # the mapping that judged the snapshot, readable after the YAML changes
            con.executemany(
                "INSERT INTO evaluation_instance_types VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[evaluation_id, t.name, t.description, t.vcpus, t.ram_mb, t.disk_gb, list(t.flavors)]
                 for t in ruleset.instance_types])
        if staged["waivers"]:
            con.executemany(
                "INSERT INTO evaluation_waivers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[evaluation_id, w.id, w.rule, json.dumps(w.match), w.reason, w.owner, w.expires, state,
                  matched] for w, state, matched in staged["waivers"]])

    return write_evaluation(database, insert, memory_limit, claim)


def check_catalog_sql(ruleset: RuleSet, rules: list[Rule] | None = None) -> list[str]:
    """Each rule's query (default: every enabled rule) checked against the real schema, on an empty
    in-memory database prepared exactly as for an evaluation, in the same sandbox."""
    from auditor.rules.engine import check_rule_sql
    from auditor.store.database import sandbox
    from auditor.store.tables import SANDBOX_CONFIG, latest_views_sql, schema_sql

    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute(schema_sql())
        con.execute(latest_views_sql())
        prepare(con, 0, ruleset.instance_types)
        sandbox(con)  # as in an evaluation: a rule that reads files is refused here
        problems = []
        for rule in ruleset.enabled if rules is None else rules:
            problems.extend(check_rule_sql(con, rule, ruleset.params.get(rule.id, rule.params)))
        return problems
    finally:
        con.close()
