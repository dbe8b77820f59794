/*---
title: Anti-affinity server groups spread their members over zones and hosts
severity: low
resource_type: server_group
description: >
  For anti-affinity and soft-anti-affinity server groups with two or more ACTIVE members: fails the
  group when all its active members sit in one availability zone (only when the cloud offers more than
  one available zone, `internal` not counted), or when members share a compute host (more than the
  group's `max_server_per_host` rule, 1 by default). Hosts are compared by name, or by Nova's per-project
  hostId when host names are not visible. Groups with fewer than two active members are skipped.
  Affinity and soft-affinity groups are reported as info: their members share a host by design.
rationale: >
  An anti-affinity group says its members must not fail together. Soft anti-affinity is best effort
  (members land on one host when the scheduler finds no other), forced migrations and evacuations can
  crowd even a hard anti-affinity group, and neither policy separates zones: members all in one zone
  stop together when the zone does.
remediation: >
  Move the crowded members: a cold migration lets the scheduler apply the group's policy again
  (`openstack server migrate SERVER`, then `openstack server resize confirm SERVER`). To spread over
  zones, rebuild members in other zones with the group hint
  (`openstack server create --availability-zone az-2 --hint group=GROUP_ID ...`) and delete the old ones.
references:
  - https://docs.openstack.org/nova/latest/admin/availability-zones.html
  - https://docs.openstack.org/api-ref/compute/#server-groups-os-server-groups
---*/
WITH offered AS (
    -- zones a server can be placed in; nova's `internal` zone holds services, not instances
    SELECT count(*) AS zones FROM availability_zones WHERE available AND name <> 'internal'
),
spreading AS (
    SELECT id, coalesce(try_cast(rules ->> 'max_server_per_host' AS INTEGER), 1) AS per_host
    FROM server_groups
    WHERE policy IN ('anti-affinity', 'soft-anti-affinity')
),
members AS (
    SELECT m.group_id, s.id, s.name, s.availability_zone,
           coalesce(s.host, nullif(s.host_id, '')) AS host_key,
           coalesce(s.host, 'hostId ' || nullif(s.host_id, '')) AS host_label
    FROM (SELECT id AS group_id, unnest(members) AS server_id FROM server_groups
          WHERE id IN (SELECT id FROM spreading)) m
    JOIN servers s ON s.id = m.server_id
    WHERE s.status = 'ACTIVE'
),
crowded AS (
    SELECT group_id,
           string_agg(host_label || ' (' || names || ')', '; ' ORDER BY host_label) AS hosts
    FROM (
        SELECT mb.group_id, mb.host_label, a.per_host,
               string_agg(coalesce(mb.name, mb.id), ', ' ORDER BY mb.name, mb.id) AS names,
               count(*) AS n
        FROM members mb
        JOIN spreading a ON a.id = mb.group_id
        WHERE mb.host_key IS NOT NULL
        GROUP BY mb.group_id, mb.host_key, mb.host_label, a.per_host
    )
    WHERE n > per_host
    GROUP BY group_id
),
spread AS (
    SELECT group_id,
           count(*) AS active_members,
           count(DISTINCT availability_zone) AS zones,
           count(*) FILTER (WHERE availability_zone IS NULL) AS unknown_zone,
           count(*) FILTER (WHERE host_key IS NULL) AS unknown_host,
           count(DISTINCT host_key) AS hosts,
           string_agg(DISTINCT availability_zone, ', ' ORDER BY availability_zone) AS zone_names
    FROM members
    GROUP BY group_id
),
judged AS (
    SELECT g.id, g.name, g.project_id, g.policy, len(g.members) AS member_count,
           coalesce(sp.active_members, 0) AS active_members, sp.zones, sp.unknown_zone, sp.unknown_host,
           sp.hosts, sp.zone_names, c.hosts AS crowded_hosts, a.per_host,
           o.zones AS offered_zones,
           o.zones >= 2 AND sp.zones = 1 AND sp.unknown_zone = 0 AS one_zone
    FROM server_groups g
    CROSS JOIN offered o  -- one row
    LEFT JOIN spreading a ON a.id = g.id
    LEFT JOIN spread sp ON sp.group_id = g.id
    LEFT JOIN crowded c ON c.group_id = g.id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN policy IN ('affinity', 'soft-affinity') THEN 'info'
            WHEN per_host IS NULL THEN 'skip'
            WHEN active_members < 2 THEN 'skip'
            WHEN one_zone OR crowded_hosts IS NOT NULL THEN 'fail'
            WHEN unknown_host > 0 OR (offered_zones >= 2 AND zones < 2) THEN 'skip'
            ELSE 'pass' END AS status,
       'Server group ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN policy IN ('affinity', 'soft-affinity')
                THEN 'has policy ' || policy || ' (' || coalesce(member_count, 0) || ' members): its members share '
                     || 'a host by design, so one host failure stops them all.'
            WHEN per_host IS NULL THEN 'has an unknown policy (' || coalesce(policy, 'none') || ').'
            WHEN active_members < 2
                THEN 'has ' || active_members || ' active member' || CASE WHEN active_members = 1 THEN '' ELSE 's' END
                     || ', fewer than 2: nothing to spread.'
            WHEN one_zone OR crowded_hosts IS NOT NULL
                THEN 'has policy ' || policy || ' but ' || concat_ws(', and ',
                     CASE WHEN one_zone THEN 'all ' || active_members || ' active members are in zone ' || zone_names END,
                     CASE WHEN crowded_hosts IS NOT NULL
                          THEN 'more than ' || per_host || ' member' || CASE WHEN per_host = 1 THEN '' ELSE 's' END
                               || ' share a host: ' || crowded_hosts END) || '.'
            WHEN unknown_host > 0 THEN 'has ' || unknown_host || ' active members on an unknown host: its spread '
                 || 'cannot be judged.'
            WHEN offered_zones >= 2 AND zones < 2
                THEN 'has ' || unknown_zone || ' active members in an unknown zone: its spread cannot be judged.'
            ELSE 'spreads its ' || active_members || ' active members over ' || hosts || ' hosts and ' || zones
                 || ' zone' || CASE WHEN zones = 1 THEN '' ELSE 's' END || ' (' || coalesce(zone_names, 'unknown') || ')'
                 || CASE WHEN offered_zones < 2 THEN ', the cloud offering a single zone' ELSE '' END || '.'
       END AS reason
FROM judged
