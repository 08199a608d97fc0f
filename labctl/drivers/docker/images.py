"""Lab host images for the docker driver: debootstrap recipes, local builds and the image cache.

No registry is needed: each suite's image is a ``debootstrap --variant=minbase`` tree with sshd,
docker.io and the files in ``image_files/``, imported with the SDK (``docker import``). Images
are tagged ``labctl-host:<suite>-<recipe hash 12>``; the hash covers everything that defines the
image (suite, packages, baked-in files, recipe version) but not the mirror it was fetched from,
so an image with the tag already present is the cache and a recipe change means a rebuild.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...debootstrap import (
    ImageRecipe,
    check_build_prerequisites,
    debootstrap_cache,
    finish_tree,
    image_exists,
    import_tree,
    install_files,
    new_build_dir,
    read_image_files,
    remove_tree,
    run_debootstrap,
)
from ...errors import ConfigError, LabError
from ...hosts import Progress
from ...paths import cache_dir

#: bump when the build steps change in a way the package list and files do not show
RECIPE_VERSION = 2
IMAGE_REPOSITORY = "labctl-host"

#: in every image: sshd, the tools of the loop disk (ext4, btrfs) and what dockerd needs anyway
COMMON_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "iproute2",
    "procps",
    "e2fsprogs",
    "btrfs-progs",
    "util-linux",
    "ca-certificates",
    "iptables",
    "tini",
)
#: the engine, per suite: trixie's docker.io only recommends the client
DOCKER_PACKAGES: dict[str, tuple[str, ...]] = {
    "bullseye": ("docker.io",),
    "bookworm": ("docker.io",),
    "trixie": ("docker.io", "docker-cli"),
}
#: only in images with python3: xfsprogs depends on python3 (xfs_scrub_all)
PYTHON3_PACKAGES: tuple[str, ...] = ("python3", "xfsprogs")
#: the default image of each suite (docker, python3, any backing filesystem)
BASE_PACKAGES: tuple[str, ...] = (*COMMON_PACKAGES, "docker.io", *PYTHON3_PACKAGES)
#: per-suite additions to the default image: trixie's docker.io only recommends the client;
#: bullseye gets python2.7 so the probe agent runs for real under 2.7 there
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "bullseye": ("python2.7",),  # python2.7-minimal lacks json, which the agent needs
    "bookworm": (),
    "trixie": ("docker-cli",),
}
SUITES: tuple[str, ...] = tuple(EXTRA_PACKAGES)

#: the Pythons an image can have: python3 (the suite's own), python2.7 only (bullseye), none
PYTHONS: tuple[str, ...] = ("python3", "python2.7", "none")
PYTHON27_SUITES: tuple[str, ...] = ("bullseye",)

#: files of image_files/ baked into the image: name -> (path in the image, mode)
IMAGE_FILES: dict[str, tuple[str, int]] = {
    "labctl-entrypoint": ("/usr/local/sbin/labctl-entrypoint", 0o755),
    "labctl-dockerd": ("/usr/local/sbin/labctl-dockerd", 0o755),
    "sshd-labctl.conf": ("/etc/ssh/sshd_config.d/labctl.conf", 0o644),
}
ENTRYPOINT = ["/usr/bin/tini", "--", "/usr/local/sbin/labctl-entrypoint"]

BUILD_TIMEOUT = 1800.0


def image_files_dir() -> Path:
    return Path(__file__).resolve().parent / "image_files"


def _read_image_files() -> dict[str, bytes]:
    return read_image_files(image_files_dir(), IMAGE_FILES)


@dataclass(frozen=True)
class Recipe(ImageRecipe):
    """Everything that defines one suite's lab host image (the mirror does not)."""

    version: int = RECIPE_VERSION
    #: docker.io preinstalled (False: provisioning installs it)
    docker: bool = True
    #: "python3" | "python2.7" (the only Python) | "none" (no Python at all)
    python: str = "python3"

    repository: ClassVar[str] = IMAGE_REPOSITORY

    @property
    def flavor(self) -> str:
        """ "" for the default image, else e.g. "nodocker", "py27", "nodocker-nopython"."""
        parts = [] if self.docker else ["nodocker"]
        parts += {"python3": [], "python2.7": ["py27"], "none": ["nopython"]}.get(
            self.python, [self.python]
        )
        return "-".join(parts)

    @property
    def name(self) -> str:
        """The suite and the flavor: "bookworm", "bookworm-nodocker"."""
        return f"{self.suite}-{self.flavor}" if self.flavor else self.suite

    def settings(self) -> dict[str, Any]:
        return {
            **self.common_settings(self.version),
            "flavor": self.flavor,
            "entrypoint": ENTRYPOINT,
            "changes": list(IMAGE_CHANGES),
            "files": {k: IMAGE_FILES.get(k, ("", 0)) for k in sorted(self.files)},
        }


