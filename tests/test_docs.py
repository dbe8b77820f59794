"""Interfaces users rely on are documented: every command in docs/cli.md, every config key in
docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

import click

from auditor import config
from auditor.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands(group: click.Group, prefix: str = "auditor") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_command_and_exit_code_is_in_the_cli_docs():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in _commands(cli) if f"`{name}" not in text]
    assert not missing, f"undocumented in docs/cli.md: {missing}"
    from auditor import errors

    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.AuditorError) and cls is not errors.AuditorError}
    documented = {int(c) for c in re.findall(r"^\| (\d+) \|", text, re.M)}
    assert codes <= documented, f"exit codes missing from docs/cli.md: {sorted(codes - documented)}"


def test_every_config_key_is_in_the_configuration_docs():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    sections = {
        "": config._TOP_KEYS,
        "[collection].": set(config._COLLECTION_LIMITS),
        "[rules].": config._RULES_KEYS - {"params"},
        "[report].": {"out_dir", "formats", *config._REPORT_LIMITS},
        "[email].": config._EMAIL_KEYS - {"groups"},
        "[service].": config._SERVICE_KEYS - {"http"},
        "[service.http].": {"host", *config._HTTP_LIMITS},
        "[retention].": set(config._RETENTION_LIMITS),
        "clouds[].": config._CLOUD_KEYS,
        "email.groups[].": config._GROUP_KEYS,
    }
    missing = []
    for prefix, keys in sections.items():
        for key in keys:
            if prefix == "" and key in ("clouds", "collection", "rules", "report", "email", "service", "retention"):
                continue  # tables: their keys are checked below
            if f"`{prefix}{key}`" not in text:
                missing.append(f"{prefix}{key}")
    assert not missing, f"undocumented in docs/configuration.md: {sorted(missing)}"


def test_the_rules_giving_evidence_are_the_ones_documented():
    from auditor.rules.catalog import load_catalog

    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    table = text.split("## Evidence", 1)[1].split("## ", 1)[0]
    documented = {m.group(1): set(re.findall(r"`(\w+)`:", m.group(2)))
                  for m in re.finditer(r"^\| `(\w+)` \| (.*) \|$", table, re.M)}
    catalog = load_catalog([DOCS.parent / "rules"])
    giving = {rule.id: set(rule.evidence) for rule in catalog.rules.values() if rule.evidence}
    assert giving and documented == giving
