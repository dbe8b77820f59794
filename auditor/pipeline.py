"""The main job's steps, shared by the CLI and the service: snapshot, evaluate, report, email the digest.

Each step returns what it did; the CLI prints it and the service logs and records it in job_runs.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from auditor.collect.collector import Collector, RegionSnapshot, failed_snapshot
from auditor.collect.connection import region_names
from auditor.config import CloudTarget, Config
from auditor.errors import CollectionCancelled, CollectionError, NotifyError, ReportError, StoreError
from auditor.output import render
from auditor.store.database import open_reader
from auditor.store.database import check_format
from auditor.store.snapshot_writer import write_snapshot

log = logging.getLogger(__name__)


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
    if config.database.exists():  # a file this release cannot write into is said before any collection
        check_format(config.database)
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
    """Collect and write one region. A snapshot that fails for any reason (the cloud, memory, the write)
    still leaves a `failed` snapshot saying why, unless the database itself cannot be written."""
    started = time.monotonic()
    started_at = datetime.now(UTC).replace(tzinfo=None)
    try:
        snapshot: RegionSnapshot = collector.collect(target, region)
    except CollectionError as exc:
        return _failed(config, target, region, started, started_at, str(exc))
    except MemoryError:
        return _failed(config, target, region, started, started_at, "out of memory while collecting")
    if collector.stop.is_set():
        raise CollectionCancelled("collection stopped before it finished; nothing was written")
    try:
        snapshot_id, counts = write_snapshot(config.database, snapshot, memory_limit=config.database_memory_limit)
    except (StoreError, MemoryError, duckdb.Error) as exc:
        reason = "out of memory" if isinstance(exc, MemoryError) else str(exc).splitlines()[0]
        return _failed(config, target, region, started, started_at, f"the snapshot could not be written: {reason}",
                       original=exc, region_name=snapshot.region)
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


def _failed(config: Config, target: CloudTarget, region: str, started: float, started_at: datetime, reason: str,
            original: BaseException | None = None, region_name: str | None = None) -> SnapshotResult:
    """Record a snapshot that failed as a whole; if even that cannot be written, raise the original error."""
    region_name = region_name if region_name is not None else region
    failed = failed_snapshot(target.name, region_name, started_at, reason)
    try:
        snapshot_id, counts = write_snapshot(config.database, failed, memory_limit=config.database_memory_limit)
    except (StoreError, duckdb.Error, MemoryError):
        if original is not None:
            raise original from None
        raise
    return SnapshotResult(cloud=target.name, region=region_name, status="failed", snapshot_id=snapshot_id,
                          counts=counts, errors=[f"snapshot: {reason}"], seconds=time.monotonic() - started)


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


def inventory_summary(database: Path, snapshot_id: int) -> str:
    """A short text inventory of one snapshot, read through the catalog like any auditor would."""
    con = open_reader(database)
    try:
        parts = []
        for title, query in _SUMMARY_QUERIES:
            cursor = con.execute(query, [snapshot_id])
            columns = [d[0] for d in cursor.description]
            parts.append(f"{title}:\n{render(columns, cursor.fetchall(), 'table')}")
        return "\n".join(parts)
    finally:
        con.close()


@dataclass
class ReportOutcome:
    snapshot_id: int
    folder: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    error: ReportError | None = None


def write_reports(config: Config, catalog, snapshot_ids: list[int], formats: tuple[str, ...] | None = None,
                  out_dir: Path | None = None) -> list[ReportOutcome]:
    """Write each snapshot's report; one that fails is returned with its error and the others are written."""
    from auditor.report.build import write_report

    outcomes = []
    for snapshot_id in snapshot_ids:
        try:
            result = write_report(config.database, snapshot_id, catalog, config.report,
                                  formats or config.report.formats, out_dir)
        except ReportError as exc:
            outcomes.append(ReportOutcome(snapshot_id, error=exc))
            continue
        outcomes.append(ReportOutcome(snapshot_id, result.folder, result.files))
    return outcomes


@dataclass
class DigestOutcome:
    snapshot_id: int
    group: str
    recipients: int
    report_written: Path | None = None  # the report folder, when the digest had to write it first
    eml: Path | None = None  # --dry-run: the message file
    error: NotifyError | None = None


