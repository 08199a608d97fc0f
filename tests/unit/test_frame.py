"""The report's tidy pandas frame (labctl.report.frame): what it holds, its pivots, and the CSVs
``labctl report`` writes through it, byte for byte as before the frame (golden files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.report.build import make_report
from tests.manyhosts import corner_case_run

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


@pytest.mark.parametrize("case", ["sample", "article", "corner", "merged"])
def test_report_csvs_are_byte_identical_to_the_golden_files(case: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_report(_case_runs(case, tmp_path), out, formats=("csv",))
    for name in CSVS:
        got = (out / name).read_bytes()
        if os.environ.get("LABCTL_WRITE_GOLDEN") == "1":
            (GOLDEN / case).mkdir(parents=True, exist_ok=True)
            (GOLDEN / case / name).write_bytes(got)
        assert got == (GOLDEN / case / name).read_bytes(), f"{case}/{name}"
