/*---
title: Image properties hold no credentials
severity: high
resource_type: image
description: >
  Fails an image with a property that looks like a credential: the collector masks such values as
  "[REDACTED]" (keys named like password, secret, token, api_key, ...; values shaped like private keys
  or cloud tokens), so a masked value marks a credential stored in the image's metadata. The finding
  names the keys, never a value.
rationale: >
  Image properties are readable by every project that can see the image (all of them for a public
  image) and are copied into snapshots and into servers' image metadata. A token left there by a build
  pipeline is readable by far more people than intended, and it stays valid until someone rotates it.
remediation: >
  Revoke or rotate the credential first (it must be considered leaked), then remove the property:
  `openstack image unset --property KEY IMAGE`. Pass build secrets to the pipeline through its own secret
  store, never as image properties.
references:
  - https://docs.openstack.org/api-ref/image/v2/
---*/
WITH judged AS (
    SELECT id, name, project_id, redacted_keys(properties) AS keys
    FROM images
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN len(keys) > 0 THEN 'fail' ELSE 'pass' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN len(keys) > 0
                THEN 'has credential-like properties (values masked): ' || array_to_string(keys, ', ') || '.'
            ELSE 'has no credential-like property.' END AS reason
FROM judged
