"""The `auditor` command line. Each command is a thin shell over the pipeline; see docs/cli.md."""

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
import duckdb
import yaml

from auditor import __version__
from auditor.config import OWNER_ONLY_UMASK, CloudTarget, Config, load_config
from auditor.errors import (
    AuditorError,
    CollectionCancelled,
    ConfigError,
    RuleError,
    StoreError,
)
from auditor.logs import configure as configure_logging
from auditor.logs import mask, scrub
from auditor.logs import set_format as set_log_format
from auditor.output import render, terminal_safe

EXIT_PARTIAL = 1
EXIT_FAILED = 3
EXIT_FINDINGS = 8  # --fail-on: new findings at or above the threshold
EXIT_RULE_ERRORS = 13  # the evaluation was stored, but some rules ended in error
SEVERITY_CHOICE = click.Choice(["critical", "high", "medium", "low", "info"])


class Context:
    def __init__(self, config_path, database):
        self._config_path = config_path
        self.database_override = database
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            config = load_config(self._config_path)
            if self.database_override:
                config = dataclasses.replace(config, database=Path(self.database_override))
            os.umask(config.umask)
            self._config = config
        return self._config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="AUDITOR_CONFIG",
              help="auditor.toml to use (default: $AUDITOR_CONFIG, else ./auditor.toml if present).")
