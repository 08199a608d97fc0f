"""The qemu driver's pure parts: spec validation, host options, kernel and QEMU command lines,
recipe hashing, the settings handed to the VM, and the CLI's driver choice."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from labctl.drivers.qemu import QemuHostSpec, QemuLab, QemuLabSpec, vm
from labctl.drivers.qemu import images as vmimages
from labctl.drivers.qemu import initramfs as vminitramfs
from labctl.drivers.qemu import spec as qspec
from labctl.drivers.qemu.spec import parse_host_option
from labctl.drivers.qemu.vm import kernel_cmdline, lab_env, qemu_command
from labctl.errors import ConfigError, LabError

GiB = 1 << 30
MiB = 1 << 20


# --- spec -------------------------------------------------------------------------------------


def test_default_spec_is_three_suites_on_cgroup_v2() -> None:
    spec = QemuLabSpec()
    spec.validate()
    assert [h.name for h in spec.hosts] == ["bullseye", "bookworm", "trixie"]
    assert {h.cgroup for h in spec.hosts} == {"v2"}
    assert spec.hosts[0].memory == 1 * GiB and spec.hosts[0].cpus == 2
    assert spec.hosts[0].disk_size == 2 * GiB
    assert spec.accel == "auto"


def test_host_sizes_and_numbers_are_parsed() -> None:
    h = QemuHostSpec(suite="bookworm", memory="512MiB", disk_size="1g", cpus="1", cgroup="1")  # type: ignore[arg-type]
    assert (h.memory, h.disk_size, h.cpus, h.cgroup, h.name) == (
        512 * MiB,
        GiB,
        1,
        "v1",
        "bookworm",
    )
    h.validate()


def test_from_mapping_suites_shorthand_with_defaults() -> None:
    spec = QemuLabSpec.from_mapping(
        {"name": "x", "suites": "bullseye,bookworm", "memory": "768MiB", "cgroup": "v1"}
    )
    assert [h.suite for h in spec.hosts] == ["bullseye", "bookworm"]
    assert all(h.memory == 768 * MiB and h.cgroup == "v1" for h in spec.hosts)


def test_from_mapping_hosts_as_strings_and_mappings() -> None:
    spec = QemuLabSpec.from_mapping(
        {
            "hosts": [
                "bullseye",
                "bullseye:name=bullseye-v1,cgroup=v1",
                {"suite": "bookworm", "storage_driver": "devicemapper"},
                "trixie:docker_fs=xfs,disk=4GiB",
            ],
            "cpus": 1,
        }
    )
    by = {h.name: h for h in spec.hosts}
    assert set(by) == {"bullseye", "bullseye-v1", "bookworm", "trixie"}
    assert by["bullseye-v1"].cgroup == "v1" and by["bullseye"].cgroup == "v2"
    assert by["bookworm"].storage_driver == "devicemapper"
    assert by["trixie"].docker_fs == "xfs" and by["trixie"].disk_size == 4 * GiB
    assert all(h.cpus == 1 for h in spec.hosts)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"hosts": ["bookworm", "bookworm"]}, "used twice"),
        ({"hosts": ["buster"]}, "unknown suite"),
        ({"hosts": ["trixie:storage=devicemapper"]}, "no devicemapper"),
        ({"hosts": ["bookworm:storage=btrfs"]}, "not supported"),
        ({"hosts": ["bookworm:cgroup=v3"]}, "v1 or v2"),
        ({"hosts": ["bookworm:docker_fs=btrfs"]}, "docker_fs"),
        ({"hosts": ["bookworm:memory=64MiB"]}, "below the minimum"),
        ({"hosts": ["bookworm:disk_size=10MiB"]}, "below the minimum"),
        ({"hosts": ["bookworm:cpus=0"]}, "between 1"),
        ({"hosts": ["bookworm:cpus=many"]}, "integer"),
        ({"hosts": ["bookworm:disk_inodes=5000000"]}, "do not fit"),
        ({"hosts": ["bookworm:name=Bad_Name"]}, "not valid"),
        ({"hosts": ["bookworm:colour=red"]}, "cannot read"),
        ({"hosts": [{"suite": "bookworm", "colour": "red"}]}, "unknown qemu host option"),
        ({"hosts": ["bookworm"], "accel": "hvf"}, "accel"),
        ({"name": "Bad Name"}, "not a valid lab name"),
        ({"suites": "bookworm", "hosts": ["bookworm"]}, "either suites or hosts"),
        ({"mirror": "ftp://x"}, "http(s)"),
        ({"frobnicate": 1}, "unknown qemu lab option"),
    ],
)
def test_bad_specs_name_the_problem(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        QemuLabSpec.from_mapping(data)
    assert needle in str(err.value)


def test_devicemapper_refusal_says_why() -> None:
    with pytest.raises(ConfigError) as err:
        parse_host_option("trixie:storage=devicemapper")
    text = str(err.value)
    assert "Docker 26.1" in text and "removed it in 25.0" in text and "bullseye or bookworm" in text


def test_disk_inodes_can_be_left_to_mkfs() -> None:
    assert parse_host_option("bookworm:inodes=none").disk_inodes is None
    assert parse_host_option("bookworm:inodes=30000").disk_inodes == 30000


# --- kernel command line -----------------------------------------------------------------------


def test_kernel_cmdline_cgroup_v2() -> None:
    words = kernel_cmdline("bookworm", "v2", accel="kvm").split()
    assert "systemd.unified_cgroup_hierarchy=1" in words
    assert not any(w.startswith("systemd.legacy_systemd_cgroup_controller") for w in words)
    assert "root=LABEL=labctl-root" in words and "console=ttyS0" in words
    assert "panic=-1" in words and "net.ifnames=0" in words
    assert "quiet" in words  # console lines cost boot time under TCG
    assert not any(w.startswith("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE") for w in words)


@pytest.mark.parametrize("suite", ["bullseye", "bookworm"])
def test_kernel_cmdline_cgroup_v1(suite: str) -> None:
    words = kernel_cmdline(suite, "v1", accel="tcg").split()
    assert "systemd.unified_cgroup_hierarchy=0" in words
    assert "systemd.legacy_systemd_cgroup_controller=1" in words
    assert "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1" not in words


def test_kernel_cmdline_cgroup_v1_on_trixie_is_forced() -> None:
    words = kernel_cmdline("trixie", "v1", accel="kvm").split()
    assert "systemd.unified_cgroup_hierarchy=0" in words
    assert "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1" in words


def test_kernel_cmdline_trusts_the_tsc_under_tcg_only() -> None:
    # TCG's TSC is one host counter for every vCPU; without this the guest reads the HPET
    assert "tsc=reliable" in kernel_cmdline("bookworm", "v2", accel="tcg").split()
    assert not any(
        w.startswith("tsc=") for w in kernel_cmdline("bookworm", "v2", accel="kvm").split()
    )


def test_swap_accounting_off_as_ubuntu_14_04_booted_and_a_swap_file() -> None:
    assert "swapaccount=0" in kernel_cmdline("bullseye", "v1", accel="tcg", swapaccount="off")
    assert "swapaccount=1" in kernel_cmdline("bullseye", "v1", accel="tcg", swapaccount="on")
    assert "swapaccount" not in kernel_cmdline("bullseye", "v1", accel="tcg")
    h = parse_host_option("bullseye:name=u,cgroup=v1,swap=256MiB,swapaccount=off")
    assert (h.swap, h.swapaccount) == (256 << 20, "off")
    assert "LABCTL_SWAP=268435456" in lab_env(h, "l")
    for bad, needle in (("swapaccount=maybe", "swapaccount must be on or off"),
                        ("swap=1MiB", "too small")):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            QemuLabSpec(name="l", hosts=(parse_host_option(f"bullseye:{bad}"),)).validate()
        assert needle in err.value.line()


def test_kernel_cmdline_refuses_unknown_cgroup() -> None:
    with pytest.raises(ConfigError):
        kernel_cmdline("bookworm", "v3", accel="tcg")


# --- QEMU command line ------------------------------------------------------------------------


def _cmd(accel: str, tmp: Path = Path("/lab/vms/b"), bios: Path | None = None) -> list[str]:
    return qemu_command(
        name="labctl-t-bookworm",
        accel=accel,
        cpus=2,
        memory=1 * GiB,
        kernel=Path("/img/vmlinuz"),
        initrd=Path("/img/initrd.img"),
        append="root=LABEL=labctl-root console=ttyS0",
        root_disk=tmp / "root.qcow2",
        data_disk=tmp / "data.qcow2",
        port=40022,
        fw_cfg={"lab.env": tmp / "fw_cfg/lab.env", "authorized_keys": tmp / "fw_cfg/ak"},
        pidfile=tmp / "qemu.pid",
        console_log=tmp / "console.log",
        qmp_socket=tmp / "qmp.sock",
        bios=bios,
    )


def _opt(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_qemu_command_tcg() -> None:
    cmd = _cmd("tcg")
    assert cmd[0] == "qemu-system-x86_64"
    assert _opt(cmd, "-accel") == ["tcg,thread=multi"] and _opt(cmd, "-cpu") == ["max"]
    assert _opt(cmd, "-smp") == ["2"] and _opt(cmd, "-m") == ["1024M"]
    assert _opt(cmd, "-kernel") == ["/img/vmlinuz"] and _opt(cmd, "-initrd") == ["/img/initrd.img"]
    assert _opt(cmd, "-append") == ["root=LABEL=labctl-root console=ttyS0"]
    assert "-daemonize" in cmd and _opt(cmd, "-pidfile") == ["/lab/vms/b/qemu.pid"]
    assert _opt(cmd, "-serial") == ["file:/lab/vms/b/console.log"]
    assert "-nodefaults" in cmd and _opt(cmd, "-display") == ["none"]


def test_qemu_command_firmware_only_when_given() -> None:
    assert "-bios" not in _cmd("tcg")  # QEMU's default SeaBIOS
    cmd = _cmd("tcg", bios=Path("/usr/share/qemu/qboot.rom"))
    assert _opt(cmd, "-bios") == ["/usr/share/qemu/qboot.rom"]


def test_qemu_command_kvm() -> None:
    cmd = _cmd("kvm")
    assert _opt(cmd, "-accel") == ["kvm"] and _opt(cmd, "-cpu") == ["host"]


def test_qemu_command_network_only_on_loopback() -> None:
    (nic,) = _opt(_cmd("tcg"), "-nic")
    assert nic == "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:40022-:22"


def test_qemu_command_disks_and_fw_cfg() -> None:
    cmd = _cmd("tcg")
    drives = _opt(cmd, "-drive")
    assert drives[0].startswith("file=/lab/vms/b/root.qcow2,format=qcow2,")
    assert drives[1].startswith("file=/lab/vms/b/data.qcow2,format=qcow2,")
    devices = _opt(cmd, "-device")
    assert "virtio-blk-pci,drive=data,serial=labctl-data" in devices
    assert "virtio-rng-pci" in devices
    assert _opt(cmd, "-fw_cfg") == [
        "name=opt/labctl/authorized_keys,file=/lab/vms/b/fw_cfg/ak",
        "name=opt/labctl/lab.env,file=/lab/vms/b/fw_cfg/lab.env",
    ]


def test_qemu_command_doubles_commas_in_paths() -> None:
    cmd = _cmd("tcg", Path("/a,b"))
    assert _opt(cmd, "-drive")[0].startswith("file=/a,,b/root.qcow2,format=qcow2")


def test_qemu_command_refuses_unknown_accel() -> None:
    with pytest.raises(ValueError):
        _cmd("hvf")


def test_lab_env_is_shell_quoted() -> None:
    h = parse_host_option("bookworm:name=b-1,cgroup=v1,docker_fs=xfs,inodes=none")
    text = lab_env(h, "lab1")
    env = dict(line.split("=", 1) for line in text.splitlines())
    assert env["LABCTL_HOSTNAME"] == "b-1" and env["LABCTL_DOCKER_FS"] == "xfs"
    assert env["LABCTL_DISK_INODES"] == "''" and env["LABCTL_CGROUP"] == "v1"
    for line in text.splitlines():
        _key, value = line.split("=", 1)
        assert len(shlex.split(value)) == 1


def test_accel_forced_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vm.ACCEL_ENV, raising=False)
    acc = vm.detect_accel(Path("/nope"), Path("/nope"), want="tcg")
    assert acc.name == "tcg"


def test_accel_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vm.ACCEL_ENV, "tcg")
    assert vm.detect_accel(Path("/nope"), Path("/nope"), want="auto").name == "tcg"
    monkeypatch.setenv(vm.ACCEL_ENV, "warp")
    with pytest.raises(ConfigError):
        vm.detect_accel(Path("/nope"), Path("/nope"))


def test_accel_auto_without_kvm_is_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vm.ACCEL_ENV, raising=False)
    monkeypatch.setattr(vm, "_kvm_usable", lambda: "/dev/kvm: No such file or directory")
    acc = vm.detect_accel(Path("/nope"), Path("/nope"))
    assert acc.name == "tcg" and "no KVM" in acc.reason
    with pytest.raises(LabError):
        vm.detect_accel(Path("/nope"), Path("/nope"), want="kvm")


# --- recipes ----------------------------------------------------------------------------------


def test_recipe_hash_is_stable_and_tracks_its_inputs() -> None:
    files = {name: b"x" for name in vmimages.VM_IMAGE_FILES}
    a = vmimages.vm_recipe_for("bookworm", files=files)
    assert a.digest == vmimages.vm_recipe_for("bookworm", files=dict(files)).digest
    assert len(a.short_hash) == 12
    other_suite = vmimages.vm_recipe_for("bullseye", files=files)
    changed_file = vmimages.vm_recipe_for("bookworm", files={**files, "labctl-vm-init": b"y"})
    assert len({a.digest, other_suite.digest, changed_file.digest}) == 3
    from dataclasses import replace

    assert replace(a, packages=(*a.packages, "vim")).digest != a.digest
    assert replace(a, version=a.version + 1).digest != a.digest


def test_recipe_is_not_the_docker_image_recipe() -> None:
    from labctl.drivers.docker import images

    assert vmimages.vm_recipe_for("bookworm").short_hash != images.recipe_for("bookworm").short_hash


def test_recipes_carry_the_kernel_and_docker_cli_on_trixie() -> None:
    for suite in vmimages.SUITES:
        pk = vmimages.vm_recipe_for(suite).packages
        assert "linux-image-cloud-amd64" in pk and "initramfs-tools" in pk and "apparmor" in pk
        assert "docker.io" in pk and "openssh-server" in pk and "python3" in pk
        assert ("docker-cli" in pk) == (suite == "trixie")


def test_image_files_exist_and_are_baked() -> None:
    files = vmimages._read_image_files()
    assert set(files) == set(vmimages.VM_IMAGE_FILES)
    assert files["labctl-vm-init"].startswith(b"#!/bin/bash")


def test_image_cache_lives_under_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABCTL_CACHE", str(tmp_path))
    r = vmimages.vm_recipe_for("bookworm")
    assert r.directory == tmp_path / "vm" / f"bookworm-{r.short_hash}"
    assert vmimages.load_image(r) is None
    r.directory.mkdir(parents=True)
    for name in ("disk.raw", "vmlinuz", "initrd.img"):
        (r.directory / name).write_bytes(b"")
    (r.directory / "image.json").write_text(json.dumps({"recipe": "other"}))
    assert vmimages.load_image(r) is None, "an image of another recipe is not this one"
    (r.directory / "image.json").write_text(
        json.dumps({"recipe": r.digest, "kernel_version": "6.1.0-x-cloud-amd64"})
    )
    img = vmimages.load_image(r)
    assert img is not None and img.kernel_version == "6.1.0-x-cloud-amd64"
    assert img.disk == r.directory / "disk.raw"


@pytest.mark.parametrize(
    ("version", "drops"), [((1, 47, 0), True), ((1, 46, 2), False), ((), False)]
)
def test_mkfs_command_avoids_features_old_kernels_refuse(
    version: tuple[int, ...], drops: bool
) -> None:
    cmd = vmimages.mkfs_command(Path("/t/root"), Path("/t/disk.raw"), 3 * GiB, version)
    assert cmd[:2] == ["mkfs.ext4", "-q"] and "-d" in cmd and "/t/root" in cmd
    assert cmd[-2:] == ["/t/disk.raw", f"{3 * GiB // 1024}k"]
    assert ("^orphan_file,^metadata_csum_seed" in cmd) == drops


# --- the driver without VMs -------------------------------------------------------------------


def test_status_and_down_of_an_empty_lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = QemuLab(QemuLabSpec(name="empty"))
    assert [s.state for s in lab.status()] == ["missing"] * 3
    rep = lab.down()
    assert rep.ok and rep.removed["VMs"] == []


def test_vm_pid_ignores_a_pid_file_of_another_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = QemuLab(QemuLabSpec(name="p"))
    d = lab.vm_dir("bookworm")
    d.mkdir(parents=True)
    (d / "qemu.pid").write_text(f"{os.getpid()}\n")  # this pytest, not a QEMU of the lab
    assert lab.vm_pid("bookworm") is None
    assert lab.lab_processes() == []
    rep = lab.down()
    assert rep.ok and not d.exists()
    assert os.getpid() > 0  # still alive: down never kills what is not its QEMU


def test_cli_picks_the_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from labctl.cli.common import open_lab
    from labctl.drivers.docker import DockerLab

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = open_lab("c", driver="qemu", hosts=("bullseye:cgroup=v1",), memory="768MiB", cpus=1)
    assert isinstance(lab, QemuLab)
    (h,) = lab.spec.hosts
    assert (h.suite, h.cgroup, h.memory, h.cpus) == ("bullseye", "v1", 768 * MiB, 1)
    assert isinstance(open_lab("c"), DockerLab)
    with pytest.raises(ConfigError, match="qemu lab options"):
        open_lab("c", cgroup="v1")
    with pytest.raises(ConfigError, match="pids-limit"):
        open_lab("c", driver="qemu", pids_limit=100)
    # a lab made by the qemu driver is found again without --driver
    (tmp_path / "labs" / "d").mkdir(parents=True)
    (tmp_path / "labs" / "d" / "lab.json").write_text(json.dumps({"driver": "qemu"}))
    assert isinstance(open_lab("d"), QemuLab)


def test_up_refuses_a_lab_of_another_driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    monkeypatch.setattr(QemuLab, "_check_tools", lambda self: None)
    (tmp_path / "labs" / "d").mkdir(parents=True)
    (tmp_path / "labs" / "d" / "lab.json").write_text(json.dumps({"driver": "docker"}))
    with pytest.raises(LabError, match="made by the docker driver"):
        QemuLab(QemuLabSpec(name="d")).up()


def test_cli_reuses_the_recorded_qemu_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from labctl.cli.common import open_lab

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    spec = QemuLabSpec.from_mapping(
        {"name": "r", "hosts": ["bullseye", "bullseye:name=b1,cgroup=v1"]}
    )
    (tmp_path / "labs" / "r").mkdir(parents=True)
    (tmp_path / "labs" / "r" / "lab.json").write_text(
        json.dumps({"driver": "qemu", "spec": spec.to_dict()})
    )
    lab = open_lab("r")
    assert isinstance(lab, QemuLab)
    assert [(h.name, h.cgroup) for h in lab.spec.hosts] == [("bullseye", "v2"), ("b1", "v1")]
    # options given: they define the lab
    assert [h.name for h in open_lab("r", suites="trixie").spec.hosts] == ["trixie"]


def test_host_option_accepts_the_docker_driver_form() -> None:
    h = parse_host_option("bookworm/driver=devicemapper,fs=xfs,name=dm")
    assert (h.suite, h.storage_driver, h.docker_fs, h.name) == (
        "bookworm",
        "devicemapper",
        "xfs",
        "dm",
    )
    assert parse_host_option("bullseye:Disk-Size=1GiB").disk_size == GiB
    assert parse_host_option("trixie").name == "trixie"


# --- hosts with an engine built from source -----------------------------------------------------


def test_engine_host_defaults_to_devicemapper_and_its_own_systemd_unit() -> None:
    h = parse_host_option("bullseye:name=c70,cgroup=v1,engine=1.5.0")
    assert (h.engine, h.init, h.storage_driver) == ("1.5.0", "systemd", "devicemapper")
    assert QemuHostSpec(suite="bookworm").storage_driver == "overlay2"  # the distro engine's
    assert "LABCTL_ENGINE=1.5.0" in lab_env(h, "lab1").splitlines()
    assert "LABCTL_ENGINE=distro" in lab_env(QemuHostSpec(suite="bookworm"), "l").splitlines()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bullseye:engine=1.5.0", "cannot start containers on cgroup v2"),
        ("bullseye:engine=1.5.0,cgroup=v1,driver=overlay2", "no 'overlay2' storage driver"),
        ("bullseye:engine=1.5.0,cgroup=v1,init=openrc", "init must be one of"),
        ("bullseye:engine=0.9,cgroup=v1", "not one labctl can build"),
        ("bullseye:init=sysvinit", "for an engine built from source"),
        ("bullseye:engine=1.5.0,cgroup=v1,fs=xfs", "keep /var/lib/docker on ext4"),
        ("bullseye:stands_for=centos5", "stands_for must be one of"),
    ],
)
def test_engine_host_refusals_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_host_option(text)
    assert needle in err.value.line() and "\n" not in err.value.line()


def test_article_preset_is_the_stand_ins_and_todays_engine_on_one_kernel() -> None:
    hosts = qspec.PRESETS["article"]()
    QemuLabSpec(name="article", hosts=hosts).validate()
    by_name = {h.name: h for h in hosts}
    assert {h.suite for h in hosts} == {"bullseye"} and {h.cgroup for h in hosts} == {"v1"}
    assert [(h.engine, h.storage_driver, h.init, h.stands_for) for h in hosts] == [
        ("1.5.0", "devicemapper", "sysvinit-epel", "centos66"),
        ("1.5.0", "devicemapper", "sysvinit-docker", "centos66"),
        ("1.5.0", "devicemapper", "systemd-centos", "centos70"),
        ("1.5.0", "overlay", "upstart", "ubuntu1404"),
        ("1.5.0", "devicemapper", "upstart", "ubuntu1404"),
        ("distro", "overlay2", "", ""),
    ]
    assert by_name["deb2010"].docker_fs == "xfs"


def test_engine_vars_point_provisioning_at_the_cached_build(engine_cache: Path) -> None:
    from labctl.engines import store
    from tests.conftest import fake_engine_build

    h = parse_host_option("bullseye:name=c66,cgroup=v1,engine=1.5.0,init=sysvinit")
    with pytest.raises(ConfigError) as err:  # not built: one line that says how
        qspec.engine_vars(h)
    assert "labctl engine build 1.5.0" in err.value.line()
    build = fake_engine_build(store.build_dir("1.5.0", "a8a31eff10544860d2188dddabdee4d727545796"))
    got = qspec.engine_vars(h)
    assert got["docker_engine_method"] == "binary"
    assert got["docker_engine_binary_src"] == str(build / store.BINARY)
    assert len(got["docker_engine_binary_sha256"]) == 64
    # the old name is what CentOS 6.6 ran: EPEL's script
    assert got["docker_engine_service_manager"] == "sysvinit-epel"
    assert got["docker_storage_driver"] == "devicemapper"
    assert (got["labctl_engine"], got["labctl_engine_init"]) == ("1.5.0", "sysvinit-epel")
    assert qspec.engine_vars(QemuHostSpec(suite="bookworm")) == {"labctl_engine": "distro"}


def test_preset_refuses_options_that_would_change_its_hosts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from labctl.cli import main

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    res = CliRunner().invoke(main, ["lab", "up", "--preset", "article", "--memory", "2GiB"])
    assert res.exit_code == 2
    assert "--preset article brings its own qemu hosts: --memory cannot change them" in res.output


# --- the lean boot: labctl's initramfs and the early sshd -------------------------------------


def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdev major, minor)) of a newc archive, checking its framing."""
    out: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    i = 0
    while True:
        assert data[i : i + 6] == b"070701", f"bad magic at {i}"
        f = [int(data[i + 6 + 8 * k : i + 14 + 8 * k], 16) for k in range(13)]
        mode, size, rdev, namesize = f[1], f[6], (f[9], f[10]), f[11]
        name = data[i + 110 : i + 110 + namesize - 1].decode()
        i = (i + 110 + namesize + 3) & ~3
        if name == "TRAILER!!!":
            assert len(data) % 512 == 0 and not data[i:].strip(b"\0")
            return out
        out[name] = (mode, data[i : i + size], rdev)
        i = (i + size + 3) & ~3


