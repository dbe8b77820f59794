"""Load a fake-cloud fixture directory (format: docs/fake-cloud.md) into the in-memory form generate.py makes."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.errors import ConfigError

# resource name -> (file name, top-level key of the real list response)
RESOURCE_FILES = {
    "projects": ("projects.json", "projects"),
    "servers": ("servers.json", "servers"),
    "flavors": ("flavors.json", "flavors"),
    "availability_zones": ("availability_zones.json", "availabilityZoneInfo"),
    "server_groups": ("server_groups.json", "server_groups"),
    "images": ("images.json", "images"),
    "security_groups": ("security_groups.json", "security_groups"),
    "ports": ("ports.json", "ports"),
    "floating_ips": ("floating_ips.json", "floatingips"),
    "networks": ("networks.json", "networks"),
    "subnets": ("subnets.json", "subnets"),
    "routers": ("routers.json", "routers"),
    "address_groups": ("address_groups.json", "address_groups"),
    "volumes": ("volumes.json", "volumes"),
    "volume_snapshots": ("volume_snapshots.json", "snapshots"),
    "volume_backups": ("volume_backups.json", "backups"),
    "volume_types": ("volume_types.json", "volume_types"),
    "containers": ("containers.json", "containers"),
    "users": ("users.json", "users"),
    "roles": ("roles.json", "roles"),
    "application_credentials": ("application_credentials.json", "application_credentials"),
}


def load_fixture(directory: str | Path) -> dict:
    """Read a fixture directory; a missing resource file is an empty list, a broken one is an error."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: fixture directory not found")
    cloud_file = folder / "cloud.json"
    if not cloud_file.is_file():
        raise ConfigError(f"{cloud_file}: missing (a fixture needs cloud.json with region and users)")
    cloud = _read_json(cloud_file)
    if not isinstance(cloud, dict) or not cloud.get("users"):
        raise ConfigError(f"{cloud_file}: key 'users' must list at least one user")
    fixture: dict = {"cloud": cloud}
    for resource, (filename, key) in RESOURCE_FILES.items():
        path = folder / filename
        if not path.is_file():
            fixture[resource] = []
            continue
        body = _read_json(path)
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError(f"{path}: key '{key}' must be a list of objects")
        fixture[resource] = items
    return fixture


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
