# -*- coding: utf-8 -*-
"""Running the experiments: the experiment table, one experiment's record, and a whole
run written atomically to its result file."""

from __future__ import absolute_import, division, print_function

import errno
import os
import platform
import sys
import traceback

from .catalog import ORDER
from .consts import AGENT_VERSION, SCHEMA_VERSION
from .context import Agent
from .docker import Docker
from .drivers import experiment_drivers_available
from .driverswitch import experiment_storage_driver_switch
from .errors import AgentInterrupted, ExperimentError, SkipExperiment
from .facts import gather_facts
from .hostmount import experiment_storage_host_mount
from .hostpaths import UnsafePath, ensure_local_dir
from .resrun import resource_experiment
from .restable import EXPERIMENT_SPECS
from .runstate import (
    SIGNALS,
    controller_runs_of,
    fs_parents_of,
    install_signal_handlers,
    reap,
    write_pid_file,
)
from .sampling import protect_self, reserve_space
from .storage import experiment_storage_location
from .text import iso_utc, monotonic, one_line, write_json_atomic

#: the checks of the catalog that are not resource checks, each its own module:
#: name -> function(agent, metrics) -> verdict (a new one is its module and a line here)
OWN_EXPERIMENTS = {
    "storage-location": experiment_storage_location,
    "drivers-available": experiment_drivers_available,
    "storage-host-mount": experiment_storage_host_mount,
    "storage-driver-switch": experiment_storage_driver_switch,
}


def _experiments():
    table = dict(OWN_EXPERIMENTS)
    for name, exp in EXPERIMENT_SPECS.items():
        table[name] = resource_experiment(exp)
    return table


#: every experiment of the catalog, by name (a unit test checks that none is missing)
EXPERIMENTS = _experiments()
#: the catalog's order
EXPERIMENT_ORDER = ORDER


def run_experiment(agent, name, records=None):
    """Run one experiment; its record is appended to ``records`` before it starts, so an
    interrupted experiment still shows (status "error", kind "interrupted")."""
    record = {"name": name, "status": "error", "started": iso_utc(), "finished": None,
              "duration_s": None, "metrics": {}, "verdict": None, "error": None}
    if records is not None:
        records.append(record)
    start = monotonic()
    agent.progress("experiment-start", name, "starting %s" % name)
    try:
        try:
            verdict = EXPERIMENTS[name](agent, record["metrics"])
            record["status"] = "ok"
            record["verdict"] = verdict
        except SkipExperiment as exc:
            record["status"] = "skipped"
            record["verdict"] = exc.msg
            record["error"] = {"kind": "not-supported", "message": exc.msg}
        except ExperimentError as exc:
            record["error"] = {"kind": exc.kind, "message": one_line(exc.msg, 500)}
            record["verdict"] = "error: %s" % one_line(exc.msg, 200)
        except AgentInterrupted as exc:
            record["error"] = {"kind": "interrupted", "message": "stopped by signal %d"
                               % exc.signum}
            record["verdict"] = "error: interrupted by signal %d" % exc.signum
            raise
        except Exception as exc:
            record["error"] = {"kind": "agent-crash", "message": one_line(
                "%s: %s (at %s)" % (type(exc).__name__, exc, _where(sys.exc_info())), 500)}
            record["verdict"] = "error: the agent crashed in this experiment"
    finally:
        series = record["metrics"].pop("__series__", None)
        if series is not None:
            record["series"] = series
        if agent.start_retries:
            # metrics are scalars (the controller's loader refuses lists): a count and the
            # last error the engine gave
            record["metrics"]["container_start_retries"] = len(agent.start_retries)
            record["metrics"]["container_start_retry_error"] = agent.start_retries[-1]
            del agent.start_retries[:]
        record["finished"] = iso_utc()
        record["duration_s"] = round(monotonic() - start, 3)
        agent.progress("experiment-end", name, record["verdict"] or record["status"])
    return record


def _where(exc_info):
    tb = traceback.extract_tb(exc_info[2])
    if not tb:
        return "?"
    frame = tb[-1]
    return "%s:%s" % (os.path.basename(frame[0]), frame[1])


def skipped_experiment(name, error):
    return {"name": name, "status": "skipped", "started": None, "finished": None,
            "duration_s": None, "metrics": {},
            "verdict": "skipped: %s" % (error or {}).get("message", "not run"),
            "error": error}



def new_result(run_id, host):
    return {"schema": SCHEMA_VERSION, "agent_version": AGENT_VERSION, "run_id": run_id,
            "host": host, "started": iso_utc(), "finished": None,
            "python": platform.python_version(), "status": "error", "error": None,
            "facts": None, "experiments": []}


def _clear_stale(*paths):
    for stale in paths:
        try:
            os.remove(stale)
        except OSError:
            pass


def _reap(result, docker, workdir, run_id, out, dfacts, usable):
    try:
        reaped = reap(workdir, (usable and docker) or None, own_run_id=run_id,
                      fs_parents=fs_parents_of(dfacts.get("root_dir")),
                      controller_runs=controller_runs_of(out, workdir))
        result["reaped"] = {"containers": reaped["containers"],
                            "workdirs": reaped["workdirs"], "errors": reaped["errors"]}
    except Exception as exc:
        result["reaped"] = {"containers": [], "workdirs": [],
                            "errors": ["reaper failed: %s" % one_line(str(exc))]}


