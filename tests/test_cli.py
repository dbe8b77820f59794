"""The command line end to end: snapshot, snapshots, config errors, fake-cloud, demo, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import query, run_cli

from auditor.store.database import lake_path


def test_snapshot_then_list_snapshots(clouds_yaml, tmp_path, demo_fixture):
    database = tmp_path / "audit.duckdb"
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds_yaml), "OS_CLOUD": "demo"}
    done = run_cli("--database", str(database), "snapshot", env=env)
    assert done.returncode == 0, done.stderr
    assert f"{len(demo_fixture['servers'])} servers" in done.stdout and "complete" in done.stdout
    listed = run_cli("--database", str(database), "snapshots", "--format", "json")
    [row] = json.loads(listed.stdout)
    assert (row["cloud"], row["region"], row["status"], row["scope"]) == ("demo", "RegionOne", "complete", "cloud")
    assert row["servers"] == len(demo_fixture["servers"])


def test_config_file_drives_the_snapshot(clouds_yaml, tmp_path):
    config = tmp_path / "auditor.toml"
    config.write_text('database = "data/audit.duckdb"\n[[clouds]]\nname = "alice"\n'
                      '[collection]\npage_size = 2\nconcurrency = 2\n')
    done = run_cli("--config", str(config), "snapshot", env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)})
    assert done.returncode == 0, done.stderr
    database = tmp_path / "data" / "audit.duckdb"  # relative to the config file
    assert query(database, "SELECT cloud, scope FROM snapshots") == [("alice", "projects")]


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("databse = 'x.duckdb'\n", "databse", "unknown key"),
        ("[collection]\ntimeout = 'fast'\n", "collection.timeout", "a number"),
        ("[collection]\nconcurrency = 0\n", "collection.concurrency", "from 1 to 64"),
        ("[[clouds]]\nregions = ['r1']\n", "clouds[0].name", "cloud name"),
        ("[[clouds]]\nname = 'c'\nscope = 'everything'\n", "clouds[0].scope", "one of auto, cloud, project"),
        ("clouds = 'c'\n", "clouds", "array of tables"),
        ("database_memory_limit = 'lots'\n", "database_memory_limit", "a size such as"),
        ("[collection\n", "", "not valid TOML"),
        ("[rules]\npaths = ['no-such-folder']\n", "rules.paths", "does not exist"),
        ("[rules]\ndisabled = 'all'\n", "rules.disabled", "a list of rule ids"),
        ("[rules]\ntimeout = 0\n", "rules.timeout", "from 1 to 86400"),
        ("[rules]\nwaiver = 'w.yaml'\n", "rules.waiver", "unknown key"),
        ("[rules.params]\nx = 1\n", "rules.params", "one table per rule"),
        ("[report]\nformats = ['html', 'docx']\n", "report.formats", "a non-empty list of html, pdf, csv, json"),
        ("[report]\npdf_timeout = 1\n", "report.pdf_timeout", "from 5 to 3600"),
        ("[report]\noutdir = 'x'\n", "report.outdir", "unknown key"),
    ],
)
def test_config_errors_name_file_key_and_expectation(tmp_path, text, key, expected):
    config = tmp_path / "auditor.toml"
    config.write_text(text)
    done = run_cli("--config", str(config), "snapshot")
    assert done.returncode == 2
    assert str(config) in done.stderr and expected in done.stderr
    assert f"'{key}'" in done.stderr or not key
    assert "Traceback" not in done.stderr


def test_missing_config_file_is_named(tmp_path):
    done = run_cli("snapshot", env={"AUDITOR_CONFIG": str(tmp_path / "nope.toml")})
    assert done.returncode == 2 and "nope.toml" in done.stderr


def test_no_cloud_given_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OS_CLOUD"}
    done = subprocess.run([sys.executable, "-m", "auditor", "--database", str(tmp_path / "a.duckdb"), "snapshot"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "no cloud to snapshot" in done.stderr


def test_fake_cloud_command_serves_a_cloud_that_snapshot_reads(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    server = subprocess.Popen([sys.executable, "-m", "auditor", "fake-cloud", "--generate", "300", "--seed", "7",
                               "--port", "0", "--write-clouds-yaml", str(clouds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        header = server.stdout.readline()
        assert "fake cloud listening on http://127.0.0.1:" in header
        printed = "".join(server.stdout.readline() for _ in clouds.read_text().splitlines())
        assert printed == clouds.read_text()
        entry = yaml.safe_load(printed)["clouds"]["fake"]
        assert entry["auth"]["auth_url"].startswith("http://127.0.0.1:")
        database = tmp_path / "audit.duckdb"
        done = run_cli("--database", str(database), "snapshot", "--cloud", "fake",
                       env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
        assert done.returncode == 0, done.stderr
        assert query(database, "SELECT server_count FROM snapshots") == [(300,)]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


def test_sigterm_mid_collection_stops_between_pages_and_writes_nothing(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"/servers/detail", latency=0.3)
    config = tmp_path / "auditor.toml"
    config.write_text("[collection]\npage_size = 1\n")
    database = tmp_path / "audit.duckdb"
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "--config", str(config), "--database",
                             str(database), "snapshot", "--cloud", "demo"],
                            env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds_yaml)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(fake_cloud.requests_to(r"/servers/detail")) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "stopped" in err
    served = len(fake_cloud.requests_to(r"/servers/detail"))
    assert served < 10, "the collection went on after SIGTERM"
    assert not database.exists() or query(database, "SELECT count(*) FROM snapshots") == [(0,)]
    assert not list(lake_path(database).glob("*/snapshot_id=1"))  # nothing of it in the lake either


def test_demo_runs_the_main_job_and_says_where_the_database_is(tmp_path):
    done = run_cli("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    database = tmp_path / "demo" / "audit.duckdb"
    assert f"DuckDB snapshot database: {database}" in done.stdout
    assert "Servers by zone and status" in done.stdout
    assert query(database, "SELECT cloud, status FROM snapshots") == [("demo", "complete")]
    # it evaluates too, and its top findings are the most severe failing ones in the database
    assert "evaluation 1 of snapshot 1 (demo/RegionOne, complete)" in done.stdout
    top = done.stdout.split("Top findings", 1)[1]
    worst = query(database, "SELECT resource_name FROM findings WHERE status = 'fail' AND severity = 'critical'")
    assert worst and all(name in top for (name,) in worst)
    # and it ends with the paths of the HTML and PDF report, which exist
    html = re.search(r"HTML report: +(\S+)", done.stdout).group(1)
    pdf = re.search(r"PDF report: +(\S+)", done.stdout).group(1)
    assert Path(html).is_file() and Path(pdf).read_bytes().startswith(b"%PDF-")
    assert Path(html).is_relative_to(tmp_path / "demo" / "reports")


def test_the_sample_config_is_valid():
    from conftest import REPO

    from auditor.config import load_config

    config = load_config(REPO / "sample_data" / "auditor.toml")
    assert [c.name for c in config.clouds] == ["mycloud"]
    assert config.database == REPO / "sample_data" / "audit.duckdb"
    assert config.collection.page_size == 1000 and config.database_memory_limit == "1GB"
    assert config.rules.instance_types == REPO / "sample_data" / "instance_types.yaml"
    assert config.report.out_dir == REPO / "sample_data" / "output" and config.report.pdf_max_rows == 1000
    assert config.rules.params == {"security_group_admin_ports_not_open_to_world":
                                   {"admin_ports": [22, 2222, 3389, 5985, 5986]}}
    from auditor.rules.evaluate import load_ruleset
    from auditor.rules.waivers import load_waivers

    ruleset = load_ruleset(config.rules, config.source)  # parameters checked against the rules
    assert ruleset.params["security_group_admin_ports_not_open_to_world"]["admin_ports"][1] == 2222
    assert [w.id for w in load_waivers(REPO / "sample_data" / "waivers.yaml", set(ruleset.catalog.rules))] == [
        "storefront-bastion-ssh", "labs-scratch-servers"]


def test_fake_cloud_latency_delays_every_get(tmp_path):
    import http.client
    from urllib.parse import urlsplit

    clouds = tmp_path / "clouds.yaml"
    server = subprocess.Popen([sys.executable, "-m", "auditor", "fake-cloud", "--latency-ms", "300", "--port", "0",
                               "--write-clouds-yaml", str(clouds)], stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        auth_url = urlsplit(yaml.safe_load(clouds.read_text())["clouds"]["fake"]["auth"]["auth_url"])
        connection = http.client.HTTPConnection(auth_url.hostname, auth_url.port, timeout=10)
        started = time.monotonic()
        connection.request("GET", auth_url.path)
        answer = connection.getresponse()
        answer.read()
        assert answer.status in (200, 300)
        assert time.monotonic() - started >= 0.3  # a lower bound: the wait happened
        connection.close()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
