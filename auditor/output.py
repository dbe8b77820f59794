"""Rows as text for people (aligned table) and for programs (CSV, JSON)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from decimal import Decimal

import orjson


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


# A cell a spreadsheet would run as a formula: =, +, -, @ or their fullwidth forms, after any spaces, or a
# leading tab or carriage return (OWASP's CSV injection advice). FORMULA_RE2 is the same test for DuckDB.
_FORMULA = re.compile("^[\\s\u00a0\u3000]*[=+\\-@\uff1d\uff0b\uff0d\uff20]|^[\t\r]")
FORMULA_RE2 = "^[\\s\\x{00A0}\\x{3000}]*[=+\\-@\\x{FF1D}\\x{FF0B}\\x{FF0D}\\x{FF20}]|^[\\t\\r]"


def spreadsheet_safe(value: str) -> str:
    """`value` with a leading `'` when a spreadsheet would run it as a formula."""
    return "'" + value if _FORMULA.search(value) else value


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """Rows as an aligned text table, CSV or a JSON array of objects."""
    if fmt == "json":
        records = [{c: _plain(v) for c, v in zip(columns, row)} for row in rows]
        return orjson.dumps(records, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else spreadsheet_safe(_cell(v)) if isinstance(v, str) else _cell(v)
                             for v in row])
        return buffer.getvalue()
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(_clip(c, w).ljust(w) for c, w in zip(row, widths)).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    plain = _plain(value)
    if isinstance(plain, (list, dict)):
        return terminal_safe(orjson.dumps(plain, default=str).decode())
    return terminal_safe(str(plain).replace("\n", " "))


# Control characters (escape sequences could repaint or retitle a terminal) and bidi overrides (which
# could make a name read as another): names come from tenants.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with control and bidi-override characters shown as escapes, for a terminal."""
    return _UNSAFE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def write_lines(cursor, handle, batch: int = 10_000) -> int:
    """Write a query's one-column text rows (JSON documents built in SQL) to a binary file, one per line,
    a batch at a time so memory does not grow with the rows; return how many."""
    count = 0
    while rows := cursor.fetchmany(batch):
        handle.write(b"".join(row[0].encode() + b"\n" for row in rows))
        count += len(rows)
    return count
