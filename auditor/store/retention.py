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

`prune` deletes every row of the pruned snapshots, and of their evaluations, in one transaction, from every
table that has a `snapshot_id` or an `evaluation_id` column (found in information_schema, so a table added
later is covered), then `snapshots` itself, and publishes the read-only copy. The report folders of the
pruned snapshots belong to the report layer (auditor/report/retention.py); auditor.pipeline.prune does both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from auditor.config import RetentionSettings
from auditor.errors import RetentionError, StoreError
from auditor.store.database import open_reader, open_writer, publish, published_path


@dataclass
class SnapshotPrune:
    kept: int                                   # snapshots kept
    pruned: list[int]                           # snapshot ids removed (or that would be, with dry_run)
    rows_deleted: dict[str, int]                # table -> rows deleted (empty with dry_run)
    pruned_snapshots: dict[int, tuple[str, str, datetime]]  # id -> (cloud, region, started_at) of each
    dry_run: bool = False
    publish_error: StoreError | None = None     # pruned and committed, but the read-only copy is stale


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

_NO_EVALUATIONS = "SELECT CAST(NULL AS BIGINT) AS snapshot_id WHERE false"


def plan_retention(con, policy: RetentionSettings, now: datetime) -> tuple[list[int], list[int]]:
    """(kept ids, pruned ids), each ascending, computed in SQL over the snapshots table (no Python loop over
    rows). `con` may be a read-only connection (the published copy) or the writer's."""
    keep_all_days, daily_days = _check_policy(policy)
    keep_all_since = naive_utc(now) - timedelta(days=keep_all_days)
    daily_since = keep_all_since - timedelta(days=daily_days)
    evaluated = "SELECT DISTINCT snapshot_id FROM evaluations" if _has_table(con, "evaluations") else _NO_EVALUATIONS
    kept, pruned = con.execute(_PLAN_SQL.format(evaluated=evaluated),
                               {"keep_all_since": keep_all_since, "daily_since": daily_since}).fetchall()[0]
    return list(kept), list(pruned)


def prune_snapshots(database: Path, policy: RetentionSettings, *, now: datetime | None = None,
                    dry_run: bool = False) -> SnapshotPrune:
    """Prune `database` by `policy` as of `now` (default: the current time).

    With `dry_run`, only the published copy is opened, read-only, and nothing changes: the result lists the
    snapshots that would be removed. A failed publish after the committed prune is returned, not raised,
    so that the caller can still remove what belonged to the pruned snapshots before it says so.
    """
    database = Path(database)
    now = now or datetime.now(UTC)
    _check_policy(policy)
    if not database.is_file():
        raise RetentionError(f"{database}: no snapshot database to prune (run `auditor snapshot` first)")
    if dry_run:
        return _plan_only(database, policy, now)

    publish_error: StoreError | None = None
    with open_writer(database) as con:
        try:
            con.execute("BEGIN")
            kept, pruned = plan_retention(con, policy, now)
            pruned_snapshots = _snapshot_keys(con, pruned)
            rows_deleted = _delete(con, pruned) if pruned else {}
            con.execute("COMMIT")
        except duckdb.Error as exc:
            _rollback(con)
            raise RetentionError(f"{database}: nothing was pruned: {exc}") from None
        except BaseException:
            _rollback(con)
            raise
        if pruned:
            try:
                publish(con, database)
            except StoreError as exc:
                publish_error = exc
    return SnapshotPrune(kept=len(kept), pruned=pruned, rows_deleted=rows_deleted,
                         pruned_snapshots=pruned_snapshots, publish_error=publish_error)


def _plan_only(database: Path, policy: RetentionSettings, now: datetime) -> SnapshotPrune:
    con = open_reader(published_path(database))
    try:
        kept, pruned = plan_retention(con, policy, now)
        pruned_snapshots = _snapshot_keys(con, pruned)
    except duckdb.Error as exc:
        raise StoreError(f"{published_path(database)}: cannot read the snapshots: {exc}") from None
    finally:
        con.close()
    return SnapshotPrune(kept=len(kept), pruned=pruned, rows_deleted={}, pruned_snapshots=pruned_snapshots,
                         dry_run=True)


def _delete(con, pruned: list[int]) -> dict[str, int]:
    """Delete the pruned snapshots' rows from every table keyed by snapshot_id or evaluation_id, then the
    snapshots. Runs inside the caller's transaction."""
    con.execute("CREATE OR REPLACE TEMP TABLE retention_pruned AS SELECT unnest(CAST($ids AS BIGINT[])) AS id",
                {"ids": pruned})
    has_evaluations = _has_table(con, "evaluations")
    if has_evaluations:
        con.execute("CREATE OR REPLACE TEMP TABLE retention_pruned_evaluations AS SELECT id FROM main.evaluations "
                    "WHERE snapshot_id IN (SELECT id FROM temp.retention_pruned)")
    deleted: dict[str, int] = {}
    for table, by_snapshot, by_evaluation in _keyed_tables(con):
        conditions = []
        if by_snapshot:
            conditions.append("snapshot_id IN (SELECT id FROM temp.retention_pruned)")
        if by_evaluation and has_evaluations:
            conditions.append("evaluation_id IN (SELECT id FROM temp.retention_pruned_evaluations)")
        if conditions:
            deleted[table] = con.execute(f"DELETE FROM main.{_quote(table)} WHERE {' OR '.join(conditions)}"
                                         ).fetchall()[0][0]
    deleted["snapshots"] = con.execute("DELETE FROM main.snapshots WHERE id IN (SELECT id FROM temp.retention_pruned)"
                                       ).fetchall()[0][0]
    con.execute("DROP TABLE temp.retention_pruned")
    if has_evaluations:
        con.execute("DROP TABLE temp.retention_pruned_evaluations")
    return deleted


def _keyed_tables(con) -> list[tuple[str, bool, bool]]:
    """Every base table of the database with a snapshot_id or an evaluation_id column."""
    return con.execute("""
        SELECT t.table_name, bool_or(c.column_name = 'snapshot_id'), bool_or(c.column_name = 'evaluation_id')
        FROM information_schema.tables t
        JOIN information_schema.columns c USING (table_catalog, table_schema, table_name)
        WHERE t.table_catalog = current_database() AND t.table_schema = 'main' AND t.table_type = 'BASE TABLE'
          AND c.column_name IN ('snapshot_id', 'evaluation_id')
        GROUP BY t.table_name ORDER BY t.table_name""").fetchall()


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


def _has_table(con, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND table_type = 'BASE TABLE' AND table_name = ?", [name]).fetchall()[0][0])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _rollback(con) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction open (it failed before BEGIN, or DuckDB already rolled it back)
