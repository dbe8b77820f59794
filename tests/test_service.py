"""The service with real parts: `auditor serve` in a subprocess against the fake cloud over HTTP, emailing
an aiosmtpd server on 127.0.0.1 (STARTTLS, AUTH, a CA made here); SIGTERM; SMTP failures; the HTTP endpoint."""

from __future__ import annotations

import email
import email.policy
import json
import os
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest
from conftest import Serve, query, rewrite_rows, run_cli, wait_until, write_clouds_yaml, write_config
from mailserver import PASSWORD, USER, free_port, make_pki, start_smtp
from prometheus_client.parser import text_string_to_metric_families
from pypdf import PdfReader

from auditor.config import load_config
from auditor.service.runs import JobRuns
from auditor.service.scheduler import Service

MANAGERS, SECURITY = ["boss@example.com"], ["sec@example.com"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    return {"trusted": make_pki(folder, "trusted"), "unknown": make_pki(folder, "unknown")}


def email_section(port: int, ca_file: Path, schedule: str = "every 3s") -> str:
    return f"""
[email]
host = "127.0.0.1"
port = {port}
security = "starttls"
ca_file = "{ca_file}"
username = "{USER}"
password_env = "AUDITOR_TEST_SMTP_PASSWORD"
sender = "auditor@example.com"
timeout = 5
retries = 0

[[email.groups]]
name = "managers"
recipients = {json.dumps(MANAGERS)}

[[email.groups]]
name = "security"
recipients = {json.dumps(SECURITY)}
include_csv = true
"""


def service_config(folder: Path, clouds: list[str], run: str, extra: str = "") -> Path:
    clouds_toml = "".join(f'\n[[clouds]]\nname = "{name}"\n' for name in clouds)
    return write_config(folder / "auditor.toml", f"""{clouds_toml}
[service]
run = "{run}"
{extra}""")


def runs(config: Path, job_id: str | None = None) -> list:
    return JobRuns(load_config(config).job_store).history(job_id, 1000)


def test_serve_snapshots_evaluates_reports_and_emails_then_stops_on_sigterm(tmp_path, fake_cloud, pki):
    smtp, inbox = start_smtp(pki["trusted"])
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": fake_cloud.clouds_yaml_entry()})
    config = service_config(tmp_path, ["demo"], "every 4s",
                            'email = "every 3s"\n' + email_section(smtp.port, pki["trusted"]["ca"]))
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "AUDITOR_TEST_SMTP_PASSWORD": PASSWORD}
    serve = Serve(config, env)
    try:
        serve.wait_started()
        assert wait_until(lambda: len(inbox.messages) >= 2, 90), serve.text()
        second = Serve(config, env)  # a second service on the same job store refuses to start
        assert second.proc.wait(60) == 11
        second.close()
        assert "another `auditor serve`" in second.text() and "never be shared" in second.text()
        code, took = serve.terminate()
    finally:
        serve.close()
        smtp.stop()
    assert code == 0, serve.text()
    assert took < 10
    # What was sent is what the database says.
    database = tmp_path / "audit.duckdb"
    [[snapshot_id, critical, high]] = query(database, """
        SELECT e.snapshot_id, count(*) FILTER (WHERE f.severity = 'critical'), count(*) FILTER (WHERE f.severity = 'high')
        FROM evaluations e JOIN findings f ON f.evaluation_id = e.id AND f.status = 'fail' AND NOT f.waived
        WHERE e.id = (SELECT min(id) FROM evaluations) GROUP BY ALL""")
    by_recipient = {tuple(m["rcpt_tos"]): email.message_from_bytes(m["raw"], policy=email.policy.default)
                     for m in inbox.messages[:2]}
    managers, security = by_recipient[tuple(MANAGERS)], by_recipient[tuple(SECURITY)]
    assert managers["Subject"].startswith(f"[auditor] demo/RegionOne: {critical} critical, {high} high")
    assert managers.get_body(("plain",)).get_content().strip()
    assert "<html" in managers.get_body(("html",)).get_content().lower()
    [pdf] = [p for p in managers.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert f"{critical}" in "".join(page.extract_text() for page in PdfReader(BytesIO(pdf.get_content())).pages)
    assert [p.get_content_type() for p in security.iter_attachments()] == ["application/pdf", "text/csv"]
    assert [p.get_content_type() for p in managers.iter_attachments()] == ["application/pdf"]
    # Every run is on record; the run job reported snapshot ids that exist.
    recorded = runs(config)
    outcomes = [r.outcome for r in recorded if r.job_id == "run:demo/RegionOne"]
    assert "succeeded" in outcomes and set(outcomes) <= {"succeeded", "skipped", "cancelled"}, outcomes
    assert any(r.job_id == "email" and r.outcome == "succeeded" for r in recorded)
    assert snapshot_id in {r.snapshot_id for r in recorded}
    assert "running" not in {r.outcome for r in recorded}
    assert PASSWORD not in serve.text()
    assert PASSWORD.encode() not in (tmp_path / "audit.jobs.sqlite").read_bytes()


def test_sigterm_mid_collection_exits_0_within_10_s_and_writes_nothing(tmp_path, fake_cloud):
    fake_cloud.add_fault(r"^/(compute|network|image)/", latency=0.4, method="*")  # every page is slow
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": fake_cloud.clouds_yaml_entry()})
    config = service_config(tmp_path, ["demo"], "every 2s", "\n[collection]\npage_size = 2\n")
    serve = Serve(config, {"OS_CLIENT_CONFIG_FILE": str(clouds)})
    try:
        serve.wait_started()
        assert wait_until(lambda: any(r.outcome == "running" for r in runs(config)), 30), serve.text()
        assert wait_until(lambda: len(fake_cloud.requests_to(r"/servers/detail")) >= 2, 30)  # well into paging
        code, took = serve.terminate()
    finally:
        serve.close()
    assert code == 0, serve.text()
    assert took < 10, serve.text()
    database = tmp_path / "audit.duckdb"
    assert not database.exists() or query(database, "SELECT count(*) FROM snapshots") == [(0,)]
    recorded = runs(config, "run:demo/RegionOne")  # with runs every 2 s, later run times were skipped
    assert [r.outcome for r in recorded if r.outcome != "skipped"] == ["cancelled"], (recorded, serve.text())
    assert not list(tmp_path.glob(".auditor-spool-*"))  # the spool of the stopped collection is gone


# -- in-process: SMTP failures, a cloud that is down, the HTTP endpoint -----------------------------------
def in_process(tmp_path: Path, monkeypatch, text: str) -> Service:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDITOR_TEST_SMTP_PASSWORD", PASSWORD)
    service = Service(load_config(write_config(tmp_path / "auditor.toml", text)))
    service.start()
    return service


@pytest.mark.parametrize("case", ["smtp down", "wrong password", "unknown CA"])
def test_a_failing_digest_is_recorded_and_the_service_keeps_running(case, tmp_path, monkeypatch, fake_cloud, pki):
    smtp, inbox = start_smtp(pki["trusted"])
    port, ca, expected = smtp.port, pki["trusted"]["ca"], None
    if case == "smtp down":
        smtp.stop()
        port, expected = free_port(), "connection refused"
    elif case == "wrong password":
        monkeypatch.setattr("mailserver.PASSWORD", "not-the-password")  # the server now expects another one
        expected = "authentication as 'auditor' failed: 535"
    else:
        ca, expected = pki["unknown"]["ca"], "TLS certificate verification failed"
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": fake_cloud.clouds_yaml_entry()})
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    text = '[[clouds]]\nname = "demo"\n[service]\nrun = "every 2s"\nemail = "every 2s"\n' \
           '[report]\nformats = ["html"]\n' + email_section(port, ca)  # the digest renders its PDF once
    service = in_process(tmp_path, monkeypatch, text)
    config = tmp_path / "auditor.toml"
    try:
        failed = wait_until(lambda: [r for r in runs(config, "email") if r.outcome == "failed"], 90)
        assert failed, runs(config)
        failure_time = failed[-1].finished_at
        # The service goes on: the main job still runs after the digest failed.
        assert wait_until(lambda: [r for r in runs(config, "run:demo/RegionOne")
                                   if r.outcome == "succeeded" and r.started_at > failure_time], 60)
    finally:
        service.shutdown(8)
        if case != "smtp down":
            smtp.stop()
    assert expected in failed[-1].error, failed[-1].error
    assert f"127.0.0.1:{port}" in failed[-1].error
    assert PASSWORD not in failed[-1].error
    assert inbox.messages == []


def test_healthz_and_metrics_reflect_a_cloud_that_is_down(tmp_path, monkeypatch, fake_cloud):
    dead_port = free_port()
    down = dict(fake_cloud.clouds_yaml_entry(), auth={**fake_cloud.clouds_yaml_entry()["auth"],
                                                      "auth_url": f"http://127.0.0.1:{dead_port}/identity/v3"})
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": fake_cloud.clouds_yaml_entry(), "down": down})
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    text = ('[[clouds]]\nname = "demo"\n[[clouds]]\nname = "down"\n'
            '[collection]\ntimeout = 2\nretries = 0\n'
            '[service]\nrun = "every 2s"\n[service.http]\nport = 0\n[report]\nformats = ["html"]\n')
    service = in_process(tmp_path, monkeypatch, text)
    config = tmp_path / "auditor.toml"
    try:
        assert wait_until(lambda: {r.job_id: r.outcome for r in runs(config)}.keys() >= {"run:demo/RegionOne",
                                                                                          "run:down/RegionOne"}
                          and any(r.outcome == "succeeded" for r in runs(config, "run:demo/RegionOne"))
                          and any(r.outcome == "failed" for r in runs(config, "run:down/RegionOne")), 60)
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"{service.http.url}/healthz", timeout=10)
        metrics = urllib.request.urlopen(f"{service.http.url}/metrics", timeout=10).read().decode()
        index = urllib.request.urlopen(f"{service.http.url}/reports/index.html", timeout=10)
    finally:
        service.shutdown(8)
    assert answer.value.code == 503
    health = json.loads(answer.value.read())
    states = {(t["cloud"], t["state"]) for t in health["targets"]}
    assert ("down", "failing") in states and ("demo", "ok") in states
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    failed_runs = {s.labels["job"]: s.value for s in families["auditor_job_runs"].samples
                   if s.name == "auditor_job_runs_total" and s.labels["outcome"] == "failed"}
    assert failed_runs["run:down/RegionOne"] >= 1
    [[critical]] = query(tmp_path / "audit.duckdb", "SELECT count(*) FROM latest_findings WHERE status = 'fail' "
                                                     "AND NOT waived AND severity = 'critical'")
    findings = {(s.labels["cloud"], s.labels["severity"]): s.value for s in families["auditor_findings_failing"].samples}
    assert findings[("demo", "critical")] == critical
    assert index.status == 200 and b"demo" in index.read()


