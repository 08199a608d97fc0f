"""Pure parsers of the probe agent, on `docker version` / `docker info` text of every era.

The fixtures are written by hand in each era's format: Docker 1.5.0 on Ubuntu 14.04 (aufs),
CentOS 6.6 and 7.0 (devicemapper on loop files), a 1.12 distro build, and today's engines with
overlay2, btrfs, vfs and devicemapper.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.agenthelp import pa, sample

# --- docker version ------------------------------------------------------------------------------

VERSION_150_FLAT = sample("docker-version-1.5.0.txt")
VERSION_150_DAEMON_DOWN = sample("docker-version-1.5.0-daemon-down.txt")
VERSION_1131_CS9 = sample("docker-version-1.13.1-centos9.txt")
VERSION_2010_DFSG = sample("docker-version-20.10-dfsg.txt")
VERSION_2615_CE_HEADERS = sample("docker-version-26.1.5-ce.txt")
VERSION_MODERN_DAEMON_DOWN = sample("docker-version-modern-daemon-down.txt")


def test_version_150_flat() -> None:
    v = pa.parse_docker_version(VERSION_150_FLAT)
    assert v["format"] == "flat"
    assert v["client_version"] == "1.5.0"
    assert v["client_api_version"] == "1.17"
    assert v["server_version"] == "1.5.0"
    assert v["server_api_version"] == "1.17"
    assert v["git_commit"] == "a8a31ef"
    assert v["client_git_commit"] == "a8a31ef"
    assert v["go_version"] == "go1.4.1"
    assert v["os_arch"] == "linux/amd64"  # only the client said it: used as the fallback
    assert v["server_os_arch"] is None
    assert v["errors"] == []


def test_version_150_daemon_down_keeps_client_and_error() -> None:
    v = pa.parse_docker_version(VERSION_150_DAEMON_DOWN)
    assert v["client_version"] == "1.5.0"
    assert v["server_version"] is None
    assert v["server_api_version"] is None
    assert len(v["errors"]) == 1 and v["errors"][0].startswith("FATA[0000]")


def test_version_113_distro_build_suffix() -> None:
    v = pa.parse_docker_version(VERSION_1131_CS9)
    assert v["format"] == "blocks"
    assert v["client_version"] == "1.13.1-cs9"
    assert v["server_version"] == "1.13.1-cs9"
    assert v["server_api_version"] == "1.26"
    assert v["server_min_api_version"] == "1.12"
    assert v["git_commit"] == "b9ddfb3"
    assert v["go_version"] == "go1.7.5"
    assert v["os_arch"] == "linux/amd64"
    assert pa.version_tuple(v["server_version"]) == (1, 13, 1)


def test_version_2010_engine_block_and_components() -> None:
    v = pa.parse_docker_version(VERSION_2010_DFSG)
    assert v["client_version"] == "20.10.5+dfsg1"
    assert v["client_api_version"] == "1.41"
    assert v["client_git_commit"] == "55c4c88"
    assert v["server_version"] == "20.10.5+dfsg1"
    assert v["server_api_version"] == "1.41"
    assert v["server_min_api_version"] == "1.12"
    assert v["server_git_commit"] == "363e9a8"
    assert v["git_commit"] == "363e9a8"  # the engine's, not the client's
    assert v["go_version"] == "go1.15.15"
    assert v["os_arch"] == "linux/amd64"
    assert v["components"] == {
        "containerd": "1.4.13~ds1",
        "runc": "1.0.0~rc93+ds1",
        "docker-init": "0.19.0",
    }


def test_version_headers_with_product_names() -> None:
    v = pa.parse_docker_version(VERSION_2615_CE_HEADERS)
    assert v["client_version"] == "26.1.5+dfsg1"
    assert v["server_version"] == "26.1.5+dfsg1"
    assert v["server_api_version"] == "1.45"
    assert v["server_min_api_version"] == "1.24"
    assert v["git_commit"] == "411e817"
    assert v["components"] == {"containerd": "1.7.24~ds1"}


def test_version_modern_daemon_down() -> None:
    v = pa.parse_docker_version(VERSION_MODERN_DAEMON_DOWN)
    assert v["client_version"] == "20.10.24+dfsg1"
    assert v["server_version"] is None
    assert v["errors"] and "Cannot connect" in v["errors"][0]


def test_version_json() -> None:
    obj = {
        "Client": {
            "Version": "20.10.24+dfsg1",
            "ApiVersion": "1.41",
            "GitCommit": "297e128",
            "GoVersion": "go1.19.8",
            "Os": "linux",
            "Arch": "amd64",
        },
        "Server": {
            "Components": [
                {"Name": "Engine", "Version": "20.10.24+dfsg1"},
                {"Name": "containerd", "Version": "1.6.20~ds1"},
            ],
            "Version": "20.10.24+dfsg1",
            "ApiVersion": "1.41",
            "MinAPIVersion": "1.12",
            "GitCommit": "5d6db84",
            "GoVersion": "go1.19.8",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.1.0-18-amd64",
        },
    }
    v = pa.parse_docker_version_json(obj)
    assert v["format"] == "json"
    assert v["client_version"] == "20.10.24+dfsg1"
    assert v["client_api_version"] == "1.41"
    assert v["server_version"] == "20.10.24+dfsg1"
    assert v["server_api_version"] == "1.41"
    assert v["server_min_api_version"] == "1.12"
    assert v["git_commit"] == "5d6db84"
    assert v["go_version"] == "go1.19.8"
    assert v["os_arch"] == "linux/amd64"
    assert v["server_kernel_version"] == "6.1.0-18-amd64"
    assert v["components"] == {"containerd": "1.6.20~ds1"}
    down = pa.parse_docker_version_json({"Client": obj["Client"], "Server": None})
    assert down["client_version"] == "20.10.24+dfsg1"
    assert down["server_version"] is None


# --- docker info ---------------------------------------------------------------------------------

INFO_150_UBUNTU_AUFS = sample("docker-info-1.5.0-ubuntu-aufs.txt")
INFO_150_CENTOS66_DM = sample("docker-info-1.5.0-centos66-devicemapper.txt")
INFO_150_CENTOS70_DM = sample("docker-info-1.5.0-centos70-devicemapper.txt")
INFO_2010_OVERLAY2 = sample("docker-info-20.10-overlay2.txt")
INFO_2615_BTRFS_CGROUP2 = sample("docker-info-26.1.5-btrfs-cgroup2.txt")
INFO_2010_VFS = sample("docker-info-20.10-vfs.txt")
INFO_2010_DEVICEMAPPER = sample("docker-info-20.10-devicemapper.txt")
INFO_MODERN_DAEMON_DOWN = sample("docker-info-modern-daemon-down.txt")


def test_info_150_ubuntu_aufs() -> None:
    i = pa.parse_docker_info(INFO_150_UBUNTU_AUFS)
    assert i["storage_driver"] == "aufs"
    assert i["backing_filesystem"] == "extfs"
    assert i["driver_status"] == {
        "Root Dir": "/var/lib/docker/aufs",
        "Backing Filesystem": "extfs",
        "Dirs": "18",
    }
    assert i["root_dir"] == "/var/lib/docker"
    assert i["root_dir_source"] == "derived"
    assert i["cgroup_driver"] is None  # Docker 1.5 does not say: null, not guessed
    assert i["cgroup_version"] is None
    assert i["server_version"] is None
    assert i["kernel_version"] == "3.13.0-46-generic"
    assert i["operating_system"] == "Ubuntu 14.04.2 LTS"
    assert i["execution_driver"] == "native-0.2"
    assert i["containers"] == 2
    assert i["images"] == 14
    assert i["ncpu"] == 2
    assert i["mem_total"] == "1.955 GiB"
    assert i["mem_total_bytes"] == round(1.955 * 1024**3)
    assert i["name"] == "ubuntu1404"
    assert i["id"].startswith("3Z6Y:")
    assert i["warnings"] == ["No swap limit support"]
    assert i["errors"] == []


def test_info_150_centos66_devicemapper() -> None:
    i = pa.parse_docker_info(INFO_150_CENTOS66_DM)
    assert i["storage_driver"] == "devicemapper"
    assert i["backing_filesystem"] is None  # not reported by Docker 1.5's devicemapper
    ds = i["driver_status"]
    assert ds["Pool Name"] == "docker-253:0-1046117-pool"
    assert ds["Pool Blocksize"] == "65.54 kB"
    assert ds["Data file"] == "/var/lib/docker/devicemapper/devicemapper/data"
    assert ds["Data Space Total"] == "107.4 GB"
    assert ds["Library Version"] == "1.02.89-RHEL6 (2014-09-01)"
    assert ds["Udev Sync Supported"] == "true"
    assert len(ds) == 10
    assert "Execution Driver" not in ds and "Kernel Version" not in ds
    assert i["root_dir"] == "/var/lib/docker"
    assert i["root_dir_source"] == "derived"
    assert i["kernel_version"] == "2.6.32-504.el6.x86_64"
    assert i["operating_system"] == "CentOS release 6.6 (Final)"
    assert i["containers"] == 1 and i["images"] == 4 and i["ncpu"] == 1
    assert i["mem_total_bytes"] == round(1.8 * 1024**3)
    assert i["warnings"] == []
    assert pa.parse_size(ds["Data Space Total"]) == 107_400_000_000


def test_info_150_centos70_devicemapper_custom_root() -> None:
    i = pa.parse_docker_info(INFO_150_CENTOS70_DM)
    assert i["storage_driver"] == "devicemapper"
    assert i["root_dir"] == "/srv/docker"  # derived from the data file, not the default
    assert i["root_dir_source"] == "derived"
    assert i["driver_status"]["Udev Sync Supported"] == "false"
    assert i["kernel_version"] == "3.10.0-123.el7.x86_64"
    assert i["operating_system"] == "CentOS Linux 7 (Core)"
    assert i["mem_total_bytes"] == round(3.703 * 1024**3)


def test_info_modern_overlay2() -> None:
    i = pa.parse_docker_info(INFO_2010_OVERLAY2)
    assert i["storage_driver"] == "overlay2"
    assert i["backing_filesystem"] == "extfs"
    assert i["driver_status"] == {
        "Backing Filesystem": "extfs",
        "Supports d_type": "true",
        "Native Overlay Diff": "true",
        "userxattr": "false",
    }
    assert i["root_dir"] == "/var/lib/docker"
    assert i["root_dir_source"] == "docker-info"
    assert i["cgroup_driver"] == "cgroupfs"
    assert i["cgroup_version"] == 1
    assert i["server_version"] == "20.10.24+dfsg1"
    assert i["kernel_version"] == "6.1.0-18-amd64"
    assert i["operating_system"] == "Debian GNU/Linux 12 (bookworm)"
    assert i["containers"] == 3  # not confused by the indented Running/Paused/Stopped
    assert i["images"] == 5
    assert i["ncpu"] == 2
    assert i["mem_total_bytes"] == round(23.54 * 1024**3)
    assert i["logging_driver"] == "json-file"
    assert i["architecture"] == "x86_64"
    assert i["os_type"] == "linux"
    assert i["name"] == "vm"
    assert i["warnings"] == ["No swap limit support", "bridge-nf-call-iptables is disabled"]
    assert i["client_version"] is None  # 20.10's client block has no Version line


def test_info_modern_btrfs_cgroup2() -> None:
    i = pa.parse_docker_info(INFO_2615_BTRFS_CGROUP2)
    assert i["storage_driver"] == "btrfs"
    assert i["backing_filesystem"] is None
    assert i["driver_status"]["Build Version"] == "Btrfs v6.2"
    assert i["driver_status"]["Library Version"] == "102"
    assert i["root_dir"] == "/srv/docker-btrfs"
    assert i["cgroup_driver"] == "systemd"
    assert i["cgroup_version"] == 2
    assert i["server_version"] == "26.1.5+dfsg1"
    assert i["client_version"] == "26.1.5+dfsg1"
    assert i["mem_total_bytes"] == round(977.4 * 1024**2)
    assert i["images"] == 1 and i["containers"] == 0


def test_info_modern_vfs_has_no_details() -> None:
    i = pa.parse_docker_info(INFO_2010_VFS)
    assert i["storage_driver"] == "vfs"
    assert i["driver_status"] == {}
    assert i["backing_filesystem"] is None
    assert i["root_dir"] == "/var/lib/docker"
    assert i["server_version"] == "20.10.5+dfsg1"
    assert i["cgroup_version"] == 1


def test_info_modern_devicemapper_loop() -> None:
    i = pa.parse_docker_info(INFO_2010_DEVICEMAPPER)
    assert i["storage_driver"] == "devicemapper"
    assert i["backing_filesystem"] == "xfs"
    ds = i["driver_status"]
    assert ds["Data file"] == "/dev/loop0"
    assert ds["Data loop file"] == "/var/lib/docker/devicemapper/devicemapper/data"
    assert pa.parse_size(ds["Base Device Size"]) == 10_740_000_000
    assert len(i["warnings"]) == 2 and i["warnings"][0].startswith("the devicemapper")
    # no Docker Root Dir line here: derived from the loop file, not from /dev/loop0
    assert i["root_dir"] == "/var/lib/docker" and i["root_dir_source"] == "derived"


def test_info_warnings_on_stderr_appended_anywhere() -> None:
    text = (
        "WARNING: IPv4 forwarding is disabled\n"
        + INFO_2010_VFS
        + "WARNING: No swap limit support\n"
    )
    i = pa.parse_docker_info(text)
    assert i["warnings"] == ["IPv4 forwarding is disabled", "No swap limit support"]
    assert i["storage_driver"] == "vfs"


def test_info_daemon_down() -> None:
    i = pa.parse_docker_info(INFO_MODERN_DAEMON_DOWN)
    assert i["storage_driver"] is None
    assert i["root_dir"] is None  # nothing known: not defaulted
    assert any("Cannot connect" in e for e in i["errors"])


def test_info_json() -> None:
    obj = {
        "Containers": 0,
        "Images": 2,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "xfs"], ["Supports d_type", "true"]],
        "MemoryLimit": True,
        "SwapLimit": False,
        "PidsLimit": True,
        "CgroupDriver": "systemd",
        "CgroupVersion": "2",
        "KernelVersion": "6.1.0",
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "OSType": "linux",
        "Architecture": "x86_64",
        "NCPU": 2,
        "MemTotal": 1019215872,
        "DockerRootDir": "/var/lib/docker",
        "Name": "h",
        "ServerVersion": "20.10.24+dfsg1",
        "LoggingDriver": "json-file",
        "Warnings": ["WARNING: No swap limit support"],
    }
    i = pa.parse_docker_info_json(obj)
    assert i["format"] == "json"
    assert i["storage_driver"] == "overlay2"
    assert i["backing_filesystem"] == "xfs"
    assert i["driver_status"] == {"Backing Filesystem": "xfs", "Supports d_type": "true"}
    assert i["cgroup_version"] == 2 and i["cgroup_driver"] == "systemd"
    assert i["root_dir"] == "/var/lib/docker" and i["root_dir_source"] == "docker-info"
    assert i["mem_total_bytes"] == 1019215872
    assert i["swap_limit"] is False and i["memory_limit"] is True and i["pids_limit"] is True
    assert i["warnings"] == ["No swap limit support"]
    down = pa.parse_docker_info_json({"ServerErrors": ["Cannot connect to the Docker daemon"]})
    assert down["storage_driver"] is None and down["root_dir"] is None
    assert down["errors"] == ["Cannot connect to the Docker daemon"]


# --- errors, sizes, versions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?",
            "docker-daemon-down",
        ),
        (
            "FATA[0000] Get http:///var/run/docker.sock/v1.17/version: dial unix "
            "/var/run/docker.sock: no such file or directory.",
            "docker-daemon-down",
        ),
        (
            "Got permission denied while trying to connect to the Docker daemon socket at "
            "unix:///var/run/docker.sock: connect: permission denied",
            "docker-permission",
        ),
        (
            "FATA[0000] Get http:///var/run/docker.sock/v1.17/info: dial unix "
            "/var/run/docker.sock: permission denied.",
            "docker-permission",
        ),
        ("something odd happened", "docker-error"),
    ],
)
def test_classify_docker_error(text: str, kind: str) -> None:
    got_kind, message = pa.classify_docker_error(text, "/usr/bin/docker")
    assert got_kind == kind
    assert "\n" not in message
    if kind == "docker-daemon-down":
        assert message.startswith("the Docker daemon is not running (")
        assert "systemctl start docker" in message


def test_classify_no_docker() -> None:
    kind, message = pa.classify_docker_error("", None)
    assert kind == "no-docker"
    assert "no `docker` command on PATH" in message and "labctl provision" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("107.4 GB", 107_400_000_000),
        ("1.8 GiB", round(1.8 * 1024**3)),
        ("23.54GiB", round(23.54 * 1024**3)),
        ("65.54 kB", 65_540),
        ("65.54kB", 65_540),
        ("729.1 kB", 729_100),
        ("1.45 MB", 1_450_000),
        ("977.4MiB", round(977.4 * 1024**2)),
        ("0 B", 0),
        ("512", 512),
        ("2.147 GB", 2_147_000_000),
        ("lots", None),
        ("", None),
        (None, None),
        ("3 parsecs", None),
    ],
)
def test_parse_size(text: str | None, expected: int | None) -> None:
    assert pa.parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5.0", (1, 5, 0)),
        ("1.13.1-cs9", (1, 13, 1)),
        ("20.10.5+dfsg1", (20, 10, 5)),
        ("26.1.5+dfsg1", (26, 1, 5)),
        ("17.06.2-ce", (17, 6, 2)),
        ("1.6", (1, 6, 0)),
        ("", None),
        (None, None),
        ("dev", None),
    ],
)
def test_version_tuple(text: str | None, expected: tuple[int, ...] | None) -> None:
    assert pa.version_tuple(text) == expected


# --- distribution --------------------------------------------------------------------------------

OS_RELEASE_DEBIAN = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

OS_RELEASE_UBUNTU_1404 = """\
NAME="Ubuntu"
VERSION="14.04.2 LTS, Trusty Tahr"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 14.04.2 LTS"
VERSION_ID="14.04"
"""

OS_RELEASE_CENTOS7 = """\
NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
"""


def test_parse_os_release() -> None:
    d = pa.parse_os_release(OS_RELEASE_DEBIAN)
    assert d["id"] == "debian" and d["version"] == "12"
    assert d["name"] == "Debian GNU/Linux" and d["pretty"] == "Debian GNU/Linux 12 (bookworm)"
    u = pa.parse_os_release(OS_RELEASE_UBUNTU_1404)
    assert (u["id"], u["version"], u["name"], u["pretty"]) == (
        "ubuntu",
        "14.04",
        "Ubuntu",
        "Ubuntu 14.04.2 LTS",
    )
    assert pa.parse_os_release("") is None


@pytest.mark.parametrize(
    ("line", "ident", "version", "name"),
    [
        ("CentOS release 6.6 (Final)", "centos", "6.6", "CentOS"),
        ("CentOS Linux release 7.0.1406 (Core) ", "centos", "7.0.1406", "CentOS Linux"),
        (
            "Red Hat Enterprise Linux Server release 6.6 (Santiago)",
            "rhel",
            "6.6",
            "Red Hat Enterprise Linux Server",
        ),
        ("Fedora release 21 (Twenty One)", "fedora", "21", "Fedora"),
    ],
)
def test_parse_redhat_release(line: str, ident: str, version: str, name: str) -> None:
    d = pa.parse_redhat_release(line + "\n")
    assert (d["id"], d["version"], d["name"]) == (ident, version, name)
    assert d["pretty"] == line.strip()


def test_parse_lsb_and_debian_version() -> None:
    d = pa.parse_lsb_release(
        "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\nDISTRIB_CODENAME=trusty\n"
        'DISTRIB_DESCRIPTION="Ubuntu 14.04.2 LTS"\n'
    )
    assert (d["id"], d["version"], d["name"], d["pretty"]) == (
        "ubuntu",
        "14.04",
        "Ubuntu",
        "Ubuntu 14.04.2 LTS",
    )
    dv = pa.parse_debian_version("7.8\n")
    assert (dv["id"], dv["version"], dv["name"]) == ("debian", "7.8", "Debian GNU/Linux")
    assert pa.parse_lsb_release("") is None
    assert pa.parse_debian_version("") is None


def _tree(tmp_path: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(tmp_path)


def test_detect_distribution_centos6_has_no_os_release(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/redhat-release": "CentOS release 6.6 (Final)\n",
            "etc/centos-release": "CentOS release 6.6 (Final)\n",
        },
    )
    d = pa.detect_distribution(root)
    assert (d["id"], d["version"], d["name"], d["source"]) == (
        "centos",
        "6.6",
        "CentOS",
        "redhat-release",
    )
    assert d["pretty"] == "CentOS release 6.6 (Final)"


def test_detect_distribution_centos7_keeps_point_release(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/os-release": OS_RELEASE_CENTOS7,
            "etc/redhat-release": "CentOS Linux release 7.0.1406 (Core)\n",
        },
    )
    d = pa.detect_distribution(root)
    assert (d["id"], d["version"], d["source"]) == ("centos", "7", "os-release")
    assert d["version_full"] == "7.0.1406"


def test_detect_distribution_fallbacks(tmp_path: Path) -> None:
    lsb = _tree(tmp_path / "a", {"etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\n"})
    assert pa.detect_distribution(lsb)["id"] == "ubuntu"
    deb = _tree(tmp_path / "b", {"etc/debian_version": "7.8\n"})
    assert pa.detect_distribution(deb)["version"] == "7.8"
    empty = _tree(tmp_path / "c", {})
    d = pa.detect_distribution(empty)
    assert d["id"] is None and d["version"] is None  # unknown stays null


# --- /proc parsers -------------------------------------------------------------------------------


def test_parse_proc_cgroups_enabled_only_sorted() -> None:
    text = (
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
        "cpuset\t3\t1\t1\nmemory\t4\t45\t0\ncpu\t1\t1\t1\nblkio\t7\t1\t1\n"
    )
    assert pa.parse_proc_cgroups(text) == ["blkio", "cpu", "cpuset"]


def test_parse_meminfo() -> None:
    m = pa.parse_meminfo(
        "MemTotal:       24684100 kB\nSwapTotal:             0 kB\nHugePages_Total:       0\n"
    )
    assert m["MemTotal"] == 24684100 * 1024
    assert m["SwapTotal"] == 0
    assert m["HugePages_Total"] == 0


MOUNTINFO_CONTAINER_OVERLAY = """\
620 540 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A
621 620 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
622 620 0:56 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
"""

MOUNTINFO_CONTAINER_DM = """\
95 75 253:3 / / rw,relatime - ext4 /dev/mapper/docker-253:0-1046117-8d7f1a rw,stripe=16,data=ordered
96 95 0:40 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
"""

PROC_MOUNTS_OLD = """\
rootfs / rootfs rw 0 0
/dev/mapper/docker-253:0-1046117-abc / ext4 rw,relatime,discard 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
"""


def test_container_root_mount() -> None:
    r = pa.root_mount(pa.parse_mountinfo(MOUNTINFO_CONTAINER_OVERLAY))
    assert (r["fstype"], r["source"]) == ("overlay", "overlay")
    r = pa.root_mount(pa.parse_mountinfo(MOUNTINFO_CONTAINER_DM))
    assert r["fstype"] == "ext4" and r["source"].startswith("/dev/mapper/docker-")
    r = pa.root_mount(pa.parse_proc_mounts(PROC_MOUNTS_OLD))
    assert r["fstype"] == "ext4"  # the initramfs 'rootfs' entry of 2.6 kernels is skipped


def test_find_mount_longest_prefix_and_escapes() -> None:
    mounts = pa.parse_proc_mounts(
        "/dev/vda / ext4 rw 0 0\n/dev/vdb /var/lib/docker xfs rw 0 0\n"
        "/dev/vdc /var/lib/docker2 ext4 rw 0 0\n/dev/vdd /mnt/with\\040space ext4 rw 0 0\n"
    )
    assert pa.find_mount(mounts, "/var/lib/docker/overlay2/x")["source"] == "/dev/vdb"
    assert pa.find_mount(mounts, "/var/lib/docker")["source"] == "/dev/vdb"
    assert pa.find_mount(mounts, "/var/lib/docker2/x")["source"] == "/dev/vdc"
    assert pa.find_mount(mounts, "/var/lib/dockerx")["source"] == "/dev/vda"
    assert pa.find_mount(mounts, "/mnt/with space/f")["source"] == "/dev/vdd"


def test_parse_ldd() -> None:
    text = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibselinux.so.1 => /lib/x86_64-linux-gnu/libselinux.so.1 (0x00007f)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n"
        "\tlibgone.so.2 => not found\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
    )
    paths, missing = pa.parse_ldd(text)
    assert paths == [
        "/lib/x86_64-linux-gnu/libselinux.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]
    assert missing == ["libgone.so.2"]
    assert pa.parse_ldd("\tnot a dynamic executable\n") == ([], [])
    assert pa.parse_ldd("\tstatically linked\n") == ([], [])


def test_parse_ps_names_both_formats() -> None:
    table = (
        "CONTAINER ID        IMAGE               COMMAND             CREATED          "
        "STATUS              PORTS               NAMES\n"
        '4c01db0b339c        ubuntu:14.04        "bash"              2 minutes ago    '
        "Up 2 minutes                            labctl-probe-r1-storage\n"
        'd7886598dbe2        crosbymichael/redis "redis-server"      3 minutes ago    '
        "Up 3 minutes        6379/tcp            labctl-lab-a,web/db\n"
    )
    assert pa.parse_ps_names(table) == [
        ("4c01db0b339c", ["labctl-probe-r1-storage"]),
        ("d7886598dbe2", ["labctl-lab-a"]),
    ]
    assert pa.parse_ps_names("abc labctl-probe-x-storage\n") == [
        ("abc", ["labctl-probe-x-storage"])
    ]


# --- storage verdicts and candidates -------------------------------------------------------------


def test_storage_candidates_from_inspect_and_ids(tmp_path: Path) -> None:
    root = str(tmp_path)
    cid = "a" * 64
    mid = "b" * 64
    mdir = tmp_path / "image" / "aufs" / "layerdb" / "mounts" / cid
    mdir.mkdir(parents=True)
    (mdir / "mount-id").write_text(mid)
    insp = {"Id": cid, "GraphDriver": {"Name": "aufs", "Data": None}}
    c = pa.storage_candidates(insp, root, "aufs")
    assert c.index(os.path.join(root, "aufs", "diff", mid)) < c.index(
        os.path.join(root, "aufs", "mnt", mid)
    )
    assert os.path.join(root, "aufs", "diff", cid) in c  # Docker 1.5: the container id
    ov = {
        "Id": cid,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"UpperDir": "/x/overlay2/c/diff", "MergedDir": "/x/overlay2/c/merged"},
        },
    }
    c = pa.storage_candidates(ov, root, "overlay2")
    assert c[0] == "/x/overlay2/c/diff"
    assert c.index("/x/overlay2/c/merged") > c.index(os.path.join(root, "vfs", "dir", cid))
    old = {"Id": cid, "Driver": "devicemapper"}  # 1.5: no GraphDriver key at all
    assert os.path.join(root, "devicemapper", "mnt", cid, "rootfs") in pa.storage_candidates(
        old, root, "devicemapper"
    )


def test_bounded_find(tmp_path: Path) -> None:
    (tmp_path / "overlay2" / "x" / "merged").mkdir(parents=True)
    (tmp_path / "overlay2" / "x" / "diff").mkdir(parents=True)
    (tmp_path / "overlay2" / "x" / "merged" / "f.txt").write_text("t")
    (tmp_path / "overlay2" / "x" / "diff" / "f.txt").write_text("t")
    matches, timed_out = pa.bounded_find(str(tmp_path), "f.txt", 5)
    assert not timed_out
    assert matches[0].endswith("/diff/f.txt")
    assert pa.bounded_find(str(tmp_path), "nope.txt", 5) == ([], False)


def test_storage_verdicts() -> None:
    cid = "c" * 64
    shared = {
        "host_path": f"/var/lib/docker/overlay2/{cid}/diff/labctl-probe-1.txt",
        "host_can_read": True,
        "host_can_write": True,
        "container_sees_host_write": True,
    }
    v = pa.storage_verdict(shared, [cid])
    assert v == (
        "shares host filesystem: the container's files are plain files under "
        "/var/lib/docker/overlay2/<id>/diff; the host can read and change them and "
        "the container sees the change"
    )
    dm = {
        "host_path": None,
        "container_root_is_block_device": True,
        "container_root_fstype": "ext4",
        "container_root_source": "/dev/mapper/docker-253:0-1-x",
    }
    v = pa.storage_verdict(dm)
    assert v.startswith(
        "separate block device: the container's root is ext4 on "
        "/dev/mapper/docker-253:0-1-x, not in the host's file tree"
    )
    assert "CentOS 7.0" in v
    dm_path = f"/var/lib/docker/devicemapper/mnt/{cid}/rootfs/labctl-probe-1.txt"
    mounted = dict(dm, host_path=dm_path, host_can_read=True, host_can_write=True)
    v = pa.storage_verdict(mounted, [cid])
    assert v == (
        "separate block device mounted in the host's tree: the container's root is ext4 "
        "on /dev/mapper/docker-253:0-1-x, which the engine also mounts at "
        "/var/lib/docker/devicemapper/mnt/<id>/rootfs on the host; the host can read "
        "and change them there (the article's CentOS 6.6 device-mapper finding)"
    )
    lost = {
        "host_path": None,
        "container_root_is_block_device": False,
        "container_root_fstype": "overlay",
        "container_root_source": "overlay",
        "docker_root_dir": "/var/lib/docker",
    }
    assert pa.storage_verdict(lost).startswith("not found on the host")


def test_storage_verdict_private_daemon_namespace() -> None:
    """The CentOS 7.0 finding: the device is mounted only where the daemon (MountFlags=slave)
    sees it; the host reaches the files through /proc/<dockerd>/root, or not at all."""
    dm = {
        "host_path": None,
        "container_root_is_block_device": True,
        "container_root_fstype": "ext4",
        "container_root_source": "/dev/mapper/docker-1-x",
        "daemon_mount_ns": "private",
        "daemon_ns_path": "/proc/77/root/var/lib/docker/f",
        "host_can_read_via_daemon_ns": True,
        "host_can_write_via_daemon_ns": True,
    }
    v = pa.storage_verdict(dm)
    assert v.startswith(
        "separate block device, mounted only in the daemon's private mount "
        "namespace: the container's root is ext4 on /dev/mapper/docker-1-x"
    )
    assert "only through /proc/<dockerd>/root, where it can read and change them" in v
    assert v.endswith("(the article's CentOS 7.0 device-mapper finding)")
    unreachable = dict(dm, daemon_ns_path=None)
    assert "did not find them through /proc/<dockerd>/root" in pa.storage_verdict(unreachable)
    shared_ns = dict(
        dm,
        daemon_mount_ns="host",
        host_path="/var/lib/docker/devicemapper/mnt/" + "c" * 64 + "/rootfs/f",
        host_can_read=True,
        host_can_write=True,
    )
    v = pa.storage_verdict(shared_ns, ["c" * 64])
    assert "on the host, the daemon sharing the host's mount namespace; the host can read" in v
    assert "CentOS 6.6" in v


@pytest.mark.parametrize(
    ("cmdline", "daemon"),
    [
        (["/usr/bin/dockerd", "-H", "fd://"], True),
        (["/usr/local/bin/docker", "-d", "-H", "fd://"], True),  # 1.5.0's unit
        (["/usr/local/bin/docker", "-p", "/var/run/docker.pid", "-d"], True),
        (["/usr/bin/containerd"], False),
        (["/usr/local/bin/docker", "-d", "-p", "/var/run/docker.pid"], True),  # SysV script
        (["docker", "daemon", "-s", "overlay"], True),  # 1.8-1.11
        (["docker", "run", "-d", "busybox"], False),
        (["docker", "ps"], False),
        ([""], False),
    ],
)
def test_daemon_cmdline(cmdline: list[str], daemon: bool) -> None:
    assert pa.is_daemon_cmdline(cmdline) is daemon


def test_daemon_mount_namespace_of_this_process() -> None:
    """This test runs in init's namespace or not; either way a live pid gives an answer and a
    missing pid gives None."""
    assert pa.daemon_mount_namespace(None) is None
    assert pa.daemon_mount_namespace(2**22 + 7) is None  # no such process
    here = pa.daemon_mount_namespace(os.getpid())
    if pa.mount_ns(1) is None:  # not allowed to read init's namespace (not root)
        assert here is None
    else:
        assert here == ("host" if pa.mount_ns(1) == pa.mount_ns(os.getpid()) else "private")


def test_device_mounted(tmp_path: Path) -> None:
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "36 35 253:1 / /var/lib/docker/devicemapper/mnt/abc rw,relatime shared:1 - "
        "ext4 /dev/mapper/docker-253:1-99-abc rw\n"
        "22 1 8:1 / / rw - ext4 /dev/vda1 rw\n"
    )
    assert pa._device_mounted(str(mi), "/dev/mapper/docker-253:1-99-abc") is True
    assert pa._device_mounted(str(mi), "/dev/mapper/docker-253:1-99-other") is False
    assert pa._device_mounted(str(tmp_path / "missing"), "/dev/vda1") is None


# --- result writing ------------------------------------------------------------------------------


def test_write_json_atomic_uses_tmp_and_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sub" / "host.json"
    calls: list[tuple[str, str]] = []
    fsyncs: list[int] = []
    real_rename, real_fsync = os.rename, os.fsync

    def rename(src: str, dst: str) -> None:
        # at rename time the tmp file is complete and the target does not exist yet
        assert json.loads(Path(src).read_text())["schema"] == 1
        assert not os.path.exists(dst)
        calls.append((src, dst))
        real_rename(src, dst)

    def fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(pa.os, "rename", rename)
    monkeypatch.setattr(pa.os, "fsync", fsync)
    pa.write_json_atomic(str(out), {"schema": 1, "host": "h\u00e9"})
    assert calls == [(str(out) + ".tmp", str(out))]
    assert fsyncs  # the data was flushed to disk before the rename
    assert json.loads(out.read_text(encoding="utf-8")) == {"schema": 1, "host": "h\u00e9"}
    assert not os.path.exists(str(out) + ".tmp")


def test_write_json_atomic_leaves_old_result_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "host.json"
    out.write_text('{"old": true}')

    def broken_rename(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(pa.os, "rename", broken_rename)
    with pytest.raises(OSError):
        pa.write_json_atomic(str(out), {"new": True})
    assert json.loads(out.read_text()) == {"old": True}  # never a half-written file


def test_append_progress_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "out.json.progress")
    pa.append_progress(path, "start", None, "hello")
    pa.append_progress(path, "experiment-start", "storage-location", "go")
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [line["event"] for line in lines] == ["start", "experiment-start"]
    assert lines[1]["experiment"] == "storage-location"
    assert set(lines[0]) == {"t", "event", "experiment", "message"}
    assert isinstance(lines[0]["t"], float)
    pa.append_progress(str(tmp_path / "missing" / "dir" / "p"), "end")  # never raises


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert pa.main([]) == 2
    assert pa.main(["frobnicate"]) == 2
    with pytest.raises(SystemExit) as exc:
        pa.main(["run", "--host", "h", "--out", "/tmp/x.json"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        pa.main(["run", "--run-id", "bad id", "--host", "h", "--out", "/tmp/x.json"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        pa.main(
            [
                "run",
                "--run-id",
                "r1",
                "--host",
                "h",
                "--out",
                "/tmp/x.json",
                "--experiments",
                "nope",
            ]
        )
    assert exc.value.code == 2
    capsys.readouterr()
    assert pa.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == pa.AGENT_VERSION


# --- docker_facts end to end with a fake Docker 1.5 client --------------------------------------

FAKE_DOCKER_15 = """#!/bin/sh
# a Docker 1.5 client: no --format anywhere, flat output
for a in "$@"; do
  case "$a" in --format|--format=*) echo "flag provided but not defined: --format" >&2; exit 2;;
  esac
