/*---
title: Container metadata holds no credentials
severity: high
resource_type: container
description: >
  Fails a Swift container whose metadata (`X-Container-Meta-*`) has a credential-like entry: the snapshot
  writer keeps such keys (names like password, secret, token, api_key, or values that look like private
  keys and access tokens) and replaces their value with "[REDACTED]", so this rule fails a container with
  any such value and names the keys, never a value. The temp-URL keys are Swift's own and are not judged
  here (the snapshot records only whether one is set).
rationale: >
  Container metadata is returned with a HEAD of the container to everyone who may list it: the project,
  the entries of its read ACL, and anyone at all when the ACL makes its listing public. A credential there
  should be considered exposed.
remediation: >
  Remove the key (`swift post -H 'X-Remove-Container-Meta-NAME: x' CONTAINER`), rotate the credential it
  held, and keep secrets in a secret store such as Barbican (`openstack secret store`).
references:
  - https://docs.openstack.org/swift/latest/api/object_api_v1_overview.html
---*/
WITH judged AS (SELECT *, redacted_keys(metadata) AS keys FROM containers)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN len(keys) > 0 THEN 'fail' ELSE 'pass' END AS status,
       'Container ' || name || ' ' ||
       CASE WHEN len(keys) > 0
                THEN 'has credential-like metadata: ' || array_to_string(keys, ', ') || ' (value redacted in the snapshot).'
            WHEN metadata IS NULL OR coalesce(len(json_keys(metadata)), 0) = 0 THEN 'has no metadata.'
            ELSE 'has no credential-like metadata.'
       END AS reason
FROM judged
