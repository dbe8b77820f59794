"""The service's HTTP endpoint, with real parts: a real StatusServer on 127.0.0.1, the demo cloud snapshotted
and evaluated into a real DuckDB file, job runs written through JobRuns, reports written by the report code."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import time
import tracemalloc
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from conftest import REPO, query, snapshot_into, write_clouds_yaml
from prometheus_client.parser import text_string_to_metric_families

from auditor.config import HttpSettings, ReportSettings, RulesSettings
from auditor.errors import ServiceError
from auditor.fakecloud import FakeCloud
from auditor.report.build import write_report
from auditor.rules.catalog import SEVERITIES
from auditor.rules.evaluate import evaluate, load_ruleset
from auditor.service.http import CONTENT_SECURITY_POLICY, StatusServer
from auditor.service.runs import OUTCOMES, JobRuns

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
ALICE_ERROR = "cloud 'alice': authentication failed: 401 Unauthorized"


# -- the world: two clouds snapshotted and evaluated, a report archive, a job store -------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_fixture):
    folder = tmp_path_factory.mktemp("http")
    database = folder / "audit.duckdb"
    with FakeCloud(demo_fixture) as cloud, pytest.MonkeyPatch.context() as patch:
        clouds = write_clouds_yaml(folder / "clouds.yaml", {
            "demo": cloud.clouds_yaml_entry(), "alice": cloud.clouds_yaml_entry("alice")})
        patch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        patch.delenv("OS_CLOUD", raising=False)
        snapshots = snapshot_into(database, "demo") + snapshot_into(database, "alice")
    assert [s.status for s in snapshots] == ["complete", "complete"]
    ruleset = load_ruleset(RulesSettings())
    evaluations = evaluate(database, ruleset, [s.snapshot_id for s in snapshots])
    out = folder / "out"
    for snapshot in snapshots:
        write_report(database, snapshot.snapshot_id, ruleset.catalog, ReportSettings(out_dir=out),
                     formats=("html", "csv", "json"))
    (folder / "auditor.toml").write_text('database = "audit.duckdb"\n# SECRET-CONFIG\n', encoding="utf-8")
    (folder / "outside").mkdir()
    (folder / "outside" / "index.html").write_text("SECRET-OUTSIDE", encoding="utf-8")
    (folder / "outside" / "notes.txt").write_text("SECRET-OUTSIDE", encoding="utf-8")
    (out / "leak.txt").symlink_to(folder / "auditor.toml")
    (out / "leakdir").symlink_to(folder / "outside", target_is_directory=True)
    (out / ".index.html.tmp-1").write_text("half written", encoding="utf-8")

    # job runs: demo succeeded twice and runs now; alice succeeded, then failed; email succeeded; prune missed
    runs = JobRuns(folder / "jobs.sqlite")
    runs.create()
    demo, alice = (f"run:{s.cloud}/{s.region}" for s in snapshots)
    for step, (job, outcome, error) in enumerate([
        (demo, "succeeded", None), (alice, "succeeded", None), (demo, "succeeded", None),
        (alice, "failed", ALICE_ERROR + "\nTraceback (most recent call last): ..."), ("email", "succeeded", None),
    ]):
        when = T0 + timedelta(hours=step)
        runs.started(job, when, when)
        runs.finished(job, when, outcome, started_at=when, error=error)
    runs.finished("prune", T0, "missed")
    runs.started(demo, T0 + timedelta(hours=9), T0 + timedelta(hours=9))  # in progress
    written = {(demo, "succeeded"): 2, (alice, "succeeded"): 1, (alice, "failed"): 1, ("email", "succeeded"): 1,
               ("prune", "missed"): 1}
    return {"folder": folder, "database": database, "out": out, "runs": runs, "snapshots": snapshots,
            "evaluations": evaluations, "written": written,
            "targets": [(s.cloud, s.region) for s in snapshots]}


def make_server(world, targets=None, database=None, runs=None, report_dir=None, port=0) -> StatusServer:
    server = StatusServer(HttpSettings(host="127.0.0.1", port=port), database or world["database"],
                          runs or world["runs"], world["targets"] if targets is None else targets,
                          report_dir or world["out"])
    server.start()
    return server


@pytest.fixture
def server(world):
    running = make_server(world)
    yield running
    running.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# Straight to 127.0.0.1, whatever http_proxy says; one opener follows redirects, the other shows them.
_FOLLOW = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PLAIN = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def fetch(url: str, method: str = "GET", follow: bool = True, data: bytes | None = None):
    """(status, headers, body) of one request; error statuses are answers too."""
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with (_FOLLOW if follow else _PLAIN).open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def metric_samples(body: bytes) -> dict[str, list]:
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def by_labels(samples, *keys) -> dict:
    """Sample values by their label values: a tuple of them, or the value itself for one label."""
    found = {}
    for sample in samples:
        key = tuple(sample.labels[k] for k in keys)
        found[key[0] if len(keys) == 1 else key] = sample.value
    return found


# -- /metrics ------------------------------------------------------------------------------------------------
def test_metrics_agree_with_the_database_and_the_job_store(world, server):
    status, headers, body = fetch(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    samples = metric_samples(body)
    assert by_labels(samples["auditor_up"]) == {(): 1}
    assert by_labels(samples["auditor_database_readable"]) == {(): 1}
    assert by_labels(samples["auditor_job_store_readable"]) == {(): 1}

    # findings: one series per cloud/region/severity, equal to SQL counts on the evaluations written
    expected_failing, expected_waived, expected_new = {}, {}, {}
    for ev in world["evaluations"]:
        rows = query(world["database"], """
            SELECT severity, count(*) FILTER (WHERE NOT waived), count(*) FILTER (WHERE waived),
                   count(*) FILTER (WHERE is_new AND NOT waived)
            FROM findings WHERE evaluation_id = ? AND status = 'fail' GROUP BY severity""", [ev.evaluation_id])
        counts = {severity: rest for severity, *rest in rows}
        for severity in SEVERITIES:
            failing, waived, new = counts.get(severity, (0, 0, 0))
            expected_failing[(ev.cloud, ev.region, severity)] = failing
            expected_waived[(ev.cloud, ev.region, severity)] = waived
            expected_new[(ev.cloud, ev.region, severity)] = new
        assert {s: n for s, n in ev.fails.items() if n} == \
               {s: n for (c, r, s), n in expected_failing.items() if (c, r) == (ev.cloud, ev.region) and n}
    assert sum(expected_failing.values()) > 0  # the demo cloud has planted problems
    keys = ("cloud", "region", "severity")
    assert by_labels(samples["auditor_findings_failing"], *keys) == expected_failing
    assert by_labels(samples["auditor_findings_waived"], *keys) == expected_waived
    assert by_labels(samples["auditor_findings_new"], *keys) == expected_new

    # snapshots: duration, status (one series per status), time of the last complete one
    # the duration in whole microseconds: the difference of two epochs as doubles is off by ~1e-7 s
    rows = query(world["database"], "SELECT cloud, region, status, "
                                    "(epoch_us(finished_at) - epoch_us(started_at)) / 1000000.0, "
                                    "epoch(finished_at) FROM snapshots")
    assert by_labels(samples["auditor_snapshot_duration_seconds"], "cloud", "region") == \
        pytest.approx({(c, r): d for c, r, _, d, _ in rows})
    assert by_labels(samples["auditor_snapshot_status"], "cloud", "region", "status") == {
        (c, r, name): (1 if name == s else 0) for c, r, s, _, _ in rows for name in ("complete", "partial", "failed")}
    assert by_labels(samples["auditor_last_complete_snapshot_timestamp_seconds"], "cloud", "region") == \
        pytest.approx({(c, r): t for c, r, _, _, t in rows})

    # job runs: the counter equals the rows written (running ones are counted when they end)
    counted = by_labels(samples["auditor_job_runs_total"], "job", "outcome")
    assert {k: v for k, v in counted.items() if v} == world["written"]
    jobs = {job for job, _ in world["written"]}
    assert set(counted) == {(job, outcome) for job in jobs for outcome in OUTCOMES if outcome != "running"}
    demo, alice = (f"run:{c}/{r}" for c, r in world["targets"])
    assert by_labels(samples["auditor_job_running"], "job") == {demo: 1, alice: 0, "email": 0, "prune": 0}
    last = by_labels(samples["auditor_job_last_run_timestamp_seconds"], "job")
    success = by_labels(samples["auditor_job_last_success_timestamp_seconds"], "job")
    assert set(last) == {demo, alice, "email"} and set(success) == {demo, alice, "email"}  # a missed run never ran
    assert last[alice] > success[alice]  # alice's newest run failed after its last success
    assert abs(last[demo] - time.time()) < 300


def test_metrics_without_a_database_give_the_job_metrics(world, tmp_path):
    server = make_server(world, database=tmp_path / "audit.duckdb")
    try:
        status, _, body = fetch(server.url + "/metrics")
    finally:
        server.stop()
    assert status == 200
    samples = metric_samples(body)
    assert by_labels(samples["auditor_database_readable"]) == {(): 0}
    assert sum(s.value for s in samples["auditor_job_runs_total"]) == sum(world["written"].values())
    assert not [name for name in samples if name.startswith(("auditor_findings", "auditor_snapshot"))]


# -- /healthz ------------------------------------------------------------------------------------------------
def test_healthz_is_503_and_names_the_failing_cloud_and_its_error(world, server):
    status, headers, body = fetch(server.url + "/healthz")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["status"] == "failing"
    assert document["database"]["state"] == "ok" and document["job_store"]["state"] == "ok"
    demo, alice = document["targets"]
    assert (alice["cloud"], alice["state"]) == ("alice", "failing")
    assert alice["last_run"]["outcome"] == "failed"
    assert alice["last_run"]["error"] == ALICE_ERROR  # its first line only
    assert (demo["cloud"], demo["state"], demo["running"]) == ("demo", "ok", True)
    assert demo["last_run"]["outcome"] == "succeeded" and demo["last_run"]["error"] is None
    snapshot = world["snapshots"][0]
    assert demo["last_complete_snapshot"]["id"] == snapshot.snapshot_id
    assert demo["latest_snapshot"] == {"id": snapshot.snapshot_id, "status": "complete",
                                       "finished_at": demo["last_complete_snapshot"]["finished_at"]}
    finished = datetime.fromisoformat(demo["last_complete_snapshot"]["finished_at"])
    assert finished.tzinfo is not None
    assert 0 <= demo["last_complete_snapshot"]["age_seconds"] < 600


def test_healthz_is_200_when_every_target_is_ok_and_pending_before_a_first_run(world):
    server = make_server(world, targets=world["targets"][:1])
    try:
        status, _, body = fetch(server.url + "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        server.stop()
    server = make_server(world, targets=[world["targets"][0], ("newcloud", "")])
    try:
        status, _, body = fetch(server.url + "/healthz")
    finally:
        server.stop()
    document = json.loads(body)
    assert (status, document["status"]) == (200, "pending")
    assert document["targets"][1] == {"cloud": "newcloud", "region": "", "job": "run:newcloud/", "state": "pending",
                                      "last_complete_snapshot": None, "latest_snapshot": None, "last_run": None,
                                      "running": False}


def test_healthz_works_with_no_database_and_no_job_store(world, tmp_path):
    server = make_server(world, database=tmp_path / "audit.duckdb", runs=JobRuns(tmp_path / "jobs.sqlite"),
                         report_dir=tmp_path / "out")
    try:
        status, _, body = fetch(server.url + "/healthz")
        assert fetch(server.url + "/metrics")[0] == 200
        assert fetch(server.url + "/reports/")[0] == 404  # no archive yet
    finally:
        server.stop()
    document = json.loads(body)
    assert (status, document["status"]) == (200, "pending")
    assert document["database"] == {"state": "absent", "error": None}
    assert document["job_store"] == {"state": "absent", "error": None}
    assert [t["state"] for t in document["targets"]] == ["pending", "pending"]
    assert not (tmp_path / "jobs.sqlite").exists()  # reading never creates the job store


def test_an_unreadable_database_is_reported_not_a_crash(world, tmp_path):
    database = tmp_path / "audit.duckdb"
    database.write_bytes(b"not a duckdb file" * 1000)
    server = make_server(world, database=database)
    try:
        status, _, body = fetch(server.url + "/healthz")
        metrics_status, _, metrics = fetch(server.url + "/metrics")
    finally:
        server.stop()
    document = json.loads(body)
    assert status == 503  # alice is still failing; the database problem is said, not hidden
    assert document["database"]["state"] == "unreadable"
    assert document["database"]["error"] and str(tmp_path) not in document["database"]["error"]
    assert document["targets"][0]["last_complete_snapshot"] is None
    assert metrics_status == 200
    assert by_labels(metric_samples(metrics)["auditor_database_readable"]) == {(): 0}


def test_an_unreadable_job_store_is_failing(world, tmp_path):
    (tmp_path / "jobs.sqlite").write_bytes(b"not a sqlite file" * 1000)
    server = make_server(world, targets=world["targets"][:1], runs=JobRuns(tmp_path / "jobs.sqlite"))
    try:
        status, _, body = fetch(server.url + "/healthz")
        metrics_status, _, metrics = fetch(server.url + "/metrics")
    finally:
        server.stop()
    document = json.loads(body)
    assert (status, document["status"], document["job_store"]["state"]) == (503, "failing", "unreadable")
    assert metrics_status == 200
    samples = metric_samples(metrics)
    assert by_labels(samples["auditor_job_store_readable"]) == {(): 0}
    assert by_labels(samples["auditor_database_readable"]) == {(): 1}


# -- the report archive --------------------------------------------------------------------------------------
def test_archive_serves_index_and_report_files_with_their_types(world, server):
    status, headers, body = fetch(server.url + "/")  # redirected to /reports/
    assert status == 200 and body == (world["out"] / "index.html").read_bytes()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    status, headers, _ = fetch(server.url + "/", follow=False)
    assert (status, headers["Location"]) == (302, "/reports/")

    report = next(world["out"].glob("demo/*/*/report.html"))
    relative = report.parent.relative_to(world["out"]).as_posix()
    assert f'href="{relative}/report.html"' in body.decode()  # the archive's relative links resolve under /reports/
    for name, kind in [("report.html", "text/html; charset=utf-8"), ("findings.csv", "text/csv; charset=utf-8"),
                       ("findings.jsonl", "application/x-ndjson"), ("findings.ocsf.jsonl", "application/x-ndjson")]:
        status, headers, body = fetch(f"{server.url}/reports/{relative}/{name}")
        assert (status, headers["Content-Type"]) == (200, kind), name
        assert body == (report.parent / name).read_bytes()
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    # a folder without index.html is not listed; one without its slash is not guessed at
    assert fetch(f"{server.url}/reports/{relative}/")[0] == 404
    assert fetch(f"{server.url}/reports/{relative}")[0] == 404
    status, headers, body = fetch(f"{server.url}/reports/{relative}/report.html", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == report.stat().st_size


def test_the_header_policy_is_the_one_the_report_pages_carry():
    for template in ("report.html.j2", "index.html.j2"):
        text = (REPO / "reports" / template).read_text(encoding="utf-8")
        [policy] = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
        assert policy == CONTENT_SECURITY_POLICY, template


def test_big_files_are_streamed(world, server):
    folder = world["out"] / "demo" / "big"
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / "report.pdf"
    with open(pdf, "wb") as handle:
        for block in range(24):
            handle.write(hashlib.sha512(str(block).encode()).digest() * 16384)  # 1 MiB each
    tracemalloc.start()
    try:
        with _FOLLOW.open(server.url + "/reports/demo/big/report.pdf", timeout=10) as response:
            assert response.headers["Content-Type"] == "application/pdf"
            assert int(response.headers["Content-Length"]) == pdf.stat().st_size
            digest = hashlib.sha256()
            while chunk := response.read(65536):
                digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert peak < 8 * 2**20, f"serving a 24 MiB file used {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("path", [
    "/reports/../auditor.toml",
    "/reports/%2e%2e/auditor.toml",
    "/reports/%2E%2E%2Fauditor.toml",
    "/reports/demo/../../auditor.toml",
    "/reports/demo/%2e%2e/%2e%2e/auditor.toml",
    "/reports//etc/passwd",
    "/reports/%2Fetc%2Fpasswd",
    "/reports/..%5Cauditor.toml",
    "/reports/leak.txt",  # a symlink to a file outside
    "/reports/leakdir/",  # a symlink to a folder outside (with an index.html)
    "/reports/leakdir/notes.txt",
    "/reports/.index.html.tmp-1",  # hidden: half-written files
    "/reports/nothing-here.html",
    "/auditor.toml",
    "/audit.duckdb",
])
def test_paths_outside_the_archive_are_404(server, path):
    status, _, body = fetch(server.url + path)
    assert status == 404, path
    assert b"SECRET" not in body and b"half written" not in body


def test_only_get_and_head_are_allowed(server):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        status, headers, _ = fetch(server.url + "/healthz", method=method, data=b"x" if method == "POST" else None)
        assert (status, headers["Allow"]) == (405, "GET, HEAD"), method
    status, headers, body = fetch(server.url + "/healthz", method="HEAD")
    assert status == 503 and body == b"" and int(headers["Content-Length"]) > 0


def test_requests_are_logged_at_debug_not_printed(server, caplog, capfd):
    with caplog.at_level(logging.DEBUG, logger="auditor.service.http"):
        fetch(server.url + "/metrics")
        fetch(server.url + "/nowhere")
        deadline = time.monotonic() + 2
        while len([r for r in caplog.records if "GET /nowhere" in r.getMessage()]) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r for r in caplog.records if r.name == "auditor.service.http" and "GET /" in r.getMessage()]
    assert lines and all(r.levelno == logging.DEBUG for r in lines)
    assert capfd.readouterr().err == ""


# -- lifecycle -----------------------------------------------------------------------------------------------
def test_stop_is_quick_and_frees_the_port(world):
    server = make_server(world)
    port = int(server.url.rsplit(":", 1)[1])
    assert fetch(server.url + "/healthz")[0] == 503
    with pytest.raises(ServiceError, match=f"127.0.0.1:{port}"):
        make_server(world, port=port)  # in use
    idle = socket.create_connection(("127.0.0.1", port))  # a client that never sends its request
    try:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1
    finally:
        idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    again = make_server(world, port=port)  # the port is free again
    try:
        assert again.url == f"http://127.0.0.1:{port}"
        assert fetch(again.url + "/healthz")[0] == 503
    finally:
        again.stop()


def test_the_server_takes_the_address_from_the_settings(world):
    server = make_server(world)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    finally:
        server.stop()
    with pytest.raises(ServiceError):
        server.url  # noqa: B018 (not started any more)


# -- slow clients --------------------------------------------------------------------------------------------
def _closed_by_server(sock: socket.socket, until: float) -> bool:
    """Trickle one header line every 0.2 s (a slow-loris client) until the server hangs up or `until`."""
    sock.sendall(b"GET /healthz HTTP/1.0\r\n")
    sock.settimeout(0.2)
    while time.monotonic() < until:
        try:
            sock.sendall(b"X-Slow: 1\r\n")
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset
            return True
    return False


def test_a_request_head_that_trickles_in_is_cut_at_its_deadline(world, monkeypatch):
    from auditor.service import http

    monkeypatch.setattr(http, "HEAD_DEADLINE", 1.0)
    server = make_server(world)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as slow:
            started = time.monotonic()
            assert _closed_by_server(slow, started + 8)
            assert time.monotonic() - started < 3  # the deadline, not the per-read timeout of 30 s
        assert fetch(server.url + "/healthz")[0] == 503  # and the server still answers
    finally:
        server.stop()


def test_connections_over_the_cap_get_503_at_once(world, monkeypatch):
    from auditor.service import http

    monkeypatch.setattr(http, "HEAD_DEADLINE", 1.5)
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 3)
    server = make_server(world)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:  # the server accepts in order: these three hold every slot when the fourth comes
            with socket.create_connection(("127.0.0.1", port), timeout=2) as extra:
                answer = _read_all(extra)
                assert answer.startswith(b"HTTP/1.0 503")
                _assert_security_headers(answer)
                assert answer.endswith(b"\r\n\r\ntoo many connections\n")
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while fetch(server.url + "/metrics")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)  # the closed connections give their slots back
        assert fetch(server.url + "/metrics")[0] == 200
    finally:
        server.stop()


# -- every answer carries the security headers (issue 22) ----------------------------------------------------
def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _raw(server: StatusServer, request: bytes) -> bytes:
    """The whole answer to `request`, sent as raw bytes (no client library would send most of these)."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return _read_all(sock)


