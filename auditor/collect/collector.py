"""Collect one cloud region: connect with openstacksdk, list every resource type concurrently as raw pages.

Scope: credentials that may list all Keystone projects are cloud admin, and every listing asks for all
projects. Otherwise the snapshot covers only the projects the user has roles on, one scoped connection each,
and says so (`scope = 'projects'` with their ids): a project-scoped snapshot never poses as cloud-wide.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import openstack
import openstack.connection
import openstack.exceptions
import orjson
from keystoneauth1 import exceptions as ksa_exceptions

from auditor import __version__
from auditor.collect.connection import (
    authenticate,
    block_storage_microversion,
    compute_microversion,
    connect,
    harden,
    retry_policy,
)
from auditor.collect.block_storage import BlockStorage, block_storage_jobs, check_cinder_admin
from auditor.collect.object_storage import SWIFT_MAX_PAGE, account_urls, list_containers
from auditor.collect.pages import embedded_lists, small_records
from auditor.collect.paging import CollectionFailure, Listing, Pager
from auditor.collect.retry import DeadlineReached, RetryPolicy
from auditor.config import CloudTarget, CollectionSettings
from auditor.errors import CollectionCancelled, CollectionError

log = logging.getLogger(__name__)

SPOOL_PREFIX = ".auditor-spool-"
NOVA_MAX_PAGE = 1000  # Nova caps every page at its max_limit (1000 by default) whatever `limit` says

# resource type -> snapshots column holding its row count
RESOURCE_TYPES = {
    "projects": "project_count",
    "servers": "server_count",
    "flavors": "flavor_count",
    "availability_zones": "availability_zone_count",
    "server_groups": "server_group_count",
    "images": "image_count",
    "image_members": "image_member_count",
    "security_groups": "security_group_count",
    "security_group_rules": "security_group_rule_count",
    "ports": "port_count",
    "floating_ips": "floating_ip_count",
    "networks": "network_count",
    "subnets": "subnet_count",
    "routers": "router_count",
    "address_groups": "address_group_count",
    "users": "user_count",
    "roles": "role_count",
    "role_assignments": "role_assignment_count",
    "application_credentials": "application_credential_count",
    "volumes": "volume_count",
    "volume_snapshots": "volume_snapshot_count",
    "volume_backups": "volume_backup_count",
    "volume_types": "volume_type_count",
    "volume_type_encryption": "volume_type_encryption_count",
    "volume_type_access": "volume_type_access_count",
    "containers": "container_count",
}
# Listed in cloud scope only, since their APIs answer admins only: Keystone's users, roles, role assignments
# and application credentials, and Cinder's volume type encryption and access lists. A project-scoped
# snapshot has no view of them, and says so by not listing them (`not collected`).
CLOUD_SCOPE_TYPES = ("users", "roles", "role_assignments", "application_credentials",
                     "volume_type_encryption", "volume_type_access")


@dataclass
class RegionSnapshot:
    """Everything collected from one cloud/region, ready for the store."""

    cloud: str
    region: str
    scope: str
    scope_project_ids: list[str] | None
    auth_user_id: str | None
    auth_project_id: str | None
    compute_microversion: str | None
    started_at: datetime
    finished_at: datetime | None = None
    listings: dict[str, Listing] = field(default_factory=dict)
    tool_version: str = __version__

    @property
    def failures(self) -> list[CollectionFailure]:
        return [f for listing in self.listings.values() for f in listing.failures]

    @property
    def status(self) -> str:
        if not self.failures:
            return "complete"
        if any(listing.complete for listing in self.listings.values()):
            return "partial"
        return "failed"

    def resource_status(self, resource_type: str) -> str:
        listing = self.listings[resource_type]
        if listing.complete:
            return "complete"
        return "partial" if listing.count else "failed"


def failed_snapshot(cloud: str, region: str, started_at: datetime, reason: str) -> RegionSnapshot:
    """A snapshot that failed as a whole (authentication, an unreachable cloud, the write): nothing listed,
    one error of resource type `snapshot` saying why. Its scope was never learned, so it claims the
    narrower one, `projects`, with no project."""
    snapshot = RegionSnapshot(cloud=cloud, region=region, scope="projects", scope_project_ids=[],
                              auth_user_id=None, auth_project_id=None, compute_microversion=None,
                              started_at=started_at, finished_at=datetime.now(timezone.utc).replace(tzinfo=None))
    for resource_type in RESOURCE_TYPES:
        if resource_type in CLOUD_SCOPE_TYPES:
            continue  # a scope-`projects` snapshot does not list them
        listing = Listing(resource_type, "")
        listing.complete = False
        snapshot.listings[resource_type] = listing
    snapshot.listings["projects"].failures.append(CollectionFailure("snapshot", None, None, "", reason))
    return snapshot


@dataclass
class _Unit:
    """One connection and the listings it makes: the whole cloud (admin) or one project."""

    conn: openstack.connection.Connection
    pager: Pager
    all_projects: bool
    admin_role: bool = False  # the whole cloud's unit: the token holds the `admin` role (services' admin)
    token_project_id: str | None = None  # the whole cloud's unit: the project the token is scoped to


class Collector:
    """Collect cloud/regions; listings of every region share one bounded pool (our throttle)."""

    def __init__(self, settings: CollectionSettings, stop: threading.Event | None = None,
                 spool_parent: Path | None = None):
        self.settings = settings
        self.stop = stop or threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="listing")
        parent = Path(spool_parent or tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_spools(parent)
        # Raw pages wait here until the snapshot is written; removed on close.
        self.spool = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=parent))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.spool, ignore_errors=True)

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def collect(self, target: CloudTarget, region: str) -> RegionSnapshot:
        """Collect one region; the snapshot's pages live in this collector's spool until it is closed."""
        started = datetime.now(timezone.utc).replace(tzinfo=None)
        policy = retry_policy(self.settings, self.stop)
        conn = connect(target.name, region, self.settings, policy)
        connections = [conn]
        try:
            return self._collect(conn, connections, target, region, started, policy)
        finally:
            for connection in connections:
                connection.close()

    def _collect(self, conn, connections, target: CloudTarget, region: str, started: datetime,
                 policy: RetryPolicy) -> RegionSnapshot:
        access = conn.session.auth.get_access(conn.session)
        pager = Pager(policy, self.spool, max_pages=self.settings.max_pages,
                      max_response_bytes=int(self.settings.max_response_mb * 2**20))
        microversion, compute_failure = compute_microversion(conn, policy)
        storage = BlockStorage(offered=conn.has_service("block-storage"),
                                cinder_admin=any(r.lower() == "admin" for r in access.role_names or []),
                                project_id=access.project_id)
        if storage.offered:
            storage.microversion, storage.failure = block_storage_microversion(conn, policy)
        else:
            log.info("the service catalog has no block-storage (Cinder) in this region: no volumes to list")

        if target.scope == "project":
            admin, projects = False, None
        else:
            admin, projects = self._cloud_projects(conn, pager, access, target)
        swift = _ObjectStorage(offered=conn.has_service("object-store"), project_id=access.project_id)
        if not swift.offered:
            log.info("the service catalog has no object-store (Swift) in this region: no containers to list")
        elif admin:
            swift.projects = [p["id"] for p in small_records(projects) if isinstance(p.get("id"), str)]
            swift.projects_complete = projects.complete
        snapshot = RegionSnapshot(
            cloud=target.name,
            region=region or conn.config.region_name or "",
            scope="cloud" if admin else "projects",
            scope_project_ids=None,
            auth_user_id=access.user_id,
            auth_project_id=access.project_id,
            compute_microversion=microversion,
            started_at=started,
        )
        unscoped: list[CollectionFailure] = []
        if admin:
            units = [_Unit(conn, pager, all_projects=True, token_project_id=access.project_id,
                           admin_role=any(r.lower() == "admin" for r in access.role_names or []))]
        else:
            projects, accessible = self._user_projects(conn, pager, access)
            units, unscoped = self._project_units(conn, pager, access, accessible)
            connections.extend(unit.conn for unit in units if unit.conn is not conn)
            snapshot.scope_project_ids = sorted(u.pager.project_id for u in units)
        snapshot.listings["projects"] = projects

        jobs = [(unit, resource_type, job) for unit in units
                for resource_type, job in self._jobs(unit, microversion, compute_failure, storage, swift).items()]
        started_jobs = {(id(unit), resource_type): self.pool.submit(_guarded, resource_type, unit, job)
                        for unit, resource_type, job in sorted(jobs, key=_longest_first)}
        futures: dict[str, list[Future]] = {}
        for unit, resource_type, _job in jobs:  # the listings' order stays the one _jobs gives
            futures.setdefault(resource_type, []).append(started_jobs[(id(unit), resource_type)])
        results: dict[str, list[Listing]] = {}
        for resource_type, pending in futures.items():
            results[resource_type] = [self._wait(f) for f in pending]
        if self.stop.is_set():
            raise CollectionCancelled("collection stopped before it finished; nothing was written")
        for resource_type, listings in results.items():
            if resource_type in _PAIRED:
                for n, listed in enumerate((resource_type, *_listed_with(resource_type, admin))):
                    snapshot.listings[listed] = _merge(listed, [group[n] for group in listings])
            else:
                snapshot.listings[resource_type] = _merge(resource_type, listings)
        if admin and storage.offered:
            check_cinder_admin(snapshot, storage)
        if unscoped:  # every listing misses the resources of the projects we could not scope to
            for listing in snapshot.listings.values():
                listing.complete = False
            snapshot.listings["projects"].failures.extend(unscoped)
        for listing in snapshot.listings.values():
            listing.seen_ids = set()  # needed while paging only
        snapshot.finished_at = datetime.now(timezone.utc).replace(tzinfo=None)
        return snapshot

    def _wait(self, future: Future):
        # Wait in slices so that SIGTERM's handler runs promptly in the main thread.
        while True:
            try:
                return future.result(timeout=0.2)
            except TimeoutError:
                continue
            except CollectionCancelled:
                self.stop.set()
                raise

    # -- scope ---------------------------------------------------------------------------------------
    def _cloud_projects(self, conn, pager, access, target) -> tuple[bool, Listing | None]:
        listing, info = pager.get_single(conn.identity, "/projects", {}, Listing("projects", "projects"))
        if listing.complete:
            if info.truncated:
                listing.fail(CollectionFailure(
                    "projects", None, None, "/projects",
                    "Keystone truncated the project list (its list_limit); some projects are missing",
                ))
            return True, listing
        forbidden = any(f.http_status == 403 for f in listing.failures)
        if forbidden and target.scope == "cloud":
            raise CollectionError(
                f"cloud {target.name!r}: scope 'cloud' needs admin credentials, but listing all projects was "
                "refused (403); use scope 'auto' or 'project'"
            )
        if not forbidden and any(role.lower() == "admin" for role in access.role_names or []):
            return True, listing  # admin whose project listing failed: cloud-wide, and recorded as partial
        return False, None

    def _user_projects(self, conn, pager, access) -> tuple[Listing, list[dict]]:
        """The projects the user has a role on (a small, unpaginated list, parsed here)."""
        listing, _ = pager.get_single(conn.identity, "/auth/projects", {}, Listing("projects", "projects"))
        projects = []
        if listing.complete and listing.spools:
            body = orjson.loads(listing.spools[0].read_bytes())
            projects = [p for p in body["projects"] if isinstance(p, dict)]
        if not projects:  # the token's own project is always in scope
            own = {"id": access.project_id, "name": access.project_name, "domain_id": access.project_domain_id}
            projects = [own]
            listing.spools, listing.count = [], 0
            listing.add_page(orjson.dumps({"projects": [own]}), 1, self.spool)
        return listing, projects

    def _project_units(self, conn, pager: Pager, access, projects) -> tuple[list[_Unit], list[CollectionFailure]]:
        units, failures = [], []
        app_credential = "applicationcredential" in str(conn.config.config.get("auth_type") or "").replace("_", "")
        for project in projects:
            project_id = project.get("id")
            if project_id == access.project_id:
                units.append(_Unit(conn, pager.for_project(project_id), False))
                continue
            if app_credential:
                continue  # an application credential is bound to its one project
            try:
                scoped = conn.connect_as_project(project)
                harden(scoped, pager.policy, self.settings.concurrency)
                authenticate(scoped, f"project {project_id}", pager.policy)
            except CollectionError as exc:
                failures.append(CollectionFailure("projects", project_id, None, "/auth/tokens",
                                                  f"cannot scope to project: {exc}"))
                continue
            except (ksa_exceptions.ClientException, openstack.exceptions.SDKException) as exc:
                failures.append(CollectionFailure("projects", project_id, getattr(exc, "http_status", None),
                                                  "/auth/tokens", f"cannot scope to project: {exc}"))
                continue
            units.append(_Unit(scoped, pager.for_project(project_id), False))
        return units, failures

    # -- listings ------------------------------------------------------------------------------------
    def _jobs(self, unit: _Unit, microversion: str | None, compute_failure: str | None,
              storage: BlockStorage, swift: "_ObjectStorage") -> dict:
        conn, pager, every = unit.conn, unit.pager, unit.all_projects
        page = self.settings.page_size
        compute = {"microversion": microversion} if microversion else {}
        all_tenants = {"all_tenants": "True"} if every else {}

        def servers():
            return pager.list_marker_paged(conn.compute, "/servers/detail", {"limit": page, **all_tenants},
                                           Listing("servers", "servers"), "servers_links", **compute)

        def flavors():
            params = {"limit": page, **({"is_public": "None"} if every else {})}
            return pager.list_marker_paged(conn.compute, "/flavors/detail", params, Listing("flavors", "flavors"),
                                           "flavors_links", **compute)

        def zones():
            path = "/os-availability-zone/detail" if every else "/os-availability-zone"
            listing = Listing("availability_zones", "availabilityZoneInfo", id_key="zoneName")
            return pager.get_single(conn.compute, path, {}, listing, **compute)[0]

        def server_groups():
            params = {"all_projects": "True"} if every else {}
            return pager.list_offset_paged(conn.compute, "/os-server-groups", params,
                                           Listing("server_groups", "server_groups"), min(page, NOVA_MAX_PAGE),
                                           **compute)

        def images():
            listing = pager.list_glance(conn.image, {"visibility": "all", "limit": page}, Listing("images", "images"))
            if listing.complete:  # hidden images only show when asked for
                pager.list_glance(conn.image, {"visibility": "all", "os_hidden": "true", "limit": page}, listing)
            members = Listing("image_members", "members", id_key="member_id")
            if not listing.complete:
                members.fail(CollectionFailure("image_members", pager.project_id, None, "/images",
                                               "the images could not be listed whole, so neither could the "
                                               "members of the shared ones"))
            try:
                images = small_records(listing)
            except ValueError as exc:  # a value DuckDB reads and Python does not (NaN): say so, keep the images
                members.fail(CollectionFailure("image_members", pager.project_id, None, "/images",
                                               f"the images could not be read to find the shared ones: {exc}"))
                return listing, members
            # Glance shows an image's members to its owner and to its admins (the admin role, by default);
            # anyone else sees only its own membership, which is not the image's member list.
            glance_admin = every and unit.admin_role
            owner = pager.project_id if not every else (None if glance_admin else unit.token_project_id)
            shared = [i for i in images if i.get("visibility") == "shared" and isinstance(i.get("id"), str)]
            asked = [i["id"] for i in shared if glance_admin or i.get("owner") == owner]
            if every and not glance_admin:  # the others' shared images it could not even see included
                members.fail(CollectionFailure(
                    "image_members", None, None, "/images",
                    f"Glance shows an image's members to its owner and its admins only, and these credentials "
                    f"hold no admin role: only the members of project {owner}'s shared images were listed"))
            pager.list_per_parent(conn.image, "/images/{}/members", "/images/{}", asked, "image_id",
                                  "shared images", members, self.settings.concurrency)
            if every and not glance_admin and listing.complete:  # the others' private images: not shown
                listing.fail(CollectionFailure(
                    "images", None, None, "/images",
                    "Glance lists other projects' private images, and their shared images unless shared with "
                    "and accepted by the token's project, to its admins only, and these credentials hold no "
                    f"admin role: only public and community images and those project {unit.token_project_id} "
                    "owns or accepted were listed"))
            return listing, members

        def security_groups():
            groups = pager.list_marker_paged(conn.network, "/security-groups", {"limit": page},
                                             Listing("security_groups", "security_groups"), "security_groups_links")
            lacking, embedded = embedded_lists(groups, "security_group_rules")
            if groups.complete and not lacking:
                rules = Listing("security_group_rules", "security_group_rules", embedded=True)
                rules.count = embedded
            else:  # rules not embedded (or groups failed): list them on their own
                rules = pager.list_marker_paged(conn.network, "/security-group-rules", {"limit": page},
                                                Listing("security_group_rules", "security_group_rules"),
                                                "security_group_rules_links")
            return groups, rules

        def network(path, resource_type, key):
            return lambda: pager.list_marker_paged(conn.network, path, {"limit": page},
                                                   Listing(resource_type, key), f"{key}_links")

        def extension(path, resource_type, key, alias):
            """A listing only some clouds offer: when Neutron answers 404 and does not list the extension,
            the cloud has none of these resources, and the listing is complete and empty."""
            listing_job = network(path, resource_type, key)

            def job():
                listing = listing_job()
                not_found = listing.failures and all(f.http_status == 404 for f in listing.failures)
                if not listing.count and not_found:
                    offered = pager.network_extensions(conn.network, listing)
                    if offered is not None and alias not in offered:
                        log.info("Neutron offers no %s extension: no %s to list", alias, resource_type)
                        listing.complete, listing.failures = True, []
                return listing
            return job

        def unavailable(resource_type, key):  # the compute API's version could not be discovered
            def job():
                listing = Listing(resource_type, key)
                listing.fail(CollectionFailure(resource_type, pager.project_id, None, "", compute_failure))
                return listing
            return job

        def users():
            listing, info = pager.get_single(conn.identity, "/users", {}, Listing("users", "users"))
            if info is not None and info.truncated:
                listing.fail(CollectionFailure("users", None, None, "/users", "Keystone truncated the user list "
                                               "(its list_limit); some users are missing"))
            ids = _string_ids(info.ids if info is not None else [])
            credentials = Listing("application_credentials", "application_credentials")
            if not listing.complete and not ids:
                credentials.fail(CollectionFailure("application_credentials", None, None, "/users",
                                                   "the users could not be listed, so neither could their "
                                                   "application credentials"))
                return listing, credentials
            pager.list_per_parent(conn.identity, "/users/{}/application_credentials", "/users/{}", ids,
                                  "user_id", "users", credentials, self.settings.concurrency)
            if not listing.complete:  # the users missing from the list have credentials we could not see
                credentials.fail(CollectionFailure("application_credentials", None, None, "/users",
                                                   "the user list is incomplete, so the application "
                                                   "credentials of the users missing from it are too"))
            return listing, credentials

        def roles():
            listing, info = pager.get_single(conn.identity, "/roles", {}, Listing("roles", "roles"))
            if info is not None and info.truncated:
                listing.fail(CollectionFailure("roles", None, None, "/roles", "Keystone truncated the role list "
                                               "(its list_limit); some roles are missing"))
            return listing

        def role_assignments():
            listing = Listing("role_assignments", "role_assignments", id_key="role")
            listing, info = pager.get_single(conn.identity, "/role_assignments",
                                             {"effective": "true", "include_names": "true"}, listing)
            if info is not None and info.truncated:
                listing.fail(CollectionFailure("role_assignments", None, None, "/role_assignments",
                                               "Keystone truncated the role assignments (its list_limit)"))
            return listing

        if storage.offered:
            storage_jobs = block_storage_jobs(conn, pager, every, storage, self.settings)
        else:
            storage_jobs = {t: _nothing(t, every) for t in ("volumes", "volume_snapshots", "volume_backups",
                                                           "volume_types")}
        if compute_failure:
            servers, flavors = unavailable("servers", "servers"), unavailable("flavors", "flavors")
            zones = unavailable("availability_zones", "availabilityZoneInfo")
            server_groups = unavailable("server_groups", "server_groups")
        return {
            "servers": servers,
            "flavors": flavors,
            "availability_zones": zones,
            "server_groups": server_groups,
            "images": images,
            "security_groups": security_groups,
            "ports": network("/ports", "ports", "ports"),
            "floating_ips": extension("/floatingips", "floating_ips", "floatingips", "router"),
            "networks": network("/networks", "networks", "networks"),
            "subnets": network("/subnets", "subnets", "subnets"),
            "routers": extension("/routers", "routers", "routers", "router"),
            "address_groups": extension("/address-groups", "address_groups", "address_groups", "address-group"),
            **({"users": users, "roles": roles, "role_assignments": role_assignments} if every else {}),
            **storage_jobs,
            "containers": self._containers_job(unit, swift) if swift.offered else _nothing("containers", every),
        }

    def _containers_job(self, unit: _Unit, swift: "_ObjectStorage"):
        """Swift: in cloud scope every project's account, else the unit's project's own (object_storage.py)."""
        def job():
            listing = Listing("containers", "containers")
            own = unit.pager.project_id or swift.project_id
            try:
                endpoint = unit.conn.object_store.get_endpoint()
            except (ksa_exceptions.ClientException, openstack.exceptions.SDKException) as exc:
                listing.fail(CollectionFailure("containers", unit.pager.project_id, None, "",
                                               f"no object-store endpoint: {exc}"))
                return listing
            projects = swift.projects if unit.all_projects else [own]
            accounts, unnamed = account_urls(endpoint, own, sorted(set(projects) | {own}))
            if unnamed and unit.all_projects:
                listing.fail(CollectionFailure("containers", None, None, endpoint, unnamed))
            if unit.all_projects and not swift.projects_complete:
                listing.fail(CollectionFailure("containers", None, None, "/projects", "the projects could not all "
                                               "be listed, so neither could their containers"))
            return list_containers(unit.pager, unit.conn.object_store, accounts, self.settings.concurrency,
                                   min(self.settings.page_size, SWIFT_MAX_PAGE), listing)
        return job

