"""The matrix: one column per host (labelled), one row per fact or value, failures kept."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from labctl.report.build import ReportOutcome, make_report
from labctl.report.frame import load_frame, matrix_frame, verdicts_frame
from labctl.report.matrix import asked_mismatches, engine_label, format_value
from labctl.results import HostResult, RunDir

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "run-sample"
ARTICLE = SAMPLE.parent / "run-article-1.5.0"


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    dst = tmp_path / "run"
    shutil.copytree(SAMPLE, dst)
    return RunDir(dst)


def write_report(run: RunDir) -> ReportOutcome:
    """The CSVs of one run folder, as ``labctl report --format csv`` writes them."""
    return make_report([run.path], formats=("csv",))


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return {row["metric"]: row for row in reader}


def test_format_value() -> None:
    assert format_value(True) == "true" and format_value(False) == "false"
    assert format_value(None) == ""
    assert format_value(["a", 1]) == "a; 1"
    assert format_value(0.1 + 0.2) == "0.3"
    assert format_value({"b": 1, "a": None}) == "a=; b=1"


def test_matrix_columns_are_labelled_hosts_sorted_by_name(run: RunDir) -> None:
    matrix = matrix_frame(load_frame([run.path]))
    cols = list(matrix.columns)
    assert matrix.index.name == "metric"
    assert cols[0] == (
        "bookworm (Debian GNU/Linux 12 (bookworm) | 6.1.0-test | docker 20.10.24+dfsg1 | overlay2)"
    )
    assert cols[1] == "bullseye (failed)"
    assert cols[2].startswith("centos7 (CentOS Linux 7 (Core) | 3.10.0-123.el7.x86_64 | docker 1.5")
    assert cols[3] == "trixie (failed)"


def test_matrix_rows_hold_facts_and_storage_answers(run: RunDir) -> None:
    rep = write_report(run)
    rows = _rows(rep.outputs["matrix.csv"])
    book = next(c for c in rows["status"] if c.startswith("bookworm"))
    cent = next(c for c in rows["status"] if c.startswith("centos7"))
    trix = next(c for c in rows["status"] if c.startswith("trixie"))
    bull = next(c for c in rows["status"] if c.startswith("bullseye"))
    assert rows["host.kernel"][book] == "6.1.0-test"
    assert rows["docker.storage_driver"][cent] == "devicemapper"
    assert rows["storage-location.host_path"][book].startswith("/var/lib/docker/overlay2/")
    assert rows["storage-location.host_can_write"][book] == "true"
    assert rows["storage-location.container_root_is_block_device"][cent] == "true"
    assert rows["storage-location.host_path"][cent] == ""
    # failed hosts keep their column, with the reason and no values
    assert rows["status"][trix] == "error"
    assert "Connection refused" in rows["error"][trix]
    assert rows["host.kernel"][trix] == ""
    assert rows["status"][bull] == "error" and "truncated" in rows["error"][bull]
    assert {e.host for e in rep.data.failed} == {"bullseye", "trixie"}


def test_fact_rows_come_first_in_a_stable_order(run: RunDir) -> None:
    matrix_csv = write_report(run).outputs["matrix.csv"]
    first = matrix_csv.read_text()
    metrics = list(_rows(matrix_csv))
    assert metrics[:2] == ["status", "error"]
    assert metrics.index("host.kernel") < metrics.index("docker.server_version")
    assert metrics.index("limits.pid_max") < metrics.index("storage-location.status")
    # rendering twice gives the same bytes (diffs cleanly)
    assert write_report(run).outputs["matrix.csv"].read_text() == first


def test_verdicts(run: RunDir) -> None:
    frame = verdicts_frame(load_frame([run.path]))
    rows = frame.to_dict("records")
    assert {r["host"] for r in rows} == {"bookworm", "bullseye", "centos7", "trixie"}
    cent = next(r for r in rows if r["host"] == "centos7")
    assert cent["experiment"] == "storage-location" and "separate block device" in cent["verdict"]
    trix = next(r for r in rows if r["host"] == "trixie")
    assert trix["status"] == "error" and "Connection refused" in trix["verdict"]


def test_empty_run_gives_an_empty_matrix(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    run.write_run(experiments=[])
    rep = write_report(run)
    assert rep.data.entries == [] and rep.exit_code == 0
    assert rep.outputs["matrix.csv"].read_text() == "metric\n"
    assert (run.path / "results.csv").read_text() == "run,host,experiment,metric,value,unit\n"
    assert (run.path / "verdicts.csv").read_text().startswith("experiment,host,engine,")


def test_columns_and_verdicts_name_the_engine_that_answered(tmp_path: Path) -> None:
    dst = tmp_path / "article"
    shutil.copytree(ARTICLE, dst)
    c70 = dst / "hosts" / "c70.json"
    data = json.loads(c70.read_text())
    data["labels"]["storage_driver"] = "overlay2"  # asked for, not what answered
    c70.write_text(json.dumps(data))
    rep = write_report(RunDir(dst))
    rows = _rows(rep.outputs["matrix.csv"])
    cols = [c for c in rows["status"] if c != "metric"]
    col = next(c for c in cols if c.startswith("c70"))
    assert col.endswith("| 5.10.0-33-cloud-amd64 | docker 1.5.0 | devicemapper)")
    assert next(c for c in cols if c.startswith("u14")).endswith("docker 1.5.0 | overlay)")
    assert "lab.storage_driver" not in rows  # the ask is named as one
    assert rows["lab.storage_driver (asked)"][col] == "overlay2"
    assert rows["docker.storage_driver"][col] == "devicemapper"
    assert rows["docker.as_asked"][col] == (
        "no: storage driver overlay2 asked, the engine runs devicemapper"
    )
    c66 = next(c for c in cols if c.startswith("c66"))
    assert rows["docker.as_asked"][c66] == "yes"
    assert rows["lab.engine (asked)"][c66] == "1.5.0"
    with rep.outputs["verdicts.csv"].open(newline="") as fh:
        verdicts = list(csv.DictReader(fh))
    engines = {r["host"]: r["engine"] for r in verdicts}
    assert engines["c70"] == "docker 1.5.0 | devicemapper"
    assert engines["d20"] == "docker 20.10.5+dfsg1 | overlay2"


def test_a_label_stands_in_only_where_the_engine_never_said() -> None:
    facts = {"kernel": "5.10.0-33-cloud-amd64", "docker": {"error": "no engine"}}
    labels = {"engine": "1.5.0", "storage_driver": "devicemapper"}
    r = HostResult("c70", Path("c70.json"), data={"facts": facts, "labels": labels})
    assert engine_label(r) == "docker 1.5.0 asked | devicemapper asked"
    assert asked_mismatches(r) == []
