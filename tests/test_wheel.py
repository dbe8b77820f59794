"""The built wheel works outside the repo: rules/, reports/ and sample_data/ ship inside it.

The wheel is installed on its own (`--no-deps`) into a folder that comes first on PYTHONPATH, and run by the
test environment's Python from another directory: the dependencies are the ones `make test` installed from
the same pyproject.toml, and a fresh venv resolving them again would only cost a minute of CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import duckdb
from conftest import REPO


def test_wheel_installed_elsewhere_serves_snapshots_and_evaluates_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
                   check=True, capture_output=True)
    [wheel] = dist.glob("*.whl")
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OS_CLOUD", "OS_CLIENT_CONFIG_FILE")}
    env["PYTHONPATH"] = str(target)  # before the repository's editable install
    auditor = [sys.executable, "-m", "auditor"]
    located = subprocess.run(
        [sys.executable, "-c", "import auditor; from auditor.resources import data_dir; "
         "print(auditor.__file__, *(data_dir(n) for n in ('rules', 'reports', 'sample_data')))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )
    for path in located.stdout.split():
        assert path.startswith(str(target)), path

    clouds = elsewhere / "clouds.yaml"
    server = subprocess.Popen([*auditor, "fake-cloud", "--port", "0", "--write-clouds-yaml", str(clouds)],
                              cwd=elsewhere, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "fake cloud listening" in server.stdout.readline()
        done = subprocess.run([*auditor, "run", "--cloud", "fake"], cwd=elsewhere,
                              env={**env, "OS_CLIENT_CONFIG_FILE": str(clouds)}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        # the shipped rules, frameworks and instance-type mapping came with the wheel
        assert "evaluation 1 of snapshot 1" in done.stdout
        # and the report templates: the HTML and the PDF were written under ./output
        assert (elsewhere / "output" / "index.html").is_file()
        assert [p.name for p in (elsewhere / "output").rglob("report.pdf")] == ["report.pdf"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    con = duckdb.connect(str(elsewhere / "audit.duckdb"), read_only=True)  # the catalog, read by any DuckDB
    try:
        assert con.execute("SELECT status, server_count > 0 FROM snapshots").fetchall() == [("complete", True)]
        rules = con.execute("SELECT count(*), count(*) FILTER (WHERE outcome = 'ran') FROM evaluation_rules").fetchall()
        assert rules[0][0] >= 20 and rules[0][0] == rules[0][1]
    finally:
        con.close()
