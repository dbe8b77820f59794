/*---
title: Container listings are not public
severity: medium
resource_type: container
description: >
  Fails a Swift container whose read ACL holds `.rlistings` together with a referrer element (`.r:*` or
  `.r:<domain>`): anyone may then list the names of its objects without credentials. `.rlistings` alone
  lists nothing to anyone, and a referrer element without it lets people fetch objects whose names they
  know, not list them (container_not_public_read judges that).
rationale: >
  A public listing turns a container into an index: object names carry customer names, dates and file
  kinds, and every object in it can be found and fetched, including the ones never meant to be linked.
remediation: >
  Remove `.rlistings` from the read ACL (`swift post -r '.r:*' CONTAINER` keeps objects public and their
  listing private), or remove public access altogether (`swift post -r '' CONTAINER`).
references:
  - https://docs.openstack.org/swift/latest/overview_acl.html
---*/
WITH judged AS (
    SELECT *, acl_entries(read_acl) AS entries,
           len(list_filter(acl_entries(read_acl), lambda e: acl_is_referrer_grant(e))) > 0 AS public_objects
    FROM containers
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN public_objects AND list_contains(entries, '.rlistings') THEN 'fail' ELSE 'pass' END AS status,
       'Container ' || name || ' ' ||
       CASE WHEN public_objects AND list_contains(entries, '.rlistings')
                THEN 'lets anyone list its objects without credentials (read ACL ' || read_acl || ').'
            WHEN list_contains(entries, '.rlistings')
                THEN 'has .rlistings without a referrer element (read ACL ' || read_acl || '): its listing is not public.'
            WHEN public_objects THEN 'has public objects but no public listing (read ACL ' || read_acl || ').'
            ELSE 'has no public listing.'
       END AS reason
FROM judged
