"""Raw JSON paging through openstacksdk's authenticated proxies.

openstacksdk does auth, the catalog, version discovery, microversions and retries (keystoneauth honours
Retry-After on 429/503). We page ourselves because building one SDK `Resource` per item costs about 4 ms,
and we do not even build Python dicts: each page is kept as raw JSON (in an Arrow buffer) and DuckDB
normalizes all pages in bulk when the snapshot is written (auditor/store/load.py). Python only looks at
each page once, through DuckDB's JSON reader, for its item count and next link. Each listing records every
failure, so a partial listing is never mistaken for a complete one.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import orjson
from keystoneauth1 import exceptions as ksa_exceptions

from auditor.errors import CollectionCancelled

RETRIABLE_STATUS_CODES = [429, 500, 502, 503, 504]


@dataclass
class CollectionFailure:
    resource_type: str
    project_id: str | None
    http_status: int | None
    url: str
    message: str


@dataclass
class Listing:
    """What one resource listing fetched: raw pages (JSON bodies, records under `key`) in spool files."""

    resource_type: str
    key: str
    spools: list[Path] = field(default_factory=list)
    count: int = 0
    requests: int = 0
    seconds: float = 0.0
    complete: bool = True
    failures: list[CollectionFailure] = field(default_factory=list)
    units: int = 1  # scope units merged into this listing (duplicates possible when > 1)
    embedded: bool = False  # the records came embedded in another listing (rules in their groups)
    largest_page: int = 0  # bytes; DuckDB's JSON reader must be told the largest object it will meet

    def fail(self, failure: CollectionFailure) -> None:
        self.complete = False
        self.failures.append(failure)

    def add_page(self, body: bytes, count: int, spool_dir: Path) -> None:
        if not self.spools:
            self.spools.append(spool_dir / f"{self.resource_type}-{uuid.uuid4().hex}.json")
        with open(self.spools[-1], "ab") as spool:
            spool.write(body)
            spool.write(b"\n")
        self.count += count
        self.largest_page = max(self.largest_page, len(body))

    def pages_sql(self) -> str:
        """A FROM clause giving one row per page, its JSON body in column `body`."""
        files = ", ".join(sql_literal(str(path)) for path in self.spools)
        # Its read buffers grow with maximum_object_size, so ask for no more than these pages need.
        limit = max(16 * 2**20, 2 * self.largest_page)
        return (f"(SELECT json AS body FROM read_json_objects([{files}], format = 'unstructured', "
                f"maximum_object_size = {limit}))")


@dataclass
class PageInfo:
    count: int
    links: list | None
    next_href: str | None
    truncated: bool


class PageFailed(Exception):
    def __init__(self, failure: CollectionFailure):
        super().__init__(failure.message)
        self.failure = failure


_local = threading.local()


def _duckdb():
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(config={"autoload_known_extensions": False,
                                                  "autoinstall_known_extensions": False})
    return con


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal, for the places DuckDB wants a constant (file lists, JSON shapes)."""
    return "'" + text.replace("'", "''") + "'"


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


def inspect_page(body: bytes, key: str, links_key: str | None) -> PageInfo:
    """Read a page's item count and links with DuckDB's JSON reader (no Python object per item).

    Raises ValueError for a body that is not JSON, or has no list under `key`.
    """
    con = _duckdb()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"response is not UTF-8: {exc}") from None
    items_path = f'$."{key}"'
    paths = [f"$.{links_key or '__none__'}", "$.next", "$.truncated"]
    try:
        # Each JSON function parses the whole page; two calls cover a full page, a third only an empty one.
        count, (links, next_href, truncated) = con.execute(
            "SELECT json_array_length(b, ?), json_extract(b, ?) FROM (SELECT ?::VARCHAR AS b)",
            [items_path, paths, text],
        ).fetchall()[0]
        # json_array_length is 0 for an object or a string too: only a real list may be empty
        if count == 0 and con.execute("SELECT json_type(?::VARCHAR, ?)", [text, items_path]).fetchall()[0][0] != "ARRAY":
            count = None
    except duckdb.Error as exc:
        # DuckDB quotes the start of the input after "Input:"; a body may hold secrets, so cut it there.
        reason = str(exc).splitlines()[0].split(" Input:")[0]
        raise ValueError(f"malformed JSON in response: {reason}") from None
    if count is None:
        raise ValueError(f"response has no list under {key!r}")
    return PageInfo(
        count=count,
        links=orjson.loads(links) if links else None,
        next_href=orjson.loads(next_href) if next_href else None,
        truncated=truncated == "true",
    )


