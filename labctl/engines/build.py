"""Build one engine from its checked source in a throwaway container of the build image.

The container has no network, reads the source archive and patches read-only, and builds in a
fixed GOPATH (paths end up in the binary), so the same inputs give the same bytes; a build is
cached under the key of those inputs and reused until one of them changes (or --force).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import debootstrap
from ..errors import LabError
from ..hosts import Progress
from ..locks import file_lock
from ..paths import cache_dir
from . import buildimage, store
from .elf import is_static_elf
from .patchset import Patch, load_patches, patches_dir
from .source import Source, is_url, resolve_source, sha256_file
from .versions import DOCKER_PKG, KnownVersion, known_version

BUILD_SCRIPT = "build-docker.sh"
CONTAINER_TIMEOUT = 1800.0
#: where the build runs inside the container (fixed: the path is part of the binary)
GOPATH = "/go:/go-vendor"


@dataclass(frozen=True)
class BuildOutcome:
    build: store.EngineBuild
    cached: bool
    seconds: float


def build_flags(known: KnownVersion) -> dict[str, Any]:
    """The go build settings of the era's static binary bundle (hack/make/binary of 1.5.0)."""
    return {
        "tags": list(known.build_tags),
        "ldflags": [
            "-w",
            f"-X {DOCKER_PKG}/dockerversion.GITCOMMIT={known.short_commit}",
            f"-X {DOCKER_PKG}/dockerversion.VERSION={known.version}",
            "-linkmode external",
            f"-X {DOCKER_PKG}/dockerversion.IAMSTATIC=true",
            "-extldflags '-static -lpthread -Wl,--unresolved-symbols=ignore-in-object-files'",
        ],
        "gopath": GOPATH,
        "flags": ["-a", "-installsuffix", "netgo"],
    }


def build_script() -> bytes:
    return (buildimage.scripts_dir() / BUILD_SCRIPT).read_bytes()


def build_inputs(
    known: KnownVersion, patches: list[Patch], recipe: buildimage.BuildImageRecipe
) -> dict[str, Any]:
    """Everything the binary's bytes depend on; a cached build with other inputs is stale."""
    return {
        "version": known.version,
        "commit": known.commit,
        "patches": [p.sha256 for p in patches],
        "build_script_sha256": hashlib.sha256(build_script()).hexdigest(),
        "build_flags": build_flags(known),
        "build_image_recipe": recipe.digest,
    }


