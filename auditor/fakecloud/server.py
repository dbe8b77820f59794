"""A fake OpenStack cloud over real HTTP: Keystone v3, Nova v2.1, Glance v2, Neutron v2.0 and Cinder v3
(blockstorage.py) on one port.

It serves a fixture (fixture.py) or a synthetic cloud (generate.py) with the pagination, scoping and
microversion behaviour of the real services, and injects faults per path so tests can prove how the
collector copes. Items are serialized once up front and pages are joined from bytes, so that benchmarks
measure the collector and not this server.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

from auditor.fakecloud.blockstorage import BlockStorage
from auditor.fakecloud.objectstore import ObjectStore
from auditor.fakecloud.faults import Fault
from auditor.fakecloud.generate import IDENTITY_URL, role_id
from auditor.fakecloud.pages import (
    Collection,
    HTTPError,
    error_body,
    flag,
    int_param,
    json_response,
    parse_version,
    public,
)

NOVA_MAX_PAGE = 1000  # nova's default max_limit
GLANCE_DEFAULT_PAGE, GLANCE_MAX_PAGE = 25, 1000
EMBEDDED_FLAVOR_MICROVERSION = (2, 47)


@dataclass
class Token:
    user: dict
    project: dict
    roles: list[str]
    methods: list[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


# The Neutron API extensions the fake cloud offers (cloud.json `network_extensions_without` removes some),
# and the listings that need one.
NETWORK_EXTENSIONS = ("security-group", "port-security", "router", "external-net", "address-group",
                      "standard-attr-tag")
NETWORK_EXTENSION_OF = {"routers": "router", "floatingips": "router", "address-groups": "address-group"}


class _Identity:
    """Keystone's users, roles and effective role assignments (with names), built from the fixture: the
    users of users.json and those who log in (cloud.json), each with the roles it holds per project
    (`roles` of a login user, `_roles` of a listed one); application credentials by user."""

    def __init__(self, cloud: dict, fixture: dict, projects: dict):
        listed = {u["id"]: u for u in fixture.get("users", [])}
        holdings: dict[str, dict] = {uid: dict(u.get("_roles") or {}) for uid, u in listed.items()}
        for login in cloud.get("users", []):
            holdings.setdefault(login["id"], {}).update(login.get("roles") or {})
            if login["id"] not in listed:
                listed[login["id"]] = {
                    "id": login["id"], "name": login["name"], "domain_id": "default", "enabled": True,
                    "default_project_id": login.get("default_project_id"), "password_expires_at": None,
                    "options": {}, "links": {"self": f"{IDENTITY_URL}/v3/users/{login['id']}"},
                }
        self.users = [public(u) for u in listed.values()]
        self.user_ids = set(listed)
        names = sorted({r for held in holdings.values() for roles in held.values() for r in roles})
        self.roles = fixture.get("roles") or [
            {"id": role_id(name), "name": name, "domain_id": None, "description": None, "options": {},
             "links": {"self": f"{IDENTITY_URL}/v3/roles/{role_id(name)}"}} for name in names]
        role_by_name = {r.get("name"): r for r in self.roles}
        domain = {"id": "default", "name": "Default"}
        self.assignments = []
        for uid, held in holdings.items():
            for project_id, roles in held.items():
                project = projects.get(project_id, {"id": project_id, "name": None})
                for name in roles:
                    role = role_by_name.get(name, {"id": role_id(name), "name": name})
                    self.assignments.append({
                        "role": {"id": role["id"], "name": name},
                        "user": {"id": uid, "name": listed[uid].get("name"), "domain": domain},
                        "scope": {"project": {"id": project_id, "name": project.get("name"), "domain": domain}},
                        "links": {"assignment": f"{IDENTITY_URL}/v3/projects/{project_id}/users/{uid}/roles/"
                                                f"{role['id']}"},
                    })
        self.credentials: dict[str, list] = {}
        for credential in fixture.get("application_credentials", []):
            self.credentials.setdefault(credential.get("_user_id"), []).append(public(credential))


def _shared_network(network: dict) -> bool:
    return bool(network.get("shared") or network.get("router:external"))


class FakeCloud:
    """Serve `fixture` on host:port (port 0 picks a free one). Use as a context manager or start()/stop()."""

    def __init__(self, fixture: dict, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
        """With `tls` (a server-side context holding the certificate) it serves HTTPS."""
        self.fixture = fixture
        self.cloud = dict(fixture["cloud"])  # tests change settings per server, never the shared fixture
        self.region = self.cloud.get("region", "RegionOne")
        self.max_microversion = parse_version(self.cloud.get("compute_max_microversion", "2.96"))
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query) of every request served
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self.projects = {p["id"]: p for p in fixture.get("projects", [])}
        self.identity = _Identity(self.cloud, fixture, self.projects)
        # Neutron's default policy shows a subnet to its owner and on shared networks, not on external ones.
        shared_networks = {n.get("id") for n in fixture.get("networks", []) if n.get("shared")}
        self.collections = {
            "servers": Collection(fixture.get("servers", []), "tenant_id"),
            "flavors": Collection(fixture.get("flavors", []), None),
            "server_groups": Collection(fixture.get("server_groups", []), "project_id"),
            "images": Collection(fixture.get("images", []), "owner"),
            "security_groups": Collection(
                fixture.get("security_groups", []) if self.cloud.get("embed_security_group_rules", True)
                else [{k: v for k, v in g.items() if k != "security_group_rules"}
                      for g in fixture.get("security_groups", [])],
                "project_id",
            ),
            "security_group_rules": Collection(
                [r for g in fixture.get("security_groups", []) for r in g.get("security_group_rules", [])],
                "project_id",
            ),
            "ports": Collection(fixture.get("ports", []), "project_id"),
            "floatingips": Collection(fixture.get("floating_ips", []), "project_id"),
            "networks": Collection(fixture.get("networks", []), "project_id", _shared_network),
            "subnets": Collection(fixture.get("subnets", []), "project_id",
                                  lambda subnet: subnet.get("network_id") in shared_networks),
            "routers": Collection(fixture.get("routers", []), "project_id"),
            "address_groups": Collection(fixture.get("address_groups", []), "project_id"),
        }
        self.block_storage = BlockStorage(self, fixture)
        self.object_store = ObjectStore(self, fixture)
        self._legacy_servers: Collection | None = None
        self._request = threading.local()  # the fault (if any) of the request this thread serves
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._scheme = "http"
        if tls is not None:  # each connection's handshake happens as it is accepted
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity"

    def start(self) -> "FakeCloud":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-cloud", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeCloud":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------------------
    def add_fault(self, path: str, **kwargs) -> Fault:
        fault = Fault(path=path, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests_to(self, pattern: str) -> list[str]:
        regex = re.compile(pattern)
        return [target for _, target in list(self.requests) if regex.search(target)]

    def clouds_yaml_entry(self, user: str | None = None, application_credential: bool = False) -> dict:
        """A clouds.yaml cloud entry (the value under `clouds: NAME:`) for one fixture user."""
        users = self.cloud["users"]
        account = next((u for u in users if u["name"] == user), None) if user else users[0]
        if account is None:
            raise KeyError(f"no user {user!r} in the fixture")
        if application_credential:
            cred = next(c for c in self.cloud.get("application_credentials", []) if c["user_id"] == account["id"])
            auth = {
                "auth_url": self.auth_url,
                "application_credential_id": cred["id"],
                "application_credential_secret": cred["secret"],
            }
            auth_type = "v3applicationcredential"
        else:
            project = self.projects.get(account.get("default_project_id")) or {}
            auth = {
                "auth_url": self.auth_url,
                "username": account["name"],
                "password": account["password"],
                "user_domain_name": account.get("domain", "Default"),
                "project_name": project.get("name"),
                "project_domain_id": project.get("domain_id", "default"),
            }
            auth_type = "password"
        return {"auth_type": auth_type, "auth": auth, "region_name": self.region, "identity_api_version": 3}

    def paging_fault(self) -> str | None:
        fault = getattr(self._request, "fault", None)
        return fault.paging if fault is not None else None

    # -- dispatch --------------------------------------------------------------------------------------
    def fault_for(self, method: str, target: str, headers) -> Fault | None:
        token = self._tokens.get(headers.get("X-Auth-Token", ""))
        project = token.project.get("id") if token else None
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target, project):
                    fault.fired += 1
                    return fault
        return None

    def handle(self, method: str, path: str, query: dict, headers, body: bytes):
        """Return (status, headers, body bytes) or raise HTTPError."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise HTTPError(404, "not found")
        service = parts[0]
        if service == "identity":
            return self._identity(method, parts[1:], query, headers, body)
        token = self._token(headers)
        if service == "compute":
            return self._compute(parts[1:], query, headers, token)
        if service == "image":
            return self._image(parts[1:], query, token)
        if service == "network":
            return self._network(parts[1:], query, token)
        if service == "volume":
            return self.block_storage.handle(parts[1:], query, headers, token)
        if service == "object":
            return self.object_store.handle(method, parts[1:], query, token)
        raise HTTPError(404, f"no service at /{service}")

    def _token(self, headers) -> Token:
        token = self._tokens.get(headers.get("X-Auth-Token", ""))
        if token is None:
            raise HTTPError(401, "The request you have made requires authentication.")
        return token

    # -- keystone --------------------------------------------------------------------------------------
    def _identity(self, method, parts, query, headers, body):
        if not parts:
            return json_response(300, {"versions": {"values": [self._identity_version()]}})
        if parts == ["v3"]:
            return json_response(200, {"version": self._identity_version()})
        if parts == ["v3", "auth", "tokens"] and method == "POST":
            return self._issue_token(body)
        token = self._token(headers)
        if parts == ["v3", "auth", "tokens"] and method == "GET":
            return json_response(200, {"token": self._token_body(self._tokens[headers.get("X-Subject-Token", "")])})
        if parts == ["v3", "projects"]:
            # `project_list_role`: a role Keystone's policy lets list every project, as a reader's may
            if not token.is_admin and self.cloud.get("project_list_role") not in token.roles:
                raise HTTPError(403, "You are not authorized to perform the requested action: identity:list_projects.")
            projects = list(self.projects.values())
            limit = self.cloud.get("keystone_list_limit")
            truncated = bool(limit) and len(projects) > limit
            if truncated:
                projects = projects[:limit]
            payload = {"projects": projects, "links": {"self": f"{self.url}/identity/v3/projects", "next": None, "previous": None}}
            if truncated:
                payload["truncated"] = True
            return json_response(200, payload)
        if parts == ["v3", "users"] or parts == ["v3", "roles"] or parts == ["v3", "role_assignments"]:
            if not token.is_admin:
                raise HTTPError(403, f"You are not authorized to perform the requested action: "
                                     f"identity:list_{parts[1]}.")
            if parts[1] == "role_assignments" and not (flag(query, "effective") and flag(query, "include_names")):
                raise HTTPError(400, "the fake cloud serves effective role assignments with names only")
            items = {"users": self.identity.users, "roles": self.identity.roles,
                     "role_assignments": self.identity.assignments}[parts[1]]
            return self._keystone_list(parts[1], items)
        if len(parts) == 3 and parts[:2] == ["v3", "users"] and parts[2] != "":
            if not token.is_admin and parts[2] != token.user["id"]:
                raise HTTPError(403, "You are not authorized to perform the requested action: identity:get_user.")
            user = next((u for u in self.identity.users if u["id"] == parts[2]), None)
            if user is None:
                raise HTTPError(404, f"Could not find user: {parts[2]}.")
            return json_response(200, {"user": user})
        if len(parts) == 4 and parts[:2] == ["v3", "users"] and parts[3] == "application_credentials":
            if not token.is_admin and parts[2] != token.user["id"]:
                raise HTTPError(403, "You are not authorized to perform the requested action: "
                                     "identity:list_application_credentials.")
            if parts[2] not in self.identity.user_ids:
                raise HTTPError(404, f"Could not find user: {parts[2]}.")
            return self._keystone_list("application_credentials", self.identity.credentials.get(parts[2], []),
                                       f"users/{parts[2]}/application_credentials")
        if parts in (["v3", "auth", "projects"], ["v3", "users", token.user["id"], "projects"]):
            ids = self._user_roles(token.user)
            return json_response(200, {"projects": [self.projects[i] for i in ids if i in self.projects], "links": {}})
        if len(parts) == 3 and parts[:2] == ["v3", "projects"]:
            if parts[2] not in self.projects:
                raise HTTPError(404, f"Could not find project: {parts[2]}.")
            if not token.is_admin and parts[2] != token.project["id"]:
                raise HTTPError(403, "You are not authorized to perform the requested action: identity:get_project.")
            return json_response(200, {"project": self.projects[parts[2]]})
        raise HTTPError(404, "The resource could not be found.")

    def _keystone_list(self, key: str, items: list, path: str | None = None):
        """A Keystone list: no paging, cut at `keystone_list_limit` with `truncated: true`, as Keystone does."""
        limit = self.cloud.get("keystone_list_limit")
        payload = {key: items[:limit] if limit else items,
                   "links": {"self": f"{self.url}/identity/v3/{path or key}", "next": None, "previous": None}}
        if limit and len(items) > limit:
            payload["truncated"] = True
        return json_response(200, payload)

    def _identity_version(self):
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.url}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def _user_roles(self, user: dict) -> dict[str, list[str]]:
        return user.get("roles", {})

    def _issue_token(self, body: bytes):
        try:
            auth = json.loads(body)["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (ValueError, KeyError, TypeError):
            raise HTTPError(400, "Expecting to find auth in request body.") from None
        user, project = None, None
        if "password" in methods:
            u = identity["password"]["user"]
            user = next(
                (x for x in self.cloud["users"] if (u.get("id") and x["id"] == u["id"]) or x["name"] == u.get("name")),
                None,
            )
            if user is None or user["password"] != u.get("password"):
                raise HTTPError(401, "The request you have made requires authentication.")
        elif "application_credential" in methods:
            ac = identity["application_credential"]
            cred = next((c for c in self.cloud.get("application_credentials", []) if c["id"] == ac.get("id")), None)
            if cred is None or cred["secret"] != ac.get("secret"):
                raise HTTPError(401, "The request you have made requires authentication.")
            user = next(x for x in self.cloud["users"] if x["id"] == cred["user_id"])
            project = self.projects.get(cred["project_id"])
        else:
            raise HTTPError(401, f"Unsupported auth methods {methods}")
        if project is None:
            scope = (auth.get("scope") or {}).get("project")
            if scope:
                project = next(
                    (p for p in self.projects.values() if p["id"] == scope.get("id") or p["name"] == scope.get("name")),
                    None,
                )
                if project is None:
                    raise HTTPError(401, "Could not find the project to scope to.")
            else:
                project = self.projects.get(user.get("default_project_id"))
        roles = self._user_roles(user).get(project["id"], []) if project else []
        if project and not roles:
            raise HTTPError(401, f"User {user['id']} has no access to project {project['id']}")
        token_id = secrets.token_hex(16)
        token = Token(user=user, project=project or {}, roles=roles, methods=methods)
        with self._lock:
            self._tokens[token_id] = token
        return 201, {"X-Subject-Token": token_id}, json.dumps({"token": self._token_body(token)}).encode()

    def _token_body(self, token: Token) -> dict:
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        domain = {"id": "default", "name": "Default"}
        body = {
            "methods": token.methods,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "user": {"id": token.user["id"], "name": token.user["name"], "domain": domain},
            "roles": [{"id": role_id(r), "name": r} for r in token.roles],
            "is_domain": False,
        }
        if token.project:
            body["project"] = {"id": token.project["id"], "name": token.project["name"], "domain": domain}
            body["catalog"] = self._catalog(token.project["id"])
        return body

    def _catalog(self, project_id: str):
        def service(kind, name, path):
            return {
                "type": kind,
                "name": name,
                "id": uuid.uuid5(uuid.NAMESPACE_URL, kind).hex,
                "endpoints": [
                    {
                        "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}-{iface}").hex,
                        "interface": iface,
                        "region": self.region,
                        "region_id": self.region,
                        "url": f"{self.url}{path}",
                    }
                    for iface in ("public", "internal", "admin")
                ],
            }

        missing = set(self.cloud.get("catalog_without", ()))
        return [service(kind, name, path) for kind, name, path in (
            ("identity", "keystone", "/identity"),
            ("compute", "nova", "/compute/v2.1"),
            ("image", "glance", "/image"),
            ("network", "neutron", "/network"),
            ("block-storage", "cinderv3", "/volume/v3"),
            ("object-store", "swift", f"/object/v1/AUTH_{project_id}"),  # the token's project's account
        ) if kind not in missing]

    # -- nova ------------------------------------------------------------------------------------------
    def _compute(self, parts, query, headers, token: Token):
        version = self._microversion(headers)
        version_headers = {
            "OpenStack-API-Version": f"compute {version[0]}.{version[1]}",
            "X-OpenStack-Nova-API-Version": f"{version[0]}.{version[1]}",
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
        }
        if parts in ([], ["v2.1"]):
            doc = {
                "id": "v2.1",
                "status": "CURRENT",
                "version": f"{self.max_microversion[0]}.{self.max_microversion[1]}",
                "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": f"{self.url}/compute/v2.1/"}],
            }
            if not parts:
                return json_response(200, {"versions": [doc]})
            return json_response(200, {"version": doc})
        if parts[0] != "v2.1":
            raise HTTPError(404, "not found")
        resource = parts[1:]
        all_projects = flag(query, "all_tenants") or flag(query, "all_projects")
        if all_projects and not token.is_admin:
            raise HTTPError(
                403, "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed."
            )
        if resource == ["servers", "detail"]:
            collection = self.collections["servers"]
            if version < EMBEDDED_FLAVOR_MICROVERSION:
                collection = self._legacy_server_collection()
            return self.marker_page(
                collection, "servers", query, token, all_projects, NOVA_MAX_PAGE, NOVA_MAX_PAGE,
                f"{self.url}/compute/v2.1/servers/detail", version_headers, links_key="servers_links",
            )
        if resource == ["flavors", "detail"]:
            collection = self.collections["flavors"]
            project = token.project.get("id")
            is_public = (query.get("is_public") or ["true"])[0].lower()
            if token.is_admin and is_public == "none":
                view = collection.view("all", lambda f: True)
            else:
                view = collection.view(
                    f"access:{project}",
                    lambda f: f.get("os-flavor-access:is_public", True) or project in f.get("_access", []),
                )
            return self._page(
                collection, view, "flavors", query, NOVA_MAX_PAGE, NOVA_MAX_PAGE,
                f"{self.url}/compute/v2.1/flavors/detail", version_headers, links_key="flavors_links",
            )
        if resource in (["os-availability-zone", "detail"], ["os-availability-zone"]):
            zones = self.fixture.get("availability_zones", [])
            if resource[-1] == "detail":
                if not token.is_admin:
                    raise HTTPError(403, "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed.")
            else:
                zones = [dict(z, hosts=None) for z in zones if z.get("zoneName") != "internal"]
            return 200, version_headers, json.dumps({"availabilityZoneInfo": zones}).encode()
        if resource == ["os-server-groups"]:
            collection = self.collections["server_groups"]
            if all_projects:
                view = collection.view("all", lambda g: True)
            else:
                project = token.project.get("id")
                view = collection.view(f"project:{project}", lambda g: g.get("project_id") == project)
            limit = int_param(query, "limit", NOVA_MAX_PAGE, NOVA_MAX_PAGE)
            offset = 0 if self.paging_fault() == "ignore_offset" else int_param(query, "offset", 0, None)
            chosen = view[0][offset : offset + limit]
            body = b'{"server_groups": [' + b", ".join(collection.blobs[i] for i in chosen) + b"]}"
            return 200, version_headers, body
        raise HTTPError(404, "The resource could not be found.")

    def _microversion(self, headers) -> tuple[int, int]:
        requested = None
        header = headers.get("OpenStack-API-Version")
        if header:
            service, _, value = header.strip().partition(" ")
            if service.lower() == "compute":
                requested = value.strip()
        requested = requested or headers.get("X-OpenStack-Nova-API-Version")
        if not requested:
            return (2, 1)
        if requested == "latest":
            return self.max_microversion
        try:
            version = parse_version(requested)
        except ValueError:
            raise HTTPError(400, f"Invalid API version request string {requested!r}") from None
        if not (2, 1) <= version <= self.max_microversion:
            raise HTTPError(406, f"Version {requested} is not supported by the API.")
        return version

    def _legacy_server_collection(self) -> Collection:
        """Servers as Nova returns them before 2.47: the flavor by id and links, not embedded."""
        if self._legacy_servers is None:
            by_name = {f["name"]: f["id"] for f in self.fixture.get("flavors", [])}
            legacy = []
            for server in self.fixture.get("servers", []):
                flavor = server.get("flavor") or {}
                if "original_name" in flavor:
                    flavor_id = by_name.get(flavor["original_name"])
                    flavor = {"id": flavor_id, "links": [{"rel": "bookmark", "href": f"{self.url}/compute/flavors/{flavor_id}"}]} if flavor_id else {}
                legacy.append(dict(server, flavor=flavor))
            self._legacy_servers = Collection(legacy, "tenant_id")
        return self._legacy_servers

    # -- glance ----------------------------------------------------------------------------------------
    def _image_members(self, image_id: str, token: Token, members: bool):
        """GET /v2/images/<id> and /v2/images/<id>/members, as Glance's default policy answers them: the owner
        and admins see every member, a member only itself; an image the caller cannot see is not found, and
        only shared images have members. `_members` lists the member projects (or whole member records, served
        as they are), `_member_status` their answers (accepted unless it says otherwise)."""
        image = next((i for i in self.collections["images"].items if i.get("id") == image_id), None)
        project = token.project.get("id")
        owner = token.is_admin or (image is not None and image.get("owner") == project)
        listed = list(image.get("_members", [])) if image is not None else []
        member_ids = [m.get("member_id") if isinstance(m, dict) else m for m in listed]
        if image is None or not (owner or image.get("visibility") in ("public", "community")
                                 or project in member_ids):
            raise HTTPError(404, f"No image found with ID {image_id}")
        if not members:
            return json_response(200, public(image))
        if image.get("visibility") != "shared":
            raise HTTPError(403, "Only shared images have members.")
        statuses = image.get("_member_status", {})
        stamp = image.get("created_at", "2026-01-01T00:00:00Z")
        records = [m if isinstance(m, dict) else
                   {"created_at": stamp, "image_id": image_id, "member_id": m, "schema": "/v2/schemas/member",
                    "status": statuses.get(m, "accepted"), "updated_at": stamp} for m in listed]
        shown = [r for r, member in zip(records, member_ids) if owner or member == project]
        return json_response(200, {"members": shown, "schema": "/v2/schemas/members"})

    def _image(self, parts, query, token: Token):
        if not parts:
            versions = [
                {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": f"{self.url}/image/v2/"}]},
            ]
            return json_response(300, {"versions": versions})
        if len(parts) in (3, 4) and parts[:2] == ["v2", "images"] and parts[3:] in ([], ["members"]):
            return self._image_members(parts[2], token, members=len(parts) == 4)
        if parts != ["v2", "images"]:
            raise HTTPError(404, "The resource could not be found.")
        collection = self.collections["images"]
        visibility = (query.get("visibility") or [None])[0]
        hidden = (query.get("os_hidden") or ["false"])[0].lower() == "true"
        if visibility not in (None, "all", "public", "private", "shared", "community"):
            raise HTTPError(400, f"Invalid visibility value: {visibility}")
        project = token.project.get("id")
        admin = token.is_admin

        def visible(image):
            if bool(image.get("os_hidden")) != hidden:
                return False
            vis = image.get("visibility")
            if visibility not in (None, "all") and vis != visibility:
                return False
            if visibility is None and vis == "community":
                return False
            if admin and visibility is not None:
                return True
            return (
                vis == "public"
                or image.get("owner") == project
                or (vis == "community" and visibility is not None)
                or (vis == "shared" and project in image.get("_members", []))
            )

        view = collection.view(f"{visibility}:{hidden}:{project}:{admin}", visible)
        limit = int_param(query, "limit", GLANCE_DEFAULT_PAGE, GLANCE_MAX_PAGE)
        indexes, positions = view
        start = self._marker_start(query, positions)
        chosen = indexes[start : start + limit]
        next_marker = collection.items[chosen[-1]]["id"] if start + limit < len(indexes) and chosen else None
        chosen, next_marker = self._misbehave(query, indexes, chosen, limit, next_marker, collection)
        head = b'{"images": [' + b", ".join(collection.blobs[i] for i in chosen) + b"]"
        tail = {"schema": "/v2/schemas/images", "first": "/v2/images"}
        if next_marker is not None:
            params = {k: v[0] for k, v in query.items() if k != "marker"}
            params["marker"] = next_marker
            tail["next"] = "/v2/images?" + urlencode(params)
        return 200, {}, head + b", " + json.dumps(tail)[1:].encode()

    # -- neutron ---------------------------------------------------------------------------------------
    def _network(self, parts, query, token: Token):
        if not parts:
            return json_response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": f"{self.url}/network/v2.0/"}]}]})
        if parts == ["v2.0"]:
            return json_response(200, {"resources": []})
        if parts[0] != "v2.0" or len(parts) != 2:
            raise HTTPError(404, "The resource could not be found.")
        names = {
            "security-groups": "security_groups",
            "security-group-rules": "security_group_rules",
            "ports": "ports",
            "floatingips": "floatingips",
            "networks": "networks",
            "subnets": "subnets",
            "routers": "routers",
            "address-groups": "address_groups",
        }
        absent = set(self.cloud.get("network_extensions_without", ()))
        if parts[1] == "extensions":
            offered = [alias for alias in NETWORK_EXTENSIONS if alias not in absent]
            return json_response(200, {"extensions": [{"alias": alias, "name": alias, "description": "", "links": [],
                                               "updated": "2024-01-01T00:00:00-00:00"} for alias in offered]})
        key = names.get(parts[1])
        if key is None or NETWORK_EXTENSION_OF.get(parts[1]) in absent:
            raise HTTPError(404, "The resource could not be found.")
        # Neutron has no page cap unless the client sends `limit`; then it pages by marker.
        return self.marker_page(
            self.collections[key], key, query, token, token.is_admin, None, None,
            f"{self.url}/network/v2.0/{parts[1]}", {}, links_key=f"{key}_links", project_filter=True,
        )

    # -- paging ----------------------------------------------------------------------------------------
    def marker_page(self, collection, key, query, token, all_projects, default, maximum, base, headers,
                    links_key, project_filter=False):
        owner = collection.owner_key
        wanted = (query.get("project_id") or query.get("tenant_id") or [None])[0]
        if wanted and (all_projects or project_filter) and (token.is_admin or wanted == token.project.get("id")):
            view = collection.view(f"project:{wanted}", lambda item: item.get(owner) == wanted)
        elif all_projects:
            view = collection.view("all", lambda item: True)
        else:
            project = token.project.get("id")
            view = collection.view(f"project:{project}",
                                   lambda item: item.get(owner) == project or collection.seen_by_all(item))
        return self._page(collection, view, key, query, default, maximum, base, headers, links_key)

    def _page(self, collection, view, key, query, default, maximum, base, headers, links_key):
        indexes, positions = view
        limit = int_param(query, "limit", default, maximum)
        paged = limit is not None
        if paged and self.paging_fault() == "endless":
            return self._endless_page(collection, indexes, key, limit, base, headers, links_key, query)
        start = self._marker_start(query, positions)
        chosen = indexes[start : start + limit] if paged else indexes[start:]
        next_marker = collection.items[chosen[-1]]["id"] if paged and len(chosen) == limit and chosen else None
        if paged:
            chosen, next_marker = self._misbehave(query, indexes, chosen, limit, next_marker, collection)
        body = b'{"' + key.encode() + b'": [' + b", ".join(collection.blobs[i] for i in chosen) + b"]"
        if next_marker is not None:
            body += b', "' + links_key.encode() + b'": ' + self._next_link(base, query, limit, next_marker)
        return 200, headers, body + b"}"

    @staticmethod
    def _next_link(base, query, limit, marker) -> bytes:
        params = {k: v[0] for k, v in query.items() if k != "marker"}
        params["limit"] = str(limit)
        params["marker"] = marker
        return json.dumps([{"rel": "next", "href": f"{base}?{urlencode(params)}"}]).encode()

    def _misbehave(self, query, indexes, chosen, limit, next_marker, collection):
        """The paging faults that keep serving fixture records: (records to serve, next marker)."""
        fault = self.paging_fault()
        marker = (query.get("marker") or [None])[0]
        if marker is None or fault not in ("repeat_marker", "repeat_page"):
            return chosen, next_marker
        if fault == "repeat_marker":
            return chosen, marker
        return indexes[:limit], next_marker  # the first page again, and paging goes on

    def _endless_page(self, collection, indexes, key, limit, base, headers, links_key, query):
        """A full page of records never seen before, linking to yet another page."""
        template = collection.items[indexes[0]] if indexes else {"name": "endless"}
        records = [dict(public(template), id=str(uuid.uuid4())) for _ in range(limit)]
        body = orjson.dumps({key: records})[:-1]
        link = self._next_link(base, query, limit, records[-1]["id"])
        return 200, headers, body + b', "' + links_key.encode() + b'": ' + link + b"}"

    @staticmethod
    def _marker_start(query, positions) -> int:
        marker = (query.get("marker") or [None])[0]
        if marker is None:
            return 0
        if marker not in positions:
            raise HTTPError(400, f"marker [{marker}] not found")
        return positions[marker] + 1


def _make_handler(cloud: FakeCloud):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-openstack/1"
        # Headers and body go out in two writes: with Nagle's algorithm the body then waits for the
        # client's delayed ACK (40 ms on Linux), which a cloud of 10,000 small answers would pay each time.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # keep test and demo output quiet
            pass

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_HEAD(self):
            self._serve("HEAD")

        def _serve(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            target = split.path + (f"?{split.query}" if split.query else "")
            with cloud._lock:
                cloud.requests.append((method, target))
            fault = cloud.fault_for(method, target, self.headers)
            cloud._request.fault = fault
            if fault is not None:
                if fault.latency:
                    time.sleep(fault.latency)
                if fault.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault.status:
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    self._send(fault.status, headers, error_body(fault.status, "injected fault"))
                    return
                if fault.malformed:
                    self._send(200, {}, b'{"truncated": [{"id": "')
                    return
            try:
                status, headers, payload = cloud.handle(
                    method, split.path, parse_qs(split.query, keep_blank_values=True), self.headers, body
                )
            except HTTPError as exc:
                self._send(exc.status, exc.headers, error_body(exc.status, exc.message))
                return
            except Exception as exc:  # a bug here must show as a 500, as a real service would answer
                self._send(500, {}, error_body(500, f"fake cloud error: {exc}"))
                return
            finally:
                cloud._request.fault = None
            if fault is not None and fault.rewrites_body and status < 300:
                payload = fault.rewrite(payload)
            self._send(status, headers, payload, chunked=fault is not None and fault.chunked)

        def _send(self, status, headers, payload: bytes, chunked: bool = False):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Openstack-Request-Id", "req-" + uuid.uuid4().hex)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return  # its headers only, whatever the answer
            if not chunked:
                self.wfile.write(payload)
                return
            for at in range(0, len(payload), 1 << 16):
                piece = payload[at : at + (1 << 16)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

    return Handler
