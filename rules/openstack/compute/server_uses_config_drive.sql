/*---
title: Servers get their metadata from a config drive
severity: low
resource_type: server
description: >
  Fails a server built without a config drive (config_drive is not "True"): it depends on the metadata
  service for its metadata, keys and user data. Servers never built (no launch time and no host: an ERROR
  at scheduling, where Nova never decided on a drive) and servers whose cell is down are skipped.
rationale: >
  The metadata service answers plain HTTP at 169.254.169.254 to any process in the guest, so a server-side
  request forgery in any application on the server reads its user data, which often carries bootstrap
  credentials. Servers that read their metadata from a config drive do not need the service, so the
  operator can restrict it or turn it off for them; as long as servers depend on it, it must stay open. A
  config drive does not close the service by itself, and it stays attached for the server's life with the
  user data (and any generated administrator password) on it, so credentials belong in neither.
remediation: >
  Create servers with a config drive (`openstack server create --config-drive True ...`, or
  `force_config_drive = True` in nova.conf for every new server; an existing server keeps what it was built
  with, so recreate it), then restrict the metadata service for networks whose servers no longer need it.
references:
  - https://docs.openstack.org/nova/latest/user/metadata.html#config-drives
  - https://docs.openstack.org/nova/latest/admin/config-drive.html
---*/
WITH judged AS (
    SELECT id, name, project_id, down_cell, lower(coalesce(config_drive, '')) IN ('true', '1', 'yes') AS drive,
           launched_at IS NULL AND host IS NULL AS never_built, status
    FROM servers
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN down_cell THEN 'skip' WHEN drive THEN 'pass' WHEN never_built THEN 'skip' ELSE 'fail' END AS status,
       'Server ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN down_cell THEN 'is in a cell that is down: Nova gave no details.'
            WHEN drive THEN 'has a config drive.'
            WHEN never_built THEN 'was never built (status ' || coalesce(status, 'unknown')
                                  || '), so it has no metadata source yet.'
            ELSE 'has no config drive: it depends on the metadata service for its metadata and user data.'
       END AS reason
FROM judged
