"""Cinder v3: the block-storage listings of a snapshot (volumes, snapshots, backups, volume types with their
encryption and access lists), and whether Cinder listed the whole cloud to the credentials that asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from auditor.collect.pages import records_with_field, small_records
from auditor.collect.paging import CollectionFailure, Listing, Pager
from auditor.config import CollectionSettings

if TYPE_CHECKING:  # the collector imports this module
    from auditor.collect.collector import RegionSnapshot

CINDER_MAX_PAGE = 1000  # Cinder's osapi_max_limit: it caps every page whatever `limit` says


@dataclass
class BlockStorage:
    """What the block-storage listings need to know before they start."""

    offered: bool  # the catalog has Cinder in this region
    cinder_admin: bool  # the token holds the role Cinder's default policy takes for admin
    project_id: str | None  # the token's project: all that Cinder lists to others
    microversion: str | None = None
    failure: str | None = None  # why the API cannot be used


def block_storage_jobs(conn, pager: Pager, every: bool, storage: BlockStorage,
                       settings: CollectionSettings) -> dict:
    """Cinder v3. Cinder answers `all_tenants` with every project's records for its admins only, and
    silently with the token's own project for anyone else: a cloud-scope listing by credentials Cinder
    does not take for admin is recorded as missing the other projects, never passed off as the cloud."""
    page = settings.page_size
    version = {"microversion": storage.microversion} if storage.microversion else {}
    # Records may not say whose they are (Cinder shows a backup's project to its admins only): the project
    # listed, or in scope `cloud` the token's own, which is all Cinder lists to a token it does not take
    # for admin (a record that names its project keeps it).
    context = {"project_id": pager.project_id or storage.project_id}

    def listing_of(path, resource_type, key):
        def job():
            if storage.failure:
                listing = Listing(resource_type, key)
                listing.fail(CollectionFailure(resource_type, pager.project_id, None, "", storage.failure))
                return listing
            params = {"limit": page, **({"all_tenants": "True"} if every else {})}
            return pager.list_marker_paged(conn.block_storage, path, params, Listing(resource_type, key),
                                           f"{key}_links", context, **version)
        return job

    def volume_types():
        types = Listing("volume_types", "volume_types")
        encryption = Listing("volume_type_encryption", "volume_type_encryption", id_key="volume_type_id")
        access = Listing("volume_type_access", "volume_type_access", id_key="project_id")
        if storage.failure:
            types.fail(CollectionFailure("volume_types", pager.project_id, None, "", storage.failure))
        else:  # no next links: paged by offset to a short page; every private type for an admin (None)
            pager.list_offset_paged(conn.block_storage, "/types", {"is_public": "None"} if every else {},
                                    types, min(page, CINDER_MAX_PAGE), **version)
        if not every:
            return (types,)
        if not types.complete:
            for dependent in (encryption, access):
                dependent.fail(CollectionFailure(dependent.resource_type, None, None, "/types",
                                                 "the volume types could not be listed, so neither could this"))
            return types, encryption, access
        listed = small_records(types)
        ids = [t["id"] for t in listed if isinstance(t.get("id"), str)]
        private = [t["id"] for t in listed if isinstance(t.get("id"), str) and t.get("is_public") is False]
        pager.list_per_parent(conn.block_storage, "/types/{}/encryption", "/types/{}", ids, "volume_type_id",
                              "volume types", encryption, settings.concurrency, one_record=True)
        pager.list_per_parent(conn.block_storage, "/types/{}/os-volume-type-access", "/types/{}", private,
                              "volume_type_id", "private volume types", access, settings.concurrency)
        return types, encryption, access

    return {
        "volumes": listing_of("/volumes/detail", "volumes", "volumes"),
        "volume_snapshots": listing_of("/snapshots/detail", "volume_snapshots", "snapshots"),
        "volume_backups": listing_of("/backups/detail", "volume_backups", "backups"),
        "volume_types": volume_types,
    }


def check_cinder_admin(snapshot: RegionSnapshot, storage: BlockStorage) -> None:
    """Whether Cinder listed every project to a cloud-scope snapshot: it answers `all_tenants` and
    `is_public=None` to its admins only, and silently with the token's own project (and the public types)
    to anyone else. What Cinder itself shows decides: its admin-only attributes (a volume's
    `os-vol-host-attr:host`, a backup's project) present say admin; absent, or a 403 for a type's encryption
    or access list, say not; without any such sign, its default policy (the `admin` role) decides."""
    if storage.failure:
        return  # nothing was listed
    signs = []  # (is admin, why)
    for resource_type, field_name, noun in (
            ("volumes", "os-vol-host-attr:host", "a volume's back-end host"),
            ("volume_backups", "os-backup-project-attr:project_id", "a backup's project")):
        records, with_field = records_with_field(snapshot.listings[resource_type], field_name)
        if records:
            signs.append((with_field > 0, f"it does not show these credentials {noun}"))
    for resource_type in ("volume_type_encryption", "volume_type_access"):
        if any(f.http_status == 403 for f in snapshot.listings[resource_type].failures):
            signs.append((False, f"it refuses them the {resource_type.replace('_', ' ')} (403)"))
    if any(admin for admin, _ in signs):
        return  # an attribute shown to admins only settles it (a 403 may come from a proxy or one type)
    refusals = [why for admin, why in signs if not admin]
    if refusals:
        reason = refusals[0]
    elif storage.cinder_admin:
        return
    else:
        reason = "these credentials hold no admin role"
    for resource_type, path, noun in (
            ("volumes", "/volumes/detail", "volumes"), ("volume_snapshots", "/snapshots/detail", "volume snapshots"),
            ("volume_backups", "/backups/detail", "volume backups"),
            ("volume_types", "/types", "private volume types"),
            ("volume_type_access", "/types", "private volume types' access lists")):
        snapshot.listings[resource_type].fail(CollectionFailure(
            resource_type, None, None, path,
            f"Cinder lists every project's {noun} to its admins only, and {reason}: only project "
            f"{storage.project_id}'s were listed (Cinder ignores all_tenants and is_public for others, "
            "without an error)"))
