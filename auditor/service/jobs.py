"""What the service's jobs do: the main job of one cloud/region, the digest, pruning.

APScheduler stores jobs by reference ("auditor.service.jobs:run_target"), so these are plain module
functions; they reach the running service (its config, stop event and job_runs) through `active()`.
Each returns a `RunOutcome` and never raises for an expected failure: the scheduler's listener records
the outcome in job_runs, and the job runs again on its next trigger.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from auditor.config import CloudTarget, Config
from auditor.errors import AuditorError, CollectionCancelled, EvaluationCancelled
from auditor.logs import mask
from auditor.service.runs import utcnow

log = logging.getLogger("auditor.service")


@dataclass
class RunOutcome:
    outcome: str  # succeeded, partial, failed or cancelled (see auditor/service/runs.py)
    started_at: datetime = field(default_factory=utcnow)
    error: str | None = None
    detail: str | None = None
    snapshot_id: int | None = None


class JobContext:
    """What jobs need from the running service."""

    def __init__(self, config: Config, stop: threading.Event):
        self.config = config
        self.stop = stop
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._idle = threading.Condition(self._lock)

    def track(self, job_id: str):
        return _Tracked(self, job_id)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs; False if some still do after `timeout` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)

    @property
    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)


class _Tracked:
    def __init__(self, context: JobContext, job_id: str):
        self.context, self.job_id = context, job_id

    def __enter__(self):
        with self.context._lock:
            self.context._running.add(self.job_id)

    def __exit__(self, *exc):
        with self.context._idle:
            self.context._running.discard(self.job_id)
            self.context._idle.notify_all()


_active: JobContext | None = None


def activate(context: JobContext | None) -> None:
    global _active
    _active = context


def active() -> JobContext:
    if _active is None:
        raise RuntimeError("no auditor service is running in this process")
    return _active


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 500 characters, for job_runs and the log; masked before it is
    cut, since a cut inside a secret would leave a part that no longer matches it."""
    text = " ".join(mask(str(exc)).split())
    return text[:500] or type(exc).__name__


def _guarded(job_id: str, work: Callable[[JobContext, datetime], RunOutcome]) -> RunOutcome:
    """Run one job's work as a tracked job; every expected failure becomes an outcome, never an exception."""
    context = active()
    started = utcnow()
    if context.stop.is_set():
        return RunOutcome("cancelled", started, "the service is stopping")
    with context.track(job_id):
        try:
            return work(context, started)
        except (CollectionCancelled, EvaluationCancelled) as exc:
            log.warning("%s: stopped: %s", job_id, exc)
            return RunOutcome("cancelled", started, one_line(exc))
        except AuditorError as exc:
            log.error("%s: failed: %s", job_id, exc)
            return RunOutcome("failed", started, one_line(exc))
        except Exception as exc:  # a bug must not stop the service; the traceback goes to the log
            log.exception("%s: failed unexpectedly", job_id)
            return RunOutcome("failed", started, f"unexpected error: {one_line(exc)}")


def run_target(cloud: str, region: str, scope: str) -> RunOutcome:
    """The main job of one cloud/region: snapshot, evaluate, write the report."""
    target = CloudTarget(cloud, (region,) if region else (), scope)
    return _guarded(f"run:{cloud}/{region}", lambda context, started: _run_target(context, target, started))


def send_digests() -> RunOutcome:
    """The digest job: one message per recipient group for the newest evaluated snapshot of each cloud/region."""
    return _guarded("email", _send_digests)


def prune_snapshots() -> RunOutcome:
    """The retention job."""
    return _guarded("prune", _prune)


def _run_target(context: JobContext, target: CloudTarget, started: datetime) -> RunOutcome:
    from auditor.pipeline import snapshot_targets, write_reports
    from auditor.rules.evaluate import evaluate, load_ruleset

    config = context.config
    ruleset = load_ruleset(config.rules, config.source)  # re-read each run: waivers are edited while it runs
    [result] = snapshot_targets(config, [target], context.stop)
    log.info("%s", result.summary())
    parts = [f"snapshot {result.snapshot_id} {result.status}"]
    problems = [f"collection: {line}" for line in result.error_lines()[:3]]
    outcome = {"complete": "succeeded", "partial": "partial"}.get(result.status, "failed")
    if result.status != "failed" and result.snapshot_id is not None:
        [evaluation] = evaluate(config.database, ruleset, [result.snapshot_id], stop=context.stop,
                                memory_limit=config.database_memory_limit)
        parts.append(f"evaluation {evaluation.evaluation_id}: {sum(evaluation.fails.values())} failing, "
                     f"{sum(evaluation.new.values())} new, {evaluation.resolved} resolved")
        problems += [f"rule {rule_id}: {message}" for rule_id, message in evaluation.rule_errors[:3]]
        if evaluation.rule_errors and outcome == "succeeded":  # findings of those rules are missing
            outcome = "partial"
        if context.stop.is_set():
            return RunOutcome("cancelled", started, "the service stopped before the report was written",
                              "; ".join(parts), result.snapshot_id)
        [report] = write_reports(config, ruleset.catalog, [result.snapshot_id])
        if report.error:
            outcome = "failed"
            problems.append(f"report: {report.error}")
        else:
            parts.append(f"report {report.folder}")
            log.info("report of snapshot %s: %s", result.snapshot_id, report.folder)
    return RunOutcome(outcome, started, "; ".join(problems) or None, "; ".join(parts), result.snapshot_id)


def _send_digests(context: JobContext, started: datetime) -> RunOutcome:
    from auditor.pipeline import deliver_digests
    from auditor.rules.evaluate import load_ruleset

    config = context.config
    catalog = load_ruleset(config.rules, config.source).catalog
    if not _has_evaluation(config):
        log.info("email: no evaluated snapshot yet; nothing to send")
        return RunOutcome("skipped", started, detail="no evaluated snapshot yet: nothing to send")
    outcomes = deliver_digests(config, catalog, "latest", stop=context.stop)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        log.error("email: snapshot %s, group %s: %s", o.snapshot_id, o.group, o.error)
    snapshots = ", ".join(str(s) for s in sorted({o.snapshot_id for o in outcomes}))
    detail = f"sent {len(outcomes) - len(failed)} of {len(outcomes)} digests (snapshots {snapshots})"
    log.info("email: %s", detail)
    if failed:
        return RunOutcome("failed", started, "; ".join(one_line(o.error) for o in failed[:3]), detail)
    return RunOutcome("succeeded", started, detail=detail)


def _has_evaluation(config: Config) -> bool:
    from auditor.store.database import open_reader

    if not config.database.is_file():
        return False
    con = open_reader(config.database)
    try:
        return bool(con.execute("SELECT count(*) FROM latest_evaluations").fetchall()[0][0])
    finally:
        con.close()


def _prune(context: JobContext, started: datetime) -> RunOutcome:
    from auditor.pipeline import prune

    config = context.config
    result = prune(config.database, config.retention, config.report.out_dir)
    log.info("prune: %s", result.summary())
    return RunOutcome("succeeded", started, detail=result.summary())
