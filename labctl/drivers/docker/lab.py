"""The docker driver: lab hosts as containers with their own sshd and their own inner dockerd.

Each lab host is a container of a locally built Debian image (``images.py``), named
``labctl-lab-<lab>-<host>``, on the network ``labctl-<lab>``, with its SSH port published on
127.0.0.1 only (the controller never talks to bridge addresses). A lab's hosts are given by
``HostSpec``s (``spec.py``: ``bookworm``, ``bookworm/driver=vfs``, ``bookworm/fs=xfs``,
``bookworm/docker=no``, ``bullseye/python=2.7``, ...); a default host is named after its suite.
The inner dockerd keeps its data on a bounded disk (sparse file on a loop device: ext4 with a
fixed inode count, xfs or btrfs) so an experiment that fills the disk fills that, not the
machine. Lab hosts share the controller's kernel: memory and pids findings describe nested
cgroups, not a separate OS. The engine side (containers, exec, loop devices) is
``containers.py``.

State lives in ``lab_dir(<lab>)``: ``id_ed25519`` (+ ``.pub``), ``known_hosts`` (the host keys each
lab host made at its first start, read from the container, never trusted on first connection),
``inventory.yml`` (Ansible, JSON-compatible YAML) and ``lab.json``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...files import write_atomic
from ...hosts import HostRecord, Progress
from ..base import (
    LOOPBACK,
    DownReport,
    HostStatus,
    LabState,
)
from . import images
from .containers import (
    LABEL_HOST,
    LABEL_LAB,
    LABEL_RECIPE,
    container_details,
    detach_loops,
    engine_errors,
    lab_loops,
    published_port,
    remove_container,
)
from .hosts import DockerHosts, Host
from .spec import PYTHON_INTERPRETERS, DockerLabSpec

ADDRESS = LOOPBACK
AGENT_PYTHON = {"bullseye": "/usr/bin/python2.7"}
#: the `labctl lab up` options of a docker lab
OPTIONS = frozenset(
    {"suites", "hosts", "disk_size", "disk_inodes", "memory", "pids_limit", "storage_driver"}
)

if TYPE_CHECKING:
    import docker


class DockerLab(DockerHosts):
    """Lab hosts as local containers (Docker-in-Docker): one per host spec of the lab."""

    name = "docker"
    spec: DockerLabSpec
    options = OPTIONS

    def __init__(
        self,
        spec: DockerLabSpec,
        *,
        client: docker.DockerClient | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.spec = spec
        self._client_obj = client
        self._progress = progress

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], *, preset: str | None = None,
        progress: Progress | None = None,
    ) -> DockerLab:  # fmt: skip
        if preset:
            raise ConfigError(f"the docker driver has no preset {preset!r}")
        fields: dict[str, Any] = {"name": name}
        suites = options.get("suites")
        if suites:
            fields["suites"] = tuple(s.strip() for s in suites.split(",") if s.strip())
        hosts = options.get("hosts")
        if hosts:  # --suites then adds one default host per suite before them
            fields["hosts"] = (*fields.pop("suites", ()), *hosts)
        for key in ("disk_size", "disk_inodes", "memory", "pids_limit", "storage_driver"):
            if options.get(key) is not None:
                fields[key] = options[key]
        # no options: the lab as it was made (`run --lab NAME` never adds or drops hosts)
        spec = (len(fields) == 1 and DockerLabSpec.recorded(name)) or DockerLabSpec(**fields)
        spec.validate()
        return cls(spec, progress=progress)

    def refresh_port(self, host: str, known_port: int) -> int | None:
        """The SSH port a running lab host publishes now, when it is not ``known_port`` (a
        restarted container gets a new one); the lab's known_hosts, lab.json and inventory are
        updated with the recorded host key (strict checking stays). None: unchanged or unknown.
        """
        import docker.errors

        state = self._read_state_file()
        hosts = state.get("hosts") or {}
        entry = hosts.get(host)
        if not isinstance(entry, dict) or not entry.get("host_key"):
            return None
        try:
            c = self._client().containers.get(self.container_name(host))
        except docker.errors.DockerException:
            return None
        port = published_port(c.attrs) if c.status == "running" else None
        if port is None or port == known_port:
            return None
        self._record_new_port(host, port)
        return port

    # --- up -----------------------------------------------------------------------------------

    def up(self) -> LabState:
        self.spec.validate()
        client = self._client()
        started = time.monotonic()
        key_file, public_key = self._make_directory()
        old_state = self._read_state_file()

        hosts = [Host(hs, i) for i, hs in enumerate(self.spec.host_specs())]
        with engine_errors("inspecting the lab"):
            for h in hosts:
                h.container = self._find(client, h.name)
                if h.container is not None and h.container.status == "dead":
                    self._say(h.name, "removing a dead container")
                    h.container.remove(v=True, force=True)
                    h.container = None

        old_spec = old_state.get("spec")
        recorded_spec: dict[str, Any] = self.spec.to_dict()
        if old_spec and old_spec != self.spec.to_dict() and any(h.container for h in hosts):
            recorded_spec = dict(old_spec)  # what the running hosts were made with
            changed = sorted(k for k, v in self.spec.to_dict().items() if old_spec.get(k) != v)
            self._say(
                "*",
                f"note: lab settings changed since the hosts were made ({', '.join(changed)}); "
                "existing hosts keep the old ones until `down` and `up`",
            )
        for h in hosts:
            self._check_same_host(h)
        to_create = [h.spec.image_recipe() for h in hosts if h.container is None]
        if to_create:
            with engine_errors("checking the lab host images"):
                images.ensure_recipes(
                    client, to_create, mirror=self._mirror, progress=self._progress
                )

        with engine_errors("creating the lab network"):
            self._ensure_network(client)

        for h in hosts:
            with engine_errors("starting the lab host", host=h.name):
                self._start_host(client, h, public_key)

        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            for fut in [pool.submit(self._wait_ready, h) for h in hosts]:
                fut.result()

        self._check_host_keys(hosts, old_state)
        records = [self._record(h) for h in hosts]
        self._write_state(hosts, recorded_spec)
        return self._finish_up(records, ((h.port, h.host_key) for h in hosts), key_file, started)

    @staticmethod
    def _disk_inodes(h: Host, configured: int) -> str:
        """ext4 has a fixed inode count (mkfs.ext4 -N); xfs and btrfs allocate inodes on demand."""
        if h.spec.backing_fs == "ext4":
            return h.facts.get("inodes") or str(configured)
        return "dynamic"

    def _record(self, h: Host) -> HostRecord:
        assert h.port is not None
        hs = h.spec
        labels = {
            "driver": "docker",
            "lab": self.lab,
            "suite": h.suite,
            "storage_driver": hs.storage_driver,
            "backing_fs": hs.backing_fs,
            "disk_inodes": self._disk_inodes(h, self.spec.disk_inodes),
            "storage_opt_size": h.facts.get("storage_opt_size", "unknown"),
            "docker_preinstalled": "yes" if hs.docker else "no",
            "python": hs.python,
        }
        if hs.python == "python3":
            agent_python = AGENT_PYTHON.get(h.suite)
        else:
            agent_python = PYTHON_INTERPRETERS.get(hs.python)
        return self._host_record(
            h.name, h.port, labels=labels, host_vars=self._host_vars(h, agent_python),
            agent_python=agent_python,
        )  # fmt: skip

    def _host_vars(self, h: Host, agent_python: str | None) -> dict[str, Any]:
        assert h.port is not None
        hs = h.spec
        interpreter = PYTHON_INTERPRETERS.get(hs.python)
        hv = self._common_host_vars(h.port, h.suite, interpreter)
        inodes = self._disk_inodes(h, self.spec.disk_inodes)
        hv.update(
            {
                "labctl_host_spec": hs.to_string(),
                "labctl_storage_driver": hs.storage_driver,
                "labctl_backing_fs": hs.backing_fs,
                "labctl_disk_inodes": int(inodes) if inodes.isdigit() else inodes,
                "labctl_storage_opt_size": h.facts.get("storage_opt_size", "unknown"),
                "labctl_docker_preinstalled": hs.docker,
                "labctl_python": interpreter or "none",
            }
        )
        if agent_python is not None:
            hv["labctl_agent_python"] = agent_python
        return hv

    def _write_state(self, hosts: list[Host], spec: Mapping[str, Any]) -> None:
        state = {
            "lab": self.lab,
            "driver": "docker",
            "spec": dict(spec),
            "network": self.network_name,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hosts": {
                h.name: {
                    "suite": h.suite,
                    "host_spec": h.spec.to_string(),
                    "container": self.container_name(h.name),
                    "container_id": h.container.id,
                    "image": (h.container.attrs.get("Config") or {}).get("Image"),
                    "recipe": h.container.labels.get(LABEL_RECIPE),
                    "port": h.port,
                    "host_key": h.host_key,
                    "bip": self.bip(h.index),
                    "disk_image": self.disk_image(h.name),
                    "docker_version": h.docker_version,
                    "storage_driver": h.storage_driver or h.spec.storage_driver,
                    "backing_fs": h.spec.backing_fs,
                    "docker_preinstalled": h.spec.docker,
                    "python": h.spec.python,
                    "facts": h.facts,
                }
                for h in hosts
            },
        }
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n", 0o600)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        client = self._client()
        out: list[HostStatus] = []
        # the hosts the lab was made with (lab.json), else the spec's; then any other labelled one
        recorded = list((self._read_state_file().get("hosts") or {}).keys())
        wanted = recorded or [hs.name for hs in self.spec.host_specs()]
        with engine_errors("inspecting the lab"):
            labelled = client.containers.list(
                all=True, filters={"label": f"{LABEL_LAB}={self.lab}"}
            )
            by_name = {c.labels.get(LABEL_HOST, c.name): c for c in labelled}
            names = wanted + sorted(set(by_name) - set(wanted))
            for host in names:
                c = by_name.get(host)
                if c is None:
                    out.append(HostStatus(name=host, state="missing"))
                    continue
                running = c.status == "running"
                details = container_details(c)
                if host not in wanted:
                    details["note"] = "not in the lab's hosts"
                out.append(
                    HostStatus(
                        name=host,
                        state="running" if running else "stopped",
                        address=ADDRESS if running else None,
                        port=published_port(c.attrs) if running else None,
                        image=(c.attrs.get("Config") or {}).get("Image"),
                        details=details,
                    )
                )
        return out

    # --- down ---------------------------------------------------------------------------------

    def down(self) -> DownReport:
        client = self._client()
        report = DownReport.of("containers", "networks", "loop devices")
        with engine_errors("listing the lab's containers"):
            containers = client.containers.list(
                all=True, filters={"label": f"{LABEL_LAB}={self.lab}"}
            )
        if containers:
            with ThreadPoolExecutor(max_workers=len(containers)) as pool:
                for name, problem in pool.map(self._remove_container, containers):
                    if problem:
                        report.problems.append(problem)
                    else:
                        report.add("containers", name)
        with engine_errors("removing the lab network"):
            nets = {
                n.id: n for n in client.networks.list(filters={"label": f"{LABEL_LAB}={self.lab}"})
            }
            for n in client.networks.list(names=[self.network_name]):
                if n.name == self.network_name:
                    nets[n.id] = n
        import docker.errors

        for net in nets.values():
            try:
                net.remove()
                report.add("networks", net.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                report.problems.append(f"network {net.name}: {exc.explanation or exc}")
        detached, problems = detach_loops(self.lab)
        for dev in detached:
            report.add("loop devices", dev)
        report.problems += problems
        for path in (self.inventory_file, self.known_hosts_file, self.state_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._say("*", f"lab {self.lab} removed")
        return report

    def _remove_container(self, c: Any) -> tuple[str, str | None]:
        return remove_container(c, self._say)

    def lab_loops(self) -> list[tuple[str, str]]:
        """Loop devices whose backing file is one of this lab's disks: (device, backing file)."""
        return lab_loops(self.lab)
