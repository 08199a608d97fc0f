"""report.html rendered by a real headless browser (Debian's chromium): it loads, lays out and
shows its tables and plots. Skipped with a reason when chromium is not installed."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from labctl.report.build import make_report

pytestmark = pytest.mark.lab

DATA = Path(__file__).resolve().parent.parent / "data"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not on PATH: `apt-get install -y chromium` (scripts/setup.sh does it)",
)
def test_report_html_in_headless_chromium(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-resources", run)
    make_report([run], formats=("html",))
    html = run / "report.html"
    # the DOM after the browser parsed it: every section and every plot is there
    dom = _chromium("--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in ("Verdict matrix", "Hosts", "Storage", "Beside the 2015 study", "Verdicts in full"):
        assert text in dom.stdout
    assert dom.stdout.count("<img ") == 8  # the verdict map and one figure per experiment
    assert 'alt="verdict classes across hosts"' in dom.stdout
    assert dom.stdout.count('class="v affected"') >= 10
    # a screenshot: a real picture of the page, not a blank one
    shot = tmp_path / "report.png"
    res = _chromium(f"--screenshot={shot}", "--window-size=1400,2000", html.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert (width, height) == (1400, 2000)
    assert shot.stat().st_size > 100_000  # coloured tables and text, not an empty page
