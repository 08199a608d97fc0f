"""`labctl doctor`: what this machine has and lacks for each feature, one line each.

The checks are pure: :func:`judge` takes :class:`Facts` and returns :class:`Line` s (ok, missing
or limited, and what to do); :func:`gather_facts` is the thin part that asks the machine. The
basic pipeline (the container lab: Docker, Ansible, lab images or the means to build them) is
what :func:`pipeline_ready` decides the exit code by.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OK = "ok"
MISSING = "missing"
LIMITED = "limited"

GB = 1000**3
#: free space below which a folder is "limited": the cache holds VM images (~0.7 GB each) and
#: debootstrap's packages (~0.6 GB); a lab's folder its hosts' sparse disks; results are small
LOW_SPACE: dict[str, int] = {
    "LABCTL_CACHE": 3 * GB,
    "LABCTL_HOME": 1 * GB,
    "results": GB // 10,
    "docker root": 3 * GB,
}
#: the Python packages the pipeline imports: distribution -> (module, what it does)
MODULES: dict[str, tuple[str, str]] = {
    "ansible-core": ("ansible", "provisioning runs its ansible-playbook"),
    "ansible-runner": ("ansible_runner", "provisioning drives ansible through it"),
}


@dataclass(frozen=True)
class DockerFacts:
    #: why the engine does not answer ("" when it does)
    error: str = ""
    version: str = ""
    storage_driver: str = ""
    cgroup_version: str = ""
    root_dir: str = ""


@dataclass(frozen=True)
class Disk:
    label: str
    path: str
    free: int | None
    error: str = ""


@dataclass(frozen=True)
class Facts:
    python: tuple[int, int, int]
    docker: DockerFacts
    is_root: bool
    debootstrap: str | None
    #: today's default lab images (bullseye, bookworm, trixie) all present; None: unknown
    lab_images_built: bool | None
    qemu: str | None
    qemu_img: str | None
    #: None when /dev/kvm opens and answers, else why not
    kvm_problem: str | None
    #: "v1", "v2", "hybrid" or "unknown" (the controller's, which container lab hosts share)
    cgroup: str
    seed_tool: str | None
    engine_150_built: bool
    modules: dict[str, str | None] = field(default_factory=dict)
    disks: tuple[Disk, ...] = ()


@dataclass(frozen=True)
class Line:
    feature: str
    status: str
    detail: str
    todo: str = ""
    #: the container lab cannot run while this is missing
    basic: bool = False


def _docker(d: DockerFacts) -> Line:
    if d.error:
        return Line(
            "docker engine",
            MISSING,
            f"not answering ({d.error})",
            "start it (`bash scripts/setup.sh deps` as root starts it) or set DOCKER_HOST",
            basic=True,
        )
    detail = f"Docker {d.version}, storage driver {d.storage_driver or '?'}"
    if d.cgroup_version:
        detail += f", cgroup v{d.cgroup_version}"
    return Line("docker engine", OK, detail, basic=True)


def _lab_images(f: Facts) -> list[Line]:
    lines = []
    can_build = f.debootstrap is not None and f.is_root
    if f.debootstrap:
        lines.append(Line("debootstrap", OK, f.debootstrap))
    else:
        status = LIMITED if f.lab_images_built else MISSING
        lines.append(
            Line(
                "debootstrap",
                status,
                "not installed: it builds every lab image",
                "apt-get install debootstrap",
                basic=not f.lab_images_built,
            )
        )
    if f.lab_images_built:
        lines.append(Line("lab images", OK, "today's bullseye, bookworm and trixie images built"))
    elif can_build:
        lines.append(
            Line(
                "lab images",
                OK,
                ("not built yet" if f.lab_images_built is False else "not known (no engine)")
                + ": the first `labctl run` builds what is missing"
                " (debootstrap from the Debian mirror, a few minutes a suite)",
            )
        )
    else:
        why = "labctl is not running as root" if f.debootstrap else "debootstrap is missing"
        known = "" if f.lab_images_built is None else "not built, and "
        lines.append(
            Line(
                "lab images",
                MISSING,
                f"{known}cannot be built here ({why})",
                "run labctl as root once to build them (they are cached)",
                basic=f.lab_images_built is False,
            )
        )
    return lines


def _qemu(f: Facts) -> list[Line]:
    if f.qemu and f.qemu_img:
        lines = [Line("qemu", OK, f"{f.qemu}, {f.qemu_img}")]
    else:
        gone = " and ".join(
            n for n, p in (("qemu-system-x86_64", f.qemu), ("qemu-img", f.qemu_img)) if not p
        )
        lines = [
            Line(
                "qemu",
                MISSING,
                f"{gone} not found: no VM labs (--driver qemu, --preset article)",
                "apt-get install qemu-system-x86 qemu-utils",
            )
        ]
    if f.kvm_problem is None:
        lines.append(Line("kvm", OK, "/dev/kvm answers (a short trial boot at `lab up` confirms)"))
    else:
        lines.append(
            Line(
                "kvm",
                LIMITED,
                f"{f.kvm_problem}: VMs run under TCG "
                "(software emulation), several times slower (SSH 7-13 s after boot, a 4-VM lab "
                "~70 s with warm images, the whole study on one VM past 15 min)",
                "enable virtualization (or nested KVM) and give this user /dev/kvm",
            )
        )
    if f.seed_tool:
        lines.append(Line("cloud images", OK, f"seed tool {f.seed_tool}"))
    else:
        lines.append(
            Line(
                "cloud images",
                MISSING,
                "no genisoimage or xorriso for the cloud-init seed (--host image:path=...)",
                "apt-get install genisoimage",
            )
        )
    return lines


def _cgroup(cgroup: str) -> Line:
    if cgroup == "hybrid":
        return Line(
            "cgroup",
            OK,
            "hybrid: the controllers are on cgroup v1 (v2 only tracks "
            "systemd's units); container lab hosts see v1, as the 2015 hosts did",
        )
    if cgroup == "v2":
        return Line(
            "cgroup",
            OK,
            "v2: container lab hosts run today's Docker; Docker 1.5.0 "
            "cannot start containers on cgroup v2 ('failed to find the cgroup root'), "
            "so it runs in qemu VMs booted with cgroup=v1 (--preset article)",
        )
    if cgroup == "v1":
        return Line("cgroup", OK, "v1: container lab hosts see cgroup v1, as the 2015 hosts did")
    return Line(
        "cgroup",
        LIMITED,
        f"{cgroup}: no cgroup file system on /sys/fs/cgroup; memory "
        "and pids limits in container lab hosts may not apply",
        "mount cgroup2 on /sys/fs/cgroup (systemd does at boot)",
    )


def _engine(f: Facts) -> Line:
    if f.engine_150_built:
        return Line("docker 1.5.0", OK, "built from source (labctl engine list)")
    return Line(
        "docker 1.5.0",
        MISSING,
        "not built: needed by --preset article",
        "labctl engine build 1.5.0 --source FILE",
    )


def _python(f: Facts) -> list[Line]:
    v = ".".join(map(str, f.python))
    lines = [
        Line(
            "python",
            OK if f.python >= (3, 10) else MISSING,
            v,
            "" if f.python >= (3, 10) else "labctl needs Python 3.10 or newer",
            basic=True,
        )
    ]
    for name, (_module, what) in MODULES.items():
        version = f.modules.get(name)
        if version:
            lines.append(Line(name, OK, version, basic=True))
        else:
            lines.append(
                Line(
                    name,
                    MISSING,
                    f"not importable ({what})",
                    "bash scripts/setup.sh deps (or pip install labctl)",
                    basic=True,
                )
            )
    return lines


def _disk(d: Disk) -> Line:
    feature = f"disk {d.label}"
    if d.free is None:
        return Line(feature, LIMITED, f"{d.path}: {d.error}", f"make {d.path} writable")
    detail = f"{d.free / GB:.1f} GB free under {d.path}"
    if d.free < LOW_SPACE.get(d.label, GB):
        todo = "labctl cache prune" if d.label == "LABCTL_CACHE" else "free space there"
        return Line(feature, LIMITED, detail, todo)
    return Line(feature, OK, detail)


def judge(f: Facts) -> list[Line]:
    """One line per feature, the container lab's first."""
    lines = [_docker(f.docker), *_python(f), *_lab_images(f), _cgroup(f.cgroup)]
    lines += [*_qemu(f), _engine(f), *(_disk(d) for d in f.disks)]
    return lines


