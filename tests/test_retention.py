"""Snapshot retention on a real DuckDB file holding a synthetic year of snapshots, evaluations and findings.

The expected kept set comes from a plain Python reading of the policy written here, not from the module.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from auditor.config import RetentionSettings
from auditor.errors import RetentionError
from auditor.report.build import refresh_index, report_folder
from auditor.store.database import lake_path, open_for_writing, open_reader
from auditor.pipeline import PruneResult, prune
from auditor.store.retention import plan_retention
from auditor.store.tables import table_columns

NOW = datetime(2025, 6, 30, 9, 0, tzinfo=UTC)
NAIVE_NOW = NOW.replace(tzinfo=None)
POLICY = RetentionSettings(keep_all_days=14, daily_days=90)
FIRST_DAY = date(2024, 7, 1)
DAYS = 365
ALL_FAILED_WEEK = date(2024, 9, 9)     # a Monday: every prod/RegionOne collection of that ISO week failed
NO_COMPLETE_WEEK = date(2024, 10, 14)  # a Monday: prod/RegionOne only partial and failed that week
ALL_FAILED_DAY = date(2025, 5, 20)     # in the daily tier: every prod/RegionOne collection failed
SAME_SECOND = datetime(2025, 5, 1, 12, 30)  # two complete prod/RegionOne snapshots started in the same second
LAB_FAILING_SINCE = NAIVE_NOW - timedelta(days=200)
EDGE_LAST_DAY = (NAIVE_NOW - timedelta(days=30)).date()  # the edge cloud was last collected 30 days ago
STALE_SINCE = NAIVE_NOW - timedelta(days=300)  # srv-2 fails from here on


@dataclass(frozen=True)
class Snap:
    id: int
    cloud: str
    region: str
    started_at: datetime
    status: str
    evaluated: bool = True


# ---------------------------------------------------------------------------------------------------------
# The synthetic year


def _plan_snapshots() -> list[tuple]:
    """(cloud, region, started_at, status, evaluated) for every snapshot, before ids are given."""
    rng = random.Random(20250630)
    planned = []
    for i in range(DAYS):
        day = FIRST_DAY + timedelta(days=i)
        week_start = day - timedelta(days=day.weekday())
        for hour in (0, 12):  # a file per table and snapshot: twice a day keeps the suite quick
            at = datetime.combine(day, time(hour, 30))
            r = rng.random()
            status = "partial" if r < 0.12 else "failed" if r < 0.2 else "complete"
            if week_start == ALL_FAILED_WEEK or day == ALL_FAILED_DAY:
                status = "failed"
            elif week_start == NO_COMPLETE_WEEK:
                status = "partial" if r < 0.5 else "failed"
            elif at == SAME_SECOND or day == NAIVE_NOW.date():
                status = "complete"
            planned.append(("prod", "RegionOne", at, status, True))
            if at == SAME_SECOND:
                planned.append(("prod", "RegionOne", at, "complete", True))
            r = rng.random()
            lab = "partial" if r < 0.1 else "failed" if r < 0.15 else "complete"
            planned.append(("lab", "RegionOne", at + timedelta(minutes=7), "failed" if at >= LAB_FAILING_SINCE else lab,
                            True))
        r = rng.random()
        planned.append(("prod", "RegionTwo", datetime.combine(day, time(3, 15)),
                        "partial" if r < 0.3 else "failed" if r < 0.4 else "complete", True))
        if day < EDGE_LAST_DAY:
            planned.append(("edge", "RegionOne", datetime.combine(day, time(9)),
                            "partial" if rng.random() < 0.2 else "complete", True))
        elif day == EDGE_LAST_DAY:
            planned.append(("edge", "RegionOne", datetime.combine(day, time(9)), "complete", True))   # diff base
            planned.append(("edge", "RegionOne", datetime.combine(day, time(10)), "complete", False))  # unevaluated
            planned.append(("edge", "RegionOne", datetime.combine(day, time(11)), "partial", True))   # latest eval.
    return [p for p in planned if p[2] < NAIVE_NOW]


ARROW_TYPES = {"VARCHAR": pa.string(), "JSON": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
               "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"), "DATE": pa.date32(),
               "VARCHAR[]": pa.list_(pa.string())}

RULES = (  # rule id, severity, resource type, judged resource
    ("open_ssh", "high", "server", "srv-1"),
    ("stale_image", "medium", "server", "srv-2"),
    ("no_tags", "low", "server", "srv-3"),
)


def _outcome(rule: str, snap: Snap) -> str | None:
    """The rule's row for its resource: pass/fail/skip; None when the listing failed (rule-level skip)."""
    if snap.status == "failed":
        return None
    if rule == "no_tags" and snap.status == "partial":
        return "skip"  # srv-3's listing is the incomplete one
    if rule == "open_ssh":
        return "fail"
    if rule == "stale_image":
        return "fail" if snap.started_at >= STALE_SINCE else "pass"
    return "fail" if ((snap.started_at.date() - FIRST_DAY).days // 7) % 2 == 0 else "pass"


def build_year(database: Path) -> list[Snap]:
    planned = sorted(_plan_snapshots(), key=lambda p: (p[2], p[0], p[1]))
    snaps = [Snap(i + 1, *p) for i, p in enumerate(planned)]
    rows: dict[str, list[dict]] = defaultdict(list)
    previous: dict[tuple, dict] = {}  # (cloud, region) -> the diff base: (evaluation id, its findings by key)
    evaluation_id = 0
    for snap in snaps:
        failed, partial = snap.status == "failed", snap.status == "partial"
        rows["snapshots"].append({
            "id": snap.id, "cloud": snap.cloud, "region": snap.region, "scope": "cloud", "started_at": snap.started_at,
            "finished_at": snap.started_at + timedelta(minutes=2), "status": snap.status, "tool_version": "test",
            "server_count": 0 if failed else 2 if partial else 3, "error_count": 2 if failed else 1 if partial else 0})
        for n in range(2 if failed else 1 if partial else 0):
            rows["collection_errors"].append({"snapshot_id": snap.id, "resource_type": "servers", "http_status": 503,
                                              "url": "/v2.1/servers/detail", "message": f"unavailable {n}"})
        rows["retention_notes"].append({"snapshot_id": snap.id, "note": f"added later {snap.id}"})
        if not failed:
            for n in range(1, 3 if partial else 4):
                rows["servers"].append({"snapshot_id": snap.id, "id": f"srv-{n}", "name": f"server-{n}",
                                        "project_id": "p1", "status": "ACTIVE", "raw": json.dumps({"id": f"srv-{n}"})})
        if not snap.evaluated:
            continue
        evaluation_id += 1
        base = previous.get((snap.cloud, snap.region))
        base_findings = base[1] if base else {}
        findings = {}
        for rule, severity, resource_type, resource in RULES:
            status = _outcome(rule, snap)
            key = (rule, resource)
            earlier = base_findings.get(key, {}).get("first_seen_at")
            if status is None:
                row = {"resource_id": None, "resource_name": None, "status": "skip", "first_seen_at": None,
                       "is_new": False}
            else:
                row = {"resource_id": resource, "resource_name": resource, "status": status,
                       "first_seen_at": (earlier or snap.started_at) if status == "fail" else
                       earlier if status == "skip" else None,
                       "is_new": status == "fail" and earlier is None}
                findings[key] = row
            rows["findings"].append({"evaluation_id": evaluation_id, "snapshot_id": snap.id, "rule_id": rule,
                                     "severity": severity, "resource_type": resource_type, "project_id": "p1",
                                     "reason": f"{rule} on {resource}", "waived": False, **row})
            rows["evaluation_rules"].append({
                "evaluation_id": evaluation_id, "rule_id": rule, "title": rule, "severity": severity,
                "resource_type": resource_type, "pack": "test", "outcome": "incomplete" if status is None else "ran",
                "seconds": 0.01, "pass_count": int(status == "pass"), "fail_count": int(status == "fail"),
                "skip_count": int(status in (None, "skip")), "info_count": 0})
            before = base_findings.get(key)
            if before and before["status"] == "fail" and status == "pass":
                rows["resolved_findings"].append({
                    "evaluation_id": evaluation_id, "snapshot_id": snap.id, "previous_evaluation_id": base[0],
                    "rule_id": rule, "severity": severity, "resource_type": resource_type, "resource_id": resource,
                    "resource_name": resource, "project_id": "p1", "first_seen_at": before["first_seen_at"],
                    "resolution": "passed"})
        rows["evaluation_notes"].append({"evaluation_id": evaluation_id, "note": f"added later {evaluation_id}"})
        rows["evaluations"].append({
            "id": evaluation_id, "snapshot_id": snap.id, "cloud": snap.cloud, "region": snap.region,
            "previous_evaluation_id": base[0] if base else None, "previous_snapshot_id": base[2] if base else None,
            "started_at": snap.started_at + timedelta(minutes=3), "finished_at": snap.started_at + timedelta(minutes=4),
            "rules_version": "v1", "tool_version": "test", "rule_count": 3, "rule_error_count": 0,
            "rule_incomplete_count": 3 if snap.status == "failed" else int(partial), "fail_count": 0,
            "waived_count": 0, "new_count": 0, "resolved_count": 0, "pass_count": 0, "skip_count": 0})
        if snap.status == "complete":  # only a complete snapshot becomes a diff base
            previous[(snap.cloud, snap.region)] = (evaluation_id, findings, snap.id)

    _write_year(database, rows)
    return snaps


NOTES = {"retention_notes": {"snapshot_id": "BIGINT", "note": "VARCHAR"},  # tables a later schema might add:
         "evaluation_notes": {"evaluation_id": "BIGINT", "note": "VARCHAR"}}  # prune must find their folders too


def _write_year(database: Path, rows: dict[str, list[dict]]) -> None:
    """Every table's rows into the lake of `database`, one partition per snapshot or evaluation, as the
    writer lays them out (with the ids claimed), in one COPY per table."""
    lake = open_for_writing(database)
    con = duckdb.connect()
    try:
        for table, table_rows in rows.items():
            columns = NOTES.get(table) or dict(table_columns()[table])
            key = "evaluation_id" if table == "evaluations" or "evaluation_id" in columns else "snapshot_id"
            source = "id" if table in ("snapshots", "evaluations") else key
            arrays = {name: pa.array([r.get(name) for r in table_rows], ARROW_TYPES[kind])
                      for name, kind in columns.items()}
            con.register("staged", pa.table(arrays))
            kept = ", ".join(f'"{name}"' for name in columns if name != source)
            con.execute(f"COPY (SELECT {source} AS {key}, {kept} FROM staged) TO '{lake / table}' "
                        f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({key}), FILENAME_PATTERN 'part-{{i}}', "
                        "OVERWRITE_OR_IGNORE)")
            con.unregister("staged")
    finally:
        con.close()
    for kind, table in (("snapshots", "snapshots"), ("evaluations", "evaluations")):
        claims = lake / "_ids" / kind
        claims.mkdir(parents=True, exist_ok=True)
        for row in rows[table]:
            (claims / f"{row['id']}.done").touch()


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> tuple[Path, list[Snap]]:
    database = tmp_path_factory.mktemp("year") / "audit.duckdb"
    snaps = build_year(database)
    _copy_linked(database.parent, _pristine(database))
    return database, snaps


def _pristine(database: Path) -> Path:
    return database.parent.with_name(database.parent.name + "-pristine")


def _copy_linked(source: Path, target: Path) -> None:
    """A copy whose Parquet files are hard links (pruning removes them, never rewrites one) and whose id
    claims are copies (pruning writes into a claim it renames)."""
    subprocess.run(["cp", "-al", str(source), str(target)], check=True)
    for claims in (target / "audit.lake" / "_ids").glob("*"):
        shutil.rmtree(claims)
        shutil.copytree(source / "audit.lake" / "_ids" / claims.name, claims)


@pytest.fixture
def db(year) -> Path:
    """The year itself, put back afterwards from the copy taken once (see _copy_linked). Not a copy elsewhere:
    the catalog names the lake's absolute path, and a year's catalog takes half a minute to build."""
    database, _ = year
    yield database
    shutil.rmtree(database.parent)
    _copy_linked(_pristine(database), database.parent)


# ---------------------------------------------------------------------------------------------------------
# The policy, read plainly


QUALITY = {"complete": 0, "partial": 1, "failed": 2}


def expected_kept(snaps: list[Snap], policy: RetentionSettings, now: datetime) -> set[int]:
    now = now.astimezone(UTC).replace(tzinfo=None)
    kept: set[int] = set()
    buckets: dict[tuple, list[Snap]] = defaultdict(list)
    regions: dict[tuple, list[Snap]] = defaultdict(list)
    for snap in snaps:
        regions[(snap.cloud, snap.region)].append(snap)
        age = now - snap.started_at
        if age < timedelta(days=policy.keep_all_days):
            kept.add(snap.id)
        elif age < timedelta(days=policy.keep_all_days + policy.daily_days):
            buckets[(snap.cloud, snap.region, "day", snap.started_at.date())].append(snap)
        else:
            iso = snap.started_at.isocalendar()
            buckets[(snap.cloud, snap.region, "week", iso.year, iso.week)].append(snap)

    def newest_first(members):
        return sorted(members, key=lambda s: (s.started_at, s.id), reverse=True)

    for members in buckets.values():
        kept.add(min(newest_first(members), key=lambda s: QUALITY[s.status]).id)  # min keeps the first best
    for members in regions.values():
        ordered = newest_first(members)
        for wanted in (lambda s: s.status == "complete", lambda s: s.status == "complete" and s.evaluated,
                       lambda s: s.evaluated):
            chosen = next((s for s in ordered if wanted(s)), None)
            if chosen:
                kept.add(chosen.id)
    return kept


def row_counts(database: Path) -> dict[tuple[str, str, int], int]:
    """(table, key column, key) -> rows, for every table folder of the lake keyed by snapshot or evaluation
    (in the file or in the path), plus snapshots by id; read from the files, not through the catalog."""
    lake = lake_path(database)
    con = duckdb.connect()
    try:
        counts = {}
        for folder in sorted(p for p in lake.iterdir() if p.is_dir() and not p.name.startswith("_")):
            source = f"read_parquet('{folder}/*/part-*.parquet', hive_partitioning = true, union_by_name = true)"
            if not list(folder.glob("*/part-*.parquet")):
                continue
            names = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            for column in sorted(names & {"snapshot_id", "evaluation_id"}):
                for key, n in con.execute(f"SELECT {column}, count(*) FROM {source} GROUP BY ALL").fetchall():
                    counts[(folder.name, column, key)] = n
        catalog = duckdb.connect(str(database), read_only=True)
        try:
            for (key,) in catalog.execute("SELECT id FROM snapshots").fetchall():
                counts[("snapshots", "id", key)] = 1
        finally:
            catalog.close()
        return counts
    finally:
        con.close()


def evaluation_snapshots(database: Path) -> dict[int, int]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return dict(con.execute("SELECT id, snapshot_id FROM evaluations").fetchall())
    finally:
        con.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("policy", [POLICY, RetentionSettings(1, 0), RetentionSettings(30, 200),
                                    RetentionSettings(400, 10)])
def test_plan_matches_a_plain_reading_of_the_policy(year, policy):
    database, snaps = year
    con = open_reader(database)
    try:
        kept, pruned = plan_retention(con, policy, NOW)
    finally:
        con.close()
    assert kept == sorted(kept) and pruned == sorted(pruned)
    assert set(kept) | set(pruned) == {s.id for s in snaps} and not set(kept) & set(pruned)
    assert set(kept) == expected_kept(snaps, policy, NOW)
    if policy.keep_all_days == 400:
        assert pruned == []


def test_the_plan_keeps_one_best_snapshot_per_day_and_iso_week(year):
    database, snaps = year
    con = open_reader(database)
    try:
        kept = set(plan_retention(con, POLICY, NOW)[0])
    finally:
        con.close()
    prod = [s for s in snaps if (s.cloud, s.region) == ("prod", "RegionOne") and s.id in kept]
    by_week = defaultdict(list)
    for s in prod:
        if NAIVE_NOW - s.started_at >= timedelta(days=104):
            by_week[s.started_at.isocalendar()[:2]].append(s)
    # ISO week 1 of 2025 runs from Monday 2024-12-30: one snapshot for the week across the year's end
    across = [s for s in prod if date(2024, 12, 30) <= s.started_at.date() <= date(2025, 1, 5)]
    assert len(across) == 1 and all(len(v) == 1 for v in by_week.values())
    # a week where every collection failed keeps its newest failed snapshot: the record that collection failed
    (failed_week,) = by_week[ALL_FAILED_WEEK.isocalendar()[:2]]
    assert failed_week.status == "failed" and failed_week.started_at == datetime(2024, 9, 15, 12, 30)
    (partial_week,) = by_week[NO_COMPLETE_WEEK.isocalendar()[:2]]
    week = [s for s in snaps if (s.cloud, s.region) == ("prod", "RegionOne")
            and NO_COMPLETE_WEEK <= s.started_at.date() < NO_COMPLETE_WEEK + timedelta(days=7)]
    assert partial_week == max((s for s in week if s.status == "partial"), key=lambda s: s.started_at)
    # the daily tier: one per date; a day of failures keeps one failed snapshot
    failed_day = [s for s in prod if s.started_at.date() == ALL_FAILED_DAY]
    assert [(s.status, s.started_at.time()) for s in failed_day] == [("failed", time(12, 30))]
    # two complete snapshots started in the same second: the one with the higher id wins
    twins = sorted(s.id for s in snaps if s.started_at == SAME_SECOND and s.cloud == "prod")
    assert len(twins) == 2 and twins[1] in kept and twins[0] not in kept


def test_prune_removes_every_row_of_pruned_snapshots_and_nothing_of_kept_ones(db, year):
    _, snaps = year
    before = row_counts(db)
    evaluations = evaluation_snapshots(db)
    keys = defaultdict(set)  # table -> its key columns
    for table, column, _ in before:
        keys[table].add(column)
    result = prune(db, POLICY, None, now=NOW)
    assert isinstance(result, PruneResult) and not result.dry_run
    kept = expected_kept(snaps, POLICY, NOW)
    pruned = {s.id for s in snaps} - kept
    assert set(result.pruned) == pruned and result.kept == len(kept) and len(pruned) > 1000
    assert result.summary() == f"pruned {len(pruned)} of {len(snaps)} snapshots (kept {len(kept)}, " \
                               f"{result.bytes_freed / 2**20:.1f} MB freed); 0 report folders removed"
    assert result.bytes_freed > 0
    after = row_counts(db)
    # a file per table and snapshot or evaluation: a few tables of each kind stand for all (pruning is by folder)
    assert {table for table, _, _ in before} >= {"retention_notes", "evaluation_notes", "servers", "findings",
                                                "resolved_findings", "evaluation_rules", "collection_errors"}

    def snapshot_of(table, column, key):
        return evaluations[key] if column == "evaluation_id" else key

    for place, n in before.items():
        if snapshot_of(*place) in pruned:
            assert place not in after, place
        else:
            assert after.get(place) == n, place
    assert set(after) <= set(before)
    deleted = defaultdict(int)
    for (table, column, key), n in before.items():  # each row once: by snapshot_id where the table has it
        if column == ("id" if table == "snapshots" else "snapshot_id" if "snapshot_id" in keys[table]
                      else "evaluation_id") and snapshot_of(table, column, key) in pruned:
            deleted[table] += n
    assert {t: n for t, n in result.rows_deleted.items() if n} == {t: n for t, n in deleted.items() if n}


def test_prune_keeps_what_the_latest_views_show_and_first_seen_dates(db, year):
    _, snaps = year

    def latest():
        con = duckdb.connect(str(db), read_only=True)
        try:
            return (con.execute("SELECT id FROM latest_snapshots ORDER BY id").fetchall(),
                    con.execute("SELECT id, snapshot_id FROM latest_evaluations ORDER BY id").fetchall(),
                    con.execute("SELECT * FROM latest_findings ORDER BY ALL").fetchall())
        finally:
            con.close()

    con = duckdb.connect(str(db), read_only=True)
    try:
        (first_seen, first_snapshot), = con.execute("""
            SELECT f.first_seen_at, s.id FROM latest_findings f JOIN latest_evaluations e ON e.id = f.evaluation_id
            JOIN snapshots s ON s.cloud = e.cloud AND s.region = e.region AND s.started_at = f.first_seen_at
            WHERE e.cloud = 'prod' AND e.region = 'RegionOne' AND f.rule_id = 'stale_image'""").fetchall()
    finally:
        con.close()
    assert timedelta(days=299) < NAIVE_NOW - first_seen < timedelta(days=301)
    views = latest()
    result = prune(db, POLICY, None, now=NOW)
    assert first_snapshot in result.pruned  # the snapshot where it was first seen is gone...
    assert latest() == views  # ...and what is true now is unchanged, first_seen_at included
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("""
            SELECT f.first_seen_at, f.is_new FROM latest_findings f JOIN latest_evaluations e ON e.id = f.evaluation_id
            WHERE e.cloud = 'prod' AND e.region = 'RegionOne' AND f.rule_id = 'stale_image'""").fetchall()
        assert rows == [(first_seen, False)]
        assert con.execute("SELECT count(*) FROM snapshots WHERE id = ?", [first_snapshot]).fetchall() == [(0,)]
    finally:
        con.close()
    # the edge cloud, last collected 30 days ago: its newest complete snapshot (not evaluated yet), the diff
    # base of that one's coming evaluation, and the partial snapshot latest_evaluations shows all stay
    last_day = [s for s in snaps if s.cloud == "edge" and s.started_at.date() == EDGE_LAST_DAY]
    assert [(s.status, s.evaluated) for s in last_day] == [("complete", True), ("complete", False), ("partial", True)]
    assert not {s.id for s in last_day} & set(result.pruned)


def test_a_cloud_failing_for_200_days_keeps_its_newest_complete_snapshot(db, year):
    _, snaps = year
    lab = [s for s in snaps if s.cloud == "lab"]
    newest_complete = max((s for s in lab if s.status == "complete"), key=lambda s: (s.started_at, s.id))
    assert NAIVE_NOW - newest_complete.started_at > timedelta(days=200)
    assert all(s.status == "failed" for s in lab if s.started_at >= LAB_FAILING_SINCE)
    result = prune(db, POLICY, None, now=NOW)
    assert newest_complete.id not in result.pruned
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT id FROM latest_snapshots WHERE cloud = 'lab'").fetchall() == [(newest_complete.id,)]
        assert con.execute("SELECT count(*) FROM servers WHERE snapshot_id = ?", [newest_complete.id]).fetchall() \
            == [(3,)]
    finally:
        con.close()


def test_the_catalog_follows_and_a_second_prune_removes_nothing(db, year):
    _, snaps = year
    result = prune(db, POLICY, None, now=NOW)
    kept = expected_kept(snaps, POLICY, NOW)
    con = open_reader(db)
    try:
        assert {r[0] for r in con.execute("SELECT id FROM snapshots").fetchall()} == kept
        assert con.execute("SELECT count(*) FROM servers WHERE snapshot_id IN (SELECT unnest(?))",
                           [result.pruned]).fetchall() == [(0,)]
    finally:
        con.close()
    counts = row_counts(db)
    for later in (NOW, NOW + timedelta(seconds=30)):
        again = prune(db, POLICY, None, now=later)
        assert again.pruned == [] and again.rows_deleted == {} and again.kept == len(kept)
    assert row_counts(db) == counts
    assert prune(db, POLICY, None, now=NOW, dry_run=True).pruned == []


def _write_fake_report(out: Path, snap: Snap, meta: dict | None = None) -> Path:
    """A report folder as build.py writes it: report.json (its meta) beside the files it names."""
    folder = report_folder(out, {"id": snap.id, "cloud": snap.cloud, "region": snap.region,
                                 "started_at": snap.started_at})
    folder.mkdir(parents=True)
    (folder / "report.html").write_text(f"<p>report of {snap.id}</p>", encoding="utf-8")
    meta = meta or {"cloud": snap.cloud, "region": snap.region, "snapshot_id": snap.id, "evaluation_id": snap.id,
                    "started_at": snap.started_at.isoformat(), "status": snap.status, "score": 50,
                    "fails": {"high": 1}, "new_total": 0, "resolved_total": 0, "files": {"html": "report.html"}}
    (folder / "report.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def _index_links(out: Path) -> set[str]:
    return set(re.findall(r'href="([^"]+/report\.html)"', (out / "index.html").read_text(encoding="utf-8")))


def test_report_folders_of_pruned_snapshots_are_removed_and_unlisted(db, year, tmp_path):
    _, snaps = year
    out = tmp_path / "reports"
    two = [s for s in snaps if (s.cloud, s.region) == ("prod", "RegionTwo")]
    folders = {s.id: _write_fake_report(out, s) for s in two}
    kept = expected_kept(snaps, POLICY, NOW)
    pruned_two = [s for s in two if s.id not in kept]
    # written from another database: same snapshot id as a pruned one, another snapshot: it stays
    other = Snap(pruned_two[0].id, "prod", "RegionTwo", datetime(2030, 1, 1, 1, 1), "complete")
    foreign = _write_fake_report(out, other)
    # an unreadable description, and a report folder that is a symbolic link: both stay, the link is reported
    junk = out / "prod" / "RegionTwo" / "junk"
    junk.mkdir()
    (junk / "report.json").write_text("not json", encoding="utf-8")
    linked_snap = pruned_two[1]
    shutil.rmtree(folders[linked_snap.id])
    target = _write_fake_report(tmp_path / "elsewhere", linked_snap)
    folders[linked_snap.id].symlink_to(target, target_is_directory=True)
    refresh_index(out)
    assert len(_index_links(out)) == len(two) + 1

    result = prune(db, POLICY, out, now=NOW)

    removed = {folders[s.id] for s in pruned_two if s is not linked_snap}
    assert set(result.report_folders_removed) == removed and len(removed) > 200
    assert result.report_folders_failed == [(folders[linked_snap.id], "is a symbolic link")]
    assert not any(folder.exists() for folder in removed)
    assert target.is_dir() and (target / "report.json").is_file()
    stays = [folders[s.id] for s in two if s.id in kept]
    assert all((folder / "report.html").is_file() for folder in stays) and foreign.is_dir() and junk.is_dir()
    assert not list(out.glob("*/*/.*"))  # nothing half-removed left behind
    expected_links = {f"{f.relative_to(out).as_posix()}/report.html"
                      for f in [*stays, foreign, folders[linked_snap.id]]}
    assert _index_links(out) == expected_links
    assert result.summary().endswith(f"; {len(removed)} report folders removed; 1 could not be removed")


def test_dry_run_changes_nothing_and_returns_the_same_plan(db, year, tmp_path):
    _, snaps = year
    out = tmp_path / "reports"
    for snap in snaps:
        if snap.cloud == "edge":
            _write_fake_report(out, snap)
    refresh_index(out)
    files_before = {p: digest(p) for p in [db, *lake_path(db).rglob("*"), *out.rglob("*")] if p.is_file()}
    listing_before = sorted(p.name for p in db.parent.iterdir())

    dry = prune(db, POLICY, out, now=NOW, dry_run=True)

    assert {p: digest(p) for p in [db, *lake_path(db).rglob("*"), *out.rglob("*")] if p.is_file()} == files_before
    assert sorted(p.name for p in db.parent.iterdir()) == listing_before  # no .wal, no temporary file
    assert dry.dry_run and dry.rows_deleted == {} and dry.report_folders_failed == []
    assert dry.summary().startswith(f"would prune {len(dry.pruned)} of {len(snaps)} snapshots")

    real = prune(db, POLICY, out, now=NOW)
    assert (real.pruned, real.kept) == (dry.pruned, dry.kept)
    assert real.report_folders_removed == dry.report_folders_removed and len(real.report_folders_removed) > 100


def test_a_missing_database_is_a_retention_error_naming_it(tmp_path):
    database = tmp_path / "nothing" / "audit.duckdb"
    for dry_run in (False, True):
        with pytest.raises(RetentionError, match=re.escape(str(database))) as caught:
            prune(database, POLICY, tmp_path, now=NOW, dry_run=dry_run)
        assert caught.value.exit_code == 12
    assert not database.parent.exists()


def test_a_bad_policy_is_refused(db):
    with pytest.raises(RetentionError, match="keep_all_days"):
        prune(db, RetentionSettings(keep_all_days=-1, daily_days=5), None, now=NOW)
