"""The JSON types the documented schema expects of each API field, checked in SQL before a listing is stored.

`json_transform` would store an integer id as the text "123" and a list given as a name as its JSON text,
silently. Instead every field a table reads is probed first (one extra parse of each page, top-level fields
as JSON text, nested ones parsed from that small text): a value of the wrong JSON type is a collection
error naming the field, and it is stored as NULL, never as its JSON text. `raw` keeps what the API said.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from auditor.sqltext import sql_ident, sql_literal

# The kinds of JSON value a field may be expected to hold.
_KINDS_OF_TYPE = {
    "VARCHAR": ("string",),
    "INTEGER": ("integer",),
    "BIGINT": ("integer",),
    "DOUBLE": ("integer", "number"),
    "BOOLEAN": ("boolean",),
}
_KIND_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "object": "an object", "array": "a list"}

# Fields the schema reads as raw JSON, and what they must be (fields not listed may be anything).
JSON_FIELD_KINDS = {
    ("servers", "image"): ("object", "string"),  # "" when booted from a volume
    ("servers", "addresses"): ("object",),
    ("servers", "metadata"): ("object",),
    ("servers", "flavor.swap"): ("integer", "string"),  # "" means none
    ("servers", "flavor.extra_specs"): ("object",),
    ("flavors", "swap"): ("integer", "string"),
    ("flavors", "extra_specs"): ("object",),
    ("availability_zones", "hosts"): ("object",),
    ("server_groups", "rules"): ("object",),
    ("security_groups", "security_group_rules"): ("array",),
    ("ports", "fixed_ips"): ("array",),
    ("ports", "allowed_address_pairs"): ("array",),
    ("networks", "segments"): ("array",),
    ("subnets", "allocation_pools"): ("array",),
    ("subnets", "host_routes"): ("array",),
    ("routers", "external_gateway_info.external_fixed_ips"): ("array",),
    ("routers", "routes"): ("array",),
    ("users", "federated"): ("array",),
    ("role_assignments", "role.domain"): ("object",),
    ("role_assignments", "user.domain"): ("object",),
    ("role_assignments", "group.domain"): ("object",),
    ("role_assignments", "scope.project"): ("object",),
    ("role_assignments", "scope.domain"): ("object",),
    ("role_assignments", "scope.system"): ("object",),
    ("application_credentials", "access_rules"): ("array",),
    ("volumes", "bootable"): ("string", "boolean"),  # Cinder says "true" or "false"
    ("volumes", "attachments"): ("array",),
    ("volumes", "metadata"): ("object",),
    ("volumes", "volume_image_metadata"): ("object",),
    ("volume_snapshots", "metadata"): ("object",),
    ("volume_backups", "metadata"): ("object",),
    ("volume_types", "extra_specs"): ("object",),
    ("containers", "metadata"): ("object",),
}

# A JSON value as json_transform gives it ("JSON" in a shape) is minified text, so its first character
# names its type; testing it is far cheaper than parsing it again with json_type. yyjson writes every
# non-integral number with a '.' or an exponent.
_FIRST_CHARS = {"string": '"', "object": "{", "array": "[", "boolean": "tf", "number": "-0123456789",
                "integer": "-0123456789"}


@dataclass(frozen=True)
class Check:
    """One field's type test: `ok` is a SQL condition over `p` (the probed record)."""

    field: str  # dotted path for messages; `name[]` for the entries of a list
    expected: tuple[str, ...]
    ok: str
    patch: dict  # merged into a record whose field fails, to remove the value


def _kinds(table: str, path: str, spec) -> tuple[str, ...] | None:
    if isinstance(spec, list):
        return ("array",)
    if isinstance(spec, dict):
        return ("object",)
    if spec == "JSON":
        return JSON_FIELD_KINDS.get((table, path))
    return _KINDS_OF_TYPE[spec]