def pipeline_ready(lines: list[Line]) -> bool:
    """The container lab can run: nothing it needs is missing."""
    return not any(line.basic and line.status == MISSING for line in lines)


def render(lines: list[Line]) -> str:
    width = max(len(line.feature) for line in lines)
    out = []
    for line in lines:
        text = f"{line.status:<8} {line.feature:<{width}}  {line.detail}"
        out.append(text + (f"; do: {line.todo}" if line.todo else ""))
    ready = pipeline_ready(lines)
    out.append(
        "the container lab can run (`labctl run`)"
        if ready
        else "the container lab cannot run yet: fix the missing lines above"
    )
    return "\n".join(out)


# --- the machine ------------------------------------------------------------------------------


def cgroup_kind(mounts: str) -> str:
    """v1, v2 or hybrid, from /proc/mounts: what is mounted on /sys/fs/cgroup (and unified)."""
    types = {}
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            types[parts[1]] = parts[2]
    top = types.get("/sys/fs/cgroup")
    if top == "cgroup2":
        return "v2"
    if top == "tmpfs":
        return "hybrid" if types.get("/sys/fs/cgroup/unified") == "cgroup2" else "v1"
    return "unknown"


def free_space(label: str, path: Path) -> Disk:
    """Free bytes where ``path`` is (or would be made: its nearest existing parent)."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError as exc:
        return Disk(label, str(path), None, exc.strerror or str(exc))
    return Disk(label, str(path.absolute()), st.f_bavail * st.f_frsize)


def docker_facts(client: Any) -> DockerFacts:
    info = client.info()
    return DockerFacts(
        version=str(info.get("ServerVersion", "?")),
        storage_driver=str(info.get("Driver", "")),
        cgroup_version=str(info.get("CgroupVersion", "")),
        root_dir=str(info.get("DockerRootDir", "")),
    )


def _module_version(name: str) -> str | None:
    """The installed version of a distribution whose module imports; None if it does not."""
    module = MODULES[name][0]
    try:
        importlib.import_module(module)
        return importlib.metadata.version(name)
    except Exception:  # ImportError, or a broken install raising anything while importing
        return None


def kvm_trial_verdict() -> str | None:
    """Why the KVM trial boot (qemu/vm.py's ``detect_accel``) chose TCG since this machine
    booted, from its cached answer; None when it chose KVM or has not run since the boot."""
    from .drivers.qemu.images import vm_cache_dir
    from .drivers.qemu.vm import _accel_cache_key

    this_boot = _accel_cache_key(Path()).split("|", 1)[0] + "|"
    try:
        cached = json.loads((vm_cache_dir() / "accel.json").read_text())
        if str(cached["key"]).startswith(this_boot) and cached["accel"] == "tcg":
            return f"/dev/kvm answers but {cached['reason']}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def gather_facts(results: Path = Path("results")) -> Facts:
    """Ask this machine (the only impure part of `labctl doctor`)."""
    from .debootstrap import image_exists
    from .dockerclient import connect
    from .drivers.docker.images import SUITES, recipe_for
    from .drivers.qemu.cloudimage import SEED_TOOLS
    from .drivers.qemu.vm import QEMU_BINARY, QEMU_IMG, decided_accel
    from .engines.store import find_engine
    from .errors import LabctlError
    from .paths import cache_dir, home_dir

    client: Any = None
    try:
        client = connect()
        docker = docker_facts(client)
    except LabctlError as err:
        why = err.message.removeprefix("cannot reach the Docker engine (").removesuffix(")")
        docker = DockerFacts(error=why)
    built = None if client is None else all(image_exists(client, recipe_for(s).tag) for s in SUITES)
    try:
        accel = decided_accel("auto")
        kvm_problem = None if accel is None or accel.name == "kvm" else accel.reason
    except LabctlError as err:
        kvm_problem = err.line()
    if kvm_problem is None:
        kvm_problem = kvm_trial_verdict()
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        mounts = ""
    seed = next((p for p, _ in SEED_TOOLS if shutil.which(p)), None)
    # Docker's root is a path on the engine's machine: measured only when that is this one
    local = os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")
    return Facts(
        python=(sys.version_info.major, sys.version_info.minor, sys.version_info.micro),
        docker=docker,
        is_root=os.geteuid() == 0,
        debootstrap=shutil.which("debootstrap"),
        lab_images_built=built,
        qemu=shutil.which(QEMU_BINARY),
        qemu_img=shutil.which(QEMU_IMG),
        kvm_problem=kvm_problem,
        cgroup=cgroup_kind(mounts),
        seed_tool=seed,
        engine_150_built=find_engine("1.5.0") is not None,
        modules={name: _module_version(name) for name in MODULES},
        disks=(
            free_space("LABCTL_CACHE", cache_dir()),
            free_space("LABCTL_HOME", home_dir()),
            free_space("results", results),
            *(
                [free_space("docker root", Path(docker.root_dir))]
                if docker.root_dir and local
                else []
            ),
        ),
    )
