"""One retry policy for every request a collection makes: the Keystone token, version discovery, each page.

The policy lives in the HTTP transport (a urllib3 `Retry` mounted on the connection's requests session), so
that the requests openstacksdk and keystoneauth make on their own (POST /v3/auth/tokens, GET of the version
documents) are retried exactly like our listings: for 429/500/502/503/504, timeouts and dropped connections,
`[collection] retries` times, waiting `[collection] backoff` seconds doubled on each try or what Retry-After
asks. Every wait is capped at `[collection] timeout`, counts against the snapshot's deadline and ends at once
on SIGTERM: a cloud answering `Retry-After: 86400` costs one capped wait, never a day.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.client import responses as http_reasons

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from auditor.errors import CollectionCancelled
from auditor.logs import mask

log = logging.getLogger(__name__)

RETRIABLE_STATUS_CODES = frozenset({429, 500, 502, 503, 504})

class DeadlineReached(Exception):
    """The snapshot's overall deadline ([collection] deadline) passed."""

    def __init__(self, seconds: float):
        super().__init__(f"the snapshot deadline of {seconds:g} s ([collection] deadline) was reached")
        self.seconds = seconds


class Deadline:
    """A point in (monotonic) time after which a snapshot stops asking for more."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise DeadlineReached(self.seconds)


@dataclass
class RetryPolicy:
    retries: int  # tries after the first
    backoff: float  # seconds before the first retry; doubled on each further one
    max_wait: float  # cap on one wait, Retry-After included (the request timeout)
    stop: threading.Event
    deadline: Deadline

    @property
    def tries(self) -> int:
        return self.retries + 1

    def transport_retry(self) -> Retry:
        """The urllib3 Retry to mount on a requests adapter; each copy urllib3 makes keeps this policy."""
        bound = type("PolicyRetry", (_PolicyRetry,), {"policy": self})
        return bound(
            total=self.retries, connect=None, read=None, status=None, other=None, redirect=False,
            allowed_methods=None,  # the token request is a POST: retry it too
            status_forcelist=RETRIABLE_STATUS_CODES, raise_on_status=False, respect_retry_after_header=True,
            retry_after_max=self.max_wait, backoff_factor=0,
        )

    def wait(self, attempt: int, retry_after: float | None = None) -> None:
        """Sleep before try number `attempt + 1` (attempt counts from 1); raise DeadlineReached or
        CollectionCancelled instead of sleeping past the deadline or through SIGTERM."""
        seconds = self.backoff * 2 ** (attempt - 1) if retry_after is None else retry_after
        seconds = max(0.0, min(seconds, self.max_wait))
        if self.deadline.remaining() < seconds:
            raise DeadlineReached(self.deadline.seconds)
        if self.stop.wait(seconds):
            raise CollectionCancelled("collection stopped before it finished; nothing was written")


class _PolicyRetry(Retry):
    policy: RetryPolicy  # set on the subclass made by RetryPolicy.transport_retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        where = f"{_pool.scheme}://{_pool.host}:{_pool.port}" if _pool is not None else ""
        what = f"HTTP {response.status}" if response is not None and response.status else _short_error(error)
        left = new.total if new.total is not None else "?"
        log.warning("%s %s%s: %s; trying again (%s tries left)", method, where, mask(url or ""), what, left)
        return new

    def sleep(self, response=None) -> None:
        retry_after = None
        if response is not None and self.respect_retry_after_header:
            try:
                retry_after = self.get_retry_after(response)  # capped at retry_after_max by urllib3
            except (InvalidHeader, ValueError, OverflowError):  # "1.5", "soon", a date in year 99999:
                retry_after = None  # urllib3 would give the request up; the backoff applies instead
        self.policy.wait(len(self.history), retry_after)


def _short_error(error: BaseException | None) -> str:
    return network_reason(error) if error is not None else "no response"


def network_reason(error: BaseException) -> str:
    """What went wrong on the wire, in a few words, from anywhere in an exception's chain."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        text = str(current)
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in text or "Errno 111" in text:
            return "connection refused"
        if isinstance(current, (socket.timeout, TimeoutError)) or "timed out" in text.lower() or "Timeout" in name:
            return "timed out"
        if isinstance(current, socket.gaierror) or "NameResolution" in name or "Name or service not known" in text:
            return "host name not resolved"
        if "RemoteDisconnected" in name or "RemoteDisconnected" in text or "Connection aborted" in text \
                or "ServerDisconnected" in name or isinstance(current, ConnectionResetError) \
                or "reset by peer" in text:
            return "connection dropped without an answer"
        if "SSL" in name or "CERTIFICATE" in text:
            return "TLS handshake failed"
        current = current.__cause__ or current.__context__
        if current is None and hasattr(error, "args"):
            nested = [a for a in getattr(error, "args", ()) if isinstance(a, BaseException)]
            current = nested[0] if nested and id(nested[0]) not in seen else None
    return "request failed"


def status_text(status: int) -> str:
    """`503 Service Unavailable`."""
    reason = http_reasons.get(status)
    return f"{status} {reason}" if reason else str(status)
