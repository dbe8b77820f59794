"""The `auditor` command line (docs/cli.md). Each command is a thin shell over the pipeline; a module per
group of commands registers them on the one `cli` group."""

from auditor.cli import read, rules, run, service  # noqa: F401  (registers the commands)
from auditor.cli.base import cli, main

__all__ = ["cli", "main"]
