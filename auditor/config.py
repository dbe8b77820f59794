"""Load and validate auditor.toml. Every error names the file, the key and what was expected.

Credentials never live here: clouds are named as in clouds.yaml and openstacksdk finds their credentials.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.errors import ConfigError

DEFAULT_DATABASE = "audit.duckdb"
DEFAULT_MEMORY_LIMIT = "1GB"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
SCOPES = ("auto", "cloud", "project")


@dataclass(frozen=True)
class CollectionSettings:
    timeout: float = 60.0  # seconds for one HTTP request, answer included; also the cap on one wait between tries
    retries: int = 3  # per request (token and version discovery included), for dropped connections, timeouts, 429/5xx
    backoff: float = 0.5  # seconds before the first retry, doubled on each further one (Retry-After wins, capped)
    concurrency: int = 4  # listings in flight at once, across resource types and regions
    page_size: int = 1000
    max_pages: int = 10_000  # per listing: 10 million records at the default page size
    max_response_mb: float = 64.0  # one answer larger than this is a listing error
    deadline: float = 10_800.0  # seconds one region's snapshot may take, waits included (3 hours)


@dataclass(frozen=True)
class CloudTarget:
    name: str  # a cloud in clouds.yaml
    regions: tuple[str, ...] = ()  # empty: the regions clouds.yaml gives for the cloud
    scope: str = "auto"  # auto: cloud-wide when the credentials are admin, else the user's projects
    schedule: str | None = None  # `auditor serve`: this cloud's own schedule instead of [service] run


@dataclass(frozen=True)
class RulesSettings:
    paths: tuple[Path, ...] = ()  # rule folders added to the shipped catalog
    builtin: bool = True  # load the shipped catalog (rules/ of the installation)
    disabled: tuple[str, ...] = ()  # rule ids not to run
    instance_types: Path | None = None  # the approved instance-type mapping; None: the shipped one
    waivers: Path | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule id -> parameter -> value
    timeout: float = 300.0  # seconds one rule may run before it is stopped and reported as an error


@dataclass(frozen=True)
class ReportSettings:
    out_dir: Path = Path("output")  # report folders and the archive page index.html
    formats: tuple[str, ...] = ("html", "pdf", "csv", "json")
    pdf_max_rows: int = 1000  # failing resources listed in the PDF, most severe first; findings.csv has all
    pdf_timeout: float = 120.0  # seconds the PDF renderer (a child process) may take
    pdf_memory_limit_mb: int = 1024  # address-space limit of that child


@dataclass(frozen=True)
class RecipientGroup:
    name: str
    recipients: tuple[str, ...]
    include_csv: bool = False  # also attach findings.csv (the security team)


@dataclass(frozen=True)
class EmailSettings:
    host: str
    sender: str  # the From address
    groups: tuple[RecipientGroup, ...]
    port: int = 587
    security: str = "starttls"  # starttls, tls (implicit, usually port 465) or none
    username: str | None = None
    password_env: str | None = None  # the environment variable holding the password; never the password itself
    ca_file: Path | None = None  # CA bundle that replaces the system's for verifying the server
    timeout: float = 30.0  # seconds for the connection and each SMTP command
    retries: int = 2  # attempts after the first, on connection failures and 4xx replies (1 s, 2 s, 4 s ...)
    max_attachment_mb: float = 10.0  # attachments of one message together; larger ones stay on disk


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 9187  # 0: any free port (logged at start)


@dataclass(frozen=True)
class ServiceSettings:
    """[service]: what `auditor serve` runs and when. Schedules are checked by auditor/service/triggers.py."""

    timezone: str = "UTC"  # IANA zone of the cron expressions
    run: str = "0 */6 * * *"  # snapshot + evaluate + report of each cloud/region
    email: str | None = None  # the digest; default "0 7 * * *" when [email] exists, else no digest job
    prune: str | None = None  # retention; default "30 3 * * *" when [retention] exists, else no pruning
    misfire_grace: int = 3600  # seconds: a run missed while the service was down is caught up once if this recent
    job_store: Path | None = None  # SQLite file with the schedule and job_runs; default beside the database
    workers: int = 4  # jobs running at once (one job never overlaps itself)
    http: HttpSettings | None = None  # no [service.http]: no HTTP endpoint


@dataclass(frozen=True)
class RetentionSettings:
    """[retention]: keep every snapshot for keep_all_days, then one a day for daily_days more, then one a
    week; the rules of which one, and what is never pruned, are in auditor/store/retention.py."""

    keep_all_days: int = 14
    daily_days: int = 90


OWNER_ONLY_UMASK = 0o077  # files 0600, folders 0700
GROUP_READABLE_UMASK = 0o027  # files 0640, folders 0750


@dataclass(frozen=True)
class Config:
    source: Path | None
    database: Path
    clouds: tuple[CloudTarget, ...] = ()
    database_memory_limit: str = DEFAULT_MEMORY_LIMIT  # DuckDB's limit while a snapshot is written or judged
    collection: CollectionSettings = field(default_factory=CollectionSettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    email: EmailSettings | None = None  # None: no [email] section, no digests
    service: ServiceSettings = field(default_factory=ServiceSettings)
    retention: RetentionSettings | None = None  # None: no [retention] section, nothing is ever pruned
    group_readable: bool = False  # files 0640 and folders 0750 instead of 0600 and 0700

    @property
    def umask(self) -> int:
        """What every file we write gets: owner-only by default; the group may read when group_readable."""
        return GROUP_READABLE_UMASK if self.group_readable else OWNER_ONLY_UMASK

    @property
    def job_store(self) -> Path:
        return self.service.job_store or self.database.with_name(f"{self.database.stem}.jobs.sqlite")


_TOP_KEYS = {"database", "database_memory_limit", "clouds", "collection", "rules", "report", "email", "service",
             "retention", "group_readable"}
_REPORT_FORMATS = ("html", "pdf", "csv", "json")
_REPORT_LIMITS = {  # key: (type, minimum, maximum)
    "pdf_max_rows": (int, 0, 100_000),
    "pdf_timeout": (float, 5, 3600),
    "pdf_memory_limit_mb": (int, 256, 65_536),
}
_RULES_KEYS = {"paths", "builtin", "disabled", "instance_types", "waivers", "params", "timeout"}
_CLOUD_KEYS = {"name", "regions", "scope", "schedule"}
_COLLECTION_LIMITS = {  # key: (type, minimum, maximum)
    "timeout": (float, 1, 3600),
    "retries": (int, 0, 20),
    "backoff": (float, 0, 60),
    "concurrency": (int, 1, 64),
    "page_size": (int, 1, 10000),
    "max_pages": (int, 1, 10_000_000),
    "max_response_mb": (float, 1, 4096),
    "deadline": (float, 1, 7 * 86400),
}


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read the config from `path`, else $AUDITOR_CONFIG, else ./auditor.toml if present, else defaults."""
    explicit = path or os.environ.get("AUDITOR_CONFIG")
    if explicit:
        source = Path(explicit)
        if not source.is_file():
            raise ConfigError(f"{source}: config file not found")
    else:
        source = Path("auditor.toml")
        if not source.is_file():
            return Config(source=None, database=Path(DEFAULT_DATABASE))
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read: {exc}") from None
    return parse_config(data, source)


