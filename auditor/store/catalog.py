"""The catalog: a small DuckDB file of views over the lake, the file auditors open (docs/schema.md).

It holds no row of any snapshot. Each documented table is a view over its Parquet files by absolute glob
(`read_parquet('<lake>/servers/*/*.parquet', hive_partitioning = true)`), which finds partitions added
after the view was made, at query time, in connections already open. So the file never changes when a
snapshot or an evaluation is written or pruned, and any number of readers may keep it open while writers
go on. It is rewritten only when this auditor's schema or the lake's path changes: as a new file renamed
over the old one, so a reader that has it open keeps reading the old one until it reopens.

What is visible: a snapshot table's view shows only ids present in `snapshots`, whose file every write
moves into place last (auditor/store/lake.py); an evaluation table's view only ids in `evaluations`, and
an evaluation only when its snapshot is visible. Partitions a dead writer left behind are never seen.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import duckdb

from auditor.sqltext import sql_ident, sql_literal
from auditor.errors import StoreError
from auditor.store.changes import changes_sql
from auditor.store.helpers import helpers_sql
from auditor.store.lake import schema_file, table_glob
from auditor.store.tables import (
    EVALUATION_TABLES,
    KIND_OF,
    MANIFEST,
    PARQUET_OPTIONS,
    PARTITION_KEY,
    SANDBOX_CONFIG,
    SNAPSHOT_TABLES,
    file_columns,
    latest_views_sql,
    relation_sql,
    schema_sql,
)

CATALOG_VERSION = "3"  # 1-2: the DuckDB store of 0.1.0, rows inside the file; 3: views over the lake
STORAGE_VERSION = "v1.4.0"  # the catalog opens in DuckDB 1.4 and 1.5 too (they cannot read 2.0's default)


def catalog_sql(lake: Path) -> str:
    """Every view and macro the catalog holds, over the lake at `lake` (an absolute path): the documented
    tables, the `latest_*` views, `changes()` with `latest_changes` (auditor/store/changes.py), and the
    helpers rules use (auditor/store/helpers.py)."""
    views = []
    for table in SNAPSHOT_TABLES + EVALUATION_TABLES:
        body = relation_sql(table, [table_glob(lake, table)])
        kind = KIND_OF[table]
        if table == "snapshots":
            condition = None
        elif table == "evaluations":
            condition = "snapshot_id IN (SELECT id FROM snapshots)"
        else:
            condition = f"{PARTITION_KEY[kind]} IN (SELECT id FROM {MANIFEST[kind]})"
        where = f" WHERE {condition}" if condition else ""
        views.append(f"CREATE OR REPLACE VIEW {sql_ident(table)} AS SELECT * FROM ({body}){where};")
    return "\n".join(views) + "\n" + latest_views_sql() + changes_sql() + helpers_sql(per_snapshot=False)


def prepare_lake(lake: Path) -> None:
    """Make the lake's folders and each table's `_schema.parquet` (no rows, every column), so that a glob over
    a table matches before its first write. A schema file is replaced, atomically, only when its columns
    are not those this auditor writes."""
    lake.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute(schema_sql())
        for table in SNAPSHOT_TABLES + EVALUATION_TABLES:
            path = schema_file(lake, table)
            if path.is_file() and _parquet_columns(con, path) == file_columns(table):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            columns = ", ".join(sql_ident(name) for name, _ in file_columns(table))
            con.execute(f"COPY (SELECT {columns} FROM {sql_ident(table)} LIMIT 0) TO {sql_literal(str(tmp))} "
                        f"({PARQUET_OPTIONS})")
            os.replace(tmp, path)
    finally:
        con.close()


def _parquet_columns(con, path: Path) -> list[tuple[str, str]]:
    return [row[:2] for row in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))}, hive_partitioning = false)").fetchall()]


def catalog_state(database: Path) -> dict[str, str]:
    """What `database` records about itself (`schema_version`, `lake`, `definition`), or {} when it is no
    catalog of ours."""
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute("ATTACH ? AS existing (READ_ONLY)", [str(database)])
        return dict(con.execute("SELECT key, value FROM existing.schema_info").fetchall())
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreError(f"{database}: another process holds it open for writing; auditor needs it open "
                             "read-only only (open it with read_only=True, or `duckdb -readonly`)") from None
        return {}
    except duckdb.Error:
        return {}
    finally:
        con.close()


def ensure_catalog(database: Path, lake: Path, state: dict[str, str] | None = None) -> None:
    """Make `database` the catalog of `lake`, unless it is already: the hash of its SQL (which holds the
    lake's absolute path) decides, so a new auditor's views or a moved lake rebuild it, and nothing else
    does. Built as a new file and renamed over the old one. `state`: what catalog_state read, when the caller
    has it already."""
    lake = lake.resolve()
    definition = hashlib.sha256(catalog_sql(lake).encode()).hexdigest()
    if database.is_file() and (catalog_state(database) if state is None else state).get("definition") == definition:
        return
    try:  # a table this auditor added has no file in an older lake yet: its view would not bind
        prepare_lake(lake)
    except (duckdb.Error, OSError) as exc:
        raise StoreError(f"{lake}: cannot add the new tables' schema files: {str(exc).splitlines()[0]}") from None
    build_catalog(database, lake, definition)


def build_catalog(database: Path, lake: Path, definition: str) -> None:
    tmp = database.with_name(f".{database.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(tmp), config={**SANDBOX_CONFIG, "storage_compatibility_version": STORAGE_VERSION})
        try:
            con.execute("CREATE TABLE schema_info (key VARCHAR PRIMARY KEY, value VARCHAR)")
            con.execute("INSERT INTO schema_info VALUES ('schema_version', ?), ('lake', ?), ('definition', ?)",
                        [CATALOG_VERSION, str(lake), definition])
            # Each view is bound as it is made, reading the footers of its files and of the manifest's: the
            # cache reads each file once (a third less time on a year of snapshots).
            con.execute("SET parquet_metadata_cache = true")
            con.execute(catalog_sql(lake))
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, database)
    except (duckdb.Error, OSError) as exc:
        raise StoreError(f"{database}: cannot write the catalog: {str(exc).splitlines()[0]}") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def open_catalog(database: Path, lake: Path, sandboxed: bool = True, spill: tuple[str, Path] | None = None):
    """A read-only connection to the catalog, in a DuckDB instance of its own. `sandboxed` (every reader but
    the exports): it may read the lake's table folders and nothing else on disk, and its configuration is
    locked, so no query can undo that (docs/cli.md, `auditor sql`). `spill`: (memory limit, folder) for a
    reader whose own work is large, which then spills into that folder rather than pass the limit."""
    if not database.is_file():
        raise StoreError(f"{database}: no catalog yet (run `auditor snapshot` first)")
    try:
        con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    except duckdb.Error as exc:
        raise StoreError(f"{database}: cannot open: {exc}") from None
    try:
        con.execute("SET enable_progress_bar = false")
        if spill:
            con.execute("SET memory_limit = ?", [spill[0]])
            con.execute("SET temp_directory = ?", [str(spill[1])])
        con.execute("ATTACH ? AS catalog (READ_ONLY)", [str(database)])
        con.execute("USE catalog")
        if sandboxed:  # the tables' folders only: not _staging (a write in progress) nor _ids
            con.execute("SET allowed_directories = ?", [[str(lake.resolve() / table) + os.sep
                                                          for table in SNAPSHOT_TABLES + EVALUATION_TABLES]])
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"{database}: cannot open: {exc}") from None
    return con

