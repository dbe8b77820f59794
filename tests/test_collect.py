"""The collector against the fake cloud over HTTP: every resource type, through several pages, any scope."""

import pytest
from conftest import DEMO, collect, query, records, snapshot_into

from auditor.fakecloud import load_fixture

RESOURCES = {  # resource type -> (fixture key, path the collector pages through)
    "servers": ("servers", r"/compute/v2\.1/servers/detail"),
    "flavors": ("flavors", r"/compute/v2\.1/flavors/detail"),
    "server_groups": ("server_groups", r"/compute/v2\.1/os-server-groups"),
    "images": ("images", r"/image/v2/images"),
    "security_groups": ("security_groups", r"/network/v2\.0/security-groups"),
    "ports": ("ports", r"/network/v2\.0/ports"),
    "floating_ips": ("floating_ips", r"/network/v2\.0/floatingips"),
    "networks": ("networks", r"/network/v2\.0/networks"),
    "subnets": ("subnets", r"/network/v2\.0/subnets"),
    "routers": ("routers", r"/network/v2\.0/routers"),
    "address_groups": ("address_groups", r"/network/v2\.0/address-groups"),
}


def test_every_resource_type_is_collected_through_several_pages(clouds_yaml, fake_cloud, demo_fixture):
    snapshot = collect(page_size=2)
    assert snapshot.status == "complete", snapshot.failures
    assert snapshot.scope == "cloud"
    for resource, (key, path) in RESOURCES.items():
        expected = {item["id"] for item in demo_fixture[key]}
        got = [item["id"] for item in records(snapshot, resource)]
        assert sorted(got) == sorted(expected), resource
        assert len(fake_cloud.requests_to(path)) >= 2, f"{resource} was not paged"
    rules = {r["id"] for g in demo_fixture["security_groups"] for r in g["security_group_rules"]}
    assert {r["id"] for r in records(snapshot, "security_group_rules")} == rules
    zones = {z["zoneName"] for z in demo_fixture["availability_zones"]}
    assert {z["zoneName"] for z in records(snapshot, "availability_zones")} == zones
    assert len(records(snapshot, "projects")) == len(demo_fixture["projects"])


def test_hidden_images_need_and_get_their_own_pass(clouds_yaml, fake_cloud, demo_fixture):
    snapshot = collect()
    hidden = {i["id"] for i in demo_fixture["images"] if i.get("os_hidden")}
    assert hidden, "the demo cloud must have a hidden image"
    assert hidden <= {i["id"] for i in records(snapshot, "images")}
    assert fake_cloud.requests_to(r"/image/v2/images\?.*os_hidden=true")


def test_admin_asks_for_all_projects_and_neutron_always_gets_a_limit(clouds_yaml, fake_cloud):
    collect(page_size=500)
    servers = fake_cloud.requests_to(r"/servers/detail")
    assert servers and all("all_tenants=True" in r for r in servers)
    neutron = fake_cloud.requests_to(r"^/network/v2\.0/")
    assert neutron and all("limit=500" in r for r in neutron)
    assert all("is_public=None" in r for r in fake_cloud.requests_to(r"/flavors/detail"))


def test_non_admin_falls_back_to_its_projects_and_says_so(clouds_yaml, fake_cloud, demo_fixture):
    snapshot = collect("alice")
    alice = next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")
    projects = sorted(alice["roles"])
    assert snapshot.scope == "projects"
    assert snapshot.scope_project_ids == projects
    assert snapshot.status == "complete", snapshot.failures
    expected = {s["id"] for s in demo_fixture["servers"] if s["tenant_id"] in projects}
    assert {s["id"] for s in records(snapshot, "servers")} == expected
    assert not fake_cloud.requests_to(r"all_tenants"), "a member must not ask for all projects"
    ports = {p["id"] for p in demo_fixture["ports"] if p["project_id"] in projects}
    assert {p["id"] for p in records(snapshot, "ports")} == ports
    # Neutron lists external and shared networks to every project, but the subnets of shared ones only.
    external = {n["id"] for n in demo_fixture["networks"] if n["router:external"]}
    networks = [n["id"] for n in records(snapshot, "networks")]
    assert external and external <= set(networks)
    assert set(networks) == external | {n["id"] for n in demo_fixture["networks"] if n["project_id"] in projects}
    assert {s["id"] for s in records(snapshot, "subnets")} == {
        s["id"] for s in demo_fixture["subnets"] if s["project_id"] in projects}
    assert {r["id"] for r in records(snapshot, "routers")} == {
        r["id"] for r in demo_fixture["routers"] if r["project_id"] in projects}


