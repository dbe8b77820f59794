"""What changed between two snapshots of one cloud and region, resource by resource, in SQL.

The catalog defines the table macro `changes(from_id, to_id)` and the view `latest_changes` (docs/schema.md);
`auditor changes` reads the macro. Every documented resource table is compared on its documented columns,
built from schema.sql, so a column added later is compared without touching this file. A row is keyed by
its id (or, for a table without one, by the fields that name it); `fields` maps each changed column to
`[old, new]` as JSON. Columns that change on their own and mean nothing to an auditor are not compared:
`updated_at`, `raw` (the API's record, whose documented fields are compared one by one), the
partition column, and the VOLATILE ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.errors import QueryError
from auditor.sqltext import sql_ident, sql_literal
from auditor.store.tables import RESOURCE_TABLES, table_columns

IGNORED = frozenset({"snapshot_id", "raw", "updated_at"})
# Usage counters and heartbeats, not configuration: a container's objects come and go all day, and each
# Nova service's `updated_at` inside a zone's `hosts` moves every few seconds (compute_hosts and
# compute_hosts_down say what an auditor needs of it).
VOLATILE = {"containers": frozenset({"object_count", "bytes_used", "last_modified"}),
            "availability_zones": frozenset({"hosts"})}
# (key, name, project) over a row alias `r`, for the tables whose columns do not say it plainly.
_SPECIAL = {
    "projects": ("r.id", "r.name", "r.id"),
    "availability_zones": ("r.name", "r.name", "NULL"),
    "server_security_groups": ("r.server_id || '/' || coalesce(r.port_id, '') || '/' || r.security_group_id",
                               "r.server_id", "NULL"),
    "volume_type_encryption": ("r.volume_type_id", "r.volume_type_id", "NULL"),
    "floating_ips": ("r.id", "r.floating_ip_address", "r.project_id"),
    "role_assignments": ("r.id", "r.role_name", "r.project_id"),
}
COLUMNS = ("resource_type", "resource_id", "resource_name", "project_id", "change", "fields")


def _identity(table: str) -> tuple[str, str, str]:
    if table in _SPECIAL:
        return _SPECIAL[table]
    names = {column for column, _kind in table_columns()[table]}
    return ("r.id", "r.name" if "name" in names else "r.id",
            "r.project_id" if "project_id" in names else "NULL")


# Lists and JSON values are compared regardless of the order the API listed their items or keys in (the
# same cloud lists a server's addresses or a port's groups in any order); a DNS server list is ordered.
_ORDERED = frozenset({("subnets", "dns_nameservers")})
# (keys read as map entries, never as paths: a tenant's metadata key may start with $ or /)
_CANONICAL_JSON = (
    "CASE json_type({c}) "
    "WHEN 'OBJECT' THEN list_sort(list_transform(map_entries(CAST({c} AS MAP(VARCHAR, JSON))), lambda e: "
    "to_json(e.key) || ':' || CASE json_type(e.value) "
    "WHEN 'ARRAY' THEN array_to_string(list_sort(CAST(e.value AS JSON[])::VARCHAR[]), ',') "
    "ELSE CAST(e.value AS VARCHAR) END)) "
    "WHEN 'ARRAY' THEN list_sort(CAST({c} AS JSON[])::VARCHAR[]) "
    "ELSE [CAST({c} AS VARCHAR)] END")
# The listings a table's rows come from: a table is compared only when they are complete in both snapshots.
_LISTINGS = {"server_security_groups": ("ports", "servers")}


def _changed(table: str, column: str, kind: str) -> str:
    old, new = f"o.{sql_ident(column)}", f"n.{sql_ident(column)}"
    differs = f"{old} IS DISTINCT FROM {new}"
    if (table, column) in _ORDERED:
        return differs
    if kind.endswith("[]"):
        return f"({differs} AND list_sort({old}) IS DISTINCT FROM list_sort({new}))"
    if kind == "JSON":
        return (f"({differs} AND {_CANONICAL_JSON.format(c=old)} IS DISTINCT FROM "
                f"{_CANONICAL_JSON.format(c=new)})")
    return differs


def _table_sql(table: str) -> str:
    """One table's added, removed and modified rows between the snapshots `from_id` and `to_id`."""
    key, name, project = _identity(table)
    skipped = IGNORED | VOLATILE.get(table, frozenset())
    compared = [(column, kind) for column, kind in table_columns()[table] if column not in skipped]
    entries = ", ".join(f"{{'k': {sql_literal(c)}, 'v': [to_json(o.{sql_ident(c)}), to_json(n.{sql_ident(c)})], "
                        f"'changed': {_changed(table, c, kind)}}}" for c, kind in compared)
    differs = " OR ".join(_changed(table, c, kind) for c, kind in compared)
    listings = _LISTINGS.get(table, (table,))
    complete = (f"(SELECT count(*) FROM snapshot_resources WHERE snapshot_id IN (from_id, to_id) AND status = 'complete' "
                f"AND resource_type IN ({', '.join(sql_literal(x) for x in listings)})) = {2 * len(listings)}")
    side = "SELECT {key} AS _key, {name} AS _name, {project} AS _project, r.* FROM {table} r WHERE r.snapshot_id = {id}"
    old = side.format(key=key, name=name, project=project, table=sql_ident(table), id="from_id")
    new = side.format(key=key, name=name, project=project, table=sql_ident(table), id="to_id")
    return f"""
    SELECT {sql_literal(table)} AS resource_type, coalesce(n._key, o._key) AS resource_id,
           coalesce(n._name, o._name) AS resource_name, coalesce(n._project, o._project) AS project_id,
           CASE WHEN o._key IS NULL THEN 'added' WHEN n._key IS NULL THEN 'removed' ELSE 'modified' END AS change,
           CASE WHEN o._key IS NOT NULL AND n._key IS NOT NULL
                THEN to_json(map_from_entries(list_transform(list_filter([{entries}], lambda e: e.changed),
                                                             lambda e: {{'k': e.k, 'v': e.v}})))
           END AS fields
    FROM ({old}) o FULL JOIN ({new}) n ON o._key = n._key
    WHERE ({complete}) AND (o._key IS NULL OR n._key IS NULL OR {differs})"""


