"""Inventories read through real ansible-inventory (ansible-runner's inventory API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import InventoryError
from labctl.inventory import load_inventory, truthy


def test_truthy() -> None:
    assert truthy(True) and truthy("yes") and truthy("True") and truthy(1)
    assert not truthy(False) and not truthy("no") and not truthy("") and not truthy(0)


def test_ini_inventory_to_host_records(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("not really a key")
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        "[article]\n"
        "centos66 ansible_host=127.0.0.1 ansible_port=2201 ansible_user=root labctl_suite=c6\n"
        "ubuntu1404 ansible_host=127.0.0.1 ansible_port=2203 labctl_disposable=true "
        "labctl_agent_python=/usr/bin/python2.7\n"
        "[article:vars]\n"
        "ansible_ssh_private_key_file=id\n"
        "ansible_ssh_common_args='-o UserKnownHostsFile=kh -o StrictHostKeyChecking=yes'\n"
    )
    result = load_inventory(inv)
    assert not result.problems
    by = {h.name: h for h in result.hosts}
    assert sorted(by) == ["centos66", "ubuntu1404"]
    c6 = by["centos66"]
    assert (c6.address, c6.port, c6.user) == ("127.0.0.1", 2201, "root")
    assert c6.key_file == key  # relative to the inventory's folder
    assert c6.known_hosts == tmp_path / "kh"
    assert c6.labels == {"suite": "c6"} and not c6.disposable
    u = by["ubuntu1404"]
    assert u.disposable and u.agent_python == "/usr/bin/python2.7"


def test_bad_port_is_a_problem_of_that_host_only(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  hosts:\n"
        "    good:\n      ansible_host: 127.0.0.1\n      ansible_port: 2222\n"
        "    bad:\n      ansible_host: 127.0.0.1\n      ansible_port: seventy\n"
    )
    result = load_inventory(inv)
    assert [h.name for h in result.hosts] == ["good"]
    assert len(result.problems) == 1
    assert result.problems[0].line().startswith("bad: ansible_port 'seventy' is not a TCP port")


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("h1 ansible_host=127.0.0.1 ansible_ssh_private_key_file=/nonexistent/key\n")
    result = load_inventory(inv)
    assert not result.hosts
    assert "h1: private key /nonexistent/key does not exist" in result.problems[0].line()


def test_malformed_inventory_is_one_clear_error(tmp_path: Path) -> None:
    inv = tmp_path / "broken.yml"
    inv.write_text("all:\n  hosts:\n    a: [unclosed\n")
    with pytest.raises(InventoryError) as err:
        load_inventory(inv)
    line = err.value.line()
    assert f"inventory {inv} cannot be parsed" in line
    assert "\n" not in line


def test_missing_and_empty_inventories(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "nope.ini")
    empty = tmp_path / "empty.ini"
    empty.write_text("[nobody]\n")
    with pytest.raises(InventoryError, match="lists no hosts"):
        load_inventory(empty)


def test_limit_to_unknown_host(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("h1 ansible_host=127.0.0.1\n")
    with pytest.raises(InventoryError, match="no host named h9"):
        load_inventory(inv, limit=["h9"])
    assert [h.name for h in load_inventory(inv, limit=["h1"]).hosts] == ["h1"]


def test_a_hosts_own_checks_and_what_the_probe_asks(tmp_path: Path) -> None:
    from labctl.errors import ProbeError
    from labctl.experiments import ALL
    from labctl.probe import host_experiments

    inv = tmp_path / "hosts.ini"
    inv.write_text(
        "[lab]\n"
        "a labctl_experiments=storage-location\n"
        "b labctl_experiments=all,drivers-available\n"
        "c labctl_experiments=storage-location,nonsense\n"
        "d\n"
    )
    loaded = load_inventory(inv)
    hosts = {h.name: h for h in loaded.hosts}
    assert hosts["a"].experiments == ("storage-location",) and hosts["d"].experiments is None
    assert hosts["b"].experiments is not None and "drivers-available" in hosts["b"].experiments
    (bad,) = loaded.problems
    assert bad.host == "c" and "labctl_experiments: unknown experiment nonsense" in bad.line()
    # "all" on the command line: each host's own list, opt-in checks it names included
    assert host_experiments(ALL, hosts["a"]) == ("storage-location",)
    assert host_experiments(ALL, hosts["b"])[:3] == (
        "storage-location",
        "drivers-available",
        "disk",
    )
    assert host_experiments(ALL, hosts["d"]) == ALL
    # a check named on the command line runs where the host lists it
    assert host_experiments(("storage-location", "disk"), hosts["a"]) == ("storage-location",)
    with pytest.raises(ProbeError) as err:
        host_experiments(("disk",), hosts["a"])
    assert (
        "none of the checks asked (disk) is in this host's labctl_experiments" in err.value.line()
    )


def test_host_names_that_cannot_name_a_file_are_refused_at_load(tmp_path: Path) -> None:
    """`bookworm ü 1` and `../pwn` were probed in full and only then refused (or lost): now
    they are one problem each before anything connects, and the other hosts go on."""
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        'all:\n  hosts:\n    "bookworm \u00fc 1": {ansible_host: 127.0.0.1}\n'
        '    "../pwn": {ansible_host: 127.0.0.1}\n    good: {ansible_host: 127.0.0.1}\n',
        encoding="utf-8",
    )
    loaded = load_inventory(inv)
    assert [h.name for h in loaded.hosts] == ["good"]
    lines = sorted(p.line() for p in loaded.problems)
    assert [p.exit_code for p in loaded.problems] == [2, 2]
    assert lines[0].startswith("../pwn: host name '../pwn' cannot name its result file")
    assert lines[1].startswith("bookworm \u00fc 1: host name")
    assert all("ASCII letters, digits" in line for line in lines)
