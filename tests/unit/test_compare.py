"""Comparing two runs check by check, a run against the 2015 study, and listing runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from labctl.baseline import compare_to_baseline, kernel_line, load_baseline
from labctl.cli import main
from labctl.compare import compare_runs, same_value
from labctl.errors import ConfigError
from labctl.report.model import load_entries, open_run
from labctl.report.runs import list_runs

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "run-sample"
RESOURCES = DATA / "run-resources"


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


def test_compare_with_the_article() -> None:
    cmp = compare_to_baseline(load_entries([open_run(RESOURCES)]))
    hosts = {h.host: h for h in cmp.hosts}
    c7 = hosts["centos7"]
    assert (c7.system, c7.level) == ("centos70", "driver+family")
    rows = {r.item: r for r in c7.rows}
    assert rows["kernel"].agrees == "match" and rows["Docker version"].agrees == "match"
    assert rows["files in the host's tree"].agrees == "match"
    assert rows["host can change container files"].run == "no"
    assert rows["disk (no result in the article)"].agrees == "no baseline"
    u = hosts["ubuntu1404"]
    assert (u.system, u.level) == ("ubuntu1404", "driver+family")
    assert {r.item: r.agrees for r in u.rows}["host can read container files"] == "match"
    b = hosts["bookworm"]
    assert (b.system, b.level) == ("ubuntu1404", "family")
    brows = {r.item: r for r in b.rows}
    assert brows["storage driver"].agrees == "differs"
    assert "storage driver overlay2 (article aufs)" in brows["host can change container files"].why
    assert hosts["centos66"].level == "none" and not hosts["centos66"].rows
    assert cmp.comparable and "3 of 4 hosts comparable" in cmp.summary()


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
    rows = {r.item: r for r in next(h for h in cmp.hosts if h.host == "centos7").rows}
    assert rows["kernel"].agrees == "partial"  # same 3.10 line
    read = rows["host can read container files"]
    assert read.agrees == "differs" and read.why == "Docker 1.13.1 (article 1.5.0)"


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
