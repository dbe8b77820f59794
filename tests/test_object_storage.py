"""Swift collected over HTTP from the fake cloud: every project's containers with their ACLs, versioning, sync
and metadata; what a reseller admin, a plain admin and a project member each get; accounts or containers
Swift refuses; and the keys that are never stored."""

import copy
import threading
import json

from conftest import query, served_snapshot

ANALYTICS = "918f958561bc5e39bc8f0d20cf51e5f2"
STOREFRONT = "7e5f8d68f6ac5e7dbcee312162b6639d"


def _snapshot(fixture, tmp_path, monkeypatch, user=None, faults=(), page_size=1000):
    return served_snapshot(fixture, tmp_path, monkeypatch, r"^/object/", user, faults, page_size=page_size)


def _errors(database):
    return query(database, "SELECT project_id, http_status, message FROM collection_errors "
                           "WHERE resource_type = 'containers' ORDER BY ALL")


def _by_project(fixture) -> dict[str, set[str]]:
    projects: dict[str, set[str]] = {}
    for container in fixture["containers"]:
        projects.setdefault(container["_project_id"], set()).add(container["name"])
    return projects


def test_a_reseller_admin_snapshot_holds_every_projects_containers_and_their_settings(tmp_path, monkeypatch,
                                                                                      demo_fixture):
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path, monkeypatch, page_size=2)
    assert result.status == "complete", result.errors
    assert listed["containers"] == f"complete {len(demo_fixture['containers'])}"
    assert any("limit=2" in path and "marker=" in path for path in asked), "accounts are paged by marker"
    stored = {(p, n): rest for p, n, *rest in query(
        database, "SELECT project_id, name, id, object_count, bytes_used, read_acl, write_acl, versions_location, "
                  "history_location, versions_enabled, sync_to, sync_key_set, temp_url_key_set, metadata, "
                  "created_at IS NOT NULL, last_modified IS NOT NULL FROM containers")}
    for container in demo_fixture["containers"]:
        project, name, headers = container["_project_id"], container["name"], container["_headers"]
        (cid, count, size, read, write, versions, history, enabled, sync_to, sync_key, temp_url, metadata,
         created, modified) = stored[(project, name)]
        assert (cid, count, size) == (f"{project}/{name}", container["count"], container["bytes"])
        assert (read, write, versions, history, sync_to) == (
            headers.get("X-Container-Read"), headers.get("X-Container-Write"), headers.get("X-Versions-Location"),
            headers.get("X-History-Location"), headers.get("X-Container-Sync-To"))
        assert enabled == ({"True": True, "False": False}.get(headers.get("X-Versions-Enabled")))
        assert (sync_key, temp_url) == ("X-Container-Sync-Key" in headers, "X-Container-Meta-Temp-Url-Key" in headers)
        assert set(json.loads(metadata)) == {k.lower().removeprefix("x-container-meta-") for k in headers
                                             if k.startswith("X-Container-Meta-") and "Temp-Url" not in k}
        assert created and modified
    # Names and metadata outside ASCII arrive whole (Swift sends UTF-8 in headers and URLs).
    [(team,)] = query(database, "SELECT metadata->>'team' FROM containers WHERE name = 'données-partagées'")
    assert team == "équipe plateforme"
    [(count,)] = query(database, "SELECT container_count FROM snapshots")
    assert count == len(demo_fixture["containers"])


