"""Deterministic synthetic OpenStack cloud for `auditor fake-cloud --generate N --seed S` and the benchmarks.

`generate_cloud(servers, seed)` returns in memory what a fixture directory holds (docs/fake-cloud.md): the
`cloud.json` object under "cloud" and each resource file's items, as a plain list, under the file's name
("projects", "servers", "flavors", "availability_zones", "server_groups", "images", "security_groups",
"ports", "floating_ips", "networks", "subnets", "routers", "address_groups", "users",
"application_credentials", "volumes", "volume_snapshots", "volume_backups", "volume_types", "containers"). Items have
the key sets and
value types of the real API responses: servers as `GET /servers/detail` at microversion 2.96 seen by an admin,
flavors at 2.75, Neutron items with both `project_id` and `tenant_id`, security groups with their rules
embedded.

The same (servers, seed) always gives the same result, byte for byte once json-dumped: the only source of
randomness is `random.Random(seed)`, ids included. Parts that repeat (embedded flavors, image references,
`{"name": ...}` entries of a server's `security_groups`) are shared between items: treat the result as
read-only, or copy before changing it. Links point at BASE_URL, laid out as the fake cloud serves them.

Ratios for N servers:

- projects: max(3, N // 100): "admin" first, "service" last (no servers), tenant projects between them. The
  servers spread over the tenant projects with a heavy tail, ~10% of them empty once there are 10 or more;
  the admin project holds a few.
- availability zones: "internal" (conductor and scheduler hosts) and az-1, az-2, az-3 sharing
  max(3, N // 40) compute hosts round-robin; with 50+ hosts ~2% are down and ~1% disabled.
- flavors: 20, among them two private ones (with `_access`), one disabled, three with disk 0.
- images: min(600, 10 + N // 200): ~30% public, ~50% private, ~8% shared (with `_members`), ~5% community,
  ~4% hidden (`os_hidden`), ~2% deactivated, ~1% queued; at least one of each kind but queued.
- servers: ~85% ACTIVE, ~9% SHUTOFF, ~3% ERROR (with `fault`; half of them never scheduled: no host, no
  ports), ~3% SHELVED_OFFLOADED (no host); ~5% boot from volume (`image` ""); ~70% with a "deployment"
  metadata key; `addresses` and `security_groups` follow the server's ports, as Nova builds them.
- server groups: ~N // 20, each with 2-5 servers of one project, placed on hosts as the policy asks.
- security groups: one "default" per project (the four standard rules; some projects open more) plus
  ~N // 10 others with 10-30 rules each (~18 on average): IPv4 and IPv6; tcp, udp, icmp, numeric or no
  protocol; some open to 0.0.0.0/0 or ::/0 on ports such as 22, 3389 and 5432, some from private ranges or
  single hosts, some with remote_group_id.
- networks: one per project but "service", dual-stack for ~30% (an IPv4 /16 and an IPv6 /64 subnet), a
  shared "provider" network (172.16.0.0/12) and the external "public" one (198.18.0.0/15) that floating IPs
  come from; one router per project network with its gateway on "public", ~5% without SNAT, each with its
  `network:router_interface` port on the project network and `network:router_gateway` port on "public".
- address groups: max(2, N // 500), ~10% of them holding 0.0.0.0/0 and ::/0, the others private ranges.
- ports: 1-3 per server that has ports (~1.95 on average): the first on the project network, the others
  on the provider network; each with 1-2 security groups of the server's project, ~2% with port security
  disabled and ~2% with no groups. One network:dhcp port per network.
- floating IPs: ~10% of the servers that have ports (bound to their first port, also listed in the
  server's `addresses`) plus max(2, N // 250) unbound ones.
- users, application credentials: see `_identity`; volumes, snapshots, backups and volume types: see
  generate_volumes.py; containers: see generate_containers.py.
"""

import base64
import gc
import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta

from auditor.fakecloud.generate_containers import containers
from auditor.fakecloud.generate_volumes import block_storage

BASE_URL = "http://openstack.example.com"
COMPUTE_URL = BASE_URL + "/compute"
IDENTITY_URL = BASE_URL + "/identity"

ZONES = ("az-1", "az-2", "az-3")
ADMIN_PASSWORD = "synthetic-admin-password"
MEMBER_PASSWORD = "synthetic-member-password"

_UUID_VARIANT = {f"{n:x}": "89ab"[n & 3] for n in range(16)}

_TS_POOL = 4096
_TS_START = datetime(2021, 1, 4, tzinfo=UTC)
_TS_SPAN_SECONDS = 4 * 365 * 86400

_TEAMS = (
    "payments", "search", "billing", "identity", "analytics", "mobile", "checkout", "catalog", "media",
    "ml-platform", "data-eng", "observability", "ci", "security", "frontend", "messaging", "storage",
    "geo", "ads", "support", "hr-apps", "finance", "research", "edge", "iot", "gaming", "docs", "legal",
    "partners", "devtools",
)
_ENVS = ("prod", "staging", "dev", "test", "qa", "sandbox")
_ROLES = (
    "web", "api", "worker", "db", "cache", "lb", "bastion", "k8s-node", "k8s-master", "etl", "mq",
    "monitor", "jenkins", "vpn", "win-app", "ldap",
)
_SG_NAMES = (
    "web", "ssh", "db", "app", "lb", "monitoring", "bastion", "k8s-nodes", "rdp", "cache", "mq", "ldap",
    "vpn", "nfs", "metrics", "admin-access",
)

# name, id (None: a UUID), vcpus, ram, disk, ephemeral, swap, extra_specs, public, disabled, description,
# relative share of servers
_FLAVORS = (
    ("m1.tiny", "1", 1, 512, 1, 0, 0, {}, True, False, None, 3),
    ("m1.small", "2", 1, 2048, 20, 0, 0, {}, True, False, None, 12),
    ("m1.medium", "3", 2, 4096, 40, 0, 0, {}, True, False, None, 18),
    ("m1.large", "4", 4, 8192, 80, 0, 0, {}, True, False, None, 14),
    ("m1.xlarge", "5", 8, 16384, 160, 0, 0, {}, True, False, None, 6),
    ("m1.legacy", "6", 1, 1024, 10, 0, 0, {}, True, True, "Retired: do not use for new servers", 1),
    ("t1.nano", None, 1, 256, 1, 0, 0, {}, True, False, None, 2),
    ("c1.medium", None, 2, 2048, 20, 0, 0, {"hw:cpu_policy": "dedicated"}, True, False, None, 5),
    ("c1.large", None, 4, 4096, 40, 0, 0, {"hw:cpu_policy": "dedicated"}, True, False, None, 5),
    ("c1.xlarge", None, 8, 8192, 80, 0, 0, {"hw:cpu_policy": "dedicated"}, True, False, None, 3),
    ("r1.large", None, 4, 32768, 80, 0, 0, {"hw:mem_page_size": "large"}, True, False, None, 4),
    ("r1.xlarge", None, 8, 65536, 160, 0, 0, {"hw:mem_page_size": "large"}, True, False, None, 2),
    ("r1.4xlarge", None, 32, 262144, 320, 0, 0, {"hw:mem_page_size": "1GB", "hw:numa_nodes": "2"},
     True, False, "Memory optimised, NUMA aware", 1),
    ("v1.small", None, 1, 2048, 0, 0, 0, {}, True, False, "Boot from volume only", 1),
    ("v1.medium", None, 2, 4096, 0, 0, 0, {}, True, False, "Boot from volume only", 1.5),
    ("v1.large", None, 4, 8192, 0, 0, 0, {}, True, False, "Boot from volume only", 1),
    ("e1.large", None, 4, 8192, 40, 200, 4096, {}, True, False, "Local ephemeral disk and swap", 2),
    ("win.large", None, 4, 8192, 80, 0, 0, {"os:secure_boot": "required", "hw:vif_multiqueue_enabled": "true"},
     True, False, "Windows Server", 3),
    ("g1.xlarge", None, 8, 65536, 200, 0, 0, {"resources:VGPU": "1", "trait:CUSTOM_GPU_A100": "required"},
     False, False, "One vGPU", 1),
    ("hpc.16xlarge", None, 64, 524288, 400, 0, 0,
     {"hw:cpu_policy": "dedicated", "hw:cpu_thread_policy": "isolate", "hw:numa_nodes": "2"},
     False, False, None, 1),
)

