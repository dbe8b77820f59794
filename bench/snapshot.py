"""Benchmark: snapshot synthetic clouds end to end over loopback HTTP and print a table.

For each size it starts `auditor fake-cloud --generate N` in its own process, then measures:
- the snapshot: `auditor snapshot` in a subprocess (wall time, peak RSS, listing requests made),
- the floor: a bare HTTP client downloading the same pages from the same fake cloud (no parsing beyond
  finding the next link), with the same concurrency,
- the SDK way: `conn.compute.servers(all_projects=True)`, one `Resource` object per server (up to --sdk-max).

Run: .venv/bin/python bench/snapshot.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import duckdb
import yaml

PAGE = 1000  # Nova and Glance cap pages at 1000; we ask Neutron for the same
NEXT = re.compile(rb'"href": ?"([^"]+)", ?"rel": ?"next"|"rel": ?"next", ?"href": ?"([^"]+)"|"next": ?"([^"]+)"')

MEASURED_RUN = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "from auditor.cli import main\n"
    "sys.argv = ['auditor'] + sys.argv[1:]\n"
    "main()\n"
)


@contextmanager
def bench_folder(keep: Path | None, name: str):
    """The folder a benchmark builds its database in: `keep` (created, and reused by later runs), or a
    temporary `auditor-bench-<name>-*` folder removed at the end."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix=f"auditor-bench-{name}-") as folder:
        yield Path(folder)


def start_fake_cloud(servers: int, folder: Path, latency_ms: float = 0) -> tuple[subprocess.Popen, Path, float]:
    clouds = folder / f"clouds-{servers}.yaml"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditor", "fake-cloud", "--generate", str(servers), "--seed", "1", "--port", "0",
         "--cloud-name", "bench", "--write-clouds-yaml", str(clouds), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"fake cloud did not start: {line!r}")
    return proc, clouds, time.monotonic() - started


def run_snapshot(clouds: Path, database: Path) -> dict:
    config = database.with_suffix(".toml")
    config.write_text(f'database = "{database.name}"\n[collection]\npage_size = {PAGE}\nconcurrency = 4\n')
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", MEASURED_RUN, "--config", str(config), "snapshot",
                           "--cloud", "bench"], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"snapshot failed: {done.stdout}\n{done.stderr}")
    maxrss = int(re.search(r"maxrss_kb (\d+)", done.stderr).group(1))
    con = duckdb.connect(str(database), read_only=True)  # the catalog; its views read the lake
    counts = dict(con.execute("SELECT resource_type, row_count FROM snapshot_resources").fetchall())
    requests = con.execute("SELECT request_count FROM snapshots").fetchone()[0]
    shared = con.execute("SELECT count(*) FROM images WHERE visibility = 'shared'").fetchone()[0]
    con.close()
    return {"wall": wall, "maxrss_mb": maxrss / 1024, "counts": counts, "requests": requests, "shared_images": shared}


def minimum_requests(counts: dict, shared_images: int) -> int:
    """Fewest listing requests at the largest page each service allows (Neutron: our page size)."""
    paged = ["servers", "flavors", "server_groups", "ports", "floating_ips", "security_groups", "networks", "subnets",
             "routers", "address_groups"]
    total = sum(max(1, math.ceil(counts[r] / PAGE)) for r in paged)
    total += max(1, math.ceil(counts["images"] / PAGE)) + 1  # plus the hidden-images pass
    total += shared_images  # each shared image's members
    total += 3 + counts.get("users", 0)  # users, roles, role assignments; each user's application credentials
    cinder = min(PAGE, 1000)  # Cinder's osapi_max_limit
    total += sum(max(1, math.ceil(counts.get(r, 0) / cinder)) for r in ("volumes", "volume_snapshots",
                                                                         "volume_backups"))
    total += 1 + counts.get("volume_types", 0)  # the types, then each one's encryption (private ones' access: more)
    total += counts.get("projects", 0) + counts.get("containers", 0)  # each account's listing; a HEAD per container
    return total + 2  # projects, availability zones (unpaginated)


