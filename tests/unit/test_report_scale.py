"""Reports on many hosts: the figures' pure logic (thinning, sampling, grouping, lines), the
grouped "Verdicts in full", the CSV writer, and a size bound on a generated 240-host run.

No timings are asserted (bench/report_bench.py measures them)."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from labctl.errors import ResultError
from labctl.report.build import make_report
from labctl.report.matrix import write_csv
from labctl.report.model import LINE_POINTS, series_line, spread, thin, verdict_order
from labctl.report.render import DETAIL_ROWS, TOOLTIP_HOSTS, _detail_groups
from tests.manyhosts import many_hosts_run


def test_thin_keeps_the_ends_and_spreads_evenly() -> None:
    assert thin([1.0, 2.0, 3.0], 5) == [1.0, 2.0, 3.0]
    values = [float(i) for i in range(1001)]
    out = thin(values, 11)
    assert out == [float(i) for i in range(0, 1001, 100)]
    assert len(thin(values, LINE_POINTS)) == LINE_POINTS
    assert thin(values, 2) == [0.0, 1000.0]


@pytest.mark.parametrize(
    ("n", "cap", "expected"),
    [
        (0, 5, []),
        (5, 0, []),
        (3, 5, [0, 1, 2]),
        (10, 1, [0]),
        (10, 2, [0, 9]),
        (10, 4, [0, 3, 6, 9]),
    ],
)
def test_spread(n: int, cap: int, expected: list[int]) -> None:
    assert spread(n, cap) == expected


def test_spread_on_a_big_run_is_capped_and_covers_every_part() -> None:
    picked = spread(1000, 120)
    assert len(picked) == 120 and picked == sorted(set(picked))
    assert picked[0] == 0 and picked[-1] == 999
    gaps = {b - a for a, b in itertools.pairwise(picked)}
    assert gaps <= {8, 9}  # even steps: no part of the host list is left out


def test_verdict_order_groups_hosts_largest_group_first() -> None:
    patterns = [
        ["contained", "affected"],  # 0
        ["affected", "affected"],  # 1
        ["contained", "affected"],  # 2
        ["error", "error"],  # 3
        ["affected", "contained"],  # 4
        ["contained", "affected"],  # 5
    ]
    groups = verdict_order(patterns)
    assert groups[0] == [0, 2, 5]  # the largest, hosts in their given order
    # ties of one host: in class order (affected, contained, ..., error)
    assert groups[1:] == [[1], [4], [3]]
    assert sorted(i for g in groups for i in g) == list(range(len(patterns)))


def _disk_series(n: int) -> dict[str, list[float]]:
    return {
        "t": [i * 0.5 for i in range(n)],
        "container": [i * 1024.0**2 for i in range(n)],
        "free_bytes": [10 * 1024.0**3 - i * 1024.0**2 for i in range(n)],
        "free_inodes": [5000.0 - i for i in range(n)],
    }


def test_series_line_follows_the_hosts_free_amount_in_the_containers_unit() -> None:
    record = {"name": "disk", "metrics": {"written_bytes": 1}}
    line = series_line("h1", "run", record, _disk_series(1000))
    assert line is not None
    assert (line.key, line.unit, line.c_unit) == ("free_bytes", "bytes", "bytes")
    assert len(line.t) == len(line.moved) == LINE_POINTS and line.container is not None
    assert line.moved[0] == 0.0 and line.moved[-1] == 999 * 1024.0**2  # moved since the start
    assert line.container[-1] == line.moved[-1]  # every byte landed on the host
    # a series with missing samples, or too short, or with nothing to draw
    gaps = _disk_series(4)
    gaps["free_bytes"][0] = None  # type: ignore[call-overload]
    line = series_line("h1", "run", record, gaps)
    assert line is not None and math.isnan(line.moved[0]) and line.moved[1] == 0.0
    assert series_line("h1", "run", record, _disk_series(1)) is None
    assert series_line("h1", "run", record, {"t": [0, 1], "container": [0, 1]}) is None


def test_detail_groups_show_each_verdict_once_with_its_hosts() -> None:
    def host(name: str, verdict: str) -> dict[str, object]:
        return {"host": name, "cls": "affected", "why": "r", "verdict": verdict, "metrics": []}

    hosts = [host("a", "x"), host("b", "y"), host("c", "x"), host("d", "z")]
    rows, left_out = _detail_groups(hosts, 10)
    assert [r["hosts"] for r in rows] == [["a", "c"], ["b"], ["d"]] and left_out == 0
    rows, left_out = _detail_groups(hosts, 2)
    assert [r["hosts"] for r in rows] == [["a", "c"], ["b"]] and left_out == 1


def test_csv_writer_quotes_like_the_csv_module(tmp_path: Path) -> None:
    rows: list[Sequence[str]] = [
        ["plain", "1", ""],
        ["a,b", 'say "hi"', "two\nlines"],
        ["cr\r", " spaced ", "ünïcode"],
    ]
    path = tmp_path / "t.csv"
    write_csv((["h1", "h2", "h3"], rows), path)
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows([["h1", "h2", "h3"], *rows])
    assert path.read_bytes() == expected.getvalue().encode("utf-8")
    write_csv((["metric"], [[""]]), path)  # one empty field: quoted, as the csv module does
    assert path.read_text() == 'metric\n""\n'


def test_a_240_host_report_stays_small(tmp_path: Path) -> None:
    run = many_hosts_run(tmp_path, 240)
    out = make_report([run], formats=("csv", "md", "html"), max_plots=50)
    html = (run / "report.html").read_bytes()
    # figures across hosts, not one per host: the verdict map and one per experiment
    assert len(out.data.plots) == 8 and html.count(b"data:image/png;base64,") == 8
    assert out.data.plots_left_out == 60 * 14 - 7 * 50  # 840 host series, 7 x 50 drawn
    # ~0.7 MB (one image per host series made ~10 MB); 1,000 hosts: ~1.8 MB, limit 5 MiB
    assert len(html) < 1_200_000
    sizes = {p.name: p.stat().st_size for p in (run / "plots").iterdir()}
    assert len(sizes) == 8 and max(sizes.values()) < 100_000
    # every host is still in the matrix (without tooltips past TOOLTIP_HOSTS) ...
    assert len(out.data.entries) > TOOLTIP_HOSTS and html.count(b'<td class="host">') >= 240
    assert b'<td class="v affected" title=' not in html
    # ... and each distinct verdict once under "Verdicts in full", with the hosts sharing it
    assert DETAIL_ROWS >= 4 and b"+59 more" in html
    # the Markdown keeps every host's verdict
    md = (run / "report.md").read_text()
    assert md.count("- **bookworm-0000** (") == 8 and md.count("- **ubuntu1404-0239** (") == 8


@pytest.mark.parametrize("formats", [("csv",), ("csv", "md")])
def test_a_failed_csv_write_is_one_line_and_leaves_no_temp_file(
    tmp_path: Path, formats: tuple[str, ...]
) -> None:
    run = many_hosts_run(tmp_path, 8)
    (run / "results.csv").mkdir()  # a folder the CSV cannot replace
    with pytest.raises(ResultError, match=r"cannot write .* \(Is a directory\)"):
        make_report([run], formats=formats, plots=False)
    assert not list(run.glob(".*.tmp"))


def test_the_figure_worker_ends_when_its_parent_is_killed() -> None:
    """A controller killed by SIGKILL while its figure worker lives (seen in the fault suite:
    the orphan held the killed probe's stdout open for good) leaves no process behind."""
    import os
    import subprocess
    import sys
    import time

    code = (
        "import os, sys\n"
        "from labctl.report.build import figure_pool\n"
        "with figure_pool() as pool:\n"
        "    pool.submit(os.getpid).result()\n"
        "    print(*pool._processes, flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == -9, proc.stderr
    (worker,) = map(int, proc.stdout.split())
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, 9)
    raise AssertionError(f"the figure worker {worker} outlived its killed parent by 10 s")
