/*---
title: Servers are in an availability zone that exists and is available
severity: high
resource_type: server
description: >
  Fails a server whose availability zone is missing from the cloud's zone list (its hosts' compute
  services were removed, or the host aggregate that defined it is gone) or is listed as not available.
  A server with no zone (never scheduled to a host, e.g. failed at scheduling) is skipped, as is a server
  whose cell did not answer.
rationale: >
  A server in a zone that no longer exists or is unavailable runs, if at all, on hosts the cloud no longer
  schedules to or maintains: it cannot be restarted elsewhere in its zone, evacuated or migrated within it,
  and it escapes the capacity, patching and failure-domain planning of the zones that do exist.
remediation: >
  Move the server to an available zone (for example `openstack server shelve SERVER`, then
  `openstack server unshelve --availability-zone ZONE SERVER`, microversion 2.77+), or restore the zone's
  compute services (`openstack compute service set --enable HOST nova-compute`) and host aggregate. Delete
  the server (`openstack server delete SERVER`) if it is abandoned. List zones with
  `openstack availability zone list --long`.
references:
  - https://docs.openstack.org/nova/latest/admin/availability-zones.html
---*/
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN coalesce(s.availability_zone, '') = '' THEN 'skip'
            WHEN z.name IS NULL THEN 'fail'
            WHEN z.available THEN 'pass'
            WHEN z.available IS NULL THEN 'skip'
            ELSE 'fail' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN coalesce(s.availability_zone, '') = '' AND s.down_cell
                THEN 'is in a cell that did not answer: its availability zone is not known.'
            WHEN coalesce(s.availability_zone, '') = ''
                THEN 'has no availability zone (status ' || coalesce(s.status, 'unknown')
                     || '): it was never scheduled to a host.'
            WHEN z.name IS NULL
                THEN 'is in availability zone ' || s.availability_zone || ', which does not exist in the zone list.'
            WHEN z.available
                THEN 'is in availability zone ' || s.availability_zone || ', which is available.'
            WHEN z.available IS NULL
                THEN 'is in availability zone ' || s.availability_zone || ', whose state is not known.'
            ELSE 'is in availability zone ' || s.availability_zone || ', which is not available.'
       END AS reason
FROM servers s
LEFT JOIN availability_zones z ON z.name = s.availability_zone