def test_cpio_newc_round_trips_files_dirs_and_the_console_node() -> None:
    entries = [
        vminitramfs.directory("dev"),
        vminitramfs.chardev("dev/console", 5, 1),
        vminitramfs.regular("init", b"#!/bin/sh\n", 0o755),
        vminitramfs.regular("a/odd-size", b"12345"),
    ]
    data = vminitramfs.cpio_newc(entries)
    members = _read_cpio(data)
    assert list(members) == ["dev", "dev/console", "init", "a/odd-size"]
    assert members["dev/console"][0] == 0o020600 and members["dev/console"][2] == (5, 1)
    assert members["init"] == (0o100755, b"#!/bin/sh\n", (0, 0))
    assert members["a/odd-size"][1] == b"12345"
    assert data == vminitramfs.cpio_newc(entries)  # reproducible: no mtimes, no owners
    with pytest.raises(ValueError):
        vminitramfs.cpio_newc([vminitramfs.regular("/abs", b"")])


DEP = """kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/firmware/qemu_fw_cfg.ko:
"""  # noqa: E501
BUILTIN = "kernel/fs/ext4/ext4.ko\n"


def test_load_order_puts_dependencies_first_once_and_skips_built_ins() -> None:
    order = vminitramfs.load_order(DEP, BUILTIN, vminitramfs.BOOT_MODULES)
    names = [vminitramfs.module_name(p) for p in order]
    assert names == [
        "virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk",
        "failover", "net_failover", "virtio_net", "qemu_fw_cfg",
    ]  # fmt: skip
    assert "kernel/drivers/block/virtio_blk.ko.xz" in order
    with pytest.raises(LabError, match="neither a module nor built in"):
        vminitramfs.load_order(DEP, "", ["ext4"])


