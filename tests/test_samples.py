"""Every server, flavor, image, rule and port sample in tests/api-samples (verbatim upstream API samples),
served by the fake cloud over HTTP, collected, written to DuckDB and read back with the right values."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import SAMPLES, query, snapshot_into, write_clouds_yaml

from auditor.fakecloud import FakeCloud

ADMIN_PROJECT = "a" * 32


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _microversion(path: Path) -> str:
    match = re.search(r"/v(2\.\d+)/", str(path))
    return match.group(1) if match else "2.1"


def _samples(pattern: str, exclude: str = r"$^") -> list[Path]:
    found = sorted(p for p in SAMPLES.glob(pattern) if not re.search(exclude, p.name))
    assert found, f"no samples match {pattern}"
    return found


def _items(body: dict, plural: str, singular: str) -> list[dict]:
    return body[plural] if plural in body else [body[singular]]


def _cloud(microversion: str = "2.96") -> dict:
    return {
        "region": "RegionOne",
        "compute_max_microversion": microversion,
        "users": [{"id": "b" * 32, "name": "admin", "password": "pw", "default_project_id": ADMIN_PROJECT,
                   "roles": {ADMIN_PROJECT: ["admin"]}}],
    }


def _fixture(microversion="2.96", **resources) -> dict:
    fixture = {"cloud": _cloud(microversion), "projects": [
        {"id": ADMIN_PROJECT, "name": "admin", "domain_id": "default", "enabled": True, "is_domain": False,
         "parent_id": "default", "description": None, "tags": [], "links": {}},
    ]}
    for key in ("servers", "flavors", "availability_zones", "server_groups", "images", "security_groups",
                "ports", "floating_ips", "networks", "subnets", "routers", "address_groups"):
        fixture[key] = resources.get(key, [])
    return fixture


def _snapshot(fixture: dict, tmp_path: Path, monkeypatch) -> tuple[Path, int]:
    with FakeCloud(fixture) as cloud:
        write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
        database = tmp_path / "audit.duckdb"
        [result] = snapshot_into(database, page_size=2)
    assert result.status == "complete", result.errors
    return database, result.snapshot_id


def _unique(items: list[dict], sample: Path, key: str = "id") -> list[dict]:
    """Copies of a sample's records whose `key` is unique to that sample file: several files show the same
    record, and the samples of one microversion share one snapshot."""
    found = []
    for item in items:
        item = copy.deepcopy(item)
        if item.get(key) is not None:
            item[key] = _renamed(sample, item[key])
        found.append(item)
    return found


def _renamed(sample: Path, value: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sample.relative_to(SAMPLES)}#{value}"))


def _rows(database: Path, table: str) -> dict[str, dict]:
    con_rows = query(database, f"SELECT * FROM {table}")
    columns = [r[0] for r in query(database, f"SELECT column_name FROM information_schema.columns "
                                             f"WHERE table_name = '{table}' ORDER BY ordinal_position")]
    rows = [dict(zip(columns, r)) for r in con_rows]
    return {row["id"]: row for row in rows}


def _utc(text: str | None):
    if not text:
        return None
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed


ROOT_FLAVORS = _items(_load(SAMPLES / "nova/flavors/flavors-detail-resp.json"), "flavors", "flavor")
SERVER_SAMPLES = _samples("nova/servers/**/*.json", exclude=r"list") + _samples("nova/os-rescue/**/*.json")


FLAVOR_SAMPLES = _samples("nova/flavors/**/*.json", exclude=r"list")
IMAGE_SAMPLES = _samples("glance/image*.json", exclude=r"members")
RULE_SAMPLES = _samples("neutron/security-groups/*.json")
PORT_SAMPLES = _samples("neutron/ports/*.json")
NETWORKING_SAMPLES = {  # table -> (samples, plural key, singular key)
    "networks": (_samples("neutron/networks/network*.json"), "networks", "network"),
    "subnets": (_samples("neutron/subnets/subnet*.json"), "subnets", "subnet"),
    "routers": (_samples("neutron/routers/*.json"), "routers", "router"),
    "address_groups": (_samples("neutron/address-groups/*.json"), "address_groups", "address_group"),
}
ZONE_SAMPLE = SAMPLES / "nova/os-availability-zone/availability-zone-detail-resp.json"
COMMON_MICROVERSION = "2.96"  # the snapshot that also holds the images, groups, rules, ports and zones


def _servers(sample: Path) -> list[dict]:
    return _unique(_items(_load(sample), "servers", "server"), sample)


def _flavors(sample: Path) -> list[dict]:
    return _unique(_items(_load(sample), "flavors", "flavor"), sample)


def _images(sample: Path) -> list[dict]:
    body = _load(sample)
    return _unique(body["images"] if "images" in body else [body], sample)


def _groups_and_rules(sample: Path) -> tuple[list[dict], list[dict]]:
    body = _load(sample)
    if "security_group_rules" in body or "security_group_rule" in body:
        rules = _unique(_items(body, "security_group_rules", "security_group_rule"), sample)
        for rule in rules:
            rule["security_group_id"] = _renamed(sample, rule["security_group_id"])
        groups = [{"id": gid, "name": "g", "project_id": ADMIN_PROJECT, "tenant_id": ADMIN_PROJECT,
                   "description": "", "security_group_rules": [r for r in rules if r["security_group_id"] == gid]}
                  for gid in sorted({r["security_group_id"] for r in rules})]
    else:
        groups = _unique(_items(body, "security_groups", "security_group"), sample)
        for group in groups:
            group["security_group_rules"] = _unique(group["security_group_rules"], sample)
            for rule in group["security_group_rules"]:
                rule["security_group_id"] = group["id"]
        rules = [r for g in groups for r in g["security_group_rules"]]
    return groups, rules


def _ports(sample: Path) -> list[dict]:
    return _unique(_items(_load(sample), "ports", "port"), sample)


def _networking(table: str, sample: Path) -> list[dict]:
    _samples_, plural, singular = NETWORKING_SAMPLES[table]
    return _unique(_items(_load(sample), plural, singular), sample)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, Path]:
    """One snapshot per compute microversion, holding every sample of that microversion: 61 sample files,
    21 snapshots. Each test then checks its own file's records, by their (per-file) ids."""
    resources: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for sample in SERVER_SAMPLES:
        resources[_microversion(sample)]["servers"] += _servers(sample)
    for sample in FLAVOR_SAMPLES:
        resources[_microversion(sample)]["flavors"] += _flavors(sample)
    common = resources[COMMON_MICROVERSION]
    for sample in IMAGE_SAMPLES:
        common["images"] += _images(sample)
    for sample in RULE_SAMPLES:
        common["security_groups"] += _groups_and_rules(sample)[0]
    for sample in PORT_SAMPLES:
        common["ports"] += _ports(sample)
    for table, (samples, _plural, _singular) in NETWORKING_SAMPLES.items():
        for sample in samples:
            common[table] += _networking(table, sample)
    common["availability_zones"] = _load(ZONE_SAMPLE)["availabilityZoneInfo"]
    databases = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for microversion, found in sorted(resources.items()):
            found["flavors"] += copy.deepcopy(ROOT_FLAVORS)  # servers before 2.47 name their flavor by these ids
            folder = tmp_path_factory.mktemp(f"samples-{microversion}")
            databases[microversion], _ = _snapshot(_fixture(microversion, **found), folder, monkeypatch)
    return databases


