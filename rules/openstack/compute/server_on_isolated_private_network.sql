/*---
title: Servers sit on private networks of their own project
severity: medium
resource_type: server
description: >
  Fails a server with a port attached straight to an external network, to a network a tenant shares with
  every project, or holding a public fixed address (is_public_ip; a global IPv6 address counts: the
  project's router forwards to it without NAT). Such a server is reached at its interface by the internet
  or by every other project, with its security groups as the only filter. A port on a shared network of
  one of `operator_projects` (a provider network) is reported as info: the operators chose that design.
  A floating IP does not fail a server: it is the controlled way in, and what it exposes is the business
  of server_not_exposed_to_world. A server with no port passes (no network). A server is skipped when Nova
  lists it on a network that none of its ports in the snapshot is on (ports of other projects, or a
  project-scoped snapshot), or when a port's network is not in the snapshot.
rationale: >
  Segmentation is the second line of defence after security groups. On a private network behind its
  project's router, a mistake in a security group is limited to what the router forwards (floating IPs);
  on an external or shared network, or with a routed public address on the interface, the security group
  is all there is, and every other project, or the internet, reaches the server's interface directly.
remediation: >
  Attach the server to a private network of its project with a router to the external network
  (`openstack server add network SERVER PRIVATE_NETWORK`, then `openstack server remove port SERVER PORT`
  for the direct port), and reach it through a floating IP, a load balancer or a bastion.
params:
  operator_projects: [admin, service]
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html
  - https://docs.openstack.org/security-guide/networking/architecture.html
---*/
WITH server_ports AS (
    SELECT p.device_id AS server_id, p.id AS port_id, p.network_id, n.id IS NOT NULL AS network_known,
           n.name AS network_name, coalesce(n.external, false) AS external, coalesce(n.shared, false) AS shared,
           coalesce(list_contains($operator_projects, n.project_id)
                    OR (list_contains($operator_projects, o.name) AND o.domain_id = 'default'), false) AS operator,
           list_filter(p.ip_addresses, lambda a: is_public_ip(a)) AS public_fixed
    FROM ports p
    LEFT JOIN networks n ON n.id = p.network_id
    LEFT JOIN projects o ON o.id = n.project_id
    WHERE p.device_owner LIKE 'compute:%' AND p.device_id IS NOT NULL
),
port_findings AS (
    SELECT *,
           CASE WHEN external THEN 'port ' || port_id || ' is on external network ' || network_name
                WHEN shared AND NOT operator THEN 'port ' || port_id || ' is on network ' || network_name
                                                  || ', which a tenant shares with every project'
                WHEN len(public_fixed) > 0 THEN 'port ' || port_id || ' holds public address '
                                                || array_to_string(public_fixed, ', ')
           END AS problem
    FROM server_ports
),
-- list_sort of list() rather than string_agg(... ORDER BY ...): an ordered aggregate sorts each group
-- apart, several times slower over 100,000 servers; each text starts with what it is ordered by
per_server AS (
    SELECT server_id,
           list_sort(list(problem) FILTER (WHERE problem IS NOT NULL)) AS problems,
           list_sort(list(network_name) FILTER (WHERE shared AND operator AND network_name IS NOT NULL)) AS provider,
           list_sort(list(network_id) FILTER (WHERE NOT network_known AND network_id IS NOT NULL)) AS unknown,
           list(network_name) FILTER (WHERE network_name IS NOT NULL) AS networks,
           count(*) AS ports
    FROM port_findings
    GROUP BY server_id
),
judged AS (
    SELECT s.id, s.name, s.project_id, p.ports, p.server_id IS NOT NULL AS has_ports,
           CASE WHEN len(p.problems) > 0 THEN array_to_string(p.problems, '; ') END AS problems,
           CASE WHEN len(p.provider) > 0 THEN array_to_string(p.provider, ', ') END AS provider,
           CASE WHEN len(p.unknown) > 0 THEN array_to_string(p.unknown, ', ') END AS unknown,
           list_filter(coalesce(json_keys(s.addresses), []),
                       lambda name: NOT list_contains(coalesce(p.networks, []), name)) AS unseen
    FROM servers s
    LEFT JOIN per_server p ON p.server_id = s.id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN problems IS NOT NULL THEN 'fail'
            WHEN unknown IS NOT NULL OR len(unseen) > 0 THEN 'skip'
            WHEN provider IS NOT NULL THEN 'info'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN problems IS NOT NULL THEN 'is not isolated on a private network: ' || problems || '.'
            WHEN unknown IS NOT NULL THEN 'has a port on network ' || unknown
                                          || ', which is not in the snapshot, so its isolation is unknown.'
            WHEN len(unseen) > 0 THEN 'has addresses on network(s) ' || array_to_string(unseen, ', ')
                                      || ' that none of its ports in the snapshot is on, so its isolation is unknown.'
            WHEN provider IS NOT NULL THEN 'sits on the operators'' shared network(s) ' || provider
                                           || ', reachable by every project''s servers there.'
            WHEN NOT has_ports THEN 'has no network port.'
            ELSE 'sits on private networks of its project only (' || ports || ' port(s)).'
       END AS reason
FROM judged
