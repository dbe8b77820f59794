"""Requests straight to requests' connection pool, for the listings that make one request per item.

A snapshot makes a HEAD per Swift container and a GET per Keystone user (tens of thousands), where each
costs more in keystoneauth's and requests' own work (about 3 ms of CPU for a GET: the catalog copied to
find the endpoint, the environment read for proxies, the token's expiry parsed) than in the request. A
`DirectRoute` makes them as requests would, once that work is done: the pool requests keeps for the host
(its TLS settings, the retry policy mounted on it, keep-alive), keystoneauth's client-side rate limit and
the session's token, asked for again every TOKEN_REUSE_SECONDS. The caller falls back to keystoneauth on
a 401 (a token that expired meanwhile: keystoneauth authenticates anew) and a redirect; a host reached
through a proxy server never takes this route.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import requests
import urllib3

TOKEN_REUSE_SECONDS = 10.0  # keystoneauth renews a token well before it expires; this is far shorter

_ROUTES_LOCK = threading.Lock()


class DirectRoute:
    """Requests to one host as `proxy`'s session would make them; one per session and host."""

    def __init__(self, proxy, adapter: requests.adapters.HTTPAdapter, url: str, verify, cert):
        self._proxy = proxy
        self._adapter = adapter
        self.verify, self.cert = verify, cert  # as requests reads them, environment included
        self._target = requests.PreparedRequest()  # only its URL is read: prepare() would cost 33 us a request
        self._target.url = url
        self._lock = threading.Lock()
        self._pool = None
        self._token: tuple[float, str] | None = None
        self.user_agent = proxy.session.user_agent or "auditor"

    @classmethod
    def for_url(cls, proxy, url: str) -> "DirectRoute | None":
        """The route to `url`'s host, or None when requests must go through keystoneauth: a proxy server
        applies (environment settings such as HTTPS_PROXY and REQUESTS_CA_BUNDLE are read as requests
        reads them), or the session is not requests' own."""
        session = proxy.session.session  # keystoneauth's requests.Session, with the hardened adapter mounted
        split = urlsplit(url)
        key = (split.scheme, split.hostname, split.port, proxy.service_type)  # its rate limit is the service's
        with _ROUTES_LOCK:
            cached = session.__dict__.setdefault("_auditor_direct_routes", {})  # lives and dies with the session
            if key not in cached:
                found = None
                adapter = session.get_adapter(url) if isinstance(session, requests.Session) else None
                usable = isinstance(adapter, requests.adapters.HTTPAdapter) and hasattr(proxy, "_rate_semaphore")
                if usable and hasattr(adapter, "get_connection_with_tls_context"):  # requests 2.32.2 and later
                    settings = session.merge_environment_settings(url, {}, None, proxy.session.verify,
                                                                  proxy.session.cert)
                    if not requests.utils.select_proxy(url, settings["proxies"]):
                        found = cls(proxy, adapter, url, settings["verify"], settings["cert"])
                cached[key] = found
            return cached[key]

    @property
    def unthrottled(self) -> bool:
        """Whether keystoneauth limits neither the rate nor the number of requests at once (its default):
        only then may requests leave without passing its semaphore (auditor/collect/fanout.py)."""
        semaphore = self._proxy._rate_semaphore  # noqa: SLF001
        return getattr(semaphore, "_concurrency", 1) is None and getattr(semaphore, "_rate_delay", 1) == 0

    def fresh_token(self) -> str | None:
        """The token, if asked for within TOKEN_REUSE_SECONDS; else None (call token())."""
        cached = self._token
        return cached[1] if cached is not None and time.monotonic() - cached[0] <= TOKEN_REUSE_SECONDS else None

    def token(self) -> str:
        now = time.monotonic()
        cached = self._token
        if cached is None or now - cached[0] > TOKEN_REUSE_SECONDS:
            cached = self._token = (now, self._proxy.session.get_token())
        return cached[1]

    def forget_token(self) -> None:
        """After a 401: the next request asks the session, which has authenticated anew by then."""
        self._token = None

    def send(self, method: str, url: str, headers: dict, timeout: float) -> urllib3.BaseHTTPResponse:
        """The answer, its body not read yet (release it with drain_conn/release_conn, or read it).
        `headers` go as they are, with the session's token; no redirect is followed."""
        split = urlsplit(url)
        target = split.path + (f"?{split.query}" if split.query else "")
        headers = {**headers, "X-Auth-Token": self.token()}
        for attempt in (1, 2):
            pool = self._pool_for_host(renew=attempt == 2)
            try:
                with self._proxy._rate_semaphore:  # noqa: SLF001 - keystoneauth's client-side rate limit, if any
                    return pool.urlopen(method, target, headers=headers, retries=self._adapter.max_retries,
                                        redirect=False, preload_content=False,
                                        timeout=urllib3.Timeout(connect=timeout, read=timeout))
            except urllib3.exceptions.ClosedPoolError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _pool_for_host(self, renew: bool):
        """requests' pool for the host, as HTTPAdapter.send picks and prepares it. Kept while it is open:
        requests' pool manager closes the pools it evicts (ClosedPoolError), and then it is asked again."""
        with self._lock:
            if self._pool is None or renew:
                pool = self._adapter.get_connection_with_tls_context(self._target, self.verify, cert=self.cert)
                self._adapter.cert_verify(pool, self._target.url, self.verify, self.cert)
                self._pool = pool
            return self._pool


