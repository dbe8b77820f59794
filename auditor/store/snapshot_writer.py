"""Write one collected snapshot into the lake: every listing's pages normalized into the snapshot tables
(auditor/store/load.py), with the snapshot's own row, its per-resource status and its collection errors,
then written and committed like any write (auditor/store/writer.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from auditor.collect.collector import RESOURCE_TYPES, RegionSnapshot
from auditor.collect.paging import CollectionFailure
from auditor.store.database import column_types, insert_columns, open_for_writing
from auditor.store.load import derive, load_listing
from auditor.store.tables import SNAPSHOT
from auditor.store.writer import write_to_lake

log = logging.getLogger(__name__)

# Load order matters: servers take flavor details from flavors, derived tables read ports.
LOAD_ORDER = ("projects", "flavors", "servers", "availability_zones", "server_groups", "images",
              "image_members", "security_groups", "security_group_rules", "ports", "floating_ips", "networks", "subnets", "routers",
              "address_groups", "users", "roles", "role_assignments", "application_credentials", "volumes",
              "volume_snapshots", "volume_backups", "volume_types", "volume_type_encryption", "volume_type_access",
              "containers")


def write_snapshot(database: Path, snapshot: RegionSnapshot, memory_limit: str = "1GB") -> tuple[int, dict]:
    """Store `snapshot` in the lake of `database`; it becomes visible only once every file is in place.
    Returns the snapshot id and the row count of each resource table."""
    return write_snapshot_to_lake(open_for_writing(database), snapshot, memory_limit)


def write_snapshot_to_lake(lake: Path, snapshot: RegionSnapshot, memory_limit: str = "1GB") -> tuple[int, dict]:
    """Store `snapshot` in `lake`: normalized in a DuckDB of its own, each table written once as a zstd
    Parquet file, then committed. Nothing written before is read or rewritten."""
    counts: dict = {}

    def fill(con, snapshot_id: int) -> None:
        counts.update(normalize(con, snapshot_id, snapshot))

    snapshot_id = write_to_lake(lake, SNAPSHOT, fill, memory_limit)
    log.info("snapshot %s of %s/%s written: %s", snapshot_id, snapshot.cloud, snapshot.region, snapshot.status)
    return snapshot_id, counts


def normalize(con, snapshot_id: int, snapshot: RegionSnapshot) -> dict:
    """Load every listing of `snapshot` into the tables of `con` under `snapshot_id`, with its `snapshots`,
    `snapshot_resources` and `collection_errors` rows; returns the row count of each resource table it
    collected (a listing the snapshot did not make has no count and no `snapshot_resources` row). The pages
    are deleted as they are loaded."""
    failures = list(snapshot.failures)
    collected = [rt for rt in RESOURCE_TYPES if rt in snapshot.listings]  # the others: not collected
    for resource_type in LOAD_ORDER:
        listing = snapshot.listings.get(resource_type)
        if listing is None:
            continue
        source = snapshot.listings["security_groups"] if listing.embedded else None
        problems = load_listing(con, resource_type, snapshot_id, listing, source)
        _release_pages(snapshot, resource_type)
        for problem in problems:  # the data cannot be trusted whole: the listing is partial
            listing.complete = False
            failure = CollectionFailure(resource_type, None, None, "", problem)
            listing.failures.append(failure)
            failures.append(failure)
    derive(con, snapshot_id)
    counts = {
        rt: con.execute(f"SELECT count(*) FROM {rt} WHERE snapshot_id = ?", [snapshot_id]).fetchall()[0][0]
        for rt in collected
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
        **{column: counts.get(rt) for rt, column in RESOURCE_TYPES.items()},
        "error_count": len(failures),
        "request_count": sum(listing.requests for listing in snapshot.listings.values()),
    }
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO snapshots ({columns}) VALUES ({marks})", list(row.values()))
    resources = collected
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
