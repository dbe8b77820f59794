/*---
title: The admin role is held in the admin project only
severity: critical
resource_type: user
description: >
  Fails a user holding an administrative role (`admin_roles`, compared without case as oslo.policy does)
  on a project other than the cloud's admin projects (`admin_projects`) and service projects
  (`service_projects`), or on a domain, and names each such grant; disabled users included, since
  enabling them restores it. Project names are matched in the default domain; ids anywhere. A user whose
  admin grants are all on service projects (the accounts of Nova, Neutron and the other services, which
  need it) is info; users that hold it on an admin project or with system scope only pass, as do users
  without it.
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
  service_projects: [service]
references:
  - https://docs.openstack.org/keystone/latest/admin/service-api-protection.html
  - https://bugs.launchpad.net/keystone/+bug/968696
---*/
WITH admin_grants AS (
    SELECT user_id, id, role_name, role_id, scope_type, project_id, project_name, domain_id, domain_name,
           scope_type = 'project' AND coalesce(list_contains($admin_projects, project_id)
               OR (list_contains($admin_projects, project_name) AND domain_id = 'default'), false) AS on_admin,
           scope_type = 'project' AND coalesce(list_contains($service_projects, project_id)
               OR (list_contains($service_projects, project_name) AND domain_id = 'default'), false) AS on_service
    FROM role_assignments
    WHERE list_contains(list_transform($admin_roles, lambda r: lower(r)), lower(role_name))
),
by_user AS (
    SELECT user_id,
           string_agg(coalesce(role_name, role_id) || ' on ' ||
                      CASE WHEN scope_type = 'project' THEN 'project ' || coalesce(project_name, project_id)
                           ELSE 'domain ' || coalesce(domain_name, domain_id) END, ', ' ORDER BY id)
               FILTER (WHERE scope_type IN ('project', 'domain') AND NOT on_admin AND NOT on_service) AS elsewhere,
           bool_or(on_service) AS service,
           bool_or(on_admin OR scope_type = 'system') AS operator
    FROM admin_grants
    GROUP BY user_id
)
SELECT u.id AS resource_id,
       u.name AS resource_name,
       u.default_project_id AS project_id,
       CASE WHEN b.elsewhere IS NOT NULL THEN 'fail'
            WHEN b.service AND NOT b.operator THEN 'info'
            ELSE 'pass' END AS status,
       'User ' || coalesce(u.name, '') || ' (' || u.id || ') ' ||
       CASE WHEN b.elsewhere IS NOT NULL
                THEN 'holds ' || b.elsewhere || ': the admin role is global, so this user administers the whole cloud.'
            WHEN b.service AND NOT b.operator
                THEN 'is a service account with admin on a service project, as OpenStack services need: it '
                     || 'administers the whole cloud, so its password belongs in the services'' configuration only.'
            WHEN b.user_id IS NOT NULL THEN 'is an administrator through the admin or service projects or system scope only.'
            ELSE 'holds no administrative role.'
       END AS reason
FROM users u
LEFT JOIN by_user b ON b.user_id = u.id
