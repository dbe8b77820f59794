"""Keystone's users, roles, effective role assignments and application credentials, collected over HTTP
from the fake cloud: what is stored, what is never stored, and what a refusal or a cut list leaves."""

import copy
import json

from conftest import query, served_snapshot, snapshot_into, write_clouds_yaml

from auditor.fakecloud import FakeCloud

LEAKED_SECRET = "leaked-by-a-broken-keystone-3f9a"  # sample_data/demo-cloud/application_credentials.json
EXTRA_TOKEN = "glpat-FAKEFAKEFAKEFAKE1234"  # an extra attribute of user ci-bot in users.json


def _snapshot(fixture, tmp_path, monkeypatch, user=None, faults=(), **overrides):
    return served_snapshot(fixture, tmp_path, monkeypatch, r"^/identity/v3/(users|roles|role_assignments)", user,
                           faults, **overrides)


def _stored_text(database):
    """Every row of the identity tables, read back (the lake's files are compressed)."""
    return "\n".join(repr(query(database, f"SELECT * FROM {table}"))
                     for table in ("users", "roles", "role_assignments", "application_credentials"))


def test_an_admin_snapshot_holds_users_roles_assignments_and_credentials(tmp_path, monkeypatch, demo_fixture):
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors
    login = {u["id"] for u in demo_fixture["cloud"]["users"]}
    users = {u["id"] for u in demo_fixture["users"]} | login
    assert listed["users"] == f"complete {len(users)}"
    assert {row[0] for row in query(database, "SELECT id FROM users")} == users

    [bruno] = query(database, "SELECT enabled, mfa_enabled, mfa_rules, password_expires_at FROM users "
                              "WHERE name = 'bruno'")
    assert bruno == (True, True, None, None)
    [alice] = query(database, "SELECT mfa_enabled, mfa_rules, strftime(password_expires_at, '%Y-%m-%d') "
                              "FROM users WHERE name = 'alice'")
    assert alice == (True, [["password", "totp"]], "2027-03-01")
    [ci_bot] = query(database, "SELECT ignore_password_expiry, ignore_lockout_failure_attempts, "
                               "raw ->> 'email', raw ->> 'api_token' FROM users WHERE name = 'ci-bot'")
    assert ci_bot == (True, True, "ci@example.org", "[REDACTED]")

    # One row per user, role and project, with the names Keystone gives.
    expected = set()
    for user in demo_fixture["cloud"]["users"]:
        expected |= {(user["name"], role, project) for project, roles in user["roles"].items() for role in roles}
    for user in demo_fixture["users"]:
        expected |= {(user["name"], role, project) for project, roles in user.get("_roles", {}).items()
                     for role in roles}
    rows = query(database, "SELECT user_name, role_name, project_id, scope_type, project_name, id "
                           "FROM role_assignments")
    assert {(u, r, p) for u, r, p, *_ in rows} == expected
    names = {p["id"]: p["name"] for p in demo_fixture["projects"]}
    assert all(scope == "project" and name == names[project] and key.startswith(f"projects/{project}/users/")
               for _, _, project, scope, name, key in rows)
    assert listed["roles"] == f"complete {len({role for _, role, _ in expected})}"

    credentials = query(database, "SELECT name, user_id, project_id, unrestricted, expires_at IS NULL, role_names, "
                                  "json_array_length(access_rules) FROM application_credentials ORDER BY name")
    owners = {c["id"]: c["_user_id"] for c in demo_fixture["application_credentials"]}
    assert len(credentials) == len(owners)
    stored_owners = dict(query(database, "SELECT id, user_id FROM application_credentials"))
    assert stored_owners == owners
    assert credentials[0][0] == "grafana-read" and credentials[0][3:] == (False, False, ["reader"], 1)


def test_no_credential_secret_reaches_the_lake(tmp_path, monkeypatch, demo_fixture):
    assert any(c.get("secret") == LEAKED_SECRET for c in demo_fixture["application_credentials"])
    fixture = copy.deepcopy(demo_fixture)
    hidden = {"nested": "CANARY-nested-secret-0c1d", "cased": "CANARY-cased-secret-7e2f",
              "extra": "CANARY-extra-password-9a8b"}
    fixture["application_credentials"][0]["roles"][0]["secret"] = hidden["nested"]
    fixture["application_credentials"][1]["Secret"] = hidden["cased"]
    fixture["users"][0]["extra"] = {"password": hidden["extra"]}
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete"
    [(raw,)] = query(database, "SELECT raw FROM application_credentials WHERE name = 'lab-runner'")
    assert "secret" not in json.loads(raw)
    stored = _stored_text(database)
    assert "lab-runner" in stored and "ci@example.org" in stored
    for secret in (LEAKED_SECRET, EXTRA_TOKEN, *hidden.values()):
        assert secret not in stored


def test_a_project_scoped_snapshot_does_not_collect_identity_and_says_so(tmp_path, monkeypatch, demo_fixture):
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path, monkeypatch, user="alice")
    assert result.status == "complete", result.errors
    assert not asked, "a member must not ask Keystone for every user"
    assert not {"users", "roles", "role_assignments", "application_credentials"} & set(listed)
    [counts] = query(database, "SELECT scope, user_count, role_count, role_assignment_count, "
                               "application_credential_count FROM snapshots")
    assert counts == ("projects", None, None, None, None)