def test_scope_cloud_without_admin_is_a_clear_error(clouds_yaml):
    from auditor.errors import CollectionError

    try:
        collect("alice", scope="cloud")
    except CollectionError as exc:
        assert "admin" in str(exc) and "alice" in str(exc)
    else:
        raise AssertionError("scope 'cloud' with member credentials must fail")


def test_application_credentials_work(clouds_yaml, demo_fixture):
    snapshot = collect("appcred")
    assert snapshot.status == "complete", snapshot.failures
    assert len(records(snapshot, "servers")) == len(demo_fixture["servers"])


def test_snapshot_tables_hold_the_demo_cloud(clouds_yaml, tmp_path, demo_fixture):
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database, page_size=3)
    assert result.status == "complete"
    assert not list(tmp_path.glob(".auditor-spool-*")), "spooled pages must go once written"
    sid = result.snapshot_id
    counts = dict(query(database, "SELECT resource_type, row_count FROM snapshot_resources WHERE snapshot_id = ?", [sid]))
    assert counts["servers"] == len(demo_fixture["servers"])
    assert counts["ports"] == len(demo_fixture["ports"])
    # server -> security group ids come from the ports, not from the names Nova lists
    pairs = set(query(database, "SELECT server_id, port_id, security_group_id FROM server_security_groups"))
    expected = {
        (p["device_id"], p["id"], g)
        for p in demo_fixture["ports"] if p["device_owner"].startswith("compute:")
        for g in p["security_groups"]
    }
    assert pairs == expected
    # a floating IP is tied to its server through the port
    fip = query(database, "SELECT server_id FROM floating_ips WHERE port_id IS NOT NULL")
    port_owner = {p["id"]: p["device_id"] for p in demo_fixture["ports"]}
    assert sorted(r[0] for r in fip) == sorted(
        port_owner[f["port_id"]] for f in demo_fixture["floating_ips"] if f["port_id"]
    )


def test_fixture_loading_names_the_broken_file(tmp_path):
    import shutil

    import pytest

    from auditor.errors import ConfigError

    broken = tmp_path / "cloud"
    shutil.copytree(DEMO, broken)
    (broken / "ports.json").write_text('{"ports": [1, 2]}')
    with pytest.raises(ConfigError, match="ports.json"):
        load_fixture(broken)


def test_rules_are_listed_on_their_own_when_groups_do_not_embed_them(tmp_path, monkeypatch, demo_fixture):
    import copy

    from conftest import write_clouds_yaml

    from auditor.fakecloud import FakeCloud

    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["embed_security_group_rules"] = False
    with FakeCloud(fixture) as cloud:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        database = tmp_path / "audit.duckdb"
        [result] = snapshot_into(database, page_size=10)
        assert len(cloud.requests_to(r"/security-group-rules\?")) >= 2
    assert result.status == "complete"
    expected = sorted((r["id"], r["security_group_id"], r["protocol"])
                      for g in demo_fixture["security_groups"] for r in g["security_group_rules"])
    assert sorted(query(database, "SELECT id, security_group_id, protocol FROM security_group_rules")) == expected
    counts = dict(query(database, "SELECT id, rule_count FROM security_groups"))
    assert counts == {g["id"]: len(g["security_group_rules"]) for g in demo_fixture["security_groups"]}


def _snapshot_of_demo(fixture, tmp_path, monkeypatch, fault=None):
    from conftest import write_clouds_yaml

    from auditor.fakecloud import FakeCloud

    with FakeCloud(fixture) as cloud:
        if fault:
            cloud.add_fault(**fault)
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        database = tmp_path / "audit.duckdb"
        [result] = snapshot_into(database)
        asked = cloud.requests_to(r"^/network/v2\.0/extensions")
    listed = dict(query(database, "SELECT resource_type, status || ' ' || row_count FROM snapshot_resources"))
    return result, listed, asked


