"""Lab host images for the docker driver: debootstrap recipes, local builds and the image cache.

No registry is needed: each suite's image is a ``debootstrap --variant=minbase`` tree with sshd,
docker.io and the files in ``docker_image/``, imported with the SDK (``docker import``). Images
are tagged ``labctl-host:<suite>-<recipe hash 12>``; the hash covers everything that defines the
image (suite, packages, baked-in files, recipe version) but not the mirror it was fetched from,
so an image with the tag already present is the cache and a recipe change means a rebuild.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import ConfigError, LabError
from labctl.paths import cache_dir

#: bump when the build steps change in a way the package list and files do not show
RECIPE_VERSION = 2
IMAGE_REPOSITORY = "labctl-host"
BUILD_DIR_PREFIX = "labctl-build-"
MIRROR_ENV = "LABCTL_DEBIAN_MIRROR"

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

#: files of docker_image/ baked into the image: name -> (path in the image, mode)
IMAGE_FILES: dict[str, tuple[str, int]] = {
    "labctl-entrypoint": ("/usr/local/sbin/labctl-entrypoint", 0o755),
    "labctl-dockerd": ("/usr/local/sbin/labctl-dockerd", 0o755),
    "sshd-labctl.conf": ("/etc/ssh/sshd_config.d/labctl.conf", 0o644),
}
ENTRYPOINT = ["/usr/bin/tini", "--", "/usr/local/sbin/labctl-entrypoint"]

BUILD_TIMEOUT = 1800.0

Progress = Callable[[str, str], None]


def drop_apt_downloads(root: Path) -> None:
    """Remove the package lists and .debs debootstrap left in an image tree (not needed, large)."""
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
        d = root / sub
        if d.is_dir():
            for entry in d.iterdir():
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()


def recipe_digest(spec: dict[str, Any], files: Mapping[str, bytes]) -> str:
    """sha256 over everything that defines an image: its settings and the files baked in."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for name in sorted(files):
        h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def image_files_dir() -> Path:
    return Path(__file__).resolve().parent / "docker_image"


def _read_image_files() -> dict[str, bytes]:
    return read_image_files(image_files_dir(), IMAGE_FILES)


def read_image_files(
    base: Path, names: Iterable[str], what: str = "lab host image"
) -> dict[str, bytes]:
    """The files baked into an image, by name; a missing one is a LabError."""
    files: dict[str, bytes] = {}
    for name in names:
        path = base / name
        try:
            files[name] = path.read_bytes()
        except OSError as exc:
            raise LabError(
                f"the {what} file {path} is missing ({exc.strerror})",
                hint="reinstall labctl",
            ) from exc
    return files


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one suite's lab host image (the mirror does not)."""

    suite: str
    packages: tuple[str, ...]
    files: Mapping[str, bytes] = field(repr=False)
    version: int = RECIPE_VERSION
    #: docker.io preinstalled (False: provisioning installs it)
    docker: bool = True
    #: "python3" | "python2.7" (the only Python) | "none" (no Python at all)
    python: str = "python3"

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

    @property
    def digest(self) -> str:
        return recipe_digest(
            {
                "version": self.version,
                "suite": self.suite,
                "flavor": self.flavor,
                "variant": "minbase",
                "packages": sorted(self.packages),
                "entrypoint": ENTRYPOINT,
                "changes": list(IMAGE_CHANGES),
                "files": {k: IMAGE_FILES.get(k, ("", 0)) for k in sorted(self.files)},
            },
            self.files,
        )

    @property
    def short_hash(self) -> str:
        return self.digest[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.name}-{self.short_hash}"


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


# --- mirror detection -------------------------------------------------------------------------