def _run_experiments(agent, docker, result, experiments, out, workdir):
    """The run's body: facts, the reaper, the probe image, every experiment."""
    install_signal_handlers()
    agent.progress("start", None, "agent %s (python %s, pid %d) on %s"
                   % (AGENT_VERSION, result["python"], os.getpid(), agent.host))
    write_pid_file(agent.ensure_run_dir())
    facts = gather_facts(docker)
    result["facts"] = facts
    agent.facts = facts
    dfacts = facts.get("docker") or {}
    usable = bool(docker.server_version)
    _reap(result, docker, workdir, agent.run_id, out, dfacts, usable)
    if not usable:
        result["error"] = {"kind": dfacts.get("error_kind") or "docker-error",
                           "message": dfacts.get("error") or "docker is not usable"}
        result["experiments"] = [skipped_experiment(n, result["error"]) for n in experiments]
        return
    try:  # the one probe image of the run, before any experiment fills a disk
        image = agent.probe_image()
        agent.image_reported = False
        result["probe_image"] = image.get("probe_image")
    except ExperimentError:
        pass  # each experiment tries again and reports the error itself
    for name in experiments:
        run_experiment(agent, name, result["experiments"])
    result["status"] = "ok"


#: the agent's exit status when there is no room for its result (no check was run)
EXIT_NO_ROOM = 28
#: the least reserve worth starting with: a result without samples fits in it
MIN_RESERVE = 128 * 1024


def _reserve_result(path, size):
    """Room for the result, reserved before any check: ``size`` bytes, or less on a nearly
    full disk, down to MIN_RESERVE; 0 when not even that fits."""
    while size >= MIN_RESERVE:
        got = reserve_space(path, size)
        if got:
            return got
        size //= 4
    return 0


def _free_bytes(folder):
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except OSError:
        return "?"


def without_series(result, why):
    """The result with every check's samples left out (and why, in each check's record)."""
    slim = dict(result)
    slim["experiments"] = []
    for exp in result.get("experiments") or []:
        exp = dict(exp)
        if exp.pop("series", None) is not None:
            exp.setdefault("metrics", {})
            exp["metrics"] = dict(exp["metrics"], series_dropped=why)
        slim["experiments"].append(exp)
    return slim


def _write_result(agent, result, out, reserve, exit_code):
    """Every path's end: the run's containers and folders gone, the result written."""
    SIGNALS["defer"] = True
    try:
        agent.cleanup()
    except Exception:
        pass
    if SIGNALS["received"] is not None and result["error"] is None:
        result["status"] = "error"
        result["error"] = {"kind": "interrupted", "message": "the agent was stopped by "
                           "signal %d; re-run the probe" % SIGNALS["received"]}
        exit_code = 128 + SIGNALS["received"]
    result["finished"] = iso_utc()
    try:
        try:
            write_json_atomic(out, result, reserve)
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) != errno.ENOSPC:
                raise
            # a result larger than its reserve on a full disk: the samples go, every metric
            # and verdict stays (they are small)
            _clear_stale(out + ".tmp")
            write_json_atomic(out, without_series(result, "the disk holding the result was "
                                                  "full: the samples were left out"))
    except (IOError, OSError, UnsafePath) as exc:
        sys.stderr.write("labctl probe agent: cannot write the result to %s: %s\n"
                         % (out, exc))
        exit_code = 1
    _clear_stale(reserve)
    agent.progress("end", None, "status %s" % result["status"])
    return exit_code


def _crash_error(exc, workdir):
    """The run's error for an exception no check caught: a full disk under the agent's folder
    says so (the probe image's tarball is written there); anything else is a crash to report."""
    if isinstance(exc, EnvironmentError) and getattr(exc, "errno", None) == errno.ENOSPC:
        return {"kind": "host-disk-full", "message": one_line(
            "no space left on the disk holding %s (%s bytes free): %s; free space there (or "
            "set labctl_host_dir to a roomier place) and re-run the probe"
            % (workdir, _free_bytes(workdir), exc), 500)}
    return {"kind": "agent-crash", "message": one_line(
        "the agent crashed: %s: %s (at %s); please report this with the host's facts"
        % (type(exc).__name__, exc, _where(sys.exc_info())), 500)}


def execute_run(run_id, host, out, experiments, workdir, timeout, mode="bounded",
                limit_overrides=None, disposable=False):
    """The body of `run`; returns the process exit code."""
    progress_path = out + ".progress"
    reserve = out + ".reserve"
    ensure_local_dir(os.path.dirname(out))
    _clear_stale(out, out + ".tmp", progress_path, reserve)
    result = new_result(run_id, host)
    result["mode"] = mode
    result["limits"] = dict(limit_overrides or {})
    docker = Docker()
    agent = Agent(run_id, host, workdir, timeout, progress_path, docker, mode, limit_overrides,
                  disposable)
    exit_code = 0
    # the result's space, and (exhaust) the agent's life, are secured before any check runs
    reserved = _reserve_result(reserve, agent.limits()["result_reserve_bytes"])
    if not reserved:
        sys.stderr.write("labctl probe agent: no room for the result in %s (%s bytes free): "
                         "the folder's disk is full; free space there and re-run the probe\n"
                         % (os.path.dirname(out), _free_bytes(os.path.dirname(out))))
        _clear_stale(progress_path)
        return EXIT_NO_ROOM
    result["protection"] = {"result_reserve_bytes": reserved}
    if mode == "exhaust":
        result["protection"].update(protect_self())
    try:
        try:
            _run_experiments(agent, docker, result, experiments, out, workdir)
        except AgentInterrupted as exc:
            result["status"] = "error"
            result["error"] = {"kind": "interrupted", "message": "the agent was stopped by "
                               "signal %d before it finished; re-run the probe" % exc.signum}
            exit_code = 128 + exc.signum
        except Exception as exc:
            result["status"] = "error"
            result["error"] = _crash_error(exc, workdir)
        done = set(e["name"] for e in result["experiments"])
        for name in experiments:
            if name not in done:
                result["experiments"].append(skipped_experiment(name, result["error"]))
    finally:
        exit_code = _write_result(agent, result, out, reserve, exit_code)
    return exit_code