_DISTROS = (
    ("ubuntu", ("22.04", "24.04", "20.04")), ("debian", ("12", "11")), ("rocky", ("9", "8")),
    ("cirros", ("0.6.2",)), ("centos-stream", ("9",)), ("almalinux", ("9",)), ("windows-server", ("2022", "2019")),
    ("fedora-coreos", ("40",)), ("flatcar", ("3815",)), ("opensuse-leap", ("15.5",)),
)
_IMAGE_PURPOSES = ("golden", "snapshot", "app", "base", "backup", "ci-runner", "appliance")

_SENSITIVE_PORTS = (22, 22, 22, 3389, 3389, 5432, 3306, 1433, 6379, 27017, 9200, 5985, 5986, 11211, 2379, 23, 445)
_WEB_PORTS = (80, 443, 443, 8080, 8443)
_APP_PORTS = (22, 80, 443, 8000, 8080, 8443, 9090, 9100, 5432, 3306, 6379, 5672, 2049, 3389, 10250, 6443, 53)
_UDP_PORTS = (53, 123, 161, 500, 4500, 51820, 1194, 5353, 4789)
_TCP_RANGES = ((30000, 32767), (1024, 65535), (1, 65535), (8000, 8999), (6000, 6100))
_PRIVATE_V4 = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "10.10.0.0/16", "10.20.30.0/24", "192.168.1.0/24",
    "10.0.0.0/8", "10.0.0.0/8",
)
_PRIVATE_V6 = ("fd00::/8", "fd12:3456:789a::/48")
_RULE_KIND_SHARES = (6, 2, 12, 4, 26, 8, 7, 6, 2, 10, 4, 1, 3, 5, 2, 2)
_RULE_KINDS = tuple(k for k, share in enumerate(_RULE_KIND_SHARES) for _ in range(share))

_EGRESS_ANY = (
    ("egress", "IPv4", None, None, None, None, None),
    ("egress", "IPv6", None, None, None, None, None),
)
_RULE_TEMPLATE = {
    "direction": None, "ethertype": None, "id": None, "port_range_max": None, "port_range_min": None,
    "protocol": None, "remote_group_id": None, "remote_address_group_id": None, "remote_ip_prefix": None,
    "security_group_id": None, "project_id": None, "revision_number": 0, "tags": None, "tenant_id": None,
    "created_at": None, "updated_at": None, "description": "", "belongs_to_default_sg": False,
}

_ACTIVE = ("ACTIVE", 1, "active")
_SHUTOFF = ("SHUTOFF", 4, "stopped")
_ERROR = ("ERROR", 0, "error")
_SHELVED = ("SHELVED_OFFLOADED", 4, "shelved_offloaded")

_SERVER_TEMPLATE = {
    "OS-DCF:diskConfig": None, "OS-EXT-AZ:availability_zone": None, "OS-EXT-SRV-ATTR:host": None,
    "OS-EXT-SRV-ATTR:hostname": None, "OS-EXT-SRV-ATTR:hypervisor_hostname": None,
    "OS-EXT-SRV-ATTR:instance_name": None, "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:launch_index": 0,
    "OS-EXT-SRV-ATTR:ramdisk_id": "", "OS-EXT-SRV-ATTR:reservation_id": None,
    "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda", "OS-EXT-SRV-ATTR:user_data": None,
    "OS-EXT-STS:power_state": None, "OS-EXT-STS:task_state": None, "OS-EXT-STS:vm_state": None,
    "OS-SRV-USG:launched_at": None, "OS-SRV-USG:terminated_at": None, "accessIPv4": "", "accessIPv6": "",
    "addresses": None, "config_drive": "", "created": None, "description": None, "flavor": None, "hostId": None,
    "host_status": None, "id": None, "image": None, "key_name": None, "links": None, "locked": False,
    "locked_reason": None, "metadata": None, "name": None, "os-extended-volumes:volumes_attached": None,
    "pinned_availability_zone": None, "progress": 0, "status": None, "tags": None, "tenant_id": None,
    "trusted_image_certificates": None, "updated": None, "user_id": None,
}

_PORT_TEMPLATE = {
    "admin_state_up": True, "allowed_address_pairs": None, "created_at": None, "data_plane_status": None,
    "description": "", "device_id": None, "device_owner": None, "dns_assignment": None, "dns_domain": "",
    "dns_name": "", "extra_dhcp_opts": None, "fixed_ips": None, "id": None, "ip_allocation": "immediate",
    "mac_address": None, "name": "", "network_id": None, "project_id": None, "revision_number": 4,
    "security_groups": None, "status": "ACTIVE", "tags": None, "tenant_id": None, "updated_at": None,
    "qos_network_policy_id": None, "qos_policy_id": None, "port_security_enabled": True,
    "propagate_uplink_status": False, "pvlan_type": "", "pvlan_community": "",
}
_GROUP_POLICIES = ("anti-affinity",) * 5 + ("affinity",) * 2 + ("soft-anti-affinity",) * 2 + ("soft-affinity",)
_PORTS_PER_SERVER = (1,) * 5 + (2,) * 11 + (3,) * 4

_USER_DATA = (
    base64.b64encode(b"#cloud-config\npackage_update: true\npackages: [nginx]\n").decode(),
    base64.b64encode(b"#!/bin/bash\nset -e\ncurl -fsSL https://deploy.example.internal/bootstrap | sh\n").decode(),
    base64.b64encode(b"#cloud-config\nruncmd:\n  - systemctl enable --now node-exporter\n").decode(),
    base64.b64encode(b"#cloud-config\nchpasswd:\n  list: |\n    root:Winter2024!\n  expire: false\n").decode(),
)
_FAULT_NO_HOST = "No valid host was found. There are not enough hosts available."
_FAULT_NO_HOST_DETAILS = (
    "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/nova/conductor/manager.py\", "
    "line 1654, in schedule_and_build_instances\n    host_lists = self._schedule_instances(context, "
    "request_specs[0],\nnova.exception.NoValidHost: " + _FAULT_NO_HOST + "\n"
)
_FAULT_BUILD = "Build of instance {} aborted: Volume attachment failed, not rescheduling."
_FAULT_BUILD_DETAILS = (
    "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/nova/compute/manager.py\", "
    "line 2735, in _build_resources\n    block_device_info = self._prep_block_device(context, instance,\n"
    "nova.exception.BuildAbortException: "
)


