# -*- coding: utf-8 -*-
"""The agent's command line: run, facts, reap, --version."""

from __future__ import absolute_import, division, print_function

import json
import optparse
import os
import sys

from .catalog import ALL
from .consts import AGENT_VERSION, DEFAULT_EXPERIMENTS, DEFAULT_TIMEOUT, RUN_ID_RE
from .docker import Docker
from .facts import docker_facts, gather_facts
from .hostpaths import (
    MISSING,
    UnsafePath,
    default_base,
    ensure_local_dir,
    local_problem,
    runs_of,
    work_of,
)
from .limits import DEFAULT_LIMITS, MODES, parse_limit_options
from .runner import EXPERIMENT_ORDER, EXPERIMENTS, execute_run
from .runstate import fs_parents_of, reap

#: the exit code of a run refused because a path it would use is not safe (hostpaths)
EXIT_UNSAFE_PATH = 3

def _wrap(words, indent, width=83):
    """``words`` joined by spaces into lines of at most ``width`` characters, each after
    ``indent`` spaces (greedy, as textwrap does)."""
    lines, line = [], ""
    for word in words:
        if line and indent + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = (line + " " + word) if line else word
    lines.append(line)
    return "\n".join(" " * indent + text for text in lines)


def _experiment_words():
    """'all, storage-location (default), disk, ...': the catalog's names, in its order."""
    names = ["all"] + [name + (" (default)" if name in DEFAULT_EXPERIMENTS else "")
                       for name in EXPERIMENT_ORDER]
    return ("experiments: " + ", ".join(names)).split(" ")


USAGE = """usage: probe_agent.pyz COMMAND [options]

commands:
  run --run-id ID --host NAME --out PATH [--experiments %s]
      [--workdir DIR] [--timeout SECONDS] [--mode bounded|exhaust]
      [--limit NAME=VALUE ...]
                 gather facts, run the experiments, write the result JSON to PATH;
%s
  facts          print the host's facts as JSON
  reap [--workdir DIR] [--runs DIR]
                 remove leftovers (labctl-probe-* containers, run folders, the
                 controller's folders in <labctl's folder>/runs) of dead runs
  --version      print the agent version

labctl's folder: /var/lib/labctl for root, ~/.local/state/labctl for others; the
workdir is its work/ (every folder the agent uses must be writable by root and its
user only: it refuses others, exit 3)

examples:
  python probe_agent.pyz run --run-id r1 --host centos66 --out /var/lib/labctl/r1.json
  python probe_agent.pyz run --run-id r2 --host lab1 --out /var/lib/labctl/r2.json \
      --experiments disk,memory-limited --limit disk_cap_bytes=256M --limit memory_limit_bytes=32M
""" % (",".join(DEFAULT_EXPERIMENTS), _wrap(_experiment_words(), 17))


def _refuse(exc):
    """One line on stderr for a path the agent will not use; the exit code that says so."""
    sys.stderr.write("labctl probe agent: refusing to run: %s: another user of this host could "
                     "change what the agent runs or writes there; remove or fix it (chown root, "
                     "chmod go-w), or use another folder\n" % exc.line())
    return EXIT_UNSAFE_PATH


def _own_file_problem():
    """The shipped agent (a .pyz) checks its own file: run by root from a place another user
    can change, it would run that user's code."""
    me = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not me.endswith(".pyz"):
        return None  # `python -m labctl.agent` from a checkout
    problem = local_problem(os.path.realpath(me))
    return UnsafePath(*problem) if problem else None


def _parser(prog, usage):
    return optparse.OptionParser(prog=prog, usage=usage, add_help_option=True)


def _run_parser():
    p = _parser("probe_agent.pyz run", "%prog --run-id ID --host NAME --out PATH [options]")
    p.add_option("--run-id", dest="run_id")
    p.add_option("--host", dest="host")
    p.add_option("--out", dest="out")
    p.add_option("--experiments", dest="experiments", default=",".join(DEFAULT_EXPERIMENTS),
                 help="comma separated, or 'all': %s" % ", ".join(EXPERIMENT_ORDER))
    p.add_option("--mode", dest="mode", default="bounded",
                 help="bounded (default: caps and safety floors) or exhaust (run to real "
                 "exhaustion; only on disposable hosts)")
    p.add_option("--disposable", dest="disposable", action="store_true", default=False,
                 help="the host may be damaged (lab hosts): storage-host-mount runs only then")
    p.add_option("--limit", dest="limits", action="append", default=[],
                 metavar="NAME=VALUE", help="override a limit (repeatable), e.g. "
                 "disk_cap_bytes=512M; names: %s" % ", ".join(sorted(DEFAULT_LIMITS)))
    p.add_option("--workdir", dest="workdir", default=work_of(default_base()))
    p.add_option("--timeout", dest="timeout", type="float", default=DEFAULT_TIMEOUT)
    return p


