"""Pure logic of the docker driver: sizes, spec validation, host specs, lab names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.drivers.base import GiB, MiB, parse_size
from labctl.drivers.docker import DockerLab, DockerLabSpec, HostSpec
from labctl.drivers.docker.containers import parse_facts
from labctl.errors import ConfigError

# --- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", GiB),
        ("512MiB", 512 * MiB),
        ("1g", GiB),
        ("1G", GiB),
        ("256m", 256 * MiB),
        ("1.5GiB", 3 * GiB // 2),
        ("1GB", 1000**3),
        ("4096", 4096),
        (" 2 GiB ", 2 * GiB),
        (123, 123),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GiB", "1 parsec", "-1GiB", "1e9", True])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ConfigError, match="disk_size"):
        parse_size(bad, what="disk_size")  # type: ignore[arg-type]


# --- spec ---------------------------------------------------------------------------------------


def test_spec_defaults_are_valid() -> None:
    spec = DockerLabSpec()
    spec.validate()
    assert spec.suites == ("bullseye", "bookworm", "trixie")
    assert spec.disk_size == GiB and spec.memory == GiB
    assert spec.disk_inodes == 20000 and spec.pids_limit == 512
    assert spec.storage_driver == "overlay2" and spec.mirror is None


def test_spec_accepts_size_strings() -> None:
    spec = DockerLabSpec(disk_size="512MiB", memory="1g")  # type: ignore[arg-type]
    assert spec.disk_size == 512 * MiB
    assert spec.memory == GiB


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Bad-Name"}, "name"),
        ({"name": ""}, "name"),
        ({"suites": ()}, "suites"),
        ({"suites": ("buster",)}, "suites"),
        ({"suites": ("bookworm", "bookworm")}, "suites"),
        ({"disk_size": 100 * MiB}, "disk_size"),
        ({"disk_inodes": 10}, "disk_inodes"),
        ({"disk_size": 256 * MiB, "disk_inodes": 10_000_000}, "disk_inodes"),
        ({"memory": 64 * MiB}, "memory"),
        ({"pids_limit": 10}, "pids_limit"),
        ({"storage_driver": "devicemapper"}, "storage_driver"),
        ({"mirror": "deb.debian.org/debian"}, "mirror"),
    ],
)
def test_spec_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    spec = DockerLabSpec(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        spec.validate()
    assert str(info.value).startswith(f"{field}:")


def test_spec_bad_size_string_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^memory:"):
        DockerLabSpec(memory="lots")  # type: ignore[arg-type]


def test_spec_from_mapping() -> None:
    spec = DockerLabSpec.from_mapping(
        {"name": "t1", "suites": "bookworm,trixie", "disk_size": "512MiB"}
    )
    assert spec.suites == ("bookworm", "trixie")
    assert spec.disk_size == 512 * MiB
    with pytest.raises(ConfigError, match="disk_sise"):
        DockerLabSpec.from_mapping({"disk_sise": "1GiB"})
    assert json.loads(json.dumps(spec.to_dict()))["suites"] == ["bookworm", "trixie"]


def test_lab_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = DockerLab(DockerLabSpec(name="t42"), client=object())
    assert lab.container_name("bookworm") == "labctl-lab-t42-bookworm"
    assert lab.network_name == "labctl-t42"
    assert lab.disk_image("trixie") == "/labctl-disk-t42-trixie.img"
    assert lab.directory == tmp_path / "labs" / "t42"
    assert len({lab.bip(i) for i in range(3)}) == 3


def test_unreachable_engine_is_a_clear_lab_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.errors import LabError

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    lab = DockerLab(DockerLabSpec(name="t1"))
    with pytest.raises(LabError) as info:
        lab.status()
    text = str(info.value)
    assert "cannot reach the Docker engine" in text and "DOCKER_HOST" in text


# --- host specs -----------------------------------------------------------------------------------


def test_host_spec_strings_and_automatic_names() -> None:
    spec = DockerLabSpec(
        name="v1",
        hosts=(  # type: ignore[arg-type]
            "bookworm",
            "bookworm/driver=vfs",
            "bookworm/driver=btrfs",
            "bookworm/fs=xfs",
            "bookworm/docker=no",
            "bullseye/python=2.7",
            "bookworm/python=none",
        ),
    )
    spec.validate()
    hosts = spec.host_specs()
    assert [h.name for h in hosts] == [
        "bookworm",
        "bookworm-vfs",
        "bookworm-btrfs",
        "bookworm-xfs",
        "bookworm-nodocker",
        "bullseye-py27",
        "bookworm-nopython",
    ]
    by = {h.name: h for h in hosts}
    assert (by["bookworm"].storage_driver, by["bookworm"].backing_fs) == ("overlay2", "ext4")
    assert (by["bookworm-vfs"].storage_driver, by["bookworm-vfs"].backing_fs) == ("vfs", "ext4")
    assert by["bookworm-btrfs"].backing_fs == "btrfs"  # the btrfs driver's default fs
    assert (by["bookworm-xfs"].storage_driver, by["bookworm-xfs"].backing_fs) == (
        "overlay2",
        "xfs",
    )
    assert by["bookworm-nodocker"].docker is False
    assert by["bullseye-py27"].python == "python2.7"
    assert by["bookworm-nopython"].python == "none"
    assert spec.suites == ("bookworm", "bullseye")
    # the string form round-trips
    for h in hosts:
        back = HostSpec.parse(h.to_string()).resolved()
        assert back == h, (h.to_string(), back)


def test_host_spec_parse_forms() -> None:
    a = HostSpec.parse("bookworm/driver=vfs,fs=xfs,name=x1")
    b = HostSpec.parse("bookworm:storage=vfs,docker_fs=xfs,name=x1")  # the qemu driver's form
    c = HostSpec.parse(" bookworm/driver=vfs/fs=xfs/name=x1 ")
    assert (
        a == b == c == HostSpec(name="x1", suite="bookworm", storage_driver="vfs", backing_fs="xfs")
    )
    assert HostSpec.parse("bullseye/python=py27").python == "python2.7"
    assert HostSpec.parse("bullseye/python=3").python == "python3"
    assert HostSpec.parse("trixie/docker=false").docker is False
    assert HostSpec.parse("trixie/docker=yes").docker is True
    assert HostSpec.parse("trixie") == HostSpec(suite="trixie")
    assert HostSpec(name="n", suite="bullseye", python="2.7").python == "python2.7"


def test_host_names_unique_and_explicit() -> None:
    spec = DockerLabSpec(
        hosts=("bookworm", "bookworm", "bookworm/name=bookworm-2", "bookworm/driver=vfs")  # type: ignore[arg-type]
    )
    spec.validate()
    assert [h.name for h in spec.host_specs()] == [
        "bookworm",
        "bookworm-3",
        "bookworm-2",
        "bookworm-vfs",
    ]
    with pytest.raises(ConfigError, match="used twice"):
        DockerLabSpec(hosts=("bookworm/name=a", "trixie/name=a")).validate()  # type: ignore[arg-type]


def test_suites_shorthand_is_one_default_host_each() -> None:
    spec = DockerLabSpec(suites=("bullseye", "trixie"))
    assert [(h.name, h.suite, h.storage_driver, h.backing_fs, h.docker, h.python)
            for h in spec.host_specs()] == [
        ("bullseye", "bullseye", "overlay2", "ext4", True, "python3"),
        ("trixie", "trixie", "overlay2", "ext4", True, "python3"),
    ]  # fmt: skip
    # the lab-wide driver is the default of hosts that name none; names stay the suite's
    vfs = DockerLabSpec(suites=("bookworm",), storage_driver="btrfs")
    vfs.validate()
    (h,) = vfs.host_specs()
    assert (h.name, h.storage_driver, h.backing_fs) == ("bookworm", "btrfs", "btrfs")
    mixed = DockerLabSpec(storage_driver="vfs", hosts=("bookworm", "bookworm/driver=overlay2"))  # type: ignore[arg-type]
    assert [h.name for h in mixed.host_specs()] == ["bookworm", "bookworm-overlay2"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("bookworm/driver=zfs", ["bookworm/driver=zfs", "zfs", "overlay2, vfs, btrfs"]),
        ("bookworm/fs=ntfs", ["ntfs", "ext4, xfs, btrfs"]),
        ("bookworm/colour=red", ["colour", "driver", "fs", "docker", "python", "name"]),
        ("bookworm/docker=maybe", ["maybe", "yes, no"]),
        ("bookworm/python=2.6", ["2.6", "3, 2.7, none"]),
        ("bookworm/python=2.7", ["bookworm", "bullseye"]),
        ("bookworm/driver", ["KEY=VALUE"]),
        ("bookworm/driver=vfs,driver=btrfs", ["twice"]),
        ("buster", ["buster", "bullseye, bookworm, trixie"]),
        ("bookworm/name=Not_A_Host", ["Not_A_Host"]),
        ("bookworm/fs=btrfs", ["overlay2", "btrfs", "ext4, xfs"]),
        ("bookworm/driver=btrfs,fs=ext4", ["btrfs", "ext4"]),
        ("bookworm/fs=xfs,python=none", ["xfsprogs", "python3"]),
    ],
)
def test_host_spec_errors_name_the_host_and_the_choices(text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        DockerLabSpec(name="v1", hosts=(text,)).validate()  # type: ignore[arg-type]
    msg = str(info.value)
    assert msg.startswith("hosts:"), msg
    for w in words:
        assert w in msg, (w, msg)


def test_small_disks_for_xfs_are_refused() -> None:
    DockerLabSpec(disk_size="256MiB", hosts=("bookworm/driver=btrfs",)).validate()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^disk_size:.*bookworm-xfs.*xfs"):
        DockerLabSpec(disk_size="256MiB", hosts=("bookworm/fs=xfs",)).validate()  # type: ignore[arg-type]


def test_spec_hosts_from_mapping_and_to_dict() -> None:
    spec = DockerLabSpec.from_mapping(
        {
            "name": "v2",
            "hosts": ["bookworm", {"suite": "bullseye", "python": "2.7"}, "bookworm/fs=xfs"],
            "disk_size": "512MiB",
        }
    )
    assert [h.name for h in spec.host_specs()] == ["bookworm", "bullseye-py27", "bookworm-xfs"]
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["hosts"] == ["bookworm", "bullseye/python=2.7", "bookworm/fs=xfs"]
    assert DockerLabSpec.from_mapping(d).host_specs() == spec.host_specs()
    with pytest.raises(ConfigError, match="colour"):
        DockerLabSpec.from_mapping({"hosts": [{"suite": "bookworm", "colour": "red"}]})
    # whitespace-separated hosts in one string (a config file's convenience)
    assert len(DockerLabSpec(hosts="bookworm bookworm/driver=vfs").host_specs()) == 2  # type: ignore[arg-type]


def test_parse_facts() -> None:
    text = (
        "backing_fs=xfs\nmount_options=rw,relatime,noquota\nquota=no\ninodes=dynamic\n"
        "docker=20.10.24+dfsg1 overlay2\nstorage_opt_size=refused\n"
        "storage_opt_size_detail=Error response from daemon: --storage-opt is supported only "
        "for overlay over xfs with 'pquota' mount option\nnoise line\n"
    )
    f = parse_facts(text)
    assert f["backing_fs"] == "xfs" and f["mount_options"] == "rw,relatime,noquota"
    assert f["docker"] == "20.10.24+dfsg1 overlay2" and f["storage_opt_size"] == "refused"
    assert "pquota" in f["storage_opt_size_detail"]
    assert "noise line" not in f


def test_lab_names_of_variant_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = DockerLab(DockerLabSpec(name="t42", hosts=("bookworm/fs=xfs",)), client=object())  # type: ignore[arg-type]
    assert lab.container_name("bookworm-xfs") == "labctl-lab-t42-bookworm-xfs"
    assert lab.disk_image("bookworm-xfs") == "/labctl-disk-t42-bookworm-xfs.img"


class _FakeContainer:
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels


def test_a_running_host_made_differently_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.drivers.docker.containers import LABEL_HOSTSPEC
    from labctl.drivers.docker.hosts import Host as _Host
    from labctl.errors import LabError

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path))
    lab = DockerLab(
        DockerLabSpec(name="t1", hosts=("bookworm/driver=vfs,name=x",)),  # type: ignore[arg-type]
        client=object(),
    )
    (hs,) = lab.spec.host_specs()
    same = _Host(hs, 0, container=_FakeContainer({LABEL_HOSTSPEC: "bookworm/driver=vfs,name=x"}))
    lab._check_same_host(same)
    old = _Host(hs, 0, container=_FakeContainer({}))  # made before host specs: not checked
    lab._check_same_host(old)
    other = _Host(hs, 0, container=_FakeContainer({LABEL_HOSTSPEC: "bookworm/fs=xfs,name=x"}))
    with pytest.raises(LabError, match="lab down"):
        lab._check_same_host(other)
