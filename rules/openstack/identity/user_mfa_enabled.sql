/*---
title: Users must pass multi-factor authentication
severity: high
resource_type: user
description: >
  Fails an enabled user whom Keystone lets in with a single factor. Keystone checks a user's
  `multi_factor_auth_rules` unless `multi_factor_auth_enabled` is explicitly false (unset means on), and
  a user may authenticate with the methods of any one rule: so no rule at all, rules switched off, or one
  rule that names a single method (such as `[password]`) let one method in. Rules that Keystone ignores
  (empty, or with an entry that is not a method name) do not count. Passes a user every one of whose
  rules needs two methods or more; methods not enabled in keystone.conf cannot be seen from the API.
  Disabled users, federated users (their identity provider enforces MFA) and service accounts (users whose
  every role is on one of `service_projects`: names in the default domain, or ids) are info.
rationale: >
  A password alone is phished, guessed, reused from another breach or read from a leaked configuration
  file; a second factor stops those from becoming a Keystone token, which reaches every service of every
  project the user has a role on. Keystone's two MFA settings must both be right for it to apply at all,
  which is easy to get wrong and invisible from the login prompt.
remediation: >
  Give the user a second method (for example a TOTP credential: `openstack credential create --type totp
  USER SECRET`), then require it: `openstack user set --enable-multi-factor-auth --multi-factor-auth-rule
  password,totp USER`. Remove any rule that names a single method (`openstack user set
  --clear-multi-factor-auth-rules USER`, then set the rules again).
params:
  service_projects: [service]
references:
  - https://docs.openstack.org/keystone/latest/admin/auth-totp.html
  - https://docs.openstack.org/keystone/latest/admin/multi-factor-authentication.html
---*/
WITH service_accounts AS (
    SELECT user_id
    FROM role_assignments
    GROUP BY user_id
    HAVING bool_and(coalesce(list_contains($service_projects, project_id)
                             OR (list_contains($service_projects, project_name) AND domain_id = 'default'), false))
),
judged AS (
    SELECT u.id, u.name, u.default_project_id, u.enabled, u.mfa_enabled,
           coalesce(json_array_length(u.federated), 0) > 0 AS federated,
           s.user_id IS NOT NULL AS service_account,
           u.mfa_enabled IS DISTINCT FROM false AS switched_on,
           -- the rules Keystone keeps: non-empty lists of method names
           list_filter(coalesce(u.mfa_rules, []), lambda r: len(r) > 0
                       AND list_bool_and(list_transform(r, lambda m: m IS NOT NULL AND m <> ''))) AS rules
    FROM users u
    LEFT JOIN service_accounts s ON s.user_id = u.id
),
counted AS (
    SELECT *, len(rules) AS rule_count,
           list_transform(list_filter(rules, lambda r: len(list_distinct(r)) < 2),
                          lambda r: '[' || array_to_string(r, ', ') || ']') AS single_factor_rules
    FROM judged
)
SELECT id AS resource_id,
       name AS resource_name,
       default_project_id AS project_id,
       CASE WHEN enabled IS NULL THEN 'skip'
            WHEN NOT enabled OR federated OR service_account THEN 'info'
            WHEN switched_on AND rule_count > 0 AND len(single_factor_rules) = 0 THEN 'pass'
            ELSE 'fail' END AS status,
       'User ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN enabled IS NULL THEN 'does not say whether it is enabled.'
            WHEN NOT enabled THEN 'is disabled: it cannot authenticate.'
            WHEN federated THEN 'is federated: its identity provider enforces multi-factor authentication, not Keystone.'
            WHEN service_account THEN 'is a service account (roles on service projects only): MFA does not apply; keep its password out of reach.'
            WHEN switched_on AND rule_count > 0 AND len(single_factor_rules) = 0
                THEN 'must pass ' || CASE WHEN rule_count = 1 THEN 'its MFA rule' ELSE 'one of its ' || rule_count || ' MFA rules' END
                     || ', each of two methods or more.'
            WHEN switched_on AND rule_count > 0
                THEN 'has an MFA rule that one method satisfies alone: ' || array_to_string(single_factor_rules, ', ') || '.'
            WHEN rule_count > 0 THEN 'has MFA rules, but multi_factor_auth_enabled is false, so Keystone does not enforce them.'
            WHEN mfa_enabled THEN 'has MFA switched on but no MFA rule, so any single method (a password alone) is enough.'
            ELSE 'has no MFA rule: a password alone logs in.'
       END AS reason
FROM counted
