"""Benchmark: the exports beside each report, at 50,000 servers.

The target (issue 14): writing every export costs no more than 1 s per 100,000 findings, with a peak RSS
under 500 MB.

The evaluation: bench/rules.py's snapshot of `auditor fake-cloud --generate N --seed 1` (`auditor
snapshot` of it), then `auditor evaluate`, in a folder of its own (kept with --keep DIR and reused). Every finding of the evaluation is exported, every status.

What is measured, each export in a subprocess of its own (Python start and imports included): its wall
time and peak RSS (`ru_maxrss`), and the file's size:
- findings.csv (`write_findings_csv`: DuckDB's COPY, formula-injection guard on every text cell);
- findings.jsonl (`write_findings_jsonl`: one object per finding built by DuckDB, written a batch at a time);
- findings.ocsf.jsonl (`write_findings_ocsf`: one OCSF event per finding, likewise);
- inventory.csv (`write_inventory_csv`, the query of `auditor inventory`): per server, not per finding.

Run: .venv/bin/python bench/exports.py [--servers 50000] [--keep DIR] [--repeat K]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rules import build_snapshot, machine  # noqa: E402  (bench/rules.py)
from snapshot import bench_folder  # noqa: E402  (bench/snapshot.py)

from auditor.store.database import open_reader  # noqa: E402

TARGET_S_PER_100K, TARGET_RSS_MB = 1.0, 500
EXPORT = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "from pathlib import Path\n"
    "from auditor.report import exports\n"
    "database, kind, key, target = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])\n"
    "if kind == 'findings.csv':\n"
    "    exports.write_findings_csv(database, key, target)\n"
    "elif kind == 'inventory.csv':\n"
    "    exports.write_inventory_csv(database, key, target)\n"
    "elif kind == 'findings.jsonl':\n"
    "    exports.write_findings_jsonl(database, key, target)\n"
    "else:\n"
    "    exports.write_findings_ocsf(database, key, {'cis_controls_v8': 'CIS', 'nist_800_53_r5': 'NIST'}, target)\n"
)
EXPORTS = ("findings.csv", "findings.jsonl", "findings.ocsf.jsonl", "inventory.csv")


def build(servers: int, folder: Path) -> Path:
    """bench/rules.py's snapshot of the generated cloud (reused when there), evaluated once."""
    database = build_snapshot(servers, folder)
    con = open_reader(database)
    try:
        evaluated = con.execute("SELECT count(*) FROM evaluations").fetchall()[0][0] > 0
    finally:
        con.close()
    if not evaluated:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "auditor", "--database", str(database), "evaluate"],
                              capture_output=True, text=True, cwd=folder)
        if done.returncode not in (0, 13):
            raise SystemExit(f"evaluate failed: {done.stdout}\n{done.stderr}")
        print(f"# evaluation: {time.monotonic() - started:.1f} s", file=sys.stderr)
    return database


def measure(database: Path, kind: str, key: int, folder: Path) -> dict:
    target = folder / f"bench-{kind}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", EXPORT, str(database), kind, str(key), str(target)],
                          capture_output=True, text=True, cwd=folder)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    rss = int(re.search(r"maxrss_kb (\d+)", done.stderr).group(1)) / 1024
    size = target.stat().st_size
    target.unlink()
    return {"wall": wall, "rss": rss, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the database in DIR and reuse it")
    parser.add_argument("--repeat", type=int, default=3, metavar="K")
    args = parser.parse_args()
    with bench_folder(args.keep, "exports") as folder:
        database = build(args.servers, folder)
        con = open_reader(database)
        try:
            evaluation_id, snapshot_id = con.execute(
                "SELECT id, snapshot_id FROM evaluations ORDER BY id DESC LIMIT 1").fetchall()[0]
            findings, servers = con.execute(
                "SELECT (SELECT count(*) FROM findings WHERE evaluation_id = ?), "
                "(SELECT count(*) FROM servers WHERE snapshot_id = ?)", [evaluation_id, snapshot_id]).fetchall()[0]
        finally:
            con.close()
        results = {kind: [measure(database, kind, snapshot_id if kind == "inventory.csv" else evaluation_id, folder)
                          for _ in range(args.repeat)] for kind in EXPORTS}
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}: {machine()}")
    print(f"# evaluation {evaluation_id}: {findings:,} findings (every status) of {servers:,} servers; "
          f"median of {args.repeat} runs, each export in a process of its own")
    print()
    print("export | rows | wall | per 100,000 rows | peak RSS | size | verdict")
    print("--- | --- | --- | --- | --- | --- | ---")
    total, worst = 0.0, 0.0
    for kind, runs in results.items():
        rows = servers if kind == "inventory.csv" else findings
        wall = statistics.median(r["wall"] for r in runs)
        rss = max(r["rss"] for r in runs)
        total, worst = total + wall, max(worst, rss)
        print(f"{kind} | {rows:,} | {wall:.2f} s | {wall / rows * 100_000:.2f} s | {rss:,.0f} MB "
              f"| {runs[-1]['bytes'] / 2**20:,.1f} MB | {'PASS' if rss < TARGET_RSS_MB else 'MISS'} (RSS)")
    per = total / findings * 100_000
    verdict = "PASS" if per <= TARGET_S_PER_100K and worst < TARGET_RSS_MB else "MISS"
    print(f"every export | {findings:,} findings | {total:.2f} s | {per:.2f} s per 100,000 findings | {worst:,.0f} MB "
          f"| - | {verdict}")
    print(f"\n# target: every export together <= {TARGET_S_PER_100K:g} s per 100,000 findings, each < {TARGET_RSS_MB} MB "
          "peak RSS; each time includes its process's start (~0.7 s)")


if __name__ == "__main__":
    main()
