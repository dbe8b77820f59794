"""No secret at any verbosity: `auditor -vv run` against a cloud full of canary secrets, and none of them
reaches stdout, stderr or any file written (the database read back with SQL, the PDF read back as text)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import duckdb
import pytest
from conftest import run_cli, write_clouds_yaml
from pypdf import PdfReader

from auditor.fakecloud import FakeCloud

SECRETS = {
    "admin_pass": "CANARY-adminpass-7f3a1c",
    "user_data": "CANARY-userdata-91b2e4",
    "metadata_password": "CANARY-metapw-55c1d0",
    "image_password": "CANARY-imgpw-3e8f27",
    "user_password": "CANARY-userpw-c4d2aa",
    "appcred_secret": "CANARY-appcred-a9b1ff",
}
# Not a secret, but tenant data: it may be stored and reported, never logged.
METADATA_VALUE = "CANARY-metaplain-0d9e44"


def _canary_cloud(demo_fixture) -> dict:
    fixture = copy.deepcopy(demo_fixture)
    server = fixture["servers"][0]
    server["adminPass"] = SECRETS["admin_pass"]
    cloud_init = f"#cloud-config\npassword: {SECRETS['user_data']}\n"
    server["OS-EXT-SRV-ATTR:user_data"] = base64.b64encode(cloud_init.encode()).decode()
    server["metadata"] = {"db_password": SECRETS["metadata_password"], "owner_note": METADATA_VALUE}
    fixture["images"][0]["admin_password"] = SECRETS["image_password"]
    admin = fixture["cloud"]["users"][0]
    admin["password"] = SECRETS["user_password"]
    fixture["cloud"]["application_credentials"][0]["secret"] = SECRETS["appcred_secret"]
    return fixture


def _forms(secret: str) -> list[str]:
    """The secret and its base64 forms (at every alignment, as it would sit inside a longer text)."""
    forms = [secret]
    for pad in ("", "x", "xx"):
        encoded = base64.b64encode((pad + secret).encode()).decode().rstrip("=")
        forms.append(encoded[len(pad) * 4 // 3 + 2: -2])
    return forms


def _file_texts(folder: Path, skip: set[Path]):
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path in skip:
            continue
        if path.suffix == ".duckdb":
            yield path, _database_text(path)
        elif path.suffix == ".parquet":  # zstd-compressed: read back, every row
            yield path, _parquet_text(path)
        elif path.suffix == ".pdf":
            yield path, "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
            yield path, path.read_bytes().decode("latin-1")
        else:
            yield path, path.read_bytes().decode("utf-8", "replace")


def _parquet_text(path: Path) -> str:
    con = duckdb.connect()
    try:
        return repr(con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false)", [str(path)]).fetchall())
    finally:
        con.close()


def _database_text(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                             ).fetchall()
        parts = []
        for (table,) in tables:
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            parts.append(repr(rows))
        return "\n".join(parts)
    finally:
        con.close()


@pytest.mark.parametrize("cloud_name", ["demo", "appcred"])
def test_no_secret_reaches_output_or_files_at_debug_verbosity(tmp_path, demo_fixture, cloud_name):
    fixture = _canary_cloud(demo_fixture)
    with FakeCloud(fixture) as cloud:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {
            "demo": cloud.clouds_yaml_entry(),
            "appcred": cloud.clouds_yaml_entry(application_credential=True),
        })
        work = tmp_path / "work"
        work.mkdir()
        config = work / "auditor.toml"
        config.write_text('database = "audit.duckdb"\n[report]\nout_dir = "reports"\n'
                          '[email]\nhost = "127.0.0.1"\nsender = "audit@example.org"\n'
                          '[[email.groups]]\nname = "security"\nrecipients = ["sec@example.org"]\n'
                          'include_csv = true\n')
        env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
        outputs = []
        for args in (["-vv", "run", "--cloud", cloud_name],
                     ["-vv", "findings", "--status", "all", "--format", "json"],
                     ["-vv", "sql", "select raw, metadata from servers"],
                     ["-vv", "email", "--dry-run", "--out", str(work / "outbox")]):
            done = run_cli("--config", str(config), *args, env=env, cwd=work, timeout=300)
            assert done.returncode == 0, (args, done.stderr)
            outputs.append((args, done.stdout + done.stderr))
        tokens = list(cloud._tokens)
    assert tokens, "the fake cloud issued no token"
    assert any("GET http://127.0.0.1" in text for _, text in outputs)  # -vv did log each request
    for args, text in outputs:
        for name, secret in [*SECRETS.items(), *((f"token {t[:6]}", t) for t in tokens)]:
            for form in _forms(secret):
                assert form not in text, f"{name} in the output of auditor {' '.join(args)}"
        if args[1] == "run":
            assert METADATA_VALUE not in text  # metadata values are never logged
    written = list(_file_texts(work, skip=set()))
    names = {path.name for path, _ in written}
    assert {"report.pdf", "report.html", "findings.csv", "audit.duckdb", "part-0.parquet"} <= names
    assert any(name.endswith(".eml") for name in names)
    for path, text in written:
        for name, secret in [*SECRETS.items(), *(("token", t) for t in tokens)]:
            for form in _forms(secret):
                assert form not in text, f"{name} in {path.relative_to(work)}"
