"""The helpers rules use, defined once for two places (documented in docs/rules.md).

An evaluation creates them as temp objects over the one snapshot it judges (auditor/rules/environment.py);
the catalog (auditor/store/catalog.py) holds them as views and macros over every snapshot, each row with
its `snapshot_id`, so that an auditor's SQL sees what a rule sees.
"""

from __future__ import annotations

PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite")
IPV4_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"

_HELPERS_SQL = rf"""
CREATE OR REPLACE {{temp}}MACRO sg_protocol(protocol) AS
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

CREATE OR REPLACE {{temp}}MACRO port_text(protocol, port_min, port_max) AS
    CASE
        WHEN protocol = 'any' THEN 'all traffic'
        WHEN port_min IS NULL THEN protocol
        WHEN port_min = 1 AND port_max = 65535 THEN protocol || ' all ports'
        WHEN port_min = port_max THEN protocol || ' ' || port_min
        ELSE protocol || ' ' || port_min || '-' || port_max
    END;

CREATE OR REPLACE {{temp}}MACRO is_public_ip(address) AS
    CASE
        WHEN address IS NULL THEN false
        WHEN contains(address, ':') THEN regexp_matches(lower(address), '^[23][0-9a-f]{{{{0,3}}}}:')
        -- a dotted quad, each octet 0-255 without leading zeros ...
        WHEN NOT regexp_matches(address, '^{IPV4_OCTET}(\.{IPV4_OCTET}){{{{3}}}}$') THEN false
        -- ... outside 0/8, 10/8, 127/8, multicast and reserved (224/3), 169.254/16, 192.168/16, 172.16/12
        -- and 100.64/10 (carrier-grade NAT)
        ELSE NOT regexp_matches(address, '^(0|10|127|22[4-9]|2[3-5][0-9])\.|^(169\.254|192\.168|172\.(1[6-9]|2[0-9]|3[01])|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))\.')
    END;

-- The keys of a JSON object whose value the snapshot writer masked (auditor/redact.py), sorted; [] for none.
CREATE OR REPLACE {{temp}}MACRO redacted_keys(mapping) AS
    CASE WHEN contains(CAST(mapping AS VARCHAR), '[REDACTED]') THEN  -- cheap: parse only the candidates
        coalesce(list_sort(list_transform(
            list_filter(map_entries(try_cast(mapping AS MAP(VARCHAR, JSON))),
                        lambda e: e.value = '"[REDACTED]"'::JSON),
            lambda e: e.key)), [])
    ELSE []::VARCHAR[] END;

-- The entries of a Swift ACL (a container's read_acl or write_acl): split on commas, trimmed, empty ones dropped.
CREATE OR REPLACE {{temp}}MACRO acl_entries(acl) AS
    list_filter(list_transform(string_split(coalesce(acl, ''), ','), lambda e: trim(e)), lambda e: e <> '');

-- An ACL entry that lets requests in by their Referer header (`.r:*`, `.r:example.com`; Swift reads `.ref`,
-- `.referer` and `.referrer` alike), not one that keeps them out (`.r:-example.com`).
CREATE OR REPLACE {{temp}}MACRO acl_is_referrer_grant(entry) AS
    regexp_matches(lower(entry), '^\.(r|ref|referer|referrer)\s*:\s*[^\s-]');

CREATE OR REPLACE {{temp}}MACRO port_label(id, name, network_id) AS
    'port ' || id || CASE WHEN coalesce(name, '') <> '' THEN ' (' || name || ')' ELSE '' END
    || ' on network ' || coalesce(network_id, 'unknown');

CREATE OR REPLACE {{temp}}{{materialized}} world_ingress_rules AS
SELECT {{key}}rule_id, security_group_id, project_id, ethertype, protocol,
       CASE WHEN protocol = 'any' OR protocol IN {PORT_PROTOCOLS} THEN coalesce(port_range_min, 1) END AS port_min,
       CASE WHEN protocol = 'any' OR protocol IN {PORT_PROTOCOLS} THEN coalesce(port_range_max, 65535) END AS port_max,
       source, CASE WHEN contains(address, ':') THEN 'IPv6' ELSE 'IPv4' END AS family, address_group_id
FROM (
    SELECT r.snapshot_id, r.id AS rule_id, r.security_group_id, r.project_id, r.ethertype,
           sg_protocol(r.protocol) AS protocol, r.port_range_min, r.port_range_max,
           coalesce(r.remote_ip_prefix, CASE WHEN r.ethertype = 'IPv6' THEN '::/0' ELSE '0.0.0.0/0' END) AS address,
           address AS source, NULL::VARCHAR AS address_group_id
    FROM security_group_rules r
    WHERE r.direction = 'ingress'
      AND r.remote_group_id IS NULL
      AND r.remote_address_group_id IS NULL
      AND (r.remote_ip_prefix IS NULL OR r.remote_ip_prefix LIKE '%/0')
    UNION ALL
    -- A remote address group that holds the whole internet of the rule's family (Neutron applies only the
    -- group's addresses of the rule's ethertype).
    SELECT r.snapshot_id, r.id, r.security_group_id, r.project_id, r.ethertype, sg_protocol(r.protocol),
           r.port_range_min, r.port_range_max,
           a.address, a.address || ' via address group ' || coalesce(nullif(a.name, ''), a.id), a.id
    FROM security_group_rules r
    JOIN (SELECT snapshot_id, id, name, unnest(addresses) AS address FROM address_groups) a
      ON a.snapshot_id = r.snapshot_id AND a.id = r.remote_address_group_id
    WHERE r.direction = 'ingress'
      AND r.remote_group_id IS NULL
      AND a.address LIKE '%/0'
      AND (r.ethertype IS NULL OR contains(a.address, ':') = (upper(r.ethertype) = 'IPV6'))
);

CREATE OR REPLACE {{temp}}VIEW server_public_addresses AS
SELECT DISTINCT {{key}}server_id, address, kind FROM (
    SELECT snapshot_id, server_id, floating_ip_address AS address, 'floating' AS kind
    FROM floating_ips WHERE server_id IS NOT NULL AND floating_ip_address IS NOT NULL
    UNION ALL
    SELECT p.snapshot_id, p.device_id, unnest(p.ip_addresses), 'fixed'
    FROM ports p JOIN servers s ON s.id = p.device_id AND s.snapshot_id = p.snapshot_id
    UNION ALL
    SELECT s.snapshot_id, s.id, unnest(json_extract_string(s.addresses, '$.*[*].addr')), 'fixed' FROM servers s
) a
WHERE kind = 'floating' OR is_public_ip(address);
"""


def helpers_sql(per_snapshot: bool) -> str:
    """The helpers as SQL: temp objects over one snapshot's tables (`per_snapshot`, what a rule sees: no
    snapshot_id column), or views and macros over every snapshot, `snapshot_id` first (the catalog)."""
    if per_snapshot:  # a table: every rule of the evaluation reads it, so it is computed once
        return _HELPERS_SQL.format(temp="TEMP ", materialized="TABLE", key="")
    return _HELPERS_SQL.format(temp="", materialized="VIEW", key="snapshot_id, ")
