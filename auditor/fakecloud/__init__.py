"""A fake OpenStack cloud served over real HTTP, for the demo, the tests and the benchmarks."""

from auditor.fakecloud.fixture import load_fixture
from auditor.fakecloud.generate import generate_cloud
from auditor.fakecloud.faults import Fault
from auditor.fakecloud.server import FakeCloud

__all__ = ["FakeCloud", "Fault", "generate_cloud", "load_fixture"]
