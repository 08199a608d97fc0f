"""Docker 1.5.0 built from source for real: the static binary, its manifest, the cache.

Needs root, debootstrap and the Docker engine; the build image is debootstrapped on first use
(~4-5 min under load, cached by recipe hash like the lab images), a build takes 1-3 min. The
source is the shared tarball (``conftest.find_engine_source``), never the network. The build
goes to the user's engine cache (like the lab images): a forced rebuild must reproduce it
byte for byte, so the cache ends up as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.engines import build_engine, find_engine, patchset, require_engine
from labctl.engines.elf import is_static_elf
from labctl.engines.versions import known_version

pytestmark = [pytest.mark.lab, pytest.mark.engine, pytest.mark.timeout(2400)]


def _say(host: str, message: str) -> None:
    print(f"{host} {message}", file=sys.stderr, flush=True)


def test_docker_1_5_0_builds_static_reproducible_and_cached(engine_source: Path) -> None:
    known = known_version("1.5.0")
    t0 = time.monotonic()
    first = build_engine("1.5.0", source=str(engine_source), progress=_say)
    _say("timing", f"first build: {time.monotonic() - t0:.1f} s (cached={first.cached})")
    b = first.build

    # the binary: static, its own dockerinit, stamped like upstream's
    assert is_static_elf(b.binary)
    if shutil.which("file"):
        assert (
            "statically linked"
            in subprocess.run(
                ["file", "-b", str(b.binary)], capture_output=True, text=True, check=True
            ).stdout
        )
    out = subprocess.run([str(b.binary), "-v"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "Docker version 1.5.0, build a8a31ef"
    assert hashlib.sha256(b.binary.read_bytes()).hexdigest() == b.sha256

    # the manifest names what was built, from what, with what
    m = b.manifest
    assert (m["version"], m["commit"]) == ("1.5.0", known.commit)
    assert m["source"]["sha256"] == hashlib.sha256(engine_source.read_bytes()).hexdigest()
    assert m["source"]["commit"] == known.commit
    assert m["binary_sha256"] == b.sha256 and m["binary_size"] == b.binary.stat().st_size
    assert m["go"].startswith("go version go1.19") and m["gcc"].startswith("gcc (Debian 12")
    assert m["libdevmapper"].startswith("lvm2_")
    assert m["build_image"]["tag"].startswith("labctl-engine-build:bookworm-")
    assert [(p["name"], p["sha256"]) for p in m["patches"]] == [
        (p.name, p.sha256) for p in patchset.load_patches("1.5.0")
    ]
    assert "-X github.com/docker/docker/dockerversion.IAMSTATIC=true" in m["build_flags"]["ldflags"]
    assert m["built_at"].endswith("Z") and m["build_seconds"] > 0
    assert find_engine("1.5.0") == b and require_engine("1.5.0") == b

    # cached: instant, the same build
    t1 = time.monotonic()
    again = build_engine("1.5.0", source=str(engine_source), progress=_say)
    cached_s = time.monotonic() - t1
    _say("timing", f"cached build: {cached_s:.2f} s")
    assert again.cached and again.build == b and cached_s < 2.0

    # forced: rebuilt from scratch in a new container, byte-identical
    t2 = time.monotonic()
    forced = build_engine("1.5.0", source=str(engine_source), force=True, progress=_say)
    _say("timing", f"forced rebuild: {time.monotonic() - t2:.1f} s")
    assert not forced.cached
    assert forced.build.sha256 == b.sha256
    assert forced.build.manifest["built_at"] >= b.manifest["built_at"]
    assert forced.build.manifest["source"]["tree"] == known.tree  # the files were the commit's

    # the CLI lists it
    listed = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "engine", "list"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert b.sha256[:12] in listed.stdout and str(b.binary) in listed.stdout
