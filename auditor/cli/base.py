"""What every command shares: the `auditor` group, its context (the config, loaded once), the error
handling of `main`, exit codes, options and helpers used by several commands."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import click
import duckdb

from auditor import __version__
from auditor.config import OWNER_ONLY_UMASK, CloudTarget, Config, load_config
from auditor.errors import AuditorError, CollectionCancelled, ConfigError, StoreError
from auditor.logs import configure as configure_logging
from auditor.logs import mask, scrub


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
cloud_option = click.option("--cloud", "cloud_name", envvar="OS_CLOUD",
                             help="Cloud name from clouds.yaml (default: $OS_CLOUD, else the clouds in auditor.toml).")
region_option = click.option("--region", "regions", multiple=True,
                              help="Region to collect; repeat for several (default: all).")
scope_option = click.option("--scope", type=click.Choice(["auto", "cloud", "project"]), default=None,
                             help="auto: cloud-wide with admin credentials, else the user's projects.")



def targets_from(config: Config, cloud_name, regions, scope) -> list[CloudTarget]:
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


def where_stored(config: Config) -> str:
    from auditor.store.database import lake_path

    return f"database: {config.database}  (its history, as Parquet: {lake_path(config.database)})"


@contextmanager
def stop_on_signals():
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



def load_rules(config: Config):
    from auditor.rules.evaluate import load_ruleset

    return load_ruleset(config.rules, config.source)

def split_values(values) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())
