"""The documented tables as the lake holds them: which id partitions each, and which columns its files carry.

`schema.sql` defines every table's columns, types and order (docs/schema.md documents them). In the lake
(auditor/store/lake.py) a snapshot table is partitioned by `snapshot_id` and an evaluation table by
`evaluation_id`, Hive style (`servers/snapshot_id=42/part-0.parquet`). The partition column lives in the
path only, never inside the files, as Hive, Spark and Trino expect; a manifest table (`snapshots`,
`evaluations`) takes its `id` from the path in the same way.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import duckdb

from auditor.sqltext import sql_ident, sql_literal

SNAPSHOT, EVALUATION = "snapshot", "evaluation"
PARTITION_KEY = {SNAPSHOT: "snapshot_id", EVALUATION: "evaluation_id"}
MANIFEST = {SNAPSHOT: "snapshots", EVALUATION: "evaluations"}  # written last: its file commits the write

RESOURCE_TABLES = (
    "projects", "servers", "flavors", "availability_zones", "server_groups", "images", "image_members",
    "security_groups",
    "security_group_rules", "ports", "server_security_groups", "floating_ips", "networks", "subnets", "routers",
    "address_groups", "users", "roles", "role_assignments", "application_credentials", "volumes",
    "volume_snapshots", "volume_backups", "volume_types", "volume_type_encryption", "volume_type_access",
    "containers",
)
SNAPSHOT_TABLES = ("snapshots", "snapshot_resources", "collection_errors") + RESOURCE_TABLES
EVALUATION_TABLES = ("evaluations", "evaluation_rules", "findings", "resolved_findings", "evaluation_waivers",
                     "evaluation_instance_types")
KIND_OF = {**{t: SNAPSHOT for t in SNAPSHOT_TABLES}, **{t: EVALUATION for t in EVALUATION_TABLES}}
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"  # every file of the lake
SANDBOX_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def schema_sql() -> str:
    return files("auditor.store").joinpath("schema.sql").read_text(encoding="utf-8")


@cache
def table_columns() -> dict[str, tuple[tuple[str, str], ...]]:
    """Each documented table's (column, DuckDB type), in order, as schema.sql defines them."""
    con = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        con.execute(schema_sql())
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name IN (SELECT table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE') ORDER BY table_name, ordinal_position").fetchall():
            columns.setdefault(table, []).append((column, kind))
        return {table: tuple(cols) for table, cols in columns.items()}
    finally:
        con.close()


def path_column(table: str) -> tuple[str, str]:
    """(the table's column that the partition path gives, the partition key in the path)."""
    kind = KIND_OF[table]
    key = PARTITION_KEY[kind]
    return ("id" if table == MANIFEST[kind] else key), key


def file_columns(table: str) -> list[tuple[str, str]]:
    """The columns a table's Parquet files hold, in order: all but the one its path gives."""
    from_path, _key = path_column(table)
    return [(name, kind) for name, kind in table_columns()[table] if name != from_path]


def relation_sql(table: str, paths: list[str]) -> str:
    """A SELECT of `table`'s documented columns, in order, from Parquet files or globs under its folder
    (`<lake>/<table>/<key>=<id>/...`). `union_by_name`: files written before a column was added read it as NULL."""
    from_path, key = path_column(table)
    select = ", ".join(f"{sql_ident(key)} AS {sql_ident(name)}" if name == from_path else sql_ident(name)
                       for name, _kind in table_columns()[table])
    source = "[" + ", ".join(sql_literal(p) for p in paths) + "]"
    return (f"SELECT {select} FROM read_parquet({source}, hive_partitioning = true, union_by_name = true, "
            f"hive_types = {{{sql_literal(key)}: 'BIGINT'}})")


_LATEST_SQL = """
-- The newest complete snapshot of each cloud and region.
CREATE OR REPLACE VIEW latest_snapshots AS
SELECT * FROM snapshots
WHERE status = 'complete'
QUALIFY row_number() OVER (PARTITION BY cloud, region ORDER BY started_at DESC, id DESC) = 1;

-- The newest evaluation of the newest evaluated snapshot of each cloud and region (partial snapshots
-- included: their rows whose data is missing are 'skip').
CREATE OR REPLACE VIEW latest_evaluations AS
SELECT e.* FROM evaluations e JOIN snapshots s ON s.id = e.snapshot_id
QUALIFY row_number() OVER (PARTITION BY e.cloud, e.region ORDER BY s.started_at DESC, s.id DESC, e.id DESC) = 1;

CREATE OR REPLACE VIEW latest_findings AS
SELECT f.* FROM findings f WHERE f.evaluation_id IN (SELECT id FROM latest_evaluations);

-- Every server with its normalized instance type, by the approved mapping of its snapshot's newest
-- evaluation: the flavor's name first, then its shape (the first type by name when several match), as
-- the rule server_flavor_mapped_to_instance_type matches. NULL when unmapped, deleted, not evaluated, or
-- when that evaluation had no mapping (it then stored no evaluation_instance_types rows).
CREATE OR REPLACE VIEW server_instance_types AS
WITH judged_by AS (
    SELECT snapshot_id, max(id) AS evaluation_id FROM evaluations GROUP BY snapshot_id
),
mapping AS (  -- only the evaluations that judge a snapshot now: the others' files are not read
    SELECT * FROM evaluation_instance_types WHERE evaluation_id IN (SELECT evaluation_id FROM judged_by)
),
by_name AS (
    SELECT evaluation_id, flavor_name, min(name) AS instance_type
    FROM (SELECT evaluation_id, name, unnest(flavor_names) AS flavor_name FROM mapping)
    GROUP BY ALL
),
by_shape AS (
    SELECT evaluation_id, vcpus, ram_mb, disk_gb, min(name) AS instance_type FROM mapping GROUP BY ALL
)
SELECT s.snapshot_id, j.evaluation_id, s.id AS server_id, s.name AS server_name, s.project_id,
       s.flavor_id, s.flavor_name, s.flavor_vcpus AS vcpus, s.flavor_ram_mb AS ram_mb, s.flavor_disk_gb AS disk_gb,
       coalesce(n.instance_type, m.instance_type) AS instance_type,
       CASE WHEN n.instance_type IS NOT NULL THEN 'name' WHEN m.instance_type IS NOT NULL THEN 'shape' END AS mapped_by
FROM servers s
LEFT JOIN judged_by j ON j.snapshot_id = s.snapshot_id
LEFT JOIN by_name n ON n.evaluation_id = j.evaluation_id AND n.flavor_name = s.flavor_name
LEFT JOIN by_shape m ON m.evaluation_id = j.evaluation_id AND m.vcpus = s.flavor_vcpus
                    AND m.ram_mb = s.flavor_ram_mb AND m.disk_gb = s.flavor_disk_gb;

-- The servers of the snapshots latest_findings judges, with their instance types.
CREATE OR REPLACE VIEW latest_server_instance_types AS
SELECT * FROM server_instance_types WHERE evaluation_id IN (SELECT id FROM latest_evaluations);
"""


def latest_views_sql() -> str:
    """The documented `latest_*` views, over the tables (or views) of the same names."""
    return _LATEST_SQL + "\n".join(
        f"CREATE OR REPLACE VIEW latest_{table} AS SELECT t.* FROM {table} t "
        f"WHERE t.snapshot_id IN (SELECT id FROM latest_snapshots);"
        for table in ("snapshot_resources",) + RESOURCE_TABLES)
