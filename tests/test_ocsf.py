"""Findings for SIEMs: OCSF 1.5 JSON Lines (`auditor findings --format ocsf`, findings.ocsf.jsonl) validated
object by object with py-ocsf-models, and the JSON Lines and CSV exports with their context."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import REPO, query, run_cli, served_snapshot, write_clouds_yaml, write_config
from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from py_ocsf_models.objects.cloud import Cloud

from auditor.fakecloud import FakeCloud, load_fixture
from auditor.report.exports import FINDING_COLUMNS

_UNMAPPED_RULE = """/*---
title: Every server is listed
severity: low
resource_type: server
description: A rule of our own that no framework maps.
rationale: r
remediation: Nothing to do.
---*/
select id as resource_id, name as resource_name, project_id, 'fail' as status, 'listed' as reason from servers
"""


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def validate(event: dict) -> None:
    """Valid for py-ocsf-models, and nothing it does not know: what it reads back is what was written
    (the cloud object, which the cloud profile adds to a Compliance Finding, is checked on its own)."""
    event = _without_none(event)
    model = {2003: ComplianceFinding, 2004: DetectionFinding}[event["class_uid"]]
    if event["class_uid"] == 2003:
        cloud = event.pop("cloud")
        assert Cloud.model_validate(cloud).model_dump(mode="json", exclude_none=True) == cloud
    assert _without_none(model.model_validate(event).model_dump(mode="json", exclude_none=True)) == event


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """`auditor run` twice on the demo cloud, with the sample waivers and a rule no framework maps."""
    folder = tmp_path_factory.mktemp("ocsf")
    rule = folder / "mine" / "compute" / "server_is_listed.sql"
    rule.parent.mkdir(parents=True)
    rule.write_text(_UNMAPPED_RULE, encoding="utf-8")
    with FakeCloud(load_fixture(REPO / "sample_data" / "demo-cloud")) as cloud:
        clouds = write_clouds_yaml(folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        config = write_config(folder / "auditor.toml", f'[rules]\npaths = ["{folder / "mine"}"]\n'
                              f'waivers = "{REPO / "sample_data" / "waivers.yaml"}"\n'
                              '[report]\nout_dir = "out"\nformats = ["csv", "json"]\n')
        for _ in range(2):
            done = run_cli("--config", str(config), "run", "--cloud", "demo", cwd=folder,
                           env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
            assert done.returncode == 0, done.stderr
    reports = sorted((folder / "out" / "demo" / "RegionOne").iterdir())
    return {"config": config, "database": folder / "audit.duckdb", "reports": reports}


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_finding_is_a_valid_ocsf_event_carrying_its_rule_resource_and_controls(two_runs):
    database, report = two_runs["database"], two_runs["reports"][-1]
    events = _events(report / "findings.ocsf.jsonl")
    # what needs attention (no pass: those are in findings.jsonl), and what was resolved (none here)
    assert len(events) == query(database, "SELECT count(*) FROM findings WHERE evaluation_id = 2 AND status <> 'pass'"
                                )[0][0] > 0
    assert query(database, "SELECT count(*) FROM resolved_findings WHERE evaluation_id = 2") == [(0,)]
    for event in events:
        validate(event)
    frameworks = {rule: json.loads(mapped) if mapped else {} for rule, mapped in query(
        database, "SELECT rule_id, CAST(frameworks AS VARCHAR) FROM evaluation_rules WHERE evaluation_id = 2")}
    titles = dict(query(database, "SELECT rule_id, title FROM evaluation_rules WHERE evaluation_id = 2"))
    for event in events:
        rule = event["metadata"]["event_code"]
        assert event["finding_info"]["title"] == titles[rule]
        assert event["cloud"]["provider"] == "OpenStack" and event["cloud"]["region"] == "RegionOne"
        assert event["resources"][0]["data"]["cloud"] == "demo"
        if frameworks[rule]:
            assert event["class_uid"] == 2003 and event["type_uid"] == 200300 + event["activity_id"]
            controls = sorted(c for ids in frameworks[rule].values() for c in ids)
            assert sorted(r.rsplit(" ", 1)[1] for r in event["compliance"]["requirements"]) == controls
        else:
            assert event["class_uid"] == 2004 and rule == "server_is_listed" and event["compliance"] is None
    assert {e["class_uid"] for e in events} == {2003, 2004}
    critical = [e for e in events if e["severity"] == "Critical"]
    assert critical and all(e["severity_id"] == 5 for e in critical)
    waived = [e for e in events if e["unmapped"]["waived"]]
    assert waived and all((e["status_id"], e["status"]) == (3, "Suppressed") for e in waived)
    # a failure is an open finding (New until a SIEM triages it); a pass is none
    for event in events:
        if event["status_code"] == "FAIL" and not event["unmapped"]["waived"]:
            assert (event["status_id"], event["status"]) == (1, "New")
    assert len({e["finding_info"]["uid"] for e in events}) == len(events)
    assert {e["unmapped"]["waiver_id"] for e in waived} <= {"storefront-bastion-ssh", "labs-scratch-servers"}


def test_a_finding_keeps_its_uid_across_runs_and_says_when_it_was_first_seen(two_runs):
    database = two_runs["database"]
    first, second = (_events(r / "findings.ocsf.jsonl") for r in two_runs["reports"])
    key = lambda e: (e["metadata"]["event_code"], e["resources"][0]["type"], e["resources"][0]["uid"])  # noqa: E731
    uids = [{key(e): e["finding_info"]["uid"] for e in events} for events in (first, second)]
    assert uids[0] == uids[1] and len(set(uids[0].values())) == len(uids[0])
    assert not {e["metadata"]["uid"] for e in first} & {e["metadata"]["uid"] for e in second}
    # the second run creates what is new and updates what it saw before
    for event in second:
        recurring = event["status_code"] == "FAIL" and not event["unmapped"]["is_new"]
        assert (event["activity_id"], event["activity_name"]) == ((2, "Update") if recurring else (1, "Create"))
    assert any(e["activity_id"] == 2 for e in second)
    started = {i: round(t.timestamp() * 1000) for i, t in query(
        database, "SELECT id, started_at::TIMESTAMPTZ FROM snapshots")}
    failing = [e for e in second if e["status_code"] == "FAIL"]
    assert failing and all(e["finding_info"]["first_seen_time"] == started[1] for e in failing)
    assert all(e["finding_info"]["last_seen_time"] == started[2] for e in second)


def test_the_command_filters_like_findings_and_every_line_is_valid(two_runs):
    config = two_runs["config"]
    done = run_cli("--config", str(config), "findings", "--format", "ocsf", "--severity", "critical,high")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    listed = run_cli("--config", str(config), "findings", "--format", "json", "--severity", "critical,high")
    assert len(events) == len(json.loads(listed.stdout)) > 0
    for event in events:
        validate(event)
        assert event["severity"] in ("Critical", "High") and event["status_code"] == "FAIL"
    assert len(run_cli("--config", str(config), "findings", "--format", "ocsf", "--limit", "3").stdout.splitlines()) == 3
    everything = run_cli("--config", str(config), "findings", "--format", "ocsf", "--status", "all").stdout
    passes = [json.loads(line) for line in everything.splitlines() if '"status_code":"PASS"' in line]
    assert len(passes) == query(two_runs["database"], "SELECT count(*) FROM findings WHERE evaluation_id = 2 "
                                                     "AND status = 'pass'")[0][0] > 0
    for event in passes:  # a pass is no open finding
        validate(event)
        assert (event["status_id"], event["status"]) == (99, "Passed")
        assert event.get("compliance") is None or event["compliance"]["status_id"] == 1
    refused = run_cli("--config", str(config), "findings", "--format", "ocsf", "--framework", "cis_controls_v8")
    assert refused.returncode == 2 and "not with --framework" in refused.stderr


def test_the_documented_query_for_findings_first_seen_this_month(two_runs):
    from test_evaluate import _documented_queries

    database = two_runs["database"]
    rows = query(database, _documented_queries()["findings first seen this month"])
    expected = query(database, "SELECT count(*) FROM findings WHERE evaluation_id = 2 AND status = 'fail' "
                               "AND NOT waived")[0][0]
    assert len(rows) == expected > 0 and {r[:2] for r in rows} == {("demo", "RegionOne")}


def test_findings_jsonl_and_csv_carry_cloud_region_rule_and_remediation(two_runs):
    database, report = two_runs["database"], two_runs["reports"][-1]
    lines = _events(report / "findings.jsonl")
    assert len(lines) == query(database, "SELECT count(*) FROM findings WHERE evaluation_id = 2")[0][0]
    assert all(tuple(line) == FINDING_COLUMNS for line in lines)
    remediation = dict(query(database, "SELECT rule_id, remediation FROM evaluation_rules WHERE evaluation_id = 2"))
    for line in lines:
        assert (line["cloud"], line["region"], line["evaluation_id"]) == ("demo", "RegionOne", 2)
        assert line["remediation"] == remediation[line["rule_id"]] and line["rule_title"]
    with open(report / "findings.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == FINDING_COLUMNS and len(rows) == len(lines)
    assert {(r["rule_id"], r["resource_id"], r["status"]) for r in rows} == {
        (line["rule_id"], line["resource_id"], line["status"]) for line in lines}
    # the evidence of a rule that gives it, the same in every export
    exposed = {line["resource_name"]: line for line in lines
               if line["rule_id"] == "server_not_exposed_to_world" and line["status"] == "fail"}
    assert {o["address"] for o in exposed["bastion-01"]["evidence"]["openings"]} == {"203.0.113.25"}
    assert all(line["evidence"] is None for line in lines if line["status"] == "pass")
    in_csv = {r["resource_name"]: r["evidence"] for r in rows if r["rule_id"] == "server_not_exposed_to_world"}
    assert json.loads(in_csv["bastion-01"]) == exposed["bastion-01"]["evidence"]
    events = {e["resources"][0]["name"]: e for e in _events(report / "findings.ocsf.jsonl")
              if e["metadata"]["event_code"] == "server_not_exposed_to_world"}
    assert events["bastion-01"]["evidences"] == [
        {"name": "server_not_exposed_to_world", "data": exposed["bastion-01"]["evidence"], "verdict_id": 0}]


def test_rule_level_rows_name_no_resource_and_keep_a_uid_each(demo_fixture, tmp_path, monkeypatch):
    """alice's two projects, each with its security-group listing refused: each rule on security groups
    says per project that it could not judge it, in rows without a resource."""
    projects = sorted(next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")["roles"])
    database, result, _, _ = served_snapshot(
        demo_fixture, tmp_path, monkeypatch, asked="/security-groups", user="alice",
        faults=[{"path": r"^/network/v2.0/security-groups", "status": 500, "project": p}
                for p in projects])
    assert result.status == "partial"
    config = write_config(tmp_path / "auditor.toml")
    assert run_cli("--config", str(config), "evaluate").returncode == 0
    done = run_cli("--config", str(config), "findings", "--format", "ocsf", "--status", "skip")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    rule_level = [e for e in events if e["unmapped"]["cloud"] and "resources" not in _without_none(e)]
    assert rule_level, done.stderr
    for event in rule_level:
        validate(event)
    assert len({e["finding_info"]["uid"] for e in rule_level}) == len(rule_level)
    per_rule: dict[str, set] = {}
    for event in (e for e in rule_level if e["cloud"].get("account")):
        per_rule.setdefault(event["metadata"]["event_code"], set()).add(
            (event["cloud"]["account"]["uid"], event["finding_info"]["uid"]))
    assert per_rule
    for rule, seen in per_rule.items():
        assert {project for project, _ in seen} == set(projects), rule
        assert len({uid for _, uid in seen}) == len(projects), rule


def test_what_was_resolved_is_closed(demo_fixture, tmp_path, monkeypatch):
    """The bastion is deleted between two snapshots: the report's OCSF file closes each of its findings."""
    import copy

    from conftest import snapshot_of

    snapshot_of(demo_fixture, tmp_path, monkeypatch)
    config = write_config(tmp_path / "auditor.toml", '[report]\nout_dir = "out"\nformats = ["json"]\n')
    assert run_cli("--config", str(config), "evaluate").returncode == 0
    later = copy.deepcopy(demo_fixture)
    gone = next(s for s in later["servers"] if s["name"] == "bastion-01")
    later["servers"].remove(gone)
    snapshot_of(later, tmp_path, monkeypatch)
    assert run_cli("--config", str(config), "evaluate").returncode == 0
    done = run_cli("--config", str(config), "report", "--format", "json")
    assert done.returncode == 0, done.stderr
    [report] = sorted((tmp_path / "out" / "demo" / "RegionOne").iterdir())[-1:]
    events = _events(report / "findings.ocsf.jsonl")
    closed = [e for e in events if e["activity_id"] == 3]
    resolved = query(tmp_path / "audit.duckdb", "SELECT rule_id, resource_id, resolution FROM resolved_findings "
                                               "WHERE evaluation_id = 2")
    assert {(e["metadata"]["event_code"], e["resources"][0]["uid"], e["unmapped"]["resolution"]) for e in closed} \
        == set(resolved)
    assert gone["id"] in {e["resources"][0]["uid"] for e in closed}
    for event in closed:
        validate(event)
        assert (event["status_id"], event["status"], event["status_code"]) == (4, "Resolved", "RESOLVED")
        assert event["type_uid"] == event["class_uid"] * 100 + 3
    listed = run_cli("--config", str(config), "findings", "--format", "ocsf", "--resolved").stdout
    assert [json.loads(line)["metadata"]["uid"] for line in listed.splitlines()] == [
        e["metadata"]["uid"] for e in closed]  # the same events, in the same order
    # the Close event names the finding the first snapshot opened: a SIEM closes that one
    opened = run_cli("--config", str(config), "findings", "--format", "ocsf", "--snapshot", "1").stdout
    opened_uids = {json.loads(line)["finding_info"]["uid"] for line in opened.splitlines()}
    assert {e["finding_info"]["uid"] for e in closed} <= opened_uids
