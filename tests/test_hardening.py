"""Hardening, round 2 (issue 22), through the real CLI and the real service: credentials an operator wrote
into a clouds.yaml URL never leave it; operator mistakes in schedules and regions are one clear line with
the documented exit code, never a traceback. (The HTTP headers on every answer: tests/test_http.py.)"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
from conftest import Serve, run_cli, wait_until, write_clouds_yaml, write_config
from mailserver import free_port
from test_secrets import _file_texts

from auditor.fakecloud import FakeCloud

URL_USER = "CANARYurluser"
URL_PASSWORD = "CANARY-urlpw-6b1e0f"
URL_TOKEN = "CANARY-urltoken-d29a4c"
URL_OTHER = "CANARY-urlquery-77f3b2"  # a query value under an innocent name: registered all the same
CANARIES = (URL_USER, URL_PASSWORD, URL_TOKEN, URL_OTHER)


def _leaky_entry(cloud: FakeCloud, port: int) -> dict:
    """A clouds.yaml entry whose auth URL carries credentials, pointing at a port where nothing listens."""
    entry = copy.deepcopy(cloud.clouds_yaml_entry())
    entry["auth"]["auth_url"] = (f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}/identity"
                                 f"?token={URL_TOKEN}&project_hint={URL_OTHER}")
    return entry


def _assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary} in {where}"


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_credentials_in_the_auth_url_reach_no_log_error_or_lake(tmp_path, fake_cloud, verbosity):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"leaky": _leaky_entry(fake_cloud, free_port())})
    work = tmp_path / "work"
    work.mkdir()
    config = write_config(work / "auditor.toml", "[collection]\nretries = 1\nbackoff = 0.01\ntimeout = 2\n")
    done = run_cli("--config", str(config), *verbosity, "snapshot", "--cloud", "leaky",
                   env={"OS_CLIENT_CONFIG_FILE": str(clouds)}, cwd=work)
    assert done.returncode == 3, done.stderr  # a failed snapshot
    output = done.stdout + done.stderr
    assert "keystoneauth" in output and "urllib3" in output  # the libraries' own warnings were there, masked
    assert "identity service at http://***@127.0.0.1" in output  # our error line, masked
    assert "Traceback" not in output
    _assert_no_canary(output, "stdout/stderr")
    [[message, url]] = duckdb.connect(str(work / "audit.duckdb"), read_only=True).execute(
        "SELECT message, url FROM collection_errors").fetchall()
    assert "http://***@127.0.0.1" in message and "token=***" in message
    written = list(_file_texts(work, skip=set()))  # the lake's Parquet files read back, row by row
    assert any(path.suffix == ".parquet" for path, _ in written)
    for path, text in written:
        _assert_no_canary(text, str(path.relative_to(work)))


def test_credentials_in_the_auth_url_reach_neither_the_run_record_nor_healthz(tmp_path, fake_cloud):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"leaky": _leaky_entry(fake_cloud, free_port())})
    port = free_port()
    config = write_config(tmp_path / "auditor.toml", f"""