def _remove_stale_spools(parent: Path) -> None:
    """Spool folders left by a process that died (kill -9) before it could remove them."""
    for folder in parent.glob(f"{SPOOL_PREFIX}*"):
        try:
            pid = int(folder.name[len(SPOOL_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


# The listings that take longest start first (a HEAD per Swift container, a GET per user, then the largest
# listings): a pool that started them last would wait for them alone at the end.
_LONGEST_FIRST = ("containers", "users", "servers", "ports", "volumes")


def _longest_first(job: tuple) -> int:
    resource_type = job[1]
    return _LONGEST_FIRST.index(resource_type) if resource_type in _LONGEST_FIRST else len(_LONGEST_FIRST)


def _guarded(resource_type: str, unit: _Unit, job):
    """Run a listing job; an unexpected error fails that listing (recorded), not the whole snapshot."""
    try:
        return job()
    except CollectionCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any bug or surprise here must not lose the other listings
        if isinstance(exc, DeadlineReached):
            message = f"{exc}; stopped"
        elif isinstance(exc, (ksa_exceptions.ClientException, openstack.exceptions.SDKException)):
            # the SDK could not set up the service's API (its version discovery failed after every try)
            message = f"the API cannot be used: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            log.warning("listing %s failed: %s", resource_type, message)
        else:
            log.error("listing %s failed unexpectedly: %r", resource_type, exc)
            message = f"internal error: {exc!r}"
        failure = CollectionFailure(resource_type, unit.pager.project_id, None, "", message)
        failed = Listing(resource_type, "")
        failed.fail(failure)
        if resource_type in _PAIRED:
            others = [Listing(listed, "") for listed in _listed_with(resource_type, unit.all_projects)]
            for other in others:
                other.complete = False
            return (failed, *others)
        return failed


def _string_ids(texts: list) -> list[str]:
    """The string ids among records' ids as JSON text. One Python cannot read (a lone surrogate) is kept as
    its text, which no URL may hold, so that list_per_parent reports it rather than crashing on it."""
    ids = []
    for text in texts:
        if not text or not text.startswith('"'):
            continue  # no id, or not a string: the store reports those records
        try:
            ids.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            ids.append(text)
    return ids


# Jobs that list several resource types at once, the others from the first: rules from their groups, the
# members of each shared image, the application credentials of each user listed, the encryption and access
# lists of each volume type. A job for volume types in project scope lists the types alone.
_PAIRED = {"security_groups": ("security_group_rules",), "images": ("image_members",),
           "users": ("application_credentials",),
           "volume_types": ("volume_type_encryption", "volume_type_access")}


@dataclass
class _ObjectStorage:
    """What the container listing needs to know before it starts."""

    offered: bool  # the catalog has Swift in this region
    project_id: str | None  # the token's project, whose account the catalog names
    projects: list[str] = field(default_factory=list)  # cloud scope: every project listed
    projects_complete: bool = True


def _listed_with(resource_type: str, every: bool) -> tuple[str, ...]:
    """The resource types a job lists along with `resource_type`; in project scope, none listed in cloud
    scope only."""
    return tuple(t for t in _PAIRED.get(resource_type, ()) if every or t not in CLOUD_SCOPE_TYPES)


def _nothing(resource_type: str, every: bool):
    """A listing of a service the region does not offer: complete, and empty."""
    def job():
        if resource_type not in _PAIRED:
            return Listing(resource_type, "")
        return tuple(Listing(listed, "") for listed in (resource_type, *_listed_with(resource_type, every)))
    return job


def _merge(resource_type: str, listings: list[Listing]) -> Listing:
    """One listing from those of several scope units; the store drops the duplicates shared resources give."""
    if len(listings) == 1:
        return listings[0]
    first = listings[0]
    merged = Listing(resource_type, first.key, units=len(listings))
    for listing in listings:
        merged.spools.extend(listing.spools)
        merged.largest_page = max(merged.largest_page, listing.largest_page)
        merged.count += listing.count
        merged.requests += listing.requests
        merged.seconds += listing.seconds
        merged.failures.extend(listing.failures)
        merged.complete = merged.complete and listing.complete
    merged.embedded = all(listing.embedded for listing in listings)  # one Neutron: all or none
    return merged
