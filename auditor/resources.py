"""Where the shipped data folders (rules/, reports/, sample_data/) are, in a wheel or in a source checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder `name` (rules, reports or sample_data) that ships with this installation."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{name}/ is not installed with auditor (looked in {_PACKAGE})")
