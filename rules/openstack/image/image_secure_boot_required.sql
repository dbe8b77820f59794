/*---
title: UEFI images require secure boot
severity: low
resource_type: image
description: >
  Fails an image that boots UEFI firmware (`hw_firmware_type` uefi, or no firmware declared on aarch64,
  where UEFI is Nova's default) without requiring secure boot (`os_secure_boot` missing, `optional` or
  `disabled`), and an image that requires secure boot without UEFI firmware (Nova cannot give it secure
  boot). Passes a UEFI image that requires it. Other images with BIOS firmware, or none declared, are info:
  secure boot does not apply. Values are compared as Nova reads them (lower case). A flavor's
  `os:secure_boot` can require it too; this rule reads the image. Images still uploading, queued or being
  deleted are not judged; one without a status is skipped.
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
    SELECT id, name, project_id, status, properties ->> 'os_secure_boot' AS secure_boot,
           coalesce(properties ->> 'hw_firmware_type',
                    CASE WHEN coalesce(properties ->> 'hw_architecture', properties ->> 'architecture') = 'aarch64'
                         THEN 'uefi' END) AS firmware
    FROM images
    WHERE status IS NULL OR status IN ('active', 'deactivated')
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN status IS NULL THEN 'skip'
            WHEN secure_boot = 'required' AND firmware = 'uefi' THEN 'pass'
            WHEN secure_boot = 'required' OR firmware = 'uefi' THEN 'fail'
            ELSE 'info' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN status IS NULL THEN 'does not say its status.'
            WHEN secure_boot = 'required' AND firmware = 'uefi' THEN 'boots UEFI firmware and requires secure boot.'
            WHEN secure_boot = 'required'
                THEN 'requires secure boot without UEFI firmware (hw_firmware_type ' || coalesce(firmware, 'not set')
                     || '): Nova cannot give it secure boot.'
            WHEN firmware = 'uefi'
                THEN 'boots UEFI firmware without requiring secure boot (os_secure_boot '
                     || coalesce(secure_boot, 'not set') || ').'
            WHEN firmware IS NULL THEN 'declares no firmware (the hypervisor''s default, BIOS): secure boot does not apply.'
            WHEN firmware = 'bios' THEN 'boots BIOS firmware: secure boot does not apply.'
            ELSE 'declares firmware ' || firmware || ', which Nova does not know (it reads bios or uefi), so it '
                 || 'boots BIOS: secure boot does not apply.'
       END AS reason
FROM judged
