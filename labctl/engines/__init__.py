"""Docker engines built from source, for running the study with the study's own engine.

The article measured Docker 1.5.0 (build a8a31ef); no distribution ships it any more, so labctl
builds it: from a source archive checked by its git commit id, with a few one-line patches, in
a cached build image made only of Debian packages, into a static binary cached with a manifest.
The rest of labctl asks for a build with ``require_engine("1.5.0")``.
"""

from __future__ import annotations

from .build import BuildOutcome, build_engine
from .store import EngineBuild, find_engine, list_engines, require_engine
from .versions import known_versions

__all__ = [
    "BuildOutcome",
    "EngineBuild",
    "build_engine",
    "find_engine",
    "known_versions",
    "list_engines",
    "require_engine",
]
