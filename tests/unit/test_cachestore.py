"""`labctl cache`'s pure rules: what is stale, what `prune` removes, the .debs a newer version
supersedes; and the cache folder read from a throwaway LABCTL_CACHE (no engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from labctl import agentpack
from labctl.cachestore import prune
from labctl.cachestore.debver import compare_versions, parse_deb_name, superseded
from labctl.cachestore.files import (
    agent_items,
    debootstrap_items,
    orphan_build_trees,
    vm_items,
    vm_users,
)
from labctl.cachestore.images import current_lab_tags, judge_tag
from labctl.cachestore.model import (
    CURRENT,
    OTHER,
    STALE,
    CacheItem,
    human_size,
    keyed_name,
    log_state,
    plan,
    prune_column,
    summary,
    table,
)
from labctl.drivers.docker import images as labimages
from labctl.drivers.qemu import images as vmimages
from labctl.errors import ConfigError

VERSION_PAIRS = [
    ("1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.10", "1.9", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0a", -1),
    ("1:1.0", "2.0", 1),
    ("2.38.1-5+deb12u3", "2.38.1-5+deb12u1", 1),
    ("2.38.1-5", "2.38.1-5+b1", -1),
    ("1.0-1", "1.0-1~bpo1", 1),
    ("7.88.1-10+deb12u14", "7.88.1-10+deb12u5", 1),
    ("0.9", "0.10", -1),
    ("1.0.0", "1.0", 1),
]


@pytest.mark.parametrize(("a", "b", "want"), VERSION_PAIRS)
def test_debian_versions_compare_as_dpkg_says(a: str, b: str, want: int) -> None:
    assert compare_versions(a, b) == want
    assert compare_versions(b, a) == -want
    dpkg = shutil.which("dpkg")
    if dpkg:  # the reference, where this machine has it
        op = {0: "eq", -1: "lt", 1: "gt"}[want]
        assert subprocess.run([dpkg, "--compare-versions", a, op, b], check=False).returncode == 0


def test_the_older_debs_of_a_package_are_superseded() -> None:
    names = [
        "bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb",
        "bsdutils_1%3a2.38.1-5+deb12u1_amd64.deb",
        "bsdutils_1%3a2.38.1-5+deb12u1_i386.deb",  # another architecture: its own package
        "adduser_3.134_all.deb",
        "libc6_2.36-9+deb12u10_amd64.deb",
        "libc6_2.36-9+deb12u4_amd64.deb",
        "libc6_2.36-9+deb12u9_amd64.deb",
        "partial",
        "not_a.deb",
    ]
    assert parse_deb_name(names[0]) == ("bsdutils", "1:2.38.1-5+deb12u3", "amd64")
    assert superseded(names) == [
        "bsdutils_1%3a2.38.1-5+deb12u1_amd64.deb",
        "libc6_2.36-9+deb12u4_amd64.deb",
        "libc6_2.36-9+deb12u9_amd64.deb",
    ]


def _item(
    name: str, state: str, kind: str = "vm-image", in_use: str = "", size: int = 10
) -> CacheItem:
    return CacheItem(kind, name, size, state, "why", in_use=in_use)


ITEMS = [
    _item("vm/bookworm-aaaaaaaaaaaa", CURRENT),
    _item("vm/bookworm-bbbbbbbbbbbb", STALE, size=700_000_000),
    _item("vm/bullseye-cccccccccccc", STALE, in_use="lab vms (host b)"),
    _item("cloud/bookworm-dddddddddddd", OTHER, kind="cloud-image"),
    _item("agent/probe_agent-eeeeeeeeeeee.pyz", STALE, kind="agent"),
]


def test_prune_removes_stale_items_nobody_uses() -> None:
    decisions = plan(ITEMS)
    removed = [d.item.name for d in decisions if d.remove]
    assert removed == ["vm/bookworm-bbbbbbbbbbbb", "agent/probe_agent-eeeeeeeeeeee.pyz"]
    kept = [(d.item.name, d.reason) for d in decisions if not d.remove]
    assert kept == [("vm/bullseye-cccccccccccc", "in use by lab vms (host b)")]


def test_prune_all_kinds_and_names_choose_what_goes_but_never_what_is_in_use() -> None:
    everything = plan(ITEMS, everything=True)
    assert sum(d.remove for d in everything) == 4 and len(everything) == 5
    only_vms = plan(ITEMS, kinds=["vm-image"])
    assert [d.item.name for d in only_vms if d.remove] == ["vm/bookworm-bbbbbbbbbbbb"]
    named = plan(ITEMS, names=["cloud/bookworm-dddddddddddd", "vm/bullseye-cccccccccccc"])
    assert [(d.item.name, d.remove) for d in named] == [
        ("vm/bullseye-cccccccccccc", False),
        ("cloud/bookworm-dddddddddddd", True),
    ]
    with pytest.raises(ConfigError, match="no cached item named vm/nope"):
        plan(ITEMS, names=["vm/nope"])
    with pytest.raises(ConfigError, match="unknown cache kind vms"):
        plan(ITEMS, kinds=["vms"])


def test_the_list_says_what_prune_would_do_and_free() -> None:
    assert [prune_column(i) for i in ITEMS[:4]] == ["keep", "remove", "keep (in use)", "keep"]
    text = table(ITEMS)
    assert text.splitlines()[0].split() == ["KIND", "SIZE", "STATE", "PRUNE", "NAME", "WHY"]
    assert "in use by lab vms (host b)" in text
    assert summary(ITEMS) == (
        "5 items, 700.0 MB; `labctl cache prune` would remove 2 stale, 700.0 MB"
    )
    assert summary(ITEMS[:1]).endswith("nothing stale to prune")
    assert human_size(5_600_000_000) == "5.6 GB" and human_size(999) == "999 B"


def test_names_keyed_by_a_recipe_hash_and_their_logs() -> None:
    assert keyed_name("bookworm-nodocker-5f30cccb498f") == ("bookworm-nodocker", "5f30cccb498f")
    assert keyed_name("docker-1.5.0-a8a31ef") is None
    assert log_state("vm-build-bookworm-7f3f56515088.log", {"7f3f56515088"})[0] == CURRENT
    assert log_state("vm-build-bookworm-af07fbaff05c.log", {"7f3f56515088"})[0] == STALE
    assert log_state("engine-docker-1.5.0-a8a31ef.log", set())[0] == OTHER


def test_image_tags_are_judged_by_the_tags_todays_recipes_have() -> None:
    current = current_lab_tags()
    today = labimages.recipe_for("bookworm").tag
    assert current[today] == "bookworm"
    assert labimages.recipe_for("bullseye", python="python2.7").tag in current
    assert len(current) == 14  # 3 suites x docker or not x python3/none, + bullseye's 2.7 x 2
    assert judge_tag(today, current) == (CURRENT, "today's bookworm recipe")
    state, why = judge_tag("labctl-host:bookworm-000000000000", current)
    assert state == STALE and why.startswith("an older bookworm recipe (today's: ")
    nodocker = labimages.recipe_for("bookworm", docker=False).short_hash
    assert nodocker in judge_tag("labctl-host:bookworm-nodocker-000000000000", current)[1]
    assert judge_tag("labctl-host:buster-000000000000", current) == (
        STALE, "no recipe of this labctl makes buster",
    )  # fmt: skip


def _vm_image(cache: Path, suite: str, short: str, digest: str, complete: bool = True) -> Path:
    d = cache / "vm" / f"{suite}-{short}"
    d.mkdir(parents=True)
    (d / "image.json").write_text(json.dumps({"recipe": digest}))
    for name in ("disk.raw", "vmlinuz", "initrd.img") if complete else ("disk.raw",):
        (d / name).write_bytes(b"x" * 4096)
    return d


def test_vm_images_older_incomplete_or_in_use(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LABCTL_CACHE", str(tmp_path))
    recipe = vmimages.vm_recipe_for("bookworm")
    current = _vm_image(tmp_path, "bookworm", recipe.short_hash, recipe.digest)
    old = _vm_image(tmp_path, "bookworm", "0" * 12, "0" * 64)
    broken = vmimages.vm_recipe_for("bullseye")
    _vm_image(tmp_path, "bullseye", broken.short_hash, broken.digest, complete=False)
    _vm_image(tmp_path, "buster", "1" * 12, "1" * 64)
    (tmp_path / "vm" / f".bookworm-{'2' * 12}.tmp999999999").mkdir()
    items = {i.name: i for i in vm_items(tmp_path, {os.path.realpath(old): "lab vms (host b)"})}
    assert items[f"vm/bookworm-{recipe.short_hash}"].state == CURRENT
    assert items["vm/bookworm-000000000000"].state == STALE
    assert items["vm/bookworm-000000000000"].in_use == "lab vms (host b)"
    assert items[f"vm/bullseye-{broken.short_hash}"].why.startswith("incomplete")
    assert items["vm/buster-111111111111"].why == "no recipe builds buster VM images any more"
    leftover = items[f"vm/.bookworm-{'2' * 12}.tmp999999999"]
    assert (leftover.kind, leftover.state) == ("leftover", STALE)
    assert items[f"vm/bookworm-{recipe.short_hash}"].size >= 3 * 4096
    assert current.is_dir()


def test_who_uses_a_vm_image_labs_and_running_processes(tmp_path: Path) -> None:
    lab = tmp_path / "home" / "labs" / "vms"
    lab.mkdir(parents=True)
    state = {"hosts": {"b": {"image": "/c/vm/bookworm-aaaaaaaaaaaa"}, "c7": {"cloud_image": "x"}}}
    (lab / "lab.json").write_text(json.dumps(state))
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cmdline").write_bytes(
        b"qemu-system-x86_64\0-kernel\0/c/vm/bullseye-bbbbbbbbbbbb/vmlinuz\0"
        b"-drive\0file=/h/labs/x/vms/b/root.qcow2,format=qcow2\0"
    )
    users = vm_users(tmp_path / "home", proc)
    assert users["/c/vm/bookworm-aaaaaaaaaaaa"] == "lab vms (host b)"
    assert users["/c/vm/bullseye-bbbbbbbbbbbb"] == "a running process (pid 4242)"


def test_agents_and_superseded_debs_in_a_cache_folder(tmp_path: Path) -> None:
    today = agentpack.build_agent(tmp_path / "agent")
    (tmp_path / "agent" / "probe_agent-000000000000.pyz").write_bytes(b"old")
    states = {i.name: i.state for i in agent_items(tmp_path)}
    assert states == {f"agent/{today.name}": CURRENT, "agent/probe_agent-000000000000.pyz": STALE}
    debs = tmp_path / "debootstrap" / "bookworm"
    debs.mkdir(parents=True)
    for name in ("libc6_2.36-9+deb12u4_amd64.deb", "libc6_2.36-9+deb12u10_amd64.deb"):
        (debs / name).write_bytes(b"x" * 8192)
    (tmp_path / "debootstrap" / "jessie").mkdir()
    items = {i.name: i for i in debootstrap_items(tmp_path)}
    assert items["debootstrap/bookworm"].state == CURRENT
    old = items["debootstrap/bookworm/superseded"]
    assert old.state == STALE and [p.name for p in old.paths] == ["libc6_2.36-9+deb12u4_amd64.deb"]
    assert items["debootstrap/jessie"].state == STALE


def test_prune_removes_files_and_a_dry_run_nothing(tmp_path: Path) -> None:
    folder, file = tmp_path / "vm" / "bookworm-000000000000", tmp_path / "agent.pyz"
    folder.mkdir(parents=True)
    (folder / "disk.raw").write_bytes(b"x")
    file.write_bytes(b"y")
    items = [
        CacheItem("vm-image", "vm/bookworm-000000000000", 5, STALE, "", paths=(folder,)),
        CacheItem("agent", "agent.pyz", 7, STALE, "", paths=(file,)),
        CacheItem("vm-image", "vm/used", 9, STALE, "", in_use="lab x", paths=(tmp_path,)),
    ]
    dry = prune(plan(items), dry_run=True)
    assert dry.freed == 12 and folder.exists() and file.exists() and len(dry.kept) == 1
    done = prune(plan(items))
    assert done.freed == 12 and not folder.exists() and not file.exists() and tmp_path.exists()
    assert done.problems == []


def test_a_build_tree_left_in_the_temp_folder_is_listed_and_pruned(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / "labctl-build-vm-bookworm-999999999-abcdefgh"
    (dead / "root" / "etc").mkdir(parents=True)
    (dead / "root" / "etc" / "hostname").write_text("x")
    (tmp_path / f"labctl-build-vm-bookworm-{os.getpid()}-ours").mkdir()  # a live build's
    items = orphan_build_trees()
    assert [(i.name, i.kind, i.state, i.build_tree) for i in items] == [
        (str(dead), "leftover", STALE, True)
    ]
    assert prune(plan(items)).problems == [] and not dead.exists()
