"""Soak: `auditor serve` for N scheduled runs against the fake cloud, with faults injected at random.

Issue 5 asks: run the service for 500 scheduled runs against the fake cloud with faults injected at random
(5xx, timeouts, dropped connections, SMTP failures) and report runs completed, runs failed and why,
snapshots partial, memory and open file descriptors at the start and end (no growth), and no lost or
duplicated run.

In this process the script starts:
- the fake cloud (`auditor.fakecloud.FakeCloud`, the demo fixture) on 127.0.0.1;
- an aiosmtpd server on 127.0.0.1 (plain SMTP, no AUTH) whose handler refuses messages at random (451, a
  temporary failure the digest retries, or 554, a permanent one), and which is stopped now and then for a
  while (connection refused) and started again on the same port;
- in a folder of its own (a temporary one, or --keep DIR): clouds.yaml and auditor.toml with one cloud, the
  run job `every <interval>s`, the digest `every <email-interval>s` to two recipient groups,
  `[service.http] port = 0`, `[collection] timeout = 3, retries = 1` and `[report] formats = html, csv,
  json` (no PDF: a run takes ~1.8 s; the digest then writes the PDF report of the snapshot it sends,
  since it attaches the PDF).

Then `python -m auditor --config auditor.toml serve` runs as a subprocess, the real service, its log in
serve.log. While it runs:
- a fault injector (seeded RNG, --seed) adds, at random times and with probability --fault-rate per run
  interval, one fault to the fake cloud: 5xx without and with Retry-After, latency beyond the collection
  timeout (a timeout), a dropped connection or a malformed body, firing 1-3 times, on one of the servers,
  ports, security groups or images listings or the Keystone token request;
- the SMTP server refuses a message with probability --fault-rate (half 451, half 554) and is down for
  one to two digest intervals with probability --fault-rate / 2 per digest interval;
- /healthz and /metrics are scraped every 2 s (every scrape must be answered: 200, or 503 from /healthz
  when the last run failed);
- the service's RSS (VmRSS), open fds (/proc/PID/fd) and threads are sampled every 5 s; "start" is the
  first sample after --warmup runs, "end" the last before SIGTERM.

When job_runs holds --runs runs of the run job that ran and finished (skipped runs, which never started,
are counted apart), the injector stops, the service gets SIGTERM, and the time it takes to exit and its exit
code are measured (must be 0, within 10 s). Then the checks, from job_runs (the job store's SQLite file)
and the catalog with its lake:
- runs of the run job and of the digest by outcome, errors grouped (first 60 characters);
- snapshots by status;
- no duplicated run: one row per (job, scheduled time), every snapshot id named by one run only;
- no lost run: consecutive scheduled times of the run job exactly one interval apart, from the first fire
  time to the last one before SIGTERM, so that every fire time is on record (run, skipped or missed); no
  row left running or interrupted; every row written by the service's pid;
- runs and snapshots match: a run that names a snapshot finds it in the database and every snapshot is
  named by a run; a snapshot's status matches its run's outcome (complete: succeeded, partial: partial,
  failed: failed; a run stopped by SIGTERM or whose report failed may differ, and is shown);
  every succeeded or partial run has an evaluation and the report folder it names;
- digests: messages accepted by the SMTP server = digests the email runs say they sent;
- the log has no traceback, no "failed unexpectedly" and no "could not record"; no spool folder is left;
- RSS, fds and threads at the start and end. A single sample shows whatever a run or a digest has open at
  that instant, so growth is judged on the idle baseline of the samples after the warm-up: the fewest fds
  and threads in the last fifth may not exceed those of the first fifth, the median RSS may grow by at most
  --rss-slack MB; the RSS trend (least squares, MB per 100 runs) and what each baseline fd is (file, TCP
  peer) are shown. The fds of the job store's SQLite file are judged apart: SQLite keeps the fd of a closed
  connection open for reuse while another connection of the process holds the file (APScheduler's pooled
  one always does), so their number is the most connections ever open at once, which must stay bounded
  (at most 8: that pool, the scheduler thread, 4 job threads, 2 HTTP requests).

Prints a table like the other bench scripts and exits 1 when a check fails.

Run: .venv/bin/python bench/soak.py [--runs 500] [--interval 3] [--seed 1] [--fault-rate 0.3] [--keep DIR]
Smoke test first: .venv/bin/python bench/soak.py --runs 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from aiosmtpd.controller import Controller

from auditor.fakecloud import FakeCloud, load_fixture
from auditor.resources import data_dir
from auditor.service.runs import JobRuns
from auditor.store.database import lake_path, open_reader

RUN_JOB = "run:demo/RegionOne"
COLLECTION_TIMEOUT = 3
SCRAPE_EVERY, SAMPLE_EVERY = 2.0, 5.0
EXIT_LIMIT = 10.0

# Where faults go: (label, path regular expression, method). The token request is POST; the rest GET.
TARGETS = [
    ("servers", r"^/compute/v2\.1/servers/detail", "GET"),
    ("ports", r"^/network/v2\.0/ports", "GET"),
    ("security groups", r"^/network/v2\.0/security-groups\?", "GET"),
    ("images", r"^/image/v2/images", "GET"),
    ("identity token", r"^/identity/v3/auth/tokens", "POST"),
]
KINDS = ["5xx", "5xx + Retry-After", "timeout", "dropped connection", "malformed body"]


# -- the SMTP server --------------------------------------------------------------------------------------
class FlakyInbox:
    """aiosmtpd handler: refuses a message with probability `fail_rate` (half 451, half 554), else keeps it."""

    def __init__(self, rng: random.Random, fail_rate: float):
        self.rng, self.fail_rate = rng, fail_rate
        self.accepted = 0
        self.replies: Counter = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            draw = self.rng.random()
            if draw < self.fail_rate / 2:
                reply = "451 4.3.0 soak: try again later"
            elif draw < self.fail_rate:
                reply = "554 5.7.1 soak: message refused"
            else:
                reply = "250 OK"
                self.accepted += 1
            self.replies[reply.split()[0]] += 1
        return reply


class FlakySmtp:
    """The SMTP server, with outages: stop() and start() again on the same port."""

    def __init__(self, inbox: FlakyInbox):
        self.inbox = inbox
        self.port = _free_port()
        self.controller: Controller | None = None
        self.outages: list[float] = []

    def start(self) -> None:
        for attempt in range(50):  # the port may still be held for a moment after a stop
            try:
                controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
                controller.start()
                self.controller = controller
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise SystemExit(f"the SMTP server could not listen on 127.0.0.1:{self.port} again")

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the folder -------------------------------------------------------------------------------------------
def write_config(folder: Path, cloud: FakeCloud, smtp_port: int, interval: int, email_interval: int) -> Path:
    (folder / "clouds.yaml").write_text(yaml.safe_dump({"clouds": {"demo": cloud.clouds_yaml_entry()}}),
                                        encoding="utf-8")
    config = folder / "auditor.toml"
    config.write_text(f"""\
