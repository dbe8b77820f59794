"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 with STARTTLS and AUTH, and a CA made here."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER, PASSWORD = "auditor", "s3cret-Pa55word"


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool, sans=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_pki(folder: Path, label: str) -> dict[str, Path]:
    """A CA, and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(_name(f"auditor test CA {label}"), _name(f"auditor test CA {label}"), ca_key.public_key(),
                      ca_key, ca=True)
    server = _certificate(_name("localhost"), ca.subject, server_key.public_key(), ca_key, ca=False,
                          sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    paths = {"ca": folder / f"{label}-ca.pem", "cert": folder / f"{label}-server.pem",
             "key": folder / f"{label}-server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """aiosmtpd handler that keeps every message it accepts, with its envelope."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                              "raw": envelope.original_content or envelope.content})
        return "250 OK"


def check_password(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd itself answers 535


def start_smtp(pki: dict[str, Path] | None, port: int | None = None) -> tuple[Controller, Inbox]:
    """aiosmtpd on 127.0.0.1: with `pki`, STARTTLS and AUTH (LOGIN, PLAIN) are required; without, plain SMTP."""
    inbox = Inbox()
    options = {}
    if pki:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(pki["cert"], pki["key"])
        options = {"tls_context": tls, "require_starttls": True, "authenticator": check_password,
                   "auth_require_tls": True, "auth_required": True}
    controller = Controller(inbox, hostname="127.0.0.1", port=port or free_port(), **options)
    controller.start()
    return controller, inbox