class Shortcut:
    """Where the GETs of a listing that asks one path per item go once keystoneauth has answered one of
    them: the same endpoint (the answer's URL without the path asked for) and the same headers (its
    microversion, request id, user agent), straight through the DirectRoute. Until then, and whenever
    the route is unusable, get() answers nothing and the caller asks keystoneauth."""

    _SKIPPED_HEADERS = frozenset({"x-auth-token", "x-service-token", "content-length", "cookie", "authorization"})

    def __init__(self) -> None:
        self._learned: tuple[DirectRoute, str, dict] | None = None  # (route, endpoint, headers), set once

    def learn(self, proxy, response: requests.Response, path: str, params: dict) -> None:
        if self._learned is not None or params or response.history:
            return
        url = response.url or ""
        if not path.startswith("/") or not url.endswith(path) or "?" in url:
            return
        route = DirectRoute.for_url(proxy, url)
        if route is None:
            return
        headers = {key: value for key, value in response.request.headers.items()
                   if key.lower() not in self._SKIPPED_HEADERS}
        self._learned = (route, url[: -len(path)], headers)

    def get(self, path: str, params: dict, timeout: float) -> "tuple[DirectAnswer | None, bool]":
        """(the answer or None, whether a request was made): None when nothing is learned yet, or for a 401
        or a redirect (keystoneauth's to handle)."""
        learned = self._learned
        if learned is None or params:
            return None, False
        route, endpoint, headers = learned
        answer = route.send("GET", endpoint + path, headers, timeout)
        if answer.status == 401 or 300 <= answer.status < 400:
            if answer.status == 401:
                route.forget_token()
            answer.close()  # its body is not read: the connection cannot serve another request
            answer.release_conn()
            return None, True
        return DirectAnswer(answer, endpoint + path), True


class DirectAnswer:
    """A urllib3 answer with the part of requests' Response that Pager.fetch reads."""

    def __init__(self, answer: urllib3.BaseHTTPResponse, url: str):
        self._answer = answer
        self.url = url
        self.status_code = answer.status
        self.reason = answer.reason
        self.headers = answer.headers
        self._read = False

    def iter_content(self, chunk_size: int):
        yield from self._answer.stream(chunk_size, decode_content=True)
        self._read = True

    def close(self) -> None:
        if not self._read:
            self._answer.close()  # a body left unread: its connection cannot serve another request
        self._answer.release_conn()
