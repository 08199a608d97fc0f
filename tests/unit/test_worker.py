"""--worker (labctl/workernode.py, workerinv.py, workerenv.py, remoteplay.py, the streamer calls
in ansible.py): the URL, the worker's view of the inventory, its wheels, and the worker's stream
read back (a stream recorded from a real worker node: tests/data/worker-stream/warm.jsonl)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labctl.ansible import process_stream, transmit_playbook
from labctl.errors import ConfigError, PlayInterrupted, ProvisionError
from labctl.hosts import HostRecord
from labctl.inventory import Inventory
from labctl.provision import ProvisionReport, _apply_stats, _Relay
from labctl.remoteplay import _as_run, _Watched, worker_command, worker_envvars
from labctl.workerenv import WorkerPython, check_python, parse_about
from labctl.workerinv import ssh_args, worker_view
from labctl.workernode import WorkerNode, is_loopback, parse_worker_url, worker_node

STREAM = Path(__file__).resolve().parent.parent / "data" / "worker-stream" / "warm.jsonl"
NODE = WorkerNode(HostRecord("bookworm", "127.0.0.1", 2222))


def test_worker_urls_and_what_they_default_to() -> None:
    assert parse_worker_url("ssh://root@127.0.0.1:2222") == ("root", "127.0.0.1", 2222)
    assert parse_worker_url("ssh://127.0.0.1") == ("root", "127.0.0.1", 22)
    assert parse_worker_url("ssh://ci@[::1]:22/") == ("ci", "::1", 22)
    for bad in ("root@127.0.0.1", "http://h", "ssh://h:99999", "ssh://h/x", "ssh://u:pw@h",
                "ssh://h?key=k"):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            parse_worker_url(bad)
        assert "--worker" in err.value.message


def test_a_worker_is_an_inventory_host_by_name_or_a_url_with_its_files(tmp_path: Path) -> None:
    host = HostRecord("w", "127.0.0.1", 2201, vars={"ansible_python_interpreter": "/usr/bin/py3"})
    inv = Inventory(Path("i.yml"), [host])
    assert worker_node("w", inventory=inv) == WorkerNode(host, "/usr/bin/py3")
    with pytest.raises(ConfigError, match="neither"):
        worker_node("nosuch", inventory=inv)
    with pytest.raises(ConfigError, match="--worker-key"):
        worker_node("ssh://127.0.0.1:2", key_file=tmp_path / "none")
    key = tmp_path / "k"
    key.write_text("x")
    node = worker_node("ssh://ci@127.0.0.1:2", key_file=key)
    assert (node.host.user, node.host.port, node.host.key_file, node.python) == (
        "ci", 2, key, "python3"
    )  # fmt: skip
    assert node.where == "ci@127.0.0.1:2"
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")


def test_the_workers_ssh_options_are_its_own_known_hosts_and_strict_checking() -> None:
    given = "-o UserKnownHostsFile=/ctl/kh -o StrictHostKeyChecking=no -o IdentitiesOnly=yes -C"
    assert ssh_args(given, "/w/kh") == (
        "-o UserKnownHostsFile=/w/kh -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -C"
    )


def _public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def test_the_worker_sees_tunnelled_hosts_its_own_keys_and_the_groups(tmp_path: Path) -> None:
    pub = _public_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:32801 {pub}\nfar.example {pub}\n")
    key = tmp_path / "id"
    key.write_bytes(b"PRIVATE")
    lab = HostRecord("lab1", "127.0.0.1", 32801, key_file=key, known_hosts=known)
    far = HostRecord("far", "far.example", 22, key_file=key, known_hosts=known)
    lost = HostRecord("lost", "127.0.0.1", 32999, known_hosts=known)
    data = {
        "_meta": {"hostvars": {
            "lab1": {"ansible_host": "127.0.0.1", "ansible_port": 32801, "labctl_suite": "x",
                     "ansible_ssh_private_key_file": str(key), "labctl_known_hosts": str(known),
                     "ansible_ssh_common_args": f"-o UserKnownHostsFile={known}"},
            "far": {"ansible_host": "far.example"},
        }},
        "all": {"children": ["ungrouped", "lab"]},
        "lab": {"hosts": ["lab1", "lost"]},
        "ungrouped": {"hosts": ["far"]},
    }  # fmt: skip
    view = worker_view(data, [lab, far, lost], {"lab1": 40001, "lost": 40002}, "/tmp/w")
    assert view.refused.keys() == {"lost"} and "[127.0.0.1]:32999" in view.refused["lost"]
    hosts = view.inventory["all"]["hosts"]
    assert hosts["lab1"]["ansible_host"] == "127.0.0.1" and hosts["lab1"]["ansible_port"] == 40001
    assert hosts["lab1"]["labctl_suite"] == "x" and "labctl_known_hosts" not in hosts["lab1"]
    assert hosts["lab1"]["ansible_ssh_private_key_file"] == "/tmp/w/labctl/keys/key0"
    assert hosts["far"]["ansible_ssh_private_key_file"] == "/tmp/w/labctl/keys/key0"  # one copy
    assert hosts["far"]["ansible_host"] == "far.example" and hosts["far"]["ansible_port"] == 22
    for h in hosts.values():
        assert h["ansible_ssh_common_args"].startswith(
            "-o UserKnownHostsFile=/tmp/w/labctl/known_hosts -o StrictHostKeyChecking=yes"
        )
    assert view.files["labctl/keys/key0"] == b"PRIVATE"
    assert view.files["labctl/known_hosts"].decode().splitlines() == [
        f"[127.0.0.1]:40001 {pub}", f"far.example {pub}"
    ]  # fmt: skip
    assert view.inventory["all"]["children"] == {
        "lab": {"hosts": {"lab1": None}}, "ungrouped": {"hosts": {"far": None}}
    }  # fmt: skip


def test_paths_into_the_playbooks_name_the_workers_copy_and_the_command_is_quoted() -> None:
    env = {"ANSIBLE_ROLES_PATH": "/pb/roles", "X": "/pbx", "Y": "/pb"}
    assert worker_envvars(env, Path("/pb"), "/tmp/w") == {
        "ANSIBLE_ROLES_PATH": "/tmp/w/project/roles", "X": "/pbx", "Y": "/tmp/w/project"
    }  # fmt: skip
    cmd = worker_command("/v/bin", "/tmp/w x")
    assert cmd.startswith("umask 077 && mkdir -- '/tmp/w x' && echo labctl-worker-pid $$ >&2")
    assert cmd.endswith("worker --private-data-dir '/tmp/w x' --delete --keepalive-seconds 15")


def test_the_workers_python_gives_the_wheels_platforms_and_must_be_new_enough() -> None:
    about = '{"py": "3.11", "machine": "x86_64", "libc": "glibc 2.36"}'
    py = parse_about("noise\n" + about)
    assert py == WorkerPython("3.11", "x86_64", (2, 36))
    assert py.platforms()[0] == "manylinux_2_36_x86_64"
    assert py.platforms()[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    with pytest.raises(ProvisionError, match="not glibc"):
        parse_about('{"py": "3.11", "machine": "x86_64", "libc": ""}').platforms()
    check_python(py)  # the controller's own version: fine
    with pytest.raises(ProvisionError, match="needs"):
        check_python(WorkerPython("2.7", "x86_64", (2, 36)))


def test_a_recorded_worker_stream_gives_the_events_stats_and_artifacts(tmp_path: Path) -> None:
    events: list[dict[str, object]] = []
    source = _Watched(io.BytesIO(STREAM.read_bytes()))  # as the worker's channel is read
    played = process_stream(source, tmp_path / "ansible", events.append)  # type: ignore[arg-type]
    assert not source.silent
    assert played.status == "successful"
    assert played.artifact_dir == tmp_path / "ansible" / "artifacts" / "provision"
    assert played.stats["ok"] == {"target": 2}
    assert len(list((played.artifact_dir / "job_events").glob("*.json"))) == len(events) > 10
    assert (played.artifact_dir / "status").read_text() == "successful"
    run = _as_run(played, [], False, NODE)
    assert (run.status, run.rc) == ("successful", 0)
    report = ProvisionReport()  # the same provision report as a local play's
    for event in events:
        _Relay(report, [], None)(event)
    _apply_stats(report, run)
    assert report.hosts["target"].line() == (
        "target: already provisioned as asked (one check, nothing changed)"
    )


def test_a_cut_stream_is_one_line_and_a_cancelled_one_is_an_interrupt(tmp_path: Path) -> None:
    lines = STREAM.read_bytes().splitlines(keepends=True)
    played = process_stream(io.BytesIO(b"".join(lines[:2])), tmp_path / "a")
    assert played.status == "error" and "Unexpected empty line" in played.explanation
    with pytest.raises(ProvisionError, match="ran no play: mkdir: cannot create"):
        _as_run(played, ["mkdir: cannot create directory"], False, NODE)
    played = process_stream(io.BytesIO(b"".join(lines[:8])), tmp_path / "c")
    with pytest.raises(ProvisionError, match="broke off the play: Unexpected empty line"):
        _as_run(played, [], False, NODE)
    canceled = b"".join(lines[:6]) + b'{"status": "canceled"}\n{"eof": true}\n'
    played = process_stream(io.BytesIO(canceled), tmp_path / "b")
    with pytest.raises(PlayInterrupted, match="cancelled"):
        _as_run(played, [], False, NODE)


def test_transmit_sends_the_kwargs_then_the_private_data_dir(tmp_path: Path) -> None:
    staging = tmp_path / "pdd"
    (staging / "project").mkdir(parents=True)
    (staging / "project" / "site.yml").write_text("- hosts: all\n")
    (staging / "inventory").mkdir()
    (staging / "inventory" / "hosts.yml").write_text("{}\n")
    job = tmp_path / "job"
    with job.open("wb") as out:
        transmit_playbook(out, staging=staging, playbook="site.yml",
                          inventory=str(staging / "inventory" / "hosts.yml"),
                          envvars={"PATH": "/v/bin:/usr/bin"}, extravars={"a": 1}, limit="h1",
                          forks=2, check=False, timeout=60)  # fmt: skip
    head, size_line, rest = job.read_bytes().split(b"\n", 2)
    kwargs = json.loads(head)["kwargs"]
    assert kwargs["inventory"] == "inventory/hosts.yml"  # unpacked where the worker says
    assert (kwargs["playbook"], kwargs["limit"], kwargs["ident"]) == ("site.yml", "h1", "provision")
    size = json.loads(size_line)["zipfile"]
    encoded = -(-size // 3) * 4
    assert json.loads(rest[encoded:]) == {"eof": True}
    packed = zipfile.ZipFile(io.BytesIO(base64.b64decode(rest[:encoded])))
    assert {"project/site.yml", "inventory/hosts.yml"} <= set(packed.namelist())
    # the worker's PATH (its venv first) travels in env/envvars, which ansible-runner wrote
    assert "/v/bin:/usr/bin" in packed.read("env/envvars").decode()


def test_cache_list_knows_the_worker_wheelhouses(tmp_path: Path) -> None:
    from labctl.cachestore.files import worker_wheel_items
    from labctl.workerenv import wheelhouse_prefix

    (tmp_path / "worker-wheels" / f"{wheelhouse_prefix()}3.11-x86_64").mkdir(parents=True)
    (tmp_path / "worker-wheels" / "runner-0.1-core-0.1-py3.11-x86_64").mkdir()
    states = {i.name.split("/")[1][:14]: i.state for i in worker_wheel_items(tmp_path)}
    assert states == {wheelhouse_prefix()[:14]: "current", "runner-0.1-cor": "stale"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["probe", "-i", "inv.ini", "--shard", "3/2"], "--shard 3/2: K must be between 1 and N"),
        (["run", "-i", "inv.ini", "--shard", "x"], "--shard 'x' is not K/N"),
        (["provision", "-i", "EXAMPLE", "--worker", "ftp://w"], "--worker 'ftp://w' is neither"),
        (["run", "-i", "inv.ini", "--worker", "ssh://w:1/x", "--no-provision"], "only user, host"),
    ],
)
def test_a_bad_shard_or_worker_is_one_line_before_anything_runs(
    args: list[str], said: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from labctl.cli import main

    inv = tmp_path / "inv.ini"  # read for a worker named by host
    inv.write_text("h1 ansible_host=127.0.0.1\n")
    res = CliRunner().invoke(main, [str(inv) if a == "EXAMPLE" else a for a in args])
    assert res.exit_code == 2, res.output
    assert said in res.output and "Traceback" not in res.output
