"""Report folders of pruned snapshots: found by their report.json (cloud, region, start time and snapshot
id must all match, so a folder written from another database with the same ids stays), renamed out of the
archive first so that it never lists a half-removed folder, then removed; the archive page is rewritten."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

from auditor.errors import ReportError
from auditor.report.build import read_meta, refresh_index
from auditor.store.retention import naive_utc

log = logging.getLogger(__name__)


def report_folders_of(report_dir: Path, pruned: dict[int, tuple[str, str, datetime]]) -> list[Path]:
    """The report folders under `report_dir` whose report.json names one of the pruned snapshots, with the
    same cloud, region and start time (a folder written from another database with the same ids stays)."""
    if not pruned:
        return []
    found = []
    for meta_path in sorted(report_dir.glob("*/*/*/report.json")):
        folder = meta_path.parent
        if folder.name.startswith("."):  # a report being written, or one being removed
            continue
        meta = read_meta(meta_path)
        snapshot_id = meta.get("snapshot_id") if meta else None
        if type(snapshot_id) is not int or snapshot_id not in pruned:
            continue
        cloud, region, started_at = pruned[snapshot_id]
        if meta.get("cloud") == cloud and meta.get("region") == region and \
                _meta_time(meta.get("started_at")) == started_at:
            found.append(folder)
    return found


def remove_report_folders(report_dir: Path, pruned: dict[int, tuple[str, str, datetime]]
                          ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Remove the report folders of the pruned snapshots and rewrite the archive page; return the folders
    removed and those that stay, each with why."""
    removed: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for folder in report_folders_of(report_dir, pruned):
        if folder.is_symlink():
            failed.append((folder, "is a symbolic link"))
            continue
        # Renamed first, so the archive never lists a half-removed folder; then removed.
        hidden = folder.with_name(f".{folder.name}.pruned-{os.getpid()}")
        try:
            os.replace(folder, hidden)
        except OSError as exc:
            failed.append((folder, exc.strerror or str(exc)))
            continue
        try:
            shutil.rmtree(hidden)
        except OSError as exc:
            failed.append((hidden, exc.strerror or str(exc)))
            continue
        removed.append(folder)
    for folder, why in failed:
        log.warning("%s: report folder of a pruned snapshot not removed: %s", folder, why)
    try:
        refresh_index(report_dir)
    except (OSError, ReportError) as exc:
        failed.append((report_dir / "index.html", f"archive page not rewritten: {exc}"))
        log.warning("%s: archive page not rewritten after pruning: %s", report_dir, exc)
    return removed, failed


def _meta_time(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return naive_utc(datetime.fromisoformat(text))
    except ValueError:
        return None
