/*---
title: Networks that servers use are administratively up
severity: low
resource_type: network
description: >
  Fails a network whose admin_state_up is false while server ports sit on it: those servers carry no
  traffic there. A network turned off that no server uses is reported as info (a leftover to clean up, not
  an outage). The count covers the ports in the snapshot: a project-scoped snapshot sees its own.
rationale: >
  A network turned off cuts every server attached to it, usually by mistake or as a forgotten step of an
  incident; servers that look healthy to Nova are unreachable, and nobody owns the drift.
remediation: >
  Turn it on if it is still in use (`openstack network set --enable NETWORK`); otherwise move the servers
  off it, delete its ports and the network (`openstack network delete NETWORK`).
references:
  - https://docs.openstack.org/api-ref/network/v2/#networks
---*/
WITH server_ports AS (
    SELECT network_id, count(*) AS ports, count(DISTINCT device_id) AS servers
    FROM ports
    WHERE device_owner LIKE 'compute:%'
    GROUP BY network_id
)
SELECT n.id AS resource_id,
       n.name AS resource_name,
       n.project_id,
       CASE WHEN n.admin_state_up IS NULL THEN 'skip' WHEN n.admin_state_up THEN 'pass'
            WHEN coalesce(s.servers, 0) = 0 THEN 'info' ELSE 'fail' END AS status,
       'Network ' || coalesce(n.name, '') || ' (' || n.id || ') ' ||
       CASE WHEN n.admin_state_up IS NULL THEN 'does not say whether it is up.'
            WHEN n.admin_state_up THEN 'is administratively up (status ' || coalesce(n.status, 'unknown') || ').'
            WHEN coalesce(s.servers, 0) = 0 THEN 'is administratively down, and no server port in the snapshot is on it.'
            ELSE 'is administratively down: ' || s.servers || ' server(s) on it (' || s.ports
                 || ' port(s)) carry no traffic there.'
       END AS reason
FROM networks n
LEFT JOIN server_ports s ON s.network_id = n.id
