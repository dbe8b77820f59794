"""`auditor upgrade`: a database auditor 0.1.0 wrote (every snapshot and evaluation as rows inside one DuckDB
file) becomes this release's catalog and lake, its whole history moved (docs/upgrading.md).

The old file is only ever read. Beside `audit.duckdb`, in this order:

    1. `.audit.lake.upgrading/`            every table written as the lake keeps it, then counted against the old
                                           file, id by id; a file `_upgrade.json` records whose lake it is
    2. `audit.0.1.0-before-upgrade.duckdb` the old file under a name that says what it is: a hard link, or a
                                           copy where the file system has none
    3. `audit.lake/`                       the folder of step 1, renamed
    4. `audit.duckdb`                      the new catalog, renamed over the old name

A run that stops anywhere (kill -9, a full disk, a power cut) leaves `audit.duckdb` either the old file, byte
for byte, or the new catalog, and running it again completes: it starts step 1 afresh, or takes up a lake from
step 3 whose `_upgrade.json` names this very file.
"""

from __future__ import annotations

import fcntl
import filecmp
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from auditor import __version__
from auditor.errors import StoreError
from auditor.sqltext import sql_ident, sql_literal
from auditor.store.catalog import ensure_catalog, prepare_lake
from auditor.store.database import lake_path
from auditor.store.lake import PART_FILE, STAGING, fsync_dir, record_claims, table_glob
from auditor.store.tables import (
    EVALUATION,
    EVALUATION_TABLES,
    KIND_OF,
    MANIFEST,
    PARQUET_OPTIONS,
    PARTITION_KEY,
    SANDBOX_CONFIG,
    SNAPSHOT,
    SNAPSHOT_TABLES,
    file_columns,
    path_column,
    relation_sql,
)

RELEASE_VERSIONS = ("1", "2")  # schema versions auditor 0.1.0 wrote
MARKER = "_upgrade.json"

Progress = Callable[[int, int, str], None]  # (tables done, tables in all, the table being moved)


@dataclass
class Upgraded:
    database: Path
    kept: Path | None = None  # None: it was this release's catalog already
    lake: Path | None = None
    rows: dict[str, int] = field(default_factory=dict)  # rows moved, per table
    left_behind: dict[str, int] = field(default_factory=dict)  # rows of no snapshot or evaluation, per table
    published_copy: Path | None = None  # 0.1.0's `<name>.readonly.duckdb`, if it is there

    def summary(self) -> list[str]:
        if self.kept is None:
            return [f"{self.database}: already this release's catalog (its history is in {lake_path(self.database)}); "
                    "nothing to upgrade"]
        lines = [f"upgraded {self.database}: {self.rows.get('snapshots', 0)} snapshots and "
                 f"{self.rows.get('evaluations', 0)} evaluations moved into {self.lake}",
                 "rows per table (each equal to the old file's):"]
        width = max(len(table) for table in self.rows)
        lines += [f"  {table:<{width}}  {count:>10,}" for table, count in self.rows.items()]
        for table, count in self.left_behind.items():
            lines.append(f"not moved: {count:,} row{'' if count == 1 else 's'} of {table}, of no snapshot or "
                         "evaluation in the old file")
        lines.append(f"the 0.1.0 file is kept as {self.kept}; auditor 0.1.0 can still read it "
                     "(docs/upgrading.md). Remove it when you no longer need it")
        if self.published_copy:
            lines.append(f"{self.published_copy}, the copy 0.1.0 published for readers, is no longer updated: readers "
                         f"open {self.database} now. Remove it when nothing reads it")
        return lines


def kept_path(database: Path) -> Path:
    """Where the upgrade keeps the 0.1.0 file: `audit.duckdb` -> `audit.0.1.0-before-upgrade.duckdb`."""
    return database.with_name(f"{database.stem}.0.1.0-before-upgrade{database.suffix or '.duckdb'}")