def _elf_naming(interp: str) -> bytes:
    """A minimal ELF64 file whose one program header is PT_INTERP naming ``interp``."""
    import struct

    name = interp.encode() + b"\0"
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 3, 4, 64 + 56, 0, 0, len(name), len(name), 1)
    return header + ph + name


@pytest.mark.parametrize("loader", ["/lib/klibc-ABC.so", "/usr/lib/klibc-ABC.so"])
def test_build_initramfs_from_an_image_tree(tmp_path: Path, loader: str) -> None:
    """bookworm's klibc tools name /lib/klibc-<hash>.so as their interpreter, trixie's
    /usr/lib/klibc-<hash>.so: the library goes where the tools' PT_INTERP says."""
    import lzma

    version = "6.1.0-9-cloud-amd64"
    mods = tmp_path / "usr/lib/modules" / version
    for line in DEP.splitlines():
        path = mods / line.split(":")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        body = f"ELF {path.name}".encode()
        path.write_bytes(lzma.compress(body) if path.name.endswith(".xz") else body)
    (mods / "modules.dep").write_text(DEP)
    (mods / "modules.builtin").write_text(BUILTIN)
    klibc = tmp_path / "usr/lib/klibc/bin"
    klibc.mkdir(parents=True)
    for tool in vminitramfs.KLIBC_TOOLS:
        (klibc / tool).write_bytes(_elf_naming(loader) + f"klibc {tool}".encode())
    (tmp_path / "usr/lib/klibc-ABC.so").write_bytes(b"klibc so")
    init = vmimages._read_image_files()["labctl-initramfs-init"]
    members = _read_cpio(vminitramfs.build_initramfs(tmp_path, version, init))
    assert members["init"] == (0o100755, init, (0, 0))
    assert members[loader.lstrip("/")][1] == b"klibc so"  # the tools' ELF interpreter
    if loader.startswith("/usr/"):  # its folders come before it
        assert members["usr"][0] == members["usr/lib"][0] == 0o040755
    assert members["bin/run-init"][1].endswith(b"klibc run-init")
    order = members["modules/order"][1].decode().split()
    assert order[0] == "00-virtio.ko" and order[4] == "04-virtio_blk.ko" and len(order) == 9
    assert members["modules/04-virtio_blk.ko"][1] == b"ELF virtio_blk.ko.xz"  # decompressed
    assert members["dev/console"][2] == (5, 1)
    (tmp_path / "usr/lib/klibc-ABC.so").unlink()
    with pytest.raises(LabError, match="klibc"):
        vminitramfs.build_initramfs(tmp_path, version, init)


