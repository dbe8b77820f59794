"""The store as its readers and writers open it: the catalog `audit.duckdb` and the lake beside it.

Snapshots and evaluations live in the lake as Parquet (auditor/store/lake.py); the catalog is a small DuckDB
file of views over it (auditor/store/catalog.py) that no snapshot, evaluation or prune changes, so any
number of readers may keep it open while writers go on. Every reader opens it read-only, in a DuckDB
instance of its own, and may read the lake and no other file. A file written by auditor 0.1.0 (history
inside the DuckDB file) is refused in one line and never changed; `auditor upgrade` converts it
(auditor/store/upgrade.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pyarrow as pa

from auditor.errors import StoreError
from auditor.store.catalog import catalog_state, ensure_catalog, open_catalog, prepare_lake
from auditor.store.lake import lake_of
from auditor.store.tables import SANDBOX_CONFIG

log = logging.getLogger(__name__)

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



def lake_path(database: Path) -> Path:
    """The lake of a catalog, as an absolute path: `audit.duckdb` -> `<its folder>/audit.lake/`. The catalog's
    views name it in glob patterns, so a path with a glob character is refused."""
    lake = lake_of(Path(database).absolute()).resolve()
    if any(char in str(lake) for char in "*?[]{}"):
        raise StoreError(f"{database}: its folder's path holds a glob character (* ? [ ] {{ }}), which the lake's "
                         "views cannot name; give a --database in another folder")
    return lake


def check_format(database: Path, state: dict[str, str] | None = None) -> None:
    """Refuse a file this auditor did not write as a catalog, above all one auditor 0.1.0 wrote (`state`:
    what catalog_state read, when the caller has it already)."""
    state = catalog_state(database) if state is None else state
    if state.get("definition"):
        return
    if state.get("schema_version"):
        raise StoreError(
            f"{database}: written by auditor 0.1.0 (schema version {state['schema_version']}: the history inside the "
            "DuckDB file); run `auditor upgrade` to move that history into the lake this release keeps "
            "(docs/upgrading.md; the file itself is kept), or read it with auditor 0.1.0")
    raise StoreError(f"{database}: not a database auditor wrote (no catalog in it); give another --database")


def open_for_writing(database: Path) -> Path:
    """The lake to write into, made ready: the catalog beside it (made when missing, rebuilt when this
    auditor's views or the lake's place changed) and every table's schema file. Returns the lake."""
    database = Path(database)
    if database.exists():
        check_format(database)
    lake = lake_path(database)
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        prepare_lake(lake)
    except OSError as exc:
        raise StoreError(f"{lake}: cannot make the lake: {exc.strerror or exc}") from None
    ensure_catalog(database, lake)
    return lake


def _readable(database: Path) -> Path:
    database = Path(database)
    if not database.is_file():
        raise StoreError(f"{database}: no snapshot database yet (run `auditor snapshot` first)")
    state = catalog_state(database)
    check_format(database, state)
    lake = lake_path(database)
    if not lake.is_dir():
        raise StoreError(f"{database}: its lake {lake} is missing: the history lives there")
    ensure_catalog(database, lake, state)  # a moved lake, or a newer auditor's views: the catalog is made anew
    return lake


def open_reader(database: Path, spill: tuple[str, Path] | None = None):
    """A read-only connection to the catalog that may read the lake and no other file, its configuration
    locked: what rules, reports, `auditor sql` and the HTTP endpoint read through. `spill`: (memory limit,
    folder), see open_catalog."""
    return open_catalog(database, _readable(database), spill=spill)


def open_for_export(database: Path):
    """A read-only connection to the catalog with file access: `COPY ... TO` an export file needs it, so
    this connection runs only the export's own statements, never user SQL."""
    return open_catalog(database, _readable(database), sandboxed=False)


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


def sandbox(con) -> None:
    """What rules and user SQL run under: no file or network access (no ATTACH, COPY TO, read_text of a
    local file), and a configuration no query can undo. Rule validation and rule test cases use it too,
    so a rule that reads a file fails there, not at its first evaluation."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
