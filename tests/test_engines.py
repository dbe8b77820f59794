"""The lake is theirs to read (docs/scale-out.md): Spark (PySpark in local mode) and pyarrow read the demo
cloud's lake directly, with no export step and no DuckDB, keep only committed snapshots, and find the same
failing security groups as auditor's own rule `security_group_admin_ports_not_open_to_world`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, write_clouds_yaml

from auditor.fakecloud import FakeCloud
from auditor.store.database import lake_path

RULE = "security_group_admin_ports_not_open_to_world"
ADMIN_PORTS = [22, 3389, 5985, 5986]  # the rule's default `admin_ports`
PORT_PROTOCOLS = ["tcp", "udp", "sctp", "dccp", "udplite"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory, demo_fixture) -> dict:
    """Two committed snapshots of the demo cloud, the newest evaluated; then, as a writer killed before its
    commit would leave it, a newer snapshot's rules and groups without a `snapshots` file: a group in it
    opens SSH to the world, which a reader that ignores the commit rule would report."""
    folder = tmp_path_factory.mktemp("engines")
    database = folder / "audit.duckdb"
    with FakeCloud(demo_fixture) as cloud:
        env = {"OS_CLIENT_CONFIG_FILE": str(write_clouds_yaml(folder / "clouds.yaml",
                                                              {"demo": cloud.clouds_yaml_entry()}))}
        for command in (["snapshot", "--cloud", "demo"], ["snapshot", "--cloud", "demo"], ["evaluate"]):
            done = run_cli("--database", str(database), *command, env=env)
            assert done.returncode == 0, done.stderr
    done = run_cli("--database", str(database), "findings", "--snapshot", "latest", "--rule", RULE,
                   "--format", "json")
    assert done.returncode == 0, done.stderr
    expected = {row["resource_id"] for row in json.loads(done.stdout)}
    root = lake_path(database)
    committed = sorted(int(p.name.split("=")[1]) for p in (root / "snapshots").glob("snapshot_id=*")
                       if (p / "part-0.parquet").is_file())
    uncommitted = committed[-1] + 1
    for table in ("security_groups", "security_group_rules"):
        source = root / table / f"snapshot_id={committed[-1]}" / "part-0.parquet"
        target = root / table / f"snapshot_id={uncommitted}"
        target.mkdir()
        shutil.copy(source, target / "part-0.parquet")
    rules = pq.read_table(target / "part-0.parquet")
    passing = sorted(set(rules.column("security_group_id").to_pylist()) - expected)[0]
    opened = rules.slice(0, 1).to_pylist()[0] | {
        "id": "uncommitted-rule", "security_group_id": passing, "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0",
        "remote_group_id": None, "remote_address_group_id": None}
    pq.write_table(pa.concat_tables([rules, pa.Table.from_pylist([opened], rules.schema)]),
                   target / "part-0.parquet")
    return {"root": root, "expected": expected, "committed": committed, "uncommitted": uncommitted}


def test_pyarrow_reads_the_lake_and_finds_what_the_rule_found(lake):
    root = lake["root"]
    snapshots = ds.dataset(root / "snapshots", format="parquet", partitioning="hive").to_table()
    complete = snapshots.filter(pc.equal(snapshots["status"], "complete"))
    newest = complete.sort_by([("started_at", "descending"), ("snapshot_id", "descending")])
    snapshot_id = newest["snapshot_id"][0].as_py()
    assert snapshot_id == lake["committed"][-1]  # not the uncommitted one beside it
    rules = ds.dataset(root / "security_group_rules", format="parquet", partitioning="hive").to_table(
        filter=(ds.field("snapshot_id") == snapshot_id) & (ds.field("direction") == "ingress")
        & ds.field("remote_group_id").is_null())
    groups = ds.dataset(root / "address_groups", format="parquet", partitioning="hive").to_table(
        columns=["id", "addresses"], filter=ds.field("snapshot_id") == snapshot_id)
    holding = {family: pa.array([g["id"] for g in groups.to_pylist() if everyone in g["addresses"]], pa.string())
               for family, everyone in (("IPv4", "0.0.0.0/0"), ("IPv6", "::/0"))}
    prefix = rules["remote_ip_prefix"]
    by_prefix = pc.and_(pc.is_null(rules["remote_address_group_id"]),
                        pc.or_kleene(pc.is_null(prefix), pc.ends_with(pc.fill_null(prefix, ""), "/0")))
    by_group = pc.or_(*[pc.and_(pc.equal(rules["ethertype"], family),
                                pc.is_in(rules["remote_address_group_id"], value_set=ids))
                        for family, ids in holding.items()])
    assert pc.any(by_group).as_py(), "the demo cloud opens SSH through an address group"
    rules = rules.filter(pc.or_(by_prefix, pc.fill_null(by_group, False)))
    protocol = pc.utf8_lower(pc.utf8_trim_whitespace(pc.fill_null(rules["protocol"], "")))
    for spelled, name in (("", "any"), ("0", "any"), ("6", "tcp"), ("17", "udp"), ("132", "sctp"), ("33", "dccp"),
                          ("136", "udplite")):
        protocol = pc.if_else(pc.equal(protocol, spelled), name, protocol)
    ported = pc.is_in(protocol, pa.array(["any", *PORT_PROTOCOLS]))
    low = pc.fill_null(rules["port_range_min"], 1)
    high = pc.fill_null(rules["port_range_max"], 65535)
    covers = None
    for port in ADMIN_PORTS:
        one = pc.and_(pc.less_equal(low, port), pc.greater_equal(high, port))
        covers = one if covers is None else pc.or_(covers, one)
    failing = rules.filter(pc.and_(ported, covers))
    assert set(failing.column("security_group_id").to_pylist()) == lake["expected"]
    assert set(failing.column("ethertype").to_pylist()) == {"IPv4", "IPv6"}  # the demo cloud opens both


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local Spark for the test session (it takes seconds to start); Java is Debian's, which `make test`
    installs when missing."""
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master("local[2]").appName("auditor-lake-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.memory", "512m").config("spark.sql.session.timeZone", "UTC")
               .config("spark.local.dir", str(tmp_path_factory.mktemp("spark")))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _documented_query() -> str:
    """The query docs/scale-out.md gives for Spark SQL and Trino: the test runs what readers paste."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "scale-out.md").read_text(encoding="utf-8")
    match = re.search(r"The query \(written to run unchanged on Trino\):\n\n```sql\n(.*?)```", text, re.S)
    assert match, "docs/scale-out.md lost its query"
    return match.group(1)


def test_spark_reads_the_lake_and_finds_what_the_rule_found(lake, spark):
    from pyspark.sql import functions as F

    for table in ("snapshots", "security_groups", "security_group_rules", "address_groups"):
        (spark.read.parquet(str(lake["root"] / table)).withColumn("snapshot_id", F.col("snapshot_id").cast("bigint"))
         .createOrReplaceTempView(table))
    assert spark.sql("SELECT max(snapshot_id) FROM security_group_rules").first()[0] == lake["uncommitted"]
    rows = spark.sql(_documented_query()).collect()
    assert {row.snapshot_id for row in rows} == {lake["committed"][-1]}
    assert {row.security_group_id for row in rows} == lake["expected"]
    assert {row.ethertype for row in rows} == {"IPv4", "IPv6"}