done
case "$1" in
  version) cat "$(dirname "$0")/version.txt";;
  info) cat "$(dirname "$0")/info.txt"; echo "WARNING: No swap limit support" >&2;;
  *) exit 1;;
esac
"""


def _fake_docker(tmp_path: Path, version: str, info: str) -> str:
    (tmp_path / "version.txt").write_text(version)
    (tmp_path / "info.txt").write_text(info)
    path = tmp_path / "docker"
    path.write_text(FAKE_DOCKER_15)
    path.chmod(0o755)
    return str(path)


def test_docker_facts_falls_back_to_docker_15_text(tmp_path: Path) -> None:
    docker = pa.Docker(_fake_docker(tmp_path, VERSION_150_FLAT, INFO_150_UBUNTU_AUFS))
    f = pa.docker_facts(docker)
    assert f["error"] is None
    assert f["version_format"] == "flat" and f["info_format"] == "text"
    assert (f["client_version"], f["server_version"], f["api_version"]) == (
        "1.5.0",
        "1.5.0",
        "1.17",
    )
    assert f["storage_driver"] == "aufs" and f["backing_filesystem"] == "extfs"
    assert f["root_dir"] == "/var/lib/docker" and f["root_dir_source"] == "derived"
    assert f["cgroup_driver"] is None and f["cgroup_version"] is None
    assert f["warnings"] == ["No swap limit support"]
    assert f["git_commit"] == "a8a31ef"
    assert docker.supports((1, 5)) and not docker.supports((1, 6))  # so no --label


def test_docker_facts_daemon_down_on_docker_15(tmp_path: Path) -> None:
    docker = pa.Docker(_fake_docker(tmp_path, VERSION_150_DAEMON_DOWN, ""))
    f = pa.docker_facts(docker)
    assert f["error_kind"] == "docker-daemon-down"
    assert f["client_version"] == "1.5.0" and f["server_version"] is None
    assert docker.server_version is None


def test_a_start_that_loses_the_udev_race_is_tried_again(tmp_path: Path) -> None:
    """Docker 1.5.0 on devicemapper (no udev sync): "Error mounting '/dev/mapper/...'" on
    `docker run` is retried; the run's record keeps what was retried. Any other error is not."""
    calls = tmp_path / "calls"
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$1" in\n'
        f'  run) n=$(grep -c "^run" {calls})\n'
        '       if [ "$n" -lt 2 ]; then echo "Error response from daemon: Cannot start container'
        " x: Error mounting '/dev/mapper/docker-1-x' on '/var/lib/docker/devicemapper/mnt/x':"
        ' no such file or directory" >&2; exit 1; fi\n'
        "       echo cid123 ;;\n"
        "  *) exit 0 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    agent = pa.Agent("r1", "h", str(tmp_path), 60, docker=pa.Docker(str(fake)))
    assert agent.start_container("s", "img", ["/bin/true"]) == ("labctl-probe-r1-s", "cid123")
    assert len(agent.start_retries) == 1 and "Error mounting" in agent.start_retries[0]
    assert [line.split()[0] for line in calls.read_text().splitlines()] == ["run", "rm", "run"]
    fake.write_text('#!/bin/sh\necho "Error response from daemon: no such image" >&2; exit 1\n')
    with pytest.raises(pa.ExperimentError):
        agent.start_container("t", "img", ["/bin/true"])
    assert len(agent.start_retries) == 1


