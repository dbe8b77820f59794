/*---
title: Tenant subnets that servers use serve DHCP
severity: low
resource_type: subnet
description: >
  Fails a subnet with enable_dhcp false that server ports hold addresses on, on a network that is neither
  external nor owned by one of `operator_projects` (names in the default domain, or ids). Subnets of
  external networks (floating IPs and router gateways need no DHCP) and of the operators' provider
  networks (their addressing is the operators' design) pass, as do subnets no server uses. A subnet whose
  network is missing from the snapshot, or says neither way whether it is external, is skipped.
rationale: >
  Without DHCP a server on the subnet gets no address, route or DNS server from Neutron: each is configured
  by hand or from the config drive, and its addresses drift from what Neutron believes and enforces
  through port security's anti-spoofing rules. Servers that boot without a network are also a common
  reason to turn port security off, which is worse.
remediation: >
  Enable DHCP on the subnet (`openstack subnet set --dhcp SUBNET`), or, where servers there are configured
  statically on purpose, waive this finding with that reason.
params:
  operator_projects: [admin, service]
references:
  - https://docs.openstack.org/api-ref/network/v2/#subnets
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html
---*/
WITH server_ports AS (
    SELECT subnet_id, count(DISTINCT port_id) AS ports
    FROM (SELECT id AS port_id, unnest(json_extract_string(fixed_ips, '$[*].subnet_id')) AS subnet_id
          FROM ports WHERE device_owner LIKE 'compute:%' AND json_type(fixed_ips) = 'ARRAY')
    GROUP BY subnet_id
),
judged AS (
    SELECT s.id, s.name, s.project_id, s.cidr, s.enable_dhcp, s.ipv6_address_mode, n.id IS NOT NULL AS network_known,
           n.external, coalesce(n.name, s.network_id) AS network_name, coalesce(a.ports, 0) AS ports,
           coalesce(list_contains($operator_projects, n.project_id)
                    OR (list_contains($operator_projects, p.name) AND p.domain_id = 'default'), false) AS operator
    FROM subnets s
    LEFT JOIN networks n ON n.id = s.network_id
    LEFT JOIN projects p ON p.id = n.project_id
    LEFT JOIN server_ports a ON a.subnet_id = s.id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN NOT network_known OR external IS NULL OR enable_dhcp IS NULL THEN 'skip'
            WHEN enable_dhcp OR external OR operator OR ports = 0 THEN 'pass'
            ELSE 'fail' END AS status,
       'Subnet ' || coalesce(name, '') || ' (' || id || ', ' || coalesce(cidr, 'no CIDR') || ') ' ||
       CASE WHEN NOT network_known THEN 'belongs to network ' || network_name || ', which is not in the snapshot.'
            WHEN external IS NULL THEN 'belongs to network ' || network_name
                                      || ', which does not say whether it is external.'
            WHEN enable_dhcp IS NULL THEN 'does not say whether it serves DHCP.'
            WHEN enable_dhcp THEN 'has DHCP enabled'
                                  || coalesce(' (IPv6 addressing: ' || ipv6_address_mode || ')', '') || '.'
            WHEN external THEN 'belongs to external network ' || network_name || ', which needs no DHCP.'
            WHEN operator THEN 'belongs to the operators'' network ' || network_name
                               || ', whose addressing is theirs to design.'
            WHEN ports = 0 THEN 'has DHCP disabled, and no server port uses it.'
            ELSE 'has DHCP disabled: ' || ports || ' server port(s) on it must be configured by hand.'
       END AS reason
FROM judged
