/*---
title: Default security groups admit traffic only from their own members
severity: medium
resource_type: security_group
description: >
  Judges only the security groups named `default` (Neutron creates one per project and gives it to every
  port created without a group). Passes when every ingress rule of the group has the group itself as
  remote (remote_group_id = the group's id, as Neutron creates them), or when it has no ingress rule at
  all. Fails when an ingress rule has an IP prefix as remote (any prefix, private ranges included), no
  remote at all (everyone), another security group or an address group; the reason lists those rules.
  Egress rules are not judged. Other groups get no row.
rationale: >
  The default group is applied silently to any port created without an explicit group, so every rule
  added to it opens that traffic on instances whose owners never asked for it. Keeping it at Neutron's
  defaults (members talk to each other, nothing else comes in) makes forgetting to choose a group safe;
  traffic that should come in belongs in a purpose-named group attached where it is needed.
remediation: >
  Move the extra ingress rules to a dedicated security group
  (`openstack security group create web-8080` then
  `openstack security group rule create --ingress --protocol tcp --dst-port 8080 --remote-ip 203.0.113.0/24 web-8080`),
  attach it to the servers that need it (`openstack server add security group SERVER web-8080`), then
  delete the rules from the default group: `openstack security group rule delete RULE_ID`.
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/security-group-rule.html
---*/
WITH defaults AS (
    SELECT id, name, project_id FROM security_groups WHERE name = 'default'
),
offending AS (
    SELECT r.security_group_id,
           sg_protocol(r.protocol) AS protocol,
           r.port_range_min, r.port_range_max,
           CASE
               WHEN r.remote_ip_prefix IS NOT NULL THEN r.remote_ip_prefix
               WHEN r.remote_group_id IS NOT NULL
                   THEN 'group ' || coalesce(o.name, '') || ' (' || r.remote_group_id || ')'
               WHEN r.remote_address_group_id IS NOT NULL THEN 'address group ' || r.remote_address_group_id
               ELSE CASE WHEN r.ethertype = 'IPv6' THEN '::/0' ELSE '0.0.0.0/0' END || ' (no remote)'
           END AS source
    FROM security_group_rules r
    JOIN defaults d ON d.id = r.security_group_id
    LEFT JOIN security_groups o ON o.id = r.remote_group_id
    WHERE r.direction = 'ingress'
      AND NOT (r.remote_group_id IS NOT DISTINCT FROM r.security_group_id
               AND r.remote_ip_prefix IS NULL AND r.remote_address_group_id IS NULL)
),
hits AS (
    SELECT security_group_id,
           string_agg(DISTINCT opened, ', ' ORDER BY opened) AS opened
    FROM (
        -- the same port filling as world_ingress_rules, so port_text reads alike in every rule
        SELECT security_group_id,
               port_text(protocol,
                         CASE WHEN protocol IN ('any', 'tcp', 'udp', 'sctp', 'dccp', 'udplite')
                              THEN coalesce(port_range_min, 1) END,
                         CASE WHEN protocol IN ('any', 'tcp', 'udp', 'sctp', 'dccp', 'udplite')
                              THEN coalesce(port_range_max, 65535) END) || ' from ' || source AS opened
        FROM offending
    )
    GROUP BY security_group_id
)
SELECT d.id AS resource_id,
       d.name AS resource_name,
       d.project_id,
       CASE WHEN h.opened IS NULL THEN 'pass' ELSE 'fail' END AS status,
       'Security group ' || coalesce(d.name, '') || ' (' || d.id || ') ' ||
       CASE WHEN h.opened IS NULL THEN 'admits ingress traffic only from its own members.'
            ELSE 'admits ingress traffic from outside the group: ' || h.opened || '.' END AS reason
FROM defaults d
LEFT JOIN hits h ON h.security_group_id = d.id
