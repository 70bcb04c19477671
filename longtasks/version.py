"""Versions that fix the data: the generator's own, and those of packages whose tables a family draws from."""

from importlib.metadata import PackageNotFoundError, version

try:
    GENERATOR_VERSION = version("longtasks")
except PackageNotFoundError:  # running from a source tree that is not installed
    GENERATOR_VERSION = "0.3.0"


def package_version(name: str) -> str:
    """Installed version of `name` (e.g. Faker, whose name tables the story worlds draw from)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
