"""The `auditor` command line. Each command is a thin shell over the pipeline; see docs/cli.md."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import click
import yaml

from auditor import __version__
from auditor.config import CloudTarget, Config, load_config
from auditor.errors import AuditorError, CollectionCancelled, ConfigError
from auditor.output import render

EXIT_PARTIAL = 1
EXIT_FAILED = 3


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
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:  # keystoneauth's debug log would print request headers
        logging.getLogger("keystoneauth").setLevel(max(level, logging.WARNING))
        logging.getLogger("openstack").setLevel(max(level, logging.WARNING))
    ctx.obj = Context(config_path, database)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except AuditorError as exc:
        click.echo(f"auditor: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("auditor: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


# -- snapshot ---------------------------------------------------------------------------------------------
@cli.command()
@click.option("--cloud", "cloud_name", envvar="OS_CLOUD",
              help="Cloud name from clouds.yaml (default: $OS_CLOUD, else the clouds in auditor.toml).")
@click.option("--region", "regions", multiple=True, help="Region to collect; repeat for several (default: all).")
@click.option("--scope", type=click.Choice(["auto", "cloud", "project"]), default=None,
              help="auto: cloud-wide with admin credentials, else the user's projects.")
@click.pass_obj
def snapshot(obj: Context, cloud_name, regions, scope):
    """Snapshot clouds into the database; exit 1 if any snapshot is partial, 3 if one failed."""
    config = obj.config
    targets = _targets(config, cloud_name, regions, scope)
    from auditor.pipeline import snapshot_targets

    with _stop_on_signals() as stop:
        results = snapshot_targets(config, targets, stop)
    worst = 0
    for result in results:
        click.echo(result.summary())
        if result.status == "partial":
            worst = max(worst, EXIT_PARTIAL)
            for line in result.error_lines():
                click.echo(f"  {line}", err=True)
        elif result.status == "failed":
            worst = max(worst, EXIT_FAILED)
            for line in result.error_lines():
                click.echo(f"  {line}", err=True)
    click.echo(f"database: {config.database}  (read-only copy for SQL: {_published(config)})")
    sys.exit(worst)


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


def _published(config: Config) -> Path:
    from auditor.store.database import published_path

    return published_path(config.database)


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

    con = open_reader(_published(obj.config))
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
    """Run a read-only SQL QUERY on the published snapshot database ('-' reads it from stdin).

    Only SELECT-like statements run; the connection itself is read-only with file access and extension
    loading disabled, so INSERT, DROP, ATTACH, COPY ... TO and INSTALL are refused.
    """
    from auditor.store.query import run_read_only

    if query == "-":
        query = sys.stdin.read()
    columns, rows = run_read_only(_published(obj.config), query)
    click.echo(render(columns, rows, fmt), nl=False)


# -- fake-cloud -------------------------------------------------------------------------------------------
@cli.command("fake-cloud")
@click.option("--fixture", type=click.Path(file_okay=False), help="Fixture directory (default: the demo cloud).")
@click.option("--generate", type=click.IntRange(min=1), help="Serve a synthetic cloud of N servers instead.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for --generate.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--cloud-name", default="fake", show_default=True, help="Name of the printed clouds.yaml entry.")
@click.option("--write-clouds-yaml", type=click.Path(dir_okay=False), help="Also write the clouds.yaml to this file.")
def fake_cloud(fixture, generate, seed, host, port, cloud_name, write_clouds_yaml):
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
              help="Folder for the demo database.")
@click.pass_obj
def demo(obj: Context, out_dir):
    """Run the main job on the embedded demo cloud: serve it on 127.0.0.1, snapshot it, summarize."""
    from auditor.config import CollectionSettings
    from auditor.fakecloud import FakeCloud, load_fixture
    from auditor.pipeline import inventory_summary, snapshot_targets
    from auditor.resources import data_dir

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    database = Path(obj.database_override) if obj.database_override else out / "audit.duckdb"
    config = Config(source=None, database=database, collection=CollectionSettings())
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
    click.echo(inventory_summary(_published(config), results[-1].snapshot_id), nl=False)
    click.echo("")
    click.echo(f"DuckDB snapshot database: {database.resolve()}")
    click.echo(f"Read-only copy for SQL:   {_published(config).resolve()}")
    click.echo(f'Try: .venv/bin/auditor --database {database} sql "select status, count(*) from latest_servers group by 1"')
    sys.exit(0 if all(r.status == "complete" for r in results) else EXIT_PARTIAL)


if __name__ == "__main__":  # pragma: no cover
    main()
