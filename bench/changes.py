"""Benchmark: `auditor changes` between two snapshots of a large cloud.

The target (issue 14): 100,000 servers, two snapshots, `auditor changes` in under 3 s on 2 cores.

How the two snapshots are built: `auditor fake-cloud --generate N --seed 1` in its own process, snapshotted
twice by `auditor snapshot` into one database (bench/snapshot.py's functions). The generator is
deterministic, so the second snapshot equals the first; churn is then written into it: its own
`servers` and `security_group_rules` Parquet files in the lake are read into an in-memory DuckDB, changed
there (--churn percent of the servers renamed, as many stopped, as many removed; as many rules removed),
and each written to a temporary file in its partition folder that replaces the original (os.replace), as
bench/rules.py does for its top-up. The lake never rewrites a file itself; this fixture is the exception.

What is measured: `auditor changes --from A --to B --format json` in a subprocess (Python start, imports,
the catalog, every resource table compared, JSON written to a file): wall time and peak RSS, and the
number of changes it printed.

With --keep DIR the database is kept in DIR and reused by later runs with the same --servers and --churn.

Run: .venv/bin/python bench/changes.py [--servers 100000] [--churn 1] [--keep DIR] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rules import machine  # noqa: E402  (bench/rules.py)
from snapshot import bench_folder, MEASURED_RUN, run_snapshot, start_fake_cloud  # noqa: E402  (bench/snapshot.py)

from auditor.sqltext import sql_literal  # noqa: E402
from auditor.store.database import lake_path, open_reader  # noqa: E402
from auditor.store.lake import partition_file  # noqa: E402
from auditor.store.tables import SANDBOX_CONFIG, file_columns, relation_sql  # noqa: E402

TARGET_SECONDS = 3.0
# Each statement keeps or changes rows of the table `t` (one partition's rows); `every` picks 1 row in N.
CHURN = {
    "servers": [
        "DELETE FROM t WHERE hash(id) % $every = 0",
        "UPDATE t SET name = name || '-renamed' WHERE hash(id) % $every = 1",
        "UPDATE t SET status = 'SHUTOFF' WHERE hash(id) % $every = 2",
    ],
    "security_group_rules": ["DELETE FROM t WHERE hash(id) % $every = 0"],
}


def build(servers: int, churn: float, folder: Path) -> tuple[Path, int, int]:
    database = folder / f"changes-bench-{servers}-{churn:g}.duckdb"
    if database.is_file() and lake_path(database).is_dir():
        print(f"# reusing {database}", file=sys.stderr)
        ids = _snapshot_ids(database)
        return database, ids[0], ids[1]
    database.unlink(missing_ok=True)
    proc, clouds, _ = start_fake_cloud(servers, folder)
    try:
        for _ in range(2):
            snap = run_snapshot(clouds, database)
            print(f"# snapshot of {servers:,} servers: {snap['wall']:.1f} s", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait()
    first, second = _snapshot_ids(database)
    _churn(database, second, max(1, round(100 / churn)))
    return database, first, second


def _snapshot_ids(database: Path) -> list[int]:
    con = open_reader(database)
    try:
        ids = [r[0] for r in con.execute("SELECT id FROM snapshots WHERE status = 'complete' ORDER BY id").fetchall()]
    finally:
        con.close()
    if len(ids) != 2:
        raise SystemExit(f"{database}: expected two complete snapshots, found {ids}")
    return ids


def _churn(database: Path, snapshot_id: int, every: int) -> None:
    lake = lake_path(database)
    for table, statements in CHURN.items():
        path = partition_file(lake, table, snapshot_id)
        columns = ", ".join(f'"{name}"' for name, _ in file_columns(table))
        con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
        try:
            con.execute(f"CREATE TABLE t AS {relation_sql(table, [str(path)])}")
            for statement in statements:
                con.execute(statement, {"every": every})
            temporary = path.with_name(f".{uuid.uuid4().hex}.parquet")
            con.execute(f"COPY (SELECT {columns} FROM t) TO {sql_literal(str(temporary))} "
                        "(FORMAT parquet, COMPRESSION zstd)")
        finally:
            con.close()
        os.replace(temporary, path)


def measure(database: Path, first: int, second: int) -> dict:
    config = database.with_name(f"{database.stem}.changes.toml")
    config.write_text(f'database = "{database.name}"\n')
    out = database.with_name(f"{database.stem}.changes.json")
    started = time.monotonic()
    with open(out, "wb") as handle:
        done = subprocess.run([sys.executable, "-c", MEASURED_RUN, "--config", str(config), "changes",
                               "--from", str(first), "--to", str(second), "--format", "json"],
                              stdout=handle, stderr=subprocess.PIPE, text=False, cwd=database.parent)
    wall = time.monotonic() - started
    stderr = done.stderr.decode()
    if done.returncode != 0:
        raise SystemExit(f"auditor changes failed (exit {done.returncode}):\n{stderr}")
    maxrss = int(re.search(r"maxrss_kb (\d+)", stderr).group(1))
    text = out.read_text(encoding="utf-8")
    counts: dict[str, int] = {}
    for kind in re.findall(r'"change": "(\w+)"', text):
        counts[kind] = counts.get(kind, 0) + 1
    out.unlink()
    return {"wall": wall, "maxrss_mb": maxrss / 1024, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=1.0, help="percent of servers renamed, stopped, removed")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the database in DIR and reuse it")
    parser.add_argument("--repeat", type=int, default=3, metavar="K")
    args = parser.parse_args()
    with bench_folder(args.keep, "changes") as folder:
        database, first, second = build(args.servers, args.churn, folder)
        con = open_reader(database)
        try:
            sizes = dict(con.execute("SELECT resource_type, row_count FROM snapshot_resources WHERE snapshot_id = ?",
                                     [first]).fetchall())
        finally:
            con.close()
        runs = [measure(database, first, second) for _ in range(args.repeat)]
    walls = [r["wall"] for r in runs]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: {machine()}")
    print(f"# snapshots {first} and {second}: {sizes.get('servers', 0):,} servers, "
          f"{sizes.get('security_group_rules', 0):,} security-group rules, {sizes.get('ports', 0):,} ports, "
          f"{sum(sizes.values()):,} resources in all; churn {args.churn:g}%")
    print(f"# changes found: {runs[-1]['counts']}")
    print()
    print("measure | measured | target | verdict")
    print("--- | --- | --- | ---")
    median = statistics.median(walls)
    print(f"`auditor changes --format json`, wall (median of {len(runs)}, best) | {median:.2f} s "
          f"({min(walls):.2f} s) | < {TARGET_SECONDS:g} s | {'PASS' if median < TARGET_SECONDS else 'MISS'}")
    print(f"peak RSS (worst run) | {max(r['maxrss_mb'] for r in runs):,.0f} MB | - | -")


if __name__ == "__main__":
    main()
