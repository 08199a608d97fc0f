"""Bring your own image: the --host image:... form, the image checks, the NoCloud seed, the QEMU
command line, the console verdict, and the test cloud image's layout pieces (no VM boots here;
qemu-img and genisoimage run for real where they are installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from labctl.drivers.base import GiB, make_ed25519_key
from labctl.drivers.qemu.cloudimage import (
    check_image,
    console_verdict,
    image_qemu_command,
    make_seed,
    meta_data,
    overlay_command,
    user_data,
)
from labctl.drivers.qemu.spec import QemuLabSpec, parse_host_option
from labctl.errors import ConfigError, LabError
from tests import cloudbuild

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="no qemu-img")


@pytest.fixture()
def qcow2(tmp_path: Path) -> Path:
    if shutil.which("qemu-img") is None:
        pytest.skip("no qemu-img")
    path = tmp_path / "CentOS-7-x86_64-GenericCloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    return path


def test_host_option_image_path_form(qcow2: Path) -> None:
    spec = parse_host_option(f"image:path={qcow2},name=c7,memory=1GiB,cgroup=v1,cpus=1")
    assert (spec.suite, spec.image, spec.name) == ("image", str(qcow2), "c7")
    assert (spec.memory, spec.cgroup, spec.cpus) == (1 * GiB, "v1", 1)


def test_host_option_image_equals_form_resolves_a_relative_path(
    qcow2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(qcow2.parent)
    spec = parse_host_option(f"image=./{qcow2.name},name=c7,boot_timeout=90")
    assert spec.image == str(qcow2) and spec.boot_timeout == 90
    # the recorded lab reads back the same host (an absolute path, from any folder)
    again = QemuLabSpec.from_mapping({"name": "l", "hosts": [spec.to_dict()]})
    assert again.hosts[0].image == str(qcow2)


def test_host_option_wrong_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_host_option(f"image:path={tmp_path}/nope.qcow2,name=c7")
    assert exc.value.line().count("\n") == 0
    assert "no image file at" in str(exc.value) and "nope.qcow2" in str(exc.value)


def test_host_option_image_rejects_labctl_engine_settings(qcow2: Path) -> None:
    with pytest.raises(ConfigError, match="engine= and init="):
        parse_host_option(f"image:path={qcow2},engine=1.5.0,cgroup=v1")
    with pytest.raises(ConfigError, match="suite 'image'"):
        QemuLabSpec.from_mapping({"name": "l", "hosts": [{"suite": "bookworm", "image": qcow2}]})


def test_host_option_suites_keep_their_slash_form() -> None:
    spec = parse_host_option("bookworm/driver=devicemapper")
    assert spec.suite == "bookworm" and spec.storage_driver == "devicemapper" and not spec.image


@needs_qemu_img
def test_check_image_reads_qcow2_and_refuses_text(tmp_path: Path, qcow2: Path) -> None:
    info = check_image(qcow2, "c7")
    assert info.format == "qcow2" and info.virtual_size == 1 * GiB
    text = tmp_path / "notes.qcow2"
    text.write_text("not an image\n" * 100)
    with pytest.raises(LabError) as exc:
        check_image(text, "c7")
    assert "is not a disk image" in exc.value.line() and exc.value.line().count("\n") == 0
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * 4096)
    assert check_image(raw, "c7").format == "raw"
    cmd = overlay_command(info, tmp_path / "root.qcow2")
    assert cmd[-3:] == ["-b", str(qcow2), str(tmp_path / "root.qcow2")] and "-F" in cmd


def test_user_data_is_cloud_config_with_exact_keys() -> None:
    private, public = make_ed25519_key("labctl-l-c7")
    text = user_data("c7", "ssh-ed25519 AAAA lab", private, public)
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    assert config["hostname"] == "c7" and config["disable_root"] is False
    assert config["ssh_authorized_keys"] == ["ssh-ed25519 AAAA lab"]
    assert config["ssh_keys"] == {"ed25519_private": private, "ed25519_public": public}
    assert config["ssh_genkeytypes"] == [] and config["ssh_deletekeys"] is True
    assert config["ssh_pwauth"] is False
    meta = yaml.safe_load(meta_data("i-1", "c7"))
    assert meta == {"instance-id": "i-1", "local-hostname": "c7"}


@pytest.mark.skipif(
    shutil.which("genisoimage") is None and shutil.which("xorriso") is None,
    reason="no genisoimage/xorriso",
)
def test_make_seed_writes_a_cidata_volume(tmp_path: Path) -> None:
    private, public = make_ed25519_key("k")
    seed = make_seed(tmp_path, hostname="c7", instance_id="i-1", authorized_key="ssh-ed25519 A x",
                     host_private=private, host_public=public, host="c7")  # fmt: skip
    data = seed.read_bytes()
    assert data[0x8001:0x8006] == b"CD001"  # ISO 9660 primary volume descriptor
    assert data[0x8028 : 0x8028 + 32].decode().strip() == "cidata"
    assert b"#cloud-config" in data and b'"local-hostname": "c7"' in data
    assert seed.stat().st_mode & 0o077 == 0


def test_image_qemu_command_boots_the_firmware_with_the_seed(tmp_path: Path) -> None:
    cmd = image_qemu_command(
        name="labctl-l-c7", accel="tcg", cpus=2, memory=GiB, root_disk=tmp_path / "root.qcow2",
        seed=tmp_path / "seed.iso", port=2222, pidfile=tmp_path / "qemu.pid",
        console_log=tmp_path / "console.log", qmp_socket=tmp_path / "qmp.sock",
    )  # fmt: skip
    assert "-kernel" not in cmd and "-no-reboot" not in cmd
    assert f"file={tmp_path}/seed.iso,format=raw,if=none,id=seed,readonly=on" in cmd
    assert "virtio-blk-pci,drive=root,bootindex=0" in cmd
    assert "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22" in cmd
    assert cmd[cmd.index("-m") + 1] == "1024M"


def test_console_verdict() -> None:
    assert console_verdict("") is None
    assert console_verdict("[  OK  ] Started ssh.service\n\nDebian GNU/Linux 12 deb12 ttyS0\n\n"
                           "deb12 login: ") == "none"  # fmt: skip
    assert console_verdict("cloud-init[301]: Cloud-init v. 22.4.2 running\nc7 login: ") is None


def test_cloud_build_layout_pieces(tmp_path: Path) -> None:
    script = cloudbuild.sfdisk_script(3 << 30)
    assert "label: dos" in script and "start=2048," in script and "bootable" in script
    cfg = cloudbuild.grub_cfg("6.1.0-9-cloud-amd64")
    assert "linux /boot/vmlinuz-6.1.0-9-cloud-amd64 root=LABEL=cloudimg-rootfs" in cfg
    assert "console=ttyS0" in cfg
    part, disk = tmp_path / "part", tmp_path / "disk"
    part.write_bytes(b"\0" * (1 << 20) + b"X" * 10)
    with disk.open("wb") as f:
        f.truncate(4 << 20)
    cloudbuild.copy_into(part, disk, 1 << 20)
    data = disk.read_bytes()
    assert data[(2 << 20) : (2 << 20) + 10] == b"X" * 10 and data.count(b"X") == 10
    recipe = cloudbuild.cloud_recipe_for("bookworm")
    assert "cloud-init" in recipe.packages and "docker.io" not in recipe.packages
    assert json.dumps(recipe.settings())  # hashable settings
    docker = cloudbuild.cloud_recipe_for("bookworm", extra_packages=("docker.io", "sudo"))
    assert docker.packages == (*recipe.packages, "docker.io")  # sudo is in already
    assert docker.directory != recipe.directory  # a variant is its own cached image


def test_install_grub_keeps_the_partition_table(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    with disk.open("wb") as f:
        f.truncate(2 << 20)
    table = b"\x80" + b"\1" * 15 + b"\0" * 48 + b"\x55\xaa"
    with disk.open("r+b") as f:
        f.seek(446)
        f.write(table)
    boot = b"B" * 510 + b"\x55\xaa"
    cloudbuild.install_grub(disk, boot, b"C" * 5000)
    data = disk.read_bytes()
    assert data[:440] == b"B" * 440 and data[446:512] == table
    assert data[512 : 512 + 5000] == b"C" * 5000 and data[512 + 5000] == 0
    with pytest.raises(LabError, match="does not fit"):
        cloudbuild.install_grub(disk, boot, b"C" * (1 << 20))
    with pytest.raises(LabError, match="not a boot sector"):
        cloudbuild.install_grub(disk, b"x" * 512, b"C")
