"""The email digest: one message per recipient group for a snapshot's report, and sending it over SMTP.

Headers hold only operator configuration (cloud, region, addresses), and even that loses its control
characters. Tenant text (resource and project names) goes only into the bodies: autoescaped in the HTML,
control characters shown as escapes in the plain text. Envelope recipients come from the configuration,
never from headers.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from auditor.config import EmailSettings, RecipientGroup
from auditor.errors import NotifyError
from auditor.output import terminal_safe
from auditor.report.build import path_part, read_meta, report_folder
from auditor.report.render import environment

log = logging.getLogger(__name__)

TOP_RISKS = 10
BACKOFF_SECONDS = 1.0  # before the first retry; doubled before each further one
SEVERITIES_SHOWN = ("critical", "high", "medium", "low")
# RFC 5322's line limit: the default of 78 makes Python fold a long subject right after "Subject:", which
# some readers (Python's own parser among them) then show with a leading space.
_POLICY = SMTP.clone(max_line_length=998)
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Digest:
    group: RecipientGroup
    snapshot_id: int
    message: EmailMessage


# -- building ---------------------------------------------------------------------------------------------
def header_safe(text: str, limit: int = 100) -> str:
    """`text` fit for a header: control, line-separator and bidi characters removed, length capped."""
    return _HEADER_UNSAFE.sub("", str(text))[:limit]


def existing_report(out_dir: Path, context: dict[str, Any]) -> Path | None:
    """The report folder of this context's snapshot and evaluation under `out_dir`, if it holds a PDF."""
    snapshot, evaluation = context["snapshot"], context["evaluation"]
    folder = report_folder(out_dir, snapshot)
    meta = read_meta(folder / "report.json")
    if (meta and meta.get("snapshot_id") == snapshot["id"] and meta.get("evaluation_id") == evaluation["id"]
            and (folder / "report.pdf").is_file()):
        return folder
    return None


def subject_line(context: dict[str, Any]) -> str:
    snapshot, summary = context["snapshot"], context["summary"]
    previous = context["evaluation"]["previous_snapshot_started_at"]
    new = sum(summary["new"].values())
    since = f"since {previous:%Y-%m-%d %H:%M} UTC" if previous else "(first snapshot)"
    return header_safe(f"[auditor] {header_safe(snapshot['cloud'], 40)}/{header_safe(snapshot['region'], 40)}: "
                       f"{summary['fails']['critical']} critical, {summary['fails']['high']} high, "
                       f"{new} new {since}", limit=200)


def build_digests(context: dict[str, Any], report_folder: Path, settings: EmailSettings) -> list[Digest]:
    """One message per recipient group for the report in `report_folder` (its context is `context`)."""
    view = _view(context)
    return [Digest(group, context["snapshot"]["id"], _message(context, view, report_folder, group, settings))
            for group in settings.groups]


def _view(context: dict[str, Any]) -> dict[str, Any]:
    """What both bodies show, taken from the report context."""
    snapshot, summary = context["snapshot"], context["summary"]
    titles = {rule["id"]: rule["title"] for rule in context["rules"]}
    risks = [{"severity": row["severity"], "title": titles.get(row["rule_id"], row["rule_id"]),
              "resource": row["resource_name"] or row["resource_id"] or "",
              "project": row["project_name"] or row["project_id"] or ""}
             for row in context["top_risks"][:TOP_RISKS]]
    return {
        "cloud": snapshot["cloud"], "region": snapshot["region"], "snapshot_id": snapshot["id"],
        "started_at": snapshot["started_at"], "status": snapshot["status"],
        "previous_started_at": context["evaluation"]["previous_snapshot_started_at"],
        "fails": {s: summary["fails"][s] for s in SEVERITIES_SHOWN},
        "new": sum(summary["new"].values()), "resolved": summary["resolved_total"], "score": summary["score"],
        "risks": risks, "more_risks": max(0, context["top_risks_total"] - len(risks)),
    }


def _attachments(folder: Path, group: RecipientGroup, settings: EmailSettings):
    """The files that fit the size limit together, and a sentence for each that does not."""
    wanted = [("report.pdf", "application", "pdf")]
    if group.include_csv:
        wanted.append(("findings.csv", "text", "csv"))
    budget = int(settings.max_attachment_mb * 1024 * 1024)
    attached, notes = [], []
    for name, maintype, subtype in wanted:
        path = folder / name
        if not path.is_file():
            notes.append(f"This report has no {name}.")
            continue
        size = path.stat().st_size
        if size <= budget:
            attached.append((path, maintype, subtype))
            budget -= size
        else:
            notes.append(f"{name} ({size / 1024 / 1024:.1f} MB) is over the {settings.max_attachment_mb:g} MB "
                         f"attachment limit and is not attached; it is on the audit host at {path}")
    return attached, notes