def upgrade_database(database: Path, progress: Progress | None = None) -> Upgraded:
    """Move the history of the 0.1.0 file `database` into the lake beside it, and put the catalog in its place;
    see the module's docstring for the order of steps and what a failure leaves."""
    database = Path(database)
    if not database.is_file():
        raise StoreError(f"{database}: no such file to upgrade")
    lake = lake_path(database)
    kept = kept_path(database)
    work = lake.with_name(f".{lake.name}.upgrading")
    wal = database.with_name(database.name + ".wal")
    published = database.with_name(f"{database.stem}.readonly{database.suffix or '.duckdb'}")

    with _one_upgrade_at_a_time(database.parent):
        # held open to the end: its shared lock keeps a 0.1.0 writer out until the catalog has taken its place
        con = _open_release_file(database)
        try:
            info = _schema_info(con, database)
            if info.get("definition"):
                return Upgraded(database)
            if wal.exists():
                raise StoreError(f"{wal}: auditor 0.1.0 did not close {database.name} cleanly; open it once with "
                                 f"0.1.0 (any command) or run `duckdb {database} CHECKPOINT`, then upgrade again")
            if info.get("schema_version") not in RELEASE_VERSIONS:
                raise StoreError(f"{database}: schema version {info.get('schema_version')!r} is none that auditor "
                                 "0.1.0 wrote; this release upgrades only those")
            if os.path.lexists(kept) and not _is_kept_copy(kept, database):
                raise StoreError(f"{kept}: already there, and not a copy of {database.name}; move it away, then "
                                 "upgrade again")
            source = _fingerprint(database)
            marker = _lake_to_take_up(lake, database, source)
            if not marker:
                shutil.rmtree(work, ignore_errors=True)  # what a run stopped in step 1 left
                try:
                    marker = _build_lake(con, database, work, source, progress)
                except BaseException:
                    shutil.rmtree(work, ignore_errors=True)
                    raise
            _keep(database, kept)
            if not os.path.lexists(lake):
                _rename(work, lake)
            try:
                ensure_catalog(database, lake, state={})
            except StoreError as exc:
                reason = str(exc).removeprefix(f"{database}: ")
                raise StoreError(f"{database}: not upgraded, the file is unchanged; run `auditor upgrade` again once "
                                 f"the cause is fixed: {reason}") from None
        finally:
            con.close()
    return Upgraded(database, kept, lake, marker["rows"], marker["left_behind"],
                    published if published.is_file() else None)


@contextmanager
def _one_upgrade_at_a_time(folder: Path):
    """An exclusive lock on the database's folder for the whole upgrade: two upgrades never build or rename
    the same folders."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{folder}: another `auditor upgrade` is running there; let it finish") from None
        yield
    finally:
        os.close(fd)


def _lake_to_take_up(lake: Path, database: Path, source: dict) -> dict:
    """The marker of a lake a stopped upgrade of this very file already put in place ({} when there is no
    lake: build one). Any other lake is never touched, but an empty folder."""
    if not os.path.lexists(lake):
        return {}
    marker = _read_marker(lake)
    if marker.get("source") == source:
        return marker
    made_from = marker.get("source") or {}
    if (made_from.get("device"), made_from.get("inode")) == (source["device"], source["inode"]):
        raise StoreError(f"{lake}: made by an upgrade of {database.name} that stopped, but 0.1.0 has written to the "
                         f"file since; remove {lake}, then upgrade again")
    if lake.is_dir() and not lake.is_symlink() and not any(lake.iterdir()):
        lake.rmdir()
        return {}
    raise StoreError(f"{lake}: already there, and not the lake of an upgrade of {database.name}; move it away, then "
                     "upgrade again")


# -- reading the 0.1.0 file -----------------------------------------------------------------------------------
def _open_release_file(database: Path):
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute("ATTACH ? AS old (READ_ONLY)", [str(database)])
    except duckdb.Error as exc:
        con.close()
        if "lock" in str(exc).lower():
            raise StoreError(f"{database}: another process (auditor 0.1.0's service?) holds it open for writing; "
                             "stop it, then upgrade") from None
        raise StoreError(f"{database}: cannot read it: {_first_line(exc)}") from None
    return con


def _schema_info(con, database: Path) -> dict[str, str]:
    try:
        return dict(con.execute("SELECT key, value FROM old.schema_info").fetchall())
    except duckdb.Error:
        raise StoreError(f"{database}: not a database auditor wrote (it has no schema_info table)") from None


def _old_columns(con) -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                     "WHERE database_name = 'old' AND schema_name = 'main'").fetchall():
        columns.setdefault(table, set()).add(column)
    return columns


def _owned(kind: str, table: str) -> str:
    """The condition on `old.<table>` that keeps the rows of a snapshot (an evaluation of a snapshot) the old
    file holds: what 0.1.0's readers saw."""
    from_path, key = path_column(table)
    if kind == SNAPSHOT:
        return "TRUE" if table == MANIFEST[kind] else f"{sql_ident(key)} IN (SELECT id FROM old.snapshots)"
    evaluations = "SELECT id FROM old.evaluations WHERE snapshot_id IN (SELECT id FROM old.snapshots)"
    if table == MANIFEST[kind]:
        return "snapshot_id IN (SELECT id FROM old.snapshots)"
    return f"{sql_ident(from_path)} IN ({evaluations})"