def _assert_security_headers(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"X-Content-Type-Options"] == b"nosniff", head
    assert headers[b"Content-Security-Policy"] == CONTENT_SECURITY_POLICY.encode(), head
    assert headers[b"Referrer-Policy"] == b"no-referrer", head
    assert int(headers[b"Content-Length"]) == len(body), head


@pytest.mark.parametrize("request_bytes, status", [
    (b"garbage\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.0 extra\r\n\r\n", 400),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.0\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(120)) + b"\r\n", 431),
    (b"GET /healthz HTTP/1.0\r\nX-Long: " + b"v" * 70_000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/2.0\r\n\r\n", 505),
    (b"GET /healthz HTTP/1.0\r\n\r\n", 503),  # a page of ours, for comparison
])
def test_error_answers_carry_the_security_headers(server, request_bytes, status):
    answer = _raw(server, request_bytes)
    assert answer.startswith(b"HTTP/1.0 %d " % status), answer[:200]
    _assert_security_headers(answer)
    assert b"<" not in answer.partition(b"\r\n\r\n")[2]  # plain text, not the standard library's HTML page


@pytest.mark.parametrize("request_line", [b"GET /healthz\r\n", b"GET /reports/index.html\r\n\r\n", b"POST /\r\n",
                                          b"GET\xa0/reports/index.html\r\n", b"GET\x1f/healthz\r\n"])
def test_an_http09_request_gets_no_answer(server, request_line):
    assert _raw(server, request_line) == b""
    assert fetch(server.url + "/healthz")[0] == 503  # the server still answers the next one


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/0.5"])
def test_a_version_before_1_0_spelled_out_gets_505_with_the_headers(server, version):
    answer = _raw(server, b"GET /reports/index.html " + version + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 505 "), answer[:200]
    _assert_security_headers(answer)


def test_an_error_answer_to_head_has_no_body(server):
    answer = _raw(server, b"HEAD /healthz HTTP/2.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 505 ") and answer.endswith(b"\r\n\r\n")
