"""Raw JSON paging through openstacksdk's authenticated proxies.

openstacksdk does auth, the catalog, version discovery and microversions; every request, ours and the SDK's,
is retried by the transport (auditor/collect/retry.py). We page ourselves because building one SDK `Resource`
per item costs about 4 ms, and we do not even build Python dicts: each page is kept as raw JSON in a spool
file and DuckDB normalizes all pages in bulk when the snapshot is written (auditor/store/load.py). Python
looks at each page once, through DuckDB's JSON reader, for its item count, its record ids and its next link.
Each listing records every failure, so a partial listing is never mistaken for a complete one.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import openstack.exceptions
import orjson
import requests
import urllib3
from keystoneauth1 import exceptions as ksa_exceptions

from auditor.collect.retry import (
    RETRIABLE_STATUS_CODES,
    DeadlineReached,
    RetryPolicy,
    network_reason,
    status_text,
)
from auditor.collect.direct import DirectRoute, Shortcut
from auditor.errors import CollectionCancelled
from auditor.logs import mask
from auditor.collect.pages import (
    PageInfo,
    as_page,
    inspect_small,
    small_without_secrets,
    inspect_page,
    without_secrets,
)
from auditor.redact import SECRETS_BY_LISTING, RecordSecrets
from auditor.sqltext import sql_literal

log = logging.getLogger(__name__)


@dataclass
class CollectionFailure:
    """One failed request or listing, as stored in `collection_errors`: its URL and message are masked here,
    once, so no sink (the store, a summary, a report, the service's run record) can get them unmasked."""

    resource_type: str
    project_id: str | None
    http_status: int | None
    url: str
    message: str

    def __post_init__(self) -> None:
        self.url = mask(self.url) if self.url else self.url
        self.message = mask(self.message) if self.message else self.message


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
    pages: int = 0
    id_key: str = "id"  # the field that identifies a record (availability zones: zoneName)
    seen_ids: set = field(default_factory=set, repr=False)  # while paging: ids of the records kept so far

    def fail(self, failure: CollectionFailure) -> None:
        self.complete = False
        self.failures.append(failure)

    def add_page(self, body: bytes, count: int, spool_dir: Path, context: dict | None = None) -> None:
        """Spool a page; the only way a page reaches the disk, so secrets are removed here. `context` (what
        the request asked for, such as the user whose application credentials these are) is stored beside
        the page's records under `auditor_context`, never inside them."""
        secrets = SECRETS_BY_LISTING.get(self.resource_type)
        if secrets is not None or context is not None:
            # rebuilt from the records alone: nothing else of the cloud's page is kept
            cleaned = small_without_secrets(body, self.key, secrets or RecordSecrets()) if context else None
            body = cleaned or without_secrets(body, self.key, secrets or RecordSecrets())
        if context is not None:
            body = body[:-1] + b',"auditor_context":' + orjson.dumps(context) + b"}"
        if not self.spools:
            self.spools.append(spool_dir / f"{self.resource_type}-{uuid.uuid4().hex}.json")
        with open(self.spools[-1], "ab") as spool:
            spool.write(body)
            spool.write(b"\n")
        self.count += count
        self.pages += 1
        self.largest_page = max(self.largest_page, len(body))

    def pages_sql(self) -> str:
        """A FROM clause giving one row per page, its JSON body in column `body`."""
        files = ", ".join(sql_literal(str(path)) for path in self.spools)
        # Its read buffers grow with maximum_object_size, so ask for no more than these pages need.
        limit = max(16 * 2**20, 2 * self.largest_page)
        return (f"(SELECT json AS body FROM read_json_objects([{files}], format = 'unstructured', "
                f"maximum_object_size = {limit}))")


class PageFailed(Exception):
    def __init__(self, failure: CollectionFailure):
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class Pager:
    """Fetch pages for one connection; shared by the listings of one scope unit (cloud or project).

    Every paginator stops, with the cause recorded and the listing partial, on a next link that repeats a
    marker, on a page holding records already listed (a repeated page, or a service ignoring its offset),
    after `max_pages` pages, and at the snapshot's deadline; no response may be larger than
    `max_response_bytes`. So a misbehaving API can make a snapshot partial, never endless or wrong."""

    policy: RetryPolicy
    spool_dir: Path
    max_pages: int = 10_000
    max_response_bytes: int = 64 * 2**20
    project_id: str | None = None  # set when the connection is scoped to one project only

    @property
    def stop(self) -> threading.Event:
        return self.policy.stop

    def for_project(self, project_id: str) -> "Pager":
        return dataclasses.replace(self, project_id=project_id)

    def fetch(self, proxy, path: str, params: dict, listing: Listing, links_key: str | None = None,
              small: bool = False, one_record: bool = False, bare_list: bool = False,
              shortcut: Shortcut | None = None, **kwargs) -> tuple[bytes, PageInfo]:
        """GET one page and check it; raises PageFailed (recorded by the caller) or CollectionCancelled.
        Transport failures are retried in the transport (auditor/collect/retry.py); a body that breaks off
        is retried here, with the same policy. With `one_record`, the answer is one object, not a list
        (a volume type's encryption; `{}` for none), and the page returned lists it under the listing's key;
        with `bare_list`, the answer is a JSON list itself (Swift's), or nothing at all (204). With a
        `shortcut`, the GET skips keystoneauth once keystoneauth has answered one (see Shortcut)."""
        attempt = 0
        while True:
            attempt += 1
            if self.stop.is_set():
                raise CollectionCancelled("collection stopped before it finished; nothing was written")
            self._check_deadline(listing, path)
            listing.requests += 1
            started = time.monotonic()
            try:
                response, asked = shortcut.get(path, params, self.policy.max_wait) if shortcut else (None, False)
                if response is None:
                    if asked:
                        listing.requests += 1  # refused (401) or redirected: keystoneauth knows what to do
                    response = proxy.get(path, params=params, raise_exc=False, connect_retries=0,
                                         status_code_retries=0, stream=True, log=False, **kwargs)
                    if shortcut is not None and not kwargs:
                        shortcut.learn(proxy, response, path, params)
            except DeadlineReached as exc:
                raise PageFailed(self._failure(listing, None, path, f"{exc}; stopped")) from None
            except (ksa_exceptions.ClientException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise PageFailed(self._failure(listing, None, path, _request_failed(exc, self.policy))) from None
            except openstack.exceptions.ServiceDisabledException:  # the catalog lacks it in this region
                raise PageFailed(self._failure(listing, None, path, f"no {proxy.service_type} endpoint in "
                                               "this region of the service catalog")) from None
            try:
                body = self._read_body(response, listing, path)
            except _BodyBroken as exc:
                if attempt > self.policy.retries:
                    raise PageFailed(self._failure(listing, response.status_code, path,
                                                   f"{exc} after {attempt} tries")) from None
                log.warning("GET %s: %s; trying again", mask(response.url), exc)
                self._wait(attempt, listing, path)
                continue
            finally:
                response.close()
            log.debug("GET %s %s %d bytes %.2fs", mask(response.url), response.status_code, len(body),
                      time.monotonic() - started)
            if response.status_code >= 400:
                message = _error_message(response.status_code, response.reason, body)
                if response.status_code in RETRIABLE_STATUS_CODES:
                    message += f" after {self.policy.tries} tries"
                raise PageFailed(self._failure(listing, response.status_code, path, message))
            try:
                if one_record or bare_list:
                    body = as_page(body, listing.key, one_record)
                info = (small and inspect_small(body, listing.key, listing.id_key)) or \
                    inspect_page(body, listing.key, links_key, listing.id_key)
            except ValueError as exc:
                raise PageFailed(self._failure(listing, response.status_code, path, str(exc))) from None
            return body, info

    def head(self, proxy, url: str, listing: Listing, direct: bool = True) -> tuple[int, dict]:
        """HEAD `url`: its status and headers. Raises PageFailed for no answer, CollectionCancelled when
        stopped; the transport retries as for GET, and the caller judges the status. It goes straight to
        the pool (auditor/collect/direct.py) where it can, unless `direct` is False."""
        if self.stop.is_set():
            raise CollectionCancelled("collection stopped before it finished; nothing was written")
        self._check_deadline(listing, url)
        listing.requests += 1
        try:
            route = DirectRoute.for_url(proxy, url) if direct else None
            if route is not None:
                response = route.send("HEAD", url, {"User-Agent": route.user_agent}, self.policy.max_wait)
                response.drain_conn()
                response.release_conn()
                if response.status != 401 and not 300 <= response.status < 400:
                    return response.status, dict(response.headers)  # repeated headers joined, as requests does
                if response.status == 401:
                    route.forget_token()
                listing.requests += 1  # a token that expired meanwhile, or a redirect: keystoneauth knows them
            response = proxy.head(url, raise_exc=False, connect_retries=0, status_code_retries=0, log=False)
        except DeadlineReached as exc:
            raise PageFailed(self._failure(listing, None, url, f"{exc}; stopped")) from None
        except (ksa_exceptions.ClientException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise PageFailed(self._failure(listing, None, url, _request_failed(exc, self.policy))) from None
        response.close()
        return response.status_code, response.headers

    def _read_body(self, response, listing: Listing, path: str) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PageFailed(self._failure(listing, response.status_code, path, _too_large(int(declared), limit)))
        chunks, size = [], 0
        ends = time.monotonic() + self.policy.max_wait  # the whole answer within the request timeout
        try:
            for chunk in response.iter_content(chunk_size=1 << 20):
                size += len(chunk)
                if size > limit:
                    raise PageFailed(self._failure(listing, response.status_code, path, _too_large(size, limit)))
                if time.monotonic() > ends:
                    raise _BodyBroken(f"the answer took longer than {self.policy.max_wait:g} s "
                                      "([collection] timeout)")
                chunks.append(chunk)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _BodyBroken(f"the answer broke off: {network_reason(exc)}") from None
        return b"".join(chunks)

    def _wait(self, attempt: int, listing: Listing, path: str) -> None:
        try:
            self.policy.wait(attempt)
        except DeadlineReached as exc:
            raise PageFailed(self._failure(listing, None, path, f"{exc}; stopped")) from None

    def _check_deadline(self, listing: Listing, path: str) -> None:
        try:
            self.policy.deadline.check()
        except DeadlineReached as exc:
            pages = f" after {listing.pages} pages" if listing.pages else ""
            raise PageFailed(self._failure(listing, None, path, f"{exc}; stopped{pages}")) from None

    def _failure(self, listing, status, path, message) -> CollectionFailure:
        return CollectionFailure(listing.resource_type, self.project_id, status, path, message)

    def _keep(self, listing: Listing, path: str, body: bytes, info: PageInfo, context: dict | None = None) -> None:
        """Spool a page once it is known to hold no record listed on an earlier page (a record repeated
        within one page is kept: the store stores it once and records the duplicate)."""
        ids = [i for i in info.ids if i is not None]
        repeated = [i for i in ids if i in listing.seen_ids]
        if repeated:
            raise PageFailed(self._failure(
                listing, None, path,
                f"page {listing.pages + 1} repeats records already listed ({len(repeated)} of its {info.count}, "
                f"first id {repeated[0]}); stopped after {listing.pages} pages"))
        try:
            listing.add_page(body, info.count, self.spool_dir, context)
        except ValueError as exc:
            raise PageFailed(self._failure(listing, None, path, f"page {listing.pages + 1}: {exc}; stopped after "
                                           f"{listing.pages} pages")) from None
        listing.seen_ids.update(ids)

    def _page(self, proxy, path, params, listing: Listing, links_key=None, context: dict | None = None,
              **kwargs) -> PageInfo:
        if listing.pages >= self.max_pages:
            raise PageFailed(self._failure(
                listing, None, path, f"more than {self.max_pages} pages ([collection] max_pages); stopped"))
        body, info = self.fetch(proxy, path, params, listing, links_key, **kwargs)
        self._keep(listing, path, body, info, context)
        return info

    def _paginate(self, listing: Listing, path: str, pages) -> Listing:
        started = time.monotonic()
        try:
            pages()
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds += time.monotonic() - started
        return listing

    def _loop_guard(self, listing: Listing, path: str, markers: set, marker) -> None:
        if marker in markers:
            raise PageFailed(self._failure(
                listing, None, path, f"pagination loops: the next link repeats marker {marker}; "
                                     f"stopped after {listing.pages} pages"))
        markers.add(marker)

    def network_extensions(self, proxy, listing: Listing) -> set[str] | None:
        """The aliases of the API extensions Neutron offers, or None when it cannot say: the request failed,
        or the answer is not a non-empty list of extensions that each have a string alias (an answer that
        cannot be read must never pass for "not offered"). Its requests count towards `listing`."""
        probe = Listing("extensions", "extensions", id_key="alias")
        try:
            _body, info = self.fetch(proxy, "/extensions", {}, probe)
        except PageFailed as exc:
            log.warning("cannot tell which Neutron extensions are offered: %s", exc.failure.message)
            return None
        finally:
            listing.requests += probe.requests
        aliases = [orjson.loads(alias) if alias is not None else None for alias in info.ids]
        if not aliases or not all(isinstance(alias, str) and alias for alias in aliases):
            log.warning("cannot tell which Neutron extensions are offered: /extensions lists none, or some "
                        "without an alias")
            return None
        return set(aliases)

    def list_marker_paged(self, proxy, path, params, listing: Listing, links_key, context: dict | None = None,
                          **kwargs) -> Listing:
        """Nova, Neutron and Cinder: `limit`/`marker`, with a `<key>_links` next link while pages are full.
        `context` is kept beside each page's records (see Listing.add_page)."""
        def pages():
            query, markers = dict(params), set()
            while True:
                info = self._page(proxy, path, query, listing, links_key, context, **kwargs)
                next_query = _next_query(info.links)
                if not next_query or not info.count:
                    return
                self._loop_guard(listing, path, markers, next_query.get("marker"))
                query = {**params, **next_query}
        return self._paginate(listing, path, pages)

    def list_glance(self, proxy, params, listing: Listing) -> Listing:
        """Glance v2: `limit`/`marker` with a relative `next` link (`/v2/images?...`)."""
        def pages():
            query, markers = dict(params), set()
            while True:
                info = self._page(proxy, "/images", query, listing)
                if not info.next_href or not info.count:
                    return
                query = {k: v[0] for k, v in parse_qs(urlsplit(info.next_href).query).items()}
                self._loop_guard(listing, "/images", markers, query.get("marker"))
        return self._paginate(listing, "/images", pages)

    def list_offset_paged(self, proxy, path, params, listing: Listing, page_size, **kwargs) -> Listing:
        """Nova server groups: `limit`/`offset`, no links; a short page is the last. A service that ignores
        the offset serves the same records again, which stops the listing like any repeated page."""
        def pages():
            offset = 0
            while True:
                query = {**params, "limit": page_size, "offset": offset}
                info = self._page(proxy, path, query, listing, **kwargs)
                if info.count < page_size:
                    return
                offset += info.count
        return self._paginate(listing, path, pages)

    def _gone(self, proxy, path: str, probe: Listing) -> bool:
        """Whether GET `path` (the parent itself) answers 404: the parent was deleted."""
        probe.requests += 1
        try:
            response = proxy.get(path, raise_exc=False, connect_retries=0, status_code_retries=0, log=False)
        except (ksa_exceptions.ClientException, DeadlineReached, openstack.exceptions.SDKException):
            return False
        response.close()
        return response.status_code == 404

    def list_per_parent(self, proxy, path_template: str, gone_template: str, parents: list[str],
                        context_key: str, noun: str, listing: Listing, workers: int,
                        one_record: bool = False) -> Listing:
        """One unpaginated GET per parent (the application credentials of each user), `workers` at a time.
        Each page keeps its parent's id beside its records (`auditor_context`, under `context_key`), since
        the records may not say whose they are. A parent that vanished since it was listed (a 404, and a 404
        for `gone_template` too) has none; any other failure is recorded, one error per HTTP status, and the
        other parents are still listed. With `one_record` each answer is one record (see fetch)."""
        started = time.monotonic()
        parents = list(dict.fromkeys(parents))
        total = len(parents)
        failed: dict[int | None, list[CollectionFailure]] = {}
        unusable = [p for p in parents if not _SAFE_ID.fullmatch(p) or set(p) == {"."}]
        if unusable:  # an id that would change the URL's path is asked about nowhere
            failure = self._failure(listing, None, path_template.format("..."),
                                    f"{noun} id {unusable[0]!r} cannot be used in a URL; not listed")
            failed[None] = [failure] * len(unusable)
            parents = [p for p in parents if p not in set(unusable)]

        shortcut = Shortcut()

        def one(parent: str):
            probe = Listing(listing.resource_type, listing.key, id_key=listing.id_key)
            path = path_template.format(parent)
            try:
                body, info = self.fetch(proxy, path, {}, probe, small=True, one_record=one_record,
                                        shortcut=shortcut)
                return parent, path, body, info, probe.requests, None, False
            except PageFailed as exc:
                # A 404 means "none" only when the parent itself is gone (deleted since it was listed);
                # any other 404 (no such API, a proxy rewriting paths) is a failure like any other.
                gone = exc.failure.http_status == 404 and self._gone(proxy, gone_template.format(parent), probe)
                return parent, path, None, None, probe.requests, exc.failure, gone

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="listing-each") as pool:
            for parent, path, body, info, requests_made, failure, gone in pool.map(one, parents):
                listing.requests += requests_made
                if failure is None:
                    listing.seen_ids = set()  # records repeat across parents (the same project in two access lists)
                    try:
                        self._keep(listing, path, body, info, {context_key: parent})
                        if info.truncated:
                            failure = self._failure(listing, None, path, f"the service truncated the list "
                                                    f"(its list_limit); some {listing.resource_type} are missing")
                    except PageFailed as exc:
                        failure = exc.failure
                if failure is not None and not gone:
                    failed.setdefault(failure.http_status, []).append(failure)
        for failures in failed.values():  # one error per kind, not one per user: the first, and how many
            first = failures[0]
            if len(failures) > 1:
                first.message += f" (and {len(failures) - 1} more of the {total} {noun})"
            listing.fail(first)
        listing.seconds += time.monotonic() - started
        return listing

    def get_single(self, proxy, path, params, listing: Listing, **kwargs) -> tuple[Listing, PageInfo | None]:
        """An unpaginated listing (Keystone projects, Nova availability zones)."""
        found: list[PageInfo] = []
        self._paginate(listing, path, lambda: found.append(self._page(proxy, path, params, listing, **kwargs)))
        return listing, found[0] if found else None


class _BodyBroken(Exception):
    """The answer's body did not arrive whole (dropped, too slow): worth another try."""


def _too_large(size: int, limit: int) -> str:
    return (f"response larger than {limit / 2**20:g} MB ([collection] max_response_mb): "
            f"{'at least ' if size > limit else ''}{size / 2**20:.1f} MB; not read")


def _request_failed(exc: Exception, policy: RetryPolicy) -> str:
    """One line for a request that got no answer at all, after the transport's tries."""
    return f"request failed: {network_reason(exc)} after {policy.tries} tries"


def _next_query(links) -> dict | None:
    """The query of a `rel: next` link. Only the query is used: services behind proxies often put an
    internal host or scheme in their links, so the path stays the one we asked for."""
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return {k: v[0] for k, v in parse_qs(urlsplit(link["href"]).query).items()}
    return None


def _error_message(status: int, reason: str | None, body: bytes) -> str:
    """The service's own message from an error body, else the status line; never the request headers.
    The message is the cloud's text: one line, at most 300 characters, control characters removed."""
    message = None
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict):
            for value in parsed.values():
                if isinstance(value, dict) and isinstance(value.get("message"), str):
                    message = value["message"]
                    break
    except orjson.JSONDecodeError:
        pass
    if message is None:
        message = body[:4096].decode("utf-8", "replace").strip() or reason or ""
    message = mask(_CONTROL.sub(" ", message[:4096]).strip())  # masked whole, then cut
    message = message[:300] + ("…" if len(message) > 300 else "")
    return f"HTTP {status_text(status)}: {message}" if message else f"HTTP {status_text(status)}"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SAFE_ID = re.compile(r"[A-Za-z0-9_.@-]{1,255}")  # ids that may go into a URL's path as they are
