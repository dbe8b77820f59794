"""Swift: every project's containers, each with its ACLs, versioning, sync settings and metadata.

Swift shows a container's ACLs and sync settings to its account's owner only: a token with an operator role
on the account's project, or a reseller admin (Swift's `ResellerAdmin` role by default; Keystone's `admin`
alone is not one), who owns every `<prefix><project id>` account. So a cloud-scope snapshot asks every
project's account, named after its own in the service catalog; an account Swift refuses (a 403) leaves that
project's containers unlisted, recorded against that project, so that rules skip there and judge the others.
A project-scope snapshot asks each project's own account.

An account lists its containers by name, paged by `marker` (the last name) and `limit`; Swift refuses a
limit above its own (412) rather than cutting the page, so a shorter page is the last. Each container's
settings are in the headers of a HEAD: those run `workers` at a time over every account at once, so one
account of 10,000 containers costs no more than 10,000 containers spread over many.

What is kept of a container is written here, field by field: its listing entry (name, count, bytes,
last_modified), the headers that hold its settings, its user metadata (credential-like values masked), and
whether a sync key or temp-URL key is set. The keys themselves, and every other header, are never kept.
"""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit, urlunsplit

import orjson

from auditor.collect.direct import DirectRoute
from auditor.collect.fanout import Answer, TokenFailed, head_all
from auditor.collect.paging import CollectionFailure, Listing, PageFailed, Pager
from auditor.collect.retry import DeadlineReached, network_reason, status_text
from auditor.redact import redact_mapping

SWIFT_MAX_PAGE = 10_000  # Swift's account_listing_limit by default: it refuses (412) a larger limit
SPOOLED_RECORDS = 1000  # containers per spooled page

# The headers of a container's HEAD that are kept, as the record's fields.
SETTING_HEADERS = {
    "x-container-read": "read_acl",
    "x-container-write": "write_acl",
    "x-versions-location": "versions_location",  # legacy versioning: the archive container
    "x-history-location": "history_location",
    "x-versions-enabled": "versions_enabled",  # object versioning (Swift 2.24 and later)
    "x-container-sync-to": "sync_to",
    "x-storage-policy": "storage_policy",
    "x-timestamp": "created",  # seconds since the epoch, as text
}
SYNC_KEY = "x-container-sync-key"
TEMP_URL_KEYS = ("x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2")
META_PREFIX = "x-container-meta-"
_LISTING_FIELDS = ("name", "count", "bytes", "last_modified")

# Python's HTTP client refuses an answer with more than 100 headers; Swift sends up to 90 metadata items
# beside a dozen of its own, so a container with much metadata could never be read. Raised for the process.
http.client._MAXHEADERS = max(http.client._MAXHEADERS, 1000)  # noqa: SLF001 - no public setting exists


def account_urls(endpoint: str, own_project: str, projects: list[str]) -> tuple[dict[str, str], str | None]:
    """Each project's account URL, from the catalog's object-store endpoint (the token project's account:
    `.../v1/AUTH_<project id>`), and why the others cannot be named when the endpoint does not end so."""
    parts = urlsplit(endpoint.rstrip("/"))
    folder, _, account = parts.path.rpartition("/")
    if not own_project or not account.endswith(own_project):
        return ({own_project: endpoint.rstrip("/")} if own_project else {}), (
            f"the object-store endpoint {endpoint} does not end with the account of the token's project "
            f"{own_project}, so other projects' accounts cannot be named")
    prefix = account[: -len(own_project)]
    return {project: urlunsplit(parts._replace(path=f"{folder}/{prefix}{quote(project, safe='')}"))
            for project in projects}, None


