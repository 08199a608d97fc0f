"""labctl: does one Docker container eating a shared resource hurt its host?"""

from importlib import metadata


def _version() -> str:
    """The installed distribution's version (pyproject.toml's); a checkout that was never
    installed has none."""
    try:
        return metadata.version("labctl")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
