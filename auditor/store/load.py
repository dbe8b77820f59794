"""Normalize raw API pages into the snapshot tables, in bulk, inside DuckDB.

Each listing arrives as raw JSON pages in spool files. One INSERT ... SELECT per table unnests the pages
and maps every record's fields with `json_transform` (one parse per record, no Python object per record).
A probe before it, one pass straight over the pages (auditor/store/typecheck.py), counts records without
an id, ids listed twice and fields of the wrong JSON type: each is a collection error; a wrong value is
stored as NULL (`raw` keeps what the API said) and each record is stored once. Derived facts (flavor
details by id, server -> security groups, floating IP -> server) are joined in SQL afterwards. The pages
hold no secret: they were cleaned before they were spooled (Listing.add_page in auditor/collect/paging.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from auditor.collect.paging import Listing
from auditor.sqltext import sql_ident, sql_literal
from auditor.store.typecheck import checks, describe, patched_item, probe_schema

# The core Glance fields; every other top-level key of an image is a free-form property.
IMAGE_CORE_KEYS = (
    "id", "name", "status", "visibility", "owner", "os_hidden", "protected", "disk_format", "container_format",
    "size", "virtual_size", "min_disk", "min_ram", "created_at", "updated_at", "tags", "checksum",
    "os_hash_algo", "os_hash_value", "self", "file", "schema", "direct_url", "locations", "stores",
)

_TS = "try_cast(try_cast({} AS TIMESTAMPTZ) AS TIMESTAMP)"  # the session runs in UTC


def _ts(expr: str) -> str:
    return _TS.format(expr)


def _string_at(expr: str, *path: str) -> str:
    """SQL: the string at `path` in the JSON `expr`, NULL when absent or not a string (never a number's text)."""
    where = sql_literal("$." + ".".join(path))
    return f"CASE WHEN json_type({expr}, {where}) = 'VARCHAR' THEN json_extract_string({expr}, {where}) END"


def _patch_removing(keys) -> str:
    return json.dumps({k: None for k in keys})


# table -> (json_transform schema of one record, SELECT list over `s` (the struct) and `item` (raw text))
_SERVER_SCHEMA = {
    "id": "VARCHAR", "name": "VARCHAR", "tenant_id": "VARCHAR", "project_id": "VARCHAR", "user_id": "VARCHAR",
    "status": "VARCHAR", "OS-EXT-STS:vm_state": "VARCHAR", "OS-EXT-STS:task_state": "VARCHAR",
    "OS-EXT-STS:power_state": "INTEGER", "OS-EXT-AZ:availability_zone": "VARCHAR",
    "pinned_availability_zone": "VARCHAR", "OS-EXT-SRV-ATTR:host": "VARCHAR",
    "OS-EXT-SRV-ATTR:hypervisor_hostname": "VARCHAR", "hostId": "VARCHAR",
    "flavor": {"id": "VARCHAR", "original_name": "VARCHAR", "vcpus": "INTEGER", "ram": "BIGINT", "disk": "BIGINT",
               "ephemeral": "BIGINT", "swap": "JSON", "extra_specs": "JSON"},
    "image": "JSON", "os-extended-volumes:volumes_attached": [{"id": "VARCHAR"}], "key_name": "VARCHAR",
    "created": "VARCHAR", "updated": "VARCHAR", "OS-SRV-USG:launched_at": "VARCHAR", "addresses": "JSON",
    "accessIPv4": "VARCHAR", "accessIPv6": "VARCHAR", "metadata": "JSON", "security_groups": [{"name": "VARCHAR"}],
    "server_groups": ["VARCHAR"], "tags": ["VARCHAR"], "locked": "BOOLEAN", "locked_reason": "VARCHAR",
    "trusted_image_certificates": ["VARCHAR"], "description": "VARCHAR",
    "config_drive": "VARCHAR", "fault": {"code": "INTEGER", "message": "VARCHAR", "created": "VARCHAR"},
}
_SERVER_SELECT = f"""
    s.id, s.name, coalesce(s.tenant_id, s.project_id) AS project_id, s.user_id, s.status,
    s."OS-EXT-STS:vm_state" AS vm_state, s."OS-EXT-STS:task_state" AS task_state,
    s."OS-EXT-STS:power_state" AS power_state, s."OS-EXT-AZ:availability_zone" AS availability_zone,
    s.pinned_availability_zone, s."OS-EXT-SRV-ATTR:host" AS host,
    s."OS-EXT-SRV-ATTR:hypervisor_hostname" AS hypervisor_hostname, s.hostId AS host_id,
    s.flavor.id AS flavor_id, s.flavor.original_name AS flavor_name, s.flavor.vcpus AS flavor_vcpus,
    s.flavor.ram AS flavor_ram_mb, s.flavor.disk AS flavor_disk_gb, s.flavor.ephemeral AS flavor_ephemeral_gb,
    CASE WHEN s.flavor.swap = '""' THEN 0 ELSE try_cast(s.flavor.swap AS BIGINT) END AS flavor_swap_mb,
    s.flavor.extra_specs AS flavor_extra_specs,
    CASE WHEN json_type(s.image) = 'OBJECT' THEN s.image ->> 'id' END AS image_id,
    CASE WHEN s.image = '""' THEN true WHEN json_type(s.image) = 'OBJECT' THEN false END AS boot_from_volume,
    list_transform(s."os-extended-volumes:volumes_attached", lambda v: v.id) AS volumes_attached,
    s.key_name, {_ts('s.created')} AS created_at, {_ts('s.updated')} AS updated_at,
    {_ts('s."OS-SRV-USG:launched_at"')} AS launched_at, s.addresses,
    nullif(s.accessIPv4, '') AS access_ipv4, nullif(s.accessIPv6, '') AS access_ipv6, s.metadata,
    list_sort(list_distinct(list_transform(s.security_groups, lambda g: g.name))) AS security_group_names,
    s.server_groups, s.tags, s.locked, s.locked_reason, s.trusted_image_certificates, s.description,
    nullif(s.config_drive, '') AS config_drive,
    s.fault.code AS fault_code, s.fault.message AS fault_message, {_ts('s.fault.created')} AS fault_created_at,
    (s.status = 'UNKNOWN' AND NOT json_exists(item, '$.name')) AS down_cell, item AS raw
"""

_NEUTRON_BASE = {"id": "VARCHAR", "project_id": "VARCHAR", "tenant_id": "VARCHAR", "description": "VARCHAR",
                 "tags": ["VARCHAR"], "created_at": "VARCHAR", "updated_at": "VARCHAR"}
_NEUTRON_SELECT = (f"s.id, nullif(coalesce(s.project_id, s.tenant_id), '') AS project_id, s.description, "
                   f"{_ts('s.created_at')} AS created_at, {_ts('s.updated_at')} AS updated_at")

TABLES = {
    "projects": (
        {"id": "VARCHAR", "name": "VARCHAR", "domain_id": "VARCHAR", "parent_id": "VARCHAR", "enabled": "BOOLEAN",
         "is_domain": "BOOLEAN", "description": "VARCHAR", "tags": ["VARCHAR"]},
        "s.id, s.name, s.domain_id, s.parent_id, s.enabled, s.is_domain, s.description, s.tags, item AS raw",
    ),
    "servers": (_SERVER_SCHEMA, _SERVER_SELECT),
    "flavors": (
        {"id": "VARCHAR", "name": "VARCHAR", "vcpus": "INTEGER", "ram": "BIGINT", "disk": "BIGINT",
         "OS-FLV-EXT-DATA:ephemeral": "BIGINT", "swap": "JSON", "os-flavor-access:is_public": "BOOLEAN",
         "OS-FLV-DISABLED:disabled": "BOOLEAN", "rxtx_factor": "DOUBLE", "description": "VARCHAR",
         "extra_specs": "JSON"},
        """s.id, s.name, s.vcpus, s.ram AS ram_mb, s.disk AS disk_gb, s."OS-FLV-EXT-DATA:ephemeral" AS ephemeral_gb,
           CASE WHEN s.swap = '""' THEN 0 ELSE try_cast(s.swap AS BIGINT) END AS swap_mb,
           s."os-flavor-access:is_public" AS is_public, s."OS-FLV-DISABLED:disabled" AS disabled, s.rxtx_factor,
           s.description, s.extra_specs, item AS raw""",
    ),
    "availability_zones": (
        {"zoneName": "VARCHAR", "zoneState": {"available": "BOOLEAN"}, "hosts": "JSON"},
        """s.zoneName AS name, s.zoneState.available AS available,
           CASE WHEN json_type(s.hosts) = 'OBJECT' THEN list_sort(list_transform(list_filter(map_entries(h),
               lambda e: e.value['nova-compute'] IS NOT NULL), lambda e: e.key)) END AS compute_hosts,
           CASE WHEN json_type(s.hosts) = 'OBJECT' THEN list_sort(list_transform(list_filter(map_entries(h),
               lambda e: e.value['nova-compute'] IS NOT NULL
                         AND NOT coalesce(e.value['nova-compute'].available AND e.value['nova-compute'].active, false)),
               lambda e: e.key)) END AS compute_hosts_down,
           s.hosts, item AS raw""",
    ),
    "server_groups": (
        {"id": "VARCHAR", "name": "VARCHAR", "project_id": "VARCHAR", "user_id": "VARCHAR", "policy": "VARCHAR",
         "policies": ["VARCHAR"], "rules": "JSON", "members": ["VARCHAR"]},
        "s.id, s.name, s.project_id, s.user_id, coalesce(s.policy, s.policies[1]) AS policy, s.rules, s.members, "
        "item AS raw",
    ),
    "images": (
        {"id": "VARCHAR", "name": "VARCHAR", "status": "VARCHAR", "visibility": "VARCHAR", "owner": "VARCHAR",
         "os_hidden": "BOOLEAN", "protected": "BOOLEAN", "disk_format": "VARCHAR", "container_format": "VARCHAR",
         "size": "BIGINT", "virtual_size": "BIGINT", "min_disk": "BIGINT", "min_ram": "BIGINT",
         "created_at": "VARCHAR", "updated_at": "VARCHAR", "tags": ["VARCHAR"]},
        f"""s.id, s.name, s.status, s.visibility, s.owner AS project_id, s.os_hidden, s.protected, s.disk_format,
           s.container_format, s.size AS size_bytes, s.virtual_size AS virtual_size_bytes, s.min_disk AS min_disk_gb,
           s.min_ram AS min_ram_mb, {_ts('s.created_at')} AS created_at, {_ts('s.updated_at')} AS updated_at, s.tags,
           json_merge_patch(item, {sql_literal(_patch_removing(IMAGE_CORE_KEYS))}) AS properties,
           item AS raw""",
    ),
    "image_members": (
        {"image_id": "VARCHAR", "member_id": "VARCHAR", "status": "VARCHAR", "created_at": "VARCHAR",
         "updated_at": "VARCHAR"},
        f"""s.image_id, s.member_id, s.status,
            {_ts('s.created_at')} AS created_at, {_ts('s.updated_at')} AS updated_at, item AS raw""",
    ),
    "security_groups": (
        {**_NEUTRON_BASE, "name": "VARCHAR", "stateful": "BOOLEAN", "shared": "BOOLEAN",
         "security_group_rules": "JSON"},
        f"""{_NEUTRON_SELECT}, s.tags, s.name, s.stateful, s.shared, json_array_length(s.security_group_rules) AS rule_count,
            json_merge_patch(item, '{{"security_group_rules": null}}') AS raw""",
    ),
    "security_group_rules": (
        {**_NEUTRON_BASE, "security_group_id": "VARCHAR", "direction": "VARCHAR", "ethertype": "VARCHAR",
         "protocol": "VARCHAR", "port_range_min": "INTEGER", "port_range_max": "INTEGER",
         "remote_ip_prefix": "VARCHAR", "remote_group_id": "VARCHAR", "remote_address_group_id": "VARCHAR"},
        f"""{_NEUTRON_SELECT}, s.security_group_id, s.direction, s.ethertype, s.protocol,
            CASE WHEN s.protocol IS NULL OR s.protocol IN ('', 'any') THEN 'any'
                 ELSE coalesce(map_extract_value(MAP {{'1': 'icmp', '6': 'tcp', '17': 'udp', '58': 'ipv6-icmp',
                                                      'icmpv6': 'ipv6-icmp'}}, lower(s.protocol)), lower(s.protocol))
            END AS protocol_name,
            s.port_range_min, s.port_range_max, s.remote_ip_prefix, s.remote_group_id, s.remote_address_group_id,
            item AS raw""",
    ),
    "ports": (
        {**_NEUTRON_BASE, "name": "VARCHAR", "network_id": "VARCHAR", "device_id": "VARCHAR",
         "device_owner": "VARCHAR", "status": "VARCHAR", "admin_state_up": "BOOLEAN", "mac_address": "VARCHAR",
         "fixed_ips": "JSON", "security_groups": ["VARCHAR"], "port_security_enabled": "BOOLEAN",
         "binding:host_id": "VARCHAR", "binding:vnic_type": "VARCHAR", "allowed_address_pairs": "JSON"},
        f"""{_NEUTRON_SELECT}, s.tags, s.name, s.network_id, nullif(s.device_id, '') AS device_id,
            nullif(s.device_owner, '') AS device_owner, s.status, s.admin_state_up, s.mac_address, s.fixed_ips,
            CASE WHEN json_type(s.fixed_ips) = 'ARRAY' THEN json_extract_string(s.fixed_ips, '$[*].ip_address') END
                AS ip_addresses,
            s.security_groups AS security_group_ids, s.port_security_enabled,
            nullif(s."binding:host_id", '') AS binding_host_id, s."binding:vnic_type" AS binding_vnic_type,
            s.allowed_address_pairs, item AS raw""",
    ),
    "floating_ips": (
        {**_NEUTRON_BASE, "floating_ip_address": "VARCHAR", "floating_network_id": "VARCHAR",
         "fixed_ip_address": "VARCHAR", "port_id": "VARCHAR", "router_id": "VARCHAR", "status": "VARCHAR"},
        f"""{_NEUTRON_SELECT}, s.tags, s.floating_ip_address, s.floating_network_id, s.fixed_ip_address, s.port_id,
            s.router_id, s.status, item AS raw""",
    ),
    "networks": (
        {**_NEUTRON_BASE, "name": "VARCHAR", "status": "VARCHAR", "admin_state_up": "BOOLEAN", "shared": "BOOLEAN",
         "router:external": "BOOLEAN", "is_default": "BOOLEAN", "provider:network_type": "VARCHAR",
         "provider:physical_network": "VARCHAR", "provider:segmentation_id": "BIGINT", "segments": "JSON",
         "mtu": "INTEGER", "port_security_enabled": "BOOLEAN", "subnets": ["VARCHAR"],
         "availability_zones": ["VARCHAR"]},
        f"""{_NEUTRON_SELECT}, s.tags, s.name, s.status, s.admin_state_up, s.shared, s."router:external" AS external,
            s.is_default, s."provider:network_type" AS provider_network_type,
            s."provider:physical_network" AS provider_physical_network,
            s."provider:segmentation_id" AS provider_segmentation_id, s.segments, s.mtu, s.port_security_enabled,
            s.subnets AS subnet_ids, s.availability_zones, item AS raw""",
    ),
    "subnets": (
        {**_NEUTRON_BASE, "name": "VARCHAR", "network_id": "VARCHAR", "ip_version": "INTEGER", "cidr": "VARCHAR",
         "gateway_ip": "VARCHAR", "enable_dhcp": "BOOLEAN", "allocation_pools": "JSON",
         "dns_nameservers": ["VARCHAR"], "host_routes": "JSON", "ipv6_address_mode": "VARCHAR",
         "ipv6_ra_mode": "VARCHAR", "subnetpool_id": "VARCHAR", "segment_id": "VARCHAR"},
        f"""{_NEUTRON_SELECT}, s.tags, s.name, s.network_id, s.ip_version, s.cidr, s.gateway_ip, s.enable_dhcp,
            s.allocation_pools, s.dns_nameservers, s.host_routes, s.ipv6_address_mode, s.ipv6_ra_mode,
            s.subnetpool_id, s.segment_id, item AS raw""",
    ),
    "routers": (
        {**_NEUTRON_BASE, "name": "VARCHAR", "status": "VARCHAR", "admin_state_up": "BOOLEAN",
         "external_gateway_info": {"network_id": "VARCHAR", "enable_snat": "BOOLEAN", "external_fixed_ips": "JSON"},
         "distributed": "BOOLEAN", "ha": "BOOLEAN", "routes": "JSON", "availability_zones": ["VARCHAR"]},
        f"""{_NEUTRON_SELECT}, s.tags, s.name, s.status, s.admin_state_up,
            s.external_gateway_info.network_id AS external_network_id,
            s.external_gateway_info.enable_snat AS enable_snat,
            s.external_gateway_info.external_fixed_ips AS external_fixed_ips,
            CASE WHEN json_type(s.external_gateway_info.external_fixed_ips) = 'ARRAY'
                 THEN json_extract_string(s.external_gateway_info.external_fixed_ips, '$[*].ip_address') END
                AS external_ip_addresses,
            s.distributed, s.ha, s.routes, s.availability_zones, item AS raw""",
    ),
    "address_groups": (
        {**_NEUTRON_BASE, "name": "VARCHAR", "addresses": ["VARCHAR"]},
        f"""{_NEUTRON_SELECT}, s.name, s.addresses, item AS raw""",
    ),
    "users": (
        {"id": "VARCHAR", "name": "VARCHAR", "domain_id": "VARCHAR", "enabled": "BOOLEAN",
         "default_project_id": "VARCHAR", "password_expires_at": "VARCHAR", "description": "VARCHAR",
         "options": {"multi_factor_auth_enabled": "BOOLEAN", "multi_factor_auth_rules": [["VARCHAR"]],
                     "ignore_password_expiry": "BOOLEAN", "ignore_change_password_upon_first_use": "BOOLEAN",
                     "ignore_lockout_failure_attempts": "BOOLEAN", "ignore_user_inactivity": "BOOLEAN",
                     "lock_password": "BOOLEAN"},
         "federated": "JSON"},
        f"""s.id, s.name, s.domain_id, s.enabled, s.default_project_id,
            {_ts('s.password_expires_at')} AS password_expires_at, s.description,
            s.options.multi_factor_auth_enabled AS mfa_enabled, s.options.multi_factor_auth_rules AS mfa_rules,
            s.options.ignore_password_expiry AS ignore_password_expiry,
            s.options.ignore_change_password_upon_first_use AS ignore_change_password_upon_first_use,
            s.options.ignore_lockout_failure_attempts AS ignore_lockout_failure_attempts,
            s.options.ignore_user_inactivity AS ignore_user_inactivity, s.options.lock_password AS lock_password,
            json_extract(item, '$.options') AS options, s.federated, item AS raw""",
    ),
    "roles": (
        {"id": "VARCHAR", "name": "VARCHAR", "domain_id": "VARCHAR", "description": "VARCHAR",
         "options": {"immutable": "BOOLEAN"}},
        "s.id, s.name, s.domain_id, s.description, s.options.immutable AS immutable, item AS raw",
    ),
    "role_assignments": (
        {"role": {"id": "VARCHAR", "name": "VARCHAR", "domain": "JSON"},
         "user": {"id": "VARCHAR", "name": "VARCHAR", "domain": "JSON"},
         "group": {"id": "VARCHAR", "name": "VARCHAR", "domain": "JSON"},
         "scope": {"project": "JSON", "domain": "JSON", "system": "JSON", "OS-INHERIT:inherited_to": "VARCHAR"}},
        f"""s.role.id AS role_id, s.role.name AS role_name, {_string_at('s.role.domain', 'id')} AS role_domain_id,
           s.user.id AS user_id, s.user.name AS user_name, {_string_at('s.user.domain', 'id')} AS user_domain_id,
           s."group".id AS group_id, s."group".name AS group_name,
           CASE WHEN s.scope.project IS NOT NULL THEN 'project' WHEN s.scope.domain IS NOT NULL THEN 'domain'
                WHEN s.scope.system IS NOT NULL THEN 'system' END AS scope_type,
           {_string_at('s.scope.project', 'id')} AS project_id, {_string_at('s.scope.project', 'name')} AS project_name,
           coalesce({_string_at('s.scope.domain', 'id')}, {_string_at('s.scope.project', 'domain', 'id')}) AS domain_id,
           coalesce({_string_at('s.scope.domain', 'name')}, {_string_at('s.scope.project', 'domain', 'name')})
               AS domain_name,
           s.scope."OS-INHERIT:inherited_to" AS inherited_to, item AS raw""",
    ),
    "application_credentials": (
        {"id": "VARCHAR", "name": "VARCHAR", "project_id": "VARCHAR", "description": "VARCHAR",
         "unrestricted": "BOOLEAN", "expires_at": "VARCHAR", "system": "VARCHAR",
         "roles": [{"id": "VARCHAR", "name": "VARCHAR"}], "access_rules": "JSON"},
        f"""s.id, s.name, ctx ->> 'user_id' AS user_id, s.project_id, s.description, s.unrestricted,
            {_ts('s.expires_at')} AS expires_at, s.system,
            list_sort(list_transform(s.roles, lambda r: r.name)) AS role_names,
            list_sort(list_transform(s.roles, lambda r: r.id)) AS role_ids,
            s.access_rules, item AS raw""",
    ),
    # Cinder: a project-scoped listing's pages say their project (`ctx`), which backups show admins only.
    "volumes": (
        {"id": "VARCHAR", "name": "VARCHAR", "os-vol-tenant-attr:tenant_id": "VARCHAR", "user_id": "VARCHAR",
         "status": "VARCHAR", "size": "BIGINT", "availability_zone": "VARCHAR", "volume_type": "VARCHAR",
         "volume_type_id": "VARCHAR", "bootable": "JSON", "encrypted": "BOOLEAN", "multiattach": "BOOLEAN",
         "attachments": "JSON", "metadata": "JSON", "volume_image_metadata": "JSON", "snapshot_id": "VARCHAR",
         "source_volid": "VARCHAR", "os-vol-host-attr:host": "VARCHAR", "migration_status": "VARCHAR",
         "replication_status": "VARCHAR", "group_id": "VARCHAR", "description": "VARCHAR",
         "created_at": "VARCHAR", "updated_at": "VARCHAR"},
        f"""s.id, s.name, coalesce(s."os-vol-tenant-attr:tenant_id", ctx ->> 'project_id') AS project_id, s.user_id,
            s.status, s.size AS size_gb, s.availability_zone, s.volume_type, s.volume_type_id,
            CASE lower(s.bootable ->> '$') WHEN 'true' THEN true WHEN 'false' THEN false END AS bootable,
            s.encrypted, s.multiattach,
            CASE WHEN json_type(s.attachments) = 'ARRAY'
                 THEN list_sort(list_distinct(json_extract_string(s.attachments, '$[*].server_id'))) END
                AS attached_server_ids,
            s.attachments, s.metadata, s.volume_image_metadata AS image_metadata, s.snapshot_id AS snapshot_source_id,
            s.source_volid AS source_volume_id, s."os-vol-host-attr:host" AS backend_host, s.migration_status,
            s.replication_status, s.group_id, s.description, {_ts('s.created_at')} AS created_at,
            {_ts('s.updated_at')} AS updated_at, item AS raw""",
    ),
    "volume_snapshots": (
        {"id": "VARCHAR", "name": "VARCHAR", "os-extended-snapshot-attributes:project_id": "VARCHAR",
         "user_id": "VARCHAR", "volume_id": "VARCHAR", "status": "VARCHAR", "size": "BIGINT",
         "os-extended-snapshot-attributes:progress": "VARCHAR", "metadata": "JSON", "group_snapshot_id": "VARCHAR",
         "description": "VARCHAR", "created_at": "VARCHAR", "updated_at": "VARCHAR"},
        f"""s.id, s.name, coalesce(s."os-extended-snapshot-attributes:project_id", ctx ->> 'project_id') AS project_id,
            s.user_id, s.volume_id, s.status, s.size AS size_gb, s."os-extended-snapshot-attributes:progress" AS progress,
            s.metadata, s.group_snapshot_id, s.description, {_ts('s.created_at')} AS created_at,
            {_ts('s.updated_at')} AS updated_at, item AS raw""",
    ),
    "volume_backups": (
        {"id": "VARCHAR", "name": "VARCHAR", "os-backup-project-attr:project_id": "VARCHAR", "user_id": "VARCHAR",
         "volume_id": "VARCHAR", "snapshot_id": "VARCHAR", "status": "VARCHAR", "size": "BIGINT",
         "is_incremental": "BOOLEAN", "has_dependent_backups": "BOOLEAN", "availability_zone": "VARCHAR",
         "container": "VARCHAR", "object_count": "BIGINT", "metadata": "JSON", "fail_reason": "VARCHAR",
         "description": "VARCHAR", "data_timestamp": "VARCHAR", "created_at": "VARCHAR", "updated_at": "VARCHAR"},
        f"""s.id, s.name, coalesce(s."os-backup-project-attr:project_id", ctx ->> 'project_id') AS project_id,
            s.user_id, s.volume_id, s.snapshot_id AS volume_snapshot_id, s.status, s.size AS size_gb,
            s.is_incremental, s.has_dependent_backups, s.availability_zone, s.container, s.object_count, s.metadata,
            s.fail_reason, s.description, {_ts('s.data_timestamp')} AS data_timestamp,
            {_ts('s.created_at')} AS created_at, {_ts('s.updated_at')} AS updated_at, item AS raw""",
    ),
    "volume_types": (
        {"id": "VARCHAR", "name": "VARCHAR", "description": "VARCHAR", "is_public": "BOOLEAN",
         "os-volume-type-access:is_public": "BOOLEAN", "extra_specs": "JSON", "qos_specs_id": "VARCHAR"},
        """s.id, s.name, s.description, coalesce(s.is_public, s."os-volume-type-access:is_public") AS is_public,
           s.extra_specs, s.qos_specs_id, item AS raw""",
    ),
    "volume_type_encryption": (
        {"volume_type_id": "VARCHAR", "encryption_id": "VARCHAR", "provider": "VARCHAR", "cipher": "VARCHAR",
         "key_size": "INTEGER", "control_location": "VARCHAR"},
        """coalesce(s.volume_type_id, ctx ->> 'volume_type_id') AS volume_type_id, s.encryption_id, s.provider,
           s.cipher, s.key_size, s.control_location, item AS raw""",
    ),
    "volume_type_access": (
        {"volume_type_id": "VARCHAR", "project_id": "VARCHAR"},
        "coalesce(s.volume_type_id, ctx ->> 'volume_type_id') AS volume_type_id, s.project_id, item AS raw",
    ),
    # Built by auditor/collect/object_storage.py from a container's listing entry and the headers of its HEAD.
    "containers": (
        {"id": "VARCHAR", "project_id": "VARCHAR", "name": "VARCHAR", "count": "BIGINT", "bytes": "BIGINT",
         "last_modified": "VARCHAR", "created": "VARCHAR", "storage_policy": "VARCHAR", "read_acl": "VARCHAR",
         "write_acl": "VARCHAR", "versions_location": "VARCHAR", "history_location": "VARCHAR",
         "versions_enabled": "VARCHAR", "sync_to": "VARCHAR", "sync_key_set": "BOOLEAN",
         "temp_url_key_set": "BOOLEAN", "metadata": "JSON"},
        f"""s.id, s.project_id, s.name, s."count" AS object_count, s.bytes AS bytes_used,
            {_ts('s.last_modified')} AS last_modified,
            CASE WHEN try_cast(s.created AS DOUBLE) BETWEEN 0 AND 253402300799
                 THEN make_timestamp(CAST(try_cast(s.created AS DOUBLE) * 1000000 AS BIGINT)) END AS created_at,
            s.storage_policy, s.read_acl, s.write_acl, s.versions_location, s.history_location,
            CASE lower(s.versions_enabled) WHEN 'true' THEN true WHEN 'false' THEN false END AS versions_enabled,
            s.sync_to, s.sync_key_set, s.temp_url_key_set, s.metadata, item AS raw""",
    ),
}
# Tables whose pages carry what the request asked for (auditor_context, see Listing.add_page) as `ctx`.
_PAGE_CONTEXT = {"application_credentials", "volumes", "volume_snapshots", "volume_backups",
                 "volume_type_encryption", "volume_type_access"}
# Records without an id of their own: the key is made of their fields (over `s`, the typed record, and
# over `p`, its top-level fields as JSON text), `<scope>/<users|groups>/<id>/roles/<role id>` as Keystone
# names an assignment. Effective assignments repeat when a user holds a role by two paths (directly and
# through a group): kept once, and not an error.
_ASSIGNMENT_KEY = """CASE WHEN {role} IS NOT NULL AND coalesce({user}, {group}) IS NOT NULL
    AND coalesce({project}, {domain}, {system}) IS NOT NULL THEN
    CASE WHEN {project} IS NOT NULL THEN 'projects/' || {project} WHEN {domain} IS NOT NULL THEN 'domains/' || {domain}
         ELSE 'system' END
    || CASE WHEN {user} IS NOT NULL THEN '/users/' || {user} ELSE '/groups/' || {group} END || '/roles/' || {role}
END"""
_DERIVED_KEYS = {
    "role_assignments": (
        _ASSIGNMENT_KEY.format(role="s.role.id", user="s.user.id", group='s."group".id',
                               project=_string_at("s.scope.project", "id"),
                               domain=_string_at("s.scope.domain", "id"),
                               system="CAST(s.scope.system AS VARCHAR)"),
        "to_json(" + _ASSIGNMENT_KEY.format(role=_string_at("p.role", "id"), user=_string_at("p.user", "id"),
                                            group=_string_at('p."group"', "id"),
                                            project=_string_at("p.scope", "project", "id"),
                                            domain=_string_at("p.scope", "domain", "id"),
                                            system="nullif(json_extract(p.scope, '$.system')::VARCHAR, 'null')")
        + ")",
    ),
}
_DERIVED_KEYS["volume_type_access"] = (
    "s.volume_type_id || '/' || s.project_id",
    "to_json(CASE WHEN json_type(p.volume_type_id) = 'VARCHAR' AND json_type(p.project_id) = 'VARCHAR' "
    "THEN (p.volume_type_id ->> '$') || '/' || (p.project_id ->> '$') END)",
)
_DERIVED_KEYS["image_members"] = (  # Glance names the image in each member record
    "s.image_id || '/' || s.member_id",
    "to_json(CASE WHEN json_type(p.image_id) = 'VARCHAR' AND json_type(p.member_id) = 'VARCHAR' "
    "THEN (p.image_id ->> '$') || '/' || (p.member_id ->> '$') END)",
)
_REPEATS_EXPECTED = {"role_assignments"}
# Which copy of a record listed more than once (by several projects) is kept, where the copies differ: Neutron
# says `shared` from the asking project's point of view, and a network shared with any project scanned is.
_KEEP_FIRST = {"networks": "s.shared DESC NULLS LAST", "security_groups": "s.shared DESC NULLS LAST",
               # a user's direct assignment rather than the same role through a group
               "role_assignments": "json_exists(item, '$.links.membership')"}
# The map of host -> service -> state that availability zones need, parsed once per zone.
_EXTRA_STRUCT = {
    "availability_zones": "json_transform(s.hosts, '\"MAP(VARCHAR, MAP(VARCHAR, STRUCT(available BOOLEAN, "
                          "active BOOLEAN)))\"') AS h",
}


def _items_sql(key: str, pages: str, context: bool = False) -> str:
    """One row per record, `item` its raw JSON text, from `pages` (one body per row); with `context`, the
    page's auditor_context beside it as `ctx`."""
    schema = sql_literal(json.dumps({key: ["JSON"]}))
    if not context:
        return f'SELECT unnest(json_transform(body, {schema})."{key}") AS item FROM {pages}'
    # ctx is read once per page, before the unnest: read after it, every record would copy the whole page
    return (f'SELECT unnest(items) AS item, ctx FROM (SELECT json_transform(body, {schema})."{key}" AS items, '
            f"json_extract(body, '$.auditor_context') AS ctx FROM {pages})")


def _embedded_rules_sql(pages: str) -> str:
    groups = _items_sql("security_groups", pages)
    return (f"SELECT unnest(json_transform(g.item, '{{\"security_group_rules\": [\"JSON\"]}}')"
            f".security_group_rules) AS item FROM ({groups}) g")


def load_listing(con, table: str, snapshot_id: int, listing: Listing, source: Listing | None = None) -> list[str]:
    """Insert one listing's records into `table`; return the problems found, each a collection error:
    fields of the wrong JSON type (stored as NULL), records without an id (not stored), and records listed
    twice (kept once). `source` gives the pages when they belong to another listing (rules embedded in
    their groups)."""
    pages_from = source or listing
    if not pages_from.spools:
        return []
    schema, select = TABLES[table]
    pages = pages_from.pages_sql()
    context = table in _PAGE_CONTEXT
    items = _embedded_rules_sql(pages) if source is not None else _items_sql(listing.key, pages, context)
    extra = f", {_EXTRA_STRUCT[table]}" if table in _EXTRA_STRUCT else ""
    ctx = ", ctx" if context else ""
    key = _struct_key(table)
    if table in _DERIVED_KEYS:
        select = f"{key} AS id, {select}"
    probe = _probe(con, table, schema, _probe_sql(listing.key, schema, pages, embedded=source is not None))
    if probe.failed:  # the rare case: remove the values of the wrong type before they are read
        probed = f"SELECT item{ctx}, json_transform(item, {sql_literal(probe_schema(schema))}) AS p FROM ({items})"
        cleaned = f"SELECT item{ctx}, {patched_item('item', probe.failed)} AS clean FROM ({probed})"
    else:
        cleaned = f"SELECT item{ctx}, item AS clean FROM ({items})"
    # Keeping the first of each id costs a window over every record: only when some id is listed twice.
    order = f" ORDER BY {_KEEP_FIRST[table]}" if table in _KEEP_FIRST else ""
    once = f"QUALIFY row_number() OVER (PARTITION BY {key}{order}) = 1" if probe.with_id > probe.distinct else ""
    con.execute(f"""
        INSERT INTO {table} BY NAME
        SELECT {snapshot_id} AS snapshot_id, {select}
        FROM (
            SELECT item{ctx}, s{extra} FROM (
                SELECT item{ctx}, json_transform(clean, {sql_literal(json.dumps(schema))}) AS s FROM ({cleaned})
            )
        ) WHERE ({key}) IS NOT NULL {once}""")
    problems = [describe(check, count, example) for check, count, example in probe.type_errors]
    if probe.without_id:  # records without an id cannot be audited: say so, never drop them silently
        problems.append(f"{probe.without_id} records without an id were not stored")
    if probe.with_id > probe.distinct and pages_from.units == 1 and table not in _REPEATS_EXPECTED:
        # Several projects' listings overlap by design (public images, shared groups); one listing must not.
        problems.append(f"{probe.with_id - probe.distinct} records were listed twice (the same "
                        f"{_schema_key(table)}); each is stored once")
    return problems


def _probe_sql(key: str, schema: dict, pages: str, embedded: bool) -> str:
    """One row per record, `p` its top-level fields as JSON text, parsed straight from the pages."""
    fields = {name: "JSON" for name in schema}
    if embedded:
        shape = sql_literal(json.dumps({"security_groups": [{"security_group_rules": [fields]}]}))
        return (f"SELECT unnest(g.security_group_rules) AS p FROM "
                f"(SELECT unnest(json_transform(body, {shape}).security_groups) AS g FROM {pages})")
    shape = sql_literal(json.dumps({key: [fields]}))
    return f"SELECT unnest(json_transform(body, {shape}).{sql_ident(key)}) AS p FROM {pages}"


@dataclass
class _Probe:
    without_id: int
    with_id: int
    distinct: int
    type_errors: list  # (check, records failing it, first id)
    failed: list  # the checks some record fails


def _probe(con, table: str, schema: dict, records: str) -> _Probe:
    """One pass over the records: how many have no id, how many distinct ids, and per field how many
    have a value of the wrong JSON type (the first id of each only when some do)."""
    tests = checks(table, schema)
    key = _DERIVED_KEYS[table][1] if table in _DERIVED_KEYS else f"p.{sql_ident(_schema_key(table))}"
    has_id = f"ascii(CAST({key} AS VARCHAR)) = 34"  # a JSON string
    counts = ", ".join(f"count(*) FILTER (WHERE NOT ({t.ok}))" for t in tests)
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE NOT coalesce({has_id}, false)), count(*) FILTER (WHERE {has_id}), "
        f"count(DISTINCT {key} ->> '$') FILTER (WHERE {has_id}), {counts} FROM ({records})").fetchall()[0]
    without_id, with_id, distinct, failing = row[0], row[1], row[2], row[3:]
    failed = [test for test, count in zip(tests, failing) if count]
    type_errors = []
    if failed:
        firsts = con.execute(
            f"SELECT {', '.join(f'min({key}) FILTER (WHERE NOT ({t.ok}))' for t in failed)} FROM ({records})"
        ).fetchall()[0]
        type_errors = [(test, count, first) for test, count, first in
                       zip(failed, [c for c in failing if c], firsts)]
    return _Probe(without_id, with_id, distinct, type_errors, failed)


