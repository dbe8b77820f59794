/*---
title: Images request guest memory encryption where it is required
severity: low
resource_type: image
description: >
  Passes an image that requests encrypted guest memory (`hw_mem_encryption` true: AMD SEV). Any other
  image fails when `require_memory_encryption` is true, and is info when it is false (the default, since
  only clouds with SEV-capable hosts and a flavor or image opting in can give it). Images still uploading,
  queued or being deleted are not judged.
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
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN lower(properties ->> 'hw_mem_encryption') IN ('true', '1', 'yes', 'on') THEN 'pass'
            WHEN $require_memory_encryption THEN 'fail'
            ELSE 'info' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN lower(properties ->> 'hw_mem_encryption') IN ('true', '1', 'yes', 'on')
                THEN 'requests encrypted guest memory (hw_mem_encryption).'
            ELSE 'does not request encrypted guest memory (hw_mem_encryption '
                 || coalesce(properties ->> 'hw_mem_encryption', 'not set') || ').'
       END AS reason
FROM images
WHERE status IN ('active', 'deactivated')