class BareClient:
    """Keep-alive HTTP on loopback: download pages, find the next link, nothing else."""

    def __init__(self, base: str, token: str):
        split = urlsplit(base)
        self.host, self.port = split.hostname, split.port
        self.token = token
        self.local = threading.local()
        self.bytes = 0
        self.requests = 0

    def get(self, path: str, method: str = "GET") -> bytes:
        con = getattr(self.local, "con", None)
        if con is None:
            con = self.local.con = http.client.HTTPConnection(self.host, self.port)
        con.request(method, path, headers={"X-Auth-Token": self.token,
                                           "OpenStack-API-Version": "compute 2.96"})
        body = con.getresponse().read()
        self.bytes += len(body)
        self.requests += 1
        return body

    def follow(self, path: str, prefix: str) -> None:
        while path:
            body = self.get(path)
            match = NEXT.search(body[-4096:])
            if not match:
                return
            href = next(g for g in match.groups() if g).decode()
            query = href.split("?", 1)[1]
            path = f"{prefix}?{query}"


def bare_download(clouds: Path) -> tuple[float, int, int]:
    auth = yaml.safe_load(clouds.read_text())["clouds"]["bench"]["auth"]
    base = auth["auth_url"].rsplit("/identity", 1)[0]
    split = urlsplit(base)
    con = http.client.HTTPConnection(split.hostname, split.port)
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "password": auth["password"], "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": auth["project_name"], "domain": {"id": "default"}}}}})
    con.request("POST", "/identity/v3/auth/tokens", body=body, headers={"Content-Type": "application/json"})
    response = con.getresponse()
    response.read()
    client = BareClient(base, response.getheader("X-Subject-Token"))

    def server_groups():
        offset = 0
        while True:
            body = client.get(f"/compute/v2.1/os-server-groups?all_projects=True&limit={PAGE}&offset={offset}")
            if body.count(b'"policy"') < PAGE:
                return
            offset += PAGE

    def volume_types():
        types = json.loads(client.get("/volume/v3/types?is_public=None"))["volume_types"]
        with ThreadPoolExecutor(max_workers=4) as each:
            list(each.map(lambda t: client.get(f"/volume/v3/types/{t['id']}/encryption"), types))
            list(each.map(lambda t: client.get(f"/volume/v3/types/{t['id']}/os-volume-type-access"),
                          [t for t in types if not t["is_public"]]))

    def images():
        client.follow(f"/image/v2/images?visibility=all&limit={PAGE}", "/image/v2/images")
        shared = json.loads(client.get(f"/image/v2/images?visibility=shared&limit={PAGE}"))["images"]
        with ThreadPoolExecutor(max_workers=4) as each:
            list(each.map(lambda image: client.get(f"/image/v2/images/{image['id']}/members"), shared))

    def identity():
        users = json.loads(client.get("/identity/v3/users"))["users"]
        with ThreadPoolExecutor(max_workers=4) as each:
            list(each.map(lambda user: client.get(f"/identity/v3/users/{user['id']}/application_credentials"),
                          users))

    def object_storage():
        projects = json.loads(client.get("/identity/v3/projects"))["projects"]

        def account(project):
            found, marker = [], ""
            while True:
                page = json.loads(client.get(f"/object/v1/AUTH_{project['id']}?format=json&limit={min(PAGE, 10000)}"
                                             f"&marker={quote(marker)}") or b"[]")
                found += [(project["id"], container["name"]) for container in page]
                if len(page) < min(PAGE, 10000):
                    return found
                marker = page[-1]["name"]

        with ThreadPoolExecutor(max_workers=4) as each:
            every = [c for listed in each.map(account, projects) for c in listed]
            list(each.map(lambda c: client.get(f"/object/v1/AUTH_{c[0]}/{quote(c[1], safe='')}", "HEAD"), every))

    jobs = [
        lambda: client.follow(f"/compute/v2.1/servers/detail?all_tenants=True&limit={PAGE}", "/compute/v2.1/servers/detail"),
        lambda: client.follow(f"/compute/v2.1/flavors/detail?is_public=None&limit={PAGE}", "/compute/v2.1/flavors/detail"),
        lambda: client.get("/compute/v2.1/os-availability-zone/detail"),
        server_groups,
        images,
        lambda: client.follow(f"/image/v2/images?visibility=all&os_hidden=true&limit={PAGE}", "/image/v2/images"),
        lambda: client.follow(f"/network/v2.0/security-groups?limit={PAGE}", "/network/v2.0/security-groups"),
        lambda: client.follow(f"/network/v2.0/ports?limit={PAGE}", "/network/v2.0/ports"),
        lambda: client.follow(f"/network/v2.0/floatingips?limit={PAGE}", "/network/v2.0/floatingips"),
        *[lambda path=path: client.follow(f"/network/v2.0/{path}?limit={PAGE}", f"/network/v2.0/{path}")
          for path in ("networks", "subnets", "routers", "address-groups")],
        lambda: client.get("/identity/v3/projects"),
        identity,
        lambda: client.get("/identity/v3/roles"),
        lambda: client.get("/identity/v3/role_assignments?effective&include_names=true"),
        *[lambda path=path: client.follow(f"/volume/v3/{path}?all_tenants=True&limit={min(PAGE, 1000)}",
                                          f"/volume/v3/{path}")
          for path in ("volumes/detail", "snapshots/detail", "backups/detail")],
        volume_types,
        object_storage,
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return time.monotonic() - started, client.requests, client.bytes


def sdk_objects(clouds: Path) -> tuple[float, int]:
    import openstack

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    conn = openstack.connect(cloud="bench")
    started = time.monotonic()
    count = sum(1 for _ in conn.compute.servers(all_projects=True))
    return time.monotonic() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--sdk-max", type=int, default=10000,
                        help="list servers as SDK objects only up to this size (~4 ms each)")
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="the fake cloud waits this long before each answer (a cloud across a network)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# {time.strftime('%Y-%m-%d')} on {platform.node()}: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, duckdb {duckdb.__version__}, fake-cloud latency {args.latency_ms:g} ms")
    header = ("servers", "rows", "snapshot s", "servers/s", "bare dl s", "x bare", "requests", "minimum",
              "x min", "peak RSS MB", "MB served", "SDK objs s", "x SDK/raw dl", "fake-cloud start s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    with tempfile.TemporaryDirectory(prefix="auditor-bench-") as tmp:
        folder = Path(tmp)
        for servers in sizes:
            proc, clouds, start_s = start_fake_cloud(servers, folder, args.latency_ms)
            try:
                bare_s, _, served = bare_download(clouds)
                snap = run_snapshot(clouds, folder / f"bench-{servers}.duckdb")
                if servers <= args.sdk_max:
                    sdk_s, _ = sdk_objects(clouds)
                    sdk_cell, ratio_cell = f"{sdk_s:.1f}", f"{sdk_s / bare_s:.0f}"
                else:
                    sdk_cell, ratio_cell = "skipped", "-"
            finally:
                proc.terminate()
                proc.wait()
            rows = sum(snap["counts"].values())
            minimum = minimum_requests(snap["counts"], snap["shared_images"])
            print(" | ".join([
                f"{servers:,}", f"{rows:,}", f"{snap['wall']:.1f}", f"{servers / snap['wall']:,.0f}",
                f"{bare_s:.1f}", f"{snap['wall'] / bare_s:.1f}", str(snap["requests"]), str(minimum),
                f"{snap['requests'] / minimum:.2f}", f"{snap['maxrss_mb']:,.0f}", f"{served / 2**20:,.0f}",
                sdk_cell, ratio_cell, f"{start_s:.1f}",
            ]), flush=True)


if __name__ == "__main__":
    main()
