import hashlib
import json
import random
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from auditor.fakecloud.generate import generate_cloud

SAMPLES = Path(__file__).resolve().parent / "api-samples"
RESOURCES = ("projects", "servers", "flavors", "availability_zones", "server_groups", "images",
             "security_groups", "ports", "floating_ips", "networks", "subnets", "routers", "address_groups", "users",
             "application_credentials", "volumes", "volume_snapshots", "volume_backups", "volume_types", "containers")
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def cloud():
    return generate_cloud(1000, seed=1)


def compute_ports(cloud):
    return [p for p in cloud["ports"] if p["device_owner"].startswith("compute:")]


def sample_item(path, key):
    return json.loads((SAMPLES / path).read_text())[key][0]


def test_result_has_every_resource_as_a_plain_list(cloud):
    assert set(cloud) == {"cloud", *RESOURCES}
    for name in RESOURCES:
        assert isinstance(cloud[name], list) and cloud[name], name


def test_same_seed_gives_identical_json_and_other_seeds_differ():
    first = json.dumps(generate_cloud(300, seed=7))
    assert json.dumps(generate_cloud(300, seed=7)) == first
    assert json.dumps(generate_cloud(300, seed=8)) != first


def test_does_not_touch_the_global_random_state():
    random.seed(42)
    expected = random.random()
    random.seed(42)
    generate_cloud(50, seed=3)
    assert random.random() == expected


def test_ids_are_uuid4_from_the_seeded_rng_and_keystone_ids_are_hex(cloud):
    for name in ("servers", "ports", "security_groups", "floating_ips", "server_groups", "images", "networks",
                 "subnets", "routers", "address_groups"):
        for item in cloud[name]:
            parsed = uuid.UUID(item["id"])
            assert parsed.version == 4 and str(parsed) == item["id"]
    for project in cloud["projects"]:
        assert HEX32.fullmatch(project["id"])
    for user in cloud["cloud"]["users"]:
        assert HEX32.fullmatch(user["id"])
    all_ids = [item["id"] for name in RESOURCES if name not in ("availability_zones", "containers")
               for item in cloud[name]]  # a container is named, not numbered
    assert len(all_ids) == len(set(all_ids))


def test_uuid_factory_matches_the_uuid_module():
    from auditor.fakecloud.generate import _Builder

    builder = _Builder(0, 11)
    rng = random.Random(11)
    for _ in range(1000):
        assert builder.uuid() == str(uuid.UUID(int=rng.getrandbits(128), version=4))


def test_rejects_a_negative_server_count():
    with pytest.raises(ValueError, match="non-negative"):
        generate_cloud(-1)


def test_small_clouds_are_complete():
    for servers in (0, 1, 7):
        result = generate_cloud(servers, seed=2)
        assert len(result["servers"]) == servers
        assert len(result["projects"]) == 3
        assert result["cloud"]["users"][1]["default_project_id"] == result["projects"][1]["id"]


def test_cloud_json(cloud):
    meta = cloud["cloud"]
    admin_project, member_project = cloud["projects"][0], cloud["projects"][1]
    assert admin_project["name"] == "admin" and member_project["name"] != "admin"
    assert meta["region"] == "RegionOne"
    assert meta["compute_max_microversion"] == "2.96"
    assert meta["keystone_list_limit"] is None
    admin, member = meta["users"]
    assert (admin["name"], admin["password"]) == ("admin", "synthetic-admin-password")
    assert admin["roles"] == {admin_project["id"]: ["admin", "ResellerAdmin"]}
    assert admin["default_project_id"] == admin_project["id"]
    assert (member["name"], member["password"]) == ("member", "synthetic-member-password")
    assert member["roles"] == {member_project["id"]: ["member"]}
    assert member_project["enabled"]
    [credential] = meta["application_credentials"]
    assert credential["user_id"] == admin["id"] and credential["project_id"] == admin_project["id"]
    assert credential["secret"]