[[clouds]]
name = "demo"

[collection]
timeout = {COLLECTION_TIMEOUT}
retries = 1

[report]
formats = ["html", "csv", "json"]

[service]
run = "every {interval}s"
email = "every {email_interval}s"

[service.http]
port = 0

[email]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "auditor@example.com"
timeout = 5
retries = 1

[[email.groups]]
name = "managers"
recipients = ["boss@example.com"]

[[email.groups]]
name = "security"
recipients = ["sec@example.com"]
include_csv = true
""", encoding="utf-8")
    return config


# -- the chaos --------------------------------------------------------------------------------------------
@dataclass
class Chaos:
    cloud: FakeCloud
    smtp: FlakySmtp
    rng: random.Random
    fault_rate: float
    interval: int
    email_interval: int
    stop: threading.Event = field(default_factory=threading.Event)
    injected: list[tuple[str, str, object]] = field(default_factory=list)  # (kind, target, Fault)

    def inject_one(self) -> None:
        kind = self.rng.choice(KINDS)
        label, path, method = self.rng.choice(TARGETS)
        times = self.rng.randint(1, 3)
        options: dict = {}
        if kind == "5xx":
            options["status"] = self.rng.choice([500, 502, 503])
        elif kind == "5xx + Retry-After":
            options.update(status=503, retry_after=1)
        elif kind == "timeout":
            options["latency"] = COLLECTION_TIMEOUT + 1.0
            times = self.rng.randint(1, 2)
        elif kind == "dropped connection":
            options["drop"] = True
        else:
            options["malformed"] = True
            times = self.rng.randint(1, 2)
        fault = self.cloud.add_fault(path, times=times, method=method, **options)
        self.injected.append((kind, label, fault))

    def cloud_faults(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.5, 1.5) * self.interval):
            if self.rng.random() < self.fault_rate:
                self.inject_one()

    def smtp_outages(self) -> None:
        while not self.stop.wait(self.email_interval):
            if self.rng.random() < self.fault_rate / 2:
                down = self.rng.uniform(1, 2) * self.email_interval
                self.smtp.stop()
                self.smtp.outages.append(down)
                self.stop.wait(down)
                self.smtp.start()


# -- watching the service ---------------------------------------------------------------------------------
@dataclass
class Sample:
    at: float
    runs: int
    rss_mb: float
    fds: int
    threads: int
    targets: list[str]  # what each open fd is (fd_targets)


def sample(pid: int, runs: int, names: dict[str, str]) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        targets = fd_targets(pid, names)
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))
    return Sample(time.monotonic(), runs, rss, len(targets), threads, targets)


def fd_targets(pid: int, names: dict[str, str]) -> list[str]:
    """Each open fd of `pid` as a readable name: a file path (relative to the soak folder), a TCP connection
    ("tcp :PORT -> fake cloud"), a listening socket, a pipe. `names` maps "port" strings and the folder."""
    sockets = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            lport, rport = str(int(local.split(":")[1], 16)), str(int(remote.split(":")[1], 16))
            if state == "0A":
                sockets[inode] = f"tcp listening ({names.get(lport, lport)})"
            elif lport in names:
                sockets[inode] = f"tcp accepted ({names[lport]})"
            elif rport in names:
                sockets[inode] = f"tcp to {names[rport]}"
            else:
                sockets[inode] = f"tcp :{lport} -> :{rport}"
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            target = sockets.get(match.group(1), "socket (not tcp)")
        elif target.startswith("pipe:"):
            target = "pipe"
        else:
            target = target.replace(names["folder"] + "/", "")
        targets.append(target)
    return sorted(targets)


def peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024


def runs_done(job_store: Path) -> tuple[int, int]:
    """(runs of the run job that started and finished, skipped or missed ones), read-only."""
    if not job_store.is_file():
        return 0, 0
    try:
        with closing(sqlite3.connect(f"{job_store.absolute().as_uri()}?mode=ro", uri=True, timeout=10)) as con:
            ran, passed = con.execute(
                "SELECT count(*) FILTER (WHERE outcome IN ('succeeded', 'partial', 'failed', 'cancelled')), "
                "count(*) FILTER (WHERE outcome IN ('skipped', 'missed')) FROM job_runs WHERE job_id = ?",
                [RUN_JOB]).fetchone()
    except sqlite3.Error:
        return 0, 0
    return ran, passed


@dataclass
class Scrapes:
    answered: Counter = field(default_factory=Counter)  # (route, status) -> n
    failed: list[str] = field(default_factory=list)
    slowest: float = 0.0


def scrape(url: str, scrapes: Scrapes, stop: threading.Event) -> None:
    while not stop.wait(SCRAPE_EVERY):
        for route in ("/healthz", "/metrics"):
            started = time.monotonic()
            try:
                with urllib.request.urlopen(url + route, timeout=10) as answer:
                    answer.read()
                    code = answer.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except OSError as exc:
                scrapes.failed.append(f"{route}: {exc}")
                continue
            scrapes.slowest = max(scrapes.slowest, time.monotonic() - started)
            scrapes.answered[(route, code)] += 1
            if (route, code) not in (("/healthz", 200), ("/healthz", 503), ("/metrics", 200)):
                scrapes.failed.append(f"{route}: HTTP {code}")


# -- the checks -------------------------------------------------------------------------------------------
def group_errors(runs) -> list[tuple[str, int]]:
    counts = Counter((r.error or r.detail or "(no error recorded)")[:60] for r in runs)
    return counts.most_common()


def snapshots(database: Path) -> dict[int, str]:
    published = database
    if not published.is_file():
        return {}
    con = open_reader(published)
    try:
        return dict(con.execute("SELECT id, status FROM snapshots").fetchall())
    finally:
        con.close()


def evaluated(database: Path) -> set[int]:
    published = database
    if not published.is_file():
        return set()
    con = open_reader(published)
    try:
        return {row[0] for row in con.execute("SELECT DISTINCT snapshot_id FROM evaluations").fetchall()}
    finally:
        con.close()


_EXPECTED_OUTCOME = {"complete": "succeeded", "partial": "partial", "failed": "failed"}


def main() -> int:  # noqa: C901 (one straight story: set up, run, stop, check, print)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500, help="runs of the run job to wait for (default 500)")
    parser.add_argument("--interval", type=int, default=3, help="seconds between runs (default 3)")
    parser.add_argument("--email-interval", type=int, default=20, help="seconds between digests (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.3,
                        help="chance of a cloud fault per run interval, of an SMTP refusal per message; "
                             "half of it: of an SMTP outage per digest interval (default 0.3)")
    parser.add_argument("--warmup", type=int, default=10, help="runs before the 'start' sample (default 10)")
    parser.add_argument("--rss-slack", type=float, default=25.0,
                        help="MB that the median RSS may grow from the first to the last fifth (default 25)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR (kept) instead of a temporary folder")
    args = parser.parse_args()

    folder = (args.keep or Path(tempfile.mkdtemp(prefix="auditor-bench-soak-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "audit.jobs.sqlite").exists() or (folder / "audit.duckdb").exists():
        raise SystemExit(f"{folder} holds an earlier soak: give an empty --keep folder")
    rng = random.Random(args.seed)

    cloud = FakeCloud(load_fixture(data_dir("sample_data") / "demo-cloud"))
    # A client that timed out is gone when a slow answer is written (BrokenPipeError): count, don't print.
    client_gone = Counter()
    cloud._httpd.handle_error = lambda request, address: client_gone.update([sys.exc_info()[0].__name__])
    cloud.start()
    inbox = FlakyInbox(random.Random(args.seed + 1), args.fault_rate)
    smtp = FlakySmtp(inbox)
    smtp.start()
    config = write_config(folder, cloud, smtp.port, args.interval, args.email_interval)
    job_store, database = folder / "audit.jobs.sqlite", folder / "audit.duckdb"
    chaos = Chaos(cloud, smtp, rng, args.fault_rate, args.interval, args.email_interval)

    log_path = folder / "serve.log"
    log_file = open(log_path, "wb")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "--config", str(config), "serve"], cwd=folder,
                            stdout=log_file, stderr=subprocess.STDOUT,
                            env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(folder / "clouds.yaml")})
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r"HTTP endpoint on (http://\S+)", log_path.read_text(errors="replace"))
        url = match.group(1) if match else None
        time.sleep(0.1)
    if url is None:
        proc.kill()
        raise SystemExit(f"the service did not start:\n{log_path.read_text(errors='replace')}")
    started_utc = datetime.now(UTC)
    print(f"# service pid {proc.pid}, {url}, folder {folder}", file=sys.stderr, flush=True)
    names = {"folder": str(folder), str(smtp.port): "SMTP", url.rsplit(":", 1)[1]: "HTTP endpoint",
             cloud.url.rsplit(":", 1)[1]: "fake cloud"}

    scrapes = Scrapes()
    threads = [threading.Thread(target=chaos.cloud_faults, daemon=True),
               threading.Thread(target=chaos.smtp_outages, daemon=True),
               threading.Thread(target=scrape, args=(url, scrapes, chaos.stop), daemon=True)]
    for thread in threads:
        thread.start()

    samples: list[Sample] = []
    warm: Sample | None = None
    seen: dict[str, int] = {}  # what an fd was -> runs when it was first seen open
    # A generous limit: every run may take a few intervals when its listings time out.
    limit = time.monotonic() + args.runs * args.interval * 6 + 300
    ran = skipped = 0
    died = None
    last_note = 0.0
    while True:
        ran, skipped = runs_done(job_store)
        if proc.poll() is not None:
            died = f"the service exited with code {proc.returncode} after {ran} runs"
            break
        if ran >= args.runs or time.monotonic() > limit:
            break
        if not samples or time.monotonic() - samples[-1].at >= SAMPLE_EVERY:
            taken = sample(proc.pid, ran, names)
            if taken:
                samples.append(taken)
                if warm is None and ran >= args.warmup:
                    warm = taken
                for target in taken.targets:
                    seen.setdefault(target, ran)
        if time.monotonic() - last_note > 60:
            last_note = time.monotonic()
            latest = samples[-1] if samples else None
            print(f"# {time.monotonic() - began:6.0f} s: {ran} runs, {skipped} skipped; "
                  + (f"RSS {latest.rss_mb:.0f} MB, {latest.fds} fds, {latest.threads} threads; " if latest else "")
                  + f"{len(chaos.injected)} faults injected", file=sys.stderr, flush=True)
        time.sleep(0.5)
    end = sample(proc.pid, ran, names)
    peak = peak_rss_mb(proc.pid)
    if end:
        samples.append(end)
    chaos.stop.set()
    for thread in threads:
        thread.join(timeout=60)
    soak_seconds = time.monotonic() - began

    # Stop the service.
    exit_code, exit_seconds = None, None
    sigterm_utc = datetime.now(UTC)
    if died is None:
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(EXIT_LIMIT + 20)
            exit_seconds = time.monotonic() - sent
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    else:
        exit_code = proc.returncode
    log_file.close()
    smtp.stop()
    cloud.stop()
    log_text = log_path.read_text(errors="replace")

    # -- what was recorded ------------------------------------------------------------------------------
    history = JobRuns(job_store).history(None, 100000)
    run_rows = sorted((r for r in history if r.job_id == RUN_JOB), key=lambda r: r.scheduled_at)
    email_rows = [r for r in history if r.job_id == "email"]
    stored = snapshots(database)
    with_evaluation = evaluated(database)
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append((name, ok, detail))

    check("service still running at the end", died is None, died or "")
    check(f"runs reached (--runs {args.runs})", ran >= args.runs, f"{ran} runs")
    check(f"SIGTERM: exit code 0 within {EXIT_LIMIT:g} s", exit_code == 0 and exit_seconds is not None
          and exit_seconds < EXIT_LIMIT,
          f"exit code {exit_code}, {exit_seconds:.2f} s" if exit_seconds is not None else f"exit code {exit_code}")
    left = [r for r in history if r.outcome in ("running", "interrupted")]
    check("no run left running or interrupted", not left, ", ".join(f"{r.job_id} {r.scheduled_at}" for r in left))
    with closing(sqlite3.connect(job_store)) as con:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT job_id || scheduled_at) FROM job_runs").fetchone()
        pids = [p for (p,) in con.execute("SELECT DISTINCT pid FROM job_runs")]
    check("one row per (job, scheduled time)", rows == distinct, f"{rows} rows, {distinct} distinct")
    check("every row written by the service's pid", pids == [proc.pid], f"pids {pids}")
    step = timedelta(seconds=args.interval)
    gaps = [(a.scheduled_at, b.scheduled_at) for a, b in zip(run_rows, run_rows[1:], strict=False)
            if abs((b.scheduled_at - a.scheduled_at) - step) > timedelta(milliseconds=1)]
    check("run job: consecutive scheduled times one interval apart", not gaps,
          f"{len(run_rows)} fire times" if not gaps else
          "; ".join(f"{a:%H:%M:%S.%f} -> {b:%H:%M:%S.%f}" for a, b in gaps[:5]) + f" ({len(gaps)} gaps)")
    first_ok = bool(run_rows) and run_rows[0].scheduled_at <= started_utc + step + timedelta(seconds=1)
    last_ok = bool(run_rows) and run_rows[-1].scheduled_at >= sigterm_utc - step - timedelta(seconds=0.5)
    check("run job: fire times on record from the first to SIGTERM", first_ok and last_ok,
          f"first {run_rows[0].scheduled_at:%H:%M:%S}, last {run_rows[-1].scheduled_at:%H:%M:%S}, "
          f"started {started_utc:%H:%M:%S}, SIGTERM {sigterm_utc:%H:%M:%S}" if run_rows else "no runs")
    named = [r.snapshot_id for r in history if r.snapshot_id is not None]
    duplicated = sorted(s for s, n in Counter(named).items() if n > 1)
    check("every snapshot id named by one run only", not duplicated, f"named twice: {duplicated}" if duplicated else
          f"{len(named)} snapshot ids")
    missing = sorted(set(named) - set(stored))
    orphans = sorted(set(stored) - set(named))
    check("every snapshot a run names is in the database", not missing, f"missing: {missing[:10]}" if missing else "")
    check("every snapshot in the database is named by a run", not orphans,
          f"{len(orphans)} without a run: {orphans[:10]}" if orphans else f"{len(stored)} snapshots")
    mismatched, explained = [], []
    mismatched += [r for r in run_rows if r.outcome in ("succeeded", "partial") and r.snapshot_id is None]
    for r in run_rows:
        if r.snapshot_id is None or r.snapshot_id not in stored:
            continue
        expected = _EXPECTED_OUTCOME[stored[r.snapshot_id]]
        if r.outcome == expected:
            continue
        if r.outcome == "cancelled" or (r.outcome == "failed" and "report:" in (r.error or "")):
            explained.append(r)
        else:
            mismatched.append(r)
    shown = "; ".join(f"run {r.scheduled_at:%H:%M:%S} {r.outcome}, snapshot {r.snapshot_id} "
                      f"{stored.get(r.snapshot_id)}" for r in mismatched[:5])
    check("snapshot status matches the run's outcome", not mismatched,
          shown or (f"{len(explained)} explained (cancelled or report failed)" if explained else ""))
    unevaluated = [r for r in run_rows
                   if r.outcome in ("succeeded", "partial") and r.snapshot_id not in with_evaluation]
    check("every succeeded or partial run's snapshot is evaluated", not unevaluated,
          f"{len(unevaluated)} not: {[r.snapshot_id for r in unevaluated[:10]]}" if unevaluated else "")
    no_report = []
    for r in run_rows:
        if r.outcome in ("succeeded", "partial"):
            match = re.search(r"; report (/.+)$", r.detail or "")
            if not match or not (Path(match.group(1)) / "report.html").is_file():
                no_report.append(r)
    check("every succeeded or partial run's report folder is there", not no_report,
          f"{len(no_report)} missing, e.g. {no_report[0].detail}" if no_report else "")
    sent_digests = sum(int(m.group(1)) for r in email_rows
                       for m in [re.search(r"sent (\d+) of \d+ digests", r.detail or "")] if m)
    check("digests accepted by the SMTP server = digests the email runs sent", sent_digests == inbox.accepted,
          f"server accepted {inbox.accepted}, email runs say {sent_digests}")
    bad_lines = [line for line in log_text.splitlines()
                 if "Traceback" in line or "failed unexpectedly" in line or "could not record" in line]
    check("log: no traceback, no unexpected failure, no unrecorded run", not bad_lines, "; ".join(bad_lines[:3]))
    spools = sorted(p.name for p in folder.glob(".auditor-spool-*"))
    check("no spool folder left", not spools, ", ".join(spools))
    check("/healthz and /metrics answered every scrape", not scrapes.failed,
          "; ".join(scrapes.failed[:3]) + (f" ({len(scrapes.failed)} failed)" if scrapes.failed else ""))
    start_sample = warm or (samples[0] if samples else None)
    # A single sample shows whatever a run or a digest has open at that instant (the PDF renderer's log,
    # a scrape's connection, a collection's pool threads), so growth is judged on the idle baseline: the
    # fewest fds and threads, and the median RSS, over the first and the last fifth of the samples taken
    # after the warm-up.
    after = [s for s in samples if s.runs >= args.warmup]
    fifths = [after[k * len(after) // 5:(k + 1) * len(after) // 5] for k in range(5)]
    fifths = [f for f in fifths if f]
    if start_sample and end and len(fifths) >= 2:
        first, last = fifths[0], fifths[-1]
        fds_first, fds_last = min(first, key=lambda s: s.fds), min(last, key=lambda s: s.fds)
        # SQLite does not close the fd of a closed connection while another connection of the process holds
        # a lock on the same file (APScheduler's pooled connection to the job store always does, in WAL
        # mode): it keeps it for the next connection to reuse. So the job store's fds are the most
        # connections ever open at once (job threads, the scheduler, HTTP requests), not a leak: they are
        # judged apart, against that bound.
        others_first = min(f.fds - store_fds(f) for f in first)
        others_last = min(f.fds - store_fds(f) for f in last)
        check("open fds did not grow, the job store's aside (fewest, first vs last fifth)",
              others_last <= others_first, f"{others_first} -> {others_last}")
        store_max = max(store_fds(f) for f in samples)
        store_bound = 1 + 1 + 4 + 2  # APScheduler's pool, the scheduler thread, 4 job threads, 2 HTTP requests
        check(f"job store fds at most {store_bound} (SQLite keeps them for reuse)", store_max <= store_bound,
              f"fewest {min(store_fds(f) for f in first)} -> {min(store_fds(f) for f in last)}, most {store_max}")
        threads_first, threads_last = min(s.threads for s in first), min(s.threads for s in last)
        check("threads did not grow (fewest, first vs last fifth)", threads_last <= threads_first,
              f"{threads_first} -> {threads_last}")
        rss_first, rss_last = median([s.rss_mb for s in first]), median([s.rss_mb for s in last])
        check(f"RSS grew by less than {args.rss_slack:g} MB (median, first vs last fifth)",
              rss_last - rss_first < args.rss_slack, f"{rss_first:.0f} -> {rss_last:.0f} MB")
    else:
        check("resource samples taken", False, "no samples")

    # -- the table --------------------------------------------------------------------------------------
    def row(*cells) -> None:
        print(" | ".join(str(c) for c in cells))

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import apscheduler
    import duckdb

    print(f"# {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {platform.node()}: {platform.platform()}, "
          f"{os.cpu_count()} cores, {ram:.1f} GiB RAM, Python {platform.python_version()}, APScheduler "
          f"{apscheduler.__version__}, DuckDB {duckdb.__version__}")
    print(f"# --runs {args.runs} --interval {args.interval} --email-interval {args.email_interval} --seed {args.seed} "
          f"--fault-rate {args.fault_rate:g}; soak {soak_seconds / 60:.1f} min; folder {folder}")
    print()
    outcomes = Counter(r.outcome for r in run_rows)
    row("what", "measured")
    row("---", "---")
    row("run job: fire times on record",
        f"{len(run_rows)} ({', '.join(f'{n} {o}' for o, n in outcomes.most_common())})")
    for label, picked in (("failed", "failed"), ("partial", "partial"), ("cancelled", "cancelled")):
        for text, n in group_errors([r for r in run_rows if r.outcome == picked]):
            row(f"  {label}: {text}", n)
    durations = sorted(r.seconds for r in run_rows if r.seconds is not None and r.outcome != "skipped")
    if durations:
        row("run job: run time median / p95 / max",
            f"{durations[len(durations) // 2]:.2f} / {durations[int(len(durations) * 0.95)]:.2f} / "
            f"{durations[-1]:.2f} s")
        thirds = [durations_of(run_rows, part) for part in range(3)]
        row("run job: median run time, first / middle / last third", " / ".join(f"{t:.2f} s" for t in thirds))
    row("snapshots by status", ", ".join(f"{n} {s}" for s, n in Counter(stored.values()).most_common()) or "none")
    email_outcomes = Counter(r.outcome for r in email_rows)
    row("email job: runs", f"{len(email_rows)} ({', '.join(f'{n} {o}' for o, n in email_outcomes.most_common())})")
    for text, n in group_errors([r for r in email_rows if r.outcome == "failed"]):
        row(f"  failed: {text}", n)
    row("SMTP server: replies to DATA", ", ".join(f"{n} x {code}" for code, n in sorted(inbox.replies.items())))
    row("SMTP server: outages", f"{len(smtp.outages)} ({sum(smtp.outages):.0f} s in all)")
    by_kind = Counter(kind for kind, _, _ in chaos.injected)
    fired = Counter()
    for kind, _, fault in chaos.injected:
        fired[kind] += fault.fired
    row("cloud faults injected (fired)", ", ".join(f"{by_kind[k]} {k} ({fired[k]})" for k in KINDS))
    by_target = Counter(label for _, label, _ in chaos.injected)
    row("  by target", ", ".join(f"{by_target[label]} {label}" for label, _, _ in TARGETS))
    row("fake cloud: answers the client was gone for", ", ".join(f"{n} {name}" for name, n in client_gone.items())
        or "0")
    row("HTTP scrapes answered",
        ", ".join(f"{n} {route} {code}" for (route, code), n in sorted(scrapes.answered.items()))
        + f"; slowest {scrapes.slowest:.2f} s")
    if start_sample and end and len(fifths) >= 2:
        row(f"RSS, start (run {start_sample.runs}) -> end (run {end.runs})",
            f"{start_sample.rss_mb:.0f} -> {end.rss_mb:.0f} MB (max sampled {max(s.rss_mb for s in samples):.0f} MB"
            + (f", peak VmHWM {peak:.0f} MB)" if peak else ")"))
        row("open fds, start -> end", f"{start_sample.fds} -> {end.fds} (max sampled {max(s.fds for s in samples)})")
        row("threads, start -> end", f"{start_sample.threads} -> {end.threads} "
                                     f"(max sampled {max(s.threads for s in samples)})")
        row("after the warm-up, by fifth: runs", " / ".join(f"{f[0].runs}-{f[-1].runs}" for f in fifths))
        row("  median RSS", " / ".join(f"{median([s.rss_mb for s in f]):.0f}" for f in fifths) + " MB")
        row("  fewest open fds", " / ".join(str(min(s.fds for s in f)) for f in fifths))
        row("  fewest open fds of the job store (audit.jobs.sqlite)",
            " / ".join(str(min(store_fds(s) for s in f)) for f in fifths))
        row("  fewest threads", " / ".join(str(min(s.threads for s in f)) for f in fifths))
        row("RSS trend after the warm-up (least squares)", f"{slope(after):+.2f} MB per 100 runs")
        added = Counter(fds_last.targets) - Counter(fds_first.targets)
        removed = Counter(fds_first.targets) - Counter(fds_last.targets)
        row("fds open at the baseline (fewest, first fifth)", ", ".join(
            f"{n} x {t}" if n > 1 else t for t, n in sorted(Counter(fds_first.targets).items())))
        row("  baseline, last fifth: added / gone", (", ".join(f"{n} x {t}" for t, n in added.items()) or "-")
            + " / " + (", ".join(f"{n} x {t}" for t, n in removed.items()) or "-"))
        transient = Counter(end.targets) - Counter(fds_last.targets)
        row("  open at the end sample beyond the baseline",
            ", ".join(f"{n} x {t}" for t, n in transient.items()) or "-")
        kinds = Counter(re.sub(r"auditor-pdf-[^/]+|\.tmp-[^/]+|\d{4}-\d\d-\d\dT\d{6}Z", "*", t) for t in seen)
        row("  every fd kind seen open", ", ".join(sorted(kinds)))
    row("SIGTERM to exit", f"{exit_seconds:.2f} s, exit code {exit_code}" if exit_seconds is not None
        else f"exit code {exit_code}")
    if database.is_file():
        row("database size at the end", f"{database.stat().st_size / 2**20:.0f} MB "
                                        f"(lake {sum(f.stat().st_size for f in lake_path(database).rglob('*') if f.is_file()) / 2**20:.0f} MB)")
    print()
    row("check", "verdict", "detail")
    row("---", "---", "---")
    for name, ok, detail in checks:
        row(name, "PASS" if ok else "FAIL", detail)
    samples_file = folder / "samples.json"
    samples_file.write_text(json.dumps([s.__dict__ for s in samples]), encoding="utf-8")
    failed = [name for name, ok, _ in checks if not ok]
    if args.keep is None and not failed:
        shutil.rmtree(folder, ignore_errors=True)
    elif args.keep is None:
        print(f"# a check failed: the folder {folder} is kept (serve.log, job store, database)", file=sys.stderr)
    return 1 if failed else 0


def store_fds(taken: Sample) -> int:
    """Open fds of the job store's SQLite file itself (not its -wal, -shm and .lock)."""
    return taken.targets.count("audit.jobs.sqlite")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def slope(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over runs, in MB per 100 runs."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(s.runs for s in samples) / n, sum(s.rss_mb for s in samples) / n
    var = sum((s.runs - mean_x) ** 2 for s in samples)
    cov = sum((s.runs - mean_x) * (s.rss_mb - mean_y) for s in samples)
    return cov / var * 100 if var else 0.0


def durations_of(run_rows, part: int) -> float:
    """Median run time of one third (0, 1, 2) of the runs that ran, in scheduled order."""
    ran = [r.seconds for r in run_rows if r.seconds is not None and r.outcome != "skipped"]
    third = ran[part * len(ran) // 3:(part + 1) * len(ran) // 3] or [0.0]
    return sorted(third)[len(third) // 2]


if __name__ == "__main__":
    sys.exit(main())