def generate_cloud(servers: int, seed: int = 1) -> dict:
    """Return {"cloud": {...cloud.json content...}, "projects": [...], "servers": [...], "flavors": [...],
    "availability_zones": [...], "server_groups": [...], "images": [...], "security_groups": [...],
    "ports": [...], "floating_ips": [...], "networks": [...], "subnets": [...], "routers": [...],
    "address_groups": [...]}  -- lists of items, not wrapped in their top-level keys."""
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 0:
        raise ValueError(f"servers must be a non-negative integer, got {servers!r}")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Builder(servers, seed).build()
    finally:
        if gc_was_enabled:
            gc.enable()


class _Builder:
    def __init__(self, servers, seed):
        self.n = servers
        self.rng = random.Random(seed)
        bits = self.rng.getrandbits

        def new_uuid():
            h = f"{bits(128):032x}"
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

        self.uuid = new_uuid
        self.ports = []
        self.floating_ips = []
        self.server_groups = []
        self.servers = []
        self.fip_seq = 0

    def hex32(self):
        return f"{self.rng.getrandbits(128):032x}"

    def build(self):
        self._timestamps()
        self._projects()
        self._zones()
        self._flavors()
        self._images()
        self._security_groups()
        self._networks()
        self._servers()
        self._dhcp_ports()
        self._unbound_floating_ips()
        self._networking()  # these last: the records above draw the same random numbers as before they existed
        self._identity()
        storage = block_storage(self)
        object_storage = containers(self)
        return {
            "cloud": self._cloud(),
            "projects": self.projects,
            "servers": self.servers,
            "flavors": self.flavors,
            "availability_zones": self.zones,
            "server_groups": self.server_groups,
            "images": self.images,
            "security_groups": self.security_groups,
            "ports": self.ports,
            "floating_ips": self.floating_ips,
            "networks": self.network_items,
            "subnets": self.subnet_items,
            "routers": self.router_items,
            "address_groups": self.address_groups,
            "users": self.users,
            "application_credentials": self.application_credentials,
            **storage,
            "containers": object_storage,
        }

    def _timestamps(self):
        rnd = self.rng.random
        offsets = sorted(int(rnd() * _TS_SPAN_SECONDS) for _ in range(_TS_POOL))
        moments = [_TS_START + timedelta(seconds=o, microseconds=int(rnd() * 1_000_000)) for o in offsets]
        self.ts = [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments]
        self.ts_us = [m.strftime("%Y-%m-%dT%H:%M:%S.%f") for m in moments]

    def _ts_index(self):
        return int(self.rng.random() * (_TS_POOL - 80))

    def _projects(self):
        rng = self.rng
        total = max(3, self.n // 100)
        names = [("admin", "Bootstrap project for initializing the cloud.")]
        for i in range(total - 2):
            team, env = _TEAMS[i % len(_TEAMS)], _ENVS[(i // len(_TEAMS)) % len(_ENVS)]
            lap = i // (len(_TEAMS) * len(_ENVS))
            names.append((f"{team}-{env}-{lap + 1}" if lap else f"{team}-{env}", f"{team} team, {env}"))
        names.append(("service", "Service project for the OpenStack services."))
        self.projects = []
        for i, (name, description) in enumerate(names):
            pid = self.hex32()
            self.projects.append({
                "is_domain": False,
                "description": description,
                "domain_id": "default",
                "enabled": not (1 < i < total - 1 and total >= 20 and rng.random() < 0.02),
                "id": pid,
                "links": {"self": f"{IDENTITY_URL}/v3/projects/{pid}"},
                "name": name,
                "parent_id": "default",
                "tags": [],
            })
        self.project_users = [[self.hex32() for _ in range(1 + int(rng.random() * 3))] for _ in names]
        self.admin_user_id = self.project_users[0][0]
        self.member_user_id = self.project_users[1][0]

        weights = [0.0] * total
        tenants = range(1, total - 1)
        for i in tenants:
            if total >= 12 and rng.random() < 0.1:
                continue
            weights[i] = min(rng.paretovariate(1.3), 40.0)
        if not any(weights):
            weights[1] = 1.0
        weights[0] = 0.3 * sum(weights) / max(1, len(tenants))
        self.server_counts = _apportion(self.n, weights)

    def _zones(self):
        rng = self.rng
        ts = self.ts
        n_hosts = max(3, self.n // 40)
        self.hosts = []
        self.host_status = {}
        zone_hosts = {z: {} for z in ZONES}
        for i in range(n_hosts):
            z = i % 3
            name = f"az{z + 1}-compute-{i // 3 + 1:03d}"
            zone = ZONES[z]
            roll = rng.random() if n_hosts >= 50 else 1.0
            available = roll >= 0.02
            active = not (0.02 <= roll < 0.03)
            self.hosts.append((name, zone))
            self.host_status[name] = "DOWN" if not available else ("MAINTENANCE" if not active else "UP")
            zone_hosts[zone][name] = {
                "nova-compute": {
                    "active": active,
                    "available": available,
                    "updated_at": ts[-1 - (0 if available else 200)].replace("Z", ".000000"),
                }
            }
        internal = {}
        for i in range(1, 4):
            updated = ts[-1].replace("Z", ".000000")
            internal[f"controller-{i}"] = {
                "nova-conductor": {"active": True, "available": True, "updated_at": updated},
                "nova-scheduler": {"active": True, "available": True, "updated_at": updated},
            }
        self.zones = [{"hosts": internal, "zoneName": "internal", "zoneState": {"available": True}}]
        self.zones += [{"hosts": zone_hosts[z], "zoneName": z, "zoneState": {"available": True}} for z in ZONES]
        self.hypervisor = {name: f"{name}.cloud.internal" for name, _ in self.hosts}

    def _flavors(self):
        rng = self.rng
        tenants = list(range(1, len(self.projects) - 1))
        self.flavors = []
        self.flavor_embeds = []
        base_pool = []
        private_pools = {}
        for idx, (name, fid, vcpus, ram, disk, eph, swap, specs, public, disabled, desc, share) in enumerate(_FLAVORS):
            fid = fid or self.uuid()
            flavor = {
                "OS-FLV-DISABLED:disabled": disabled,
                "disk": disk,
                "OS-FLV-EXT-DATA:ephemeral": eph,
                "os-flavor-access:is_public": public,
                "id": fid,
                "links": [
                    {"href": f"{COMPUTE_URL}/v2.1/flavors/{fid}", "rel": "self"},
                    {"href": f"{COMPUTE_URL}/flavors/{fid}", "rel": "bookmark"},
                ],
                "name": name,
                "ram": ram,
                "swap": swap,
                "vcpus": vcpus,
                "rxtx_factor": 1.0,
                "description": desc,
                "extra_specs": dict(specs),
            }
            slots = [idx] * int(share * 2)
            if public:
                base_pool += slots
            else:
                access = sorted(rng.sample(tenants, min(len(tenants), 1 + int(rng.random() * 2))))
                flavor["_access"] = [self.projects[p]["id"] for p in access]
                for p in access:
                    private_pools.setdefault(p, []).extend(slots)
            self.flavors.append(flavor)
            self.flavor_embeds.append({
                "disk": disk, "ephemeral": eph, "extra_specs": dict(specs), "original_name": name,
                "ram": ram, "swap": swap, "vcpus": vcpus,
            })
        self.flavor_pool = base_pool
        self.flavor_pools = {p: base_pool + extra for p, extra in private_pools.items()}

    def _images(self):
        rng = self.rng
        rnd = rng.random
        ts = self.ts
        projects = self.projects
        tenants = list(range(1, len(projects) - 1))
        count = min(600, 10 + self.n // 200)
        forced = ("public",) * 4 + ("shared", "community", "hidden", "deactivated")
        self.images = []
        public_pool = []
        extra_pools = {}
        everyone = []
        distro_turn = 0
        for i in range(count):
            if i < len(forced):
                kind = forced[i]
            else:
                r = rnd()
                kind = ("public" if r < 0.30 else "private" if r < 0.80 else "shared" if r < 0.88 else
                        "community" if r < 0.93 else "hidden" if r < 0.97 else "deactivated" if r < 0.99
                        else "queued")
            visibility = {"hidden": "public", "deactivated": ("public", "private")[i % 2],
                          "queued": "private"}.get(kind, kind)
            owner_idx = 0 if visibility == "public" else tenants[int(rnd() * len(tenants))]
            if visibility == "public":
                distro, versions = _DISTROS[distro_turn % len(_DISTROS)]
                version = versions[(distro_turn // len(_DISTROS)) % len(versions)]
                distro_turn += 1
                name = f"{distro}-{version}"
                if i >= 4:
                    name += f"-{ts[int(rnd() * _TS_POOL)][:10].replace('-', '')}"
            else:
                name = f"{projects[owner_idx]['name']}-{_IMAGE_PURPOSES[int(rnd() * len(_IMAGE_PURPOSES))]}-{i}"
            iid = self.uuid()
            ci = self._ts_index()
            queued = kind == "queued"
            windows = name.startswith("windows")
            size = None if queued else int((0.02 + rnd() * (18 if windows else 3)) * 1024 ** 3)
            image = {
                "status": "queued" if queued else "deactivated" if kind == "deactivated" else "active",
                "name": name,
                "tags": [],
                "container_format": None if queued else "bare",
                "created_at": ts[ci],
                "disk_format": None if queued else ("raw" if rnd() < 0.3 else "qcow2"),
                "updated_at": ts[ci + 1 + int(rnd() * 60)],
                "visibility": visibility,
                "self": f"/v2/images/{iid}",
                "min_disk": 0 if queued else (40 if windows else int(rnd() * 3) * 10),
                "protected": visibility == "public" and rnd() < 0.3,
                "id": iid,
                "file": f"/v2/images/{iid}/file",
                "checksum": None if queued else f"{rng.getrandbits(128):032x}",
                "os_hash_algo": None if queued else "sha512",
                "os_hash_value": None if queued else f"{rng.getrandbits(512):0128x}",
                "os_hidden": kind == "hidden",
                "owner": projects[owner_idx]["id"],
                "size": size,
                "min_ram": 0 if queued else (2048 if windows else 0),
                "schema": "/v2/schemas/image",
                "virtual_size": None if queued or rnd() < 0.5 else size * (1 + int(rnd() * 4)),
            }
            members = []
            if visibility == "shared":
                others = [p for p in tenants if p != owner_idx]
                members = sorted(rng.sample(others, min(len(others), 1 + int(rnd() * 3))))
                image["_members"] = [projects[p]["id"] for p in members]
            self.images.append(image)
            ref = {"id": iid, "links": [{"href": f"{COMPUTE_URL}/images/{iid}", "rel": "bookmark"}]}
            if queued:
                continue
            if kind == "public":
                public_pool.append(ref)
            elif visibility in ("public", "community"):
                everyone.append(ref)
            else:
                for p in [owner_idx] + members:
                    extra_pools.setdefault(p, []).append(ref)
        self.public_images = public_pool
        self.extra_images = {p: refs + everyone for p, refs in extra_pools.items()}
        self.everyone_images = everyone or public_pool

    def _security_groups(self):
        rng = self.rng
        rnd = rng.random
        uuid = self.uuid
        ts = self.ts
        self.security_groups = []
        self.project_groups = []
        n_kinds = len(_RULE_KINDS)
        for pidx, project in enumerate(self.projects):
            pid = project["id"]
            count = self.server_counts[pidx]
            customs = max(1 if count else 0, round(count / 10))
            groups = []
            ci = self._ts_index()
            default_id = uuid()
            base = dict(_RULE_TEMPLATE, security_group_id=default_id, project_id=pid, tenant_id=pid,
                        belongs_to_default_sg=True)
            rules = []
            for spec in _EGRESS_ANY + _ingress_from_group(default_id):
                self._add_rule(rules, base, spec, ts[ci])
            r = rnd()
            if r < 0.15:
                self._add_rule(rules, base, ("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0", None), ts[ci + 3])
            if r < 0.05 or r > 0.95:
                self._add_rule(rules, base, ("ingress", "IPv4", "icmp", None, None, "0.0.0.0/0", None), ts[ci + 3])
            groups.append((default_id, {"name": "default"}))
            self.security_groups.append(self._group(pid, default_id, "default", "Default security group",
                                                    rules, ci))
            ids = [default_id]
            used_names = {"default"}
            for k in range(customs):
                name = _SG_NAMES[int(rnd() * len(_SG_NAMES))]
                if name in used_names:
                    name = f"{name}-{k + 1}"
                used_names.add(name)
                sgid = uuid()
                ids.append(sgid)
                ci = self._ts_index()
                base = dict(_RULE_TEMPLATE, security_group_id=sgid, project_id=pid, tenant_id=pid)
                rules = []
                for spec in _EGRESS_ANY:
                    self._add_rule(rules, base, spec, ts[ci])
                seen = set()
                for _ in range(8 + int(rnd() * 21)):
                    spec = _rule_spec(_RULE_KINDS[int(rnd() * n_kinds)], rnd, ids)
                    if spec not in seen:
                        seen.add(spec)
                        self._add_rule(rules, base, spec, ts[ci + 1 + int(rnd() * 40)])
                groups.append((sgid, {"name": name}))
                self.security_groups.append(self._group(pid, sgid, name, f"{name} access", rules, ci))
            self.project_groups.append(groups)

    def _add_rule(self, rules, base, spec, stamp):
        rule = base.copy()
        (rule["direction"], rule["ethertype"], rule["protocol"], rule["port_range_min"], rule["port_range_max"],
         rule["remote_ip_prefix"], rule["remote_group_id"]) = spec
        rule["id"] = self.uuid()
        rule["tags"] = []
        rule["created_at"] = rule["updated_at"] = stamp
        rules.append(rule)

    def _group(self, pid, sgid, name, description, rules, ci):
        return {
            "description": description,
            "id": sgid,
            "name": name,
            "security_group_rules": rules,
            "project_id": pid,
            "revision_number": len(rules),
            "created_at": self.ts[ci],
            "updated_at": max(r["updated_at"] for r in rules),
            "tags": [],
            "tenant_id": pid,
            "stateful": True,
            "shared": False,
        }

    def _networks(self):
        rnd = self.rng.random
        uuid = self.uuid
        self.networks = []
        for pidx, project in enumerate(self.projects):
            if project["name"] == "service":
                self.networks.append(None)
                continue
            octet = pidx % 250 + 1
            dual = rnd() < 0.3
            self.networks.append({
                "id": uuid(),
                "name": f"{project['name']}-net",
                "project": pidx,
                "subnet4": uuid(),
                "v4": f"10.{octet}.",
                "subnet6": uuid() if dual else None,
                "v6": f"fd00:{pidx:x}::" if dual else None,
                "next": 0,
            })
        self.provider = {"id": uuid(), "name": "provider", "project": 0, "subnet4": uuid(), "next": 0}
        self.public_net_id = uuid()
        self.routers = [uuid() for _ in self.projects]

    def _servers(self):
        rng = self.rng
        rnd = rng.random
        bits = rng.getrandbits
        uuid = self.uuid
        ts, ts_us = self.ts, self.ts_us
        ts_span = _TS_POOL - 80
        projects = self.projects
        hosts = self.hosts
        n_hosts = len(hosts)
        host_status = self.host_status
        hypervisor = self.hypervisor
        flavor_embeds = self.flavor_embeds
        flavor_disk = [f[4] for f in _FLAVORS]
        public_images = self.public_images
        n_public = len(public_images)
        servers_out = self.servers
        ports_out = self.ports
        fips_out = self.floating_ips
        groups_out = self.server_groups
        provider = self.provider
        provider_id = provider["id"]
        provider_subnet = provider["subnet4"]
        provider_next = provider["next"]
        public_net_id = self.public_net_id
        host_ids = {}
        owners = {z: f"compute:{z}" for z in ZONES}
        sha224 = hashlib.sha224
        group_start = 0.05 / (1 - 0.05 * 2.5)
        instance_seq = 0
        fip_seq = 0

        for pidx, count in enumerate(self.server_counts):
            if not count:
                continue
            project = projects[pidx]
            pid = project["id"]
            pname = project["name"]
            users = self.project_users[pidx]
            sgs = self.project_groups[pidx]
            default_sg = sgs[0]
            custom_sgs = sgs[1:]
            sg_names = dict(sgs)
            flavor_pool = self.flavor_pools.get(pidx, self.flavor_pool)
            n_flavors = len(flavor_pool)
            has_own_images = pidx in self.extra_images
            own_images = self.extra_images.get(pidx, self.everyone_images)
            n_own = len(own_images)
            net = self.networks[pidx]
            net_id, net_name, subnet4, v4, subnet6, v6 = (
                net["id"], net["name"], net["subnet4"], net["v4"], net["subnet6"], net["v6"])
            router_id = self.routers[pidx]
            net_next = net["next"]
            keypair = f"{pname}-key"
            server_template = dict(_SERVER_TEMPLATE, tenant_id=pid)
            port_template = dict(_PORT_TEMPLATE, project_id=pid, tenant_id=pid)
            role_seq = {}
            group_left = 0
            group = None
            group_policy = None
            group_hosts = []

            for k in range(count):
                sid = uuid()
                instance_seq += 1
                role = _ROLES[int(rnd() * len(_ROLES))]
                seq = role_seq[role] = role_seq.get(role, 0) + 1
                name = f"{role}-{seq:03d}"
                user_id = users[int(rnd() * len(users))]

                r = rnd()
                status, power_state, vm_state = (
                    _ACTIVE if r < 0.85 else _SHUTOFF if r < 0.94 else _ERROR if r < 0.97 else _SHELVED)
                unscheduled = status == "ERROR" and rnd() < 0.5
                has_host = not unscheduled and status != "SHELVED_OFFLOADED"

                if group_left == 0 and count - k >= 2 and rnd() < group_start:
                    group_left = min(2 + int(rnd() * 4), count - k)
                    group_policy = _GROUP_POLICIES[int(rnd() * len(_GROUP_POLICIES))]
                    group = {
                        "id": uuid(),
                        "name": f"{role}-{group_policy}-{len(groups_out) + 1}",
                        "policy": group_policy,
                        "rules": ({"max_server_per_host": 1 + int(rnd() * 2)}
                                  if group_policy == "anti-affinity" and rnd() < 0.3 else {}),
                        "members": [],
                        "project_id": pid,
                        "user_id": user_id,
                    }
                    groups_out.append(group)
                    group_hosts = []
                in_group = group_left > 0
                if in_group:
                    group["members"].append(sid)
                    group_left -= 1

                host_idx = int(rnd() * n_hosts)
                if in_group and group_hosts:
                    if group_policy in ("affinity", "soft-affinity"):
                        host_idx = group_hosts[0] if group_policy == "affinity" or rnd() < 0.8 else host_idx
                    else:
                        for _ in range(4):
                            if host_idx not in group_hosts:
                                break
                            host_idx = int(rnd() * n_hosts)
                if in_group and has_host:
                    group_hosts.append(host_idx)
                host, az = hosts[host_idx]
                pinned = az if rnd() < 0.3 else None
                if has_host:
                    key = (pidx, host_idx)
                    host_id = host_ids.get(key)
                    if host_id is None:
                        host_id = host_ids[key] = sha224((pid + host).encode()).hexdigest()
                else:
                    host_id = ""
                    host = None
                    if unscheduled:
                        az = pinned or ""

                fidx = flavor_pool[int(rnd() * n_flavors)]
                bfv = flavor_disk[fidx] == 0 or rnd() < 0.012
                if bfv:
                    image = ""
                elif rnd() < 0.75 or (not has_own_images and rnd() < 0.6):
                    image = public_images[int(rnd() ** 2 * n_public)]
                else:
                    image = own_images[int(rnd() * n_own)]
                volumes = []
                if bfv:
                    volumes.append({"id": uuid(), "delete_on_termination": rnd() < 0.6})
                if rnd() < 0.2:
                    for _ in range(1 + int(rnd() * 2)):
                        volumes.append({"id": uuid(), "delete_on_termination": False})

                ci = int(rnd() * ts_span)
                created = ts[ci]
                updated = ts[ci + 1 + int(rnd() * 70)]

                if custom_sgs:
                    r = rnd()
                    custom = custom_sgs[int(rnd() * len(custom_sgs))]
                    if r < 0.25:
                        profile = [default_sg[0]]
                    elif r < 0.6:
                        profile = [custom[0]]
                    elif r < 0.9:
                        profile = [default_sg[0], custom[0]]
                    else:
                        other = custom_sgs[int(rnd() * len(custom_sgs))]
                        profile = [custom[0], other[0]] if other is not custom else [custom[0]]
                else:
                    profile = [default_sg[0]]

                addresses = {}
                server_sgs = []
                port_status = "ACTIVE" if status == "ACTIVE" else "DOWN"
                owner = owners.get(az) or f"compute:{az}"
                if not unscheduled:
                    n_ports = _PORTS_PER_SERVER[int(rnd() * 20)]
                    for j in range(n_ports):
                        if j == 0:
                            c = net_next
                            net_next += 1
                            ip = f"{v4}{c // 250}.{c % 250 + 3}"
                            fixed_ips = [{"subnet_id": subnet4, "ip_address": ip}]
                            if v6 is not None:
                                fixed_ips.append({"subnet_id": subnet6, "ip_address": f"{v6}{c + 3:x}"})
                            port_net_id, port_net_name = net_id, net_name
                        else:
                            c = provider_next
                            provider_next += 1
                            ip = f"172.{16 + c // 62500}.{(c // 250) % 250}.{c % 250 + 3}"
                            fixed_ips = [{"subnet_id": provider_subnet, "ip_address": ip}]
                            port_net_id, port_net_name = provider_id, "provider"
                        h = f"{bits(24):06x}"
                        mac = f"fa:16:3e:{h[:2]}:{h[2:4]}:{h[4:]}"
                        r = rnd()
                        if r < 0.02:
                            port_sgs, port_security = [], False
                        elif r < 0.04:
                            port_sgs, port_security = [], True
                        elif j and r < 0.14:
                            port_sgs, port_security = profile[:1], True
                        else:
                            port_sgs, port_security = list(profile), True
                        pairs = []
                        if port_security and r > 0.988:
                            pairs = [{"ip_address": "0.0.0.0/0" if r > 0.998 else f"{ip.rsplit('.', 1)[0]}.250",
                                      "mac_address": mac}]
                        port_id = uuid()
                        port = port_template.copy()
                        port["allowed_address_pairs"] = pairs
                        port["created_at"] = created
                        port["device_id"] = sid
                        port["device_owner"] = owner
                        port["dns_assignment"] = _dns_assignment(fixed_ips)
                        port["extra_dhcp_opts"] = []
                        port["fixed_ips"] = fixed_ips
                        port["id"] = port_id
                        port["mac_address"] = mac
                        if rnd() < 0.2:
                            port["name"] = f"{name}-port{j}"
                        port["network_id"] = port_net_id
                        port["security_groups"] = port_sgs
                        port["status"] = port_status
                        port["tags"] = []
                        port["updated_at"] = updated
                        port["port_security_enabled"] = port_security
                        ports_out.append(port)
                        for g in port_sgs:
                            server_sgs.append(sg_names[g])
                        entries = addresses.get(port_net_name)
                        if entries is None:
                            entries = addresses[port_net_name] = []
                        for f in fixed_ips:
                            addr = f["ip_address"]
                            entries.append({"OS-EXT-IPS-MAC:mac_addr": mac, "OS-EXT-IPS:type": "fixed",
                                            "addr": addr, "version": 6 if ":" in addr else 4})
                        if j == 0 and status != "ERROR" and rnd() < 0.1:
                            fip = f"198.{18 + fip_seq // 65024}.{(fip_seq // 254) % 256}.{fip_seq % 254 + 1}"
                            fip_seq += 1
                            entries.append({"OS-EXT-IPS-MAC:mac_addr": mac, "OS-EXT-IPS:type": "floating",
                                            "addr": fip, "version": 4})
                            fips_out.append({
                                "router_id": router_id,
                                "description": "",
                                "dns_domain": "",
                                "dns_name": "",
                                "created_at": updated,
                                "updated_at": updated,
                                "revision_number": 2,
                                "project_id": pid,
                                "tenant_id": pid,
                                "floating_network_id": public_net_id,
                                "fixed_ip_address": ip,
                                "floating_ip_address": fip,
                                "port_id": port_id,
                                "id": uuid(),
                                "status": port_status,
                                "port_details": {
                                    "status": port_status,
                                    "name": "",
                                    "admin_state_up": True,
                                    "network_id": port_net_id,
                                    "device_owner": owner,
                                    "mac_address": mac,
                                    "device_id": sid,
                                },
                                "tags": [],
                            })

                r = rnd()
                if r < 0.7:
                    metadata = {"deployment": f"{pname}-{role}"}
                    if r < 0.25:
                        metadata["owner"] = f"{pname.rsplit('-', 1)[0]}-team@example.com"
                elif r < 0.8:
                    metadata = {"role": role}
                else:
                    metadata = {}
                server = server_template.copy()
                server["OS-DCF:diskConfig"] = "MANUAL" if rnd() < 0.7 else "AUTO"
                server["OS-EXT-AZ:availability_zone"] = az
                server["OS-EXT-SRV-ATTR:host"] = host
                server["OS-EXT-SRV-ATTR:hostname"] = name
                server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = hypervisor[host] if host else None
                server["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{instance_seq:08x}"
                server["OS-EXT-SRV-ATTR:reservation_id"] = f"r-{bits(40):010x}"[:10]
                if unscheduled:
                    server["OS-EXT-SRV-ATTR:root_device_name"] = None
                if rnd() < 0.15:
                    server["OS-EXT-SRV-ATTR:user_data"] = _USER_DATA[int(rnd() * 3) if rnd() < 0.97 else 3]
                server["OS-EXT-STS:power_state"] = power_state
                server["OS-EXT-STS:vm_state"] = vm_state
                server["OS-SRV-USG:launched_at"] = None if unscheduled else ts_us[ci + 1]
                server["addresses"] = addresses
                if rnd() < 0.2:
                    server["config_drive"] = "True"
                server["created"] = created
                if rnd() < 0.3:
                    server["description"] = f"{role} server"
                server["flavor"] = flavor_embeds[fidx]
                server["hostId"] = host_id
                server["host_status"] = host_status[host] if host else ""
                server["id"] = sid
                server["image"] = image
                if rnd() < 0.8:
                    server["key_name"] = keypair
                server["links"] = [
                    {"href": f"{COMPUTE_URL}/v2.1/servers/{sid}", "rel": "self"},
                    {"href": f"{COMPUTE_URL}/servers/{sid}", "rel": "bookmark"},
                ]
                if rnd() < 0.02:
                    server["locked"] = True
                    server["locked_reason"] = "maintenance window"
                server["metadata"] = metadata
                server["name"] = name
                server["os-extended-volumes:volumes_attached"] = volumes
                server["pinned_availability_zone"] = pinned
                server["status"] = status
                server["tags"] = ["backup-daily"] if rnd() < 0.05 else []
                server["updated"] = updated
                server["user_id"] = user_id
                if server_sgs:
                    server["security_groups"] = server_sgs
                if status == "ERROR":
                    server["fault"] = {
                        "code": 500,
                        "created": updated,
                        "message": _FAULT_NO_HOST if unscheduled else _FAULT_BUILD.format(sid),
                        "details": (_FAULT_NO_HOST_DETAILS if unscheduled
                                    else _FAULT_BUILD_DETAILS + _FAULT_BUILD.format(sid) + "\n"),
                    }
                servers_out.append(server)
            net["next"] = net_next
        provider["next"] = provider_next
        self.fip_seq = fip_seq

    def _dhcp_ports(self):
        uuid = self.uuid
        agent = uuid()
        ts = self.ts
        for net in [n for n in self.networks if n is not None] + [self.provider]:
            pid = self.projects[net["project"]]["id"]
            ip = f"{net['v4']}0.2" if "v4" in net else "172.16.0.2"
            fixed_ips = [{"subnet_id": net["subnet4"], "ip_address": ip}]
            if net.get("subnet6"):
                fixed_ips.append({"subnet_id": net["subnet6"], "ip_address": f"{net['v6']}2"})
            h = f"{self.rng.getrandbits(24):06x}"
            ci = self._ts_index()
            port = dict(_PORT_TEMPLATE, project_id=pid, tenant_id=pid)
            port["allowed_address_pairs"] = []
            port["created_at"] = ts[ci]
            port["device_id"] = f"dhcp{agent}-{net['id']}"
            port["device_owner"] = "network:dhcp"
            port["dns_assignment"] = _dns_assignment(fixed_ips)
            port["extra_dhcp_opts"] = []
            port["fixed_ips"] = fixed_ips
            port["id"] = uuid()
            port["mac_address"] = f"fa:16:3e:{h[:2]}:{h[2:4]}:{h[4:]}"
            port["network_id"] = net["id"]
            port["revision_number"] = 3
            port["security_groups"] = []
            port["tags"] = []
            port["updated_at"] = ts[ci + 1]
            self.ports.append(port)

    def _unbound_floating_ips(self):
        rnd = self.rng.random
        fip_seq = self.fip_seq
        tenants = [i for i, n in enumerate(self.networks) if n is not None and i > 0] or [0]
        for _ in range(max(2, self.n // 250)):
            pidx = tenants[int(rnd() * len(tenants))]
            pid = self.projects[pidx]["id"]
            ci = self._ts_index()
            self.floating_ips.append({
                "router_id": None,
                "description": "",
                "dns_domain": "",
                "dns_name": "",
                "created_at": self.ts[ci],
                "updated_at": self.ts[ci + 1 + int(rnd() * 60)],
                "revision_number": 3,
                "project_id": pid,
                "tenant_id": pid,
                "floating_network_id": self.public_net_id,
                "fixed_ip_address": None,
                "floating_ip_address": f"198.{18 + fip_seq // 65024}.{(fip_seq // 254) % 256}.{fip_seq % 254 + 1}",
                "port_id": None,
                "id": self.uuid(),
                "status": "DOWN",
                "port_details": None,
                "tags": [],
            })
            fip_seq += 1

    def _networking(self):
        """Network, subnet and router records for the networks the ports live on, and a few address groups."""
        rnd = self.rng.random
        projects = self.projects
        self.network_items, self.subnet_items, self.router_items, self.address_groups = [], [], [], []
        public_subnet = self.uuid()
        self._network(self.public_net_id, "public", 0, external=True,
                      subnets=[(public_subnet, "198.18.0.0/15", "198.18.0.1", False)])
        provider = self.provider
        self._network(provider["id"], provider["name"], 0, shared=True,
                      subnets=[(provider["subnet4"], "172.16.0.0/12", "172.16.0.1", True)])
        for pidx, net in enumerate(self.networks):
            if net is None:
                continue
            subnets = [(net["subnet4"], f"{net['v4']}0.0/16", f"{net['v4']}0.1", True)]
            if net["subnet6"]:
                subnets.append((net["subnet6"], f"{net['v6']}/64", f"{net['v6']}1", True))
            self._network(net["id"], net["name"], pidx, subnets=subnets)
            pid = projects[pidx]["id"]
            ci = self._ts_index()
            gateway = (self.fip_seq + pidx) % 65024
            gateway_ip = f"198.19.{gateway // 254 % 256}.{gateway % 254 + 1}"
            inside = [{"subnet_id": subnet_id, "ip_address": ip} for subnet_id, _cidr, ip, _dhcp in subnets]
            self._router_port(self.routers[pidx], pid, net["id"], inside, "network:router_interface", ci)
            self._router_port(self.routers[pidx], "", self.public_net_id,
                              [{"subnet_id": public_subnet, "ip_address": gateway_ip}], "network:router_gateway", ci)
            self.router_items.append({
                "admin_state_up": True, "availability_zone_hints": [], "availability_zones": ["nova"],
                "created_at": self.ts[ci], "description": "", "distributed": False,
                "external_gateway_info": {
                    "enable_snat": rnd() < 0.95, "network_id": self.public_net_id,
                    "external_fixed_ips": [{"ip_address": gateway_ip, "subnet_id": public_subnet}],
                },
                "flavor_id": None, "ha": False, "id": self.routers[pidx], "name": f"{projects[pidx]['name']}-router",
                "revision_number": 4, "routes": [], "status": "ACTIVE", "updated_at": self.ts[ci + 1],
                "project_id": pid, "tenant_id": pid, "service_type_id": None, "tags": [], "conntrack_helpers": [],
            })
        tenants = [i for i, n in enumerate(self.networks) if n is not None and i > 0] or [0]
        for n in range(max(2, self.n // 500)):
            pid = projects[tenants[int(rnd() * len(tenants))]]["id"]
            wide = rnd() < 0.1  # a group that holds the whole internet, as some operators make
            addresses = (["0.0.0.0/0", "::/0"] if wide else
                         sorted({_PRIVATE_V4[int(rnd() * len(_PRIVATE_V4))] for _ in range(1 + int(rnd() * 3))}))
            self.address_groups.append({"id": self.uuid(), "name": f"addresses-{n}", "project_id": pid,
                                        "tenant_id": pid, "addresses": addresses, "description": ""})

    def _router_port(self, router_id, project_id, network_id, fixed_ips, owner, ci):
        h = f"{self.rng.getrandbits(24):06x}"
        port = dict(_PORT_TEMPLATE, project_id=project_id, tenant_id=project_id, allowed_address_pairs=[],
                    created_at=self.ts[ci], device_id=router_id, device_owner=owner,
                    dns_assignment=_dns_assignment(fixed_ips), extra_dhcp_opts=[], fixed_ips=fixed_ips,
                    id=self.uuid(), mac_address=f"fa:16:3e:{h[:2]}:{h[2:4]}:{h[4:]}", network_id=network_id,
                    security_groups=[], tags=[], updated_at=self.ts[ci + 1], port_security_enabled=False)
        self.ports.append(port)

    def _network(self, network_id, name, pidx, subnets, external=False, shared=False):
        pid = self.projects[pidx]["id"]
        ci = self._ts_index()
        created, updated = self.ts[ci], self.ts[ci + 1]
        self.network_items.append({
            "admin_state_up": True, "availability_zone_hints": [], "availability_zones": ["nova"],
            "created_at": created, "dns_domain": "", "id": network_id, "ipv4_address_scope": None,
            "ipv6_address_scope": None, "l2_adjacency": True, "mtu": 1500 if external or shared else 1450,
            "name": name, "port_security_enabled": True, "project_id": pid,
            "provider:network_type": "flat" if external or shared else "vxlan",
            "provider:physical_network": "physnet1" if external or shared else None,
            "provider:segmentation_id": None if external or shared else 1000 + pidx,
            "qos_policy_id": None, "revision_number": 2, "router:external": external, "shared": shared,
            "status": "ACTIVE", "subnets": [subnet[0] for subnet in subnets], "tags": [], "tenant_id": pid,
            "updated_at": updated, "description": "", "is_default": external,
        })
        for subnet_id, cidr, gateway, dhcp in subnets:
            version = 6 if ":" in cidr else 4
            self.subnet_items.append({
                "name": f"{name}-v{version}", "enable_dhcp": dhcp, "network_id": network_id, "segment_id": None,
                "project_id": pid, "tenant_id": pid, "dns_nameservers": [], "dns_publish_fixed_ip": False,
                "allocation_pools": [{"start": gateway[:-1] + "2", "end": gateway[:-1] + ("ffff" if version == 6
                                                                                        else "254")}],
                "host_routes": [], "ip_version": version, "gateway_ip": gateway, "cidr": cidr, "id": subnet_id,
                "created_at": created, "description": "", "ipv6_address_mode": "slaac" if version == 6 else None,
                "ipv6_ra_mode": "slaac" if version == 6 else None, "revision_number": 0, "service_types": [],
                "subnetpool_id": None, "tags": [], "updated_at": updated, "router:external": external,
            })

    def _identity(self):
        """Keystone users (one per 10 servers, at least the projects' own), their roles per project
        (`_roles`), and an application credential for about one user in ten. Most users have MFA and an
        expiring password; some do not, a few are disabled, and the admin role sits on a few tenant projects."""
        rng = self.rng
        rnd = rng.random
        ts = self.ts_us
        projects = self.projects
        self.users, self.application_credentials = [], []
        owners = [(pidx, uid) for pidx, ids in enumerate(self.project_users) for uid in ids]
        extra = max(0, self.n // 10 - len(owners))
        owners += [(1 + int(rnd() * max(1, len(projects) - 2)), self.hex32()) for _ in range(extra)]
        login = {self.admin_user_id: "admin", self.member_user_id: "member"}
        for n, (pidx, uid) in enumerate(owners):
            pid = projects[pidx]["id"]
            roll = rnd()
            options = {}
            if uid in login or roll < 0.7:
                options = {"multi_factor_auth_enabled": True, "multi_factor_auth_rules": [["password", "totp"]]}
            elif roll < 0.75:
                options = {"multi_factor_auth_enabled": True}
            elif roll < 0.78:
                options = {"ignore_password_expiry": True}
            expires = None if rnd() < 0.2 else ts[self._ts_index()]
            roles = {pid: ["member"]}
            if uid == self.admin_user_id:
                roles = {pid: ["admin", "ResellerAdmin"]}  # Swift's reseller admin: reads every account
            elif pidx not in (0, len(projects) - 1) and rnd() < 0.002:
                roles[pid] = ["admin", "member"]
            enabled = uid in login or rnd() >= 0.03
            self.users.append({
                "id": uid, "name": login.get(uid, f"{projects[pidx]['name']}-user-{n + 1}"), "domain_id": "default",
                "enabled": enabled, "default_project_id": pid, "password_expires_at": expires, "options": options,
                "links": {"self": f"{IDENTITY_URL}/v3/users/{uid}"}, "_roles": roles,
            })
            if rnd() < 0.1:
                cid = self.hex32()
                expiry = None if rnd() < 0.3 else ts[self._ts_index()]
                self.application_credentials.append({
                    "id": cid, "name": f"automation-{n + 1}", "description": None, "project_id": pid,
                    "roles": [{"id": role_id("member"), "name": "member", "domain_id": None}],
                    "unrestricted": len(self.application_credentials) % 10 == 3, "expires_at": expiry,
                    "access_rules": [],
                    "links": {"self": f"{IDENTITY_URL}/v3/users/{uid}/application_credentials/{cid}"},
                    "_user_id": uid,
                })

    def _cloud(self):
        admin_project = self.projects[0]["id"]
        member_project = self.projects[1]["id"]
        return {
            "region": "RegionOne",
            "compute_max_microversion": "2.96",
            "keystone_list_limit": None,
            "users": [
                {"id": self.admin_user_id, "name": "admin", "password": ADMIN_PASSWORD, "domain": "Default",
                 "roles": {admin_project: ["admin", "ResellerAdmin"]}, "default_project_id": admin_project},
                {"id": self.member_user_id, "name": "member", "password": MEMBER_PASSWORD, "domain": "Default",
                 "roles": {member_project: ["member"]}, "default_project_id": member_project},
            ],
            "application_credentials": [
                {"id": self.hex32(), "secret": f"synthetic-{self.hex32()}", "user_id": self.admin_user_id,
                 "project_id": admin_project},
            ],
        }


def role_id(name: str) -> str:
    """The id of a role the fixture names only: the fake cloud's role list and tokens carry the same."""
    return uuid.uuid5(uuid.NAMESPACE_URL, name).hex


def _dns_assignment(fixed_ips):
    out = []
    for fixed in fixed_ips:
        ip = fixed["ip_address"]
        hostname = "host-" + (ip.replace(":", "-") if ":" in ip else ip.replace(".", "-"))
        out.append({"hostname": hostname, "ip_address": ip, "fqdn": hostname + ".openstacklocal."})
    return out


def _ingress_from_group(group_id):
    return (
        ("ingress", "IPv4", None, None, None, None, group_id),
        ("ingress", "IPv6", None, None, None, None, group_id),
    )


def _rule_spec(kind, rnd, group_ids):
    if kind == 0:
        p = _SENSITIVE_PORTS[int(rnd() * len(_SENSITIVE_PORTS))]
        return ("ingress", "IPv4", "tcp", p, p, "0.0.0.0/0", None)
    if kind == 1:
        p = _SENSITIVE_PORTS[int(rnd() * len(_SENSITIVE_PORTS))]
        return ("ingress", "IPv6", "tcp", p, p, "::/0", None)
    if kind == 2:
        p = _WEB_PORTS[int(rnd() * len(_WEB_PORTS))]
        return ("ingress", "IPv4", "tcp", p, p, "0.0.0.0/0", None)
    if kind == 3:
        p = _WEB_PORTS[int(rnd() * len(_WEB_PORTS))]
        return ("ingress", "IPv6", "tcp", p, p, "::/0", None)
    if kind == 4:
        p = _APP_PORTS[int(rnd() * len(_APP_PORTS))]
        if rnd() < 0.1:
            return ("ingress", "IPv6", "tcp", p, p, _PRIVATE_V6[int(rnd() * 2)], None)
        return ("ingress", "IPv4", "tcp", p, p, _PRIVATE_V4[int(rnd() * len(_PRIVATE_V4))], None)
    if kind == 5:
        p = _APP_PORTS[int(rnd() * len(_APP_PORTS))]
        net = "198.51.100" if rnd() < 0.5 else "203.0.113"
        return ("ingress", "IPv4", "tcp", p, p, f"{net}.{1 + int(rnd() * 254)}/32", None)
    if kind == 6:
        p = _UDP_PORTS[int(rnd() * len(_UDP_PORTS))]
        prefix = "0.0.0.0/0" if rnd() < 0.5 else _PRIVATE_V4[int(rnd() * len(_PRIVATE_V4))]
        return ("ingress", "IPv4", "udp", p, p, prefix, None)
    if kind == 7:
        prefix = "0.0.0.0/0" if rnd() < 0.6 else _PRIVATE_V4[int(rnd() * len(_PRIVATE_V4))]
        if rnd() < 0.5:
            return ("ingress", "IPv4", "icmp", 8, 0, prefix, None)
        return ("ingress", "IPv4", "icmp", None, None, prefix, None)
    if kind == 8:
        return ("ingress", "IPv6", "ipv6-icmp", None, None, "::/0", None)
    if kind == 9:
        remote = group_ids[int(rnd() * len(group_ids))]
        return ("ingress", "IPv4" if rnd() < 0.7 else "IPv6", None, None, None, None, remote)
    if kind == 10:
        lo, hi = _TCP_RANGES[int(rnd() * len(_TCP_RANGES))]
        prefix = "0.0.0.0/0" if rnd() < 0.4 else _PRIVATE_V4[int(rnd() * len(_PRIVATE_V4))]
        return ("ingress", "IPv4", "tcp", lo, hi, prefix, None)
    if kind == 11:
        return ("ingress", "IPv4", None, None, None, "0.0.0.0/0", None)
    if kind == 12:
        proto, p = (("6", 22), ("6", 8080), ("17", 514), ("6", 3389))[int(rnd() * 4)]
        return ("ingress", "IPv4", proto, p, p, _PRIVATE_V4[int(rnd() * len(_PRIVATE_V4))], None)
    if kind == 13:
        p = _APP_PORTS[int(rnd() * len(_APP_PORTS))]
        return ("ingress", "IPv4", "tcp", p, p, None, group_ids[int(rnd() * len(group_ids))])
    if kind == 14:
        return ("egress", "IPv4", "tcp", 443, 443, "0.0.0.0/0", None)
    p = _SENSITIVE_PORTS[int(rnd() * len(_SENSITIVE_PORTS))]
    return ("ingress", "IPv4", "tcp", p, p, None, None)


def _apportion(total, weights):
    """Split `total` into integers proportional to `weights` (largest remainder)."""
    weight_sum = sum(weights)
    shares = [total * w / weight_sum for w in weights]
    counts = [int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - shares[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts
