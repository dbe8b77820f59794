/*---
title: Volumes in use have a backup
severity: medium
resource_type: volume
description: >
  Fails a volume in use (attached to a server, `in-use`, or `reserved` for a shelved server) that has no
  Cinder backup it could be restored from: one in state `available`, or `restoring` (a restore in progress
  leaves it available again). A failed, unfinished or deleting backup does not count. With
  `max_backup_age_days` above 0, the newest such backup must also hold data no older than that many days
  before the snapshot; at 0 (the default) any age passes, and the reason names the newest backup's date.
  Volumes that no server uses are info, not judged.
rationale: >
  Volumes hold the data that servers cannot rebuild from an image. Without a backup, a deleted volume, a
  ransomware run inside the server or a storage failure loses it for good; a snapshot does not help there,
  since it lives on the same storage and goes with the volume. A backup too old to restore from is little
  better.
remediation: >
  Back the volume up (`openstack volume backup create --force VOLUME`, incremental ones after the first
  with `--incremental`) and schedule it, with a tool such as a cron job or a backup service; check that
  failed backups (`openstack volume backup list --status error`) are retried. Data backed up by other
  means can be waived with that reason.
params:
  max_backup_age_days: 0
references:
  - https://docs.openstack.org/cinder/latest/admin/volume-backups.html
---*/
WITH backed_up AS (
    SELECT volume_id,
           count(*) FILTER (WHERE status IN ('available', 'restoring')) AS usable,
           count(*) FILTER (WHERE status NOT IN ('available', 'restoring') OR status IS NULL) AS unusable,
           max(coalesce(data_timestamp, created_at)) FILTER (WHERE status IN ('available', 'restoring')) AS newest
    FROM volume_backups
    GROUP BY volume_id
), judged AS (
    SELECT v.*, b.usable, b.unusable, b.newest,
           coalesce(len(v.attached_server_ids), 0) > 0 OR v.status IN ('in-use', 'reserved') AS in_use,
           $max_backup_age_days > 0
               AND b.newest < (SELECT started_at FROM snapshot) - to_days(CAST($max_backup_age_days AS INTEGER))
               AS too_old
    FROM volumes v
    LEFT JOIN backed_up b ON b.volume_id = v.id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN NOT in_use THEN 'info'
            WHEN coalesce(usable, 0) > 0 AND NOT coalesce(too_old, false) THEN 'pass'
            ELSE 'fail' END AS status,
       'Volume ' || coalesce(name, '') || ' (' || id || ') ' ||
       CASE WHEN NOT in_use THEN 'is not in use: not judged.'
            WHEN coalesce(usable, 0) > 0 AND coalesce(too_old, false)
                THEN 'is in use and its newest backup holds data of ' || strftime(newest, '%Y-%m-%d')
                     || ', older than ' || $max_backup_age_days || ' days.'
            WHEN coalesce(usable, 0) > 0
                THEN 'is in use and has ' || usable || ' backup(s), the newest of '
                     || coalesce(strftime(newest, '%Y-%m-%d'), 'an unknown date') || '.'
            WHEN coalesce(unusable, 0) > 0
                THEN 'is in use and has no usable backup: its ' || unusable || ' backup(s) failed or are not finished.'
            ELSE 'is in use and has no backup.'
       END AS reason
FROM judged
