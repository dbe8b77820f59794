"""Benchmark: every shipped rule on one large snapshot; print each rule's time, slowest first.

The target (issue 3): all shipped rules on a snapshot of 100,000 servers, 200,000 ports and 1,000,000
security-group rules in under 5 s in total on 2 cores, with a peak RSS under 2 GB.

How the snapshot is built:
- the real way: `auditor fake-cloud --generate N --seed 1` in its own process, and `auditor snapshot` of it
  into a DuckDB file (the functions of bench/snapshot.py). At N = 100,000 that gives ~193,000 ports but
  only ~191,000 security-group rules (~17 per group);
- then a synthetic top-up, in one SQL statement: copies of the snapshot's own security-group rules, with
  new ids (`<id>-copy<k>`) and spread round-robin over all the snapshot's security groups (the copy takes
  its new group's id and project, also in its `raw` JSON), until the snapshot holds --rules-total rules.
  The snapshot's `security_group_rule_count`, the `snapshot_resources` row count and each group's
  `rule_count` are updated to match. The lake's files are otherwise written once and never rewritten; this
  fixture is the exception: it rewrites its own snapshot's Parquet files in the lake (the
  `security_group_rules`, `snapshots`, `snapshot_resources` and `security_groups` partitions of that
  snapshot id), read into an in-memory DuckDB, changed there, and each written to a temporary file in
  its partition folder that then replaces the original (os.replace), so a reader never sees half a file.
  The copies keep their original direction,
  protocol, ports and remote, so the mix of rule kinds is the generator's; but no real cloud looks like
  this (~90 rules per group at 100,000 servers, most groups get a rule open to the world, and a default
  group's "remote = itself" rules copied into other groups point at the original group). The groups' `raw`
  JSON (which does not list rules) is not touched.

What is measured: `auditor evaluate --snapshot ID` in a subprocess (Python start, imports, loading the rule
catalog, preparing the rule environment, every rule, waivers and diff, writing the evaluation's Parquet
files into the lake): wall time and peak RSS. Each rule's own time (`evaluation_rules.seconds`: its query,
the checks of its rows and copying them into the results) and the evaluation's `started_at`/`finished_at`
(everything but writing) are then read through the catalog. Evaluations stored earlier in the benchmark
lake are pruned before each run (`remove_committed`), so that every run starts from the same lake; the
evaluations of one snapshot have no diff base, so every run is a first evaluation.

With --keep DIR the snapshot database (the catalog and its lake) is kept in DIR and reused by later runs
with the same --servers (the top-up is redone only when --rules-total changed).

Run: .venv/bin/python bench/rules.py [--servers 100000] [--rules-total 1000000] [--keep DIR] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot import MEASURED_RUN, run_snapshot, start_fake_cloud  # noqa: E402  (bench/snapshot.py)

from auditor.sqltext import sql_ident, sql_literal  # noqa: E402
from auditor.store.database import lake_path, open_reader  # noqa: E402
from auditor.store.lake import committed_ids, partition_file, remove_committed  # noqa: E402
from auditor.store.tables import SANDBOX_CONFIG, file_columns, relation_sql, schema_sql  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_RSS_MB = 2048
SIZES = ("servers", "ports", "security_group_rules", "security_groups", "images")


# -- the snapshot -----------------------------------------------------------------------------------------
def build_snapshot(servers: int, folder: Path) -> Path:
    """A snapshot of a generated cloud of `servers` servers in folder (reused when already there)."""
    database = folder / f"rules-bench-{servers}.duckdb"
    if database.is_file() and lake_path(database).is_dir():
        print(f"# reusing {database}", file=sys.stderr)
        return database
    database.unlink(missing_ok=True)
    started = time.monotonic()
    proc, clouds, _ = start_fake_cloud(servers, folder)
    try:
        snap = run_snapshot(clouds, database)
    finally:
        proc.terminate()
        proc.wait()
    print(f"# snapshot of {servers:,} servers: {snap['wall']:.1f} s ({time.monotonic() - started:.1f} s with the "
          f"fake cloud's start), peak RSS {snap['maxrss_mb']:,.0f} MB", file=sys.stderr)
    return database


def latest_snapshot_id(database: Path) -> int:
    con = open_reader(database)
    try:
        rows = con.execute("SELECT id FROM snapshots WHERE status <> 'failed' "
                           "ORDER BY started_at DESC, id DESC LIMIT 1").fetchall()
    finally:
        con.close()
    if not rows:
        raise SystemExit(f"{database}: no usable snapshot")
    return rows[0][0]


TOP_UP = """
INSERT INTO security_group_rules BY NAME
WITH originals AS (
    SELECT *, row_number() OVER (ORDER BY id) - 1 AS n
    FROM security_group_rules WHERE snapshot_id = $sid AND id NOT LIKE '%-copy%'
),
groups AS (
    SELECT id AS group_id, project_id AS group_project, row_number() OVER (ORDER BY id) - 1 AS gi
    FROM security_groups WHERE snapshot_id = $sid
),
copies AS (
    SELECT o.* EXCLUDE (n), k, (k - 1) * $originals + o.n AS c
    FROM originals o, range(1, $rounds + 1) AS t(k)
    WHERE (k - 1) * $originals + o.n < $missing
)
SELECT c.* EXCLUDE (id, security_group_id, project_id, raw, k, c),
       c.id || '-copy' || c.k AS id,
       g.group_id AS security_group_id,
       g.group_project AS project_id,
       json_merge_patch(c.raw, json_object('id', c.id || '-copy' || c.k, 'security_group_id', g.group_id,
                                           'project_id', g.group_project, 'tenant_id', g.group_project)) AS raw
