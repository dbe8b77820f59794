"""The repository alone passes its tests: nothing in the suite reads from outside the clone."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO, SAMPLES

# A path that leaves the repository: a parent of REPO, `..` in a path literal, or the team's shared folder.
_OUTSIDE = re.compile(r"REPO\.parent|parents\[[2-9]\]|['\"]\.\./|\bshared/openstack-api-samples|['\"]shared['\"]\s*/")


def test_the_api_samples_are_inside_the_repository_with_their_sources():
    assert SAMPLES.is_dir() and REPO in SAMPLES.resolve().parents
    sources = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in sources
    listed = set(re.findall(r"^\| ([\w./-]+\.(?:json|txt)) \|", sources, re.MULTILINE))
    present = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    assert present and present <= listed, sorted(present - listed)  # every file says where it came from


def test_no_test_reads_outside_the_repository():
    offenders = []
    for path in sorted(Path(REPO / "tests").glob("*.py")) + sorted(Path(REPO / "bench").glob("*.py")):
        if path.name == "test_standalone.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders
