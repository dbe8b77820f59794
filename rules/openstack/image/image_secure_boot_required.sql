/*---
title: UEFI images require secure boot
severity: low
resource_type: image
description: >
  Fails an image that boots UEFI firmware (`hw_firmware_type` uefi) without requiring secure boot
  (`os_secure_boot` missing, `optional` or `disabled`). Passes an image that requires it. An image with
  BIOS firmware, or that declares no firmware (the hypervisor's default, BIOS), is info: secure boot does
  not apply to it. Images still uploading, queued or being deleted are not judged.
rationale: >
  Secure boot lets the guest's firmware refuse a bootloader or kernel that is not signed by a trusted key,
  which stops bootkits and tampered kernels from starting. An image built for UEFI that leaves it off (or
  optional, so a host without it boots the server anyway) gives that up for no reason.
remediation: >
  Require it on the image (`openstack image set --property os_secure_boot=required IMAGE`), after
  checking that the image's bootloader is signed (shim for most Linux distributions, Windows Server from
  2016); hosts need OVMF firmware with secure boot support.
references:
  - https://docs.openstack.org/nova/latest/admin/secure-boot.html
  - https://docs.openstack.org/glance/latest/admin/useful-image-properties.html
---*/
WITH judged AS (
    SELECT id, name, project_id, lower(properties ->> 'hw_firmware_type') AS firmware,
           lower(properties ->> 'os_secure_boot') AS secure_boot
    FROM images
    WHERE status IN ('active', 'deactivated')
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN secure_boot = 'required' THEN 'pass'
            WHEN firmware = 'uefi' THEN 'fail'
            ELSE 'info' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN secure_boot = 'required' THEN 'requires secure boot.'
            WHEN firmware = 'uefi'
                THEN 'boots UEFI firmware without requiring secure boot (os_secure_boot '
                     || coalesce(secure_boot, 'not set') || ').'
            WHEN firmware IS NULL THEN 'declares no firmware (the hypervisor''s default, BIOS): secure boot does not apply.'
            ELSE 'boots ' || firmware || ' firmware: secure boot does not apply.'
       END AS reason
FROM judged