def test_sync_and_temp_url_keys_are_never_stored_and_credentials_in_metadata_are_masked(tmp_path, monkeypatch,
                                                                                       demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    canaries = {"sync": "CANARY-sync-key-1a2b", "temp": "CANARY-temp-url-3c4d", "temp2": "CANARY-temp-url-2-5e6f",
                "meta": "CANARY-meta-password-7a8b", "value": "ghp_" + "C" * 36}
    headers = fixture["containers"][0]["_headers"]
    headers.update({"X-Container-Sync-Key": canaries["sync"], "X-Container-Meta-Temp-Url-Key": canaries["temp"],
                    "X-Container-Meta-Temp-Url-Key-2": canaries["temp2"],
                    "X-Container-Meta-Api-Password": canaries["meta"], "X-Container-Meta-Note": canaries["value"]})
    database, result, _, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors
    stored = repr(query(database, "SELECT * FROM containers"))
    for canary in canaries.values():
        assert canary not in stored
    [(metadata, sync_key, temp_url)] = query(
        database, "SELECT metadata, sync_key_set, temp_url_key_set FROM containers WHERE id = ?",
        [f"{fixture['containers'][0]['_project_id']}/{fixture['containers'][0]['name']}"])
    metadata = json.loads(metadata)
    assert metadata["api-password"] == metadata["note"] == "[REDACTED]"  # the key stays: it is a finding
    assert "temp-url-key" not in metadata and sync_key and temp_url


def test_an_admin_who_is_no_reseller_admin_gets_its_own_account_and_the_others_are_partial(tmp_path, monkeypatch,
                                                                                           demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    admin = fixture["cloud"]["users"][0]
    admin["roles"] = {project: [r for r in roles if r != "ResellerAdmin"] for project, roles in admin["roles"].items()}
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch)
    own = admin["default_project_id"]
    projects = _by_project(fixture)
    assert result.status == "partial"
    assert listed["containers"] == f"partial {len(projects[own])}"
    errors = _errors(database)
    refused = {p["id"] for p in fixture["projects"]} - {own}
    assert {project for project, _, _ in errors} == refused  # one error per project, naming it
    assert all(status == 403 and "reseller admin" in message for _, status, message in errors)
    assert {n for (n,) in query(database, "SELECT name FROM containers")} == projects[own]


def test_a_member_snapshot_lists_the_accounts_of_its_own_projects(tmp_path, monkeypatch, demo_fixture):
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path, monkeypatch, user="alice")
    assert result.status == "complete", result.errors
    projects = _by_project(demo_fixture)
    names = {(p, n) for p, n in query(database, "SELECT project_id, name FROM containers")}
    assert names == {(p, n) for p in (STOREFRONT, ANALYTICS) for n in projects[p]}
    assert all(f"AUTH_{STOREFRONT}" in path or f"AUTH_{ANALYTICS}" in path for path in asked)


def test_swift_refusing_one_project_leaves_that_project_partial_and_the_others_listed(tmp_path, monkeypatch,
                                                                                      demo_fixture):
    fault = {"path": rf"^/object/v1/AUTH_{ANALYTICS}\?", "status": 403}
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path, monkeypatch, faults=[fault])
    projects = _by_project(demo_fixture)
    assert result.status == "partial"
    assert [(p, s) for p, s, _ in _errors(database)] == [(ANALYTICS, 403)]
    stored = {(p, n) for p, n in query(database, "SELECT project_id, name FROM containers")}
    assert stored == {(p, n) for p, names in projects.items() if p != ANALYTICS for n in names}


def test_a_failing_head_is_recorded_per_project_and_a_container_gone_since_the_listing_is_left_out(
        tmp_path, monkeypatch, demo_fixture):
    faults = [{"path": rf"^/object/v1/AUTH_{STOREFRONT}/shop-assets$", "method": "HEAD", "status": 404},
              {"path": rf"^/object/v1/AUTH_{ANALYTICS}/etl-", "method": "HEAD", "status": 500}]
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path, monkeypatch, faults=faults)
    names = {n for (n,) in query(database, "SELECT name FROM containers")}
    assert "shop-assets" not in names and "shop-assets-versions" in names  # deleted: not an error
    assert not {n for n in names if n.startswith("etl-")}
    [(project, status, message)] = _errors(database)
    etl = sorted(n for n in _by_project(demo_fixture)[ANALYTICS] if n.startswith("etl-"))
    assert (project, status) == (ANALYTICS, 500)
    assert f"and {len(etl) - 1} more of project {ANALYTICS}'s containers" in message
    assert result.status == "partial" and listed["containers"].startswith("partial")


