"""Commands that read the history back: snapshots, sql, findings, inventory, changes."""

from __future__ import annotations

import sys

import click
import orjson

from auditor.cli.base import SEVERITY_CHOICE, Context, cli, load_rules, split_values
from auditor.output import render, terminal_safe
from auditor.store.inventory import BY


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



# -- findings ---------------------------------------------------------------------------------------------
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
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "ocsf"]), default="table",
              help="ocsf: one OCSF 1.5 finding per line (JSON Lines) for a SIEM; docs/ocsf.md.")
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

    severities, statuses = split_values(severities), split_values(statuses)
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
    if fmt == "ocsf":
        if framework:
            raise click.BadParameter("ocsf lists findings: not with --framework", param_hint="--format")
        from auditor.report.ocsf import standards, write_filtered

        write_filtered(database, flt, standards(load_rules(obj.config).catalog), sys.stdout.buffer, resolved)
        sys.stdout.buffer.flush()
        return
    if framework:
        columns, rows = framework_summary(database, flt, load_rules(obj.config).catalog, framework)
    elif resolved:
        columns, rows = list_resolved(database, flt)
    else:
        columns, rows = list_findings(database, flt)
    click.echo(render(columns, rows, fmt), nl=False)


# -- inventory --------------------------------------------------------------------------------------------
@cli.command()
@click.option("--snapshot", "snapshot_spec", default="latest", show_default=True,
              help="Snapshot id, or 'latest': the newest complete snapshot of every cloud/region.")
@click.option("--cloud", "cloud_name", help="With 'latest': only this cloud.")
@click.option("--project", help="Only this project (id or name).")
@click.option("--zone", help="Only this availability zone.")
@click.option("--instance-type", help="Only servers of this approved instance type.")
@click.option("--unmapped", is_flag=True, help="Only servers whose flavor no approved instance type maps.")
@click.option("--by", type=click.Choice(BY), help="Count servers per instance type, zone, image or project instead.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--limit", type=click.IntRange(min=1), help="At most N rows.")
@click.pass_obj
def inventory(obj: Context, snapshot_spec, cloud_name, project, zone, instance_type, unmapped, by, fmt, limit):
    """List the instances of the latest snapshot (or of --snapshot): one row each with its project, status,
    normalized instance type (by the mapping its snapshot was evaluated with), flavor, image, zone,
    security groups, fixed and floating addresses and when auditor first saw it. csv and json carry
    every column (docs/cli.md); the table shows the main ones."""
    from auditor.store.inventory import InventoryFilter, count_inventory, for_export, for_table, list_inventory

    if instance_type and unmapped:
        raise click.BadParameter("--instance-type and --unmapped exclude each other", param_hint="--unmapped")
    flt = InventoryFilter(snapshot=snapshot_spec, cloud=cloud_name, project=project, zone=zone,
                          instance_type=instance_type, unmapped=unmapped, limit=limit)
    if by:
        columns, rows = count_inventory(obj.config.database, flt, by)
    else:
        columns, rows = list_inventory(obj.config.database, flt)
        columns, rows = for_table(columns, rows) if fmt == "table" else for_export(columns, rows, fmt == "csv")
    click.echo(render(columns, rows, fmt), nl=False)


# -- changes ----------------------------------------------------------------------------------------------
@cli.command()
@click.option("--from", "from_id", type=int, help="The older snapshot (default: the complete one before --to).")
@click.option("--to", "to_id", type=int,
              help="The newer snapshot (default: the newest complete snapshot of every cloud/region).")
@click.option("--cloud", "cloud_name", help="Without --to: only this cloud.")
@click.option("--type", "resource_type", help="Only this resource table (servers, security_group_rules, ...).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_obj
def changes(obj: Context, from_id, to_id, cloud_name, resource_type, fmt):
    """What was added, removed and modified between two snapshots of one cloud/region, per resource type,
    with each modified field's old and new value (default: the newest complete snapshot of every
    cloud/region against the complete one before it)."""
    from auditor.store.changes import COLUMNS, ChangeRequest, list_changes
    from auditor.store.database import open_reader

    con = open_reader(obj.config.database)
    try:
        compared, notes = list_changes(con, ChangeRequest(from_id, to_id, cloud_name, resource_type))
    finally:
        con.close()
    for note in notes:
        click.echo(f"auditor: {terminal_safe(note)}", err=True)
    where = ("cloud", "region", "from_snapshot_id", "to_snapshot_id")
    if fmt == "json":
        records = [dict(zip(COLUMNS, row[:5], strict=False)) | {"fields": orjson.loads(row[5]) if row[5] else None}
                   | dict(zip(where, (cloud, region, old, new), strict=True))
                   for (old, new, cloud, region), rows in compared for row in rows]
        click.echo(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode())
    elif fmt == "csv":
        click.echo(render(list(COLUMNS) + list(where), [row + (cloud, region, old, new) for (old, new, cloud, region),
                                                         rows in compared for row in rows], "csv"), nl=False)
    else:
        click.echo(_changes_table(compared), nl=False)


def _changes_table(compared) -> str:
    """Per compared pair, per resource type: a count line, then its rows with each change as old -> new."""
    lines = []
    for (old, new, cloud, region), rows in compared:
        lines.append(terminal_safe(f"{cloud}/{region}: snapshot {old} -> {new}: {len(rows)} change"
                                   f"{'s' if len(rows) != 1 else ''}"))
        by_type: dict[str, list[tuple]] = {}
        for row in rows:
            by_type.setdefault(row[0], []).append(row)
        for resource_type, typed in by_type.items():
            counts = {c: sum(r[4] == c for r in typed) for c in ("added", "removed", "modified")}
            lines.append("\n" + f"{resource_type}: " + ", ".join(f"{n} {c}" for c, n in counts.items() if n))
            shown = [(r[4], r[2], r[1], r[3], _fields_text(r[5])) for r in typed]
            lines.append(render(["change", "name", "id", "project_id", "fields"], shown, "table").rstrip("\n"))
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def _fields_text(fields: str | None) -> str:
    if not fields:
        return ""
    return "; ".join(f"{name}: {_json_text(old)} -> {_json_text(new)}"
                     for name, (old, new) in orjson.loads(fields).items())


def _json_text(value) -> str:
    return "null" if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()
