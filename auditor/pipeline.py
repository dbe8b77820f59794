"""The main job's steps, shared by the CLI and (later) the service: snapshot, then summarize."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from auditor.collect.collector import Collector, RegionSnapshot, region_names
from auditor.config import CloudTarget, Config
from auditor.errors import CollectionCancelled
from auditor.output import render
from auditor.store.database import open_reader
from auditor.store.writer import write_snapshot

_write_lock = threading.Lock()  # one writer at a time in this process; other processes wait on DuckDB's lock


@dataclass
class SnapshotResult:
    cloud: str
    region: str
    status: str
    snapshot_id: int | None
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        where = f"{self.cloud}/{self.region}" if self.region else self.cloud
        counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in self.counts.items())
        head = f"snapshot {self.snapshot_id} of {where}: {self.status}"
        if self.errors:
            head += f" ({len(self.errors)} collection error{'s' if len(self.errors) != 1 else ''})"
        return f"{head} in {self.seconds:.1f}s: {counts}"

    def error_lines(self) -> list[str]:
        return self.errors


def snapshot_targets(config: Config, targets: list[CloudTarget], stop: threading.Event) -> list[SnapshotResult]:
    """Collect and store every cloud/region of `targets`; regions run concurrently, listings share a pool."""
    jobs = [(target, region) for target in targets for region in region_names(target.name, target.regions)]
    with Collector(config.collection, stop, spool_parent=config.database.parent) as collector, ThreadPoolExecutor(
        max_workers=max(1, min(len(jobs), 4)), thread_name_prefix="region"
    ) as regions:
        futures = [regions.submit(_snapshot_one, config, collector, target, region) for target, region in jobs]
        results = []
        for future in futures:
            while True:
                try:
                    results.append(future.result(timeout=0.2))
                    break
                except TimeoutError:
                    continue
                except CollectionCancelled:
                    stop.set()
                    raise
    return results


def _snapshot_one(config: Config, collector: Collector, target: CloudTarget, region: str) -> SnapshotResult:
    started = time.monotonic()
    snapshot: RegionSnapshot = collector.collect(target, region)
    if collector.stop.is_set():
        raise CollectionCancelled("collection stopped before it finished; nothing was written")
    with _write_lock:
        snapshot_id, counts = write_snapshot(config.database, snapshot, memory_limit=config.database_memory_limit)
    return SnapshotResult(
        cloud=snapshot.cloud,
        region=snapshot.region,
        status=snapshot.status,
        snapshot_id=snapshot_id,
        counts=counts,
        errors=[
            f"{f.resource_type}{' (project ' + f.project_id + ')' if f.project_id else ''}: {f.message}"
            for f in snapshot.failures
        ],
        seconds=time.monotonic() - started,
    )


_SUMMARY_QUERIES = [
    ("Servers by zone and status",
     "SELECT coalesce(availability_zone, '(none)') AS zone, status, count(*) AS servers FROM servers "
     "WHERE snapshot_id = ? GROUP BY ALL ORDER BY zone, status"),
    ("Servers by flavor",
     "SELECT coalesce(flavor_name, '(unknown)') AS flavor, count(*) AS servers FROM servers "
     "WHERE snapshot_id = ? GROUP BY ALL ORDER BY servers DESC, flavor"),
    ("Availability zones",
     "SELECT name, available, len(compute_hosts) AS hosts, len(compute_hosts_down) AS hosts_down "
     "FROM availability_zones WHERE snapshot_id = ? ORDER BY name"),
    ("Images by visibility and status",
     "SELECT visibility, status, count(*) AS images FROM images WHERE snapshot_id = ? GROUP BY ALL ORDER BY ALL"),
    ("Security groups",
     "SELECT count(DISTINCT g.id) AS groups, count(r.id) AS rules, "
     "count(r.id) FILTER (WHERE r.direction = 'ingress' AND r.remote_group_id IS NULL "
     "AND coalesce(r.remote_ip_prefix, '0.0.0.0/0') IN ('0.0.0.0/0', '::/0')) AS ingress_rules_from_anywhere "
     "FROM security_groups g LEFT JOIN security_group_rules r ON r.security_group_id = g.id "
     "AND r.snapshot_id = g.snapshot_id WHERE g.snapshot_id = ?"),
]


def inventory_summary(published: Path, snapshot_id: int) -> str:
    """A short text inventory of one snapshot, read from the published copy like any auditor would."""
    con = open_reader(published)
    try:
        parts = []
        for title, query in _SUMMARY_QUERIES:
            cursor = con.execute(query, [snapshot_id])
            columns = [d[0] for d in cursor.description]
            parts.append(f"{title}:\n{render(columns, cursor.fetchall(), 'table')}")
        return "\n".join(parts)
    finally:
        con.close()