def incomplete_tables(con, from_id: int, to_id: int) -> list[str]:
    """What changes() leaves out of a comparison: each table whose listing is not complete in both, and why."""
    rows = con.execute("""
        SELECT t.resource_type, i.snapshot_id, coalesce(r.status, 'not collected')
        FROM (SELECT unnest($types) AS resource_type) t
        CROSS JOIN (SELECT unnest([$from, $to]) AS snapshot_id) i
        LEFT JOIN snapshot_resources r ON r.snapshot_id = i.snapshot_id AND r.resource_type = t.resource_type
        WHERE r.status IS DISTINCT FROM 'complete' ORDER BY ALL""",
                       {"types": sorted({x for table in RESOURCE_TABLES for x in _LISTINGS.get(table, (table,))}),
                        "from": from_id, "to": to_id}).fetchall()
    notes = []
    for table in RESOURCE_TABLES:
        for resource_type, snapshot_id, status in rows:
            if resource_type in _LISTINGS.get(table, (table,)):
                notes.append(f"{table} not compared: the {resource_type} listing of snapshot {snapshot_id} is {status}")
                break
    return notes


def changes_sql() -> str:
    """The catalog's `changes(from_id, to_id)` macro and `latest_changes` view."""
    body = "\n    UNION ALL".join(_table_sql(table) for table in RESOURCE_TABLES)
    return f"""
-- What changed from snapshot from_id to snapshot to_id: one row per added, removed or modified resource.
CREATE OR REPLACE MACRO changes(from_id, to_id) AS TABLE {body};

-- What changed in each cloud and region from its complete snapshot (of the same scope) before latest_snapshots'
-- to that one.
CREATE OR REPLACE VIEW latest_changes AS
WITH pairs AS (
    SELECT l.cloud, l.region, l.id AS to_snapshot_id,
           (SELECT s.id FROM snapshots s
            WHERE s.cloud = l.cloud AND s.region = l.region AND s.scope = l.scope AND s.status = 'complete'
              AND (s.started_at, s.id) < (l.started_at, l.id)
            ORDER BY s.started_at DESC, s.id DESC LIMIT 1) AS from_snapshot_id
    FROM latest_snapshots l
)
SELECT p.cloud, p.region, p.from_snapshot_id, p.to_snapshot_id, c.*
FROM pairs p, changes(p.from_snapshot_id, p.to_snapshot_id) c
WHERE p.from_snapshot_id IS NOT NULL;
"""


@dataclass(frozen=True)
class ChangeRequest:
    from_id: int | None = None
    to_id: int | None = None
    cloud: str | None = None
    resource_type: str | None = None


