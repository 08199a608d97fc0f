"""The Docker engine side of the docker driver: SDK errors as LabErrors, exec, published ports,
the lab host container's settings, and the loop devices of a lab's disks.

Nothing here knows a lab's spec; ``lab.py`` says which container to make and when.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...errors import LabError
from ..base import LOOPBACK

LABEL_LAB = "labctl.lab"
LABEL_HOST = "labctl.host"
LABEL_RECIPE = "labctl.recipe"
LABEL_DRIVER = "labctl.driver"
LABEL_SUITE = "labctl.suite"
LABEL_HOSTSPEC = "labctl.hostspec"

HELPER = "/usr/local/sbin/labctl-dockerd"
ENTRYPOINT_LOG = "/var/log/labctl-entrypoint.log"
STOP_TIMEOUT = 30


@contextlib.contextmanager
def engine_errors(what: str, host: str | None = None) -> Iterator[None]:
    """Map Docker SDK errors to LabError in one place."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except LabError:
        raise
    except docker.errors.APIError as exc:
        msg = exc.explanation or str(exc)
        raise LabError(f"{what}: {msg}", host=host) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise LabError(
            f"{what}: cannot reach the Docker engine ({exc})",
            host=host,
            hint="start it (e.g. `dockerd`) or set DOCKER_HOST",
        ) from exc


def exec_in(container: Any, cmd: list[str]) -> tuple[int, str]:
    """Run a command in a container: (exit code, stdout and stderr as text).

    The exit code is read once the engine has recorded it: docker-py's exec_run inspects the
    exec as soon as its output ends, and on a busy engine got no exit code yet (-1 here: a
    host key that was there read as a failure, "cannot read the lab host's SSH host key")."""
    api = container.client.api
    exec_id = api.exec_create(container.id, cmd, stdout=True, stderr=True)["Id"]
    out = api.exec_start(exec_id)
    code = None
    for _ in range(200):  # 10 s at most after the output ended
        info = api.exec_inspect(exec_id)
        code = info.get("ExitCode")
        if code is not None and not info.get("Running"):
            break
        time.sleep(0.05)
    text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out or "")
    return int(code if code is not None else -1), text


