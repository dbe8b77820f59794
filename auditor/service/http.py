"""The service's HTTP endpoint: `/healthz`, `/metrics` and the report archive, read-only (docs/service-http.md).

Everything is computed at request time from what the service writes anyway: the catalog and its lake
(opened read-only through `open_reader`, a fresh connection per request, closed after) and the `job_runs`
table of the job store. Nothing here writes a file, holds a lock for longer than one request, or keeps
state between requests, so the endpoint can neither block collection nor show a stale cache.

The server is the standard library's ThreadingHTTPServer in a daemon thread: GET and HEAD only, one
request per connection (HTTP/1.0). A slow client cannot pin it: the whole request head must arrive within
HEAD_DEADLINE seconds (measured across every read, so a header line every few seconds does not keep the
connection alive), and at most MAX_CONNECTIONS are served at once (others get an immediate 503). waitress,
hypercorn and uvicorn were considered: each times out an idle read, none the whole head, so each would lose
the deadline this gives.
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import mimetypes
import os
import shutil
import socket
import socketserver
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import duckdb
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from auditor import __version__
from auditor.config import HttpSettings
from auditor.errors import AuditorError, ServiceError
from auditor.logs import mask
from auditor.rules.catalog import SEVERITIES
from auditor.service.runs import OUTCOMES, JobRun, JobRuns
from auditor.store.database import open_reader

log = logging.getLogger(__name__)

# The policy the report pages carry in their <meta http-equiv> tag (reports/*.html.j2); a test keeps them equal.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
# Headers on every answer, error pages and the 503 of a full server included.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
}

SNAPSHOT_STATUSES = ("complete", "partial", "failed")
# Outcomes that judge a run job: the newest of these decides a target's state. `cancelled` (the service was
# stopped), `missed`, `skipped` and `running` say nothing about the cloud and are passed over.
_STATE_OF_OUTCOME = {"succeeded": "ok", "partial": "degraded", "failed": "failing", "interrupted": "failing"}
# Worst first: the overall status is the worst target state.
_STATES = ("failing", "degraded", "pending", "ok")
_TERMINAL_OUTCOMES = tuple(o for o in OUTCOMES if o != "running")  # runs counted by auditor_job_runs_total
_CHUNK = 256 * 1024
HEAD_DEADLINE = 10.0  # seconds from accepting a connection to the end of its request head
# Our own limit: the standard library's (100) is process-wide, and raised for Swift's answers, which may
# carry more (auditor/collect/object_storage.py).
MAX_REQUEST_HEADERS = 100
MAX_CONNECTIONS = 32  # connections served at once; the rest are answered 503 and closed
_MAX_ERROR_LINE = 500
# Content types from a private table (Python's built-in one), not from whatever /etc/mime.types says.
_MIME = mimetypes.MimeTypes()
_MIME.add_type("application/x-ndjson", ".jsonl", strict=False)  # findings.jsonl, findings.ocsf.jsonl


def job_id_of(cloud: str, region: str) -> str:
    """The job_runs id of the run job of one (cloud, region); region may be empty."""
    return f"run:{cloud}/{region}"


class StatusServer:
    """The HTTP endpoint of `auditor serve`. Bind with start(), read the address from url, end with stop()."""

    def __init__(self, settings: HttpSettings, database: Path, runs: JobRuns, targets: list[tuple[str, str]],
                 report_dir: Path):
        self.settings = settings
        self.database = Path(database)
        self.runs = runs
        self.targets = [(cloud, region or "") for cloud, region in targets]
        self.report_dir = Path(report_dir)
        self.registry = CollectorRegistry()
        self.registry.register(_AuditorCollector(self))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._server is not None:
            raise ServiceError("the HTTP endpoint is already started")
        host, port = self.settings.host, self.settings.port
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), _Handler)
        except OSError as exc:
            raise ServiceError(f"cannot listen for HTTP on {_hostport(host, port)}: "
                               f"{exc.strerror or exc}") from None
        server.status = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="auditor-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        if self._server is None:
            raise ServiceError("the HTTP endpoint is not started")
        host, port = self._server.server_address[:2]
        return f"http://{_hostport(host, port)}"

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()  # returns once serve_forever has seen the flag (within poll_interval)
        server.server_close()  # handler threads are daemons: a slow download does not hold the service up
        if thread is not None:
            thread.join(timeout=2)
        log.info("HTTP endpoint stopped")

    # -- /healthz -----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The /healthz document (docs/service-http.md). HTTP status: 503 when status is failing, else 200."""
        now = datetime.now(UTC)
        database, latest, complete = self._read_snapshots()
        job_store, last_runs, running = self._read_last_runs()
        targets = []
        for cloud, region in self.targets:
            job = job_id_of(cloud, region)
            done = _pick(complete, cloud, region)
            newest = _pick(latest, cloud, region)
            run = last_runs.get(job)
            state = _STATE_OF_OUTCOME[run.outcome] if run else "pending"
            targets.append({
                "cloud": cloud,
                "region": region,
                "job": job,
                "state": state,
                "last_complete_snapshot": None if done is None else {
                    "id": done["id"],
                    "finished_at": _iso(done["finished_at"]),
                    "age_seconds": round((now - done["finished_at"]).total_seconds(), 3),
                },
                "latest_snapshot": None if newest is None else {
                    "id": newest["id"], "status": newest["status"], "finished_at": _iso(newest["finished_at"]),
                },
                "last_run": None if run is None else {
                    "outcome": run.outcome,
                    "scheduled_at": _iso(run.scheduled_at),
                    "finished_at": _iso(run.finished_at),
                    "error": _one_line(run.error),
                },
                "running": job in running,
            })
        states = {t["state"] for t in targets}
        status = next((s for s in _STATES if s in states), "ok")
        if job_store["state"] == "unreadable":
            status = "failing"  # the service cannot record (or we cannot see) any run: nothing can be vouched for
        return {"status": status, "checked_at": _iso(now), "version": __version__, "database": database,
                "job_store": job_store, "targets": targets}

    def _read_snapshots(self) -> tuple[dict, list[dict], list[dict]]:
        """(database state, newest snapshot of each cloud/region, newest complete one of each)."""
        database = self.database
        if not database.is_file():
            return {"state": "absent", "error": None}, [], []
        try:
            with _reader(database) as con:
                latest = _dicts(con.execute(
                    "SELECT id, cloud, region, status, started_at, finished_at FROM snapshots "
                    "QUALIFY row_number() OVER (PARTITION BY cloud, region ORDER BY started_at DESC, id DESC) = 1"))
                complete = _dicts(con.execute("SELECT id, cloud, region, started_at, finished_at FROM latest_snapshots"))
        except (AuditorError, duckdb.Error) as exc:
            log.warning("/healthz: cannot read %s: %s", database, _one_line(str(exc)))
            return {"state": "unreadable", "error": _scrub(exc, database)}, [], []
        return {"state": "ok", "error": None}, latest, complete

    def _read_last_runs(self) -> tuple[dict, dict[str, JobRun], set[str]]:
        """(job store state, newest judging run of each target job, jobs with a run in progress)."""
        if not self.runs.path.is_file():
            return {"state": "absent", "error": None}, {}, set()
        jobs = [job_id_of(cloud, region) for cloud, region in self.targets]
        judging = tuple(_STATE_OF_OUTCOME)
        try:
            with closing(_job_store(self.runs.path)) as con:
                found = {}
                for job in jobs:
                    row = con.execute(
                        f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE job_id = ? AND outcome IN "
                        f"({', '.join('?' * len(judging))}) ORDER BY scheduled_at DESC, id DESC LIMIT 1",
                        [job, *judging]).fetchone()
                    if row:
                        found[job] = _job_run(row)
                running = {r[0] for r in con.execute("SELECT DISTINCT job_id FROM job_runs WHERE outcome = 'running'")}
        except sqlite3.Error as exc:
            log.warning("/healthz: cannot read the job store %s: %s", self.runs.path, exc)
            return {"state": "unreadable", "error": str(exc)}, {}, set()
        return {"state": "ok", "error": None}, found, running

    # -- /metrics -----------------------------------------------------------------------------------------
    def metrics(self) -> bytes:
        """The /metrics body in Prometheus' text format (CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)


class _AuditorCollector(Collector):
    """Computes every metric at scrape time (docs/service-http.md lists them)."""

    def __init__(self, status: StatusServer):
        self.status = status

    def describe(self):
        return []  # nothing to describe ahead: registering must not run a scrape

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("auditor_up", "1: the auditor service's HTTP endpoint answered this scrape.")
        up.add_metric([], 1)
        yield up
        info = InfoMetricFamily("auditor_build", "The auditor version serving this endpoint.")
        info.add_metric([], {"version": __version__})
        yield info
        yield from self._job_metrics()
        yield from self._database_metrics()

    def _job_metrics(self) -> Iterator:
        runs = self.status.runs
        readable = GaugeMetricFamily("auditor_job_store_readable",
                                     "1 when the job store (job_runs) could be read for this scrape, else 0.")
        counts, times, running = {}, {}, {}
        ok = runs.path.is_file()
        if ok:
            try:
                counts = runs.outcome_counts()
                with closing(_job_store(runs.path)) as con:
                    for job, last, success, active in con.execute(
                        "SELECT job_id, max(finished_at), max(finished_at) FILTER (WHERE outcome = 'succeeded'), "
                        "count(*) FILTER (WHERE outcome = 'running') FROM job_runs GROUP BY job_id"
                    ):
                        times[job] = (last, success)
                        running[job] = active
            except (sqlite3.Error, AuditorError) as exc:
                log.warning("/metrics: cannot read the job store %s: %s", runs.path, exc)
                ok, counts, times, running = False, {}, {}, {}
        readable.add_metric([], 1 if ok else 0)
        yield readable

        jobs = sorted({job_id_of(c, r) for c, r in self.status.targets} | {job for job, _ in counts} | set(times))
        total = CounterMetricFamily("auditor_job_runs", "Runs of each service job that ended, by outcome "
                                    "(rows of job_runs; running runs are counted when they end).",
                                    labels=["job", "outcome"])
        for job in jobs:
            for outcome in _TERMINAL_OUTCOMES:
                total.add_metric([job, outcome], counts.get((job, outcome), 0))
        yield total
        active = GaugeMetricFamily("auditor_job_running", "Runs of the job in progress now.", labels=["job"])
        last = GaugeMetricFamily("auditor_job_last_run_timestamp_seconds",
                                 "When the newest finished run of the job ended, whatever its outcome (Unix time).",
                                 labels=["job"])
        success = GaugeMetricFamily("auditor_job_last_success_timestamp_seconds",
                                    "When the newest succeeded run of the job ended (Unix time).", labels=["job"])
        for job in jobs:
            active.add_metric([job], running.get(job, 0))
            ended, succeeded = times.get(job, (None, None))
            if ended:
                last.add_metric([job], datetime.fromisoformat(ended).timestamp())
            if succeeded:
                success.add_metric([job], datetime.fromisoformat(succeeded).timestamp())
        yield from (active, last, success)

    def _database_metrics(self) -> Iterator:
        database = self.status.database
        readable = GaugeMetricFamily("auditor_database_readable",
                                     "1 when the snapshot database could be read for this scrape; 0 when "
                                     "it does not exist yet or cannot be opened (then no snapshot or finding metrics).")
        if not database.is_file():
            readable.add_metric([], 0)
            yield readable
            return
        try:
            with _reader(database) as con:
                families = list(_snapshot_and_finding_metrics(con))
        except (AuditorError, duckdb.Error) as exc:
            log.warning("/metrics: cannot read %s: %s", database, _one_line(str(exc)))
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        yield from families


def _snapshot_and_finding_metrics(con) -> Iterator:
    where = ["cloud", "region"]
    duration = GaugeMetricFamily("auditor_snapshot_duration_seconds",
                                 "How long the newest snapshot of the cloud/region took, whatever its status.",
                                 labels=where)
    status = GaugeMetricFamily("auditor_snapshot_status",
                               "Status of the newest snapshot of the cloud/region: 1 for its status, 0 for the others.",
                               labels=[*where, "status"])
    for row in _dicts(con.execute(
            "SELECT cloud, region, status, started_at, finished_at FROM snapshots "
            "QUALIFY row_number() OVER (PARTITION BY cloud, region ORDER BY started_at DESC, id DESC) = 1 "
            "ORDER BY cloud, region")):
        labels = [row["cloud"], row["region"]]
        if row["started_at"] and row["finished_at"]:
            duration.add_metric(labels, (row["finished_at"] - row["started_at"]).total_seconds())
        for name in SNAPSHOT_STATUSES:
            status.add_metric([*labels, name], 1 if row["status"] == name else 0)
    complete = GaugeMetricFamily("auditor_last_complete_snapshot_timestamp_seconds",
                                 "When the newest complete snapshot of the cloud/region ended (Unix time).",
                                 labels=where)
    for row in _dicts(con.execute("SELECT cloud, region, finished_at FROM latest_snapshots ORDER BY cloud, region")):
        complete.add_metric([row["cloud"], row["region"]], row["finished_at"].timestamp())

    evaluated = GaugeMetricFamily("auditor_last_evaluation_timestamp_seconds",
                                  "When the latest evaluation of the cloud/region (the one the findings metrics "
                                  "count) ended (Unix time).", labels=where)
    severity = [*where, "severity"]
    failing = GaugeMetricFamily("auditor_findings_failing",
                                "Failing findings of the latest evaluation of the cloud/region, waived ones excluded.",
                                labels=severity)
    waived = GaugeMetricFamily("auditor_findings_waived",
                               "Failing findings of the latest evaluation covered by an active waiver.", labels=severity)
    new = GaugeMetricFamily("auditor_findings_new",
                            "Failing findings of the latest evaluation, not waived, that did not fail in the previous "
                            "evaluation.", labels=severity)
    counts = {(c, r, s): (f, w, n) for c, r, s, f, w, n in con.execute(
        "SELECT e.cloud, e.region, f.severity, "
        "count(*) FILTER (WHERE NOT coalesce(f.waived, false)), "
        "count(*) FILTER (WHERE coalesce(f.waived, false)), "
        "count(*) FILTER (WHERE coalesce(f.is_new, false) AND NOT coalesce(f.waived, false)) "
        "FROM latest_evaluations e JOIN findings f ON f.evaluation_id = e.id "
        "WHERE f.status = 'fail' GROUP BY ALL").fetchall()}
    for cloud, region, finished_at in con.execute(
            "SELECT cloud, region, finished_at FROM latest_evaluations ORDER BY cloud, region").fetchall():
        evaluated.add_metric([cloud, region], _utc(finished_at).timestamp())
        for name in SEVERITIES:  # every severity, zeros included, so that alerts see a series from the start
            f, w, n = counts.get((cloud, region, name), (0, 0, 0))
            failing.add_metric([cloud, region, name], f)
            waived.add_metric([cloud, region, name], w)
            new.add_metric([cloud, region, name], n)
    yield from (duration, status, complete, evaluated, failing, waived, new)


# -- HTTP ---------------------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    status: StatusServer

    def __init__(self, *args, **kwargs):
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(_TOO_MANY_CONNECTIONS)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        # The base class prints a traceback to stderr, past logging and its scrubbing.
        log.debug("HTTP connection from %s failed", client_address[0], exc_info=True)

    def server_bind(self):
        # HTTPServer.server_bind looks the host name up (socket.getfqdn), which can hang on DNS; not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


_TOO_MANY_CONNECTIONS = (
    "HTTP/1.0 503 Service Unavailable\r\n"
    + "".join(f"{name}: {value}\r\n" for name, value in {
        "Content-Type": "text/plain; charset=utf-8", "Content-Length": "21", "Retry-After": "1",
        "Cache-Control": "no-store", "Connection": "close", **SECURITY_HEADERS}.items())
    + "\r\ntoo many connections\n"
).encode("ascii")


class _Server6(_Server):
    address_family = socket.AF_INET6


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each read given only the time left until `deadline`."""

    def __init__(self, connection: socket.socket, deadline: float):
        self.connection, self.deadline = connection, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request head did not arrive within {HEAD_DEADLINE:g} s")
        self.connection.settimeout(left)
        return self.connection.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "auditor"
    sys_version = ""
    timeout = 30  # seconds one write to a slow reader may take

    def setup(self):
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, time.monotonic() + HEAD_DEADLINE))

    def parse_request(self) -> bool:
        # Split as the standard library does (Latin-1 text, any Unicode white space, \xa0 included).
        if len(str(self.raw_requestline, "iso-8859-1").split()) == 2:
            # HTTP/0.9 (`GET /`, no version): its answer would be a bare body, with no room for the headers
            # every answer carries. Not answered, and not waited on for headers it never sends.
            self.log_message("HTTP/0.9 request %r: not answered", self.raw_requestline[:80])
            self.close_connection = True
            return False
        parsed = super().parse_request()  # reads the headers, through the deadline
        self.connection.settimeout(self.timeout)  # the answer may take its time to a slow reader
        if parsed and len(self.headers) > MAX_REQUEST_HEADERS:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            return False
        if parsed and not self.request_version.startswith("HTTP/1."):  # `HTTP/0.9` spelled out, `HTTP/0.5`
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({self.request_version})")
            return False
        return parsed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's error answers (400, 414, 431, 505, ...) as ours: HTTP/1.0 framing even when
        the request line never said its version, plain text, and the headers of every answer."""
        if not str(self.request_version).startswith("HTTP/1."):  # never a bare HTTP/0.9 body
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        phrase = self.responses.get(code, ("error",))[0]
        self.log_error("code %d, message %s", code, message)
        detail = (message or phrase).encode("ascii", "backslashreplace").decode("ascii")
        head_only = self.command == "HEAD" or getattr(self, "raw_requestline", b"").startswith(b"HEAD ")
        with_body = not head_only and code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
        try:
            self._send_text(code, f"{code} {detail}\n", with_body, extra={"Connection": "close"})
        except OSError as exc:  # the client went away; nothing to tell it
            self.log_message("error answer not sent: %s", exc)

    # Every method other than GET and HEAD, known or not, is 405 (BaseHTTPRequestHandler would say 501).
    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def do_GET(self):
        self._dispatch(body=True)

    def do_HEAD(self):
        self._dispatch(body=False)

    def _not_allowed(self):
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed: GET and HEAD only\n", body=True,
                        extra={"Allow": "GET, HEAD"})

    def _dispatch(self, body: bool):
        status = self.server.status
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                document = status.health()
                code = HTTPStatus.SERVICE_UNAVAILABLE if document["status"] == "failing" else HTTPStatus.OK
                self._send_bytes(code, json.dumps(document, indent=1).encode() + b"\n", "application/json", body)
            elif path == "/metrics":
                self._send_bytes(HTTPStatus.OK, status.metrics(), CONTENT_TYPE_LATEST, body)
            elif path in ("/", "/reports"):
                self._redirect("/reports/", body)
            elif path.startswith("/reports/"):
                self._archive(path[len("/reports/"):], body)
            else:
                self._send_text(HTTPStatus.NOT_FOUND, "not found\n", body)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("%s: client went away during %s", self.address_string(), path)
        except Exception:
            log.exception("HTTP %s %s failed", self.command, path)
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the service log)\n", body)

    # -- the report archive -------------------------------------------------------------------------------
    def _archive(self, rest: str, body: bool):
        found = _archive_path(self.server.status.report_dir, rest)
        if found is None:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", body)
        elif found[0] == "redirect":
            self._redirect(found[1], body)
        else:
            self._send_file(found[1], body)

    def _send_file(self, path: Path, body: bool):
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed below, after streaming)
        except OSError:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", body)
            return
        with handle:
            stat = os.fstat(handle.fileno())
            kind, encoding = _MIME.guess_type(path.name, strict=False)
            if kind is None or encoding is not None:  # unknown, or compressed (.gz): bytes, not a document
                kind = "application/octet-stream"
            elif kind.startswith("text/"):
                kind += "; charset=utf-8"
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            self.send_header("Cache-Control", "no-cache")
            self._common_headers()
            self.end_headers()
            if body:
                try:
                    shutil.copyfileobj(handle, self.wfile, _CHUNK)
                except (BrokenPipeError, ConnectionResetError):
                    raise
                except OSError as exc:  # headers are out: all we can do is cut the response short
                    log.warning("HTTP %s: reading %s failed: %s", self.command, path.name, exc)
                    self.close_connection = True

    # -- responses ----------------------------------------------------------------------------------------
    def _common_headers(self):
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)

    def _send_bytes(self, code: int, data: bytes, content_type: str, body: bool, extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self._common_headers()
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _send_text(self, code: int, text: str, body: bool, extra: dict | None = None):
        self._send_bytes(code, text.encode(), "text/plain; charset=utf-8", body, extra)

    def _redirect(self, location: str, body: bool):
        self._send_text(HTTPStatus.FOUND, f"see {location}\n", body, {"Location": location})

    def log_message(self, format: str, *args):  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


def _archive_path(report_dir: Path, rest: str) -> tuple[str, Any] | None:
    """What `/reports/<rest>` (still percent-encoded) names: ("file", path), ("redirect", location) or None.

    Refused (None): dot segments and hidden names (`..`, `.tmp` folders of reports being written), empty
    segments (`//`, absolute paths), backslashes and NUL, and anything that resolves, symlinks followed,
    outside report_dir."""
    text = unquote(rest)
    if "\x00" in text or "\\" in text:
        return None
    folder_wanted = text == "" or text.endswith("/")
    segments = text.split("/")[:-1] if folder_wanted else text.split("/")
    if any(not s or s.startswith(".") for s in segments):
        return None
    try:
        root = report_dir.resolve(strict=True)
        target = root.joinpath(*segments).resolve()
    except (OSError, RuntimeError):  # no archive yet; a symlink loop
        return None
    if not target.is_relative_to(root):
        return None
    if target.is_dir():
        index = (target / "index.html").resolve()
        if not index.is_relative_to(root) or not index.is_file():
            return None
        if not folder_wanted:  # so that the page's relative links resolve inside the folder
            return "redirect", "/reports/" + quote("/".join(segments)) + "/"
        return "file", index
    if folder_wanted or not target.is_file():
        return None
    return "file", target


# -- reading ------------------------------------------------------------------------------------------------
@contextmanager
def _reader(path: Path):
    """One read-only connection to the catalog for one request, closed after."""
    con = open_reader(path)
    try:
        yield con
    finally:
        con.close()


_RUN_COLUMNS = "id, job_id, scheduled_at, started_at, finished_at, outcome, error, detail, snapshot_id"


def _job_store(path: Path) -> sqlite3.Connection:
    """A short connection to the job store that never creates the file (mode=rw) and waits out writers."""
    con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=5)
    con.execute("PRAGMA busy_timeout = 5000")
    con.execute("PRAGMA query_only = true")
    return con


def _job_run(row) -> JobRun:
    def moment(text):
        return datetime.fromisoformat(text) if text else None

    return JobRun(row[0], row[1], moment(row[2]), moment(row[3]), moment(row[4]), *row[5:])


def _dicts(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        for key in ("started_at", "finished_at"):
            if key in row:
                row[key] = _utc(row[key])
    return rows


def _pick(rows: list[dict], cloud: str, region: str) -> dict | None:
    """The row of (cloud, region); for an empty region (the cloud's default one), the cloud's newest row
    when no snapshot was recorded with an empty region."""
    exact = [r for r in rows if r["cloud"] == cloud and r["region"] == region]
    if not exact and region == "":
        exact = [r for r in rows if r["cloud"] == cloud]
    return max(exact, key=lambda r: (r["started_at"], r["id"]), default=None)


def _utc(moment: datetime | None) -> datetime | None:
    """DuckDB TIMESTAMPs are naive UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _one_line(text: str | None) -> str | None:
    """The first line of an error, masked before it is cut (a cut must not leave half a secret)."""
    if not text:
        return text
    text = mask(text)
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MAX_ERROR_LINE else line[:_MAX_ERROR_LINE - 1] + "…"


def _scrub(exc: Exception, path: Path) -> str:
    """An error line without the folder the database lives in (the endpoint may be reachable by others)."""
    return _one_line(str(exc).replace(str(path.parent) + os.sep, "")) or type(exc).__name__


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