def test_keystone_refusing_credential_listing_gives_one_error_and_a_partial_listing(tmp_path, monkeypatch,
                                                                                    demo_fixture):
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path, monkeypatch, faults=[
        {"path": r"^/identity/v3/users/[^/]+/application_credentials", "status": 403}])
    assert result.status == "partial"
    assert listed["application_credentials"] == "failed 0"
    assert listed["users"].startswith("complete")
    users = len(query(database, "SELECT id FROM users"))
    [(status, message)] = query(database, "SELECT http_status, message FROM collection_errors "
                                          "WHERE resource_type = 'application_credentials'")
    assert status == 403 and f"(and {users - 1} more of the {users} users)" in message


def test_a_user_deleted_while_listing_has_no_credentials_and_is_no_error_but_other_404s_are(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    gone = next(u for u in fixture["users"] if u["name"] == "freya")["id"]
    database, result, listed, _ = _snapshot(fixture, tmp_path / "gone", monkeypatch, faults=[
        {"path": rf"^/identity/v3/users/{gone}", "status": 404}])  # the user and its credentials
    assert result.status == "complete", result.errors
    assert listed["application_credentials"] == f"complete {len(fixture['application_credentials'])}"

    # A 404 for a user that still exists (no such API, a proxy rewriting paths) is no "none".
    database, result, listed, _ = _snapshot(fixture, tmp_path / "there", monkeypatch, faults=[
        {"path": rf"^/identity/v3/users/{gone}/application_credentials", "status": 404}])
    assert result.status == "partial"
    [(status, message)] = query(database, "SELECT http_status, message FROM collection_errors "
                                          "WHERE resource_type = 'application_credentials'")
    assert status == 404 and "more of the" not in message


def test_a_user_list_cut_at_keystones_list_limit_is_partial(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["keystone_list_limit"] = 3
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "partial"
    assert listed["users"] == "partial 3"
    assert listed["application_credentials"].startswith("partial") or listed["application_credentials"] == "failed 0"
    messages = [m for (m,) in query(database, "SELECT message FROM collection_errors WHERE resource_type = 'users'")]
    assert any("truncated the user list" in m for m in messages)


def test_an_assignment_held_twice_is_stored_once_and_one_without_a_role_is_an_error(tmp_path, monkeypatch,
                                                                                    demo_fixture):
    same = {"role": {"id": "r1", "name": "member"}, "user": {"id": "u1", "name": "x"},
            "scope": {"project": {"id": "p1", "name": "p"}}}
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path / "twice", monkeypatch, faults=[
        {"path": r"^/identity/v3/role_assignments", "patch": same}])
    assert result.status == "complete", result.errors
    assert listed["role_assignments"] == "complete 1"
    assert query(database, "SELECT id FROM role_assignments") == [("projects/p1/users/u1/roles/r1",)]

    for name, patch in (("norole", {"role": None}), ("noscope", {"scope": {"system": None}})):
        database, result, listed, _ = _snapshot(demo_fixture, tmp_path / name, monkeypatch, faults=[
            {"path": r"^/identity/v3/role_assignments", "patch": patch}])
        assert result.status == "partial", name
        assert listed["role_assignments"] == "partial 0", name
        [(message,)] = query(database, "SELECT message FROM collection_errors "
                                       "WHERE resource_type = 'role_assignments'")
        assert "records without an id were not stored" in message, name


def test_a_user_id_that_would_change_the_url_is_not_asked_about_and_says_so(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["users"].append({"id": "admin/projects", "name": "odd", "domain_id": "default", "enabled": True,
                             "password_expires_at": None, "options": {}, "links": {}})
    with FakeCloud(fixture) as cloud:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        [result] = snapshot_into(tmp_path / "audit.duckdb")
        asked = cloud.requests_to(r"/users/admin")
    assert not asked
    assert result.status == "partial"
    [(message,)] = query(tmp_path / "audit.duckdb", "SELECT message FROM collection_errors "
                                                    "WHERE resource_type = 'application_credentials'")
    assert "users id 'admin/projects' cannot be used in a URL" in message
    listed = dict(query(tmp_path / "audit.duckdb", "SELECT resource_type, status || ' ' || row_count "
                                                   "FROM snapshot_resources"))
    assert listed["application_credentials"] == f"partial {len(fixture['application_credentials'])}"


def test_keystones_own_samples_are_stored_field_by_field(tmp_path, monkeypatch):
    from conftest import SAMPLES
    from test_samples import _fixture

    users = json.loads((SAMPLES / "keystone/users-list-response.json").read_text())["users"]
    roles = json.loads((SAMPLES / "keystone/roles-list-response.json").read_text())["roles"]
    credentials = json.loads((SAMPLES / "keystone/application-credential-list-response.json").read_text())[
        "application_credentials"]
    fixture = _fixture()
    owner = users[0]["id"]
    fixture.update(users=users, roles=roles,
                   application_credentials=[dict(c, _user_id=owner) for c in credentials])
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors

    stored = {row[0]: row[1:] for row in query(
        database, "SELECT id, name, domain_id, enabled, strftime(password_expires_at, '%Y-%m-%dT%H:%M:%S') "
                  "FROM users")}
    for user in users:
        expires = user["password_expires_at"][:19] if user["password_expires_at"] else None
        assert stored[user["id"]] == (user["name"], user["domain_id"], user["enabled"], expires)
    stored_roles = dict(query(database, "SELECT id, name FROM roles"))
    assert stored_roles == {r["id"]: r["name"] for r in roles}
    rows = query(database, "SELECT id, name, user_id, project_id, unrestricted, "
                           "strftime(expires_at, '%Y-%m-%dT%H:%M:%S'), role_names, access_rules FROM application_credentials")
    assert {row[0] for row in rows} == {c["id"] for c in credentials}
    for cid, name, user_id, project, unrestricted, expires, role_names, rules in rows:
        sample = next(c for c in credentials if c["id"] == cid)
        assert (name, user_id, project, unrestricted, expires) == (
            sample["name"], owner, sample["project_id"], sample["unrestricted"], sample["expires_at"][:19])
        assert role_names == sorted(r["name"] for r in sample["roles"])
        assert json.loads(rules) == sample["access_rules"]


def test_identity_rules_skip_on_a_project_scoped_snapshot_and_judge_an_admin_one(tmp_path, monkeypatch,
                                                                                demo_fixture):
    from auditor.config import RulesSettings
    from auditor.rules.evaluate import evaluate, load_ruleset

    rules = load_ruleset(RulesSettings())
    identity = ("user_mfa_enabled", "user_password_expires", "user_disabled_has_no_roles",
                "admin_role_only_in_admin_project", "application_credential_restricted",
                "application_credential_expires")
    for user, expected in (("alice", {"skip"}), (None, {"pass", "fail"})):
        database, result, _, _ = _snapshot(demo_fixture, tmp_path / (user or "admin"), monkeypatch, user=user)
        [evaluation] = evaluate(database, rules, [result.snapshot_id])
        rows = query(database, "SELECT rule_id, status, reason FROM findings WHERE evaluation_id = ? "
                               "AND resource_id IS NULL", [evaluation.evaluation_id])
        statuses = {}
        for rule_id, status in query(database, "SELECT rule_id, status FROM findings WHERE evaluation_id = ?",
                                     [evaluation.evaluation_id]):
            statuses.setdefault(rule_id, set()).add(status)
        for rule_id in identity:
            assert expected <= statuses[rule_id] and statuses[rule_id] <= expected | {"info"}, (user, rule_id)
        if user:
            reasons = {rule_id: reason for rule_id, _, reason in rows}
            assert "users not collected" in reasons["user_mfa_enabled"]
            assert "application_credentials not collected" in reasons["application_credential_expires"]


def test_user_ids_python_cannot_read_are_reported_not_a_crash():
    from auditor.collect.collector import _string_ids

    assert _string_ids(['"u1"', None, "5", '"\\ud800"', '"a/b"']) == ["u1", '"\\ud800"', "a/b"]


def test_credential_gets_skip_keystoneauth_once_it_answered_one_and_a_401_goes_back_through_it(
        tmp_path, monkeypatch, demo_fixture):
    """One GET per user makes keystoneauth's own work per request the listing's cost, so once keystoneauth
    has answered one, the others go straight to the pool with the same endpoint and headers; a 401 (the
    token expired meanwhile) goes back through keystoneauth, which authenticates anew, so no user is lost."""
    from keystoneauth1.adapter import Adapter

    through_keystoneauth = []
    original = Adapter.get
    monkeypatch.setattr(Adapter, "get", lambda self, url, **kw: through_keystoneauth.append(url) or original(
        self, url, **kw))
    users = sorted({u["id"] for u in demo_fixture["users"]} | {u["id"] for u in demo_fixture["cloud"]["users"]})
    assert len(users) > 3
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path / "plain", monkeypatch, concurrency=1)
    assert result.status == "complete", result.errors
    asked_credentials = [path for path in asked if path.endswith("/application_credentials")]
    assert sorted(asked_credentials) == sorted(f"/identity/v3/users/{u}/application_credentials" for u in users)
    assert ["/identity/v3" + u for u in through_keystoneauth if u.endswith("/application_credentials")] == [
        asked_credentials[0]]  # the first one only: the others took the direct route

    owner = next(c["_user_id"] for c in demo_fixture["application_credentials"])
    refused = f"/identity/v3/users/{owner}/application_credentials"
    through_keystoneauth.clear()
    fault = {"path": f"^{refused}$", "status": 401, "times": 1}
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path / "expired", monkeypatch, faults=[fault],
                                                concurrency=1)
    assert result.status == "complete", result.errors
    assert asked.count(refused) == 2
    assert refused.removeprefix("/identity/v3") in through_keystoneauth
    stored = {row[0] for row in query(database, "SELECT user_id FROM application_credentials")}
    assert owner in stored
