"""Many HEADs to one host at once, on one thread: asyncio and aiohttp.

A snapshot makes one HEAD per Swift container, tens of thousands of them. On threads, through urllib3's
pool, each costs about 0.35 ms of CPU under the GIL (http.client parses headers with the email package),
and the containers' listing was the snapshot's longest; aiohttp parses in C and needs no thread per
request: about 0.12 ms each. The requests are made as a DirectRoute makes them (the host's TLS settings
as requests reads them, the session's token, no proxy server, no redirect followed), and retried as the
transport retries (auditor/collect/retry.py): 429 and 5xx answers, timeouts and dropped connections,
`[collection] retries` times, waiting the backoff or Retry-After, capped at the timeout, within the
snapshot's deadline, ending at once on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp
import requests
import urllib3
import yarl

from auditor.collect.direct import DirectRoute
from auditor.collect.retry import RETRIABLE_STATUS_CODES, DeadlineReached, RetryPolicy, network_reason
from auditor.errors import CollectionCancelled
from auditor.logs import mask

log = logging.getLogger(__name__)

_STOP_POLL_SECONDS = 0.2  # how soon a wait notices SIGTERM
MAX_HEADERS = 1000  # Swift sends one header per metadata item (up to 90 by default; operators raise it)
MAX_HEADER_BYTES = 65536  # one header line: Swift's default limit is 8192, aiohttp's 8190


class TokenFailed(Exception):
    """The session could not give a token to ask with (Keystone failing while it renews one)."""

    def __init__(self, cause: Exception):
        reason = str(cause) if isinstance(cause, DeadlineReached) else network_reason(cause)
        super().__init__(f"no token to ask with: {reason}")
        self.cause = cause


@dataclass
class Answer:
    status: int
    headers: dict  # a header sent more than once: its values joined with ", ", as requests joins them


def head_all(route: DirectRoute, urls: list[str], concurrency: int, policy: RetryPolicy) -> list:
    """An Answer, or the exception that ended its tries (DeadlineReached included), for each of `urls`
    (all on the route's host), in order. Raises CollectionCancelled when stopped."""
    return asyncio.run(_head_all(route, urls, max(1, concurrency), policy))


def ssl_context(verify, cert) -> ssl.SSLContext | bool:
    """requests' TLS settings (`verify`: True, a CA bundle file or folder, or False; `cert`: a file, or a
    (certificate, key) pair) as the SSLContext urllib3 would make of them, for aiohttp (urllib3's is
    stricter than Python's default: no host name from the certificate's common name); False when
    certificates are not checked."""
    if verify is False:
        return False
    if verify is True:
        verify = requests.utils.DEFAULT_CA_BUNDLE_PATH
    context = urllib3.util.ssl_.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(**({"capath": verify} if os.path.isdir(verify) else {"cafile": verify}))
    if cert:
        certificate, key = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certificate, key)
    return context


async def _head_all(route: DirectRoute, urls: list[str], concurrency: int, policy: RetryPolicy) -> list:
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ssl_context(route.verify, route.cert))
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=policy.max_wait, sock_read=policy.max_wait)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                     cookie_jar=aiohttp.DummyCookieJar(),  # as the direct route: none sent
                                     auto_decompress=False, skip_auto_headers=("Accept-Encoding",),
                                     # as http.client reads Swift's answers (see object_storage.py)
                                     max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES,
                                     max_headers=MAX_HEADERS) as session:
        # aiohttp sends a HEAD once more, unseen, when the connection drops: the policy's tries are the tries
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False  # noqa: SLF001 - no public setting exists
        gate = asyncio.Semaphore(concurrency)

        async def one(url: str):
            async with gate:
                return await _head(session, route, url, policy)

        return await asyncio.gather(*(one(url) for url in urls))


async def _head(session: aiohttp.ClientSession, route: DirectRoute, url: str, policy: RetryPolicy):
    attempt = 0
    while True:
        attempt += 1
        if policy.stop.is_set():
            raise CollectionCancelled("collection stopped before it finished; nothing was written")
        if policy.deadline.remaining() <= 0:
            return DeadlineReached(policy.deadline.seconds)
        retry_after = None
        try:
            # a token that must be renewed is asked for off the loop: the other HEADs go on meanwhile
            token = route.fresh_token() or await asyncio.get_running_loop().run_in_executor(None, route.token)
        except CollectionCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - keystoneauth's failures, the deadline: this HEAD's failure
            return TokenFailed(exc)
        try:
            async with session.head(yarl.URL(url, encoded=True), allow_redirects=False, headers={
                    "User-Agent": route.user_agent, "X-Auth-Token": token}) as response:
                answer = Answer(response.status, _headers(response.raw_headers))
            if answer.status not in RETRIABLE_STATUS_CODES or attempt > policy.retries:
                return answer
            what = f"HTTP {answer.status}"
            retry_after = _retry_after(answer.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            if attempt > policy.retries:
                return exc
            what = network_reason(exc)
        log.warning("HEAD %s: %s; trying again (%d tries left)", mask(url), what, policy.retries - attempt + 1)
        try:
            await _wait(policy, attempt, retry_after)
        except DeadlineReached as exc:
            return exc


async def _wait(policy: RetryPolicy, attempt: int, retry_after: float | None) -> None:
    """RetryPolicy.wait, without holding the thread: the other requests go on meanwhile."""
    seconds = policy.backoff * 2 ** (attempt - 1) if retry_after is None else retry_after
    seconds = max(0.0, min(seconds, policy.max_wait))
    if policy.deadline.remaining() < seconds:
        raise DeadlineReached(policy.deadline.seconds)
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    while (left := ends - loop.time()) > 0:
        if policy.stop.is_set():
            raise CollectionCancelled("collection stopped before it finished; nothing was written")
        await asyncio.sleep(min(left, _STOP_POLL_SECONDS))


def _headers(raw: tuple) -> dict:
    """The headers as requests gives them: decoded as ISO-8859-1, as http.client decodes them (aiohttp's
    own decoding, UTF-8 with surrogates, leaves text no JSON can hold), repeated ones joined with ", "."""
    headers: dict[str, str] = {}
    lowered: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        first = lowered.setdefault(key.lower(), key)
        headers[first] = f"{headers[first]}, {text}" if first in headers else text
    return headers


def _retry_after(headers: dict) -> float | None:
    """Retry-After in seconds, given as seconds or as a date; None when absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None