def _pairs(con, request: ChangeRequest) -> tuple[list[tuple[int, int, str, str]], list[str]]:
    """(from, to, cloud, region) to compare: the two given, or for each cloud/region (or the one of --to)
    its newest complete snapshot (or --to) against the complete one before it; and, by default, a note for
    each cloud/region that has no snapshot before its newest (an error when none has)."""
    def snapshot(snapshot_id: int, option: str) -> tuple:
        rows = con.execute("SELECT id, cloud, region, started_at, status, scope FROM snapshots WHERE id = ?",
                           [snapshot_id]).fetchall()
        if not rows:
            raise QueryError(f"{option}: no snapshot with id {snapshot_id} (see `auditor snapshots`)")
        if rows[0][4] == "failed":
            raise QueryError(f"{option}: snapshot {snapshot_id} failed: it holds nothing to compare")
        return rows[0]

    def before(to: tuple) -> int | None:
        rows = con.execute("""
            SELECT id FROM snapshots
            WHERE cloud = ? AND region = ? AND scope = ? AND status = 'complete' AND (started_at, id) < (?, ?)
            ORDER BY started_at DESC, id DESC LIMIT 1""", [to[1], to[2], to[5], to[3], to[0]]).fetchall()
        return rows[0][0] if rows else None

    def first(to: tuple) -> str:
        return f"snapshot {to[0]} ({to[1]}/{to[2]}) has no complete {to[5]}-scope snapshot before it to compare with"

    if request.to_id is not None:
        to = snapshot(request.to_id, "--to")
        if request.from_id is None:
            base = before(to)
            if base is None:
                raise QueryError(first(to))
            return [(base, to[0], to[1], to[2])], []
        old = snapshot(request.from_id, "--from")
        if (old[1], old[2]) != (to[1], to[2]):
            raise QueryError(f"--from {old[0]} is of {old[1]}/{old[2]} and --to {to[0]} of {to[1]}/{to[2]}: "
                             "changes compares two snapshots of the same cloud and region")
        if old[5] != to[5]:
            raise QueryError(f"--from {old[0]} is a {old[5]}-scope snapshot and --to {to[0]} a {to[5]}-scope one: "
                             "what one scope cannot see would show as added or removed")
        return [(old[0], to[0], to[1], to[2])], []
    if request.from_id is not None:
        raise QueryError("--from needs --to (without both: the newest complete snapshot against the one before)")
    latest = con.execute("SELECT id, cloud, region, started_at, status, scope FROM latest_snapshots "
                         "WHERE $cloud IS NULL OR cloud = $cloud ORDER BY cloud, region",
                         {"cloud": request.cloud}).fetchall()
    if not latest:
        raise QueryError("no complete snapshot yet" + (f" of cloud {request.cloud!r}" if request.cloud else ""))
    pairs = [(before(to), to[0], to[1], to[2]) for to in latest]
    if all(pair[0] is None for pair in pairs):
        raise QueryError("; ".join(first(to) for to in latest))
    return [p for p in pairs if p[0] is not None], [first(to) for to, p in zip(latest, pairs) if p[0] is None]


def list_changes(con, request: ChangeRequest) -> tuple[list[tuple[tuple[int, int, str, str], list[tuple]]], list[str]]:
    """For each compared pair (from, to, cloud, region), its changes (COLUMNS), by resource type, change,
    name and id; and notes on what could not be compared. `con` reads the catalog (catalog.py imports this
    module, so it cannot open one itself)."""
    if request.resource_type is not None and request.resource_type not in RESOURCE_TABLES:
        raise QueryError(f"--type: unknown resource table {request.resource_type!r} "
                         f"(one of {', '.join(RESOURCE_TABLES)})")
    result = []
    pairs, notes = _pairs(con, request)
    for pair in pairs:
        notes += [f"{pair[2]}/{pair[3]}: {note}" for note in incomplete_tables(con, pair[0], pair[1])]
        rows = con.execute("""
            SELECT resource_type, resource_id, resource_name, project_id, change, fields
            FROM changes($from, $to) WHERE $type IS NULL OR resource_type = $type
            ORDER BY resource_type, list_position(['added', 'removed', 'modified'], change), resource_name,
                     resource_id""", {"from": pair[0], "to": pair[1], "type": request.resource_type}).fetchall()
        result.append((pair, rows))
    return result, notes
