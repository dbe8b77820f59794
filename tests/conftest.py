"""Shared test parts: the fake cloud over HTTP on 127.0.0.1, clouds.yaml, a real DuckDB file, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from auditor.collect.collector import Collector
from auditor.config import CloudTarget, CollectionSettings, Config
from auditor.fakecloud import FakeCloud, load_fixture
from auditor.pipeline import snapshot_targets

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "sample_data" / "demo-cloud"
SAMPLES = REPO / "tests" / "api-samples"  # copied from the upstream projects: see SOURCES.md there


@pytest.fixture(scope="session")
def demo_fixture() -> dict:
    return load_fixture(DEMO)


@pytest.fixture
def fake_cloud(demo_fixture):
    with FakeCloud(demo_fixture) as cloud:
        yield cloud


@pytest.fixture(scope="session")
def demo_database(demo_fixture, tmp_path_factory) -> Path:
    """One snapshot of the demo cloud, shared by the tests that only read it (never write to it)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        database, result = snapshot_of(demo_fixture, tmp_path_factory.mktemp("demo-database"), monkeypatch)
    assert result.status == "complete", result.errors
    return database


def snapshot_of(fixture: dict, folder: Path, monkeypatch) -> tuple[Path, object]:
    """Serve `fixture` from a fake cloud of its own and snapshot it into folder/audit.duckdb."""
    with FakeCloud(fixture) as cloud:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        [result] = snapshot_into(folder / "audit.duckdb")
    return folder / "audit.duckdb", result


def write_clouds_yaml(path: Path, clouds: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"clouds": clouds}), encoding="utf-8")
    return path


@pytest.fixture
def clouds_yaml(tmp_path, monkeypatch, fake_cloud):
    """clouds.yaml with `demo` (admin), `alice` (member of two projects) and `appcred` for the fake cloud."""
    path = write_clouds_yaml(tmp_path / "clouds.yaml", {
        "demo": fake_cloud.clouds_yaml_entry(),
        "alice": fake_cloud.clouds_yaml_entry("alice"),
        "appcred": fake_cloud.clouds_yaml_entry(application_credential=True),
    })
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    monkeypatch.delenv("OS_CLOUD", raising=False)
    return path


def settings(**overrides) -> CollectionSettings:
    base = {"timeout": 5.0, "retries": 1, "backoff": 0.01, "concurrency": 4, "page_size": 1000}
    base.update(overrides)
    return CollectionSettings(**base)


def collect(cloud: str = "demo", scope: str = "auto", **overrides):
    """Collect without writing; the spool stays (in the system temp folder) so tests can read the pages."""
    collector = Collector(settings(**overrides))
    try:
        return collector.collect(CloudTarget(cloud, scope=scope), "")
    finally:
        collector.pool.shutdown()


def snapshot_into(database: Path, cloud: str = "demo", **overrides):
    config = Config(source=None, database=database, collection=settings(**overrides))
    return snapshot_targets(config, [CloudTarget(cloud)], threading.Event())


def served_snapshot(fixture: dict, folder: Path, monkeypatch, asked: str, user: str | None = None, faults=(),
                    **overrides):
    """Serve `fixture` (with `faults`) from a fake cloud of its own and snapshot it as `user` into
    folder/audit.duckdb: (database, result, {resource type: "<status> <rows>"}, the requests matching `asked`)."""
    folder.mkdir(parents=True, exist_ok=True)
    with FakeCloud(fixture) as cloud:
        for fault in faults:
            cloud.add_fault(**fault)
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry(user)})))
        database = folder / "audit.duckdb"
        [result] = snapshot_into(database, **overrides)
        requests = cloud.requests_to(asked)
    listed = dict(query(database, "SELECT resource_type, status || ' ' || row_count FROM snapshot_resources"))
    return database, result, listed, requests


def query(database: Path, sql: str, params=()):
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def run_cli(*args, env=None, cwd=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `auditor` command in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args], capture_output=True, text=True, env=full_env, cwd=cwd,
        timeout=timeout, **kwargs,
    )


def records(snapshot, resource_type: str) -> list[dict]:
    """The raw records a listing fetched, parsed from its pages (rules from their groups if embedded)."""
    import json

    listing = snapshot.listings[resource_type]
    if listing.embedded:
        groups = records(snapshot, "security_groups")
        return [rule for group in groups for rule in group["security_group_rules"]]
    decoder, found = json.JSONDecoder(), []
    for spool in listing.spools:
        text, position = spool.read_text(encoding="utf-8"), 0
        while position < len(text):
            page, end = decoder.raw_decode(text, position)
            found.extend(page[listing.key])
            position = end + 1  # each page is followed by a newline
    return found


def pytest_addoption(parser):
    parser.addoption("--regenerate-golden", action="store_true",
                     help="Rewrite golden files from the current output instead of comparing (review the diff!).")


@pytest.fixture
def regenerate_golden(request) -> bool:
    return request.config.getoption("--regenerate-golden")


def write_config(path: Path, text: str = "") -> Path:
    """An auditor.toml with the database beside it, plus `text`."""
    path.write_text(f'database = "audit.duckdb"\n{text}', encoding="utf-8")
    return path


def wait_until(condition, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


class Serve:
    """`auditor serve` in a subprocess, its log in a file."""

    def __init__(self, config: Path, env: dict[str, str]):
        self.log = config.parent / "serve.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "auditor", "--config", str(config), "serve"],
                                     stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **env})

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_started(self) -> None:
        assert wait_until(lambda: "auditor serve:" in self.text() or self.proc.poll() is not None, 60), self.text()
        assert self.proc.poll() is None, self.text()

    def terminate(self, within: float = 10.0) -> tuple[int, float]:
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(within + 5)
        finally:
            self.close()
        return code, time.monotonic() - sent

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def copy_store(source: Path, target: Path, link: bool = False) -> Path:
    """A copy of the store of `source` (its lake) for `target`, with a catalog of its own; with `link`, the
    lake's files are hard links (fast; fine for a test that removes files but never rewrites one)."""
    import shutil

    from auditor.store.database import lake_path, open_for_writing

    if link:  # cp -al: ten times as fast as copytree with os.link on a lake of tens of thousands of files
        subprocess.run(["cp", "-al", str(lake_path(source)), str(lake_path(target))], check=True)
    else:
        shutil.copytree(lake_path(source), lake_path(target))
    open_for_writing(target)
    return target


def rewrite_rows(database: Path, table: str, assignment: str, where: str = "true", params=()) -> None:
    """Tests only: rewrite `table`'s files in the lake of `database` with `UPDATE ... SET <assignment>`
    applied to its documented columns (`id` of a manifest included). The lake never rewrites a file itself;
    tests use this to pin times that differ run to run, or to age snapshots."""
    from auditor.store.database import lake_path
    from auditor.store.tables import file_columns, relation_sql

    columns = ", ".join(f'"{name}"' for name, _ in file_columns(table))
    for path in sorted((lake_path(database) / table).glob("*=*/part-0.parquet")):
        con = duckdb.connect()
        try:
            con.execute(f"CREATE TABLE t AS {relation_sql(table, [str(path)])}")
            con.execute(f"UPDATE t SET {assignment} WHERE {where}", list(params))
            con.execute(f"COPY (SELECT {columns} FROM t) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        finally:
            con.close()