@pytest.mark.parametrize("sample", SERVER_SAMPLES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_server_samples(sample, snapshots):
    servers = _servers(sample)
    database = snapshots[_microversion(sample)]
    rows = _rows(database, "servers")
    assert {s["id"] for s in servers} <= set(rows)
    flavors_by_id = {f["id"]: f for f in ROOT_FLAVORS}
    for server in servers:
        row = rows[server["id"]]
        down_cell = "name" not in server
        assert row["down_cell"] is down_cell
        assert row["name"] == server.get("name")
        assert row["status"] == server["status"]
        assert row["project_id"] == server["tenant_id"]
        assert row["availability_zone"] == server.get("OS-EXT-AZ:availability_zone")
        assert row["host"] == server.get("OS-EXT-SRV-ATTR:host")
        assert row["key_name"] == server.get("key_name")
        assert row["locked_reason"] == server.get("locked_reason")
        assert row["trusted_image_certificates"] == server.get("trusted_image_certificates")
        assert row["created_at"] == _utc(server.get("created"))
        flavor = server.get("flavor")
        if flavor and "original_name" in flavor:  # embedded since 2.47
            assert (row["flavor_name"], row["flavor_vcpus"], row["flavor_ram_mb"], row["flavor_disk_gb"]) == (
                flavor["original_name"], flavor["vcpus"], flavor["ram"], flavor["disk"])
        elif flavor:  # by id before 2.47: details come from the flavor list
            known = flavors_by_id[flavor["id"]]
            assert row["flavor_id"] == flavor["id"]
            assert (row["flavor_name"], row["flavor_vcpus"], row["flavor_ram_mb"]) == (
                known["name"], known["vcpus"], known["ram"])
        else:
            assert row["flavor_name"] is None
        if isinstance(server.get("image"), dict):
            assert row["image_id"] == server["image"]["id"]
            assert row["boot_from_volume"] is False
        else:
            assert row["image_id"] is None and row["boot_from_volume"] is None
        if "security_groups" in server:
            assert row["security_group_names"] == sorted({g["name"] for g in server["security_groups"]})
        else:
            assert row["security_group_names"] is None
        assert json.loads(row["addresses"]) == server["addresses"] if "addresses" in server else True
        raw = json.loads(row["raw"])
        assert "OS-EXT-SRV-ATTR:user_data" not in raw and "adminPass" not in raw
    text = " ".join(str(rows[s["id"]]["raw"]) for s in servers)
    for server in servers:
        if server.get("OS-EXT-SRV-ATTR:user_data"):
            assert server["OS-EXT-SRV-ATTR:user_data"] not in text


def _variant(**changes) -> dict:
    """The 2.96 sample server with some fields changed: shapes Nova returns that no sample file shows."""
    server = copy.deepcopy(_items(_load(SAMPLES / "nova/servers/v2.96/server-get-resp.json"), "servers", "server")[0])
    for key, value in changes.items():
        if value is ...:
            server.pop(key, None)
        else:
            server[key] = value
    return server


def test_server_shapes_beyond_the_samples(tmp_path, monkeypatch):
    deleted_flavor = dict(_variant(flavor={}), id="11111111-1111-1111-1111-111111111111")
    from_volume = dict(_variant(image=""), id="22222222-2222-2222-2222-222222222222")
    no_groups = dict(_variant(security_groups=...), id="33333333-3333-3333-3333-333333333333")
    secrets = dict(
        _variant(adminPass="s3cret-admin-pass", metadata={"db_password": "hunter2", "role": "web"}),
        **{"id": "44444444-4444-4444-4444-444444444444", "OS-EXT-SRV-ATTR:user_data": "I2Nsb3VkLWNvbmZpZw=="},
    )
    database, _ = _snapshot(_fixture(servers=[deleted_flavor, from_volume, no_groups, secrets]), tmp_path,
                            monkeypatch)
    rows = _rows(database, "servers")
    assert rows[deleted_flavor["id"]]["flavor_name"] is None
    assert rows[deleted_flavor["id"]]["flavor_vcpus"] is None
    assert rows[from_volume["id"]]["boot_from_volume"] is True
    assert rows[from_volume["id"]]["image_id"] is None
    assert rows[no_groups["id"]]["security_group_names"] is None
    assert json.loads(rows[secrets["id"]]["metadata"]) == {"db_password": "[REDACTED]", "role": "web"}
    dump = " ".join(str(v) for row in rows.values() for v in row.values())
    for secret in ("s3cret-admin-pass", "hunter2", "I2Nsb3VkLWNvbmZpZw=="):
        assert secret not in dump


@pytest.mark.parametrize("sample", FLAVOR_SAMPLES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_flavor_samples(sample, snapshots):
    flavors = _flavors(sample)
    rows = _rows(snapshots[_microversion(sample)], "flavors")
    assert {f["id"] for f in flavors} <= set(rows)
    for flavor in flavors:
        row = rows[flavor["id"]]
        assert (row["name"], row["vcpus"], row["ram_mb"], row["disk_gb"]) == (
            flavor["name"], flavor["vcpus"], flavor["ram"], flavor["disk"])
        assert row["swap_mb"] == (flavor["swap"] or 0)
        assert row["ephemeral_gb"] == flavor.get("OS-FLV-EXT-DATA:ephemeral")
        assert row["is_public"] == flavor.get("os-flavor-access:is_public")
        assert row["disabled"] == flavor.get("OS-FLV-DISABLED:disabled")
        assert row["description"] == flavor.get("description")
        if "extra_specs" in flavor:
            assert json.loads(row["extra_specs"]) == flavor["extra_specs"]
        else:
            assert row["extra_specs"] is None


@pytest.mark.parametrize("sample", IMAGE_SAMPLES, ids=lambda p: p.name)
def test_image_samples(sample, snapshots):
    images = _images(sample)
    rows = _rows(snapshots[COMMON_MICROVERSION], "images")
    assert {i["id"] for i in images} <= set(rows)
    for image in images:
        row = rows[image["id"]]
        assert (row["name"], row["status"], row["visibility"], row["project_id"]) == (
            image.get("name"), image["status"], image["visibility"], image.get("owner"))
        assert row["os_hidden"] == image.get("os_hidden")
        assert row["size_bytes"] == image.get("size")
        assert row["created_at"] == _utc(image["created_at"])


@pytest.mark.parametrize("sample", RULE_SAMPLES, ids=lambda p: p.name)
def test_security_group_and_rule_samples(sample, snapshots):
    groups, rules = _groups_and_rules(sample)
    database = snapshots[COMMON_MICROVERSION]
    group_rows = _rows(database, "security_groups")
    assert {g["id"] for g in groups} <= set(group_rows)
    for group in groups:
        assert group_rows[group["id"]]["rule_count"] == len(group["security_group_rules"])
    rows = _rows(database, "security_group_rules")
    assert {r["id"] for r in rules} <= set(rows)
    names = {None: "any", "6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}
    for rule in rules:
        row = rows[rule["id"]]
        assert (row["direction"], row["ethertype"], row["protocol"]) == (
            rule["direction"], rule["ethertype"], rule["protocol"])
        assert row["protocol_name"] == names.get(rule["protocol"], rule["protocol"])
        assert (row["port_range_min"], row["port_range_max"]) == (rule["port_range_min"], rule["port_range_max"])
        assert (row["remote_ip_prefix"], row["remote_group_id"]) == (rule["remote_ip_prefix"], rule["remote_group_id"])
        assert row["security_group_id"] == rule["security_group_id"]
    assert any(r["ethertype"] == "IPv6" for r in rules) or "create" in sample.name or "show" in sample.name


def test_numeric_and_null_protocols(tmp_path, monkeypatch):
    base = _items(_load(SAMPLES / "neutron/security-groups/security-group-rule-show-response.json"),
                  "security_group_rules", "security_group_rule")[0]
    variants = {"6": "tcp", "17": "udp", "58": "ipv6-icmp", None: "any", "icmp": "icmp", "132": "132"}
    rules = [dict(base, id=f"00000000-0000-0000-0000-{i:012d}", protocol=p) for i, p in enumerate(variants)]
    group = {"id": base["security_group_id"], "name": "g", "project_id": ADMIN_PROJECT, "description": "",
             "security_group_rules": rules}
    database, _ = _snapshot(_fixture(security_groups=[group]), tmp_path, monkeypatch)
    got = dict(query(database, "SELECT protocol, protocol_name FROM security_group_rules"))
    assert got == variants


@pytest.mark.parametrize("sample", PORT_SAMPLES, ids=lambda p: p.name)
def test_port_samples(sample, snapshots):
    ports = _ports(sample)
    rows = _rows(snapshots[COMMON_MICROVERSION], "ports")
    assert {p["id"] for p in ports} <= set(rows)
    for port in ports:
        row = rows[port["id"]]
        assert row["device_id"] == (port["device_id"] or None)
        assert row["device_owner"] == (port["device_owner"] or None)
        assert row["security_group_ids"] == port["security_groups"]
        assert row["port_security_enabled"] == port.get("port_security_enabled")
        assert row["ip_addresses"] == [f["ip_address"] for f in port["fixed_ips"]]
        assert row["mac_address"] == port["mac_address"]


NETWORKING_CASES = [(table, sample) for table, (samples, _p, _s) in NETWORKING_SAMPLES.items() for sample in samples]


@pytest.mark.parametrize("table, sample", NETWORKING_CASES, ids=lambda v: v if isinstance(v, str) else v.name)
def test_networking_samples(table, sample, snapshots):
    items = _networking(table, sample)
    rows = _rows(snapshots[COMMON_MICROVERSION], table)
    assert items and {i["id"] for i in items} <= set(rows)
    for item in items:
        row = rows[item["id"]]
        assert (row["name"], row["project_id"], row["description"]) == (
            item["name"], item["project_id"], item["description"])
        assert json.loads(row["raw"]) == item
        if table == "networks":
            assert (row["shared"], row["external"], row["admin_state_up"], row["status"], row["mtu"]) == (
                item["shared"], item["router:external"], item["admin_state_up"], item["status"], item["mtu"])
            assert row["subnet_ids"] == item["subnets"] and row["created_at"] == _utc(item["created_at"])
            for column in ("network_type", "physical_network", "segmentation_id"):
                assert row[f"provider_{column}"] == item.get(f"provider:{column}")
            assert (json.loads(row["segments"]) if row["segments"] else None) == item.get("segments")
            assert (row["is_default"], row["port_security_enabled"], row["availability_zones"], row["tags"]) == (
                item.get("is_default"), item["port_security_enabled"], item["availability_zones"], item.get("tags"))
        elif table == "subnets":
            assert (row["network_id"], row["ip_version"], row["cidr"], row["gateway_ip"], row["enable_dhcp"]) == (
                item["network_id"], item["ip_version"], item["cidr"], item["gateway_ip"], item["enable_dhcp"])
            assert json.loads(row["allocation_pools"]) == item["allocation_pools"]
            assert row["dns_nameservers"] == item["dns_nameservers"]
            assert (row["ipv6_address_mode"], row["ipv6_ra_mode"], row["subnetpool_id"], row["segment_id"]) == (
                item["ipv6_address_mode"], item["ipv6_ra_mode"], item["subnetpool_id"], item["segment_id"])
            assert json.loads(row["host_routes"]) == item["host_routes"] and row["tags"] == item.get("tags")
        elif table == "routers":
            gateway = item["external_gateway_info"] or {}
            assert (row["external_network_id"], row["enable_snat"]) == (
                gateway.get("network_id"), gateway.get("enable_snat"))
            assert row["external_ip_addresses"] == [f["ip_address"] for f in gateway.get("external_fixed_ips", [])]
            assert (row["distributed"], row["ha"], json.loads(row["routes"])) == (
                item["distributed"], item["ha"], item["routes"])
        else:
            assert row["addresses"] == item["addresses"]


def test_availability_zone_sample(snapshots):
    database = snapshots[COMMON_MICROVERSION]
    rows = {r[0]: r[1:] for r in query(database, "SELECT name, available, compute_hosts FROM availability_zones")}
    assert rows == {"internal": (True, []), "nova": (True, ["compute"])}
