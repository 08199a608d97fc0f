"""Run folders made from a stored one for the report's tests and its scaling bench.

Stdlib only (bench/report_bench.py imports it too). :func:`many_hosts_run`: each host file a
renamed copy of one of the stored run's hosts, series included, so the verdicts repeat in a known
pattern; :func:`corner_case_run`: a few hosts whose files hold the report's corner cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent / "data" / "run-resources"


def many_hosts_run(dst: Path, hosts: int, sample: Path = RESOURCES) -> Path:
    """``dst/<run-id>`` with ``hosts`` host files (``<host>-0000`` ...) cycled from ``sample``."""
    run = dst / f"20261128-091500-hosts{hosts}"
    (run / "hosts").mkdir(parents=True)
    meta = json.loads((sample / "run.json").read_text())
    meta["run_id"] = run.name
    (run / "run.json").write_text(json.dumps(meta))
    sources = [json.loads(p.read_text()) for p in sorted((sample / "hosts").glob("*.json"))]
    for i in range(hosts):
        doc = dict(sources[i % len(sources)])
        name = f"{doc['host']}-{i:04d}"
        doc["host"] = name
        doc["run_id"] = run.name
        (run / "hosts" / f"{name}.json").write_text(json.dumps(doc))
    return run


def corner_case_run(dst: Path, sample: Path = RESOURCES) -> Path:
    """``dst/<run-id>``: hosts whose files hold the report's corner cases, in an order that
    matters to the matrix's rows (first seen across hosts sorted by name).

    ``a-first`` lacks facts that later hosts have and asks for an engine and a driver; it runs
    one check twice, has metrics named like an experiment's own fields (``status``,
    ``class``, ``duration_s``) and values that need quoting. ``b-failed`` never answered
    (its ``error_kind`` row is first seen after ``a-first``'s rows). ``c-damaged`` is cut
    short, ``d-foreign`` names another host, ``e-labels`` has labels that need quoting and an
    init style, ``f-empty`` ran no check. run.json declares a check no host ran.
    """
    run = dst / "20261128-091500-corner"
    (run / "hosts").mkdir(parents=True)
    meta = json.loads((sample / "run.json").read_text())
    meta["run_id"] = run.name
    meta["experiments"] = [*meta["experiments"], "ghost-check"]
    (run / "run.json").write_text(json.dumps(meta))
    by_name = {p.stem: json.loads(p.read_text()) for p in (sample / "hosts").glob("*.json")}

    def write(name: str, doc: dict[str, Any]) -> None:
        doc = {**doc, "host": name, "run_id": run.name}
        (run / "hosts" / f"{name}.json").write_text(json.dumps(doc))

    first = json.loads(json.dumps(by_name["bookworm"]))
    first["facts"]["docker"].pop("mount_namespace", None)
    first["facts"]["docker"].pop("root_dir", None)
    first["facts"]["limits"] = {}
    first["labels"] = {**first["labels"], "storage_driver": "overlay2", "engine": "20.10"}
    exps = first["experiments"]
    exps[0]["metrics"].update(
        {
            "status": "odd, but legal",
            "class": 'said "contained"',
            "duration_s": 1.25,
            "note": "two\nlines",
            "ratio_ratio": 0.1 + 0.2,
            "maybe": None,
        }
    )
    exps.append({**exps[1], "status": "error", "verdict": "the same check, recorded twice"})
    write("a-first", first)
    write("b-failed", by_name["centos66"])
    write("c-damaged", {})
    (run / "hosts" / "c-damaged.json").write_text(json.dumps(by_name["centos7"])[:400])
    write("d-foreign", by_name["centos7"])
    doc = json.loads((run / "hosts" / "d-foreign.json").read_text())
    doc["host"] = "centos7"
    (run / "hosts" / "d-foreign.json").write_text(json.dumps(doc))
    labelled = json.loads(json.dumps(by_name["centos7"]))
    labelled["labels"] = {**labelled["labels"], "note": "a, b", "engine_init": "systemd"}
    write("e-labels", labelled)
    empty = json.loads(json.dumps(by_name["ubuntu1404"]))
    empty["experiments"] = []
    write("f-empty", empty)
    return run
