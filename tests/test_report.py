"""Reports: the documented context, the exports, the HTML and the PDF of the demo cloud, read back."""

from __future__ import annotations

import copy
import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REPO, copy_store, query, rewrite_rows, run_cli, write_clouds_yaml, write_config
from pypdf import PdfReader

from auditor.fakecloud import FakeCloud
from auditor.report.context import build_context
from auditor.rules.catalog import load_catalog

CATALOG = load_catalog([REPO / "rules"])


def _documented_keys() -> set[str]:
    text = (REPO / "docs" / "report-context.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`auditor run` of the demo cloud over HTTP, with the reports in out/."""
    from conftest import DEMO

    from auditor.fakecloud import load_fixture

    folder = tmp_path_factory.mktemp("demo-report")
    with FakeCloud(load_fixture(DEMO)) as cloud:
        clouds = write_clouds_yaml(folder / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        config = write_config(folder / "auditor.toml", '[report]\nout_dir = "out"\n')
        done = run_cli("--config", str(config), "run", "--cloud", "demo",
                       env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 0, done.stderr
    [report] = list((folder / "out" / "demo" / "RegionOne").iterdir())
    return {"folder": folder, "config": config, "report": report, "stdout": done.stdout,
            "database": folder / "audit.duckdb"}


def test_every_context_key_is_documented(demo_run):
    context = build_context(demo_run["database"], 1, CATALOG)
    assert set(context) == _documented_keys()


def test_run_writes_every_file_and_says_where(demo_run):
    report = demo_run["report"]
    assert sorted(p.name for p in report.iterdir()) == [
        "findings.csv", "findings.jsonl", "findings.ocsf.jsonl", "inventory.csv", "report.html", "report.json",
        "report.pdf"]
    assert f"HTML: {report / 'report.html'}" in demo_run["stdout"]
    assert f"PDF: {report / 'report.pdf'}" in demo_run["stdout"]
    assert (demo_run["folder"] / "out" / "index.html").is_file()
    assert not list((demo_run["folder"] / "out").rglob(".*tmp*"))


def test_exports_hold_every_finding_and_server(demo_run):
    with open(demo_run["report"] / "findings.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == query(demo_run["database"], "SELECT count(*) FROM findings WHERE evaluation_id = 1")[0][0]
    failing = {(r["rule_id"], r["resource_name"]) for r in rows if r["status"] == "fail"}
    assert ("server_not_exposed_to_world", "bastion-01") in failing
    data = [json.loads(line) for line in (demo_run["report"] / "findings.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {f["snapshot_id"] for f in data} == {1} and len(data) == len(rows)
    assert {(f["rule_id"], f["resource_name"]) for f in data if f["status"] == "fail"} == failing
    with open(demo_run["report"] / "inventory.csv", encoding="utf-8", newline="") as handle:
        servers = list(csv.DictReader(handle))
    assert len(servers) == 19
    bastion = next(s for s in servers if s["name"] == "bastion-01")
    assert bastion["floating_addresses"] == "203.0.113.25" and "ssh-bastion" in bastion["security_groups"].split()
    assert bastion["instance_type"] and bastion["first_seen"]


def test_csv_cells_cannot_run_as_spreadsheet_formulas():
    import duckdb

    from auditor.report.exports import _GUARD

    values = ['=HYPERLINK("http://evil","x")', "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", "a=b", None]
    con = duckdb.connect()
    got = [con.execute(f"SELECT {_GUARD.format(c='v')} FROM (SELECT ?::VARCHAR AS v)", [v]).fetchall()[0][0]
           for v in values]
    assert got == ['\'=HYPERLINK("http://evil","x")', "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain", "a=b", None]
    assert con.execute(f"SELECT {_GUARD.format(c='v')} FROM (SELECT -1 AS v)").fetchall() == [("-1",)]


# -- the HTML in a real browser ---------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def test_html_report_works_offline_in_headless_chromium(demo_run):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), "make test installs Debian's chromium (Makefile: testdeps)"
    html = demo_run["report"] / "report.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            problems, requests = [], []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(html.as_uri())
            rows = page.locator("table.findings tr.finding")
            total = rows.count()
            assert total >= 29
            shown = page.locator("table.findings tr.finding:visible")
            expect(shown).to_have_count(total)
            page.fill("#filter", "bastion")
            expect(shown).not_to_have_count(total)  # the filter runs on the next tick: wait for it
            assert shown.count() > 0
            assert all("bastion" in text.lower() for text in shown.all_inner_texts())
            page.fill("#filter", "")
            expect(shown).to_have_count(total)
        finally:
            browser.close()
    assert problems == []
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []


# -- golden HTML ------------------------------------------------------------------------------------------
GOLDEN_HTML = REPO / "tests" / "golden" / "demo_report.html"


def test_html_matches_the_reviewed_golden_file(demo_run, tmp_path, regenerate_golden):
    """The demo cloud's report with every clock-dependent value pinned: a change to the templates or the
    context shows up here as a diff to review (regenerate with --regenerate-golden)."""
    from datetime import datetime

    from auditor.report.build import FILES
    from auditor.report.render import render_report

    pinned = copy_store(demo_run["database"], tmp_path / "pinned.duckdb")
    rewrite_rows(pinned, "snapshots", "started_at = '2026-01-02 03:04:05', finished_at = '2026-01-02 03:04:09', "
                                      "tool_version = 'golden'")
    rewrite_rows(pinned, "snapshot_resources", "seconds = 0.25")
    rewrite_rows(pinned, "evaluations", "started_at = '2026-01-02 03:05:00', finished_at = '2026-01-02 03:05:01', "
                                        "rules_version = 'golden', tool_version = 'golden'")
    rewrite_rows(pinned, "evaluation_rules", "seconds = 0.01")
    rewrite_rows(pinned, "findings", "first_seen_at = '2026-01-02 03:04:05'", "first_seen_at IS NOT NULL")
    context = build_context(pinned, 1, CATALOG, detail_rows=2**62)
    context.update(generated_at=datetime(2026, 1, 2, 3, 6), tool_version="golden")
    html = render_report(context, "html", dict(FILES))
    if regenerate_golden:
        GOLDEN_HTML.write_text(html, encoding="utf-8")
    assert html == GOLDEN_HTML.read_text(encoding="utf-8")


# -- what the report says ---------------------------------------------------------------------------------
class _ReportPage(HTMLParser):
    """The numbers and rows the tests compare: severity counts and the rows of the findings tables."""

    def __init__(self):
        super().__init__()
        self.severity_counts, self.rows, self.texts = {}, [], []
        self._in_counts = self._row = self._cell = None
        self._cells: list[str] = []
        self._section: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section.append(attrs.get("id") or "")
        if tag == "table" and attrs.get("id") == "severity-counts":
            self._in_counts = True
        if tag == "tr":
            self._row = attrs
            self._cells = []
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._cells.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            classes = (self._row.get("class") or "").split()
            if self._in_counts and len(self._cells) >= 2 and self._cells[1].isdigit():
                self.severity_counts[self._cells[0]] = int(self._cells[1])
            if "finding" in classes:
                self.rows.append((self._row.get("data-rule"), self._cells[0].split()[-1], "findings" in self._section))
            self._row = None
        if tag == "table":
            self._in_counts = False
        if tag == "section" and self._section:
            self._section.pop()

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _ReportPage:
    page = _ReportPage()
    page.feed(html)
    return page


def test_html_numbers_and_rows_agree_with_auditor_findings(demo_run):
    page = _parse((demo_run["report"] / "report.html").read_text(encoding="utf-8"))
    listed = run_cli("--config", str(demo_run["config"]), "findings", "--format", "json")
    failing = [f for f in json.loads(listed.stdout) if not f["waived"]]
    counts = {s: sum(f["severity"] == s for f in failing) for s in ("critical", "high", "medium", "low", "info")}
    assert page.severity_counts == {**counts, "total": len(failing)}
    in_findings_section = sorted((rule, rid) for rule, rid, under_findings in page.rows if under_findings)
    assert in_findings_section == sorted((f["rule_id"], f["resource_id"]) for f in failing)


def test_pdf_reads_back_with_summary_findings_header_and_footer(demo_run):
    reader = PdfReader(demo_run["report"] / "report.pdf")
    pages = [page.extract_text() for page in reader.pages]
    total = len(pages)
    assert total >= 3
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in text
        assert "auditor report" in text and "demo / RegionOne" in text
    first = pages[0]
    failing = query(demo_run["database"], "SELECT severity, count(*) FROM findings WHERE evaluation_id = 1 "
                                          "AND status = 'fail' AND NOT waived GROUP BY ALL")
    for severity, count in failing:
        assert re.search(rf"{severity}\s+{count}\b", first), (severity, count)
    everything = "\n".join(pages)
    for planted in ("bastion-01", "ssh-bastion", "allow-all-temp", "lab-scratch-01", "nfv-router-01",
                    "legacy-app-01", "old-batch-01", "203.0.113.77", "db-postgres", "mysql-legacy"):
        assert planted in everything, planted
    assert "plateforme-été" in everything  # non-ASCII names survive into the PDF


def test_the_archive_lists_every_report_newest_first(demo_run):
    out = demo_run["folder"] / "out"
    again = run_cli("--config", str(demo_run["config"]), "report", "--format", "html", "--out", str(out))
    assert again.returncode == 0, again.stderr
    index = (out / "index.html").read_text(encoding="utf-8")
    link = f'{demo_run["report"].relative_to(out).as_posix()}/report.html'
    assert f'href="{link}"' in index and "demo" in index and "RegionOne" in index


# -- hostile tenants --------------------------------------------------------------------------------------
HOSTILE_SERVER = "<script>alert(1)</script>"
HOSTILE_GROUP = '"><img src=x onerror=alert(2)>'


def test_hostile_names_show_as_text_in_html_pdf_and_browser(tmp_path, demo_fixture, monkeypatch):
    from playwright.sync_api import sync_playwright

    fixture = copy.deepcopy(demo_fixture)
    server = next(s for s in fixture["servers"] if s["name"] == "bastion-01")
    server["name"] = HOSTILE_SERVER
    group = next(g for g in fixture["security_groups"] if g["name"] == "ssh-bastion")
    group["name"] = HOSTILE_GROUP
    next(s for s in fixture["servers"] if s["name"] == "lab-scratch-01")["name"] = "实验服务器-01"
    with FakeCloud(fixture) as cloud:
        clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"demo": cloud.clouds_yaml_entry()})
        config = write_config(tmp_path / "auditor.toml", '[report]\nout_dir = "out"\n')
        done = run_cli("--config", str(config), "run", "--cloud", "demo", env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert done.returncode == 0, done.stderr
    [report] = list((tmp_path / "out" / "demo" / "RegionOne").iterdir())
    html = (report / "report.html").read_text(encoding="utf-8")
    assert HOSTILE_SERVER not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE_SERVER in _parse(html).texts or HOSTILE_SERVER in "".join(_parse(html).texts)
    pdf_text = "\n".join(page.extract_text() for page in PdfReader(report / "report.pdf").pages)
    assert HOSTILE_SERVER in pdf_text.replace("\n", "")
    assert "实验服务器-01" in pdf_text
    fonts = {str(font.get_object().get("/BaseFont")) for page in PdfReader(report / "report.pdf").pages
             for font in ((page.get("/Resources") or {}).get("/Font") or {}).values()}
    assert any("WenQuanYi" in font for font in fonts), fonts  # CJK glyphs drawn from the CJK font, not tofu
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(offline=True).new_page()
            dialogs = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto((report / "report.html").as_uri())
            page.wait_for_timeout(300)
            assert page.locator("img").count() == 0
            assert HOSTILE_SERVER in page.inner_text("body")
        finally:
            browser.close()
    assert dialogs == []


# -- the PDF cap ------------------------------------------------------------------------------------------
def test_the_pdf_lists_at_most_the_cap_and_points_at_the_complete_csv(demo_run, tmp_path):
    config = write_config(tmp_path / "auditor.toml", f'database = "{demo_run["database"]}"\n'
                          '[report]\nout_dir = "capped"\npdf_max_rows = 5\n')
    config.write_text(config.read_text().replace('database = "audit.duckdb"\n', ""))
    done = run_cli("--config", str(config), "report", "--format", "pdf")
    assert done.returncode == 0, done.stderr
    [report] = list((tmp_path / "capped" / "demo" / "RegionOne").iterdir())
    text = "\n".join(page.extract_text() for page in PdfReader(report / "report.pdf").pages)
    flat = re.sub(r"\s+", " ", text)
    failing = query(demo_run["database"], "SELECT rule_id, resource_id FROM findings WHERE evaluation_id = 1 "
                                          "AND status = 'fail' AND NOT waived")
    assert len(failing) > 5
    assert (f"This PDF lists the 5 most severe of {len(failing)} failing resources; all of them are in "
            "findings.csv.") in flat
    findings_part = flat.split("Findings by rule", 1)[1].split("Inventory", 1)[0]
    listed = {rid for _, rid in failing if rid in findings_part.replace(" ", "")}
    assert len(listed) == 5
    with open(report / "findings.csv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "fail" and r["waived"] == "false"]
    assert len(rows) == len(failing)


def test_a_partial_snapshot_says_so_on_the_first_page(clouds_yaml, fake_cloud, tmp_path):
    fake_cloud.add_fault(r"^/network/v2\.0/ports", status=503)
    config = write_config(tmp_path / "auditor.toml", '[report]\nout_dir = "out"\n[collection]\nretries = 0\n')
    done = run_cli("--config", str(config), "run", "--cloud", "demo")
    assert done.returncode == 1, done.stderr  # partial
    [report] = list((tmp_path / "out" / "demo" / "RegionOne").iterdir())
    first = re.sub(r"\s+", " ", PdfReader(report / "report.pdf").pages[0].extract_text())
    assert "Partial snapshot: some data is missing" in first
    assert "ports" in first and "failed" in first
    html = (report / "report.html").read_text(encoding="utf-8")
    assert 'id="completeness"' in html and "Partial snapshot" in html


def test_rule_prose_code_spans_are_escaped_before_they_are_marked_up():
    from auditor.report.render import code_spans

    assert str(code_spans("Run `openstack server list` then <script>x</script> and `<b>&`")) == (
        "Run <code>openstack server list</code> then &lt;script&gt;x&lt;/script&gt; and <code>&lt;b&gt;&amp;</code>")


def test_no_secret_of_the_demo_cloud_reaches_any_report_file(demo_run, demo_fixture):
    secrets = ["hunter2", "ghp_FAKE", demo_fixture["cloud"]["users"][0]["password"]]
    secrets += [c["secret"] for c in demo_fixture["cloud"].get("application_credentials", [])]
    for path in demo_run["report"].iterdir():
        data = path.read_bytes()
        if path.suffix == ".pdf":
            data = "\n".join(page.extract_text() for page in PdfReader(path).pages).encode()
        for secret in secrets:
            assert secret.encode() not in data, (secret, path.name)


def test_waived_findings_and_stale_waivers_are_shown_apart(clouds_yaml, tmp_path):
    (tmp_path / "waivers.yaml").write_text("""waivers:
  - id: bastion-ssh
    rule: security_group_admin_ports_not_open_to_world
    match: {resource_name: ssh-bastion}
    reason: Bastion for on-call, keys only
    owner: oncall@example.com
    expires: 2099-12-31
  - id: gone-server
    rule: server_has_security_group
    match: {resource_name: decommissioned-42}
    reason: Server was removed
    owner: ops@example.com
    expires: 2099-12-31
""", encoding="utf-8")
    config = write_config(tmp_path / "auditor.toml", '[rules]\nwaivers = "waivers.yaml"\n[report]\nout_dir = "out"\n')
    done = run_cli("--config", str(config), "run", "--cloud", "demo")
    assert done.returncode == 0, done.stderr
    [report] = list((tmp_path / "out" / "demo" / "RegionOne").iterdir())
    page = _parse((report / "report.html").read_text(encoding="utf-8"))
    in_findings = {(rule, rid) for rule, rid, _ in page.rows}
    bastion = query(tmp_path / "audit.duckdb", "SELECT resource_id FROM findings WHERE waiver_id = 'bastion-ssh'")
    assert ("security_group_admin_ports_not_open_to_world", bastion[0][0]) not in in_findings  # not as failing
    text = " ".join(" ".join(page.texts).split())
    assert "oncall@example.com" in text and "Bastion for on-call, keys only" in text and "2099-12-31" in text
    assert "gone-server" in text and "unmatched" in text


def test_the_archive_page_lists_reports_newest_first(tmp_path):
    from auditor.report.build import refresh_index

    for stamp, snapshot_id in (("2026-01-01T000000Z", 1), ("2026-03-01T000000Z", 3), ("2026-02-01T000000Z", 2)):
        folder = tmp_path / "prod" / "RegionOne" / stamp
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps({
            "cloud": "prod", "region": "RegionOne", "snapshot_id": snapshot_id,
            "started_at": f"{stamp[:10]}T00:00:00", "status": "complete", "score": 90,
            "fails": {"critical": snapshot_id}, "new_total": 0, "resolved_total": 0,
            "files": {"html": "report.html", "pdf": "report.pdf"}}), encoding="utf-8")
    (tmp_path / "prod" / "RegionOne" / ".2026-04-01T000000Z.tmp-1").mkdir()  # a report being written
    index = refresh_index(tmp_path).read_text(encoding="utf-8")
    links = re.findall(r'href="(prod/RegionOne/[^"]+/report\.html)"', index)
    assert links == [f"prod/RegionOne/{s}/report.html" for s in
                     ("2026-03-01T000000Z", "2026-02-01T000000Z", "2026-01-01T000000Z")]


def test_an_unwritable_output_folder_is_a_clear_error(demo_run, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be", encoding="utf-8")
    done = run_cli("--config", str(demo_run["config"]), "report", "--format", "html", "--out", str(blocked / "out"))
    assert done.returncode == 9, done.stderr
    assert "report of snapshot 1: cannot write to the output folder" in done.stderr
    assert "Traceback" not in done.stderr
