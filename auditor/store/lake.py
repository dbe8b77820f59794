"""The lake: every snapshot's and every evaluation's tables as zstd-compressed Parquet files in Hive-partitioned
folders, written once and never rewritten (docs/schema.md, "The lake").

    <lake>/<table>/snapshot_id=<id>/part-0.parquet       a snapshot table (servers, ports, snapshots, ...)
    <lake>/<table>/evaluation_id=<id>/part-0.parquet     an evaluation table (findings, evaluations, ...)
    <lake>/<table>/<key>=0/_schema.parquet               no rows: the table's columns, so a glob always matches
    <lake>/_ids/<kind>s/<id>[.done|.void|.pruning]       who claimed an id, and how that ended
    <lake>/_staging/<kind>-<id>/<table>/part-0.parquet   a write in progress

A write claims its id by creating `_ids/<kind>s/<id>` exclusively (O_EXCL; on a clash the next number), so
several writers never need a lock held for a whole run. It writes every table under `_staging`, renames each
table's folder into its partition (renaming a folder is atomic) and renames the manifest table's folder
(`snapshots`, `evaluations`) last: readers see only ids whose manifest is in place, so nothing is visible
before every file is. A writer killed half-way leaves a claim whose process is gone and folders without a
manifest; the next writer removes them (`clean_abandoned`), never those of a writer still alive. Pruning
removes an id's manifest first (it vanishes at once), then its other folders; a prune that dies half-way
leaves its claim `.pruning`, and the next writer finishes it. Claims are kept, so an id is never reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from auditor.errors import StoreError
from auditor.store.tables import EVALUATION, KIND_OF, MANIFEST, PARTITION_KEY, SNAPSHOT

log = logging.getLogger(__name__)

PART_FILE = "part-0.parquet"
SCHEMA_FILE = "_schema.parquet"  # Spark, Hive and Trino skip files whose name starts with '_'
SCHEMA_ID = 0  # the partition that holds each table's SCHEMA_FILE; ids start at 1
STAGING = "_staging"


def lake_of(database: Path) -> Path:
    """The default lake beside a catalog: `audit.duckdb` -> `audit.lake/`."""
    return database.with_name(f"{database.stem}.lake")


def partition_dir(lake: Path, table: str, item_id: int, kind: str | None = None) -> Path:
    """One id's folder in a table's folder; `kind` for a table this auditor does not know (a later one's)."""
    return lake / table / f"{PARTITION_KEY[kind or KIND_OF[table]]}={int(item_id)}"


def schema_file(lake: Path, table: str) -> Path:
    return partition_dir(lake, table, SCHEMA_ID) / SCHEMA_FILE


def table_glob(lake: Path, table: str) -> str:
    """Every file of `table`, its schema file included."""
    return str(lake / table / "*" / "*.parquet")


def partition_file(lake: Path, table: str, item_id: int) -> Path:
    return partition_dir(lake, table, item_id) / PART_FILE


# -- ids ------------------------------------------------------------------------------------------------------
def _ids_dir(lake: Path, kind: str) -> Path:
    return lake / "_ids" / f"{kind}s"


def claimed_ids(lake: Path, kind: str) -> dict[int, Path]:
    """Every id of `kind` ever claimed, with its claim file (`<id>`: being written or died writing;
    `<id>.done`: committed, or pruned since; `<id>.void`: given up; `<id>.pruning`: being pruned)."""
    folder = _ids_dir(lake, kind)
    found = {}
    for entry in os.scandir(folder) if folder.is_dir() else ():
        name = entry.name.split(".", 1)[0]
        if name.isdigit() and not entry.name.startswith("."):
            found[int(name)] = Path(entry.path)
    return found


def claim_id(lake: Path, kind: str, item_id: int | None = None) -> int:
    """The next free id of `kind` (or exactly `item_id`), claimed by creating its claim file exclusively.
    The claim names its writer (host, pid and the process's start time), so that a dead writer is told from
    a live one."""
    folder = _ids_dir(lake, kind)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{folder}: cannot claim a {kind} id: {exc}") from None
    claim = _writer_claim()
    # committed ids count too: a lake whose _ids folder was lost (a copy that skipped it) must not reuse one
    taken = set(claimed_ids(lake, kind)) | committed_ids(lake, kind)
    if item_id is not None:
        if int(item_id) in taken:
            raise StoreError(f"{folder}: {kind} id {item_id} is taken")
        candidate, tries = int(item_id), 1
    else:
        candidate, tries = max(taken, default=0) + 1, 10_000
    for _ in range(tries):
        try:
            fd = os.open(folder / str(candidate), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if item_id is not None:
                raise StoreError(f"{folder}: {kind} id {item_id} is taken") from None
            candidate += 1
            continue
        except OSError as exc:
            raise StoreError(f"{folder}: cannot claim a {kind} id: {exc}") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(claim)
        return candidate
    raise StoreError(f"{folder}: no free {kind} id after 10,000 tries")


def _writer_claim() -> str:
    """Who holds a claim: host, pid and the process's start time."""
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())})


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot): tells a live writer from a new process that
    got a dead writer's pid. None where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(claim_path: Path) -> bool:
    try:
        claim = json.loads(claim_path.read_text() or "{}")
    except (OSError, ValueError):
        claim = {}
    if not isinstance(claim, dict):
        return False
    if not claim:  # being written this instant, or its writer died before it could say who it was
        try:
            return time.time() - claim_path.stat().st_mtime < 60
        except OSError:
            return False
    if claim.get("host") != socket.gethostname():
        return True  # another machine's writer on a shared lake: never judged from here
    pid = claim.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = claim.get("started")
    return started is None or _process_start(pid) in (None, started)