# -- step 1: the lake, built aside ------------------------------------------------------------------------------
def _build_lake(con, database: Path, work: Path, fingerprint: dict, progress: Progress | None) -> dict:
    """Every table of the old file into `work` as the lake keeps it, each id's rows counted against the old
    file; returns the marker written into it."""
    tables = SNAPSHOT_TABLES + EVALUATION_TABLES
    old_columns = _old_columns(con)
    staging = work / STAGING / "upgrade"
    try:
        staging.mkdir(parents=True)
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET temp_directory = ?", [str(staging / ".spill")])
        rows, left_behind = {}, {}
        for done, table in enumerate(tables):
            if progress:
                progress(done, len(tables), table)
            if table not in old_columns:
                continue  # a table 0.1.0 had not yet (schema version 1): nothing to move
            rows[table], stray = _move_table(con, work, staging, table, old_columns[table])
            if stray:
                left_behind[table] = stray
        if progress:
            progress(len(tables), len(tables), "")
        shutil.rmtree(staging.parent)
        prepare_lake(work)
        _record_claims(con, work, old_columns)
        marker = {"source": fingerprint, "upgraded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "by": f"auditor {__version__}", "rows": rows, "left_behind": left_behind}
        (work / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        os.sync()  # every file on disk before any rename makes it count
    except OSError as exc:
        raise StoreError(f"{database}: not upgraded, the file is unchanged: cannot write {work}: "
                         f"{exc.strerror or exc}") from None
    except (duckdb.Error, StoreError) as exc:
        raise StoreError(f"{database}: not upgraded, the file is unchanged: {_first_line(exc)}") from None
    return marker


def _move_table(con, work: Path, staging: Path, table: str, present: set[str]) -> tuple[int, int]:
    """One table's rows, partitioned by id, zstd Parquet, written under staging, checked, then renamed into the
    lake. Returns (rows moved, rows left behind)."""
    kind = KIND_OF[table]
    from_path, key = path_column(table)
    owned = _owned(kind, table)
    columns = [f"CAST({sql_ident(name) if name in present else 'NULL'} AS {kind_}) AS {sql_ident(name)}"
               for name, kind_ in file_columns(table)]
    select = (f"SELECT {', '.join(columns)}, {sql_ident(from_path)} AS {sql_ident(key)} "
              f"FROM old.{sql_ident(table)} WHERE {owned}")
    target = staging / table
    con.execute(f"COPY ({select}) TO {sql_literal(str(target))} "
                f"({PARQUET_OPTIONS}, PARTITION_BY ({sql_ident(key)}), FILENAME_PATTERN 'part-{{i}}')")
    one_file_per_partition(con, target)
    expected = dict(con.execute(f"SELECT {sql_ident(from_path)}, count(*) FROM old.{sql_ident(table)} "
                                f"WHERE {owned} GROUP BY ALL").fetchall())
    written = dict(con.execute(f"SELECT {sql_ident(from_path)}, count(*) FROM "
                               f"({relation_sql(table, [str(target / '*' / '*.parquet')])}) GROUP BY ALL").fetchall()
                   ) if expected else {}
    if written != expected:
        wrong = sorted(set(written.items()) ^ set(expected.items()))[0][0]
        raise StoreError(f"{table}, {key} {wrong}: the old file holds {expected.get(wrong, 0)} rows, the lake got "
                         f"{written.get(wrong, 0)}")
    total = con.execute(f"SELECT count(*) FROM old.{sql_ident(table)}").fetchall()[0][0]
    if target.is_dir():
        os.rename(target, work / table)
    return sum(expected.values()), total - sum(expected.values())


def one_file_per_partition(con, table_folder: Path) -> None:
    """Merge the files a partitioned COPY may split one id into (`part-0`, `part-1`, ... when it flushes
    early) into one `part-0.parquet`, the one file per id that every reader of the lake expects."""
    for partition in sorted(p for p in table_folder.iterdir() if p.is_dir()) if table_folder.is_dir() else ():
        parts = sorted(partition.glob("part-*.parquet"))
        if len(parts) < 2:
            continue
        merged = partition / ".merged.tmp"
        files = "[" + ", ".join(sql_literal(str(part)) for part in parts) + "]"
        con.execute(f"COPY (SELECT * FROM read_parquet({files}, hive_partitioning = false)) TO "
                    f"{sql_literal(str(merged))} ({PARQUET_OPTIONS})")
        for part in parts:
            part.unlink()
        os.rename(merged, partition / PART_FILE)


def _record_claims(con, work: Path, old_columns: dict[str, set[str]]) -> None:
    """Claims as this auditor's writers leave them: `<id>.done` for every id moved, and `.void` for the highest
    id 0.1.0 gave out or left a row under, when none of those was moved; no id is ever handed out again."""
    for kind in (SNAPSHOT, EVALUATION):
        manifest = MANIFEST[kind]
        moved = [item_id for (item_id,) in con.execute(
            f"SELECT id FROM ({relation_sql(manifest, [table_glob(work, manifest)])})").fetchall()]
        record_claims(work, kind, moved, "done")
        used = [f"SELECT max({sql_ident(path_column(table)[0])}) FROM old.{sql_ident(table)}"
                for table in old_columns if KIND_OF.get(table) == kind]
        used.append(f"SELECT max(last_value) FROM duckdb_sequences() WHERE database_name = 'old' "
                    f"AND sequence_name = {sql_literal(PARTITION_KEY[kind] + '_seq')}")
        highest = con.execute(f"SELECT max(used) FROM ({' UNION ALL '.join(used)}) AS ids(used)").fetchall()[0][0]
        if highest is not None and highest > max(moved, default=0):
            record_claims(work, kind, [highest], "void")


def _fingerprint(database: Path) -> dict:
    """Which file, and whether it changed: a write by 0.1.0 changes its size or time."""
    found = database.stat()
    return {"device": found.st_dev, "inode": found.st_ino, "size": found.st_size, "mtime_ns": found.st_mtime_ns}


def _read_marker(lake: Path) -> dict:
    try:
        marker = json.loads((lake / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


# -- steps 2-4 ------------------------------------------------------------------------------------------------
def _is_kept_copy(kept: Path, database: Path) -> bool:
    """Whether `kept` is the old file itself (a hard link) or a whole copy of it: a regular file, never a link
    that could point anywhere."""
    try:
        found, source = os.lstat(kept), os.stat(database)
    except OSError:
        return False
    if not stat.S_ISREG(found.st_mode):
        return False
    if (found.st_dev, found.st_ino) == (source.st_dev, source.st_ino):
        return True
    return found.st_size == source.st_size and filecmp.cmp(kept, database, shallow=False)


def _keep(database: Path, kept: Path) -> None:
    """The old file under its kept name as well, on disk before anything else moves: a hard link costs nothing;
    a file system without them gets a copy, written aside and renamed, so a half-written copy never carries the
    name."""
    if not os.path.lexists(kept):
        try:
            os.link(database, kept)
        except FileExistsError:
            pass
        except OSError:
            _copy(database, kept)
    if not _is_kept_copy(kept, database):
        raise StoreError(f"{kept}: already there, and not a copy of {database.name}; move it away, then upgrade "
                         "again")
    fsync_dir(kept.parent)


def _copy(database: Path, kept: Path) -> None:
    tmp = kept.with_name(f".{kept.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(database, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.rename(tmp, kept)
    except OSError as exc:
        raise StoreError(f"{kept}: cannot keep the 0.1.0 file there: {exc.strerror or exc}; nothing changed") from None
    finally:
        tmp.unlink(missing_ok=True)


def _rename(work: Path, lake: Path) -> None:
    try:
        os.rename(work, lake)
        fsync_dir(lake.parent)
    except OSError as exc:
        raise StoreError(f"{lake}: cannot put the lake in place: {exc.strerror or exc}; the 0.1.0 file is unchanged"
                         ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