def list_containers(pager: Pager, proxy, accounts: dict[str, str], workers: int, page_size: int,
                    listing: Listing | None = None) -> Listing:
    """The containers of every account in `accounts` (project id -> account URL), with their settings."""
    listing = listing or Listing("containers", "containers")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="listing-swift") as pool:
        listed = list(pool.map(lambda item: _list_account(pager, proxy, *item, page_size), accounts.items()))
        wanted = []
        for project, url, entries, failure, requests_made in listed:
            listing.requests += requests_made
            if failure is not None:
                listing.fail(failure)
            wanted.extend((project, url, entry) for entry in entries)
        targets = [_target(project, url, entry) for project, url, entry in wanted]
        answers, requests_made = _heads(pager, proxy, [url for url, _known in targets if url is not None], pool,
                                        workers)
        listing.requests += requests_made
        records: dict[str, list[dict]] = {}
        refused: dict[tuple[str, int | None], list[CollectionFailure]] = {}
        for (project, _url, entry), (url, known) in zip(wanted, targets):
            record, failure = known if url is None else _judge(project, entry, url, answers[url])
            if failure is not None:
                refused.setdefault((project, failure.http_status), []).append(failure)
            elif record is not None:
                records.setdefault(project, []).append(record)
    for (project, _status), failures in refused.items():  # one error per project and kind, not per container
        first = failures[0]
        if len(failures) > 1:
            first.message += f" (and {len(failures) - 1} more of project {project}'s containers)"
        listing.fail(first)
    for project_records in records.values():
        for at in range(0, len(project_records), SPOOLED_RECORDS):
            chunk = project_records[at : at + SPOOLED_RECORDS]
            listing.add_page(orjson.dumps({listing.key: chunk}), len(chunk), pager.spool_dir)
    listing.seconds += time.monotonic() - started
    return listing


def _list_account(pager: Pager, proxy, project: str, url: str, page_size: int):
    """(project, url, the account's listing entries, a failure or None, requests made)."""
    probe = Listing("containers", "containers", id_key="name")
    entries: list[dict] = []
    marker = None
    try:
        while True:
            if probe.pages >= pager.max_pages:
                raise PageFailed(CollectionFailure("containers", project, None, url, (
                    f"more than {pager.max_pages} pages ([collection] max_pages); stopped")))
            params = {"format": "json", "limit": page_size, **({"marker": marker} if marker is not None else {})}
            try:
                body, info = pager.fetch(proxy, url, params, probe, small=True, bare_list=True)
            except PageFailed as exc:
                if exc.failure.http_status == 404 and not entries:
                    return project, url, [], None, probe.requests  # an account never created holds nothing
                raise
            probe.pages += 1
            page = orjson.loads(body)[probe.key]  # as fetch wrote it: one list, read by orjson already
            names = [entry.get("name") if isinstance(entry, dict) else None for entry in page]
            if marker is not None and any(isinstance(n, str) and n <= marker for n in names):
                raise PageFailed(CollectionFailure("containers", project, None, url, (
                    f"pagination loops: page {probe.pages} repeats containers at or before {marker!r}; "
                    f"stopped after {probe.pages - 1} pages")))
            entries.extend(entry if isinstance(entry, dict) else {} for entry in page)
            if len(page) < page_size:
                return project, url, entries, None, probe.requests
            marker = names[-1]
            if not isinstance(marker, str):
                raise PageFailed(CollectionFailure("containers", project, None, url, (
                    f"the last container of page {probe.pages} has no name to page on; stopped")))
    except PageFailed as exc:
        failure = exc.failure
        failure.project_id = project
        if failure.http_status == 403:
            failure.message = (f"Swift refused to list project {project}'s containers ({failure.message}): "
                               "only the account's owner or a reseller admin may")
        return project, url, entries, failure, probe.requests


def _target(project: str, account_url: str, entry: dict) -> tuple[str | None, tuple]:
    """(the URL to HEAD for the container's settings, ()) or (None, (record, failure)) when there is none
    to ask: an entry without a name is kept without an id (the store counts it and stores nothing of it)."""
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        return None, ({"id": None, "project_id": project, **_listed(entry)}, None)
    url = f"{account_url}/{quote(name, safe='')}"
    if name in (".", ".."):  # a proxy resolves them (`AUTH_p/..` is `/v1/`), and clients send them as they are
        return None, (None, CollectionFailure("containers", project, None, url, (
            f"container {name!r} cannot be asked for by name without the path being resolved; its settings "
            "were not read")))
    return url, ()


