"""Cinder v3 collected over HTTP from the fake cloud: volumes, snapshots, backups and volume types with their
encryption and access, what a member sees, what a Cinder that does not take us for admin leaves out, and
what is never stored."""

import copy
import json

from conftest import SAMPLES, query, served_snapshot

CINDER = ("volumes", "volume_snapshots", "volume_backups", "volume_types", "volume_type_encryption",
          "volume_type_access")


def _snapshot(fixture, tmp_path, monkeypatch, user=None, faults=(), page_size=1000):
    return served_snapshot(fixture, tmp_path, monkeypatch, r"^/volume/", user, faults, page_size=page_size)


def _errors(database, resource_type):
    return [m for (m,) in query(database, "SELECT message FROM collection_errors WHERE resource_type = ?",
                                [resource_type])]


def test_an_admin_snapshot_holds_every_projects_volumes_snapshots_backups_and_types(tmp_path, monkeypatch,
                                                                                     demo_fixture):
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path, monkeypatch, page_size=2)
    assert result.status == "complete", result.errors
    for table, key in (("volumes", "volumes"), ("volume_snapshots", "volume_snapshots"),
                       ("volume_backups", "volume_backups"), ("volume_types", "volume_types")):
        assert listed[table] == f"complete {len(demo_fixture[key])}", table
    assert any("limit=2" in path and "marker=" in path for path in asked), "volumes are paged by marker"
    assert any(path.startswith("/volume/v3/types?") and "offset=4" in path for path in asked), \
        "types have no next link: paged by offset"

    volumes = {row[0]: row[1:] for row in query(
        database, "SELECT name, project_id, bootable, encrypted, multiattach, attached_server_ids, volume_type, "
                  "backend_host IS NOT NULL FROM volumes")}
    fixture = {v["name"]: v for v in demo_fixture["volumes"]}
    for name, (project, bootable, encrypted, multiattach, servers, volume_type, host) in volumes.items():
        volume = fixture[name]
        assert project == volume["os-vol-tenant-attr:tenant_id"]
        assert bootable is (volume["bootable"] == "true")  # Cinder's string, read as a boolean
        assert (encrypted, multiattach, volume_type, host) == (
            volume["encrypted"], volume["multiattach"], volume["volume_type"], True)
        assert servers == sorted({a["server_id"] for a in volume["attachments"]})
    assert volumes["lab-shared-scratch"][3] and len(volumes["lab-shared-scratch"][4]) == 1  # multiattach

    # Encryption: one row per encrypted type, read from each type's own encryption call.
    encrypted_types = {t["id"]: t["_encryption"] for t in demo_fixture["volume_types"] if t.get("_encryption")}
    rows = query(database, "SELECT volume_type_id, provider, cipher, key_size, control_location "
                           "FROM volume_type_encryption")
    assert {r[0] for r in rows} == set(encrypted_types)
    for type_id, provider, cipher, key_size, location in rows:
        spec = encrypted_types[type_id]
        assert (provider, cipher, key_size, location) == (spec["provider"], spec["cipher"], spec["key_size"],
                                                         spec["control_location"])
    assert listed["volume_type_encryption"] == f"complete {len(encrypted_types)}"
    # Access: asked for the private types only.
    private = {t["id"]: t["_access"] for t in demo_fixture["volume_types"] if not t["is_public"]}
    assert sorted(query(database, "SELECT volume_type_id, project_id FROM volume_type_access")) == sorted(
        (type_id, project) for type_id, projects in private.items() for project in projects)
    assert not [p for p in asked if "os-volume-type-access" in p and p.split("/")[4] not in private]
    [counts] = query(database, "SELECT volume_count, volume_type_encryption_count, volume_type_access_count "
                               "FROM snapshots")
    assert counts == (len(demo_fixture["volumes"]), len(encrypted_types), 1)