def deliver_digests(config: Config, catalog, snapshot_spec: str | int = "latest", *, dry_run: bool = False,
                    out_dir: Path | None = None, stop: threading.Event | None = None) -> list[DigestOutcome]:
    """Build the digest of each chosen snapshot for every recipient group of [email] and send it (or write
    it as an .eml with dry_run). The snapshot's report is written first when it does not exist yet, since
    the digest attaches its PDF. A group whose message cannot be sent is returned with its error."""
    from auditor.notify import (
        TOP_RISKS,
        build_digests,
        existing_report,
        send_digest,
        smtp_password,
        write_eml,
    )
    from auditor.report.build import snapshots_to_report, write_report
    from auditor.report.context import build_context

    settings = config.email
    if settings is None:
        from auditor.errors import ConfigError

        raise ConfigError(f"{config.source or 'auditor.toml'}: no [email] section: the digest needs the SMTP "
                          "server, the sender and [[email.groups]] (see docs/configuration.md)")
    password = None if dry_run else smtp_password(settings)
    database = config.database
    sleep = stop.wait if stop is not None else time.sleep  # a stopping service does not sit out a backoff
    outcomes = []
    for snapshot_id in snapshots_to_report(database, snapshot_spec):
        context = build_context(database, snapshot_id, catalog, detail_rows=TOP_RISKS)
        folder = existing_report(config.report.out_dir, context)
        written = None
        if folder is None:  # the digest attaches the PDF, so it is written whatever [report] formats says
            formats = tuple(dict.fromkeys((*config.report.formats, "pdf")))
            folder = written = write_report(database, snapshot_id, catalog, config.report, formats).folder
        for digest in build_digests(context, folder, settings):
            outcome = DigestOutcome(snapshot_id, digest.group.name, len(digest.group.recipients), written)
            written = None
            if dry_run:
                outcome.eml = write_eml(digest, out_dir or folder)
            else:
                try:
                    send_digest(digest, settings, password, sleep=sleep)
                except NotifyError as exc:
                    outcome.error = exc
            outcomes.append(outcome)
    return outcomes


@dataclass
class PruneResult:
    kept: int                                   # snapshots kept
    pruned: list[int]                           # snapshot ids removed (or that would be, with dry_run)
    rows_deleted: dict[str, int]                # table -> rows deleted (empty with dry_run)
    report_folders_removed: list[Path]          # (with dry_run: the folders that would be removed)
    report_folders_failed: list[tuple[Path, str]] = field(default_factory=list)  # folder, why it stays
    bytes_freed: int = 0                        # bytes removed from the lake
    dry_run: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        total = self.kept + len(self.pruned)
        folders = len(self.report_folders_removed)
        noun = "report folder" if folders == 1 else "report folders"
        if self.dry_run:
            text = (f"would prune {len(self.pruned)} of {total} snapshots (keeping {self.kept}); "
                    f"{folders} {noun} would be removed")
        else:
            text = (f"pruned {len(self.pruned)} of {total} snapshots (kept {self.kept}, "
                    f"{self.bytes_freed / 2**20:.1f} MB freed); {folders} {noun} removed")
        if self.report_folders_failed:
            text += f"; {len(self.report_folders_failed)} could not be removed"
        return text


def prune(database: Path, policy, report_dir: Path | None, *, now: datetime | None = None,
          dry_run: bool = False) -> PruneResult:
    """Apply the retention policy: the pruned snapshots' rows (auditor/store/retention.py), then their report
    folders under `report_dir` (auditor/report/retention.py; None: no folder is touched). With `dry_run`
    nothing changes and the result lists what would be removed."""
    from auditor.report.retention import remove_report_folders, report_folders_of
    from auditor.store.retention import prune_snapshots

    started = time.perf_counter()
    done = prune_snapshots(database, policy, now=now, dry_run=dry_run)
    result = PruneResult(kept=done.kept, pruned=done.pruned, rows_deleted=done.rows_deleted,
                         report_folders_removed=[], dry_run=dry_run, bytes_freed=done.bytes_freed)
    if report_dir is not None and Path(report_dir).is_dir():
        if dry_run:
            result.report_folders_removed = report_folders_of(Path(report_dir), done.pruned_snapshots)
        else:
            result.report_folders_removed, result.report_folders_failed = remove_report_folders(
                Path(report_dir), done.pruned_snapshots)
    result.seconds = time.perf_counter() - started
    log.info("%s", result.summary())
    return result
