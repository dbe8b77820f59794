/*---
title: Only approved publishers share images publicly
severity: high
resource_type: image
description: >
  Fails a public or community image owned by a project that is not an approved publisher
  (approved_owner_projects, matched against the owner project's id or name), unless the image itself is
  approved (approved_images, matched against its id or name). An image owned by a project missing from
  the project list fails too; a public image with no owner at all (set so by an operator) passes.
  Private and shared images pass. In a snapshot limited to some projects, public and community images
  owned by other projects are skipped (unless approved by id): their owner's name cannot be checked. An empty string in
  approved_images approves nothing: the default [""] means no image is approved one by one.
rationale: >
  Every project of the cloud can boot a public or community image. A tenant's image made public can leak
  its data, credentials or licensed software (an evaluation Windows image) to everyone, and a tenant can
  publish a trojaned image under a trusted-looking name for others to boot.
remediation: >
  Make the image private (`openstack image set --private IMAGE`), or share it with the projects that need
  it (`openstack image set --shared IMAGE`, then `openstack image add project IMAGE PROJECT`). If the
  project is meant to publish images, add it to approved_owner_projects; to approve one image, add its
  id or name to approved_images.
params:
  approved_owner_projects: [admin, service]
  approved_images: [""]
references:
  - https://docs.openstack.org/glance/latest/admin/manage-images.html
  - https://docs.openstack.org/api-ref/image/v2/
---*/
WITH scope AS (
    SELECT scope = 'projects' AS limited, coalesce(scope_project_ids, []) AS project_ids FROM snapshot
),
judged AS (
    SELECT i.id, i.name, i.project_id, i.visibility,
           p.id IS NOT NULL AS owner_known,
           coalesce(p.name, '') AS owner_name,
           list_contains(list_filter($approved_images, lambda a: a <> ''), i.id)
               OR list_contains(list_filter($approved_images, lambda a: a <> ''), i.name) AS image_approved,
           list_contains($approved_owner_projects, i.project_id)
               OR list_contains($approved_owner_projects, p.name) AS owner_approved,
           sc.limited AND NOT list_contains(sc.project_ids, i.project_id) AS out_of_scope
    FROM images i
    CROSS JOIN scope sc  -- one row
    LEFT JOIN projects p ON p.id = i.project_id
),
verdicts AS (
    SELECT *,
           CASE WHEN visibility IN ('private', 'shared') THEN 'pass'
                WHEN visibility NOT IN ('public', 'community') OR visibility IS NULL THEN 'skip'
                WHEN image_approved OR project_id IS NULL OR owner_approved THEN 'pass'
                WHEN out_of_scope THEN 'skip'
                ELSE 'fail' END AS status
    FROM judged
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN visibility IN ('private', 'shared') THEN 'is ' || visibility || ', not visible to every project.'
            WHEN visibility NOT IN ('public', 'community') OR visibility IS NULL
                THEN 'has an unknown visibility (' || coalesce(visibility, 'none') || ').'
            WHEN image_approved THEN 'is ' || visibility || ' and approved by id or name.'
            WHEN project_id IS NULL THEN 'is ' || visibility || ' and has no owner project (set by an operator).'
            WHEN owner_approved
                THEN 'is ' || visibility || ', owned by approved project ' || owner_name || ' (' || project_id || ').'
            WHEN out_of_scope
                THEN 'is ' || visibility || ', owned by project ' || project_id
                     || ', outside this snapshot''s projects: its owner cannot be checked.'
            WHEN NOT owner_known
                THEN 'is ' || visibility || ' and owned by unknown project ' || project_id || '.'
            ELSE 'is ' || visibility || ', owned by project ' || owner_name || ' (' || project_id
                 || '), which is not an approved image publisher.'
       END AS reason
FROM verdicts
