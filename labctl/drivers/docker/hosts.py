"""The containers of a docker lab (``DockerHosts``, the base of ``DockerLab``): their names, the
engine client, the lab network, and creating, starting and waiting for each lab host until its
sshd (and inner dockerd) answers and its host key is read."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import LabError
from ..base import LOOPBACK, LabDriver, ssh_banner
from .containers import (
    ENTRYPOINT_LOG,
    HELPER,
    LABEL_DRIVER,
    LABEL_HOST,
    LABEL_HOSTSPEC,
    LABEL_LAB,
    LABEL_RECIPE,
    LABEL_SUITE,
    create_host_container,
    disk_image,
    engine_errors,
    entrypoint_tail,
    exec_in,
    parse_facts,
    published_port,
)
from .spec import DockerLabSpec, HostSpec

ADDRESS = LOOPBACK
READY_TIMEOUT = 180.0


@dataclass
class Host:
    spec: HostSpec
    index: int
    container: Any = None
    port: int | None = None
    host_key: str | None = None
    docker_version: str = ""
    storage_driver: str = ""
    #: what the helper reported (`labctl-dockerd facts`): backing_fs, storage_opt_size, ...
    facts: dict[str, str] = field(default_factory=dict)
    #: running before this `up`: its entrypoint will not start a dead inner dockerd again
    was_running: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def suite(self) -> str:
        return self.spec.suite


class DockerHosts(LabDriver):
    """A docker lab's hosts as containers of the engine."""

    spec: DockerLabSpec
    _client_obj: Any = None

    # --- names and places ---------------------------------------------------------------------

    @property
    def network_name(self) -> str:
        return f"labctl-{self.lab}"

    def container_name(self, host: str) -> str:
        """The container of a lab host (by host name; a default host is named after its suite)."""
        return f"labctl-lab-{self.lab}-{host}"

    def disk_image(self, host: str) -> str:
        return disk_image(self.lab, host)

    def bip(self, index: int) -> str:
        return f"10.213.{index + 1}.1/24"

    # --- the engine ---------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_obj is not None:
            return self._client_obj
        from ...dockerclient import connect

        self._client_obj = connect()
        return self._client_obj

    def _find(self, client: Any, suite: str) -> Any:
        import docker.errors

        try:
            return client.containers.get(self.container_name(suite))
        except docker.errors.NotFound:
            return None

    # --- starting -------------------------------------------------------------------------------

    def _ensure_network(self, client: Any) -> Any:
        found = client.networks.list(names=[self.network_name])
        for net in found:
            if net.name == self.network_name:
                return net
        self._say("*", f"creating network {self.network_name}")
        return client.networks.create(
            self.network_name,
            driver="bridge",
            labels={LABEL_LAB: self.lab, LABEL_DRIVER: "docker"},
        )

    def _check_same_host(self, h: Host) -> None:
        """An existing container must be the host the spec asks for (driver, fs, image kind)."""
        c = h.container
        if c is None:
            return
        made = c.labels.get(LABEL_HOSTSPEC)
        want = h.spec.to_string()
        if made is not None and made != want:
            raise LabError(
                f"the running lab host {self.container_name(h.name)} was made as {made!r}, "
                f"the lab now asks for {want!r}",
                host=h.name,
                hint=f"`labctl lab down --name {self.lab}` first, or give the host another name=",
            )

    def _start_host(self, client: Any, h: Host, public_key: str) -> None:
        c = h.container
        hs = h.spec
        recipe = hs.image_recipe()
        if c is None:
            tag = recipe.tag
            self._say(h.name, f"creating {self.container_name(h.name)} from {tag}")
            h.container = create_host_container(
                client,
                tag,
                name=self.container_name(h.name),
                hostname=h.name,
                network=self.network_name,
                labels={
                    LABEL_LAB: self.lab,
                    LABEL_HOST: h.name,
                    LABEL_SUITE: h.suite,
                    LABEL_HOSTSPEC: hs.to_string(),
                    LABEL_RECIPE: recipe.short_hash,
                    LABEL_DRIVER: "docker",
                },
                environment={
                    "LABCTL_LAB": self.lab,
                    "LABCTL_SUITE": h.suite,
                    "LABCTL_HOST": h.name,
                    "LABCTL_AUTHORIZED_KEY": public_key,
                    "LABCTL_DISK_IMAGE": self.disk_image(h.name),
                    "LABCTL_DISK_SIZE": str(self.spec.disk_size),
                    "LABCTL_DISK_INODES": str(self.spec.disk_inodes),
                    "LABCTL_BIP": self.bip(h.index),
                    "LABCTL_STORAGE_DRIVER": hs.storage_driver,
                    "LABCTL_BACKING_FS": hs.backing_fs,
                },
                memory=self.spec.memory,
                pids_limit=self.spec.pids_limit,
            )
            return
        if c.labels.get(LABEL_RECIPE) != recipe.short_hash:
            self._say(
                h.name,
                f"note: made from an older recipe ({c.labels.get(LABEL_RECIPE)}); "
                "`down` then `up` to use the current image",
            )
        if c.status == "running":
            self._say(h.name, "already running")
            h.was_running = True
        elif c.status == "paused":
            self._say(h.name, "unpausing")
            c.unpause()
            h.was_running = True
        else:
            self._say(h.name, f"starting (was {c.status})")
            c.start()

    def _wait_ready(self, h: Host) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        c = h.container
        name = self.container_name(h.name)
        waiting_for = "the container to run"
        # a host without docker.io has no dockerd to wait for: its disk and daemon.json only
        ready_cmd, ready_what = (
            ([HELPER, "status"], "the inner dockerd")
            if h.spec.docker
            else ([HELPER, "prepared"], "the docker disk and daemon.json")
        )
        revived = False
        with engine_errors("waiting for the lab host", host=h.name):
            while True:
                c.reload()
                if c.status != "running":
                    if c.status in ("exited", "dead"):
                        tail = entrypoint_tail(c)
                        raise LabError(
                            f"the lab host container {name} stopped "
                            f"(exit {c.attrs.get('State', {}).get('ExitCode')})"
                            + (f": {tail}" if tail else ""),
                            host=h.name,
                            hint=f"see `docker logs {name}` and {ENTRYPOINT_LOG} in it",
                        )
                else:
                    h.port = published_port(c.attrs)
                    if h.port is None:
                        waiting_for = "the published SSH port"
                    elif exec_in(c, ready_cmd)[0] != 0:
                        waiting_for = ready_what
                        if h.was_running and h.spec.docker and not revived:
                            # a dead inner dockerd of a running host: nothing else restarts it
                            # (this waited out READY_TIMEOUT, 180 s, and failed the whole run)
                            revived = True
                            self._say(h.name, "its inner dockerd does not answer: starting it")
                            exec_in(c, [HELPER, "start"])
                    elif not ssh_banner(h.port, 2.0):  # last: sshd may penalize idle probes
                        waiting_for = f"sshd on {ADDRESS}:{h.port}"
                    else:
                        break
                if time.monotonic() > deadline:
                    tail = entrypoint_tail(c)
                    raise LabError(
                        f"not ready after {READY_TIMEOUT:.0f} s: still waiting for {waiting_for}"
                        + (f" (entrypoint log: {tail})" if tail else ""),
                        host=h.name,
                        hint=f"see `docker exec {name} cat {ENTRYPOINT_LOG}` "
                        "and /var/log/dockerd.log in it",
                    )
                time.sleep(0.3)
            h.host_key = _read_host_key(h, c, name)
            # backing fs, quota, and whether `--storage-opt size=` is accepted (tried for real)
            rc, out = exec_in(c, [HELPER, "facts"])
            h.facts = parse_facts(out) if rc == 0 else {}
            version_driver = h.facts.get("docker", "").split()
            if len(version_driver) == 2:
                h.docker_version, h.storage_driver = version_driver
        if h.docker_version:
            opt = h.facts.get("storage_opt_size", "unknown")
            self._say(
                h.name,
                f"ready on {ADDRESS}:{h.port} (docker {h.docker_version}, {h.storage_driver} on "
                f"{h.facts.get('backing_fs', '?')}, --storage-opt size: {opt})",
            )
        else:
            fs = h.facts.get("backing_fs", "?")
            self._say(
                h.name,
                f"ready on {ADDRESS}:{h.port} (no docker yet; {fs} disk prepared for "
                f"{h.spec.storage_driver})",
            )

    def _check_host_keys(self, hosts: list[Host], old_state: Mapping[str, Any]) -> None:
        """A lab host keeps the keys it made at its first start; a change is an error."""
        old_hosts = old_state.get("hosts") or {}
        for h in hosts:
            old = old_hosts.get(h.name) or {}
            if old.get("container_id") == h.container.id and old.get("host_key") not in (
                None,
                h.host_key,
            ):
                raise LabError(
                    "the lab host's SSH host key changed since its first start",
                    host=h.name,
                    hint=f"something regenerated it; run `labctl lab down --name {self.lab}` and "
                    f"up again (recorded {old.get('host_key')}, now {h.host_key})",
                )


def _read_host_key(h: Host, c: Any, name: str) -> str:
    """The lab host's SSH host key, "ssh-ed25519 BASE64". Read again briefly when it comes back
    empty: a `docker exec` on a busy engine now and then returned no output for a key that was
    there (about 1 run in 7)."""
    rc, out, parts = -1, "", []
    for _ in range(10):
        rc, out = exec_in(c, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        parts = out.split()
        if rc == 0 and len(parts) >= 2 and parts[0] == "ssh-ed25519":
            return f"{parts[0]} {parts[1]}"
        time.sleep(0.5)
    raise LabError(
        f"cannot read the lab host's SSH host key ({out.strip()[:200]})",
        host=h.name,
        hint=f"see {ENTRYPOINT_LOG} in {name}",
    )
