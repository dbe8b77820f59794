"""Writing one snapshot's report folder, and the archive page over every folder.

`<out>/<cloud>/<region>/<snapshot time>/` holds report.html, report.pdf, findings.csv, findings.jsonl,
findings.ocsf.jsonl, inventory.csv and report.json (what the archive page lists). The folder is built under a temporary name
and renamed into place, so a crash never leaves a half-written report visible; `<out>/index.html` is
replaced the same way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from auditor.config import ReportSettings
from auditor.errors import ReportError
from auditor.report.context import build_context
from auditor.report.exports import (
    write_findings_csv,
    write_findings_jsonl,
    write_findings_ocsf,
    write_inventory_csv,
)
from auditor.report.ocsf import standards
from auditor.report.render import render_index, render_report
from auditor.rules.catalog import Catalog
from auditor.store.database import open_reader

log = logging.getLogger(__name__)

FORMATS = ("html", "pdf", "csv", "json")
FILES = {"html": "report.html", "pdf": "report.pdf", "findings_csv": "findings.csv", "findings_json": "findings.jsonl",
         "findings_ocsf": "findings.ocsf.jsonl", "inventory_csv": "inventory.csv"}
_UNSAFE_PATH = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ReportResult:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    pdf_pages: int | None = None
    seconds: float = 0.0


def path_part(text: str | None) -> str:
    """A cloud or region name as one safe path component."""
    part = _UNSAFE_PATH.sub("_", text or "").strip("._") or "default"
    return part[:100]


def write_report(database: Path, snapshot_id: int, catalog: Catalog, settings: ReportSettings,
                 formats: tuple[str, ...] = FORMATS, out_dir: Path | None = None) -> ReportResult:
    """Write the report folder of `snapshot_id` (its newest evaluation) and refresh the archive page."""
    try:
        return _write_report(database, snapshot_id, catalog, settings, formats, out_dir)
    except OSError as exc:  # an unwritable or full output folder: nothing half-written stays visible
        raise ReportError(f"cannot write to the output folder: {exc}") from None


def _write_report(database: Path, snapshot_id: int, catalog: Catalog, settings: ReportSettings,
                  formats: tuple[str, ...], out_dir: Path | None) -> ReportResult:
    started = time.perf_counter()
    out = Path(out_dir or settings.out_dir).absolute()
    full = "html" in formats  # the HTML lists every failing row, the PDF at most pdf_max_rows
    html_context = build_context(database, snapshot_id, catalog,
                                 detail_rows=2**62 if full else settings.pdf_max_rows)
    snapshot, evaluation = html_context["snapshot"], html_context["evaluation"]
    folder = report_folder(out, snapshot)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.tmp-{_unique()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    result = ReportResult(folder=folder)
    try:
        written = {key: name for key, name in FILES.items() if _wanted(key, formats)}
        if "findings_csv" in written:
            write_findings_csv(database, evaluation["id"], staging / FILES["findings_csv"])
        if "inventory_csv" in written:
            write_inventory_csv(database, snapshot_id, staging / FILES["inventory_csv"])
        if "findings_json" in written:
            write_findings_jsonl(database, evaluation["id"], staging / FILES["findings_json"])
            write_findings_ocsf(database, evaluation["id"], standards(catalog), staging / FILES["findings_ocsf"])
        links = dict(written)
        if "html" in written:
            (staging / FILES["html"]).write_text(render_report(html_context, "html", links), encoding="utf-8")
        if "pdf" in written:
            from auditor.report.pdf import render_pdf

            pdf_context = build_context(database, snapshot_id, catalog, detail_rows=settings.pdf_max_rows) \
                if full else html_context
            pdf = render_pdf(render_report(pdf_context, "pdf", links), staging / FILES["pdf"],
                             timeout=settings.pdf_timeout, memory_limit_mb=settings.pdf_memory_limit_mb)
            result.pdf_pages = pdf.pages
        meta = {
            "cloud": snapshot["cloud"], "region": snapshot["region"], "snapshot_id": snapshot_id,
            "evaluation_id": evaluation["id"], "started_at": snapshot["started_at"].isoformat(),
            "status": snapshot["status"], "score": html_context["summary"]["score"],
            "fails": html_context["summary"]["fails"], "new_total": html_context["summary"]["new_total"],
            "resolved_total": html_context["summary"]["resolved_total"], "files": written,
        }
        (staging / "report.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        _swap_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.files = {key: folder / name for key, name in written.items()}
    refresh_index(out)
    result.seconds = time.perf_counter() - started
    return result


def _wanted(key: str, formats: tuple[str, ...]) -> bool:
    if key == "findings_csv" and "pdf" in formats:  # the PDF points at it for the rows it leaves out
        return True
    return {"html": "html", "pdf": "pdf", "findings_csv": "csv", "inventory_csv": "csv",
            "findings_json": "json", "findings_ocsf": "json"}[key] in formats


def _swap_into_place(staging: Path, folder: Path) -> None:
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{_unique()}")
        os.replace(folder, old)
    try:
        os.replace(staging, folder)
    except OSError as exc:
        if old is not None:
            os.replace(old, folder)
        raise ReportError(f"{folder}: cannot move the report into place: {exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def report_folder(out: Path, snapshot: dict) -> Path:
    """Where the report of `snapshot` (a snapshots row) goes: `<out>/<cloud>/<region>/<snapshot time>`, or
    `<snapshot time>-<id>` when another snapshot taken in the same second has that folder already."""
    stamp = snapshot["started_at"].strftime("%Y-%m-%dT%H%M%SZ")
    folder = Path(out).absolute() / path_part(snapshot["cloud"]) / path_part(snapshot["region"]) / stamp
    existing = read_meta(folder / "report.json")
    if existing and existing.get("snapshot_id") != snapshot["id"]:
        folder = folder.with_name(f"{stamp}-{snapshot['id']}")
    return folder


def read_meta(path: Path) -> dict | None:
    """A report folder's report.json, or None when it is missing or not a JSON object."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def _unique() -> str:
    """A suffix for temporary names: the service writes reports from several threads of one process."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


_index_lock = threading.Lock()  # the last writer in this process lists every folder written before it


def refresh_index(out: Path) -> Path:
    """Rewrite `<out>/index.html`: every report folder under `out`, newest first."""
    with _index_lock:
        return _refresh_index(out)


def _refresh_index(out: Path) -> Path:
    reports = []
    for meta_path in out.glob("*/*/*/report.json"):
        if meta_path.parent.name.startswith("."):
            continue
        meta = read_meta(meta_path)
        if not meta or "started_at" not in meta:
            log.warning("%s: not a report description, skipped in the index", meta_path)
            continue
        files = meta.get("files", {})
        relative = meta_path.parent.relative_to(out).as_posix()
        reports.append({
            "cloud": meta.get("cloud"), "region": meta.get("region"), "snapshot_id": meta.get("snapshot_id"),
            "started_at": datetime.fromisoformat(meta["started_at"]), "status": meta.get("status"),
            "score": meta.get("score"), "fails": meta.get("fails", {}), "new_total": meta.get("new_total"),
            "resolved_total": meta.get("resolved_total"),
            "html": f"{relative}/{files['html']}" if "html" in files else None,
            "pdf": f"{relative}/{files['pdf']}" if "pdf" in files else None,
        })
    reports.sort(key=lambda r: (r["started_at"], r["snapshot_id"] or 0), reverse=True)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    tmp = out / f".index.html.tmp-{_unique()}"
    tmp.write_text(render_index(reports, datetime.now(UTC).replace(tzinfo=None)), encoding="utf-8")
    os.replace(tmp, index)
    return index


def snapshots_to_report(database: Path, spec: str | int, cloud: str | None = None) -> list[int]:
    """`latest`: the newest evaluated snapshot of each cloud/region; else one evaluated snapshot id."""
    from auditor.errors import EvaluationError

    con = open_reader(database)
    try:
        if str(spec) == "latest":
            rows = con.execute("SELECT snapshot_id FROM latest_evaluations WHERE ? IS NULL OR cloud = ? "
                               "ORDER BY cloud, region", [cloud, cloud]).fetchall()
            if not rows:
                raise EvaluationError("no evaluated snapshot to report on" + (f" of cloud {cloud!r}" if cloud else "")
                                      + " (run `auditor run` or `auditor evaluate` first)")
            return [r[0] for r in rows]
        try:
            snapshot_id = int(spec)
        except ValueError:
            raise EvaluationError(f"--snapshot must be a snapshot id or 'latest', got {spec!r}") from None
        if not con.execute("SELECT count(*) FROM evaluations WHERE snapshot_id = ?", [snapshot_id]).fetchall()[0][0]:
            raise EvaluationError(f"snapshot {snapshot_id} has not been evaluated (run `auditor evaluate --snapshot "
                                  f"{snapshot_id}` first)")
        return [snapshot_id]
    finally:
        con.close()
