/*---
title: Administrative ports are not open to the internet
severity: high
resource_type: security_group
description: >
  Fails a security group with an ingress rule that lets the whole internet (0.0.0.0/0 or ::/0, no
  remote at all, or an address group holding 0.0.0.0/0 or ::/0) reach an administrative port: SSH, RDP or WinRM by default.
rationale: >
  Remote administration services are the most scanned and brute-forced ports on the internet. Exposed to
  everyone, a weak password, a leaked key or one unpatched daemon is enough for an attacker to take the
  instance.
remediation: >
  Restrict the rule's remote to the management networks or a bastion's security group (remote_group_id),
  or reach instances through a VPN or bastion host. Then delete the rule open to 0.0.0.0/0 or ::/0:
  `openstack security group rule delete RULE_ID`.
params:
  admin_ports: [22, 3389, 5985, 5986]
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
evidence:
  openings: >
    on a failure, each offending ingress rule: rule_id, protocol, port_min, port_max (the whole range it
    opens), source (the CIDR, or the CIDR and the address group holding it), address_group_id (that group's id, or null)
---*/
WITH hits AS (
    SELECT security_group_id,
           string_agg(DISTINCT opened, ', ' ORDER BY opened) AS opened,
           list(DISTINCT {'rule_id': rule_id, 'protocol': protocol, 'port_min': port_min, 'port_max': port_max,
                          'source': source,
                          'address_group_id': address_group_id}) AS openings
    FROM (
        SELECT security_group_id, rule_id, protocol, port_min, port_max, source, address_group_id,
               port_text(protocol, port_min, port_max) || ' from ' || source AS opened
        FROM world_ingress_rules
        WHERE port_min IS NOT NULL
          AND len(list_filter($admin_ports, lambda p: p BETWEEN port_min AND port_max)) > 0
    )
    GROUP BY security_group_id
)
SELECT g.id AS resource_id,
       g.name AS resource_name,
       g.project_id,
       CASE WHEN h.opened IS NULL THEN 'pass' ELSE 'fail' END AS status,
       'Security group ' || coalesce(g.name, '') || ' (' || g.id || ') ' ||
       CASE WHEN h.opened IS NULL THEN 'opens no administrative port to the internet.'
            ELSE 'opens administrative ports to the internet: ' || h.opened || '.' END AS reason,
       CASE WHEN h.opened IS NOT NULL THEN {'openings': list_sort(h.openings)} END AS evidence
FROM security_groups g
LEFT JOIN hits h ON h.security_group_id = g.id
