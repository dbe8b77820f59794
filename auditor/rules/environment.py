"""What a rule's SQL sees: one snapshot's tables under their usual names, the instance-type mapping, and a
few helpers that several rules need (documented in docs/rules.md, which a test checks against this file).

Everything is created in DuckDB's `temp` catalog, which shadows the database's own tables, so a rule
written as `from servers` reads the servers of the snapshot being judged and nothing else. The database
connection itself stays read-only.
"""

from __future__ import annotations

from auditor.rules.catalog import InstanceType
from auditor.store.tables import RESOURCE_TABLES

# Tables of one snapshot, by the name rules use.
SNAPSHOT_TABLES = RESOURCE_TABLES + ("snapshot_resources", "collection_errors")

# Helper or derived table -> the resource listings it is built from, so that a rule using it is judged
# incomplete when one of those listings is (server_security_groups is derived from ports, not listed).
# Any other table needs its own listing.
HELPER_INPUTS = {
    "world_ingress_rules": ("security_group_rules",),
    "server_public_addresses": ("servers", "ports", "floating_ips"),
    "server_security_groups": ("servers", "ports"),
}

PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite")
IPV4_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"

# Macros and helper tables, created once per evaluation. Keep docs/rules.md in step.
HELPERS_SQL = rf"""
CREATE OR REPLACE TEMP MACRO sg_protocol(protocol) AS
    CASE
        WHEN protocol IS NULL OR lower(trim(protocol)) IN ('', 'any', '0') THEN 'any'
        WHEN protocol = '6' THEN 'tcp'
        WHEN protocol = '17' THEN 'udp'
        WHEN protocol = '1' THEN 'icmp'
        WHEN protocol = '58' OR lower(protocol) IN ('icmpv6', 'ipv6-icmp') THEN 'ipv6-icmp'
        WHEN protocol = '132' THEN 'sctp'
        WHEN protocol = '33' THEN 'dccp'
        WHEN protocol = '136' THEN 'udplite'
        ELSE lower(trim(protocol))
    END;

CREATE OR REPLACE TEMP MACRO port_text(protocol, port_min, port_max) AS
    CASE
        WHEN protocol = 'any' THEN 'all traffic'
        WHEN port_min IS NULL THEN protocol
        WHEN port_min = 1 AND port_max = 65535 THEN protocol || ' all ports'
        WHEN port_min = port_max THEN protocol || ' ' || port_min
        ELSE protocol || ' ' || port_min || '-' || port_max
    END;

CREATE OR REPLACE TEMP MACRO is_public_ip(address) AS
    CASE
        WHEN address IS NULL THEN false
        WHEN contains(address, ':') THEN regexp_matches(lower(address), '^[23][0-9a-f]{{0,3}}:')
        -- a dotted quad, each octet 0-255 without leading zeros ...
        WHEN NOT regexp_matches(address, '^{IPV4_OCTET}(\.{IPV4_OCTET}){{3}}$') THEN false
        -- ... outside 0/8, 10/8, 127/8, multicast and reserved (224/3), 169.254/16, 192.168/16, 172.16/12
        -- and 100.64/10 (carrier-grade NAT)
        ELSE NOT regexp_matches(address, '^(0|10|127|22[4-9]|2[3-5][0-9])\.|^(169\.254|192\.168|172\.(1[6-9]|2[0-9]|3[01])|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))\.')
    END;

CREATE OR REPLACE TEMP TABLE world_ingress_rules AS
SELECT rule_id, security_group_id, project_id, ethertype, protocol,
       CASE WHEN protocol = 'any' OR protocol IN {PORT_PROTOCOLS} THEN coalesce(port_range_min, 1) END AS port_min,
       CASE WHEN protocol = 'any' OR protocol IN {PORT_PROTOCOLS} THEN coalesce(port_range_max, 65535) END AS port_max,
       source
FROM (
    SELECT r.id AS rule_id, r.security_group_id, r.project_id, r.ethertype, sg_protocol(r.protocol) AS protocol,
           r.port_range_min, r.port_range_max,
           coalesce(r.remote_ip_prefix, CASE WHEN r.ethertype = 'IPv6' THEN '::/0' ELSE '0.0.0.0/0' END) AS source
    FROM security_group_rules r
    WHERE r.direction = 'ingress'
      AND r.remote_group_id IS NULL
      AND r.remote_address_group_id IS NULL
      AND (r.remote_ip_prefix IS NULL OR r.remote_ip_prefix LIKE '%/0')
);

CREATE OR REPLACE TEMP MACRO port_label(id, name, network_id) AS
    'port ' || id || CASE WHEN coalesce(name, '') <> '' THEN ' (' || name || ')' ELSE '' END
    || ' on network ' || coalesce(network_id, 'unknown');

-- The approved mapping, ready to join: one instance type per flavor name and per shape (the first by name).
CREATE OR REPLACE TEMP TABLE instance_type_by_flavor_name AS
SELECT flavor_name, min(instance_type) AS instance_type FROM instance_type_flavors GROUP BY flavor_name;

CREATE OR REPLACE TEMP TABLE instance_type_by_shape AS
SELECT vcpus, ram_mb, disk_gb, min(name) AS instance_type FROM instance_types GROUP BY vcpus, ram_mb, disk_gb;

CREATE OR REPLACE TEMP VIEW server_public_addresses AS
SELECT DISTINCT server_id, address, kind FROM (
    SELECT server_id, floating_ip_address AS address, 'floating' AS kind
    FROM floating_ips WHERE server_id IS NOT NULL AND floating_ip_address IS NOT NULL
    UNION ALL
    SELECT p.device_id, unnest(p.ip_addresses), 'fixed' FROM ports p JOIN servers s ON s.id = p.device_id
    UNION ALL
    SELECT s.id, unnest(json_extract_string(s.addresses, '$.*[*].addr')), 'fixed' FROM servers s
) a
WHERE kind = 'floating' OR is_public_ip(address);
"""


def prepare(con, snapshot_id: int, instance_types: list[InstanceType]) -> None:
    """Create the rule environment for `snapshot_id` on `con` (read-only or not)."""
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    source = '"' + catalog.replace('"', '""') + '".main'
    sid = int(snapshot_id)
    for table in SNAPSHOT_TABLES:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {source}.{table} WHERE snapshot_id = {sid}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW snapshot AS SELECT * FROM {source}.snapshots WHERE id = {sid}")
    con.execute("CREATE OR REPLACE TEMP TABLE instance_types "
                "(name VARCHAR, description VARCHAR, vcpus INTEGER, ram_mb BIGINT, disk_gb BIGINT)")
    con.execute("CREATE OR REPLACE TEMP TABLE instance_type_flavors (instance_type VARCHAR, flavor_name VARCHAR)")
    if instance_types:
        con.executemany("INSERT INTO instance_types VALUES (?, ?, ?, ?, ?)",
                        [[t.name, t.description, t.vcpus, t.ram_mb, t.disk_gb] for t in instance_types])
        pairs = [[t.name, flavor] for t in instance_types for flavor in t.flavors]
        if pairs:
            con.executemany("INSERT INTO instance_type_flavors VALUES (?, ?)", pairs)
    con.execute(HELPERS_SQL)


def inputs_of(table_names: set[str]) -> set[str]:
    """The resource listings a rule reads, from the table names its SQL references."""
    inputs = set()
    for name in table_names:
        name = name.split(".")[-1].lower()
        if name in HELPER_INPUTS:
            inputs.update(HELPER_INPUTS[name])
        elif name in RESOURCE_TABLES:
            inputs.add(name)
    return inputs
