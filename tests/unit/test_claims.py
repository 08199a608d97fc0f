"""The claims ledger's rules (labctl/report/baseline/claims.py): each outcome from a small host
record made here, then the ledger of a whole recorded run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labctl.report.baseline import compare_to_baseline, load_baseline
from labctl.report.baseline.claims import RULES, settle
from labctl.report.baseline.model import CONTRADICTED, NOT_SETTLED, REPRODUCED, UNTESTABLE
from labctl.report.model import HostEntry, load_entries, open_run
from labctl.results import HostResult

ARTICLE = Path(__file__).resolve().parent.parent / "data" / "run-article-1.5.0"
BASE = load_baseline()
CLAIMS = {c["id"]: c for c in BASE["claims"]}


def host(
    name: str,
    *,
    engine: str = "1.5.0",
    driver: str = "devicemapper",
    init: str = "",
    ns: str = "host",
    experiments: dict[str, dict[str, Any]] | None = None,
    commit: str = "a8a31ef",
    kernel: str = "",
) -> HostEntry:
    """A host entry with the facts the rules read and one ok record per experiment."""
    data = {
        "host": name,
        "status": "ok",
        "facts": {
            "docker": {
                "server_version": engine,
                "storage_driver": driver,
                "mount_namespace": ns,
                "git_commit": commit,
            },
            **({"kernel": kernel} if kernel else {}),
        },
        "labels": {"engine_init": init} if init else {},
        "experiments": [
            {"name": n, "status": "ok", "metrics": m, "verdict": m.pop("verdict", "")}
            for n, m in (experiments or {}).items()
        ],
    }
    return HostEntry(HostResult(name, Path(f"{name}.json"), data), "r1", name)


def ledger(hosts: list[HostEntry], partners: dict[str, str | None]) -> dict[str, Any]:
    return {c.id: c for c in settle(BASE, hosts, partners)}


def in_tree(flag: bool) -> dict[str, dict[str, Any]]:
    keys = ("in_host_tree", "host_can_read", "host_can_write")
    return {"storage-location": dict.fromkeys(keys, flag)}


def test_every_claim_names_a_rule_and_has_an_id() -> None:
    assert len(CLAIMS) == len(BASE["claims"]) >= 15
    for claim in BASE["claims"]:
        assert claim["rule"] in RULES, claim
        assert claim["text"]


def test_the_6_6_and_7_0_storage_findings_reproduced_and_contradicted() -> None:
    c66, c70 = host("c66", experiments=in_tree(True)), host("c70", experiments=in_tree(False))
    got = ledger([c66, c70], {"centos66": "c66", "centos70": "c70"})
    assert (got["S2"].verdict, got["S3"].verdict) == (REPRODUCED, REPRODUCED)
    assert "c66: storage-location.in_host_tree = True" in got["S2"].evidence
    # Docker's own SysV script on the 6.6 stand-in: its daemon hides the mounts
    c66d = host("c66d", init="sysvinit-docker", ns="private", experiments=in_tree(False))
    got = ledger([c66d, c70], {"centos66": "c66d", "centos70": "c70"})
    assert got["S2"].verdict == CONTRADICTED
    assert "private mount namespace (init sysvinit-docker)" in got["S2"].why
    assert ledger([c70], {"centos66": None, "centos70": "c70"})["S2"].verdict == NOT_SETTLED


def test_ubuntu_on_devicemapper_contradicts_the_article_under_the_upstart_job() -> None:
    u = host("u1404-dm", init="upstart", experiments=in_tree(True))
    got = ledger([u], {})["S6"]
    assert got.verdict == CONTRADICTED and "upstart job gives the daemon no mount" in got.why
    assert ledger([host("x", init="upstart", experiments=in_tree(False))], {})["S6"].verdict == (
        REPRODUCED
    )
    assert ledger([host("x", init="systemd")], {})["S6"].verdict == NOT_SETTLED


def test_era_facts_from_the_engines_hosts() -> None:
    dm: dict[str, dict[str, Any]] = {
        "disk-limited": {
            "base_device_size_bytes": 10 * 1024**3,
            "pool_file_size_bytes": 100 * 1024**3,
            "pool_file_allocated_before_bytes": 245_702_656,
        },
        "processes-limited": {"stop_reason": "not-available"},
        "memory": {"stop_reason": "cap", "landed_on_host_ratio": 0.98},
    }
    got = ledger([host("c66", experiments=dm)], {})
    for claim in ("T1", "S1", "E1", "E2", "E3", "E4"):
        assert got[claim].verdict == REPRODUCED, (claim, got[claim])
    assert "c66: disk-limited.pool_file_size_bytes = 107374182400" in got["S1"].evidence
    # a pool file that is not sparse, a 20 GiB base size, a build of another commit
    dm["disk-limited"].update(
        base_device_size_bytes=20 * 1024**3, pool_file_allocated_before_bytes=90 * 1024**3
    )
    got = ledger([host("c66", experiments=dm, commit="deadbee")], {})
    for claim in ("T1", "S1", "E1"):
        assert got[claim].verdict == CONTRADICTED, (claim, got[claim])
    # today's engine alone settles none of the 1.5.0 facts
    got = ledger([host("d20", engine="20.10.5", driver="overlay2")], {})
    assert {got[c].verdict for c in ("T1", "E1", "E2", "E3", "E4")} == {NOT_SETTLED}


def test_swap_accounting_off_reproduced_only_where_the_engine_warns() -> None:
    off = {"engine_swap_limit_warning": True, "memory_swap_limit_applied": False}
    on = {"engine_swap_limit_warning": False, "memory_swap_limit_applied": True}
    u = host("u14", driver="overlay", experiments={"memory-limited": off})
    assert ledger([u], {"ubuntu1404": "u14"})["E5"].verdict == REPRODUCED
    u = host("u14", driver="overlay", experiments={"memory-limited": on})
    got = ledger([u], {"ubuntu1404": "u14"})["E5"]
    assert got.verdict == CONTRADICTED and "swap accounting on" in got.why


@pytest.mark.parametrize("claim, check", [("S4", "storage-host-mount"),
                                          ("S7", "storage-driver-switch"),
                                          ("T3-centos", "drivers-available")])  # fmt: skip
def test_claims_that_need_a_check_this_run_did_not_run(claim: str, check: str) -> None:
    got = ledger([host("c70")], {"centos70": "c70"})[claim]
    assert got.verdict == NOT_SETTLED and check in got.why


def test_aufs_cannot_be_tested_here_and_the_stand_in_is_shown() -> None:
    u = host("u14", driver="overlay", experiments=in_tree(True))
    got = ledger([u], {"ubuntu1404": "u14"})["S5"]
    assert got.verdict == UNTESTABLE and "aufs" in got.why
    assert "u14 (overlay, the stand-in): storage-location.in_host_tree = True" in got.evidence


def test_the_ledger_of_a_recorded_run_is_in_the_comparison_and_its_json() -> None:
    cmp = compare_to_baseline(load_entries([open_run(ARTICLE)]))
    ids = [c.id for c in cmp.claims]
    assert ids == [c["id"] for c in BASE["claims"]]
    doc = cmp.to_dict()
    assert doc["claims"][ids.index("S2")]["verdict"] == REPRODUCED
    assert doc["claims_summary"].startswith("2 reproduced")


def test_table_3_from_the_drivers_the_stand_ins_start() -> None:
    def drivers(offered: str, default: str) -> dict[str, dict[str, Any]]:
        return {
            "drivers-available": {
                "drivers_available": offered,
                "default_driver": default,
                "candidates": "aufs,btrfs,devicemapper,overlay,vfs",
            }
        }

    c66 = host("c66", experiments=drivers("devicemapper,overlay,vfs", "devicemapper"))
    got = ledger([c66], {"centos66": "c66", "centos70": None})["T3-centos"]
    assert got.verdict == REPRODUCED and "c66 also offers overlay" in got.why
    c66 = host("c66", experiments=drivers("vfs", "vfs"))
    got = ledger([c66], {"centos66": "c66"})["T3-centos"]
    assert got.verdict == CONTRADICTED and "c66 lacks devicemapper" in got.why
    u14 = host(
        "u14", driver="overlay", experiments=drivers("devicemapper,overlay,vfs", "devicemapper")
    )
    got = ledger([u14], {"ubuntu1404": "u14"})["T3-ubuntu"]
    assert got.verdict == UNTESTABLE and got.why.startswith("aufs: no Debian kernel carries aufs")


def test_table_3_from_a_twin_of_the_partner_when_the_partner_did_not_run_it() -> None:
    measured = {
        "drivers-available": {
            "drivers_available": "devicemapper,vfs",
            "default_driver": "devicemapper",
            "candidates": "aufs,devicemapper,vfs",
        }
    }
    c66, twin = host("c66"), host("c66d", experiments=measured)
    for e in (c66, twin):
        e.result.data["facts"]["kernel"] = "5.10.0-32-cloud-amd64"
    got = ledger([c66, twin], {"centos66": "c66"})["T3-centos"]
    assert got.verdict == REPRODUCED and got.hosts == ["c66d"]


def test_the_hand_mount_on_the_7_0_partner_or_another_1_5_0_device_mapper_host() -> None:
    steps = {
        "mount_ok": True,
        "read_before_ok": True,
        "write_ok": False,
        "container_sees_write": False,
        "read_after_container_wrote_ok": False,
        "read_after_remount_ok": True,
    }
    c70 = host("c70", experiments={"storage-host-mount": dict(steps)})
    got = ledger([c70], {"centos70": "c70"})["S4"]
    assert got.verdict == REPRODUCED and got.hosts == ["c70"]
    assert "c70: storage-host-mount.write_ok = False" in got.evidence
    wrote = dict(steps, write_ok=True)
    c66 = host("c66", kernel="5.10.0-32", experiments={"storage-host-mount": wrote})
    got = ledger([host("c70"), c66], {"centos70": "c70"})["S4"]
    assert got.verdict == CONTRADICTED and got.hosts == ["c66"]
    assert got.why.startswith("not so here: the host's write succeeds (the container never sees")
    assert "(kernel 5.10.0-32 here; the article's CentOS 7.0 ran kernel 3.10.0-123" in got.why
    assert "as the article: the host reads the container's files, once the container" in got.why
    assert "only a remount reads what the container wrote" in got.why
    c70 = host("c70", experiments={"storage-host-mount": dict(wrote, journal_replayed=True)})
    got = ledger([c70], {"centos70": "c70"})["S4"]
    assert got.verdict == CONTRADICTED and "(kernel unknown here;" in got.why
    assert "replayed the journal of the container's live filesystem" in got.why
    u14 = host("u14", driver="overlay", experiments={"storage-host-mount": dict(steps)})
    assert ledger([u14], {"centos70": None})["S4"].verdict == NOT_SETTLED


def test_the_driver_switch_on_every_1_5_0_host_that_ran_it() -> None:
    switched = {
        "first_driver": "devicemapper",
        "second_driver": "vfs",
        "container_listed_after_switch": False,
        "container_starts_after_switch": False,
        "restored_reads_file": True,
    }
    c66d = host("c66d", experiments={"storage-driver-switch": dict(switched)})
    today = host("deb", engine="20.10.5", experiments={"storage-driver-switch": dict(switched)})
    got = ledger([c66d, today], {})["S7"]
    assert got.verdict == REPRODUCED and got.hosts == ["c66d"]
    assert "c66d: storage-driver-switch.container_listed_after_switch = False" in got.evidence
    assert got.why == (
        "c66d (devicemapper to vfs): the container is no longer listed, its image is gone "
        "too; c66d: export, delete the root, start and import give its file back"
    )
    usable = dict(switched, container_listed_after_switch=True, container_starts_after_switch=True)
    failed = dict(switched, restored_reads_file=False, restore_error="no such image")
    for metrics, said in ((usable, "still usable"), (failed, "(no such image)")):
        got = ledger([host("c66d", experiments={"storage-driver-switch": metrics})], {})["S7"]
        assert got.verdict == CONTRADICTED and said in got.why


def test_a_preset_run_ends_with_the_claims_in_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`labctl run --preset article` prints the ledger before the paths (it was only in the
    report files and `compare --baseline article`)."""
    from labctl.cli.common import print_claims

    print_claims(Path(__file__).parents[1] / "data" / "run-article-1.5.0")
    out = capsys.readouterr().out
    assert "Claims of the article: " in out
    assert "T1: Table 1" in out and "reproduced" in out
