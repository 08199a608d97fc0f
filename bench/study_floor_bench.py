"""The bounded study against its floor: labctl's whole warm probe vs the same work done by hand.

    .venv/bin/python bench/study_floor_bench.py [--repeat 3]

A 3-host container lab (bullseye, bookworm, trixie) is brought up and provisioned; then, in one
run and interleaved: `labctl probe --experiments all` on the warm lab (the agent's probe image
already built), and the floor: on every host at once (one SSH command each, through
labctl.transport), the same amounts each experiment of that probe reached, done with plain
`docker run` of the same probe image: `true` (storage-location), dd (disk, disk-shared),
a loop of `: > file` (inodes), `head | tail` (memory, and under -m for memory-limited),
background sleeps (processes, and under --pids-limit). The ratio is labctl's wall time over the
floor's; the per-host part shows where the difference goes (SSH, the agent's facts, sampling,
host checks, cleanup). The lab is removed afterwards, whatever happens. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

LABCTL = [sys.executable, "-m", "labctl.cli"]
MIB = 1024**2


def replay_script(host_file: dict[str, Any]) -> str:
    """One shell script doing by hand what each experiment of ``host_file`` did."""
    exps = {e["name"]: e for e in host_file["experiments"] if e.get("status") == "ok"}
    image = str(
        host_file.get("probe_image")
        or next(
            e["metrics"]["probe_image"] for e in exps.values() if e["metrics"].get("probe_image")
        )
    )
    lines = [
        "set -u",
        f"IMG={image}",
        "d=/var/tmp/labctl-floor; mkdir -p $d",
        'step() { n=$1; shift; s=$(date +%s.%N); "$@" >/dev/null 2>&1; '
        'awk -v n="$n" -v s="$s" -v e="$(date +%s.%N)" \'BEGIN {print n, e - s}\'; }',
        'run() { docker run --rm --net=none "$@"; }',
    ]

    def m(name: str, key: str) -> int:
        return int(exps[name]["metrics"].get(key) or 0)

    if "storage-location" in exps:
        lines.append("step storage-location run $IMG true")
    for name in ("disk", "disk-limited"):
        if name in exps and m(name, "written_bytes"):
            lines.append(
                f"step {name} run $IMG dd if=/dev/zero of=/fill bs=1M "
                f"count={m(name, 'written_bytes') // MIB}"
            )
    if "disk-shared" in exps and m("disk-shared", "written_bytes"):
        lines.append(
            f"step disk-shared run -v $d:/shared $IMG dd if=/dev/zero "
            f"of=/shared/fill bs=1M count={m('disk-shared', 'written_bytes') // MIB}"
        )
        lines.append("rm -f $d/fill")
    if "inodes" in exps:
        n = m("inodes", "files_created")
        lines.append(
            f"step inodes run $IMG sh -c 'mkdir /f; i=0; while [ $i -lt {n} ]; do "
            ": > /f/$i; i=$((i+1)); done'"
        )
    if "memory" in exps:
        lines.append(
            f"step memory run $IMG sh -c 'head -c {m('memory', 'resident_bytes')} /dev/zero | tail'"
        )
    if "memory-limited" in exps:
        lim = m("memory-limited", "memory_limit_bytes")
        lines.append(
            f"step memory-limited run -m {lim} --memory-swap {lim} $IMG sh -c "
            f"'head -c {2 * lim} /dev/zero | tail'"
        )
    for name, flag in (("processes", ""), ("processes-limited", "--pids-limit {pids}")):
        if name in exps:
            n = m(name, "processes_started")
            opt = flag.format(pids=m(name, "pids_limit"))
            lines.append(
                f"step {name} run {opt} $IMG sh -c 'i=0; while [ $i -lt {n} ]; do "
                "sleep 60 & i=$((i+1)); done'"
            )
    lines.append("rm -rf $d")
    return "\n".join(lines) + "\n"


def floor_of(host: Any, script: str) -> tuple[float, dict[str, float]]:
    from labctl.transport import SSHTransport

    t0 = time.perf_counter()
    with SSHTransport(host) as t:
        res = t.run(script, timeout=600)
    wall = time.perf_counter() - t0
    steps = {}
    for line in res.stdout.splitlines():
        name, _, secs = line.partition(" ")
        if secs:
            steps[name] = float(secs)
    return wall, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from labctl.inventory import load_inventory

    load = os.getloadavg()[0]
    name = f"floor{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="labctl-floor-") as tmp:
        env = dict(os.environ, LABCTL_HOME=os.environ.get("LABCTL_HOME", f"{tmp}/home"))
        os.environ["LABCTL_HOME"] = env["LABCTL_HOME"]
        results = Path(tmp) / "results"
        try:
            up = subprocess.run([*LABCTL, "lab", "up", "--name", name, "--host", "bullseye",
                                 "--host", "bookworm", "--host", "trixie"], env=env,
                                capture_output=True, text=True)  # fmt: skip
            if up.returncode != 0:
                raise SystemExit(f"lab up failed: {up.stderr[-2000:]}")
            inv = Path(env["LABCTL_HOME"]) / "labs" / name / "inventory.yml"
            subprocess.run([*LABCTL, "provision", "-i", str(inv), "--results", str(results)],
                           env=env, capture_output=True, check=True)  # fmt: skip
            probe = [*LABCTL, "probe", "-i", str(inv), "--results", str(results)]
            subprocess.run(probe, env=env, capture_output=True)  # warm-up: the probe image
            hosts = load_inventory(inv).hosts
            walls: list[float] = []
            floors: list[float] = []
            per_host: dict[str, list[tuple[float, float, float]]] = {}
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                subprocess.run(probe, env=env, capture_output=True)
                walls.append(time.perf_counter() - t0)
                run = max((p for p in results.iterdir() if (p / "run.json").exists()),
                          key=lambda p: p.stat().st_mtime)  # fmt: skip
                files = {h.name: json.loads((run / "hosts" / f"{h.name}.json").read_text())
                         for h in hosts}  # fmt: skip
                t0 = time.perf_counter()
                scripts = [replay_script(files[h.name]) for h in hosts]
                with ThreadPoolExecutor(len(hosts)) as pool:
                    got = list(pool.map(floor_of, hosts, scripts))
                floors.append(time.perf_counter() - t0)
                for h, (wall, steps) in zip(hosts, got, strict=True):
                    agent = sum(e.get("duration_s") or 0 for e in files[h.name]["experiments"])
                    per_host.setdefault(h.name, []).append((agent, wall, sum(steps.values())))
        finally:
            subprocess.run([*LABCTL, "lab", "down", "--name", name], env=env,
                           capture_output=True)  # fmt: skip
    med = statistics.median
    print(
        f"bounded study, 3 container hosts, warm; load {load:.1f} at start, "
        f"{os.cpu_count()} cpus; median of {args.repeat}"
    )
    print(f"labctl probe --experiments all  {med(walls):6.1f} s")
    print(f"floor (same work by hand)       {med(floors):6.1f} s")
    print(f"ratio                           {med(walls) / med(floors):6.2f}")
    for host, rows in per_host.items():
        agent, wall, by_hand = (med([r[i] for r in rows]) for i in range(3))
        print(
            f"  {host:<9} agent experiments {agent:5.1f} s | by hand {by_hand:5.1f} s "
            f"(+ssh {wall - by_hand:4.1f} s)"
        )


if __name__ == "__main__":
    main()
