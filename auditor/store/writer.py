"""Write one collected snapshot or one evaluation: into the DuckDB store in one transaction, then publish the
read-only copy; or into the lake as Parquet files committed at once (not read by anything yet: the lake,
part 1, issue 23)."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import duckdb

from auditor.collect.collector import RESOURCE_TYPES, RegionSnapshot
from auditor.collect.paging import CollectionFailure, sql_ident, sql_literal
from auditor.errors import StoreError
from auditor.store.database import column_types, insert_columns, open_writer, publish
from auditor.store.lake import Staged, clean_abandoned, schema_file, stage
from auditor.store.load import derive, load_listing, redact_candidates
from auditor.store.tables import (
    EVALUATION,
    EVALUATION_TABLES,
    MANIFEST,
    SANDBOX_CONFIG,
    SNAPSHOT,
    SNAPSHOT_TABLES,
    file_columns,
    path_column,
    schema_sql,
)

log = logging.getLogger(__name__)

# Load order matters: servers take flavor details from flavors, derived tables read ports.
LOAD_ORDER = ("projects", "flavors", "servers", "availability_zones", "server_groups", "images",
              "security_groups", "security_group_rules", "ports", "floating_ips")
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"


def write_snapshot(database: Path, snapshot: RegionSnapshot, lock_timeout: float = 120.0,
                   memory_limit: str = "1GB") -> tuple[int, dict]:
    """Store `snapshot`; it becomes visible (to SQL and the published copy) only once fully written.

    Returns the snapshot id and the row count of each resource table.
    """
    with open_writer(database, lock_timeout) as con:
        _session(con, memory_limit)
        try:
            con.execute("BEGIN")
            snapshot_id = con.execute("SELECT nextval('snapshot_id_seq')").fetchall()[0][0]
            counts = normalize(con, snapshot_id, snapshot)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{database}: snapshot not written: {exc}") from None
        except BaseException:
            con.execute("ROLLBACK")
            raise
        publish(con, database)
    log.info("snapshot %s of %s/%s written: %s", snapshot_id, snapshot.cloud, snapshot.region, snapshot.status)
    return snapshot_id, counts


def write_snapshot_to_lake(lake: Path, snapshot: RegionSnapshot, memory_limit: str = "1GB") -> tuple[int, dict]:
    """Store `snapshot` in the lake (auditor/store/lake.py): normalized in a DuckDB of its own, in memory
    (spilling into its staging folder), each table written once as a zstd Parquet file, then committed.
    Nothing written before is read or rewritten. Returns the snapshot id and each resource table's rows."""
    prepare_lake(lake)
    clean_abandoned(lake)
    staged = stage(lake, SNAPSHOT)
    try:
        with _working_database(staged, memory_limit) as con:
            counts = normalize(con, staged.item_id, snapshot)
            for table in SNAPSHOT_TABLES:
                write_partition(con, staged, table)
        staged.commit()
    except duckdb.Error as exc:
        staged.abandon()
        raise StoreError(f"{lake}: snapshot not written: {str(exc).splitlines()[0]}") from None
    except BaseException:
        staged.abandon()
        raise
    log.info("snapshot %s of %s/%s written to %s: %s", staged.item_id, snapshot.cloud, snapshot.region, lake,
             snapshot.status)
    return staged.item_id, counts


def write_evaluation(database: Path, insert: Callable[[duckdb.DuckDBPyConnection, int], None],
                     lock_timeout: float = 120.0) -> int:
    """Store one evaluation: `insert(con, evaluation_id)` fills the evaluation tables of `con`; they are
    written in one transaction, then the read-only copy is published. Returns the evaluation id."""
    with open_writer(database, lock_timeout) as con:
        try:
            con.execute("BEGIN")
            evaluation_id = con.execute("SELECT nextval('evaluation_id_seq')").fetchall()[0][0]
            insert(con, evaluation_id)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{database}: evaluation not written: {exc}") from None
        except BaseException:
            con.execute("ROLLBACK")
            raise
        publish(con, database)
    return evaluation_id


def write_evaluation_to_lake(lake: Path, insert: Callable[[duckdb.DuckDBPyConnection, int], None],
                             memory_limit: str = "1GB") -> int:
    """The same into the lake: `insert` fills the tables of a DuckDB of its own, each evaluation table is
    written once as zstd Parquet, and the `evaluations` file, moved last, commits it."""
    prepare_lake(lake)
    clean_abandoned(lake)
    staged = stage(lake, EVALUATION)
    try:
        with _working_database(staged, memory_limit) as con:
            insert(con, staged.item_id)
            for table in EVALUATION_TABLES:
                write_partition(con, staged, table)
        staged.commit()
    except duckdb.Error as exc:
        staged.abandon()
        raise StoreError(f"{lake}: evaluation not written: {str(exc).splitlines()[0]}") from None
    except BaseException:
        staged.abandon()
        raise
    return staged.item_id


