/*---
title: Containers are not readable by everyone
severity: high
resource_type: container
description: >
  Fails a Swift container whose read ACL (`X-Container-Read`) lets people outside its project read its
  objects wholesale: a referrer element (`.r:*`, or `.r:<domain>`: Swift checks only the Referer header,
  which any client sets as it likes, so a named referrer opens the objects to anyone who claims it) makes
  them readable without any credentials; `*:*` makes them readable by every user of every project of the
  cloud. `.rlistings` alone opens nothing (it only adds listings to what a referrer element allows), and
  entries naming projects or users are the project's own choice: both pass, and the reason names them.
rationale: >
  An object anyone may read is published: backups, exports and logs put in a container made public for a
  web page are downloaded by crawlers within hours. On a shared cloud, `*:*` hands the data to every other
  tenant.
remediation: >
  Remove the element from the read ACL (`swift post -r '' CONTAINER`, or set the ACL to the projects and
  users that need it: `swift post -r 'PROJECT_ID:*' CONTAINER`). Publish static content from a container
  holding that content only, and give temporary access with temp URLs instead.
references:
  - https://docs.openstack.org/swift/latest/overview_acl.html
---*/
WITH judged AS (
    SELECT *, acl_entries(read_acl) AS entries,
           list_filter(acl_entries(read_acl), lambda e: acl_is_referrer_grant(e)) AS referrers,
           list_filter(acl_entries(read_acl), lambda e: NOT starts_with(e, '.')) AS named  -- projects and users
    FROM containers
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN len(referrers) > 0 OR list_contains(entries, '*:*') THEN 'fail' ELSE 'pass' END AS status,
       'Container ' || name || ' ' ||
       CASE WHEN len(referrers) > 0 OR list_contains(entries, '*:*') THEN
                concat_ws('; and ',
                    CASE WHEN list_contains(list_transform(referrers, lambda e: trim(split_part(e, ':', 2))), '*')
                         THEN 'lets anyone on the internet read its objects without credentials'
                         WHEN len(referrers) > 0
                         THEN 'lets anyone read its objects without credentials who sends a Referer header of '
                              || array_to_string(list_transform(referrers, lambda e: trim(split_part(e, ':', 2))), ', ')
                              || ' (a header any client can forge)' END,
                    CASE WHEN list_contains(entries, '*:*')
                         THEN 'lets every user of every project read its objects' END)
                || ' (read ACL ' || read_acl || ').'
            WHEN list_contains(entries, '.rlistings')
                THEN 'has .rlistings without a referrer element in its read ACL (' || read_acl || '): nothing is public.'
            WHEN len(named) > 0 THEN 'is readable by its project and by ' || array_to_string(named, ', ') || ' only.'
            WHEN len(entries) > 0 THEN 'is readable by its project only (read ACL ' || read_acl || ' opens nothing).'
            ELSE 'is readable by its project only (no read ACL).'
       END AS reason
FROM judged