def _in(expr: str, kinds: tuple[str, ...]) -> str:
    """SQL: the JSON text `expr` is null, or of one of `kinds`."""
    text = f"CAST({expr} AS VARCHAR)"
    codes = sorted({ord(c) for kind in kinds for c in _FIRST_CHARS[kind]} | {ord("n")})
    test = f"coalesce(ascii({text}) IN ({', '.join(map(str, codes))}), true)"
    if "integer" in kinds and "number" not in kinds:  # rare: INTEGER and BIGINT fields only
        test = f"({test} AND NOT coalesce(regexp_matches({text}, '[.eE]'), false))"
    return test


def probe_schema(schema: dict) -> str:
    """A json_transform shape that gives every top-level field of `schema` as raw JSON text."""
    return json.dumps({name: "JSON" for name in schema})


def checks(table: str, schema: dict) -> list[Check]:
    """The type tests of every field `schema` (a json_transform shape) reads, nested ones included."""
    found = []
    for name, spec in schema.items():
        value = f"p.{sql_ident(name)}"
        kinds = _kinds(table, name, spec)
        if kinds:
            found.append(Check(name, kinds, _in(value, kinds), {name: None}))
        if isinstance(spec, dict):
            inner = f"json_transform({value}, {sql_literal(json.dumps({k: 'JSON' for k in spec}))})"
            for key, sub in spec.items():
                sub_kinds = _kinds(table, f"{name}.{key}", sub)
                if sub_kinds:
                    found.append(Check(f"{name}.{key}", sub_kinds,
                                       f"(json_type({value}) IS DISTINCT FROM 'OBJECT' OR {_in(f'{inner}.{sql_ident(key)}', sub_kinds)})",
                                       {name: {key: None}}))
        elif isinstance(spec, list):
            entry = spec[0]
            if isinstance(entry, dict):
                shape = sql_literal(json.dumps([{k: "JSON" for k in entry}]))
                tests = " AND ".join([_in(f"e.{sql_ident(k)}", kinds) for k, v in entry.items()
                                      if (kinds := _kinds(table, f"{name}[].{k}", v))] or ["true"])
                ok = (f"(json_type({value}) IS DISTINCT FROM 'ARRAY' OR (list_bool_and(list_transform("
                      f"json_transform({value}, '[\"JSON\"]'), lambda e: json_type(e) = 'OBJECT')) IS NOT false "
                      f"AND list_bool_and(list_transform(json_transform({value}, {shape}), lambda e: {tests})) "
                      "IS NOT false))")
                found.append(Check(f"{name}[]", ("object",), ok, {name: None}))
            else:
                entry_kinds = ("array",) if isinstance(entry, list) else _KINDS_OF_TYPE.get(entry, ())
                if entry_kinds:
                    ok = (f"(json_type({value}) IS DISTINCT FROM 'ARRAY' OR list_bool_and(list_transform("
                          f"json_transform({value}, '[\"JSON\"]'), lambda e: {_in('e', entry_kinds)})) IS NOT false)")
                    found.append(Check(f"{name}[]", entry_kinds, ok, {name: None}))
    return found


def describe(check: Check, count: int, example: str | None) -> str:
    """`3 records have 'name' of the wrong JSON type (a string expected; first id "x"); stored as NULL`."""
    expected = " or ".join(_KIND_NAMES[k] for k in check.expected)
    where = check.field.replace("[]", " entries")
    first = f"; first id {example}" if example else ""
    plural = "records have" if count != 1 else "record has"
    return f"{count} {plural} '{where}' of the wrong JSON type ({expected} expected{first}); stored as NULL"


def patched_item(item: str, failed: list[Check]) -> str:
    """SQL for `item` with the values of the failed fields removed, for the records that fail them."""
    expr = item
    for check in failed:
        expr = f"CASE WHEN {check.ok} THEN {expr} ELSE json_merge_patch({expr}, {sql_literal(json.dumps(check.patch))}) END"
    return expr