def parse_config(data: dict[str, Any], source: Path) -> Config:
    _reject_unknown(data, _TOP_KEYS, source, "")
    base = source.parent
    database = data.get("database", DEFAULT_DATABASE)
    if not isinstance(database, str) or not database.strip():
        raise ConfigError(f"{source}: key 'database' must be a file path string, got {database!r}")
    db_path = Path(database).expanduser()
    if not db_path.is_absolute():
        db_path = base / db_path

    memory_limit = data.get("database_memory_limit", DEFAULT_MEMORY_LIMIT)
    if not isinstance(memory_limit, str) or not _MEMORY.match(memory_limit.strip()):
        raise ConfigError(
            f"{source}: key 'database_memory_limit' must be a size such as \"1GB\" or \"768MB\", got {memory_limit!r}"
        )

    clouds_raw = data.get("clouds", [])
    if not isinstance(clouds_raw, list):
        raise ConfigError(f"{source}: key 'clouds' must be an array of tables ([[clouds]]), got {_kind(clouds_raw)}")
    clouds = tuple(_parse_cloud(item, source, i) for i, item in enumerate(clouds_raw))
    names = [(c.name, c.regions) for c in clouds]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: key 'clouds' lists the same cloud and regions twice")

    collection_raw = data.get("collection", {})
    if not isinstance(collection_raw, dict):
        raise ConfigError(f"{source}: key 'collection' must be a table, got {_kind(collection_raw)}")
    _reject_unknown(collection_raw, set(_COLLECTION_LIMITS), source, "collection.")
    settings = _numbers(collection_raw, _COLLECTION_LIMITS, source, "collection.")
    group_readable = data.get("group_readable", False)
    if not isinstance(group_readable, bool):
        raise ConfigError(f"{source}: key 'group_readable' must be true or false, got {group_readable!r}")
    return Config(source=source, database=db_path, clouds=clouds, collection=CollectionSettings(**settings),
                  group_readable=group_readable,
                  database_memory_limit=memory_limit.strip(), rules=_parse_rules(data.get("rules", {}), source),
                  report=_parse_report(data.get("report", {}), source),
                  email=_parse_email(data["email"], source) if "email" in data else None,
                  service=_parse_service(data.get("service", {}), source, "email" in data, "retention" in data),
                  retention=_parse_retention(data["retention"], source) if "retention" in data else None)


