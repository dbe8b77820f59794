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
WITH redacted AS (
    SELECT id,
           list_sort(list_transform(
               list_filter(map_entries(json_transform(metadata, '"MAP(VARCHAR, VARCHAR)"')),
                           lambda e: e.value = '[REDACTED]'),
               lambda e: e.key)) AS keys
    FROM servers
    WHERE contains(CAST(metadata AS VARCHAR), '[REDACTED]')  -- cheap pre-filter: parse only candidates
)
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN coalesce(len(r.keys), 0) > 0 THEN 'fail'
            WHEN s.down_cell THEN 'skip'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN coalesce(len(r.keys), 0) > 0
                THEN 'has credential-like metadata: ' || array_to_string(r.keys, ', ')
                     || ' (value redacted in the snapshot).'
            WHEN s.down_cell
                THEN 'is in a cell that did not answer: its metadata is not known.'
            WHEN s.metadata IS NULL OR coalesce(len(json_keys(s.metadata)), 0) = 0
                THEN 'has no metadata.'
            ELSE 'has no credential-like metadata.'
       END AS reason
FROM servers s
LEFT JOIN redacted r ON r.id = s.id