def test_a_region_without_swift_has_no_containers_and_a_complete_listing(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["catalog_without"] = ["object-store"]
    database, result, listed, asked = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors
    assert listed["containers"] == "complete 0" and asked == []


def test_hostile_listings_are_recorded_never_stored_as_good(tmp_path, monkeypatch, demo_fixture):
    faults = [{"path": rf"^/object/v1/AUTH_{STOREFRONT}\?", "patch": {"name": 7, "count": "many"}},
              {"path": rf"^/object/v1/AUTH_{ANALYTICS}\?", "malformed": True}]
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path, monkeypatch, faults=faults)
    assert result.status == "partial"
    errors = {(p, m) for p, _, m in _errors(database)}
    assert any(p == ANALYTICS and "malformed JSON" in m for p, m in errors)
    assert any("records without an id were not stored" in m for _, m in errors)
    assert not [p for p in asked if f"AUTH_{STOREFRONT}/" in p]  # no HEAD for a name that is no string
    assert not query(database, "SELECT name FROM containers WHERE project_id IN (?, ?)", [STOREFRONT, ANALYTICS])


def test_dot_names_are_never_asked_for_and_many_metadata_items_are_read(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    # Swift allows 90 metadata items by default (max_meta_count); operators raise it
    busy = {f"X-Container-Meta-Item-{n:03d}": f"value {n}" for n in range(200)}
    # Swift sends UTF-8; a value that is not (the byte E9 alone) is kept as text, never a failed listing
    busy.update({"X-Container-Meta-Owner": "équipe", "X-Container-Meta-Legacy": "caf\udce9"})
    busy.update({"X-Container-Read": "p9:*", "X-Container-Write": "p9:*", "X-Container-Sync-To": "//r/c/AUTH_p/x",
                 "X-Container-Sync-Key": "k", "X-History-Location": "busy", "X-Timestamp": "1700000000.00000",
                 "X-Put-Timestamp": "1700000000.00000", "Last-Modified": "Tue, 01 Dec 2026 00:00:00 GMT",
                 "Accept-Ranges": "bytes", "X-Trans-Id": "tx0"})  # over 200 headers in all
    for name, headers in ((".", {"X-Container-Read": ".r:*"}), ("..", {"X-Container-Write": "*:*"}),
                          ("busy", busy)):
        fixture["containers"].append({"_project_id": STOREFRONT, "name": name, "count": 1, "bytes": 1,
                                      "last_modified": "2026-12-01T00:00:00.000000", "_headers": headers})
    database, result, _, asked = _snapshot(fixture, tmp_path, monkeypatch)
    # A HEAD of "." or ".." would be resolved to the account or the API root on the way (and its answer taken
    # for the container's): never sent, and the project's containers are partial, never judged as fine.
    assert not [p for p in asked if p.endswith(("/.", "/.."))]
    assert result.status == "partial"
    assert [(p, m.split(" cannot")[0]) for p, _, m in _errors(database)] == [(STOREFRONT, "container '.'")]
    assert "and 1 more" in _errors(database)[0][2]
    stored = {n: m for n, m in query(database, "SELECT name, metadata FROM containers WHERE project_id = ?",
                                     [STOREFRONT])}
    assert "." not in stored and ".." not in stored
    metadata = json.loads(stored["busy"])
    assert len(metadata) == 202
    assert (metadata["owner"], metadata["legacy"]) == ("équipe", "café")
    [(read, sync_to)] = query(database, "SELECT read_acl, sync_to FROM containers WHERE name = 'busy'")
    assert (read, sync_to) == ("p9:*", "//r/c/AUTH_p/x")


def test_a_listing_that_is_no_single_json_list_is_refused_whole():
    import pytest

    from auditor.collect.pages import as_page

    assert json.loads(as_page(b"", "containers", one_record=False)) == {"containers": []}
    assert json.loads(as_page(b' [{"name": "a"}] ', "containers", one_record=False)) == {"containers": [{"name": "a"}]}
    for body, problem in ((b'[{"name": "a", "count": NaN}]', "malformed JSON"),
                          (b"[" * 2000 + b"]" * 2000, "malformed JSON"),
                          (b'[{"name": "a"}],"containers":[]', "malformed JSON"),  # a second copy of the key
                          (b'{"containers": []}', "not a JSON list")):
        with pytest.raises(ValueError, match=problem):
            as_page(body, "containers", one_record=False)


def test_container_rules_skip_the_project_swift_refused_and_judge_the_others(tmp_path, monkeypatch, demo_fixture):
    from auditor.config import RulesSettings
    from auditor.rules.evaluate import evaluate, load_ruleset

    fault = {"path": rf"^/object/v1/AUTH_{ANALYTICS}\?", "status": 403}
    database, result, _, _ = _snapshot(demo_fixture, tmp_path, monkeypatch, faults=[fault])
    [evaluation] = evaluate(database, load_ruleset(RulesSettings()), [result.snapshot_id])
    rows = query(database, "SELECT rule_id, project_id, resource_name, status, reason FROM findings "
                           "WHERE evaluation_id = ? AND rule_id LIKE 'container%'", [evaluation.evaluation_id])
    rules = {r[0] for r in rows}
    assert len(rules) == 6
    for rule_id in rules:
        skipped = [r for r in rows if r[0] == rule_id and r[3] == "skip"]
        # the one project Swift refused: one rule-level skip naming it, never a pass for it
        assert [(r[1], r[2]) for r in skipped] == [(ANALYTICS, None)], rule_id
        assert f"could not judge the resources of project {ANALYTICS}" in skipped[0][4]
        assert not [r for r in rows if r[0] == rule_id and r[1] == ANALYTICS and r[3] != "skip"]
    judged = {(r[0], r[2]): r[3] for r in rows if r[1] == STOREFRONT}
    assert judged[("container_not_public_read", "shop-assets")] == "fail"  # the other projects are still judged
    assert judged[("container_listing_not_public", "shop-assets")] == "fail"


def test_a_head_refused_for_an_expired_token_is_asked_again_through_keystoneauth(tmp_path, monkeypatch,
                                                                                demo_fixture):
    """HEADs skip keystoneauth for speed; a 401 (the token expired meanwhile) goes back through it, which
    authenticates anew, so the container is read, not lost."""
    from keystoneauth1.adapter import Adapter

    through_keystoneauth = []
    original = Adapter.head
    monkeypatch.setattr(Adapter, "head", lambda self, url, **kw: through_keystoneauth.append(url) or original(
        self, url, **kw))
    database, result, _, asked = _snapshot(demo_fixture, tmp_path / "plain", monkeypatch)
    assert result.status == "complete" and through_keystoneauth == []  # every HEAD took the direct route
    fault = {"path": rf"^/object/v1/AUTH_{STOREFRONT}/shop-invoices$", "method": "HEAD", "status": 401, "times": 1}
    database, result, _, asked = _snapshot(demo_fixture, tmp_path / "expired", monkeypatch, faults=[fault])
    assert result.status == "complete", result.errors
    assert asked.count(f"/object/v1/AUTH_{STOREFRONT}/shop-invoices") == 2
    assert [u.rsplit("/", 1)[1] for u in through_keystoneauth] == ["shop-invoices"]
    [(read,)] = query(database, "SELECT read_acl FROM containers WHERE name = 'shop-invoices'")
    assert read == f"{ANALYTICS}:*"


def test_heads_made_all_at_once_are_retried_and_a_head_that_never_answers_is_recorded(tmp_path, monkeypatch,
                                                                                     demo_fixture):
    """The HEADs leave on one thread, all at once (auditor/collect/fanout.py), under the same retry policy as
    every request: a 503 with Retry-After and a dropped connection are tried again and the container is
    read; a HEAD that fails every try is recorded against its project, and the other containers are kept."""
    from keystoneauth1.adapter import Adapter

    through_keystoneauth = []
    original = Adapter.head
    monkeypatch.setattr(Adapter, "head", lambda self, url, **kw: through_keystoneauth.append(url) or original(
        self, url, **kw))
    invoices, assets = (rf"^/object/v1/AUTH_{STOREFRONT}/{name}$" for name in ("shop-invoices", "shop-assets"))
    faults = [{"path": invoices, "method": "HEAD", "status": 503, "retry_after": 0, "times": 1},
              {"path": assets, "method": "HEAD", "drop": True, "times": 1}]
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path / "flaky", monkeypatch, faults=faults)
    assert result.status == "complete", result.errors
    assert listed["containers"] == f"complete {len(demo_fixture['containers'])}"
    assert asked.count(f"/object/v1/AUTH_{STOREFRONT}/shop-invoices") == 2
    assert asked.count(f"/object/v1/AUTH_{STOREFRONT}/shop-assets") == 2
    assert through_keystoneauth == []

    faults = [{"path": invoices, "method": "HEAD", "status": 503}]  # every try (retries = 1: two)
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path / "down", monkeypatch, faults=faults)
    assert result.status == "partial"
    assert asked.count(f"/object/v1/AUTH_{STOREFRONT}/shop-invoices") == 2
    assert _errors(database) == [(STOREFRONT, 503, "HTTP 503 Service Unavailable for the settings of container "
                                                   "'shop-invoices'")]
    names = {row[0] for row in query(database, "SELECT name FROM containers")}
    assert names == {c["name"] for c in demo_fixture["containers"]} - {"shop-invoices"}

    faults = [{"path": assets, "method": "HEAD", "drop": True}]
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path / "dropped", monkeypatch, faults=faults)
    assert result.status == "partial"
    assert asked.count(f"/object/v1/AUTH_{STOREFRONT}/shop-assets") == 2  # the policy's tries, no hidden one
    [(project, status, message)] = _errors(database)
    assert (project, status) == (STOREFRONT, None)
    assert message == "request failed: connection dropped without an answer after 2 tries"


