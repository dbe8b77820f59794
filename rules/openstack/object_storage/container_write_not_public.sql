/*---
title: Containers are not writable by everyone
severity: high
resource_type: container
description: >
  Fails a Swift container whose write ACL (`X-Container-Write`) holds `*:*`: any user of any project of
  the cloud may then create, overwrite and delete its objects. `<project>:*` (the users of one named
  project) and entries naming users are the project's own choice: they pass, and the reason names them.
rationale: >
  A container every tenant can write to serves whatever anyone puts there: malware behind a trusted
  URL, a backup replaced, objects deleted. Nothing in Swift records which tenant did it in the container
  itself.
remediation: >
  Set the write ACL to the projects or users that need it (`swift post -w 'PROJECT_ID:*' CONTAINER`) or
  remove it (`swift post -w '' CONTAINER`); for uploads from outside, hand out temp URLs or form POST
  signatures instead.
references:
  - https://docs.openstack.org/swift/latest/overview_acl.html
---*/
WITH judged AS (SELECT *, acl_entries(write_acl) AS entries FROM containers)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN list_contains(entries, '*:*') THEN 'fail' ELSE 'pass' END AS status,
       'Container ' || name || ' ' ||
       CASE WHEN list_contains(entries, '*:*')
                THEN 'lets every user of every project write and delete its objects (write ACL ' || write_acl || ').'
            WHEN len(entries) > 0 THEN 'is writable by its project and by ' || array_to_string(entries, ', ') || ' only.'
            ELSE 'is writable by its project only (no write ACL).'
       END AS reason
FROM judged
