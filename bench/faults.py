"""The full fault campaign: seeded trials over eighteen kinds of fault on a small container
lab, each followed by a plain run and a look for leftovers on the hosts; prints one line per
trial and the table (fault, trials, results lost, leftovers, messages, exit codes).

    .venv/bin/python bench/faults.py                      # 72 trials (4 per kind), new seed
    .venv/bin/python bench/faults.py --seed 4242 --per-kind 2 --kinds ctrl-c,clock-step

The lab (bookworm + bullseye, 512 MiB disks) lives in its own LABCTL_HOME and is removed at the
end on every path. First round (tests/faults/faultlib.py): ctrl-c (SIGINT or SIGTERM),
kill-controller (SIGKILL, then `labctl collect`), kill-sshd (the sessions serving the
controller), restart-host, pause-host (3-25 s), kill-agent, two-probes (at once), two-collects,
full-disk (results on a nearly full 16 MiB tmpfs, then `collect`), damaged-file (one host file of
a good run damaged 8 ways; report + compare). Second round (stagefaults.py, inputfaults.py):
provision-signal (SIGINT/SIGTERM during the play), host-dir-full (labctl's folder on a host
nearly full), engine-disk-full (/var/lib/docker nearly full), dead-engine (the inner dockerd
killed during the checks), clock-step (the agent's wall clock stepped by up to 2 days),
results-gone (the run folder removed or read-only in the provision, probe or collect stage),
bad-set, odd-host-name. Exit status: 0 when every trial passed.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.campaign import KINDS, OFFLINE, run_any_trial  # noqa: E402
from tests.faults.faultlib import (  # noqa: E402
    FaultLab,
    Trial,
    campaign_seed,
    next_run,
    run_dirs,
    save_calls,
    say,
)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def table(trials: list[Trial]) -> str:
    rows = [("fault", "trials", "results lost", "leftovers", "messages", "exit codes")]
    by_kind: dict[str, list[Trial]] = collections.defaultdict(list)
    for t in trials:
        by_kind[t.kind].append(t)
    for kind in KINDS:
        ts = by_kind.get(kind, [])
        if not ts:
            continue
        by_cmd: dict[str, collections.Counter[int]] = {}
        for t in ts:
            for c in t.calls:
                by_cmd.setdefault(c.args[0], collections.Counter())[c.rc] += 1
        code_text = "; ".join(
            f"{cmd} " + ", ".join(f"{rc} x{n}" for rc, n in sorted(counts.items()))
            for cmd, counts in by_cmd.items()
        )
        named = sum(len(t.named) for t in ts)
        tb = sum(t.tracebacks for t in ts)
        failed = sum(1 for t in ts if t.failures)
        msg = f"{named} named per-host, {tb} tracebacks" + (f", {failed} failed" if failed else "")
        rows.append(
            (
                kind,
                str(len(ts)),
                str(sum(len(t.lost) for t in ts)),
                str(sum(len(t.leftovers) for t in ts)),
                msg,
                code_text,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="default: LABCTL_FAULTS_SEED or new")
    ap.add_argument("--per-kind", type=int, default=4, help="trials per kind [4]")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma separated [all]")
    ap.add_argument("--work", type=Path, default=None, help="keep the trials' folders here")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else campaign_seed()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        ap.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    plan = [k for k in kinds for _ in range(args.per_kind)]
    rng.shuffle(plan)
    work = args.work or Path(tempfile.mkdtemp(prefix="labctl-faults-"))
    say(f"fault campaign: seed {seed}, {len(plan)} trials, work {work}")
    say(f"load at start: {uptime()}")
    # SIGTERM ends the campaign like Ctrl-C: through `finally`, so the lab is removed
    signal.signal(signal.SIGTERM, _stop)
    lab = FaultLab(f"fb{os.getpid()}", work / "home")
    trials: list[Trial] = []
    t0 = time.monotonic()
    try:
        lab.up()
        golden_call = next_run(lab, work / "golden")
        golden = run_dirs(work / "golden" / "next")
        if golden_call.rc != 0 or not golden:
            say(f"the first plain run failed (exit {golden_call.rc}): {golden_call.err[-2000:]}")
            return 2
        for i, kind in enumerate(plan):
            tseed = rng.randrange(1, 1_000_000)
            tdir = work / f"{i:03d}-{kind}"
            try:
                trial = run_any_trial(lab, kind, tseed, tdir, golden=golden[0])
            except Exception as exc:  # the harness's own failure is a failed trial, not an end
                trial = Trial(kind, tseed)
                trial.failures.append(f"harness: {exc!r}")
            save_calls(trial, tdir)
            if kind not in OFFLINE:
                after = next_run(lab, tdir)
                if after.rc != 0 or after.traceback:
                    trial.failures.append(f"next run exit {after.rc}: {after.err[-300:]}")
                trial.leftovers = lab.leftovers()
            trials.append(trial)
            say(f"[{i + 1}/{len(plan)} {time.monotonic() - t0:6.0f}s] {trial.line()}")
    finally:
        problems = lab.down()
        if problems:
            say(f"lab down: {problems}")
    say(f"load at the end: {uptime()}")
    print(f"\nseed {seed}, {len(trials)} trials in {time.monotonic() - t0:.0f} s\n")
    print(table(trials))
    return 0 if trials and all(t.ok for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
