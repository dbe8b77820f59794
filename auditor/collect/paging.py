"""Raw JSON paging through openstacksdk's authenticated proxies.

openstacksdk does auth, the catalog, version discovery, microversions and retries (keystoneauth honours
Retry-After on 429/503); we page the raw JSON ourselves because building one SDK `Resource` per item costs
about 4 ms. Each listing records what it fetched and every failure, so a partial listing is never mistaken
for a complete one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

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
    """What one resource listing produced: the raw items, how many requests, and whether it finished."""

    resource_type: str
    items: list[dict] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    complete: bool = True
    failures: list[CollectionFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, failure: CollectionFailure) -> None:
        self.complete = False
        self.failures.append(failure)


class PageFailed(Exception):
    def __init__(self, failure: CollectionFailure):
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class Pager:
    """Fetch pages for one connection; shared by the listings of one scope unit (cloud or project)."""

    retries: int
    stop: threading.Event
    project_id: str | None = None  # set when the connection is scoped to one project only

    def get_json(self, proxy, path: str, params: dict, resource_type: str, listing: Listing, **kwargs) -> dict:
        """GET one page and decode it; raises PageFailed (recorded by the caller) or CollectionCancelled."""
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
            raise PageFailed(self._failure(resource_type, None, path, f"request failed: {exc}")) from None
        if response.status_code >= 400:
            raise PageFailed(
                self._failure(resource_type, response.status_code, path, _error_message(response))
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise PageFailed(
                self._failure(resource_type, response.status_code, path, f"malformed JSON in response: {exc}")
            ) from None
        if not isinstance(body, dict):
            raise PageFailed(
                self._failure(resource_type, response.status_code, path, "response body is not a JSON object")
            )
        return body

    def _failure(self, resource_type, status, path, message) -> CollectionFailure:
        return CollectionFailure(resource_type, self.project_id, status, path, message)

    def list_marker_paged(self, proxy, path, params, key, links_key, resource_type, **kwargs) -> Listing:
        """Nova and Neutron: `limit`/`marker`, with a `<key>_links` next link while pages are full."""
        listing = Listing(resource_type)
        started = time.monotonic()
        query = dict(params)
        try:
            while True:
                body = self.get_json(proxy, path, query, resource_type, listing, **kwargs)
                items = _items(body, key, resource_type, path, self)
                listing.items.extend(items)
                next_query = _next_query(body.get(links_key))
                if not next_query or not items:
                    break
                query = {**params, **next_query}
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds = time.monotonic() - started
        return listing

    def list_glance(self, proxy, params, resource_type, listing: Listing | None = None) -> Listing:
        """Glance v2: `limit`/`marker` with a relative `next` link (`/v2/images?...`)."""
        listing = listing or Listing(resource_type)
        started = time.monotonic()
        query = dict(params)
        try:
            while True:
                body = self.get_json(proxy, "/images", query, resource_type, listing)
                items = _items(body, "images", resource_type, "/images", self)
                listing.items.extend(items)
                next_link = body.get("next")
                if not next_link or not items:
                    break
                query = {k: v[0] for k, v in parse_qs(urlsplit(next_link).query).items()}
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds += time.monotonic() - started
        return listing

    def list_offset_paged(self, proxy, path, params, key, page_size, resource_type, **kwargs) -> Listing:
        """Nova server groups: `limit`/`offset`, no links; a short page is the last."""
        listing = Listing(resource_type)
        started = time.monotonic()
        offset = 0
        try:
            while True:
                query = {**params, "limit": page_size, "offset": offset}
                body = self.get_json(proxy, path, query, resource_type, listing, **kwargs)
                items = _items(body, key, resource_type, path, self)
                listing.items.extend(items)
                if len(items) < page_size:
                    break
                offset += len(items)
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds = time.monotonic() - started
        return listing

    def get_single(self, proxy, path, params, key, resource_type, **kwargs) -> tuple[Listing, dict | None]:
        """An unpaginated listing (Keystone projects, Nova availability zones)."""
        listing = Listing(resource_type)
        started = time.monotonic()
        body = None
        try:
            body = self.get_json(proxy, path, params, resource_type, listing, **kwargs)
            listing.items = _items(body, key, resource_type, path, self)
        except PageFailed as exc:
            listing.fail(exc.failure)
        listing.seconds = time.monotonic() - started
        return listing, body


def _items(body: dict, key: str, resource_type: str, path: str, pager: Pager) -> list[dict]:
    items = body.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise PageFailed(pager._failure(resource_type, None, path, f"response has no list of objects under {key!r}"))
    return items


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
            if isinstance(body.get("NeutronError"), dict):
                return f"HTTP {response.status_code}: {body['NeutronError'].get('message')}"
    except orjson.JSONDecodeError:
        pass
    text = response.content[:200].decode("utf-8", "replace").strip()
    return f"HTTP {response.status_code}: {text or response.reason}"
