"""What every service of the fake cloud shares: resource lists serialized once, errors, query parsing."""

from __future__ import annotations

import json

import orjson


class Collection:
    """One resource list, serialized once; pages are slices joined as bytes."""

    def __init__(self, items: list[dict], owner_key: str | None, seen_by_all=None):
        self.items = items
        self.owner_key = owner_key
        self.seen_by_all = seen_by_all or (lambda item: False)  # listed to every project, as Neutron does
        self.blobs = [orjson.dumps(public(item)) for item in items]
        self._views: dict = {}

    def view(self, name, predicate) -> tuple[list[int], dict[str, int]]:
        """Indexes of the items that pass `predicate`, cached under `name`, with a marker -> position map."""
        cached = self._views.get(name)
        if cached is None:
            indexes = [i for i, item in enumerate(self.items) if predicate(item)]
            positions = {str(self.items[i].get("id")): n for n, i in enumerate(indexes)}
            cached = self._views[name] = (indexes, positions)
        return cached


def public(item: dict) -> dict:
    return {k: v for k, v in item.items() if not k.startswith("_")}


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(status: int, payload) -> tuple[int, dict, bytes]:
    return status, {}, json.dumps(payload).encode()


def error_body(status: int, message: str) -> bytes:
    names = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 406: "notAcceptable",
             429: "overLimit", 500: "computeFault", 503: "serviceUnavailable"}
    return json.dumps({names.get(status, "error"): {"code": status, "message": message}}).encode()


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def flag(query, name) -> bool:
    values = query.get(name)
    return bool(values) and values[0].lower() not in ("0", "false", "no", "off")


def int_param(query, name, default, maximum):
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise HTTPError(400, f"Invalid {name} value {values[0]!r}") from None
    if value < 0:
        raise HTTPError(400, f"{name} must be >= 0")
    return min(value, maximum) if maximum else value