def recipe_for(
    suite: str,
    *,
    docker: bool = True,
    python: str = "python3",
    files: Mapping[str, bytes] | None = None,
) -> Recipe:
    """The recipe of one image: a suite's default, or one without docker.io and/or python3.

    Images without python3 have no xfsprogs either (it depends on python3)."""
    if suite not in EXTRA_PACKAGES:
        raise ConfigError(f"unknown suite {suite!r}", hint=f"choose from {', '.join(SUITES)}")
    if python not in PYTHONS:
        raise ConfigError(f"unknown python {python!r}", hint=f"choose from {', '.join(PYTHONS)}")
    if python == "python2.7" and suite not in PYTHON27_SUITES:
        raise ConfigError(
            f"{suite} has no python2.7 package",
            hint=f"python2.7 images exist for {', '.join(PYTHON27_SUITES)}",
        )
    packages = list(COMMON_PACKAGES)
    if docker:
        packages += DOCKER_PACKAGES[suite]
    if python == "python3":
        packages += PYTHON3_PACKAGES
        packages += [
            p
            for p in EXTRA_PACKAGES[suite]
            if p not in packages and (docker or p not in DOCKER_PACKAGES[suite])
        ]
    elif python == "python2.7":
        packages.append("python2.7")
    return Recipe(
        suite=suite,
        packages=tuple(packages),
        files=dict(files or _read_image_files()),
        docker=docker,
        python=python,
    )


def build_log_path(recipe: Recipe) -> Path:
    return cache_dir() / "logs" / f"build-{recipe.name}-{recipe.short_hash}.log"


