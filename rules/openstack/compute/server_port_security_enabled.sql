/*---
title: Port security is enabled on every server port
severity: high
resource_type: server
description: >
  Fails a server with a network port (device_owner compute:*) whose port_security_enabled is false: no
  security group and no anti-spoofing apply to that port. NULL (the port-security extension is off, or the
  field was not returned) counts as enabled. A server with no port passes; one whose Nova addresses list
  networks while no port of it is in the snapshot is skipped.
rationale: >
  With port security disabled Neutron filters nothing on the port: every service the guest listens on is
  reachable from everything that can route to that network, and the guest may send traffic with any source
  MAC or IP address (spoofing, rogue DHCP or router advertisements). It is sometimes needed for network
  appliances, but allowed address pairs usually cover that need without giving up filtering.
remediation: >
  Re-enable port security and attach a security group:
  `openstack port set --enable-port-security --security-group SECURITY_GROUP PORT_ID`. If the server routes
  or hosts a virtual IP, declare those addresses with `openstack port set --allowed-address ip-address=CIDR
  PORT_ID` instead of disabling port security.
references:
  - https://docs.openstack.org/neutron/latest/contributor/internals/openvswitch_firewall.html
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/port.html
---*/
WITH server_ports AS (
    SELECT device_id AS server_id,
           count(*) AS port_count,
           -- FILTER, not CASE: the ordered aggregate then sorts only the few ports it keeps
           string_agg(port_label(id, name, network_id), ', ' ORDER BY id)
               FILTER (WHERE port_security_enabled = false) AS unsecured_ports
    FROM ports
    WHERE device_owner LIKE 'compute:%' AND device_id IS NOT NULL
    GROUP BY device_id
)
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN p.unsecured_ports IS NOT NULL THEN 'fail'
            WHEN p.server_id IS NULL AND coalesce(len(json_keys(s.addresses)), 0) > 0 THEN 'skip'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN p.unsecured_ports IS NOT NULL
                THEN 'has port security disabled on ' || p.unsecured_ports || ': no filtering or anti-spoofing there.'
            WHEN p.server_id IS NULL AND coalesce(len(json_keys(s.addresses)), 0) > 0
                THEN 'has addresses on networks ' || array_to_string(json_keys(s.addresses), ', ')
                     || ' but none of its ports is in the snapshot, so its port security cannot be checked.'
            WHEN p.server_id IS NULL
                THEN 'has no network port.'
            ELSE 'has port security enabled on all of its ' || p.port_count || ' port(s).'
       END AS reason
FROM servers s
LEFT JOIN server_ports p ON p.server_id = s.id