def test_a_neutron_without_routers_and_address_groups_gives_a_complete_snapshot(tmp_path, monkeypatch,
                                                                                demo_fixture):
    import copy

    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["network_extensions_without"] = ["router", "address-group"]
    result, listed, asked = _snapshot_of_demo(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors
    assert (listed["routers"], listed["floating_ips"], listed["address_groups"]) == ("complete 0",) * 3
    assert listed["networks"] == f"complete {len(demo_fixture['networks'])}"
    assert asked, "a 404 alone must not pass for a missing extension"


def test_a_404_from_a_neutron_that_offers_address_groups_is_a_failure(tmp_path, monkeypatch, demo_fixture):
    result, listed, asked = _snapshot_of_demo(demo_fixture, tmp_path, monkeypatch,
                                              fault={"path": r"^/network/v2\.0/address-groups", "status": 404})
    assert result.status == "partial"
    assert listed["address_groups"] == "failed 0" and listed["routers"] == f"complete {len(demo_fixture['routers'])}"
    assert asked
    [message] = query(tmp_path / "audit.duckdb",
                      "SELECT http_status FROM collection_errors WHERE resource_type = 'address_groups'")
    assert message == (404,)


@pytest.mark.parametrize("fault", [{"patch": {"alias": None}}, {"patch": {"alias": 5}}, {"malformed": True},
                                   {"status": 500}], ids=["no alias", "alias not text", "malformed", "error"])
def test_an_unreadable_extension_list_never_hides_a_404(tmp_path, monkeypatch, demo_fixture, fault):
    import copy

    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["network_extensions_without"] = ["address-group"]
    result, listed, asked = _snapshot_of_demo(fixture, tmp_path, monkeypatch,
                                              fault={"path": r"^/network/v2\.0/extensions", **fault})
    assert asked and result.status == "partial"
    assert listed["address_groups"] == "failed 0"


def test_a_network_listed_by_several_projects_is_stored_once_shared_if_any_project_sees_it_shared(
        clouds_yaml, fake_cloud, demo_fixture, tmp_path):
    alice = next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")
    first, second = sorted(alice["roles"])
    # Neutron answers `shared` for the asking project: a grant to one project shows there only.
    fake_cloud.add_fault(r"^/network/v2\.0/networks", project=second, patch={"shared": True})
    database = tmp_path / "audit.duckdb"
    [result] = snapshot_into(database, "alice")
    assert result.status == "complete", result.errors
    rows = query(database, "SELECT id, count(*), bool_and(shared) FROM networks GROUP BY id")
    public = {n["id"] for n in demo_fixture["networks"] if n["router:external"]}
    assert all(count == 1 for _id, count, _shared in rows)
    assert {network_id for network_id, _count, shared in rows if shared} >= public


def test_shared_images_members_are_listed_where_glance_shows_them_whole(tmp_path, monkeypatch, demo_fixture):
    """A cloud-scope snapshot lists the members of every shared image; a project-scoped one only those of
    its own projects' images (Glance would show a member only itself: never taken for the whole list)."""
    import copy

    from conftest import served_snapshot

    storefront, analytics, labs, erp = ("7e5f8d68f6ac5e7dbcee312162b6639d", "918f958561bc5e39bc8f0d20cf51e5f2",
                                        "2fbd15b19b525cd78dcb0cc771227773", "e2c35f5714b85c7283e4fc5d182f5141")
    fixture = copy.deepcopy(demo_fixture)
    base = next(i for i in fixture["images"] if i["visibility"] == "shared")
    fixture["images"].append({**base, "id": "5b1f3c1e-0000-4000-8000-00000000labs", "name": "labs-toolbox",
                              "owner": labs, "_members": [storefront, erp], "_member_status": {erp: "rejected"}})
    shared = {i["id"]: i for i in fixture["images"] if i["visibility"] == "shared"}
    expected = {(image_id, member, image.get("_member_status", {}).get(member, "accepted"))
                for image_id, image in shared.items() for member in image["_members"]}

    database, result, listed, asked = served_snapshot(fixture, tmp_path / "admin", monkeypatch,
                                                      r"^/image/v2/images/[^?]+/members")
    assert result.status == "complete", result.errors
    assert set(query(database, "SELECT image_id, member_id, status FROM image_members")) == expected
    assert listed["image_members"] == f"complete {len(expected)}"
    assert sorted(asked) == sorted(f"/image/v2/images/{i}/members" for i in shared)
    assert {row[0] for row in query(database, "SELECT id FROM image_members")} == {
        f"{i}/{m}" for i, m, _ in expected}

    database, result, listed, asked = served_snapshot(fixture, tmp_path / "alice", monkeypatch,
                                                      r"^/image/v2/images/[^?]+/members", user="alice")
    assert result.status == "complete", result.errors
    assert asked == [f"/image/v2/images/{base['id']}/members"]  # labs' image: shown to alice, not its members
    assert set(query(database, "SELECT image_id, member_id FROM image_members")) == {(base["id"], storefront)}
    assert base["owner"] == analytics


def test_glance_refusing_an_images_members_makes_the_members_partial_and_the_rule_skip(tmp_path, monkeypatch,
                                                                                       demo_fixture):
    from conftest import served_snapshot

    from auditor.config import RulesSettings
    from auditor.rules.evaluate import evaluate, load_ruleset

    database, result, listed, _ = served_snapshot(demo_fixture, tmp_path, monkeypatch, r"^$", faults=[
        {"path": r"^/image/v2/images/[^/?]+/members", "status": 403}])
    assert result.status == "partial"
    assert listed["image_members"] == "failed 0"
    [(status, message)] = query(database, "SELECT http_status, message FROM collection_errors "
                                          "WHERE resource_type = 'image_members'")
    assert status == 403
    [evaluation] = evaluate(database, load_ruleset(RulesSettings()), [result.snapshot_id])
    rows = query(database, "SELECT resource_id, status FROM findings WHERE evaluation_id = ? "
                           "AND rule_id = 'image_not_shared_with_many_projects'", [evaluation.evaluation_id])
    assert rows and all(status == "skip" for _, status in rows)


def test_glances_own_member_sample_is_stored_field_by_field(tmp_path, monkeypatch):
    import json

    from conftest import SAMPLES, served_snapshot
    from test_samples import _fixture

    members = json.loads((SAMPLES / "glance/image-members-list-response.json").read_text())["members"]
    image = json.loads((SAMPLES / "glance/image-show-response.json").read_text())
    fixture = _fixture(images=[{**image, "id": members[0]["image_id"], "visibility": "shared",
                                "_members": members}])
    database, result, listed, _ = served_snapshot(fixture, tmp_path, monkeypatch, r"^$")
    assert result.status == "complete", result.errors
    rows = query(database, "SELECT id, image_id, member_id, status, strftime(created_at, '%Y-%m-%dT%H:%M:%SZ'), "
                           "strftime(updated_at, '%Y-%m-%dT%H:%M:%SZ') FROM image_members ORDER BY member_id")
    assert rows == [(f"{m['image_id']}/{m['member_id']}", m["image_id"], m["member_id"], m["status"],
                     m["created_at"], m["updated_at"]) for m in sorted(members, key=lambda m: m["member_id"])]


def _snapshot_by_a_non_admin_with_cloud_scope(demo_fixture, tmp_path, monkeypatch, member: bool):
    """The demo cloud snapshot by credentials Keystone lets list every project, without the admin role
    Glance's policy wants; `member`: their project is a member of the demo's one shared image."""
    import copy

    from conftest import served_snapshot

    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["project_list_role"] = "reader-all"
    admin_project = next(p["id"] for p in fixture["projects"] if p["name"] == "admin")
    fixture["cloud"]["users"].append({"id": "1a2b3c4d5e6f40718293a4b5c6d7e8f9", "name": "auditor",
                                      "password": "x", "domain": "Default",
                                      "roles": {admin_project: ["reader-all"]}, "default_project_id": admin_project})
    if member:  # Glance would show these credentials only that membership
        next(i for i in fixture["images"] if i["visibility"] == "shared")["_members"].append(admin_project)
    database, result, listed, asked = served_snapshot(fixture, tmp_path, monkeypatch,
                                                      r"^/image/v2/images/[^?]+/members", user="auditor")
    assert query(database, "SELECT scope FROM snapshots") == [("cloud",)]
    return fixture, admin_project, database, listed, asked


@pytest.mark.parametrize("member", [True, False])
def test_a_cloud_scope_without_glances_admin_role_lists_only_its_own_images_members_and_says_so(
        tmp_path, monkeypatch, demo_fixture, member):
    """Glance would show these credentials another project's image as not found, or only their own
    membership, and hides other projects' private images from them: they are asked about their own
    project's shared images only, and both listings say why they are partial, whether or not they could
    see a shared image at all."""
    fixture, admin_project, database, listed, asked = _snapshot_by_a_non_admin_with_cloud_scope(
        demo_fixture, tmp_path, monkeypatch, member)
    assert asked == []  # the only shared image is analytics': never asked about
    assert listed["image_members"].startswith(("partial", "failed"))  # failed: no member listed at all
    [(message,)] = query(database, "SELECT message FROM collection_errors WHERE resource_type = 'image_members'")
    assert "hold no admin role" in message and admin_project in message
    hidden = {i["id"] for i in fixture["images"] if i["visibility"] == "private" and i["owner"] != admin_project}
    assert hidden and not hidden & {row[0] for row in query(database, "SELECT id FROM images")}
    assert listed["images"].startswith("partial")
    [(message,)] = query(database, "SELECT message FROM collection_errors WHERE resource_type = 'images'")
    assert "private images" in message and "admin role" in message and admin_project in message
