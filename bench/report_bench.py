"""How long `labctl report` takes on 1,000 host result files, and how much memory it uses.

Builds a run folder of N hosts in a temp dir from tests/data/run-resources (each host file a
renamed copy of one of its hosts, series included), then runs `labctl report` on it in a child
process per configuration and reads the child's wall time and peak RSS (ru_maxrss).

    .venv/bin/python bench/report_bench.py            # 1,000 hosts
    .venv/bin/python bench/report_bench.py --hosts 200 --keep
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "run-resources"
LABCTL = str(Path(sys.executable).with_name("labctl"))


def make_run(dst: Path, hosts: int) -> Path:
    run = dst / "20261128-091500-bench"
    (run / "hosts").mkdir(parents=True)
    meta = json.loads((SAMPLE / "run.json").read_text())
    meta["run_id"] = run.name
    (run / "run.json").write_text(json.dumps(meta))
    sources = [json.loads(p.read_text()) for p in sorted((SAMPLE / "hosts").glob("*.json"))]
    for i in range(hosts):
        doc = dict(sources[i % len(sources)])
        name = f"{doc['host']}-{i:04d}"
        doc["host"] = name
        doc["run_id"] = run.name
        (run / "hosts" / f"{name}.json").write_text(json.dumps(doc))
    return run


def timed(args: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB of the child, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run([LABCTL, *args], capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode not in (0, 1, 5):
        sys.stderr.write(proc.stderr[-2000:])
    return wall, cpu, after.ru_maxrss / 1024, proc.returncode  # ru_maxrss: KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="Keep the temp folder.")
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labctl-report-bench-"))
    try:
        run = make_run(tmp, opts.hosts)
        size = sum(p.stat().st_size for p in (run / "hosts").iterdir())
        print(f"{opts.hosts} host files, {size / 2**20:.1f} MiB, in {run}")
        configs = [
            ("csv only", ["--format", "csv"]),
            ("csv+md+html, no plots", ["--no-plots"]),
            ("csv+md+html+json, default plots (120)", ["--format", "csv,md,html,json"]),
        ]
        # each in its own child process: ru_maxrss of RUSAGE_CHILDREN is the max over all
        # children so far, so run the configurations from the smallest expected peak up
        print(f"{'configuration':<40} {'wall s':>7} {'cpu s':>7} {'peak RSS MiB':>13} {'exit':>5}")
        for label, args in configs:
            for name in ("report.html", "report.md", "report.json"):
                (run / name).unlink(missing_ok=True)
            wall, cpu, peak, code = timed(["report", str(run), *args])
            print(f"{label:<40} {wall:7.1f} {cpu:7.1f} {peak:13.0f} {code:>5}")
        html = run / "report.html"
        if html.exists():
            print(f"report.html: {html.stat().st_size / 2**20:.1f} MiB")
    finally:
        if opts.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
