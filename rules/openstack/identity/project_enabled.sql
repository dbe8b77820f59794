/*---
title: Disabled projects hold no running resources
severity: medium
resource_type: project
description: >
  Fails a disabled project that still holds servers or floating IPs, and counts them. Enabled projects
  pass; a disabled project that holds neither is info (a project retired properly, kept for its records).
rationale: >
  Disabling a project stops its members from getting tokens for it, not its servers: they keep running,
  keep their floating IPs and keep listening, while nobody in the project can patch, stop or delete them.
  Such servers are exposure without an owner. (A disabled project with nothing in it is only clutter.)
remediation: >
  Decide who owns the resources: re-enable the project (`openstack project set --enable PROJECT`) while its
  team cleans up, or have an operator delete its servers and release its floating IPs (`openstack server
  delete`, `openstack floating ip delete`) before leaving it disabled.
references:
  - https://docs.openstack.org/keystone/latest/admin/cli-manage-projects-users-and-roles.html
---*/
WITH held AS (
    SELECT project_id, count(*) FILTER (WHERE kind = 'server') AS servers,
           count(*) FILTER (WHERE kind = 'floating_ip') AS floating_ips
    FROM (SELECT project_id, 'server' AS kind FROM servers
          UNION ALL SELECT project_id, 'floating_ip' FROM floating_ips)
    GROUP BY project_id
)
SELECT p.id AS resource_id,
       p.name AS resource_name,
       p.id AS project_id,
       CASE WHEN p.enabled IS NULL THEN 'skip'
            WHEN p.enabled THEN 'pass'
            WHEN coalesce(h.servers, 0) + coalesce(h.floating_ips, 0) > 0 THEN 'fail'
            ELSE 'info' END AS status,
       'Project ' || coalesce(p.name, '') || ' (' || p.id || ') ' ||
       CASE WHEN p.enabled IS NULL THEN 'does not say whether it is enabled.'
            WHEN p.enabled THEN 'is enabled.'
            WHEN coalesce(h.servers, 0) + coalesce(h.floating_ips, 0) > 0
                THEN 'is disabled but still holds ' || coalesce(h.servers, 0) || ' server'
                     || CASE WHEN coalesce(h.servers, 0) = 1 THEN '' ELSE 's' END || ' and '
                     || coalesce(h.floating_ips, 0) || ' floating IP'
                     || CASE WHEN coalesce(h.floating_ips, 0) = 1 THEN '' ELSE 's' END
                     || ', which stay in place (and servers not stopped keep running) while nobody in the project '
                     || 'can manage them.'
            ELSE 'is disabled and holds no server or floating IP.'
       END AS reason
FROM projects p
LEFT JOIN held h ON h.project_id = p.id
