/*---
title: Application credentials are restricted
severity: high
resource_type: application_credential
description: >
  Fails an application credential created `unrestricted`: it may create further application credentials
  and trusts. Restricted ones pass; the reason says whether access rules narrow them to some API calls or
  they may make any call their roles allow.
rationale: >
  An application credential is a password handed to a program. Restricted, it can do what its roles
  allow and no more, and deleting it ends it. Unrestricted, whoever holds it can mint new credentials and
  trusts that outlive its deletion, so one leaked secret from a CI job or a config file becomes durable
  access to the project.
remediation: >
  Create a restricted replacement (the default: `openstack application credential create --role ROLE
  NAME`, ideally with `--access-rules` and `--expiration`), move the program to it, then delete the
  unrestricted one (`openstack application credential delete --user USER NAME`).
references:
  - https://docs.openstack.org/keystone/latest/user/application_credentials.html
---*/
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN unrestricted IS NULL THEN 'skip' WHEN unrestricted THEN 'fail' ELSE 'pass' END AS status,
       'Application credential ' || coalesce(name, '') || ' (' || id || ') of user ' || coalesce(user_id, 'unknown') ||
       CASE WHEN unrestricted IS NULL THEN ' does not say whether it is restricted.'
            WHEN unrestricted
                THEN ' is unrestricted: it can create more application credentials and trusts, which outlive its deletion.'
            WHEN coalesce(json_array_length(access_rules), 0) > 0
                THEN ' is restricted, and access rules limit it to ' || json_array_length(access_rules) || ' kind'
                     || CASE WHEN json_array_length(access_rules) = 1 THEN '' ELSE 's' END || ' of API call.'
            ELSE ' is restricted; no access rule narrows it, so it may make any call its roles ('
                 || coalesce(nullif(array_to_string(role_names, ', '), ''), 'none listed') || ') allow.'
       END AS reason
FROM application_credentials
