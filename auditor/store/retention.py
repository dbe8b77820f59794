"""Snapshot retention: which snapshots to keep (decided in SQL), and pruning the rest.

The policy ([retention] in auditor.toml, `RetentionSettings`), per cloud and region, by the age of a
snapshot (`now - started_at`, both UTC):

- younger than `keep_all_days` days: every snapshot is kept;
- then, for `daily_days` more days: the best snapshot of each UTC calendar date;
- older: the best snapshot of each ISO week (ISO year and week number, weeks start on Monday).

"Best" is the newest complete snapshot of the day or week, else its newest partial one, else its newest
failed one: a day or week where every collection failed keeps one snapshot that says so (its status and
`collection_errors`), so the retained history shows a gap in collection as a gap, not as silence. Each
snapshot belongs to the tier of its own age; a day or week that straddles two tiers is bucketed separately
in each, which keeps at most one extra snapshot and converges to one as the snapshots age.

Whatever its age, pruning never removes, per cloud and region:

- the newest complete snapshot (what `latest_snapshots` shows);
- the snapshot of `latest_evaluations` (the newest evaluated snapshot, partial ones included), so that
  `latest_findings` means the same after a prune;
- the newest complete snapshot that has an evaluation: the diff base of the next evaluation, so that
  first-seen dates and the resolved list carry on exactly as without pruning.

Other diff bases are not kept: each evaluation's findings carry `first_seen_at` forward, so a kept
evaluation's first-seen dates survive the pruning of the snapshots they point back to.

`prune` removes the pruned snapshots' folders from the lake, and those of their evaluations, in every table
folder (a table a later auditor adds included): for each id its manifest first, so it vanishes from every
view at once, then the rest; a prune killed half-way is finished by the next writer (auditor/store/lake.py).
The report folders of the pruned snapshots belong to the report layer (auditor/report/retention.py);
auditor.pipeline.prune does both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from auditor.config import RetentionSettings
from auditor.errors import RetentionError, StoreError
from auditor.store.database import open_for_writing, open_reader
from auditor.store.lake import PART_FILE, clean_abandoned, partition_dir, remove_committed, table_folders
from auditor.store.tables import EVALUATION, SANDBOX_CONFIG, SNAPSHOT


@dataclass
class SnapshotPrune:
    kept: int                                   # snapshots kept
    pruned: list[int]                           # snapshot ids removed (or that would be, with dry_run)
    rows_deleted: dict[str, int]                # table -> rows deleted (empty with dry_run)
    pruned_snapshots: dict[int, tuple[str, str, datetime]]  # id -> (cloud, region, started_at) of each
    dry_run: bool = False
    bytes_freed: int = 0                        # Parquet bytes removed from the lake


# Per (cloud, region): each snapshot's tier by age, its bucket in that tier (a UTC date, or the Monday that
# starts its ISO week: one date per ISO year and week), and the protected snapshots. `evaluated` is the set
# of snapshot ids with an evaluation.
_PLAN_SQL = """
WITH evaluated AS ({evaluated}),
aged AS (
    SELECT s.id, s.cloud, s.region, s.status, s.started_at,
           s.id IN (SELECT snapshot_id FROM evaluated) AS is_evaluated,
           CASE WHEN s.started_at > $keep_all_since THEN 0
                WHEN s.started_at > $daily_since THEN 1
                ELSE 2 END AS tier,
           CASE s.status WHEN 'complete' THEN 0 WHEN 'partial' THEN 1 ELSE 2 END AS quality
    FROM snapshots s
),
ranked AS (
    SELECT id, tier, status, is_evaluated,
           row_number() OVER (
               PARTITION BY cloud, region, tier,
                            CASE tier WHEN 1 THEN CAST(started_at AS DATE)
                                      WHEN 2 THEN CAST(date_trunc('week', started_at) AS DATE) END
               ORDER BY quality, started_at DESC, id DESC) AS bucket_rank,
           row_number() OVER (
               PARTITION BY cloud, region, status = 'complete'
               ORDER BY started_at DESC, id DESC) AS complete_rank,
           row_number() OVER (
               PARTITION BY cloud, region, status = 'complete' AND is_evaluated
               ORDER BY started_at DESC, id DESC) AS evaluated_complete_rank,
           row_number() OVER (
               PARTITION BY cloud, region, is_evaluated
               ORDER BY started_at DESC, id DESC) AS evaluated_rank
    FROM aged
),
plan AS (
    SELECT id,
           tier = 0
           OR bucket_rank = 1
           OR (status = 'complete' AND complete_rank = 1)
           OR (status = 'complete' AND is_evaluated AND evaluated_complete_rank = 1)
           OR (is_evaluated AND evaluated_rank = 1) AS keep
    FROM ranked
)
SELECT coalesce(list(id ORDER BY id) FILTER (WHERE keep), []::BIGINT[]),
       coalesce(list(id ORDER BY id) FILTER (WHERE NOT keep), []::BIGINT[])
