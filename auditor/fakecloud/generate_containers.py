"""Swift for the synthetic cloud (generate.py): containers in the projects' accounts.

For N servers: N // 2 containers over the tenant projects (a project's share follows a heavy tail, so a few
accounts hold thousands). Of their settings: ~3% readable by anyone with listings (`.r:*,.rlistings`), ~2%
readable by anyone without (`.r:*`), ~2% `.rlistings` alone (nothing public), ~10% readable by another
project's users; ~1% writable by anyone (`*:*`), ~10% by another project (`<project>:*`); ~20% with object
versioning on, ~10% with legacy versioning into an archive container of their own (which counts among the N // 2),
~2% synced elsewhere (with a sync key), ~5% with a temp-URL key, ~1% with a credential in their metadata.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate


def containers(builder) -> list[dict]:
    """Swift's containers for the cloud `builder` (generate._Builder) has built, drawing on its random source
    after everything else, so that the records before them do not change."""
    rnd, ts, hex32 = builder.rng.random, builder.ts_us, builder.hex32
    tenants = builder.projects[1:-1] or builder.projects
    # a heavy tail: the first accounts hold the most
    cumulative = list(accumulate(1 / (rank + 1) for rank in range(len(tenants))))
    records: list[dict] = []
    count = builder.n // 2
    n = 0
    while len(records) < count:
        n += 1
        project = tenants[min(bisect_left(cumulative, rnd() * cumulative[-1]), len(tenants) - 1)]["id"]
        other = tenants[int(rnd() * len(tenants))]["id"]
        name = f"container-{n:06d}"
        ci = builder._ts_index()
        headers = {"X-Timestamp": f"{1_700_000_000 + ci * 3600}.{int(rnd() * 100000):05d}"}
        read = rnd()
        if read < 0.03:
            headers["X-Container-Read"] = ".r:*,.rlistings"
        elif read < 0.05:
            headers["X-Container-Read"] = ".r:*"
        elif read < 0.07:
            headers["X-Container-Read"] = ".rlistings"
        elif read < 0.17:
            headers["X-Container-Read"] = f"{other}:*"
        write = rnd()
        if write < 0.01:
            headers["X-Container-Write"] = "*:*"
        elif write < 0.11:
            headers["X-Container-Write"] = f"{other}:*"
        versioning = rnd()
        archive = None
        if versioning < 0.2:
            headers["X-Versions-Enabled"] = "True"
        elif versioning < 0.3 and len(records) + 1 < count:
            archive = f"{name}-versions"
            headers["X-Versions-Location" if rnd() < 0.5 else "X-History-Location"] = archive
        if rnd() < 0.02:
            headers["X-Container-Sync-To"] = f"//realm/cluster2/AUTH_{project}/{name}"
            headers["X-Container-Sync-Key"] = f"synthetic-sync-{hex32()}"
        if rnd() < 0.05:
            headers["X-Container-Meta-Temp-Url-Key"] = f"synthetic-temp-url-{hex32()}"
        if rnd() < 0.01:
            headers["X-Container-Meta-Db-Password"] = "synthetic-not-a-secret"
        elif rnd() < 0.3:
            headers["X-Container-Meta-Owner"] = "team-" + project[:6]
        objects = int(rnd() ** 3 * 100_000)
        records.append({"_project_id": project, "name": name, "count": objects, "bytes": objects * 40_960,
                        "last_modified": ts[ci + 1], "_headers": headers})
        if archive is not None:
            records.append({"_project_id": project, "name": archive, "count": objects // 4,
                            "bytes": objects * 10_240, "last_modified": ts[ci + 2],
                            "_headers": {"X-Timestamp": headers["X-Timestamp"]}})
    return records
