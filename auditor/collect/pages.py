"""What a fetched page holds, read without a Python object per record: its records' count, ids and next
link (DuckDB's JSON reader, or Python for a small page), and the page as it may be spooled, its secrets
removed. auditor/collect/paging.py fetches the pages and calls these.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import orjson

from auditor.redact import CANDIDATE_PATTERN, DROPPED_KEYS, RecordSecrets
from auditor.sqltext import sql_ident, sql_literal

if TYPE_CHECKING:
    from auditor.collect.paging import Listing


_DROP_SECRET_KEYS = json.dumps({key: None for key in sorted(DROPPED_KEYS)})


def without_secrets(body: bytes, key: str, secrets: RecordSecrets) -> bytes:
    """A page as it may be written to disk: only its records under `key` (the store reads nothing else), without
    secrets. A record that is not an object becomes `null` (it has no id: the store counts it and stores
    nothing of it). DuckDB drops the keys that carry secrets (all copies of a repeated key; records whose own
    keys are free-form keep them, masked, below) and finds the few records that may still hold one (a
    credential-like key or value anywhere in them); those go through auditor.redact in Python.
    The page has already passed inspect_page. Raises ValueError for a record Python cannot read."""
    record = "x" if secrets.record_is_mapping else "json_merge_patch(x, $drop)"
    records, suspects = _duckdb().execute(
        f"SELECT r, list_transform(r, lambda t: regexp_matches(t, $pattern)) FROM ("
        f"  SELECT list_transform(json_transform($body::VARCHAR, $shape).{sql_ident(key)},"
        f"    lambda x: coalesce(CASE WHEN json_type(x) = 'OBJECT' THEN ({record})::VARCHAR END, 'null')) AS r)",
        {"body": body.decode("utf-8"), "shape": orjson.dumps({key: ["JSON"]}).decode(),
         "pattern": CANDIDATE_PATTERN, **({} if secrets.record_is_mapping else {"drop": _DROP_SECRET_KEYS})},
    ).fetchone()
    for position, suspect in enumerate(suspects):
        if suspect:
            records[position] = _cleaned(records[position], secrets, position)
    return b"".join((b"{", orjson.dumps(key), b":[", ",".join(records).encode("utf-8"), b"]}"))


def small_without_secrets(body: bytes, key: str, secrets: RecordSecrets) -> bytes | None:
    """without_secrets for a small page (one per user), in Python: every record cleaned by `secrets`. None
    when the page is large or Python cannot read it: without_secrets then does."""
    if len(body) > _SMALL_PAGE:
        return None
    try:
        records = orjson.loads(body)[key]
        clean = [orjson.dumps(secrets.clean(r)) if isinstance(r, dict) else b"null" for r in records]
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError, KeyError, RecursionError):
        return None
    return b"".join((b"{", orjson.dumps(key), b":[", b",".join(clean), b"]}"))


def _cleaned(text: str, secrets: RecordSecrets, position: int) -> str:
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError:  # JSON that DuckDB reads and orjson refuses: NaN, Infinity
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):  # inf, nan, nesting deeper than Python's recursion limit
            raise ValueError(f"record {position + 1} of the page could not be read to remove its secrets; "
                             "the page was not kept") from None
    try:
        clean = secrets.clean(record)
    except RecursionError:  # nested deeper than the cleaning may follow
        raise ValueError(f"record {position + 1} of the page is nested too deeply to remove its secrets; "
                         "the page was not kept") from None
    try:
        return orjson.dumps(clean).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(clean, ensure_ascii=False, separators=(",", ":"))


@dataclass
class PageInfo:
    count: int
    links: list | None
    next_href: str | None
    truncated: bool
    ids: list = field(default_factory=list)  # each record's id as JSON text (None when it has none)


_local = threading.local()


def _duckdb():
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(config={"autoload_known_extensions": False,
                                                  "autoinstall_known_extensions": False})
    return con


def records_with_field(listing: Listing, field_name: str) -> tuple[int, int]:
    """How many records the listing holds, and how many of them have the top-level field `field_name` (of
    any value, null included). One pass over the spooled pages."""
    if not listing.spools:
        return 0, 0
    schema = sql_literal(orjson.dumps({listing.key: ["JSON"]}).decode())
    where = sql_literal("$." + orjson.dumps(field_name).decode())
    return _duckdb().execute(
        f"SELECT count(*), count(*) FILTER (WHERE json_exists(r, {where})) "
        f"FROM (SELECT unnest(json_transform(body, {schema}).\"{listing.key}\") AS r FROM {listing.pages_sql()})"
    ).fetchall()[0]


def embedded_lists(listing: Listing, field_name: str) -> tuple[int, int]:
    """For records that embed a list under `field_name` (groups and their rules): how many records lack
    that list, and how many entries the lists hold in all. One pass over the spooled pages."""
    if not listing.spools:
        return 0, 0
    schema = sql_literal(orjson.dumps({listing.key: [{field_name: "JSON"}]}).decode())
    lacking, entries = _duckdb().execute(
        f"SELECT count(*) FILTER (WHERE json_type(r.\"{field_name}\") IS DISTINCT FROM 'ARRAY'), "
        f"coalesce(sum(json_array_length(r.\"{field_name}\")), 0) "
        f"FROM (SELECT unnest(json_transform(body, {schema}).\"{listing.key}\") AS r FROM {listing.pages_sql()})"
    ).fetchall()[0]
    return lacking, entries


_SMALL_PAGE = 64 * 1024


def as_page(body: bytes, key: str, one_record: bool) -> bytes:
    """An answer that is no page as a page listing its records under `key`: one record (`{}`: none), or a
    bare JSON list (an empty answer: none). Parsed and written anew, so that the page holds those records
    and nothing else (no second copy of `key` after them)."""
    if not one_record and not body.strip():
        return orjson.dumps({key: []})
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON in response: {str(exc).splitlines()[0]}") from None
    if one_record:
        if not isinstance(parsed, dict):
            raise ValueError("response is not a JSON object")
        return orjson.dumps({key: [parsed] if parsed else []})
    if not isinstance(parsed, list):
        raise ValueError("response is not a JSON list")
    return orjson.dumps({key: parsed})


def inspect_small(body: bytes, key: str, id_key: str) -> PageInfo | None:
    """inspect_page for a small unpaginated answer (one per user, say), read in Python: two DuckDB
    queries would cost more than the request. None when Python cannot read the page or it is not an object
    with a list under `key`: inspect_page then reads it, and words what is wrong. (The page is stored
    through DuckDB like any other, so a key given twice is settled there, as for every page.)"""
    if len(body) > _SMALL_PAGE:
        return None
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    records = page.get(key) if isinstance(page, dict) else None
    if not isinstance(records, list):
        return None
    ids = []
    for record in records:
        value = record.get(id_key) if isinstance(record, dict) else None
        ids.append(None if value is None else orjson.dumps(value).decode())
    return PageInfo(count=len(records), links=None, next_href=None, truncated=page.get("truncated") is True,
                    ids=ids)


def inspect_page(body: bytes, key: str, links_key: str | None, id_key: str = "id") -> PageInfo:
    """Read a page's records (their count and ids) and links with DuckDB's JSON reader: two parses of the
    page, no Python object per record.

    Raises ValueError for a body that is not JSON, or has no list under `key`.
    """
    con = _duckdb()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"response is not UTF-8: {exc}") from None
    # A list of records under `key` becomes the list of their ids; anything else under `key` becomes NULL.
    shape = orjson.dumps({key: [{id_key: "JSON"}]}).decode()
    paths = [f"$.{links_key or '__none__'}", "$.next", "$.truncated"]
    try:
        ids, (links, next_href, truncated) = con.execute(
            f"SELECT list_transform(json_transform(b, ?).{sql_ident(key)}, lambda x: x.{sql_ident(id_key)}), "
            "json_extract(b, ?) FROM (SELECT ?::VARCHAR AS b)",
            [shape, paths, text],
        ).fetchall()[0]
    except duckdb.Error as exc:
        # DuckDB quotes the start of the input after "Input:"; a body may hold secrets, so cut it there.
        reason = str(exc).splitlines()[0].split(" Input:")[0]
        raise ValueError(f"malformed JSON in response: {reason}") from None
    if ids is None:
        raise ValueError(f"response has no list under {key!r}")
    return PageInfo(
        count=len(ids),
        links=orjson.loads(links) if links else None,
        next_href=orjson.loads(next_href) if next_href else None,
        truncated=truncated == "true",
        ids=ids,
    )


def small_records(listing) -> list[dict]:
    """The records of a short listing (volume types, images), read from its spooled pages."""
    records = []
    for path in listing.spools:
        for line in path.read_bytes().splitlines():
            page = orjson.loads(line)
            records.extend(r for r in page.get(listing.key) or [] if isinstance(r, dict))
    return records
