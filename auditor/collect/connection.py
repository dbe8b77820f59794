"""Connect to one cloud region: clouds.yaml, the retry policy mounted in the transport, the token, and the
compute and block-storage microversions. Every failure here is one line naming the service and what happened."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import openstack
import openstack.connection
import openstack.exceptions
from keystoneauth1 import exceptions as ksa_exceptions
from keystoneauth1.session import TCPKeepAliveAdapter
from openstack import utils as sdk_utils
from openstack.config import OpenStackConfig

from auditor import __version__
from auditor.collect.retry import (
    RETRIABLE_STATUS_CODES,
    Deadline,
    DeadlineReached,
    RetryPolicy,
    network_reason,
    status_text,
)
from auditor.config import CollectionSettings
from auditor.errors import CollectionError
from auditor.logs import register_secret, register_url

CLIENT_MAX_MICROVERSION = "2.100"
# Cinder 3.65 (Xena): backups say their project (3.18) and user (3.56), snapshots their user (3.41).
BLOCK_STORAGE_MAX_MICROVERSION = "3.65"
_SECRET_AUTH_KEY = re.compile(r"(?i)password|secret|token|passcode|key")


def region_names(cloud: str, configured: tuple[str, ...] = ()) -> list[str]:
    """The regions to collect: those configured, else the ones clouds.yaml lists, else the default one."""
    named = os.environ.get("OS_CLIENT_CONFIG_FILE")
    if named and not Path(named).expanduser().is_file():
        raise CollectionError(f"OS_CLIENT_CONFIG_FILE names {named}, a file that does not exist")
    try:
        loader = OpenStackConfig()
    except openstack.exceptions.ConfigException as exc:
        raise CollectionError(f"clouds.yaml: {exc}") from None
    defined = loader.get_cloud_names()
    if cloud not in defined:
        where = loader.config_filename or "clouds.yaml (no file found in the standard locations)"
        known = ", ".join(sorted(c for c in defined if c != "envvars")) or "none"
        raise CollectionError(f"cloud {cloud!r} is not defined in {where}; the clouds defined there: {known}")
    if configured:
        return list(configured)
    entry = loader.cloud_config.get("clouds", {}).get(cloud, {})
    listed = entry.get("regions")
    if isinstance(listed, list) and listed:
        return [r if isinstance(r, str) else r.get("name", "") for r in listed]
    return [loader.get_one(cloud=cloud, validate=False).region_name or ""]


def retry_policy(settings: CollectionSettings, stop: threading.Event) -> RetryPolicy:
    """The retry policy and deadline of one region's snapshot."""
    return RetryPolicy(settings.retries, settings.backoff, settings.timeout, stop, Deadline(settings.deadline))


def connect(cloud: str, region: str, settings: CollectionSettings,
            policy: RetryPolicy) -> openstack.connection.Connection:
    """An authenticated connection whose every request follows `policy`; bad credentials or an unreachable
    cloud are a CollectionError with a one-line message."""
    where = f"cloud {cloud!r}" + (f" region {region!r}" if region else "")
    try:
        region_config = OpenStackConfig().get_one(
            cloud=cloud, region_name=region or None, api_timeout=settings.timeout
        )
        register_credentials(region_config.config)
        conn = openstack.connection.Connection(config=region_config, app_name="auditor", app_version=__version__)
    except (openstack.exceptions.SDKException, ksa_exceptions.ClientException) as exc:
        raise CollectionError(f"{where}: {exc}") from None
    harden(conn, policy, settings.concurrency)
    authenticate(conn, where, policy)
    check_region(conn, where)
    return conn


def register_credentials(config: dict) -> None:
    """Mask the credentials of a clouds.yaml entry in every log line and error from now on: the named fields
    of `auth`, and whatever an operator wrote into any URL of the entry (`http://user:pw@…/v3?token=…`)."""
    for key, value in (config.get("auth") or {}).items():
        if _SECRET_AUTH_KEY.search(key):
            register_secret(value)
    pending = [config]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        else:
            register_url(item)


def harden(conn: openstack.connection.Connection, policy: RetryPolicy, concurrency: int) -> None:
    """Mount the retry policy in the connection's transport (keystoneauth's own keep-alive adapter, with
    room for every concurrent listing in its pool)."""
    pool = TCPKeepAliveAdapter(pool_connections=4, pool_maxsize=max(10, concurrency),
                               max_retries=policy.transport_retry())
    conn.session.session.mount("http://", pool)
    conn.session.session.mount("https://", pool)


