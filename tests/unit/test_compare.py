"""Comparing two runs check by check, a run against the 2015 study, and listing runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.errors import ConfigError
from labctl.report.baseline import (
    BaselineComparison,
    SystemPairing,
    compare_to_baseline,
    kernel_line,
    load_baseline,
)
from labctl.report.compare import compare_runs, same_value
from labctl.report.model import load_entries, open_run
from labctl.report.runs import list_runs

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "run-sample"
RESOURCES = DATA / "run-resources"
ARTICLE = DATA / "run-article-1.5.0"


def _edit(path: Path, fn: object) -> None:
    data = json.loads(path.read_text())
    fn(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "A"
    b = tmp_path / "B"
    shutil.copytree(RESOURCES, a)
    shutil.copytree(RESOURCES, b)
    for f in [b / "run.json", *(b / "hosts").glob("*.json")]:  # each file names its run
        _edit(f, lambda d: d.update(run_id="20261129-100000-beef"))

    def centos7(d: dict) -> None:  # type: ignore[type-arg]
        d["facts"]["docker"]["server_version"] = "1.6.2"
        disk = d["experiments"][1]["metrics"]
        disk["written_bytes"] = int(disk["written_bytes"] * 1.01)  # within 5 %
        disk["watch_s"] = 99.0  # volatile: not compared by default
        inodes = d["experiments"][3]
        inodes["metrics"]["landed_on_host_ratio"] = 1.0
        inodes["verdict"] = "every file used a host inode"
        d["experiments"][2]["metrics"]["host_free_bytes_delta"] *= 2

    _edit(b / "hosts" / "centos7.json", centos7)
    # the ubuntu host got another name in run B: matched by its suite label
    (b / "hosts" / "ubuntu1404.json").rename(b / "hosts" / "u14.json")
    _edit(b / "hosts" / "u14.json", lambda d: d.update(host="u14"))
    (b / "hosts" / "centos66.json").unlink()
    return a, b


def test_same_value() -> None:
    assert same_value(100, 104, 0.05) == (True, "+4.0%")
    assert same_value(100, 110, 0.05)[0] is False
    assert same_value(
        "/var/lib/docker/overlay2/0123456789abcdef/diff",
        "/var/lib/docker/overlay2/fedcba9876543210/diff",
        0,
    )[0]
    assert same_value(True, False, 0.5)[0] is False
    assert same_value(0, 5, 0.05) == (False, "from 0 to 5")


def test_compare_two_runs_check_by_check(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    cmp = compare_runs(a, b)
    assert cmp.run_a == "20261128-091500-c0de" and cmp.run_b == "20261129-100000-beef"
    assert ("ubuntu1404", "u14", "label suite") in cmp.pairs
    assert ("centos7", "centos7", "name") in cmp.pairs
    assert cmp.only_a == ["centos66"] and cmp.only_b == []
    got = {(c.host, c.kind, c.item): c for c in cmp.changes}
    assert got[("centos7", "fact", "docker.server_version")].b == "1.6.2"
    verdict = got[("centos7", "verdict", "inodes.class")]
    assert (verdict.a, verdict.b) == ("contained", "host affected")
    assert got[("centos7", "metric", "disk-shared.host_free_bytes_delta")].note == "+100.0%"
    assert ("centos7", "metric", "disk.written_bytes") not in got  # within the tolerance
    assert ("centos7", "metric", "disk.watch_s") not in got  # volatile
    assert not [c for c in cmp.changes if c.host.startswith("ubuntu1404")]
    assert cmp.changed and "changed" in cmp.summary()
    strict = compare_runs(a, b, rtol=0, include_volatile=True)
    items = {c.item for c in strict.changes}
    assert {"disk.written_bytes", "disk.watch_s"} <= items
    ignored = compare_runs(a, b, ignore=["disk-shared.*"])
    assert "disk-shared.host_free_bytes_delta" not in {c.item for c in ignored.changes}


def test_compare_a_run_with_itself_finds_nothing() -> None:
    cmp = compare_runs(RESOURCES, RESOURCES)
    assert not cmp.changed and cmp.checked > 100
    assert "nothing changed" in cmp.summary()


def test_cli_compare(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    res = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert res.exit_code == 0, res.output
    assert "inodes.class" in res.output and "centos66: only in A" in res.output
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--json", "--exit-code"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["kind"] == "labctl-compare" and doc["only_a"] == ["centos66"]
    res = CliRunner().invoke(main, ["compare", str(a)])
    assert res.exit_code == 2 and "--baseline" in res.output
    res = CliRunner().invoke(main, ["compare", str(a), str(a / "nope")])
    assert res.exit_code == 5 and "Traceback" not in res.output


# -- the 2015 study -------------------------------------------------------------------------
def test_baseline_holds_the_article() -> None:
    base = load_baseline("article")
    systems = {s["id"]: s for s in base["systems"]}
    assert base["docker"]["version"] == "1.5.0"
    assert systems["centos66"]["kernel"] == "2.6.32-504.el6.x86_64"
    assert systems["centos70"]["kernel"] == "3.10.0-123.el7.x86_64"
    assert systems["ubuntu1404"]["kernel"] == "3.13.0-46-generic"
    assert systems["centos66"]["in_host_tree"] and systems["centos66"]["host_can_write"]
    assert not systems["centos70"]["in_host_tree"] and not systems["centos70"]["host_can_read"]
    assert systems["ubuntu1404"]["storage_driver"] == "aufs"
    assert "/var/lib/docker/aufs/diff/<id>" in systems["ubuntu1404"]["container_files"]
    assert kernel_line("3.10.0-123.el7.x86_64") == "3.10"
    with pytest.raises(ConfigError):
        load_baseline("nope")


def _systems(cmp: BaselineComparison) -> dict[str, SystemPairing]:
    return {s.system: s for s in cmp.systems}


def test_compare_with_the_article() -> None:
    cmp = compare_to_baseline(load_entries([open_run(RESOURCES)]))
    systems = _systems(cmp)
    assert list(systems) == ["centos66", "centos70", "ubuntu1404"]  # all three, every time
    c7 = systems["centos70"]
    assert c7.host == "centos7" and c7.score > 0
    assert "centos7: Docker 1.5.0, devicemapper, Red Hat family" in c7.reason
    assert "daemon mount namespace not measured" in c7.reason  # an old result file
    rows = {r.item: r for r in c7.rows}
    assert rows["kernel"].agrees == "match" and rows["Docker version"].agrees == "match"
    assert rows["files in the host's tree"].agrees == "match"
    assert rows["host can change container files"].run == "no"
    assert rows["daemon's mount namespace"].agrees == "not measured"
    assert rows["disk (no result in the article)"].agrees == "no baseline"
    u = systems["ubuntu1404"]
    assert u.host == "ubuntu1404"
    assert {r.item: r.agrees for r in u.rows}["host can read container files"] == "match"
    # CentOS 6.6's host failed; CentOS 7's host is not taken twice
    c6 = systems["centos66"]
    assert c6.host is None and not c6.rows
    assert c6.reason.startswith("no comparable host in this run")
    assert "centos7" in c6.reason and "failed before they were probed: centos66" in c6.reason
    notes = {h.host: h for h in cmp.hosts}
    assert (
        notes["bookworm"].system is None and "closest to Ubuntu 14.04" in notes["bookworm"].reason
    )
    assert "failed" in notes["centos66"].reason
    assert cmp.comparable and cmp.summary().startswith("2 of 3 systems paired")


def test_a_difference_from_the_article_says_why(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RESOURCES, run)

    def newer(d: dict) -> None:  # type: ignore[type-arg]
        d["facts"]["kernel"] = "3.10.0-1160.el7.x86_64"
        d["facts"]["docker"]["server_version"] = "1.13.1"
        m = d["experiments"][0]["metrics"]
        m.update(host_can_read=True, host_path="/var/lib/docker/devicemapper/mnt/abc/rootfs/x")

    _edit(run / "hosts" / "centos7.json", newer)
    cmp = compare_to_baseline(load_entries([open_run(run)]))
    c7 = _systems(cmp)["centos70"]
    assert c7.host == "centos7" and "Docker 1.13.1, not 1.5.0" in c7.reason
    rows = {r.item: r for r in c7.rows}
    assert rows["kernel"].agrees == "partial"  # same 3.10 line
    read = rows["host can read container files"]
    assert read.agrees == "differs" and read.why == "Docker 1.13.1 (article 1.5.0)"


def _article_run(tmp_path: Path, keep: tuple[str, ...], rename: bool = False) -> Path:
    """A copy of the article preset's run with only ``keep``; ``rename``: hosts renamed and
    the stands_for hints dropped (pairing must not depend on either)."""
    run = tmp_path / "article"
    shutil.copytree(ARTICLE, run)
    for i, p in enumerate(sorted((run / "hosts").glob("*.json"))):
        if p.stem not in keep:
            p.unlink()
        elif rename:
            new = f"host{i}-{'x' * i}"

            def anon(d: dict, new: str = new) -> None:  # type: ignore[type-arg]
                d["host"] = new
                d["labels"].pop("stands_for", None)

            _edit(p, anon)
            p.rename(p.with_name(f"{new}.json"))
    return run


def test_the_article_preset_pairs_each_system_with_its_stand_in(tmp_path: Path) -> None:
    cmp = compare_to_baseline(load_entries([open_run(ARTICLE)]))
    systems = _systems(cmp)
    assert {k: s.host for k, s in systems.items()} == {
        "centos66": "c66",
        "centos70": "c70",
        "ubuntu1404": "u14",
    }
    c70 = systems["centos70"]
    assert c70.reason.startswith(
        "c70: Docker 1.5.0, devicemapper, daemon in a private mount namespace "
        "(Docker 1.5.0's own systemd unit, MountFlags=slave); Debian, not Red Hat"
    )
    assert {c.name: c.verdict for c in c70.criteria}["daemon mount namespace"] == "match"
    assert "daemon in the host's mount namespace" in systems["centos66"].reason
    u14 = systems["ubuntu1404"]
    assert "overlay stands in for aufs, which Debian kernels no longer carry" in u14.reason
    u_rows = {r.item: r for r in u14.rows}
    assert u_rows["storage driver"].agrees == "partial"
    assert "overlay stands in for aufs" in u_rows["storage driver"].why
    # the storage findings, checked against the article's
    c66_rows = {r.item: r for r in systems["centos66"].rows}
    c70_rows = {r.item: r for r in c70.rows}
    for item in ("files in the host's tree", "host can change container files"):
        assert (c66_rows[item].run, c66_rows[item].agrees) == ("yes", "match")
        assert (c70_rows[item].run, c70_rows[item].agrees) == ("no", "match")
    assert c70_rows["host reaches them through /proc/<dockerd>/root"].run == "read yes, change yes"
    assert "only in the daemon's mount namespace" in c70_rows["where container files live"].run
    notes = {h.host: h for h in cmp.hosts}
    assert notes["d20"].system is None and "paired with u14" in notes["d20"].reason
    # not by names or hints: the same pairs with anonymous hosts
    anon = compare_to_baseline(
        load_entries([open_run(_article_run(tmp_path, ("c66", "c70", "u14", "d20"), rename=True))])
    )
    assert {k: s.host for k, s in _systems(anon).items()} == {
        "centos66": "host0-",
        "centos70": "host1-x",
        "ubuntu1404": "host3-xxx",
    }


def test_the_asked_init_style_stands_in_for_an_unmeasured_namespace(tmp_path: Path) -> None:
    run = _article_run(tmp_path, ("c66", "c70", "u14", "d20"))

    def unmeasured(d: dict) -> None:  # type: ignore[type-arg]
        d["facts"]["docker"].pop("mount_namespace")
        d["experiments"][0]["metrics"].pop("daemon_mount_ns")

    for p in (run / "hosts").glob("*.json"):
        _edit(p, unmeasured)
    systems = _systems(compare_to_baseline(load_entries([open_run(run)])))
    assert [s.host for s in systems.values()] == ["c66", "c70", "u14"]
    assert "systemd init: daemon expected in a private mount namespace (asked, not measured)" in (
        systems["centos70"].reason
    )
    rows = {r.item: r for r in systems["centos70"].rows}
    assert rows["daemon's mount namespace"].run == "not measured, init systemd (asked)"


def test_a_run_of_todays_engine_only(tmp_path: Path) -> None:
    cmp = compare_to_baseline(load_entries([open_run(_article_run(tmp_path, ("d20",)))]))
    systems = _systems(cmp)
    assert len(systems) == 3
    assert systems["ubuntu1404"].host == "d20"
    assert "Docker 20.10.5+dfsg1, not 1.5.0" in systems["ubuntu1404"].reason
    assert "overlay2 stands in for aufs" in systems["ubuntu1404"].reason
    for sid in ("centos66", "centos70"):
        assert systems[sid].host is None
        assert (
            systems[sid].reason
            == "no comparable host in this run: no probed host runs devicemapper"
        )
    assert not cmp.same_kernel  # one engine line


def test_only_the_sysv_devicemapper_host(tmp_path: Path) -> None:
    cmp = compare_to_baseline(load_entries([open_run(_article_run(tmp_path, ("c66",)))]))
    systems = _systems(cmp)
    assert systems["centos66"].host == "c66"
    c70 = systems["centos70"]
    assert c70.host is None
    assert c70.reason.startswith("no comparable host in this run: the closest, c66")
    assert "partners CentOS 6.6" in c70.reason
    ranked = c70.candidates[0]
    assert ranked["host"] == "c66" and ranked["paired_with"] == "CentOS 6.6"
    assert "not a private mount namespace" in ranked["reason"]
    assert systems["ubuntu1404"].reason.startswith("no comparable host in this run")


def test_same_kernel_2015_engine_vs_todays() -> None:
    cmp = compare_to_baseline(load_entries([open_run(ARTICLE)]))
    (g,) = cmp.same_kernel
    assert (g.kernel, g.old_engine, g.new_engine) == (
        "5.10.0-33-cloud-amd64",
        "1.5.0",
        "20.10.5+dfsg1",
    )
    assert [(h.name, h.side) for h in g.hosts] == [
        ("c66", "old"),
        ("c70", "old"),
        ("u14", "old"),
        ("d20", "new"),
    ]
    rows = {r.experiment: r for r in g.rows}
    pids = rows["processes-limited"]
    assert (
        pids.changed
        and pids.classes["c66"] == "not measured"
        and pids.classes["d20"] == "contained"
    )
    assert any(
        p["status"] == "arrived" and "--pids-limit" in p["what"] and p["since"] == "1.11"
        for p in pids.protections
    )
    storage = rows["storage-location"]
    assert storage.changed and "c70 contained -> d20 host affected" in storage.what_changed
    assert "daemon mount namespace private -> host" in storage.what_changed
    assert any(
        "MountFlags=slave" in p["text"] and p["effect"] == "exposes" for p in storage.protections
    )
    disk = rows["disk-limited"]
    texts = [p["text"] for p in disk.protections]
    assert any(
        t.startswith("already in Docker 1.5.0: devicemapper's base device size") for t in texts
    )
    assert any(
        "arrived in Docker 1.13" in t and "d20's /var/lib/docker is extfs" in t for t in texts
    )
    assert rows["processes"].what_changed == "no: host affected on every host"
    assert any(
        p["status"] == "note" and "swap" in p["text"] for p in rows["memory-limited"].protections
    )
    res = CliRunner().invoke(main, ["compare", str(ARTICLE), "--baseline", "article"])
    out = " ".join(res.output.split())
    assert (
        res.exit_code == 0
        and (
            "Same kernel, 2015 engine vs today's "
            "(kernel 5.10.0-33-cloud-amd64: Docker 1.5.0 vs 20.10.5+dfsg1)"
        )
        in out
    )
    assert "CentOS 6.6" in out and "CentOS 7.0" in out and "Ubuntu 14.04" in out


def test_same_kernel_between_two_newer_engines(tmp_path: Path) -> None:
    run = _article_run(tmp_path, ("d20",))
    newer = run / "hosts" / "t26.json"
    shutil.copy(run / "hosts" / "d20.json", newer)

    def t26(d: dict) -> None:  # type: ignore[type-arg]
        d["host"] = "t26"
        d["facts"]["docker"]["server_version"] = "26.1.5+dfsg1"

    _edit(newer, t26)
    (g,) = compare_to_baseline(load_entries([open_run(run)])).same_kernel
    assert g.heading == "Same kernel, older engine vs newer"
    assert (g.old_engine, g.new_engine) == ("20.10.5+dfsg1", "26.1.5+dfsg1")
    pids = {r.experiment: r for r in g.rows}["processes-limited"]
    assert not pids.changed and pids.what_changed == "no: contained on every host"
    # --pids-limit was there before 20.10: nothing arrived, nothing to claim
    assert not [p for p in pids.protections if p["status"] == "arrived"]


def test_same_kernel_across_two_runs(tmp_path: Path) -> None:
    old = _article_run(tmp_path / "a", ("c66", "c70", "u14"))
    new = _article_run(tmp_path / "b", ("d20",))
    for f in [new / "run.json", *(new / "hosts").glob("*.json")]:  # each file names its run
        _edit(f, lambda d: d.update(run_id="20261201-100000-b020"))
    cmp = compare_runs(old, new)
    (g,) = cmp.same_kernel
    assert [h.name for h in g.hosts] == ["c66", "c70", "u14", "d20"]
    res = CliRunner().invoke(main, ["compare", str(old), str(new), "--json"])
    doc = json.loads(res.stdout)
    assert doc["same_kernel"][0]["new_engine"] == "20.10.5+dfsg1"
    assert not compare_runs(RESOURCES, RESOURCES).same_kernel


def test_nothing_comparable_is_said_plainly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RESOURCES, run)
    for p in (run / "hosts").glob("*.json"):
        if p.stem != "bookworm":
            p.unlink()

    def fedora(d: dict) -> None:  # type: ignore[type-arg]
        d["facts"]["distribution"] = {"id": "arch", "pretty": "Arch Linux", "version": ""}
        d["facts"]["docker"]["storage_driver"] = "btrfs"

    _edit(run / "hosts" / "bookworm.json", fedora)
    cmp = compare_to_baseline(load_entries([open_run(run)]))
    assert not cmp.comparable
    assert cmp.summary().startswith("nothing in this run is comparable with the article")
    res = CliRunner().invoke(main, ["compare", str(run), "--baseline", "article"])
    assert res.exit_code == 0 and "nothing in this run is comparable" in " ".join(
        res.output.split()
    )


def test_cli_compare_baseline_json() -> None:
    res = CliRunner().invoke(main, ["compare", str(RESOURCES), "--baseline", "article", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["baseline"] == "article" and doc["comparable"] is True
    assert {h["host"]: h["system"] for h in doc["hosts"]}["centos7"] == "centos70"
    assert [(s["system"], s["host"], s["paired"]) for s in doc["systems"]] == [
        ("centos66", None, False),
        ("centos70", "centos7", True),
        ("ubuntu1404", "ubuntu1404", True),
    ]
    crit = {c["name"]: c for c in doc["systems"][1]["criteria"]}
    assert crit["storage driver"]["verdict"] == "match" and crit["storage driver"]["points"] == 4
    assert doc["same_kernel"] == []
    res = CliRunner().invoke(main, ["compare", str(ARTICLE), "--baseline", "article", "--json"])
    doc = json.loads(res.stdout)
    assert [s["host"] for s in doc["systems"]] == ["c66", "c70", "u14"]
    assert doc["same_kernel"][0]["rows"][0]["experiment"] == "storage-location"


# -- labctl runs ----------------------------------------------------------------------------
def test_runs_lists_runs_and_tolerates_broken_ones(tmp_path: Path) -> None:
    shutil.copytree(RESOURCES, tmp_path / "20261128-091500-c0de")
    shutil.copytree(SAMPLE, tmp_path / "20261127-120000-abcd")
    broken = tmp_path / "20261129-000000-dead"
    (broken / "hosts").mkdir(parents=True)
    (broken / "run.json").write_text("{not json")
    (tmp_path / "provision").mkdir()  # not a run: skipped
    rows = list_runs(tmp_path)
    assert [r.run_id for r in rows] == [
        "20261127-120000-abcd",
        "20261128-091500-c0de",
        "20261129-000000-dead",
    ]
    assert rows[1].status == "failed" and rows[1].failed_hosts == ["centos66"]
    assert rows[1].hosts == ["bookworm", "centos66", "centos7", "ubuntu1404"]
    assert rows[0].status == "unfinished"
    assert rows[2].status == "broken" and rows[2].note.startswith("run.json is unreadable")
    res = CliRunner().invoke(main, ["runs", str(tmp_path)])
    assert res.exit_code == 0 and "20261128-091500-c0de" in res.output
    assert "20261129-000000-dead: run.json is unreadable" in " ".join(res.output.split())
    res = CliRunner().invoke(main, ["runs", str(tmp_path), "--json"])
    assert [r["status"] for r in json.loads(res.stdout)] == ["unfinished", "failed", "broken"]
    res = CliRunner().invoke(main, ["runs", str(tmp_path / "missing")])
    assert res.exit_code == 5 and "is not a folder" in res.output
