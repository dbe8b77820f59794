"""Read-only SQL for auditors, on the published copy of the snapshot database."""

from __future__ import annotations

from pathlib import Path

import duckdb

from auditor.errors import QueryError
from auditor.store.database import open_reader

# Statement types that only read. Everything else is refused before it runs; the connection is
# read-only with file access disabled as well, so a statement type missed here still cannot write.
READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "VARIABLE_SET"}


def run_read_only(database: Path, query: str) -> tuple[list[str], list[tuple]]:
    """Run `query` on the published copy and return (column names, rows) of its last statement."""
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
            kind = statement.type.name
            if kind not in READ_STATEMENTS:
                raise QueryError(f"auditor sql is read-only: {kind} statements are refused")
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
