/*---
title: Servers use a flavor mapped to an approved instance type
severity: medium
resource_type: server
description: >
  Fails a server whose flavor is not covered by the approved instance-type mapping: its flavor name is not
  listed under any instance type, and its shape (vCPUs, RAM, root disk) equals no type's shape. A server
  whose flavor is unknown (the flavor was deleted and Nova shows `flavor: {}`, or the record comes from a
  down cell) is skipped, and so is every server when no instance type is configured.
rationale: >
  Instance types are what capacity planning, pricing, support and hardening baselines are written for.
  A server on an unmapped flavor falls outside all of them: it is neither budgeted nor supported, and it
  usually marks a one-off flavor created by hand that nobody owns.
remediation: >
  Resize the server to a flavor of an approved type
  (`openstack server resize --flavor FLAVOR SERVER`, then `openstack server resize confirm SERVER`), or,
  if the flavor is legitimate, add it to the instance-type mapping (list its name under a type, or add a
  type with its shape) in the `instance_types` file the auditor is configured with.
references:
  - https://docs.openstack.org/nova/latest/user/flavors.html
  - https://docs.openstack.org/nova/latest/user/resize.html
---*/
WITH judged AS (
    SELECT s.id, s.name, s.project_id, s.flavor_name,
           s.flavor_vcpus, s.flavor_ram_mb, s.flavor_disk_gb,
           n.instance_type AS name_type,
           m.instance_type AS shape_type,
           s.flavor_vcpus IS NOT NULL AND s.flavor_ram_mb IS NOT NULL AND s.flavor_disk_gb IS NOT NULL AS shape_known,
           'Server ' || coalesce(s.name, '') || ' (' || s.id || ') ' AS subject,
           coalesce(s.flavor_name, 'of unknown name') ||
           CASE WHEN s.flavor_vcpus IS NULL THEN ''
                ELSE ' (' || s.flavor_vcpus || ' vCPU, ' || coalesce(s.flavor_ram_mb::VARCHAR, '?') || ' MB RAM, '
                     || coalesce(s.flavor_disk_gb::VARCHAR, '?') || ' GB disk)' END AS flavor_text
    FROM servers s
    LEFT JOIN instance_type_by_flavor_name n ON n.flavor_name = s.flavor_name
    LEFT JOIN instance_type_by_shape m ON m.vcpus = s.flavor_vcpus AND m.ram_mb = s.flavor_ram_mb AND m.disk_gb = s.flavor_disk_gb
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN (SELECT count(*) FROM instance_types) = 0 THEN 'skip'
            WHEN name_type IS NOT NULL OR shape_type IS NOT NULL THEN 'pass'
            -- an unmapped verdict needs both the name and the whole shape: either could still match
            WHEN flavor_name IS NOT NULL AND shape_known THEN 'fail'
            ELSE 'skip' END AS status,
       subject ||
       CASE WHEN (SELECT count(*) FROM instance_types) = 0
                THEN 'was not judged: no instance-type mapping configured.'
            WHEN name_type IS NOT NULL
                THEN 'uses flavor ' || flavor_text || ', mapped to instance type ' || name_type || ' by name.'
            WHEN shape_type IS NOT NULL
                THEN 'uses flavor ' || flavor_text || ', mapped to instance type ' || shape_type || ' by shape.'
            WHEN flavor_name IS NULL AND flavor_vcpus IS NULL
                THEN 'has unknown flavor details (the flavor was deleted, or the record comes from a down cell).'
            WHEN flavor_name IS NOT NULL AND shape_known
                THEN 'uses flavor ' || flavor_text || ', which no approved instance type covers by name or shape.'
            ELSE 'uses flavor ' || flavor_text || ', not mapped by name, and its details are too incomplete to '
                 || 'rule out a mapping.'
       END AS reason
FROM judged
