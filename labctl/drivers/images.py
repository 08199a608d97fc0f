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
RECIPE_VERSION = 1
IMAGE_REPOSITORY = "labctl-host"
BUILD_DIR_PREFIX = "labctl-build-"
MIRROR_ENV = "LABCTL_DEBIAN_MIRROR"

BASE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "docker.io",
    "python3",
    "iproute2",
    "procps",
    "e2fsprogs",
    "util-linux",
    "ca-certificates",
    "iptables",
    "tini",
)
#: per-suite additions: trixie's docker.io only recommends the client; bullseye gets python2.7
#: so the probe agent runs for real under 2.7 there
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "bullseye": ("python2.7",),  # python2.7-minimal lacks json, which the agent needs
    "bookworm": (),
    "trixie": ("docker-cli",),
}
SUITES: tuple[str, ...] = tuple(EXTRA_PACKAGES)

#: files of docker_image/ baked into the image: name -> (path in the image, mode)
IMAGE_FILES: dict[str, tuple[str, int]] = {
    "labctl-entrypoint": ("/usr/local/sbin/labctl-entrypoint", 0o755),
    "labctl-dockerd": ("/usr/local/sbin/labctl-dockerd", 0o755),
    "sshd-labctl.conf": ("/etc/ssh/sshd_config.d/labctl.conf", 0o644),
}
ENTRYPOINT = ["/usr/bin/tini", "--", "/usr/local/sbin/labctl-entrypoint"]

BUILD_TIMEOUT = 1800.0

Progress = Callable[[str, str], None]


def image_files_dir() -> Path:
    return Path(__file__).resolve().parent / "docker_image"


def _read_image_files() -> dict[str, bytes]:
    base = image_files_dir()
    files: dict[str, bytes] = {}
    for name in IMAGE_FILES:
        path = base / name
        try:
            files[name] = path.read_bytes()
        except OSError as exc:
            raise LabError(
                f"the lab host image file {path} is missing ({exc.strerror})",
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

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(
            json.dumps(
                {
                    "version": self.version,
                    "suite": self.suite,
                    "variant": "minbase",
                    "packages": sorted(self.packages),
                    "entrypoint": ENTRYPOINT,
                    "changes": list(IMAGE_CHANGES),
                    "files": {k: IMAGE_FILES.get(k, ("", 0)) for k in sorted(self.files)},
                },
                sort_keys=True,
            ).encode()
        )
        for name in sorted(self.files):
            h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    @property
    def short_hash(self) -> str:
        return self.digest[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.suite}-{self.short_hash}"


def recipe_for(suite: str, *, files: Mapping[str, bytes] | None = None) -> Recipe:
    if suite not in EXTRA_PACKAGES:
        raise ConfigError(f"unknown suite {suite!r}", hint=f"choose from {', '.join(SUITES)}")
    packages = BASE_PACKAGES + EXTRA_PACKAGES[suite]
    return Recipe(suite=suite, packages=packages, files=dict(files or _read_image_files()))


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
    return cache_dir() / "logs" / f"build-{recipe.suite}-{recipe.short_hash}.log"


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


def _mounts_under(root: Path) -> list[str]:
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
    for mp in _mounts_under(path):
        subprocess.run(["umount", mp], capture_output=True, check=False)
    left = _mounts_under(path)
    for mp in left:
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    left = _mounts_under(path)
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
                "recipe": recipe.digest,
                "packages": list(recipe.packages),
                "mirror": mirror,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
        + "\n"
    )
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
        d = root / sub
        if d.is_dir():
            for entry in d.iterdir():
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()
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
        f"LABEL labctl.recipe={recipe.short_hash} labctl.suite={recipe.suite}",
    ]
    repo, tag = recipe.tag.split(":", 1)
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


def build_image(
    client: Any, recipe: Recipe, mirror: str, *, progress: Progress | None = None
) -> str:
    """Build and import one suite's image; return its tag. The temp tree goes on every path."""
    say = progress or (lambda _h, _m: None)
    with _build_locks_guard:
        lock = _build_locks.setdefault(recipe.tag, threading.Lock())
    with lock:
        if image_exists(client, recipe.tag):
            return recipe.tag
        check_build_prerequisites()
        cache = debootstrap_cache(recipe.suite)
        cache.mkdir(parents=True, exist_ok=True)
        log_path = build_log_path(recipe)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{BUILD_DIR_PREFIX}{recipe.suite}-"))
        root = tmp / "root"
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
                say(recipe.suite, f"building image {recipe.tag} (debootstrap from {mirror})")
                env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
                env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                try:
                    rc = subprocess.run(
                        cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                        timeout=BUILD_TIMEOUT, check=False,
                    ).returncode  # fmt: skip
                except subprocess.TimeoutExpired:
                    rc = -1
                if rc != 0:
                    inner = root / "debootstrap" / "debootstrap.log"
                    if inner.is_file():  # the tree goes away: keep its log in ours
                        log.write(b"\n--- debootstrap/debootstrap.log\n" + inner.read_bytes())
                    raise LabError(
                        f"building the {recipe.suite} image failed (debootstrap "
                        + ("timed out" if rc == -1 else f"exit {rc}")
                        + ")",
                        host=recipe.suite,
                        hint=f"see {log_path}",
                    )
                # debootstrap unmounts what it mounted; make sure before we tar or remove
                for mp in _mounts_under(root):
                    subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
                _customize(root, recipe, mirror)
                say(recipe.suite, "importing the image")
                try:
                    _import(client, root, recipe, log)
                except Exception as exc:
                    why = getattr(exc, "explanation", None) or exc
                    raise LabError(
                        f"importing the {recipe.suite} image failed: {why}",
                        host=recipe.suite,
                        hint=f"see {log_path}",
                    ) from exc
            say(recipe.suite, f"built {recipe.tag} in {time.monotonic() - started:.0f} s")
            return recipe.tag
        finally:
            remove_tree(tmp)


def ensure_images(
    client: Any,
    suites: Iterable[str],
    *,
    mirror: str | Callable[[], str],
    progress: Progress | None = None,
) -> dict[str, str]:
    """Tags of every suite's current image, building the missing ones in parallel."""
    recipes = {s: recipe_for(s) for s in suites}
    tags = {s: r.tag for s, r in recipes.items()}
    missing = [s for s, r in recipes.items() if not image_exists(client, r.tag)]
    if not missing:
        return tags
    check_build_prerequisites()
    url = mirror() if callable(mirror) else mirror
    errors: list[LabError] = []
    with ThreadPoolExecutor(max_workers=len(missing), thread_name_prefix="labctl-build") as pool:
        futures = [
            pool.submit(build_image, client, recipes[s], url, progress=progress) for s in missing
        ]
        for fut in futures:
            try:
                fut.result()
            except LabError as exc:
                errors.append(exc)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise LabError("building lab host images failed: " + "; ".join(e.line() for e in errors))
    return tags


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