def test_a_cloud_behind_tls_is_read_whole_with_its_ca_and_a_head_to_an_unknown_ca_is_refused(
        tmp_path, monkeypatch, demo_fixture):
    """The requests that skip keystoneauth (per-user GETs, Swift HEADs on threads and all at once) check the
    cloud's certificate against the CA clouds.yaml names, as keystoneauth does; one signed by another CA
    is refused, never read."""
    import ssl

    import openstack
    from mailserver import make_pki

    from auditor.collect.direct import DirectRoute
    from auditor.collect.fanout import head_all
    from auditor.collect.retry import Deadline, RetryPolicy, network_reason
    from auditor.fakecloud import FakeCloud
    from conftest import snapshot_into, write_clouds_yaml

    pki, stranger = make_pki(tmp_path, "cloud"), make_pki(tmp_path, "stranger")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki["cert"], pki["key"])
    with FakeCloud(demo_fixture, tls=tls) as cloud:
        assert cloud.url.startswith("https://")
        entry = {**cloud.clouds_yaml_entry(), "cacert": str(pki["ca"])}
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(tmp_path / "clouds.yaml",
                                                                          {"demo": entry})))
        database = tmp_path / "audit.duckdb"
        [result] = snapshot_into(database)
        assert result.status == "complete", result.errors
        assert len(query(database, "SELECT id FROM containers")) == len(demo_fixture["containers"])
        assert len(query(database, "SELECT id FROM application_credentials")) == len(
            demo_fixture["application_credentials"])

        conn = openstack.connect(cloud="demo")
        try:
            account = conn.object_store.get_endpoint()
            url = f"{account.rsplit('AUTH_', 1)[0]}AUTH_{STOREFRONT}/shop-invoices"
            trusted = DirectRoute.for_url(conn.object_store, url)
            policy = RetryPolicy(retries=0, backoff=0.01, max_wait=5, stop=threading.Event(),
                                 deadline=Deadline(60))
            [answer] = head_all(trusted, [url], 1, policy)
            assert answer.status == 204
            untrusting = DirectRoute(conn.object_store, conn.session.session.get_adapter(url), url,
                                     str(stranger["ca"]), None)
            [refused] = head_all(untrusting, [url], 1, policy)
            assert isinstance(refused, Exception) and network_reason(refused) == "TLS handshake failed"
        finally:
            conn.close()
