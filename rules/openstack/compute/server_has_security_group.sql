/*---
title: Every server port has a security group
severity: high
resource_type: server
description: >
  Fails a server with a network port (device_owner compute:*) that has no security group, whatever its
  other ports have; the reason names each such port. A port with port security disabled holds no security
  group in Neutron, so it fails here too (server_port_security_enabled says the same from the port
  security side). A server with no port at all is reported as info: no security group applies to it, and
  nothing can reach it over the network. A server whose Nova addresses list networks while no port of it is
  in the snapshot is skipped.
rationale: >
  Security groups are the only tenant-controlled filter in front of a server, and every instance must be
  assigned one. A port without one has no stated traffic policy: with port security disabled Neutron
  filters nothing on it; with port security on, the usual firewall drivers drop everything (the server
  looks broken and the usual "fix" is an allow-all group or disabling port security), and backends that do
  not enforce security groups filter nothing. Either way nobody can tell what the server is meant to
  accept on that port, and a well-guarded management port does not make an unguarded data port safe.
remediation: >
  Attach a security group that allows only the traffic the server needs, to the port
  (`openstack port set --security-group SECURITY_GROUP PORT_ID`) or to every port of the server
  (`openstack server add security group SERVER SECURITY_GROUP`). A port with port security disabled needs
  it enabled first (`openstack port set --enable-port-security --security-group SECURITY_GROUP PORT_ID`);
  for a router or a virtual IP, declare its addresses with `--allowed-address` instead of disabling it.
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/port.html
---*/
WITH server_ports AS (
    SELECT device_id AS server_id,
           -- FILTER, not CASE: the ordered aggregate then sorts only the few ports it keeps
           string_agg(port_label(id, name, network_id)
                          || CASE WHEN port_security_enabled = false THEN ' (port security disabled)' ELSE '' END,
                      ', ' ORDER BY id)
               FILTER (WHERE coalesce(len(security_group_ids), 0) = 0) AS bare_ports
    FROM ports
    WHERE device_owner LIKE 'compute:%' AND device_id IS NOT NULL
    GROUP BY device_id
)
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN p.bare_ports IS NOT NULL THEN 'fail'
            WHEN p.server_id IS NULL AND coalesce(len(json_keys(s.addresses)), 0) > 0 THEN 'skip'
            WHEN p.server_id IS NULL THEN 'info'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN p.bare_ports IS NOT NULL
                THEN 'has no security group on ' || p.bare_ports || '.'
            WHEN p.server_id IS NULL AND coalesce(len(json_keys(s.addresses)), 0) > 0
                THEN 'has addresses on networks ' || array_to_string(json_keys(s.addresses), ', ')
                     || ' but none of its ports is in the snapshot, so its security groups cannot be checked.'
            WHEN p.server_id IS NULL
                THEN 'has no network port: no security group applies, and nothing reaches it over the network.'
            ELSE 'has a security group on every port.'
       END AS reason
FROM servers s
LEFT JOIN server_ports p ON p.server_id = s.id