FROM copies c JOIN groups g ON g.gi = c.c % $groups
"""


REWRITTEN = ("security_group_rules", "snapshot_resources", "security_groups", "snapshots")


def top_up_rules(database: Path, snapshot_id: int, total: int) -> None:
    """Bring the snapshot to `total` security-group rules with copies of its own (see the docstring): its
    own Parquet files in the lake are read into an in-memory DuckDB, changed there and written back."""
    lake = lake_path(database)
    paths = {table: partition_file(lake, table, snapshot_id) for table in REWRITTEN}
    missing_files = [str(path) for path in paths.values() if not path.is_file()]
    if missing_files:
        raise SystemExit(f"{database}: snapshot {snapshot_id} has no {', '.join(missing_files)}")
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(schema_sql())
        for table, path in paths.items():
            con.execute(f"INSERT INTO {sql_ident(table)} BY NAME {relation_sql(table, [str(path)])}")
        count, originals = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE id NOT LIKE '%-copy%') FROM security_group_rules "
            "WHERE snapshot_id = ?", [snapshot_id]).fetchall()[0]
        if count == total or (count == originals and count >= total):
            return
        started = time.monotonic()
        con.execute("DELETE FROM security_group_rules WHERE snapshot_id = ? AND id LIKE '%-copy%'", [snapshot_id])
        missing = max(0, total - originals)
        if missing:
            groups = con.execute("SELECT count(*) FROM security_groups WHERE snapshot_id = ?",
                                 [snapshot_id]).fetchall()[0][0]
            con.execute(TOP_UP, {"sid": snapshot_id, "originals": originals, "groups": groups,
                                 "rounds": -(-missing // originals), "missing": missing})
        count = con.execute("SELECT count(*) FROM security_group_rules WHERE snapshot_id = ?",
                            [snapshot_id]).fetchall()[0][0]
        con.execute("UPDATE snapshots SET security_group_rule_count = ? WHERE id = ?", [count, snapshot_id])
        con.execute("UPDATE snapshot_resources SET row_count = ? WHERE snapshot_id = ? "
                    "AND resource_type = 'security_group_rules'", [count, snapshot_id])
        con.execute("""
            UPDATE security_groups g SET rule_count = r.n
            FROM (SELECT security_group_id, count(*) AS n FROM security_group_rules
                  WHERE snapshot_id = $sid GROUP BY ALL) r
            WHERE g.snapshot_id = $sid AND g.id = r.security_group_id""", {"sid": snapshot_id})
        for table, path in paths.items():  # each file replaced whole; the manifest (`snapshots`) last
            columns = ", ".join(sql_ident(name) for name, _ in file_columns(table))
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                con.execute(f"COPY (SELECT {columns} FROM {sql_ident(table)}) TO {sql_literal(str(tmp))} "
                            f"(FORMAT parquet, COMPRESSION zstd)")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        con.close()
    print(f"# topped up to {count:,} security-group rules ({originals:,} collected) in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)


def clear_evaluations(database: Path) -> None:
    """Prune every committed evaluation so that every measured run starts from the same lake."""
    lake = lake_path(database)
    for evaluation_id in sorted(committed_ids(lake, "evaluation")):
        remove_committed(lake, "evaluation", evaluation_id)


def snapshot_sizes(database: Path, snapshot_id: int) -> dict[str, int]:
    con = open_reader(database)
    try:
        return {table: con.execute(f"SELECT count(*) FROM {table} WHERE snapshot_id = ?", [snapshot_id])
                .fetchall()[0][0] for table in SIZES}
    finally:
        con.close()


# -- the measured evaluation ------------------------------------------------------------------------------
def run_evaluation(database: Path, snapshot_id: int) -> dict:
    config = database.with_name(f"{database.stem}.evaluate.toml")
    config.write_text(f'database = "{database.name}"\n')
    load = os.getloadavg()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", MEASURED_RUN, "--config", str(config), "--database", str(database),
                           "evaluate", "--snapshot", str(snapshot_id)],
                          capture_output=True, text=True, cwd=database.parent)
    wall = time.monotonic() - started
    match = re.search(r"^evaluation (\d+) of snapshot .*$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not match:
        raise SystemExit(f"auditor evaluate failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    maxrss = int(re.search(r"maxrss_kb (\d+)", done.stderr).group(1))
    evaluation_id = int(match.group(1))
    con = open_reader(database)
    try:
        started_at, finished_at = con.execute("SELECT started_at, finished_at FROM evaluations WHERE id = ?",
                                              [evaluation_id]).fetchall()[0]
        rules = con.execute(
            "SELECT rule_id, resource_type, seconds, outcome, pass_count + fail_count + skip_count + info_count, "
            "fail_count, message FROM evaluation_rules WHERE evaluation_id = ?", [evaluation_id]).fetchall()
    finally:
        con.close()
    notes = [line for line in done.stderr.splitlines() if not line.startswith("maxrss_kb")]
    return {
        "wall": wall, "load": load, "maxrss_mb": maxrss / 1024, "summary": match.group(0), "notes": notes,
        "evaluation_s": (finished_at - started_at).total_seconds(),
        "rules": {r[0]: {"resource": r[1], "seconds": r[2], "outcome": r[3], "rows": r[4], "fail": r[5],
                         "message": r[6]} for r in rules},
    }


# -- the report -------------------------------------------------------------------------------------------
def machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return (f"{platform.platform()}, {platform.machine()}, {cores} cores ({usable} usable), {ram:.1f} GiB RAM, "
            f"Python {platform.python_version()}, duckdb {duckdb.__version__}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(runs: list[dict], sizes: dict[str, int], snapshot_id: int) -> None:
    many = len(runs) > 1
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: {machine()}")
    print(f"# load average before the runs: {' '.join(f'{x:.2f}' for x in runs[0]['load'])} (1, 5, 15 min): "
          f"other work on the machine slows the rules down")
    print(f"# snapshot {snapshot_id}: " + ", ".join(f"{sizes[t]:,} {t}" for t in SIZES))
    print(f"# {len(runs)} evaluation run{'s' if many else ''}" + ("; seconds are the median, best in brackets"
                                                                   if many else ""))
    print()
    header = ("rule", "resource", "seconds", "outcome", "rows", "fail")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    last = runs[-1]["rules"]  # rule files may change between runs; report the rules of the last one
    times = {rule: [run["rules"][rule]["seconds"] for run in runs if rule in run["rules"]] for rule in last}
    for rule in sorted(last, key=lambda r: (-median(times[r]), r)):
        row = last[rule]
        seconds = f"{median(times[rule]):.3f}" + (f" ({min(times[rule]):.3f})" if many else "")
        print(" | ".join([rule, row["resource"], seconds, row["outcome"], f"{row['rows']:,}", f"{row['fail']:,}"]))
    print()

    sums = [sum(r["seconds"] for r in run["rules"].values()) for run in runs]
    evaluations = [run["evaluation_s"] for run in runs]
    walls = [run["wall"] for run in runs]
    rss = [run["maxrss_mb"] for run in runs]

    def cell(values: list[float], fmt: str) -> str:
        return fmt.format(median(values)) + (f" ({fmt.format(min(values))})" if many else "")

    header = ("total", "measured", "target", "verdict")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    verdict = "PASS" if median(sums) < TARGET_SECONDS else "MISS"
    print(f"sum of rule seconds ({len(last)} rules) | {cell(sums, '{:.2f} s')} | < {TARGET_SECONDS:g} s | "
          f"{verdict}")
    print(f"evaluation, started_at to finished_at (prepare, rules, waivers, diff) | {cell(evaluations, '{:.2f} s')} "
          f"| - | -")
    outside = [e - s for e, s in zip(evaluations, sums, strict=True)]
    print(f"  of which outside the rules (helper tables and views, waivers, diff) | {cell(outside, '{:.2f} s')} "
          f"| - | -")
    print(f"`auditor evaluate` wall, end to end (start, catalog, evaluation, writing its Parquet files) | "
          f"{cell(walls, '{:.2f} s')} | - | -")
    verdict = "PASS" if max(rss) < TARGET_RSS_MB else "MISS"
    print(f"peak RSS of `auditor evaluate`{' (worst run)' if many else ''} | {max(rss):,.0f} MB | "
          f"< {TARGET_RSS_MB:,} MB | {verdict}")

    problems = [(rule, r["outcome"], r["message"]) for rule, r in last.items() if r["outcome"] != "ran"]
    for rule, outcome, message in problems:
        print(f"\n# {rule}: {outcome}: {message}")
    print(f"\n# {runs[-1]['summary']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=100_000, help="servers of the generated cloud")
    parser.add_argument("--rules-total", type=int, default=1_000_000,
                        help="security-group rules in the snapshot after the top-up")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the snapshot database (catalog and lake) in DIR, and reuse the one found there")
    parser.add_argument("--repeat", type=int, default=1, metavar="K",
                        help="run the evaluation K times; report the median and the best")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="auditor-bench-rules-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        database = build_snapshot(args.servers, folder.resolve())
        snapshot_id = latest_snapshot_id(database)
        top_up_rules(database, snapshot_id, args.rules_total)
        sizes = snapshot_sizes(database, snapshot_id)
        runs = []
        for _ in range(args.repeat):
            clear_evaluations(database)
            runs.append(run_evaluation(database, snapshot_id))
            print(f"# run {len(runs)}: {runs[-1]['wall']:.2f} s wall", file=sys.stderr)
        for note in runs[-1]["notes"]:
            print(f"# {note}", file=sys.stderr)
        report(runs, sizes, snapshot_id)


if __name__ == "__main__":
    main()
