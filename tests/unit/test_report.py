"""Reports on stored results folders: every format, the merge, classes, units, escaping."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.errors import ConfigError, ResultError
from labctl.report.build import ReportOutcome, make_host_report, make_report
from labctl.report.classify import classify, series_unit, short_verdict, unit_of
from labctl.report.formats import parse_formats

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "run-sample"
RESOURCES = DATA / "run-resources"
ARTICLE = DATA / "run-article-1.5.0"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(RESOURCES, dst)
    return dst


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReportOutcome]:
    """One report in every format, with every plot (drawing is the slow part: done once)."""
    dst = tmp_path_factory.mktemp("full") / "run"
    shutil.copytree(RESOURCES, dst)
    return dst, make_report([dst], formats=("csv", "md", "html", "json"))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# -- classes and units ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "failed", "cls"),
    [
        (None, True, "error"),
        (None, False, "not-measured"),
        ({"status": "skipped", "metrics": {}}, False, "not-measured"),
        ({"status": "error", "metrics": {}}, False, "error"),
        (
            {"status": "ok", "metrics": {"host_affected": False, "host_write_ok": False}},
            0,
            "contained",
        ),
        (
            {"status": "ok", "metrics": {"host_write_ok": False, "landed_on_host_ratio": 0}},
            0,
            "affected",
        ),
        (
            {"status": "ok", "metrics": {"stop_reason": "floor", "container_started": False}},
            0,
            "not-measured",
        ),
        ({"status": "ok", "metrics": {"stop_reason": "container-limit"}}, False, "contained"),
        ({"status": "ok", "metrics": {"stop_reason": "oom-kill"}}, False, "affected"),
        ({"status": "ok", "metrics": {"stop_reason": "eagain"}}, False, "affected"),
        (
            {
                "status": "ok",
                "metrics": {
                    "stop_reason": "cap",
                    "limit_applied": True,
                    "landed_on_host_ratio": 1.0,
                },
            },
            0,
            "contained",
        ),
        (
            {"status": "ok", "metrics": {"stop_reason": "cap", "landed_on_host_ratio": 1.0}},
            0,
            "affected",
        ),
        (  # a limited container cut short by the agent's time: its limit never reached
            {
                "status": "ok",
                "metrics": {
                    "stop_reason": "timeout",
                    "limit_applied": True,
                    "landed_on_host_ratio": 0.95,
                },
            },
            0,
            "not-measured",
        ),
        (
            {"status": "ok", "metrics": {"stop_reason": "enospc", "landed_on_host_ratio": 0.01}},
            0,
            "contained",
        ),
        (
            {"status": "ok", "metrics": {"host_can_read": True, "host_can_write": True}},
            0,
            "affected",
        ),
        (
            {"status": "ok", "metrics": {"host_can_read": False, "host_can_write": False}},
            0,
            "contained",
        ),
        (
            {"status": "ok", "metrics": {}, "verdict": "contained: its own limit"},
            False,
            "contained",
        ),
        ({"status": "ok", "metrics": {}, "verdict": "not run: the floor"}, False, "not-measured"),
        ({"status": "ok", "metrics": {}, "verdict": "something new"}, False, "unclassified"),
    ],
)
def test_classify(record: dict | None, failed: bool, cls: str) -> None:  # type: ignore[type-arg]
    assert classify(record, host_failed=bool(failed)).cls == cls


def test_units_from_metric_names() -> None:
    assert unit_of("written_bytes", 1) == "bytes"
    assert unit_of("host_free_bytes_min", 1) == "bytes"
    assert unit_of("host_mem_available_delta", 1) == "bytes"
    assert unit_of("limits.mem_total_bytes", 1) == "bytes"
    assert unit_of("fill_rate_bytes_per_s", 1.0) == "bytes/s"
    assert unit_of("fork_rate_per_s", 1.0) == "1/s"
    assert unit_of("watch_s", 1.0) == "s"
    assert unit_of("landed_on_host_ratio", 1.0) == "ratio"
    assert unit_of("files_created", 1) == "count"
    assert unit_of("host_free_inodes_min", 1) == "count"
    assert unit_of("host_pid_max", 1) == "count"
    assert unit_of("oom_killed", True) == "bool"
    assert unit_of("stop_reason", "cap") == ""
    assert series_unit("container", {"name": "inodes", "metrics": {}}) == "count"
    assert series_unit("container", {"name": "x", "metrics": {"written_bytes": 1}}) == "bytes"
    assert series_unit("mem_available", {}) == "bytes"


def test_short_verdict() -> None:
    assert short_verdict("contained: the container was OOM-killed") == "contained"
    assert short_verdict("stopped at the cap of 256 MiB: every byte").startswith("stopped at")
    assert len(short_verdict("x" * 200)) == 60


def test_parse_formats() -> None:
    assert parse_formats(()) == ("csv", "md", "html")
    assert parse_formats(("csv,md", "json", "csv")) == ("csv", "md", "json")
    assert parse_formats(("all",)) == ("csv", "md", "html", "json", "series")
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        parse_formats(("pdf",))


# -- each format on a stored results folder -------------------------------------------------
def test_csv_exports(run: Path) -> None:
    out = make_report([run], formats=("csv",))
    assert set(out.outputs) == {"matrix.csv", "results.csv", "verdicts.csv"}
    assert "report.html" not in out.outputs and not (run / "report.html").exists()
    matrix = _csv(run / "matrix.csv")
    cols = list(matrix[0])
    assert cols[0] == "metric"
    assert cols[1].startswith("bookworm (Debian GNU/Linux 12")
    assert cols[2] == "centos66 (failed)"
    assert cols[3].startswith(
        "centos7 (CentOS Linux 7 (Core) | 3.10.0-123.el7.x86_64 | docker 1.5.0"
    )
    rows = {r["metric"]: r for r in matrix}
    assert rows["disk.written_bytes"][cols[3]] == "268435456"
    # long table: units derived from the metric names, stable order
    long = _csv(run / "results.csv")
    assert list(long[0]) == ["run", "host", "experiment", "metric", "value", "unit"]
    by = {(r["host"], r["experiment"], r["metric"]): r for r in long}
    assert by[("centos7", "disk", "written_bytes")]["unit"] == "bytes"
    assert by[("centos7", "disk", "landed_on_host_ratio")]["unit"] == "ratio"
    assert by[("centos7", "inodes", "files_created")]["unit"] == "count"
    assert by[("centos7", "disk", "class")]["value"] == "affected"
    assert by[("centos7", "", "host.kernel")]["value"] == "3.10.0-123.el7.x86_64"
    assert by[("centos66", "", "status")]["value"] == "error"
    assert {r["run"] for r in long} == {"20261128-091500-c0de"}
    assert [r["host"] for r in long] == sorted(r["host"] for r in long)
    # verdicts: a full grid with classes
    verdicts = _csv(run / "verdicts.csv")
    assert len(verdicts) == 4 * 8
    grid = {(r["host"], r["experiment"]): r for r in verdicts}
    assert grid[("centos7", "inodes")]["class"] == "contained"
    assert grid[("ubuntu1404", "inodes")]["class"] == "affected"
    assert grid[("centos7", "processes-limited")]["class"] == "not-measured"
    assert grid[("ubuntu1404", "processes")]["class"] == "error"
    assert (
        grid[("bookworm", "memory")]["status"] == ""
        and "not run" in grid[("bookworm", "memory")]["verdict"]
    )
    assert grid[("centos66", "disk")]["class"] == "error"
    assert "authentication failed" in grid[("centos66", "disk")]["verdict"]
    # rendering twice gives the same bytes
    first = {p: (run / p).read_bytes() for p in ("matrix.csv", "results.csv", "verdicts.csv")}
    make_report([run], formats=("csv",))
    assert first == {p: (run / p).read_bytes() for p in first}


def test_markdown_report(full: tuple[Path, ReportOutcome]) -> None:
    run, out = full
    md = (run / "report.md").read_text()
    assert md.startswith("# labctl report: 20261128-091500-c0de")
    assert "## Verdict matrix" in md and "## Storage (the study's Table 3)" in md
    assert "| centos7 | 🟢 contained: separate block device |" in md
    assert "| ubuntu1404 | aufs | extfs |" in md
    assert "/var/lib/docker/aufs/diff/\\<id\\>/" in md  # < > escaped for Markdown
    assert "### CentOS 7.0 ↔ centos7 (score" in md
    assert "### CentOS 6.6: no comparable host" in md
    assert "## How verdict classes are decided" in md
    # figures across hosts: the verdict map, then one per experiment with series
    plots = sorted(p.name for p in (run / "plots").iterdir())
    assert len(plots) == len(out.data.plots) == 8
    assert "verdicts.png" in plots and "series--disk.png" in plots
    assert md.index("(plots/verdicts.png)") < md.index("(plots/series--disk.png)")
    assert "3 of 3 hosts with series drawn" in md
    assert "`labctl report RUN --host NAME`" in md
    assert (run / "plots" / "series--disk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_the_article_preset(tmp_path: Path) -> None:
    """The 2015 engine's hosts: pairs, stand-ins, the same-kernel table, asked vs answered."""
    run = tmp_path / "article"
    shutil.copytree(ARTICLE, run)
    c70 = run / "hosts" / "c70.json"
    data = json.loads(c70.read_text())
    data["labels"]["storage_driver"] = "overlay2"  # the inventory asked for another driver
    c70.write_text(json.dumps(data))
    make_report([run], formats=("md", "html"), plots=False)
    md = (run / "report.md").read_text()
    assert "### CentOS 7.0 ↔ c70 (score" in md and "### Ubuntu 14.04 ↔ u14 (score" in md
    assert "| u14 | overlay (overlay stands in for aufs, which Debian kernels no longer carry" in md
    assert "⚠ **c70**: storage driver overlay2 asked, the engine runs devicemapper" in md
    assert "## Same kernel, 2015 engine vs today's (kernel 5.10.0-33-cloud-amd64" in md
    assert "| processes-limited | not measured | not measured | not measured | contained |" in md
    html = (run / "report.html").read_text()
    assert "Same kernel, 2015 engine vs today&#39;s" in html
    assert "arrived in Docker 1.11: --pids-limit" in html
    assert "overlay stands in for aufs" in html


