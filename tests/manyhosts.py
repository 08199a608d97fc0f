"""A run folder of many hosts made from a stored one: the report's scaling bench and tests.

Stdlib only (bench/report_bench.py imports it too). Each host file is a renamed copy of one of
the stored run's hosts, series included, so the verdicts repeat in a known pattern.
"""

from __future__ import annotations

import json
from pathlib import Path

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
