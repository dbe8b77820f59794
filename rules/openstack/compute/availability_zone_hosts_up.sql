/*---
title: Availability zones are available with all compute hosts up
severity: medium
resource_type: availability_zone
description: >
  Fails an availability zone that Nova reports as unavailable, or that has compute hosts whose
  nova-compute service is down or disabled (named in the finding). Nova's `internal` zone, which holds
  control services, is not judged. When host states are not visible (credentials without the admin
  role), an available zone is skipped.
rationale: >
  A zone with a compute host down has less capacity than planned: servers on that host are unreachable
  or cannot be managed, and anti-affinity groups and deployments spread over the zone may no longer find
  room to rebuild or evacuate. An unavailable zone takes everything in it down.
remediation: >
  Find the host's service state (`openstack compute service list --service nova-compute --host HOST`),
  bring nova-compute back up, or re-enable it (`openstack compute service set --enable HOST
  nova-compute`). If the host is retired, evacuate its servers (`openstack server evacuate SERVER`) and
  delete its service record (`openstack compute service delete SERVICE_ID`).
references:
  - https://docs.openstack.org/nova/latest/admin/availability-zones.html
  - https://docs.openstack.org/nova/latest/admin/evacuate.html
---*/
SELECT name AS resource_id,
       name AS resource_name,
       NULL AS project_id,  -- zones belong to the cloud
       CASE WHEN available = false OR len(compute_hosts_down) > 0 THEN 'fail'
            WHEN available IS NULL OR compute_hosts_down IS NULL THEN 'skip'
            ELSE 'pass' END AS status,
       'Availability zone ' || name || ' ' ||
       CASE WHEN available = false AND len(compute_hosts_down) > 0
                THEN 'is unavailable, and its compute hosts down are: '
                     || array_to_string(list_sort(compute_hosts_down), ', ') || '.'
            WHEN available = false THEN 'is unavailable.'
            WHEN len(compute_hosts_down) > 0
                THEN 'has compute hosts down: ' || array_to_string(list_sort(compute_hosts_down), ', ') || '.'
            WHEN available IS NULL THEN 'has an unknown state.'
            WHEN compute_hosts_down IS NULL THEN 'is available, but its host states are not visible '
                 || '(credentials without the admin role).'
            ELSE 'is available with all ' || coalesce(len(compute_hosts)::VARCHAR, 'its') || ' compute hosts up.'
       END AS reason
FROM availability_zones
WHERE name IS NOT NULL AND name <> 'internal'
