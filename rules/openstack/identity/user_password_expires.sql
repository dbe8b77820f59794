/*---
title: User passwords expire
severity: low
resource_type: user
description: >
  Fails an enabled user whose password never expires: `password_expires_at` is empty (Keystone's
  `[security_compliance] password_expires_days` is not set, or the user was created before it was) or the
  user is exempted with the `ignore_password_expiry` option. Passes a user whose password expires, and
  says when (one already expired passes too: Keystone refuses it until it is changed). Disabled users,
  federated users (no Keystone password) and service accounts (users whose every role is on one of
  `service_projects`: names in the default domain, or ids; their passwords are rotated by the deployment)
  are info. Users of an LDAP-backed domain have their password policy in LDAP, not here, and fail here.
rationale: >
  A password that never expires stays valid for as long as it sits in a leaked configuration file, a
  shell history or a former colleague's notes. An expiry forces a change, which puts an end to copies
  nobody knows about, and the rotation that otherwise never happens.
remediation: >
  Set `[security_compliance] password_expires_days` in keystone.conf (for example 90) and have users
  change their passwords; remove the exemption from users that do not need it (`openstack user set
  --disable-ignore-password-expiry USER`).
params:
  service_projects: [service]
references:
  - https://docs.openstack.org/keystone/latest/admin/configuration.html#security-compliance-and-pci-dss
---*/
WITH service_accounts AS (
    SELECT user_id
    FROM role_assignments
    GROUP BY user_id
    HAVING bool_and(coalesce(list_contains($service_projects, project_id)
                             OR (list_contains($service_projects, project_name) AND domain_id = 'default'), false))
),
judged AS (
    SELECT u.id, u.name, u.default_project_id, u.enabled, u.password_expires_at,
           coalesce(u.ignore_password_expiry, false) AS exempt,
           coalesce(json_array_length(u.federated), 0) > 0 AS federated,
           s.user_id IS NOT NULL AS service_account,
           (SELECT started_at FROM snapshot) AS taken_at
    FROM users u
    LEFT JOIN service_accounts s ON s.user_id = u.id
)
SELECT id AS resource_id,
       name AS resource_name,
       default_project_id AS project_id,
       CASE WHEN enabled IS NULL THEN 'skip'
            WHEN NOT enabled OR federated OR service_account THEN 'info'
            WHEN exempt OR password_expires_at IS NULL THEN 'fail'
            ELSE 'pass' END AS status,
       'User ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN enabled IS NULL THEN 'does not say whether it is enabled.'
            WHEN NOT enabled THEN 'is disabled: it cannot authenticate.'
            WHEN federated THEN 'is federated: it has no Keystone password.'
            WHEN service_account THEN 'is a service account (roles on service projects only): its password is rotated with the deployment.'
            WHEN exempt THEN 'is exempt from password expiry (ignore_password_expiry): its password never expires.'
            WHEN password_expires_at IS NULL THEN 'has a password that never expires.'
            WHEN password_expires_at <= taken_at
                THEN 'has a password that expired on ' || strftime(password_expires_at, '%Y-%m-%d')
                     || ': Keystone refuses it until it is changed.'
            ELSE 'has a password that expires on ' || strftime(password_expires_at, '%Y-%m-%d') || '.'
       END AS reason
FROM judged