def _experiments_asked(p, text):
    """--experiments: names (or 'all') in the order asked, each once; usage error if unknown."""
    exps = []
    for e in text.split(","):
        e = e.strip()
        for one in (ALL if e == "all" else (e,)):
            if one and one not in exps:
                exps.append(one)
    unknown = [e for e in exps if e not in EXPERIMENTS]
    if unknown or not exps:
        p.error("unknown experiment(s) %s; known: all, %s"
                % (", ".join(unknown) or "(none given)", ", ".join(EXPERIMENT_ORDER)))
    return exps


def _run_command(rest):
    p = _run_parser()
    opts, args = p.parse_args(rest)
    if args:
        p.error("unexpected arguments: %s" % " ".join(args))
    for name in ("run_id", "host", "out"):
        if not getattr(opts, name):
            p.error("--%s is required" % name.replace("_", "-"))
    if not RUN_ID_RE.match(opts.run_id):
        p.error("--run-id must be 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or "
                "digit), got %r" % opts.run_id)
    if opts.timeout <= 0:
        p.error("--timeout must be positive")
    exps = _experiments_asked(p, opts.experiments)
    if opts.mode not in MODES:
        p.error("--mode must be bounded or exhaust, got %r" % opts.mode)
    try:
        overrides = parse_limit_options(opts.limits)
    except ValueError as exc:
        p.error(str(exc))
    out, workdir = os.path.abspath(opts.out), os.path.abspath(opts.workdir)
    unsafe = _own_file_problem()
    if unsafe is not None:
        return _refuse(unsafe)
    try:
        ensure_local_dir(os.path.dirname(out))
        ensure_local_dir(workdir)
    except UnsafePath as exc:
        return _refuse(exc)
    return execute_run(opts.run_id, opts.host, out, exps, workdir, opts.timeout, opts.mode,
                       overrides, opts.disposable)


def _facts_command(rest):
    p = _parser("probe_agent.pyz facts", "%prog")
    _opts, args = p.parse_args(rest)
    if args:
        p.error("unexpected arguments: %s" % " ".join(args))
    facts = gather_facts(Docker())
    print(json.dumps(facts, indent=2, sort_keys=True, separators=(",", ": ")))
    return 0


def _reap_command(rest):
    p = _parser("probe_agent.pyz reap", "%prog [--workdir DIR] [--runs DIR]")
    base = default_base()
    p.add_option("--workdir", dest="workdir", default=work_of(base))
    p.add_option("--runs", dest="runs", default=runs_of(base),
                 help="the controller's run folders (default %s)" % runs_of(base))
    opts, args = p.parse_args(rest)
    if args:
        p.error("unexpected arguments: %s" % " ".join(args))
    unsafe = _own_file_problem()
    for path in (opts.workdir, opts.runs):
        problem = local_problem(os.path.abspath(path))
        if problem and problem[1] != MISSING:
            unsafe = unsafe or UnsafePath(*problem)
    if unsafe is not None:
        return _refuse(unsafe)
    docker = Docker()
    root = docker_facts(docker).get("root_dir") if docker.path else None
    removed = reap(os.path.abspath(opts.workdir), docker, fs_parents=fs_parents_of(root),
                   controller_runs=os.path.abspath(opts.runs))
    print(json.dumps(removed, indent=2, sort_keys=True, separators=(",", ": ")))
    return 0


COMMANDS = {"run": _run_command, "facts": _facts_command, "reap": _reap_command}


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        sys.stderr.write(USAGE)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if argv[0] in ("--version", "-V", "version"):
        print(AGENT_VERSION)
        return 0
    command, rest = argv[0], argv[1:]
    if command in COMMANDS:
        return COMMANDS[command](rest)
    sys.stderr.write("probe_agent.pyz: unknown command %r\n\n%s" % (command, USAGE))
    return 2
