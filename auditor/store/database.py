"""The DuckDB snapshot store: one writer that holds the file only while it writes, and a published copy.

DuckDB lets one process hold a file for writing, and then nobody else may open it, not even read-only;
a reader that keeps the file open blocks the writer. So the writer opens the file, writes one snapshot in
one transaction, checkpoints, copies the file to `<name>.readonly.duckdb` (temporary file, then atomic
rename) and lets go. Auditors and `auditor sql` open that copy, which they may keep open as long as they
like. The file is created in the v1.4 storage format, so the DuckDB 1.4/1.5 command line tools can read
the copy (DuckDB 1.5 cannot open 2.0's default format).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from auditor.errors import StoreError
from auditor.store.tables import RESOURCE_TABLES, SANDBOX_CONFIG, latest_views_sql, schema_sql

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2"
# Older schema versions that schema.sql upgrades in place (it only adds tables and views).
UPGRADABLE_VERSIONS = {"1"}
STORAGE_VERSION = "v1.4.0"

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR[]": pa.list_(pa.string()),
}


def published_path(database: Path) -> Path:
    return database.with_name(f"{database.stem}.readonly{database.suffix or '.duckdb'}")


# One writer at a time within this process too: the service runs jobs in threads, and DuckDB would hand
# them one shared database instance, where a publish could copy the file while another thread writes.
_process_writer = threading.RLock()


@contextmanager
def open_writer(database: Path, lock_timeout: float = 120.0):
    """Open the database for writing, waiting (with jitter) while another process or thread holds it."""
    with _process_writer:
        with _open_writer(database, lock_timeout) as con:
            yield con


@contextmanager
def _open_writer(database: Path, lock_timeout: float):
    database.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(database), config={"storage_compatibility_version": STORAGE_VERSION})
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise StoreError(f"{database}: cannot open for writing: {exc}") from None
            log.info("database %s is held by another process; retrying", database)
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 2.0)
        except duckdb.Error as exc:
            raise StoreError(f"{database}: cannot open: {exc}") from None
    try:
        quiet(con)
        _ensure_schema(con, database)
        yield con
    finally:
        con.close()


def _ensure_schema(con, database: Path) -> None:
    if _has_table(con, "schema_info"):
        rows = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall()
        row = rows[0] if rows else None
        if row and row[0] != SCHEMA_VERSION and row[0] not in UPGRADABLE_VERSIONS:
            raise StoreError(
                f"{database}: schema version {row[0]} is not the version {SCHEMA_VERSION} this auditor writes"
            )
        if row and row[0] == SCHEMA_VERSION:
            return
    con.execute("BEGIN")
    con.execute(schema_sql())
    con.execute(latest_views_sql())
    con.execute("INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    con.execute("COMMIT")


def _has_table(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0])


def column_types(con, table: str) -> dict[str, pa.DataType]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {name: _ARROW_TYPES[kind] for name, kind in rows}


def insert_columns(con, table: str, snapshot_id: int, columns: dict[str, list], types: dict[str, pa.DataType]):
    """Insert column lists in bulk through Arrow (no row-by-row inserts)."""
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise StoreError(f"table {table}: columns of different lengths {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    if count == 0:
        return
    arrays, names = [pa.array([snapshot_id] * count, pa.int64())], ["snapshot_id"]
    for name, values in columns.items():
        if name not in types:
            raise StoreError(f"table {table} has no column {name!r}")
        try:
            arrays.append(pa.array(values, type=types[name]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise StoreError(f"table {table}, column {name}: {exc}") from None
        names.append(name)
    staged = pa.Table.from_arrays(arrays, names=names)
    con.register("staged_rows", staged)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged_rows")
    finally:
        con.unregister("staged_rows")


def publish(con, database: Path) -> Path:
    """Checkpoint, then copy the file beside itself and rename it over the published copy atomically."""
    target = published_path(database)
    con.execute("CHECKPOINT")
    for stale in database.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = database.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        shutil.copyfile(database, tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(database.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"{target}: cannot publish the read-only copy: {exc}") from None
    return target


def open_reader(path: Path):
    """Open a published copy read-only, with file access and extension loading disabled and locked."""
    con = open_snapshot_file(path)
    try:
        sandbox(con)
    except duckdb.Error:
        con.close()
        raise
    return con


def sandbox(con) -> None:
    """What rules and user SQL run under: no file or network access (no ATTACH, COPY TO, read_text of a
    local file), and a configuration no query can undo. Rule validation and rule test cases use it too,
    so a rule that reads a file fails there, not at its first evaluation."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def open_snapshot_file(path: Path):
    """A read-only connection to a published copy, in a DuckDB instance of its own.

    `duckdb.connect(path)` would share one instance per path within the process. In the service, where
    jobs and the HTTP endpoint open the copy from several threads, a shared instance would keep reading
    the file that a publish has since replaced, and one connection's locked configuration would refuse
    another's settings. An in-memory instance that attaches the file sees the current copy every time.
    Callers that run user SQL must disable file access afterwards (see open_reader)."""
    if not path.is_file():
        raise StoreError(f"{path}: no published snapshot database yet (run `auditor snapshot` first)")
    try:
        con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    except duckdb.Error as exc:
        raise StoreError(f"{path}: cannot open: {exc}") from None
    try:
        quiet(con)
        con.execute("ATTACH ? AS snapshot_store (READ_ONLY)", [str(path)])
        con.execute("USE snapshot_store")
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"{path}: cannot open: {exc}") from None
    return con


def quiet(con) -> None:
    """No progress bar: DuckDB draws it on stdout for queries over 2 s, into CSV and JSON output."""
    con.execute("SET enable_progress_bar = false")


def ensure_current_schema(database: Path) -> None:
    """Upgrade a database written by an older auditor (and its published copy) before anything reads it
    expecting the current tables. A no-op when the published copy is current."""
    published = published_path(database)
    if not published.is_file():
        return  # open_reader will say there is nothing yet
    con = open_reader(published)
    try:
        rows = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall()
    except duckdb.Error:
        rows = []
    finally:
        con.close()
    if rows and rows[0][0] == SCHEMA_VERSION:
        return
    with open_writer(database) as writer:  # upgrades in place (see _ensure_schema)
        publish(writer, database)
