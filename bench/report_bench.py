"""How `labctl report` scales: 100 and 1,000 host result files, with and without plots, in one run.

Builds run folders of N hosts in a temp dir from tests/data/run-resources (each host file a
renamed copy of one of its hosts, series included), compiles labctl's bytecode (as an install
does; a cold report otherwise), then runs `labctl report` (csv, md, html)
on each in its own child process and reads that child's wall time and peak RSS (os.wait4), and
the size of report.html. Ratios are against the first row (100 hosts, no plots); the last lines
check the 1,000-host report against its limits (issue 12: <= 2 s, <= 300 MiB, HTML <= 5 MiB).

    .venv/bin/python bench/report_bench.py                # 100 and 1,000 hosts
    .venv/bin/python bench/report_bench.py --hosts 200 --hosts 2000 --keep
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.manyhosts import many_hosts_run  # noqa: E402  (the checkout's tests, stdlib only)

LABCTL = str(Path(sys.executable).with_name("labctl"))
LIMITS = {"wall_s": 2.0, "rss_mib": 300.0, "html_mib": 5.0}


def timed(args: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of one child `labctl` run."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [LABCTL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1, 5):
        sys.stderr.write(err[-2000:])
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss: KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, action="append", help="Host counts [100 and 1000].")
    ap.add_argument("--keep", action="store_true", help="Keep the temp folder.")
    opts = ap.parse_args()
    sizes = opts.hosts or [100, 1000]
    # labctl's bytecode first, as an install writes it: with PYTHONDONTWRITEBYTECODE set (CI,
    # some shells) every run would compile labctl's modules again (~0.13 s of each run here).
    # The report itself stays cold: nothing of one run's work is kept for the next.
    subprocess.run(
        [sys.executable, "-c", "import compileall, labctl, pathlib; "
         "compileall.compile_dir(pathlib.Path(labctl.__file__).parent, quiet=1)"],
        check=True,
    )  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="labctl-report-bench-"))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"labctl report (csv, md, html; bytecode compiled); {os.cpu_count()} CPUs, load {load}")
    head = f"{'hosts':>6} {'plots':<6} {'wall s':>7} {'cpu s':>6} {'RSS MiB':>8} {'HTML MiB':>9}"
    print(f"{head} {'x wall':>7} {'x RSS':>6} {'x HTML':>7} {'exit':>5}")
    base: tuple[float, float, float] | None = None
    rows: dict[tuple[int, bool], tuple[float, float, float]] = {}
    try:
        for hosts in sizes:
            run = many_hosts_run(tmp, hosts)
            for plots in (False, True):
                for name in ("report.html", "report.md"):
                    (run / name).unlink(missing_ok=True)
                args = ["report", str(run)] + ([] if plots else ["--no-plots"])
                wall, cpu, rss, code = timed(args)
                html = (run / "report.html").stat().st_size / 2**20
                base = base or (wall, rss, html)
                rows[(hosts, plots)] = (wall, rss, html)
                print(
                    f"{hosts:>6} {'yes' if plots else 'no':<6} {wall:7.2f} {cpu:6.2f} {rss:8.0f}"
                    f" {html:9.2f} {wall / base[0]:7.1f} {rss / base[1]:6.1f}"
                    f" {html / base[2]:7.1f} {code:>5}"
                )
        big = max(sizes)
        if big >= 1000:
            wall, rss, html = rows[(big, True)]
            checks = [
                ("wall", wall, LIMITS["wall_s"], "s"),
                ("peak RSS", rss, LIMITS["rss_mib"], "MiB"),
                ("report.html", html, LIMITS["html_mib"], "MiB"),
            ]
            for what, got, limit, unit in checks:
                verdict = "ok" if got <= limit else "OVER"
                print(f"{big} hosts with plots: {what} {got:.2f} {unit} (limit {limit}): {verdict}")
    finally:
        if opts.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
