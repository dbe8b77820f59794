"""Benchmark: what history costs. Many `auditor snapshot` + `auditor evaluate` runs in a row against one
synthetic cloud, printing per run the time of each command and what the store takes on disk.

A design whose runs slow down as history grows, or that rewrites old snapshots, shows here: the last run
should take as long as the second, and each run should add only its own snapshot and findings to the disk.
After the runs, a count over every snapshot (`select snapshot_id, count(*) from servers group by 1`) is
timed in-process on the file auditors open, and end to end through `auditor sql`.

Run: .venv/bin/python bench/history.py [--servers 20000] [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot import PAGE, start_fake_cloud  # noqa: E402  (bench/snapshot.py)

COUNT_SQL = "select snapshot_id, count(*) from servers group by 1"


def disk_bytes(folder: Path) -> int:
    """Bytes the store takes on disk (allocated blocks, so sparse files count for what they hold)."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("clouds-") and path.suffix not in (".toml", ".yaml"):
            total += path.stat().st_blocks * 512
    return total


def timed(command: list[str], env: dict) -> float:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def reader_file(store: Path) -> Path:
    """The file auditors open: the published copy of the DuckDB store (before the lake), else the catalog."""
    published = store / "audit.readonly.duckdb"
    return published if published.exists() else store / "audit.duckdb"


def growth(rows: list[tuple[float, float, int]]) -> float:
    """The last run over run 2, both read off the least-squares line through runs 2..N of snapshot + evaluate
    time: on a shared VM one run varies by +-15%, more than any trend a single pair of runs could show."""
    xs = list(range(2, len(rows) + 1))
    ys = [snapshot_s + evaluate_s for snapshot_s, evaluate_s, _size in rows[1:]]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return (mean_y + slope * (xs[-1] - mean_x)) / (mean_y + slope * (2 - mean_x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, duckdb {duckdb.__version__}; {args.servers:,} servers, "
          f"{args.runs} runs")
    with tempfile.TemporaryDirectory(prefix="auditor-history-") as tmp:
        folder = Path(tmp)
        store = folder / "store"
        store.mkdir()
        proc, clouds, _ = start_fake_cloud(args.servers, folder)
        config = folder / "auditor.toml"
        config.write_text(f'database = "{store / "audit.duckdb"}"\n[collection]\npage_size = {PAGE}\n'
                          "concurrency = 4\n")
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds)}
        auditor = [sys.executable, "-m", "auditor", "--config", str(config)]
        rows = []
        try:
            print("run | snapshot s | evaluate s | run s | store MB | added MB")
            print("--- | --- | --- | --- | --- | ---")
            before = 0
            for run in range(1, args.runs + 1):
                snapshot_s = timed([*auditor, "snapshot", "--cloud", "bench"], env)
                evaluate_s = timed([*auditor, "evaluate"], env)
                size = disk_bytes(store)
                rows.append((snapshot_s, evaluate_s, size))
                print(f"{run} | {snapshot_s:.1f} | {evaluate_s:.1f} | {snapshot_s + evaluate_s:.1f} | "
                      f"{size / 2**20:,.0f} | {(size - before) / 2**20:,.1f}", flush=True)
                before = size
            con = duckdb.connect(str(reader_file(store)), read_only=True)
            started = time.monotonic()
            counted = con.execute(COUNT_SQL).fetchall()
            in_process = time.monotonic() - started
            con.close()
            sql_s = timed([*auditor, "sql", COUNT_SQL], env)
        finally:
            proc.terminate()
            proc.wait()
    second, last = rows[1] if len(rows) > 1 else rows[0], rows[-1]
    print()
    print("measure | value")
    print("--- | ---")
    print(f"run {len(rows)} / run 2 (snapshot + evaluate) | {(last[0] + last[1]) / (second[0] + second[1]):.2f}")
    if len(rows) > 2:
        fitted = growth(rows)
        print(f"the same on a straight line fitted to runs 2-{len(rows)} (one run varies by more than the trend)"
              f" | {fitted:.2f}")
    print(f"store on disk after {len(rows)} runs | {last[2] / 2**20:,.0f} MB ({last[2] / len(rows) / 2**20:,.1f} MB a run)")
    print(f"count over {len(counted)} snapshots, in-process | {in_process:.2f} s")
    print(f"the same through `auditor sql` (Python start included) | {sql_s:.2f} s")


if __name__ == "__main__":
    main()
