"""PDF from the report's HTML with WeasyPrint, in a child process with a time and a memory limit.

WeasyPrint's time and memory grow with every table row (the report's 10,724 failing rows uncapped: 91 s and
1.3 GB peak RSS, bench/report.py), so one huge report could take minutes and gigabytes; it runs in a child so
that such a report fails alone and the caller (the CLI or the service) goes on:

- The child is a fresh interpreter (`python -m auditor.report.pdf`, started with `subprocess`, in a session
  and process group of its own): nothing is forked from a parent that may hold DuckDB's threads, and no
  Python code runs between fork and exec. It reads the HTML from a temporary file.
- Its first act is `setrlimit(RLIMIT_AS)` to the memory limit (address space, mapped libraries and fonts
  included: it caps what the child can ever touch) and `RLIMIT_CPU` as a backstop should the parent vanish;
  it also asks Linux to kill it when the parent dies. At the limit Python raises MemoryError, or a library
  crashes (GLib, under Pango, stops with SIGTRAP): either becomes a ReportError naming the limit.
- The parent waits up to the time limit, then kills the whole process group.
- The child writes the PDF to a hidden temporary file beside the target and fsyncs it; the parent renames it
  over the target only when the child succeeded, so no half-written PDF is ever visible under the target's
  name. The temporary file is removed on every failure.
- WeasyPrint fetches nothing: every URL is refused (`data:` URLs, which are decoded in place, excepted) and
  there is no base URL, so relative paths resolve to nothing. A refused URL is a warning, not a failure.

The child tells the parent its page count, render time and peak RSS (its own `ru_maxrss`) in a small JSON
file; failures are told by exit status: 0 done, 3 MemoryError, 4 any other error (traceback on stderr), a
signal for a crash.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from auditor.errors import ReportError

EXIT_MEMORY = 3
EXIT_FAILED = 4
MAX_WARNINGS = 50  # warning lines of the child kept in PdfResult.warnings
TIMEOUT_KEY = "report.pdf_timeout"
MEMORY_KEY = "report.pdf_memory_limit_mb"
ROWS_KEY = "report.pdf_max_rows"


@dataclass(frozen=True)
class PdfResult:
    path: Path  # the PDF, renamed into place
    pages: int  # WeasyPrint's page count
    seconds: float  # wall time in the parent: the child's start, imports, layout and writing
    peak_rss_mb: float  # the child's peak resident memory since it started its program (VmHWM)
    warnings: tuple[str, ...] = ()  # WeasyPrint's warnings (refused URLs, unsupported CSS), at most MAX_WARNINGS


def render_pdf(html: str, target: Path, timeout: float = 120, memory_limit_mb: int = 1024) -> PdfResult:
    """Render `html` to the PDF `target` in a child process limited to `timeout` seconds and
    `memory_limit_mb` MB of address space. Raises ReportError when the limit is hit, the child crashes or
    fails, or the file cannot be written; the target is then left as it was."""
    target = Path(target).absolute()  # the child runs in a folder of its own
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if not (isinstance(memory_limit_mb, int) and memory_limit_mb > 0):
        raise ValueError(f"memory_limit_mb must be a positive integer, got {memory_limit_mb!r}")
    folder = target.parent
    if not folder.is_dir():
        raise ReportError(f"{target}: cannot write the PDF: folder {folder} does not exist")
    started = time.monotonic()
    partial = folder / f".{target.name}.{secrets.token_hex(8)}.part"  # created by the child, mode as usual
    try:
        with tempfile.TemporaryDirectory(prefix="auditor-pdf-") as work_dir:
            work = Path(work_dir)
            source, result_file, log_file = work / "report.html", work / "result.json", work / "child.log"
            source.write_text(html, encoding="utf-8")
            with open(log_file, "wb") as log:
                code = _run_child(
                    [sys.executable, "-m", "auditor.report.pdf", str(source), str(partial), str(result_file),
                     str(memory_limit_mb), str(max(1, int(timeout) + 5)), str(os.getpid())],
                    log, work, target, timeout, memory_limit_mb)
            output = log_file.read_text(encoding="utf-8", errors="replace")
            if code != 0:
                raise ReportError(_failure(code, output, target, timeout, memory_limit_mb))
            try:
                result = json.loads(result_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ReportError(f"{target}: the PDF renderer ended without its result ({exc})") from None
            if not partial.is_file():
                raise ReportError(f"{target}: the PDF renderer ended without writing the PDF")
            try:
                os.replace(partial, target)
            except OSError as exc:
                raise ReportError(f"{target}: cannot write the PDF: {exc.strerror or exc}") from None
    except OSError as exc:  # the temporary folder or the HTML could not be written
        raise ReportError(f"{target}: cannot render the PDF: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    warnings = tuple(line for line in output.splitlines() if line.strip())[:MAX_WARNINGS]
    return PdfResult(path=target, pages=int(result["pages"]), seconds=time.monotonic() - started,
                     peak_rss_mb=float(result["peak_rss_mb"]), warnings=warnings)


def _run_child(argv: list[str], log, work: Path, target: Path, timeout: float, memory_limit_mb: int) -> int:
    env = dict(os.environ)
    # The child imports this very package: from site-packages as the parent does, or from the source tree
    # the parent runs from (put first on its path; site-packages never is, lest it shadow the stdlib).
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    if package_root not in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work,
                                env=env, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise ReportError(f"{target}: cannot start the PDF renderer: {exc}") from None
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ReportError(f"{target}: the PDF took longer than its time limit of {timeout:g} s and was stopped "
                          f"(raise {TIMEOUT_KEY}, or lower {ROWS_KEY})") from None
    except BaseException:  # KeyboardInterrupt, a cooperative stop: never leave the child running
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the child leads its own process group
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _failure(code: int, output: str, target: Path, timeout: float, memory_limit_mb: int) -> str:
    raise_memory = f"raise {MEMORY_KEY}, or lower {ROWS_KEY}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    allocation = next((line for line in reversed(lines) if _ALLOCATION_FAILED.search(line)), None)
    if code == EXIT_MEMORY:
        return (f"{target}: the PDF renderer ran out of memory (MemoryError) at its memory limit of "
                f"{memory_limit_mb} MB ({raise_memory})")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGXCPU:
            return (f"{target}: the PDF renderer used up its CPU time ({name}), which follows its time limit of "
                    f"{timeout:g} s (raise {TIMEOUT_KEY}, or lower {ROWS_KEY})")
        if allocation or -code in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGTRAP):
            # GLib (Pango, HarfBuzz) stops with SIGTRAP when an allocation fails; others crash or abort.
            said = f": {allocation}" if allocation else ""
            return (f"{target}: the PDF renderer crashed with {name}{said}, as a library does when it cannot "
                    f"allocate memory within the memory limit of {memory_limit_mb} MB ({raise_memory})")
        if -code == signal.SIGKILL:
            return (f"{target}: the PDF renderer was killed by {name}, which the kernel does when the machine "
                    f"runs out of memory (its own limit is {memory_limit_mb} MB: lower {MEMORY_KEY} or "
                    f"{ROWS_KEY})")
        return f"{target}: the PDF renderer was killed by {name}"
    if allocation:
        return (f"{target}: the PDF renderer ran out of memory at its memory limit of {memory_limit_mb} MB "
                f"({allocation}) ({raise_memory})")
    detail = lines[-1] if lines else "no message"
    return f"{target}: the PDF could not be rendered (exit status {code}): {detail}"


_ALLOCATION_FAILED = re.compile(r"MemoryError|Cannot allocate memory|failed to allocate|out of memory", re.IGNORECASE)


# -- the child --------------------------------------------------------------------------------------------
def _child(source: str, partial: str, result_file: str, memory_limit_mb: int, cpu_seconds: int,
           parent_pid: int) -> int:
    import resource

    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    _die_with_parent(parent_pid)
    try:
        started = time.monotonic()
        html = Path(source).read_text(encoding="utf-8")
        document = _render(html)
        del html
        pages = len(document.pages)
        with open(partial, "xb") as out:
            document.write_pdf(out)
            out.flush()
            os.fsync(out.fileno())
        seconds = time.monotonic() - started
        del document
    except MemoryError:
        os._exit(EXIT_MEMORY)  # nothing more: printing a traceback may need the memory that is gone
    except OSError as exc:
        # A library that cannot be mapped or a buffer that cannot be had under the limit says so as OSError.
        if exc.errno == 12 or "cannot allocate memory" in str(exc).lower() or "map segment" in str(exc):
            os._exit(EXIT_MEMORY)
        raise
    peak_rss_mb = _peak_rss_mb()
    Path(result_file).write_text(json.dumps({"pages": pages, "seconds": seconds, "peak_rss_mb": peak_rss_mb}),
                                 encoding="utf-8")
    return 0


def _render(html: str):
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(levelname)s: %(message)s")
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # its INFO/DEBUG lines: every step and file
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # font subsetting chatter

    import weasyprint

    return weasyprint.HTML(string=html, base_url=None, url_fetcher=_refusing_fetcher()).render()


def _refusing_fetcher():
    """A WeasyPrint URL fetcher that fetches nothing: every URL but an inline `data:` one is refused."""
    from weasyprint import urls

    def refuse(url: str):
        if url.lower().startswith("data:"):
            return None  # decoded in place by the default fetcher: no I/O
        raise ValueError(f"external resources are not loaded in reports: {url[:200]}")

    fetcher_class = getattr(urls, "URLFetcher", None)
    if fetcher_class is None:  # older WeasyPrint: a function that returns a dict
        def fetch(url: str, timeout: int = 10, ssl_context=None):
            refuse(url)
            return urls.default_url_fetcher(url, timeout=timeout, ssl_context=ssl_context)

        return fetch

    class RefusingFetcher(fetcher_class):
        def fetch(self, url, headers=None):
            refuse(url)
            return super().fetch(url, headers)

    # Only the data: handler is left to the opener, so even a redirect cannot reach the network.
    return RefusingFetcher(allow_redirects=False, allowed_protocols=("data",))


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this child when its parent dies (best effort; the CPU limit is the backstop)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request
        os._exit(EXIT_FAILED)


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program. Not ru_maxrss: Linux carries it
    across exec, so it counts the memory of the process this one was forked from (a service or a test
    runner of 500 MB made a small PDF look like one of 500 MB)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    import resource  # only where /proc is not there to read

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    # python -m auditor.report.pdf SOURCE_HTML PARTIAL_PDF RESULT_JSON MEMORY_LIMIT_MB CPU_SECONDS PARENT_PID
    if len(sys.argv) != 7:
        sys.exit(f"usage: {sys.argv[0]} SOURCE_HTML PARTIAL_PDF RESULT_JSON MEMORY_LIMIT_MB CPU_SECONDS PARENT_PID "
                 "(run by auditor.report.pdf.render_pdf)")
    try:
        sys.exit(_child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                        int(sys.argv[6])))
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(EXIT_FAILED)
