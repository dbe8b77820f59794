"""auditor: compliance and inventory auditing for OpenStack clouds."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("openstack-auditor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
