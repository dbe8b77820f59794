/*---
title: Critical servers are locked
severity: low
resource_type: server
description: >
  Fails a server tagged as critical (a Nova server tag in `critical_tags`) that is not locked; any other
  unlocked server is reported as info, not as a failure, since locking every server would stop routine
  operations. Locked servers pass, with the lock's reason when Nova gives it (2.73+). Servers whose cell is
  down, or listed before compute API 2.26 (no tags), are skipped.
rationale: >
  A lock stops non-admin users of the project (and automation running with their credentials) from
  deleting, rebuilding, resizing or stopping the server; for a server that must not go away, it turns one
  mistaken command or script into a refused request.
remediation: >
  Lock the server, saying why (`openstack --os-compute-api-version 2.73 server lock --reason "production
  database" SERVER`), or remove the critical tag if it no longer applies
  (`openstack --os-compute-api-version 2.26 server unset --tag TAG SERVER`).
params:
  critical_tags: [critical, production]
references:
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/server.html#server-lock
---*/
WITH judged AS (
    SELECT *, coalesce(compute_api_at_least(2, 26), false) AS tags_listed FROM servers
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN down_cell OR locked IS NULL THEN 'skip'
            WHEN locked THEN 'pass'
            WHEN NOT tags_listed THEN 'skip'
            WHEN len(list_intersect(coalesce(tags, []), $critical_tags)) > 0 THEN 'fail'
            ELSE 'info' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN down_cell THEN 'is in a cell that is down: Nova gave no details.'
            WHEN locked IS NULL THEN 'does not say whether it is locked.'
            WHEN locked THEN 'is locked' || coalesce(' (' || nullif(locked_reason, '') || ')', '') || '.'
            WHEN NOT tags_listed
                THEN 'is not locked, and was listed without tags (compute API before 2.26), so whether it is critical is unknown.'
            WHEN len(list_intersect(coalesce(tags, []), $critical_tags)) > 0
                THEN 'is tagged ' || array_to_string(list_sort(list_intersect(tags, $critical_tags)), ', ')
                     || ' but not locked: any member of its project can delete or rebuild it.'
            ELSE 'is not locked (not tagged critical).'
       END AS reason
FROM judged
