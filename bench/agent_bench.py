"""Bench the probe agent's resource checks on this machine (bounded mode, small caps).

    .venv/bin/python bench/agent_bench.py [--disk-mib 512] [--files 20000] [--procs 500]

In one run: the disk fill rate of the `disk` experiment against plain `dd` in the same kind of
container (the same probe image), the file-creation rate of `inodes` against a bulk `touch`
baseline in a container, the fork rate of `processes`, and the agent's own CPU and memory
while it samples the host (measured by the agent itself from /proc/self, so the docker CLI
processes it starts are not counted).  Prints a small table.  Never runs exhaust mode.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from labctl.paths import agent_path  # noqa: E402  (the checkout's labctl, not an installed one)

ENV = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
MIB = 1024**2


def docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def wall(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = docker(*args)
    return time.perf_counter() - t0, proc


def run_agent(work: Path, experiments: str, limits: list[str]) -> dict[str, Any]:
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    out = work / f"{run_id}.json"
    args = [
        sys.executable,
        str(agent_path()),
        "run",
        "--run-id",
        run_id,
        "--host",
        "bench",
        "--out",
        str(out),
        "--workdir",
        str(work / "w"),
        "--experiments",
        experiments,
    ]
    for lim in limits:
        args += ["--limit", lim]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, timeout=900, env=ENV)
    result = json.loads(out.read_text())
    result["_wall_s"] = time.perf_counter() - t0
    return {e["name"]: e for e in result["experiments"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--disk-mib", type=int, default=512)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--procs", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    opts = ap.parse_args()
    if docker("info").returncode != 0:
        print("no usable Docker engine", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="labctl-bench-"))
    limits = [
        f"disk_cap_bytes={opts.disk_mib}M",
        f"inodes_cap={opts.files}",
        f"processes_cap={opts.procs}",
        "experiment_timeout_s=120",
    ]
    rows: list[tuple[str, str, str, str]] = []
    names = [f"f{i}" for i in range(opts.files)]
    agent_runs, dd_rates, dd_walls, touch_rates, pairs_dd, pairs_fill, pairs_touch = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    image = None
    start_s = None
    # interleaved: others share this machine's disk, so each agent run is paired with its
    # baseline taken right after it, and the table shows the median of the pairs
    for _ in range(opts.repeat):
        os.sync()  # the previous step's dirty pages must not slow the next one
        run = run_agent(work, "disk,inodes,processes", limits)
        agent_runs.append(run)
        image = run["disk"]["metrics"]["probe_image"]
        os.sync()
        if start_s is None:
            start_s = min(
                wall(["run", "--rm", "--net=none", image, "/bin/sh", "-c", ":"])[0]
                for _ in range(2)
            )
        secs, proc = wall(
            [
                "run",
                "--rm",
                "--net=none",
                image,
                "/bin/dd",
                "if=/dev/zero",
                "of=/fill",
                "bs=1M",
                f"count={opts.disk_mib}",
            ]
        )
        m = re.search(r"(\d+) bytes.*copied, ([0-9.]+) s", proc.stderr)
        dd_walls.append(secs)
        if m:
            rate = int(m.group(1)) / float(m.group(2))
            dd_rates.append(rate)
            inner = run["disk"]["metrics"].get("container_dd_rate_bytes_per_s")
            if inner:
                pairs_dd.append(inner / rate)
            pairs_fill.append(run["disk"]["metrics"]["fill_rate_bytes_per_s"] / rate)
        os.sync()
        secs, proc = wall(
            [
                "run",
                "--rm",
                "--net=none",
                image,
                "/bin/sh",
                "-c",
                'mkdir /f && cd /f && exec touch "$@"',
                "sh",
                *names,
            ]
        )
        if proc.returncode == 0:
            trate = opts.files / max(secs - start_s, 1e-3)
            touch_rates.append(trate)
            pairs_touch.append(run["inodes"]["metrics"]["create_rate_per_s"] / trate)

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def mval(name: str, key: str) -> float:
        return med([r[name]["metrics"][key] or 0 for r in agent_runs])

    rows.append(
        (
            "dd speed inside the agent's `disk` (dd's own timing)",
            f"{mval('disk', 'container_dd_rate_bytes_per_s') / MIB:.0f} MiB/s",
            f"plain dd in the same image {med(dd_rates) / MIB:.0f} MiB/s",
            f"{med(pairs_dd):.2f}",
        )
    )
    rows.append(
        (
            "disk fill as the agent sees it (written / start->peak)",
            f"{mval('disk', 'fill_rate_bytes_per_s') / MIB:.0f} MiB/s",
            f"plain dd {med(dd_rates) / MIB:.0f} MiB/s",
            f"{med(pairs_fill):.2f}",
        )
    )
    rows.append(
        (
            "disk experiment wall (whole record)",
            f"{med([r['disk']['duration_s'] for r in agent_runs]):.2f} s",
            f"docker run --rm dd {med(dd_walls):.2f} s",
            "",
        )
    )
    rows.append(
        (
            "file creation (agent `inodes`, shell loop)",
            f"{mval('inodes', 'create_rate_per_s'):,.0f} files/s",
            f"bulk touch {med(touch_rates):,.0f} files/s",
            f"{med(pairs_touch):.2f}",
        )
    )

    # -- processes ----------------------------------------------------------------------
    forks = mval("processes", "fork_rate_per_s")
    rows.append(
        (
            "fork rate (agent `processes`)",
            f"{forks:,.0f} forks/s",
            f"{opts.procs} children, sleep 1000 &",
            "",
        )
    )

    # -- the agent's own overhead ---------------------------------------------------------
    cpu = sum(r[n]["metrics"]["agent_watch_cpu_s"] or 0 for r in agent_runs for n in r)
    watch = sum(r[n]["metrics"]["watch_s"] or 0 for r in agent_runs for n in r)
    samples = sum(r[n]["metrics"]["samples"] for r in agent_runs for n in r)
    rss = max(r[n]["metrics"]["agent_maxrss_bytes"] or 0 for r in agent_runs for n in r)
    rows.append(
        (
            "agent CPU while sampling",
            f"{cpu:.2f} s over {watch:.1f} s",
            f"{samples} samples, {1000 * cpu / max(samples, 1):.2f} ms/sample",
            f"{100 * cpu / max(watch, 1e-9):.1f}% of a core",
        )
    )
    rows.append(("agent peak RSS (VmHWM)", f"{rss / MIB:.1f} MiB", "", ""))

    width = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("measure", "agent", "baseline", "ratio")
    width = [max(w, len(h)) for w, h in zip(width, head, strict=True)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, width, strict=True)))
    print("-+-".join("-" * w for w in width))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    print(
        f"\n(median of {opts.repeat} interleaved runs; disk {opts.disk_mib} MiB, "
        f"{opts.files} files, {opts.procs} processes; image {image}; "
        f"python {sys.version.split()[0]})"
    )
    left = [
        n
        for n in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        if n.startswith("labctl-probe-bench-") or n.startswith("labctl-bench-")
    ]
    assert not left, left
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
