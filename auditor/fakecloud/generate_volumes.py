"""Cinder for the synthetic cloud (generate.py): volume types, volumes, snapshots and backups.

For N servers: about N volumes in all. Every volume a server lists in `os-extended-volumes:volumes_attached`
exists and is attached to it (`in-use`; bootable for a server booted from a volume); the others are
`available` in the tenant projects, ~3% of them in `error`. ~60% of volumes are of the encrypted type, ~1%
multi-attach, ~1% carry a credential in their metadata. Snapshots: ~N // 5 (~3% of a volume since
deleted); backups: ~N // 5 of volumes in use (~5% in `error`). Six volume types: `__DEFAULT__`, `encrypted`
(LUKS), `fast` (no encryption), `multiattach`, and two private ones open to a few projects.
"""

from __future__ import annotations

BASE_URL = "http://openstack.example.com/volume/v3"
_TYPES = (  # name, public, encrypted, extra specs
    ("__DEFAULT__", True, False, {}),
    ("encrypted", True, True, {"volume_backend_name": "ceph-ssd"}),
    ("fast", True, False, {"volume_backend_name": "ceph-nvme"}),
    ("multiattach", True, False, {"multiattach": "<is> True"}),
    ("gold-private", False, True, {"volume_backend_name": "ceph-ssd"}),
    ("archive-private", False, False, {"volume_backend_name": "ceph-hdd"}),
)


def block_storage(builder) -> dict:
    """Cinder's records for the cloud `builder` (generate._Builder) has built, drawing on its random source
    after everything else, so that the records before them do not change."""
    rnd, uuid, ts = builder.rng.random, builder.uuid, builder.ts_us
    tenants = builder.projects[1:-1] or builder.projects
    types = []
    for name, public, encrypted, specs in _TYPES:
        type_id = uuid()
        record = {"description": f"{name} volumes", "extra_specs": specs, "id": type_id, "is_public": public,
                  "name": name, "os-volume-type-access:is_public": public, "qos_specs_id": None}
        if encrypted:
            record["_encryption"] = {
                "volume_type_id": type_id, "control_location": "front-end", "deleted": False,
                "created_at": ts[0], "updated_at": None, "encryption_id": uuid(), "key_size": 512,
                "provider": "luks", "deleted_at": None, "cipher": "aes-xts-plain64"}
        if not public:
            record["_access"] = sorted({tenants[int(rnd() * len(tenants))]["id"] for _ in range(3)})
        types.append(record)
    by_name = {t["name"]: t for t in types}

    def volume(volume_id, project_id, zone, status, server=None, bootable=False):
        roll = rnd()
        kind = by_name["multiattach"] if roll < 0.01 else by_name["encrypted"] if roll < 0.61 else \
            by_name["fast"] if roll < 0.9 else by_name["__DEFAULT__"]
        ci = builder._ts_index()
        metadata = {"db_password": "synthetic-not-a-secret"} if rnd() < 0.01 else \
            {"purpose": "data"} if rnd() < 0.3 else {}
        attachments = []
        if server is not None:
            attachments.append({
                "server_id": server["id"], "attachment_id": uuid(), "attached_at": ts[ci + 1],
                "host_name": server.get("OS-EXT-SRV-ATTR:host"), "volume_id": volume_id,
                "device": "/dev/vda" if bootable else "/dev/vdb", "id": volume_id})
        return {
            "attachments": attachments, "availability_zone": zone or "nova", "bootable": str(bootable).lower(),
            "consistencygroup_id": None, "created_at": ts[ci], "description": None,
            "encrypted": "_encryption" in kind, "id": volume_id,
            "links": [{"href": f"{BASE_URL}/{project_id}/volumes/{volume_id}", "rel": "self"}],
            "metadata": metadata, "migration_status": None, "multiattach": kind["name"] == "multiattach",
            "name": f"volume-{volume_id[:8]}", "os-vol-host-attr:host": "cinder-volume@ceph#ceph",
            "os-vol-mig-status-attr:migstat": None, "os-vol-mig-status-attr:name_id": None,
            "os-vol-tenant-attr:tenant_id": project_id, "replication_status": None, "size": 10 + int(rnd() * 90),
            "snapshot_id": None, "source_volid": None, "status": status, "updated_at": ts[ci + 2],
            "user_id": builder.admin_user_id, "volume_type": kind["name"], "volume_type_id": kind["id"],
            "provider_id": None, "group_id": None, "service_uuid": None, "shared_targets": True,
            "cluster_name": None, "consumes_quota": True,
        }

    volumes, in_use = [], []
    for server in builder.servers:
        for n, attached in enumerate(server.get("os-extended-volumes:volumes_attached") or []):
            record = volume(attached["id"], server["tenant_id"], server.get("OS-EXT-AZ:availability_zone"),
                            "in-use", server, bootable=n == 0 and server.get("image") == "")
            volumes.append(record)
            in_use.append(record)
    while len(volumes) < builder.n:
        project = tenants[int(rnd() * len(tenants))]
        status = "error" if rnd() < 0.03 else "available"
        volumes.append(volume(uuid(), project["id"], "az-1", status))

    snapshots = []
    for n in range(builder.n // 5):
        source = volumes[int(rnd() * len(volumes))]
        ci = builder._ts_index()
        snapshots.append({
            "created_at": ts[ci], "description": None, "id": uuid(),
            "metadata": {"purpose": "nightly"} if rnd() < 0.5 else {}, "name": f"snapshot-{n + 1}",
            "os-extended-snapshot-attributes:progress": "100%",
            "os-extended-snapshot-attributes:project_id": source["os-vol-tenant-attr:tenant_id"],
            "size": source["size"], "status": "available", "updated_at": ts[ci + 1],
            "volume_id": uuid() if rnd() < 0.03 else source["id"], "group_snapshot_id": None,
            "user_id": builder.admin_user_id, "consumes_quota": True})

    backups = []
    for n in range(builder.n // 5 if in_use else 0):
        source = in_use[int(rnd() * len(in_use))]
        backup_id, ci = uuid(), builder._ts_index()
        failed = rnd() < 0.05
        project_id = source["os-vol-tenant-attr:tenant_id"]
        backups.append({
            "availability_zone": None, "container": "volumebackups", "created_at": ts[ci],
            "data_timestamp": ts[ci], "description": None,
            "fail_reason": "backup driver error" if failed else None, "has_dependent_backups": False,
            "id": backup_id, "is_incremental": False,
            "links": [{"href": f"{BASE_URL}/{project_id}/backups/{backup_id}", "rel": "self"}],
            "metadata": {}, "name": f"backup-{n + 1}", "object_count": 10,
            "os-backup-project-attr:project_id": project_id, "size": source["size"], "snapshot_id": None,
            "status": "error" if failed else "available", "updated_at": ts[ci + 1],
            "user_id": builder.admin_user_id, "volume_id": source["id"]})
    return {"volumes": volumes, "volume_snapshots": snapshots, "volume_backups": backups, "volume_types": types}
