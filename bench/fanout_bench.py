"""Fan-out: how labctl's cost grows with the number of hosts (container lab, storage-location).

    .venv/bin/python bench/fanout_bench.py [--hosts 1,10,30] [--forks N]

For each size N, in one run: a lab of N bookworm container hosts is brought up, then timed:
`labctl run` (provision + probe, cold: first provisioning), the same again (warm: the hosts are
provisioned as asked), and `labctl probe` alone. Each figure is wall time and the controller's
CPU (user+sys of labctl and everything it started: ansible, ssh), and the ratio to the 1-host
lab of the same run. The lab is removed afterwards, whatever happens. Not part of CI.

The lab hosts are containers on this same machine, so their own work (sshd, the agent, their
dockerd starting the probe's container) competes with the controller for the same CPUs. Each
row therefore also gives the lab hosts' CPU (their cgroups' usage over the command) and the CPU
floor: (controller CPU + lab CPU) / CPUs, the least wall time any controller could take for that
work on this machine; `x floor` is wall / floor (1.0: the CPUs were busy all along).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABCTL = [sys.executable, "-m", "labctl.cli"]


Timing = tuple[float, float, float, int]  # wall s, controller CPU s, lab hosts' CPU s, exit


def _cgroup_cpu(cid: str) -> float:
    """CPU seconds a container has used (cgroup v2 or v1, docker's cgroupfs or systemd paths)."""
    for path in (
        f"/sys/fs/cgroup/unified/docker/{cid}/cpu.stat",
        f"/sys/fs/cgroup/docker/{cid}/cpu.stat",
        f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat",
    ):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except OSError:
            continue
    for path in (
        f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
        f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage",
    ):
        try:
            return int(Path(path).read_text()) / 1e9
        except OSError:
            continue
    return float("nan")


def lab_cpu(lab: str) -> float:
    """CPU seconds used so far by every container of the lab (its hosts)."""
    ps = ["docker", "ps", "-q", "--no-trunc", "--filter", f"name=labctl-lab-{lab}-"]
    ids = subprocess.run(ps, capture_output=True, text=True).stdout.split()
    return sum(_cgroup_cpu(cid) for cid in ids)


def timed(args: list[str], env: dict[str, str], lab: str) -> Timing:
    """(wall s, CPU s of the process tree, the lab hosts' CPU s, exit code) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    lab_before = lab_cpu(lab)
    t0 = time.perf_counter()
    proc = subprocess.run([*LABCTL, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lab_used = lab_cpu(lab) - lab_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    return wall, cpu, lab_used, proc.returncode


def bench_size(n: int, forks: int | None, env: dict[str, str], results: Path) -> dict[str, Timing]:
    name = f"fan{n}_{os.getpid()}"
    hosts = [a for i in range(n) for a in ("--host", f"bookworm:name=h{i + 1:02d}")]
    up = subprocess.run([*LABCTL, "lab", "up", "--name", name, *hosts], env=env,
                        capture_output=True, text=True)  # fmt: skip
    try:
        if up.returncode != 0:
            raise SystemExit(f"lab up failed: {up.stderr[-2000:]}")
        inv = str(Path(env["LABCTL_HOME"]) / "labs" / name / "inventory.yml")
        common = ["-i", inv, "--results", str(results), "--experiments", "storage-location"]
        if forks:
            common += ["--forks", str(forks)]
        return {
            "run (cold)": timed(["run", *common], env, name),
            "run (warm)": timed(["run", *common], env, name),
            "probe": timed(["probe", *common], env, name),
        }
    finally:
        subprocess.run([*LABCTL, "lab", "down", "--name", name], env=env, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,10,30", help="lab sizes, comma separated")
    ap.add_argument("--forks", type=int, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.hosts.split(",")]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="labctl-fanout-") as tmp:
        env = dict(os.environ, LABCTL_HOME=os.environ.get("LABCTL_HOME", f"{tmp}/home"))
        got = {n: bench_size(n, args.forks, env, Path(tmp) / "results") for n in sizes}
    base = got[sizes[0]]
    cpus = os.cpu_count() or 1
    print(
        f"fan-out, storage-location, load {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end, {cpus} cpus"
    )
    print(
        f"{'work':<11} {'hosts':>5} {'wall s':>7} {'ratio':>6} {'cpu s':>6} {'cpu/host':>8}"
        f" {'lab cpu':>7} {'floor s':>7} {'x floor':>7}  rc"
    )
    for n in sizes:
        for work, (wall, cpu, lab, rc) in got[n].items():
            ratio = wall / base[work][0] if base[work][0] else float("nan")
            floor = (cpu + lab) / cpus
            print(
                f"{work:<11} {n:>5} {wall:7.1f} {ratio:6.2f} {cpu:6.1f} {cpu / n:8.2f}"
                f" {lab:7.1f} {floor:7.1f} {wall / floor:7.2f}  {rc}"
            )


if __name__ == "__main__":
    main()
