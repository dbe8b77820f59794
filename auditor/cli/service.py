"""Running auditor: the service and its jobs, prune, upgrade, the fake cloud and the demo."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import tempfile
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path

import click
import yaml

from auditor.cli.base import EXIT_PARTIAL, Context, cli, load_rules, stop_on_signals
from auditor.cli.run import report_evaluations
from auditor.config import CloudTarget, Config
from auditor.logs import set_format as set_log_format
from auditor.output import render, terminal_safe


# -- service ----------------------------------------------------------------------------------------------
@cli.command()
@click.pass_obj
def serve(obj: Context):
    """Run the schedule of auditor.toml until SIGTERM or SIGINT: the main job of every cloud/region, the
    digest and pruning, each run logged and recorded in job_runs (see `auditor jobs`). Exits 0 when stopped
    by a signal, within 10 seconds; exits 11 when another service holds the job store."""
    from auditor.notify import smtp_password
    from auditor.service.scheduler import STOP_TIMEOUT, Service

    if logging.getLogger().level > logging.INFO:  # a service logs what it does; -v adds debug detail
        logging.getLogger().setLevel(logging.INFO)
    set_log_format("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()

    def request_stop(signum, frame):
        if stopping.is_set():  # a second signal: stop now
            os._exit(0)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    config = obj.config
    load_rules(config)  # bad rule, waiver or mapping files stop the service before it starts
    if config.email:
        smtp_password(config.email)  # so does a missing SMTP password
    service = Service(config)
    service.start()
    click.echo(f"auditor serve: {len(service.specs)} job(s), job store {config.job_store}"
               + (f", HTTP endpoint {service.http.url}" if service.http else "") + "; stop with SIGTERM or Ctrl-C",
               err=True)
    while not stopping.wait(1):
        pass
    logging.getLogger("auditor.service").info("stopping: no new runs; running ones asked to stop")
    if not service.shutdown(STOP_TIMEOUT):
        logging.shutdown()
        os._exit(0)  # job threads that would not stop; nothing they had not committed is visible
    sys.exit(0)


@cli.command()
@click.option("--history", type=click.IntRange(min=1), help="List the newest N runs instead (all jobs, or --job).")
@click.option("--job", "job_id", help="With --history: only this job.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_obj
def jobs(obj: Context, history, job_id, fmt):
    """The schedule: each job of auditor.toml, its trigger, next run, last run and its outcome; whether a
    service is running. With --history, past runs from job_runs, newest first."""
    from auditor.service.runs import JobRuns
    from auditor.service.scheduler import StoreLock, job_specs, stored_next_runs

    config = obj.config
    runs = JobRuns(config.job_store)
    if history:
        rows = [(r.job_id, _ts(r.scheduled_at), _ts(r.started_at), _duration(r.seconds), r.outcome,
                 r.snapshot_id, r.error or r.detail or "") for r in runs.history(job_id, history)]
        click.echo(render(["job", "scheduled", "started", "took", "outcome", "snapshot", "error or detail"],
                          rows, fmt), nl=False)
        return
    holder = StoreLock(config.job_store).holder()
    specs = job_specs(config)
    next_runs = stored_next_runs(config.job_store)
    latest = runs.latest()
    rows = []
    for spec in specs:
        last = latest.get(spec.id)
        rows.append((spec.id, spec.schedule, _ts(next_runs.get(spec.id)) or "-", _ts(last.scheduled_at) if last else "-",
                     last.outcome if last else "-", _duration(last.seconds) if last else "",
                     (last.error or last.detail or "") if last else ""))
    click.echo(render(["job", "schedule", "next run", "last run", "outcome", "took", "error or detail"], rows, fmt),
               nl=False)
    if fmt == "table":
        state = f"running (pid {holder})" if holder else "not running"
        click.echo(f"service: {state}; job store {config.job_store}; times in UTC")


def _ts(moment) -> str:
    from datetime import UTC

    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _duration(seconds) -> str:
    return f"{seconds:.1f}s" if seconds is not None else ""


@cli.command()
@click.option("--dry-run", is_flag=True, help="List what would be pruned; change nothing.")
@click.pass_obj
def prune(obj: Context, dry_run):
    """Apply the [retention] policy now: keep every snapshot for keep_all_days, then one a day for
    daily_days, then one a week; the newest complete snapshot of each cloud/region always stays. Pruned
    snapshots lose their rows, findings and report folders; first-seen dates of findings survive."""
    from auditor.errors import RetentionError
    from auditor.pipeline import prune as prune_database

    config = obj.config
    if config.retention is None:
        raise RetentionError(f"{config.source or 'auditor.toml'}: no [retention] section: nothing is pruned until "
                             "you set a policy (see docs/configuration.md)")
    result = prune_database(config.database, config.retention, config.report.out_dir, dry_run=dry_run)
    if dry_run and result.pruned:
        click.echo(f"would prune snapshots: {', '.join(str(i) for i in result.pruned)}")
    click.echo(("dry run: " if dry_run else "") + result.summary())


@cli.command()
@click.pass_obj
def upgrade(obj: Context):
    """Move the history of a database auditor 0.1.0 wrote (every snapshot, evaluation and finding) into the
    lake beside it, and put this release's catalog in its place; the old file is kept beside it as
    <name>.0.1.0-before-upgrade.duckdb. Safe to stop and run again (docs/upgrading.md)."""
    from auditor.store.upgrade import upgrade_database

    with _terminal_progress("moving") as progress:
        result = upgrade_database(obj.config.database, progress=progress)
    for line in result.summary():
        click.echo(line)


@contextmanager
def _terminal_progress(verb: str):
    """A one-line counter on stderr while a terminal watches, wiped when the work ends (an error then starts on
    a clean line); None (silence) when piped or in the service."""
    if not sys.stderr.isatty():
        yield None
        return

    def show(done: int, total: int, what: str) -> None:
        sys.stderr.write("\r\033[K" + (f"{verb} {what} ({done + 1}/{total})" if what else ""))
        sys.stderr.flush()

    try:
        yield show
    finally:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


# -- fake-cloud -------------------------------------------------------------------------------------------
@cli.command("fake-cloud")
@click.option("--fixture", type=click.Path(file_okay=False), help="Fixture directory (default: the demo cloud).")
@click.option("--generate", type=click.IntRange(min=1), help="Serve a synthetic cloud of N servers instead.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for --generate.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--cloud-name", default="fake", show_default=True, help="Name of the printed clouds.yaml entry.")
@click.option("--write-clouds-yaml", type=click.Path(dir_okay=False), help="Also write the clouds.yaml to this file.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Wait this long before answering each GET: a cloud across a real network.")
def fake_cloud(fixture, generate, seed, host, port, cloud_name, write_clouds_yaml, latency_ms):
    """Serve a fake OpenStack cloud over HTTP and print a clouds.yaml entry for it; stop with Ctrl-C."""
    from auditor.fakecloud import FakeCloud, generate_cloud, load_fixture
    from auditor.resources import data_dir

    if fixture and generate:
        raise click.UsageError("give --fixture or --generate, not both")
    if generate:
        data = generate_cloud(generate, seed)
    else:
        data = load_fixture(fixture or data_dir("sample_data") / "demo-cloud")
    cloud = FakeCloud(data, host=host, port=port)
    if latency_ms:
        cloud.add_fault("", latency=latency_ms / 1000)
    text = yaml.safe_dump({"clouds": {cloud_name: cloud.clouds_yaml_entry()}}, sort_keys=False)
    if write_clouds_yaml:
        Path(write_clouds_yaml).write_text(text, encoding="utf-8")
    click.echo(f"# fake cloud listening on {cloud.url}; clouds.yaml entry:")
    click.echo(text, nl=False)
    sys.stdout.flush()
    def stop_serving(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_serving)
    try:
        cloud.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.stop()


# -- demo -------------------------------------------------------------------------------------------------
@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="output/demo", show_default=True,
              help="Folder for the demo database and its reports (in reports/).")
@click.option("--top", type=click.IntRange(min=0), default=15, show_default=True, help="Findings to print.")
@click.pass_obj
def demo(obj: Context, out_dir, top):
    """Run the main job on the embedded demo cloud: serve it on 127.0.0.1, snapshot it, evaluate every
    rule, write its HTML and PDF report; print an inventory summary, the top findings and the paths."""
    from auditor.config import CollectionSettings
    from auditor.fakecloud import FakeCloud, load_fixture
    from auditor.pipeline import inventory_summary, snapshot_targets
    from auditor.resources import data_dir
    from auditor.rules.evaluate import evaluate
    from auditor.rules.findings import top_findings

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    database = Path(obj.database_override) if obj.database_override else out / "audit.duckdb"
    config = Config(source=None, database=database, collection=CollectionSettings())
    ruleset = load_rules(config)
    with FakeCloud(load_fixture(data_dir("sample_data") / "demo-cloud")) as cloud, \
            tempfile.TemporaryDirectory(prefix="auditor-demo-") as tmp:
        clouds_yaml = Path(tmp) / "clouds.yaml"
        clouds_yaml.write_text(yaml.safe_dump({"clouds": {"demo": cloud.clouds_yaml_entry()}}), encoding="utf-8")
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
        click.echo(f"demo cloud served at {cloud.url}")
        with stop_on_signals() as stop:
            results = snapshot_targets(config, [CloudTarget("demo")], stop)
    for result in results:
        click.echo(result.summary())
    click.echo("")
    click.echo(inventory_summary(config.database, results[-1].snapshot_id), nl=False)
    click.echo("")
    evaluations = evaluate(database, ruleset, [r.snapshot_id for r in results if r.status != "failed"],
                           memory_limit=config.database_memory_limit)
    report_evaluations(evaluations, None)
    if evaluations and top:
        _, rows = top_findings(database, evaluations[-1].evaluation_id, top)
        click.echo(f"\nTop findings ({len(rows)} shown; all of them: auditor --database {database} findings):")
        for severity, rule_id, name, project, reason in rows:
            click.echo(terminal_safe(f"  {severity.upper():<8} {rule_id}: {name} ({project})"))
            click.echo(textwrap.fill(terminal_safe(reason), width=110, initial_indent=" " * 11, subsequent_indent=" " * 11))
    click.echo("")
    from auditor.report.build import write_report
    from auditor.store.database import lake_path

    reports = [write_report(database, e.snapshot_id, ruleset.catalog,
                            dataclasses.replace(config.report, out_dir=out / "reports")) for e in evaluations]
    click.echo(f"DuckDB snapshot database: {database.resolve()}")
    click.echo(f"Its history, as Parquet:  {lake_path(database)}")
    for report in reports:
        click.echo(f"HTML report:              {report.files['html'].resolve()}")
        click.echo(f"PDF report:               {report.files['pdf'].resolve()}")
        click.echo(f"Report archive:           {(out / 'reports' / 'index.html').resolve()}")
    click.echo(f"Try: .venv/bin/auditor --database {database} findings --severity critical,high")
    click.echo(f'     .venv/bin/auditor --database {database} sql "select rule_id, status, count(*) '
               f'from latest_findings group by all order by all"')
    sys.exit(0 if all(r.status == "complete" for r in results) else EXIT_PARTIAL)

