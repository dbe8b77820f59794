/*---
title: No security group admits all traffic from the internet
severity: critical
resource_type: security_group
description: >
  Fails a security group with an ingress rule from the whole internet (0.0.0.0/0 or ::/0, no remote
  at all, or an address group holding 0.0.0.0/0 or ::/0) that admits all traffic: protocol any (no protocol, 'any' or '0'), or a port protocol (tcp,
  udp, sctp, dccp, udplite, by name or number) with no port range or a range covering every port
  (1-65535), which is all traffic of that protocol. Split with security_group_no_wide_port_range_from_world:
  this rule owns protocol any and complete port ranges, that one owns ranges wider than its limit but
  short of complete, so one rule is never reported by both. Non-port protocols (icmp, gre, esp, ...)
  from the internet are not this rule's business.
rationale: >
  A rule for all traffic from anywhere turns the security group off: every service listening on the
  instance, including ones installed later or started by mistake, is reachable from the internet. Such
  rules are typically left over from debugging ("allow-all-temp") and are the first thing scanners find.
remediation: >
  Replace the rule with rules for the ports and protocols the instance really serves, restricted to the
  clients' networks or security groups where possible
  (`openstack security group rule create --ingress --protocol tcp --dst-port 443 --remote-ip 0.0.0.0/0 GROUP`),
  then delete the all-traffic rule: `openstack security group rule delete RULE_ID`.
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/security-group-rule.html
evidence:
  openings: >
    on a failure, each offending ingress rule: rule_id, protocol ('any' for every protocol), port_min,
    port_max (1 and 65535 when it opens every port; null for a protocol without ports), source (the CIDR,
    or the CIDR and the address group holding it), address_group_id (that group's id, or null)
---*/
WITH hits AS (
    SELECT security_group_id,
           string_agg(DISTINCT port_text(protocol, port_min, port_max) || ' from ' || source, ', '
                      ORDER BY port_text(protocol, port_min, port_max) || ' from ' || source) AS opened,
           list_sort(list(DISTINCT {'rule_id': rule_id, 'protocol': protocol, 'port_min': port_min,
                                    'port_max': port_max, 'source': source,
                                    'address_group_id': address_group_id})) AS openings
    FROM world_ingress_rules
    -- port_min/port_max are filled to 1..65535 for 'any' and port protocols without a range, NULL otherwise
    WHERE protocol = 'any' OR (port_min <= 1 AND port_max >= 65535)
    GROUP BY security_group_id
)
SELECT g.id AS resource_id,
       g.name AS resource_name,
       g.project_id,
       CASE WHEN h.opened IS NULL THEN 'pass' ELSE 'fail' END AS status,
       'Security group ' || coalesce(g.name, '') || ' (' || g.id || ') ' ||
       CASE WHEN h.opened IS NULL THEN 'admits no all-traffic or all-ports rule from the internet.'
            ELSE 'admits all traffic from the internet: ' || h.opened || '.' END AS reason,
       CASE WHEN h.opened IS NOT NULL THEN {'openings': h.openings} END AS evidence
FROM security_groups g
LEFT JOIN hits h ON h.security_group_id = g.id