_SERVICE_KEYS = {"timezone", "run", "email", "prune", "misfire_grace", "job_store", "workers", "http"}
_SERVICE_LIMITS = {  # key: (type, minimum, maximum)
    "misfire_grace": (int, 1, 7 * 86400),
    "workers": (int, 1, 64),
}
_HTTP_LIMITS = {"port": (int, 0, 65535)}
_RETENTION_LIMITS = {
    "keep_all_days": (int, 1, 36500),
    "daily_days": (int, 0, 36500),
}


def _parse_service(raw: Any, source: Path, has_email: bool, has_retention: bool) -> ServiceSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key 'service' must be a table, got {_kind(raw)}")
    _reject_unknown(raw, _SERVICE_KEYS, source, "service.")
    values: dict[str, Any] = _numbers(raw, _SERVICE_LIMITS, source, "service.")
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone:
        raise ConfigError(f"{source}: key 'service.timezone' must be an IANA time zone name such as "
                          f"\"Europe/Berlin\", got {timezone!r}")
    values["timezone"] = timezone
    for key in ("run", "email", "prune"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ConfigError(f"{source}: key 'service.{key}' must be a schedule string: a cron expression such as "
                              f"\"0 */6 * * *\" or an interval such as \"every 30m\", got {raw[key]!r}")
    values["run"] = raw.get("run", ServiceSettings.run).strip()
    if "email" in raw and not has_email:
        raise ConfigError(f"{source}: key 'service.email' schedules the digest, but there is no [email] section")
    if "prune" in raw and not has_retention:
        raise ConfigError(f"{source}: key 'service.prune' schedules pruning, but there is no [retention] section")
    values["email"] = raw.get("email", "0 7 * * *").strip() if has_email else None
    values["prune"] = raw.get("prune", "30 3 * * *").strip() if has_retention else None
    if "job_store" in raw:
        values["job_store"] = _path(raw["job_store"], source, "service.job_store", "a file path")
    if "http" in raw:
        http = raw["http"]
        if not isinstance(http, dict):
            raise ConfigError(f"{source}: key 'service.http' must be a table ([service.http]), got {_kind(http)}")
        _reject_unknown(http, {"host", *_HTTP_LIMITS}, source, "service.http.")
        host = http.get("host", HttpSettings.host)
        if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.:_-]+", host):
            raise ConfigError(f"{source}: key 'service.http.host' must be an address to listen on such as "
                              f"\"127.0.0.1\", got {host!r}")
        values["http"] = HttpSettings(host=host, **_numbers(http, _HTTP_LIMITS, source, "service.http."))
    return ServiceSettings(**values)


def _parse_retention(raw: Any, source: Path) -> RetentionSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key 'retention' must be a table, got {_kind(raw)}")
    _reject_unknown(raw, set(_RETENTION_LIMITS), source, "retention.")
    return RetentionSettings(**_numbers(raw, _RETENTION_LIMITS, source, "retention."))


def _parse_report(raw: Any, source: Path) -> ReportSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key 'report' must be a table, got {_kind(raw)}")
    _reject_unknown(raw, {"out_dir", "formats", *_REPORT_LIMITS}, source, "report.")
    values: dict[str, Any] = {"out_dir": source.parent / "output"}  # like the database: beside the config
    if "out_dir" in raw:
        values["out_dir"] = _path(raw["out_dir"], source, "report.out_dir", "a folder path")
    if "formats" in raw:
        formats = raw["formats"]
        if not isinstance(formats, list) or not formats or not all(f in _REPORT_FORMATS for f in formats):
            raise ConfigError(f"{source}: key 'report.formats' must be a non-empty list of "
                              f"{', '.join(_REPORT_FORMATS)}, got {formats!r}")
        values["formats"] = tuple(dict.fromkeys(formats))
    values.update(_numbers(raw, _REPORT_LIMITS, source, "report."))
    return ReportSettings(**values)


