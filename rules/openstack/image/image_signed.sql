/*---
title: Images other projects boot from are signed
severity: medium
resource_type: image
description: >
  Checks Glance's image signature properties (`img_signature`, `img_signature_hash_method`,
  `img_signature_key_type`, `img_signature_certificate_uuid`). Fails an image that has some of them but
  not all, or a hash method or key type Glance and Nova do not support (a signature nothing can verify),
  and a public, community or shared image with none. Passes an image with all four. A private unsigned
  image is info. Images still uploading, queued or being deleted are not judged; one whose status, or
  whose visibility when it is unsigned, is missing or unknown is skipped.
rationale: >
  A signature lets Glance refuse a tampered upload and lets Nova (with `verify_glance_signatures` and
  certificate validation, see server_trusted_image_certificates) refuse to boot an image that does not
  match its publisher's certificate. Projects booting someone else's image have no other way to know
  that it is the image its publisher built. A half-set signature is worse than none: it looks signed, but
  Glance skips verification on upload when any of the four properties is missing.
remediation: >
  Sign the image file with the publisher's key, store the certificate in Barbican, and upload the image
  with all four properties (`openstack image create --property img_signature=... --property
  img_signature_hash_method=SHA-256 --property img_signature_key_type=RSA-PSS --property
  img_signature_certificate_uuid=CERT_UUID ...`); remove a partial set (`openstack image unset --property
  img_signature IMAGE`) and sign it properly.
references:
  - https://docs.openstack.org/glance/latest/user/signature.html
  - https://docs.openstack.org/nova/latest/user/certificate-validation.html
---*/
WITH signatures AS (
    SELECT id, name, project_id, visibility, status,
           list_filter(['img_signature', 'img_signature_hash_method', 'img_signature_key_type',
                        'img_signature_certificate_uuid'],
                       lambda k: nullif(trim(coalesce(properties ->> k, '')), '') IS NULL) AS missing,
           properties ->> 'img_signature_hash_method' AS hash_method,
           properties ->> 'img_signature_key_type' AS key_type
    FROM images
    WHERE status IS NULL OR status IN ('active', 'deactivated')
),
judged AS (
    SELECT *, len(missing) AS absent,
           hash_method IN ('SHA-224', 'SHA-256', 'SHA-384', 'SHA-512') AS hash_known,
           key_type IN ('RSA-PSS', 'DSA', 'ECC_SECP384R1', 'ECC_SECP521R1', 'ECC_SECT409K1', 'ECC_SECT409R1',
                        'ECC_SECT571K1', 'ECC_SECT571R1') AS key_known,
           visibility IN ('public', 'community', 'shared') AS others_boot_it
    FROM signatures
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN status IS NULL THEN 'skip'
            WHEN absent = 0 AND hash_known AND key_known THEN 'pass'
            WHEN absent BETWEEN 1 AND 3 OR absent = 0 THEN 'fail'
            WHEN others_boot_it THEN 'fail'
            WHEN visibility = 'private' THEN 'info'
            ELSE 'skip' END AS status,
       'Image ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN status IS NULL THEN 'does not say its status.'
            WHEN absent = 0 AND hash_known AND key_known
                THEN 'is signed (' || key_type || ', ' || hash_method || ').'
            WHEN absent = 0
                THEN 'has a signature that cannot be verified: '
                     || CASE WHEN NOT hash_known THEN 'hash method ' || hash_method ELSE 'key type ' || key_type END
                     || ' is not one Glance and Nova support.'
            WHEN absent BETWEEN 1 AND 3
                THEN 'has an incomplete signature: ' || array_to_string(missing, ', ') || ' missing, so nothing can verify it.'
            WHEN others_boot_it
                THEN 'is ' || visibility || ' and unsigned: the projects that boot it cannot verify who built it.'
            WHEN visibility = 'private' THEN 'is private and unsigned.'
            ELSE 'is unsigned, and its visibility (' || coalesce(visibility, 'not given')
                 || ') does not say who boots from it.'
       END AS reason
FROM judged
