"""Waivers: accepted risks, each with a reason, an owner and an expiry date (docs/rules.md#waivers).

A waiver applies to failing rows of one rule that match all of its `match` keys. It applies through its
expiry date (inclusive, UTC). An expired waiver stops applying and is reported; a waiver that matches
nothing is reported too, so stale waivers do not pile up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from auditor.errors import RuleError
from auditor.rules.catalog import load_yaml, yaml_error_text

MATCH_KEYS = ("resource_id", "resource_name", "project")
WAIVER_KEYS = ("id", "rule", "match", "reason", "owner", "expires")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


@dataclass(frozen=True)
class Waiver:
    id: str
    rule: str
    match: dict[str, str]  # resource_id (exact), resource_name (glob, case-sensitive), project (id or name)
    reason: str
    owner: str
    expires: date

    def state_on(self, today: date) -> str:
        return "expired" if today > self.expires else "active"


def load_waivers(path: Path, rule_ids: set[str]) -> list[Waiver]:
    """Parse and check a waivers file; raise RuleError listing every problem with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: waivers file cannot be read: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        raise RuleError(yaml_error_text(exc, path)) from None
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"waivers"} or not isinstance(data["waivers"], list):
        raise RuleError(f"{path}:1: must hold one key, 'waivers', a list of waivers")
    items_node = root.value[0][1]
    problems: list[str] = []
    waivers: list[Waiver] = []
    seen: dict[str, int] = {}
    for index, (item, node) in enumerate(zip(data["waivers"], items_node.value, strict=True)):
        line = node.start_mark.line + 1
        key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
        where = f"{path}:{line}: waivers[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a mapping with keys {', '.join(WAIVER_KEYS)}")
            continue
        before = len(problems)
        for key in item:
            if key not in WAIVER_KEYS:
                problems.append(f"{path}:{key_lines.get(key, line)}: waivers[{index}]: unknown key {key!r} "
                                f"(expected: {', '.join(WAIVER_KEYS)})")
        for key in WAIVER_KEYS:
            if key not in item:
                problems.append(f"{where}: missing required key {key!r}")
        waiver_id = item.get("id")
        if "id" in item and (not isinstance(waiver_id, str) or not _ID.match(waiver_id)):
            problems.append(f"{path}:{key_lines['id']}: waivers[{index}]: 'id' must be a short string "
                            "(letters, digits, _ . : -)")
        elif isinstance(waiver_id, str):
            if waiver_id in seen:
                problems.append(f"{path}:{key_lines['id']}: waiver id {waiver_id!r} is also used on line {seen[waiver_id]}")
            seen[waiver_id] = key_lines["id"]
        rule = item.get("rule")
        if "rule" in item and rule not in rule_ids:
            problems.append(f"{path}:{key_lines['rule']}: waivers[{index}]: unknown rule {rule!r}")
        for key in ("reason", "owner"):
            if key in item and (not isinstance(item[key], str) or not item[key].strip()):
                problems.append(f"{path}:{key_lines[key]}: waivers[{index}]: {key!r} must be a non-empty string")
        match = item.get("match")
        if "match" in item:
            if not isinstance(match, dict) or not match:
                problems.append(f"{path}:{key_lines['match']}: waivers[{index}]: 'match' must be a mapping with at "
                                f"least one of {', '.join(MATCH_KEYS)}")
            else:
                for key, value in match.items():
                    if key not in MATCH_KEYS:
                        problems.append(f"{path}:{key_lines['match']}: waivers[{index}]: unknown match key {key!r} "
                                        f"(expected: {', '.join(MATCH_KEYS)})")
                    elif not isinstance(value, str) or not value:
                        problems.append(f"{path}:{key_lines['match']}: waivers[{index}]: match.{key} must be a "
                                        "non-empty string")
        expires = item.get("expires")
        if isinstance(expires, str):
            try:
                expires = date.fromisoformat(expires)
            except ValueError:
                pass
        if "expires" in item and (not isinstance(expires, date) or hasattr(expires, "hour")):
            problems.append(f"{path}:{key_lines['expires']}: waivers[{index}]: 'expires' must be a date "
                            f"(YYYY-MM-DD), got {item['expires']!r}")
        if len(problems) == before:
            waivers.append(Waiver(id=waiver_id, rule=rule, match=dict(match), reason=item["reason"].strip(),
                                  owner=item["owner"].strip(), expires=expires))
    if problems:
        raise RuleError(problems)
    return waivers
