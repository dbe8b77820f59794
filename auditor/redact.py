"""Remove secrets from API records before they reach the database, logs or reports.

Nova returns `adminPass` on create and `OS-EXT-SRV-ATTR:user_data` (base64 cloud-init, often holding
passwords) from 2.3 on; users put credentials in server metadata and image properties; an application
credential's `secret` must never be kept, whoever returns it. Secret-bearing keys
of a record are dropped; in metadata and image properties, credential-like keys (those of DROPPED_KEYS
included) keep their key but lose their value: that a secret sits there is itself a finding
(rules server_metadata_has_no_credentials, image_properties_have_no_credentials).
"""

import re
from dataclasses import dataclass

REDACTED = "[REDACTED]"

# Keys whose whole value is a secret or may carry one: dropped from records, masked in metadata/properties.
DROPPED_KEYS = frozenset({"adminPass", "admin_pass", "user_data", "OS-EXT-SRV-ATTR:user_data", "password"})

_KEY_PATTERN = (
    r"pass(word|wd|phrase)?|pwd|secret|token|credential|private[-_ ]?key|api[-_ ]?key|access[-_ ]?key"
    r"|auth|session[-_ ]?key|user[-_ ]?data"
)
_VALUE_PATTERN = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|\bgAAAAA[A-Za-z0-9_-]{20,}"  # Keystone fernet tokens
)
_CREDENTIAL_KEY = re.compile(_KEY_PATTERN, re.IGNORECASE)
_CREDENTIAL_VALUE = re.compile(_VALUE_PATTERN)

# For DuckDB (RE2) over a record's JSON text: matches every record that redact_record would change, and some
# it would not (it looks at keys and values alike, anywhere in the record); those few then go through it.
CANDIDATE_PATTERN = f"(?i)({_KEY_PATTERN})|({_VALUE_PATTERN})"


def redact_mapping(mapping: dict | None) -> dict | None:
    """A copy of a flat key/value mapping (metadata, image properties) with credential-like values masked."""
    if not mapping:
        return mapping
    clean = {}
    for key, value in mapping.items():
        if key in DROPPED_KEYS or _CREDENTIAL_KEY.search(key) or (isinstance(value, str) and _CREDENTIAL_VALUE.search(value)):
            clean[key] = REDACTED
        else:
            clean[key] = value
    return clean


def redact_record(record: dict, nested: tuple[str, ...] = (), top_level: bool = False) -> dict:
    """A copy of an API record without secret keys; the mappings named in `nested` are masked too.

    `top_level` masks the record's own keys like a mapping: Glance puts free-form image properties there.
    """
    if top_level:
        clean = redact_mapping(record)
    else:
        clean = {k: v for k, v in record.items() if k not in DROPPED_KEYS}
    for key in nested:
        value = record.get(key)
        if isinstance(value, dict):
            clean[key] = redact_mapping(value)
    return clean


def redact_deep(value, dropped: frozenset[str], known: frozenset[str]):
    """A copy of `value` cleaned at every depth: keys in `dropped` (any case) removed; other keys that look
    like a credential's, unless `known` (the service's own field names, such as `password_expires_at`), keep
    their key and lose their value; any text that looks like a credential is masked, whatever its key."""
    if isinstance(value, dict):
        clean = {}
        for key, item in value.items():
            if key.lower() in dropped:
                continue
            if key not in known and _CREDENTIAL_KEY.search(key):
                clean[key] = REDACTED
            else:
                clean[key] = redact_deep(item, dropped, known)
        return clean
    if isinstance(value, list):
        return [redact_deep(item, dropped, known) for item in value]
    if isinstance(value, str) and _CREDENTIAL_VALUE.search(value):
        return REDACTED
    return value


_DROPPED_LOWER = frozenset(key.lower() for key in DROPPED_KEYS)


@dataclass(frozen=True)
class RecordSecrets:
    """Where the records of one listing carry secrets, and how they are removed (see redact_record)."""

    masked_mappings: tuple[str, ...] = ()  # nested key/value mappings whose credential-like values are masked
    record_is_mapping: bool = False  # the record's own keys are free-form (Glance image properties)
    deep: bool = False  # cleaned at every depth by redact_deep (records with free-form or nested keys)
    dropped: frozenset[str] = _DROPPED_LOWER  # with deep: keys removed wherever they are, compared lower-case
    known: frozenset[str] = frozenset()  # with deep: the service's own keys, never masked for their name

    def clean(self, record: dict) -> dict:
        if self.deep:
            return redact_deep(record, self.dropped, self.known)
        return redact_record(record, nested=self.masked_mappings, top_level=self.record_is_mapping)


# The listings whose records may carry a secret, by resource type. Every page of them is cleaned before it is
# spooled (auditor/collect/paging.py), so no secret is ever written to disk, not even while a snapshot works.
SECRETS_BY_LISTING = {
    "servers": RecordSecrets(masked_mappings=("metadata",)),
    "images": RecordSecrets(record_is_mapping=True),
    # Keystone never returns a password or an application credential's secret in a listing; a hostile or
    # broken one might. A user's extra attributes (any key an operator set) sit beside its own fields.
    "users": RecordSecrets(deep=True, known=frozenset({
        "password_expires_at", "ignore_password_expiry", "ignore_change_password_upon_first_use",
        "lock_password", "multi_factor_auth_enabled", "multi_factor_auth_rules"})),
    "application_credentials": RecordSecrets(deep=True, dropped=_DROPPED_LOWER | {"secret", "secret_hash"}),
    # Free-form key/value metadata that users fill (a "backup_password" key happens).
    "volumes": RecordSecrets(masked_mappings=("metadata", "volume_image_metadata")),
    "volume_snapshots": RecordSecrets(masked_mappings=("metadata",)),
    "volume_backups": RecordSecrets(masked_mappings=("metadata",)),
    "volume_types": RecordSecrets(masked_mappings=("extra_specs",)),
    "containers": RecordSecrets(masked_mappings=("metadata",)),  # masked when collected: here again, in case
}
