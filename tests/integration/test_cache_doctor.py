"""`labctl cache list|prune` and `labctl doctor` for real, on this machine's Docker engine.

The cache is a throwaway LABCTL_CACHE holding a current and a stale item of two kinds (VM image
folders, agents); the Docker side is two tiny images imported from a one-file tar and tagged as
stale lab images (hashes no recipe has), one of them used by a container that is created, never
started. Only this test's own tags are ever pruned (by name): other people's images on the same
engine are listed, never touched. Everything made here is removed at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl import agentpack
from labctl.drivers.qemu import images as vmimages
from tests.helpers import labctl

pytestmark = pytest.mark.integration


def _tiny_tar(text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def stale_images(docker_client: Any) -> Iterator[tuple[str, str, str]]:
    """(a stale tag, a stale tag a container uses, that container's name); all removed after."""
    token = uuid.uuid4().hex[:12]
    free = f"labctl-host:bookworm-{token}"
    used = f"labctl-host:trixie-{token}"
    name = f"labctl-cachetest-{token}"
    container = None
    try:
        for tag in (free, used):
            repo, _, version = tag.partition(":")
            docker_client.api.import_image_from_data(_tiny_tar(tag), repository=repo, tag=version)
        container = docker_client.containers.create(used, command=["/hello"], name=name)
        yield free, used, name
    finally:
        if container is not None:
            container.remove(force=True)
        for tag in (free, used):
            with contextlib.suppress(Exception):  # already pruned by the test
                docker_client.images.remove(tag, force=True)


@pytest.fixture
def throwaway_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABCTL_CACHE", str(cache))
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    recipe = vmimages.vm_recipe_for("bookworm")
    made = {}
    for key, short, digest in (("vm_current", recipe.short_hash, recipe.digest),
                               ("vm_stale", "0" * 12, "0" * 64)):  # fmt: skip
        d = cache / "vm" / f"bookworm-{short}"
        d.mkdir(parents=True)
        (d / "image.json").write_text(json.dumps({"recipe": digest}))
        for name in ("disk.raw", "vmlinuz", "initrd.img"):
            (d / name).write_bytes(os.urandom(64 << 10))
        made[key] = d
    made["agent_current"] = agentpack.build_agent(cache / "agent")
    made["agent_stale"] = cache / "agent" / "probe_agent-000000000000.pyz"
    made["agent_stale"].write_bytes(b"an agent of other sources")
    return made


def _row(listing: str, name: str) -> list[str]:
    rows = [line.split() for line in listing.splitlines() if f" {name} " in f"{line} "]
    assert len(rows) == 1, (name, listing)
    return rows[0]


def test_cache_list_and_prune_for_real(throwaway_cache: dict[str, Path], stale_images) -> None:
    free, used, container = stale_images
    vm_current = f"vm/{throwaway_cache['vm_current'].name}"
    listed = labctl("cache", "list")
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    # KIND SIZE(2 words) STATE PRUNE NAME ...
    assert _row(out, vm_current)[3:5] == ["current", "keep"]
    assert _row(out, "vm/bookworm-000000000000")[3:5] == ["stale", "remove"]
    assert _row(out, "agent/probe_agent-000000000000.pyz")[3:5] == ["stale", "remove"]
    assert _row(out, f"agent/{throwaway_cache['agent_current'].name}")[3] == "current"
    assert _row(out, free)[3:5] == ["stale", "remove"]
    assert _row(out, used)[3:7] == ["stale", "keep", "(in", "use)"]
    assert f"in use by container {container}" in out

    dry = labctl("cache", "prune", "--dry-run", "--kind", "vm-image", "--kind", "agent")
    assert dry.returncode == 0, dry.stderr
    assert "would remove vm-image vm/bookworm-000000000000" in dry.stdout
    assert "would free" in dry.stdout and throwaway_cache["vm_stale"].is_dir()

    done = labctl("cache", "prune", "--kind", "vm-image", "--kind", "agent")
    assert done.returncode == 0, done.stderr
    assert not throwaway_cache["vm_stale"].exists()
    assert not throwaway_cache["agent_stale"].exists()
    assert throwaway_cache["vm_current"].is_dir() and throwaway_cache["agent_current"].is_file()
    last = done.stdout.splitlines()[-1]  # three 64 KiB files and image.json, and the agent
    assert last.startswith("freed ") and last.endswith(" kB (2 items)"), done.stdout

    images = labctl("cache", "prune", free, used)
    assert images.returncode == 0, images.stderr
    assert f"removed lab-image {free}" in images.stdout
    assert f"kept lab-image {used}: in use by container {container}" in images.stdout
    after = labctl("cache", "list", "--kind", "lab-image").stdout
    assert free not in after and used in after


def test_doctor_answers_for_this_machine() -> None:
    out = labctl("doctor")
    lines = out.stdout.splitlines()
    assert lines, out.stderr
    features = {line.split()[1] for line in lines[:-1]}
    assert {"docker", "python", "ansible-core", "kvm", "cgroup", "disk"} <= features
    assert all(line.split()[0] in ("ok", "missing", "limited") for line in lines[:-1])
    assert lines[0].startswith("ok       docker engine      Docker ")
    ready = lines[-1] == "the container lab can run (`labctl run`)"
    assert out.returncode == (0 if ready else 1)
