/*---
title: Volume snapshot metadata holds no credentials
severity: high
resource_type: volume_snapshot
description: >
  Fails a volume snapshot whose metadata has a credential-like entry: the snapshot writer keeps such keys
  (names like password, secret, token, api_key, or values that look like private keys and access tokens)
  and replaces their value with "[REDACTED]", so this rule fails a volume snapshot with any metadata value
  equal to "[REDACTED]" and names the keys, never a value.
rationale: >
  Snapshot metadata is readable by every user of the project through the block-storage API and outlives
  the volume's own metadata; a credential there should be considered exposed.
remediation: >
  Remove the key (`openstack volume snapshot unset --property KEY SNAPSHOT`), rotate the credential it held,
  and keep secrets in a secret store such as Barbican (`openstack secret store`).
references:
  - https://docs.openstack.org/cinder/latest/cli/cli-manage-volumes.html
---*/
WITH judged AS (
    SELECT *, redacted_keys(metadata) AS keys FROM volume_snapshots
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN len(keys) > 0 THEN 'fail' ELSE 'pass' END AS status,
       'Volume snapshot ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN len(keys) > 0
                THEN 'has credential-like metadata: ' || array_to_string(keys, ', ')
                     || ' (value redacted in the snapshot).'
            WHEN metadata IS NULL OR coalesce(len(json_keys(metadata)), 0) = 0 THEN 'has no metadata.'
            ELSE 'has no credential-like metadata.'
       END AS reason
FROM judged