def _judge(project: str, entry: dict, url: str, answer) -> tuple[dict | None, CollectionFailure | None]:
    """(the container's record, or None when it is gone; a failure or None) from its HEAD's answer: a
    (status, headers) pair or the failure that ended its tries."""
    if isinstance(answer, CollectionFailure):
        answer.project_id = project
        return None, answer
    status, headers = answer
    if status == 404:
        return None, None  # deleted since the account listed it
    if status >= 300:
        return None, CollectionFailure("containers", project, status, url, (
            f"HTTP {status_text(status)} for the settings of container {entry['name']!r}"))
    return container_record(project, _listed(entry), headers), None


def _heads(pager: Pager, proxy, urls: list[str], pool: ThreadPoolExecutor, workers: int) -> tuple[dict, int]:
    """{url: (status, headers) or the CollectionFailure that ended its tries}, and the requests made. All
    at once on one thread where the direct route allows (auditor/collect/fanout.py); a 401 (the token
    expired meanwhile: keystoneauth authenticates anew) and a redirect are asked again through keystoneauth,
    and a host the route does not reach goes through Pager.head, on threads."""
    answers: dict = {}
    requests_made = 0
    route = DirectRoute.for_url(proxy, urls[0]) if urls else None  # every account is on the endpoint's host
    later = list(urls)
    retried: set[str] = set()  # refused or redirected on the direct route: keystoneauth's to handle
    if route is not None and route.unthrottled:
        host = urlsplit(urls[0]).netloc
        fanned = [url for url in urls if urlsplit(url).netloc == host]
        requests_made += len(fanned)
        later = [url for url in urls if urlsplit(url).netloc != host]
        for url, answer in zip(fanned, head_all(route, fanned, workers, pager.policy)):
            if isinstance(answer, Answer) and (answer.status == 401 or 300 <= answer.status < 400):
                if answer.status == 401:
                    route.forget_token()
                later.append(url)
                retried.add(url)
            elif isinstance(answer, Answer):
                answers[url] = (answer.status, answer.headers)
            elif isinstance(answer, DeadlineReached):
                answers[url] = CollectionFailure("containers", None, None, url, f"{answer}; stopped")
            elif isinstance(answer, TokenFailed):
                answers[url] = CollectionFailure("containers", None, None, url, str(answer))
            else:
                answers[url] = CollectionFailure("containers", None, None, url, (
                    f"request failed: {network_reason(answer)} after {pager.policy.tries} tries"))

    def one(url: str):
        probe = Listing("containers", "containers")
        try:
            return url, pager.head(proxy, url, probe, direct=url not in retried), probe.requests
        except PageFailed as exc:
            return url, exc.failure, probe.requests

    for url, answer, made in pool.map(one, later):
        answers[url] = answer
        requests_made += made
    return answers, requests_made


def _listed(entry: dict) -> dict:
    return {key: entry.get(key) for key in _LISTING_FIELDS}


def container_record(project: str, listed: dict, headers) -> dict:
    """What is kept of a container: its listing entry, its settings, its masked metadata."""
    lowered = {str(key).lower(): _text(value) for key, value in headers.items()}
    metadata = {key[len(META_PREFIX):]: value for key, value in lowered.items()
                if key.startswith(META_PREFIX) and key not in TEMP_URL_KEYS}
    return {
        "id": f"{project}/{listed['name']}", "project_id": project, **listed,
        **{field: lowered.get(header) for header, field in SETTING_HEADERS.items()},
        "sync_key_set": bool(lowered.get(SYNC_KEY)),
        "temp_url_key_set": any(lowered.get(key) for key in TEMP_URL_KEYS),
        "metadata": redact_mapping(metadata) or {},
    }


def _text(value) -> str:
    """A header's value: HTTP gives bytes read as Latin-1; Swift sends UTF-8."""
    text = str(value)
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text