def _uris_from_one_line(text: str) -> list[str]:
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        rest = words[1:]
        if rest and rest[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if rest:
            uris.append(rest[0])
    return uris


def _uris_from_deb822(text: str) -> list[str]:
    uris: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.lstrip().startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
                continue
            if ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        uris.extend(fields.get("uris", "").split())
    return uris


def _is_debian_mirror(uri: str) -> bool:
    return bool(re.match(r"^https?://", uri)) and uri.rstrip("/").endswith("/debian")


def detect_mirror(
    *,
    environ: Mapping[str, str] | None = None,
    sources_list: Path = Path("/etc/apt/sources.list"),
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
) -> str:
    """The Debian mirror to debootstrap from.

    ``LABCTL_DEBIAN_MIRROR`` wins; otherwise the first ``deb`` URI whose path ends in ``/debian``
    in the controller's apt sources (``sources.list``, then ``sources.list.d/*.list`` and deb822
    ``*.sources`` in name order).
    """
    env = os.environ if environ is None else environ
    override = env.get(MIRROR_ENV, "").strip()
    if override:
        if not re.match(r"^https?://\S+$", override):
            raise ConfigError(f"{MIRROR_ENV}={override!r} is not an http(s) URL")
        return override.rstrip("/")
    candidates: list[Path] = [sources_list]
    if sources_dir.is_dir():
        candidates += sorted(p for p in sources_dir.iterdir() if p.suffix in (".list", ".sources"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        uris = _uris_from_deb822(text) if path.suffix == ".sources" else _uris_from_one_line(text)
        for uri in uris:
            if _is_debian_mirror(uri):
                return uri.rstrip("/")
    raise ConfigError(
        f"no Debian mirror found in {sources_list} or {sources_dir}/*.sources",
        hint=f"set {MIRROR_ENV} (e.g. http://deb.debian.org/debian) or the lab's mirror option",
    )


# --- building ---------------------------------------------------------------------------------


def debootstrap_cache(suite: str) -> Path:
    return cache_dir() / "debootstrap" / suite


def build_log_path(recipe: Recipe) -> Path:
    return cache_dir() / "logs" / f"build-{recipe.name}-{recipe.short_hash}.log"


def check_build_prerequisites() -> None:
    if shutil.which("debootstrap") is None:
        raise LabError(
            "debootstrap is not installed; it builds the lab host images",
            hint="install it (`apt-get install debootstrap`)",
        )
    if os.geteuid() != 0:
        raise LabError(
            "building lab host images needs root (debootstrap makes device nodes and chroots)",
            hint="run labctl as root, or build once as root and reuse the cached images",
        )


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (deepest first)."""
    prefix = str(root.resolve())
    found: list[str] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        mp = parts[4].replace("\\040", " ")
        if mp == prefix or mp.startswith(prefix + "/"):
            found.append(mp)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a build tree: unmount anything debootstrap left mounted inside, never cross mounts."""
    if not path.exists():
        return
    for mp in mounts_under(path):
        subprocess.run(["umount", mp], capture_output=True, check=False)
    left = mounts_under(path)
    for mp in left:
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    left = mounts_under(path)
    if left:
        raise LabError(
            f"cannot remove the build folder {path}: still mounted: {', '.join(left)}",
            hint="unmount them by hand, then remove the folder",
        )
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # e.g. immutable files: let rm say why
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _customize(root: Path, recipe: Recipe, mirror: str) -> None:
    """Turn a debootstrap tree into a lab host image tree."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "apt" / "sources.list").write_text(f"deb {mirror} {recipe.suite} main\n")
    for name, (dest, mode) in IMAGE_FILES.items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(recipe.files[name])
        target.chmod(mode)
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
    (root / "etc" / "labctl").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "labctl" / "image.json").write_text(
        json.dumps(
            {
                "suite": recipe.suite,
                "flavor": recipe.flavor,
                "docker": recipe.docker,
                "python": recipe.python,
                "recipe": recipe.digest,
                "packages": list(recipe.packages),
                "mirror": mirror,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
        + "\n"
    )
    drop_apt_downloads(root)
    for sub in ("var/log/bootstrap.log",):
        (root / sub).unlink(missing_ok=True)


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


def import_tree(client: Any, root: Path, image_tag: str, changes: list[str], log: Any) -> None:
    """``tar`` of an image tree into ``docker import`` (no registry); RuntimeError on failure."""
    repo, tag = image_tag.split(":", 1)
    cmd = [
        "tar", "--numeric-owner", "--one-file-system", "-C", str(root), "-cf", "-",
        "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*", "--exclude=./run/*",
        "--exclude=./tmp/*", "--exclude=./debootstrap",
        ".",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    try:
        result = client.api.import_image_from_stream(
            proc.stdout, repository=repo, tag=tag, changes=changes
        )
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        rc = proc.wait()
    text = result if isinstance(result, str) else json.dumps(result)
    log.write(f"\n--- docker import: {text.strip()}\n".encode())
    if rc != 0:
        raise RuntimeError(f"tar exited with {rc}")
    if "errorDetail" in text or '"error"' in text:
        raise RuntimeError(f"docker import failed: {text.strip()[:300]}")


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
        tmp = Path(tempfile.mkdtemp(prefix=f"{BUILD_DIR_PREFIX}{who}-"))
        root = tmp / "root"
        cache = _private_cache(shared)
        started = time.monotonic()
        try:
            with log_path.open("wb") as log:
                cmd = [
                    "debootstrap", "--variant=minbase", f"--cache-dir={cache}",
                    "--components=main", "--include=" + ",".join(recipe.packages),
                    recipe.suite, str(root), mirror,
                ]  # fmt: skip
                log.write(("$ " + " ".join(cmd) + "\n").encode())
                log.flush()
                say(who, f"building image {recipe.tag} (debootstrap from {mirror})")
                env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
                env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                try:
                    rc = subprocess.run(
                        cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                        timeout=BUILD_TIMEOUT, check=False,
                    ).returncode  # fmt: skip
                except subprocess.TimeoutExpired:
                    rc = -1
                _return_to_cache(cache, shared)
                if rc != 0:
                    inner = root / "debootstrap" / "debootstrap.log"
                    if inner.is_file():  # the tree goes away: keep its log in ours
                        log.write(b"\n--- debootstrap/debootstrap.log\n" + inner.read_bytes())
                    raise LabError(
                        f"building the {who} image failed (debootstrap "
                        + ("timed out" if rc == -1 else f"exit {rc}")
                        + ")",
                        host=who,
                        hint=f"see {log_path}",
                    )
                # debootstrap unmounts what it mounted; make sure before we tar or remove
                for mp in mounts_under(root):
                    subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
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


def ensure_images(
    client: Any,
    suites: Iterable[str],
    *,
    mirror: str | Callable[[], str],
    progress: Progress | None = None,
) -> dict[str, str]:
    """Tags of every suite's default image, building the missing ones in parallel."""
    recipes = {s: recipe_for(s) for s in suites}
    ensure_recipes(client, recipes.values(), mirror=mirror, progress=progress)
    return {s: r.tag for s, r in recipes.items()}


def remove_images(client: Any, *, keep: Iterable[str] = ()) -> list[str]:
    """Remove labctl-host images except the tags in ``keep``; return the removed tags."""
    import docker.errors

    removed: list[str] = []
    keep_set = set(keep)
    for image in client.images.list(name=IMAGE_REPOSITORY):
        for tag in image.tags:
            if tag in keep_set:
                continue
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag)
                removed.append(tag)
    return removed
