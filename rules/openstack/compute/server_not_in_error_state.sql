/*---
title: Servers are not in ERROR state
severity: medium
resource_type: server
description: >
  Fails a server whose status is ERROR, with Nova's fault message when there is one (for example "No valid
  host was found"). Every other status passes; a server of a cell that did not answer (status UNKNOWN) is
  skipped.
rationale: >
  A server in ERROR failed to build, move, resize or delete. It may still hold quota, IP addresses, volumes
  and even a running guest that nobody manages, and a failure pattern (no valid host, hypervisor or network
  errors) often points to a capacity or infrastructure problem affecting other workloads.
remediation: >
  Read the fault (`openstack server show SERVER -c fault`) and fix its cause (capacity, flavor, image,
  network). Then delete the server (`openstack server delete SERVER`) and recreate it, or, for a server that
  was built and failed during an operation, rebuild it (`openstack server rebuild SERVER`); an admin can reset
  the state once the guest is known to be fine (`openstack server set --state active SERVER`).
references:
  - https://docs.openstack.org/nova/latest/user/states.html
  - https://docs.openstack.org/nova/latest/admin/troubleshooting/orphaned-allocations.html
---*/
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN status = 'ERROR' THEN 'fail'
            WHEN status IS NULL OR status = 'UNKNOWN' THEN 'skip'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN status = 'ERROR'
                THEN 'is in ERROR state'
                     || CASE WHEN coalesce(trim(fault_message), '') <> ''
                             THEN ' (fault' || coalesce(' ' || fault_code, '') || ': '
                                  || rtrim(trim(fault_message), '.') || ')'
                             ELSE ', with no fault recorded' END || '.'
            WHEN status IS NULL OR status = 'UNKNOWN'
                THEN 'has status ' || coalesce(status, 'unknown') || ' (its cell may be down): its state is not known.'
            ELSE 'is not in ERROR state (status ' || status || ').'
       END AS reason
FROM servers
