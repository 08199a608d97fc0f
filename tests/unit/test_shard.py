"""--shard K/N (labctl/shard.py): the slices of an inventory, what run.json keeps of them, and
the report that merges the shards of one inventory as one run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labctl.errors import ConfigError, LabctlError
from labctl.hosts import HostRecord
from labctl.inventory import Inventory
from labctl.pipeline import sharded
from labctl.report.build import make_report
from labctl.shard import Shard, parse_shard, shard_record, shard_set

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "run-sample"
NAMES = [f"host{i:02d}" for i in range(11)]


def test_parse_shard_takes_k_of_n_and_names_a_bad_one() -> None:
    assert parse_shard("2/3") == Shard(2, 3)
    assert str(parse_shard(" 1 / 1 ")) == "1/1"
    for bad in ("0/2", "3/2", "1/0", "2", "a/b", "1/2/3", ""):
        with pytest.raises(ConfigError) as err:
            parse_shard(bad)
        assert "--shard" in err.value.message


def test_the_shards_are_disjoint_cover_every_host_and_differ_by_one_at_most() -> None:
    for n in (1, 2, 3, 4, 11):
        slices = [Shard(k, n).select(NAMES) for k in range(1, n + 1)]
        assert sorted(h for s in slices for h in s) == sorted(NAMES)
        assert max(map(len, slices)) - min(map(len, slices)) <= 1


def test_a_shard_depends_on_the_host_names_only_not_their_order() -> None:
    shuffled = NAMES[5:] + NAMES[:5]
    assert Shard(2, 3).select(shuffled) == Shard(2, 3).select(NAMES) == sorted(NAMES)[1::3]


def test_sharded_cuts_hosts_and_their_inventory_problems_and_refuses_an_empty_shard() -> None:
    hosts = [HostRecord(n, "127.0.0.1") for n in ("a", "b", "c")]
    problem = LabctlError("d: ansible_port 'x' is not a TCP port", host="d")
    whole = LabctlError("the file has a warning")
    inv = Inventory(Path("inv.yml"), hosts, [problem, whole])
    first, meta = sharded(inv, Shard(1, 2))  # a, c of a, b, c, d
    assert [h.name for h in first.hosts] == ["a", "c"]
    assert first.problems == [whole]
    second, meta2 = sharded(inv, Shard(2, 2))
    assert [h.name for h in second.hosts] == ["b"] and problem in second.problems
    assert meta["shard"]["hosts_digest"] == meta2["shard"]["hosts_digest"]
    assert meta2["shard"]["hosts"] == ["b", "d"] and meta2["shard"]["of_hosts"] == 4
    with pytest.raises(ConfigError, match="no host falls in this shard"):
        sharded(inv, Shard(5, 5))


def test_shard_set_knows_the_shards_of_one_inventory_and_nothing_else() -> None:
    one, two, three = (shard_record(Shard(k, 3), NAMES) for k in (1, 2, 3))
    assert shard_set([{"shard": one}, {"shard": three}]).missing == [2]  # type: ignore[union-attr]
    assert shard_set([{"shard": r} for r in (one, two, three)]).missing == []  # type: ignore[union-attr]
    other = shard_record(Shard(2, 3), NAMES[:-1])  # another host list
    assert shard_set([{"shard": one}, {"shard": other}]) is None
    assert shard_set([{"shard": one}, {"shard": one}]) is None  # the same shard twice
    assert shard_set([{"shard": one}, {}]) is None  # a run that is no shard
    assert shard_set([{"shard": one}]) is None  # one run is no merge


def _shard_run(tmp: Path, shard: Shard, names: list[str], run_id: str) -> Path:
    """A run folder of the sample's hosts that fall in ``shard`` of ``names``."""
    run = tmp / run_id
    (run / "hosts").mkdir(parents=True)
    meta = json.loads((SAMPLE / "run.json").read_text())
    meta.update(run_id=run_id, shard=shard_record(shard, names), status="ok")
    (run / "run.json").write_text(json.dumps(meta))
    for host in shard.select(names):
        data = json.loads((SAMPLE / "hosts" / f"{host}.json").read_text())
        if "run_id" in data:
            data["run_id"] = run_id  # a host file names its run
        (run / "hosts" / f"{host}.json").write_text(json.dumps(data))
    return run


def _columns(matrix: Path) -> list[str]:
    with matrix.open(newline="") as fh:
        return [c.split(" (")[0] for c in next(csv.reader(fh))[1:]]


def test_the_shards_of_one_inventory_merge_as_one_run(tmp_path: Path) -> None:
    names = ["bookworm", "centos7", "trixie"]
    runs = [_shard_run(tmp_path, Shard(k, 2), names, f"2026120{k}-000000-000{k}") for k in (1, 2)]
    out = make_report(runs, tmp_path / "merged", formats=["csv"], plots=False)
    assert _columns(out.outputs["matrix.csv"]) == names  # every host, no host@run
    # trixie was unreachable: said as in one run, without the run id in front
    assert [p.split(":")[0] for p in out.problems] == ["trixie"]


def test_a_missing_shard_is_said_and_copies_of_one_run_keep_host_at_run(tmp_path: Path) -> None:
    names = ["bookworm", "centos7", "trixie"]
    runs = [_shard_run(tmp_path, Shard(k, 3), names, f"2026120{k}-000000-000{k}") for k in (1, 3)]
    out = make_report(runs, tmp_path / "merged", formats=["csv"], plots=False)
    assert _columns(out.outputs["matrix.csv"]) == ["bookworm", "trixie"]
    assert any(
        p.startswith("shard 2/3 of this inventory is not in the report") for p in out.problems
    )
    again = _shard_run(tmp_path / "b", Shard(1, 3), names, "20261209-000000-0009")
    out = make_report([runs[0], again], tmp_path / "m2", formats=["csv"], plots=False)
    assert _columns(out.outputs["matrix.csv"]) == [
        "bookworm@20261201-000000-0001", "bookworm@20261209-000000-0009"
    ]  # fmt: skip