def published_port(attrs: Mapping[str, Any]) -> int | None:
    """The host port a container publishes its SSH port on (None: not running or none)."""
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in ports.get("22/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def parse_facts(text: str) -> dict[str, str]:
    """``key=value`` lines (what ``labctl-dockerd facts`` prints) as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and re.match(r"^[a-z_]+$", key.strip()):
            out[key.strip()] = value.strip()
    return out


def container_details(c: Any) -> dict[str, str]:
    """What ``labctl lab status`` shows of a lab host container (asked inside when it runs)."""
    details = {
        "container": c.name,
        "id": c.short_id,
        "status": c.status,
        "recipe": c.labels.get(LABEL_RECIPE, ""),
    }
    if c.labels.get(LABEL_HOSTSPEC):
        details["spec"] = c.labels[LABEL_HOSTSPEC]
    if c.status != "running":
        return details
    rc, text = exec_in(c, ["docker", "version", "--format", "{{.Server.Version}}"])
    if rc == 0:
        details["docker_version"] = text.strip()
    elif "not found" in text or rc in (126, 127):
        details["docker_version"] = "not installed"
    else:
        details["docker_version"] = "not answering"
    rc, text = exec_in(c, ["docker", "info", "--format", "{{.Driver}}"])
    if rc == 0:
        details["storage_driver"] = text.strip()
    rc, text = exec_in(c, ["findmnt", "-n", "-o", "FSTYPE", "/var/lib/docker"])
    if rc == 0 and text.strip():
        details["backing_fs"] = text.strip()
    return details


def entrypoint_tail(container: Any, lines: int = 5) -> str:
    """Last lines of the entrypoint log (works on stopped containers too)."""
    try:
        stream, _ = container.get_archive(ENTRYPOINT_LOG)
        buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf) as tar:
            member = tar.getmembers()[0]
            f = tar.extractfile(member)
            text = f.read().decode("utf-8", "replace") if f else ""
    except Exception:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def create_host_container(
    client: Any,
    tag: str,
    *,
    name: str,
    hostname: str,
    network: str,
    labels: Mapping[str, str],
    environment: Mapping[str, str],
    memory: int,
    pids_limit: int,
) -> Any:
    """Create and start a lab host container: SSH published on 127.0.0.1 only, what an inner
    dockerd needs (all capabilities but SYS_RESOURCE, devices, no masked paths), bounded
    memory and pids."""
    api = client.api
    host_config = api.create_host_config(
        port_bindings={22: (LOOPBACK, None)},
        # --privileged fails where the kernel withholds CAP_SYS_RESOURCE; this works
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        device_cgroup_rules=["a *:* rwm"],
        tmpfs={"/run": "rw,exec,nosuid,nodev,mode=755", "/tmp": "rw,exec,nosuid,nodev"},
        mem_limit=memory,
        memswap_limit=memory,
        pids_limit=pids_limit,
        network_mode=network,
    )
    # `--security-opt systempaths=unconfined` is a CLI option; the API wants empty lists
    host_config["MaskedPaths"] = []
    host_config["ReadonlyPaths"] = []
    created = api.create_container(
        tag,
        name=name,
        hostname=hostname,
        detach=True,
        labels=dict(labels),
        ports=[22],
        environment=dict(environment),
        host_config=host_config,
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[hostname])}
        ),
    )
    container = client.containers.get(created["Id"])
    container.start()
    return container


def remove_container(c: Any, say: Callable[[str, str], None]) -> tuple[str, str | None]:
    """Stop a lab host (its inner dockerd and disk first) and remove it: (name, problem)."""
    import docker.errors

    name = c.name
    host = c.labels.get(LABEL_HOST, name)
    try:
        if c.status == "paused":
            c.unpause()
            c.reload()
        if c.status == "running":
            say(host, "stopping the inner dockerd and detaching its disk")
            rc, out = exec_in(c, [HELPER, "teardown"])
            if rc != 0:
                say(host, f"teardown helper exit {rc}: {out.strip()[-200:]}")
            c.stop(timeout=STOP_TIMEOUT)
        c.remove(v=True, force=True)
        say(host, f"removed {name}")
        return name, None
    except docker.errors.NotFound:
        return name, None
    except docker.errors.APIError as exc:
        return name, f"container {name}: {exc.explanation or exc}"


def disk_image(lab: str, host: str) -> str:
    """The sparse file of a lab host's /var/lib/docker disk (in the host's own filesystem)."""
    return f"/labctl-disk-{lab}-{host}.img"


def lab_loops(lab: str) -> list[tuple[str, str]]:
    """Loop devices whose backing file is one of the lab's disks: (device, backing file)."""
    # lab names have no "-", so another lab's disks never match
    pattern = re.compile(rf"/labctl-disk-{re.escape(lab)}-[a-z0-9-]+\.img")
    found: list[tuple[str, str]] = []
    for bf in sorted(Path("/sys/block").glob("loop*/loop/backing_file")):
        try:
            backing = bf.read_text().strip()
        except OSError:
            continue
        if pattern.search(backing):
            found.append(("/dev/" + bf.parent.parent.name, backing))
    return found


def detach_loops(lab: str) -> tuple[list[str], list[str]]:
    """Safety net: autoclear frees the loops when a lab host dies; detach any that remain.
    Returns (detached devices, problems)."""
    detached: list[str] = []
    problems: list[str] = []
    if not os.path.isdir("/sys/block") or os.geteuid() != 0:
        return detached, problems
    deadline = time.monotonic() + 5.0
    loops = lab_loops(lab)
    while loops and time.monotonic() < deadline:
        time.sleep(0.25)
        loops = lab_loops(lab)
    for dev, backing in loops:
        proc = subprocess.run(["losetup", "-d", dev], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            detached.append(dev)
        else:
            problems.append(
                f"loop device {dev} ({backing}): losetup -d failed: {proc.stderr.strip()}"
            )
    return detached, problems
