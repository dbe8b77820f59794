/*---
title: Application credentials expire
severity: medium
resource_type: application_credential
description: >
  Fails an application credential with no expiry. One that expires passes, with its date; one already
  expired passes too (Keystone refuses it), with a note that it can be deleted.
rationale: >
  Application credentials are copied into CI systems, configuration files and laptops, and outlive the
  projects and people that created them. An expiry bounds how long a forgotten or leaked copy stays
  usable, and forces an inventory when it is renewed.
remediation: >
  Create a replacement with an expiry (`openstack application credential create --expiration
  2027-06-30T00:00:00 --role ROLE NAME`), move the program to it, then delete the old one
  (`openstack application credential delete --user USER NAME`); application credentials cannot be changed
  in place.
references:
  - https://docs.openstack.org/keystone/latest/user/application_credentials.html
---*/
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN expires_at IS NULL THEN 'fail' ELSE 'pass' END AS status,
       'Application credential ' || coalesce(name, '') || ' (' || id || ') of user ' || coalesce(user_id, 'unknown') ||
       CASE WHEN expires_at IS NULL THEN ' never expires.'
            WHEN expires_at <= (SELECT started_at FROM snapshot)
                THEN ' expired on ' || strftime(expires_at, '%Y-%m-%d') || ': Keystone refuses it; delete it.'
            ELSE ' expires on ' || strftime(expires_at, '%Y-%m-%d') || '.'
       END AS reason
FROM application_credentials
