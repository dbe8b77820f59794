"""Write one collected snapshot in one transaction, then publish the read-only copy."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from auditor.collect.collector import RESOURCE_TYPES, RegionSnapshot
from auditor.collect.paging import CollectionFailure
from auditor.errors import StoreError
from auditor.store.database import column_types, insert_columns, open_writer, publish
from auditor.store.load import derive, load_listing, redact_candidates

log = logging.getLogger(__name__)

# Load order matters: servers take flavor details from flavors, derived tables read ports.
LOAD_ORDER = ("projects", "flavors", "servers", "availability_zones", "server_groups", "images",
              "security_groups", "security_group_rules", "ports", "floating_ips")


def write_snapshot(database: Path, snapshot: RegionSnapshot, lock_timeout: float = 120.0,
                   memory_limit: str = "1GB") -> tuple[int, dict]:
    """Store `snapshot`; it becomes visible (to SQL and the published copy) only once fully written.

    Returns the snapshot id and the row count of each resource table.
    """
    with open_writer(database, lock_timeout) as con:
        con.execute("SET TimeZone = 'UTC'")  # timestamps with an offset land in UTC
        con.execute("SET preserve_insertion_order = false")  # lets large inserts stream
        con.execute("SET memory_limit = ?", [memory_limit])
        try:
            con.execute("BEGIN")
            snapshot_id = con.execute("SELECT nextval('snapshot_id_seq')").fetchall()[0][0]
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
