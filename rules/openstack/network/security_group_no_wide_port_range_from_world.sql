/*---
title: No security group opens a wide port range to the internet
severity: high
resource_type: security_group
description: >
  Fails a security group with an ingress rule from the whole internet (0.0.0.0/0 or ::/0, no remote
  at all, or an address group holding 0.0.0.0/0 or ::/0) for a port protocol (tcp, udp, sctp, dccp, udplite, by name or number) whose port range spans
  more than `max_port_range` ports (port_range_max - port_range_min + 1). Split with
  security_group_no_all_traffic_from_world: that rule owns protocol any and complete ranges (1-65535, or
  no range at all), this one owns ranges wider than the limit but short of complete, so one rule is never
  reported by both. Two adjacent rules that together cover every port are both reported here.
rationale: >
  A service needs one port or a handful; a wide range open to everyone exposes whatever happens to listen
  in it (ephemeral ports of outgoing connections, debug servers, RPC endpoints, databases) and defeats the
  purpose of the security group. Wide ranges usually come from a quick fix ("open 1024-65535 for the
  passive FTP / the batch job") that was never narrowed.
remediation: >
  Replace the rule with rules for the ports the service really listens on, restricted to the clients'
  networks or security groups where possible
  (`openstack security group rule create --ingress --protocol tcp --dst-port 8443 --remote-ip 198.51.100.0/24 GROUP`),
  then delete the wide rule: `openstack security group rule delete RULE_ID`. For passive FTP and similar
  protocols, configure the service to use a small fixed port range and open only that.
params:
  max_port_range: 32
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/security-group-rule.html
---*/
WITH hits AS (
    SELECT security_group_id,
           string_agg(DISTINCT opened, ', ' ORDER BY opened) AS opened
    FROM (
        SELECT security_group_id,
               port_text(protocol, port_min, port_max) || ' from ' || source
               || ' (' || (port_max - port_min + 1) || ' ports)' AS opened
        FROM world_ingress_rules
        -- protocol any and complete ranges are security_group_no_all_traffic_from_world's business
        WHERE protocol <> 'any'
          AND port_min IS NOT NULL
          AND NOT (port_min <= 1 AND port_max >= 65535)
          AND port_max - port_min + 1 > $max_port_range
    )
    GROUP BY security_group_id
)
SELECT g.id AS resource_id,
       g.name AS resource_name,
       g.project_id,
       CASE WHEN h.opened IS NULL THEN 'pass' ELSE 'fail' END AS status,
       'Security group ' || coalesce(g.name, '') || ' (' || g.id || ') ' ||
       CASE WHEN h.opened IS NULL
            THEN 'opens no port range of more than ' || $max_port_range || ' ports to the internet.'
            ELSE 'opens port ranges of more than ' || $max_port_range || ' ports to the internet: '
                 || h.opened || '.' END AS reason
FROM security_groups g
LEFT JOIN hits h ON h.security_group_id = g.id
