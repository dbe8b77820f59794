/*---
title: Volumes are not attachable to several servers at once
severity: medium
resource_type: volume
description: >
  Fails a volume with `multiattach` on (of a volume type whose `multiattach` extra spec is `<is> True`),
  naming the servers it is attached to now. Volumes whose flag Cinder did not give are skipped.
rationale: >
  A volume attached read-write to several servers is safe only under a cluster-aware file system; with an
  ordinary one, two writers corrupt it. It also lets a compromise of one server reach data the others
  write. Multi-attach should be a deliberate, reviewed exception.
remediation: >
  Detach the volume from all servers but one, then from that one too, retype it to a type without
  multi-attach (`openstack volume set --type TYPE --retype-policy on-demand VOLUME`) and attach it to one
  server; where several servers must share data, use a shared file system service (Manila) or object
  storage. Where a cluster file system needs it, waive the finding with that reason.
references:
  - https://docs.openstack.org/cinder/latest/admin/volume-multiattach.html
---*/
SELECT v.id AS resource_id,
       v.name AS resource_name,
       v.project_id,
       CASE WHEN v.multiattach THEN 'fail' WHEN NOT v.multiattach THEN 'pass' ELSE 'skip' END AS status,
       'Volume ' || coalesce(v.name, '') || ' (' || v.id || ') ' ||
       CASE WHEN v.multiattach IS NULL THEN 'has no multi-attach flag in the listing: not judged.'
            WHEN NOT v.multiattach THEN 'cannot be attached to several servers at once.'
            WHEN coalesce(len(v.attached_server_ids), 0) = 0
                THEN 'may be attached to several servers at once (type ' || coalesce(v.volume_type, 'unknown')
                     || '); it is attached to none now.'
            ELSE 'may be attached to several servers at once (type ' || coalesce(v.volume_type, 'unknown')
                 || '); it is attached to ' || len(v.attached_server_ids) || ': '
                 || array_to_string(v.attached_server_ids, ', ') || '.'
       END AS reason
FROM volumes v
