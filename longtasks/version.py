"""Generator version: part of every sample and of config hashes; bump when outputs change."""

from importlib.metadata import PackageNotFoundError, version

try:
    GENERATOR_VERSION = version("longtasks")
except PackageNotFoundError:  # running from a source tree that is not installed
    GENERATOR_VERSION = "0.1.0"


def faker_version() -> str:
    """Worlds draw names from Faker's en_US tables, so its version is part of what fixes the data."""
    try:
        return version("faker")
    except PackageNotFoundError:
        return "unknown"