def test_the_udev_race_has_two_faces_and_nothing_else_is_retried() -> None:
    from labctl.agent.context import lost_udev_race

    assert lost_udev_race(
        "Cannot start container x: Error mounting '/dev/mapper/docker-1-x'"
        " on '/var/lib/docker/devicemapper/mnt/x': no such file or directory"
    )
    # seen in CI on the 1.5.0 lab (c70, memory-limited)
    assert lost_udev_race(
        "Error response from daemon: Cannot start container f7bc66: Error"
        " getting container f7bc66 from driver devicemapper: open"
        " /dev/mapper/docker-254:16-1234-f7bc66: no such file or directory"
    )
    assert not lost_udev_race("Error response from daemon: no such image")
    assert not lost_udev_race("from driver devicemapper: thin pool is full")
    assert not lost_udev_race("")


def test_start_retries_are_scalar_metrics_the_loader_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose container start was retried (Docker 1.5.0's udev race) keeps a count and the
    last error as metrics; a list there made the controller refuse the whole host file."""
    import labctl.agent.runner as runner
    from labctl.results import _schema_problem

    agent = pa.Agent("r1", "h", str(tmp_path), 60, docker=pa.Docker("/bin/false"))

    def flaky(agent_: object, metrics: dict[str, object]) -> str:
        agent.start_retries.extend(["Error mounting '/dev/mapper/a'", "Error mounting 'b'"])
        return "separate"

    monkeypatch.setitem(runner.EXPERIMENTS, "storage-location", flaky)
    record = runner.run_experiment(agent, "storage-location")
    m = record["metrics"]
    assert m["container_start_retries"] == 2
    assert m["container_start_retry_error"] == "Error mounting 'b'"
    assert agent.start_retries == []
    data = {"schema": 1, "host": "h", "run_id": "r1", "status": "ok", "experiments": [record]}
    problem = _schema_problem(data, "h", "r1")
    assert problem is None, problem
