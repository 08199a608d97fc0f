"""The driver registry: names to classes, presets, and building a lab from command-line options;
the generic DownReport the CLI prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.drivers.base import DownReport, LabDriver
from labctl.drivers.registry import DRIVERS, driver_class, make_lab, preset_names
from labctl.errors import ConfigError


def test_every_entry_is_a_driver_with_the_presets_it_names() -> None:
    for name, entry in DRIVERS.items():
        cls = driver_class(name)
        assert issubclass(cls, LabDriver) and cls.name == name
        assert cls.presets == entry.presets
    assert preset_names() == ["article"]


def test_unknown_driver_and_preset_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown driver 'libvirt'"):
        driver_class("libvirt")
    with pytest.raises(ConfigError, match="unknown preset"):
        make_lab("x", preset="nope")


def test_a_lab_is_built_by_the_driver_named_or_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    assert make_lab("a").name == "docker"
    assert make_lab("a", driver="qemu").name == "qemu"
    (tmp_path / "labs" / "b").mkdir(parents=True)
    (tmp_path / "labs" / "b" / "lab.json").write_text('{"driver": "qemu"}')
    assert make_lab("b").name == "qemu"
    lab = make_lab("c", preset="article", accel="tcg")
    assert lab.name == "qemu" and lab.spec.name == "c"


def test_options_of_another_driver_name_it() -> None:
    with pytest.raises(ConfigError, match=r"--cpus: qemu lab options, not docker ones") as info:
        make_lab("a", cpus=2, memory=None, hosts=())
    assert "--driver qemu" in info.value.line()
    with pytest.raises(ConfigError, match="--preset article brings its own qemu hosts: --driver"):
        make_lab("a", driver="docker", preset="article")


def test_down_report_summary_keeps_each_drivers_words() -> None:
    rep = DownReport.of("containers", "networks", "loop devices")
    rep.add("containers", "c1")
    assert rep.summary() == "removed 1 containers, 0 networks, 0 loop devices"
    vms = DownReport.of("VMs", detail="QEMU processes, overlays, ports")
    assert vms.summary() == "removed 0 VMs (QEMU processes, overlays, ports)"
    assert vms.ok and vms.removed == {"VMs": []}


def test_probe_asks_the_hosts_own_driver_for_a_moved_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from labctl.hosts import HostRecord
    from labctl.probe import reread_from_lab

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    for driver in ("docker", "qemu", "static", ""):
        host = HostRecord("h", "127.0.0.1", 2222, labels={"lab": "gone", "driver": driver})
        assert reread_from_lab(host) is None  # no such lab, or a driver whose ports never move
