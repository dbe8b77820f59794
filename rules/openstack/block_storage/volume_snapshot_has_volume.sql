/*---
title: Volume snapshots belong to a volume that exists
severity: low
resource_type: volume_snapshot
description: >
  Fails a volume snapshot whose volume is no longer in the snapshot's volume list; a snapshot of a volume
  that exists passes. Cinder refuses to delete a volume that has snapshots (a cascade delete removes them
  too), so such a snapshot is left over from an inconsistency: a failed delete, a database repaired by
  hand, a volume unmanaged from Cinder.
rationale: >
  An orphaned snapshot keeps a copy of data whose volume, and whose owner's attention, is gone: nobody
  reviews, rotates or deletes it, yet it can be restored into a new volume by anyone in the project. It
  also costs storage that no quota report ties to a volume.
remediation: >
  Check whether the data is still needed (`openstack volume snapshot show SNAPSHOT`); restore it to a volume
  (`openstack volume create --snapshot SNAPSHOT NAME`) and back that up if it is, then delete the snapshot
  (`openstack volume snapshot delete SNAPSHOT`).
references:
  - https://docs.openstack.org/cinder/latest/cli/cli-manage-volumes.html
---*/
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN v.id IS NOT NULL THEN 'pass' ELSE 'fail' END AS status,
       'Volume snapshot ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN v.id IS NOT NULL THEN 'is of volume ' || coalesce(v.name, '') || ' (' || v.id || ').'
            WHEN s.volume_id IS NULL THEN 'names no volume.'
            ELSE 'is of volume ' || s.volume_id || ', which no longer exists.'
       END AS reason
FROM volume_snapshots s
LEFT JOIN volumes v ON v.id = s.volume_id
