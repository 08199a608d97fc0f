"""`labctl doctor`'s checks on given facts (pure), and `labctl completion` for each shell."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from labctl.doctor import (
    GB,
    LIMITED,
    MISSING,
    OK,
    Disk,
    DockerFacts,
    Facts,
    Line,
    cgroup_kind,
    free_space,
    judge,
    pipeline_ready,
    render,
)
from tests.helpers import LABCTL

GOOD = Facts(
    python=(3, 11, 2),
    docker=DockerFacts(version="20.10.24", storage_driver="overlay2", cgroup_version="2"),
    is_root=True,
    debootstrap="/usr/sbin/debootstrap",
    lab_images_built=True,
    qemu="/usr/bin/qemu-system-x86_64",
    qemu_img="/usr/bin/qemu-img",
    kvm_problem=None,
    cgroup="v2",
    seed_tool="genisoimage",
    engine_150_built=True,
    modules={"ansible-core": "2.19.1", "ansible-runner": "2.4.3"},
    disks=(Disk("LABCTL_CACHE", "/c", 50 * GB), Disk("results", "/r", 50 * GB)),
)


def _lines(facts: Facts) -> dict[str, Line]:
    return {line.feature: line for line in judge(facts)}


def test_a_machine_with_everything_is_all_ok() -> None:
    lines = judge(GOOD)
    assert {line.status for line in lines} == {OK}
    assert pipeline_ready(lines)
    docker = _lines(GOOD)["docker engine"]
    assert docker.detail == "Docker 20.10.24, storage driver overlay2, cgroup v2"
    text = render(lines)
    assert text.splitlines()[-1] == "the container lab can run (`labctl run`)"
    assert "cannot start containers on cgroup v2" in _lines(GOOD)["cgroup"].detail


def test_no_engine_or_no_ansible_stops_the_pipeline() -> None:
    down = dataclasses.replace(GOOD, docker=DockerFacts(error="connection refused"))
    line = _lines(down)["docker engine"]
    assert line.status == MISSING and "setup.sh deps" in line.todo
    assert not pipeline_ready(judge(down))
    assert render(judge(down)).splitlines()[-1].startswith("the container lab cannot run yet")
    no_runner = dataclasses.replace(GOOD, modules={"ansible-core": "2.19.1"})
    assert _lines(no_runner)["ansible-runner"].status == MISSING
    assert not pipeline_ready(judge(no_runner))


def test_debootstrap_and_root_matter_only_until_the_images_are_built() -> None:
    built = dataclasses.replace(GOOD, debootstrap=None, is_root=False)
    assert _lines(built)["debootstrap"].status == LIMITED
    assert pipeline_ready(judge(built))
    unbuilt = dataclasses.replace(built, lab_images_built=False)
    assert _lines(unbuilt)["debootstrap"].status == MISSING
    assert not pipeline_ready(judge(unbuilt))
    not_root = dataclasses.replace(GOOD, is_root=False, lab_images_built=False)
    line = _lines(not_root)["lab images"]
    assert line.status == MISSING and "not running as root" in line.detail
    assert not pipeline_ready(judge(not_root))
    can_build = dataclasses.replace(GOOD, lab_images_built=False)
    assert _lines(can_build)["lab images"].status == OK


def test_vm_features_are_limited_or_missing_without_failing_the_pipeline() -> None:
    facts = dataclasses.replace(
        GOOD, qemu=None, kvm_problem="/dev/kvm: No such file or directory", seed_tool=None,
        engine_150_built=False,
    )  # fmt: skip
    lines = _lines(facts)
    assert lines["qemu"].status == MISSING and "qemu-system-x86_64" in lines["qemu"].detail
    assert lines["kvm"].status == LIMITED and "TCG" in lines["kvm"].detail
    assert lines["cloud images"].status == MISSING
    assert lines["docker 1.5.0"].todo == "labctl engine build 1.5.0 --source FILE"
    assert pipeline_ready(list(lines.values()))


def test_low_disk_is_limited_and_says_what_frees_it() -> None:
    disks = (Disk("LABCTL_CACHE", "/c", GB), Disk("results", "/r", None, "Permission denied"))
    facts = dataclasses.replace(GOOD, disks=disks)
    lines = _lines(facts)
    assert lines["disk LABCTL_CACHE"].status == LIMITED
    assert lines["disk LABCTL_CACHE"].todo == "labctl cache prune"
    assert lines["disk results"].detail == "/r: Permission denied"


MOUNTS_V2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n"
MOUNTS_HYBRID = (
    "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
)
MOUNTS_V1 = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"


def test_cgroup_kind_from_proc_mounts() -> None:
    assert cgroup_kind(MOUNTS_V2) == "v2"
    assert cgroup_kind(MOUNTS_HYBRID) == "hybrid"
    assert cgroup_kind(MOUNTS_V1) == "v1"
    assert cgroup_kind("") == "unknown"
    assert _lines(dataclasses.replace(GOOD, cgroup="unknown"))["cgroup"].status == LIMITED


def test_free_space_of_a_folder_not_made_yet_is_its_parents(tmp_path: Path) -> None:
    disk = free_space("LABCTL_HOME", tmp_path / "not" / "yet")
    assert disk.free is not None and disk.free > 0 and disk.path.endswith("not/yet")


# --- shell completion (click's own mechanism, through the installed command) ----------------


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef labctl"),
        ("fish", "complete --no-files"),
    ],
)
def test_completion_prints_a_script_for_each_shell(shell: str, marker: str) -> None:
    out = subprocess.run([LABCTL, "completion", shell], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert marker in out.stdout and "_LABCTL_COMPLETE" in out.stdout


def test_completing_ca_offers_cache() -> None:
    env = {**os.environ, "_LABCTL_COMPLETE": "bash_complete", "COMP_WORDS": "labctl ca",
           "COMP_CWORD": "1"}  # fmt: skip
    out = subprocess.run([LABCTL], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "plain,cache" in out.stdout.splitlines()
    env["COMP_WORDS"], env["COMP_CWORD"] = "labctl cache pr", "2"
    out = subprocess.run([LABCTL], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.splitlines() == ["plain,prune"]