def test_credentials_in_metadata_are_masked_and_never_stored(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    canaries = {"volume": "CANARY-volume-pass-51d2", "image": "CANARY-image-meta-8c3e",
                "snapshot": "CANARY-snap-token-0f4a", "backup": "CANARY-backup-key-9e1b",
                "type": "CANARY-type-secret-77aa"}
    fixture["volumes"][0]["metadata"]["db_password"] = canaries["volume"]
    fixture["volumes"][2]["volume_image_metadata"]["auth_token"] = canaries["image"]
    fixture["volume_snapshots"][0]["metadata"]["api_token"] = canaries["snapshot"]
    fixture["volume_backups"][0]["metadata"] = {"access_key": canaries["backup"]}
    fixture["volume_types"][0]["extra_specs"] = {"driver_password": canaries["type"]}
    database, result, _, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors
    stored = "\n".join(repr(query(database, f"SELECT * FROM {table}")) for table in CINDER)
    for canary in canaries.values():
        assert canary not in stored
    [(metadata,)] = query(database, "SELECT metadata FROM volumes WHERE name = ?", [fixture["volumes"][0]["name"]])
    assert json.loads(metadata)["db_password"] == "[REDACTED]"  # the key stays visible, for the rules
    [(metadata,)] = query(database, "SELECT metadata FROM volume_snapshots WHERE name = 'storefront-orphan-"
                                    "before-cleanup'")
    assert json.loads(metadata) == {"restore_token": "[REDACTED]"}


def test_a_member_sees_its_projects_and_public_types_and_no_encryption_or_access(tmp_path, monkeypatch,
                                                                                 demo_fixture):
    database, result, listed, asked = _snapshot(demo_fixture, tmp_path, monkeypatch, user="alice")
    assert result.status == "complete", result.errors
    alice = next(u for u in demo_fixture["cloud"]["users"] if u["name"] == "alice")
    projects = set(alice["roles"])
    assert not [p for p in asked if "all_tenants" in p or "/encryption" in p or "type-access" in p]
    assert {r[0] for r in query(database, "SELECT name FROM volumes")} == {
        v["name"] for v in demo_fixture["volumes"] if v["os-vol-tenant-attr:tenant_id"] in projects}
    # Cinder shows a backup's project to admins only: the project the listing was made in says it.
    backups = dict(query(database, "SELECT name, project_id FROM volume_backups"))
    assert backups == {b["name"]: b["os-backup-project-attr:project_id"] for b in demo_fixture["volume_backups"]
                       if b["os-backup-project-attr:project_id"] in projects}
    # the public types, and the private ones its projects may use
    assert {r[0] for r in query(database, "SELECT name FROM volume_types")} == {
        t["name"] for t in demo_fixture["volume_types"] if t["is_public"] or projects & set(t.get("_access", []))}
    assert any(not t["is_public"] and projects & set(t["_access"]) for t in demo_fixture["volume_types"])
    assert "volume_type_encryption" not in listed and "volume_type_access" not in listed
    [counts] = query(database, "SELECT volume_type_encryption_count, volume_type_access_count FROM snapshots")
    assert counts == (None, None)


def test_a_cloud_scope_snapshot_that_cinder_does_not_take_for_admin_is_partial(tmp_path, monkeypatch,
                                                                               demo_fixture):
    # Keystone lets these credentials list every project; Cinder's policy wants another role for admin, so it
    # answers all_tenants with the token's own project and is_public=None with the public types, without an
    # error. Its own project holds one volume and one backup, which Cinder shows without their admin-only
    # attributes (host; the backup's project).
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["cinder_admin_role"] = "cinder-admin"
    admin_project = next(p["id"] for p in fixture["projects"] if p["name"] == "admin")
    fixture["volumes"][0]["os-vol-tenant-attr:tenant_id"] = admin_project
    fixture["volume_backups"][0]["os-backup-project-attr:project_id"] = admin_project
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "partial"
    assert listed["volumes"] == "partial 1" and listed["volume_backups"] == "partial 1"
    assert listed["volume_types"] == f"partial {sum(t['is_public'] for t in fixture['volume_types'])}"
    assert listed["volume_type_access"] == "failed 0"
    for resource_type in ("volumes", "volume_snapshots", "volume_backups", "volume_types", "volume_type_access"):
        [message] = _errors(database, resource_type)
        assert "admins only" in message and admin_project in message and "all_tenants" in message
    assert listed["volume_type_encryption"] == "failed 0"  # Cinder refuses these outright (403)
    # Cinder hid the backup's project: the one listed, the token's own, stands in for it.
    assert query(database, "SELECT project_id FROM volume_backups") == [(admin_project,)]

    # Its own project empty: the refusal of the types' encryption still gives it away.
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["cinder_admin_role"] = "cinder-admin"
    database, result, listed, _ = _snapshot(fixture, tmp_path / "empty", monkeypatch)
    assert listed["volumes"] == "failed 0"  # incomplete, and nothing came back
    [message] = _errors(database, "volumes")
    assert "refuses them the volume type encryption (403)" in message

    # Credentials without the admin role that Keystone still lets list every project (a reader's): the
    # same.
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["project_list_role"] = "reader"
    fixture["cloud"]["users"].append({"id": "5e1f0c2a9b7d4e3f8a6b1c0d2e3f4a5b", "name": "auditor", "password": "x",
                                      "domain": "Default", "roles": {admin_project: ["reader"]},
                                      "default_project_id": admin_project})
    database, result, listed, _ = _snapshot(fixture, tmp_path / "reader", monkeypatch, user="auditor")
    [scope] = query(database, "SELECT scope FROM snapshots")
    assert scope == ("cloud",)
    assert listed["volumes"] == "failed 0"
    [message] = _errors(database, "volumes")
    assert "admins only" in message and admin_project in message


def test_a_cinder_admin_under_another_role_name_is_taken_for_admin(tmp_path, monkeypatch, demo_fixture):
    # Cinder's policy takes `cinder-admin` for admin and Keystone lets that role list every project: what
    # Cinder shows, not the role's name, decides.
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"].update(cinder_admin_role="cinder-admin", project_list_role="cinder-admin")
    admin_project = next(p["id"] for p in fixture["projects"] if p["name"] == "admin")
    fixture["cloud"]["users"].append({"id": "0a1b2c3d4e5f40718293a4b5c6d7e8f9", "name": "storage-admin",
                                      "password": "x", "domain": "Default",
                                      "roles": {admin_project: ["cinder-admin"]}, "default_project_id": admin_project})
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch, user="storage-admin")
    for resource_type in ("volumes", "volume_snapshots", "volume_backups", "volume_types", "volume_type_encryption",
                          "volume_type_access"):
        assert listed[resource_type].startswith("complete"), (resource_type, _errors(database, resource_type))
    assert listed["volumes"] == f"complete {len(fixture['volumes'])}"


