/*---
title: Every server port that filters traffic has a security group
severity: high
resource_type: server
description: >
  Fails a server with a network port (device_owner compute:*) that has port security enabled (true, or
  unknown because the port-security extension is off) but no security group. A server with no port at all
  passes: it has no network exposure. A port with port_security_enabled false cannot hold security groups
  in Neutron; it is not a failure here but of server_port_security_enabled. A server whose Nova addresses
  list networks while no port of it is in the snapshot is skipped.
rationale: >
  Security groups are the only tenant-controlled filter in front of a server. A port without one has no
  stated traffic policy: with the usual firewall drivers Neutron then drops everything (the server looks
  broken and the usual "fix" is an allow-all group or disabling port security), and with backends that do
  not enforce security groups it is not filtered at all. Either way nobody can tell what the server is
  meant to accept.
remediation: >
  Attach a security group that allows only the traffic the server needs, to the port
  (`openstack port set --security-group SECURITY_GROUP PORT_ID`) or to every port of the server
  (`openstack server add security group SERVER SECURITY_GROUP`).
references:
  - https://docs.openstack.org/neutron/latest/admin/intro-os-networking.html#security-groups
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/port.html
---*/
WITH server_ports AS (
    SELECT device_id AS server_id,
           -- FILTER, not CASE: the ordered aggregate then sorts only the few ports it keeps
           string_agg(port_label(id, name, network_id), ', ' ORDER BY id)
               FILTER (WHERE port_security_enabled IS DISTINCT FROM false
                         AND coalesce(len(security_group_ids), 0) = 0) AS bare_ports,
           string_agg(id, ', ' ORDER BY id) FILTER (WHERE port_security_enabled = false) AS unsecured_ports,
           count(*) FILTER (WHERE port_security_enabled IS DISTINCT FROM false) AS secured_count
    FROM ports
    WHERE device_owner LIKE 'compute:%' AND device_id IS NOT NULL
    GROUP BY device_id
)
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN p.bare_ports IS NOT NULL THEN 'fail'
            WHEN p.server_id IS NULL AND coalesce(len(json_keys(s.addresses)), 0) > 0 THEN 'skip'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN p.bare_ports IS NOT NULL
                THEN 'has port security enabled but no security group on ' || p.bare_ports || '.'
            WHEN p.server_id IS NULL AND coalesce(len(json_keys(s.addresses)), 0) > 0
                THEN 'has addresses on networks ' || array_to_string(json_keys(s.addresses), ', ')
                     || ' but none of its ports is in the snapshot, so its security groups cannot be checked.'
            WHEN p.server_id IS NULL
                THEN 'has no network port, so no network exposure.'
            WHEN p.secured_count = 0
                THEN 'has no port with port security enabled (disabled on port ' || p.unsecured_ports
                     || ': see server_port_security_enabled).'
            ELSE 'has a security group on every port with port security enabled'
                 || CASE WHEN p.unsecured_ports IS NOT NULL
                         THEN '; port security is disabled on port ' || p.unsecured_ports
                              || ' (see server_port_security_enabled)'
                         ELSE '' END || '.'
       END AS reason
FROM servers s
LEFT JOIN server_ports p ON p.server_id = s.id
