/*---
title: Images other projects boot from are protected
severity: low
resource_type: image
description: >
  Fails an active or deactivated image visible to other projects (public, community or shared) that is
  not protected. Protected images pass. A private image is info: protecting it is its owner's choice.
  Images still uploading, queued or being deleted are not judged; one whose status or visibility is
  missing or unknown is skipped.
rationale: >
  Other projects build, rebuild, resize and evacuate servers from a shared image. If it is deleted, by
  mistake or by a cleanup script, their rebuilds and evacuations fail, and a new image uploaded under the
  same name may be booted in its place without anyone noticing. A protected image cannot be deleted
  until someone turns protection off on purpose.
remediation: >
  Protect the image (`openstack image set --protected IMAGE`); turn protection off only to retire it
  (`openstack image set --unprotected IMAGE`, then delete it).
references:
  - https://docs.openstack.org/glance/latest/admin/manage-images.html
  - https://docs.openstack.org/api-ref/image/v2/#update-image
---*/
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN protected IS NULL OR status IS NULL THEN 'skip'
            WHEN protected THEN 'pass'
            WHEN visibility IN ('public', 'community', 'shared') THEN 'fail'
            WHEN visibility = 'private' THEN 'info'
            ELSE 'skip' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN protected IS NULL THEN 'does not say whether it is protected.'
            WHEN status IS NULL THEN 'does not say its status.'
            WHEN protected THEN 'is protected.'
            WHEN visibility IN ('public', 'community', 'shared')
                THEN 'is ' || visibility || ' but not protected: anyone with its owner''s rights can delete it from under '
                     || 'the servers of other projects.'
            WHEN visibility = 'private' THEN 'is private and not protected.'
            ELSE 'is not protected, and its visibility (' || coalesce(visibility, 'not given')
                 || ') does not say who boots from it.'
       END AS reason
FROM images
WHERE status IS NULL OR status IN ('active', 'deactivated')