SECURITY_MODES = ("starttls", "tls", "none")
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_EMAIL_KEYS = {"host", "port", "security", "username", "password_env", "ca_file", "timeout", "retries", "sender",
               "max_attachment_mb", "groups"}
_EMAIL_LIMITS = {  # key: (type, minimum, maximum)
    "port": (int, 1, 65535),
    "timeout": (float, 1, 600),
    "retries": (int, 0, 10),
    "max_attachment_mb": (float, 0, 1000),
}
_GROUP_KEYS = {"name", "recipients", "include_csv"}
# One address, bare (no display name): no whitespace, control characters, quotes, brackets or separators.
_ADDRESS = re.compile(r"[^\s\x00-\x1f\x7f<>()\[\]\\,;:\"@]+@[A-Za-z0-9.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse_email(raw: Any, source: Path) -> EmailSettings:
    """[email]: the SMTP server and the recipient groups of the digest."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key 'email' must be a table, got {_kind(raw)}")
    _reject_unknown(raw, _EMAIL_KEYS, source, "email.")
    for key in ("host", "sender"):
        if key not in raw:
            raise ConfigError(f"{source}: key 'email.{key}' is required in [email]")
    host = raw["host"]
    if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.:_-]+", host):
        raise ConfigError(f"{source}: key 'email.host' must be a host name or IP address, got {host!r}")
    security = raw.get("security", "starttls")
    if security not in SECURITY_MODES:
        raise ConfigError(f"{source}: key 'email.security' must be one of {', '.join(SECURITY_MODES)}, "
                          f"got {security!r}")
    values: dict[str, Any] = {"host": host, "security": security, "port": _DEFAULT_PORTS[security],
                              "sender": _address(raw["sender"], source, "email.sender")}
    values.update(_numbers(raw, _EMAIL_LIMITS, source, "email."))
    for key in ("username", "password_env"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value or any(c in value for c in "\r\n\0"):
                raise ConfigError(f"{source}: key 'email.{key}' must be a non-empty single-line string, got {value!r}")
            values[key] = value
    if "password_env" in values and not _ENV_NAME.fullmatch(values["password_env"]):
        raise ConfigError(f"{source}: key 'email.password_env' must be the name of an environment variable "
                          f"(letters, digits, _), got {values['password_env']!r}")
    if ("username" in values) != ("password_env" in values):
        raise ConfigError(f"{source}: keys 'email.username' and 'email.password_env' go together: give both "
                          "for SMTP authentication, or neither")
    if "username" in values and security == "none":
        raise ConfigError(f"{source}: key 'email.security' is \"none\" but 'email.username' is set: the password "
                          "would cross the network in clear; use starttls or tls")
    if "ca_file" in raw:
        path = _path(raw["ca_file"], source, "email.ca_file", "a file path")
        if not path.is_file():
            raise ConfigError(f"{source}: key 'email.ca_file': file {path} does not exist")
        values["ca_file"] = path
    groups_raw = raw.get("groups")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise ConfigError(f"{source}: key 'email.groups' must be at least one [[email.groups]] table with a name "
                          f"and recipients, got {groups_raw!r}")
    groups = tuple(_parse_group(item, source, i) for i, item in enumerate(groups_raw))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: key 'email.groups' names the same group twice")
    return EmailSettings(groups=groups, **values)


def _parse_group(item: Any, source: Path, index: int) -> RecipientGroup:
    where = f"email.groups[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{source}: key '{where}' must be a table with a name and recipients, got {_kind(item)}")
    _reject_unknown(item, _GROUP_KEYS, source, f"{where}.")
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ConfigError(f"{source}: key '{where}.name' must be a name of letters, digits, '.', '_' or '-', "
                          f"got {name!r}")
    recipients = item.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise ConfigError(f"{source}: key '{where}.recipients' must be a non-empty list of email addresses, "
                          f"got {recipients!r}")
    include_csv = item.get("include_csv", False)
    if not isinstance(include_csv, bool):
        raise ConfigError(f"{source}: key '{where}.include_csv' must be true or false, got {include_csv!r}")
    addresses = tuple(_address(r, source, f"{where}.recipients") for r in recipients)
    return RecipientGroup(name=name, recipients=tuple(dict.fromkeys(addresses)), include_csv=include_csv)


def _address(value: Any, source: Path, key: str) -> str:
    if not isinstance(value, str) or len(value) > 254 or not value.isascii() or not _ADDRESS.fullmatch(value):
        raise ConfigError(f"{source}: key '{key}' must hold plain email addresses such as ops@example.com "
                          f"(ASCII, no display name, no spaces or line breaks), got {value!r}")
    return value


def _path(value: Any, source: Path, key: str, what: str) -> Path:
    """A path string from the config; a relative one is relative to the config file's folder."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: key '{key}' must be {what}, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else source.parent / path


def _numbers(table: dict, limits: dict[str, tuple[type, float, float]], source: Path, prefix: str) -> dict:
    """The numeric keys of `table` named in `limits` (key: (int or float, minimum, maximum)), checked."""
    values = {}
    for key, (kind, low, high) in limits.items():
        if key not in table:
            continue
        value = table[key]
        ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
        if isinstance(value, bool) or not ok or not low <= value <= high:
            expected = "a number" if kind is float else "an integer"
            raise ConfigError(f"{source}: key '{prefix}{key}' must be {expected} from {low} to {high}, got {value!r}")
        values[key] = kind(value)
    return values


def _parse_rules(raw: Any, source: Path) -> RulesSettings:
    """[rules]: which rules run and with what. Parameter names and types are checked against the rules
    themselves when they are loaded (auditor/rules/evaluate.py), since only the rule files know them."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key 'rules' must be a table, got {_kind(raw)}")
    _reject_unknown(raw, _RULES_KEYS, source, "rules.")

    paths = raw.get("paths", [])
    if not isinstance(paths, list):
        raise ConfigError(f"{source}: key 'rules.paths' must be a list of rule folders, got {_kind(paths)}")
    folders = tuple(_path(p, source, "rules.paths", "a path string") for p in paths)
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{source}: key 'rules.paths': rule folder {folder} does not exist")
    builtin = raw.get("builtin", True)
    if not isinstance(builtin, bool):
        raise ConfigError(f"{source}: key 'rules.builtin' must be true or false, got {builtin!r}")
    disabled = raw.get("disabled", [])
    if not isinstance(disabled, list) or not all(isinstance(d, str) and d for d in disabled):
        raise ConfigError(f"{source}: key 'rules.disabled' must be a list of rule ids, got {disabled!r}")
    files = {}
    for key in ("instance_types", "waivers"):
        if key in raw:
            files[key] = _path(raw[key], source, f"rules.{key}", "a path string")
            if not files[key].is_file():
                raise ConfigError(f"{source}: key 'rules.{key}': file {files[key]} does not exist")
    params = raw.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"{source}: key 'rules.params' must hold one table per rule "
                          "([rules.params.RULE_ID] with parameter = value lines)")
    timeout = raw.get("timeout", 300.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 86400:
        raise ConfigError(f"{source}: key 'rules.timeout' must be a number of seconds from 1 to 86400, got {timeout!r}")
    return RulesSettings(paths=folders, builtin=builtin, disabled=tuple(disabled),
                         instance_types=files.get("instance_types"), waivers=files.get("waivers"),
                         params={k: dict(v) for k, v in params.items()}, timeout=float(timeout))


def _parse_cloud(item: Any, source: Path, index: int) -> CloudTarget:
    where = f"clouds[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{source}: key '{where}' must be a table with a 'name', got {_kind(item)}")
    _reject_unknown(item, _CLOUD_KEYS, source, f"{where}.")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: key '{where}.name' must be a cloud name from clouds.yaml, got {name!r}")
    regions = item.get("regions", [])
    if not isinstance(regions, list) or not all(isinstance(r, str) and r for r in regions):
        raise ConfigError(f"{source}: key '{where}.regions' must be a list of region names, got {regions!r}")
    scope = item.get("scope", "auto")
    if scope not in SCOPES:
        raise ConfigError(f"{source}: key '{where}.scope' must be one of {', '.join(SCOPES)}, got {scope!r}")
    schedule = item.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or not schedule.strip()):
        raise ConfigError(f"{source}: key '{where}.schedule' must be a schedule string such as \"0 */6 * * *\", "
                          f"got {schedule!r}")
    return CloudTarget(name=name, regions=tuple(regions), scope=scope, schedule=schedule.strip() if schedule else None)


def _reject_unknown(table: dict, allowed: set[str], source: Path, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            others = [k for k in sorted(allowed) if k not in close]
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}' ({hint}expected one of: {', '.join(close + others)})"
            )


def _kind(value: Any) -> str:
    return type(value).__name__