def _message(context, view, folder: Path, group: RecipientGroup, settings: EmailSettings) -> EmailMessage:
    attached, notes = _attachments(folder, group, settings)
    view = {**view, "attached": [path.name for path, _, _ in attached], "notes": notes}
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = subject_line(context)
    message["From"] = settings.sender
    message["To"] = ", ".join(group.recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("auditor", domain=settings.sender.rsplit("@", 1)[1])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain_text(view))
    message.add_alternative(environment().get_template("digest.html.j2").render(**view), subtype="html")
    stamp = view["started_at"].strftime("%Y%m%dT%H%MZ")
    prefix = f"audit-{path_part(view['cloud'])}-{path_part(view['region'])}-{stamp}"
    for path, maintype, subtype in attached:
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype,
                               filename=f"{prefix}-{path.name}")
    return message


def plain_text(view: dict[str, Any]) -> str:
    safe = terminal_safe  # tenant names must not carry control characters into a reader's terminal
    fails = view["fails"]
    lines = [
        f"Audit of {safe(view['cloud'])}/{safe(view['region'])}, snapshot {view['snapshot_id']} of "
        f"{view['started_at']:%Y-%m-%d %H:%M} UTC ({view['status']}).",
        "",
        "Failing findings (not waived): " + ", ".join(f"{fails[s]} {s}" for s in SEVERITIES_SHOWN),
        (f"New since {view['previous_started_at']:%Y-%m-%d %H:%M} UTC: {view['new']}; resolved: {view['resolved']}"
         if view["previous_started_at"] else "First snapshot of this cloud/region: every finding is new."),
        f"Score: {view['score']}/100" if view["score"] is not None else "Score: no rule judged anything",
        "",
    ]
    if view["risks"]:
        lines.append("Top risks:")
        lines += [f"  {r['severity'].upper():<8} {safe(r['title'])}: {safe(r['resource'])}"
                  + (f" (project {safe(r['project'])})" if r["project"] else "") for r in view["risks"]]
        if view["more_risks"]:
            lines.append(f"  ... and {view['more_risks']} more critical or high findings in the report.")
        lines.append("")
    if view["attached"]:
        lines.append("Attached: " + ", ".join(view["attached"]))
    lines += view["notes"]
    return "\n".join(lines) + "\n"


def write_eml(digest: Digest, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"digest-{digest.snapshot_id}-{digest.group.name}.eml"
    path.write_bytes(digest.message.as_bytes())
    return path


# -- sending ----------------------------------------------------------------------------------------------
def smtp_password(settings: EmailSettings, environ: Mapping[str, str] = os.environ) -> str | None:
    if not settings.password_env:
        return None
    password = environ.get(settings.password_env)
    if not password:
        raise NotifyError(f"the SMTP password is read from the environment variable {settings.password_env} "
                          "([email] password_env), which is not set")
    return password


def send_digest(digest: Digest, settings: EmailSettings, password: str | None,
                sleep: Callable[[float], None] = time.sleep) -> None:
    """Send one digest; connection failures and 4xx replies are retried with exponential backoff."""
    where = f"{settings.host}:{settings.port}"
    attempts = settings.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            _deliver(digest, settings, password)
            return
        except (OSError, smtplib.SMTPException) as exc:
            what, transient = _failure(exc, settings)
            what = what.replace(password, "***") if password else what
            if not transient or attempt == attempts:
                tries = f" (after {attempts} attempts)" if transient and attempts > 1 else ""
                raise NotifyError(f"digest for group {digest.group.name}: {where}: {what}{tries}") from None
            delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning("%s: %s; attempt %d of %d, retrying in %g s", where, what, attempt, attempts, delay)
            sleep(delay)


def _deliver(digest: Digest, settings: EmailSettings, password: str | None) -> None:
    tls = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.security == "tls":
        client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=tls)
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with client:
        if settings.security == "starttls":
            client.starttls(context=tls)
        if settings.username:
            client.login(settings.username, password or "")
        refused = client.send_message(digest.message, from_addr=settings.sender,
                                      to_addrs=list(digest.group.recipients))
    if refused:  # some recipients accepted it: retrying would send it to them twice
        raise smtplib.SMTPRecipientsRefused(refused)


def _failure(exc: BaseException, settings: EmailSettings) -> tuple[str, bool]:
    """What failed, in one line, and whether trying again may help."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc.reason}", False
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}", False
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"authentication as {settings.username!r} failed: {_reply(exc)}", False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{address} ({_reply(reply)})" for address, reply in exc.recipients.items())
        return f"recipient refused: {refused}", False
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {settings.sender} refused: {_reply(exc)}", False
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the server does not support what is configured: {exc}", False
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server replied {_reply(exc)}", 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection", True
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", True
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {settings.timeout:g} s", True
    if isinstance(exc, socket.gaierror):
        return f"host name not resolved: {exc.strerror}", True
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or exc}", True
    return f"SMTP error: {exc}", False


def _reply(source) -> str:
    """An SMTP reply (an exception carrying one, or a (code, text) pair) as one safe line."""
    code, text = (source.smtp_code, source.smtp_error) if isinstance(source, Exception) else source
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {header_safe(' '.join(str(text).split()), 200)}"
