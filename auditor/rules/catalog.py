"""Finding, parsing and checking rule files, framework files and the instance-type mapping.

A rule is one `.sql` file whose metadata sits in a leading `/*--- ... ---*/` YAML comment (docs/rules.md).
Every problem is reported as `file:line: message`; all problems of a catalog are gathered before raising,
so one `auditor rules validate` lists them all.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import RuleError

SEVERITIES = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}  # 0 is the worst
# SQL that sorts rows by the severity in column f.severity, worst first
SEVERITY_ORDER_SQL = "list_position([" + ", ".join(f"'{s}'" for s in SEVERITIES) + "], f.severity)"
STATUSES = ("pass", "fail", "skip", "info")
OUTPUT_COLUMNS = ("resource_id", "resource_name", "project_id", "status", "reason")
RESOURCE_TYPES = ("server", "flavor", "image", "availability_zone", "server_group", "security_group",
                  "port", "floating_ip", "project", "deployment", "network", "subnet", "router", "address_group",
                  "user", "application_credential", "volume", "volume_snapshot", "container")

REQUIRED_KEYS = ("title", "severity", "resource_type", "description", "rationale", "remediation")
OPTIONAL_KEYS = ("params", "frameworks", "references", "evidence")
RULE_ID = re.compile(r"^[a-z][a-z0-9_]{2,99}$")
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_OPEN, _CLOSE = "/*---", "---*/"


@dataclass(frozen=True)
class Rule:
    id: str
    path: Path
    pack: str
    title: str
    severity: str
    resource_type: str
    description: str
    rationale: str
    remediation: str
    sql: str  # the whole file: its line numbers are the file's
    params: dict[str, Any] = field(default_factory=dict)  # defaults from the file
    frameworks: dict[str, list[str]] = field(default_factory=dict)  # as written in the file
    references: tuple[str, ...] = ()
    evidence: dict[str, str] = field(default_factory=dict)  # each key of the `evidence` column: what it holds

    @property
    def output_columns(self) -> tuple[str, ...]:
        return OUTPUT_COLUMNS + (("evidence",) if self.evidence else ())

    @property
    def cases_path(self) -> Path:
        return self.path.with_name(f"{self.id}.test.yaml")

    def digest(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Framework:
    id: str
    title: str
    path: Path
    controls: tuple[Control, ...]
    url: str | None = None


@dataclass(frozen=True)
class InstanceType:
    name: str
    description: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    flavors: tuple[str, ...]


@dataclass
class Catalog:
    rules: dict[str, Rule]
    frameworks: dict[str, Framework]

    def controls_of(self, rule_id: str) -> dict[str, list[str]]:
        """Framework id -> control ids that list `rule_id` (from framework files and the rule's own metadata)."""
        found: dict[str, list[str]] = {}
        for framework in self.frameworks.values():
            for control in framework.controls:
                if rule_id in control.rules:
                    found.setdefault(framework.id, []).append(control.id)
        rule = self.rules.get(rule_id)
        for framework_id, control_ids in (rule.frameworks if rule else {}).items():
            for control_id in control_ids:
                if control_id not in found.setdefault(framework_id, []):
                    found[framework_id].append(control_id)
        return found

    def rules_of_control(self, framework_id: str) -> list[tuple[Control, list[str]]]:
        """Each control of a framework with every rule mapped to it, from either side."""
        framework = self.frameworks[framework_id]
        out = []
        for control in framework.controls:
            rule_ids = list(control.rules)
            for rule in self.rules.values():
                if control.id in rule.frameworks.get(framework_id, []) and rule.id not in rule_ids:
                    rule_ids.append(rule.id)
            out.append((control, rule_ids))
        return out


# -- rules ------------------------------------------------------------------------------------------------
def load_catalog(roots: list[Path]) -> Catalog:
    """Every rule and framework under `roots`; raises RuleError listing every problem found."""
    problems: list[str] = []
    rules: dict[str, Rule] = {}
    frameworks: dict[str, Framework] = {}
    for root in roots:
        if not root.is_dir():
            problems.append(f"{root}: rule folder not found")
            continue
        for path in sorted(root.rglob("*.sql")):
            try:
                rule = parse_rule_file(path, root)
            except RuleError as exc:
                problems.extend(exc.problems)
                continue
            if rule.id in rules:
                problems.append(f"{path}:1: rule id {rule.id!r} is also defined in {rules[rule.id].path}")
                continue
            rules[rule.id] = rule
        for path in sorted((root / "frameworks").glob("*.yaml")) if (root / "frameworks").is_dir() else []:
            try:
                framework = parse_framework_file(path)
            except RuleError as exc:
                problems.extend(exc.problems)
                continue
            if framework.id in frameworks:
                problems.append(f"{path}:1: framework {framework.id!r} is also defined in {frameworks[framework.id].path}")
                continue
            frameworks[framework.id] = framework
    problems.extend(_cross_check(rules, frameworks))
    if problems:
        raise RuleError(problems)
    return Catalog(rules=rules, frameworks=frameworks)


def _cross_check(rules: dict[str, Rule], frameworks: dict[str, Framework]) -> list[str]:
    problems = []
    for framework in frameworks.values():
        text = framework.path.read_text(encoding="utf-8").splitlines()
        for control in framework.controls:
            for rule_id in control.rules:
                if rule_id not in rules:
                    line = _line_of(text, rule_id)
                    problems.append(f"{framework.path}:{line}: control {control.id} names unknown rule {rule_id!r}")
    for rule in rules.values():
        for framework_id, control_ids in rule.frameworks.items():
            line = _line_of(rule.sql.splitlines(), framework_id)
            if framework_id not in frameworks:
                problems.append(f"{rule.path}:{line}: unknown framework {framework_id!r} "
                                f"(known: {', '.join(sorted(frameworks)) or 'none'})")
                continue
            known = {c.id for c in frameworks[framework_id].controls}
            for control_id in control_ids:
                if control_id not in known:
                    problems.append(f"{rule.path}:{line}: framework {framework_id} has no control {control_id!r}")
    return problems


def _line_of(lines: list[str], needle: str) -> int:
    return next((i + 1 for i, line in enumerate(lines) if needle in line), 1)


def parse_rule_file(path: Path, root: Path | None = None) -> Rule:
    """Parse one rule file; raise RuleError with every problem found in it (file:line: message)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}:1: cannot be read: {exc}") from None
    rule_id = path.stem
    problems = []
    if not RULE_ID.match(rule_id):
        problems.append(f"{path}:1: the file name {path.name!r} is the rule id and must be lower_snake_case "
                        "(a-z, 0-9, _), 3-100 characters")
    lines = text.splitlines()
    if not lines or lines[0].strip() != _OPEN:
        raise RuleError(problems + [f"{path}:1: a rule file starts with a '{_OPEN}' line (YAML metadata, then "
                                    f"'{_CLOSE}', then the query)"])
    close = next((i for i, line in enumerate(lines) if line.strip() == _CLOSE), None)
    if close is None:
        raise RuleError(problems + [f"{path}:1: the metadata comment is never closed with a '{_CLOSE}' line"])
    meta_text = "\n".join(lines[1:close])
    body = "\n".join(lines[close + 1:]).strip()
    meta, key_lines = _load_yaml_mapping(meta_text, path, line_offset=1)
    if not body:
        problems.append(f"{path}:{close + 2}: no query after the metadata")

    for key in meta:
        if key not in REQUIRED_KEYS and key not in OPTIONAL_KEYS:
            problems.append(f"{path}:{key_lines.get(key, 2)}: unknown key {key!r} "
                            f"(expected: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")
    for key in REQUIRED_KEYS:
        if key not in meta:
            problems.append(f"{path}:{close + 1}: missing required key {key!r}")
        elif not isinstance(meta[key], str) or not meta[key].strip():
            problems.append(f"{path}:{key_lines[key]}: key {key!r} must be a non-empty string")
    severity = meta.get("severity")
    if isinstance(severity, str) and severity not in SEVERITIES:
        problems.append(f"{path}:{key_lines['severity']}: unknown severity {severity!r} "
                        f"(expected one of: {', '.join(SEVERITIES)})")
    resource_type = meta.get("resource_type")
    if isinstance(resource_type, str) and resource_type not in RESOURCE_TYPES:
        problems.append(f"{path}:{key_lines['resource_type']}: unknown resource_type {resource_type!r} "
                        f"(expected one of: {', '.join(RESOURCE_TYPES)})")
    params = meta.get("params", {}) or {}
    if not isinstance(params, dict):
        problems.append(f"{path}:{key_lines.get('params', 2)}: 'params' must be a mapping of name to default value")
        params = {}
    for name, value in params.items():
        where = f"{path}:{key_lines.get('params', 2)}"
        if not isinstance(name, str) or not PARAM_NAME.match(name):
            problems.append(f"{where}: parameter name {name!r} must be lower_snake_case")
        problem = param_type_problem(value)
        if problem:
            problems.append(f"{where}: parameter {name!r} {problem}")
    frameworks = meta.get("frameworks", {}) or {}
    if not isinstance(frameworks, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(c, (str, int, float)) for c in v)
        for k, v in frameworks.items()
    ):
        problems.append(f"{path}:{key_lines.get('frameworks', 2)}: 'frameworks' must map a framework id to a "
                        "list of control ids")
        frameworks = {}
    references = meta.get("references", []) or []
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        problems.append(f"{path}:{key_lines.get('references', 2)}: 'references' must be a list of URLs")
        references = []
    evidence = meta.get("evidence", {}) or {}
    if not isinstance(evidence, dict) or not all(
            isinstance(k, str) and PARAM_NAME.match(k) and isinstance(v, str) and v.strip()
            for k, v in evidence.items()):
        problems.append(f"{path}:{key_lines.get('evidence', 2)}: 'evidence' must map each lower_snake_case key of "
                        "the evidence column to what it holds")
        evidence = {}
    if problems:
        raise RuleError(problems)
    pack = _pack(path, root)
    return Rule(
        id=rule_id, path=path, pack=pack, title=meta["title"].strip(), severity=severity,
        resource_type=resource_type, description=meta["description"].strip(), rationale=meta["rationale"].strip(),
        remediation=meta["remediation"].strip(), sql=text, params=dict(params),
        frameworks={k: [str(c) for c in v] for k, v in frameworks.items()}, references=tuple(references),
        evidence={k: " ".join(v.split()) for k, v in evidence.items()},
    )


def _pack(path: Path, root: Path | None) -> str:
    if root is None:
        return path.parent.name or "custom"
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else root.name


def param_type_problem(value: Any) -> str | None:
    """None when `value` can be bound as a DuckDB parameter: a scalar, or a list of scalars of one type."""
    scalar = (bool, int, float, str)
    if isinstance(value, scalar):
        return None
    if isinstance(value, list):
        if not value:
            return "must not be an empty list (its type could not be known); give at least one value"
        kinds = {_kind(v) for v in value}
        if not all(isinstance(v, scalar) for v in value) or len(kinds) != 1:
            return "must be a list of values of one type (numbers, strings or booleans)"
        return None
    return f"must be a number, string, boolean or list of those, got {type(value).__name__}"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def same_param_type(default: Any, value: Any) -> bool:
    if isinstance(default, list):
        return isinstance(value, list) and param_type_problem(value) is None and (
            not value or _kind(value[0]) == _kind(default[0]))
    return not isinstance(value, list) and _kind(value) == _kind(default)


def _load_yaml_mapping(text: str, path: Path, line_offset: int) -> tuple[dict, dict[str, int]]:
    """Parse YAML text that must be a mapping; return it with the file line of each top-level key."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        raise RuleError(yaml_error_text(exc, path, line_offset)) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}:{line_offset + 1}: invalid YAML: {exc}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise RuleError(f"{path}:{line_offset + 1}: must be a YAML mapping (key: value lines)")
    key_lines = {k.value: k.start_mark.line + 1 + line_offset for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return data, key_lines


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but an impossible date (`2027-02-30`) is an error at its line, not a
    ValueError from deep inside the constructor."""

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, f"invalid date {node.value!r} ({exc})",
                                                    node.start_mark) from None


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_timestamp)


def load_yaml(text: str):
    """YAML from a rule, test-case, framework, mapping or waivers file (see StrictLoader)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_error_text(exc: yaml.MarkedYAMLError, path: Path, line_offset: int = 0) -> str:
    """`file:line: invalid YAML: problem (while parsing X on line N)`, lines counted in the file."""
    mark = exc.problem_mark or exc.context_mark
    line = (mark.line + 1 + line_offset) if mark else line_offset + 1
    text = f"{path}:{line}: invalid YAML: {exc.problem or exc}"
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        text += f" ({exc.context} on line {exc.context_mark.line + 1 + line_offset})"
    return text


# -- frameworks -------------------------------------------------------------------------------------------
def parse_framework_file(path: Path) -> Framework:
    text = path.read_text(encoding="utf-8")
    data, key_lines = _load_yaml_mapping(text, path, line_offset=0)
    problems = []
    for key in data:
        if key not in ("framework", "title", "url", "controls"):
            problems.append(f"{path}:{key_lines.get(key, 1)}: unknown key {key!r} (expected: framework, title, url, controls)")
    framework_id = data.get("framework")
    if not isinstance(framework_id, str) or not PARAM_NAME.match(framework_id):
        problems.append(f"{path}:{key_lines.get('framework', 1)}: 'framework' must be a lower_snake_case id")
    if not isinstance(data.get("title"), str):
        problems.append(f"{path}:{key_lines.get('title', 1)}: 'title' must be a string")
    controls_raw = data.get("controls")
    controls = []
    if not isinstance(controls_raw, list) or not controls_raw:
        problems.append(f"{path}:{key_lines.get('controls', 1)}: 'controls' must be a non-empty list")
        controls_raw = []
    seen = set()
    lines = text.splitlines()
    for index, item in enumerate(controls_raw):
        if not isinstance(item, dict) or set(item) - {"id", "title", "rules"} or not isinstance(item.get("id"), (str, int, float)):
            problems.append(f"{path}:{key_lines.get('controls', 1)}: controls[{index}] must have id, title and rules only")
            continue
        control_id = str(item["id"])
        line = _line_of(lines, f"id: {item['id']}") if control_id else 1
        rules = item.get("rules", [])
        if not isinstance(item.get("title"), str) or not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            problems.append(f"{path}:{line}: control {control_id} needs a 'title' string and a 'rules' list of rule ids")
            continue
        if control_id in seen:
            problems.append(f"{path}:{line}: control {control_id} is listed twice")
        seen.add(control_id)
        controls.append(Control(id=control_id, title=item["title"], rules=tuple(rules)))
    if problems:
        raise RuleError(problems)
    return Framework(id=framework_id, title=data["title"], path=path, controls=tuple(controls), url=data.get("url"))


# -- instance types ---------------------------------------------------------------------------------------
def load_instance_types(path: Path) -> list[InstanceType]:
    """The approved instance-type mapping (docs/rules.md); errors name the file, line and entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: instance-type mapping cannot be read: {exc}") from None
    data, key_lines = _load_yaml_mapping(text, path, line_offset=0)
    if set(data) != {"instance_types"} or not isinstance(data["instance_types"], list):
        raise RuleError(f"{path}:1: must hold one key, 'instance_types', a list of types")
    lines = text.splitlines()
    types, problems, names = [], [], set()
    for index, item in enumerate(data["instance_types"]):
        name = item.get("name") if isinstance(item, dict) else None
        line = _line_of(lines, f"name: {name}") if name else key_lines["instance_types"]
        where = f"{path}:{line}: instance_types[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a mapping")
            continue
        unknown = set(item) - {"name", "description", "vcpus", "ram_mb", "disk_gb", "flavors"}
        if unknown:
            problems.append(f"{where}: unknown key {sorted(unknown)[0]!r} "
                            "(expected: name, description, vcpus, ram_mb, disk_gb, flavors)")
            continue
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: 'name' must be a non-empty string")
            continue
        if name in names:
            problems.append(f"{where}: type {name!r} is listed twice")
        names.add(name)
        shape = [item.get(k) for k in ("vcpus", "ram_mb", "disk_gb")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in shape):
            problems.append(f"{where} ({name}): 'vcpus', 'ram_mb' and 'disk_gb' must be whole numbers >= 0")
            continue
        flavors = item.get("flavors", []) or []
        if not isinstance(flavors, list) or not all(isinstance(f, str) for f in flavors):
            problems.append(f"{where} ({name}): 'flavors' must be a list of flavor names")
            continue
        types.append(InstanceType(name, str(item.get("description", "")), *shape, tuple(flavors)))
    if problems:
        raise RuleError(problems)
    return types


def rules_version(rules: list[Rule], params: dict[str, dict], extra_files: list[Path | None]) -> str:
    """A short digest of everything that decides the findings: rule files, parameters, mapping, waivers."""
    digest = hashlib.sha256()
    for rule in sorted(rules, key=lambda r: r.id):
        digest.update(f"{rule.id}\0{rule.digest()}\0".encode())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    for path in extra_files:
        if path is not None and path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
