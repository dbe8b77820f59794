"""The fake cloud's Swift: each project's account (`/object/v1/AUTH_<project id>`), its containers and their
settings.

As Swift with Keystone behaves: an account's container listing (`?format=json`, paged by `marker` and
`limit`, a limit above 10,000 refused with 412) and a container's settings (HEAD: ACLs, versioning, sync,
metadata, the sync and temp-URL keys too) are served to the account's owner only: a token scoped to the
account's project with an operator role, or a reseller admin (any account). `cloud.json` may name the roles:
`swift_operator_roles` (default admin, member, swiftoperator) and `swift_reseller_admin_role` (default
ResellerAdmin). Anyone else gets 403.

A container in the fixture (`containers.json`): `_project_id`, `name`, `count`, `bytes`, `last_modified`,
and `_headers`, the headers of its HEAD beyond the counts (`X-Container-Read`, `X-Container-Meta-Owner`, ...).
"""

from __future__ import annotations

from urllib.parse import unquote

import orjson

from auditor.fakecloud.pages import HTTPError, int_param, public

ACCOUNT_PREFIX = "AUTH_"
SWIFT_LISTING_LIMIT = 10_000


class ObjectStore:
    def __init__(self, cloud, fixture: dict):
        self.cloud = cloud  # the FakeCloud: its projects and settings
        self.operator_roles = set(cloud.cloud.get("swift_operator_roles", ("admin", "member", "swiftoperator")))
        self.reseller_role = cloud.cloud.get("swift_reseller_admin_role", "ResellerAdmin")
        self.accounts: dict[str, list[dict]] = {}
        for container in fixture.get("containers", []):
            self.accounts.setdefault(container.get("_project_id"), []).append(container)
        for containers in self.accounts.values():
            containers.sort(key=lambda c: str(c.get("name")))
        self.by_name = {(project, c.get("name")): c for project, cs in self.accounts.items() for c in cs}

    def account_url(self, project_id: str) -> str:
        return f"{self.cloud.url}/object/v1/{ACCOUNT_PREFIX}{project_id}"

    def handle(self, method: str, parts: list[str], query, token):
        if len(parts) < 2 or parts[0] != "v1" or not parts[1].startswith(ACCOUNT_PREFIX):
            raise HTTPError(404, "Not Found")
        project = parts[1][len(ACCOUNT_PREFIX):]
        if project not in self.cloud.projects:
            raise HTTPError(404, "Not Found")
        owner = self.reseller_role in token.roles or (
            token.project.get("id") == project and self.operator_roles & set(token.roles))
        if not owner:
            raise HTTPError(403, "Forbidden")
        containers = self.accounts.get(project, [])
        if len(parts) == 2 and method == "GET":
            return self._listing(containers, query)
        if len(parts) == 3 and method == "HEAD":
            container = self.by_name.get((project, unquote(parts[2])))
            if container is None:
                raise HTTPError(404, "Not Found")
            headers = {"X-Container-Object-Count": str(container.get("count", 0)),
                       "X-Container-Bytes-Used": str(container.get("bytes", 0)),
                       "X-Storage-Policy": "Policy-0", **(container.get("_headers") or {})}
            # http.server sends headers as Latin-1: UTF-8 bytes, as Swift sends them
            # UTF-8 on the wire, as Swift sends; a lone surrogate \udcXX in a fixture sends the byte XX alone
            return 204, {k: v.encode("utf-8", "surrogateescape").decode("latin-1") for k, v in headers.items()}, b""
        raise HTTPError(405, "Method Not Allowed")

    def _listing(self, containers: list[dict], query):
        if (query.get("format") or [""])[0] != "json":
            raise HTTPError(406, "the fake cloud lists containers as JSON only")
        limit = int_param(query, "limit", SWIFT_LISTING_LIMIT, 0)
        if limit > SWIFT_LISTING_LIMIT:
            raise HTTPError(412, f"Maximum limit is {SWIFT_LISTING_LIMIT}")
        marker = (query.get("marker") or [""])[0]
        page = [public(c) for c in containers if str(c.get("name")) > marker][:limit]
        headers = {"X-Account-Container-Count": str(len(containers))}
        return 200, headers, orjson.dumps(page)
