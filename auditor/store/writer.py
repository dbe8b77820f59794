"""Write one snapshot or one evaluation into the lake: its rows put in a DuckDB of its own, each table written
once as a zstd Parquet file under staging, then committed with its manifest last (auditor/store/lake.py).
Nothing written before is read, copied or rewritten, so a write's cost does not grow with history. What a
snapshot's rows are made from is auditor/store/snapshot_writer.py's business; this module imports nothing
of the collector, so an evaluation does not load openstacksdk."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import duckdb

from auditor.errors import StoreError
from auditor.sqltext import sql_ident, sql_literal
from auditor.store.database import open_for_writing
from auditor.store.lake import Staged, clean_abandoned, stage
from auditor.store.tables import (
    EVALUATION,
    EVALUATION_TABLES,
    MANIFEST,
    PARQUET_OPTIONS,
    SANDBOX_CONFIG,
    SNAPSHOT,
    SNAPSHOT_TABLES,
    file_columns,
    path_column,
    schema_sql,
)


def start_evaluation(database: Path) -> Staged:
    """Claim an evaluation id in the lake of `database` before the rules run, so that the evaluation's spill
    folder (`Staged.spill`) lives in the lake, on its disk, and goes with the claim if the process dies.
    Never makes a database: there is nothing to evaluate without one."""
    if not Path(database).is_file():
        raise StoreError(f"{database}: no snapshot database yet (run `auditor snapshot` first)")
    lake = open_for_writing(database)
    clean_abandoned(lake)
    return stage(lake, EVALUATION)


def write_evaluation(database: Path, insert: Callable[[duckdb.DuckDBPyConnection, int], None],
                     memory_limit: str = "1GB", staged: Staged | None = None) -> int:
    """Store one evaluation in the lake of `database`: `insert(con, evaluation_id)` fills the evaluation
    tables of `con`. Returns the evaluation id (`staged`'s, when start_evaluation claimed it)."""
    if staged is not None:
        return write_to_lake(staged.lake, EVALUATION, insert, memory_limit, staged)
    return write_evaluation_to_lake(open_for_writing(database), insert, memory_limit)


def write_evaluation_to_lake(lake: Path, insert: Callable[[duckdb.DuckDBPyConnection, int], None],
                             memory_limit: str = "1GB") -> int:
    """One evaluation into `lake`: `insert` fills the tables of a DuckDB of its own, each evaluation table is
    written once as zstd Parquet, and the `evaluations` file, moved last, commits it."""
    return write_to_lake(lake, EVALUATION, insert, memory_limit)


def write_to_lake(lake: Path, kind: str, fill: Callable[[duckdb.DuckDBPyConnection, int], None],
                  memory_limit: str, staged: Staged | None = None) -> int:
    """Claim an id (or take `staged`'s), let `fill` put its rows into a working DuckDB, write each table of
    `kind` as one Parquet file under staging, and commit; on any failure nothing of it stays in the lake."""
    if staged is None:
        clean_abandoned(lake)
        staged = stage(lake, kind)
    try:
        with _working_database(staged, memory_limit) as con:
            fill(con, staged.item_id)
            for table in SNAPSHOT_TABLES if kind == SNAPSHOT else EVALUATION_TABLES:
                write_partition(con, staged, table)
        staged.commit()
    except duckdb.Error as exc:
        staged.abandon()
        raise StoreError(f"{lake}: {kind} not written: {str(exc).splitlines()[0]}") from None
    except BaseException:
        staged.abandon()
        raise
    return staged.item_id


@contextmanager
def _working_database(staged: Staged, memory_limit: str):
    """An in-memory DuckDB with the documented tables, for one write to the lake; it spills into the write's
    staging folder, which goes with it."""
    spill = staged.spill
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        _session(con, memory_limit)
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute(schema_sql())
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def write_partition(con, staged: Staged, table: str) -> None:
    """`table`'s rows of the staged id, as one zstd Parquet file in the staging folder; none for a table
    without rows (its schema file keeps its glob matching), the manifest always. `table` may also be a view
    a writer made in its place (over rows it holds as Arrow): each column is cast to its documented type."""
    from_path, key = path_column(table)
    where = f"{sql_ident(from_path)} = {int(staged.item_id)}"
    if table != MANIFEST[staged.kind] and not con.execute(f"SELECT count(*) FROM {sql_ident(table)} WHERE {where}"
                                                          ).fetchall()[0][0]:
        return
    columns = ", ".join(f"CAST({sql_ident(name)} AS {kind}) AS {sql_ident(name)}"
                        for name, kind in file_columns(table))
    con.execute(f"COPY (SELECT {columns} FROM {sql_ident(table)} WHERE {where}) TO "
                f"{sql_literal(str(staged.file(table)))} ({PARQUET_OPTIONS})")


def _session(con, memory_limit: str) -> None:
    con.execute("SET TimeZone = 'UTC'")  # timestamps with an offset land in UTC
    con.execute("SET preserve_insertion_order = false")  # lets large inserts stream
    con.execute("SET memory_limit = ?", [memory_limit])
