"""No secret at any verbosity: `auditor -vv run` against a cloud full of canary secrets, and none of them
reaches stdout, stderr or any file written (the database read back with SQL, the PDF read back as text), nor
any file a snapshot keeps while it works (its spooled pages, its staging folder), even after `kill -9`."""

from __future__ import annotations

import base64
import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import collect, run_cli, write_clouds_yaml
from pypdf import PdfReader

from auditor.fakecloud import FakeCloud, generate_cloud
from auditor.store.database import lake_path

SECRETS = {
    "admin_pass": "CANARY-adminpass-7f3a1c",
    "user_data": "CANARY-userdata-91b2e4",
    "metadata_password": "CANARY-metapw-55c1d0",
    "image_password": "CANARY-imgpw-3e8f27",
    "user_password": "CANARY-userpw-c4d2aa",
    "appcred_secret": "CANARY-appcred-a9b1ff",
    "listed_appcred_secret": "CANARY-listedappcred-61d0c3",
    "user_extra_key": "CANARY-userextra-e2f5b8",
}
# Not a secret, but tenant data: it may be stored and reported, never logged.
METADATA_VALUE = "CANARY-metaplain-0d9e44"


def _canary_cloud(demo_fixture, every: int = 0) -> dict:
    """The cloud with canary secrets: in its first server (and every `every`th one), its first image, its
    users and their application credentials."""
    fixture = copy.deepcopy(demo_fixture)
    servers = fixture["servers"]
    for server in servers[::every] if every else servers[:1]:
        server["adminPass"] = SECRETS["admin_pass"]
        cloud_init = f"#cloud-config\npassword: {SECRETS['user_data']}\n"
        server["OS-EXT-SRV-ATTR:user_data"] = base64.b64encode(cloud_init.encode()).decode()
        server["metadata"] = {"db_password": SECRETS["metadata_password"], "owner_note": METADATA_VALUE}
    fixture["images"][0]["admin_password"] = SECRETS["image_password"]
    admin = fixture["cloud"]["users"][0]
    admin["password"] = SECRETS["user_password"]
    fixture["cloud"]["application_credentials"][0]["secret"] = SECRETS["appcred_secret"]
    # A broken Keystone that lists application credentials with their secret; a user's extra attribute.
    fixture["application_credentials"][0]["secret"] = SECRETS["listed_appcred_secret"]
    fixture["users"][0]["api_key"] = SECRETS["user_extra_key"]
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
    except duckdb.Error:  # a file cut short by kill -9: its complete pages are zstd, so only its bytes are left
        return path.read_bytes().decode("latin-1")
    finally:
        con.close()


def _assert_no_secret(written, tokens=()) -> None:
    for path, text in written:
        for name, secret in [*SECRETS.items(), *(("token", t) for t in tokens)]:
            for form in _forms(secret):
                assert form not in text, f"{name} in {path}"


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
    _assert_no_secret(written, tokens)


def test_spooled_pages_hold_no_secret_and_lose_nothing_else(tmp_path, monkeypatch, demo_fixture):
    """Pages are cleaned before they are written to the spool: the secret values are gone, the keys of
    credential-like metadata and image properties stay (masked), every other value stays."""
    with FakeCloud(_canary_cloud(demo_fixture)) as cloud:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(
            tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})))
        snapshot = collect()
    spool = snapshot.listings["servers"].spools[0].parent
    try:
        pages = {path.name: path.read_text(encoding="utf-8") for path in spool.iterdir()}
        _assert_no_secret(pages.items())
        servers = "".join(text for name, text in pages.items() if name.startswith("servers-"))
        images = "".join(text for name, text in pages.items() if name.startswith("images-"))
        assert '"db_password":"[REDACTED]"' in servers and METADATA_VALUE in servers
        assert "adminPass" not in servers and "user_data" not in servers
        assert '"admin_password":"[REDACTED]"' in images
        for server in demo_fixture["servers"]:
            assert server["id"] in servers and server["name"] in servers
    finally:
        shutil.rmtree(spool)


