/*---
title: The admin role is held in the admin project only
severity: critical
resource_type: user
description: >
  Fails a user holding an administrative role (`admin_roles`) on a project other than the cloud's admin
  projects (`admin_projects`: names in the default domain, or ids) or on a domain, and names each such
  grant; disabled users included, since enabling them restores it. Users that hold it on an admin project
  or with system scope only pass, as do users without it.
rationale: >
  Keystone's admin role is global under the default policies: a token with `admin` on any project, however
  small, is a cloud administrator's token, valid for every project, every hypervisor and Keystone itself.
  Handing `admin` to a tenant's lead "for their own project" hands over the whole cloud; the project a
  grant names does not limit it.
remediation: >
  Remove the role (`openstack role remove --user USER --project PROJECT admin`) and give the tenant
  `member` (or `manager`, where the deployment's policies define it) instead; keep `admin` to the
  operators, on the admin project or with system scope.
params:
  admin_roles: [admin]
  admin_projects: [admin]
references:
  - https://docs.openstack.org/keystone/latest/admin/service-api-protection.html
  - https://bugs.launchpad.net/keystone/+bug/968696
---*/
WITH elsewhere AS (
    SELECT user_id,
           string_agg(coalesce(role_name, role_id) || ' on ' ||
                      CASE WHEN scope_type = 'project' THEN 'project ' || coalesce(project_name, project_id)
                           ELSE 'domain ' || coalesce(domain_name, domain_id) END, ', ' ORDER BY id) AS grants
    FROM role_assignments
    WHERE list_contains($admin_roles, role_name)
      AND (scope_type = 'domain'
           OR (scope_type = 'project'
               AND NOT coalesce(list_contains($admin_projects, project_id)
                                OR (list_contains($admin_projects, project_name) AND domain_id = 'default'), false)))
    GROUP BY user_id
),
anywhere AS (
    SELECT DISTINCT user_id FROM role_assignments WHERE list_contains($admin_roles, role_name)
)
SELECT u.id AS resource_id,
       u.name AS resource_name,
       u.default_project_id AS project_id,
       CASE WHEN e.user_id IS NOT NULL THEN 'fail' ELSE 'pass' END AS status,
       'User ' || coalesce(u.name, '') || ' (' || u.id || ') ' ||
       CASE WHEN e.user_id IS NOT NULL
                THEN 'holds ' || e.grants || ': the admin role is global, so this user administers the whole cloud.'
            WHEN a.user_id IS NOT NULL THEN 'is an administrator through the admin project or system scope only.'
            ELSE 'holds no administrative role.'
       END AS reason
FROM users u
LEFT JOIN elsewhere e ON e.user_id = u.id
LEFT JOIN anywhere a ON a.user_id = u.id
