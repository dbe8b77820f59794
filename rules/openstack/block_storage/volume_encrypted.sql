/*---
title: Volumes are encrypted
severity: medium
resource_type: volume
description: >
  Fails a volume whose own `encrypted` flag is false. Cinder sets that flag when the volume is created, from
  the encryption of its volume type at that moment, so the rule judges the flag and never the type's name:
  a type called "encrypted" without an encryption spec makes unencrypted volumes, and a type given
  encryption later does not encrypt the volumes made before (only a retype to an encrypted type does). Volumes whose flag Cinder did not give are
  skipped.
rationale: >
  An unencrypted volume leaves its data readable to anyone who gets the disk, the storage back end's
  replicas or a copy taken for support, and its snapshots and images made from it carry the data the same
  way. Front-end (LUKS) encryption keeps the key in the key manager, away from the storage.
remediation: >
  Create an encrypted volume type (`openstack volume type create --encryption-provider luks
  --encryption-cipher aes-xts-plain64 --encryption-key-size 256 --encryption-control-location front-end
  NAME`), then move the data: detach the volume and retype it to that type (`openstack volume set --type
  NAME --retype-policy on-demand VOLUME`; Cinder migrates it, encrypting the copy), or copy the data to a
  new encrypted volume.
  Storage encrypted by the back end itself, which Cinder cannot see, can be waived with that reason.
references:
  - https://docs.openstack.org/cinder/latest/configuration/block-storage/volume-encryption.html
---*/
SELECT v.id AS resource_id,
       v.name AS resource_name,
       v.project_id,
       CASE WHEN v.encrypted THEN 'pass' WHEN NOT v.encrypted THEN 'fail' ELSE 'skip' END AS status,
       'Volume ' || coalesce(v.name, '') || ' (' || v.id || ') ' ||
       CASE WHEN v.encrypted IS NULL THEN 'has no encryption flag in the listing: not judged.'
            WHEN v.encrypted THEN 'is encrypted (type ' || coalesce(v.volume_type, 'unknown') || ').'
            ELSE 'is not encrypted (type ' || coalesce(v.volume_type, 'unknown') || ').'
       END AS reason
FROM volumes v
