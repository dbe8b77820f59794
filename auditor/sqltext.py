"""SQL text that DuckDB must be given as text: quoted identifiers, and literals where it wants a constant."""


def sql_ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal, for the places DuckDB wants a constant (file lists, JSON shapes)."""
    return "'" + text.replace("'", "''") + "'"