# -- the commands around the service: jobs, prune, bad schedules ------------------------------------------
def test_serve_refuses_a_bad_schedule_naming_its_key(tmp_path, clouds_yaml):
    config = service_config(tmp_path, ["demo"], "61 * * * *")
    done = run_cli("--config", str(config), "serve", timeout=60)
    assert done.returncode == 2
    assert f"{config}: key 'service.run': '61 * * * *': not a valid cron expression" in done.stderr
    assert not (tmp_path / "audit.jobs.sqlite").exists()


def test_jobs_lists_the_schedule_and_the_runs(tmp_path, clouds_yaml, monkeypatch):
    config = service_config(tmp_path, ["demo"], "every 2s", "[report]\nformats = [\"html\"]\n")
    before = run_cli("--config", str(config), "jobs")
    assert before.returncode == 0, before.stderr
    assert "run:demo/RegionOne" in before.stdout and "every 2s" in before.stdout
    assert "service: not running" in before.stdout
    service = in_process(tmp_path, monkeypatch, config.read_text(encoding="utf-8").split("\n", 1)[1])
    try:
        assert wait_until(lambda: any(r.outcome == "succeeded" for r in runs(config)), 60)
        during = run_cli("--config", str(config), "jobs", "--format", "json")
        history = run_cli("--config", str(config), "jobs", "--history", "5")
        running = run_cli("--config", str(config), "jobs")
    finally:
        service.shutdown(8)
    [row] = json.loads(during.stdout)
    # the newest fire time may have come while a run was still going (recorded `skipped`)
    assert row["job"] == "run:demo/RegionOne" and row["outcome"] in ("succeeded", "running", "skipped")
    assert row["next run"] != "-"
    assert f"service: running (pid {os.getpid()})" in running.stdout
    assert "succeeded" in history.stdout and "snapshot 1 complete" in history.stdout


