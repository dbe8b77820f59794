"""The fake cloud's Cinder v3: volumes, snapshots, backups and volume types with their encryption and access.

As Cinder does, it pages by marker (at most 1000 records a page), honours `all_tenants` for its admins only
and silently ignores it for everyone else (their own project comes back, no error), shows the admin-only
volume attributes (`os-vol-host-attr:host`, migration status) and a backup's project to admins only, lists
every private volume type only to an admin asking `is_public=None` (others see the public ones and the
private ones their project may use), and serves a type's encryption and access lists to admins only.
Who is a Cinder admin is `cloud.json`'s `cinder_admin_role` (Cinder's `context_is_admin`, "admin" by default),
so a test can give a cloud a token that Keystone lets list every project and Cinder does not treat as admin.
"""

from __future__ import annotations

import json

from auditor.fakecloud.pages import Collection, HTTPError, flag, int_param, json_response, parse_version, public

CINDER_MAX_PAGE = 1000  # osapi_max_limit
CINDER_MAX_MICROVERSION = (3, 71)
_ADMIN_ONLY_VOLUME_KEYS = ("os-vol-host-attr:host", "os-vol-mig-status-attr:migstat",
                           "os-vol-mig-status-attr:name_id")
# path under /v3 -> (collection, key of the list)
_LISTS = {
    "volumes/detail": ("volumes", "volumes"),
    "snapshots/detail": ("volume_snapshots", "snapshots"),
    "backups/detail": ("volume_backups", "backups"),
}


class BlockStorage:
    def __init__(self, cloud, fixture: dict):
        self.cloud = cloud  # the FakeCloud: its paging, faults and settings
        self.admin_role = cloud.cloud.get("cinder_admin_role", "admin")
        volumes = fixture.get("volumes", [])
        self.collections = {
            "volumes": Collection(volumes, "os-vol-tenant-attr:tenant_id"),
            "volumes_as_member": Collection(
                [{k: v for k, v in volume.items() if k not in _ADMIN_ONLY_VOLUME_KEYS} for volume in volumes],
                "os-vol-tenant-attr:tenant_id"),
            "volume_snapshots": Collection(fixture.get("volume_snapshots", []),
                                           "os-extended-snapshot-attributes:project_id"),
            "volume_backups": Collection(fixture.get("volume_backups", []), "os-backup-project-attr:project_id"),
            # a backup's project is shown to admins only
            "volume_backups_as_member": Collection(
                [{**{k: v for k, v in backup.items() if k != "os-backup-project-attr:project_id"},
                  "_project": backup.get("os-backup-project-attr:project_id")}
                 for backup in fixture.get("volume_backups", [])], "_project"),
        }
        self.types = fixture.get("volume_types", [])

    def is_admin(self, token) -> bool:
        return self.admin_role in token.roles

    def handle(self, parts, query, headers, token):
        if not parts:
            return json_response(300, {"versions": [self._version_doc()]})
        if parts[0] != "v3":
            raise HTTPError(404, "The resource could not be found.")
        if len(parts) == 1:
            return json_response(200, {"version": self._version_doc()})
        version = self._microversion(headers)
        version_headers = {"OpenStack-API-Version": f"volume {version[0]}.{version[1]}",
                           "Vary": "OpenStack-API-Version"}
        admin = self.is_admin(token)
        path = "/".join(parts[1:])
        if path in _LISTS:
            name, key = _LISTS[path]
            if name in ("volumes", "volume_backups") and not admin:
                name += "_as_member"
            every = admin and flag(query, "all_tenants")  # anyone else: ignored, as Cinder does
            return self.cloud.marker_page(
                self.collections[name], key, query, token, every, CINDER_MAX_PAGE, CINDER_MAX_PAGE,
                f"{self.cloud.url}/volume/v3/{path}", version_headers, links_key=f"{key}_links")
        if path == "types":
            # Cinder shows the public types and the private ones the project may use; an admin may ask for
            # the private ones only (false) or all (None). No next link: paged by limit and offset.
            wanted = (query.get("is_public") or ["true"])[0].lower() if admin else "true"
            project = token.project.get("id")
            shown = [t for t in self.types if wanted == "none"
                     or (wanted == "false" and not t.get("is_public", True))
                     or (wanted != "false" and (t.get("is_public", True) or project in t.get("_access", [])))]
            limit = int_param(query, "limit", CINDER_MAX_PAGE, CINDER_MAX_PAGE)
            offset = 0 if self.cloud.paging_fault() == "ignore_offset" else int_param(query, "offset", 0, None)
            page = [public(t) for t in shown[offset:offset + limit]]
            return 200, version_headers, json.dumps({"volume_types": page}).encode()
        if len(parts) == 3 and parts[1] == "types":
            volume_type = next((t for t in self.types if t.get("id") == parts[2]), None)
            if volume_type is None or (not admin and not volume_type.get("is_public", True)):
                raise HTTPError(404, f"Volume type {parts[2]} could not be found.")
            return 200, version_headers, json.dumps({"volume_type": public(volume_type)}).encode()
        if len(parts) == 4 and parts[1] == "types" and parts[3] in ("encryption", "os-volume-type-access"):
            volume_type = next((t for t in self.types if t.get("id") == parts[2]), None)
            if volume_type is None:
                raise HTTPError(404, f"Volume type {parts[2]} could not be found.")
            if not admin:
                policy = ("volume_extension:volume_type_encryption:get" if parts[3] == "encryption"
                          else "volume_extension:volume_type_access")
                raise HTTPError(403, f"Policy doesn't allow {policy} to be performed.")
            if parts[3] == "encryption":
                encryption = volume_type.get("_encryption")
                return 200, version_headers, json.dumps(encryption or {}).encode()
            if volume_type.get("is_public", True):
                raise HTTPError(404, f"Access list not available for public volume type {parts[2]}.")
            access = [{"volume_type_id": parts[2], "project_id": p} for p in volume_type.get("_access", [])]
            return 200, version_headers, json.dumps({"volume_type_access": access}).encode()
        raise HTTPError(404, "The resource could not be found.")

    def _version_doc(self) -> dict:
        return {"id": "v3.0", "status": "CURRENT", "min_version": "3.0",
                "version": f"{CINDER_MAX_MICROVERSION[0]}.{CINDER_MAX_MICROVERSION[1]}",
                "updated": "2023-08-31T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.cloud.url}/volume/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.volume+json;version=3"}]}

    @staticmethod
    def _microversion(headers) -> tuple[int, int]:
        header = headers.get("OpenStack-API-Version") or ""
        service, _, value = header.strip().partition(" ")
        if service.lower() != "volume" or not value.strip():
            return (3, 0)
        if value.strip() == "latest":
            return CINDER_MAX_MICROVERSION
        try:
            version = parse_version(value.strip())
        except ValueError:
            raise HTTPError(400, f"Invalid API version request string {value!r}") from None
        if not (3, 0) <= version <= CINDER_MAX_MICROVERSION:
            raise HTTPError(406, f"Version {value.strip()} is not supported by the API.")
        return version
