/*---
title: Deployments spread their servers over several availability zones
severity: medium
resource_type: deployment
description: >
  Groups servers into deployments and fails a deployment whose active servers (two or more) all sit in
  one availability zone, when the cloud offers more than one zone. A server belongs to the deployment
  named by its metadata key deployment_key (a plain key name, default `deployment`; deployments are per
  project); a server without that key belongs to its server group (the one with the smallest id if it
  is in several); any other server belongs to its project's catch-all group. Groups with fewer than two
  ACTIVE servers are skipped (nothing to spread), and so is every group when the cloud offers a single
  available zone (zone `internal`, which holds no instances, is not counted).
rationale: >
  An availability zone is the unit of failure a cloud promises to isolate: power, cooling, network or a
  bad upgrade can stop a whole zone. A service whose replicas all run in one zone goes down with it,
  however many replicas it has.
remediation: >
  Move one or more of the deployment's servers to another zone, for instance by shelving and unshelving
  it there (`openstack server shelve SERVER`, then
  `openstack --os-compute-api-version 2.77 server unshelve --availability-zone az-2 SERVER`), or replace
  it with a server built in another zone (`openstack server create --availability-zone az-2 ...`).
  Tag servers with their deployment (`openstack server set --property deployment=NAME SERVER`) so that
  unrelated servers are not judged together.
params:
  deployment_key: deployment
references:
  - https://docs.openstack.org/nova/latest/admin/availability-zones.html
---*/
WITH offered AS (
    -- zones a server can be placed in; nova's `internal` zone holds services, not instances
    SELECT count(*) AS zones FROM availability_zones WHERE available AND name <> 'internal'
),
memberships AS (
    SELECT server_id, min(group_id) AS group_id, first(group_name ORDER BY group_id) AS group_name
    FROM (SELECT id AS group_id, name AS group_name, unnest(members) AS server_id FROM server_groups)
    GROUP BY server_id
),
keyed AS (
    SELECT s.id, s.name, s.project_id, s.status = 'ACTIVE' AS active, s.availability_zone,
           nullif(trim(s.metadata ->> $deployment_key), '') AS deployment,
           m.group_id, m.group_name
    FROM servers s
    LEFT JOIN memberships m ON m.server_id = s.id
),
grouped AS (
    SELECT CASE WHEN deployment IS NOT NULL THEN 'deployment:' || coalesce(project_id, '') || ':' || deployment
                WHEN group_id IS NOT NULL THEN 'server_group:' || group_id
                ELSE 'project:' || coalesce(project_id, '') END AS resource_id,
           CASE WHEN deployment IS NOT NULL THEN 'deployment'
                WHEN group_id IS NOT NULL THEN 'server_group'
                ELSE 'project' END AS kind,
           CASE WHEN deployment IS NOT NULL THEN deployment ELSE group_name END AS label,
           *
    FROM keyed
),
groups AS (
    SELECT resource_id, kind,
           min(label) AS label,
           min(project_id) AS project_id,
           count(*) FILTER (WHERE active) AS active_servers,
           count(DISTINCT availability_zone) FILTER (WHERE active) AS zones,
           count(*) FILTER (WHERE active AND availability_zone IS NULL) AS unknown_zone,
           string_agg(DISTINCT availability_zone, ', ' ORDER BY availability_zone) FILTER (WHERE active) AS zone_names,
           list(coalesce(name, id) ORDER BY name, id) FILTER (WHERE active) AS server_names
    FROM grouped
    GROUP BY resource_id, kind
)
SELECT g.resource_id,
       CASE WHEN g.kind = 'project' THEN coalesce(p.name, g.project_id) ELSE g.label END AS resource_name,
       g.project_id,
       CASE WHEN g.active_servers < 2 THEN 'skip'
            WHEN o.zones < 2 THEN 'skip'
            WHEN g.zones >= 2 THEN 'pass'
            WHEN g.unknown_zone > 0 THEN 'skip'
            ELSE 'fail' END AS status,
       CASE g.kind
            WHEN 'deployment' THEN 'Deployment ' || g.label || ' (' || g.resource_id || ')'
            WHEN 'server_group' THEN 'Server group ' || coalesce(g.label, '') || ' (' || g.resource_id || ')'
            ELSE 'Project ' || coalesce(p.name, '') || ' (' || g.resource_id || '), counting its servers with no '
                 || $deployment_key || ' metadata and no server group,'
       END || ' ' ||
       CASE WHEN g.active_servers < 2
                THEN 'has ' || g.active_servers || ' active server' || CASE WHEN g.active_servers = 1 THEN '' ELSE 's' END
                     || ', fewer than 2 active servers: nothing to spread.'
            WHEN o.zones < 2
                THEN 'was not judged: the cloud offers ' || o.zones || ' available zone'
                     || CASE WHEN o.zones = 1 THEN '' ELSE 's' END || ', nothing to spread over.'
            WHEN g.zones >= 2
                THEN 'spreads its ' || g.active_servers || ' active servers over ' || g.zones || ' zones: '
                     || g.zone_names || '.'
            WHEN g.unknown_zone > 0
                THEN 'has ' || g.unknown_zone || ' active servers in an unknown zone: its spread cannot be judged.'
            ELSE 'has all ' || g.active_servers || ' active servers in zone ' || g.zone_names || ': '
                 || array_to_string(list_slice(g.server_names, 1, 5), ', ')
                 || CASE WHEN g.active_servers > 5 THEN ' and ' || (g.active_servers - 5) || ' more' ELSE '' END || '.'
       END AS reason
FROM groups g
CROSS JOIN offered o  -- one row
LEFT JOIN projects p ON p.id = g.project_id
