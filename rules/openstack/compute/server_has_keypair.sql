/*---
title: Servers are booted with a key pair
severity: low
resource_type: server
description: >
  Fails a server booted without a key pair (no key_name). Servers whose cell is down (status UNKNOWN, no
  details) are skipped. A key pair deleted after boot still passes: the key stays in the guest, and Nova
  keeps its name.
rationale: >
  Without a key pair, the way into the guest is a password baked into the image, set through user data
  (readable by anything in the guest through the metadata service) or the administrator password Nova
  generated, none of which is as strong or as revocable as a key. A key pair also records who was meant
  to log in.
remediation: >
  Recreate the server with a key pair (`openstack server create --key-name KEYPAIR ...`), or rebuild it
  with one (`openstack --os-compute-api-version 2.54 server rebuild --key-name KEYPAIR SERVER`, which
  replaces its root disk); where images authenticate through a directory or certificates instead, waive
  this finding with that reason.
references:
  - https://docs.openstack.org/nova/latest/user/metadata.html
  - https://docs.openstack.org/python-openstackclient/latest/cli/command-objects/keypair.html
---*/
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN down_cell THEN 'skip' WHEN coalesce(key_name, '') <> '' THEN 'pass' ELSE 'fail' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN down_cell THEN 'is in a cell that is down: Nova gave no details.'
            WHEN coalesce(key_name, '') <> '' THEN 'was booted with key pair ' || key_name || '.'
            ELSE 'was booted without a key pair: logins rely on a password or on credentials in user data.'
       END AS reason
FROM servers
