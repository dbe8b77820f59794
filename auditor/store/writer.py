"""Write one collected snapshot in one transaction, then publish the read-only copy."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from auditor.collect.collector import RESOURCE_TYPES, RegionSnapshot
from auditor.errors import StoreError
from auditor.store.database import RESOURCE_TABLES, column_types, insert_columns, open_writer, publish

log = logging.getLogger(__name__)


def write_snapshot(database: Path, snapshot: RegionSnapshot, lock_timeout: float = 120.0) -> int:
    """Store `snapshot`; it becomes visible (to SQL and the published copy) only once fully written."""
    tables = snapshot.tables()  # normalize before taking the file, to hold it as briefly as possible
    counts = {column: len(snapshot.listings[rt].items) for rt, column in RESOURCE_TYPES.items()}
    failures = snapshot.failures
    with open_writer(database, lock_timeout) as con:
        try:
            con.execute("BEGIN")
            snapshot_id = con.execute("SELECT nextval('snapshot_id_seq')").fetchone()[0]
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
                **counts,
                "error_count": len(failures),
                "request_count": sum(listing.requests for listing in snapshot.listings.values()),
            }
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            con.execute(f"INSERT INTO snapshots ({columns}) VALUES ({marks})", list(row.values()))
            for table in RESOURCE_TABLES:
                insert_columns(con, table, snapshot_id, tables[table], column_types(con, table))
            resources = [rt for rt in RESOURCE_TYPES]
            insert_columns(con, "snapshot_resources", snapshot_id, {
                "resource_type": resources,
                "status": [snapshot.resource_status(rt) for rt in resources],
                "row_count": [len(snapshot.listings[rt].items) for rt in resources],
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
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{database}: snapshot not written: {exc}") from None
        except BaseException:
            con.execute("ROLLBACK")
            raise
        publish(con, database)
    log.info("snapshot %s of %s/%s written: %s", snapshot_id, snapshot.cloud, snapshot.region, snapshot.status)
    return snapshot_id
