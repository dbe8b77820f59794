/*---
title: Flavors are mapped to an approved instance type
severity: low
resource_type: flavor
description: >
  Fails a flavor that the approved instance-type mapping does not cover: its name is not listed under any
  instance type, and its shape (vCPUs, RAM, root disk) equals no type's shape. Every flavor is judged,
  public, private and disabled alike. When no instance type is configured, every flavor is skipped.
rationale: >
  A flavor outside the approved catalog lets new servers be built on a size nobody plans capacity,
  prices or supports. Catching the flavor itself finds the gap before servers use it.
remediation: >
  Add the flavor to the instance-type mapping (list its name under a type, or add a type with its shape)
  in the `instance_types` file the auditor is configured with, or retire it once no server needs it:
  `openstack flavor delete FLAVOR` (existing servers keep their embedded copy of the flavor).
references:
  - https://docs.openstack.org/nova/latest/user/flavors.html
---*/
WITH judged AS (
    SELECT f.id, f.name,
           n.instance_type AS name_type,
           m.instance_type AS shape_type,
           f.name IS NOT NULL AND f.vcpus IS NOT NULL AND f.ram_mb IS NOT NULL AND f.disk_gb IS NOT NULL AS known,
           'Flavor ' || coalesce(f.name, '') || ' (' || f.id || ') ' AS subject,
           coalesce(f.vcpus::VARCHAR, '?') || ' vCPU, ' || coalesce(f.ram_mb::VARCHAR, '?') || ' MB RAM, '
               || coalesce(f.disk_gb::VARCHAR, '?') || ' GB disk' AS shape_text
    FROM flavors f
    LEFT JOIN instance_type_by_flavor_name n ON n.flavor_name = f.name
    LEFT JOIN instance_type_by_shape m ON m.vcpus = f.vcpus AND m.ram_mb = f.ram_mb AND m.disk_gb = f.disk_gb
)
SELECT id AS resource_id,
       name AS resource_name,
       NULL AS project_id,  -- flavors belong to the cloud, not to a project
       CASE WHEN (SELECT count(*) FROM instance_types) = 0 THEN 'skip'
            WHEN name_type IS NOT NULL OR shape_type IS NOT NULL THEN 'pass'
            WHEN known THEN 'fail'
            ELSE 'skip' END AS status,
       subject ||
       CASE WHEN (SELECT count(*) FROM instance_types) = 0
                THEN 'was not judged: no instance-type mapping configured.'
            WHEN name_type IS NOT NULL THEN 'is mapped to instance type ' || name_type || ' by name.'
            WHEN shape_type IS NOT NULL
                THEN '(' || shape_text || ') is mapped to instance type ' || shape_type || ' by shape.'
            WHEN known THEN '(' || shape_text || ') is covered by no approved instance type, by name or shape.'
            ELSE '(' || shape_text || ') has incomplete details: a mapping cannot be ruled out.'
       END AS reason
FROM judged