def test_html_report_is_self_contained(full: tuple[Path, ReportOutcome]) -> None:
    run, _out = full
    html = (run / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("data:image/png;base64,") == 8
    assert 'alt="verdict classes across hosts"' in html and 'alt="disk across hosts"' in html
    assert 'class="v affected"' in html and 'class="v contained"' in html
    assert 'class="v not-measured"' in html and 'class="v error"' in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert "Beside the 2015 study" in html and "CentOS 7.0" in html
    assert "error: the host failed (auth)" in html


def test_json_report(run: Path) -> None:
    out = make_report([run], formats=("json",))
    doc = json.loads((run / "report.json").read_text())
    assert doc == json.loads(json.dumps(out.document))
    assert doc["kind"] == "labctl-report" and doc["runs"][0]["run_id"] == "20261128-091500-c0de"
    assert doc["experiments"][:2] == ["storage-location", "disk"]
    hosts = {h["name"]: h for h in doc["hosts"]}
    c7 = {x["name"]: x for x in hosts["centos7"]["experiments"]}
    assert c7["disk"]["class"] == "affected" and c7["disk"]["metrics"]["written_bytes"] == 268435456
    assert c7["disk"]["series_keys"] == ["container", "free_bytes", "free_bytes_root", "t"]
    assert "series" not in c7["disk"] and "t" not in c7["disk"]["metrics"]
    assert hosts["centos66"]["status"] == "error"
    assert doc["summary"]["failed_hosts"] == ["centos66"]
    assert doc["summary"]["verdicts"]["affected"] == 11
    assert doc["baseline"]["comparable"] is True
    assert doc["problems"] == [hosts["centos66"]["error"]["message"]]


def test_max_plots_and_no_plots(run: Path) -> None:
    """--max-plots caps the hosts drawn per experiment figure; the rest are counted."""
    out = make_report([run], formats=("html",), max_plots=1)
    assert len(out.data.plots) == 8 and out.data.plots_left_out == 14 - 7
    html = (run / "report.html").read_text()
    assert "7 more host series were not drawn" in html
    assert "1 of 3 hosts with series drawn (evenly spread by host name, --max-plots 1)" in html
    out = make_report([run], formats=("html",), max_plots=0)
    assert [p.key for p in out.data.plots] == ["verdicts"] and out.data.plots_left_out == 14
    out = make_report([run], formats=("html",), plots=False)
    assert not out.data.plots


def test_one_host_report_draws_its_series_in_full(run: Path) -> None:
    out = make_host_report([run], "centos7")
    folder = run / "host-centos7"
    assert out.outputs["report.html"] == folder / "report.html"
    assert [e.name for e in out.data.entries] == ["centos7"]
    assert {p.host for p in out.data.plots} == {"centos7"} and len(out.data.plots) == 6
    assert (folder / "plots" / "centos7--disk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "centos7--disk.png" in (folder / "report.md").read_text()
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "This host\u2019s series" in html
    assert "disk on centos7 · 15 samples · drawn: free_bytes, free_bytes_root" in html
    assert not (run / "report.html").exists()  # the run's own report is left alone
    with pytest.raises(ConfigError, match="host 'nosuch' is not in this report"):
        make_host_report([run], "nosuch")


def test_everything_is_escaped(run: Path) -> None:
    path = run / "hosts" / "centos7.json"
    data = json.loads(path.read_text())
    data["experiments"][1]["verdict"] = "<script>alert(1)</script> | pipe"
    data["facts"]["kernel"] = "<b>3.10</b>"
    path.write_text(json.dumps(data))
    make_report([run], formats=("md", "html"), plots=False)
    html = (run / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>3.10</b>" not in html
    md = (run / "report.md").read_text()
    assert "<script>" not in md and "\\| pipe" in md


# -- merging runs ---------------------------------------------------------------------------
def test_series_csv_holds_every_sample_when_asked(tmp_path: Path) -> None:
    out_dir = tmp_path / "one"
    out = make_report([RESOURCES], out_dir, formats=("csv", "series"))
    assert out.outputs["series.csv"] == out_dir / "series.csv"
    rows = _csv(out_dir / "series.csv")
    assert list(rows[0]) == ["run", "host", "experiment", "key", "t", "value", "unit"]
    got: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for r in rows:
        got.setdefault((r["host"], r["experiment"], r["key"]), []).append((r["t"], r["value"]))
    # every sample of every key of every host file, as recorded, beside its t
    expected: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for path in sorted((RESOURCES / "hosts").glob("*.json")):
        doc = json.loads(path.read_text())
        for exp in doc["experiments"]:
            series = exp.get("series") or {}
            for key, values in series.items():
                if key != "t":
                    pairs = [(repr(t), str(v)) for t, v in zip(series["t"], values, strict=True)]
                    expected[(doc["host"], exp["name"], key)] = pairs
    assert got == expected and len(rows) == sum(map(len, expected.values())) > 500
    units = {(r["experiment"], r["key"]): r["unit"] for r in rows}
    assert units[("disk", "container")] == units[("disk", "free_bytes")] == "bytes"
    assert units[("inodes", "free_inodes")] == "count" and ("disk", "t") not in units
    assert {r["run"] for r in rows} == {"20261128-091500-c0de"}
    assert [r["host"] for r in rows] == sorted(r["host"] for r in rows)  # results.csv's order
    # not written unless asked; a merged report names hosts as its other files do
    assert "series.csv" not in make_report([RESOURCES], tmp_path / "d", plots=False).outputs
    assert not (tmp_path / "d" / "series.csv").exists()
    make_report([RESOURCES, SAMPLE], tmp_path / "m", formats=("csv", "series"))
    hosts = {r["host"] for r in _csv(tmp_path / "m" / "series.csv")}
    assert hosts == {"bookworm@20261128-091500-c0de", "centos7@20261128-091500-c0de", "ubuntu1404"}
    assert hosts <= {r["host"] for r in _csv(tmp_path / "m" / "results.csv")}
    # one host's report: that host's samples only
    one = make_host_report([RESOURCES], "centos7", out_dir, formats=("series",))
    mine = _csv(one.outputs["series.csv"])
    assert {r["host"] for r in mine} == {"centos7"}
    assert len(mine) == sum(len(v) for k, v in expected.items() if k[0] == "centos7")


def test_merge_two_runs_keeps_run_ids_on_colliding_hosts(tmp_path: Path) -> None:
    out_dir = tmp_path / "merged"
    out = make_report([RESOURCES, SAMPLE], out_dir, formats=("csv", "html", "json"), max_plots=2)
    names = [e.name for e in out.data.entries]
    # centos7 and bookworm are in both runs: they keep their run id
    assert "centos7@20261128-091500-c0de" in names and "centos7@20261127-120000-abcd" in names
    assert "bookworm@20261127-120000-abcd" in names
    assert "ubuntu1404" in names and "trixie" in names  # unique names stay plain
    cols = list(_csv(out_dir / "matrix.csv")[0])
    assert len(cols) == 1 + 8
    assert any(c.startswith("centos7@20261127-120000-abcd (CentOS Linux 7") for c in cols)
    runs = {(r["host"], r["run"]) for r in _csv(out_dir / "results.csv")}
    assert ("trixie", "20261127-120000-abcd") in runs and (
        "ubuntu1404",
        "20261128-091500-c0de",
    ) in runs
    assert out.data.plots[0].key == "verdicts" and out.data.plots_left_out > 0
    # one host of a merged report: by its merged name
    one = make_host_report([RESOURCES, SAMPLE], "bookworm@20261128-091500-c0de", out_dir)
    assert {p.host for p in one.data.plots} == {"bookworm@20261128-091500-c0de"}
    assert (out_dir / "host-bookworm@20261128-091500-c0de" / "report.html").exists()
    with pytest.raises(ConfigError, match="is in several runs"):
        make_host_report([RESOURCES, SAMPLE], "bookworm", out_dir)
    assert len(out.document["runs"]) == 2
    assert any(p.startswith("20261127-120000-abcd/trixie: cannot connect") for p in out.problems)
    assert out.exit_code == 5  # a truncated result file is among the failures
    assert not (RESOURCES / "matrix.csv").exists()  # the stored runs are not written to


def test_several_runs_need_an_out_folder() -> None:
    with pytest.raises(ConfigError, match="--out"):
        make_report([RESOURCES, SAMPLE])


def test_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match=r"has no run\.json"):
        make_report([tmp_path])


# -- the command line -----------------------------------------------------------------------
def test_cli_report_default_formats(run: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(run), "--max-plots", "1"])
    assert res.exit_code == 1, res.output  # centos66 failed
    for name in ("matrix.csv", "results.csv", "verdicts.csv", "report.md", "report.html"):
        assert (run / name).exists(), name
    assert not (run / "report.json").exists() and not (run / "series.csv").exists()
    assert "matrix:" in res.output and "html:" in res.output
    assert "4 hosts, 1 failed" in res.output
    assert "centos66: authentication failed" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["report", str(run), "--format", "series"])
    assert res.exit_code == 1 and f"series:   {run / 'series.csv'}" in res.output


