"""`auditor serve`: APScheduler 3 runs the jobs of auditor.toml with a persistent SQLite job store.

- Jobs come from the config (`job_specs`): the main job of every cloud/region, the digest, pruning. On start,
  a stored job whose schedule is unchanged keeps its next run time, so a run missed while the service was
  down is caught up once (coalesce) if it is at most `misfire_grace` seconds late; a changed job is
  replaced and a job no longer configured is removed.
- A job never overlaps itself (max_instances 1); a trigger that fires while it still runs is recorded as
  skipped.
- Every run, missed run and skipped run is a row of job_runs (auditor/service/runs.py).
- One service per job store: an exclusive lock on `<job store>.lock`, held for the life of the process.
- Stopping sets the stop event that collections check between pages and evaluations between queries, and
  waits up to `timeout` seconds for running jobs; whatever they had not committed is never written.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from auditor.config import Config
from auditor.errors import ConfigError, ServiceError
from auditor.service import jobs
from auditor.service.runs import JobRuns, utcnow
from auditor.service.triggers import ScheduleError, describe, parse_schedule, time_zone

log = logging.getLogger("auditor.service")

STOP_TIMEOUT = 8.0  # seconds running jobs get to stop after SIGTERM; the process must be gone within 10


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: str  # "module:function", how APScheduler stores it
    args: tuple
    trigger: BaseTrigger
    schedule: str  # as configured, for `auditor jobs`

    @property
    def signature(self) -> tuple:
        return self.func, tuple(self.args), str(self.trigger)


def job_specs(config: Config) -> list[JobSpec]:
    """The jobs auditor.toml asks for; every schedule checked, errors naming the key."""
    from auditor.collect.connection import region_names

    source = config.source or "auditor.toml"
    service = config.service
    try:
        zone = time_zone(service.timezone)
    except ScheduleError as exc:
        raise ConfigError(f"{source}: key 'service.timezone': {exc}") from None

    def trigger(text: str, key: str) -> BaseTrigger:
        try:
            return parse_schedule(text, zone)
        except ScheduleError as exc:
            raise ConfigError(f"{source}: key '{key}': {exc}") from None

    if not config.clouds:
        raise ConfigError(f"{source}: no [[clouds]] to schedule: `auditor serve` snapshots the clouds listed there")
    specs = []
    for index, cloud in enumerate(config.clouds):
        key, text = (f"clouds[{index}].schedule", cloud.schedule) if cloud.schedule else ("service.run", service.run)
        cloud_trigger = trigger(text, key)
        for region in region_names(cloud.name, cloud.regions):
            specs.append(JobSpec(f"run:{cloud.name}/{region}", "auditor.service.jobs:run_target",
                                 (cloud.name, region, cloud.scope), cloud_trigger, text))
    if service.email:
        specs.append(JobSpec("email", "auditor.service.jobs:send_digests", (), trigger(service.email, "service.email"),
                             service.email))
    if service.prune:
        specs.append(JobSpec("prune", "auditor.service.jobs:prune_snapshots", (),
                             trigger(service.prune, "service.prune"), service.prune))
    ids = [s.id for s in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{source}: key 'clouds': {', '.join(duplicates)} would be scheduled twice")
    return specs


class StoreLock:
    """An exclusive lock on `<job store>.lock`: APScheduler job stores must never be shared by schedulers."""

    def __init__(self, job_store: Path):
        self.path = job_store.with_name(job_store.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ServiceError(f"{self.path.with_suffix('')}: another `auditor serve` (pid {holder}) is using this job "
                               "store; a job store must never be shared between schedulers (stop the other "
                               "one, or give this one its own [service] job_store)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the running service, or None when nobody holds the lock."""
        if not self.path.is_file():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)


