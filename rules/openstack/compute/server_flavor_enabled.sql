/*---
title: Servers do not use a disabled flavor
severity: low
resource_type: server
description: >
  Fails a server whose flavor is disabled. A server whose flavor is not in the flavor list (deleted, or
  a private flavor these credentials cannot see) is skipped.
rationale: >
  Operators disable a flavor to retire it. Servers still on it are left behind: they cannot be rebuilt
  the same way, a resize back to it fails, and they usually run on the old hardware or sizing the flavor
  was retired for.
remediation: >
  Resize the server to a current flavor (`openstack server resize --flavor FLAVOR SERVER`, then
  `openstack server resize confirm SERVER`; a stopped server is resized too and stays stopped).
references:
  - https://docs.openstack.org/nova/latest/user/flavors.html
  - https://docs.openstack.org/nova/latest/user/resize.html
---*/
SELECT s.id AS resource_id,
       s.name AS resource_name,
       s.project_id,
       CASE WHEN f.id IS NULL OR f.disabled IS NULL THEN 'skip'
            WHEN f.disabled THEN 'fail'
            ELSE 'pass' END AS status,
       'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' ||
       CASE WHEN f.id IS NULL
                THEN 'uses flavor ' || coalesce(s.flavor_name, s.flavor_id, 'of unknown name')
                     || ', which is not in the flavor list (deleted, or a private flavor not visible).'
            WHEN f.disabled IS NULL THEN 'uses flavor ' || coalesce(f.name, '') || ' (' || f.id
                 || '), whose disabled flag is unknown.'
            WHEN f.disabled THEN 'uses flavor ' || coalesce(f.name, '') || ' (' || f.id || '), which is disabled.'
            ELSE 'uses flavor ' || coalesce(f.name, '') || ' (' || f.id || '), which is enabled.' END AS reason
FROM servers s
LEFT JOIN flavors f ON f.id = s.flavor_id