@click.option("--database", type=click.Path(dir_okay=False), help="Override the database path from the config.")
@click.option("-v", "--verbose", count=True, help="Log progress (-v) or debug detail (-vv) to stderr.")
@click.version_option(__version__, prog_name="auditor")
@click.pass_context
def cli(ctx, config_path, database, verbose):
    """Compliance and inventory auditing for OpenStack clouds."""
    configure_logging(verbose)  # libraries that log bodies stay at WARNING; every line is scrubbed
    # What we write is a map of every exposed server: owner-only until the config says the group may read.
    os.umask(OWNER_ONLY_UMASK)
    ctx.obj = Context(config_path, database)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except AuditorError as exc:
        click.echo(f"auditor: error: {_error_text(exc)}", err=True)
        sys.exit(exc.exit_code)
    except duckdb.Error as exc:  # a safety net: the store's own paths turn these into StoreError first
        click.echo(f"auditor: error: database: {scrub(str(exc).splitlines()[0])}", err=True)
        sys.exit(StoreError.exit_code)
    except click.exceptions.Abort:
        click.echo("auditor: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _error_text(exc: Exception) -> str:
    """An error for the terminal: secrets masked, each line's control characters escaped."""
    return "\n".join(scrub(line) for line in mask(str(exc)).split("\n"))


# -- snapshot ---------------------------------------------------------------------------------------------
_cloud_option = click.option("--cloud", "cloud_name", envvar="OS_CLOUD",
                             help="Cloud name from clouds.yaml (default: $OS_CLOUD, else the clouds in auditor.toml).")
_region_option = click.option("--region", "regions", multiple=True,
                              help="Region to collect; repeat for several (default: all).")
_scope_option = click.option("--scope", type=click.Choice(["auto", "cloud", "project"]), default=None,
                             help="auto: cloud-wide with admin credentials, else the user's projects.")


@cli.command()
@_cloud_option
@_region_option
@_scope_option
@click.pass_obj
def snapshot(obj: Context, cloud_name, regions, scope):
    """Snapshot clouds into the database; exit 1 if any snapshot is partial, 3 if one failed."""
    config = obj.config
    results = _snapshot(config, _targets(config, cloud_name, regions, scope))
    click.echo(_where(config))
    sys.exit(_snapshot_exit(results))


def _snapshot(config: Config, targets: list[CloudTarget]):
    from auditor.pipeline import snapshot_targets

    with _stop_on_signals() as stop:
        results = snapshot_targets(config, targets, stop)
    for result in results:
        click.echo(scrub(result.summary()))
        if result.status != "complete":
            for line in result.error_lines():
                click.echo(f"  {scrub(line)}", err=True)
    return results


def _snapshot_exit(results) -> int:
    worst = 0
    for result in results:
        worst = max(worst, {"partial": EXIT_PARTIAL, "failed": EXIT_FAILED}.get(result.status, 0))
    return worst


def _targets(config: Config, cloud_name, regions, scope) -> list[CloudTarget]:
    if cloud_name:
        configured = next((c for c in config.clouds if c.name == cloud_name), None)
        return [CloudTarget(
            name=cloud_name,
            regions=tuple(regions) or (configured.regions if configured else ()),
            scope=scope or (configured.scope if configured else "auto"),
        )]
    if not config.clouds:
        raise ConfigError("no cloud to snapshot: pass --cloud NAME, set OS_CLOUD, or list [[clouds]] in auditor.toml")
    return [CloudTarget(c.name, tuple(regions) or c.regions, scope or c.scope) for c in config.clouds]


def _where(config: Config) -> str:
    from auditor.store.database import lake_path

    return f"database: {config.database}  (its history, as Parquet: {lake_path(config.database)})"


@contextmanager
def _stop_on_signals():
    """SIGTERM and SIGINT ask the collection to stop between pages; nothing half-done is written."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    except CollectionCancelled as exc:
        click.echo(f"auditor: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- snapshots --------------------------------------------------------------------------------------------
@cli.command()
@click.option("--cloud", "cloud_name", help="Only this cloud.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--limit", type=int, default=50, show_default=True, help="Newest N snapshots.")
@click.pass_obj
def snapshots(obj: Context, cloud_name, fmt, limit):
    """List snapshots, newest first: id, cloud, region, scope, times, status and counts."""
    from auditor.store.database import open_reader

    con = open_reader(obj.config.database)
    try:
        cursor = con.execute(
            "SELECT id, cloud, region, scope, started_at, finished_at, status, server_count AS servers, "
            "flavor_count AS flavors, image_count AS images, security_group_count AS sec_groups, "
            "security_group_rule_count AS sg_rules, port_count AS ports, error_count AS errors "
            "FROM snapshots WHERE ? IS NULL OR cloud = ? ORDER BY started_at DESC, id DESC LIMIT ?",
            [cloud_name, cloud_name, limit],
        )
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        con.close()
    click.echo(render(columns, rows, fmt), nl=False)


# -- sql --------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_obj
def sql(obj: Context, query, fmt):
    """Run a read-only SQL QUERY on the snapshot database ('-' reads it from stdin).

    Only SELECT-like statements run; the connection itself is read-only, may read the lake and no other
    file, and cannot load extensions, so INSERT, DROP, ATTACH, COPY ... TO and INSTALL are refused.
    """
    from auditor.store.query import run_read_only

    if query == "-":
        query = sys.stdin.read()
    columns, rows = run_read_only(obj.config.database, query)
    click.echo(render(columns, rows, fmt), nl=False)


# -- evaluate / run ---------------------------------------------------------------------------------------
def _ruleset(config: Config):
    from auditor.rules.evaluate import load_ruleset

    return load_ruleset(config.rules, config.source)


def _report_evaluations(results, fail_on) -> int:
    code = 0
    for result in results:
        click.echo(scrub(result.summary()))
        for rule_id, message in result.rule_errors:
            click.echo(f"  rule error: {rule_id}: {scrub(message)}", err=True)
        for rule_id, message in result.incomplete:
            click.echo(f"  incomplete: {rule_id}: {scrub(message)}", err=True)
        for note in result.waiver_notes:
            click.echo(f"  {scrub(note)}", err=True)
    if fail_on:
        hits = sum(r.new_at_or_above(fail_on) for r in results)
        if hits:
            click.echo(f"auditor: {hits} new finding{'s' if hits != 1 else ''} of severity {fail_on} or worse "
                       f"(--fail-on {fail_on})", err=True)
            code = EXIT_FINDINGS
    errors = sum(len(r.rule_errors) for r in results)
    if errors:  # the findings of those rules are missing: the evaluation is stored, but it is not whole
        click.echo(f"auditor: {errors} rule{'s' if errors != 1 else ''} ended in error; their findings are "
                   "missing from this evaluation", err=True)
        code = EXIT_RULE_ERRORS
    return code


@cli.command("evaluate")
@click.option("--snapshot", "snapshot_spec", default="latest", show_default=True,
              help="Snapshot id, or 'latest': the newest snapshot of every cloud/region.")
@click.option("--cloud", "cloud_name", help="With 'latest': only this cloud.")
@click.option("--fail-on", type=SEVERITY_CHOICE,
              help=f"Exit {EXIT_FINDINGS} when there are new unwaived findings of this severity or worse.")
@click.pass_obj
def evaluate_command(obj: Context, snapshot_spec, cloud_name, fail_on):
    """Run every enabled rule on a snapshot and store the findings; print counts by severity and what is
    new or resolved since the previous snapshot. Exits 0 when every rule ran, whatever it found; 13 when a
    rule ended in error (the evaluation is stored, without that rule's findings)."""
    from auditor.rules.evaluate import evaluate, select_snapshots

    config = obj.config
    ruleset = _ruleset(config)
    ids = select_snapshots(config.database, snapshot_spec, cloud_name)
    with _stop_on_signals() as stop:
        results = evaluate(config.database, ruleset, ids, stop=stop,
                           memory_limit=config.database_memory_limit)
    sys.exit(_report_evaluations(results, fail_on))


@cli.command()
@_cloud_option
@_region_option
@_scope_option
@click.option("--fail-on", type=SEVERITY_CHOICE,
              help=f"Exit {EXIT_FINDINGS} when there are new unwaived findings of this severity or worse.")
@click.option("--no-report", is_flag=True, help="Do not write the reports ([report] in auditor.toml says where).")
@click.pass_obj
def run(obj: Context, cloud_name, regions, scope, fail_on, no_report):
    """The main job: snapshot, evaluate every snapshot that holds data, and write its report. Exit 1 if a
    snapshot is partial, 3 if one failed, 8 on --fail-on findings, 9 if a report could not be written,
    13 if a rule ended in error."""
    from auditor.rules.evaluate import evaluate

    config = obj.config
    ruleset = _ruleset(config)  # bad rules or waivers stop the job before it collects anything
    results = _snapshot(config, _targets(config, cloud_name, regions, scope))
    ids = [r.snapshot_id for r in results if r.snapshot_id is not None and r.status != "failed"]
    with _stop_on_signals() as stop:
        evaluations = evaluate(config.database, ruleset, ids, stop=stop,
                               memory_limit=config.database_memory_limit)
    code = _report_evaluations(evaluations, fail_on)
    if not no_report:
        code = max(code, _write_reports(config, ruleset.catalog, [e.snapshot_id for e in evaluations],
                                        config.report.formats, None))
    click.echo(_where(config))
    sys.exit(max(_snapshot_exit(results), code))


def _write_reports(config: Config, catalog, snapshot_ids, formats, out_dir) -> int:
    """Write each snapshot's report; one that fails is reported and the others are still written."""
    from auditor.pipeline import write_reports

    code = 0
    for outcome in write_reports(config, catalog, snapshot_ids, formats, out_dir):
        if outcome.error:
            click.echo(f"auditor: error: report of snapshot {outcome.snapshot_id}: {outcome.error}", err=True)
            code = max(code, outcome.error.exit_code)
            continue
        click.echo(f"report of snapshot {outcome.snapshot_id}: {outcome.folder}")
        for key in ("html", "pdf"):
            if key in outcome.files:
                click.echo(f"  {key.upper()}: {outcome.files[key]}")
    return code


@cli.command("report")
@click.option("--snapshot", "snapshot_spec", default="latest", show_default=True,
              help="Snapshot id (it must have been evaluated), or 'latest': the newest evaluated snapshot of "
                   "every cloud/region.")
@click.option("--cloud", "cloud_name", help="With 'latest': only this cloud.")
@click.option("--format", "formats", multiple=True,
              help="html, pdf, csv, json; repeat or comma-separate (default: [report] formats, all four).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder (default: [report] out_dir).")
@click.pass_obj
def report_command(obj: Context, snapshot_spec, cloud_name, formats, out_dir):
    """Write the report of a snapshot: <out>/<cloud>/<region>/<snapshot time>/ with report.html, report.pdf,
    findings.csv, findings.json and inventory.csv, and refresh <out>/index.html."""
    from auditor.report.build import snapshots_to_report

    config = obj.config
    chosen = _split(formats) or config.report.formats
    for value in chosen:
        if value not in ("html", "pdf", "csv", "json"):
            raise click.BadParameter(f"unknown format {value!r} (html, pdf, csv, json)", param_hint="--format")
    catalog = _ruleset(config).catalog
    ids = snapshots_to_report(config.database, snapshot_spec, cloud_name)
    sys.exit(_write_reports(config, catalog, ids, tuple(chosen), Path(out_dir) if out_dir else None))


# -- email ------------------------------------------------------------------------------------------------
@cli.command("email")
@click.option("--snapshot", "snapshot_spec", default="latest", show_default=True,
              help="Snapshot id (it must have been evaluated), or 'latest': the newest evaluated snapshot of "
                   "every cloud/region.")
@click.option("--dry-run", is_flag=True, help="Write each message as an .eml file and print its path; send nothing.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="With --dry-run: folder for the .eml files (default: the report folder).")
@click.pass_obj
def email_command(obj: Context, snapshot_spec, dry_run, out_dir):
    """Send the digest of a snapshot to every recipient group of [email] (one message per group), writing
    the snapshot's report first if it does not exist yet. Exit 10 if a digest could not be built or sent."""
    from auditor.errors import NotifyError
    from auditor.pipeline import deliver_digests

    config = obj.config
    outcomes = deliver_digests(config, _ruleset(config).catalog, snapshot_spec, dry_run=dry_run,
                               out_dir=Path(out_dir) if out_dir else None)
    for outcome in outcomes:
        if outcome.report_written:
            click.echo(f"report of snapshot {outcome.snapshot_id}: {outcome.report_written}")
        where = f"snapshot {outcome.snapshot_id}, group {outcome.group}"
        if outcome.error:
            click.echo(f"auditor: error: snapshot {outcome.snapshot_id}: {outcome.error}", err=True)
        elif outcome.eml:
            click.echo(f"{where}: {outcome.eml}")
        else:
            click.echo(f"{where}: sent to {outcome.recipients} recipient{'s' if outcome.recipients != 1 else ''}")
    sys.exit(NotifyError.exit_code if any(o.error for o in outcomes) else 0)


# -- findings ---------------------------------------------------------------------------------------------
def _split(values) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


@cli.command()
@click.option("--snapshot", "snapshot_spec", default="latest", show_default=True,
              help="Snapshot id (its newest evaluation), or 'latest': the newest evaluation of every cloud/region.")
@click.option("--evaluation", type=int, help="One evaluation by id.")
@click.option("--cloud", "cloud_name", help="With 'latest': only this cloud.")
@click.option("--severity", "severities", multiple=True, help="critical, high, medium, low, info; repeat or comma-separate.")
@click.option("--status", "statuses", multiple=True, default=("fail",), show_default=True,
              help="pass, fail, skip, info, error or all; repeat or comma-separate.")
@click.option("--rule", "rule_id", help="Only this rule.")
@click.option("--project", help="Only this project (id or name).")
@click.option("--new", "new_only", is_flag=True, help="Only findings new since the previous snapshot.")
@click.option("--resolved", is_flag=True, help="List what was resolved since the previous snapshot instead.")
@click.option("--framework", help="Summarise pass/fail per control of a framework (e.g. cis_controls_v8).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--limit", type=click.IntRange(min=1), help="At most N rows.")
@click.pass_obj
def findings(obj: Context, snapshot_spec, evaluation, cloud_name, severities, statuses, rule_id, project, new_only,
             resolved, framework, fmt, limit):
    """List findings of the latest evaluation (or of --snapshot / --evaluation): failing ones by default,
    most severe first, with whether each is new, waived, and when it was first seen."""
    from auditor.rules.findings import (
        FindingFilter,
        framework_summary,
        list_findings,
        list_resolved,
    )

    severities, statuses = _split(severities), _split(statuses)
    for value in severities:
        if value not in SEVERITY_CHOICE.choices:
            raise click.BadParameter(f"unknown severity {value!r}", param_hint="--severity")
    for value in statuses:
        if value not in ("pass", "fail", "skip", "info", "error", "all"):
            raise click.BadParameter(f"unknown status {value!r}", param_hint="--status")
    flt = FindingFilter(snapshot=snapshot_spec, evaluation=evaluation, cloud=cloud_name, severities=severities,
                        statuses=() if "all" in statuses else statuses, rule=rule_id, project=project,
                        new_only=new_only, limit=limit)
    database = obj.config.database
    if framework:
        columns, rows = framework_summary(database, flt, _ruleset(obj.config).catalog, framework)
    elif resolved:
        columns, rows = list_resolved(database, flt)
    else:
        columns, rows = list_findings(database, flt)
    click.echo(render(columns, rows, fmt), nl=False)


# -- rules ------------------------------------------------------------------------------------------------
@cli.group()
def rules():
    """List, show, validate and test rules (shipped ones and the folders in [rules] paths)."""


@rules.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_obj
def rules_list(obj: Context, fmt):
    """Every rule: id, severity, resource type, pack, whether enabled, title."""
    from auditor.rules.catalog import SEVERITY_RANK

    ruleset = _ruleset(obj.config)
    enabled = {r.id for r in ruleset.enabled}
    rows = [(r.id, r.severity, r.resource_type, r.pack, r.id in enabled, r.title)
            for r in sorted(ruleset.catalog.rules.values(), key=lambda r: (SEVERITY_RANK[r.severity], r.id))]
    click.echo(render(["rule_id", "severity", "resource_type", "pack", "enabled", "title"], rows, fmt), nl=False)


@rules.command("show")
@click.argument("rule_id")
@click.pass_obj
def rules_show(obj: Context, rule_id):
    """One rule: metadata, parameters in effect, framework controls, file and query."""
    ruleset = _ruleset(obj.config)
    rule = ruleset.catalog.rules.get(rule_id)
    if rule is None:
        raise click.BadParameter(f"unknown rule {rule_id!r} (see `auditor rules list`)", param_hint="RULE_ID")
    params = ruleset.params.get(rule.id, rule.params)
    click.echo(f"{rule.id}  [{rule.severity}] {rule.title}")
    click.echo(f"resource type: {rule.resource_type}    pack: {rule.pack}    file: {rule.path}")
    click.echo(f"enabled: {'yes' if rule.id in ruleset.params else 'no (rules.disabled)'}")
    for label, text in (("description", rule.description), ("rationale", rule.rationale),
                        ("remediation", rule.remediation)):
        click.echo(f"\n{label}:\n  {text}")
    if params:
        click.echo("\nparameters:")
        for name, value in params.items():
            note = "" if value == rule.params.get(name) else f"   (default {rule.params.get(name)!r})"
            click.echo(f"  {name} = {value!r}{note}")
    controls = ruleset.catalog.controls_of(rule.id)
    if controls:
        click.echo("\nframeworks:")
        for framework_id, control_ids in controls.items():
            click.echo(f"  {framework_id}: {', '.join(control_ids)}")
    for url in rule.references:
        click.echo(f"reference: {url}")
    click.echo("\nquery:")
    click.echo(rule.sql.split("---*/", 1)[1].strip())


def _roots_with(config: Config, path: str | None):
    """The [rules] settings, with the folder of `path` added to the rule folders when it is not one yet."""
    settings = config.rules
    if path:
        folder = Path(path)
        if not folder.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="PATH")
        if folder.is_file():
            folder = folder.parent
        from auditor.rules.evaluate import rule_roots

        roots = [p.resolve() for p in rule_roots(settings)]
        inside = any(folder.resolve() == root or root in folder.resolve().parents for root in roots)
        if not inside:  # a folder of rules not configured yet (a file under a configured one loads once)
            settings = dataclasses.replace(settings, paths=settings.paths + (folder,))
    return settings


def _selected(ruleset, path: str | None):
    if not path:
        return ruleset.enabled
    target = Path(path).resolve()
    chosen = [r for r in ruleset.catalog.rules.values()
              if r.path.resolve() == target or target in r.path.resolve().parents]
    return sorted(chosen, key=lambda r: r.id)


@rules.command("validate")
@click.argument("path", required=False)
@click.pass_obj
def rules_validate(obj: Context, path):
    """Check rule files (all, or those under PATH), framework files, the instance-type mapping and the
    waivers: YAML, keys, severities, parameters, and each query against the real schema. Lists every
    problem as file:line and exits 6 if there is one."""
    from auditor.rules.evaluate import check_catalog_sql, load_ruleset

    config = obj.config
    ruleset = load_ruleset(_roots_with(config, path), config.source)
    selected = _selected(ruleset, path)
    if path and not selected:
        raise RuleError(f"{path}: no rule file (*.sql) found there")
    problems = check_catalog_sql(ruleset, selected)
    if problems:
        raise RuleError(problems)
    click.echo(f"{len(selected)} rules valid; {len(ruleset.catalog.frameworks)} frameworks, "
               f"{len(ruleset.instance_types)} instance types, {len(ruleset.waivers)} waivers checked")


@rules.command("test")
@click.argument("path", required=False)
@click.option("-q", "--quiet", is_flag=True, help="Print failures and the summary only.")
@click.pass_obj
def rules_test(obj: Context, path, quiet):
    """Run each rule's test cases (<rule_id>.test.yaml beside it): all rules, or those under PATH.
    Exits 6 if a case fails or a rule has no case."""
    from auditor.rules.cases import run_rule_cases
    from auditor.rules.evaluate import load_ruleset

    config = obj.config
    ruleset = load_ruleset(_roots_with(config, path), config.source)
    selected = _selected(ruleset, path) if path else sorted(ruleset.catalog.rules.values(), key=lambda r: r.id)
    failed, total, problems = 0, 0, []
    for rule in selected:
        results = run_rule_cases(rule)
        if not results:
            problems.append(f"{rule.path}: no test cases ({rule.cases_path.name} is missing)")
        for result in results:
            total += 1
            if result.passed:
                if not quiet:
                    click.echo(f"PASS {rule.id}: {result.name}")
            else:
                failed += 1
                click.echo(f"FAIL {rule.id}: {result.name}")
                for problem in result.problems:
                    click.echo(f"     {problem}")
    click.echo(f"{total - failed} of {total} cases passed in {len(selected)} rules")
    if failed or problems:
        raise RuleError(problems + ([f"{failed} case(s) failed"] if failed else []))


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
    _ruleset(config)  # bad rule, waiver or mapping files stop the service before it starts
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
    ruleset = _ruleset(config)
    with FakeCloud(load_fixture(data_dir("sample_data") / "demo-cloud")) as cloud, \
            tempfile.TemporaryDirectory(prefix="auditor-demo-") as tmp:
        clouds_yaml = Path(tmp) / "clouds.yaml"
        clouds_yaml.write_text(yaml.safe_dump({"clouds": {"demo": cloud.clouds_yaml_entry()}}), encoding="utf-8")
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
        click.echo(f"demo cloud served at {cloud.url}")
        with _stop_on_signals() as stop:
            results = snapshot_targets(config, [CloudTarget("demo")], stop)
    for result in results:
        click.echo(result.summary())
    click.echo("")
    click.echo(inventory_summary(config.database, results[-1].snapshot_id), nl=False)
    click.echo("")
    evaluations = evaluate(database, ruleset, [r.snapshot_id for r in results if r.status != "failed"],
                           memory_limit=config.database_memory_limit)
    _report_evaluations(evaluations, None)
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


if __name__ == "__main__":  # pragma: no cover
    main()
