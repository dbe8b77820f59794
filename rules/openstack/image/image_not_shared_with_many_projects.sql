/*---
title: Shared images are shared with few projects
severity: medium
resource_type: image
description: >
  Fails an active or deactivated shared image (visibility `shared`) whose member list names more than
  max_members projects (default 5). Every member counts, whatever its answer: the member status only
  decides whether the image shows in the member's image list, and a pending or rejected member still boots
  it by id. Other visibilities are not judged here (public and community images:
  image_not_public_unless_approved). Glance shows an image's members to its owner and to admins only, so in
  a snapshot of scope `projects` a shared image owned by a project outside the scope is skipped.
rationale: >
  Sharing an image with a project gives every user of that project its contents: the software, and
  whatever was left in the image (keys, configuration, data). A wide member list is hard to review and
  rarely needed: an image many projects need is better published by the operators, and an image shared
  project by project tends to stay shared with projects that no longer need it.
remediation: >
  Review the members (`openstack image member list IMAGE`) and remove the projects that do not need the
  image (`openstack image remove project IMAGE PROJECT`). An image every project needs should be published
  by the cloud's operators as a public image instead.
params:
  max_members: 5
references:
  - https://docs.openstack.org/glance/latest/admin/manage-images.html
  - https://docs.openstack.org/api-ref/image/v2/#sharing
---*/
WITH counted AS (
    SELECT image_id,
           count(*) AS members,
           count(*) FILTER (WHERE status = 'accepted') AS accepted,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status NOT IN ('accepted', 'pending') OR status IS NULL) AS other
    FROM image_members
    GROUP BY image_id
)
SELECT i.id AS resource_id,
       i.name AS resource_name,
       i.project_id,
       CASE WHEN s.scope = 'projects' AND NOT coalesce(list_contains(s.scope_project_ids, i.project_id), false)
                THEN 'skip'
            WHEN coalesce(c.members, 0) > $max_members THEN 'fail'
            ELSE 'pass' END AS status,
       'Image ' || coalesce(i.name, '') || ' (' || i.id || ') ' ||
       CASE WHEN s.scope = 'projects' AND NOT coalesce(list_contains(s.scope_project_ids, i.project_id), false)
                THEN 'belongs to project ' || coalesce(i.project_id, 'unknown')
                     || ', outside this snapshot''s projects: Glance shows its members to its owner and admins only.'
            WHEN coalesce(c.members, 0) = 0 THEN 'is shared with no project yet.'
            ELSE 'is shared with ' || c.members || ' project' || CASE WHEN c.members = 1 THEN '' ELSE 's' END
                 || ' (' || c.accepted || ' accepted, ' || c.pending || ' pending, ' || c.other || ' rejected or other)'
                 || CASE WHEN c.members > $max_members
                         THEN ', more than ' || $max_members || ': each of their users can boot it and read its contents.'
                         ELSE '.' END
       END AS reason
FROM images i
CROSS JOIN snapshot s
LEFT JOIN counted c ON c.image_id = i.id
WHERE i.visibility = 'shared'
  AND (i.status IS NULL OR i.status IN ('active', 'deactivated'))
