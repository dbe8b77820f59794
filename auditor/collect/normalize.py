"""Turn raw API items into table columns, in bulk (one list per column, no object per item).

Each function takes the raw items of one resource type and returns {column: [values]} whose column names
match auditor/store/schema.sql. Values are coerced defensively: a field of an unexpected type becomes
NULL rather than failing the snapshot; the redacted raw JSON keeps what the API actually said.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from auditor.redact import redact_record

Columns = dict[str, list]


def ts(value) -> datetime | None:
    """An OpenStack timestamp (with or without `Z`, with or without microseconds) as naive UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = (parsed - parsed.utcoffset()).replace(tzinfo=None)
    return parsed


def as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def as_float(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_bool(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def as_str(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def as_str_list(value) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]


def as_json(value) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def raw(items: list[dict]) -> list[str]:
    return [orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS).decode() for item in items]


def _column(items, key, convert=None):
    if convert is None:
        return [item.get(key) if isinstance(item.get(key), str) else as_str(item.get(key)) for item in items]
    return [convert(item.get(key)) for item in items]


# -- identity -------------------------------------------------------------------------------------------
def projects(items: list[dict]) -> Columns:
    return {
        "id": _column(items, "id"),
        "name": _column(items, "name"),
        "domain_id": _column(items, "domain_id"),
        "parent_id": _column(items, "parent_id"),
        "enabled": _column(items, "enabled", as_bool),
        "is_domain": _column(items, "is_domain", as_bool),
        "description": _column(items, "description"),
        "tags": _column(items, "tags", as_str_list),
        "raw": raw(items),
    }


# -- compute --------------------------------------------------------------------------------------------
SERVER_SECRET_MAPPINGS = ("metadata",)


def servers(items: list[dict], flavors_by_id: dict[str, dict], flavor_ids_by_name: dict[str, str]) -> Columns:
    """Servers of any microversion: flavor embedded (2.47+), by id (older), `{}` (deleted), image `""`."""
    clean = [redact_record(item, SERVER_SECRET_MAPPINGS) for item in items]
    flavor_id, flavor_name, vcpus, ram, disk, ephemeral, swap, extra_specs = ([] for _ in range(8))
    image_id, boot_from_volume = [], []
    for item in clean:
        flavor = item.get("flavor")
        flavor = flavor if isinstance(flavor, dict) else {}
        if "original_name" in flavor:
            name = as_str(flavor.get("original_name"))
            flavor_id.append(flavor_ids_by_name.get(name))
            details = flavor
            flavor_name.append(name)
        else:
            fid = as_str(flavor.get("id"))
            flavor_id.append(fid)
            details = flavors_by_id.get(fid, {}) if fid else {}
            flavor_name.append(as_str(details.get("name")))
        vcpus.append(as_int(details.get("vcpus")))
        ram.append(as_int(details.get("ram")))
        disk.append(as_int(details.get("disk")))
        ephemeral.append(as_int(details.get("ephemeral", details.get("OS-FLV-EXT-DATA:ephemeral"))))
        swap.append(as_int(details.get("swap")) if details.get("swap") != "" else 0)
        extra_specs.append(as_json(details.get("extra_specs")))
        image = item.get("image")
        if isinstance(image, dict):
            image_id.append(as_str(image.get("id")))
            boot_from_volume.append(False)
        elif image == "":
            image_id.append(None)
            boot_from_volume.append(True)
        else:  # down-cell records omit the image altogether: unknown, not volume-backed
            image_id.append(None)
            boot_from_volume.append(None)
    fault = [item.get("fault") if isinstance(item.get("fault"), dict) else {} for item in clean]
    groups = []
    for item in clean:
        listed = item.get("security_groups")
        if isinstance(listed, list):
            names = [g.get("name") for g in listed if isinstance(g, dict) and g.get("name")]
            groups.append(sorted(set(names)))
        else:
            groups.append(None)
    volumes = []
    for item in clean:
        attached = item.get("os-extended-volumes:volumes_attached")
        volumes.append([v.get("id") for v in attached if isinstance(v, dict)] if isinstance(attached, list) else None)
    return {
        "id": _column(clean, "id"),
        "name": _column(clean, "name"),
        "project_id": [as_str(i.get("tenant_id", i.get("project_id"))) for i in clean],
        "user_id": _column(clean, "user_id"),
        "status": _column(clean, "status"),
        "vm_state": _column(clean, "OS-EXT-STS:vm_state"),
        "task_state": _column(clean, "OS-EXT-STS:task_state"),
        "power_state": _column(clean, "OS-EXT-STS:power_state", as_int),
        "availability_zone": _column(clean, "OS-EXT-AZ:availability_zone"),
        "pinned_availability_zone": _column(clean, "pinned_availability_zone"),
        "host": _column(clean, "OS-EXT-SRV-ATTR:host"),
        "hypervisor_hostname": _column(clean, "OS-EXT-SRV-ATTR:hypervisor_hostname"),
        "host_id": _column(clean, "hostId"),
        "flavor_id": flavor_id,
        "flavor_name": flavor_name,
        "flavor_vcpus": vcpus,
        "flavor_ram_mb": ram,
        "flavor_disk_gb": disk,
        "flavor_ephemeral_gb": ephemeral,
        "flavor_swap_mb": swap,
        "flavor_extra_specs": extra_specs,
        "image_id": image_id,
        "boot_from_volume": boot_from_volume,
        "volumes_attached": volumes,
        "key_name": _column(clean, "key_name"),
        "created_at": _column(clean, "created", ts),
        "updated_at": _column(clean, "updated", ts),
        "launched_at": _column(clean, "OS-SRV-USG:launched_at", ts),
        "addresses": _column(clean, "addresses", as_json),
        "access_ipv4": [i.get("accessIPv4") or None for i in clean],
        "access_ipv6": [i.get("accessIPv6") or None for i in clean],
        "metadata": _column(clean, "metadata", as_json),
        "security_group_names": groups,
        "server_groups": _column(clean, "server_groups", as_str_list),
        "tags": _column(clean, "tags", as_str_list),
        "locked": _column(clean, "locked", as_bool),
        "description": _column(clean, "description"),
        "config_drive": [as_str(i.get("config_drive")) or None for i in clean],
        "fault_code": [as_int(f.get("code")) for f in fault],
        "fault_message": [as_str(f.get("message")) for f in fault],
        "fault_created_at": [ts(f.get("created")) for f in fault],
        "down_cell": ["name" not in i and i.get("status") == "UNKNOWN" for i in clean],
        "raw": raw(clean),
    }


def flavors(items: list[dict]) -> Columns:
    return {
        "id": _column(items, "id"),
        "name": _column(items, "name"),
        "vcpus": _column(items, "vcpus", as_int),
        "ram_mb": _column(items, "ram", as_int),
        "disk_gb": _column(items, "disk", as_int),
        "ephemeral_gb": _column(items, "OS-FLV-EXT-DATA:ephemeral", as_int),
        "swap_mb": [0 if i.get("swap") == "" else as_int(i.get("swap")) for i in items],
        "is_public": _column(items, "os-flavor-access:is_public", as_bool),
        "disabled": _column(items, "OS-FLV-DISABLED:disabled", as_bool),
        "rxtx_factor": _column(items, "rxtx_factor", as_float),
        "description": _column(items, "description"),
        "extra_specs": _column(items, "extra_specs", as_json),
        "raw": raw(items),
    }


def availability_zones(items: list[dict]) -> Columns:
    compute_hosts, hosts_down = [], []
    for zone in items:
        hosts = zone.get("hosts") if isinstance(zone.get("hosts"), dict) else None
        if hosts is None:
            compute_hosts.append(None)
            hosts_down.append(None)
            continue
        up, down = [], []
        for host, services in hosts.items():
            compute = services.get("nova-compute") if isinstance(services, dict) else None
            if not isinstance(compute, dict):
                continue
            up.append(host)
            if not (compute.get("available") and compute.get("active")):
                down.append(host)
        compute_hosts.append(sorted(up))
        hosts_down.append(sorted(down))
    return {
        "name": _column(items, "zoneName"),
        "available": [as_bool((z.get("zoneState") or {}).get("available")) for z in items],
        "compute_hosts": compute_hosts,
        "compute_hosts_down": hosts_down,
        "hosts": _column(items, "hosts", as_json),
        "raw": raw(items),
    }


def server_groups(items: list[dict]) -> Columns:
    policies = []
    for group in items:
        policy = group.get("policy")
        if not policy and isinstance(group.get("policies"), list) and group["policies"]:
            policy = group["policies"][0]
        policies.append(as_str(policy))
    return {
        "id": _column(items, "id"),
        "name": _column(items, "name"),
        "project_id": _column(items, "project_id"),
        "user_id": _column(items, "user_id"),
        "policy": policies,
        "rules": _column(items, "rules", as_json),
        "members": _column(items, "members", as_str_list),
        "raw": raw(items),
    }


# -- image ----------------------------------------------------------------------------------------------
IMAGE_CORE_KEYS = frozenset({
    "id", "name", "status", "visibility", "owner", "os_hidden", "protected", "disk_format", "container_format",
    "size", "virtual_size", "min_disk", "min_ram", "created_at", "updated_at", "tags", "checksum",
    "os_hash_algo", "os_hash_value", "self", "file", "schema", "direct_url", "locations", "stores",
})


def images(items: list[dict]) -> Columns:
    clean = [redact_record(item, top_level=True) for item in items]
    return {
        "id": _column(clean, "id"),
        "name": _column(clean, "name"),
        "status": _column(clean, "status"),
        "visibility": _column(clean, "visibility"),
        "project_id": _column(clean, "owner"),
        "os_hidden": _column(clean, "os_hidden", as_bool),
        "protected": _column(clean, "protected", as_bool),
        "disk_format": _column(clean, "disk_format"),
        "container_format": _column(clean, "container_format"),
        "size_bytes": _column(clean, "size", as_int),
        "virtual_size_bytes": _column(clean, "virtual_size", as_int),
        "min_disk_gb": _column(clean, "min_disk", as_int),
        "min_ram_mb": _column(clean, "min_ram", as_int),
        "created_at": _column(clean, "created_at", ts),
        "updated_at": _column(clean, "updated_at", ts),
        "tags": _column(clean, "tags", as_str_list),
        "properties": [as_json({k: v for k, v in i.items() if k not in IMAGE_CORE_KEYS}) for i in clean],
        "raw": raw(clean),
    }


# -- network --------------------------------------------------------------------------------------------
# IP protocol numbers Neutron accepts as strings, mapped to the names rules reason about.
PROTOCOL_NAMES = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp"}


def protocol_name(value) -> str:
    """Neutron's `protocol`: null means any; it may be a name or a number string ("6")."""
    if value is None or value == "" or value == "any":
        return "any"
    text = str(value).lower()
    return PROTOCOL_NAMES.get(text, text)


def security_groups(items: list[dict]) -> Columns:
    return {
        "id": _column(items, "id"),
        "name": _column(items, "name"),
        "project_id": [as_str(i.get("project_id", i.get("tenant_id"))) for i in items],
        "description": _column(items, "description"),
        "stateful": _column(items, "stateful", as_bool),
        "shared": _column(items, "shared", as_bool),
        "rule_count": [len(i["security_group_rules"]) if isinstance(i.get("security_group_rules"), list) else None
                       for i in items],
        "tags": _column(items, "tags", as_str_list),
        "created_at": _column(items, "created_at", ts),
        "updated_at": _column(items, "updated_at", ts),
        "raw": raw([{k: v for k, v in i.items() if k != "security_group_rules"} for i in items]),
    }


def security_group_rules(items: list[dict]) -> Columns:
    return {
        "id": _column(items, "id"),
        "security_group_id": _column(items, "security_group_id"),
        "project_id": [as_str(i.get("project_id", i.get("tenant_id"))) for i in items],
        "direction": _column(items, "direction"),
        "ethertype": _column(items, "ethertype"),
        "protocol": _column(items, "protocol"),
        "protocol_name": [protocol_name(i.get("protocol")) for i in items],
        "port_range_min": _column(items, "port_range_min", as_int),
        "port_range_max": _column(items, "port_range_max", as_int),
        "remote_ip_prefix": _column(items, "remote_ip_prefix"),
        "remote_group_id": _column(items, "remote_group_id"),
        "remote_address_group_id": _column(items, "remote_address_group_id"),
        "description": _column(items, "description"),
        "created_at": _column(items, "created_at", ts),
        "updated_at": _column(items, "updated_at", ts),
        "raw": raw(items),
    }


def ports(items: list[dict]) -> Columns:
    ips = []
    for port in items:
        fixed = port.get("fixed_ips")
        ips.append([f.get("ip_address") for f in fixed if isinstance(f, dict)] if isinstance(fixed, list) else None)
    return {
        "id": _column(items, "id"),
        "name": _column(items, "name"),
        "project_id": [as_str(i.get("project_id", i.get("tenant_id"))) or None for i in items],
        "network_id": _column(items, "network_id"),
        "device_id": [as_str(i.get("device_id")) or None for i in items],
        "device_owner": [as_str(i.get("device_owner")) or None for i in items],
        "status": _column(items, "status"),
        "admin_state_up": _column(items, "admin_state_up", as_bool),
        "mac_address": _column(items, "mac_address"),
        "fixed_ips": _column(items, "fixed_ips", as_json),
        "ip_addresses": ips,
        "security_group_ids": _column(items, "security_groups", as_str_list),
        "port_security_enabled": _column(items, "port_security_enabled", as_bool),
        "binding_host_id": [as_str(i.get("binding:host_id")) or None for i in items],
        "binding_vnic_type": _column(items, "binding:vnic_type"),
        "allowed_address_pairs": _column(items, "allowed_address_pairs", as_json),
        "tags": _column(items, "tags", as_str_list),
        "created_at": _column(items, "created_at", ts),
        "updated_at": _column(items, "updated_at", ts),
        "raw": raw(items),
    }


def server_security_groups(port_items: list[dict]) -> Columns:
    """One row per (server, port, security group) from ports whose device is a server (`compute:*`)."""
    server_id, port_id, group_id = [], [], []
    for port in port_items:
        owner = port.get("device_owner")
        device = port.get("device_id")
        groups = port.get("security_groups")
        if not (isinstance(owner, str) and owner.startswith("compute:") and device and isinstance(groups, list)):
            continue
        for group in groups:
            server_id.append(device)
            port_id.append(port.get("id"))
            group_id.append(group)
    return {"server_id": server_id, "port_id": port_id, "security_group_id": group_id}


def floating_ips(items: list[dict], server_by_port: dict[str, str]) -> Columns:
    return {
        "id": _column(items, "id"),
        "project_id": [as_str(i.get("project_id", i.get("tenant_id"))) for i in items],
        "floating_ip_address": _column(items, "floating_ip_address"),
        "floating_network_id": _column(items, "floating_network_id"),
        "fixed_ip_address": _column(items, "fixed_ip_address"),
        "port_id": _column(items, "port_id"),
        "server_id": [server_by_port.get(i.get("port_id")) for i in items],
        "router_id": _column(items, "router_id"),
        "status": _column(items, "status"),
        "description": _column(items, "description"),
        "created_at": _column(items, "created_at", ts),
        "updated_at": _column(items, "updated_at", ts),
        "raw": raw(items),
    }

