/*---
title: Volumes are in use
severity: low
resource_type: volume
description: >
  Fails a volume that no server uses: `available` with no attachment, a volume in an error state
  (`error`, `error_restoring`, ...) with no attachment, and a volume whose attachments all name servers
  that no longer exist. A volume attached to any server passes, a stopped one included; so does one
  `reserved` for a server (Cinder's state for the volumes of a shelved-offloaded server, which lists no
  attachment then). A volume in the middle of an
  operation (creating, attaching, uploading, ...) is info, not judged.
rationale: >
  A volume nobody uses still holds its data, often copied from a server long gone, and costs storage and
  quota. Nobody patches, watches or deletes it: it is where forgotten data leaks from. A volume stuck in an
  error state is the same, and also hides a failure nobody followed up.
remediation: >
  Find its owner (`openstack volume show VOLUME`), then attach it to the server that needs it
  (`openstack server add volume SERVER VOLUME`), or back it up if it must be kept
  (`openstack volume backup create VOLUME`) and delete it (`openstack volume delete VOLUME`). For a
  volume attached to a deleted server, ask an operator to remove the attachment
  (`openstack --os-volume-api-version 3.27 volume attachment delete ATTACHMENT`), then decide the same.
references:
  - https://docs.openstack.org/cinder/latest/cli/cli-manage-volumes.html
---*/
WITH to_existing AS (
    SELECT a.id, count(s.id) AS servers
    FROM (SELECT id, unnest(attached_server_ids) AS server_id FROM volumes) a
    LEFT JOIN servers s ON s.id = a.server_id
    GROUP BY a.id
), judged AS (
    SELECT v.*,
           coalesce(len(v.attached_server_ids), 0) AS attached_count,
           coalesce(e.servers, 0) AS to_existing_servers
    FROM volumes v
    LEFT JOIN to_existing e ON e.id = v.id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN attached_count > 0 AND to_existing_servers > 0 THEN 'pass'
            WHEN attached_count > 0 THEN 'fail'
            WHEN status = 'reserved' THEN 'pass'
            WHEN status = 'available' OR status LIKE 'error%' THEN 'fail'
            ELSE 'info' END AS status,
       'Volume ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN attached_count > 0 AND to_existing_servers > 0
                THEN 'is attached to ' || array_to_string(attached_server_ids, ', ') || '.'
            WHEN attached_count > 0
                THEN 'is attached only to servers that no longer exist: ' || array_to_string(attached_server_ids, ', ') || '.'
            WHEN status = 'reserved' THEN 'is reserved for a server.'
            WHEN status = 'available' THEN 'is attached to no server.'
            WHEN status LIKE 'error%' THEN 'is in state ' || status || ' and attached to no server.'
            ELSE 'is ' || coalesce(status, 'in no known state') || ': not judged.'
       END AS reason
FROM judged