def test_a_region_without_cinder_has_no_volumes_and_is_complete(tmp_path, monkeypatch, demo_fixture):
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["catalog_without"] = ["block-storage"]
    database, result, listed, asked = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors
    assert not asked
    assert all(listed[t] == "complete 0" for t in CINDER)


def test_cinder_failures_make_only_their_listings_partial(tmp_path, monkeypatch, demo_fixture):
    encrypted = next(t["id"] for t in demo_fixture["volume_types"] if t.get("_encryption"))
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path, monkeypatch, faults=[
        {"path": r"^/volume/v3/snapshots/detail", "status": 500},
        {"path": rf"^/volume/v3/types/{encrypted}/encryption", "status": 403}])
    assert result.status == "partial"
    assert listed["volume_snapshots"] == "failed 0"
    assert listed["volume_type_encryption"] == "failed 0"  # its one encrypted type refused
    assert listed["volumes"] == f"complete {len(demo_fixture['volumes'])}"
    assert any("500" in m for m in _errors(database, "volume_snapshots"))
    [message] = _errors(database, "volume_type_encryption")
    assert "403" in message

    # A type deleted while its encryption was asked for has none, and that is no error.
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path / "gone", monkeypatch, faults=[
        {"path": rf"^/volume/v3/types/{encrypted}", "status": 404}])
    assert result.status == "complete", result.errors
    assert listed["volume_type_encryption"] == "complete 0"


