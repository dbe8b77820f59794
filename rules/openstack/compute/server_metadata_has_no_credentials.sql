/*---
title: Server metadata holds no credentials
severity: high
resource_type: server
description: >
  Fails a server whose metadata has a credential-like entry: the snapshot writer keeps such keys (names
  like password, secret, token, api_key, or values that look like private keys and access tokens) and
  replaces their value with "[REDACTED]", so this rule fails a server with any metadata value equal to
  "[REDACTED]" and names the keys, never a value. Servers of a cell that did not answer (metadata unknown)
  are skipped.
rationale: >
  Server metadata is not a secret store: every user of the project can read it through the compute API,
  the guest and anything that can reach the metadata service from inside it can read it, and it is copied
  into logs, notifications, backups and tools like this one. A credential there should be considered
  exposed.
remediation: >
  Remove the key (`openstack server unset --property KEY SERVER`), rotate the credential it held, and pass
  secrets through a secret store such as Barbican (`openstack secret store`) or at boot through
  configuration management rather than metadata.
references:
  - https://docs.openstack.org/nova/latest/user/metadata.html
  - https://docs.openstack.org/barbican/latest/
---*/
WITH judged AS (
    SELECT *, redacted_keys(metadata) AS keys FROM servers
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN len(keys) > 0 THEN 'fail'
            WHEN down_cell THEN 'skip'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN len(keys) > 0
                THEN 'has credential-like metadata: ' || array_to_string(keys, ', ')
                     || ' (value redacted in the snapshot).'
            WHEN down_cell
                THEN 'is in a cell that did not answer: its metadata is not known.'
            WHEN metadata IS NULL OR coalesce(len(json_keys(metadata)), 0) = 0
                THEN 'has no metadata.'
            ELSE 'has no credential-like metadata.'
       END AS reason
FROM judged
