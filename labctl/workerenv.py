"""The worker node's ansible-runner and ansible-core: the controller's own versions, installed
from a wheelhouse the controller makes and copies over SSH.

The controller's pip downloads the wheels for the worker's Python and platform (from the
package index the controller's pip is configured with), kept under ``LABCTL_CACHE/worker-wheels``;
the worker gets them by SFTP and installs them offline into a venv of its own python
(``python3 -m venv --without-pip``; pip runs from its own wheel), so it needs nothing but
python3 (>= what ansible-core asks) and no package index of its own. The venv is made once per
version pair and marked ready only when complete.
"""

from __future__ import annotations

import importlib.metadata
import json
import secrets
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import hostdirs
from .errors import ProvisionError
from .hosts import Progress
from .paths import cache_dir
from .transport import SSHTransport

#: what the worker must have: ansible-runner (the worker command) and ansible-core (the play)
PACKAGES = ("ansible-runner", "ansible-core")
READY = ".labctl-ready"
_ABOUT = (
    "import json,os,platform,sys;print(json.dumps({'py':'%d.%d'%sys.version_info[:2],"
    "'machine':platform.machine(),'libc':os.confstr('CS_GNU_LIBC_VERSION') or ''}))"
)


@dataclass(frozen=True)
class WorkerPython:
    version: str  # "3.11"
    machine: str  # "x86_64"
    glibc: tuple[int, int] | None

    def platforms(self) -> list[str]:
        """pip's --platform tags for this interpreter (manylinux up to its glibc)."""
        if self.glibc is None or self.glibc[0] != 2:
            raise ProvisionError(
                f"the worker's C library is not glibc ({self.machine}): no wheels for it",
                hint="use a worker with a glibc Linux (Debian, Ubuntu, RHEL...)",
            )
        tags = [f"manylinux_2_{m}_{self.machine}" for m in range(self.glibc[1], 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}"]


def versions() -> dict[str, str]:
    """The controller's versions of :data:`PACKAGES` (the worker gets the same)."""
    return {name: importlib.metadata.version(name) for name in PACKAGES}


def check_python(py: WorkerPython) -> None:
    """ansible-core's own Requires-Python (read from its metadata) against the worker's."""
    need = importlib.metadata.metadata("ansible-core")["Requires-Python"] or ""
    try:
        ok = not need or SpecifierSet(need).contains(py.version + ".0")
    except InvalidSpecifier:
        ok = True
    if not ok:
        raise ProvisionError(
            f"the worker's python is {py.version}; ansible-core {versions()['ansible-core']} "
            f"needs {need}",
            hint="use a worker with a newer python3 (Debian bookworm or later)",
        )


def parse_about(text: str) -> WorkerPython:
    data = json.loads(text.strip().splitlines()[-1])
    libc = str(data.get("libc") or "")
    glibc = None
    if libc.startswith("glibc "):
        major, _, minor = libc.split()[1].partition(".")
        glibc = (int(major), int(minor.split(".")[0] or 0))
    return WorkerPython(str(data["py"]), str(data["machine"]), glibc)


def wheelhouse_prefix() -> str:
    """What the names of this controller's venvs and wheelhouses begin with."""
    v = versions()
    return f"runner-{v['ansible-runner']}-core-{v['ansible-core']}-py"


def venv_name(py: WorkerPython) -> str:
    return f"{wheelhouse_prefix()}{py.version}"


def wheelhouse(py: WorkerPython) -> Path:
    """The wheels for this worker python, downloaded once by the controller's pip."""
    folder = cache_dir() / "worker-wheels" / f"{venv_name(py)}-{py.machine}"
    if (folder / READY).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{n}=={v}" for n, v in versions().items()]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
           "--python-version", py.version, "--implementation", "cp", "-d", str(folder),
           *[a for p in py.platforms() for a in ("--platform", p)], *pins, "pip"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        said = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")] or ["(no word)"]
        raise ProvisionError(
            f"cannot download the worker's wheels ({', '.join(pins)}) for python {py.version} "
            f"on {py.machine}: {said[0]}",
            hint="check the controller's pip configuration (pip config list) and its index",
        )
    (folder / READY).write_text("\n".join(pins) + "\n", encoding="utf-8")
    return folder


def ensure_worker_env(t: SSHTransport, python: str, progress: Progress | None = None) -> str:
    """The worker's venv with the controller's ansible-runner and ansible-core (made when
    missing); returns its bin folder on the worker."""
    say = progress or (lambda _h, _m: None)
    name = t.host.name
    res = t.run(f"{shlex.quote(python)} -c {shlex.quote(_ABOUT)}", timeout=30)
    if not res.ok:
        raise ProvisionError(
            f"the worker has no usable {python} ({(res.stderr.strip() or 'no answer')[:200]})",
            host=name,
            hint="install python3 there (ansible-core runs on it)",
        )
    py = parse_about(res.stdout)
    check_python(py)
    side = hostdirs.identify(t)
    root = hostdirs.ensure(t, side, f"{side.base}/worker")
    venv = f"{root}/{venv_name(py)}"
    if t.exists(f"{venv}/{READY}"):
        return f"{venv}/bin"
    say(name, f"worker: installing {', '.join(f'{n} {v}' for n, v in versions().items())}")
    wheels = wheelhouse(py)
    remote = f"{venv}.wheels-{secrets.token_hex(4)}"  # this labctl's own: another may copy too
    t.mkdir(remote)
    files = sorted(p for p in wheels.iterdir() if p.suffix == ".whl")
    for whl in files:
        t.put(whl, f"{remote}/{whl.name}")
    pip = next(f"{remote}/{p.name}/pip" for p in files if p.name.startswith("pip-"))
    pins = [f"{n}=={v}" for n, v in versions().items()]
    q = shlex.quote
    install = (
        f"[ -e {q(venv)}/{READY} ] || {{ rm -rf {q(venv)} && "
        f"{q(python)} -m venv --without-pip {q(venv)} && "
        f"{q(venv)}/bin/python {q(pip)} install --quiet --no-index --no-compile "
        f"--disable-pip-version-check --find-links {q(remote)} {' '.join(map(q, pins))} && "
        f"touch {q(venv)}/{READY}; }}"
    )
    # one install at a time (flock where the host has it: util-linux); the second finds it made
    script = (
        f"if command -v flock >/dev/null; then flock {q(venv)}.lock sh -c {q(install)}; "
        f"else sh -c {q(install)}; fi; rc=$?; rm -rf {q(remote)}; exit $rc"
    )
    done = t.run(script, timeout=900)
    if not done.ok:
        last = (done.stderr.strip().splitlines() or ["no word"])[-1]
        raise ProvisionError(
            f"installing ansible-runner on the worker failed: {last[:300]}",
            host=name,
            hint="see that the worker's python3 has its venv module (python3 -m venv)",
        )
    return f"{venv}/bin"