@dataclass
class Pager:
    """Fetch pages for one connection; shared by the listings of one scope unit (cloud or project)."""

    retries: int
    stop: threading.Event
    spool_dir: Path
    project_id: str | None = None  # set when the connection is scoped to one project only

    def get_page(self, proxy, path: str, params: dict, listing: Listing, links_key: str | None = None,
                 **kwargs) -> PageInfo:
        """GET one page, check it and keep it; raises PageFailed (recorded by the caller) or
        CollectionCancelled."""
        if self.stop.is_set():
            raise CollectionCancelled("collection stopped before it finished; nothing was written")
        listing.requests += 1
        try:
            response = proxy.get(
                path,
                params=params,
                raise_exc=False,
                connect_retries=self.retries,
                status_code_retries=self.retries,
                retriable_status_codes=RETRIABLE_STATUS_CODES,
                **kwargs,
            )
        except ksa_exceptions.ClientException as exc:
            raise PageFailed(self._failure(listing, None, path, f"request failed: {exc}")) from None
        if response.status_code >= 400:
            raise PageFailed(self._failure(listing, response.status_code, path, _error_message(response)))
        body = response.content
        try:
            info = inspect_page(body, listing.key, links_key)
        except ValueError as exc:
            raise PageFailed(self._failure(listing, response.status_code, path, str(exc))) from None
        listing.add_page(body, info.count, self.spool_dir)
        return info

    def _failure(self, listing, status, path, message) -> CollectionFailure:
        return CollectionFailure(listing.resource_type, self.project_id, status, path, message)

    def list_marker_paged(self, proxy, path, params, listing: Listing, links_key, **kwargs) -> Listing:
        """Nova and Neutron: `limit`/`marker`, with a `<key>_links` next link while pages are full."""
        started = time.monotonic()
        query = dict(params)
        seen_markers = set()
        try:
            while True:
                info = self.get_page(proxy, path, query, listing, links_key, **kwargs)
                next_query = _next_query(info.links)
                if not next_query or not info.count:
                    break
                marker = next_query.get("marker")
                if marker in seen_markers:  # a service that loops would otherwise never end
                    raise PageFailed(self._failure(listing, None, path, f"pagination loops at marker {marker}"))
                seen_markers.add(marker)
                query = {**params, **next_query}
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds += time.monotonic() - started
        return listing

    def list_glance(self, proxy, params, listing: Listing) -> Listing:
        """Glance v2: `limit`/`marker` with a relative `next` link (`/v2/images?...`)."""
        started = time.monotonic()
        query = dict(params)
        try:
            while True:
                info = self.get_page(proxy, "/images", query, listing)
                if not info.next_href or not info.count:
                    break
                query = {k: v[0] for k, v in parse_qs(urlsplit(info.next_href).query).items()}
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds += time.monotonic() - started
        return listing

    def list_offset_paged(self, proxy, path, params, listing: Listing, page_size, **kwargs) -> Listing:
        """Nova server groups: `limit`/`offset`, no links; a short page is the last."""
        started = time.monotonic()
        offset = 0
        try:
            while True:
                query = {**params, "limit": page_size, "offset": offset}
                info = self.get_page(proxy, path, query, listing, **kwargs)
                if info.count < page_size:
                    break
                offset += info.count
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds += time.monotonic() - started
        return listing

    def get_single(self, proxy, path, params, listing: Listing, **kwargs) -> tuple[Listing, PageInfo | None]:
        """An unpaginated listing (Keystone projects, Nova availability zones)."""
        started = time.monotonic()
        info = None
        try:
            info = self.get_page(proxy, path, params, listing, **kwargs)
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds += time.monotonic() - started
        return listing, info


def _next_query(links) -> dict | None:
    """The query of a `rel: next` link. Only the query is used: services behind proxies often put an
    internal host or scheme in their links, so the path stays the one we asked for."""
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return {k: v[0] for k, v in parse_qs(urlsplit(link["href"]).query).items()}
    return None


def _error_message(response) -> str:
    """The service's own message from an error body, else the status line; never the request headers."""
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict):
            for value in body.values():
                if isinstance(value, dict) and value.get("message"):
                    return f"HTTP {response.status_code}: {value['message']}"
    except orjson.JSONDecodeError:
        pass
    text = response.content[:200].decode("utf-8", "replace").strip()
    return f"HTTP {response.status_code}: {text or response.reason}"