def authenticate(conn: openstack.connection.Connection, where: str, policy: RetryPolicy) -> None:
    """Get the token (version discovery, then POST /v3/auth/tokens), each request retried by the transport."""
    auth_url = str((conn.config.config.get("auth") or {}).get("auth_url") or "")
    try:
        register_secret(conn.session.get_token())
    except ksa_exceptions.Unauthorized:
        raise CollectionError(f"{where}: authentication failed; check the credentials in clouds.yaml") from None
    except DeadlineReached as exc:
        raise CollectionError(f"{where}: identity service at {auth_url}: {exc}") from None
    except (ksa_exceptions.ClientException, openstack.exceptions.SDKException) as exc:
        raise CollectionError(f"{where}: {service_failure('identity', auth_url, exc, policy)}") from None


def check_region(conn: openstack.connection.Connection, where: str) -> None:
    """A region the service catalog does not know is the operator's mistake, said once and plainly, not a
    failure of every listing (openstacksdk raises ServiceDisabledException on each service it misses)."""
    region = conn.config.region_name
    if not region:
        return
    catalog = conn.session.auth.get_access(conn.session).service_catalog
    known = {endpoint.get("region_id") or endpoint.get("region")
             for endpoints in catalog.get_endpoints().values() for endpoint in endpoints}
    known.discard(None)
    if region not in known:
        listed = ", ".join(repr(name) for name in sorted(known)) or "none"
        raise CollectionError(f"{where}: the service catalog has no endpoint in this region; "
                              f"its regions: {listed} (check region_name in clouds.yaml or --region)")


def service_failure(service: str, url: str, exc: BaseException, policy: RetryPolicy) -> str:
    """`identity service at http://…/v3: 503 Service Unavailable after 3 tries`, from any keystoneauth or
    SDK exception (a discovery failure names its cause deeper in the chain)."""
    current, seen = exc, set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "http_status", None)
        if isinstance(status, int):
            failed_url = getattr(current, "url", None) or url
            base = str(failed_url).split("/auth/tokens")[0]
            if status == 401:
                return f"{service} service at {base}: authentication failed; check the credentials in clouds.yaml"
            tries = f" after {policy.tries} tries" if status in RETRIABLE_STATUS_CODES else ""
            return f"{service} service at {base}: {status_text(status)}{tries}"
        if isinstance(current, (ksa_exceptions.ConnectFailure, ksa_exceptions.ConnectTimeout,
                                ksa_exceptions.UnknownConnectionError)):
            split = urlsplit(url)
            port = split.port or (443 if split.scheme == "https" else 80)
            return (f"{service} service at {url} ({split.hostname}:{port}): {network_reason(current)} "
                    f"after {policy.tries} tries")
        current = current.__cause__ or current.__context__
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{service} service at {url}: {first_line}"


def compute_microversion(conn, policy: RetryPolicy) -> tuple[str | None, str | None]:
    """The compute microversion to ask for, or why the compute API cannot be used. A version document that
    could not be read (after the transport's tries) would otherwise pass for a Nova without microversions,
    and every compute listing would silently change shape."""
    return _microversion(conn, "compute", conn.compute, CLIENT_MAX_MICROVERSION, "a Nova older than 2.1", policy)


def block_storage_microversion(conn, policy: RetryPolicy) -> tuple[str | None, str | None]:
    """The block-storage (Cinder v3) microversion to ask for, or why the API cannot be used."""
    return _microversion(conn, "block-storage", conn.block_storage, BLOCK_STORAGE_MAX_MICROVERSION,
                         "not Cinder v3", policy)


def _microversion(conn, service_type, proxy, wanted, older, policy: RetryPolicy) -> tuple[str | None, str | None]:
    try:
        microversion = sdk_utils.maximum_supported_microversion(proxy, wanted)
    except DeadlineReached as exc:
        return None, f"{service_type} version discovery: {exc}"
    except (ksa_exceptions.ClientException, openstack.exceptions.SDKException) as exc:
        return None, service_failure(service_type, endpoint(conn, service_type), exc, policy)
    if microversion is None:
        return None, (f"{service_type} service at {endpoint(conn, service_type)}: its version document gave no "
                      f"microversion (unreachable, or {older}); {service_type} was not listed")
    return microversion, None


def endpoint(conn, service_type: str) -> str:
    try:
        return conn.session.get_endpoint(service_type=service_type, region_name=conn.config.region_name,
                                         interface=conn.config.get_interface(service_type)) or service_type
    except (ksa_exceptions.ClientException, openstack.exceptions.SDKException):
        return service_type
