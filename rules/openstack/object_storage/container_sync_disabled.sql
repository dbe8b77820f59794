/*---
title: Containers are not synced to another cluster
severity: medium
resource_type: container
description: >
  Fails a Swift container that takes part in container sync: one with `X-Container-Sync-To` copies every
  object to that container of another cluster; one with a sync key and no target accepts objects pushed by
  a cluster of the sync realm (or an allowed sync host) that knows the key. A container in neither role passes.
rationale: >
  Sync sends the data outside this cluster's controls (its ACLs, its region, its retention) and keeps a
  shared secret in both places; an unreviewed sync target is an exfiltration path, and a leaked key lets
  others write into the container.
remediation: >
  Remove sync if it is not a reviewed replication (`swift post -t '' -k '' CONTAINER`); where it is, waive
  the finding with the reason and rotate the sync key (`swift post -k NEW_KEY CONTAINER` on both sides).
references:
  - https://docs.openstack.org/swift/latest/overview_container_sync.html
---*/
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN coalesce(sync_to, '') <> '' OR sync_key_set THEN 'fail' ELSE 'pass' END AS status,
       'Container ' || name || ' ' ||
       CASE WHEN coalesce(sync_to, '') <> '' THEN 'copies its objects to ' || sync_to || ' (container sync).'
            WHEN sync_key_set THEN 'has a sync key and no target: it accepts objects synced from a cluster that knows the key.'
            ELSE 'is not synced.'
       END AS reason
FROM containers