def _unit(name: str) -> dict[str, list[str]]:
    """key -> values of a unit file of image_files/ (all sections)."""
    out: dict[str, list[str]] = {}
    for line in vmimages._read_image_files()[name].decode().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).extend(value.split())
    return out


def test_sshd_starts_early_with_the_host_key_from_the_controller() -> None:
    ssh, early = _unit("ssh.service"), _unit("labctl-vm-ssh.service")
    assert ssh["DefaultDependencies"] == ["no"] and early["DefaultDependencies"] == ["no"]
    assert "labctl-vm-ssh.service" in ssh["After"] and "labctl-vm-ssh.service" in ssh["Requires"]
    assert not {"network.target", "basic.target", "sysinit.target"} & set(ssh["After"])
    assert early["ExecStart"] == ["/usr/local/sbin/labctl-vm-init", "ssh"]
    assert "ssh.service" in early["Before"]
    assert "labctl-vm-ssh.service" in vmimages.ENABLE_UNITS
    # Docker comes after sshd; the data disk phase after the early one
    assert "ssh.service" in _unit("docker-labctl.conf")["After"]
    assert "labctl-vm-ssh.service" in _unit("labctl-vm-init.service")["Requires"]
    assert vmimages.VM_IMAGE_FILES["ssh.service"][0] == "/etc/systemd/system/ssh.service"