def _age_snapshots(database: Path, ids: list[int], days: int) -> None:
    """Move snapshots back in time (what a year of runs would do)."""
    for offset, snapshot_id in enumerate(ids):
        rewrite_rows(database, "snapshots", "started_at = now()::TIMESTAMP - INTERVAL (?) DAY + INTERVAL (?) MINUTE",
                     "id = ?", [days, offset, snapshot_id])


def test_prune_applies_the_policy_and_refuses_without_one(tmp_path, clouds_yaml):
    from conftest import snapshot_into

    database = tmp_path / "audit.duckdb"
    ids = [snapshot_into(database)[0].snapshot_id for _ in range(3)]
    _age_snapshots(database, ids[:2], 20)  # the first two: 20 days old, the same day; the third: now
    without = write_config(tmp_path / "without.toml")
    done = run_cli("--config", str(without), "prune")
    assert done.returncode == 12 and "no [retention] section" in done.stderr
    config = write_config(tmp_path / "auditor.toml", "[retention]\nkeep_all_days = 14\ndaily_days = 90\n")
    dry = run_cli("--config", str(config), "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would prune snapshots: {ids[0]}" in dry.stdout and "would prune 1 of 3 snapshots" in dry.stdout
    assert [r[0] for r in query(database, "SELECT id FROM snapshots ORDER BY id")] == ids
    done = run_cli("--config", str(config), "prune")
    assert done.returncode == 0, done.stderr
    assert "pruned 1 of 3 snapshots" in done.stdout
    listed = run_cli("--config", str(config), "snapshots", "--format", "json")
    assert sorted(s["id"] for s in json.loads(listed.stdout)) == ids[1:]