def test_ratios_hold_for_1000_servers(cloud):
    servers = cloud["servers"]
    assert len(servers) == 1000
    assert len(cloud["projects"]) == 10
    assert len(cloud["flavors"]) == 20
    assert len(cloud["images"]) == 15

    zones = {z["zoneName"]: z for z in cloud["availability_zones"]}
    assert set(zones) == {"internal", "az-1", "az-2", "az-3"}
    compute_hosts = [h for name in ("az-1", "az-2", "az-3") for h in zones[name]["hosts"]]
    assert len(compute_hosts) == 1000 // 40 and all(zones[z]["hosts"] for z in ("az-1", "az-2", "az-3"))

    status = Counter(s["status"] for s in servers)
    assert 800 <= status["ACTIVE"] <= 900
    assert 50 <= status["SHUTOFF"] <= 140
    assert 10 <= status["ERROR"] <= 60
    assert 10 <= status["SHELVED_OFFLOADED"] <= 60
    assert all("fault" in s for s in servers if s["status"] == "ERROR")
    assert not any("fault" in s for s in servers if s["status"] != "ERROR")
    assert 25 <= sum(s["image"] == "" for s in servers) <= 80
    assert sum("deployment" in s["metadata"] for s in servers) >= 600

    groups = cloud["security_groups"]
    defaults = [g for g in groups if g["name"] == "default"]
    assert sorted(g["project_id"] for g in defaults) == sorted(p["id"] for p in cloud["projects"])
    others = [g for g in groups if g["name"] != "default"]
    assert 80 <= len(others) <= 130
    rules_per_group = sum(len(g["security_group_rules"]) for g in others) / len(others)
    assert 15 <= rules_per_group <= 25

    ports = compute_ports(cloud)
    assert 1.7 <= len(ports) / len(servers) <= 2.2
    dhcp = [p for p in cloud["ports"] if p["device_owner"] == "network:dhcp"]
    assert len(dhcp) == len(cloud["projects"])
    assert 5 <= sum(not p["port_security_enabled"] for p in ports) <= 80
    assert 5 <= sum(p["port_security_enabled"] and not p["security_groups"] for p in ports) <= 80

    bound = [f for f in cloud["floating_ips"] if f["port_id"]]
    assert 60 <= len(bound) <= 140
    assert len(cloud["floating_ips"]) - len(bound) == 1000 // 250

    assert 30 <= len(cloud["server_groups"]) <= 70


def test_image_mix(cloud):
    big = generate_cloud(4000, seed=1)["images"]
    assert len(big) == 30
    for images in (cloud["images"], big):
        kinds = Counter(i["visibility"] for i in images)
        assert kinds["public"] and kinds["private"] and kinds["shared"] and kinds["community"]
        assert any(i["os_hidden"] for i in images)
        assert any(i["status"] == "deactivated" for i in images)
        assert kinds["public"] + kinds["private"] > len(images) * 0.6
        for image in images:
            assert ("_members" in image) == (image["visibility"] == "shared")


