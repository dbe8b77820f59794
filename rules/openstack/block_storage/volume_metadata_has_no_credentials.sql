/*---
title: Volume metadata holds no credentials
severity: high
resource_type: volume
description: >
  Fails a volume whose metadata, or the image metadata it was created with, has a credential-like entry:
  the snapshot writer keeps such keys (names like password, secret, token, api_key, or values that look
  like private keys and access tokens) and replaces their value with "[REDACTED]", so this rule fails a
  volume with any such value equal to "[REDACTED]" and names the keys, never a value.
rationale: >
  Volume metadata is readable by every user of the project through the block-storage API, is copied into
  the volume's backups, and into tools like this one. A credential there
  should be considered exposed.
remediation: >
  Remove the key (`openstack volume unset --property KEY VOLUME`, or `--image-property KEY` for image
  metadata), rotate the credential it held, and keep secrets in a secret store such as Barbican
  (`openstack secret store`).
references:
  - https://docs.openstack.org/cinder/latest/cli/cli-manage-volumes.html
---*/
WITH judged AS (
    SELECT *, redacted_keys(metadata) AS keys, redacted_keys(image_metadata) AS image_keys FROM volumes
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN len(keys) + len(image_keys) > 0 THEN 'fail' ELSE 'pass' END AS status,
       'Volume ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN len(keys) + len(image_keys) > 0
                THEN 'has credential-like ' ||
                     concat_ws('; ',
                         CASE WHEN len(keys) > 0 THEN 'metadata: ' || array_to_string(keys, ', ') END,
                         CASE WHEN len(image_keys) > 0 THEN 'image metadata: ' || array_to_string(image_keys, ', ') END)
                     || ' (value redacted in the snapshot).'
            WHEN metadata IS NULL OR coalesce(len(json_keys(metadata)), 0) = 0 THEN 'has no metadata.'
            ELSE 'has no credential-like metadata.'
       END AS reason
FROM judged
