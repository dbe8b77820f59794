"""Faults the fake cloud injects, per request path: what a broken service, a hostile proxy or a flaky network
does to a collector. Tests add them with `FakeCloud.add_fault(path, ...)`; docs/fake-cloud.md lists them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson

# Paging misbehaviours (Fault.paging):
#   repeat_marker  the next link repeats the marker of the request (Glance or Nova looping on one page)
#   endless        every page is full of new records and links to a new marker, forever
#   ignore_offset  `offset` is ignored: every page of an offset-paged listing is the first one
#   repeat_page    a page asked for with a marker serves the first page's records, under a new next marker
PAGING_FAULTS = ("repeat_marker", "endless", "ignore_offset", "repeat_page")


@dataclass
class Fault:
    """A fault for requests whose path and query match `path` (a regular expression, searched).

    `times` limits how often it fires (None: always). `status` answers with that HTTP status;
    `retry_after` adds a Retry-After header; `latency` sleeps first; `drop` closes the connection without
    an answer; `malformed` answers 200 with a truncated JSON body. The others change a good answer:
    `paging` (see PAGING_FAULTS), `patch` sets fields of every record on the page to the given values
    (wrong JSON types), `oversize` adds a field of that many bytes to the first record, and `chunked`
    sends the answer without a Content-Length, in chunks.
    """

    path: str
    status: int | None = None
    times: int | None = None
    latency: float = 0.0
    drop: bool = False
    malformed: bool = False
    retry_after: int | str | None = None
    method: str = "GET"
    project: str | None = None  # only for requests whose token is scoped to this project id
    paging: str | None = None
    patch: dict | None = None
    oversize: int = 0
    chunked: bool = False
    fired: int = 0
    _pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self):
        self._pattern = re.compile(self.path)
        if self.paging is not None and self.paging not in PAGING_FAULTS:
            raise ValueError(f"unknown paging fault {self.paging!r} (one of {', '.join(PAGING_FAULTS)})")

    def matches(self, method: str, target: str, project: str | None) -> bool:
        if self.method != "*" and method != self.method:
            return False
        if self.project is not None and project != self.project:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        return bool(self._pattern.search(target))

    @property
    def rewrites_body(self) -> bool:
        return bool(self.patch) or self.oversize > 0

    def rewrite(self, payload: bytes) -> bytes:
        """The answer with `patch` applied to every record of its list and `oversize` bytes added."""
        body = orjson.loads(payload)
        records = body if isinstance(body, list) else \
            next((v for v in body.values() if isinstance(v, list)), None) if isinstance(body, dict) else None
        if not records:
            return payload
        for record in records:
            if isinstance(record, dict) and self.patch:
                record.update(self.patch)
        if self.oversize and isinstance(records[0], dict):
            records[0]["description"] = "x" * self.oversize
        return orjson.dumps(body)