def _customize(root: Path, recipe: Recipe, mirror: str) -> None:
    """Turn a debootstrap tree into a lab host image tree."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "apt" / "sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    install_files(root, recipe.files, IMAGE_FILES)
    # no service starts from package scripts inside a lab host (provisioning may install more)
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # pam_loginuid cannot write loginuid in a container: make it optional so SSH sessions work
    pam = root / "etc" / "pam.d" / "sshd"
    if pam.exists():
        text = re.sub(
            r"^(session\s+)required(\s+pam_loginuid\.so)",
            r"\1optional\2",
            pam.read_text(),
            flags=re.M,
        )
        pam.write_text(text)
    info = {
        "suite": recipe.suite,
        "flavor": recipe.flavor,
        "docker": recipe.docker,
        "python": recipe.python,
        "recipe": recipe.digest,
        "packages": list(recipe.packages),
        "mirror": mirror,
    }
    finish_tree(root, info, ("var/log/bootstrap.log",))


#: image config set at import (``docker import --change``; 20.10 has no STOPSIGNAL there)
IMAGE_CHANGES: tuple[str, ...] = (
    "ENTRYPOINT " + json.dumps(ENTRYPOINT),
    "CMD []",
    "EXPOSE 22",
    "ENV LANG=C.UTF-8",
)


def _import(client: Any, root: Path, recipe: Recipe, log: Any) -> None:
    changes = [
        *IMAGE_CHANGES,
        f"LABEL labctl.recipe={recipe.short_hash} labctl.suite={recipe.suite}"
        f" labctl.flavor={recipe.flavor or 'default'}",
    ]
    import_tree(client, root, recipe.tag, changes, log)


_build_locks: dict[str, threading.Lock] = {}
_build_locks_guard = threading.Lock()


def _private_cache(shared: Path) -> Path:
    """A build's own package cache: hard links to the shared one's .debs (same filesystem).

    debootstrap downloads a missing .deb straight into its cache folder; two builds of one suite
    at once (e.g. an image and its no-docker variant) would write the same file. Each build gets
    its own folder and hands its new downloads back afterwards (``_return_to_cache``)."""
    private = Path(tempfile.mkdtemp(prefix=f".{shared.name}-", dir=shared.parent))
    for deb in shared.glob("*.deb"):
        try:
            os.link(deb, private / deb.name)
        except OSError:
            shutil.copy2(deb, private / deb.name)
    return private


def _return_to_cache(private: Path, shared: Path) -> None:
    for deb in private.glob("*.deb"):
        target = shared / deb.name
        if target.exists():
            continue
        try:
            os.link(deb, target)
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(deb, target)


def installed_packages(root: Path) -> list[str]:
    """Names of the packages dpkg has installed in a tree (from var/lib/dpkg/status)."""
    try:
        text = (root / "var" / "lib" / "dpkg" / "status").read_text(errors="replace")
    except OSError:
        return []
    names: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        name = re.search(r"^Package:\s*(\S+)", stanza, re.M)
        status = re.search(r"^Status:\s*(.*)$", stanza, re.M)
        if name and status and status.group(1).strip().endswith(" installed"):
            names.append(name.group(1))
    return names


def unwanted_packages(recipe: Recipe, installed: Iterable[str]) -> list[str]:
    """Installed packages a variant promises not to have (a dependency pulled them in)."""
    patterns = []
    if recipe.python == "none":
        patterns.append(r"^(lib)?python")
    elif recipe.python == "python2.7":
        patterns.append(r"^(lib)?python3")
    if not recipe.docker:
        patterns.append(r"^(docker\.io|docker-cli|containerd|runc)$")
    return sorted(p for p in installed if any(re.match(pat, p) for pat in patterns))


def build_image(
    client: Any, recipe: Recipe, mirror: str, *, progress: Progress | None = None
) -> str:
    """Build and import one image; return its tag. The temp tree goes on every path."""
    say = progress or (lambda _h, _m: None)
    who = recipe.name
    with _build_locks_guard:
        lock = _build_locks.setdefault(recipe.tag, threading.Lock())
    with lock:
        if image_exists(client, recipe.tag):
            return recipe.tag
        check_build_prerequisites()
        shared = debootstrap_cache(recipe.suite)
        shared.mkdir(parents=True, exist_ok=True)
        log_path = build_log_path(recipe)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = new_build_dir(who)
        root = tmp / "root"
        cache = _private_cache(shared)
        started = time.monotonic()
        try:
            with log_path.open("wb") as log:
                say(who, f"building image {recipe.tag} (debootstrap from {mirror})")
                try:
                    run_debootstrap(recipe, root, cache, mirror, log, image=f"{who} image",
                                    log_path=log_path, timeout=BUILD_TIMEOUT, host=who)  # fmt: skip
                finally:
                    _return_to_cache(cache, shared)
                bad = unwanted_packages(recipe, installed_packages(root))
                if bad:
                    raise LabError(
                        f"the {who} image would contain {', '.join(bad)} "
                        "(pulled in as a dependency)",
                        host=who,
                        hint="the recipe's package list must change; see " + str(log_path),
                    )
                _customize(root, recipe, mirror)
                say(who, "importing the image")
                try:
                    _import(client, root, recipe, log)
                except Exception as exc:
                    why = getattr(exc, "explanation", None) or exc
                    raise LabError(
                        f"importing the {who} image failed: {why}",
                        host=who,
                        hint=f"see {log_path}",
                    ) from exc
            say(who, f"built {recipe.tag} in {time.monotonic() - started:.0f} s")
            return recipe.tag
        finally:
            remove_tree(tmp)
            shutil.rmtree(cache, ignore_errors=True)


def ensure_recipes(
    client: Any,
    recipes: Iterable[Recipe],
    *,
    mirror: str | Callable[[], str],
    progress: Progress | None = None,
) -> list[str]:
    """Tags of the images of ``recipes``, building the missing ones in parallel."""
    unique = {r.tag: r for r in recipes}
    missing = [r for tag, r in unique.items() if not image_exists(client, tag)]
    if not missing:
        return list(unique)
    check_build_prerequisites()
    url = mirror() if callable(mirror) else mirror
    errors: list[LabError] = []
    with ThreadPoolExecutor(max_workers=len(missing), thread_name_prefix="labctl-build") as pool:
        futures = [pool.submit(build_image, client, r, url, progress=progress) for r in missing]
        for fut in futures:
            try:
                fut.result()
            except LabError as exc:
                errors.append(exc)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise LabError("building lab host images failed: " + "; ".join(e.line() for e in errors))
    prune_stale(client, missing, progress=progress)
    return list(unique)


def prune_stale(client: Any, built: Iterable[Recipe], *, progress: Progress | None = None) -> None:
    """Remove images of older versions of the recipes just built (same name, other hash).

    Each recipe change leaves a ~500 MB image behind otherwise; an image still used by a
    container is kept (the engine refuses to remove it).
    """
    import docker.errors

    for recipe in built:
        stale = re.compile(
            rf"^{re.escape(IMAGE_REPOSITORY)}:{re.escape(recipe.name)}-[0-9a-f]{{12}}$"
        )
        for image in client.images.list(name=IMAGE_REPOSITORY):
            for tag in image.tags:
                if tag != recipe.tag and stale.match(tag):
                    with contextlib.suppress(docker.errors.APIError):
                        client.images.remove(tag)
                        if progress is not None:
                            progress(recipe.name, f"removed the outdated image {tag}")