def test_boot_error_finds_labctls_own_failure_lines() -> None:
    console = (
        "[    7.6] Run /init as init process\n"
        "[    9.1] labctl-vm init[201]: labctl-vm-init: error: cannot read the host key\n"
    )
    assert vm.boot_error(console) == "labctl-vm-init: error: cannot read the host key"
    assert vm.boot_error("labctl initramfs: error: no virtio disk with serial labctl-root\n")
    assert vm.boot_error("labctl-vm-init: host key ssh-ed25519 AAAA... installed\n") is None
    assert vm.boot_error("") is None


def test_heavy_early_boot_work_waits_for_sshd_or_is_gone() -> None:
    assert "ssh.service" in _unit("udev-trigger-labctl.conf")["After"]
    dest = vmimages.VM_IMAGE_FILES["udev-trigger-labctl.conf"][0]
    assert dest == "/etc/systemd/system/systemd-udev-trigger.service.d/labctl.conf"
    assert "apparmor.service" in vmimages.MASK_UNITS  # dockerd loads its own profile
    assert "systemd-gpt-auto-generator" in vmimages.MASK_GENERATORS
    assert "systemd-sysv-generator" not in vmimages.MASK_GENERATORS  # SysV-started engines
    settings = vmimages.vm_recipe_for("bookworm").settings()
    assert settings["mask_generators"] == list(vmimages.MASK_GENERATORS)


def test_a_tree_without_klibc_insmod_is_unsupported_not_broken(tmp_path: Path) -> None:
    version = "5.10.0-9-cloud-amd64"
    mods = tmp_path / "lib/modules" / version
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("")
    (mods / "modules.builtin").write_text("")
    klibc = tmp_path / "usr/lib/klibc/bin"
    klibc.mkdir(parents=True)
    for tool in set(vminitramfs.KLIBC_TOOLS) - {"insmod"}:
        (klibc / tool).write_bytes(b"x")
    (tmp_path / "usr/lib/klibc-ABC.so").write_bytes(b"x")
    with pytest.raises(vminitramfs.Unsupported, match="insmod"):
        vminitramfs.build_initramfs(tmp_path, version, b"#!/bin/sh\n")


def test_a_hosts_own_checks_joined_with_plus_in_the_host_option() -> None:
    h = parse_host_option("bullseye:name=c70,experiments=storage-location+storage-host-mount")
    assert h.experiments == "storage-location,storage-host-mount"
    with pytest.raises(ConfigError) as err:
        QemuLabSpec(name="l", hosts=(parse_host_option("bullseye:experiments=nope"),)).validate()
    assert "unknown experiment nope" in err.value.line()
