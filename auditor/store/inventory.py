"""The instances of a snapshot as an auditor lists them: `auditor inventory`, and inventory.csv beside each
report. One query, so both say the same thing.

A server's `instance_type` comes from `server_instance_types`: the approved mapping stored with its snapshot's
newest evaluation. `image_state` says what `image` (the image's name) means: `listed`; `gone` (the images
listing of that snapshot was whole and the image is not in it); `unknown` (that listing was partial or
failed: the image may exist; or Nova named no image); `volume` (the server boots from a volume and has no
image).
`first_seen` is the start of the oldest snapshot of the same cloud and region, up to this one, that
held the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auditor.errors import QueryError
from auditor.store.database import open_reader

COLUMNS = ("cloud", "region", "project", "project_id", "id", "name", "status", "instance_type", "flavor", "vcpus",
           "ram_mb", "disk_gb", "image", "image_id", "image_state", "availability_zone", "host", "security_groups",
           "fixed_addresses", "floating_addresses", "created_at", "first_seen", "snapshot_id")
# What a person reads on a terminal: the columns the auditors asked for, in their order.
TABLE_COLUMNS = ("cloud", "region", "project", "name", "status", "instance_type", "flavor", "image",
                 "availability_zone", "security_groups", "fixed_addresses", "floating_addresses", "first_seen")
BY = ("instance_type", "zone", "image", "project")

# $ids: the snapshots to list. Every filter is a bound parameter.
_MAPPING = """
mapping AS (  -- the evaluation behind each snapshot's instance types, and whether it had a mapping at all
    SELECT j.snapshot_id, j.evaluation_id,
           EXISTS (SELECT 1 FROM evaluation_instance_types m WHERE m.evaluation_id = j.evaluation_id) AS has_mapping
    FROM (SELECT snapshot_id, max(id) AS evaluation_id FROM evaluations
          WHERE list_contains($ids, snapshot_id) GROUP BY snapshot_id) j
)"""
_SQL = """
WITH target AS (
    SELECT id, cloud, region, started_at FROM snapshots WHERE list_contains($ids, id)
),""" + _MAPPING + """,
seen AS (
    SELECT t.id AS snapshot_id, s.id AS server_id, min(h.started_at) AS first_seen
    FROM target t
    JOIN snapshots h ON h.cloud = t.cloud AND h.region = t.region AND h.started_at <= t.started_at
    JOIN servers s ON s.snapshot_id = h.id
    WHERE s.id IN (SELECT id FROM servers WHERE list_contains($ids, snapshot_id))
    GROUP BY ALL
),
groups AS (
    SELECT x.snapshot_id, x.server_id, list_sort(list(DISTINCT coalesce(g.name, x.security_group_id))) AS names
    FROM server_security_groups x
    LEFT JOIN security_groups g ON g.snapshot_id = x.snapshot_id AND g.id = x.security_group_id
    WHERE list_contains($ids, x.snapshot_id)
    GROUP BY ALL
),
floating AS (
    SELECT snapshot_id, server_id, list(floating_ip_address) AS addresses
    FROM floating_ips WHERE list_contains($ids, snapshot_id) AND server_id IS NOT NULL GROUP BY ALL
),
rows AS (
    SELECT t.cloud, t.region, coalesce(p.name, s.project_id) AS project, s.project_id, s.id, s.name, s.status,
           it.instance_type,
           CASE WHEN it.instance_type IS NOT NULL THEN 'mapped' WHEN m.evaluation_id IS NULL THEN 'not evaluated'
                WHEN NOT m.has_mapping THEN 'no mapping' ELSE 'unmapped' END AS type_state,
           s.flavor_name AS flavor, s.flavor_vcpus AS vcpus, s.flavor_ram_mb AS ram_mb, s.flavor_disk_gb AS disk_gb,
           i.name AS image, s.image_id,
           CASE WHEN s.image_id IS NULL AND s.boot_from_volume THEN 'volume'
                WHEN s.image_id IS NULL THEN 'unknown'  -- Nova said nothing of it (a down cell's record)
                WHEN i.id IS NOT NULL THEN 'listed'
                WHEN r.status = 'complete' THEN 'gone'
                ELSE 'unknown' END AS image_state,
           s.availability_zone, s.host,
           coalesce(g.names, list_sort(s.security_group_names), []) AS security_groups,
           list_sort(list_distinct(list_transform(
               list_filter(CAST(json_extract(s.addresses, '$.*[*]') AS JSON[]),
                           lambda a: coalesce(a ->> 'OS-EXT-IPS:type', 'fixed') = 'fixed'),
               lambda a: a ->> 'addr'))) AS fixed_addresses,
           list_sort(list_distinct(list_concat(
               list_transform(list_filter(CAST(json_extract(s.addresses, '$.*[*]') AS JSON[]),
                                          lambda a: a ->> 'OS-EXT-IPS:type' = 'floating'), lambda a: a ->> 'addr'),
               coalesce(f.addresses, [])))) AS floating_addresses,
           s.created_at, seen.first_seen, s.snapshot_id
    FROM servers s
    JOIN target t ON t.id = s.snapshot_id
    LEFT JOIN projects p ON p.snapshot_id = s.snapshot_id AND p.id = s.project_id
    LEFT JOIN server_instance_types it ON it.snapshot_id = s.snapshot_id AND it.server_id = s.id
    LEFT JOIN mapping m ON m.snapshot_id = s.snapshot_id
    LEFT JOIN images i ON i.snapshot_id = s.snapshot_id AND i.id = s.image_id
    LEFT JOIN snapshot_resources r ON r.snapshot_id = s.snapshot_id AND r.resource_type = 'images'
    LEFT JOIN groups g ON g.snapshot_id = s.snapshot_id AND g.server_id = s.id
    LEFT JOIN floating f ON f.snapshot_id = s.snapshot_id AND f.server_id = s.id
    LEFT JOIN seen ON seen.snapshot_id = s.snapshot_id AND seen.server_id = s.id
    WHERE list_contains($ids, s.snapshot_id)
)
SELECT * FROM rows
WHERE ($project IS NULL OR project_id = $project OR project = $project)
  AND ($zone IS NULL OR availability_zone = $zone)
  AND ($instance_type IS NULL OR instance_type = $instance_type)
  AND (NOT $unmapped OR type_state = 'unmapped')
"""
_ORDER = " ORDER BY cloud, region, project, name, id"

# --by: what each row is counted under; the markers in parentheses cannot be mistaken for a name as the
# table shows them, and JSON readers get the same text.
_BY_LABEL = {
    "instance_type": "coalesce(instance_type, '(' || type_state || ')')",
    "zone": "coalesce(availability_zone, '(none)')",
    "image": "CASE WHEN image_state = 'listed' THEN coalesce(image, image_id) ELSE '(' || image_state || ')' END",
    "project": "project",
}


@dataclass(frozen=True)
class InventoryFilter:
    snapshot: str = "latest"  # 'latest' (the newest complete snapshot of each cloud/region) or an id
    cloud: str | None = None
    project: str | None = None  # id or name
    zone: str | None = None
    instance_type: str | None = None
    unmapped: bool = False
    limit: int | None = None


def _snapshot_ids(con, flt: InventoryFilter) -> list[int]:
    if str(flt.snapshot) == "latest":
        rows = con.execute("SELECT id FROM latest_snapshots WHERE $cloud IS NULL OR cloud = $cloud ORDER BY cloud, region",
                           {"cloud": flt.cloud}).fetchall()
        if not rows:
            raise QueryError("no complete snapshot yet" + (f" of cloud {flt.cloud!r}" if flt.cloud else "")
                             + " (run `auditor snapshot`, or pass --snapshot ID for a partial one)")
        return [r[0] for r in rows]
    try:
        snapshot_id = int(flt.snapshot)
    except ValueError:
        raise QueryError(f"--snapshot must be a snapshot id or 'latest', got {flt.snapshot!r}") from None
    if not con.execute("SELECT 1 FROM snapshots WHERE id = ?", [snapshot_id]).fetchall():
        raise QueryError(f"no snapshot with id {snapshot_id} (see `auditor snapshots`)")
    return [snapshot_id]


def _check_types_known(con, ids: list[int], flt: InventoryFilter) -> None:
    """Filtering on instance types needs them: refuse a snapshot whose types are unknown instead of
    listing every server as unmapped (or none as matching)."""
    if not (flt.unmapped or flt.instance_type):
        return
    for snapshot_id, evaluation_id, has_mapping in con.execute(f"""
            WITH {_MAPPING}
            SELECT t.id, m.evaluation_id, m.has_mapping
            FROM (SELECT unnest($ids) AS id) t LEFT JOIN mapping m ON m.snapshot_id = t.id
            ORDER BY t.id""", {"ids": ids}).fetchall():
        if evaluation_id is None:
            raise QueryError(f"snapshot {snapshot_id} has not been evaluated, so its servers have no instance type "
                             f"yet (run `auditor evaluate --snapshot {snapshot_id}`)")
        if not has_mapping:
            raise QueryError(f"snapshot {snapshot_id} was evaluated (evaluation {evaluation_id}) without an "
                             "instance-type mapping ([rules].instance_types), so its servers have no instance type")


def _params(ids: list[int], flt: InventoryFilter) -> dict:
    return {"ids": ids, "project": flt.project, "zone": flt.zone, "instance_type": flt.instance_type,
            "unmapped": flt.unmapped}


def list_inventory(database: Path, flt: InventoryFilter) -> tuple[list[str], list[tuple]]:
    """One row per server of the chosen snapshots, COLUMNS in order; table_rows() makes them readable."""
    con = open_reader(database)
    try:
        ids = _snapshot_ids(con, flt)
        _check_types_known(con, ids, flt)
        select = ", ".join(COLUMNS) + ", type_state"
        limit = f" LIMIT {int(flt.limit)}" if flt.limit else ""
        cursor = con.execute(f"SELECT {select} FROM ({_SQL}){_ORDER}{limit}", _params(ids, flt))
        return list(COLUMNS) + ["type_state"], cursor.fetchall()
    finally:
        con.close()


LIST_COLUMNS = ("security_groups", "fixed_addresses", "floating_addresses")


def for_export(columns: list[str], rows: list[tuple], join_lists: bool = False) -> tuple[list[str], list[tuple]]:
    """COLUMNS only (csv, json); `join_lists` (csv): lists as text, separated by spaces."""
    keep = [columns.index(c) for c in COLUMNS]
    joined = {columns.index(c) for c in LIST_COLUMNS} if join_lists else set()
    return list(COLUMNS), [tuple(" ".join(row[i] or ()) if i in joined else row[i] for i in keep) for row in rows]


def export_query(snapshot_id: int) -> tuple[str, dict]:
    """inventory.csv's query and parameters: every server of one snapshot, COLUMNS with lists as text."""
    select = ", ".join(f"array_to_string({c}, ' ') AS {c}" if c in LIST_COLUMNS else c for c in COLUMNS)
    return f"SELECT {select} FROM ({_SQL}){_ORDER}", _params([int(snapshot_id)], InventoryFilter())


def for_table(columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
    """TABLE_COLUMNS, with an empty instance type or image saying why, and lists as text."""
    shown = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        if values["instance_type"] is None:
            values["instance_type"] = f"({values['type_state']})"
        if values["image_state"] != "listed":
            values["image"] = f"({values['image_state']})"
        elif values["image"] is None:
            values["image"] = values["image_id"]
        for key in LIST_COLUMNS:
            values[key] = " ".join(values[key] or ())
        shown.append(tuple(values[c] for c in TABLE_COLUMNS))
    return list(TABLE_COLUMNS), shown


def count_inventory(database: Path, flt: InventoryFilter, by: str) -> tuple[list[str], list[tuple]]:
    """Servers per instance type, zone, image or project (after the filters), per cloud and region."""
    if by not in BY:
        raise QueryError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    con = open_reader(database)
    try:
        ids = _snapshot_ids(con, flt)
        _check_types_known(con, ids, flt)
        cursor = con.execute(f"""
            SELECT cloud, region, {_BY_LABEL[by]} AS {by}, count(*) AS servers FROM ({_SQL})
            GROUP BY ALL ORDER BY cloud, region, servers DESC, {by}
            LIMIT {int(flt.limit) if flt.limit else 2**62}""", _params(ids, flt))
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()
