/*---
title: Servers from signed images request certificate validation
severity: low
resource_type: server
description: >
  Fails an image-backed server whose image is signed (it carries the img_signature property) but that was
  booted without trusted image certificate ids (trusted_image_certificates, compute API 2.63+): Nova then
  checks the signature, if it checks at all, only against the certificate the image itself names, not
  against certificates the owner trusts. Servers whose image is not signed, or no longer listed, are
  reported as info (signing images is the first step; see the image rules). Volume-backed servers are info
  too: Nova does not support trusted certificates for them. Servers whose cell is down, or listed before
  2.63 (the field is absent), are skipped. A pass records what was requested, not that validation ran (it
  also needs `verify_glance_signatures` in Nova).
rationale: >
  A signature proves an image was not changed since someone signed it; only validation of the signing
  certificate against certificates the deployer trusts proves who that someone was. Without it, an
  attacker who can upload an image and its certificate can get a tampered image to boot as a trusted one.
remediation: >
  Boot with the certificates you trust (`openstack --os-compute-api-version 2.63 server create
  --trusted-image-cert CERT_ID ...`, or `server rebuild --trusted-image-cert CERT_ID SERVER`), or set
  `default_trusted_certificate_ids` in nova.conf, with `verify_glance_signatures = True`.
references:
  - https://docs.openstack.org/nova/latest/user/certificate-validation.html
  - https://docs.openstack.org/glance/latest/user/signature.html
---*/
WITH signed_images AS (
    SELECT id, name, coalesce(json_exists(properties, '$.img_signature'), false) AS signed FROM images
),
judged AS (
    SELECT s.id, s.name, s.project_id, s.down_cell, s.boot_from_volume, s.trusted_image_certificates AS certs,
           coalesce(compute_api_at_least(2, 63), false) AS listed,
           i.id IS NOT NULL AS image_known, coalesce(i.signed, false) AS signed, coalesce(i.name, s.image_id) AS image
    FROM servers s
    LEFT JOIN signed_images i ON i.id = s.image_id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN down_cell OR NOT listed THEN 'skip'
            WHEN len(coalesce(certs, [])) > 0 THEN 'pass'
            WHEN boot_from_volume OR NOT signed THEN 'info'
            ELSE 'fail' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN down_cell THEN 'is in a cell that is down: Nova gave no details.'
            WHEN NOT listed THEN 'was listed without trusted image certificates (compute API before 2.63), so they are unknown.'
            WHEN len(coalesce(certs, [])) > 0
                THEN 'requested validation of its image against certificate(s) ' || array_to_string(certs, ', ') || '.'
            WHEN boot_from_volume THEN 'boots from a volume, for which Nova supports no trusted certificates.'
            WHEN NOT image_known THEN 'boots image ' || coalesce(image, 'unknown')
                                      || ', which is not listed, so whether it is signed is unknown.'
            WHEN NOT signed THEN 'boots image ' || image || ', which is not signed: there is nothing to validate.'
            ELSE 'boots signed image ' || image || ' without requesting validation against a trusted certificate.'
       END AS reason
FROM judged
