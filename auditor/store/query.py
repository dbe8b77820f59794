"""Read-only SQL for auditors, on the catalog of the snapshot database (its views read the lake)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from auditor.errors import QueryError
from auditor.store.database import open_reader

# Statement types that only read. Everything else (LOAD, INSTALL, ATTACH, COPY, SET ...) is refused before it
# runs; the connection is read-only with file access disabled as well, so a statement type missed here still
# cannot write. EXPLAIN is judged by the statement it explains: EXPLAIN ANALYZE runs it.
READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "VARIABLE_SET"}
# PRAGMAs that only describe the database; any other (import_database, ...) is refused.
READ_PRAGMAS = frozenset({"table_info", "show", "show_tables", "show_tables_expanded", "show_databases",
                          "database_list", "database_size", "storage_info", "functions", "version", "platform",
                          "collations", "user_agent", "metadata_info"})
_PRAGMA = re.compile(r"^\s*PRAGMA\s+(\w+)", re.IGNORECASE)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)


def run_read_only(database: Path, query: str) -> tuple[list[str], list[tuple]]:
    """Run `query`, one read-only statement, on the catalog; return (column names, rows)."""
    if not query.strip():
        raise QueryError("empty query")
    con = open_reader(database)
    try:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryError(f"cannot parse the query: {exc}") from None
        if not statements:
            raise QueryError("empty query")
        for statement in statements:
            kind = _statement_kind(con, statement)
            if kind not in READ_STATEMENTS:
                raise QueryError(f"auditor sql is read-only: {kind} statements are refused")
        if len(statements) > 1:  # running only one of them would silently drop the others
            raise QueryError(f"auditor sql runs one statement at a time; the query holds {len(statements)} "
                             "(run each on its own)")
        cursor = None
        try:
            for statement in statements:
                cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchall() if cursor.description else []
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from None
        return columns, rows
    finally:
        con.close()


def _statement_kind(con, statement) -> str:
    """The statement's type; for EXPLAIN, the type of the statement it explains (EXPLAIN ANALYZE runs it)."""
    kind = statement.type.name
    while kind == "EXPLAIN":
        inner = _EXPLAIN.sub("", statement.query, count=1)
        try:
            [statement] = con.extract_statements(inner)
        except (duckdb.Error, ValueError):
            return "EXPLAIN of an unreadable"
        kind = statement.type.name
    if kind == "PRAGMA":  # IMPORT DATABASE parses as a PRAGMA, and runs the COPY statements of a folder
        match = _PRAGMA.match(statement.query)
        if not match or match.group(1).lower() not in READ_PRAGMAS:
            return "PRAGMA (other than " + ", ".join(sorted(READ_PRAGMAS)) + ")"
    return kind
