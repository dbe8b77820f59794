"""`auditor rules`: list, show, validate and test rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from auditor.cli.base import Context, cli, load_rules
from auditor.config import Config
from auditor.errors import RuleError
from auditor.output import render


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

    ruleset = load_rules(obj.config)
    enabled = {r.id for r in ruleset.enabled}
    rows = [(r.id, r.severity, r.resource_type, r.pack, r.id in enabled, r.title)
            for r in sorted(ruleset.catalog.rules.values(), key=lambda r: (SEVERITY_RANK[r.severity], r.id))]
    click.echo(render(["rule_id", "severity", "resource_type", "pack", "enabled", "title"], rows, fmt), nl=False)


@rules.command("show")
@click.argument("rule_id")
@click.pass_obj
def rules_show(obj: Context, rule_id):
    """One rule: metadata, parameters in effect, framework controls, file and query."""
    ruleset = load_rules(obj.config)
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
    if rule.evidence:
        click.echo("\nevidence:")
        for key, meaning in rule.evidence.items():
            click.echo(f"  {key}: {meaning}")
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
