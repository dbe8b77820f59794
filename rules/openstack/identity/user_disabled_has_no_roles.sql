/*---
title: Disabled users hold no roles
severity: medium
resource_type: user
description: >
  Fails a disabled user that still holds a role (effective role assignments: group memberships, inherited
  and implied roles included, so `admin` may bring `member` and `reader` along) and names where. Disabled
  users without roles pass; a user that does not say whether it is enabled is skipped; enabled users are
  not judged here.
rationale: >
  Disabling a user is often the first half of an offboarding that never finishes. The roles stay, so one
  `openstack user set --enable` (by mistake, by a script that re-syncs users, or by whoever gets admin
  rights) restores every access the person had. A disabled user should hold nothing to restore.
remediation: >
  Remove the user's roles (`openstack role assignment list --user USER --names`, then `openstack role
  remove --user USER --project PROJECT ROLE` for each, or remove the user from its groups), or delete the
  user if it is gone for good (`openstack user delete USER`).
references:
  - https://docs.openstack.org/keystone/latest/admin/cli-manage-projects-users-and-roles.html
---*/
WITH held AS (
    SELECT user_id, count(*) AS roles,
           string_agg(coalesce(role_name, role_id) || ' on ' ||
                      CASE scope_type WHEN 'project' THEN 'project ' || coalesce(project_name, project_id)
                                      WHEN 'domain' THEN 'domain ' || coalesce(domain_name, domain_id)
                                      ELSE 'the system' END, ', ' ORDER BY id) AS grants
    FROM role_assignments
    GROUP BY user_id
)
SELECT u.id AS resource_id,
       u.name AS resource_name,
       u.default_project_id AS project_id,
       CASE WHEN u.enabled IS NULL THEN 'skip' WHEN h.user_id IS NULL THEN 'pass' ELSE 'fail' END AS status,
       'User ' || coalesce(u.name, '') || ' (' || u.id || ') ' ||
       CASE WHEN u.enabled IS NULL THEN 'does not say whether it is enabled.'
            WHEN h.user_id IS NULL THEN 'is disabled and holds no role.'
            ELSE 'is disabled but still holds ' || h.roles || ' role' || CASE WHEN h.roles = 1 THEN '' ELSE 's' END
                 || ': ' || h.grants || '.'
       END AS reason
FROM users u
LEFT JOIN held h ON h.user_id = u.id
WHERE u.enabled IS NOT true