def record_claims(lake: Path, kind: str, item_ids, state: str) -> None:
    """Claims settled as `state` (`done`, `void`) for ids written whole outside `stage` (an upgrade), so that
    they are never reused."""
    folder = _ids_dir(lake, kind)
    folder.mkdir(parents=True, exist_ok=True)
    for item_id in item_ids:
        (folder / f"{int(item_id)}.{state}").touch()


def _settle(lake: Path, kind: str, item_id: int, state: str) -> None:
    claim = _ids_dir(lake, kind) / str(item_id)
    try:
        os.replace(claim, claim.with_name(f"{item_id}.{state}"))
    except OSError:
        pass  # the manifest decides what is visible; the claim only keeps the id taken


def committed_ids(lake: Path, kind: str) -> set[int]:
    """Ids whose manifest is in place: what readers see."""
    manifest = lake / MANIFEST[kind]
    prefix = f"{PARTITION_KEY[kind]}="
    found = set()
    for entry in os.scandir(manifest) if manifest.is_dir() else ():
        value = entry.name[len(prefix):]
        if entry.name.startswith(prefix) and value.isdigit() and os.path.isfile(os.path.join(entry.path, PART_FILE)):
            found.add(int(value))
    return found


# -- writing --------------------------------------------------------------------------------------------------
@dataclass
class Staged:
    """One snapshot or evaluation being written: its tables staged as files, then committed at once."""

    lake: Path
    kind: str
    item_id: int

    @property
    def folder(self) -> Path:
        return self.lake / STAGING / f"{self.kind}-{self.item_id}"

    @property
    def spill(self) -> Path:
        """Where DuckDB spills while this write is prepared (made here; removed with the staging folder)."""
        path = self.folder / ".spill"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, table: str) -> Path:
        """Where to write `table`'s Parquet file (its folder is made)."""
        if KIND_OF[table] != self.kind:
            raise StoreError(f"table {table} is not a {self.kind} table")
        path = self.folder / table / PART_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self) -> None:
        """Move every staged table into its partition, the manifest last: then, and only then, the write is
        visible. Files and folders reach the disk first, so a power cut cannot leave a manifest that points
        at data the disk never got."""
        manifest = MANIFEST[self.kind]
        tables = sorted(p.name for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if self.folder.is_dir() else []
        if manifest not in tables:
            raise StoreError(f"{self.folder}: {self.kind} {self.item_id} has no {manifest} file to commit")
        try:
            for table in tables:
                _fsync_tree(self.folder / table)
        except OSError as exc:
            raise StoreError(f"{self.folder}: the staged files did not reach the disk: {exc}") from None
        for table in [t for t in tables if t != manifest] + [manifest]:
            target = partition_dir(self.lake, table, self.item_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self.folder / table, target)
            except OSError as exc:
                raise StoreError(f"{target}: cannot move the staged {table} into place: {exc}") from None
            fsync_dir(target.parent)
        shutil.rmtree(self.folder, ignore_errors=True)
        _settle(self.lake, self.kind, self.item_id, "done")

    def abandon(self) -> None:
        """Remove what this write put in the lake; it failed before its manifest was in place."""
        remove_partitions(self.lake, self.kind, self.item_id)
        shutil.rmtree(self.folder, ignore_errors=True)
        _settle(self.lake, self.kind, self.item_id, "void")


def stage(lake: Path, kind: str, item_id: int | None = None) -> Staged:
    """Start writing a snapshot or an evaluation under a newly claimed id (or exactly `item_id`: an upgrade
    or a test that keeps the ids it was given)."""
    if kind not in (SNAPSHOT, EVALUATION):
        raise ValueError(kind)
    staged = Staged(lake, kind, claim_id(lake, kind, item_id))
    staged.folder.mkdir(parents=True, exist_ok=True)
    return staged


def table_folders(lake: Path) -> list[str]:
    """The name of every table folder in the lake (tables a later auditor added included)."""
    return sorted(e.name for e in os.scandir(lake) if e.is_dir() and not e.name.startswith(("_", "."))) \
        if lake.is_dir() else []


def remove_partitions(lake: Path, kind: str, item_id: int, tables: list[str] | None = None) -> int:
    """Delete every partition folder of one id, the manifest's first (so the id is invisible at once), in
    every table's folder (`tables`: the folders, when the caller has listed them already); returns the
    bytes freed."""
    tables = sorted(table_folders(lake) if tables is None else tables, key=lambda table: table != MANIFEST[kind])
    freed = 0
    for table in tables:
        folder = partition_dir(lake, table, item_id, kind)
        if folder.is_dir():
            freed += sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            shutil.rmtree(folder, ignore_errors=True)
    return freed


def remove_committed(lake: Path, kind: str, item_id: int, tables: list[str] | None = None) -> int:
    """Prune one committed id: its claim marked `.pruning` first (a prune killed half-way is finished by the
    next writer), then its folders, the manifest first; returns the bytes freed."""
    folder = _ids_dir(lake, kind)
    folder.mkdir(parents=True, exist_ok=True)
    pruning = folder / f"{int(item_id)}.pruning"
    for name in (f"{int(item_id)}.done", str(int(item_id))):
        try:
            os.replace(folder / name, pruning)
            break
        except FileNotFoundError:
            continue
    pruning.write_text(_writer_claim())  # who prunes: another writer finishes it only once this one is dead
    freed = remove_partitions(lake, kind, item_id, tables)
    _settle_pruned(pruning, item_id)
    return freed


def clean_abandoned(lake: Path) -> list[str]:
    """Remove what writers that died (kill -9, a power cut) left behind: the staging folders and partitions
    of ids claimed by a process that is gone and never committed, and the rest of a prune that died
    half-way. Returns what was removed."""
    removed = []
    for kind in (SNAPSHOT, EVALUATION):
        claims = claimed_ids(lake, kind)
        for item_id, path in claims.items():
            if path.suffix == ".pruning" and not _alive(path):  # a prune that died half-way
                remove_partitions(lake, kind, item_id)
                _settle_pruned(path, item_id)
                removed.append(f"pruned {kind} {item_id}")
        pending = {item_id: path for item_id, path in claims.items() if not path.suffix}
        if not pending:
            continue
        committed = committed_ids(lake, kind)
        for item_id, claim_path in pending.items():
            if item_id in committed:  # died after its manifest: it is whole
                _settle(lake, kind, item_id, "done")
                continue
            if _alive(claim_path):
                continue
            if partition_file(lake, MANIFEST[kind], item_id).is_file():
                _settle(lake, kind, item_id, "done")  # it committed after the list above was read
                continue
            remove_partitions(lake, kind, item_id)
            shutil.rmtree(lake / STAGING / f"{kind}-{item_id}", ignore_errors=True)
            _settle(lake, kind, item_id, "void")
            removed.append(f"{kind} {item_id}")
    if removed:
        log.warning("removed what writers that died left in %s: %s", lake, ", ".join(removed))
    return removed


def _settle_pruned(path: Path, item_id: int) -> None:
    try:
        os.replace(path, path.with_name(f"{item_id}.done"))
    except OSError:
        pass


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