def parse_buildinfo(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


def version_line(binary: Path) -> str:
    try:
        out = subprocess.run(
            [str(binary), "-v"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"the built binary {binary} does not run ({exc})") from exc
    return (out.stdout or out.stderr).strip()


def _stage_inputs(staging: Path, known: KnownVersion, patches: list[Patch]) -> Path:
    """The container's read-only /in: the build script, the patches and their series."""
    inputs = staging / "in"
    (inputs / "patches").mkdir(parents=True)
    (inputs / BUILD_SCRIPT).write_bytes(build_script())
    for patch in patches:
        shutil.copyfile(patch.path, inputs / "patches" / patch.name)
    series = patches_dir(known.version) / "series"
    if series.is_file():
        shutil.copyfile(series, inputs / "patches" / "series")
    (inputs / "source.tar").touch()  # the mount point of the archive (mounted over it)
    return inputs


def _run_container(
    client: Any, image: str, staging: Path, source: Source, known: KnownVersion,
    patches: list[Patch], log_path: Path,
) -> None:  # fmt: skip
    import docker.errors
    import requests

    inputs = _stage_inputs(staging, known, patches)
    out = staging / "out"
    out.mkdir()
    flags = build_flags(known)
    try:
        container = client.containers.create(
            image,
            command=["/bin/sh", f"/in/{BUILD_SCRIPT}"],
            name=f"labctl-engine-build-{known.version}-{os.getpid()}",
            network_mode="none",
            volumes={
                str(inputs): {"bind": "/in", "mode": "ro"},
                str(source.path): {"bind": "/in/source.tar", "mode": "ro"},
                str(out): {"bind": "/out", "mode": "rw"},
            },
            environment={
                "GO_BUILDFLAGS": " ".join(flags["flags"]),
                "BUILDTAGS": " ".join(flags["tags"]),
                "GO_LDFLAGS": " ".join(flags["ldflags"]),
                "OWNER": f"{os.getuid()}:{os.getgid()}",
            },
            labels={"labctl.kind": "engine-build"},
        )
    except docker.errors.APIError as exc:
        raise LabError(f"cannot create the build container: {exc.explanation or exc}") from exc
    code = -1
    try:
        container.start()
        code = int(container.wait(timeout=CONTAINER_TIMEOUT).get("StatusCode", -1))
    except docker.errors.APIError as exc:
        raise LabError(f"the build container failed: {exc.explanation or exc}") from exc
    except requests.exceptions.RequestException:  # the wait's read timeout: the build hung
        code = -1
    finally:
        with contextlib.suppress(docker.errors.APIError, OSError):
            log_path.write_bytes(container.logs(stdout=True, stderr=True))
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    if code != 0:
        raise LabError(
            f"building Docker {known.version} failed ("
            + ("timed out" if code == -1 else f"exit {code}")
            + ")",
            hint=f"see {log_path}",
        )


def _docker_client() -> Any:
    from ..dockerclient import connect

    return connect("engines are built in a container")


def _check_binary(binary: Path, known: KnownVersion, log_path: Path) -> str:
    """The binary's `docker -v` line, after checking it is static and says the right version."""
    if not binary.is_file():
        raise LabError(f"the build left no binary at {binary}", hint=f"see {log_path}")
    if not is_static_elf(binary):
        raise LabError(f"the built {binary} is not a static ELF executable", hint=f"see {log_path}")
    line = version_line(binary)
    if line != known.expected_version_line:
        raise LabError(
            f"the built binary says {line!r}, not {known.expected_version_line!r}",
            hint=f"see {log_path}",
        )
    return line


def build_engine(
    version: str,
    *,
    source: str | None = None,
    force: bool = False,
    client: Any = None,
    mirror: str | None = None,
    progress: Progress | None = None,
) -> BuildOutcome:
    """Build (or find cached) the static docker binary of ``version`` from a checked source."""
    say = progress or (lambda _h, _m: None)
    started = time.monotonic()
    known = known_version(version)
    who = f"docker-{known.version}"
    patches = load_patches(known.version)
    recipe = buildimage.build_image_recipe()
    inputs = build_inputs(known, patches, recipe)
    final = store.build_dir(known.version, known.commit)
    origin = source or known.url
    if not is_url(origin):
        # a wrong file is an error even when a build is cached (its content: when building)
        resolve_source(origin, known, content=False)
    with file_lock(store.engines_dir() / f".lock-docker-{known.version}"):
        if not force:
            cached = store.load_build(final)
            if cached is not None and cached.manifest.get("inputs") == inputs:
                say(who, f"cached: {cached.binary} (sha256 {cached.sha256[:12]}; --force rebuilds)")
                return BuildOutcome(cached, True, time.monotonic() - started)
            if cached is not None:
                say(who, "the cached build is outdated (patches, flags or build image changed)")
        if is_url(origin):
            say(who, f"downloading {origin}")
        checked = resolve_source(origin, known)
        say(
            who,
            f"source {checked.origin}: commit {checked.commit[:12]} (v{known.version}),"
            f" files match its tree {checked.tree[:12]}",
        )
        docker_client = client if client is not None else _docker_client()
        image = buildimage.ensure_build_image(
            docker_client, recipe, mirror=mirror or debootstrap.detect_mirror, progress=progress
        )
        log_path = cache_dir() / "logs" / f"engine-{final.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        staging = store.engines_dir() / f".{final.name}.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            say(who, f"building in a {image} container (no network, {len(patches)} patches)")
            t0 = time.monotonic()
            _run_container(docker_client, image, staging, checked, known, patches, log_path)
            build_seconds = time.monotonic() - t0
            binary = staging / "out" / store.BINARY
            line = _check_binary(binary, known, log_path)
            info = parse_buildinfo((staging / "out" / "buildinfo").read_text(errors="replace"))
            result = staging / "result"
            result.mkdir()
            os.replace(binary, result / store.BINARY)
            shutil.copyfile(log_path, result / "build.log")
            manifest = make_manifest(
                known, checked, result / store.BINARY, patches, recipe, image, info, line,
                inputs, build_seconds,
            )  # fmt: skip
            store.write_manifest(result, manifest)
            store.install_build(result, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    built = store.load_build(final)
    if built is None:
        raise LabError(f"the build in {final} is incomplete after writing it")
    say(who, f"built {built.binary} in {build_seconds:.0f} s (sha256 {built.sha256[:12]})")
    return BuildOutcome(built, False, time.monotonic() - started)


def make_manifest(
    known: KnownVersion,
    source: Source,
    binary: Path,
    patches: list[Patch],
    recipe: buildimage.BuildImageRecipe,
    image: str,
    info: dict[str, str],
    line: str,
    inputs: dict[str, Any],
    build_seconds: float,
) -> dict[str, Any]:
    return {
        "version": known.version,
        "commit": known.commit,
        "version_line": line,
        "source": {
            "origin": source.origin if is_url(source.origin) else str(source.path),
            "sha256": source.sha256,
            "commit": source.commit,
            "tree": source.tree,
        },
        "binary_sha256": sha256_file(binary),
        "binary_size": binary.stat().st_size,
        "static": True,
        "file": info.get("file", ""),
        "go": info.get("go", ""),
        "gcc": info.get("gcc", ""),
        "libdevmapper": info.get("libdevmapper", ""),
        "build_image": {
            "tag": image,
            "recipe": recipe.digest,
            "suite": recipe.suite,
            "packages": list(recipe.packages),
        },
        "patches": [p.as_dict() for p in patches],
        "build_flags": build_flags(known),
        "inputs": inputs,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(build_seconds, 1),
    }