def test_cli_report_prints_a_hosts_words_as_they_are(run: Path) -> None:
    path = run / "hosts" / "centos66.json"
    doc = json.loads(path.read_text())
    doc["error"]["message"] = "centos66: [bold]sudo[/] said [/] and [red]no[/red]"
    path.write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["report", str(run), "--format", "csv"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "problem: centos66: [bold]sudo[/] said [/] and [red]no[/red]\n" in res.stderr


@pytest.mark.parametrize(
    ("formats", "heavy"), [("csv,md,html", []), ("parquet,md", ["numpy", "pandas"])]
)
def test_cli_report_loads_pandas_for_parquet_only_and_matplotlib_in_its_worker(
    run: Path, formats: str, heavy: list[str]
) -> None:
    """A report's start-up is part of its time: pandas is imported for --format parquet
    only (the CSVs are the frame's pivots made without it, see report/tables.py), and
    matplotlib only in the worker that draws the figures."""
    if "parquet" in formats:
        pytest.importorskip("pyarrow")
    code = (
        "import sys, labctl.cli\n"
        f"sys.argv = ['labctl', 'report', {str(run)!r}, '--format', {formats!r}]\n"
        "try:\n    labctl.cli.main()\nexcept SystemExit:\n    pass\n"
        "print('heavy:', sorted(m for m in ('pandas', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines()[-1] == f"heavy: {heavy}", out.stdout + out.stderr
    assert (run / "plots" / "verdicts.png").exists()  # the figures were drawn all the same


def test_cli_report_json_on_stdout(run: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(run), "--format", "json", "--json"])
    doc = json.loads(res.stdout)
    assert doc["summary"]["hosts"] == 4 and (run / "report.json").exists()
    assert "problem:" in res.stderr


def test_cli_report_one_host(run: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(run), "--host", "ubuntu1404", "--format", "md"])
    assert res.exit_code == 0, res.output
    assert "1 hosts, 0 failed" in res.output
    assert (run / "host-ubuntu1404" / "report.md").exists()
    assert (run / "host-ubuntu1404" / "plots" / "ubuntu1404--disk.png").exists()
    res = CliRunner().invoke(main, ["report", str(run), "--host", "nosuch"])
    assert res.exit_code == 2 and "not in this report" in res.output
    assert "Traceback" not in res.output


def test_cli_report_merge_and_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["report", str(RESOURCES), str(SAMPLE)])
    assert res.exit_code == 2 and "--out" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(
        main,
        ["report", str(RESOURCES), str(SAMPLE), "--out", str(tmp_path / "m"), "--format", "csv"],
    )
    assert (tmp_path / "m" / "matrix.csv").exists() and res.exit_code == 5
    res = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 5 and "has no run.json" in res.output
    res = CliRunner().invoke(main, ["report", str(RESOURCES), "--format", "pdf"])
    assert res.exit_code == 2 and "unknown report format" in res.output