def test_rules_cover_the_interesting_cases(cloud):
    rules = [r for g in cloud["security_groups"] for r in g["security_group_rules"]]
    protocols = Counter(r["protocol"] for r in rules)
    assert protocols["tcp"] and protocols["udp"] and protocols["icmp"] and protocols[None]
    assert {"IPv4", "IPv6"} == {r["ethertype"] for r in rules}
    world = [r for r in rules if r["direction"] == "ingress" and r["remote_ip_prefix"] in ("0.0.0.0/0", "::/0")]
    assert {22, 3389, 5432} <= {r["port_range_min"] for r in world}
    assert any(r["remote_ip_prefix"] == "::/0" for r in world)
    assert any(r["remote_ip_prefix"] in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16") for r in rules)
    assert any(r["remote_group_id"] for r in rules)
    for rule in rules:
        if rule["remote_ip_prefix"]:
            assert rule["ethertype"] == ("IPv6" if ":" in rule["remote_ip_prefix"] else "IPv4")
            assert rule["remote_group_id"] is None


def test_default_groups_have_the_standard_rules(cloud):
    for group in cloud["security_groups"]:
        if group["name"] != "default":
            continue
        standard = {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in group["security_group_rules"]
                    if r["protocol"] is None and r["remote_ip_prefix"] is None}
        gid = group["id"]
        assert standard == {("egress", "IPv4", None), ("egress", "IPv6", None),
                            ("ingress", "IPv4", gid), ("ingress", "IPv6", gid)}
        assert all(r["belongs_to_default_sg"] for r in group["security_group_rules"])


def test_referential_integrity(cloud):
    servers = {s["id"]: s for s in cloud["servers"]}
    groups = {g["id"]: g for g in cloud["security_groups"]}
    ports = {p["id"]: p for p in cloud["ports"]}
    images = {i["id"] for i in cloud["images"]}
    projects = {p["id"] for p in cloud["projects"]}

    for port in ports.values():
        assert port["project_id"] == port["tenant_id"]
        # Neutron gives a router's gateway port no project
        assert port["project_id"] in projects or (port["device_owner"] == "network:router_gateway"
                                                  and port["project_id"] == "")
        if port["device_owner"].startswith("compute:"):
            server = servers[port["device_id"]]
            assert port["project_id"] == server["tenant_id"]
            assert port["device_owner"] == "compute:" + server["OS-EXT-AZ:availability_zone"]
        else:
            assert port["device_owner"] in ("network:dhcp", "network:router_interface", "network:router_gateway")
        if not port["port_security_enabled"]:
            assert port["security_groups"] == []
        assert len(port["security_groups"]) <= 2
        for gid in port["security_groups"]:
            assert groups[gid]["project_id"] == port["project_id"]

    for group in groups.values():
        assert group["project_id"] == group["tenant_id"] and group["project_id"] in projects
        for rule in group["security_group_rules"]:
            assert rule["security_group_id"] == group["id"]
            assert rule["project_id"] == rule["tenant_id"] == group["project_id"]
            if rule["remote_group_id"]:
                assert groups[rule["remote_group_id"]]["project_id"] == group["project_id"]

    for server in servers.values():
        assert server["tenant_id"] in projects
        image = server["image"]
        assert image == "" or image["id"] in images
        if image == "":
            assert server["os-extended-volumes:volumes_attached"]

    for fip in cloud["floating_ips"]:
        assert fip["project_id"] == fip["tenant_id"]
        if fip["port_id"] is not None:
            port = ports[fip["port_id"]]
            assert fip["fixed_ip_address"] in {f["ip_address"] for f in port["fixed_ips"]}
            assert fip["port_details"]["device_id"] == port["device_id"] in servers
            assert fip["project_id"] == port["project_id"]
        else:
            assert fip["port_details"] is None and fip["fixed_ip_address"] is None

    member_of = Counter()
    for group in cloud["server_groups"]:
        for member in group["members"]:
            assert servers[member]["tenant_id"] == group["project_id"]
            member_of[member] += 1
        hosts = [servers[m]["OS-EXT-SRV-ATTR:host"] for m in group["members"]]
        hosts = [h for h in hosts if h]
        if group["policy"] == "affinity":
            assert len(set(hosts)) <= 1
    assert member_of and max(member_of.values()) == 1


def test_private_flavors_are_used_only_by_projects_with_access(cloud):
    access = {f["name"]: set(f["_access"]) for f in cloud["flavors"] if not f["os-flavor-access:is_public"]}
    assert access
    for server in cloud["servers"]:
        name = server["flavor"]["original_name"]
        if name in access:
            assert server["tenant_id"] in access[name]


def test_server_security_groups_and_addresses_follow_the_ports(cloud):
    names = {g["id"]: g["name"] for g in cloud["security_groups"]}
    ports_of = {}
    for port in compute_ports(cloud):
        ports_of.setdefault(port["device_id"], []).append(port)
    floating = {f["port_id"]: f["floating_ip_address"] for f in cloud["floating_ips"] if f["port_id"]}

    for server in cloud["servers"]:
        ports = ports_of.get(server["id"], [])
        expected = Counter(names[g] for p in ports for g in p["security_groups"])
        if expected:
            assert Counter(entry["name"] for entry in server["security_groups"]) == expected
            assert all(set(entry) == {"name"} for entry in server["security_groups"])
        else:
            assert "security_groups" not in server

        addresses = {(a["addr"], a["OS-EXT-IPS-MAC:mac_addr"], a["OS-EXT-IPS:type"])
                     for entries in server["addresses"].values() for a in entries}
        wanted = {(f["ip_address"], p["mac_address"], "fixed") for p in ports for f in p["fixed_ips"]}
        wanted |= {(floating[p["id"]], p["mac_address"], "floating") for p in ports if p["id"] in floating}
        assert addresses == wanted
        for entries in server["addresses"].values():
            for entry in entries:
                assert entry["version"] == (6 if ":" in entry["addr"] else 4)

        if server["OS-EXT-SRV-ATTR:host"] is None:
            assert server["hostId"] == "" and server["host_status"] == ""
        else:
            digest = hashlib.sha224((server["tenant_id"] + server["OS-EXT-SRV-ATTR:host"]).encode()).hexdigest()
            assert server["hostId"] == digest


def assert_same_shape(item, sample, optional=(), loose=()):
    assert set(item) - set(optional) == set(sample) - set(optional)
    for key, value in sample.items():
        if key in item and value is not None and item[key] is not None and key not in loose:
            assert isinstance(item[key], type(value)), (key, item[key], value)


def test_items_have_the_real_api_shapes(cloud):
    detail_296 = sample_item("nova/servers/v2.96/servers-details-resp.json", "servers")
    detail_273 = sample_item("nova/servers/v2.73/servers-details-resp.json", "servers")
    server_shape = {**detail_273, **detail_296}
    for server in cloud["servers"]:
        assert_same_shape(server, server_shape, optional=("fault", "security_groups"), loose=("image",))
        assert set(server["flavor"]) == set(detail_296["flavor"])
        assert isinstance(server["image"], dict) or server["image"] == ""

    flavor = sample_item("nova/flavors/v2.75/flavors-detail-resp.json", "flavors")
    for item in cloud["flavors"]:
        assert_same_shape(item, flavor, optional=("_access",))

    zone = sample_item("nova/os-availability-zone/availability-zone-detail-resp.json", "availabilityZoneInfo")
    for item in cloud["availability_zones"]:
        assert_same_shape(item, zone)

    image = sample_item("glance/images-list-response.json", "images")
    for item in cloud["images"]:
        assert_same_shape(item, image, optional=("_members",))

    group = sample_item("neutron/security-groups/security-groups-list-response.json", "security_groups")
    listed_rule = sample_item("neutron/security-groups/security-group-rules-list-response.json",
                              "security_group_rules")
    rule_shape = {**group["security_group_rules"][0], **listed_rule}
    for item in cloud["security_groups"]:
        assert_same_shape(item, group)
        for rule in item["security_group_rules"]:
            assert_same_shape(rule, rule_shape)

    port = sample_item("neutron/ports/ports-list-response.json", "ports")
    for item in cloud["ports"]:
        assert_same_shape(item, port)

    project = sample_item("keystone/projects-list-response.json", "projects")
    for item in cloud["projects"]:
        assert_same_shape(item, project)


def test_floating_ip_and_server_group_shapes(cloud):
    fip_keys = {"router_id", "description", "dns_domain", "dns_name", "created_at", "updated_at",
                "revision_number", "project_id", "tenant_id", "floating_network_id", "fixed_ip_address",
                "floating_ip_address", "port_id", "id", "status", "port_details", "tags"}
    for fip in cloud["floating_ips"]:
        assert set(fip) == fip_keys
    for group in cloud["server_groups"]:
        assert set(group) == {"id", "name", "policy", "rules", "members", "project_id", "user_id"}
        assert group["policy"] in {"affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"}


def test_networks_subnets_and_routers_are_those_the_ports_and_floating_ips_use(cloud):
    networks = {n["id"]: n for n in cloud["networks"]}
    subnets = {s["id"]: s for s in cloud["subnets"]}
    assert {p["network_id"] for p in cloud["ports"]} <= set(networks)
    for port in cloud["ports"]:
        for fixed in port["fixed_ips"]:
            assert subnets[fixed["subnet_id"]]["network_id"] == port["network_id"]
    assert all(s["id"] in networks[s["network_id"]]["subnets"] for s in subnets.values())
    [public] = [n for n in networks.values() if n["router:external"]]
    assert {f["floating_network_id"] for f in cloud["floating_ips"]} == {public["id"]}
    routers = {r["id"]: r for r in cloud["routers"]}
    assert {f["router_id"] for f in cloud["floating_ips"] if f["router_id"]} <= set(routers)
    assert all(r["external_gateway_info"]["network_id"] == public["id"] for r in routers.values())
    router_ports = [p for p in cloud["ports"] if p["device_owner"].startswith("network:router_")]
    interfaces = {p["device_id"]: p for p in router_ports if p["device_owner"] == "network:router_interface"}
    gateways = {p["device_id"]: p for p in router_ports if p["device_owner"] == "network:router_gateway"}
    assert set(interfaces) == set(gateways) == set(routers)
    for router_id, router in routers.items():
        assert interfaces[router_id]["project_id"] == router["project_id"]
        assert networks[interfaces[router_id]["network_id"]]["project_id"] == router["project_id"]
        assert gateways[router_id]["network_id"] == public["id"]
        assert gateways[router_id]["fixed_ips"] == router["external_gateway_info"]["external_fixed_ips"]
    [shared] = [n for n in networks.values() if n["shared"]]
    assert shared["name"] == "provider"
    tenant = [n for n in networks.values() if not n["shared"] and not n["router:external"]]
    assert len(tenant) == len(cloud["projects"]) - 1  # every project but "service"
    wide = [g for g in cloud["address_groups"] if "0.0.0.0/0" in g["addresses"]]
    assert len(cloud["address_groups"]) == 2 and len(wide) <= 1


def test_networking_records_have_the_key_sets_of_the_api_samples(cloud):
    for name, sample, key in (("networks", "neutron/networks/networks-list-response.json", "networks"),
                              ("subnets", "neutron/subnets/subnets-list-response.json", "subnets"),
                              ("routers", "neutron/routers/routers-list-response.json", "routers"),
                              ("address_groups", "neutron/address-groups/address-groups-list-response.json",
                               "address_groups")):
        expected = set(sample_item(sample, key))
        for item in cloud[name]:
            # pvlan, qinq and vlan_transparent come from optional ML2 extensions
            missing = expected - set(item) - {"pvlan", "qinq", "vlan_transparent"}
            assert not missing, (name, missing)


def test_identity_records_have_the_key_sets_of_the_api_samples_and_a_mix_of_settings():
    cloud = generate_cloud(2000, seed=1)
    users, credentials = cloud["users"], cloud["application_credentials"]
    assert len(users) == 200  # one per 10 servers
    user_keys = set(sample_item("keystone/users-list-response.json", "users"))
    credential_keys = set(sample_item("keystone/application-credential-list-response.json", "application_credentials"))
    assert all(user_keys <= set(u) for u in users)
    assert all(credential_keys <= set(c) for c in credentials)
    ids = {u["id"] for u in users}
    assert len(ids) == len(users) and {c["_user_id"] for c in credentials} <= ids
    projects = {p["id"] for p in cloud["projects"]}
    assert all(set(u["_roles"]) <= projects for u in users)
    # Every project's own users are there (servers name them), and the logins hold their roles.
    assert {s["user_id"] for s in cloud["servers"]} <= ids
    logins = {u["id"]: u["roles"] for u in cloud["cloud"]["users"]}
    assert all(next(x for x in users if x["id"] == uid)["_roles"] == roles for uid, roles in logins.items())
    mfa = Counter(bool(u["options"].get("multi_factor_auth_rules")) for u in users)
    assert mfa[True] > mfa[False] > 0
    assert any(not u["enabled"] for u in users) and any(u["password_expires_at"] is None for u in users)
    assert any(c["unrestricted"] for c in credentials) and not all(c["unrestricted"] for c in credentials)
    assert any(c["expires_at"] is None for c in credentials)


def test_block_storage_records_have_the_key_sets_of_the_api_samples_and_follow_the_servers(cloud):
    for name, sample, key in (("volumes", "cinder/volumes-list-detailed-response.json", "volumes"),
                              ("volume_snapshots", "cinder/snapshots-list-detailed-response.json", "snapshots"),
                              ("volume_backups", "cinder/backups-list-detailed-response.json", "backups"),
                              ("volume_types", "cinder/volume-types-list-response.json", "volume_types")):
        expected = set(sample_item(sample, key))
        assert all(expected <= set(item) for item in cloud[name]), name
    volumes = {v["id"]: v for v in cloud["volumes"]}
    assert len(volumes) == len(cloud["servers"])  # about one volume per server
    for server in cloud["servers"]:
        for attached in server["os-extended-volumes:volumes_attached"] or []:
            volume = volumes[attached["id"]]
            assert volume["status"] == "in-use" and volume["os-vol-tenant-attr:tenant_id"] == server["tenant_id"]
            assert [a["server_id"] for a in volume["attachments"]] == [server["id"]]
    types = {t["id"]: t for t in cloud["volume_types"]}
    assert all(v["encrypted"] == ("_encryption" in types[v["volume_type_id"]]) for v in volumes.values())
    statuses = Counter(v["status"] for v in volumes.values())
    assert statuses["in-use"] and statuses["available"] and statuses["error"]
    assert any(not t["is_public"] and t["_access"] for t in types.values())
    assert any(s["volume_id"] not in volumes for s in cloud["volume_snapshots"])
    assert all(b["volume_id"] in volumes for b in cloud["volume_backups"])


def test_containers_spread_over_the_accounts_with_every_setting_the_rules_judge(cloud):
    containers = cloud["containers"]
    assert len(containers) == len(cloud["servers"]) // 2
    projects = {p["id"] for p in cloud["projects"]}
    per_account = Counter(c["_project_id"] for c in containers)
    assert set(per_account) <= projects and max(per_account.values()) > 4 * min(per_account.values())
    assert len({(c["_project_id"], c["name"]) for c in containers}) == len(containers)
    headers = [c["_headers"] for c in containers]
    reads = Counter(h.get("X-Container-Read") for h in headers)
    assert reads[".r:*,.rlistings"] and reads[".r:*"] and reads[".rlistings"]
    assert any(h.get("X-Container-Write") == "*:*" for h in headers)
    names = {(c["_project_id"], c["name"]) for c in containers}
    archives = [(c["_project_id"], h.get("X-Versions-Location") or h.get("X-History-Location"))
                for c, h in zip(containers, headers) if h.get("X-Versions-Location") or h.get("X-History-Location")]
    assert archives and all(archive in names for archive in archives)  # every archive exists
    assert any(h.get("X-Container-Sync-Key") for h in headers) and any("X-Container-Meta-Db-Password" in h
                                                                       for h in headers)
    assert all(set(c) == {"_project_id", "name", "count", "bytes", "last_modified", "_headers"} for c in containers)
