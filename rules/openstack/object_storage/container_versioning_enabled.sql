/*---
title: Containers keep old versions of their objects
severity: low
resource_type: container
description: >
  Fails a Swift container that keeps no earlier version of an object that is overwritten or deleted:
  neither object versioning (`X-Versions-Enabled: true`) nor legacy versioning (`X-Versions-Location` or
  `X-History-Location`, naming the container old versions go to). A container that is itself another
  container's version archive needs none of its own and passes; one whose archive does not exist in its
  account fails, since Swift refuses the writes it cannot archive. The location is read as Swift reads
  it: URL-decoded, its first path segment.
rationale: >
  Without versions, one mistaken upload or delete, or ransomware with the project's credentials, destroys
  the data for good: Swift has no recycle bin.
remediation: >
  Turn on object versioning (`openstack container set --property X-Versions-Enabled=true CONTAINER`, or
  `swift post -H 'X-Versions-Enabled: true' CONTAINER`; Swift 2.24 or later), or on an older Swift create an
  archive container and name it (`swift post -H 'X-History-Location: ARCHIVE' CONTAINER`). Expire old
  versions with `X-Delete-After` to bound their cost.
references:
  - https://docs.openstack.org/swift/latest/middleware.html#object-versioning
  - https://docs.openstack.org/swift/latest/overview_object_versioning.html
---*/
-- Swift takes the location URL-encoded, and its first path segment as the archive's name.
WITH located AS (
    SELECT *, nullif(split_part(url_decode(coalesce(versions_location, history_location)), '/', 1), '') AS location
    FROM containers
),
archives AS (
    SELECT DISTINCT project_id, location AS archive, name AS versioned FROM located WHERE location IS NOT NULL
),
judged AS (
    SELECT c.*,
           (SELECT min(a.versioned) FROM archives a WHERE a.project_id = c.project_id AND a.archive = c.name)
               AS archive_of,
           EXISTS (SELECT 1 FROM containers t WHERE t.project_id = c.project_id AND t.name = c.location)
               AS location_exists
    FROM located c
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN versions_enabled OR archive_of IS NOT NULL OR (location IS NOT NULL AND location_exists) THEN 'pass'
            ELSE 'fail' END AS status,
       'Container ' || name || ' ' ||
       CASE WHEN versions_enabled THEN 'keeps old versions (object versioning).'
            WHEN location IS NOT NULL AND location_exists
                THEN 'keeps old versions in ' || location || ' (legacy versioning, '
                     || CASE WHEN versions_location IS NOT NULL THEN 'X-Versions-Location' ELSE 'X-History-Location' END || ').'
            WHEN archive_of IS NOT NULL THEN 'is the version archive of ' || archive_of || ': it needs none of its own.'
            WHEN location IS NOT NULL
                THEN 'names ' || location || ' as its version archive, which does not exist in its account: '
                     || 'Swift refuses the writes it cannot archive, and keeps no old versions.'
            WHEN versions_enabled = false THEN 'has object versioning turned off: an overwritten or deleted object is gone.'
            ELSE 'keeps no old versions: an overwritten or deleted object is gone.'
       END AS reason
FROM judged
