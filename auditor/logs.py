"""Logging for the CLI and the service: no secret at any verbosity, tenant text escaped.

keystoneauth's debug log prints request and response bodies in full (user_data, adminPass, metadata) and
openstacksdk's can print configuration: those libraries, and the HTTP libraries under them, are held at
WARNING whatever `-v` says; our own one line per request (method, URL with secret-looking query values
masked, status, bytes, time) replaces them at `-vv`. As a second line of defence every record that reaches
our handler is scrubbed: the credentials of clouds.yaml, the tokens the session received and the SMTP
password are registered here and masked wherever they appear, `X-Auth-Token`-style headers and
`"password": ...` pairs are masked by pattern, and control characters (a CR/LF in a cloud name) are escaped.
URLs get the same care: the userinfo of any URL (`http://user:password@host`) and the values of
secret-looking query parameters are masked by pattern, and every query value of a URL from clouds.yaml is
registered (`register_url`), because libraries quote those URLs in their own warnings, whole or in part.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from urllib.parse import unquote, urlsplit

MASK = "***"

# Loggers of libraries that may log bodies, headers or configuration: never below WARNING.
QUIET_LOGGERS = ("keystoneauth", "keystoneauth1", "openstack", "urllib3", "requests", "stevedore",
                 "os_service_types", "dogpile", "weasyprint", "fontTools", "PIL", "asyncio", "sqlalchemy")

_PATTERNS = [
    re.compile(r"(?i)(x-(?:auth|subject|service)-token|authorization|x-auth-key)(\s*[:=]\s*)([^\s,;'\"}]+)"),
    re.compile(r"(?i)(\"(?:password|secret|token|adminPass|user_data|application_credential_secret)\""
               r"\s*:\s*)(\"(?:[^\"\\]|\\.)*\")"),
]
# `scheme://user:password@host`: the userinfo goes, whatever it holds, up to the authority's last '@' (as
# urlsplit reads it, so `p@ss` goes whole). Bounded scheme and one character class: linear on any input.
_URL_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]{0,30}://)[^/?#\s'\"<>]*@")
# `?name=value` in a URL or a path: the value goes when the name looks secret (token, sig, key, ...).
_QUERY_FIELD = re.compile(r"([?&;])([^=&;?\s#'\"<>]{1,200})=([^&;\s#'\"<>)]*)")
_SECRET_NAME = re.compile(r"(?i)token|secret|password|passwd|sig|key|credential|auth")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: object) -> None:
    """Mask `value` in every log line and error message from now on (values shorter than 4 characters
    are too common to mask without mangling the text around them)."""
    if isinstance(value, str) and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def register_url(url: object) -> None:
    """Mask the password of `url`'s userinfo and every value of its query wherever they appear from now on,
    quoted or not: an operator may have written a credential into any of them. (The user name is masked
    only inside URLs, by pattern: `admin` masked in every line would garble them.)"""
    if not isinstance(url, str) or "://" not in url:
        return
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    # A password written unencoded with '/', '?' or '#' in it ends the authority early for urlsplit, but is
    # still the text between the first ':' after the scheme and the last '@' before the query.
    before_query = url.split("://", 1)[1].split("?", 1)[0]
    if "@" in before_query:
        userinfo = before_query.rsplit("@", 1)[0]
        if ":" in userinfo:
            register_secret(userinfo.split(":", 1)[1])
    query = parts.query if parts else url.partition("?")[2]
    values = [password] + [field.partition("=")[2] for field in query.replace(";", "&").split("&")]
    for value in values:
        if value:
            register_secret(value)
            register_secret(unquote(value))
            register_secret(unquote(value.replace("+", " ")))


def mask(text: str) -> str:
    """`text` with registered secrets and secret-looking headers and fields masked."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _PATTERNS[1].sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    if "=" in text:
        text = _QUERY_FIELD.sub(_mask_query_value, text)
    return text


def _mask_query_value(match: re.Match) -> str:
    separator, name, value = match.groups()
    if not value or not _SECRET_NAME.search(name):
        return match.group(0)
    trailing = value[len(value.rstrip(".,:")):]  # the sentence's punctuation, not the value's
    return f"{separator}{name}={MASK}{trailing}"


def scrub(text: str) -> str:
    """A line for a log or a terminal: secrets masked, control characters shown as escapes (newlines
    included: one record, one line)."""
    text = mask(text)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def configure(verbosity: int, fmt: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """Log to stderr: warnings (0), progress (1, -v) or debug detail (2, -vv)."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_libraries()


def quiet_libraries() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def set_format(fmt: str) -> None:
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(fmt))