def _schema_key(table: str) -> str:
    return {"availability_zones": "zoneName", "volume_type_encryption": "volume_type_id"}.get(table, "id")


def _struct_key(table: str) -> str:
    """SQL over `s` (the typed record): what identifies it."""
    return _DERIVED_KEYS[table][0] if table in _DERIVED_KEYS else f"s.{sql_ident(_schema_key(table))}"


def derive(con, snapshot_id: int) -> None:
    """Facts joined across tables of one snapshot, after every listing is loaded."""
    sid = [snapshot_id]
    # Before 2.47 Nova gives the flavor by id: take its details from the flavor list.
    con.execute("""
        UPDATE servers SET flavor_name = f.name, flavor_vcpus = f.vcpus, flavor_ram_mb = f.ram_mb,
               flavor_disk_gb = f.disk_gb, flavor_ephemeral_gb = f.ephemeral_gb, flavor_swap_mb = f.swap_mb,
               flavor_extra_specs = f.extra_specs
        FROM flavors f
        WHERE servers.snapshot_id = $1 AND f.snapshot_id = $1 AND servers.flavor_name IS NULL
          AND servers.flavor_id = f.id""", sid)
    # From 2.47 the flavor is embedded without its id: resolve it by name when the name is unique.
    con.execute("""
        UPDATE servers SET flavor_id = u.id
        FROM (SELECT name, any_value(id) AS id FROM flavors WHERE snapshot_id = $1 GROUP BY name
              HAVING count(*) = 1) u
        WHERE servers.snapshot_id = $1 AND servers.flavor_id IS NULL AND servers.flavor_name = u.name""", sid)
    # Groups served without their embedded rules: count the rules listed on their own.
    con.execute("""
        UPDATE security_groups SET rule_count = (
            SELECT count(*) FROM security_group_rules r
            WHERE r.snapshot_id = $1 AND r.security_group_id = security_groups.id)
        WHERE snapshot_id = $1 AND rule_count IS NULL""", sid)
    con.execute("""
        INSERT INTO server_security_groups (snapshot_id, server_id, port_id, security_group_id)
        SELECT snapshot_id, device_id, id, unnest(security_group_ids)
        FROM ports WHERE snapshot_id = $1 AND device_owner LIKE 'compute:%' AND device_id IS NOT NULL""", sid)
    con.execute("""
        UPDATE floating_ips SET server_id = p.device_id
        FROM ports p
        WHERE floating_ips.snapshot_id = $1 AND p.snapshot_id = $1 AND floating_ips.port_id = p.id
          AND p.device_owner LIKE 'compute:%'""", sid)
