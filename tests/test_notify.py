"""The email digest, end to end: the demo cloud run once, a real aiosmtpd server on 127.0.0.1 with STARTTLS
and AUTH required and a certificate from a CA made here, `auditor email` in a subprocess, the received
bytes parsed back."""

from __future__ import annotations

import copy
import email
import email.policy
import re
import socket
import threading
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path

import pytest
from conftest import DEMO, query, run_cli, write_clouds_yaml, write_config
from mailserver import PASSWORD, USER, free_port, make_pki, start_smtp
from pypdf import PdfReader

from auditor.config import EmailSettings, RecipientGroup, load_config
from auditor.errors import ConfigError, NotifyError
from auditor.fakecloud import FakeCloud, load_fixture
from auditor.notify import Digest, send_digest

HOSTILE = "evil\r\nBcc: victim@example.com <script>"
MANAGERS = ["boss@example.com", "cto@example.com"]
SECURITY = ["sec@example.com"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    return {"trusted": make_pki(folder, "trusted"), "unknown": make_pki(folder, "unknown")}


@pytest.fixture
def smtp(pki):
    controller, inbox = start_smtp(pki["trusted"])
    yield controller, inbox
    controller.stop()


# -- the demo cloud, once, with a hostile server name -----------------------------------------------------
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`auditor run` of the demo cloud, bastion-01 renamed to a header-injection attempt."""
    folder = tmp_path_factory.mktemp("demo-email")
    data = copy.deepcopy(load_fixture(DEMO))
    [bastion] = [s for s in data["servers"] if s["name"] == "bastion-01"]
    bastion["name"] = HOSTILE
    with FakeCloud(data) as cloud:
        clouds = write_clouds_yaml(folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        config = write_config(folder / "auditor.toml", '[report]\nout_dir = "out"\n')
        done = run_cli("--config", str(config), "run", "--cloud", "demo", env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 0, done.stderr
    [report] = list((folder / "out" / "demo" / "RegionOne").iterdir())
    return {"folder": folder, "report": report, "database": folder / "audit.duckdb"}


def email_config(demo_run, port: int, ca_file: Path | None, name: str = "auditor.toml", **overrides) -> Path:
    settings = {"host": '"127.0.0.1"', "port": port, "security": '"starttls"', "username": f'"{USER}"',
                "password_env": '"AUDITOR_TEST_SMTP_PASSWORD"', "sender": '"auditor@example.com"',
                "timeout": 10, "retries": 0}
    if ca_file:
        settings["ca_file"] = f'"{ca_file}"'
    settings.update(overrides)
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    text = (f'[report]\nout_dir = "out"\n\n[email]\n{lines}\n\n'
            f'[[email.groups]]\nname = "managers"\nrecipients = {MANAGERS!r}\n\n'
            f'[[email.groups]]\nname = "security"\nrecipients = {SECURITY!r}\ninclude_csv = true\n').replace("'", '"')
    return write_config(demo_run["folder"] / name, text)


def run_email(config: Path, *args, password: str = PASSWORD):
    return run_cli("--config", str(config), "email", *args, env={"AUDITOR_TEST_SMTP_PASSWORD": password})


def expected_subject(database: Path) -> str:
    [(critical, high, new)] = query(database, """
        SELECT count(*) FILTER (WHERE severity = 'critical' AND status = 'fail' AND NOT waived),
               count(*) FILTER (WHERE severity = 'high' AND status = 'fail' AND NOT waived),
               count(*) FILTER (WHERE is_new AND NOT waived)
        FROM findings WHERE evaluation_id = 1""")
    assert critical and high
    return f"[auditor] demo/RegionOne: {critical} critical, {high} high, {new} new (first snapshot)"


def parts(message) -> dict[str, list]:
    found: dict[str, list] = {}
    for part in message.walk():
        if not part.is_multipart():
            found.setdefault(part.get_content_type(), []).append(part)
    return found


# -- sending for real -------------------------------------------------------------------------------------
def test_each_group_receives_its_digest_over_starttls_with_auth(demo_run, pki, smtp):
    controller, inbox = smtp
    config = email_config(demo_run, controller.port, pki["trusted"]["ca"])
    done = run_email(config)
    assert done.returncode == 0, done.stderr
    assert "group managers: sent to 2 recipients" in done.stdout
    assert "group security: sent to 1 recipient" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert [m["rcpt_tos"] for m in inbox.messages] == [MANAGERS, SECURITY]

    subject = expected_subject(demo_run["database"])
    for received, include_csv in zip(inbox.messages, (False, True), strict=True):
        raw = received["raw"]
        assert PASSWORD.encode() not in raw
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == subject
        assert message["From"] == "auditor@example.com"
        assert message["Bcc"] is None and "victim" not in str(message["To"])
        assert not re.search(rb"(?im)^bcc:", raw.split(b"\r\n\r\n", 1)[0])  # nothing injected into the headers
        found = parts(message)
        text = found["text/plain"][0].get_content()
        assert "Top risks:" in text and "Failing findings" in text
        assert "\\r\\nBcc: victim@example.com <script>" in text  # control characters shown, not obeyed
        html = found["text/html"][0].get_content()
        assert "<script" not in html.lower() and "<style" not in html.lower()
        assert not re.search(r"https?://", html) and "<a " not in html and "<img" not in html.lower()
        assert "&lt;script&gt;" in html and "evil" in html
        assert 'style="' in html
        [pdf] = found["application/pdf"]
        assert pdf.get_filename().endswith("report.pdf")
        assert len(PdfReader(BytesIO(pdf.get_content())).pages) >= 1
        assert ("text/csv" in found) is include_csv
    csv_part = parts(email.message_from_bytes(inbox.messages[1]["raw"], policy=email.policy.default))["text/csv"][0]
    assert csv_part.get_content().startswith("snapshot_id") or "rule_id" in csv_part.get_content().splitlines()[0]


def test_dry_run_writes_parseable_eml_and_sends_nothing(demo_run, pki, smtp, tmp_path):
    controller, inbox = smtp
    config = email_config(demo_run, controller.port, pki["trusted"]["ca"], name="dry.toml")
    done = run_email(config, "--dry-run", "--out", str(tmp_path / "eml"))
    assert done.returncode == 0, done.stderr
    paths = [Path(line.rsplit(": ", 1)[1]) for line in done.stdout.splitlines() if line.endswith(".eml")]
    assert [p.name for p in paths] == ["digest-1-managers.eml", "digest-1-security.eml"]
    assert inbox.messages == []
    for path in paths:
        raw = path.read_bytes()
        assert PASSWORD.encode() not in raw
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == expected_subject(demo_run["database"])
        assert "application/pdf" in parts(message)


def test_a_missing_report_is_written_first(demo_run, pki, tmp_path):
    config = email_config(demo_run, free_port(), None, name="fresh.toml")
    config.write_text(config.read_text().replace('out_dir = "out"', f'out_dir = "{tmp_path / "fresh"}"\n'
                                                 'formats = ["html"]'))
    done = run_email(config, "--dry-run")
    assert done.returncode == 0, done.stderr
    [folder] = list((tmp_path / "fresh" / "demo" / "RegionOne").iterdir())
    assert (folder / "report.pdf").is_file() and (folder / "digest-1-security.eml").is_file()


def test_a_pdf_over_the_limit_stays_on_disk_and_the_message_says_where(demo_run, tmp_path):
    config = email_config(demo_run, free_port(), None, name="small.toml", max_attachment_mb=0)
    done = run_email(config, "--dry-run", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    message = email.message_from_bytes((tmp_path / "digest-1-managers.eml").read_bytes(),
                                       policy=email.policy.default)
    found = parts(message)
    assert "application/pdf" not in found
    assert f"on the audit host at {demo_run['report'] / 'report.pdf'}" in found["text/plain"][0].get_content()


# -- failures: exit 10, one clear line, no traceback, no password -----------------------------------------
def assert_clean_failure(done, *expected: str):
    assert done.returncode == 10, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr and "wrong-password" not in done.stdout + done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


def test_smtp_down(demo_run, pki):
    port = free_port()
    done = run_email(email_config(demo_run, port, pki["trusted"]["ca"], name="down.toml"))
    assert_clean_failure(done, f"127.0.0.1:{port}: connection refused")


def test_wrong_password(demo_run, pki, smtp):
    controller, inbox = smtp
    done = run_email(email_config(demo_run, controller.port, pki["trusted"]["ca"], name="wrong.toml"),
                     password="wrong-password")
    assert_clean_failure(done, f"127.0.0.1:{controller.port}: authentication as 'auditor' failed: 535")
    assert inbox.messages == []


def test_server_certificate_from_an_unknown_ca(demo_run, pki):
    controller, inbox = start_smtp(pki["unknown"])
    try:
        done = run_email(email_config(demo_run, controller.port, pki["trusted"]["ca"], name="unknown.toml"))
    finally:
        controller.stop()
    assert_clean_failure(done, f"127.0.0.1:{controller.port}: TLS certificate verification failed")
    assert inbox.messages == []


def test_an_unset_password_variable_is_named(demo_run, pki):
    config = email_config(demo_run, free_port(), pki["trusted"]["ca"], name="noenv.toml",
                          password_env='"AUDITOR_TEST_UNSET_VARIABLE"')
    done = run_email(config)
    assert_clean_failure(done, "environment variable AUDITOR_TEST_UNSET_VARIABLE")


# -- retries, at unit level with the sleep injected --------------------------------------------------------
def plain_settings(port: int, retries: int) -> EmailSettings:
    return EmailSettings(host="127.0.0.1", port=port, security="none", sender="auditor@example.com",
                         groups=(RecipientGroup("ops", ("ops@example.com",)),), timeout=5, retries=retries)


def small_digest(settings: EmailSettings) -> Digest:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "test", settings.sender, "ops@example.com"
    message.set_content("hello\n")
    return Digest(settings.groups[0], 1, message)


def test_a_failed_connection_is_retried_after_a_backoff():
    port = free_port()
    settings, started, sleeps = plain_settings(port, retries=2), [], []

    def sleep(seconds):  # the server comes up while the client waits
        sleeps.append(seconds)
        if not started:
            started.append(start_smtp(None, port))

    try:
        send_digest(small_digest(settings), settings, None, sleep=sleep)
        assert sleeps == [1.0]
        assert len(started[0][1].messages) == 1
    finally:
        for controller, _ in started:
            controller.stop()


def test_every_attempt_is_made_then_one_error():
    accepted = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def hang_up():  # a server that accepts and closes at once, three times
            for _ in range(3):
                connection, _ = listener.accept()
                accepted.append(1)
                connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        settings, sleeps = plain_settings(listener.getsockname()[1], retries=2), []
        with pytest.raises(NotifyError, match=r"closed the connection \(after 3 attempts\)"):
            send_digest(small_digest(settings), settings, None, sleep=sleeps.append)
        thread.join(5)
    assert len(accepted) == 3 and sleeps == [1.0, 2.0]


# -- configuration ----------------------------------------------------------------------------------------
BASE = '[email]\nhost = "smtp.example.com"\nsender = "auditor@example.com"\n{extra}\n' \
       '[[email.groups]]\nname = "ops"\nrecipients = ["ops@example.com"]\n{group}'


@pytest.mark.parametrize(("extra", "group", "message"), [
    ('sendr = "x"', "", "unknown key 'email.sendr'"),
    ("port = 70000", "", "key 'email.port' must be an integer from 1 to 65535"),
    ('security = "ssl"', "", "key 'email.security' must be one of starttls, tls, none"),
    ('username = "u"', "", "'email.username' and 'email.password_env' go together"),
    ('username = "u"\npassword_env = "P"\nsecurity = "none"', "", "would cross the network in clear"),
    ('password_env = "NOT A NAME"\nusername = "u"', "", "must be the name of an environment variable"),
    ("", "include_csv = 1", "key 'email.groups[0].include_csv' must be true or false"),
    ("", "mailto = 1", "unknown key 'email.groups[0].mailto'"),
])
def test_bad_email_settings_name_the_key(tmp_path, extra, group, message):
    path = tmp_path / "auditor.toml"
    path.write_text(BASE.format(extra=extra, group=group), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("address", ["ops@example.com\r\nBcc: victim@example.com", "Ops <ops@example.com>",
                                     "no-at-sign", "a b@example.com", "ops@exämple.com"])
def test_addresses_must_be_plain_single_line(tmp_path, address):
    path = tmp_path / "auditor.toml"
    path.write_text(BASE.format(extra="", group="").replace('"ops@example.com"', repr(address).replace("'", '"')),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"email.groups\[0\].recipients' must hold plain email addresses"):
        load_config(path)


def test_defaults_follow_the_security_mode(tmp_path):
    path = tmp_path / "auditor.toml"
    path.write_text(BASE.format(extra='security = "tls"', group="include_csv = true"), encoding="utf-8")
    settings = load_config(path).email
    assert (settings.port, settings.retries, settings.max_attachment_mb, settings.ca_file) == (465, 2, 10.0, None)
    assert settings.groups == (RecipientGroup("ops", ("ops@example.com",), include_csv=True),)
