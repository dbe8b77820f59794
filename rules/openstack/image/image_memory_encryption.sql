/*---
title: Images request guest memory encryption where it is required
severity: low
resource_type: image
description: >
  Passes an image that requests encrypted guest memory (`hw_mem_encryption` true, as Nova reads it: `1`,
  `t`, `true`, `on`, `y`, `yes`, any case) with UEFI firmware (`hw_firmware_type` uefi), which Nova
  requires for it (with the q35 machine type, from the image or the host's default). An image that requests
  it without UEFI firmware fails: Nova refuses to boot it. Any other image fails when
  `require_memory_encryption` is true, and is info when it is false (the default, since only clouds with
  AMD SEV hosts can give it). Images still uploading, queued or being deleted are not judged; one without
  a status is skipped.
rationale: >
  With memory encryption the hypervisor host, and whoever controls it, cannot read the guest's memory
  (keys, data being processed) even with full access to the host. Clouds that offer it to sensitive
  workloads need to know which images do not ask for it.
remediation: >
  Request it on the image (`openstack image set --property hw_mem_encryption=True --property
  hw_firmware_type=uefi --property hw_machine_type=q35 IMAGE`) or on the flavor
  (`hw:mem_encryption=True`), for clouds whose hosts support AMD SEV.
params:
  require_memory_encryption: false
references:
  - https://docs.openstack.org/nova/latest/admin/sev.html
---*/
WITH judged AS (
    SELECT id, name, project_id, status, properties ->> 'hw_mem_encryption' AS requested,
           lower(trim(properties ->> 'hw_mem_encryption')) IN ('1', 't', 'true', 'on', 'y', 'yes') AS encrypted,
           properties ->> 'hw_firmware_type' = 'uefi' AS uefi
    FROM images
    WHERE status IS NULL OR status IN ('active', 'deactivated')
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN status IS NULL THEN 'skip'
            WHEN encrypted AND uefi THEN 'pass'
            WHEN encrypted OR $require_memory_encryption THEN 'fail'
            ELSE 'info' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN status IS NULL THEN 'does not say its status.'
            WHEN encrypted AND uefi THEN 'requests encrypted guest memory (hw_mem_encryption), with UEFI firmware.'
            WHEN encrypted THEN 'requests encrypted guest memory without UEFI firmware (hw_firmware_type uefi): '
                                || 'Nova refuses to boot it.'
            ELSE 'does not request encrypted guest memory (hw_mem_encryption ' || coalesce(requested, 'not set') || ').'
       END AS reason
FROM judged
