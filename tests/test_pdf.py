"""auditor.report.pdf: WeasyPrint in a child process with a time and memory limit (real WeasyPrint, real pypdf)."""

from __future__ import annotations

import http.server
import signal
import threading
import time
from pathlib import Path

import pypdf
import pytest

from auditor.errors import ReportError
from auditor.report.pdf import PdfResult, _failure, render_pdf

SMALL = """<!doctype html>
<html><head><meta charset="utf-8"><title>t</title>
<style>@page { size: A4; margin: 2cm; @bottom-center { content: "page " counter(page) " of " counter(pages); } }</style>
</head><body>
<h1>Compliance report</h1>
<p>Failing findings: 42. Server &lt;script&gt;alert(1)&lt;/script&gt; is exposed.</p>
<svg width="40" height="20" xmlns="http://www.w3.org/2000/svg"><rect width="40" height="20" fill="#c00"/></svg>
<h2 style="break-before: page">Inventory</h2>
<p>Second page.</p>
</body></html>"""


def table(rows: int) -> str:
    body = "".join(f"<tr><td>{i}</td><td>server-{i}</td><td>project-{i % 50}</td><td>port 22 open to the world</td>"
                   f"</tr>" for i in range(rows))
    return f"<!doctype html><html><body><table>{body}</table></body></html>"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def renderers_running(marker: str) -> list[int]:
    """Pids of PDF renderer children whose command line mentions `marker` (a test's folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "auditor.report.pdf" in cmdline and marker in cmdline:
            pids.append(int(proc.name))
    return pids


def test_renders_a_small_report_that_reads_back(tmp_path):
    target = tmp_path / "report.pdf"
    result = render_pdf(SMALL, target)
    assert isinstance(result, PdfResult)
    assert result.path == target and target.is_file()
    assert leftovers(tmp_path) == ["report.pdf"]
    reader = pypdf.PdfReader(target)
    assert result.pages == len(reader.pages) == 2
    first, second = (page.extract_text() for page in reader.pages)
    assert "Compliance report" in first and "Failing findings: 42" in first
    assert "<script>alert(1)</script>" in first  # escaped in HTML, so text in the PDF
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert "Inventory" in second
    assert 0 < result.seconds < 60
    assert 20 < result.peak_rss_mb < 500
    assert result.warnings == ()


def test_replaces_an_existing_pdf_only_when_done(tmp_path):
    target = tmp_path / "report.pdf"
    target.write_bytes(b"old")
    with pytest.raises(ReportError):
        render_pdf(table(200_000), target, timeout=1)
    assert target.read_bytes() == b"old"  # a failed render leaves the previous report as it was
    render_pdf(SMALL, target)
    assert target.read_bytes().startswith(b"%PDF-")
    assert leftovers(tmp_path) == ["report.pdf"]


def test_timeout_stops_the_child_and_leaves_nothing(tmp_path):
    target = tmp_path / "report.pdf"
    started = time.monotonic()
    with pytest.raises(ReportError) as caught:
        render_pdf(table(200_000), target, timeout=1)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"
    message = str(caught.value)
    assert str(target) in message
    assert "time limit of 1 s" in message and "report.pdf_timeout" in message
    assert caught.value.exit_code == 9
    assert leftovers(tmp_path) == []  # no PDF, no temporary file
    assert renderers_running(str(tmp_path)) == []


def test_memory_limit_stops_the_child(tmp_path):
    target = tmp_path / "report.pdf"
    started = time.monotonic()
    with pytest.raises(ReportError) as caught:
        render_pdf(table(20_000), target, memory_limit_mb=150)
    assert time.monotonic() - started < 60
    message = str(caught.value)
    assert str(target) in message
    assert "memory limit of 150 MB" in message and "report.pdf_memory_limit_mb" in message
    assert leftovers(tmp_path) == []
    assert renderers_running(str(tmp_path)) == []


def test_a_crash_or_a_kill_is_named():
    target = Path("/out/report.pdf")
    crash = _failure(-signal.SIGSEGV, "", target, 120, 1024)
    assert "SIGSEGV" in crash and "memory limit of 1024 MB" in crash and str(target) in crash
    killed = _failure(-signal.SIGKILL, "", target, 120, 1024)
    assert "SIGKILL" in killed and "out of memory" in killed
    glib = _failure(-signal.SIGTRAP, "(process:1): GLib-ERROR **: failed to allocate 4096 bytes\n", target, 120, 512)
    assert "SIGTRAP" in glib and "failed to allocate" in glib and "memory limit of 512 MB" in glib
    failed = _failure(4, "Traceback (most recent call last):\n  ...\nValueError: bad html\n", target, 120, 1024)
    assert "ValueError: bad html" in failed and str(target) in failed


def test_missing_folder_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        render_pdf(SMALL, tmp_path / "nowhere" / "report.pdf")


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        body = b"p { color: red }" if self.path.endswith(".css") else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def hostile_html(port: int, secret: Path) -> str:
    base = f"http://127.0.0.1:{port}"
    return f"""<!doctype html><html><head>
<link rel="stylesheet" href="{base}/link.css">
<style>
@import url("{base}/import.css");
@font-face {{ font-family: Remote; src: url("{base}/font.woff"); }}
body {{ background-image: url("{base}/background.png"); font-family: Remote, sans-serif; }}
</style></head><body>
<p>Tenant text</p>
<img src="{base}/x.png">
<img src="file://{secret}">
<object data="{base}/object.svg" type="image/svg+xml"></object>
<embed src="{base}/embed.svg" type="image/svg+xml">
<img src="relative.png">
</body></html>"""


def test_no_url_is_fetched(tmp_path, http_server):
    port = http_server.server_address[1]
    secret = tmp_path / "secret.svg"
    secret.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>SECRET</text></svg>')
    html = hostile_html(port, secret)
    # The control: WeasyPrint's own fetcher, in this process, does fetch these.
    import weasyprint

    weasyprint.HTML(string=html).render()
    assert http_server.requests, "the control render should have reached the test server"
    http_server.requests.clear()

    target = tmp_path / "report.pdf"
    result = render_pdf(html, target)
    assert http_server.requests == []
    text = "".join(page.extract_text() for page in pypdf.PdfReader(target).pages)
    assert "Tenant text" in text and "SECRET" not in text
    refused = "\n".join(result.warnings)
    assert f"127.0.0.1:{port}/x.png" in refused and "secret.svg" in refused


def test_inline_data_urls_still_work(tmp_path):
    svg = ('data:image/svg+xml;utf8,<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">'
           '<rect width="20" height="20" fill="red"/></svg>').replace('"', "%22")
    target = tmp_path / "report.pdf"
    result = render_pdf(f'<p>chart</p><img src="{svg}">', target)
    assert result.warnings == ()
    assert result.pages == 1


def test_a_relative_target_is_written_where_the_caller_means(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = render_pdf("<p>relative</p>", Path("out.pdf"), timeout=60)
    assert (tmp_path / "out.pdf").read_bytes().startswith(b"%PDF-") and result.path == tmp_path / "out.pdf"