@contextmanager
def _working_database(staged: Staged, memory_limit: str):
    """An in-memory DuckDB with the documented tables, for one write to the lake; it spills into the write's
    staging folder, which goes with it."""
    spill = staged.folder / ".spill"
    spill.mkdir(exist_ok=True)
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        _session(con, memory_limit)
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute(schema_sql())
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def prepare_lake(lake: Path) -> None:
    """Make the lake's folders and each table's `_schema.parquet` (no rows, every column), so that a glob over
    a table matches before its first write. A schema file is replaced, atomically, only when its columns
    are not those this auditor writes."""
    lake.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute(schema_sql())
        for table in SNAPSHOT_TABLES + EVALUATION_TABLES:
            path = schema_file(lake, table)
            if path.is_file() and _parquet_columns(con, path) == file_columns(table):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            columns = ", ".join(sql_ident(name) for name, _ in file_columns(table))
            con.execute(f"COPY (SELECT {columns} FROM {sql_ident(table)} LIMIT 0) TO {sql_literal(str(tmp))} "
                        f"({PARQUET_OPTIONS})")
            os.replace(tmp, path)
    finally:
        con.close()


def _parquet_columns(con, path: Path) -> list[tuple[str, str]]:
    return [row[:2] for row in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))}, hive_partitioning = false)").fetchall()]


def write_partition(con, staged: Staged, table: str) -> None:
    """`table`'s rows of the staged id, as one zstd Parquet file in the staging folder; none for a table
    without rows (its schema file keeps its glob matching), the manifest always."""
    from_path, key = path_column(table)
    where = f"{sql_ident(from_path)} = {int(staged.item_id)}"
    if table != MANIFEST[staged.kind] and not con.execute(f"SELECT count(*) FROM {sql_ident(table)} WHERE {where}"
                                                          ).fetchall()[0][0]:
        return
    columns = ", ".join(sql_ident(name) for name, _ in file_columns(table))
    con.execute(f"COPY (SELECT {columns} FROM {sql_ident(table)} WHERE {where}) TO "
                f"{sql_literal(str(staged.file(table)))} ({PARQUET_OPTIONS})")


def _session(con, memory_limit: str) -> None:
    con.execute("SET TimeZone = 'UTC'")  # timestamps with an offset land in UTC
    con.execute("SET preserve_insertion_order = false")  # lets large inserts stream
    con.execute("SET memory_limit = ?", [memory_limit])


def normalize(con, snapshot_id: int, snapshot: RegionSnapshot) -> dict:
    """Load every listing of `snapshot` into the tables of `con` under `snapshot_id`, with its `snapshots`,
    `snapshot_resources` and `collection_errors` rows; returns each resource table's row count. The pages
    are deleted as they are loaded."""
    failures = list(snapshot.failures)
    for resource_type in LOAD_ORDER:
        listing = snapshot.listings[resource_type]
        source = snapshot.listings["security_groups"] if listing.embedded else None
        problems = load_listing(con, resource_type, snapshot_id, listing, source)
        _release_pages(snapshot, resource_type)
        for problem in problems:  # the data cannot be trusted whole: the listing is partial
            listing.complete = False
            failure = CollectionFailure(resource_type, None, None, "", problem)
            listing.failures.append(failure)
            failures.append(failure)
    derive(con, snapshot_id)
    redact_candidates(con, snapshot_id)
    counts = {
        rt: con.execute(f"SELECT count(*) FROM {rt} WHERE snapshot_id = ?", [snapshot_id]).fetchall()[0][0]
        for rt in RESOURCE_TYPES
    }
    row = {
        "id": snapshot_id,
        "cloud": snapshot.cloud,
        "region": snapshot.region,
        "scope": snapshot.scope,
        "scope_project_ids": snapshot.scope_project_ids,
        "auth_user_id": snapshot.auth_user_id,
        "auth_project_id": snapshot.auth_project_id,
        "compute_microversion": snapshot.compute_microversion,
        "started_at": snapshot.started_at,
        "finished_at": snapshot.finished_at,
        "status": snapshot.status,
        "tool_version": snapshot.tool_version,
        **{column: counts[rt] for rt, column in RESOURCE_TYPES.items()},
        "error_count": len(failures),
        "request_count": sum(listing.requests for listing in snapshot.listings.values()),
    }
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO snapshots ({columns}) VALUES ({marks})", list(row.values()))
    resources = list(RESOURCE_TYPES)
    insert_columns(con, "snapshot_resources", snapshot_id, {
        "resource_type": resources,
        "status": [snapshot.resource_status(rt) for rt in resources],
        "row_count": [counts[rt] for rt in resources],
        "request_count": [snapshot.listings[rt].requests for rt in resources],
        "seconds": [round(snapshot.listings[rt].seconds, 3) for rt in resources],
    }, column_types(con, "snapshot_resources"))
    insert_columns(con, "collection_errors", snapshot_id, {
        "resource_type": [f.resource_type for f in failures],
        "project_id": [f.project_id for f in failures],
        "http_status": [f.http_status for f in failures],
        "url": [f.url for f in failures],
        "message": [f.message for f in failures],
    }, column_types(con, "collection_errors"))
    return counts


def _release_pages(snapshot: RegionSnapshot, loaded: str) -> None:
    """Delete a listing's spool files once loaded, so disk use falls as the write goes on. Security groups
    keep theirs until the rules embedded in them are loaded too."""
    if loaded == "security_groups":
        return
    released = [snapshot.listings[loaded]]
    if loaded == "security_group_rules":
        released.append(snapshot.listings["security_groups"])
    for listing in released:
        for spool in listing.spools:
            spool.unlink(missing_ok=True)
        listing.spools = []