[[clouds]]
name = "leaky"
[collection]
retries = 0
timeout = 2
[service]
run = "every 2s"
[service.http]
port = {port}
""")
    serve = Serve(config, {"OS_CLIENT_CONFIG_FILE": str(clouds)})
    try:
        serve.wait_started()

        def failing_health():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except urllib.error.HTTPError as answer:
                document = json.loads(answer.read())
                return document if document["targets"][0]["last_run"] else None
            except OSError:
                return None
            return None

        health = wait_until(failing_health, 60)
        assert health, serve.text()
    finally:
        serve.terminate()
    error = health["targets"][0]["last_run"]["error"]
    assert "identity service at http://***@127.0.0.1" in error, error
    _assert_no_canary(json.dumps(health), "/healthz")
    _assert_no_canary(serve.text(), "the service's log")
    for path in tmp_path.glob("audit.jobs.sqlite*"):
        _assert_no_canary(path.read_bytes().decode("utf-8", "replace"), path.name)


@pytest.mark.parametrize("schedule, expected", [
    ("every 9999999d", "an interval may be at most 366 days"),
    ("every 99999999999999999999s", "an interval may be at most 366 days"),
    ("0 0 30 2 *", "never fires: it matches no time in the next five years"),
    ("0 0 31 4 *", "never fires: it matches no time in the next five years"),
])
@pytest.mark.parametrize("command", ["jobs", "serve"])
def test_a_schedule_that_cannot_run_is_refused_naming_its_key(tmp_path, clouds_yaml, schedule, expected, command):
    config = write_config(tmp_path / "auditor.toml", f'[[clouds]]\nname = "demo"\n[service]\nrun = "{schedule}"\n')
    done = run_cli("--config", str(config), command, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"auditor: error: {config}: key 'service.run': '{schedule}': {expected}")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "audit.jobs.sqlite").exists()


def test_an_interval_too_long_for_a_number_is_refused_in_one_line(tmp_path, clouds_yaml):
    config = write_config(tmp_path / "auditor.toml",
                          f'[[clouds]]\nname = "demo"\n[service]\nrun = "every {"9" * 5000}s"\n')
    done = run_cli("--config", str(config), "jobs", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "an interval may be at most 366 days" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and len(done.stderr) < 300


@pytest.mark.parametrize("schedule", ["every 366d", "0 0 29 2 *", "@yearly", "0 0 13 * 5"])
def test_rare_but_possible_schedules_are_accepted(tmp_path, clouds_yaml, schedule):
    config = write_config(tmp_path / "auditor.toml", f'[[clouds]]\nname = "demo"\n[service]\nrun = "{schedule}"\n')
    done = run_cli("--config", str(config), "jobs", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "run:demo/RegionOne" in done.stdout


REGION = "NoSuch\x1bRegion\r\nINJECTED"


@pytest.mark.parametrize("how", ["clouds.yaml", "--region"])
def test_a_region_the_catalog_lacks_is_a_failed_snapshot_in_one_line(tmp_path, fake_cloud, how):
    entry = fake_cloud.clouds_yaml_entry()
    if how == "clouds.yaml":
        entry = dict(entry, region_name=REGION)
        args = ["run"]
    else:
        entry = dict(entry, regions=["RegionOne", REGION])
        args = ["run", "--region", REGION]
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": entry})
    config = write_config(tmp_path / "auditor.toml", '[[clouds]]\nname = "demo"\n[report]\nformats = ["html"]\n')
    done = run_cli("--config", str(config), *args, env={"OS_CLIENT_CONFIG_FILE": str(clouds)}, cwd=tmp_path)
    assert done.returncode == 3, done.stderr  # a failed snapshot, as the exit-code table says
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "ServiceDisabledException" not in output
    if how == "clouds.yaml":
        assert "the service catalog has no endpoint in this region; its regions: 'RegionOne'" in output, output
    else:  # openstacksdk checks --region against the entry's regions; ours is listed, so the catalog says
        assert "the service catalog has no endpoint in this region; its regions: 'RegionOne'" in output, output
    assert r"NoSuch\x1bRegion\r\nINJECTED" in output
    for line in output.splitlines():
        assert not line.startswith("INJECTED") and "\x1b" not in line


def test_a_service_the_catalog_lacks_is_a_partial_snapshot(tmp_path, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["catalog_without"] = ["image"]
    with FakeCloud(fixture) as cloud:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        done = run_cli("--database", str(tmp_path / "a.duckdb"), "snapshot", "--cloud", "demo",
                       env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 1, done.stderr  # partial
    assert "Traceback" not in done.stderr
    con = duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True)
    errors = con.execute("SELECT resource_type, message FROM collection_errors").fetchall()
    statuses = dict(con.execute("SELECT resource_type, status FROM snapshot_resources").fetchall())
    assert errors and {r for r, _ in errors} == {"images", "image_members"}
    messages = dict(errors)
    assert "no image endpoint in this region of the service catalog" in messages["images"]
    assert "the images could not be listed whole" in messages["image_members"]  # never "none shared"
    assert statuses["images"] == "failed" and statuses["image_members"] == "failed"
    assert statuses["servers"] == "complete"


# -- the scrubber itself: awkward URLs, cut lines, hostile input ----------------------------------------------
_MASKING = """
import sys
from auditor.logs import mask, register_url
from auditor.service.jobs import one_line
register_url("http://admin:p%40ss-CANARY1@127.0.0.1:5000/v3?token=CANARY2")
register_url("http://admin:pa/ss-CANARY3@127.0.0.1:5000/v3")
lines = [
    mask("contacting http://admin:p%40ss-CANARY1@127.0.0.1:5000/v3?token=CANARY2 (p@ss-CANARY1)"),
    mask("keystone at http://admin:pa/ss-CANARY3@127.0.0.1:5000/v3 refused"),
    mask("never registered: http://bob:p@ss-CANARY4@host/v3 and /path?a=1&sig=CANARY5."),
    one_line(RuntimeError("x" * 470 + " http://admin:p%40ss-CANARY1@127.0.0.1:5000/v3")),
]
for hostile in ("=" + ";key" * 20000, "@ " + "a." * 32000, "GET /=;key;key" * 5000):
    mask(hostile)  # each took seconds to hours with the first patterns; linear now
print("\\n".join(lines))
"""


def test_awkward_credentials_in_urls_are_masked_whole_and_hostile_text_is_fast_enough():
    done = subprocess.run([sys.executable, "-c", _MASKING], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "CANARY" not in done.stdout, done.stdout
    first, second, third, cut = done.stdout.splitlines()
    assert first == "contacting http://***@127.0.0.1:5000/v3?token=*** (***)"
    assert second == "keystone at http://***@127.0.0.1:5000/v3 refused"
    assert third == "never registered: http://***@host/v3 and /path?a=1&sig=***."
    assert cut.endswith("http://***@127.0.0.1:5000/v3")  # masked before the 500-character cut