@pytest.mark.parametrize("moment", ["listing", "writing"])
def test_a_snapshot_killed_while_it_works_leaves_no_secret_on_disk(tmp_path, moment):
    """kill -9 while the pages are spooled, and while the snapshot's Parquet files are written (DuckDB may
    spill to the staging folder): every file left behind (spool, staging, spill) holds no secret."""
    big = _canary_cloud(generate_cloud(20000, seed=5), every=500)
    work = tmp_path / "work"
    work.mkdir()
    database = work / "audit.duckdb"
    with FakeCloud(big) as cloud:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"big": cloud.clouds_yaml_entry()})
        writer = subprocess.Popen([sys.executable, "-m", "auditor", "--database", str(database), "snapshot",
                                   "--cloud", "big"], env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not _at(moment, work, database):
            assert writer.poll() is None, f"the snapshot ended before it was {moment}"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        assert writer.wait() == -signal.SIGKILL, "the snapshot finished before it could be killed"
    left = list(_file_texts(work, skip=set()))
    leftover = ".auditor-spool-" if moment == "listing" else "_staging"
    assert any(leftover in str(path) for path, _ in left)  # the killed run did leave its work behind
    _assert_no_secret(left)


def _at(moment: str, work: Path, database: Path) -> bool:
    if moment == "listing":  # a few pages of servers spooled
        return any(path.stat().st_size > 2**20 for path in work.glob(".auditor-spool-*/servers-*.json"))
    # written table by table: once security groups are, servers and images are complete, readable Parquet
    return any(lake_path(database).glob("_staging/snapshot-*/security_groups/part-0.parquet"))


@pytest.mark.parametrize("page, expected", [
    # a page without records is cleaned too: nothing but its (empty) list is kept
    (b'{"servers": [], "adminPass": "CANARY-adminpass-7f3a1c"}', b'{"servers":[]}'),
    # records that are not objects have no id (the store counts them, stores nothing): kept as null
    (b'{"servers": ["adminPass=CANARY-adminpass-7f3a1c", [{"adminPass": "x"}], {"id": "a", "adminPass": "p"}]}',
     b'{"servers":[null,null,{"id":"a"}]}'),
    # every copy of a repeated key, and keys spelled with escapes
    (b'{"servers": [{"id": "a", "user_data": null, "user_data": "CANARY", "admin\\u0050ass": "CANARY"}]}',
     b'{"servers":[{"id":"a"}]}'),
])
def test_a_page_is_cleaned_whatever_its_shape(page, expected):
    from auditor.collect.pages import without_secrets
    from auditor.redact import SECRETS_BY_LISTING

    assert without_secrets(page, "servers", SECRETS_BY_LISTING["servers"]) == expected


def test_a_record_python_cannot_read_fails_its_page_instead_of_the_listing(tmp_path):
    """DuckDB reads `inf`; Python's JSON readers do not: such a record, if it may hold a secret, cannot be
    cleaned, so its page is not kept (the listing ends partial, saying why), and nothing of it is written."""
    from auditor.collect.pages import without_secrets
    from auditor.redact import SECRETS_BY_LISTING

    import threading

    from auditor.collect.pages import inspect_page
    from auditor.collect.paging import Listing, PageFailed, Pager
    from auditor.collect.retry import Deadline, RetryPolicy

    page = b'{"servers": [{"id": "1"}, {"id": "2", "n": inf, "metadata": {"password": "CANARY"}}]}'
    with pytest.raises(ValueError, match="record 2 of the page could not be read to remove its secrets"):
        without_secrets(page, "servers", SECRETS_BY_LISTING["servers"])
    pager = Pager(RetryPolicy(0, 0.0, 1.0, threading.Event(), Deadline(60)), tmp_path)
    listing = Listing("servers", "servers")
    pager._keep(listing, "/servers/detail", b'{"servers": [{"id": "0"}]}', inspect_page(
        b'{"servers": [{"id": "0"}]}', "servers", None))
    with pytest.raises(PageFailed, match=r"page 2: record 2 of the page could not .* stopped after 1 pages"):
        pager._keep(listing, "/servers/detail?marker=0", page, inspect_page(page, "servers", None))
    assert listing.pages == 1 and listing.count == 1  # the first page stays; nothing of the second was kept
    assert b"CANARY" not in b"".join(path.read_bytes() for path in tmp_path.iterdir())