FROM plan
"""

def plan_retention(con, policy: RetentionSettings, now: datetime) -> tuple[list[int], list[int]]:
    """(kept ids, pruned ids), each ascending, computed in SQL over the snapshots table (no Python loop over
    rows), on a reader of the catalog."""
    keep_all_days, daily_days = _check_policy(policy)
    keep_all_since = naive_utc(now) - timedelta(days=keep_all_days)
    daily_since = keep_all_since - timedelta(days=daily_days)
    evaluated = "SELECT DISTINCT snapshot_id FROM evaluations"
    kept, pruned = con.execute(_PLAN_SQL.format(evaluated=evaluated),
                               {"keep_all_since": keep_all_since, "daily_since": daily_since}).fetchall()[0]
    return list(kept), list(pruned)


def prune_snapshots(database: Path, policy: RetentionSettings, *, now: datetime | None = None,
                    dry_run: bool = False) -> SnapshotPrune:
    """Prune `database` by `policy` as of `now` (default: the current time).

    With `dry_run` nothing changes: the result lists the snapshots that would be removed."""
    database = Path(database)
    now = now or datetime.now(UTC)
    _check_policy(policy)
    if not database.is_file():
        raise RetentionError(f"{database}: no snapshot database to prune (run `auditor snapshot` first)")
    con = open_reader(database)
    try:
        kept, pruned = plan_retention(con, policy, now)
        pruned_snapshots = _snapshot_keys(con, pruned)
        evaluations = [row[0] for row in con.execute(
            "SELECT id FROM evaluations WHERE snapshot_id IN (SELECT unnest($ids)) ORDER BY id",
            {"ids": pruned}).fetchall()] if pruned else []
    except duckdb.Error as exc:
        raise StoreError(f"{database}: cannot read the snapshots: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    if dry_run or not pruned:
        return SnapshotPrune(kept=len(kept), pruned=pruned, rows_deleted={}, pruned_snapshots=pruned_snapshots,
                             dry_run=dry_run)
    lake = open_for_writing(database)
    rows = _row_counts(lake, {SNAPSHOT: pruned, EVALUATION: evaluations})
    clean_abandoned(lake)
    tables = table_folders(lake)
    freed = 0
    try:
        for evaluation_id in evaluations:  # an evaluation goes before its snapshot: never one without the other
            freed += remove_committed(lake, EVALUATION, evaluation_id, tables)
        for snapshot_id in pruned:
            freed += remove_committed(lake, SNAPSHOT, snapshot_id, tables)
    except OSError as exc:
        raise RetentionError(f"{lake}: pruning stopped half-way ({exc}); the next write finishes it") from None
    return SnapshotPrune(kept=len(kept), pruned=pruned, rows_deleted=rows, pruned_snapshots=pruned_snapshots,
                         bytes_freed=freed)


def _row_counts(lake: Path, ids: dict[str, list[int]]) -> dict[str, int]:
    """table -> rows the given snapshots and evaluations hold, from their files' footers, for every table
    folder in the lake."""
    counts: dict[str, int] = {}
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        for table in table_folders(lake):
            files = [str(path) for kind, kind_ids in ids.items() for item_id in kind_ids
                     if (path := partition_dir(lake, table, item_id, kind) / PART_FILE).is_file()]
            counts[table] = con.execute("SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)",
                                        [files]).fetchall()[0][0] if files else 0
    finally:
        con.close()
    return counts


def _snapshot_keys(con, ids: list[int]) -> dict[int, tuple[str, str, datetime]]:
    """id -> (cloud, region, started_at) of the given snapshots: what a report folder's meta must match."""
    if not ids:
        return {}
    rows = con.execute("SELECT id, cloud, region, started_at FROM snapshots WHERE id IN (SELECT unnest($ids))",
                       {"ids": ids}).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def naive_utc(moment: datetime) -> datetime:
    """The store's time: UTC without a time zone. A naive `moment` is taken as UTC already."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _check_policy(policy: RetentionSettings) -> tuple[int, int]:
    keep_all_days, daily_days = policy.keep_all_days, policy.daily_days
    for name, value in (("keep_all_days", keep_all_days), ("daily_days", daily_days)):
        if type(value) is not int or value < 0:
            raise RetentionError(f"retention.{name} must be a whole number of days, 0 or more, got {value!r}")
    return keep_all_days, daily_days


