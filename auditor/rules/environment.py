"""What a rule's SQL sees: one snapshot's tables under their usual names, the instance-type mapping, and a
few helpers that several rules need (documented in docs/rules.md, which a test checks against this file).

Everything is created in DuckDB's `temp` catalog, which shadows the database's own tables, so a rule
written as `from servers` reads the servers of the snapshot being judged and nothing else. The database
connection itself stays read-only.
"""

from __future__ import annotations

from pathlib import Path

from auditor.rules.catalog import InstanceType
from auditor.store.helpers import helpers_sql
from auditor.store.lake import partition_file, schema_file
from auditor.store.tables import RESOURCE_TABLES, relation_sql

# Tables of one snapshot, by the name rules use.
SNAPSHOT_TABLES = RESOURCE_TABLES + ("snapshot_resources", "collection_errors")

# Not a listing: the address groups that security group rules name as their remote (engine.InputState),
# missing only when some rule names one.
REMOTE_ADDRESS_GROUPS = "remote_address_groups"

# Helper or derived table -> the resource listings it is built from, so that a rule using it is judged
# incomplete when one of those listings is (server_security_groups is derived from ports, not listed).
# Any other table needs its own listing.
HELPER_INPUTS = {
    "world_ingress_rules": ("security_group_rules", REMOTE_ADDRESS_GROUPS),
    "server_public_addresses": ("servers", "ports", "floating_ips"),
    "server_security_groups": ("servers", "ports"),
}

# Macros and helper tables, created once per evaluation (the shared ones: auditor/store/helpers.py). Keep
# docs/rules.md in step.
HELPERS_SQL = helpers_sql(per_snapshot=True) + """
-- The approved mapping, ready to join: one instance type per flavor name and per shape (the first by name).
CREATE OR REPLACE TEMP TABLE instance_type_by_flavor_name AS
SELECT flavor_name, min(instance_type) AS instance_type FROM instance_type_flavors GROUP BY flavor_name;

CREATE OR REPLACE TEMP TABLE instance_type_by_shape AS
SELECT vcpus, ram_mb, disk_gb, min(name) AS instance_type FROM instance_types GROUP BY vcpus, ram_mb, disk_gb;

-- Nova sends some fields in every server listed at their microversion or later (tags from 2.26,
-- trusted_image_certificates from 2.63, null when unset), so this tells such a field not sent from an empty
-- one without parsing each server's raw JSON. Not so policy- or status-dependent fields, nor down cells.
CREATE OR REPLACE TEMP MACRO compute_api_at_least(major, minor) AS (
    SELECT CASE WHEN len(v) = 2 AND v[1] IS NOT NULL AND v[2] IS NOT NULL THEN v >= [major, minor] END
    FROM (SELECT try_cast(string_split(compute_microversion, '.') AS INTEGER[]) AS v FROM snapshot)
);
"""


def prepare(con, snapshot_id: int, instance_types: list[InstanceType], lake: Path | None = None) -> None:
    """Create the rule environment for `snapshot_id` on `con` (read-only or not). With `lake`, each table is
    read from the snapshot's own Parquet file, so a rule's cost does not grow with the history (a glob over
    every snapshot's folder would); without, from the tables or views of `con`'s database."""
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    source = '"' + catalog.replace('"', '""') + '".main'
    sid = int(snapshot_id)
    for table in SNAPSHOT_TABLES:
        relation = f"({own_partition(lake, table, sid)})" if lake else f"{source}.{table}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {relation} WHERE snapshot_id = {sid}")
    manifest = f"({own_partition(lake, 'snapshots', sid)})" if lake else f"{source}.snapshots"
    con.execute(f"CREATE OR REPLACE TEMP VIEW snapshot AS SELECT * FROM {manifest} WHERE id = {sid}")
    con.execute("CREATE OR REPLACE TEMP TABLE instance_types "
                "(name VARCHAR, description VARCHAR, vcpus INTEGER, ram_mb BIGINT, disk_gb BIGINT)")
    con.execute("CREATE OR REPLACE TEMP TABLE instance_type_flavors (instance_type VARCHAR, flavor_name VARCHAR)")
    if instance_types:
        con.executemany("INSERT INTO instance_types VALUES (?, ?, ?, ?, ?)",
                        [[t.name, t.description, t.vcpus, t.ram_mb, t.disk_gb] for t in instance_types])
        pairs = [[t.name, flavor] for t in instance_types for flavor in t.flavors]
        if pairs:
            con.executemany("INSERT INTO instance_type_flavors VALUES (?, ?)", pairs)
    con.execute(HELPERS_SQL)


def own_partition(lake: Path, table: str, item_id: int) -> str:
    """A SELECT of `table`'s rows of one snapshot or evaluation, from its own file in the lake, read with the
    table's schema file: a file written before a column was added reads it as NULL."""
    path = partition_file(lake, table, item_id)
    return relation_sql(table, [str(schema_file(lake, table))] + ([str(path)] if path.is_file() else []))


def inputs_of(table_names: set[str]) -> set[str]:
    """The resource listings a rule reads, from the table names its SQL references."""
    inputs = set()
    for name in table_names:
        name = name.split(".")[-1].lower()
        if name in HELPER_INPUTS:
            inputs.update(HELPER_INPUTS[name])
        elif name in RESOURCE_TABLES:
            inputs.add(name)
    return inputs
