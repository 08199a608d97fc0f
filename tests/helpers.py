"""Tools the tests share: the labctl command, lab hosts by name, and commands on lab hosts.

Lab hosts are reached only through :mod:`labctl.transport` (strict host keys, the lab's
known_hosts and key), the way labctl itself reaches them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from labctl.hosts import HostRecord
from labctl.paths import collection_dir
from labctl.transport import SSHTransport

D = TypeVar("D")


@dataclass
class UpLab(Generic[D]):
    """A lab a test module brought up: its driver, what ``up()`` returned, what it said while
    it worked, how long ``up()`` took (and the Docker client it used, if any)."""

    driver: D
    state: Any
    messages: list[tuple[str, str]]
    up_seconds: float
    client: Any = None


#: the checkout the tests run from (pyproject.toml, labctl/, playbooks/, inventories/)
CHECKOUT = Path(__file__).resolve().parent.parent

#: the roles of the collection labctl.lab in the checkout (playbooks/collections/...)
ROLES = collection_dir(CHECKOUT / "playbooks") / "roles"

#: the installed ``labctl`` command next to the interpreter running the tests
LABCTL = str(Path(sys.executable).with_name("labctl"))


def labctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``labctl ARGS`` as a user runs it, output captured."""
    return subprocess.run(
        [LABCTL, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


def qemu_processes(marker: str) -> list[int]:
    """The QEMU processes whose command line mentions ``marker`` (e.g. a test's LABCTL_HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and b"qemu-system" in args[0] and any(marker.encode() in a for a in args):
                found.append(int(entry.name))
    return found


def only_run(results: Path) -> Path:
    """The one run folder under a results folder."""
    runs = [p for p in results.iterdir() if (p / "run.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def host_named(lab: Any, name: str) -> HostRecord:
    """The host record called ``name`` of a lab (anything with ``.hosts``: a LabState)."""
    return next(h for h in lab.hosts if h.name == name)


def checked(t: SSHTransport, command: str, timeout: float = 300) -> str:
    """``command`` on an open connection; its stdout, the test failing on a non-zero exit."""
    res = t.run(command, timeout=timeout)
    assert res.ok, (t.host.name, command, res.exit_status, res.stdout[-2000:], res.stderr)
    return res.stdout


def remote(host: HostRecord, command: str, timeout: float = 300) -> str:
    """``command`` on ``host`` over a connection of its own; see :func:`checked`."""
    with SSHTransport(host) as t:
        return checked(t, command, timeout)


def lab_docker_client() -> Any:
    """The Docker engine for tests that make labs of their own: skips without one or root."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine: {exc}")
    if os.geteuid() != 0:
        pytest.skip("the docker lab needs root")
    return client


@contextmanager
def docker_lab_up(client: Any, **spec: Any) -> Iterator[Any]:
    """A docker lab of ``DockerLabSpec(**spec)``, up; taken down after, leaving nothing."""
    from labctl.drivers.docker import DockerLab, DockerLabSpec

    driver = DockerLab(DockerLabSpec(**spec), client=client)
    try:
        yield driver.up()
    finally:
        report = driver.down()
        assert report.ok, report.problems


def ansible_tool(
    tool: str, *args: str, collections: Path, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``TOOL ARGS`` of the test venv's ansible (ansible-galaxy, ansible-doc, ansible-playbook)
    with ``collections`` as its only collections path, output captured."""
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(Path(sys.executable).with_name(tool)), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def install_collection(folder: Path) -> Path:
    """The collection labctl.lab as a user gets it: ``ansible-galaxy collection build`` of the
    checkout's folder into ``folder``, then ``ansible-galaxy collection install -p`` of the
    tarball; the install path (what ANSIBLE_COLLECTIONS_PATH names)."""
    from labctl.paths import COLLECTION

    source = collection_dir(CHECKOUT / "playbooks")
    built = ansible_tool("ansible-galaxy", "collection", "build", "--output-path", str(folder),
                         str(source), collections=folder)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = folder.glob(COLLECTION.replace(".", "-") + "-*.tar.gz")
    path = folder / "installed"
    done = ansible_tool("ansible-galaxy", "collection", "install", "-p", str(path), str(tarball),
                        collections=path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return path


def make_venv(path: Path) -> Path:
    """A fresh virtualenv at ``path`` (nothing of the test venv's in it); its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path / "bin" / "python"


def pip_install(python: Path, *args: str, timeout: float = 900) -> None:
    """``pip install ARGS`` into the venv of ``python`` (packages from pip's configured index)."""
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-input", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])


def build_wheel(outdir: Path) -> Path:
    """``python -m build`` of the checkout into ``outdir/dist``, as a user builds it (an sdist,
    then the wheel from the sdist); the wheel. Without ``build`` in the test venv, a throwaway
    venv under ``outdir`` gets it."""
    frontend = Path(sys.executable)
    if importlib.util.find_spec("build") is None:
        frontend = make_venv(outdir / "build-env")
        pip_install(frontend, "build")
    dist = outdir / "dist"
    proc = subprocess.run(
        [str(frontend), "-m", "build", "--outdir", str(dist), str(CHECKOUT)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert len(list(dist.glob("labctl-*.tar.gz"))) == 1, sorted(dist.iterdir())
    (wheel,) = dist.glob("labctl-*.whl")
    return wheel


def skip_without_qemu_lab() -> None:
    """Skip a test that builds and boots QEMU VMs where it cannot (root, QEMU, debootstrap)."""
    import shutil

    if os.geteuid() != 0:
        pytest.skip("the qemu lab needs root (debootstrap)")
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (bash scripts/setup.sh deps)")


@contextmanager
def qemu_lab_up(home: Path, spec: Any) -> Iterator[UpLab[Any]]:
    """A qemu lab of ``spec`` (a QemuLabSpec) in LABCTL_HOME ``home``, up, what it said printed
    and kept; taken down after whatever happened, leaving no QEMU process."""
    import time

    from labctl.drivers.qemu import QemuLab

    skip_without_qemu_lab()
    messages: list[tuple[str, str]] = []

    def progress(host: str, message: str) -> None:
        messages.append((host, message))
        print(f"[{time.strftime('%H:%M:%S')}] {host} {message}", file=sys.stderr)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCTL_HOME", str(home))
        driver = QemuLab(spec, progress=progress)
        try:
            started = time.monotonic()
            state = driver.up()
            yield UpLab(driver, state, messages, time.monotonic() - started)
        finally:
            report = driver.down()
            assert report.ok, report.problems
            assert qemu_processes(str(home)) == [], "a QEMU process of the test lab is left"
