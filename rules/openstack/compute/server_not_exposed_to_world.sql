/*---
title: Running servers are not reachable from the internet on administrative or sensitive ports
severity: critical
resource_type: server
description: >
  The effective exposure of a server: fails a running server (status ACTIVE, or power state running) with
  a floating IP or a public fixed address whose port lets the whole internet reach an administrative port
  (SSH, RDP, WinRM) or a sensitive service port (databases, caches, message brokers, container and cluster
  APIs): a security group of that port with an ingress rule from 0.0.0.0/0 or ::/0 (or no remote, or
  an address group holding them) covering
  one of those ports, or port security disabled on that port (nothing is filtered). IPv4 rules only expose
  IPv4 addresses and IPv6 rules IPv6 addresses. A floating IP is judged with the groups of the port it is
  associated with, a fixed address with those of the port holding it, so a group or a disabled port
  security on another, private port of the server does not count; an address tied to no listed port (seen
  only in Nova's address list) is judged with every port of the server, and a running server with a public
  address but no port in the snapshot is skipped. Servers that are not running pass (they are not
  reachable now), with their status and the exposure they would have once started; servers whose status is
  UNKNOWN (cell down) are skipped.
rationale: >
  An open port in a security group is only a risk where an address reaches it. This rule joins addresses,
  ports and rules to find the servers an attacker on the internet can actually reach on a login or data
  service: these are scanned within minutes of exposure and brute-forced or exploited as soon as one
  credential is weak or one daemon unpatched.
remediation: >
  Remove the world-open rule from the security group, or replace its remote with the management networks
  or a bastion's group (`openstack security group rule delete RULE_ID`, then `openstack security group rule
  create --ingress --protocol tcp --dst-port PORT --remote-ip 10.0.0.0/8 GROUP`); detach the group from the
  server (`openstack server remove security group SERVER GROUP`) or the floating IP
  (`openstack server remove floating ip SERVER ADDRESS`) if the server need not be public; re-enable port
  security on the port (`openstack port set --enable-port-security --security-group GROUP PORT_ID`).
params:
  admin_ports: [22, 3389, 5985, 5986]
  sensitive_ports: [1433, 1521, 2181, 2375, 2376, 2379, 2380, 3306, 5432, 5601, 5672, 5984, 6379, 6443,
                    7000, 7001, 8086, 8500, 9042, 9092, 9200, 9300, 10250, 10255, 11211, 15672, 27017,
                    27018, 27019]
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/neutron/latest/admin/config-ipv6.html
evidence:
  openings: >
    on a failure, each way in: address (the public address reached), port_id (the server's port it reaches),
    security_group_id (the group whose rule opens it; null when port security is disabled on the port),
    protocol ('any' for all), port_min, port_max (null for all protocols and ports)
---*/
WITH server_ports AS (
    SELECT id AS port_id, device_id AS server_id, ip_addresses, port_security_enabled
    FROM ports
    WHERE device_owner LIKE 'compute:%' AND device_id IS NOT NULL
),
public_addresses AS (  -- Nova may list a floating IP as 'fixed' too: one row per address
    SELECT server_id, address, CASE WHEN contains(address, ':') THEN 'IPv6' ELSE 'IPv4' END AS family
    FROM server_public_addresses
    GROUP BY server_id, address
),
carriers AS (  -- the port an address reaches the server through
    SELECT a.server_id, a.address, f.port_id
    FROM public_addresses a
    JOIN floating_ips f ON f.server_id = a.server_id AND f.floating_ip_address = a.address
    WHERE f.port_id IS NOT NULL
    UNION
    SELECT a.server_id, a.address, p.port_id
    FROM public_addresses a
    JOIN server_ports p ON p.server_id = a.server_id AND list_contains(p.ip_addresses, a.address)
),
address_ports AS (  -- an address tied to no listed port is judged with every port of the server
    SELECT a.server_id, a.address, a.family, coalesce(c.port_id, p.port_id) AS port_id
    FROM public_addresses a
    LEFT JOIN carriers c ON c.server_id = a.server_id AND c.address = a.address
    LEFT JOIN server_ports p ON c.port_id IS NULL AND p.server_id = a.server_id
),
risky_rules AS (
    SELECT w.security_group_id, w.protocol, w.port_min, w.port_max, w.family
    FROM world_ingress_rules w
    WHERE w.port_min IS NOT NULL
      -- cheap range test first: most rules cover none of the ports, and the lambda is the costly part
      AND w.port_min <= greatest(list_max($admin_ports), list_max($sensitive_ports))
      AND w.port_max >= least(list_min($admin_ports), list_min($sensitive_ports))
      AND len(list_filter(list_concat($admin_ports, $sensitive_ports),
                          lambda p: p BETWEEN w.port_min AND w.port_max)) > 0
),
openings AS (
    SELECT ap.server_id, ap.address,
           'all protocols and ports (port security is disabled on port ' || ap.port_id || ')' AS opened,
           ap.port_id, NULL::VARCHAR AS security_group_id, 'any' AS protocol, NULL::INTEGER AS port_min,
           NULL::INTEGER AS port_max
    FROM address_ports ap
    JOIN server_ports p ON p.port_id = ap.port_id
    WHERE p.port_security_enabled = false
    UNION
    SELECT ap.server_id, ap.address,
           CASE WHEN r.protocol = 'any' THEN 'all protocols and ports'
                ELSE port_text(r.protocol, r.port_min, r.port_max) END
           || ' (group ' || coalesce(g.name, r.security_group_id) || ')',
           ap.port_id, r.security_group_id, r.protocol, r.port_min, r.port_max
    FROM address_ports ap
    JOIN server_security_groups sg ON sg.server_id = ap.server_id AND sg.port_id = ap.port_id
    JOIN risky_rules r ON r.security_group_id = sg.security_group_id AND r.family = ap.family
    LEFT JOIN security_groups g ON g.id = r.security_group_id
),
exposure AS (
    SELECT server_id, string_agg('at ' || address || ' on ' || opened, '; ' ORDER BY address) AS exposed
    FROM (SELECT server_id, address, string_agg(opened, ', ' ORDER BY opened) AS opened
          FROM openings GROUP BY server_id, address)
    GROUP BY server_id
),
exposure_evidence AS (
    SELECT server_id,
           list_sort(list(DISTINCT {'address': address, 'port_id': port_id, 'security_group_id': security_group_id,
                                    'protocol': protocol, 'port_min': port_min, 'port_max': port_max})) AS openings
    FROM openings GROUP BY server_id
),
addresses AS (
    SELECT server_id, string_agg(DISTINCT address, ', ' ORDER BY address) AS listed,
           bool_or(port_id IS NULL) AS portless
    FROM address_ports GROUP BY server_id
),
judged AS (
    SELECT s.id, s.name, s.project_id, s.status, e.exposed, x.openings, a.listed, a.portless,
           (s.status = 'ACTIVE' OR s.power_state = 1) AS running
    FROM servers s
    LEFT JOIN exposure e ON e.server_id = s.id
    LEFT JOIN exposure_evidence x ON x.server_id = s.id
    LEFT JOIN addresses a ON a.server_id = s.id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN running AND exposed IS NOT NULL THEN 'fail'
            WHEN running AND portless THEN 'skip'
            WHEN running THEN 'pass'
            WHEN status IS NULL OR status = 'UNKNOWN' THEN 'skip'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN running AND exposed IS NOT NULL
                THEN 'is reachable from the internet ' || exposed || '.'
            WHEN running AND portless
                THEN 'has public address(es) ' || listed
                     || ' but none of its ports is in the snapshot, so its security groups cannot be checked.'
            WHEN running AND listed IS NOT NULL
                THEN 'has public address(es) ' || listed
                     || ' but opens no administrative or sensitive port to the internet on them.'
            WHEN running
                THEN 'has no floating IP or public address.'
            WHEN status IS NULL OR status = 'UNKNOWN'
                THEN 'has status ' || coalesce(status, 'unknown') || ' (its cell may be down): whether it runs is not known.'
            ELSE 'is not running (status ' || status || '), so it is not reachable now'
                 || CASE WHEN exposed IS NOT NULL THEN '; once started it would be reachable from the internet '
                                                       || exposed
                         ELSE '' END || '.'
       END AS reason,
       CASE WHEN running AND exposed IS NOT NULL THEN {'openings': openings} END AS evidence
FROM judged
