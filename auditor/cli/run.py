"""The main job's commands: snapshot, evaluate, run, report, email."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from auditor.cli.base import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_PARTIAL,
    EXIT_RULE_ERRORS,
    SEVERITY_CHOICE,
    Context,
    cli,
    cloud_option,
    load_rules,
    region_option,
    scope_option,
    split_values,
    stop_on_signals,
    targets_from,
    where_stored,
)
from auditor.config import CloudTarget, Config
from auditor.logs import scrub


@cli.command()
@cloud_option
@region_option
@scope_option
@click.pass_obj
def snapshot(obj: Context, cloud_name, regions, scope):
    """Snapshot clouds into the database; exit 1 if any snapshot is partial, 3 if one failed."""
    config = obj.config
    results = _snapshot(config, targets_from(config, cloud_name, regions, scope))
    click.echo(where_stored(config))
    sys.exit(_snapshot_exit(results))


def _snapshot(config: Config, targets: list[CloudTarget]):
    from auditor.pipeline import snapshot_targets

    with stop_on_signals() as stop:
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


def report_evaluations(results, fail_on) -> int:
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
    ruleset = load_rules(config)
    ids = select_snapshots(config.database, snapshot_spec, cloud_name)
    with stop_on_signals() as stop:
        results = evaluate(config.database, ruleset, ids, stop=stop,
                           memory_limit=config.database_memory_limit)
    sys.exit(report_evaluations(results, fail_on))


@cli.command()
@cloud_option
@region_option
@scope_option
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
    ruleset = load_rules(config)  # bad rules or waivers stop the job before it collects anything
    results = _snapshot(config, targets_from(config, cloud_name, regions, scope))
    ids = [r.snapshot_id for r in results if r.snapshot_id is not None and r.status != "failed"]
    with stop_on_signals() as stop:
        evaluations = evaluate(config.database, ruleset, ids, stop=stop,
                               memory_limit=config.database_memory_limit)
    code = report_evaluations(evaluations, fail_on)
    if not no_report:
        code = max(code, _write_reports(config, ruleset.catalog, [e.snapshot_id for e in evaluations],
                                        config.report.formats, None))
    click.echo(where_stored(config))
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
    findings.csv, findings.jsonl, findings.ocsf.jsonl and inventory.csv, and refresh <out>/index.html."""
    from auditor.report.build import snapshots_to_report

    config = obj.config
    chosen = split_values(formats) or config.report.formats
    for value in chosen:
        if value not in ("html", "pdf", "csv", "json"):
            raise click.BadParameter(f"unknown format {value!r} (html, pdf, csv, json)", param_hint="--format")
    catalog = load_rules(config).catalog
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
    outcomes = deliver_digests(config, load_rules(config).catalog, snapshot_spec, dry_run=dry_run,
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