class Service:
    def __init__(self, config: Config, specs: list[JobSpec] | None = None):
        self.config = config
        self.specs = job_specs(config) if specs is None else specs
        self.stop = threading.Event()
        self.runs = JobRuns(config.job_store)
        self.context = jobs.JobContext(config, self.stop)
        self.scheduler: BackgroundScheduler | None = None
        self.http = None
        self._lock = StoreLock(config.job_store)

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._lock.acquire()
        try:
            self._start()
        except BaseException:
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self._close()
            raise

    def _start(self) -> None:
        self.runs.create()
        stale = self.runs.interrupt_running("the service stopped before the run finished")
        if stale:
            log.warning("%d run(s) of an earlier service never finished; recorded as interrupted", stale)
        jobs.activate(self.context)
        service = self.config.service
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{self.config.job_store}")},
            executors={"default": ThreadPoolExecutor(max_workers=service.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": service.misfire_grace},
            timezone=time_zone(service.timezone),
        )
        self.scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                                    | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start(paused=True)  # the stored jobs are reconciled with the config before anything runs
        self._sync_jobs()
        if service.http:
            from auditor.service.http import StatusServer

            targets = [(s.args[0], s.args[1]) for s in self.specs if s.id.startswith("run:")]
            self.http = StatusServer(service.http, self.config.database, self.runs, targets, self.config.report.out_dir)
            self.http.start()
            log.info("HTTP endpoint on %s (/healthz, /metrics, /reports/)", self.http.url)
        self.scheduler.resume()
        log.info("started: %d job(s), job store %s", len(self.specs), self.config.job_store)

    def _sync_jobs(self) -> None:
        wanted = {spec.id: spec for spec in self.specs}
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                log.info("job %s is no longer configured; removed", job.id)
                job.remove()
        grace = self.config.service.misfire_grace
        for spec in self.specs:
            job = self.scheduler.get_job(spec.id)
            if job is not None and (job.func_ref, tuple(job.args), str(job.trigger)) == spec.signature \
                    and job.misfire_grace_time == grace:
                log.info("job %s: %s, next run %s", spec.id, describe(spec.trigger), _when(job.next_run_time))
                continue
            if job is not None:
                log.info("job %s changed in the config; its schedule starts again from now", spec.id)
            job = self.scheduler.add_job(spec.func, trigger=spec.trigger, args=spec.args, id=spec.id, name=spec.id,
                                         replace_existing=True, misfire_grace_time=grace)
            log.info("job %s: %s, next run %s", spec.id, describe(spec.trigger), _when(job.next_run_time))

    def wakeup(self) -> None:
        """Look at the schedule now (after the clock moved, in tests)."""
        self.scheduler.wakeup()

    def shutdown(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop: no new run starts, running ones are asked to stop. False if some still ran after `timeout`
        seconds; they are then recorded as interrupted."""
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        idle = self.context.wait_idle(timeout)
        if not idle:
            log.warning("still running after %g s: %s; leaving them (nothing they had not committed is kept)",
                        timeout, ", ".join(self.context.running))
            self.runs.interrupt_running(f"the service stopped; the run did not end within {timeout:g} s")
        self._close()
        log.info("stopped")
        return idle

    def _close(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        jobs.activate(None)
        self._lock.release()

    # -- job_runs ---------------------------------------------------------------------------------------
    def _on_event(self, event) -> None:
        try:
            self._record(event)
        except Exception:  # recording must never take the scheduler down
            log.exception("could not record the run of %s in job_runs", event.job_id)

    def _record(self, event) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            for run_time in event.scheduled_run_times:
                self.runs.started(event.job_id, run_time, utcnow())
        elif event.code == EVENT_JOB_EXECUTED:
            result = event.retval
            if isinstance(result, jobs.RunOutcome):
                self.runs.finished(event.job_id, event.scheduled_run_time, result.outcome,
                                   started_at=result.started_at, error=result.error, detail=result.detail,
                                   snapshot_id=result.snapshot_id)
            else:
                self.runs.finished(event.job_id, event.scheduled_run_time, "succeeded")
        elif event.code == EVENT_JOB_ERROR:
            self.runs.finished(event.job_id, event.scheduled_run_time, "failed", error=jobs.one_line(event.exception))
        elif event.code == EVENT_JOB_MISSED:
            late = (utcnow() - event.scheduled_run_time).total_seconds()
            log.warning("job %s: the run of %s is %.0f s late, past the grace time; not run", event.job_id,
                        _when(event.scheduled_run_time), late)
            self.runs.finished(event.job_id, event.scheduled_run_time, "missed",
                               error=f"{late:.0f} s late when the service could run it, past the grace time of "
                                     f"{self.config.service.misfire_grace} s")
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            for run_time in event.scheduled_run_times:
                log.warning("job %s: the run of %s is skipped: the previous run is still going", event.job_id,
                            _when(run_time))
                self.runs.finished(event.job_id, run_time, "skipped", error="the previous run was still going")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def stored_next_runs(job_store: Path) -> dict[str, datetime]:
    """Next run time of each job as the service stored it, read without starting a scheduler."""
    import sqlite3
    from contextlib import closing

    if not job_store.is_file():
        return {}
    try:
        with closing(sqlite3.connect(job_store.absolute().as_uri() + "?mode=ro", uri=True, timeout=10)) as con:
            rows = con.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall()
    except sqlite3.Error:
        return {}  # no schedule stored yet
    return {job_id: datetime.fromtimestamp(ts, UTC) for job_id, ts in rows if ts is not None}
