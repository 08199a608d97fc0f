"""The report's tidy pandas frame (labctl.report.frame): what it holds, its pivots, and the CSVs
``labctl report`` writes through it, byte for byte as before the frame (golden files)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.errors import ConfigError, ResultError
from labctl.report.build import make_report
from labctl.report.frame import (
    COLUMNS,
    load_frame,
    matrix_frame,
    results_frame,
    verdicts_frame,
    write_csvs,
)
from labctl.report.matrix import KINDS
from tests.manyhosts import corner_case_run, many_hosts_run

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "run-sample"
RESOURCES = DATA / "run-resources"
ARTICLE = DATA / "run-article-1.5.0"
#: matrix.csv, results.csv and verdicts.csv of each case, as the csv-only writer wrote them
#: before the frame (regenerate on purpose only: LABCTL_WRITE_GOLDEN=1, then review the diff)
GOLDEN = DATA / "report-golden"
CSVS = ("matrix.csv", "results.csv", "verdicts.csv")


def _case_runs(case: str, tmp: Path) -> list[Path]:
    if case == "sample":
        return [SAMPLE]
    if case == "article":
        return [ARTICLE]
    corner = corner_case_run(tmp)
    return [corner] if case == "corner" else [RESOURCES, SAMPLE, corner]


@pytest.mark.parametrize("via", ["report", "frame"])
@pytest.mark.parametrize("case", ["sample", "article", "corner", "merged"])
def test_the_csvs_are_byte_identical_to_the_golden_files(
    case: str, via: str, tmp_path: Path
) -> None:
    """``labctl report`` (its pandas-free pivots, .tables) and the frame's own pivots
    (frame.write_csvs, what a notebook writes) both give the golden bytes."""
    out = tmp_path / "out"
    runs = _case_runs(case, tmp_path)
    report = make_report(runs, out, formats=("csv",))
    if via == "frame":
        for name in CSVS:
            (out / name).unlink()
        write_csvs(load_frame(runs), out, report.data.experiments)
    for name in CSVS:
        got = (out / name).read_bytes()
        if os.environ.get("LABCTL_WRITE_GOLDEN") == "1" and via == "report":
            (GOLDEN / case).mkdir(parents=True, exist_ok=True)
            (GOLDEN / case / name).write_bytes(got)
        assert got == (GOLDEN / case / name).read_bytes(), f"{case}/{name} via {via}"


def test_the_frames_pivots_match_the_reports_csvs_on_many_hosts(tmp_path: Path) -> None:
    run = many_hosts_run(tmp_path, 60)
    report = make_report([run], tmp_path / "report", formats=("csv",))
    write_csvs(load_frame([run]), tmp_path / "frame", report.data.experiments)
    for name in CSVS:
        assert (tmp_path / "frame" / name).read_bytes() == (tmp_path / "report" / name).read_bytes()


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_the_frame_has_a_row_per_run_host_experiment_metric_with_the_hosts_labels() -> None:
    frame = load_frame([ARTICLE])
    assert list(frame.columns) == COLUMNS
    assert list(frame["kind"].cat.categories) == list(KINDS)
    assert not frame.duplicated(["run", "host", "experiment", "metric"]).any()
    hosts = frame.drop_duplicates("host").set_index("host")
    assert list(hosts.index) == ["c66", "c70", "d20", "u14"]  # sorted by name
    c66 = hosts.loc["c66"]
    assert c66["distribution"] == "Debian GNU/Linux 11 (bullseye)"
    assert (c66["engine_version"], c66["storage_driver"]) == ("1.5.0", "devicemapper")
    assert (c66["init"], c66["cgroup_version"]) == ("sysvinit", "1")
    assert c66["kernel"].startswith("5.10.0") and c66["engine"] == "docker 1.5.0 | devicemapper"
    assert hosts.loc["d20", "init"] == "distro" and hosts.loc["u14", "storage_driver"] == "overlay"
    # the labels ride on every row of their host, so a filter keeps them
    disk = frame[(frame["experiment"] == "disk") & (frame["kind"] == "metric")]
    assert set(disk["storage_driver"]) == {"devicemapper", "overlay", "overlay2"}
    assert frame["run"].nunique() == 1
    # None where a host has nothing to say: the matrix shows an empty cell, results.csv no row
    no_error = frame[
        (frame["host"] == "c66") & (frame["metric"] == "error") & (frame["kind"] == "host")
    ]
    assert no_error["value"].isna().all()


def test_the_csvs_are_the_frames_rows_and_pivots(tmp_path: Path) -> None:
    runs = [RESOURCES, SAMPLE, corner_case_run(tmp_path)]
    out = make_report(runs, tmp_path / "out", formats=("csv",))
    frame = load_frame(runs)
    results = results_frame(frame)
    assert [list(r) for r in results.itertuples(index=False)] == _csv(
        tmp_path / "out" / "results.csv"
    )[1:]
    matrix = matrix_frame(frame)
    cells = matrix.to_numpy().tolist()
    got = [["metric", *matrix.columns]] + [
        [k, *v] for k, v in zip(matrix.index, cells, strict=True)
    ]
    assert got == _csv(tmp_path / "out" / "matrix.csv")
    verdicts = verdicts_frame(frame, out.data.experiments)
    assert [list(verdicts.columns), *verdicts.to_numpy().tolist()] == _csv(
        tmp_path / "out" / "verdicts.csv"
    )
    # merged runs: a host name two runs share is host@run, its run on each row
    both = frame[frame["host"].astype(str).str.startswith("bookworm@")]
    assert (
        set(both["host"]) == {f"bookworm@{r}" for r in set(both["run"])}
        and len(set(both["run"])) == 2
    )


def test_a_damaged_or_foreign_host_file_is_the_reports_one_line(tmp_path: Path) -> None:
    run = corner_case_run(tmp_path)
    problems = make_report([run], tmp_path / "out", formats=("csv",)).problems
    frame = load_frame([run])
    host_rows = frame[frame["kind"] == "host"].pivot(index="host", columns="metric", values="value")
    failed = host_rows[host_rows["status"] == "error"]
    assert list(failed.index) == ["b-failed", "c-damaged", "d-foreign"]
    for host, row in failed.iterrows():
        line = row["error"] if row["error"].startswith(f"{host}:") else f"{host}: {row['error']}"
        assert line in problems
    assert "truncated JSON" in failed.loc["c-damaged", "error"]
    assert "names host 'centos7'" in failed.loc["d-foreign", "error"]
    assert failed.loc["c-damaged", "error_kind"] == "result"


def test_load_frame_wants_run_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run folder"):
        load_frame([])
    with pytest.raises(ResultError, match=r"has no run\.json"):
        load_frame([tmp_path])


def test_parquet_holds_the_frame(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = make_report([RESOURCES, SAMPLE], tmp_path / "out", formats=("parquet",))
    path = out.outputs["results.parquet"]
    assert path == tmp_path / "out" / "results.parquet"
    back = pd.read_parquet(path)
    frame = load_frame([RESOURCES, SAMPLE])
    assert list(back.columns) == COLUMNS and len(back) == len(frame)
    for name in COLUMNS:  # the same values, None read back as pandas' NA
        held = back[name].astype(object)
        assert held.isna().tolist() == frame[name].isna().tolist(), name
        assert held.dropna().tolist() == frame[name].dropna().astype(object).tolist(), name
    assert not list((tmp_path / "out").glob("*.csv"))  # only what was asked


def test_parquet_without_pyarrow_is_one_line_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(  # as if pyarrow were not installed
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyarrow" else real(name, *a),
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["report", str(RESOURCES), "--out", str(out), "--format", "csv,parquet"]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--format parquet needs pyarrow, which is not installed" in res.output
    assert "pip install 'labctl[parquet]'" in res.output
    assert not out.exists()


def test_a_run_without_checks_still_names_its_failed_hosts(tmp_path: Path) -> None:
    run = tmp_path / "20261128-091500-c0de"
    (run / "hosts").mkdir(parents=True)
    (run / "run.json").write_text('{"run_id": "20261128-091500-c0de", "experiments": []}')
    for name in ("centos66.json", "centos7.json"):
        doc = json.loads((RESOURCES / "hosts" / name).read_text())
        doc["experiments"] = []
        (run / "hosts" / name).write_text(json.dumps(doc))
    report = make_report([run], tmp_path / "report", formats=("csv",))
    write_csvs(load_frame([run]), tmp_path / "frame", report.data.experiments)
    for out in ("report", "frame"):
        rows = _csv(tmp_path / out / "verdicts.csv")
        assert rows[1:] == [["", "centos66", "", "error", report.problems[0], "error", run.name]]
        assert (tmp_path / out / "matrix.csv").read_bytes() == (
            tmp_path / "report" / "matrix.csv"
        ).read_bytes()