def test_cinders_own_samples_are_stored_field_by_field(tmp_path, monkeypatch):
    from test_samples import _fixture

    def sample(name, key):
        return json.loads((SAMPLES / "cinder" / name).read_text())[key]

    volumes = sample("volumes-list-detailed-response.json", "volumes")
    snapshots = sample("snapshots-list-detailed-response.json", "snapshots")
    backups = sample("backups-list-detailed-response.json", "backups")
    types = sample("volume-types-list-response.json", "volume_types")
    encryption = json.loads((SAMPLES / "cinder/encryption-type-show-response.json").read_text())
    access = sample("volume-type-access-list-response.json", "volume_type_access")
    # the samples name types of their own: give the first type the sample encryption, make the second private
    types = copy.deepcopy(types)
    types[0]["_encryption"] = dict(encryption, volume_type_id=types[0]["id"])
    types[1].update(is_public=False, _access=[a["project_id"] for a in access])
    fixture = _fixture()
    fixture.update(volumes=volumes, volume_snapshots=snapshots, volume_backups=backups, volume_types=types)
    database, result, listed, _ = _snapshot(fixture, tmp_path, monkeypatch)
    assert result.status == "complete", result.errors

    [volume] = volumes
    assert query(database, "SELECT id, project_id, user_id, status, size_gb, availability_zone, volume_type, "
                           "volume_type_id, bootable, encrypted, multiattach, strftime(created_at, '%Y-%m-%dT%H:%M:%S')"
                           " FROM volumes") == [(
        volume["id"], volume["os-vol-tenant-attr:tenant_id"], volume["user_id"], volume["status"], volume["size"],
        volume["availability_zone"], volume["volume_type"], volume["volume_type_id"], False, False, False,
        volume["created_at"][:19])]
    [snap] = snapshots
    assert query(database, "SELECT id, project_id, user_id, volume_id, status, progress, metadata "
                           "FROM volume_snapshots") == [(
        snap["id"], snap["os-extended-snapshot-attributes:project_id"], snap["user_id"], snap["volume_id"],
        snap["status"], snap["os-extended-snapshot-attributes:progress"], json.dumps(snap["metadata"]).replace(" ", ""))]
    [backup] = backups
    assert query(database, "SELECT id, project_id, user_id, volume_id, status, is_incremental, object_count "
                           "FROM volume_backups") == [(
        backup["id"], backup["os-backup-project-attr:project_id"], backup["user_id"], backup["volume_id"],
        backup["status"], backup["is_incremental"], backup["object_count"])]
    assert sorted(query(database, "SELECT id, name, is_public FROM volume_types")) == sorted(
        (t["id"], t["name"], t["is_public"]) for t in types)
    assert query(database, "SELECT volume_type_id, encryption_id, provider, cipher, key_size, control_location "
                           "FROM volume_type_encryption") == [(
        types[0]["id"], encryption["encryption_id"], encryption["provider"], encryption["cipher"],
        encryption["key_size"], encryption["control_location"])]
    assert query(database, "SELECT volume_type_id, project_id FROM volume_type_access") == [
        (types[1]["id"], a["project_id"]) for a in access]


def test_volume_rules_skip_what_cinder_did_not_give_and_judge_the_rest(tmp_path, monkeypatch, demo_fixture):
    from auditor.config import RulesSettings
    from auditor.rules.evaluate import evaluate, load_ruleset

    rules = load_ruleset(RulesSettings())
    volume_rules = ("volume_encrypted", "volume_attached", "volume_not_multiattach", "volume_in_use_has_backup",
                    "volume_metadata_has_no_credentials")
    snapshot_rules = ("volume_snapshot_metadata_has_no_credentials", "volume_snapshot_has_volume")

    def statuses(database, snapshot_id):
        [evaluation] = evaluate(database, rules, [snapshot_id])
        found: dict[str, set] = {}
        for rule_id, status in query(database, "SELECT rule_id, status FROM findings WHERE evaluation_id = ?",
                                     [evaluation.evaluation_id]):
            found.setdefault(rule_id, set()).add(status)
        return found

    # Cinder failing its volume listing: every rule reading volumes skips, never passes; snapshots' metadata is
    # still judged.
    database, result, listed, _ = _snapshot(demo_fixture, tmp_path / "broken", monkeypatch, faults=[
        {"path": r"^/volume/v3/volumes/detail", "status": 500}])
    assert listed["volumes"] == "failed 0"
    found = statuses(database, result.snapshot_id)
    for rule_id in (*volume_rules, "volume_snapshot_has_volume"):
        assert found[rule_id] == {"skip"}, rule_id
    assert found["volume_snapshot_metadata_has_no_credentials"] == {"pass", "fail"}

    # A snapshot Cinder narrowed to one project judges nothing as if it were the cloud.
    fixture = copy.deepcopy(demo_fixture)
    fixture["cloud"]["cinder_admin_role"] = "cinder-admin"
    database, result, _, _ = _snapshot(fixture, tmp_path / "narrowed", monkeypatch)
    found = statuses(database, result.snapshot_id)
    assert all(found[rule_id] == {"skip"} for rule_id in (*volume_rules, *snapshot_rules))

    # A member's snapshot judges its projects' volumes.
    database, result, _, _ = _snapshot(demo_fixture, tmp_path / "alice", monkeypatch, user="alice")
    found = statuses(database, result.snapshot_id)
    assert found["volume_encrypted"] == {"pass", "fail"} and found["volume_in_use_has_backup"] >= {"pass", "fail"}
