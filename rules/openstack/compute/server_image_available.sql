/*---
title: Servers boot from an image that is still available
severity: medium
resource_type: server
description: >
  Fails a server whose boot image is not in the snapshot's image list (deleted, or not visible to the
  auditor's credentials) or is listed with a status other than active (deactivated, queued, saving,
  killed, deleted, pending_delete, ...). A boot-from-volume server (no image) passes when it has an
  attached volume and fails when it has none. Servers of an unreachable cell, whose details are unknown,
  are skipped, as are boot-from-volume servers whose attached volumes Nova did not list.
rationale: >
  Nova goes back to the boot image to rebuild a server, to evacuate it from a failed host and to migrate or
  resize it to a host that has no cached copy of its base image. When the image is gone or deactivated
  those operations fail at the worst moment, and a deactivated image is usually one withdrawn because it
  is obsolete or vulnerable, so the server still runs software its owners decided to retire.
remediation: >
  Rebuild or redeploy the server from a current active image (`openstack server rebuild --image IMAGE
  SERVER`; a rebuild replaces the root disk, so keep data on volumes first), or, if the image was withdrawn
  by mistake, make it available again (`openstack image reactivate IMAGE`, admin). To keep an exact copy
  of the server's current disk, snapshot it first: `openstack server image create --name NAME SERVER`.
references:
  - https://docs.openstack.org/glance/latest/admin/manage-images.html
  - https://docs.openstack.org/nova/latest/user/rebuild.html
---*/
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN s.down_cell THEN 'skip'
            WHEN s.image_id IS NULL OR s.boot_from_volume THEN
                CASE WHEN s.volumes_attached IS NULL THEN 'skip'
                     WHEN len(s.volumes_attached) > 0 THEN 'pass'
                     ELSE 'fail' END
            WHEN i.id IS NULL THEN 'fail'
            WHEN i.status = 'active' THEN 'pass'
            ELSE 'fail' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN s.down_cell
                THEN 'is in a cell that did not answer: its boot image is not known.'
            WHEN s.image_id IS NULL OR s.boot_from_volume THEN
                CASE WHEN s.volumes_attached IS NULL
                         THEN 'boots from volume, but Nova did not list its attached volumes.'
                     WHEN len(s.volumes_attached) > 0
                         THEN 'boots from volume (' || len(s.volumes_attached) || ' attached volume(s)).'
                     ELSE 'has no boot image and no attached volume: its root disk is gone.' END
            WHEN i.id IS NULL
                THEN 'boots from image ' || s.image_id || ', not found: deleted or not visible.'
            WHEN i.status = 'active'
                THEN 'boots from image ' || coalesce(i.name, '') || ' (' || i.id || '), which is active.'
            ELSE 'boots from image ' || coalesce(i.name, '') || ' (' || i.id || '), whose status is '
                 || coalesce(i.status, 'unknown') || '.'
       END AS reason
FROM servers s
LEFT JOIN images i ON i.id = s.image_id
